/*
 * builtin/hooks.c: hook specs, which audit events go to which hooks, the
 * event payloads (fields, no query string, no secret, always valid JSON
 * however small the buffer) and file hooks end to end (JSON Lines,
 * appended).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "builtin/audit.h"
#include "builtin/hooks.h"
#include "launcher/config.h"
#include "test.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[] = "/tmp/egress-test-hooks.XXXXXX";

static void
specs_parse_or_name_the_mistake(void)
{
	static const struct {
		const char	*spec;
		const char	*err;		/* NULL: parses */
		const char	*name;
		int		 kind;
		int		 webhook;
		const char	*host;
		unsigned	 port;
		int		 tls;
		const char	*target;	/* webhook; file: the path */
		const char	*display;
	} t[] = {
		{ "deny:file:/tmp/d.jsonl", NULL, "", HOOK_DENY, 0, NULL, 0, 0,
		  "/tmp/d.jsonl", "file:/tmp/d.jsonl" },
		{ "request:file:rel/with:colon", NULL, "", HOOK_REQUEST, 0,
		  NULL, 0, 0, "rel/with:colon", "file:rel/with:colon" },
		{ "siem=response:https://SIEM.test/in?token=s3cr3t", NULL,
		  "siem", HOOK_RESPONSE, 1, "siem.test", 443, 1,
		  "/in?token=s3cr3t", "https://siem.test/in" },
		{ "llm:http://127.0.0.1:8080", NULL, "", HOOK_LLM, 1,
		  "127.0.0.1", 8080, 0, "/", "http://127.0.0.1:8080/" },
		{ "llm:http://h.test?x=1", NULL, "", HOOK_LLM, 1, "h.test", 80,
		  0, "/?x=1", "http://h.test/" },
		{ "a.b_c-9=deny:http://[::1]:9/x/y", NULL, "a.b_c-9", HOOK_DENY,
		  1, "::1", 9, 0, "/x/y", "http://[::1]:9/x/y" },
		{ "deny:https://h.test:443/p", NULL, "", HOOK_DENY, 1, "h.test",
		  443, 1, "/p", "https://h.test/p" },
		/* Mistakes. */
		{ .spec = "deny", .err = "EVENT:TARGET" },
		{ .spec = "", .err = "EVENT:TARGET" },
		{ .spec = "nope:file:/x", .err = "unknown event 'nope'" },
		{ .spec = "Deny:file:/x", .err = "unknown event" },
		{ .spec = ":file:/x", .err = "unknown event" },
		{ .spec = "deny:file:", .err = "PATH" },
		{ .spec = "deny:ftp://x.test/", .err = "TARGET" },
		{ .spec = "deny:/tmp/x", .err = "TARGET" },
		{ .spec = "deny:", .err = "TARGET" },
		{ .spec = "=deny:file:/x", .err = "NAME" },
		{ .spec = "a b=deny:file:/x", .err = "NAME" },
		{ .spec = "a/b=deny:file:/x", .err = "NAME" },
		{ .spec = "x123456789x123456789x123456789x123456789x123456789"
		  "x123456789x12345=deny:file:/x", .err = "NAME" },
		{ .spec = "deny:https://user:pw@h.test/?token=s3cr3t",
		  .err = "credentials" },
		{ .spec = "deny:https://h.test/#frag", .err = "fragment" },
		{ .spec = "deny:https://h.test/a b", .err = "space" },
		{ .spec = "deny:https://", .err = "empty" },
		{ .spec = "deny:https://h.test:0/", .err = "port" },
		{ .spec = "deny:https://h.test:99999/?token=s3cr3t",
		  .err = "port" },
	};
	struct hook_spec	h;
	char			err[256];

	for (size_t i = 0; i < NELEM(t); i++) {
		err[0] = '\0';
		int r = hooks_spec_parse(t[i].spec, &h, err, sizeof err);
		if (t[i].err != NULL) {
			CHECK(r == -1, "case %zu (%s) accepted", i, t[i].spec);
			CHECK(strstr(err, t[i].err) != NULL, "case %zu: '%s' "
			    "does not say '%s'", i, err, t[i].err);
			CHECK(strstr(err, "s3cr3t") == NULL, "case %zu: the "
			    "query is quoted: '%s'", i, err);
			continue;
		}
		CHECK(r == 0, "case %zu (%s): %s", i, t[i].spec, err);
		if (r != 0)
			continue;
		CHECK_STR(h.name, t[i].name);
		CHECK((int)h.kind == t[i].kind, "case %zu: kind %d", i,
		    (int)h.kind);
		CHECK(h.webhook == (t[i].webhook != 0), "case %zu: webhook", i);
		if (h.webhook) {
			CHECK_STR(h.dest.host, t[i].host);
			CHECK(h.dest.port == t[i].port, "case %zu: port %u", i,
			    h.dest.port);
			CHECK(h.tls == (t[i].tls != 0), "case %zu: tls", i);
			CHECK_STR(h.target, t[i].target);
		} else
			CHECK_STR(h.path, t[i].target);
		CHECK_STR(h.display, t[i].display);
		hooks_spec_clear(&h);
	}
}

