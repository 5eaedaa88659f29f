/*
 * llm.c: the host registry and --llm-host specs, which requests are
 * accounted calls (and their model and stream flag), the stream_options
 * rewrite, usage from JSON bodies and from SSE streams fed through sse.c
 * whole and byte by byte, estimates, budgets and their trips, the 429
 * bodies, header helpers and the summary table.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "builtin/addr.h"
#include "builtin/llm.h"
#include "builtin/sse.h"
#include "common/xmalloc.h"
#include "tests/unit/test.h"

static void
dest_of(const char *authority, struct dest *d)
{
	if (addr_parse_authority(authority, strlen(authority), 443, d) != 0) {
		fprintf(stderr, "bad test authority '%s'\n", authority);
		abort();
	}
}

/* ---------------------------------------------------------------- registry */

static const struct {
	const char	*dest;
	const char	*provider;	/* NULL: not an LLM host */
	enum llm_format	 format;
} builtin_hosts[] = {
	{ "api.anthropic.com", "anthropic", LLM_ANTHROPIC },
	{ "API.Anthropic.COM.:443", "anthropic", LLM_ANTHROPIC },
	{ "api.anthropic.com:8443", "anthropic", LLM_ANTHROPIC },
	{ "api.openai.com", "openai", LLM_OPENAI },
	{ "generativelanguage.googleapis.com", "google", LLM_GOOGLE },
	{ "api.mistral.ai", "mistral", LLM_OPENAI },
	{ "api.groq.com", "groq", LLM_OPENAI },
	{ "api.deepseek.com", "deepseek", LLM_OPENAI },
	{ "api.x.ai", "xai", LLM_OPENAI },
	{ "openrouter.ai", "openrouter", LLM_OPENAI },
	{ "api.together.xyz", "together", LLM_OPENAI },
	{ "api.fireworks.ai", "fireworks", LLM_OPENAI },
	{ "myres.openai.azure.com", "azure", LLM_OPENAI },
	{ "a.b.openai.azure.com", "azure", LLM_OPENAI },
	{ "openai.azure.com", "azure", LLM_OPENAI },
	{ "evilopenai.azure.com", NULL, 0 },
	{ "x.api.anthropic.com", NULL, 0 },
	{ "anthropic.com", NULL, 0 },
	{ "api.openai.com.evil.com", NULL, 0 },
	{ "googleapis.com", NULL, 0 },
	{ "example.com", NULL, 0 },
	{ "10.0.0.1", NULL, 0 },
	{ "[::1]:443", NULL, 0 },
};

static void
registry_knows_builtin_hosts_only(void)
{
	struct llm_registry		*r = llm_registry_new();
	const struct llm_provider	*p;
	struct dest			 d;
	size_t				 i;

	CHECK(llm_registry_count(r) == 11, "11 built-in hosts: %zu",
	    llm_registry_count(r));
	for (i = 0; i < sizeof builtin_hosts / sizeof builtin_hosts[0]; i++) {
		dest_of(builtin_hosts[i].dest, &d);
		p = llm_registry_match(r, &d);
		if (builtin_hosts[i].provider == NULL) {
			CHECK(p == NULL, "%s: matched %s",
			    builtin_hosts[i].dest, p ? p->name : "");
			continue;
		}
		CHECK(p != NULL && strcmp(p->name,
		    builtin_hosts[i].provider) == 0 &&
		    p->format == builtin_hosts[i].format, "%s: got %s",
		    builtin_hosts[i].dest, p ? p->name : "(none)");
	}
	CHECK(llm_registry_match(r, NULL) == NULL, "NULL dest");
	CHECK(llm_registry_get(r, 11) == NULL, "past the end");
	llm_registry_free(r);
	llm_registry_free(NULL);
}

static const struct {
	const char	*spec;
	const char	*name;		/* NULL: error */
	enum llm_format	 format;
	const char	*match;		/* a dest it covers */
	const char	*miss;		/* one it does not (or NULL) */
	const char	*err;		/* substring of the error */
} host_specs[] = {
	{ "llm.internal", "llm.internal", LLM_OPENAI, "llm.internal:443",
	    "x.llm.internal", NULL },
	{ "fixture.test:anthropic", "fixture.test", LLM_ANTHROPIC,
	    "fixture.test:8443", "other.test", NULL },
	{ "Fixture.TEST.:ANTHROPIC", "fixture.test", LLM_ANTHROPIC,
	    "fixture.test", NULL, NULL },
	{ "fixture.test:8443:google", "fixture.test:8443", LLM_GOOGLE,
	    "fixture.test:8443", "fixture.test:443", NULL },
	{ "fixture.test:8443", "fixture.test:8443", LLM_OPENAI,
	    "fixture.test:8443", "fixture.test:443", NULL },
	{ "*.corp.example:openai", "*.corp.example", LLM_OPENAI,
	    "llm.corp.example", "corp.example.com", NULL },
	{ "[::1]:8443:anthropic", "[::1]:8443", LLM_ANTHROPIC, "[::1]:8443",
	    "[::1]:443", NULL },
	{ "10.0.0.0/8:google", "10.0.0.0/8", LLM_GOOGLE, "10.1.2.3", NULL,
	    NULL },
	{ "127.0.0.1:8443:openai", "127.0.0.1:8443", LLM_OPENAI,
	    "127.0.0.1:8443", NULL, NULL },
	{ "", NULL, 0, NULL, NULL, "no host" },
	{ ":anthropic", NULL, 0, NULL, NULL, "no host" },
	{ "fixture.test:claude", NULL, 0, NULL, NULL,
	    "unknown format 'claude'" },
	{ "[::1]:foo", NULL, 0, NULL, NULL, "unknown format 'foo'" },
	{ "fixture.test:", NULL, 0, NULL, NULL, "'fixture.test:'" },
	{ "bad host!:openai", NULL, 0, NULL, NULL, "'bad host!:openai'" },
	{ "x.test:99999", NULL, 0, NULL, NULL, "'x.test:99999'" },
	{ "x.test:8443:anthropic:openai", NULL, 0, NULL, NULL,
	    "'x.test:8443:anthropic:openai'" },
	{ "a\nb:openai", NULL, 0, NULL, NULL, "'a?b:openai'" },
};

static void
llm_host_specs_parse_or_name_the_spec(void)
{
	const struct llm_provider	*p;
	struct llm_registry		*r;
	struct dest			 d;
	char				 err[256];
	size_t				 i;
	int				 rc;

	for (i = 0; i < sizeof host_specs / sizeof host_specs[0]; i++) {
		r = llm_registry_new();
		err[0] = '\0';
		rc = llm_registry_add(r, host_specs[i].spec, err, sizeof err);
		if (host_specs[i].name == NULL) {
			CHECK(rc == -1 && strstr(err, "--llm-host") != NULL &&
			    strstr(err, host_specs[i].err) != NULL &&
			    strchr(err, '\n') == NULL, "%s: '%s'",
			    host_specs[i].spec, err);
			CHECK(llm_registry_count(r) == 11, "nothing added");
			llm_registry_free(r);
			continue;
		}
		CHECK(rc == 0, "%s: %s", host_specs[i].spec, err);
		p = llm_registry_get(r, 0);
		CHECK(p != NULL && strcmp(p->name, host_specs[i].name) == 0 &&
		    p->format == host_specs[i].format &&
		    p->add_usage == LLM_ADD_ALWAYS, "%s: name %s",
		    host_specs[i].spec, p ? p->name : "");
		dest_of(host_specs[i].match, &d);
		CHECK(llm_registry_match(r, &d) == p, "%s covers %s",
		    host_specs[i].spec, host_specs[i].match);
		if (host_specs[i].miss != NULL) {
			dest_of(host_specs[i].miss, &d);
			CHECK(llm_registry_match(r, &d) != p, "%s misses %s",
			    host_specs[i].spec, host_specs[i].miss);
		}
		llm_registry_free(r);
	}
}

