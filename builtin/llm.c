/*
 * LLM accounting, the pure half (llm.h): the host registry (one single-
 * pattern policy per host, as secrets.c does), request classification and
 * the stream_options rewrite, usage extraction per wire format with cJSON,
 * run totals and budgets, 429 bodies and the exit summary. The proxy feeds
 * it; sse.c cuts streams into events.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "builtin/addr.h"
#include "builtin/llm.h"
#include "builtin/policy.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define SPEC_SHOW	64	/* bytes of a --llm-host spec in an error */
#define JSON_INT_MAX	9007199254740992.0	/* 2^53: exact in a double */
#define TEXT_DEPTH	32	/* the estimate's walk goes no deeper */
#define MODEL_SHOW	40	/* model names in the summary are cut here */
#define AZURE_USAGE_API	"2024-09-01"	/* first api-version with
					   stream_options */
#define USAGE_OPTION	"\"stream_options\":{\"include_usage\":true},"

/* struct llm_response.seen */
#define SEEN_INPUT	0x01	/* an input count came */
#define SEEN_OUTPUT	0x02	/* an output count came */
#define SEEN_FINAL	0x04	/* the final usage report came */

/* -------------------------------------------------------------------------
 * Registry
 */

struct entry {
	struct llm_provider	 p;
	struct policy		*policy;	/* "allow <pattern>" */
	char			*name;		/* owned, --llm-host only */
};

struct llm_registry {
	struct entry	*e;
	size_t		 n;
	size_t		 nadded;	/* --llm-host entries, first */
};

static const struct llm_provider builtin[] = {
	{ "anthropic", "api.anthropic.com", LLM_ANTHROPIC, LLM_ADD_ALWAYS },
	{ "openai", "api.openai.com", LLM_OPENAI, LLM_ADD_ALWAYS },
	{ "google", "generativelanguage.googleapis.com", LLM_GOOGLE,
	    LLM_ADD_ALWAYS },
	{ "mistral", "api.mistral.ai", LLM_OPENAI, LLM_ADD_NEVER },
	{ "groq", "api.groq.com", LLM_OPENAI, LLM_ADD_NEVER },
	{ "deepseek", "api.deepseek.com", LLM_OPENAI, LLM_ADD_ALWAYS },
	{ "xai", "api.x.ai", LLM_OPENAI, LLM_ADD_ALWAYS },
	{ "openrouter", "openrouter.ai", LLM_OPENAI, LLM_ADD_NEVER },
	{ "together", "api.together.xyz", LLM_OPENAI, LLM_ADD_NEVER },
	{ "fireworks", "api.fireworks.ai", LLM_OPENAI, LLM_ADD_NEVER },
	{ "azure", "*.openai.azure.com", LLM_OPENAI, LLM_ADD_AZURE },
};
#define NBUILTIN	(sizeof builtin / sizeof builtin[0])

const char *
llm_format_name(enum llm_format f)
{
	switch (f) {
	case LLM_ANTHROPIC:
		return "anthropic";
	case LLM_OPENAI:
		return "openai";
	case LLM_GOOGLE:
		return "google";
	default:
		return "none";
	}
}

static enum llm_format
format_parse(const char *s, size_t len)
{
	static const enum llm_format all[] = { LLM_ANTHROPIC, LLM_OPENAI,
	    LLM_GOOGLE };
	size_t	i;

	for (i = 0; i < sizeof all / sizeof all[0]; i++)
		if (strlen(llm_format_name(all[i])) == len &&
		    strncasecmp(s, llm_format_name(all[i]), len) == 0)
			return all[i];
	return LLM_FMT_NONE;
}

struct llm_registry *
llm_registry_new(void)
{
	struct llm_registry	*r = xcalloc(1, sizeof *r);
	char			 err[256];
	size_t			 i;

	r->e = xcalloc(NBUILTIN, sizeof *r->e);
	for (i = 0; i < NBUILTIN; i++) {
		r->e[i].p = builtin[i];
		r->e[i].policy = policy_new();
		if (policy_allow(r->e[i].policy, builtin[i].pattern, err,
		    sizeof err) != 0)
			fatal("llm: built-in host: %s", err);
	}
	r->n = NBUILTIN;
	return r;
}

void
llm_registry_free(struct llm_registry *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++) {
		policy_free(r->e[i].policy);
		free(r->e[i].name);
	}
	free(r->e);
	free(r);
}

static bool
all_alpha(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if ((s[i] < 'a' || s[i] > 'z') && (s[i] < 'A' || s[i] > 'Z'))
			return false;
	return len > 0;
}

/* "'spec'" for errors: cut, control bytes as '?'. */
static void
spec_show(const char *spec, char *out, size_t outlen)
{
	size_t	i, n = strlen(spec), o = 0;

	for (i = 0; i < n && i < SPEC_SHOW && o + 4 < outlen; i++)
		out[o++] = (unsigned char)spec[i] < 0x20 ||
		    (unsigned char)spec[i] >= 0x7f ? '?' : spec[i];
	if (i < n && o + 4 < outlen) {
		out[o++] = '.';
		out[o++] = '.';
		out[o++] = '.';
	}
	out[o] = '\0';
}