static void
kinds_parse_and_print(void)
{
	const char *words[] = { "request", "response", "deny", "llm" };

	for (int k = 0; k < 4; k++) {
		CHECK_STR(hooks_kind_name((enum hook_kind)k), words[k]);
		CHECK(hooks_kind_parse(words[k], strlen(words[k])) == k,
		    "%s", words[k]);
	}
	CHECK(hooks_kind_parse("den", 3) == -1, "prefix");
	CHECK(hooks_kind_parse("denyx", 5) == -1, "longer");
	CHECK(hooks_kind_parse("deny", 3) == -1, "length counts");
}

static void
audit_events_go_to_their_kind(void)
{
	static const struct {
		const char	*event;
		int		 kind;
	} t[] = {
		{ "deny", HOOK_DENY },
		{ "llm", HOOK_LLM },
		{ "budget", HOOK_LLM },
		{ "request", HOOK_RESPONSE },
		{ "connect", HOOK_RESPONSE },
		{ "error", HOOK_RESPONSE },
		{ "something", -1 },
		{ NULL, -1 },
	};
	struct audit_event e;

	for (size_t i = 0; i < NELEM(t); i++) {
		memset(&e, 0, sizeof e);
		e.event = t[i].event;
		CHECK(hooks_kind_of(&e) == t[i].kind, "case %zu (%s): %d", i,
		    t[i].event ? t[i].event : "NULL", hooks_kind_of(&e));
	}
}

/* Build a payload and parse it; the caller deletes the object. */
static cJSON *
payload(enum hook_kind k, const struct audit_event *e, bool tls, char *buf,
    size_t len)
{
	struct timeval	 now = { 1700000000, 123456 };
	size_t		 n = hooks_payload(k, e, tls, &now, buf, len);
	cJSON		*j;

	CHECK(n < len && buf[n] == '\0' && strlen(buf) == n, "length %zu",
	    n);
	j = cJSON_Parse(buf);
	CHECK(j != NULL && cJSON_IsObject(j), "not a JSON object: %s", buf);
	return j;
}

static const char *
str(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsString(v) ? v->valuestring : cJSON_IsNull(v) ?
	    "(null)" : v == NULL ? "(absent)" : "(not a string)";
}

static double
num(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsNumber(v) ? v->valuedouble : cJSON_IsNull(v) ? -1 :
	    -2;
}

static int
boolean(const cJSON *j, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);

	return cJSON_IsBool(v) ? cJSON_IsTrue(v) : -1;
}

