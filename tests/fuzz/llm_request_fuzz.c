/*
 * Fuzz request inspection and --llm-host specs. The first byte picks a
 * provider; the input up to the first newline is the path (and, as a
 * NUL-terminated copy, an --llm-host spec), the rest the request body.
 * Invariants: a classified call is a POST to a path starting with '/',
 * with a printable model; a rewritten body is the original byte for byte
 * with exactly the stream_options member inserted after the opening brace
 * (and it parses, that member first); a refused spec gives one line
 * naming --llm-host and adds nothing, an accepted one adds one provider
 * first and leaves the built-in hosts matched.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "builtin/addr.h"
#include "builtin/llm.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define OPT	"\"stream_options\":{\"include_usage\":true},"

static const struct llm_provider provs[] = {
	{ "anthropic", "api.anthropic.com", LLM_ANTHROPIC, LLM_ADD_ALWAYS },
	{ "openai", "api.openai.com", LLM_OPENAI, LLM_ADD_ALWAYS },
	{ "google", "generativelanguage.googleapis.com", LLM_GOOGLE,
	    LLM_ADD_ALWAYS },
	{ "azure", "*.openai.azure.com", LLM_OPENAI, LLM_ADD_AZURE },
	{ "groq", "api.groq.com", LLM_OPENAI, LLM_ADD_NEVER },
};
static const char *const methods[] = { "POST", "GET", "post" };

static void
check_model(const char *m)
{
	size_t	i, n = strlen(m);

	ASSERT(n < LLM_MODEL_MAX);
	for (i = 0; i < n; i++)
		ASSERT(m[i] >= 0x20 && m[i] <= 0x7e);
}

static void
check_rewrite(const uint8_t *body, size_t len, const char *out,
    size_t outlen)
{
	const uint8_t	*brace = memchr(body, '{', len);
	size_t		 i, n = strlen(OPT);
	cJSON		*b, *so;

	/* Byte for byte the original, the member after the first brace. */
	ASSERT(brace != NULL && outlen == len + n);
	i = (size_t)(brace - body) + 1;
	ASSERT(memcmp(out, body, i) == 0 && memcmp(out + i, OPT, n) == 0 &&
	    memcmp(out + i + n, body + i, len - i) == 0);
	b = cJSON_ParseWithLength(out, outlen);
	ASSERT(b != NULL && cJSON_IsObject(b));
	so = b->child;
	ASSERT(so != NULL && so->string != NULL &&
	    strcmp(so->string, "stream_options") == 0 &&
	    cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(so,
	    "include_usage")));
	cJSON_Delete(b);
}

static void
spec(const uint8_t *p, size_t n)
{
	struct llm_registry		*r = llm_registry_new();
	const struct llm_provider	*pv;
	char				*s = xcalloc(n + 1, 1), err[256];
	struct dest			 d;
	size_t				 before = llm_registry_count(r);

	memcpy(s, p, n);
	err[0] = '\0';
	if (llm_registry_add(r, s, err, sizeof err) != 0) {
		ASSERT(strncmp(err, "bad --llm-host '", 16) == 0);
		ASSERT(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL);
		ASSERT(llm_registry_count(r) == before);
	} else {
		ASSERT(llm_registry_count(r) == before + 1);
		pv = llm_registry_get(r, 0);
		ASSERT(pv != NULL && pv->name != NULL &&
		    pv->format != LLM_FMT_NONE);
		/* The built-in hosts still match something. */
		ASSERT(addr_parse_authority("api.x.ai", 8, 443, &d) == 0);
		ASSERT(llm_registry_match(r, &d) != NULL);
	}
	free(s);
	llm_registry_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct llm_request	 rq;
	const struct llm_provider *pv;
	const char		*method;
	const uint8_t		*nl;
	uint8_t			*path, *body;
	size_t			 plen, blen, outlen;
	char			*out;
	int			 rc;

	if (size < 1 || size > LLM_REQUEST_BODY_MAX)
		return 0;
	pv = &provs[data[0] % 5];
	method = methods[(data[0] >> 4) % 3];
	data++;
	size--;
	nl = memchr(data, '\n', size);
	plen = nl != NULL ? (size_t)(nl - data) : size;
	blen = nl != NULL ? size - plen - 1 : 0;

	path = xcalloc(plen ? plen : 1, 1);
	memcpy(path, data, plen);
	body = xcalloc(blen ? blen : 1, 1);
	if (blen > 0)
		memcpy(body, nl + 1, blen);

	if (plen <= 300)
		spec(path, plen);

	if (!llm_request_classify(pv, method, strlen(method), (char *)path,
	    plen, &rq)) {
		ASSERT(rq.provider == NULL && rq.model[0] == '\0');
		goto out;
	}
	ASSERT(strcmp(method, "POST") == 0 && plen > 0 && path[0] == '/');
	ASSERT(rq.provider == pv && rq.format != LLM_FMT_NONE &&
	    rq.endpoint != LLM_EP_NONE);
	ASSERT(!rq.may_add_usage || (rq.format == LLM_OPENAI &&
	    pv->add_usage != LLM_ADD_NEVER));
	check_model(rq.model);

	rc = llm_request_body(&rq, body, blen, &out, &outlen);
	ASSERT(rc == LLM_OK || rc == LLM_E_JSON);
	ASSERT(rq.body_len == blen && rq.body_read == (rc == LLM_OK));
	check_model(rq.model);
	if (out != NULL) {
		ASSERT(rc == LLM_OK && rq.usage_added && rq.stream &&
		    rq.may_add_usage);
		check_rewrite(body, blen, out, outlen);
		free(out);
	} else
		ASSERT(!rq.usage_added && outlen == 0);
 out:
	free(path);
	free(body);
	return 0;
}
