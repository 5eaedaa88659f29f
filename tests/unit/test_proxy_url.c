/*
 * Proxy URLs: every accepted form with what comes out (scheme, canonical
 * host, port, decoded credentials, display form), every refused form with
 * its specific error, and no message or display that shows a password.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/proxy_url.h"
#include "tests/unit/test.h"

#define NITEMS(t)	(sizeof(t) / sizeof((t)[0]))

struct ok_case {
	const char		*in;
	enum proxy_scheme	 scheme;
	const char		*host;
	uint16_t		 port;
	const char		*user;		/* NULL: none */
	const char		*pass;		/* NULL: none */
	const char		*display;
};

static bool
str_eq_or_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
valid_urls_parse_to_their_parts(void)
{
	static const struct ok_case t[] = {
		{ "http://proxy.corp:3128", PROXY_SCHEME_HTTP, "proxy.corp",
		    3128, NULL, NULL, "http://proxy.corp:3128" },
		{ "http://proxy.corp:3128/", PROXY_SCHEME_HTTP, "proxy.corp",
		    3128, NULL, NULL, "http://proxy.corp:3128" },
		{ "proxy.corp:3128", PROXY_SCHEME_HTTP, "proxy.corp", 3128,
		    NULL, NULL, "http://proxy.corp:3128" },
		{ "proxy.corp", PROXY_SCHEME_HTTP, "proxy.corp", 1080, NULL,
		    NULL, "http://proxy.corp:1080" },
		{ "http://proxy.corp", PROXY_SCHEME_HTTP, "proxy.corp", 1080,
		    NULL, NULL, "http://proxy.corp:1080" },
		{ "HTTP://Proxy.CORP.:8080", PROXY_SCHEME_HTTP, "proxy.corp",
		    8080, NULL, NULL, "http://proxy.corp:8080" },
		{ "socks5://10.0.0.1:1080", PROXY_SCHEME_SOCKS5, "10.0.0.1",
		    1080, NULL, NULL, "socks5://10.0.0.1:1080" },
		{ "socks5h://gw.corp", PROXY_SCHEME_SOCKS5H, "gw.corp", 1080,
		    NULL, NULL, "socks5h://gw.corp:1080" },
		{ "SOCKS5H://gw.corp:9050", PROXY_SCHEME_SOCKS5H, "gw.corp",
		    9050, NULL, NULL, "socks5h://gw.corp:9050" },
		{ "http://[::1]:3128", PROXY_SCHEME_HTTP, "::1", 3128, NULL,
		    NULL, "http://[::1]:3128" },
		{ "http://[2001:DB8:0::1]", PROXY_SCHEME_HTTP, "2001:db8::1",
		    1080, NULL, NULL, "http://[2001:db8::1]:1080" },
		{ "[fd00::1]:8080", PROXY_SCHEME_HTTP, "fd00::1", 8080, NULL,
		    NULL, "http://[fd00::1]:8080" },
		{ "http://127.1:3128", PROXY_SCHEME_HTTP, "127.0.0.1", 3128,
		    NULL, NULL, "http://127.0.0.1:3128" },
		{ "http://0x7f000001:3128", PROXY_SCHEME_HTTP, "127.0.0.1",
		    3128, NULL, NULL, "http://127.0.0.1:3128" },
		{ "http://proxy:080", PROXY_SCHEME_HTTP, "proxy", 80, NULL,
		    NULL, "http://proxy:80" },
		{ "http://proxy:65535", PROXY_SCHEME_HTTP, "proxy", 65535, NULL,
		    NULL, "http://proxy:65535" },
		{ "  http://proxy:3128\n", PROXY_SCHEME_HTTP, "proxy", 3128,
		    NULL, NULL, "http://proxy:3128" },
		/* credentials */
		{ "http://alice:s3cret@proxy:3128", PROXY_SCHEME_HTTP, "proxy",
		    3128, "alice", "s3cret", "http://alice:***@proxy:3128" },
		{ "alice:s3cret@proxy:3128", PROXY_SCHEME_HTTP, "proxy", 3128,
		    "alice", "s3cret", "http://alice:***@proxy:3128" },
		{ "http://alice@proxy:3128", PROXY_SCHEME_HTTP, "proxy", 3128,
		    "alice", NULL, "http://alice@proxy:3128" },
		{ "http://alice:@proxy:3128", PROXY_SCHEME_HTTP, "proxy", 3128,
		    "alice", "", "http://alice:***@proxy:3128" },
		{ "http://:token@proxy:3128", PROXY_SCHEME_HTTP, "proxy", 3128,
		    "", "token", "http://:***@proxy:3128" },
		{ "http://@proxy:3128", PROXY_SCHEME_HTTP, "proxy", 3128, NULL,
		    NULL, "http://proxy:3128" },
		{ "http://dom%5Calice:p%40ss%3Aw%2Fd%25@proxy:3128",
		    PROXY_SCHEME_HTTP, "proxy", 3128, "dom\\alice", "p@ss:w/d%",
		    "http://dom%5Calice:***@proxy:3128" },
		{ "http://a%40b:x@proxy", PROXY_SCHEME_HTTP, "proxy", 1080,
		    "a@b", "x", "http://a%40b:***@proxy:1080" },
		/* the last '@' separates: a raw '@' in a password works */
		{ "http://alice:p@ss@proxy:3128", PROXY_SCHEME_HTTP, "proxy",
		    3128, "alice", "p@ss", "http://alice:***@proxy:3128" },
		/* the first ':' separates: a raw ':' in a password works */
		{ "http://alice:a:b@proxy:3128", PROXY_SCHEME_HTTP, "proxy",
		    3128, "alice", "a:b", "http://alice:***@proxy:3128" },
		{ "socks5h://u:p@[::1]:1080/", PROXY_SCHEME_SOCKS5H, "::1",
		    1080, "u", "p", "socks5h://u:***@[::1]:1080" },
		{ "socks5://u@gw", PROXY_SCHEME_SOCKS5, "gw", 1080, "u", NULL,
		    "socks5://u@gw:1080" },
		{ "socks5://u:@gw", PROXY_SCHEME_SOCKS5, "gw", 1080, "u", "",
		    "socks5://u:***@gw:1080" },
		{ "http://%C3%A9t%C3%A9:x@proxy", PROXY_SCHEME_HTTP, "proxy",
		    1080, "\xc3\xa9t\xc3\xa9", "x",
		    "http://%C3%A9t%C3%A9:***@proxy:1080" },
	};

	for (size_t i = 0; i < NITEMS(t); i++) {
		struct proxy_url	u;
		int			rv;

		rv = proxy_url_parse(t[i].in, strlen(t[i].in), &u);
		CHECK(rv == PROXY_URL_OK, "'%s': %s", t[i].in,
		    proxy_url_strerror(rv));
		if (rv != PROXY_URL_OK)
			continue;
		CHECK(u.scheme == t[i].scheme, "'%s': scheme %d", t[i].in,
		    u.scheme);
		CHECK(strcmp(u.dest.host, t[i].host) == 0, "'%s': host '%s'",
		    t[i].in, u.dest.host);
		CHECK(u.dest.port == t[i].port, "'%s': port %u", t[i].in,
		    u.dest.port);
		CHECK(str_eq_or_null(u.user, t[i].user), "'%s': user '%s'",
		    t[i].in, u.user ? u.user : "(null)");
		CHECK(str_eq_or_null(u.password, t[i].pass), "'%s': password",
		    t[i].in);
		CHECK(str_eq_or_null(u.display, t[i].display),
		    "'%s': display '%s'", t[i].in, u.display);
		proxy_url_clear(&u);
		CHECK(u.user == NULL && u.password == NULL &&
		    u.display == NULL, "cleared");
	}
}