int
llm_registry_add(struct llm_registry *r, const char *spec, char *err,
    size_t errlen)
{
	struct entry	*e;
	struct policy	*pol;
	enum llm_format	 fmt = LLM_OPENAI;
	const char	*colon, *suffix;
	char		 show[SPEC_SHOW + 8], msg[256], *host;
	size_t		 hostlen, slen, i;

	if (spec == NULL)
		spec = "";
	spec_show(spec, show, sizeof show);
	hostlen = strlen(spec);
	if ((colon = strrchr(spec, ':')) != NULL) {
		suffix = colon + 1;
		slen = strlen(suffix);
		if ((fmt = format_parse(suffix, slen)) != LLM_FMT_NONE)
			hostlen = (size_t)(colon - spec);
		else if (all_alpha(suffix, slen) && (memchr(spec, ':',
		    (size_t)(colon - spec)) == NULL ||
		    (colon > spec && colon[-1] == ']'))) {
			snprintf(err, errlen, "bad --llm-host '%s': unknown "
			    "format '%.*s': use anthropic, openai or google",
			    show, (int)(slen > 16 ? 16 : slen), suffix);
			return -1;
		} else
			fmt = LLM_OPENAI;
	}
	if (hostlen == 0) {
		snprintf(err, errlen, "bad --llm-host '%s': no host: use "
		    "HOST[:anthropic|openai|google]", show);
		return -1;
	}
	host = xstrndup(spec, hostlen);
	pol = policy_new();
	if (policy_allow(pol, host, msg, sizeof msg) != 0) {
		snprintf(err, errlen, "bad --llm-host '%s': %s", show, msg);
		policy_free(pol);
		free(host);
		return -1;
	}
	/* The name is what the user wrote, in lower case, for labels. */
	for (i = 0; host[i] != '\0'; i++)
		if (host[i] >= 'A' && host[i] <= 'Z')
			host[i] = (char)(host[i] - 'A' + 'a');
	if (hostlen > 1 && host[hostlen - 1] == '.')
		host[hostlen - 1] = '\0';

	r->e = xreallocarray(r->e, r->n + 1, sizeof *r->e);
	memmove(&r->e[r->nadded + 1], &r->e[r->nadded],
	    (r->n - r->nadded) * sizeof *r->e);
	e = &r->e[r->nadded];
	memset(e, 0, sizeof *e);
	e->name = host;
	e->policy = pol;
	e->p.name = host;
	e->p.pattern = host;
	e->p.format = fmt;
	e->p.add_usage = LLM_ADD_ALWAYS;
	r->nadded++;
	r->n++;
	return 0;
}

const struct llm_provider *
llm_registry_match(const struct llm_registry *r, const struct dest *d)
{
	struct verdict	v;
	size_t		i;

	if (r == NULL || d == NULL)
		return NULL;
	for (i = 0; i < r->n; i++) {
		/* One allow pattern and no deny: allowed means matched. */
		policy_check_dest(r->e[i].policy, d, &v);
		if (v.allow)
			return &r->e[i].p;
	}
	return NULL;
}

size_t
llm_registry_count(const struct llm_registry *r)
{
	return r->n;
}

const struct llm_provider *
llm_registry_get(const struct llm_registry *r, size_t i)
{
	return i < r->n ? &r->e[i].p : NULL;
}

/* -------------------------------------------------------------------------
 * JSON helpers
 */

static bool
json_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A whole JSON text (a UTF-8 BOM and whitespace around it allowed). */
static cJSON *
json_parse(const void *p, size_t len)
{
	const char	*end = NULL;
	cJSON		*j;
	size_t		 off;

	if (len == 0)
		return NULL;
	j = cJSON_ParseWithLengthOpts(p, len, &end, 0);
	if (j == NULL)
		return NULL;
	if (end == NULL || end < (const char *)p ||
	    end > (const char *)p + len) {
		cJSON_Delete(j);
		return NULL;
	}
	for (off = (size_t)(end - (const char *)p); off < len; off++)
		if (!json_ws(((const uint8_t *)p)[off])) {
			cJSON_Delete(j);
			return NULL;
		}
	return j;
}

/* The last member named key: duplicates resolve as most servers do. */
static const cJSON *
json_get(const cJSON *obj, const char *key)
{
	const cJSON	*c, *found = NULL;

	if (!cJSON_IsObject(obj))
		return NULL;
	for (c = obj->child; c != NULL; c = c->next)
		if (c->string != NULL && strcmp(c->string, key) == 0)
			found = c;
	return found;
}

/* A token count: an integral number in [0, 2^53]. */
static bool
json_count(const cJSON *obj, const char *key, uint64_t *out)
{
	const cJSON	*j = json_get(obj, key);
	double		 v;

	if (!cJSON_IsNumber(j))
		return false;
	v = j->valuedouble;
	if (!isfinite(v) || v < 0 || v > JSON_INT_MAX || v != floor(v))
		return false;
	*out = (uint64_t)v;
	return true;
}

static bool
json_str_eq(const cJSON *j, const char *s)
{
	return cJSON_IsString(j) && j->valuestring != NULL &&
	    strcmp(j->valuestring, s) == 0;
}

