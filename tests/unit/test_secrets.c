/*
 * secrets.c: --secret specs good and bad (no error ever shows a value),
 * values from the environment, placeholders (shape, length rule, prefix,
 * uniqueness), which hosts a binding covers, header values and lines, and
 * streamed substitution fed whole, split at every point and byte by byte.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/secrets.h"
#include "common/strlist.h"
#include "common/xmalloc.h"
#include "tests/unit/test.h"

#define LONGKEY	"sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefgh"
#define GHKEY	"ghp_16C7e42F292c6912E7710c838347Ae178B4a"

static char *const test_env[] = {
	"ANTHROPIC_API_KEY=" LONGKEY,
	"GITHUB_TOKEN=" GHKEY,
	"EMPTY=",
	"SHORT=hunter2",
	"CTRL=abc\rdef",
	"OTHER_COPY=" LONGKEY,
	"EMBEDS=Authorization: Bearer " LONGKEY,
	"SHORT_COPY=xxhunter2xx",
	"PATH=/usr/bin:/bin",
	"OTHER_COPY=dup " LONGKEY,	/* getenv sees the first only */
	NULL,
};

static struct secrets *
mk(const char *a, const char *b, const char *c, char *err, size_t errlen)
{
	char	*specs[3];
	size_t	 n = 0;

	if (a != NULL)
		specs[n++] = (char *)a;
	if (b != NULL)
		specs[n++] = (char *)b;
	if (c != NULL)
		specs[n++] = (char *)c;
	return secrets_new(specs, n, test_env, err, errlen);
}

static void
dest_of(const char *authority, struct dest *d)
{
	if (addr_parse_authority(authority, strlen(authority), 443, d) != 0) {
		fprintf(stderr, "bad test authority '%s'\n", authority);
		abort();
	}
}

static const struct {
	const char	*spec;
	const char	*name;
	const char	*host;
	const char	*header;	/* NULL: default */
	const char	*line;		/* the injected header line */
} good[] = {
	{ "ANTHROPIC_API_KEY:api.anthropic.com", "ANTHROPIC_API_KEY",
	    "api.anthropic.com", NULL,
	    "Authorization: Bearer " LONGKEY "\r\n" },
	{ "ANTHROPIC_API_KEY:api.anthropic.com:x-api-key",
	    "ANTHROPIC_API_KEY", "api.anthropic.com", "x-api-key",
	    "x-api-key: " LONGKEY "\r\n" },
	{ "TOKEN=tok-value:api.example.com", "TOKEN", "api.example.com",
	    NULL, "Authorization: Bearer tok-value\r\n" },
	{ "TOKEN=user:pass:api.example.com", "TOKEN", "api.example.com",
	    NULL, "Authorization: Bearer user:pass\r\n" },
	{ "TOKEN=a=b:API.Example.COM.", "TOKEN", "api.example.com", NULL,
	    "Authorization: Bearer a=b\r\n" },
	{ "GITHUB_TOKEN:*.github.com", "GITHUB_TOKEN", "*.github.com", NULL,
	    "Authorization: Bearer " GHKEY "\r\n" },
	{ "GITHUB_TOKEN:*.GitHub.com.:X-Token", "GITHUB_TOKEN",
	    "*.github.com", "X-Token", "X-Token: " GHKEY "\r\n" },
	{ "_k9=v v\tw:10.0.0.1", "_k9", "10.0.0.1", NULL,
	    "Authorization: Bearer v v\tw\r\n" },
	{ "SHORT:localhost:Authorization", "SHORT", "localhost",
	    "Authorization", "Authorization: hunter2\r\n" },
	{ "SHORT:h:x!#$%&'*+-.^_`|~", "SHORT", "h", "x!#$%&'*+-.^_`|~",
	    "x!#$%&'*+-.^_`|~: hunter2\r\n" },
	{ "K=v:my_host.internal", "K", "my_host.internal", NULL,
	    "Authorization: Bearer v\r\n" },
};

static void
good_specs_bind_name_host_and_header(void)
{
	struct secrets	*s;
	char		 err[256], *line;
	size_t		 i, len;

	for (i = 0; i < sizeof good / sizeof good[0]; i++) {
		s = mk(good[i].spec, NULL, NULL, err, sizeof err);
		CHECK(s != NULL, "'%s' refused: %s", good[i].spec, err);
		if (s == NULL)
			continue;
		CHECK(secrets_count(s) == 1, "%s", good[i].spec);
		CHECK_STR(secrets_name(s, 0), good[i].name);
		CHECK_STR(secrets_host(s, 0), good[i].host);
		if (good[i].header == NULL) {
			CHECK(secrets_header(s, 0) == NULL, "%s",
			    good[i].spec);
			CHECK_STR(secrets_header_name(s, 0), "Authorization");
		} else {
			CHECK_STR(secrets_header(s, 0), good[i].header);
			CHECK_STR(secrets_header_name(s, 0), good[i].header);
		}
		line = secrets_header_line(s, 0, &len);
		CHECK_STR(line, good[i].line);
		CHECK(line != NULL && len == strlen(line), "%s",
		    good[i].spec);
		freezero(line, len);
		CHECK(secrets_name(s, 1) == NULL, "out of range");
		secrets_free(s);
	}
}