static void
response_payload_has_the_fields_and_no_secret(void)
{
	struct audit_event	 e;
	char			 buf[HOOK_PAYLOAD_MAX];
	cJSON			*j;

	memset(&e, 0, sizeof e);
	e.event = "request";
	e.door = "connect";
	e.host = "api.github.com";
	e.port = 443;
	e.method = "POST";
	e.path = "/repos/a/b/issues";
	e.pathlen = strlen(e.path);
	e.decision = "allow";
	e.rule = "*.github.com";
	e.status = 201;
	e.bytes_up = 10;
	e.bytes_down = 2000;
	e.ms = 42;
	e.mitm = true;
	e.secret = "GH_TOKEN_BINDING";
	j = payload(HOOK_RESPONSE, &e, true, buf, sizeof buf);
	CHECK_STR(str(j, "timestamp"), "2023-11-14T22:13:20.123Z");
	CHECK_STR(str(j, "event"), "response");
	CHECK_STR(str(j, "audit_event"), "request");
	CHECK_STR(str(j, "door"), "connect");
	CHECK_STR(str(j, "method"), "POST");
	CHECK_STR(str(j, "url"), "https://api.github.com/repos/a/b/issues");
	CHECK_STR(str(j, "host"), "api.github.com");
	CHECK(num(j, "port") == 443, "port");
	CHECK(num(j, "status") == 201, "status");
	CHECK(boolean(j, "secret_injected") == 1, "secret_injected");
	CHECK(num(j, "latency_ms") == 42, "latency");
	CHECK(num(j, "bytes_up") == 10 && num(j, "bytes_down") == 2000,
	    "bytes");
	CHECK_STR(str(j, "rule"), "*.github.com");
	CHECK(cJSON_GetObjectItem(j, "provider") == NULL, "llm fields");
	/* Whether a secret went in, never which binding. */
	CHECK(strstr(buf, "GH_TOKEN_BINDING") == NULL, "binding: %s", buf);
	cJSON_Delete(j);
}

static void
urls_have_no_query_and_the_right_authority(void)
{
	static const struct {
		const char	*host;
		unsigned	 port;
		const char	*path;		/* NULL: a tunnel */
		bool		 tls;
		const char	*url;
	} t[] = {
		{ "a.test", 80, "/x", false, "http://a.test/x" },
		{ "a.test", 8080, "/x", false, "http://a.test:8080/x" },
		{ "a.test", 443, "/x", true, "https://a.test/x" },
		{ "a.test", 80, "/x", true, "https://a.test:80/x" },
		{ "::1", 8443, "/v1", true, "https://[::1]:8443/v1" },
		/* A query or fragment that slipped through is cut. */
		{ "a.test", 80, "/search?q=secret", false,
		  "http://a.test/search" },
		{ "a.test", 80, "/p#frag", false, "http://a.test/p" },
		{ "a.test", 80, "", false, "http://a.test/" },
		{ "a.test", 80, "?only=query", false, "http://a.test/" },
		{ "a.test", 443, NULL, false, "(null)" },
	};
	struct audit_event	 e;
	char			 buf[HOOK_PAYLOAD_MAX];
	cJSON			*j;

	for (size_t i = 0; i < NELEM(t); i++) {
		memset(&e, 0, sizeof e);
		e.event = "request";
		e.host = t[i].host;
		e.port = t[i].port;
		e.path = t[i].path;
		e.pathlen = t[i].path ? strlen(t[i].path) : 0;
		j = payload(HOOK_RESPONSE, &e, t[i].tls, buf, sizeof buf);
		CHECK_STR(str(j, "url"), t[i].url);
		CHECK(strstr(buf, "q=secret") == NULL && strstr(buf, "only=") ==
		    NULL, "case %zu: a query in %s", i, buf);
		cJSON_Delete(j);
	}
}

