/*
 * rules.c: path decoding and normalisation, --rule and config rule parsing
 * (good and bad, with their messages), the evaluation table (first match
 * wins, anchoring, encodings and dot-segments that must not dodge a rule,
 * host patterns), body rules on decoded JSON, GraphQL mutation rules and
 * the GitHub preset.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "builtin/addr.h"
#include "builtin/rules.h"
#include "tests/unit/test.h"

static void
dest_of(const char *authority, struct dest *d)
{
	if (addr_parse_authority(authority, strlen(authority), 443, d) != 0) {
		fprintf(stderr, "bad test authority '%s'\n", authority);
		abort();
	}
}

/* --- paths --------------------------------------------------------------- */

static const struct {
	const char	*in;
	int		 rc;
	const char	*out;
} paths[] = {
	{ "/", 0, "/" },
	{ "/a/b", 0, "/a/b" },
	{ "/a/b/", 0, "/a/b" },
	{ "/a//b", 0, "/a/b" },
	{ "//a", 0, "/a" },
	{ "///", 0, "/" },
	{ "/a/./b", 0, "/a/b" },
	{ "/a/../b", 0, "/b" },
	{ "/../../a", 0, "/a" },
	{ "/a/b/..", 0, "/a" },
	{ "/a/..", 0, "/" },
	{ "/a/.", 0, "/a" },
	{ "/a/.%2E//b/%2e/c/", 0, "/b/c" },
	{ "/a%2Fb", 0, "/a/b" },
	{ "/a%2fb%2F..%2Fc", 0, "/a/c" },
	{ "/%2e%2e/%2E%2e/x", 0, "/x" },
	{ "/repos/o/r/pulls/1/merge?x=1", 0, "/repos/o/r/pulls/1/merge" },
	{ "/a?b/../c", 0, "/a" },
	{ "/a?%zz", 0, "/a" },
	{ "/%41%42%7e", 0, "/AB~" },
	{ "/a+b", 0, "/a+b" },
	{ "/a;b=c/d", 0, "/a;b=c/d" },
	{ "/a\\b", 0, "/a\\b" },
	{ "/...", 0, "/..." },
	{ "/.a/..b", 0, "/.a/..b" },
	{ "/a%0Ab", 0, "/a\nb" },
	{ "/%25", 0, "/%" },
	{ "/%252e%252e/x", 0, "/%2e%2e/x" },	/* decoded once */
	{ "*", 0, "*" },
	{ "", RULES_E_PATH, "" },
	{ "a/b", RULES_E_PATH, "" },
	{ "%2Fa", RULES_E_PATH, "" },
	{ "?x", RULES_E_PATH, "" },
	{ "**", RULES_E_PATH, "" },
	{ "/a#b", RULES_E_PATH, "" },
	{ "/a%", RULES_E_ESCAPE, "" },
	{ "/a%4", RULES_E_ESCAPE, "" },
	{ "/a%G0", RULES_E_ESCAPE, "" },
	{ "/a%0G", RULES_E_ESCAPE, "" },
	{ "/a%%41", RULES_E_ESCAPE, "" },
	{ "/a%00", RULES_E_NUL, "" },
	{ "/a%00b?c", RULES_E_NUL, "" },
};

static void
decode_table(void)
{
	char	out[RULES_PATH_MAX + 2];
	size_t	i, n;
	int	r;

	for (i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		r = rules_decode_path(paths[i].in, strlen(paths[i].in), out,
		    sizeof out, &n);
		CHECK(r == paths[i].rc, "'%s': rc %d, want %d", paths[i].in,
		    r, paths[i].rc);
		if (r == 0) {
			CHECK(strcmp(out, paths[i].out) == 0 &&
			    n == strlen(paths[i].out), "'%s' -> '%s', want "
			    "'%s'", paths[i].in, out, paths[i].out);
		}
	}
}

static void
decode_edges(void)
{
	char	*big, out[RULES_PATH_MAX + 2], small[8];
	size_t	 n;

	/* a NUL byte inside the given length */
	CHECK(rules_decode_path("/a\0b", 4, out, sizeof out, &n) ==
	    RULES_E_NUL, "raw NUL");
	/* the length is respected: no NUL terminator needed */
	CHECK(rules_decode_path("/abc/def", 4, out, sizeof out, &n) == 0 &&
	    strcmp(out, "/abc") == 0, "prefix");
	/* the bound */
	big = malloc(RULES_PATH_MAX + 1);
	memset(big, 'a', RULES_PATH_MAX + 1);
	big[0] = '/';
	CHECK(rules_decode_path(big, RULES_PATH_MAX, out, sizeof out, &n) ==
	    0 && n == RULES_PATH_MAX, "at the bound");
	CHECK(rules_decode_path(big, RULES_PATH_MAX + 1, out, sizeof out,
	    &n) == RULES_E_PATH, "over the bound");
	free(big);
	/* outsize >= len + 2 */
	CHECK(rules_decode_path("/abcdefg", 8, small, sizeof small, &n) ==
	    RULES_E_PATH, "small buffer");
	CHECK(rules_decode_path("/abcdef", 6, small, sizeof small, &n) == 0,
	    "fitting buffer");
}