static const struct {
	const char	*a, *b;		/* one or two specs */
	const char	*err;		/* a substring of the message */
	const char	*value;		/* must never appear in it */
} bad_specs[] = {
	{ "", NULL, "bad --secret '': empty spec", NULL },
	{ "KEY", NULL, "'KEY': missing host", NULL },
	{ ":host", NULL, "empty KEY", NULL },
	{ "=topsecret:host", NULL, "'=***:host': empty KEY", "topsecret" },
	{ "KEY=topsecret", NULL, "'KEY=***': missing host", "topsecret" },
	{ "KEY=:host", NULL, "'KEY=***:host': empty value", NULL },
	{ "KEY=topsecret:", NULL, "'KEY=***:': empty host", "topsecret" },
	{ "KEY:", NULL, "empty host", NULL },
	{ "KEY::hdr", NULL, "empty host", NULL },
	{ "KEY:host:", NULL, "empty header name", NULL },
	{ "KEY:host:a:b", NULL, "too many ':' fields", NULL },
	{ "1KEY=topsecret:host", NULL, "'1KEY=***:host': KEY must be an "
	    "environment variable name", "topsecret" },
	{ "MY-KEY=topsecret:host", NULL, "KEY must be", "topsecret" },
	{ "MY KEY:host", NULL, "KEY must be", NULL },
	{ "KEY=top:secret:ho st", NULL, "'KEY=***:ho st'", "top:secret" },
	{ "KEY=topsecret:ho/st", NULL, "not an address range", "topsecret" },
	{ "KEY=topsecret:10.0.0.0/8", NULL, "address range", "topsecret" },
	{ "KEY=topsecret:*", NULL, "every host", "topsecret" },
	{ "KEY=topsecret:*.", NULL, "needs a domain", "topsecret" },
	{ "KEY=topsecret:a.*.com", NULL, "may only lead", "topsecret" },
	{ "KEY=topsecret:*example.com", NULL, "may only lead", "topsecret" },
	{ "KEY=topsecret:*.10.0.0.1", NULL, "not an address", "topsecret" },
	{ "KEY=topsecret:host:443", NULL, "'KEY=***:443': a number is not a "
	    "host", "topsecret" },
	{ "KEY=topsecret:2130706433", NULL, "a number is not a host",
	    "topsecret" },
	{ "KEY=topsecret:127.1", NULL, "dotted quad", "topsecret" },
	{ "KEY=topsecret:user@host", NULL, "user@host", "topsecret" },
	{ "KEY=topsecret:ho%73t", NULL, "percent", "topsecret" },
	{ "KEY=topsecret:a..b", NULL, "not a host name", "topsecret" },
	{ "KEY:host:443", NULL, "a number is not a header name", NULL },
	{ "KEY:host:X Token", NULL, "HTTP token", NULL },
	{ "KEY:host:X\"T", NULL, "HTTP token", NULL },
	{ "KEY:host:Host", NULL, "hop-by-hop or framing", NULL },
	{ "KEY:host:content-length", NULL, "hop-by-hop or framing", NULL },
	{ "KEY:host:Transfer-Encoding", NULL, "hop-by-hop", NULL },
	{ "KEY:host:CONNECTION", NULL, "hop-by-hop", NULL },
	{ "KEY:host:Proxy-Authorization", NULL, "hop-by-hop", NULL },
	{ "KEY:host:te", NULL, "hop-by-hop", NULL },
	/* environment */
	{ "NOPE:host", NULL, "'NOPE:host': NOPE is not set in egress-run's "
	    "environment", NULL },
	{ "EMPTY:host", NULL, "EMPTY is not set in egress-run's "
	    "environment", NULL },
	{ "ANTHROPIC:host", NULL, "ANTHROPIC is not set", NULL },
	{ "CTRL:host", NULL, "the value of CTRL holds a control character",
	    "abc\rdef" },
	{ "K=top\nsecret:host", NULL, "'K=***:host': the value of K holds a "
	    "control character", "top\nsecret" },
	{ "K=top\x7fsecret:host", NULL, "control character", "top\x7f" },
	/* across specs */
	{ "K=topsecret:a.com", "K=othersecret:b.com", "'K=***:b.com': K is "
	    "already bound", "othersecret" },
	{ "SHORT:a.com", "SHORT:b.com:X-Key", "SHORT is already bound",
	    "hunter2" },
	{ "K=topsecret:a.com", "J=othersecret:A.com.", "'J=***:A.com.': K "
	    "already sets Authorization for a.com", "othersecret" },
	{ "K=topsecret:*.a.com", "J=othersecret:x.y.a.com", "K already sets "
	    "Authorization for *.a.com", "othersecret" },
	{ "K=topsecret:api.a.com", "J=othersecret:*.a.com", "K already sets",
	    "othersecret" },
	{ "ANTHROPIC_API_KEY:a.com:X-Key", "GITHUB_TOKEN:a.com:x-key",
	    "ANTHROPIC_API_KEY already sets x-key", NULL },
	{ "K=topsecret:a.com", "GITHUB_TOKEN:a.com:authorization",
	    "K already sets authorization", "topsecret" },
	/* The inline form has no header: the host is after the last ':'. */
	{ "K=topsecret:a.com:443", NULL, "'K=***:443': a number is not a "
	    "host", "topsecret" },
};