static void
added_hosts_come_first_in_order(void)
{
	struct llm_registry		*r = llm_registry_new();
	const struct llm_provider	*p;
	struct dest			 d;
	char				 err[256];

	CHECK(llm_registry_add(r, "api.openai.com:anthropic", err,
	    sizeof err) == 0, "%s", err);
	CHECK(llm_registry_add(r, "*.openai.com:google", err,
	    sizeof err) == 0, "%s", err);
	CHECK(llm_registry_count(r) == 13, "count");
	CHECK(strcmp(llm_registry_get(r, 0)->name, "api.openai.com") == 0 &&
	    strcmp(llm_registry_get(r, 1)->name, "*.openai.com") == 0 &&
	    strcmp(llm_registry_get(r, 2)->name, "anthropic") == 0, "order");
	dest_of("api.openai.com", &d);
	p = llm_registry_match(r, &d);
	CHECK(p != NULL && p->format == LLM_ANTHROPIC, "first added wins");
	dest_of("x.openai.com", &d);
	p = llm_registry_match(r, &d);
	CHECK(p != NULL && p->format == LLM_GOOGLE, "second added");
	dest_of("api.anthropic.com", &d);
	p = llm_registry_match(r, &d);
	CHECK(p != NULL && strcmp(p->name, "anthropic") == 0, "built-in");
	llm_registry_free(r);
}

/* ------------------------------------------------------------- requests */

static const struct llm_provider prov_openai = { "openai", "api.openai.com",
    LLM_OPENAI, LLM_ADD_ALWAYS };
static const struct llm_provider prov_groq = { "groq", "api.groq.com",
    LLM_OPENAI, LLM_ADD_NEVER };
static const struct llm_provider prov_azure = { "azure",
    "*.openai.azure.com", LLM_OPENAI, LLM_ADD_AZURE };
static const struct llm_provider prov_anthropic = { "anthropic",
    "api.anthropic.com", LLM_ANTHROPIC, LLM_ADD_ALWAYS };
static const struct llm_provider prov_google = { "google",
    "generativelanguage.googleapis.com", LLM_GOOGLE, LLM_ADD_ALWAYS };

#define NOT_LLM	false, LLM_FMT_NONE, LLM_EP_NONE, "", false, false

static const struct {
	const struct llm_provider	*prov;
	const char			*method;
	const char			*path;
	bool				 ok;
	enum llm_format			 format;
	enum llm_endpoint		 ep;
	const char			*model;
	bool				 stream;
	bool				 may_add;
} classify[] = {
	{ &prov_anthropic, "POST", "/v1/messages", true, LLM_ANTHROPIC,
	    LLM_EP_MESSAGES, "", false, false },
	{ &prov_anthropic, "POST", "/v1/messages?beta=true", true,
	    LLM_ANTHROPIC, LLM_EP_MESSAGES, "", false, false },
	{ &prov_anthropic, "POST", "/v1/messages/count_tokens", NOT_LLM },
	{ &prov_anthropic, "POST", "/v1/messages/batches", NOT_LLM },
	{ &prov_anthropic, "GET", "/v1/messages", NOT_LLM },
	{ &prov_anthropic, "post", "/v1/messages", NOT_LLM },
	{ &prov_anthropic, "POST", "/v1/models", NOT_LLM },
	{ &prov_anthropic, "POST", "v1/messages", NOT_LLM },
	{ &prov_anthropic, "POST", "", NOT_LLM },
	/* Anthropic's OpenAI compatibility: the path decides. */
	{ &prov_anthropic, "POST", "/v1/chat/completions", true, LLM_OPENAI,
	    LLM_EP_CHAT, "", false, true },
	{ &prov_openai, "POST", "/v1/chat/completions", true, LLM_OPENAI,
	    LLM_EP_CHAT, "", false, true },
	{ &prov_openai, "POST", "/v1/completions", true, LLM_OPENAI,
	    LLM_EP_COMPLETIONS, "", false, true },
	{ &prov_openai, "POST", "/v1/responses", true, LLM_OPENAI,
	    LLM_EP_RESPONSES, "", false, false },
	{ &prov_openai, "POST", "/v1/embeddings", true, LLM_OPENAI,
	    LLM_EP_EMBEDDINGS, "", false, false },
	{ &prov_openai, "POST", "/v1/responses/resp_1/cancel", NOT_LLM },
	{ &prov_openai, "POST", "/v1/chat/completions/cmpl_1", NOT_LLM },
	{ &prov_openai, "POST", "/v1/threads/t/messages", NOT_LLM },
	{ &prov_openai, "POST", "/v1/chat/completionsx", NOT_LLM },
	{ &prov_openai, "POST", "/v1/files", NOT_LLM },
	{ &prov_groq, "POST", "/openai/v1/chat/completions", true, LLM_OPENAI,
	    LLM_EP_CHAT, "", false, false },
	{ &prov_openai, "POST", "/api/v1/chat/completions?x=/v1/messages",
	    true, LLM_OPENAI, LLM_EP_CHAT, "", false, true },
	{ &prov_openai, "POST", "/v1/models?p=/chat/completions", NOT_LLM },
	{ &prov_azure, "POST", "/openai/deployments/gpt4o-prod/chat/"
	    "completions?api-version=2024-10-21", true, LLM_OPENAI,
	    LLM_EP_CHAT, "gpt4o-prod", false, true },
	{ &prov_azure, "POST", "/openai/deployments/d/chat/completions?"
	    "api-version=2024-09-01-preview", true, LLM_OPENAI, LLM_EP_CHAT,
	    "d", false, true },
	{ &prov_azure, "POST", "/openai/deployments/d/chat/completions?"
	    "api-version=2024-08-01-preview", true, LLM_OPENAI, LLM_EP_CHAT,
	    "d", false, false },
	{ &prov_azure, "POST", "/openai/deployments/d/chat/completions?"
	    "foo=1&api-version=2025-01-01", true, LLM_OPENAI, LLM_EP_CHAT,
	    "d", false, true },
	{ &prov_azure, "POST", "/openai/deployments/d/chat/completions", true,
	    LLM_OPENAI, LLM_EP_CHAT, "d", false, false },
	{ &prov_azure, "POST", "/openai/deployments/d/embeddings?"
	    "api-version=2025-01-01", true, LLM_OPENAI, LLM_EP_EMBEDDINGS,
	    "d", false, false },
	{ &prov_azure, "POST", "/openai/v1/chat/completions", true,
	    LLM_OPENAI, LLM_EP_CHAT, "", false, true },
	{ &prov_google, "POST", "/v1beta/models/gemini-2.0-flash:"
	    "generateContent", true, LLM_GOOGLE, LLM_EP_GENERATE,
	    "gemini-2.0-flash", false, false },
	{ &prov_google, "POST", "/v1beta/models/gemini-2.5-pro:"
	    "streamGenerateContent?alt=sse", true, LLM_GOOGLE,
	    LLM_EP_GENERATE, "gemini-2.5-pro", true, false },
	{ &prov_google, "POST", "/v1beta/tunedModels/my-tune:generateContent",
	    true, LLM_GOOGLE, LLM_EP_GENERATE, "my-tune", false, false },
	{ &prov_google, "POST", "/v1/projects/p/locations/l/publishers/"
	    "google/models/gemini-pro:streamGenerateContent", true,
	    LLM_GOOGLE, LLM_EP_GENERATE, "gemini-pro", true, false },
	{ &prov_google, "POST", "/v1beta/models/gemini:countTokens", NOT_LLM },
	{ &prov_google, "POST", "/v1beta/models/gemini:embedContent", NOT_LLM },
	{ &prov_google, "POST", "/v1beta/models/:generateContent", NOT_LLM },
	{ &prov_google, "POST", "/v1beta/models/gemini:generateContentx",
	    NOT_LLM },
	{ &prov_google, "GET", "/v1beta/models/gemini:generateContent",
	    NOT_LLM },
	{ &prov_google, "POST", "/v1beta/openai/chat/completions", true,
	    LLM_OPENAI, LLM_EP_CHAT, "", false, true },
	{ &prov_google, "POST", "/v1beta/models/g\x01\xff:generateContent",
	    true, LLM_GOOGLE, LLM_EP_GENERATE, "g??", false, false },
	{ NULL, "POST", "/v1/messages", NOT_LLM },
};