/* --- parsing ------------------------------------------------------------ */

static const struct {
	const char	*spec;
	const char	*text;
} good_specs[] = {
	{ "deny PUT api.github.com /repos/[^/]+/[^/]+/pulls/\\d+/merge no",
	    "deny PUT api.github.com /repos/[^/]+/[^/]+/pulls/\\d+/merge" },
	{ "allow GET,HEAD *.example.com /.*",
	    "allow GET,HEAD *.example.com /.*" },
	{ "  deny\t*   *   /admin(/.*)?   ", "deny * * /admin(/.*)?" },
	{ "deny get,Post,m-search example.com:8443 /x",
	    "deny GET,POST,M-SEARCH example.com:8443 /x" },
	{ "deny PATCH 10.0.0.0/8 / reason with  spaces",
	    "deny PATCH 10.0.0.0/8 /" },
};

static const struct {
	const char	*spec;
	const char	*err;		/* a substring */
} bad_specs[] = {
	{ "", "too few fields" },
	{ "deny", "too few fields" },
	{ "deny GET example.com", "too few fields" },
	{ "block GET example.com /x", "action 'block' is neither" },
	{ "Deny GET example.com /x", "action 'Deny'" },
	{ "deny GET|POST example.com /x", "bad method 'GET|POST'" },
	{ "deny GET,,POST example.com /x", "empty method" },
	{ "deny GET, example.com /x", "empty method" },
	{ "deny GET,* example.com /x", "'*' must stand alone" },
	{ "deny *,GET example.com /x", "'*' must stand alone" },
	{ "deny ** example.com /x", "bad method '**'" },
	{ "deny GETTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTTT example.com /x",
	    "too long" },
	{ "deny GET foo.*.com /x", "host: bad pattern" },
	{ "deny GET 10.0.0.1/8 /x", "host: bad pattern" },
	{ "deny GET example.com /(", "path regex: missing closing "
	    "parenthesis at column 3" },
	{ "deny GET example.com /[z-a]", "path regex: range out of order in "
	    "character class at column 5" },
	{ "deny GET example.com /x\\", "path regex: \\ at end of pattern at "
	    "column 4" },
};

static void
spec_table(void)
{
	struct rules	*r = rules_new();
	char		 err[256];
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof good_specs / sizeof good_specs[0]; i++) {
		rc = rules_add_spec(r, good_specs[i].spec, err, sizeof err);
		CHECK(rc == 0, "'%s' refused: %s", good_specs[i].spec, err);
		if (rc == 0)
			CHECK_STR(rules_text(r, rules_count(r) - 1),
			    good_specs[i].text);
	}
	CHECK(rules_count(r) == sizeof good_specs / sizeof good_specs[0],
	    "count %zu", rules_count(r));
	CHECK_STR(rules_host(r, 1), "*.example.com");
	CHECK(rules_text(r, 99) == NULL, "out of range");
	for (i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
		err[0] = '\0';
		rc = rules_add_spec(r, bad_specs[i].spec, err, sizeof err);
		CHECK(rc == -1, "'%s' accepted", bad_specs[i].spec);
		CHECK(strstr(err, bad_specs[i].err) != NULL,
		    "'%s': error '%s' lacks '%s'", bad_specs[i].spec, err,
		    bad_specs[i].err);
		CHECK(strncmp(err, "bad rule '", 10) == 0, "'%s': '%s'",
		    bad_specs[i].spec, err);
		CHECK(strchr(err, '\n') == NULL, "one line");
	}
	CHECK(rules_count(r) == sizeof good_specs / sizeof good_specs[0],
	    "bad specs added nothing");
	CHECK(!rules_need_bodies(r), "no body rules");
	rules_free(r);
	rules_free(NULL);
}