static void
bad_specs_are_refused_without_their_value(void)
{
	struct secrets	*s;
	char		 err[512];
	size_t		 i;

	for (i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
		memset(err, 'Z', sizeof err);
		s = mk(bad_specs[i].a, bad_specs[i].b, NULL, err, sizeof err);
		CHECK(s == NULL, "'%s' accepted", bad_specs[i].a);
		secrets_free(s);
		CHECK(strstr(err, bad_specs[i].err) != NULL,
		    "'%s': '%s' lacks '%s'", bad_specs[i].a, err,
		    bad_specs[i].err);
		CHECK(strncmp(err, "bad --secret '", 14) == 0, "%s", err);
		CHECK(strchr(err, '\n') == NULL && strchr(err, '\r') == NULL,
		    "%s", err);
		CHECK(bad_specs[i].value == NULL ||
		    strstr(err, bad_specs[i].value) == NULL,
		    "'%s' shows the value: %s", bad_specs[i].a, err);
		/* No environment value, ever. */
		CHECK(strstr(err, LONGKEY) == NULL && strstr(err, "hunter2") ==
		    NULL && strstr(err, "abc") == NULL, "%s", err);
	}
}

static void
bindings_that_differ_in_header_or_host_coexist(void)
{
	struct secrets	*s;
	char		 err[256];

	s = mk("K=one-value:a.com", "J=two-value:a.com:X-Key",
	    "I=three-value:b.a.com.evil", err, sizeof err);
	CHECK(s != NULL, "%s", err);
	CHECK(secrets_count(s) == 3, "count");
	secrets_free(s);
	s = mk("K=one-value:*.a.com", "J=two-value:*.b.com", NULL, err,
	    sizeof err);
	CHECK(s != NULL, "%s", err);
	secrets_free(s);
	s = secrets_new(NULL, 0, NULL, err, sizeof err);
	CHECK(s != NULL && secrets_count(s) == 0, "empty set");
	secrets_free(s);
	CHECK(secrets_count(NULL) == 0, "NULL set");
}

static void
a_long_spec_error_stays_one_bounded_line(void)
{
	struct secrets	*s;
	char		 spec[2048], err[512];

	memset(spec, 'a', sizeof spec - 1);
	spec[sizeof spec - 1] = '\0';
	memcpy(spec, "K=", 2);
	memcpy(spec + 1500, ":b@d", 4);
	s = mk(spec, NULL, NULL, err, sizeof err);
	CHECK(s == NULL, "accepted");
	CHECK(strstr(err, "aaaa") == NULL || strstr(err, "=***") != NULL,
	    "%s", err);
	CHECK(strstr(err, "...") != NULL, "%s", err);
	CHECK(strlen(err) < 400, "%zu", strlen(err));
	memcpy(spec, "KK", 2);	/* no '=' at all now */
	s = mk(spec, NULL, NULL, err, sizeof err);
	CHECK(s == NULL && strlen(err) < 400, "%s", err);
}

static bool
alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static const struct {
	const char	*value;
	const char	*prefix;	/* kept before the marker */
} shapes[] = {
	{ LONGKEY, "sk-ant-api03-" },
	{ GHKEY, "ghp_" },
	{ "xoxb-1234567890-abcdefghijklmnopqrstuvwx", "xoxb-1234567890-" },
	{ "sk_live_51Habcdefghijklmnopqrstuv", "sk_live_" },
	{ "sk-proj-abc", "" },			/* too short to keep one */
	{ "hunter2_my-pass-word", "" },		/* a password */
	{ "abcdefghijklmnopq-rstuvwxyz0123456789abcd", "" }, /* '-' too late */
	{ "ab.c-defghijklmnopqrstuvwxyz0123456789", "" },	/* '.' */
	{ "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ", "" },
	{ "x", "" },
	{ "-abcdefghijklmnopqrstuvwxyz", "-" },
};

static void
placeholders_keep_prefix_and_length_class(void)
{
	struct secrets	*s, *t;
	struct strlist	 env;
	char		 spec[256], err[256];
	const char	*ph, *ph2, *pfx;
	size_t		 i, j, vlen, plen, want;

	for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		snprintf(spec, sizeof spec, "K=%s:h.com", shapes[i].value);
		s = mk(spec, NULL, NULL, err, sizeof err);
		t = mk(spec, NULL, NULL, err, sizeof err);
		CHECK(s != NULL && t != NULL, "%s: %s", spec, err);
		if (s == NULL || t == NULL) {
			secrets_free(s);
			secrets_free(t);
			continue;
		}
		ph = secrets_placeholder(s, 0);
		ph2 = secrets_placeholder(t, 0);
		vlen = strlen(shapes[i].value);
		pfx = shapes[i].prefix;
		plen = strlen(pfx);
		want = vlen > 32 ? vlen : 32;
		CHECK(strlen(ph) == want, "%s: %zu != %zu", ph, strlen(ph),
		    want);
		CHECK(strncmp(ph, pfx, plen) == 0, "%s lacks prefix '%s'", ph,
		    pfx);
		CHECK(strncmp(ph + plen, "EGRESSRUN", 9) == 0, "%s", ph);
		for (j = plen + 9; j < strlen(ph); j++)
			CHECK(alnum(ph[j]), "%s: byte %zu", ph, j);
		CHECK(strstr(ph, shapes[i].value) == NULL, "%s", ph);
		CHECK(strcmp(ph, ph2) != 0, "not random: %s", ph);
		/* The child's KEY holds the placeholder, never the value. */
		memset(&env, 0, sizeof env);
		secrets_child_env(s, &env);
		CHECK(env.n >= 1 && strncmp(env.v[0], "K=", 2) == 0 &&
		    strcmp(env.v[0] + 2, ph) == 0, "%s", env.v[0]);
		for (j = 0; j < env.n; j++)
			CHECK(strlen(shapes[i].value) < 8 || strstr(env.v[j],
			    shapes[i].value) == NULL, "%s", env.v[j]);
		strlist_clear(&env);
		secrets_free(s);
		secrets_free(t);
	}
}