/* An "error" member that holds something. */
static bool
json_has_error(const cJSON *obj)
{
	const cJSON	*e = json_get(obj, "error");

	return e != NULL && !cJSON_IsNull(e) && !cJSON_IsFalse(e);
}

/* Bytes of generated text in a chunk or body, for the estimate. */
static uint64_t
text_len(const cJSON *j, int depth)
{
	static const char *const keys[] = { "text", "content", "thinking",
	    "partial_json", "arguments", "reasoning_content", "reasoning",
	    "refusal", "delta" };
	const cJSON	*c;
	uint64_t	 n = 0;
	size_t		 i;

	if (depth > TEXT_DEPTH)
		return 0;
	for (c = j->child; c != NULL; c = c->next) {
		if (cJSON_IsString(c)) {
			if (c->string == NULL || c->valuestring == NULL)
				continue;
			for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
				if (strcmp(c->string, keys[i]) == 0) {
					n += strlen(c->valuestring);
					break;
				}
		} else if (cJSON_IsObject(c) || cJSON_IsArray(c))
			n += text_len(c, depth + 1);
	}
	return n;
}

/* -------------------------------------------------------------------------
 * Requests
 */

static bool
ends_with(const char *p, size_t len, const char *suffix)
{
	size_t	n = strlen(suffix);

	return len >= n && memcmp(p + len - n, suffix, n) == 0;
}

/* Printable ASCII (others '?'), cut to fit. */
static void
model_set(char *dst, const char *src, size_t len)
{
	size_t	i;

	if (len > LLM_MODEL_MAX - 1)
		len = LLM_MODEL_MAX - 1;
	for (i = 0; i < len; i++)
		dst[i] = (unsigned char)src[i] < 0x20 ||
		    (unsigned char)src[i] > 0x7e ? '?' : src[i];
	dst[len] = '\0';
}

/* The value of query parameter name, as sent (not decoded). */
static bool
query_param(const char *q, size_t qlen, const char *name, const char **v,
    size_t *vlen)
{
	size_t	 nl = strlen(name), i = 0, j;

	while (i < qlen) {
		for (j = i; j < qlen && q[j] != '&'; j++)
			;
		if (j - i > nl && memcmp(q + i, name, nl) == 0 &&
		    q[i + nl] == '=') {
			*v = q + i + nl + 1;
			*vlen = j - i - nl - 1;
			return true;
		}
		i = j + 1;
	}
	return false;
}

/* Azure takes stream_options from api-version 2024-09-01 (and in its
 * version-less /openai/v1/ API). */
static bool
azure_usage_ok(const char *path, size_t plen, const char *q, size_t qlen)
{
	const char	*v;
	size_t		 vlen, n = strlen(AZURE_USAGE_API);

	if (plen >= 11 && memcmp(path, "/openai/v1/", 11) == 0)
		return true;
	if (!query_param(q, qlen, "api-version", &v, &vlen) || vlen < n)
		return false;
	return memcmp(v, AZURE_USAGE_API, n) >= 0;
}

/* Azure's /openai/deployments/NAME/...: NAME stands in for the model. */
static void
azure_deployment(const char *path, size_t plen, struct llm_request *req)
{
	const char	*pre = "/openai/deployments/", *name, *end;
	size_t		 n = strlen(pre);

	if (plen <= n || memcmp(path, pre, n) != 0)
		return;
	name = path + n;
	if ((end = memchr(name, '/', plen - n)) == NULL || end == name)
		return;
	model_set(req->model, name, (size_t)(end - name));
}

/* .../NAME:generateContent or .../NAME:streamGenerateContent. */
static bool
google_path(const char *path, size_t plen, struct llm_request *req)
{
	const char	*seg, *colon, *m;
	size_t		 i, slen, mlen;

	for (i = plen; i > 0 && path[i - 1] != '/'; i--)
		;
	if (i == 0)
		return false;
	seg = path + i;
	slen = plen - i;
	if ((colon = memchr(seg, ':', slen)) == NULL || colon == seg)
		return false;
	m = colon + 1;
	mlen = slen - (size_t)(m - seg);
	if (mlen == 15 && memcmp(m, "generateContent", 15) == 0)
		req->stream = false;
	else if (mlen == 21 && memcmp(m, "streamGenerateContent", 21) == 0)
		req->stream = true;
	else
		return false;
	model_set(req->model, seg, (size_t)(colon - seg));
	return true;
}

bool
llm_request_classify(const struct llm_provider *prov, const char *method,
    size_t methodlen, const char *path, size_t pathlen,
    struct llm_request *req)
{
	const char	*q;
	size_t		 plen, qlen = 0;

	memset(req, 0, sizeof *req);
	if (prov == NULL || method == NULL || path == NULL)
		return false;
	if (methodlen != 4 || memcmp(method, "POST", 4) != 0)
		return false;
	if (pathlen == 0 || path[0] != '/')
		return false;
	plen = pathlen;
	q = memchr(path, '?', pathlen);
	if (q != NULL) {
		plen = (size_t)(q - path);
		q++;
		qlen = pathlen - plen - 1;
	} else
		q = path + pathlen;