static void
requests_classified_by_method_and_path(void)
{
	struct llm_request	 rq;
	size_t			 i;
	bool			 ok;

	for (i = 0; i < sizeof classify / sizeof classify[0]; i++) {
		memset(&rq, 0xa5, sizeof rq);
		ok = llm_request_classify(classify[i].prov, classify[i].method,
		    strlen(classify[i].method), classify[i].path,
		    strlen(classify[i].path), &rq);
		CHECK(ok == classify[i].ok, "%s %s: %d", classify[i].method,
		    classify[i].path, ok);
		if (!ok) {
			CHECK(rq.provider == NULL && rq.model[0] == '\0' &&
			    rq.format == LLM_FMT_NONE, "zeroed");
			continue;
		}
		CHECK(rq.provider == classify[i].prov &&
		    rq.format == classify[i].format &&
		    rq.endpoint == classify[i].ep &&
		    strcmp(rq.model, classify[i].model) == 0 &&
		    rq.stream == classify[i].stream &&
		    rq.may_add_usage == classify[i].may_add &&
		    !rq.usage_added && !rq.body_read, "%s: fmt %d ep %d "
		    "model '%s' stream %d add %d", classify[i].path, rq.format,
		    rq.endpoint, rq.model, rq.stream, rq.may_add_usage);
	}
}

/* The method and path need not be NUL-terminated. */
static void
classify_reads_only_the_given_bytes(void)
{
	struct llm_request	 rq;
	const char		*m = "POSTX", *p = "/v1/messagesXYZ";
	char			*hm, *hp;

	hm = xcalloc(4, 1);
	hp = xcalloc(12, 1);
	memcpy(hm, m, 4);
	memcpy(hp, p, 12);
	CHECK(llm_request_classify(&prov_anthropic, hm, 4, hp, 12, &rq),
	    "exact-size buffers");
	CHECK(!llm_request_classify(&prov_anthropic, m, 5, p, 12, &rq),
	    "POSTX");
	CHECK(!llm_request_classify(&prov_anthropic, m, 4, p, 15, &rq),
	    "messagesXYZ");
	free(hm);
	free(hp);
}

#define OPT	"\"stream_options\":{\"include_usage\":true},"

static const struct {
	const struct llm_provider	*prov;
	const char			*path;
	const char			*body;
	int				 rc;
	const char			*model;
	bool				 stream;
	const char			*rewritten;	/* NULL: none */
} bodies[] = {
	{ &prov_anthropic, "/v1/messages",
	    "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":10,"
	    "\"stream\":true}",
	    LLM_OK, "claude-sonnet-4-5", true, NULL },
	{ &prov_anthropic, "/v1/messages", "{\"model\":\"c\"}", LLM_OK, "c",
	    false, NULL },
	{ &prov_openai, "/v1/chat/completions",
	    "{\"model\":\"gpt-4o\",\"stream\":true,"
	    "\"seed\":12345678901234567890,"
	    "\"temperature\":0.70000000000000001}", LLM_OK, "gpt-4o", true,
	    "{" OPT "\"model\":\"gpt-4o\",\"stream\":true,"
	    "\"seed\":12345678901234567890,"
	    "\"temperature\":0.70000000000000001}" },
	{ &prov_openai, "/v1/chat/completions",
	    " \r\n\t{ \"stream\" : true , \"model\" : \"m\" } \n", LLM_OK, "m",
	    true,
	    " \r\n\t{" OPT " \"stream\" : true , \"model\" : \"m\" } \n" },
	{ &prov_openai, "/v1/chat/completions",
	    "\xef\xbb\xbf{\"stream\":true}", LLM_OK, "", true,
	    "\xef\xbb\xbf{" OPT "\"stream\":true}" },
	{ &prov_openai, "/v1/completions", "{\"model\":\"davinci\","
	    "\"stream\":true}", LLM_OK, "davinci", true,
	    "{" OPT "\"model\":\"davinci\",\"stream\":true}" },
	/* The client asked already, or said no: left alone. */
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"m\","
	    "\"stream\":true,\"stream_options\":{\"include_usage\":true}}",
	    LLM_OK, "m", true, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"m\","
	    "\"stream\":true,\"stream_options\":{\"include_usage\":false}}",
	    LLM_OK, "m", true, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"m\","
	    "\"stream\":true,\"stream_options\":null}", LLM_OK, "m", true,
	    NULL },
	/* Nested stream_options is not the top-level one. */
	{ &prov_openai, "/v1/chat/completions", "{\"metadata\":"
	    "{\"stream_options\":1},\"stream\":true}", LLM_OK, "", true,
	    "{" OPT "\"metadata\":{\"stream_options\":1},\"stream\":true}" },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"m\","
	    "\"stream\":false}", LLM_OK, "m", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"m\","
	    "\"stream\":1}", LLM_OK, "m", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"m\","
	    "\"stream\":\"true\"}", LLM_OK, "m", false, NULL },
	/* Duplicates: the last wins, as in most servers. */
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"a\","
	    "\"stream\":false,\"model\":\"b\",\"stream\":true}", LLM_OK, "b",
	    true, "{" OPT "\"model\":\"a\",\"stream\":false,\"model\":\"b\","
	    "\"stream\":true}" },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"a\","
	    "\"stream\":true,\"stream\":false}", LLM_OK, "a", false, NULL },
	/* Providers that send usage unasked, and the Responses API. */
	{ &prov_groq, "/openai/v1/chat/completions", "{\"model\":\"llama\","
	    "\"stream\":true}", LLM_OK, "llama", true, NULL },
	{ &prov_openai, "/v1/responses", "{\"model\":\"gpt-5\","
	    "\"stream\":true}", LLM_OK, "gpt-5", true, NULL },
	{ &prov_azure, "/openai/deployments/dep/chat/completions?"
	    "api-version=2024-06-01", "{\"stream\":true}", LLM_OK, "dep", true,
	    NULL },
	{ &prov_azure, "/openai/deployments/dep/chat/completions?"
	    "api-version=2024-10-21", "{\"stream\":true}", LLM_OK, "dep", true,
	    "{" OPT "\"stream\":true}" },
	{ &prov_azure, "/openai/deployments/dep/chat/completions?"
	    "api-version=2024-10-21", "{\"model\":\"gpt-4o\"}", LLM_OK,
	    "gpt-4o", false, NULL },
	/* Google: the model and stream come from the path. */
	{ &prov_google, "/v1beta/models/gemini-2.0-flash:"
	    "streamGenerateContent?alt=sse", "{\"contents\":[],"
	    "\"stream\":false,\"model\":\"x\"}", LLM_OK, "x", true, NULL },
	/* Models: odd bytes shown as '?', long ones cut. */
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"a\\nb\\u00e9\"}",
	    LLM_OK, "a?b??", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":\"\"}", LLM_OK,
	    "", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"model\":42}", LLM_OK, "",
	    false, NULL },
	/* Not a JSON object: accounted, not read. */
	{ &prov_openai, "/v1/chat/completions", "", LLM_E_JSON, "", false,
	    NULL },
	{ &prov_openai, "/v1/chat/completions", "[{\"stream\":true}]",
	    LLM_E_JSON, "", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"stream\":true}x",
	    LLM_E_JSON, "", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"stream\":true",
	    LLM_E_JSON, "", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "{\"stream\":true}{}",
	    LLM_E_JSON, "", false, NULL },
	{ &prov_openai, "/v1/chat/completions", "\"stream\"", LLM_E_JSON, "",
	    false, NULL },
};