static const struct {
	const char	*json;
	const char	*text;		/* NULL: bad */
	const char	*err;
} json_rules[] = {
	{ "{\"action\":\"deny\",\"methods\":[\"PUT\"],"
	    "\"host\":\"api.github.com\",\"path\":\"/x\",\"reason\":\"no\"}",
	    "deny PUT api.github.com /x", NULL },
	{ "{\"action\":\"deny\",\"methods\":\"post,PUT\",\"host\":\"h\","
	    "\"body\":\"secret\"}", "deny POST,PUT h body=secret", NULL },
	{ "{\"action\":\"deny\",\"host\":\"h\","
	    "\"mutations\":[\"mergePullRequest\",\"deleteRef\"]}",
	    "deny * h mutations=mergePullRequest,deleteRef", NULL },
	{ "{\"host\":\"h\",\"action\":\"allow\",\"methods\":\"*\","
	    "\"path\":\"/\"}",
	    "allow * h /", NULL },
	{ "[]", NULL, "must be an object" },
	{ "{\"host\":\"h\"}", NULL, "no \"action\"" },
	{ "{\"action\":\"deny\"}", NULL, "no \"host\"" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"metods\":\"GET\"}", NULL,
	    "unknown key \"metods\"" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"host\":\"i\"}", NULL,
	    "key \"host\" repeated" },
	{ "{\"action\":1,\"host\":\"h\"}", NULL,
	    "\"action\" must be a string" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"methods\":[]}", NULL,
	    "\"methods\" is empty" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"methods\":[\"GET\",2]}", NULL,
	    "\"methods\" must hold strings" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"methods\":[\"*\",\"GET\"]}",
	    NULL,
	    "'*' must stand alone" },
	{ "{\"action\":\"deny\",\"host\":\"*.\"}", NULL, "host: bad pattern" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"path\":\"(\"}", NULL,
	    "path regex: missing closing parenthesis at column 2" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"body\":\"a{2,1}\"}", NULL,
	    "body regex: numbers out of order" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"mutations\":\"x\"}", NULL,
	    "\"mutations\" must be a non-empty array" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"mutations\":[\"bad-name\"]}",
	    NULL, "not a GraphQL field name" },
	{ "{\"action\":\"deny\",\"host\":\"h\",\"reason\":\"a\\nb\"}", NULL,
	    "one line" },
};

static void
json_table(void)
{
	struct rules	*r = rules_new();
	cJSON		*j;
	char		 err[256];
	size_t		 i;
	int		 rc;

	for (i = 0; i < sizeof json_rules / sizeof json_rules[0]; i++) {
		j = cJSON_Parse(json_rules[i].json);
		CHECK(j != NULL, "test JSON %zu", i);
		err[0] = '\0';
		rc = rules_add_json(r, j, err, sizeof err);
		if (json_rules[i].text != NULL) {
			CHECK(rc == 0, "%s refused: %s", json_rules[i].json,
			    err);
			if (rc == 0)
				CHECK_STR(rules_text(r, rules_count(r) - 1),
				    json_rules[i].text);
		} else {
			CHECK(rc == -1, "%s accepted", json_rules[i].json);
			CHECK(strstr(err, json_rules[i].err) != NULL,
			    "%s: '%s' lacks '%s'", json_rules[i].json, err,
			    json_rules[i].err);
			CHECK(strncmp(err, "bad rule ", 9) == 0, "'%s'", err);
		}
		cJSON_Delete(j);
	}
	CHECK(rules_add_json(r, NULL, err, sizeof err) == -1, "NULL");
	CHECK(rules_need_bodies(r), "body rules");
	rules_free(r);
}

/* --- evaluation ----------------------------------------------------------- */

struct eval_case {
	const char	*method;
	const char	*authority;
	const char	*path;
	const char	*body;		/* given when NEED_BODY comes */
	int		 rc;		/* of the last call */
	int		 action;
	int		 index;		/* -1: none */
	const char	*reason;	/* a substring, or NULL */
};

static void
run_cases(struct rules *r, const struct eval_case *c, size_t n,
    const char *what)
{
	struct rule_verdict	v;
	struct dest		d;
	size_t			i;
	int			rc;

	for (i = 0; i < n; i++) {
		dest_of(c[i].authority, &d);
		rc = rules_eval(r, c[i].method, strlen(c[i].method), &d,
		    c[i].path, strlen(c[i].path), &v);
		if (rc == RULES_NEED_BODY) {
			CHECK(v.action == RULES_NEED_BODY && v.rule != NULL,
			    "need body verdict");
			rc = rules_eval_body(r, c[i].method,
			    strlen(c[i].method), &d, c[i].path,
			    strlen(c[i].path), c[i].body,
			    c[i].body ? strlen(c[i].body) : 0, &v);
			CHECK(rc != RULES_NEED_BODY, "need body twice");
		}
		CHECK(rc == c[i].rc, "%s: %s %s %s [%s]: rc %d, want %d (%s)",
		    what, c[i].method, c[i].authority, c[i].path,
		    c[i].body ? c[i].body : "", rc, c[i].rc, v.reason);
		CHECK((int)v.action == c[i].action, "%s: %s %s %s [%s]: "
		    "action %d, want %d (%s)", what, c[i].method,
		    c[i].authority, c[i].path, c[i].body ? c[i].body : "",
		    v.action, c[i].action, v.reason);
		if (c[i].index >= 0)
			CHECK(v.rule != NULL && (int)v.index == c[i].index,
			    "%s: %s %s: rule %zu, want %d", what, c[i].method,
			    c[i].path, v.index, c[i].index);
		else
			CHECK(v.rule == NULL, "%s: %s %s: rule '%s'", what,
			    c[i].method, c[i].path, v.rule);
		if (c[i].reason != NULL)
			CHECK(strstr(v.reason, c[i].reason) != NULL,
			    "%s: %s %s: reason '%s' lacks '%s'", what,
			    c[i].method, c[i].path, v.reason, c[i].reason);
		if (v.action == RULES_DENY)
			CHECK(v.reason[0] != '\0' && strchr(v.reason, '\n') ==
			    NULL, "deny reason '%s'", v.reason);
	}
}