static void
placeholders_are_unique_across_bindings(void)
{
	char		*specs[40], err[256];
	struct secrets	*s;
	size_t		 i, j;

	for (i = 0; i < 40; i++)
		specs[i] = xprintf("K%zu=%s:h%zu.com", i, i % 2 ? LONGKEY :
		    "tiny", i);
	s = secrets_new(specs, 40, NULL, err, sizeof err);
	CHECK(s != NULL, "%s", err);
	for (i = 0; s != NULL && i < 40; i++)
		for (j = 0; j < 40; j++)
			CHECK(i == j || strstr(secrets_placeholder(s, i),
			    secrets_placeholder(s, j)) == NULL, "%zu %zu", i,
			    j);
	secrets_free(s);
	for (i = 0; i < 40; i++)
		free(specs[i]);
	/* A value that the marker itself contains cannot be hidden. */
	s = mk("K=RUN:h.com", NULL, NULL, err, sizeof err);
	CHECK(s == NULL && strstr(err, "placeholder for K") != NULL &&
	    strstr(err, "RUN") == NULL, "%s", err);
	secrets_free(s);
}

static void
child_env_swaps_values_held_by_other_variables(void)
{
	struct secrets	*s;
	struct strlist	 env;
	char		 err[256], want[512];
	const char	*ph;
	size_t		 i;
	bool		 copy = false, embeds = false;

	s = mk("ANTHROPIC_API_KEY:api.anthropic.com", "SHORT:h.com", NULL,
	    err, sizeof err);
	CHECK(s != NULL, "%s", err);
	if (s == NULL)
		return;
	memset(&env, 0, sizeof env);
	secrets_child_env(s, &env);
	ph = secrets_placeholder(s, 0);
	for (i = 0; i < env.n; i++) {
		CHECK(strstr(env.v[i], LONGKEY) == NULL, "%s", env.v[i]);
		CHECK(strstr(env.v[i], "SHORT_COPY") == NULL, "%s", env.v[i]);
		CHECK(strncmp(env.v[i], "PATH=", 5) != 0, "%s", env.v[i]);
		snprintf(want, sizeof want, "OTHER_COPY=%s", ph);
		copy |= strcmp(env.v[i], want) == 0;
		snprintf(want, sizeof want, "EMBEDS=Authorization: Bearer %s",
		    ph);
		embeds |= strcmp(env.v[i], want) == 0;
	}
	CHECK(env.n == 4, "%zu entries", env.n);
	CHECK(copy, "OTHER_COPY not swapped");
	CHECK(embeds, "EMBEDS not swapped");
	strlist_clear(&env);
	secrets_free(s);
}

/* --via: the daemon's placeholders replace ours, in KEY and in every
 * other variable that held the value. */
static void
placeholders_taken_from_elsewhere(void)
{
	static const char *const names[] = { "ANTHROPIC_API_KEY", "NOPE" };
	static const char *const phs[] = {
	    "EGRESSRUNdaemonPlaceholder0123456789abcdefghijklmnopqrstu",
	    "EGRESSRUNnobody" };
	struct secrets	*s;
	struct strlist	 env;
	char		 err[256];
	bool		 key = false, copy = false;

	s = mk("ANTHROPIC_API_KEY:api.anthropic.com", NULL, NULL, err,
	    sizeof err);
	CHECK(s != NULL, "%s", err);
	if (s == NULL)
		return;
	secrets_take_placeholders(s, names, phs, 2, test_env);
	CHECK_STR(secrets_placeholder(s, 0), phs[0]);
	memset(&env, 0, sizeof env);
	secrets_child_env(s, &env);
	for (size_t i = 0; i < env.n; i++) {
		CHECK(strstr(env.v[i], LONGKEY) == NULL, "%s", env.v[i]);
		key |= strcmp(env.v[i], "ANTHROPIC_API_KEY=EGRESSRUNdaemon"
		    "Placeholder0123456789abcdefghijklmnopqrstu") == 0;
		copy |= strcmp(env.v[i], "OTHER_COPY=EGRESSRUNdaemon"
		    "Placeholder0123456789abcdefghijklmnopqrstu") == 0;
	}
	CHECK(key, "KEY does not hold the daemon's placeholder");
	CHECK(copy, "OTHER_COPY not swapped with the daemon's placeholder");
	strlist_clear(&env);
	secrets_free(s);
}