static void
request_bodies_give_model_stream_and_rewrite(void)
{
	struct llm_request	 rq;
	uint8_t			*b;
	char			*out;
	size_t			 i, len, outlen;
	int			 rc;

	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
		CHECK(llm_request_classify(bodies[i].prov, "POST", 4,
		    bodies[i].path, strlen(bodies[i].path), &rq), "%s",
		    bodies[i].path);
		len = strlen(bodies[i].body);
		b = xcalloc(len ? len : 1, 1);
		memcpy(b, bodies[i].body, len);
		rc = llm_request_body(&rq, b, len, &out, &outlen);
		CHECK(rc == bodies[i].rc, "%s: rc %d", bodies[i].body, rc);
		CHECK(strcmp(rq.model, bodies[i].model) == 0 &&
		    rq.stream == bodies[i].stream && rq.body_len == len &&
		    rq.body_read == (rc == LLM_OK), "%s: model '%s' stream %d",
		    bodies[i].body, rq.model, rq.stream);
		if (bodies[i].rewritten == NULL)
			CHECK(out == NULL && outlen == 0 && !rq.usage_added,
			    "%s: rewritten", bodies[i].body);
		else {
			CHECK(out != NULL && rq.usage_added &&
			    outlen == strlen(bodies[i].rewritten) &&
			    memcmp(out, bodies[i].rewritten, outlen) == 0,
			    "%s: got '%.*s'", bodies[i].body, (int)outlen,
			    out ? out : "");
		}
		free(out);
		/* Without out, never a rewrite. */
		rc = llm_request_body(&rq, b, len, NULL, NULL);
		CHECK(rc == bodies[i].rc && !rq.usage_added, "no out");
		free(b);
	}
}

static void
request_body_over_bound_is_not_read(void)
{
	struct llm_request	 rq;
	size_t			 n = LLM_REQUEST_BODY_MAX + 1, outlen;
	uint8_t			*b = xcalloc(n, 1);
	char			*out;

	memset(b, ' ', n);
	memcpy(b, "{\"model\":\"m\",\"stream\":true}", 27);
	CHECK(llm_request_classify(&prov_openai, "POST", 4,
	    "/v1/chat/completions", 20, &rq), "classify");
	CHECK(llm_request_body(&rq, b, n, &out, &outlen) == LLM_E_TOO_LARGE &&
	    out == NULL && rq.body_len == n && !rq.body_read &&
	    rq.model[0] == '\0', "over");
	CHECK(llm_request_body(&rq, b, n - 1, &out, &outlen) == LLM_OK &&
	    out != NULL && rq.usage_added && strcmp(rq.model, "m") == 0,
	    "at the bound");
	free(out);
	free(b);
}

static void
header_helpers(void)
{
	CHECK(llm_header_drop("Accept-Encoding", 15), "AE");
	CHECK(llm_header_drop("accept-encoding", 15), "ae");
	CHECK(!llm_header_drop("Accept-Encodings", 16), "longer");
	CHECK(!llm_header_drop("Accept-Encoding", 14), "shorter");
	CHECK(!llm_header_drop("Content-Encoding", 16), "CE");
	CHECK(!llm_header_drop(NULL, 0), "NULL");
	CHECK(strcmp(LLM_ACCEPT_ENCODING, "Accept-Encoding: identity\r\n") ==
	    0, "the header sent");

	CHECK(llm_encoding_readable(NULL, 0), "absent");
	CHECK(llm_encoding_readable("", 0), "empty");
	CHECK(llm_encoding_readable(" Identity ", 10), "identity");
	CHECK(!llm_encoding_readable("gzip", 4), "gzip");
	CHECK(!llm_encoding_readable("br", 2), "br");
	CHECK(!llm_encoding_readable("zstd", 4), "zstd");
	CHECK(!llm_encoding_readable("identity, gzip", 14), "list");
	CHECK(!llm_encoding_readable("identityX", 8 + 1), "identityX");

	CHECK(llm_is_event_stream("text/event-stream", 17), "plain");
	CHECK(llm_is_event_stream("Text/Event-Stream; charset=utf-8", 32),
	    "params");
	CHECK(llm_is_event_stream(" text/event-stream ;x", 21), "spaces");
	CHECK(!llm_is_event_stream("application/json", 16), "json");
	CHECK(!llm_is_event_stream("text/event-streamx", 18), "longer");
	CHECK(!llm_is_event_stream("text/event-stream", 16), "cut");
	CHECK(!llm_is_event_stream(NULL, 0), "NULL");
	CHECK(strcmp(llm_format_name(LLM_ANTHROPIC), "anthropic") == 0 &&
	    strcmp(llm_format_name(LLM_OPENAI), "openai") == 0 &&
	    strcmp(llm_format_name(LLM_GOOGLE), "google") == 0 &&
	    strcmp(llm_format_name(LLM_FMT_NONE), "none") == 0, "names");
}

/* ------------------------------------------------------------ responses */