static struct rules *
mk(const char *const *specs, size_t n)
{
	struct rules	*r = rules_new();
	char		 err[256];
	size_t		 i;

	for (i = 0; i < n; i++)
		if (rules_add_spec(r, specs[i], err, sizeof err) != 0) {
			fprintf(stderr, "test rule: %s\n", err);
			abort();
		}
	return r;
}

#define NONE_	0, RULES_NONE, -1, NULL
#define ALLOW_(i)	RULES_ALLOW, RULES_ALLOW, i, NULL
#define DENY_(i, why)	RULES_DENY, RULES_DENY, i, why

static void
eval_table(void)
{
	static const char *const specs[] = {
		"allow GET api.example.com /public/.*",
		"deny * api.example.com /admin(/.*)? admin is off limits",
		"deny DELETE,PUT *.example.com /.* no writes",
		"deny POST 10.0.0.0/8 /.*",
	};
	static const struct eval_case cases[] = {
		{ "GET", "api.example.com", "/public/x", NULL, ALLOW_(0) },
		{ "GET", "api.example.com", "/admin", NULL,
		    DENY_(1, "admin is off limits") },
		{ "GET", "api.example.com", "/admin/", NULL, DENY_(1, NULL) },
		{ "GET", "api.example.com", "/admin?x=1", NULL,
		    DENY_(1, NULL) },
		{ "GET", "api.example.com", "/x/../admin", NULL,
		    DENY_(1, NULL) },
		{ "GET", "api.example.com", "/%61dmin", NULL, DENY_(1, NULL) },
		{ "GET", "api.example.com", "//admin//x", NULL,
		    DENY_(1, NULL) },
		{ "GET", "api.example.com", "/public/../admin", NULL,
		    DENY_(1, NULL) },
		{ "GET", "api.example.com", "/public/%2e%2e/admin", NULL,
		    DENY_(1, NULL) },
		{ "GET", "api.example.com", "/public%2F..%2Fadmin", NULL,
		    DENY_(1, NULL) },
		{ "GET", "api.example.com", "/admin/%0A", NULL,
		    DENY_(1, NULL) },
		{ "GET", "API.EXAMPLE.COM.", "/admin", NULL, DENY_(1, NULL) },
		{ "GET", "api.example.com", "/administrator", NULL, NONE_ },
		{ "GET", "api.example.com", "/x/admin", NULL, NONE_ },
		{ "GET", "api.example.com", "/Admin", NULL, NONE_ },
		{ "GET", "api.example.com", "/public", NULL, NONE_ },
		{ "HEAD", "api.example.com", "/public/x", NULL, NONE_ },
		{ "DELETE", "example.com", "/anything", NULL,
		    DENY_(2, "no writes") },
		{ "delete", "www.example.com", "/x", NULL, DENY_(2, NULL) },
		{ "PuT", "a.b.example.com:8443", "/", NULL, DENY_(2, NULL) },
		{ "DELETEX", "example.com", "/x", NULL, NONE_ },
		{ "DELETE", "evilexample.com", "/x", NULL, NONE_ },
		{ "GET", "other.com", "/admin", NULL, NONE_ },
		{ "POST", "10.1.2.3:80", "/x", NULL,
		    DENY_(3, "refused by request rule 'deny POST 10.0.0.0/8") },
		{ "POST", "[::ffff:10.1.2.3]", "/x", NULL, DENY_(3, NULL) },
		{ "POST", "11.1.2.3", "/x", NULL, NONE_ },
		/* undecodable paths on a named host are refused... */
		{ "GET", "api.example.com", "/admin%00", NULL, RULES_E_NUL,
		    RULES_DENY, 0, "cannot be checked" },
		{ "GET", "api.example.com", "/a%zz", NULL, RULES_E_ESCAPE,
		    RULES_DENY, 0, "percent" },
		{ "POST", "api.example.com", "/a%", NULL, RULES_E_ESCAPE,
		    RULES_DENY, 1, NULL },
		/* ... but a host no rule names is never decoded */
		{ "GET", "other.com", "/admin%00", NULL, NONE_ },
	};
	struct rules	*r = mk(specs, sizeof specs / sizeof specs[0]);
	struct dest	 d;

	run_cases(r, cases, sizeof cases / sizeof cases[0], "eval");
	dest_of("api.example.com", &d);
	CHECK(rules_names_host(r, &d), "api.example.com named");
	dest_of("x.example.com:8080", &d);
	CHECK(rules_names_host(r, &d), "x.example.com named");
	dest_of("10.9.9.9", &d);
	CHECK(rules_names_host(r, &d), "10.9.9.9 named");
	dest_of("other.com", &d);
	CHECK(!rules_names_host(r, &d), "other.com not named");
	rules_free(r);
}