static const struct {
	const char	*host;		/* the binding's */
	const char	*dest;		/* an authority */
	bool		 applies;
} hosts[] = {
	{ "api.example.com", "api.example.com:443", true },
	{ "api.example.com", "API.EXAMPLE.COM:443", true },
	{ "api.example.com", "api.example.com.:8443", true },
	{ "api.example.com.", "api.example.com:80", true },
	{ "API.example.com", "api.example.com", true },
	{ "api.example.com", "example.com:443", false },
	{ "api.example.com", "x.api.example.com:443", false },
	{ "api.example.com", "api.example.com.evil.com:443", false },
	{ "api.example.com", "evilapi.example.com:443", false },
	{ "*.example.com", "example.com:443", true },
	{ "*.example.com", "a.example.com:443", true },
	{ "*.example.com", "a.b.EXAMPLE.com.:443", true },
	{ "*.example.com", "evilexample.com:443", false },
	{ "*.example.com", "example.com.evil:443", false },
	{ "*.example.com", "example.co:443", false },
	{ "10.0.0.1", "10.0.0.1:443", true },
	{ "10.0.0.1", "10.0.0.2:443", false },
	{ "10.0.0.1", "[::ffff:10.0.0.1]:443", true },
	{ "10.0.0.1", "0x0a000001:443", true },
	{ "localhost", "localhost:8080", true },
	{ "localhost", "127.0.0.1:8080", false },
};

static void
bindings_apply_to_their_host_only(void)
{
	struct secrets	*s;
	struct dest	 d;
	char		 spec[300], err[256];
	size_t		 i;

	for (i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		snprintf(spec, sizeof spec, "K=value:%s", hosts[i].host);
		s = mk(spec, NULL, NULL, err, sizeof err);
		CHECK(s != NULL, "%s: %s", spec, err);
		if (s == NULL)
			continue;
		dest_of(hosts[i].dest, &d);
		CHECK(secrets_applies(s, 0, &d) == hosts[i].applies,
		    "%s -> %s", hosts[i].host, hosts[i].dest);
		CHECK(secrets_for_host(s, &d) == hosts[i].applies, "%s -> %s",
		    hosts[i].host, hosts[i].dest);
		CHECK(!secrets_applies(s, 1, &d), "out of range");
		CHECK(!secrets_applies(s, 0, NULL), "NULL dest");
		secrets_free(s);
	}
}

static void
next_iterates_over_the_hosts_bindings(void)
{
	struct secrets	*s;
	struct dest	 d;
	char		 err[256], *specs[4] = { "A:a.com", "B:*.a.com:X-B",
	    "C:c.com", "D:x.a.com:X-D" };
	char *const	 env[] = { "A=value-a", "B=value-b", "C=value-c",
	    "D=value-d", NULL };
	size_t		 i, got[4], n = 0;

	s = secrets_new(specs, 4, env, err, sizeof err);
	CHECK(s != NULL, "%s", err);
	if (s == NULL)
		return;
	dest_of("x.a.com:443", &d);
	for (i = secrets_next(s, &d, 0); i < secrets_count(s);
	    i = secrets_next(s, &d, i + 1))
		got[n++] = i;
	CHECK(n == 2 && got[0] == 1 && got[1] == 3, "%zu", n);
	dest_of("c.com:443", &d);
	CHECK(secrets_next(s, &d, 0) == 2 && secrets_next(s, &d, 3) == 4,
	    "c.com");
	dest_of("b.com:443", &d);
	CHECK(!secrets_for_host(s, &d) && secrets_next(s, &d, 0) == 4,
	    "b.com");
	secrets_free(s);
}

static void
header_values_get_the_hosts_values_only(void)
{
	struct secrets	*s;
	struct dest	 a, b, c;
	char		 err[256], in[512], want[512], *out;
	const char	*pa, *pb;
	size_t		 n, outlen;

	s = mk("A=" LONGKEY ":a.com", "B=bee-value:b.com", NULL, err,
	    sizeof err);
	CHECK(s != NULL, "%s", err);
	if (s == NULL)
		return;
	pa = secrets_placeholder(s, 0);
	pb = secrets_placeholder(s, 1);
	dest_of("a.com:443", &a);
	dest_of("b.com:443", &b);
	dest_of("c.com:443", &c);

	snprintf(in, sizeof in, "Bearer %s", pa);
	n = secrets_replace(s, &a, in, strlen(in), &out, &outlen);
	CHECK(n == 1 && out != NULL, "%zu", n);
	CHECK_STR(out, "Bearer " LONGKEY);
	CHECK(outlen == strlen(in), "length-preserving: %zu", outlen);
	freezero(out, outlen);

	/* Another host's placeholder stays a placeholder. */
	snprintf(in, sizeof in, "%s,%s,%s", pb, pa, pb);
	n = secrets_replace(s, &b, in, strlen(in), &out, &outlen);
	snprintf(want, sizeof want, "bee-value,%s,bee-value", pa);
	CHECK(n == 2, "%zu", n);
	CHECK_STR(out, want);
	CHECK(outlen == strlen(want), "%zu", outlen);
	freezero(out, outlen);
	n = secrets_replace(s, &c, in, strlen(in), &out, &outlen);
	CHECK(n == 0 && out == NULL && outlen == 0, "c.com touched");

	/* No placeholder, a marker alone, an empty value, no slice NUL. */
	n = secrets_replace(s, &a, "plain", 5, &out, &outlen);
	CHECK(n == 0 && out == NULL, "plain");
	n = secrets_replace(s, &a, "xEGRESSRUNx", 11, &out, &outlen);
	CHECK(n == 0 && out == NULL, "marker alone");
	n = secrets_replace(s, &a, "", 0, &out, &outlen);
	CHECK(n == 0 && out == NULL, "empty");
	snprintf(in, sizeof in, "%s", pb);
	n = secrets_replace(s, &b, in, strlen(in) - 1, &out, &outlen);
	CHECK(n == 0 && out == NULL, "cut placeholder");
	n = secrets_replace(NULL, &b, in, strlen(in), &out, &outlen);
	CHECK(n == 0 && out == NULL, "NULL set");
	secrets_free(s);
}

