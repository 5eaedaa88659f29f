/* Registration JSON: identity keys, policy keys, "git" and "env", and one
 * line naming the key for every mistake; RFC 3339 times. */
#include <stdlib.h>
#include <string.h>

#include "daemon/registration.h"
#include "test.h"

static int
parse(const char *json, struct registration *r, char *err, size_t errlen)
{
	err[0] = '\0';
	return registration_parse(json, strlen(json), r, err, errlen);
}

static void
a_full_registration_is_read(void)
{
	struct registration	r;
	char			err[512];
	const char		*j = "{\"id\":\"agent-1\",\"source\":"
	    "[\"127.0.0.2\",\"10.0.0.0/24\"],\"token\":true,"
	    "\"expires_at\":\"2030-01-02T03:04:05Z\",\"allow\":[\"a.test\"],"
	    "\"deny\":[\"b.test\"],\"resolve\":[\"a.test:443:127.0.0.1\"],"
	    "\"secrets\":[\"K:a.test\"],\"env\":{\"K\":\"sk-123456789\"},"
	    "\"rules\":[\"deny POST a.test ^/x\"],\"preset\":[\"github\"],"
	    "\"git\":{\"repos\":[\"github.com/o/r\"],\"protect\":[\"main\"],"
	    "\"allow_force\":true},\"llm_budget\":1000,"
	    "\"llm_max_requests\":5,\"hooks\":[\"deny:file:/tmp/x\"]}";

	CHECK(parse(j, &r, err, sizeof err) == 0, "%s", err);
	CHECK_STR(r.id, "agent-1");
	CHECK(r.sources.n == 2, "%zu sources", r.sources.n);
	CHECK(r.token && r.has_token, "token");
	CHECK(r.has_expires && r.expires == 1893553445, "expires %lld",
	    (long long)r.expires);
	CHECK(r.cfg.allow.n == 1 && r.cfg.deny.n == 1 && r.cfg.resolve.n == 1,
	    "lists");
	CHECK(r.cfg.secrets.n == 1 && r.env.n == 1, "secrets/env");
	CHECK_STR(r.env.v[0], "K=sk-123456789");
	CHECK(r.cfg.rules.n == 1 && r.cfg.presets.n == 1, "rules");
	CHECK(r.cfg.git_repos.n == 1 && r.cfg.git_protect.n == 1 &&
	    r.cfg.git_allow_force && !r.cfg.git_allow_delete, "git");
	CHECK(r.cfg.llm_budget == 1000 && r.cfg.llm_max_requests == 5, "llm");
	CHECK(r.cfg.hooks.n == 1, "hooks");
	registration_free(&r);

	CHECK(parse("{}", &r, err, sizeof err) == 0, "%s", err);
	CHECK(r.id == NULL && !r.has_token && !r.has_expires &&
	    r.sources.n == 0, "empty");
	registration_free(&r);
	CHECK(parse("{\"source\":\"::1\",\"expires_at\":null}", &r, err,
	    sizeof err) == 0, "%s", err);
	CHECK(r.sources.n == 1 && r.has_expires && r.expires == 0, "v6");
	registration_free(&r);
}