static void
request_deny_llm_and_budget_payloads(void)
{
	struct audit_event	 e;
	struct audit_llm	 l;
	char			 buf[HOOK_PAYLOAD_MAX];
	cJSON			*j;

	memset(&e, 0, sizeof e);
	e.event = "request";
	e.door = "http";
	e.host = "plain.test";
	e.port = 80;
	e.method = "GET";
	e.path = "/";
	e.pathlen = 1;
	e.status = 200;		/* not known yet at "request" time */
	e.ms = 3;
	j = payload(HOOK_REQUEST, &e, false, buf, sizeof buf);
	CHECK_STR(str(j, "event"), "request");
	CHECK_STR(str(j, "audit_event"), "(null)");
	CHECK(num(j, "status") == -1, "status is null");
	CHECK(num(j, "latency_ms") == -1, "latency is null");
	CHECK(boolean(j, "secret_injected") == 0, "no secret");
	CHECK(cJSON_GetObjectItem(j, "bytes_up") == NULL, "bytes");
	cJSON_Delete(j);

	memset(&e, 0, sizeof e);
	e.event = "deny";
	e.door = "socks5";
	e.host = "evil.test";
	e.port = 443;
	e.decision = "deny";
	e.rule = "evil.test";
	e.reason = "evil.test is denied (--deny evil.test)";
	e.status = 403;
	j = payload(HOOK_DENY, &e, false, buf, sizeof buf);
	CHECK_STR(str(j, "event"), "deny");
	CHECK_STR(str(j, "rule"), "evil.test");
	CHECK_STR(str(j, "reason"), "evil.test is denied (--deny evil.test)");
	CHECK_STR(str(j, "url"), "(null)");
	CHECK(num(j, "status") == 403, "status");
	cJSON_Delete(j);

	memset(&l, 0, sizeof l);
	l.provider = "anthropic";
	l.model = "claude-x";
	l.stream = true;
	l.input = 11;
	l.output = 22;
	l.cache_read = 3;
	l.cache_write = 4;
	l.ttfb_ms = 150;
	memset(&e, 0, sizeof e);
	e.event = "llm";
	e.host = "api.anthropic.com";
	e.port = 443;
	e.method = "POST";
	e.path = "/v1/messages";
	e.pathlen = strlen(e.path);
	e.status = 200;
	e.llm = &l;
	j = payload(HOOK_LLM, &e, true, buf, sizeof buf);
	CHECK_STR(str(j, "event"), "llm");
	CHECK_STR(str(j, "url"), "https://api.anthropic.com/v1/messages");
	CHECK_STR(str(j, "provider"), "anthropic");
	CHECK_STR(str(j, "model"), "claude-x");
	CHECK(boolean(j, "stream") == 1, "stream");
	CHECK(num(j, "input_tokens") == 11 && num(j, "output_tokens") == 22 &&
	    num(j, "cache_read_tokens") == 3 &&
	    num(j, "cache_write_tokens") == 4, "tokens");
	CHECK(boolean(j, "estimated") == 0, "estimated");
	CHECK(num(j, "ttfb_ms") == 150, "ttfb");
	cJSON_Delete(j);

	e.event = "budget";
	e.llm = NULL;
	e.reason = "egress-run: LLM token budget exhausted";
	j = payload(HOOK_LLM, &e, true, buf, sizeof buf);
	CHECK_STR(str(j, "event"), "budget");
	CHECK(cJSON_GetObjectItem(j, "provider") == NULL, "no llm fields");
	cJSON_Delete(j);
}

