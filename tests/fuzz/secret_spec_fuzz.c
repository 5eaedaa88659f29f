/*
 * --secret specs: the input, split at newlines, is handed to secrets_new()
 * with a fixed environment. Invariants: an error is one line starting with
 * "bad --secret '" (or the placeholder failure) and never holds a value —
 * the specs are run a second time with every inline value replaced by a
 * canary that must not show; a success gives one binding per spec with a
 * well-formed placeholder (marker, length class, no value inside), a
 * canonical host that re-parses to itself, a header line ending the only
 * CRLF, and a child environment free of every bound value.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/secrets.h"
#include "common/strlist.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define NSPEC	8
#define CANARY	"VALUECANARY"

static char *const env[] = {
	"TOKEN=ENVCANARY-token-0123456789abcdefghijklmnopqrstuvwxyz",
	"API_KEY=sk-ant-api03-ENVCANARY0123456789abcdefghijklmnopq",
	"SHORTV=ENVCANARYs",
	"EMPTY=",
	"CTRL=ENVCANARY\r\n",
	"COPY=sk-ant-api03-ENVCANARY0123456789abcdefghijklmnopq",
	"PATH=/usr/bin",
	NULL,
};

/* orig: the specs as fuzzed, before any canary went in. */
static void
check_err(const char *err, char **orig, size_t n)
{
	size_t	i;
	bool	named = false;

	ASSERT(err[0] != '\0');
	ASSERT(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
	ASSERT(strncmp(err, "bad --secret", 12) == 0 ||
	    strncmp(err, "cannot make", 11) == 0);
	for (i = 0; i < n; i++)
		if (strstr(orig[i], "CANARY") != NULL)
			named = true;
	/* A canary may show only when a spec spells one itself. */
	if (!named)
		ASSERT(strstr(err, "CANARY") == NULL);
}

static bool
alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* [A-Za-z0-9_-]{0,16} SECRETS_MARKER [A-Za-z0-9]* */
static bool
shaped(const char *ph)
{
	size_t	k, i;

	for (k = 0; k <= 16 && ph[k] != '\0'; k++) {
		if (strncmp(ph + k, SECRETS_MARKER, 9) == 0) {
			for (i = k + 9; alnum(ph[i]); i++)
				;
			if (ph[i] == '\0')
				return true;
		}
		if (!alnum(ph[k]) && ph[k] != '-' && ph[k] != '_')
			return false;
	}
	return false;
}

/* The inline value of a spec, by the grammar: '=' before any ':', up to
 * the last ':'. */
static bool
inline_value(const char *s, const char **v, size_t *len)
{
	const char	*eq = strchr(s, '='), *c1 = strchr(s, ':'), *c2;

	if (eq == NULL || (c1 != NULL && c1 < eq))
		return false;
	if ((c2 = strrchr(eq + 1, ':')) == NULL)
		return false;
	*v = eq + 1;
	*len = (size_t)(c2 - eq - 1);
	return true;
}

static void
check_ok(struct secrets *s, char **specs, size_t n)
{
	struct strlist	 ce;
	struct secrets	*again;
	struct dest	 d;
	const char	*ph, *host, *v;
	char		*line, spec[600], err[512];
	size_t		 i, j, len, vlen, plen;

	ASSERT(secrets_count(s) == n);
	memset(&ce, 0, sizeof ce);
	secrets_child_env(s, &ce);
	ASSERT(ce.n >= n);
	for (i = 0; i < n; i++) {
		ph = secrets_placeholder(s, i);
		plen = strlen(ph);
		ASSERT(plen >= SECRETS_PH_MIN);
		ASSERT(shaped(ph));
		ASSERT(strncmp(ce.v[i], secrets_name(s, i),
		    strlen(secrets_name(s, i))) == 0);
		line = secrets_header_line(s, i, &len);
		ASSERT(line != NULL && len == strlen(line));
		ASSERT(len >= 2 && memcmp(line + len - 2, "\r\n", 2) == 0);
		ASSERT(memchr(line, '\n', len - 1) == NULL);
		ASSERT(memchr(line, '\r', len - 2) == NULL);
		vlen = len - strlen(secrets_header_name(s, i)) - 4 -
		    (secrets_header(s, i) == NULL ? 7 : 0);
		ASSERT(plen == (vlen > SECRETS_PH_MIN ? vlen :
		    SECRETS_PH_MIN));
		v = line + len - 2 - vlen;
		ASSERT(memmem(ph, plen, v, vlen) == NULL);
		/* No child variable holds a value (short ones: not whole). */
		for (j = 0; j < ce.n; j++) {
			const char *cv = strchr(ce.v[j], '=');
			ASSERT(cv != NULL);
			cv++;
			ASSERT(vlen >= 8 ? memmem(cv, strlen(cv), v, vlen) ==
			    NULL : (strlen(cv) != vlen || memcmp(cv, v,
			    vlen) != 0));
		}
		/* The canonical host is a fixed point. */
		host = secrets_host(s, i);
		snprintf(spec, sizeof spec, "K=v:%s", host);
		again = secrets_new((char *[]){ spec }, 1, NULL, err,
		    sizeof err);
		ASSERT(again != NULL);
		ASSERT(strcmp(secrets_host(again, 0), host) == 0);
		secrets_free(again);
		if (host[0] == '*')
			host += 2;
		ASSERT(addr_parse_host(host, strlen(host), &d) == ADDR_OK);
		d.port = 443;
		ASSERT(secrets_applies(s, i, &d));
		freezero(line, len);
	}
	(void)specs;
	strlist_clear(&ce);
}

static size_t
split(const uint8_t *data, size_t size, char **specs)
{
	size_t	n = 0, i, from = 0;

	for (i = 0; i <= size && n < NSPEC; i++) {
		if (i == size || data[i] == '\n') {
			specs[n] = xcalloc(i - from + 1, 1);
			memcpy(specs[n], data + from, i - from);
			n++;
			from = i + 1;
		}
	}
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct secrets	*s;
	char		*specs[NSPEC], *masked[NSPEC], err[512];
	const char	*v;
	size_t		 n, i, vlen;

	if (size > 4096)
		return 0;
	n = split(data, size, specs);

	memset(err, 0, sizeof err);
	if ((s = secrets_new(specs, n, env, err, sizeof err)) == NULL)
		check_err(err, specs, n);
	else
		check_ok(s, specs, n);
	secrets_free(s);

	/* Again with each inline value a canary that must never show. */
	for (i = 0; i < n; i++) {
		if (inline_value(specs[i], &v, &vlen) && vlen > 0)
			masked[i] = xprintf("%.*s" CANARY "@%zu%s",
			    (int)(v - specs[i]), specs[i], i, v + vlen);
		else
			masked[i] = xstrdup(specs[i]);
	}
	memset(err, 0, sizeof err);
	if ((s = secrets_new(masked, n, env, err, sizeof err)) == NULL)
		check_err(err, specs, n);
	else
		check_ok(s, masked, n);
	secrets_free(s);
	for (i = 0; i < n; i++) {
		free(specs[i]);
		free(masked[i]);
	}
	return 0;
}