static const struct {
	const char	*name;
	enum llm_format	 format;
	int		 status;
	const char	*body;
	int		 rc;
	uint64_t	 in, out, cr, cw;
	bool		 estimated, error;
} json_bodies[] = {
	{ "anthropic_message", LLM_ANTHROPIC, 200,
	    "{\"id\":\"msg_1\",\"type\":\"message\",\"content\":[{\"type\":"
	    "\"text\",\"text\":\"Hi\"}],\"usage\":{\"input_tokens\":12,"
	    "\"output_tokens\":34,\"cache_read_input_tokens\":100,"
	    "\"cache_creation_input_tokens\":7}}", LLM_OK, 12, 34, 100, 7,
	    false, false },
	{ "anthropic_error", LLM_ANTHROPIC, 400, "{\"type\":\"error\","
	    "\"error\":{\"type\":\"invalid_request_error\",\"message\":\"x\"}}",
	    LLM_OK, 0, 0, 0, 0, false, true },
	{ "openai_chat", LLM_OPENAI, 200, "{\"object\":\"chat.completion\","
	    "\"choices\":[{\"message\":{\"content\":\"hello\"}}],\"usage\":"
	    "{\"prompt_tokens\":50,\"completion_tokens\":8,\"total_tokens\":58,"
	    "\"prompt_tokens_details\":{\"cached_tokens\":32}}}", LLM_OK, 50, 8,
	    32, 0, false, false },
	{ "openai_responses", LLM_OPENAI, 200, "{\"object\":\"response\","
	    "\"usage\":{\"input_tokens\":20,\"output_tokens\":5,"
	    "\"input_tokens_details\":{\"cached_tokens\":4},"
	    "\"output_tokens_details\":{\"reasoning_tokens\":3}}}", LLM_OK, 20,
	    5, 4, 0, false, false },
	{ "openai_embeddings", LLM_OPENAI, 200, "{\"object\":\"list\","
	    "\"data\":[],\"usage\":{\"prompt_tokens\":9,\"total_tokens\":9}}",
	    LLM_OK, 9, 0, 0, 0, false, false },
	{ "deepseek_cache_hit", LLM_OPENAI, 200,
	    "{\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":2,"
	    "\"prompt_cache_hit_tokens\":6,"
	    "\"prompt_cache_miss_tokens\":4}}", LLM_OK, 10, 2, 6, 0, false,
	    false },
	{ "openai_error", LLM_OPENAI, 429, "{\"error\":{\"message\":\"slow\","
	    "\"type\":\"rate_limit_exceeded\"}}", LLM_OK, 0, 0, 0, 0, false,
	    true },
	{ "openai_error_null_is_no_error", LLM_OPENAI, 200, "{\"error\":null,"
	    "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}", LLM_OK,
	    1, 1, 0, 0, false, false },
	{ "google_generate", LLM_GOOGLE, 200, "{\"candidates\":[{\"content\":"
	    "{\"parts\":[{\"text\":\"hi\"}]}}],\"usageMetadata\":"
	    "{\"promptTokenCount\":30,\"candidatesTokenCount\":10,"
	    "\"thoughtsTokenCount\":5,\"cachedContentTokenCount\":20,"
	    "\"toolUsePromptTokenCount\":2,\"totalTokenCount\":47}}", LLM_OK,
	    32, 15, 20, 0, false, false },
	{ "google_json_array_stream", LLM_GOOGLE, 200, "[{\"usageMetadata\":"
	    "{\"promptTokenCount\":30}},\r\n{\"usageMetadata\":"
	    "{\"promptTokenCount\":30,\"candidatesTokenCount\":9}}]", LLM_OK,
	    30, 9, 0, 0, false, false },
	{ "google_error", LLM_GOOGLE, 400, "{\"error\":{\"code\":400,"
	    "\"status\":\"INVALID_ARGUMENT\"}}", LLM_OK, 0, 0, 0, 0, false,
	    true },
	/* Counts that are no counts are ignored; the report is final. */
	{ "bad_counts_ignored", LLM_OPENAI, 200,
	    "{\"usage\":{\"prompt_tokens\":-1,\"completion_tokens\":1.5,"
	    "\"prompt_tokens_details\":"
	    "{\"cached_tokens\":\"3\"}}}", LLM_OK, 0, 0, 0, 0, false, false },
	{ "huge_counts_ignored", LLM_ANTHROPIC, 200, "{\"usage\":"
	    "{\"input_tokens\":1e300,\"output_tokens\":9007199254740992}}",
	    LLM_OK, 0, 9007199254740992ULL, 0, 0, false, false },
	/* No usage in a 2xx: estimated from bytes (request: 10 bytes). */
	{ "no_usage_estimated", LLM_OPENAI, 200, "{\"choices\":[{\"message\":"
	    "{\"content\":\"12345678\"}}]}", LLM_OK, 3, 2, 0, 0, true, false },
	{ "not_json", LLM_OPENAI, 200, "<html>", LLM_E_JSON, 3, 0, 0, 0, true,
	    false },
	{ "not_json_error_status", LLM_OPENAI, 502, "<html>", LLM_E_JSON, 0,
	    0, 0, 0, false, false },
	{ "scalar_json", LLM_OPENAI, 200, "42", LLM_E_JSON, 3, 0, 0, 0, true,
	    false },
};

static void
json_responses_give_usage(void)
{
	struct llm_request	 rq;
	struct llm_response	 rs;
	uint8_t			*b;
	size_t			 i, len;
	int			 rc;

	for (i = 0; i < sizeof json_bodies / sizeof json_bodies[0]; i++) {
		memset(&rq, 0, sizeof rq);
		rq.format = json_bodies[i].format;
		rq.body_len = 10;
		llm_response_init(&rs, &rq, json_bodies[i].status);
		len = strlen(json_bodies[i].body);
		b = xcalloc(len, 1);
		memcpy(b, json_bodies[i].body, len);
		rc = llm_response_json(&rs, b, len);
		free(b);
		llm_response_finish(&rs, rc == LLM_OK);
		CHECK(rc == json_bodies[i].rc, "%s: rc %d", json_bodies[i].name,
		    rc);
		CHECK(rs.usage.input == json_bodies[i].in &&
		    rs.usage.output == json_bodies[i].out &&
		    rs.usage.cache_read == json_bodies[i].cr &&
		    rs.usage.cache_write == json_bodies[i].cw &&
		    rs.estimated == json_bodies[i].estimated &&
		    rs.error == json_bodies[i].error,
		    "%s: %llu %llu %llu %llu est %d err %d",
		    json_bodies[i].name, (unsigned long long)rs.usage.input,
		    (unsigned long long)rs.usage.output,
		    (unsigned long long)rs.usage.cache_read,
		    (unsigned long long)rs.usage.cache_write, rs.estimated,
		    rs.error);
	}
}

static void
json_response_over_bound_is_not_read(void)
{
	struct llm_response	rs;
	struct llm_request	rq;

	memset(&rq, 0, sizeof rq);
	rq.format = LLM_OPENAI;
	llm_response_init(&rs, &rq, 200);
	CHECK(llm_response_json(&rs, (const uint8_t *)"{}",
	    LLM_RESPONSE_BODY_MAX + 1) == LLM_E_TOO_LARGE, "over");
}