/* Hostile strings and every buffer size: still one valid JSON object. */
static void
payloads_stay_valid_json_at_any_size(void)
{
	struct audit_event	 e;
	char			 reason[6000], path[1100], *buf;
	cJSON			*j;

	memset(reason, 'r', sizeof reason - 1);
	reason[sizeof reason - 1] = '\0';
	memcpy(reason, "quote\" backslash\\ nl\n tab\t bad\xff utf8 \xc3\xa9 ",
	    40);
	memset(path, 'p', sizeof path);
	path[0] = '/';
	memset(&e, 0, sizeof e);
	e.event = "error";
	e.door = "http";
	e.host = "h.test";
	e.port = 80;
	e.method = "GET";
	e.path = path;
	e.pathlen = sizeof path;	/* not NUL-terminated */
	e.reason = reason;
	e.status = 502;
	for (size_t len = 64; len <= HOOK_PAYLOAD_MAX; len += len < 700 ?
	    1 : 97) {
		struct timeval now = { 0, 0 };
		size_t n;

		buf = malloc(len);
		n = hooks_payload(HOOK_RESPONSE, &e, false, &now, buf, len);
		CHECK(n < len && buf[n] == '\0', "len %zu: %zu", len, n);
		j = cJSON_Parse(buf);
		CHECK(j != NULL, "len %zu: not JSON: %s", len, buf);
		if (j != NULL && len >= 400)
			CHECK_STR(str(j, "event"), "response");
		cJSON_Delete(j);
		free(buf);
	}
	buf = malloc(HOOK_PAYLOAD_MAX);
	j = payload(HOOK_RESPONSE, &e, false, buf, HOOK_PAYLOAD_MAX);
	CHECK(strncmp(str(j, "reason"), "quote\" backslash\\ nl\n tab\t "
	    "bad\xef\xbf\xbd utf8 \xc3\xa9 ", 40) == 0, "escaped: %.60s",
	    str(j, "reason"));
	CHECK(strlen(str(j, "url")) == strlen("http://h.test") + sizeof path,
	    "url %zu", strlen(str(j, "url")));
	cJSON_Delete(j);
	free(buf);
	/* Too small for anything: an empty string, not an overflow. */
	{
		char tiny[8];
		struct timeval now = { 0, 0 };

		CHECK(hooks_payload(HOOK_DENY, &e, false, &now, tiny,
		    sizeof tiny) == 0 && tiny[0] == '\0', "tiny");
	}
}