struct bad_case {
	const char	*in;
	int		 rv;
};

static void
invalid_urls_are_refused_with_a_specific_error(void)
{
	static const struct bad_case t[] = {
		{ "", PROXY_URL_E_EMPTY },
		{ " \t\n", PROXY_URL_E_EMPTY },
		{ "https://proxy:443", PROXY_URL_E_HTTPS },
		{ "HTTPS://proxy", PROXY_URL_E_HTTPS },
		{ "socks4://proxy:1080", PROXY_URL_E_SOCKS4 },
		{ "socks4a://proxy:1080", PROXY_URL_E_SOCKS4 },
		{ "socks://proxy:1080", PROXY_URL_E_SOCKS4 },
		{ "ftp://proxy:21", PROXY_URL_E_SCHEME },
		{ "socks5hh://proxy", PROXY_URL_E_SCHEME },
		{ "file:///etc/passwd", PROXY_URL_E_SCHEME },
		{ "http:/proxy:3128", PROXY_URL_E_PATH },
		{ "://proxy", PROXY_URL_E_PATH },
		{ "http://", PROXY_URL_E_HOST },
		{ "http:///", PROXY_URL_E_HOST },
		{ "http://:3128", PROXY_URL_E_HOST },
		{ "http://alice:pw@", PROXY_URL_E_HOST },
		{ "http://alice:pw@:3128", PROXY_URL_E_HOST },
		{ "http://pro xy:3128", PROXY_URL_E_SYNTAX },
		{ "http://proxy:3128\r\nX: y", PROXY_URL_E_SYNTAX },
		{ "http://a:p\tw@proxy", PROXY_URL_E_SYNTAX },
		{ "http://proxy\x7f:1", PROXY_URL_E_SYNTAX },
		{ "http://proxy:", PROXY_URL_E_PORT },
		{ "http://proxy:0", PROXY_URL_E_PORT },
		{ "http://proxy:65536", PROXY_URL_E_PORT },
		{ "http://proxy:99999999999", PROXY_URL_E_PORT },
		{ "http://proxy:-1", PROXY_URL_E_PORT },
		{ "http://proxy:+80", PROXY_URL_E_PORT },
		{ "http://proxy:80a", PROXY_URL_E_PORT },
		{ "http://proxy:0x50", PROXY_URL_E_PORT },
		{ "http://[::1]:", PROXY_URL_E_PORT },
		{ "http://::1:3128", PROXY_URL_E_HOST },
		{ "http://[::1", PROXY_URL_E_HOST },
		{ "http://[::1]x", PROXY_URL_E_HOST },
		{ "http://[fe80::1%25eth0]:80", PROXY_URL_E_HOST },
		{ "http://[1.2.3.4]", PROXY_URL_E_HOST },
		{ "http://1.2.3.256", PROXY_URL_E_HOST },
		{ "http://a..b", PROXY_URL_E_HOST },
		{ "http://pro%78y", PROXY_URL_E_HOST },
		{ "http://ex$mple.com", PROXY_URL_E_HOST },
		{ "http://proxy:3128/path", PROXY_URL_E_PATH },
		{ "http://proxy:3128//", PROXY_URL_E_PATH },
		{ "http://proxy:3128?x=1", PROXY_URL_E_PATH },
		{ "http://proxy:3128#frag", PROXY_URL_E_PATH },
		{ "http://proxy?", PROXY_URL_E_PATH },
		{ "http://alice:pa/ss@proxy:3128", PROXY_URL_E_PATH },
		{ "http://alice:pa#ss@proxy:3128", PROXY_URL_E_PATH },
		{ "http://alice:p%zzw@proxy", PROXY_URL_E_USERINFO },
		{ "http://alice:p%4@proxy", PROXY_URL_E_USERINFO },
		{ "http://alice:p%@proxy", PROXY_URL_E_USERINFO },
		{ "http://ali%00ce:pw@proxy", PROXY_URL_E_USERINFO },
		{ "http://alice:pw%00@proxy", PROXY_URL_E_USERINFO },
		{ "socks5://:pw@gw", PROXY_URL_E_CREDLEN },
		{ "socks5h://:@gw", PROXY_URL_E_CREDLEN },
	};

	for (size_t i = 0; i < NITEMS(t); i++) {
		struct proxy_url	u;
		int			rv;

		memset(&u, 0xa5, sizeof u);
		rv = proxy_url_parse(t[i].in, strlen(t[i].in), &u);
		CHECK(rv == t[i].rv, "'%s': got %d (%s), want %d", t[i].in, rv,
		    proxy_url_strerror(rv), t[i].rv);
		CHECK(u.user == NULL && u.password == NULL &&
		    u.display == NULL && u.dest.host[0] == '\0',
		    "'%s': left cleared", t[i].in);
		proxy_url_clear(&u);
	}
}