/* A stream as it comes from the wire, and what it must count. */
static const struct {
	const char	*name;
	enum llm_format	 format;
	bool		 usage_added;
	const char	*stream;
	bool		 complete;
	uint64_t	 in, out, cr, cw;
	bool		 estimated, error;
	const char	*kept;		/* the stream with dropped events cut
					   out; NULL: all kept */
} streams[] = {
	{ "anthropic", LLM_ANTHROPIC, false,
	    "event: message_start\r\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"m\","
	    "\"content\":[],\"usage\":{\"input_tokens\":25,\"output_tokens\":1,"
	    "\"cache_read_input_tokens\":3,\"cache_creation_input_tokens\":4}}}"
	    "\r\n\r\n"
	    "event: content_block_delta\r\n"
	    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
	    "{\"type\":\"text_delta\",\"text\":\"Hello\"}}\r\n\r\n"
	    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
	    "event: message_delta\r\n"
	    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
	    "\"end_turn\"},\"usage\":{\"output_tokens\":15}}\r\n\r\n"
	    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n",
	    true, 25, 15, 3, 4, false, false, NULL },
	{ "anthropic_delta_with_input", LLM_ANTHROPIC, false,
	    "data: {\"type\":\"message_start\",\"message\":{\"usage\":"
	    "{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
	    "data: {\"type\":\"message_delta\",\"usage\":{\"input_tokens\":30,"
	    "\"output_tokens\":15,\"cache_read_input_tokens\":2}}\n\n",
	    true, 30, 15, 2, 0, false, false, NULL },
	{ "anthropic_cut_before_delta", LLM_ANTHROPIC, false,
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\",\"message\":{\"usage\":"
	    "{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
	    "event: content_block_delta\n"
	    "data: {\"type\":\"content_block_delta\",\"delta\":{\"text\":"
	    "\"0123456789abcdef0123\"}}\n\n",
	    false, 25, 5, 0, 0, true, false, NULL },
	{ "anthropic_error_event", LLM_ANTHROPIC, false,
	    "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":"
	    "\"overloaded_error\"}}\n\n", true, 3, 0, 0, 0, true, true, NULL },
	{ "anthropic_event_name_when_no_type", LLM_ANTHROPIC, false,
	    "event: message_delta\ndata: {\"usage\":{\"output_tokens\":7,"
	    "\"input_tokens\":2}}\n\n", true, 2, 7, 0, 0, false, false, NULL },
	{ "openai_usage_asked_by_client_kept", LLM_OPENAI, false,
	    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],"
	    "\"usage\":null}\n\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
	    "\"completion_tokens\":2}}\n\n"
	    "data: [DONE]\n\n", true, 11, 2, 0, 0, false, false, NULL },
	{ "openai_usage_added_dropped", LLM_OPENAI, true,
	    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],"
	    "\"usage\":null}\n\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":11,"
	    "\"completion_tokens\":2,\"prompt_tokens_details\":"
	    "{\"cached_tokens\":5}}}\n\n"
	    "data: [DONE]\n\n", true, 11, 2, 5, 0, false, false,
	    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],"
	    "\"usage\":null}\n\n"
	    "data: [DONE]\n\n" },
	{ "openai_usage_added_crlf", LLM_OPENAI, true,
	    "data: {\"choices\":[{\"delta\":{}}]}\r\n\r\n"
	    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,"
	    "\"completion_tokens\":2}}\r\n\r\n"
	    "data: [DONE]\r\n\r\n", true, 1, 2, 0, 0, false, false,
	    "data: {\"choices\":[{\"delta\":{}}]}\r\n\r\n"
	    "\n"
	    "data: [DONE]\r\n\r\n" },
	/* Usage on a chunk that still has choices: counted, never dropped. */
	{ "openai_usage_with_choices_kept", LLM_OPENAI, true,
	    "data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],"
	    "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":6}}\n\n",
	    true, 4, 6, 0, 0, false, false, NULL },
	{ "groq_x_groq_usage", LLM_OPENAI, false,
	    "data: {\"choices\":[{\"delta\":{}}],\"x_groq\":{\"usage\":"
	    "{\"prompt_tokens\":8,\"completion_tokens\":9}}}\n\n"
	    "data: [DONE]\n\n", true, 8, 9, 0, 0, false, false, NULL },
	{ "openai_no_usage_estimated", LLM_OPENAI, false,
	    "data: {\"choices\":[{\"delta\":{\"content\":\"abcdefgh\"}}]}\n\n"
	    "data: {\"choices\":[{\"delta\":{\"content\":\"i\"}}]}\n\n"
	    "data: [DONE]\n\n", true, 3, 3, 0, 0, true, false, NULL },
	{ "openai_error_in_stream", LLM_OPENAI, false,
	    "data: {\"error\":{\"message\":\"boom\"}}\n\n", true, 3, 0, 0, 0,
	    true, true, NULL },
	{ "openai_responses_api", LLM_OPENAI, false,
	    "event: response.created\ndata: {\"type\":\"response.created\","
	    "\"response\":{\"usage\":null}}\n\n"
	    "event: response.output_text.delta\ndata: {\"type\":"
	    "\"response.output_text.delta\",\"delta\":\"Hi\"}\n\n"
	    "event: response.completed\ndata: {\"type\":\"response.completed\","
	    "\"response\":{\"usage\":{\"input_tokens\":40,\"output_tokens\":12,"
	    "\"input_tokens_details\":{\"cached_tokens\":8}}}}\n\n",
	    true, 40, 12, 8, 0, false, false, NULL },
	{ "openai_responses_failed", LLM_OPENAI, false,
	    "data: {\"type\":\"response.failed\",\"response\":{\"usage\":"
	    "{\"input_tokens\":4,\"output_tokens\":0}}}\n\n",
	    true, 4, 0, 0, 0, false, true, NULL },
	{ "google_sse_last_wins", LLM_GOOGLE, false,
	    "data: {\"candidates\":[{\"content\":{\"parts\":"
	    "[{\"text\":\"a\"}]}}],"
	    "\"usageMetadata\":{\"promptTokenCount\":9,"
	    "\"candidatesTokenCount\":1}}\r\n\r\n"
	    "data: {\"candidates\":[{\"finishReason\":\"STOP\"}],"
	    "\"usageMetadata\":{\"promptTokenCount\":9,"
	    "\"candidatesTokenCount\":20,\"thoughtsTokenCount\":4,"
	    "\"cachedContentTokenCount\":3}}\r\n\r\n",
	    true, 9, 24, 3, 0, false, false, NULL },
	{ "google_sse_cut", LLM_GOOGLE, false,
	    "data: {\"usageMetadata\":{\"promptTokenCount\":9,"
	    "\"candidatesTokenCount\":1}}\n\n",
	    false, 9, 1, 0, 0, true, false, NULL },
	{ "not_json_events_ignored", LLM_OPENAI, false,
	    ": ping\n\ndata: [DONE]\n\ndata: {\"usage\"\n\n"
	    "data: [1,2]\n\ndata: {\"usage\":{\"prompt_tokens\":2,"
	    "\"completion_tokens\":3}}\n\n", true, 2, 3, 0, 0, false, false,
	    NULL },
};

/*
 * Through sse.c like the proxy: forward everything before sse_pending() at
 * once, hold the event under way, drop what llm_response_event says.
 */
static void
stream_run(size_t i, size_t piece, struct llm_response *rs, char **kept,
    size_t *keptlen)
{
	struct llm_request	 rq;
	struct sse		*s = sse_new();
	struct sse_event	 ev;
	const char		*in = streams[i].stream;
	size_t			 len = strlen(in), from = 0, n, off, used;
	uint64_t		 sent = 0, drop_start = 0, drop_end = 0;
	char			*out = xcalloc(len + 1, 1);
	size_t			 olen = 0;
	int			 r;

	memset(&rq, 0, sizeof rq);
	rq.format = streams[i].format;
	rq.usage_added = streams[i].usage_added;
	rq.body_len = 10;
	llm_response_init(rs, &rq, 200);
	while (from < len) {
		n = piece == 0 || len - from < piece ? len - from : piece;
		off = 0;
		while (off < n) {
			r = sse_next(s, (const uint8_t *)in + from + off,
			    n - off, &used, &ev);
			off += used;
			CHECK(r >= 0, "%s: sse %d", streams[i].name, r);
			if (r == SSE_EVENT && llm_response_event(rs, ev.type,
			    ev.type_len, ev.data, ev.data_len) ==
			    LLM_EVENT_DROP) {
				drop_start = ev.start;
				drop_end = ev.end;
			}
		}
		from += n;
		/* Forward up to the pending mark, skipping the drop. */
		while (sent < sse_pending(s)) {
			if (sent >= drop_start && sent < drop_end)
				sent = drop_end;
			else
				out[olen++] = in[sent++];
		}
	}
	while (sent < len) {
		if (sent >= drop_start && sent < drop_end)
			sent = drop_end;
		else
			out[olen++] = in[sent++];
	}
	llm_response_finish(rs, streams[i].complete);
	sse_free(s);
	*kept = out;
	*keptlen = olen;
}