static void
mistakes_are_named(void)
{
	static const struct {
		const char	*json;
		const char	*want;		/* in the message */
	} t[] = {
		{ "", "invalid JSON" },
		{ "{", "invalid JSON" },
		{ "[]", "JSON object" },
		{ "{} {}", "text after" },
		{ "{\"listen\":\"127.0.0.1:1\"}", "'listen' is not a sandbox's" },
		{ "{\"external\":\"x\"}", "'external'" },
		{ "{\"nope\":1}", "'nope'" },
		{ "{\"id\":\"\"}", "'id'" },
		{ "{\"id\":\"a:b\"}", "'id'" },
		{ "{\"id\":\"-a\"}", "'id'" },
		{ "{\"id\":7}", "'id'" },
		{ "{\"id\":\"a\",\"id\":\"b\"}", "twice" },
		{ "{\"source\":\"example.com\"}", "not an address or CIDR" },
		{ "{\"source\":\"*\"}", "not an address or CIDR" },
		{ "{\"source\":[1]}", "'source'" },
		{ "{\"source\":{}}", "'source'" },
		{ "{\"token\":\"abc\"}", "'token'" },
		{ "{\"expires_at\":\"tomorrow\"}", "'expires_at'" },
		{ "{\"expires_at\":5}", "'expires_at'" },
		{ "{\"git\":[]}", "'git'" },
		{ "{\"git\":{\"repos\":[],\"repos\":[],\"repos\":[],"
		  "\"repos\":[],\"repos\":[],\"repos\":[]}}", "'git'" },
		{ "{\"git\":{\"repo\":[]}}", "git.repo" },
		{ "{\"git\":{\"repos\":[\"a/b\"]},\"git_repos\":[\"c/d\"]}",
		  "twice" },
		{ "{\"env\":[]}", "'env'" },
		{ "{\"env\":{\"K\":1}}", "'env'" },
		{ "{\"env\":{\"A=B\":\"x\"}}", "'env'" },
		{ "{\"allow\":\"a.test\"}", "allow" },
		{ "{\"allow\":[1]}", "allow" },
		{ "{\"llm_budget\":-1}", "llm_budget" },
		{ "{\"llm_budget\":\"10\"}", "llm_budget" },
		{ "{\"hooks\":[\"bogus\"]}", "hook" },
	};
	struct registration	r;
	char			err[512];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int rc = parse(t[i].json, &r, err, sizeof err);

		CHECK(rc == -1, "'%s' accepted", t[i].json);
		CHECK(strstr(err, t[i].want) != NULL && strchr(err, '\n') ==
		    NULL, "'%s': '%s' lacks '%s'", t[i].json, err, t[i].want);
		registration_free(&r);
	}
	{
		/* Many keys: refused before they are compared pairwise. */
		size_t	n = 60000, off = 1;	/* under 1 MiB */
		char	*big = malloc(n * 12 + 3);

		big[0] = '{';
		for (size_t i = 0; i < n; i++)
			off += (size_t)sprintf(big + off, "%s\"k%zu\":1",
			    i ? "," : "", i);
		strcpy(big + off, "}");
		CHECK(registration_parse(big, strlen(big), &r, err,
		    sizeof err) == -1 && strstr(err, "keys") != NULL, "%s",
		    err);
		registration_free(&r);
		free(big);
	}
	CHECK(registration_parse("{}", REGISTRATION_MAX + 1, &r, err,
	    sizeof err) == -1 && strstr(err, "1 MiB") != NULL, "%s", err);
	registration_free(&r);
}

static void
times_are_rfc3339(void)
{
	static const struct {
		const char	*s;
		long long	 t;		/* -1: refused */
	} t[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-11-25T12:00:00Z", 1795608000 },
		{ "2026-11-25t12:00:00z", 1795608000 },
		{ "2026-11-25T12:00:00.123456Z", 1795608000 },
		{ "2026-11-25T13:30:00+01:30", 1795608000 },
		{ "2026-11-25T10:00:00-02:00", 1795608000 },
		{ "2024-02-29T00:00:00Z", 1709164800 },
		{ "2023-02-29T00:00:00Z", -1 },
		{ "2026-13-01T00:00:00Z", -1 },
		{ "2026-11-25T24:00:00Z", -1 },
		{ "2026-11-25T12:00:00", -1 },
		{ "2026-11-25T12:00:00+0100", -1 },
		{ "2026-11-25T12:00:00.Z", -1 },
		{ "2026-11-25 12:00:00Z", 1795608000 },
		{ "2026-11-25T12:00:00Zjunk", -1 },
		{ "1969-12-31T23:59:59Z", -1 },
		{ "", -1 },
	};

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		time_t	v = 0;
		int	rc = registration_time(t[i].s, &v);

		if (t[i].t < 0)
			CHECK(rc == -1, "'%s' accepted", t[i].s);
		else
			CHECK(rc == 0 && (long long)v == t[i].t,
			    "'%s': %d %lld", t[i].s, rc, (long long)v);
	}
	{
		char buf[32];

		registration_format_time(1795608000, buf, sizeof buf);
		CHECK_STR(buf, "2026-11-25T12:00:00Z");
	}
	CHECK(registration_id_ok("a") && registration_id_ok("sb-1.x_y") &&
	    !registration_id_ok("") && !registration_id_ok("a b") &&
	    !registration_id_ok(".a"), "ids");
}

/* Found by the fuzzer: a key with a newline made a two-line error. */
static void
errors_are_one_line(void)
{
	static const char *const bad[] = {
		"{\"hooks\": [{\"eve\\nnt\": \"deny\"}]}",
		"{\"col\\r\\nour\": 1}",
		"{\"id\": \"a\\nb\"}",
	};
	struct registration	r;
	char			err[512];

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		CHECK(registration_parse(bad[i], strlen(bad[i]), &r, err,
		    sizeof err) != 0, "accepted: %s", bad[i]);
		for (const char *p = err; *p != '\0'; p++)
			CHECK((unsigned char)*p >= 0x20 && *p != 0x7f,
			    "case %zu: control byte %#x in '%s'", i,
			    (unsigned char)*p, err);
		registration_free(&r);
	}
}

int
main(void)
{
	RUN(a_full_registration_is_read);
	RUN(mistakes_are_named);
	RUN(times_are_rfc3339);
	RUN(errors_are_one_line);
	return test_done("registration");
}