static void
socks5_credentials_are_bounded_by_rfc1929(void)
{
	char			 buf[1024];
	struct proxy_url	 u;
	size_t			 n;

	/* 255-byte user and password pass; 256 fail for socks, not http. */
	n = 0;
	memcpy(buf, "socks5h://", 10);
	n = 10;
	memset(buf + n, 'u', 255);
	n += 255;
	buf[n++] = ':';
	memset(buf + n, 'p', 255);
	n += 255;
	memcpy(buf + n, "@gw", 3);
	n += 3;
	CHECK(proxy_url_parse(buf, n, &u) == PROXY_URL_OK &&
	    strlen(u.user) == 255 && strlen(u.password) == 255, "255 + 255");
	proxy_url_clear(&u);

	memmove(buf + 11, buf + 10, n - 10);
	buf[10] = 'u';
	n++;
	CHECK(proxy_url_parse(buf, n, &u) == PROXY_URL_E_CREDLEN,
	    "256-byte socks user");
	memcpy(buf, "http://", 7);
	memmove(buf + 7, buf + 10, n - 10);
	n -= 3;
	CHECK(proxy_url_parse(buf, n, &u) == PROXY_URL_OK &&
	    strlen(u.user) == 256, "256-byte http user");
	proxy_url_clear(&u);

	/* 85 x "%41" decodes to 85 bytes: the limit is on decoded bytes. */
	n = 0;
	memcpy(buf, "socks5://", 9);
	n = 9;
	for (int i = 0; i < 85; i++) {
		memcpy(buf + n, "%41", 3);
		n += 3;
	}
	memcpy(buf + n, ":x@gw", 5);
	n += 5;
	CHECK(proxy_url_parse(buf, n, &u) == PROXY_URL_OK &&
	    strlen(u.user) == 85 && u.user[0] == 'A', "encoded user");
	proxy_url_clear(&u);
}