static void
first_match_wins(void)
{
	static const char *const specs[] = {
		"deny GET h.com /x first",
		"allow GET h.com /x",
		"deny GET h.com /.* third",
	};
	static const struct eval_case cases[] = {
		{ "GET", "h.com", "/x", NULL, DENY_(0, "first") },
		{ "GET", "h.com", "/y", NULL, DENY_(2, "third") },
	};
	struct rules	*r = mk(specs, 3);

	run_cases(r, cases, 2, "first");
	rules_free(r);
}

static void
body_rules(void)
{
	static const char *const json[] = {
		"{\"action\":\"deny\",\"methods\":\"POST\","
		    "\"host\":\"api.example.com\",\"path\":\"/graphql\","
		    "\"body\":\"(?m)^secret$\",\"reason\":\"no secrets\"}",
		"{\"action\":\"allow\",\"methods\":\"POST\","
		    "\"host\":\"api.example.com\",\"path\":\"/graphql\"}",
		"{\"action\":\"deny\",\"host\":\"slow.example.com\","
		    "\"body\":\"^(a|a?)+$\"}",
	};
	static const struct eval_case cases[] = {
		{ "POST", "api.example.com", "/graphql", "{\"a\":\"secret\"}",
		    DENY_(0, "no secrets") },
		{ "POST", "api.example.com", "/graphql",
		    "{\"a\":\"s\\u0065cret\"}", DENY_(0, NULL) },
		{ "POST", "api.example.com", "/graphql", "{\"secret\":1}",
		    DENY_(0, NULL) },
		{ "POST", "api.example.com", "/graphql", "[\"x\",[\"secret\"]]",
		    DENY_(0, NULL) },
		{ "POST", "api.example.com", "/graphql", "{\"a\":\"public\"}",
		    ALLOW_(1) },
		{ "POST", "api.example.com", "/graphql",
		    "{\"a\":\"secrets\"}", ALLOW_(1) },
		{ "POST", "api.example.com", "/graphql", "", ALLOW_(1) },
		/* not JSON: as sent */
		{ "POST", "api.example.com", "/graphql", "x\nsecret\ny",
		    DENY_(0, NULL) },
		/* JSON-looking but unparseable: refused (a lenient origin
		 * might still read it as JSON) */
		{ "POST", "api.example.com", "/graphql", "{bad json\nsecret",
		    RULES_E_BODY, RULES_DENY, 0, "cannot be decoded" },
		{ "POST", "api.example.com", "/graphql", "[\"secret\",]",
		    RULES_E_BODY, RULES_DENY, 0, NULL },
		/* a BOM or lenient whitespace does not hide JSON */
		{ "POST", "api.example.com", "/graphql",
		    "\xef\xbb\xbf {\"a\":\"s\\u0065cret\"}", DENY_(0, NULL) },
		{ "POST", "api.example.com", "/graphql",
		    "\f\v{\"a\":\"s\\u0065cret\"}\f", DENY_(0, NULL) },
		{ "POST", "api.example.com", "/graphql",
		    "{\"a\":\"s\\u0065cret\",}", RULES_E_BODY, RULES_DENY, 0,
		    "cannot be decoded" },
		{ "POST", "api.example.com", "/graphql",
		    "{\"a\":\"x\\u0000\nsecret\"}", RULES_E_BODY, RULES_DENY, 0,
		    NULL },
		{ "POST", "api.example.com", "/graphql", NULL, RULES_E_BODY,
		    RULES_DENY, 0, "over 256 KiB" },
		{ "GET", "api.example.com", "/graphql", NULL, NONE_ },
		{ "GET", "slow.example.com", "/", "aaaaaaaaaaaaaaaaaaaaaaaaa"
		    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
		    RULES_E_MATCH, RULES_DENY, 2, "gave up" },
		{ "GET", "slow.example.com", "/", "aaaa", DENY_(2, NULL) },
	};
	struct rules		*r = rules_new();
	struct rule_verdict	 v;
	struct dest		 d;
	cJSON			*j;
	char			 err[256];
	size_t			 i;

	for (i = 0; i < sizeof json / sizeof json[0]; i++) {
		j = cJSON_Parse(json[i]);
		CHECK(rules_add_json(r, j, err, sizeof err) == 0, "%s", err);
		cJSON_Delete(j);
	}
	run_cases(r, cases, sizeof cases / sizeof cases[0], "body");
	/* over the bound by length */
	dest_of("api.example.com", &d);
	CHECK(rules_eval_body(r, "POST", 4, &d, "/graphql", 8, "x",
	    RULES_BODY_MAX + 1, &v) == RULES_E_BODY, "bound");
	rules_free(r);
}