	if (ends_with(path, plen, "/v1/messages")) {
		req->format = LLM_ANTHROPIC;
		req->endpoint = LLM_EP_MESSAGES;
	} else if (ends_with(path, plen, "/chat/completions")) {
		req->format = LLM_OPENAI;
		req->endpoint = LLM_EP_CHAT;
	} else if (ends_with(path, plen, "/completions")) {
		req->format = LLM_OPENAI;
		req->endpoint = LLM_EP_COMPLETIONS;
	} else if (ends_with(path, plen, "/responses")) {
		req->format = LLM_OPENAI;
		req->endpoint = LLM_EP_RESPONSES;
	} else if (ends_with(path, plen, "/embeddings")) {
		req->format = LLM_OPENAI;
		req->endpoint = LLM_EP_EMBEDDINGS;
	} else if (google_path(path, plen, req)) {
		req->format = LLM_GOOGLE;
		req->endpoint = LLM_EP_GENERATE;
	} else {
		memset(req, 0, sizeof *req);
		return false;
	}
	req->provider = prov;
	if (req->format == LLM_OPENAI) {
		if (req->endpoint == LLM_EP_CHAT ||
		    req->endpoint == LLM_EP_COMPLETIONS)
			req->may_add_usage =
			    prov->add_usage == LLM_ADD_ALWAYS ||
			    (prov->add_usage == LLM_ADD_AZURE &&
			    azure_usage_ok(path, plen, q, qlen));
		azure_deployment(path, plen, req);
	}
	return true;
}

int
llm_request_body(struct llm_request *req, const uint8_t *body, size_t len,
    char **out, size_t *outlen)
{
	const cJSON	*m;
	cJSON		*root;
	char		*nb;
	size_t		 i = 0, ins = strlen(USAGE_OPTION);

	if (out != NULL) {
		*out = NULL;
		*outlen = 0;
	}
	req->body_len = len;
	req->usage_added = false;
	req->body_read = false;
	if (len > LLM_REQUEST_BODY_MAX)
		return LLM_E_TOO_LARGE;
	if ((root = json_parse(body, len)) == NULL)
		return LLM_E_JSON;
	if (!cJSON_IsObject(root)) {
		cJSON_Delete(root);
		return LLM_E_JSON;
	}
	req->body_read = true;
	m = json_get(root, "model");
	if (cJSON_IsString(m) && m->valuestring != NULL &&
	    m->valuestring[0] != '\0')
		model_set(req->model, m->valuestring, strlen(m->valuestring));
	if (req->format != LLM_GOOGLE)
		req->stream = cJSON_IsTrue(json_get(root, "stream"));

	if (out != NULL && req->may_add_usage && req->stream &&
	    cJSON_GetObjectItemCaseSensitive(root, "stream_options") == NULL) {
		/* Right after the opening brace; "stream" follows, so the
		 * comma is always right. */
		if (len >= 3 && body[0] == 0xef && body[1] == 0xbb &&
		    body[2] == 0xbf)
			i = 3;
		while (i < len && json_ws(body[i]))
			i++;
		if (i < len && body[i] == '{') {
			i++;
			nb = xcalloc(len + ins + 1, 1);
			memcpy(nb, body, i);
			memcpy(nb + i, USAGE_OPTION, ins);
			memcpy(nb + i + ins, body + i, len - i);
			*out = nb;
			*outlen = len + ins;
			req->usage_added = true;
		}
	}
	cJSON_Delete(root);
	return LLM_OK;
}

/* value without leading and trailing spaces and tabs. */
static void
trim(const char **v, size_t *len)
{
	while (*len > 0 && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*len)--;
	}
	while (*len > 0 && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t'))
		(*len)--;
}

bool
llm_header_drop(const char *name, size_t len)
{
	return name != NULL && len == 15 &&
	    strncasecmp(name, "Accept-Encoding", 15) == 0;
}

bool
llm_encoding_readable(const char *value, size_t len)
{
	if (value == NULL)
		return true;
	trim(&value, &len);
	return len == 0 || (len == 8 && strncasecmp(value, "identity", 8) == 0);
}

bool
llm_is_event_stream(const char *value, size_t len)
{
	const char	*semi;

	if (value == NULL)
		return false;
	if ((semi = memchr(value, ';', len)) != NULL)
		len = (size_t)(semi - value);
	trim(&value, &len);
	return len == 17 && strncasecmp(value, "text/event-stream", 17) == 0;
}

/* -------------------------------------------------------------------------
 * Responses
 */

void
llm_response_init(struct llm_response *rs, const struct llm_request *req,
    int status)
{
	memset(rs, 0, sizeof *rs);
	rs->status = status;
	if (req != NULL) {
		rs->format = req->format;
		rs->strip = req->usage_added;
		rs->req_len = req->body_len;
	}
}

static void
set_input(struct llm_response *rs, const cJSON *o, const char *key)
{
	if (json_count(o, key, &rs->usage.input))
		rs->seen |= SEEN_INPUT;
}

static void
set_output(struct llm_response *rs, const cJSON *o, const char *key)
{
	if (json_count(o, key, &rs->usage.output))
		rs->seen |= SEEN_OUTPUT;
}