static void
sse_streams_give_usage_and_drop_only_the_added_chunk(void)
{
	struct llm_response	 rs;
	const char		*want;
	char			*kept;
	size_t			 i, keptlen, piece;

	for (i = 0; i < sizeof streams / sizeof streams[0]; i++) {
		for (piece = 0; piece <= 7; piece += 1) {
			stream_run(i, piece, &rs, &kept, &keptlen);
			CHECK(rs.usage.input == streams[i].in &&
			    rs.usage.output == streams[i].out &&
			    rs.usage.cache_read == streams[i].cr &&
			    rs.usage.cache_write == streams[i].cw &&
			    rs.estimated == streams[i].estimated &&
			    rs.error == streams[i].error,
			    "%s/%zu: %llu %llu %llu %llu est %d err %d",
			    streams[i].name, piece,
			    (unsigned long long)rs.usage.input,
			    (unsigned long long)rs.usage.output,
			    (unsigned long long)rs.usage.cache_read,
			    (unsigned long long)rs.usage.cache_write,
			    rs.estimated, rs.error);
			want = streams[i].kept != NULL ? streams[i].kept :
			    streams[i].stream;
			CHECK(keptlen == strlen(want) &&
			    memcmp(kept, want, keptlen) == 0,
			    "%s/%zu: kept '%.*s'", streams[i].name, piece,
			    (int)keptlen, kept);
			free(kept);
		}
	}
}

static void
usage_chunk_recognised(void)
{
	static const struct {
		const char	*data;
		bool		 yes;
		uint64_t	 in, out;
	} t[] = {
		{ "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,"
		    "\"completion_tokens\":4}}", true, 3, 4 },
		{ " {\"choices\":[],\"usage\":{}} ", true, 0, 0 },
		{ "{\"choices\":[{}],\"usage\":{\"prompt_tokens\":3}}", false,
		    0, 0 },
		{ "{\"choices\":[],\"usage\":null}", false, 0, 0 },
		{ "{\"usage\":{\"prompt_tokens\":3}}", false, 0, 0 },
		{ "{\"choices\":{},\"usage\":{}}", false, 0, 0 },
		{ "[DONE]", false, 0, 0 },
		{ "", false, 0, 0 },
		{ "{\"choices\":[],\"usage\":{}}x", false, 0, 0 },
	};
	struct llm_usage	u;
	size_t			i;
	bool			yes;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		memset(&u, 0xff, sizeof u);
		yes = llm_openai_usage_chunk(t[i].data, strlen(t[i].data), &u);
		CHECK(yes == t[i].yes, "%s", t[i].data);
		if (yes)
			CHECK(u.input == t[i].in && u.output == t[i].out,
			    "%s: counts", t[i].data);
	}
	CHECK(!llm_openai_usage_chunk(NULL, 0, NULL), "NULL");
}

/* Only a rewritten request's stream drops anything. */
static void
nothing_dropped_unless_rewritten(void)
{
	static const char	*chunk = "{\"choices\":[],\"usage\":"
	    "{\"prompt_tokens\":1,\"completion_tokens\":1}}";
	struct llm_request	 rq;
	struct llm_response	 rs;

	memset(&rq, 0, sizeof rq);
	rq.format = LLM_OPENAI;
	llm_response_init(&rs, &rq, 200);
	CHECK(llm_response_event(&rs, "message", 7, chunk, strlen(chunk)) ==
	    LLM_EVENT_KEEP, "not rewritten: kept");
	rq.usage_added = true;
	llm_response_init(&rs, &rq, 200);
	CHECK(llm_response_event(&rs, "message", 7, chunk, strlen(chunk)) ==
	    LLM_EVENT_DROP, "rewritten: dropped");
	rq.format = LLM_ANTHROPIC;
	llm_response_init(&rs, &rq, 200);
	CHECK(llm_response_event(&rs, "message", 7, chunk, strlen(chunk)) ==
	    LLM_EVENT_KEEP, "other formats never drop");
	CHECK(llm_response_event(&rs, NULL, 0, NULL, 0) == LLM_EVENT_KEEP,
	    "no data");
}

/* --------------------------------------------------------------- budgets */

static void
token_budget_refuses_after_it_is_spent(void)
{
	struct llm_stats	*st = llm_stats_new(100, 0);
	struct llm_usage	 u = { 40, 30, 1000, 1000 };
	char			 msg[256];

	CHECK(llm_stats_exhausted(st) == LLM_LIMIT_NONE, "fresh");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_NONE, "nothing tripped");
	/* Two calls in flight at once. */
	CHECK(llm_stats_admit(st, "anthropic", "m") == LLM_LIMIT_NONE, "1");
	CHECK(llm_stats_admit(st, "anthropic", "m") == LLM_LIMIT_NONE, "2");
	CHECK(llm_stats_inflight(st) == 2, "in flight");
	llm_stats_done(st, "anthropic", "m", &u, false, false, 1500);
	CHECK(llm_stats_tokens(st) == 70, "cache tokens are not budgeted");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_NONE, "70 < 100");
	CHECK(llm_stats_admit(st, "openai", "g") == LLM_LIMIT_NONE, "3");
	/* The one in flight finishes past the budget. */
	llm_stats_done(st, "anthropic", "m", &u, false, false, 500);
	CHECK(llm_stats_tokens(st) == 140, "140");
	CHECK(llm_stats_exhausted(st) == LLM_LIMIT_TOKENS, "spent");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_TOKENS, "trips");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_NONE, "once");
	CHECK(llm_stats_admit(st, "anthropic", "m") == LLM_LIMIT_TOKENS,
	    "refused");
	CHECK(llm_stats_admit(st, "openai", "g") == LLM_LIMIT_TOKENS,
	    "refused");
	llm_stats_done(st, "openai", "g", NULL, true, false, 10);
	CHECK(llm_stats_inflight(st) == 0, "none in flight");
	llm_stats_describe(st, LLM_LIMIT_TOKENS, msg, sizeof msg);
	CHECK_STR(msg, "egress-run: LLM token budget exhausted: 140 tokens "
	    "used of --llm-budget 100; new LLM requests are refused");
	CHECK(llm_stats_rows(st) == 2, "rows");
	CHECK(llm_stats_row(st, 0)->requests == 2 &&
	    llm_stats_row(st, 0)->refused == 1 &&
	    llm_stats_row(st, 0)->usage.cache_read == 2000 &&
	    llm_stats_row(st, 0)->ms == 2000, "anthropic row");
	CHECK(llm_stats_row(st, 1)->requests == 1 &&
	    llm_stats_row(st, 1)->errors == 1 &&
	    llm_stats_row(st, 1)->refused == 1, "openai row");
	CHECK(llm_stats_row(st, 2) == NULL, "past the end");
	llm_stats_free(st);
	llm_stats_free(NULL);
}

static void
request_limit_counts_admitted_calls(void)
{
	struct llm_stats	*st = llm_stats_new(0, 2);
	char			 msg[256];

	CHECK(llm_stats_admit(st, "p", "m") == LLM_LIMIT_NONE, "1");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_NONE, "1 of 2");
	CHECK(llm_stats_admit(st, "p", "m") == LLM_LIMIT_NONE, "2");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_REQUESTS, "2 of 2 trips");
	/* Both still in flight: the third is refused all the same. */
	CHECK(llm_stats_admit(st, "p", "m") == LLM_LIMIT_REQUESTS, "3");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_NONE, "once");
	llm_stats_done(st, "p", "m", NULL, false, false, 1);
	llm_stats_done(st, "p", "m", NULL, false, false, 1);
	CHECK(llm_stats_admit(st, "p", "m") == LLM_LIMIT_REQUESTS, "4");
	llm_stats_describe(st, LLM_LIMIT_REQUESTS, msg, sizeof msg);
	CHECK_STR(msg, "egress-run: LLM request limit reached: 2 requests "
	    "made of --llm-max-requests 2; new LLM requests are refused");
	llm_stats_describe(st, LLM_LIMIT_NONE, msg, sizeof msg);
	CHECK_STR(msg, "egress-run: no LLM limit reached");
	llm_stats_describe(st, LLM_LIMIT_REQUESTS, msg, 10);
	CHECK(strlen(msg) == 9, "cut to fit");
	llm_stats_free(st);

	/* No limits: never refused. */
	st = llm_stats_new(0, 0);
	struct llm_usage u = { UINT64_MAX, UINT64_MAX, 0, 0 };
	CHECK(llm_stats_admit(st, "p", "m") == LLM_LIMIT_NONE, "unlimited");
	llm_stats_done(st, "p", "m", &u, false, false, 1);
	llm_stats_done(st, "p", "m", &u, false, false, 1);
	CHECK(llm_stats_tokens(st) == UINT64_MAX, "saturates");
	CHECK(llm_stats_admit(st, "p", "m") == LLM_LIMIT_NONE, "unlimited");
	CHECK(llm_stats_tripped(st) == LLM_LIMIT_NONE, "never trips");
	llm_stats_free(st);
}