static const struct {
	const char	*json;
	const char	*text;
} texts[] = {
	{ "{\"sha\":\"1a\",\"force\":true}", "sha\n1a\nforce\ntrue\n" },
	{ "[1, 2.5, -3, null, false, \"x\\u0041\"]",
	    "1\n2.5\n-3\nnull\nfalse\nxA\n" },
	{ "{\"a\":{\"b\":[\"c\",{\"d\":\"e\"}]}}", "a\nb\nc\nd\ne\n" },
	{ "\"str\"", "str\n" },
	{ "{}", "" },
	{ "[]", "" },
	{ "{\"k\\u00e9y\":\"l1\\nl2\"}", "k\xc3\xa9y\nl1\nl2\n" },
	{ "{\"a\":1,\"a\":2}", "a\n1\na\n2\n" },
	{ "1e300", "1.0000000000000001e+300\n" },
};

static void
body_text(void)
{
	cJSON	*j;
	char	*t;
	size_t	 i, n;

	for (i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		j = cJSON_Parse(texts[i].json);
		t = rules_body_text(j, &n);
		CHECK(t != NULL && strcmp(t, texts[i].text) == 0 &&
		    n == strlen(texts[i].text), "%s -> '%s'", texts[i].json,
		    t ? t : "(null)");
		free(t);
		cJSON_Delete(j);
	}
	t = rules_body_text(NULL, &n);
	CHECK(t != NULL && n == 0, "NULL");
	free(t);
}

/* --- the GitHub preset ---------------------------------------------------- */

#define GQL(q)	"{\"query\":\"" q "\"}"