static void
anthropic_usage(struct llm_response *rs, const cJSON *u)
{
	if (!cJSON_IsObject(u))
		return;
	set_input(rs, u, "input_tokens");
	set_output(rs, u, "output_tokens");
	json_count(u, "cache_read_input_tokens", &rs->usage.cache_read);
	json_count(u, "cache_creation_input_tokens", &rs->usage.cache_write);
}

/* Chat/completions (prompt_/completion_tokens) and Responses
 * (input_/output_tokens) usage objects. */
static bool
openai_usage(struct llm_response *rs, const cJSON *u)
{
	if (!cJSON_IsObject(u))
		return false;
	set_input(rs, u, "prompt_tokens");
	set_input(rs, u, "input_tokens");
	set_output(rs, u, "completion_tokens");
	set_output(rs, u, "output_tokens");
	if (!json_count(json_get(u, "prompt_tokens_details"), "cached_tokens",
	    &rs->usage.cache_read) &&
	    !json_count(json_get(u, "input_tokens_details"), "cached_tokens",
	    &rs->usage.cache_read))
		json_count(u, "prompt_cache_hit_tokens", &rs->usage.cache_read);
	rs->seen |= SEEN_FINAL;
	return true;
}

static void
google_usage(struct llm_response *rs, const cJSON *obj)
{
	const cJSON	*u = json_get(obj, "usageMetadata");
	uint64_t	 a = 0, b = 0;
	bool		 in, out;

	if (json_has_error(obj))
		rs->error = true;
	if (!cJSON_IsObject(u))
		return;
	in = json_count(u, "promptTokenCount", &a);
	if (json_count(u, "toolUsePromptTokenCount", &b) || in) {
		rs->usage.input = a + b;
		rs->seen |= SEEN_INPUT;
	}
	a = b = 0;
	out = json_count(u, "candidatesTokenCount", &a);
	if (json_count(u, "thoughtsTokenCount", &b) || out) {
		rs->usage.output = a + b;
		rs->seen |= SEEN_OUTPUT;
	}
	json_count(u, "cachedContentTokenCount", &rs->usage.cache_read);
	rs->seen |= SEEN_FINAL;
}

int
llm_response_json(struct llm_response *rs, const uint8_t *body, size_t len)
{
	const cJSON	*c;
	cJSON		*root;
	int		 r;

	if (len > LLM_RESPONSE_BODY_MAX)
		return LLM_E_TOO_LARGE;
	if ((root = json_parse(body, len)) == NULL)
		return LLM_E_JSON;
	if (cJSON_IsObject(root) || cJSON_IsArray(root))
		rs->text_bytes += text_len(root, 0);
	switch (rs->format) {
	case LLM_ANTHROPIC:
		if (json_str_eq(json_get(root, "type"), "error") ||
		    json_has_error(root))
			rs->error = true;
		c = json_get(root, "usage");
		if (cJSON_IsObject(c)) {
			anthropic_usage(rs, c);
			rs->seen |= SEEN_FINAL;
		}
		break;
	case LLM_OPENAI:
		if (json_has_error(root))
			rs->error = true;
		openai_usage(rs, json_get(root, "usage"));
		break;
	case LLM_GOOGLE:
		if (cJSON_IsArray(root)) {
			cJSON_ArrayForEach(c, root)
				google_usage(rs, c);
		} else
			google_usage(rs, root);
		break;
	default:
		break;
	}
	r = cJSON_IsObject(root) || cJSON_IsArray(root) ? LLM_OK :
	    LLM_E_JSON;
	cJSON_Delete(root);
	return r;
}

static void
anthropic_event(struct llm_response *rs, const cJSON *j, const char *type,
    size_t typelen)
{
	const cJSON	*t = json_get(j, "type");
	const char	*name;

	/* The data's own type; the SSE event name when it has none. */
	if (cJSON_IsString(t) && t->valuestring != NULL)
		name = t->valuestring;
	else if (typelen == 13 && memcmp(type, "message_start", 13) == 0)
		name = "message_start";
	else if (typelen == 13 && memcmp(type, "message_delta", 13) == 0)
		name = "message_delta";
	else if (typelen == 5 && memcmp(type, "error", 5) == 0)
		name = "error";
	else
		return;
	if (strcmp(name, "message_start") == 0)
		anthropic_usage(rs, json_get(json_get(j, "message"), "usage"));
	else if (strcmp(name, "message_delta") == 0) {
		if (cJSON_IsObject(json_get(j, "usage"))) {
			anthropic_usage(rs, json_get(j, "usage"));
			rs->seen |= SEEN_FINAL;
		}
	} else if (strcmp(name, "error") == 0)
		rs->error = true;
}

static bool
usage_chunk(const cJSON *j)
{
	const cJSON	*ch = json_get(j, "choices");

	return cJSON_IsObject(j) && cJSON_IsArray(ch) &&
	    cJSON_GetArraySize(ch) == 0 &&
	    cJSON_IsObject(json_get(j, "usage"));
}

static int
openai_event(struct llm_response *rs, const cJSON *j)
{
	const cJSON	*t = json_get(j, "type");

	if (json_has_error(j) || json_str_eq(t, "error") ||
	    json_str_eq(t, "response.failed"))
		rs->error = true;
	/* Responses API: response.completed, .incomplete, .failed. */
	if (cJSON_IsString(t) && t->valuestring != NULL &&
	    strncmp(t->valuestring, "response.", 9) == 0)
		openai_usage(rs, json_get(json_get(j, "response"), "usage"));
	if (!openai_usage(rs, json_get(j, "usage")))
		openai_usage(rs, json_get(json_get(j, "x_groq"), "usage"));
	if (rs->strip && usage_chunk(j))
		return LLM_EVENT_DROP;
	return LLM_EVENT_KEEP;
}