static char *
slurp(const char *path)
{
	FILE	*f = fopen(path, "r");
	char	*buf;
	long	 n;

	if (f == NULL)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

static size_t
count_lines(const char *text)
{
	size_t n = 0;

	for (const char *p = text; *p != '\0'; p++)
		n += *p == '\n';
	return n;
}

static void
file_hooks_append_json_lines_by_kind(void)
{
	struct config	 cfg;
	struct hooks	*hs;
	struct audit_event e;
	char		 deny[512], resp[512], spec[600], err[256], *text;
	int		 fd;

	snprintf(deny, sizeof deny, "%s/deny.jsonl", tmpdir);
	snprintf(resp, sizeof resp, "%s/resp.jsonl", tmpdir);
	/* Appended to, never truncated. */
	fd = open(deny, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd != -1 && write(fd, "old\n", 4) == 4, "seed");
	close(fd);
	config_init(&cfg);
	snprintf(spec, sizeof spec, "d=deny:file:%s", deny);
	strlist_add(&cfg.hooks, spec);
	snprintf(spec, sizeof spec, "response:file:%s", resp);
	strlist_add(&cfg.hooks, spec);
	hs = hooks_new(&cfg, NULL, NULL, err, sizeof err);
	CHECK(hs != NULL, "%s", err);
	if (hs == NULL)
		return;
	CHECK(hooks_count(hs) == 2, "count");
	memset(&e, 0, sizeof e);
	e.host = "x.test";
	e.port = 443;
	e.event = "deny";
	hooks_emit(hs, &e, false);
	hooks_emit(hs, &e, false);
	e.event = "connect";
	hooks_emit(hs, &e, false);
	e.event = "llm";		/* no hook for it */
	hooks_emit(hs, &e, false);
	hooks_emit(NULL, &e, false);	/* a no-op */
	hooks_flush(hs, 100);		/* nothing pending: at once */
	CHECK(hooks_drops(hs) == 0, "drops %llu",
	    (unsigned long long)hooks_drops(hs));
	{
		struct hook_stats st;

		hooks_stats(hs, 0, &st);
		CHECK_STR(st.name, "d");
		CHECK(st.delivered == 2 && st.failed == 0 && st.dropped == 0,
		    "deny stats");
		hooks_stats(hs, 1, &st);
		CHECK(strstr(st.name, "response:file:") == st.name, "%s",
		    st.name);
		CHECK(st.delivered == 1, "response stats");
	}
	hooks_free(hs);
	text = slurp(deny);
	CHECK(strncmp(text, "old\n", 4) == 0, "appended: %.40s", text);
	CHECK(count_lines(text) == 3, "deny lines: %s", text);
	for (char *line = strchr(text, '\n') + 1, *nl; *line != '\0';
	    line = nl + 1) {
		cJSON *j;

		nl = strchr(line, '\n');
		*nl = '\0';
		j = cJSON_Parse(line);
		CHECK(j != NULL, "line: %s", line);
		CHECK_STR(str(j, "event"), "deny");
		cJSON_Delete(j);
	}
	free(text);
	text = slurp(resp);
	CHECK(count_lines(text) == 1 && strstr(text, "\"event\":\"response\"")
	    != NULL && strstr(text, "\"audit_event\":\"connect\"") != NULL,
	    "response file: %s", text);
	free(text);
	{
		struct stat st;
		CHECK(stat(resp, &st) == 0 && (st.st_mode & 077) == 0,
		    "created 0600");
	}
	config_free(&cfg);
}

static void
bad_hooks_fail_at_start_naming_the_hook(void)
{
	static const struct {
		const char	*spec;
		const char	*err;
	} t[] = {
		{ "deny:file:/nonexistent-dir/x.jsonl", "/nonexistent-dir" },
		{ "deny:https://h.test/in?token=s3cr3t", "built-in proxy" },
		{ "nope:file:/x", "unknown event" },
	};
	struct config	 cfg;
	char		 err[512];

	for (size_t i = 0; i < NELEM(t); i++) {
		config_init(&cfg);
		strlist_add(&cfg.hooks, t[i].spec);
		err[0] = '\0';
		CHECK(hooks_new(&cfg, NULL, NULL, err, sizeof err) == NULL,
		    "case %zu accepted", i);
		CHECK(strstr(err, t[i].err) != NULL, "case %zu: '%s'", i, err);
		CHECK(strstr(err, "s3cr3t") == NULL, "case %zu: query shown: "
		    "'%s'", i, err);
		config_free(&cfg);
	}
	/* Names must differ. */
	config_init(&cfg);
	strlist_add(&cfg.hooks, "a=deny:file:/dev/null");
	strlist_add(&cfg.hooks, "a=llm:file:/dev/null");
	CHECK(hooks_new(&cfg, NULL, NULL, err, sizeof err) == NULL &&
	    strstr(err, "'a'") != NULL, "duplicate names: %s", err);
	config_free(&cfg);
	/* No hooks at all is a valid, empty set. */
	config_init(&cfg);
	{
		struct hooks *hs = hooks_new(&cfg, NULL, NULL, err, sizeof err);
		CHECK(hs != NULL && hooks_count(hs) == 0, "empty");
		hooks_flush(hs, 10);
		hooks_free(hs);
	}
	hooks_free(NULL);
	hooks_flush(NULL, 10);
	CHECK(hooks_drops(NULL) == 0, "NULL drops");
	config_free(&cfg);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(specs_parse_or_name_the_mistake);
	RUN(kinds_parse_and_print);
	RUN(audit_events_go_to_their_kind);
	RUN(response_payload_has_the_fields_and_no_secret);
	RUN(urls_have_no_query_and_the_right_authority);
	RUN(request_deny_llm_and_budget_payloads);
	RUN(payloads_stay_valid_json_at_any_size);
	RUN(file_hooks_append_json_lines_by_kind);
	RUN(bad_hooks_fail_at_start_naming_the_hook);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return test_done("test_hooks");
}