static void
preset_github(void)
{
	static const struct eval_case cases[] = {
		{ "PUT", "api.github.com", "/repos/o/r/pulls/1/merge", NULL,
		    DENY_(0, "merging pull requests is blocked by egress-run "
		    "(preset github)") },
		{ "PUT", "api.github.com", "/repos/o/r/pulls/1/merge/", NULL,
		    DENY_(0, NULL) },
		{ "PUT", "api.github.com:443", "/REPOS/o/r/PULLS/1/Merge", NULL,
		    DENY_(0, NULL) },
		{ "PUT", "api.github.com", "/repos/o/r/pulls/1%2Fmerge", NULL,
		    DENY_(0, NULL) },
		{ "PUT", "api.github.com", "/repos/o/r/pulls/1/x/../merge",
		    NULL, DENY_(0, NULL) },
		{ "put", "api.github.com", "/repositories/42/pulls/1/merge",
		    NULL, DENY_(0, NULL) },
		{ "GET", "api.github.com", "/repos/o/r/pulls/1/merge", NULL,
		    NONE_ },
		{ "POST", "api.github.com", "/repos/o/r/pulls", NULL, NONE_ },
		{ "PATCH", "api.github.com", "/repos/o/r/pulls/1", NULL,
		    NONE_ },
		{ "POST", "api.github.com", "/repos/o/r/merges", NULL,
		    DENY_(1, "merging branches") },
		{ "POST", "api.github.com", "/repos/o/r/merge-upstream", NULL,
		    DENY_(2, NULL) },
		{ "POST", "api.github.com", "/repos/o/r/releases", NULL,
		    DENY_(3, "creating releases") },
		{ "POST", "api.github.com", "/repos/o/r/releases/", NULL,
		    DENY_(3, NULL) },
		{ "POST", "api.github.com",
		    "/repos/o/r/releases/generate-notes", NULL, NONE_ },
		{ "GET", "api.github.com", "/repos/o/r/releases", NULL, NONE_ },
		{ "PATCH", "api.github.com", "/repos/o/r/releases/5", NULL,
		    DENY_(4, NULL) },
		{ "DELETE", "api.github.com", "/repos/o/r/releases/assets/7",
		    NULL, DENY_(4, NULL) },
		{ "POST", "uploads.github.com",
		    "/repos/o/r/releases/5/assets?name=x.tgz", NULL,
		    DENY_(5, "uploading release assets") },
		{ "POST", "api.github.com", "/repos/o/r/releases/5/assets",
		    NULL, NONE_ },
		{ "DELETE", "api.github.com", "/repos/o/r", NULL,
		    DENY_(6, "deleting repositories") },
		{ "DELETE", "api.github.com", "/repos/o/r/", NULL,
		    DENY_(6, NULL) },
		{ "DELETE", "api.github.com", "/repos/o/r/issues/comments/1",
		    NULL, NONE_ },
		{ "POST", "api.github.com", "/repos/o/r/transfer", NULL,
		    DENY_(7, NULL) },
		{ "PUT", "api.github.com",
		    "/repos/o/r/branches/main/protection", NULL,
		    DENY_(8, "branch protection") },
		{ "DELETE", "api.github.com", "/repos/o/r/branches/feat/x/"
		    "protection/required_signatures", NULL, DENY_(8, NULL) },
		{ "GET", "api.github.com",
		    "/repos/o/r/branches/main/protection", NULL, NONE_ },
		{ "POST", "api.github.com", "/repos/o/r/rulesets", NULL,
		    DENY_(9, "rulesets") },
		{ "PUT", "api.github.com", "/orgs/acme/rulesets/5", NULL,
		    DENY_(9, NULL) },
		{ "GET", "api.github.com", "/orgs/acme/rulesets", NULL, NONE_ },
		{ "DELETE", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    NULL, DENY_(10, "deleting branches") },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "{\"sha\":\"abc\",\"force\":true}",
		    DENY_(11, "force-updating") },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "{\"sha\":\"abc\",\"force\":\"true\"}", DENY_(11, NULL) },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "{\"sha\":\"abc\",\"f\\u006frce\":1}", DENY_(11, NULL) },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "\xef\xbb\xbf{\"sha\":\"abc\",\"force\":true}",
		    DENY_(11, NULL) },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "{\"sha\":\"abc\",\"force\":true,}", RULES_E_BODY,
		    RULES_DENY, 11, NULL },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "{\"sha\":\"abc\",\"force\":false}", NONE_ },
		{ "PATCH", "api.github.com", "/repos/o/r/git/refs/heads/x",
		    "{\"sha\":\"abc\"}", NONE_ },
		{ "POST", "api.github.com", "/repos/o/r/git/refs",
		    NULL, NONE_ },
		/* GraphQL */
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { mergePullRequest(input: {}) { a } }"),
		    DENY_(12, "GraphQL mergePullRequest: merging is blocked "
		    "by egress-run (preset github)") },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { x: enablePullRequestAutoMerge(input: {}) "
		    "{ a } }"), DENY_(12, "enablePullRequestAutoMerge") },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { merge\\u0050ullRequest }"),
		    DENY_(12, NULL) },
		{ "POST", "api.github.com", "/graphql",
		    "[" GQL("{ viewer { login } }") ","
		    GQL("mutation { ...F } fragment F on Mutation "
		    "{ mergeBranch(input: {}) { a } }") "]", DENY_(12, NULL) },
		{ "POST", "api.github.com", "/graphql",
		    GQL("# mergePullRequest\\nmutation { createRelease }"),
		    DENY_(13, "createRelease") },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { deleteRepository(input: {}) { a } }"),
		    DENY_(14, NULL) },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { a: createPullRequest b: updateRef }"),
		    DENY_(15, "push with git") },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { updateBranchProtectionRule }"),
		    DENY_(16, NULL) },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { createPullRequest(input: {}) { a } }"),
		    NONE_ },
		{ "POST", "api.github.com", "/graphql",
		    GQL("query { mergePullRequest }"), NONE_ },
		{ "POST", "api.github.com", "/graphql",
		    GQL("{ repository(name: \\\"mergePullRequest\\\") "
		    "{ id } }"),
		    NONE_ },
		{ "POST", "api.github.com", "/graphql/", "{ viewer }", NONE_ },
		{ "POST", "api.github.com", "/graphql",
		    GQL("mutation { mergePullRequest"), RULES_E_GRAPHQL,
		    RULES_DENY, 12, "GraphQL request cannot be checked" },
		{ "GET", "api.github.com", "/graphql", "", RULES_E_GRAPHQL,
		    RULES_DENY, 12, NULL },
		{ "POST", "api.github.com", "/api/graphql",
		    GQL("mutation { mergePullRequest }"), NONE_ },
		{ "POST", "github.com", "/graphql",
		    GQL("mutation { mergePullRequest }"), NONE_ },
	};
	static const struct eval_case ghes[] = {
		{ "PUT", "ghe.example.com", "/api/v3/repos/o/r/pulls/1/merge",
		    NULL, DENY_(0, "(preset github:ghe.example.com)") },
		{ "PUT", "ghe.example.com", "/repos/o/r/pulls/1/merge", NULL,
		    NONE_ },
		{ "POST", "ghe.example.com", "/api/uploads/repos/o/r/releases/"
		    "1/assets", NULL, DENY_(5, NULL) },
		{ "POST", "ghe.example.com", "/api/graphql",
		    GQL("mutation { mergePullRequest }"), DENY_(12, NULL) },
		{ "POST", "ghe.example.com", "/graphql",
		    GQL("mutation { mergePullRequest }"), NONE_ },
		{ "PUT", "api.github.com", "/repos/o/r/pulls/1/merge", NULL,
		    NONE_ },
	};
	struct rules	*r = rules_new();
	struct dest	 d;
	char		 err[256];

	CHECK(rules_add_preset(r, "github", err, sizeof err) == 0, "%s", err);
	CHECK(rules_count(r) == 17, "%zu preset rules", rules_count(r));
	CHECK_STR(rules_text(r, 0),
	    "preset github: PUT /repos/{owner}/{repo}/pulls/{n}/merge");
	CHECK_STR(rules_host(r, 5), "uploads.github.com");
	CHECK(rules_need_bodies(r), "bodies");
	run_cases(r, cases, sizeof cases / sizeof cases[0], "github");
	dest_of("api.github.com", &d);
	CHECK(rules_names_host(r, &d), "api.github.com named");
	dest_of("uploads.github.com", &d);
	CHECK(rules_names_host(r, &d), "uploads named");
	dest_of("github.com", &d);
	CHECK(!rules_names_host(r, &d), "github.com not named");
	rules_free(r);

	r = rules_new();
	CHECK(rules_add_preset(r, "github:ghe.example.com", err, sizeof err) ==
	    0, "%s", err);
	run_cases(r, ghes, sizeof ghes / sizeof ghes[0], "ghes");
	dest_of("ghe.example.com", &d);
	CHECK(rules_names_host(r, &d), "ghe named");
	dest_of("api.github.com", &d);
	CHECK(!rules_names_host(r, &d), "api.github.com not named");
	rules_free(r);
}