int
llm_response_event(struct llm_response *rs, const char *type,
    size_t typelen, const char *data, size_t datalen)
{
	cJSON	*j;
	int	 r = LLM_EVENT_KEEP;

	if (data == NULL || datalen == 0 || datalen > LLM_RESPONSE_BODY_MAX)
		return LLM_EVENT_KEEP;
	if ((j = json_parse(data, datalen)) == NULL)
		return LLM_EVENT_KEEP;
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return LLM_EVENT_KEEP;
	}
	rs->text_bytes += text_len(j, 0);
	switch (rs->format) {
	case LLM_ANTHROPIC:
		anthropic_event(rs, j, type != NULL ? type : "",
		    type != NULL ? typelen : 0);
		break;
	case LLM_OPENAI:
		r = openai_event(rs, j);
		break;
	case LLM_GOOGLE:
		google_usage(rs, j);
		break;
	default:
		break;
	}
	cJSON_Delete(j);
	return r;
}

bool
llm_openai_usage_chunk(const char *data, size_t len, struct llm_usage *u)
{
	struct llm_response	 rs;
	cJSON			*j;
	bool			 yes;

	if (data == NULL || (j = json_parse(data, len)) == NULL)
		return false;
	yes = usage_chunk(j);
	if (yes && u != NULL) {
		memset(&rs, 0, sizeof rs);
		openai_usage(&rs, json_get(j, "usage"));
		*u = rs.usage;
	}
	cJSON_Delete(j);
	return yes;
}

static uint64_t
quarter(uint64_t bytes)
{
	return bytes / 4 + (bytes % 4 != 0);
}

void
llm_response_finish(struct llm_response *rs, bool complete)
{
	uint64_t	est;
	bool		ok = rs->status == 0 ||
			    (rs->status >= 200 && rs->status <= 299);

	rs->estimated = ok && (!(rs->seen & SEEN_FINAL) || !complete);
	if (!rs->estimated)
		return;
	if (!(rs->seen & SEEN_INPUT))
		rs->usage.input = quarter(rs->req_len);
	est = quarter(rs->text_bytes);
	if (rs->usage.output < est)
		rs->usage.output = est;
}

/* -------------------------------------------------------------------------
 * Run totals and budgets
 */

#define OTHER	"(other)"

struct llm_stats {
	uint64_t	 max_tokens;
	uint64_t	 max_requests;
	uint64_t	 admitted;
	uint64_t	 inflight;
	uint64_t	 tokens;	/* input + output, done calls */
	struct llm_row	*rows;		/* LLM_ROWS_MAX + 1 (OTHER) */
	size_t		 nrows;
	unsigned	 reported;	/* 1 << limit, once tripped */
};

void
llm_stats_set_limits(struct llm_stats *st, uint64_t max_tokens,
    uint64_t max_requests)
{
	st->max_tokens = max_tokens;
	st->max_requests = max_requests;
	st->reported = 0;	/* a new limit trips anew */
}