/* --- streaming substitution --- */

struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	size_t	 calls;
};

static void
buf_emit(void *arg, const void *p, size_t n)
{
	struct buf	*b = arg;

	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
	b->calls++;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* The obvious replace-all, leftmost first, for comparison. */
static void
reference(const struct secrets *s, const struct dest *d,
    const char *in, size_t len, const char *const *values,
    struct buf *out, size_t *count)
{
	size_t	i = 0, j, pl;
	bool	hit;

	*count = 0;
	buf_emit(out, "", 0);
	while (i < len) {
		hit = false;
		for (j = 0; j < secrets_count(s) && !hit; j++) {
			if (!secrets_applies(s, j, d))
				continue;
			pl = strlen(secrets_placeholder(s, j));
			if (pl <= len - i && memcmp(in + i,
			    secrets_placeholder(s, j), pl) == 0) {
				buf_emit(out, values[j], strlen(values[j]));
				i += pl;
				(*count)++;
				hit = true;
			}
		}
		if (!hit)
			buf_emit(out, in + i++, 1);
	}
}

/* Feed in pieces cut at cuts[0..ncuts), then finish. */
static void
run_split(struct subst *sb, const char *in, size_t len, const size_t *cuts,
    size_t ncuts, struct buf *out)
{
	size_t	i, from = 0;

	buf_emit(out, "", 0);
	for (i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;
		secrets_subst_feed(sb, in + from, to - from, buf_emit, out);
		from = to;
	}
	secrets_subst_finish(sb, buf_emit, out);
}

static int
check_splits(const struct secrets *s, const struct dest *d,
    const char *in, size_t len, const char *const *values, bool three)
{
	struct subst	*sb;
	struct buf	 want, got;
	size_t		 cuts[2], count, i, j;
	int		 bad = 0;

	memset(&want, 0, sizeof want);
	reference(s, d, in, len, values, &want, &count);
	for (i = 0; i <= len; i++) {
		for (j = three ? i : len; j <= len; j++) {
			cuts[0] = i;
			cuts[1] = j;
			memset(&got, 0, sizeof got);
			sb = secrets_subst_new(s, d);
			run_split(sb, in, len, cuts, three ? 2 : 1, &got);
			if (got.len != want.len || memcmp(got.p, want.p,
			    want.len) != 0 || secrets_subst_count(sb) !=
			    count || secrets_subst_delta(sb) !=
			    (int64_t)want.len - (int64_t)len)
				bad++;
			secrets_subst_free(sb);
			buf_free(&got);
		}
	}
	/* byte by byte */
	memset(&got, 0, sizeof got);
	sb = secrets_subst_new(s, d);
	buf_emit(&got, "", 0);
	for (i = 0; i < len; i++)
		secrets_subst_feed(sb, in + i, 1, buf_emit, &got);
	secrets_subst_finish(sb, buf_emit, &got);
	if (got.len != want.len || memcmp(got.p, want.p, want.len) != 0)
		bad++;
	secrets_subst_free(sb);
	buf_free(&got);
	buf_free(&want);
	return bad;
}

/* Bindings whose placeholders share a prefix, a short one, another host. */
#define TEN(c)	c c c c c c c c c c
#define VA	"sk-ant-api03-" TEN("a") TEN("a") TEN("a") TEN("a") "a"
#define VB	"sk-ant-api03-" TEN("b") TEN("b") TEN("b") TEN("b") TEN("b")
#define VD	"sk-ant-api03-" TEN("d") TEN("d") TEN("d") TEN("d") "d"

static struct secrets *
mk_subst_set(const char *values[4])
{
	static char	*specs[4] = { "A:a.com", "B:*.a.com:X-B", "C:a.com:X-C",
	    "D:d.com" };
	static char	*env[] = { "A=" VA, "B=" VB, "C=short", "D=" VD, NULL };
	struct secrets	*s;
	char		 err[256];

	values[0] = VA;
	values[1] = VB;
	values[2] = "short";
	values[3] = VD;
	s = secrets_new(specs, 4, env, err, sizeof err);
	if (s == NULL) {
		fprintf(stderr, "subst set: %s\n", err);
		abort();
	}
	return s;
}

static void
substitution_is_the_same_at_every_split(void)
{
	struct secrets	*s;
	struct dest	 a, d, x;
	const char	*v[4], *pa, *pb, *pc, *pd;
	char		 in[1024];
	size_t		 i;

	s = mk_subst_set(v);
	pa = secrets_placeholder(s, 0);
	pb = secrets_placeholder(s, 1);
	pc = secrets_placeholder(s, 2);
	pd = secrets_placeholder(s, 3);
	dest_of("a.com:443", &a);
	dest_of("d.com:443", &d);
	dest_of("x.com:443", &x);

	const char *const cases[][4] = {
		{ "", NULL },
		{ "no placeholder here", NULL },
		{ "{\"key\":\"", pa, "\"}", NULL },
		{ pa, NULL },
		{ pa, pb, pc, NULL },			/* adjacent */
		{ pc, pc, pc, NULL },
		{ "sk-ant-api03-EGRESS", pa, NULL },	/* prefix, then one */
		{ "EGRESSRUN", pc, "EGRESSRU", NULL },	/* ends in a prefix */
		{ "x", pd, "y", pa },		/* d.com's stays */
		{ "sk-ant-api03-EGRESSRUN", NULL },	/* marker only */
		{ pa, "sk-ant-api03-", NULL },		/* prefix at the end */
	};
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t k, len = 0;
		for (k = 0; k < 4 && cases[i][k] != NULL; k++) {
			size_t n = strlen(cases[i][k]);
			memcpy(in + len, cases[i][k], n);
			len += n;
		}
		CHECK(check_splits(s, &a, in, len, v, len < 200) == 0,
		    "case %zu a.com", i);
		CHECK(check_splits(s, &d, in, len, v, false) == 0,
		    "case %zu d.com", i);
		CHECK(check_splits(s, &x, in, len, v, false) == 0,
		    "case %zu x.com", i);
	}
	/* A placeholder's own head overlapping the next one, many ways. */
	for (i = 1; i < strlen(pa); i += 7) {
		size_t len = 0;
		memcpy(in, pa, i);
		len = i;
		memcpy(in + len, pb, strlen(pb));
		len += strlen(pb);
		memcpy(in + len, pa, i);
		len += i;
		CHECK(check_splits(s, &a, in, len, v, false) == 0,
		    "overlap %zu", i);
	}
	secrets_free(s);
}

