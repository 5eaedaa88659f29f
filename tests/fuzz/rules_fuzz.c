/*
 * Request rules: the input's first line is a --rule spec, its second a
 * request path, the rest a body; the whole input is also tried as a JSON
 * rule and a JSON body. Invariants: errors are one line naming the rule;
 * an accepted spec's text re-parses to the same text; a decoded path is
 * normalised (starts with '/', no empty, "." or ".." segment, no trailing
 * '/', no NUL) and decoding it again (its '%' re-escaped) changes
 * nothing; verdicts are consistent (a rule iff a decision, a one-line
 * reason for every refusal, NEED_BODY only before the body, errors
 * refuse) for the fuzzed rule and the GitHub preset.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "builtin/addr.h"
#include "builtin/rules.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define MAXIN	16384

static const char *const methods[] = {
	"GET", "PUT", "POST", "PATCH", "DELETE", "delete", "HEAD",
};
static const char *const hosts[] = {
	"api.github.com", "uploads.github.com", "example.com:8443",
	"10.1.2.3", "[::1]",
};

static void
check_err(const char *err, const char *prefix)
{
	ASSERT(strncmp(err, prefix, strlen(prefix)) == 0);
	ASSERT(strchr(err, '\n') == NULL);
}

static void
check_path(const char *path, size_t len)
{
	char	 out[RULES_PATH_MAX + 2], again[RULES_PATH_MAX + 2], *esc;
	size_t	 n, m, i, o;
	int	 r;

	r = rules_decode_path(path, len, out, sizeof out, &n);
	ASSERT(r <= 0 && r >= RULES_E_PATH);
	if (r != 0) {
		ASSERT(n == 0);
		return;
	}
	ASSERT(n == strlen(out) && n <= len + 1);
	if (n == 1 && out[0] == '*')
		return;
	ASSERT(out[0] == '/');
	ASSERT(n == 1 || out[n - 1] != '/');
	ASSERT(strstr(out, "//") == NULL);
	for (i = 0; i < n; i++) {
		if (out[i] != '/')
			continue;
		ASSERT(!(i + 1 == n && n > 1));
		if (i + 2 <= n && out[i + 1] == '.' &&
		    (i + 2 == n || out[i + 2] == '/'))
			abort();
		if (i + 3 <= n && out[i + 1] == '.' && out[i + 2] == '.' &&
		    (i + 3 == n || out[i + 3] == '/'))
			abort();
	}
	/* idempotent once '%', '?' and '#' are escaped again */
	esc = malloc(n * 3 + 1);
	for (i = 0, o = 0; i < n; i++) {
		if (out[i] == '%' || out[i] == '?' || out[i] == '#') {
			esc[o++] = '%';
			esc[o++] = "0123456789ABCDEF"[(uint8_t)out[i] >> 4];
			esc[o++] = "0123456789ABCDEF"[out[i] & 15];
		} else
			esc[o++] = out[i];
	}
	if (o <= RULES_PATH_MAX) {
		r = rules_decode_path(esc, o, again, sizeof again, &m);
		ASSERT(r == 0 && m == n && memcmp(again, out, n) == 0);
	}
	free(esc);
}

static void
check_verdict(int rc, const struct rule_verdict *v, bool body_given)
{
	ASSERT(rc >= RULES_E_GRAPHQL && rc <= RULES_NEED_BODY);
	ASSERT(memchr(v->reason, '\0', sizeof v->reason) != NULL);
	ASSERT(strchr(v->reason, '\n') == NULL);
	if (rc < 0) {
		ASSERT(v->action == RULES_DENY && v->rule != NULL);
		ASSERT(v->reason[0] != '\0');
		return;
	}
	ASSERT((int)v->action == rc);
	ASSERT((v->rule != NULL) == (rc != RULES_NONE));
	if (rc == RULES_DENY)
		ASSERT(v->reason[0] != '\0');
	if (body_given)
		ASSERT(rc != RULES_NEED_BODY);
}

static void
evaluate(struct rules *r, const char *path, size_t plen, const char *body,
    size_t blen)
{
	struct rule_verdict	v;
	struct dest		d;
	size_t			i, j;
	int			rc;

	for (i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		ASSERT(addr_parse_authority(hosts[i], strlen(hosts[i]), 443,
		    &d) == ADDR_OK);
		(void)rules_names_host(r, &d);
		for (j = 0; j < sizeof methods / sizeof methods[0]; j++) {
			rc = rules_eval(r, methods[j], strlen(methods[j]), &d,
			    path, plen, &v);
			check_verdict(rc, &v, false);
			if (rc != RULES_NEED_BODY)
				continue;
			ASSERT(rules_need_bodies(r));
			rc = rules_eval_body(r, methods[j], strlen(methods[j]),
			    &d, path, plen, body, blen, &v);
			check_verdict(rc, &v, true);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rules *preset;
	struct rules	*r, *again;
	const char	*nl, *path, *body;
	char		*s, *spec, err[256], *text;
	size_t		 speclen, plen, blen, tlen;
	cJSON		*j;

	if (size > MAXIN)
		return 0;
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	/* line 1: a spec */
	nl = memchr(s, '\n', size);
	speclen = nl ? (size_t)(nl - s) : size;
	spec = malloc(speclen + 1);
	memcpy(spec, s, speclen);
	spec[speclen] = '\0';
	r = rules_new();
	if (rules_add_spec(r, spec, err, sizeof err) != 0) {
		check_err(err, "bad rule '");
		ASSERT(rules_count(r) == 0);
	} else {
		ASSERT(rules_count(r) == 1);
		again = rules_new();
		ASSERT(rules_add_spec(again, rules_text(r, 0), err,
		    sizeof err) == 0);
		ASSERT(strcmp(rules_text(again, 0), rules_text(r, 0)) == 0);
		rules_free(again);
	}

	/* line 2: a path; the rest: a body */
	path = nl ? nl + 1 : s + size;
	nl = memchr(path, '\n', (size_t)(s + size - path));
	plen = nl ? (size_t)(nl - path) : (size_t)(s + size - path);
	body = nl ? nl + 1 : s + size;
	blen = (size_t)(s + size - body);
	check_path(path, plen);

	evaluate(r, path, plen, body, blen);
	/* the preset, compiled once: JIT compiles cost milliseconds */
	if (preset == NULL) {
		preset = rules_new();
		ASSERT(rules_add_preset(preset, "github", err, sizeof err) ==
		    0);
		ASSERT(rules_add_preset(preset, "github:10.0.0.0/8", err,
		    sizeof err) == 0);
	}
	evaluate(preset, path, plen, body, blen);
	/* the body without its length's NUL: an exact-size copy */
	if (blen > 0) {
		char *b = malloc(blen);
		memcpy(b, body, blen);
		evaluate(preset, path, plen, b, blen);
		free(b);
	}
	rules_free(r);

	/* the whole input as a JSON rule, and as a JSON body */
	if ((j = cJSON_ParseWithLength(s, size)) != NULL) {
		r = rules_new();
		if (rules_add_json(r, j, err, sizeof err) != 0)
			check_err(err, "bad rule ");
		else {
			ASSERT(rules_count(r) == 1);
			evaluate(r, "/x", 2, s, size);
		}
		rules_free(r);
		text = rules_body_text(j, &tlen);
		ASSERT(text != NULL && strlen(text) == tlen);
		free(text);
		cJSON_Delete(j);
	}
	free(spec);
	free(s);
	return 0;
}