static uint64_t
sat_add(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

struct llm_stats *
llm_stats_new(uint64_t max_tokens, uint64_t max_requests)
{
	struct llm_stats	*st = xcalloc(1, sizeof *st);

	st->max_tokens = max_tokens;
	st->max_requests = max_requests;
	st->rows = xcalloc(LLM_ROWS_MAX + 1, sizeof *st->rows);
	return st;
}

void
llm_stats_free(struct llm_stats *st)
{
	size_t	i;

	if (st == NULL)
		return;
	for (i = 0; i < st->nrows; i++) {
		free((char *)st->rows[i].provider);
		free((char *)st->rows[i].model);
	}
	free(st->rows);
	free(st);
}

static struct llm_row *
row_of(struct llm_stats *st, const char *provider, const char *model)
{
	struct llm_row	*r;
	size_t		 i;

	if (provider == NULL || provider[0] == '\0')
		provider = "-";
	if (model == NULL || model[0] == '\0')
		model = "-";
	for (i = 0; i < st->nrows; i++) {
		r = &st->rows[i];
		if (strcmp(r->provider, provider) == 0 &&
		    strcmp(r->model, model) == 0)
			return r;
	}
	if (st->nrows >= LLM_ROWS_MAX) {
		/* Models are named by the client: their number is not ours
		 * to bound, the table's is. */
		for (i = 0; i < st->nrows; i++)
			if (strcmp(st->rows[i].provider, OTHER) == 0)
				return &st->rows[i];
		provider = model = OTHER;
	}
	r = &st->rows[st->nrows++];
	memset(r, 0, sizeof *r);
	r->provider = xstrdup(provider);
	r->model = xstrdup(model);
	return r;
}

enum llm_limit
llm_stats_exhausted(const struct llm_stats *st)
{
	if (st->max_tokens > 0 && st->tokens >= st->max_tokens)
		return LLM_LIMIT_TOKENS;
	if (st->max_requests > 0 && st->admitted >= st->max_requests)
		return LLM_LIMIT_REQUESTS;
	return LLM_LIMIT_NONE;
}

enum llm_limit
llm_stats_admit(struct llm_stats *st, const char *provider,
    const char *model)
{
	struct llm_row	*r = row_of(st, provider, model);
	enum llm_limit	 lim;

	if ((lim = llm_stats_exhausted(st)) != LLM_LIMIT_NONE) {
		r->refused++;
		return lim;
	}
	st->admitted++;
	st->inflight++;
	r->requests++;
	return LLM_LIMIT_NONE;
}

void
llm_stats_done(struct llm_stats *st, const char *provider,
    const char *model, const struct llm_usage *u, bool error,
    bool estimated, uint64_t ms)
{
	struct llm_row	*r = row_of(st, provider, model);

	if (st->inflight > 0)
		st->inflight--;
	if (error)
		r->errors++;
	if (estimated)
		r->estimated++;
	r->ms = sat_add(r->ms, ms);
	if (u == NULL)
		return;
	r->usage.input = sat_add(r->usage.input, u->input);
	r->usage.output = sat_add(r->usage.output, u->output);
	r->usage.cache_read = sat_add(r->usage.cache_read, u->cache_read);
	r->usage.cache_write = sat_add(r->usage.cache_write, u->cache_write);
	st->tokens = sat_add(st->tokens, sat_add(u->input, u->output));
}

enum llm_limit
llm_stats_tripped(struct llm_stats *st)
{
	if (st->max_tokens > 0 && st->tokens >= st->max_tokens &&
	    !(st->reported & (1u << LLM_LIMIT_TOKENS))) {
		st->reported |= 1u << LLM_LIMIT_TOKENS;
		return LLM_LIMIT_TOKENS;
	}
	if (st->max_requests > 0 && st->admitted >= st->max_requests &&
	    !(st->reported & (1u << LLM_LIMIT_REQUESTS))) {
		st->reported |= 1u << LLM_LIMIT_REQUESTS;
		return LLM_LIMIT_REQUESTS;
	}
	return LLM_LIMIT_NONE;
}

void
llm_stats_describe(const struct llm_stats *st, enum llm_limit lim,
    char *buf, size_t len)
{
	if (len == 0)
		return;
	switch (lim) {
	case LLM_LIMIT_TOKENS:
		snprintf(buf, len, "egress-run: LLM token budget exhausted: "
		    "%llu tokens used of --llm-budget %llu; new LLM requests "
		    "are refused", (unsigned long long)st->tokens,
		    (unsigned long long)st->max_tokens);
		break;
	case LLM_LIMIT_REQUESTS:
		snprintf(buf, len, "egress-run: LLM request limit reached: "
		    "%llu requests made of --llm-max-requests %llu; new LLM "
		    "requests are refused", (unsigned long long)st->admitted,
		    (unsigned long long)st->max_requests);
		break;
	default:
		snprintf(buf, len, "egress-run: no LLM limit reached");
		break;
	}
}

uint64_t
llm_stats_tokens(const struct llm_stats *st)
{
	return st->tokens;
}

uint64_t
llm_stats_inflight(const struct llm_stats *st)
{
	return st->inflight;
}

size_t
llm_stats_rows(const struct llm_stats *st)
{
	return st->nrows;
}

const struct llm_row *
llm_stats_row(const struct llm_stats *st, size_t i)
{
	return i < st->nrows ? &st->rows[i] : NULL;
}

void
llm_stats_total(const struct llm_stats *st, struct llm_row *t)
{
	const struct llm_row	*r;
	size_t			 i;

	memset(t, 0, sizeof *t);
	t->provider = "total";
	t->model = "total";
	for (i = 0; i < st->nrows; i++) {
		r = &st->rows[i];
		t->requests = sat_add(t->requests, r->requests);
		t->errors = sat_add(t->errors, r->errors);
		t->refused = sat_add(t->refused, r->refused);
		t->estimated = sat_add(t->estimated, r->estimated);
		t->usage.input = sat_add(t->usage.input, r->usage.input);
		t->usage.output = sat_add(t->usage.output, r->usage.output);
		t->usage.cache_read = sat_add(t->usage.cache_read,
		    r->usage.cache_read);
		t->usage.cache_write = sat_add(t->usage.cache_write,
		    r->usage.cache_write);
		t->ms = sat_add(t->ms, r->ms);
	}
}

/* A growing string. */
struct text {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static void
text_add(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
text_add(struct text *t, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			fatal("llm: summary: vsnprintf failed");
		if ((size_t)n < t->cap - t->len) {
			t->len += (size_t)n;
			return;
		}
		t->cap = (t->len + (size_t)n + 1) * 2;
		t->p = xreallocarray(t->p, t->cap, 1);
	}
}

#define NCOLS	9

/* The cells of one row, as text. */
static void
cells(const struct llm_row *r, char c[NCOLS][48])
{
	snprintf(c[0], 48, "%.40s", r->provider);
	snprintf(c[1], 48, "%.*s", MODEL_SHOW, r->model);
	snprintf(c[2], 48, "%llu", (unsigned long long)r->requests);
	snprintf(c[3], 48, "%llu", (unsigned long long)r->errors);
	snprintf(c[4], 48, "%llu", (unsigned long long)r->usage.input);
	snprintf(c[5], 48, "%llu", (unsigned long long)r->usage.output);
	snprintf(c[6], 48, "%llu", (unsigned long long)r->usage.cache_read);
	snprintf(c[7], 48, "%llu", (unsigned long long)r->usage.cache_write);
	snprintf(c[8], 48, "%llu.%llus", (unsigned long long)(r->ms / 1000),
	    (unsigned long long)(r->ms % 1000 / 100));
}

static int
row_cmp(const void *a, const void *b)
{
	const struct llm_row	*x = *(const struct llm_row *const *)a;
	const struct llm_row	*y = *(const struct llm_row *const *)b;
	int			 c;

	if ((c = strcmp(x->provider, y->provider)) != 0)
		return c;
	return strcmp(x->model, y->model);
}

static void
line_add(struct text *t, char c[NCOLS][48], const size_t *w)
{
	size_t	i;

	for (i = 0; i < NCOLS; i++) {
		if (i < 2)
			text_add(t, "%-*s", (int)w[i], c[i]);
		else
			text_add(t, "%*s", (int)w[i], c[i]);
		text_add(t, "%s", i + 1 < NCOLS ? "  " : "\n");
	}
}

char *
llm_stats_summary(const struct llm_stats *st)
{
	static const char *const head[NCOLS] = { "provider", "model",
	    "requests", "errors", "input", "output", "cache-read",
	    "cache-write", "time" };
	const struct llm_row	**sorted;
	struct llm_row		  total;
	struct text		  t = { NULL, 0, 0 };
	char			  c[NCOLS][48];
	size_t			  w[NCOLS], i, k;

	t.cap = 256;
	t.p = xcalloc(t.cap, 1);
	if (st->nrows == 0)
		return t.p;
	sorted = xcalloc(st->nrows, sizeof *sorted);
	for (i = 0; i < st->nrows; i++)
		sorted[i] = &st->rows[i];
	qsort(sorted, st->nrows, sizeof *sorted, row_cmp);
	llm_stats_total(st, &total);
	total.model = "";

	for (k = 0; k < NCOLS; k++)
		w[k] = strlen(head[k]);
	for (i = 0; i <= st->nrows; i++) {
		cells(i < st->nrows ? sorted[i] : &total, c);
		for (k = 0; k < NCOLS; k++)
			if (strlen(c[k]) > w[k])
				w[k] = strlen(c[k]);
	}
	text_add(&t, "egress-run: LLM usage\n");
	for (k = 0; k < NCOLS; k++)
		snprintf(c[k], sizeof c[k], "%s", head[k]);
	line_add(&t, c, w);
	for (i = 0; i <= st->nrows; i++) {
		cells(i < st->nrows ? sorted[i] : &total, c);
		line_add(&t, c, w);
	}
	if (total.refused > 0)
		text_add(&t, "egress-run: %llu LLM request%s refused by "
		    "--llm-budget or --llm-max-requests\n",
		    (unsigned long long)total.refused,
		    total.refused == 1 ? "" : "s");
	if (total.estimated > 0)
		text_add(&t, "egress-run: %llu response%s reported no usage: "
		    "tokens estimated from bytes\n",
		    (unsigned long long)total.estimated,
		    total.estimated == 1 ? "" : "s");
	free(sorted);
	return t.p;
}

/* -------------------------------------------------------------------------
 * 429 bodies
 */

char *
llm_error_body(enum llm_format fmt, enum llm_limit lim, const char *message,
    size_t *len)
{
	cJSON	*root, *err;
	char	*s, *out;

	if (message == NULL)
		message = "egress-run: LLM limit reached";
	if ((root = cJSON_CreateObject()) == NULL ||
	    (err = cJSON_CreateObject()) == NULL)
		fatal("llm: out of memory");
	switch (fmt) {
	case LLM_ANTHROPIC:
		cJSON_AddStringToObject(root, "type", "error");
		cJSON_AddStringToObject(err, "type", "rate_limit_error");
		cJSON_AddStringToObject(err, "message", message);
		break;
	case LLM_GOOGLE:
		cJSON_AddNumberToObject(err, "code", 429);
		cJSON_AddStringToObject(err, "message", message);
		cJSON_AddStringToObject(err, "status", "RESOURCE_EXHAUSTED");
		break;
	default:
		cJSON_AddStringToObject(err, "message", message);
		cJSON_AddStringToObject(err, "type",
		    lim == LLM_LIMIT_TOKENS ? "insufficient_quota" :
		    "rate_limit_exceeded");
		cJSON_AddNullToObject(err, "param");
		cJSON_AddStringToObject(err, "code",
		    lim == LLM_LIMIT_TOKENS ? "insufficient_quota" :
		    "rate_limit_exceeded");
		break;
	}
	cJSON_AddItemToObject(root, "error", err);
	if ((s = cJSON_PrintUnformatted(root)) == NULL)
		fatal("llm: out of memory");
	cJSON_Delete(root);
	out = xstrdup(s);
	cJSON_free(s);
	*len = strlen(out);
	return out;
}