static void
rows_are_bounded(void)
{
	struct llm_stats	*st = llm_stats_new(0, 0);
	char			 model[32];
	size_t			 i;

	for (i = 0; i < LLM_ROWS_MAX + 50; i++) {
		snprintf(model, sizeof model, "m%zu", i);
		llm_stats_admit(st, "p", model);
	}
	CHECK(llm_stats_rows(st) == LLM_ROWS_MAX + 1, "rows %zu",
	    llm_stats_rows(st));
	CHECK(strcmp(llm_stats_row(st, LLM_ROWS_MAX)->model, "(other)") == 0 &&
	    llm_stats_row(st, LLM_ROWS_MAX)->requests == 50, "other row");
	/* A known row is still found. */
	llm_stats_admit(st, "p", "m3");
	CHECK(llm_stats_row(st, 3)->requests == 2, "m3");
	llm_stats_admit(st, NULL, "");
	CHECK(llm_stats_row(st, LLM_ROWS_MAX)->requests == 51, "into other");
	llm_stats_free(st);
}

static void
summary_table(void)
{
	struct llm_stats	*st = llm_stats_new(0, 1000);
	struct llm_usage	 a = { 1200, 340, 50, 7 }, b = { 10, 2, 0, 0 };
	struct llm_row		 t;
	char			*s;

	s = llm_stats_summary(st);
	CHECK_STR(s, "");
	free(s);
	llm_stats_admit(st, "openai", "gpt-4o");
	llm_stats_done(st, "openai", "gpt-4o", &b, false, true, 250);
	llm_stats_admit(st, "anthropic", "claude-sonnet-4-5");
	llm_stats_done(st, "anthropic", "claude-sonnet-4-5", &a, false, false,
	    12345);
	llm_stats_admit(st, "anthropic", "");
	llm_stats_done(st, "anthropic", "", NULL, true, false, 40);
	llm_stats_total(st, &t);
	CHECK(t.requests == 3 && t.errors == 1 && t.usage.input == 1210 &&
	    t.usage.output == 342 && t.ms == 12635 && t.estimated == 1,
	    "totals");
	s = llm_stats_summary(st);
	CHECK_STR(s,
	    "egress-run: LLM usage\n"
	    "provider   model              requests  errors  input  output"
	    "  cache-read  cache-write   time\n"
	    "anthropic  -                         1       1      0       0"
	    "           0            0   0.0s\n"
	    "anthropic  claude-sonnet-4-5         1       0   1200     340"
	    "          50            7  12.3s\n"
	    "openai     gpt-4o                    1       0     10       2"
	    "           0            0   0.2s\n"
	    "total                                3       1   1210     342"
	    "          50            7  12.6s\n"
	    "egress-run: 1 response reported no usage: tokens estimated "
	    "from bytes\n");
	free(s);
	llm_stats_free(st);

	st = llm_stats_new(1, 0);
	llm_stats_admit(st, "p", "m\x01x");
	llm_stats_done(st, "p", "m\x01x", &b, false, false, 1);
	llm_stats_admit(st, "p", "m");
	llm_stats_admit(st, "p", "m");
	s = llm_stats_summary(st);
	CHECK(strstr(s, "egress-run: 2 LLM requests refused by --llm-budget "
	    "or --llm-max-requests\n") != NULL, "%s", s);
	free(s);
	llm_stats_free(st);
}

/* ------------------------------------------------------------ 429 bodies */

static void
error_bodies_in_each_providers_shape(void)
{
	static const char	*msg = "egress-run: LLM token budget "
	    "exhausted: \"quoted\"\n";
	cJSON			*j, *e;
	char			*b;
	size_t			 len;

	b = llm_error_body(LLM_ANTHROPIC, LLM_LIMIT_TOKENS, msg, &len);
	CHECK(len == strlen(b), "len");
	j = cJSON_Parse(b);
	e = cJSON_GetObjectItem(j, "error");
	CHECK(j != NULL && strcmp(cJSON_GetObjectItem(j, "type")->valuestring,
	    "error") == 0 && strcmp(cJSON_GetObjectItem(e, "type")->
	    valuestring, "rate_limit_error") == 0 &&
	    strcmp(cJSON_GetObjectItem(e, "message")->valuestring, msg) == 0,
	    "anthropic: %s", b);
	cJSON_Delete(j);
	free(b);

	b = llm_error_body(LLM_OPENAI, LLM_LIMIT_TOKENS, msg, &len);
	CHECK_STR(b, "{\"error\":{\"message\":\"egress-run: LLM token budget "
	    "exhausted: \\\"quoted\\\"\\n\",\"type\":\"insufficient_quota\","
	    "\"param\":null,\"code\":\"insufficient_quota\"}}");
	free(b);
	b = llm_error_body(LLM_OPENAI, LLM_LIMIT_REQUESTS, "m", &len);
	CHECK_STR(b, "{\"error\":{\"message\":\"m\",\"type\":"
	    "\"rate_limit_exceeded\",\"param\":null,\"code\":"
	    "\"rate_limit_exceeded\"}}");
	free(b);
	b = llm_error_body(LLM_GOOGLE, LLM_LIMIT_REQUESTS, "m", &len);
	CHECK_STR(b, "{\"error\":{\"code\":429,\"message\":\"m\",\"status\":"
	    "\"RESOURCE_EXHAUSTED\"}}");
	free(b);
	b = llm_error_body(LLM_ANTHROPIC, LLM_LIMIT_REQUESTS, "m", &len);
	CHECK_STR(b, "{\"type\":\"error\",\"error\":{\"type\":"
	    "\"rate_limit_error\",\"message\":\"m\"}}");
	free(b);
	CHECK(strstr(LLM_ERROR_HEADERS, "x-should-retry: false\r\n") != NULL,
	    "no retry");
}

int
main(void)
{
	RUN(registry_knows_builtin_hosts_only);
	RUN(llm_host_specs_parse_or_name_the_spec);
	RUN(added_hosts_come_first_in_order);
	RUN(requests_classified_by_method_and_path);
	RUN(classify_reads_only_the_given_bytes);
	RUN(request_bodies_give_model_stream_and_rewrite);
	RUN(request_body_over_bound_is_not_read);
	RUN(header_helpers);
	RUN(json_responses_give_usage);
	RUN(json_response_over_bound_is_not_read);
	RUN(sse_streams_give_usage_and_drop_only_the_added_chunk);
	RUN(usage_chunk_recognised);
	RUN(nothing_dropped_unless_rewritten);
	RUN(token_budget_refuses_after_it_is_spent);
	RUN(request_limit_counts_admitted_calls);
	RUN(rows_are_bounded);
	RUN(summary_table);
	RUN(error_bodies_in_each_providers_shape);
	return test_done("test_llm");
}