static void
substitution_counts_delta_and_length_class(void)
{
	struct secrets	*s;
	struct subst	*sb;
	struct dest	 a, d, x;
	struct buf	 out;
	const char	*v[4];
	char		 in[512];

	s = mk_subst_set(v);
	dest_of("a.com:443", &a);
	dest_of("d.com:443", &d);
	dest_of("x.com:443", &x);

	sb = secrets_subst_new(s, &d);
	CHECK(secrets_subst_active(sb), "d.com active");
	CHECK(secrets_subst_preserving(sb), "d.com keeps lengths");
	memset(&out, 0, sizeof out);
	snprintf(in, sizeof in, "%s%s", secrets_placeholder(s, 3),
	    secrets_placeholder(s, 0));
	secrets_subst_feed(sb, in, strlen(in), buf_emit, &out);
	secrets_subst_finish(sb, buf_emit, &out);
	CHECK(secrets_subst_count(sb) == 1, "%zu", secrets_subst_count(sb));
	CHECK(secrets_subst_delta(sb) == 0, "delta");
	CHECK(out.len == strlen(in), "%zu", out.len);
	secrets_subst_free(sb);
	buf_free(&out);

	sb = secrets_subst_new(s, &a);
	CHECK(!secrets_subst_preserving(sb), "C is short");
	snprintf(in, sizeof in, "%s+%s", secrets_placeholder(s, 2),
	    secrets_placeholder(s, 2));
	secrets_subst_feed(sb, in, strlen(in), buf_emit, &out);
	/* Decided so far: both, held nothing. */
	CHECK(secrets_subst_delta(sb) == 2 * (5 - 32), "%lld",
	    (long long)secrets_subst_delta(sb));
	secrets_subst_finish(sb, buf_emit, &out);
	CHECK_STR(out.p, "short+short");
	/* Reused for a second body: counts go on. */
	secrets_subst_feed(sb, "x", 1, buf_emit, &out);
	secrets_subst_finish(sb, buf_emit, &out);
	CHECK_STR(out.p, "short+shortx");
	CHECK(secrets_subst_count(sb) == 2, "%zu", secrets_subst_count(sb));
	secrets_subst_free(sb);
	buf_free(&out);

	/* No binding: bytes pass through, one emit per feed. */
	sb = secrets_subst_new(s, &x);
	CHECK(!secrets_subst_active(sb) && secrets_subst_preserving(sb),
	    "x.com");
	snprintf(in, sizeof in, "%s", secrets_placeholder(s, 0));
	secrets_subst_feed(sb, in, strlen(in), buf_emit, &out);
	secrets_subst_finish(sb, buf_emit, &out);
	CHECK(out.calls == 1 && strcmp(out.p, in) == 0, "x.com touched");
	secrets_subst_free(sb);
	buf_free(&out);
	secrets_subst_free(NULL);
	secrets_free(s);
}