static void
preset_after_allow(void)
{
	static const struct eval_case cases[] = {
		{ "PUT", "api.github.com", "/repos/me/sandbox/pulls/3/merge",
		    NULL, ALLOW_(0) },
		{ "PUT", "api.github.com", "/repos/me/other/pulls/3/merge",
		    NULL, DENY_(1, NULL) },
	};
	struct rules	*r = rules_new();
	char		 err[256];

	CHECK(rules_add_spec(r, "allow PUT api.github.com "
	    "/repos/me/sandbox/pulls/[0-9]+/merge", err, sizeof err) == 0,
	    "%s", err);
	CHECK(rules_add_preset(r, "github", err, sizeof err) == 0, "%s", err);
	run_cases(r, cases, 2, "allow+preset");
	rules_free(r);
}

static void
preset_errors(void)
{
	static const struct {
		const char	*name;
		const char	*err;
	} bad[] = {
		{ "gitlab", "known presets are" },
		{ "", "known presets are" },
		{ "github:", "no host" },
		{ "github:foo.*.com", "host: bad pattern" },
	};
	struct rules	*r = rules_new();
	char		 err[256];
	size_t		 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(rules_add_preset(r, bad[i].name, err, sizeof err) == -1,
		    "'%s' accepted", bad[i].name);
		CHECK(strstr(err, bad[i].err) != NULL, "'%s': '%s'",
		    bad[i].name, err);
	}
	CHECK(rules_count(r) == 0, "nothing added");
	rules_free(r);
}

static void
strings(void)
{
	int	codes[] = { RULES_OK, RULES_E_ESCAPE, RULES_E_NUL,
	    RULES_E_PATH, RULES_E_MATCH, RULES_E_BODY, RULES_E_GRAPHQL };
	size_t	i;

	for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
		CHECK(strcmp(rules_strerror(codes[i]), rules_strerror(-99)) !=
		    0, "%d", codes[i]);
}

int
main(void)
{
	RUN(decode_table);
	RUN(decode_edges);
	RUN(spec_table);
	RUN(json_table);
	RUN(eval_table);
	RUN(first_match_wins);
	RUN(body_rules);
	RUN(body_text);
	RUN(preset_github);
	RUN(preset_after_allow);
	RUN(preset_errors);
	RUN(strings);
	return test_done("rules");
}