static void
passwords_never_reach_display_or_messages(void)
{
	static const char *const in[] = {
		"http://alice:hunter2@proxy:3128",
		"http://alice:hunter2@proxy:0",
		"http://alice:hunter2@[::1",
		"http://alice:hunter2@pro xy",
		"https://alice:hunter2@proxy",
		"http://alice:hun/ter2@proxy:3128",
		"http://alice:hunter2%zz@proxy",
		"socks5://:hunter2@proxy",
	};
	struct proxy_url	u;
	int			rv;

	for (size_t i = 0; i < NITEMS(in); i++) {
		rv = proxy_url_parse(in[i], strlen(in[i]), &u);
		CHECK(strstr(proxy_url_strerror(rv), "hunter2") == NULL,
		    "message for '%s'", in[i]);
		CHECK(u.display == NULL || strstr(u.display, "hunter2") == NULL,
		    "display for '%s'", in[i]);
		proxy_url_clear(&u);
	}
	for (int r = PROXY_URL_OK; r >= PROXY_URL_E_PATH; r--)
		CHECK(strstr(proxy_url_strerror(r), "unknown") == NULL,
		    "code %d has a message", r);
}

static void
input_need_not_be_nul_terminated(void)
{
	struct proxy_url	u;
	const char		*s = "http://proxy:3128/extra";

	CHECK(proxy_url_parse(s, 17, &u) == PROXY_URL_OK &&
	    u.dest.port == 3128, "prefix");
	proxy_url_clear(&u);
	CHECK(proxy_url_parse(s, 18, &u) == PROXY_URL_OK, "prefix with /");
	proxy_url_clear(&u);
	CHECK(proxy_url_parse("http://prox\0y", 13, &u) == PROXY_URL_E_SYNTAX,
	    "embedded NUL");
	proxy_url_clear(&u);
	proxy_url_clear(NULL);
	CHECK_STR(proxy_url_scheme_name(PROXY_SCHEME_SOCKS5H), "socks5h");
}

int
main(void)
{
	RUN(valid_urls_parse_to_their_parts);
	RUN(invalid_urls_are_refused_with_a_specific_error);
	RUN(socks5_credentials_are_bounded_by_rfc1929);
	RUN(passwords_never_reach_display_or_messages);
	RUN(input_need_not_be_nul_terminated);
	return test_done("proxy_url");
}