/* A large body, placeholders at chunk-like boundaries, fed in odd sizes. */
static void
long_bodies_with_many_placeholders(void)
{
	static const size_t	 sizes[] = { 1, 7, 31, 32, 33, 4096, 16384,
	    65536 };
	struct secrets		*s;
	struct subst		*sb;
	struct dest		 a;
	struct buf		 want, got;
	const char		*v[4], *ph;
	char			*in;
	size_t			 len = 0, cap = 1 << 20, i, k, count, from;
	uint32_t		 x = 12345;

	s = mk_subst_set(v);
	dest_of("a.com:443", &a);
	in = xcalloc(cap, 1);
	while (len + 128 < cap) {
		x = x * 1103515245 + 12345;
		k = (x >> 16) % 10;
		if (k < 3) {
			ph = secrets_placeholder(s, (x >> 8) % 4);
			memcpy(in + len, ph, strlen(ph));
			len += strlen(ph);
		} else if (k == 3) {
			ph = secrets_placeholder(s, (x >> 8) % 4);
			memcpy(in + len, ph, (x >> 4) % strlen(ph));
			len += (x >> 4) % strlen(ph);
		} else {
			for (i = 0; i < (x >> 20) % 300; i++)
				in[len++] = "abc\r\n0123 {}\"EGRSK-"[(x + i) %
				    20];
		}
	}
	memset(&want, 0, sizeof want);
	reference(s, &a, in, len, v, &want, &count);
	CHECK(count > 500, "%zu", count);
	for (k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		memset(&got, 0, sizeof got);
		sb = secrets_subst_new(s, &a);
		buf_emit(&got, "", 0);
		for (from = 0; from < len; from += sizes[k]) {
			size_t n = len - from < sizes[k] ? len - from :
			    sizes[k];
			secrets_subst_feed(sb, in + from, n, buf_emit, &got);
		}
		secrets_subst_finish(sb, buf_emit, &got);
		CHECK(got.len == want.len && memcmp(got.p, want.p, want.len) ==
		    0, "feeding %zu at a time", sizes[k]);
		CHECK(secrets_subst_count(sb) == count, "%zu",
		    secrets_subst_count(sb));
		secrets_subst_free(sb);
		buf_free(&got);
	}
	/* Chunked-like: cuts right inside each placeholder. */
	memset(&got, 0, sizeof got);
	sb = secrets_subst_new(s, &a);
	buf_emit(&got, "", 0);
	from = 0;
	ph = secrets_placeholder(s, 0);
	for (i = 0; i + 1 < len;) {
		const char *m = memmem(in + i, len - i, ph, strlen(ph));
		size_t cut = m != NULL ? (size_t)(m - in) + 5 : len;
		secrets_subst_feed(sb, in + from, cut - from, buf_emit, &got);
		from = i = cut;
	}
	secrets_subst_feed(sb, in + from, len - from, buf_emit, &got);
	secrets_subst_finish(sb, buf_emit, &got);
	CHECK(got.len == want.len && memcmp(got.p, want.p, want.len) == 0,
	    "cut inside placeholders");
	secrets_subst_free(sb);
	buf_free(&got);
	buf_free(&want);
	free(in);
	secrets_free(s);
}

static void
wipe_zeroes_the_values(void)
{
	struct secrets	*s;
	char		 err[256], *line;
	size_t		 len, i;
	bool		 zero = true;

	s = mk("K=" LONGKEY ":a.com", NULL, NULL, err, sizeof err);
	CHECK(s != NULL, "%s", err);
	if (s == NULL)
		return;
	secrets_wipe(s);
	line = secrets_header_line(s, 0, &len);
	CHECK(len == strlen("Authorization: Bearer \r\n") + strlen(LONGKEY),
	    "%zu", len);
	for (i = strlen("Authorization: Bearer "); i + 2 < len; i++)
		zero &= line[i] == '\0';
	CHECK(zero, "value not wiped");
	freezero(line, len);
	secrets_free(s);
	secrets_free(NULL);
	secrets_wipe(NULL);
}

int
main(void)
{
	RUN(good_specs_bind_name_host_and_header);
	RUN(bad_specs_are_refused_without_their_value);
	RUN(bindings_that_differ_in_header_or_host_coexist);
	RUN(a_long_spec_error_stays_one_bounded_line);
	RUN(placeholders_keep_prefix_and_length_class);
	RUN(placeholders_are_unique_across_bindings);
	RUN(child_env_swaps_values_held_by_other_variables);
	RUN(bindings_apply_to_their_host_only);
	RUN(next_iterates_over_the_hosts_bindings);
	RUN(header_values_get_the_hosts_values_only);
	RUN(substitution_is_the_same_at_every_split);
	RUN(substitution_counts_delta_and_length_class);
	RUN(long_bodies_with_many_placeholders);
	RUN(wipe_zeroes_the_values);
	RUN(placeholders_taken_from_elsewhere);
	return test_done("secrets");
}
