/*
 * SOCKS5 messages, both directions: every valid form with its fields, every
 * bad form with its specific error, each fed whole, one byte at a time, and
 * with pipelined bytes after it. Inputs sit at the end of a page followed
 * by an inaccessible one, so a read past the end faults.
 */
#include <sys/mman.h>

#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "socks5/socks5_parse.h"
#include "tests/unit/test.h"

#define B(s)	(const uint8_t *)(s), sizeof(s) - 1

typedef int (*parse_fn)(const uint8_t *, size_t);

static uint8_t	*guard_base;
static size_t	 guard_page;

/* A copy of buf whose last byte is the last one before a PROT_NONE page. */
static const uint8_t *
guarded(const uint8_t *buf, size_t len)
{
	if (guard_base == NULL) {
		guard_page = (size_t)sysconf(_SC_PAGESIZE);
		guard_base = mmap(NULL, 2 * guard_page, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (guard_base == MAP_FAILED) {
			perror("mmap");
			_exit(2);
		}
		if (mprotect(guard_base + guard_page, guard_page,
		    PROT_NONE) != 0) {
			perror("mprotect");
			_exit(2);
		}
	}
	if (len > guard_page)
		_exit(2);
	memmove(guard_base + guard_page - len, buf, len);
	return guard_base + guard_page - len;
}

/* Adapters with one signature; the last result is kept for field checks. */
static struct socks5_greeting	g;
static struct socks5_auth	a;
static struct socks5_request	rq;
static struct socks5_reply	rp;
static uint8_t			one;

static int
p_greeting(const uint8_t *b, size_t n)
{
	return socks5_parse_greeting(b, n, &g);
}

static int
p_auth(const uint8_t *b, size_t n)
{
	return socks5_parse_auth(b, n, &a);
}

static int
p_request(const uint8_t *b, size_t n)
{
	return socks5_parse_request(b, n, &rq);
}

static int
p_method_reply(const uint8_t *b, size_t n)
{
	return socks5_parse_method_reply(b, n, &one);
}

static int
p_auth_reply(const uint8_t *b, size_t n)
{
	return socks5_parse_auth_reply(b, n, &one);
}

static int
p_reply(const uint8_t *b, size_t n)
{
	return socks5_parse_reply(b, n, &rp);
}

/*
 * The contract for one message: the whole input gives want; every prefix
 * gives NEED_MORE until the deciding byte, then want; appended bytes are
 * left unconsumed (a success still returns the message length).
 */
static void
feed(const char *name, parse_fn fn, const uint8_t *in, size_t len, int want)
{
	uint8_t	 pipelined[1024];
	int	 rv, first = -1;

	rv = fn(guarded(in, len), len);
	CHECK(rv == want, "%s: whole: got %d (%s), want %d", name, rv,
	    rv < 0 ? socks5_strerror(rv) : "ok", want);
	for (size_t i = 0; i <= len; i++) {
		rv = fn(guarded(in, i), i);
		if (rv == SOCKS5_NEED_MORE)
			continue;
		if (first == -1)
			first = (int)i;
		if (rv != want) {
			CHECK(rv == want, "%s: prefix %zu: got %d, want %d",
			    name, i, rv, want);
			break;
		}
	}
	if (want > 0)
		CHECK(first == want, "%s: first complete at %d, want %d", name,
		    first, want);
	if (want != SOCKS5_NEED_MORE) {
		memcpy(pipelined, in, len);
		memset(pipelined + len, 0x05, 16);
		rv = fn(guarded(pipelined, len + 16), len + 16);
		CHECK(rv == want, "%s: pipelined: got %d, want %d", name, rv,
		    want);
	}
	/* Leave the output of a whole-input parse for the caller. */
	(void)fn(guarded(in, len), len);
}

struct pcase {
	const char	*name;
	const uint8_t	*in;
	size_t		 len;
	int		 want;
};

static void
run_table(parse_fn fn, const struct pcase *t, size_t n)
{
	for (size_t i = 0; i < n; i++)
		feed(t[i].name, fn, t[i].in, t[i].len, t[i].want);
}

#define NITEMS(t)	(sizeof(t) / sizeof((t)[0]))

static void
greeting_table_whole_bytewise_and_pipelined(void)
{
	static const struct pcase t[] = {
		{ "no_auth_only", B("\x05\x01\x00"), 3 },
		{ "userpass_only", B("\x05\x01\x02"), 3 },
		{ "both_methods", B("\x05\x02\x00\x02"), 4 },
		{ "gssapi_only", B("\x05\x01\x01"), 3 },
		{ "unknown_methods_are_kept", B("\x05\x03\x80\xfe\xff"), 5 },
		{ "socks4_is_bad_version", B("\x04\x01\x00\x50"),
		    SOCKS5_E_VERSION },
		{ "http_is_bad_version", B("GET / HTTP/1.1\r\n"),
		    SOCKS5_E_VERSION },
		{ "zero_methods", B("\x05\x00"), SOCKS5_E_NMETHODS },
		{ "empty_input_needs_more", B(""), SOCKS5_NEED_MORE },
		{ "methods_cut_short_need_more", B("\x05\x03\x00\x02"),
		    SOCKS5_NEED_MORE },
	};

	run_table(p_greeting, t, NITEMS(t));
}

static void
greeting_reports_offered_methods(void)
{
	uint8_t	 all[257];
	int	 rv;

	CHECK(p_greeting(B("\x05\x02\x00\x02")) == 4, "both");
	CHECK(g.none && g.userpass && g.nmethods == 2, "flags");
	CHECK(g.methods != NULL && g.methods[0] == 0 && g.methods[1] == 2,
	    "methods slice");
	CHECK(p_greeting(B("\x05\x01\x02")) == 3, "userpass");
	CHECK(!g.none && g.userpass, "only userpass");
	CHECK(p_greeting(B("\x05\x01\x01")) == 3, "gssapi");
	CHECK(!g.none && !g.userpass, "neither");

	/* 255 methods: the largest greeting. */
	all[0] = 5;
	all[1] = 255;
	for (int i = 0; i < 255; i++)
		all[2 + i] = (uint8_t)(254 - i);	/* 254..0 */
	rv = socks5_parse_greeting(guarded(all, sizeof all), sizeof all, &g);
	CHECK(rv == 257 && g.nmethods == 255 && g.none && g.userpass,
	    "255 methods: %d", rv);

	/* Outputs are zeroed on error. */
	(void)p_greeting(B("\x05\x02\x00\x02"));
	CHECK(p_greeting(B("\x04\x01\x00")) == SOCKS5_E_VERSION, "bad");
	CHECK(g.methods == NULL && g.nmethods == 0 && !g.none, "zeroed");
}

static void
auth_table_whole_bytewise_and_pipelined(void)
{
	static const struct pcase t[] = {
		{ "user_and_password", B("\x01\x04user\x06secret"), 13 },
		{ "one_byte_each", B("\x01\x01u\x01p"), 5 },
		{ "empty_password_as_curl_sends", B("\x01\x04user\x00"), 7 },
		{ "binary_bytes_are_fine", B("\x01\x02\x00\xff\x02\x00\x0a"),
		    7 },
		{ "socks_version_is_bad", B("\x05\x04user\x06secret"),
		    SOCKS5_E_VERSION },
		{ "zero_version_is_bad", B("\x00\x01u\x01p"),
		    SOCKS5_E_VERSION },
		{ "empty_user", B("\x01\x00\x06secret"), SOCKS5_E_AUTH },
		{ "user_cut_short", B("\x01\x04us"), SOCKS5_NEED_MORE },
		{ "password_cut_short", B("\x01\x04user\x06sec"),
		    SOCKS5_NEED_MORE },
		{ "no_plen_yet", B("\x01\x04user"), SOCKS5_NEED_MORE },
	};

	run_table(p_auth, t, NITEMS(t));
}

static void
auth_slices_point_into_the_buffer(void)
{
	const uint8_t	*in;
	uint8_t		 big[SOCKS5_AUTH_MAX];
	int		 rv;

	in = guarded(B("\x01\x04user\x06secret"));
	CHECK(socks5_parse_auth(in, 13, &a) == 13, "parse");
	CHECK(a.userlen == 4 && a.user == (const char *)in + 2 &&
	    memcmp(a.user, "user", 4) == 0, "user slice");
	CHECK(a.passlen == 6 && a.pass == (const char *)in + 7 &&
	    memcmp(a.pass, "secret", 6) == 0, "pass slice");

	CHECK(p_auth(B("\x01\x04user\x00")) == 7, "empty pass");
	CHECK(a.passlen == 0 && a.pass != NULL, "empty pass slice");

	/* The largest request: 255 + 255. */
	memset(big, 'x', sizeof big);
	big[0] = 1;
	big[1] = 255;
	big[257] = 255;
	rv = socks5_parse_auth(guarded(big, sizeof big), sizeof big, &a);
	CHECK(rv == SOCKS5_AUTH_MAX && a.userlen == 255 && a.passlen == 255,
	    "max auth: %d", rv);

	/* A need-more leaves nothing half set. */
	CHECK(p_auth(B("\x01\x04user\x06sec")) == SOCKS5_NEED_MORE, "short");
	CHECK(a.user == NULL && a.userlen == 0 && a.pass == NULL, "zeroed");
}

static void
request_table_whole_bytewise_and_pipelined(void)
{
	static const struct pcase t[] = {
		{ "connect_ipv4", B("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50"),
		    10 },
		{ "connect_ipv6",
		    B("\x05\x01\x00\x04" "\x20\x01\x0d\xb8\x00\x00\x00\x00"
		    "\x00\x00\x00\x00\x00\x00\x00\x01" "\x01\xbb"), 22 },
		{ "connect_domain",
		    B("\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb"), 18 },
		{ "connect_one_byte_domain", B("\x05\x01\x00\x03\x01" "a"
		    "\x00\x01"), 8 },
		{ "bind_is_parsed", B("\x05\x02\x00\x01\x00\x00\x00\x00"
		    "\x00\x15"), 10 },
		{ "udp_associate_is_parsed", B("\x05\x03\x00\x01"
		    "\x00\x00\x00\x00\x00\x01"), 10 },
		{ "port_65535", B("\x05\x01\x00\x01\x0a\x00\x00\x01\xff\xff"),
		    10 },
		{ "domain_with_high_bytes_left_to_addr", B("\x05\x01\x00\x03"
		    "\x04" "\xc3\xa9t\xc3" "\x00\x50"), 11 },
		{ "domain_ipv6_text_left_to_addr", B("\x05\x01\x00\x03\x03"
		    "::1" "\x00\x50"), 10 },
		{ "socks4_version", B("\x04\x01\x00\x50\x7f\x00\x00\x01\x00"),
		    SOCKS5_E_VERSION },
		{ "command_zero", B("\x05\x00\x00\x01\x7f\x00\x00\x01\x00\x50"),
		    SOCKS5_E_COMMAND },
		{ "command_four", B("\x05\x04\x00\x01\x7f\x00\x00\x01\x00\x50"),
		    SOCKS5_E_COMMAND },
		{ "command_ff", B("\x05\xff"), SOCKS5_E_COMMAND },
		{ "reserved_not_zero",
		    B("\x05\x01\x01\x01\x7f\x00\x00\x01\x00\x50"),
		    SOCKS5_E_RESERVED },
		{ "atyp_zero", B("\x05\x01\x00\x00\x7f\x00\x00\x01\x00\x50"),
		    SOCKS5_E_ATYP },
		{ "atyp_two", B("\x05\x01\x00\x02"), SOCKS5_E_ATYP },
		{ "atyp_five", B("\x05\x01\x00\x05"), SOCKS5_E_ATYP },
		{ "atyp_ff", B("\x05\x01\x00\xff"), SOCKS5_E_ATYP },
		{ "empty_domain", B("\x05\x01\x00\x03\x00\x00\x50"),
		    SOCKS5_E_DOMAIN },
		{ "domain_with_nul", B("\x05\x01\x00\x03\x05" "a\x00" "b.c"
		    "\x00\x50"), SOCKS5_E_DOMAIN },
		{ "domain_with_space", B("\x05\x01\x00\x03\x03" "a b"
		    "\x00\x50"), SOCKS5_E_DOMAIN },
		{ "domain_with_newline", B("\x05\x01\x00\x03\x04" "a\r\nb"
		    "\x00\x50"), SOCKS5_E_DOMAIN },
		{ "domain_with_del", B("\x05\x01\x00\x03\x02" "a\x7f"
		    "\x00\x50"), SOCKS5_E_DOMAIN },
		{ "bad_domain_byte_seen_before_rest_arrives",
		    B("\x05\x01\x00\x03\x20" "ab\x00"), SOCKS5_E_DOMAIN },
		{ "ipv4_port_zero", B("\x05\x01\x00\x01\x7f\x00\x00\x01"
		    "\x00\x00"), SOCKS5_E_PORT },
		{ "domain_port_zero", B("\x05\x01\x00\x03\x01" "a" "\x00\x00"),
		    SOCKS5_E_PORT },
		{ "ipv4_cut_short", B("\x05\x01\x00\x01\x7f\x00"),
		    SOCKS5_NEED_MORE },
		{ "ipv6_cut_short", B("\x05\x01\x00\x04\x00\x00\x00\x00"),
		    SOCKS5_NEED_MORE },
		{ "domain_cut_short", B("\x05\x01\x00\x03\x0b" "exam"),
		    SOCKS5_NEED_MORE },
		{ "port_cut_short", B("\x05\x01\x00\x01\x7f\x00\x00\x01\x00"),
		    SOCKS5_NEED_MORE },
	};

	run_table(p_request, t, NITEMS(t));
}

static void
request_fields_are_decoded(void)
{
	const uint8_t	*in;
	char		 txt[INET6_ADDRSTRLEN];
	uint8_t		 big[SOCKS5_REQUEST_MAX];
	int		 rv;

	CHECK(p_request(B("\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50")) == 10,
	    "ipv4");
	CHECK(rq.cmd == SOCKS5_CMD_CONNECT && rq.dst.atyp == SOCKS5_ATYP_IPV4,
	    "ipv4 cmd/atyp");
	CHECK(rq.dst.v4.s_addr == htonl(0x7f000001), "ipv4 addr");
	CHECK(rq.dst.port == 80 && rq.dst.name == NULL, "ipv4 port");

	CHECK(p_request(B("\x05\x01\x00\x04" "\x20\x01\x0d\xb8\x00\x00\x00\x00"
	    "\x00\x00\x00\x00\x00\x00\x00\x01" "\x01\xbb")) == 22, "ipv6");
	inet_ntop(AF_INET6, &rq.dst.v6, txt, sizeof txt);
	CHECK_STR(txt, "2001:db8::1");
	CHECK(rq.dst.atyp == SOCKS5_ATYP_IPV6 && rq.dst.port == 443,
	    "ipv6 port");

	in = guarded(B("\x05\x01\x00\x03\x0b" "example.com" "\x01\xbb"
	    "GET"));
	rv = socks5_parse_request(in, 21, &rq);
	CHECK(rv == 18, "domain with data after it: %d", rv);
	CHECK(rq.dst.atyp == SOCKS5_ATYP_DOMAIN && rq.dst.namelen == 11 &&
	    rq.dst.name == (const char *)in + 5 &&
	    memcmp(rq.dst.name, "example.com", 11) == 0, "domain slice");
	CHECK(rq.dst.port == 443, "domain port");
	CHECK(memcmp(in + rv, "GET", 3) == 0, "pipelined data left");

	CHECK(p_request(B("\x05\x03\x00\x01\x00\x00\x00\x00\x00\x01")) == 10,
	    "udp");
	CHECK(rq.cmd == SOCKS5_CMD_UDP && rq.dst.port == 1, "udp fields");

	/* A 255-byte name: the largest request. */
	big[0] = 5;
	big[1] = 1;
	big[2] = 0;
	big[3] = 3;
	big[4] = 255;
	memset(big + 5, 'a', 255);
	big[260] = 0x1f;
	big[261] = 0x90;
	rv = socks5_parse_request(guarded(big, sizeof big), sizeof big, &rq);
	CHECK(rv == SOCKS5_REQUEST_MAX && rq.dst.namelen == 255 &&
	    rq.dst.port == 8080, "max name: %d", rv);

	/* Errors leave nothing behind. */
	CHECK(p_request(B("\x05\x01\x00\x03\x01" "a" "\x00\x00")) ==
	    SOCKS5_E_PORT, "port 0");
	CHECK(rq.dst.name == NULL && rq.cmd == 0 && rq.dst.atyp == 0,
	    "zeroed");
}

static void
client_replies_whole_bytewise_and_pipelined(void)
{
	static const struct pcase mt[] = {
		{ "method_none", B("\x05\x00"), 2 },
		{ "method_userpass", B("\x05\x02"), 2 },
		{ "method_refused_parses", B("\x05\xff"), 2 },
		{ "method_bad_version", B("\x04\x00"), SOCKS5_E_VERSION },
		{ "method_http_answer", B("HTTP/1.1 400"), SOCKS5_E_VERSION },
		{ "method_empty", B(""), SOCKS5_NEED_MORE },
	};
	static const struct pcase at[] = {
		{ "auth_ok", B("\x01\x00"), 2 },
		{ "auth_failed", B("\x01\x01"), 2 },
		{ "auth_ok_with_socks_version", B("\x05\x00"), 2 },
		{ "auth_bad_version", B("\x02\x00"), SOCKS5_E_VERSION },
		{ "auth_zero_version", B("\x00\x00"), SOCKS5_E_VERSION },
	};
	static const struct pcase rt[] = {
		{ "reply_ipv4", B("\x05\x00\x00\x01\x0a\x00\x00\x02\x30\x39"),
		    10 },
		{ "reply_zero_addr_port", B("\x05\x00\x00\x01\x00\x00\x00\x00"
		    "\x00\x00"), 10 },
		{ "reply_ipv6", B("\x05\x00\x00\x04"
		    "\x00\x00\x00\x00\x00\x00\x00\x00"
		    "\x00\x00\x00\x00\x00\x00\x00\x01" "\x00\x50"), 22 },
		{ "reply_domain", B("\x05\x00\x00\x03\x05" "proxy" "\x04\x38"),
		    12 },
		{ "reply_empty_domain_tolerated", B("\x05\x00\x00\x03\x00"
		    "\x00\x00"), 7 },
		{ "reply_failure_code_parses", B("\x05\x05\x00\x01"
		    "\x00\x00\x00\x00\x00\x00"), 10 },
		{ "reply_reserved_ignored", B("\x05\x00\x07\x01"
		    "\x00\x00\x00\x00\x00\x00"), 10 },
		{ "reply_bad_version", B("\x00\x5a\x00\x00"),
		    SOCKS5_E_VERSION },
		{ "reply_bad_atyp", B("\x05\x00\x00\x02"), SOCKS5_E_ATYP },
		{ "reply_cut_short", B("\x05\x00\x00\x04\x00"),
		    SOCKS5_NEED_MORE },
	};

	run_table(p_method_reply, mt, NITEMS(mt));
	run_table(p_auth_reply, at, NITEMS(at));
	run_table(p_reply, rt, NITEMS(rt));
}

static void
client_reply_fields_are_decoded(void)
{
	CHECK(p_method_reply(B("\x05\x02")) == 2 &&
	    one == SOCKS5_METHOD_USERPASS, "method");
	CHECK(p_method_reply(B("\x04\x00")) == SOCKS5_E_VERSION &&
	    one == SOCKS5_METHOD_REFUSED, "method on error is refused");
	CHECK(p_auth_reply(B("\x01\x00")) == 2 && one == SOCKS5_AUTH_OK,
	    "auth ok");
	CHECK(p_auth_reply(B("\x01")) == SOCKS5_NEED_MORE &&
	    one != SOCKS5_AUTH_OK, "auth short is not ok");
	CHECK(p_reply(B("\x05\x04\x00\x01\x0a\x00\x00\x02\x30\x39")) == 10,
	    "reply");
	CHECK(rp.rep == SOCKS5_REP_HOST_UNREACH &&
	    rp.bnd.v4.s_addr == htonl(0x0a000002) && rp.bnd.port == 12345,
	    "reply fields");
	CHECK(p_reply(B("\x05\x00\x00\x03\x05" "proxy" "\x04\x38")) == 12,
	    "domain reply");
	CHECK(rp.rep == 0 && rp.bnd.namelen == 5 &&
	    memcmp(rp.bnd.name, "proxy", 5) == 0 && rp.bnd.port == 1080,
	    "domain reply fields");
	CHECK(p_reply(B("\x05\x00\x00\x04\x00")) == SOCKS5_NEED_MORE &&
	    rp.rep != SOCKS5_REP_SUCCEEDED, "short reply is not success");
}

static void
server_builders_write_exact_bytes(void)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	struct sockaddr_un_like {
		sa_family_t	 family;
		char		 pad[30];
	}			 other;
	uint8_t			 out[SOCKS5_REPLY_MAX + 4];
	int			 n;

	CHECK(socks5_build_method_reply(out, sizeof out, 0) == 2 &&
	    memcmp(out, "\x05\x00", 2) == 0, "method none");
	CHECK(socks5_build_method_reply(out, sizeof out, 0xff) == 2 &&
	    memcmp(out, "\x05\xff", 2) == 0, "method refused");
	CHECK(socks5_build_method_reply(out, 1, 0) == SOCKS5_E_SPACE,
	    "method space");
	CHECK(socks5_build_auth_reply(out, sizeof out, 0) == 2 &&
	    memcmp(out, "\x01\x00", 2) == 0, "auth ok");
	CHECK(socks5_build_auth_reply(out, sizeof out, 1) == 2 &&
	    memcmp(out, "\x01\x01", 2) == 0, "auth failed");
	CHECK(socks5_build_auth_reply(out, 0, 1) == SOCKS5_E_SPACE,
	    "auth space");

	n = socks5_build_reply(out, sizeof out, SOCKS5_REP_NOT_ALLOWED, NULL);
	CHECK(n == 10 && memcmp(out, "\x05\x02\x00\x01\x00\x00\x00\x00"
	    "\x00\x00", 10) == 0, "null bound is 0.0.0.0:0");

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0x7f000001);
	sin.sin_port = htons(40000);
	n = socks5_build_reply(out, sizeof out, 0, (struct sockaddr *)&sin);
	CHECK(n == 10 && memcmp(out, "\x05\x00\x00\x01\x7f\x00\x00\x01"
	    "\x9c\x40", 10) == 0, "ipv4 bound");
	CHECK(socks5_build_reply(out, 9, 0, (struct sockaddr *)&sin) ==
	    SOCKS5_E_SPACE, "ipv4 space");

	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	sin6.sin6_port = htons(443);
	n = socks5_build_reply(out, sizeof out, 0, (struct sockaddr *)&sin6);
	CHECK(n == 22 && memcmp(out, "\x05\x00\x00\x04" "\x20\x01\x0d\xb8"
	    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" "\x01\xbb",
	    22) == 0, "ipv6 bound");
	CHECK(socks5_build_reply(out, 21, 0, (struct sockaddr *)&sin6) ==
	    SOCKS5_E_SPACE, "ipv6 space");

	inet_pton(AF_INET6, "::ffff:10.1.2.3", &sin6.sin6_addr);
	n = socks5_build_reply(out, sizeof out, 0, (struct sockaddr *)&sin6);
	CHECK(n == 10 && memcmp(out, "\x05\x00\x00\x01\x0a\x01\x02\x03"
	    "\x01\xbb", 10) == 0, "v4-mapped bound written as ipv4");

	memset(&other, 0, sizeof other);
	other.family = AF_UNIX;
	n = socks5_build_reply(out, sizeof out, SOCKS5_REP_FAILURE,
	    (struct sockaddr *)&other);
	CHECK(n == 10 && memcmp(out, "\x05\x01\x00\x01\x00\x00\x00\x00"
	    "\x00\x00", 10) == 0, "other family is 0.0.0.0:0");

	/* What we build, we parse back. */
	n = socks5_build_reply(out, sizeof out, 0, (struct sockaddr *)&sin);
	CHECK(socks5_parse_reply(out, (size_t)n, &rp) == n &&
	    rp.bnd.port == 40000, "round trip");
}

static void
client_builders_write_exact_bytes_and_check_bounds(void)
{
	struct sockaddr_in	 sin;
	struct sockaddr_in6	 sin6;
	uint8_t			 out[SOCKS5_AUTH_MAX];
	char			 name[300];
	int			 n;

	CHECK(socks5_build_greeting(out, sizeof out, false) == 3 &&
	    memcmp(out, "\x05\x01\x00", 3) == 0, "greeting");
	CHECK(socks5_build_greeting(out, sizeof out, true) == 4 &&
	    memcmp(out, "\x05\x02\x00\x02", 4) == 0, "greeting userpass");
	CHECK(socks5_build_greeting(out, 3, true) == SOCKS5_E_SPACE,
	    "greeting space");
	CHECK(socks5_build_greeting(out, sizeof out, true) == 4 &&
	    socks5_parse_greeting(out, 4, &g) == 4 && g.none && g.userpass,
	    "greeting round trip");

	CHECK(socks5_build_auth(out, sizeof out, "user", 4, "secret", 6) ==
	    13 && memcmp(out, "\x01\x04user\x06secret", 13) == 0, "auth");
	CHECK(socks5_build_auth(out, sizeof out, "user", 4, NULL, 0) == 7 &&
	    memcmp(out, "\x01\x04user\x00", 7) == 0, "auth no password");
	CHECK(socks5_build_auth(out, sizeof out, "", 0, "p", 1) ==
	    SOCKS5_E_ARG, "auth empty user");
	CHECK(socks5_build_auth(out, sizeof out, NULL, 0, "p", 1) ==
	    SOCKS5_E_ARG, "auth null user");
	memset(name, 'u', sizeof name);
	CHECK(socks5_build_auth(out, sizeof out, name, 256, "p", 1) ==
	    SOCKS5_E_ARG, "auth 256-byte user");
	CHECK(socks5_build_auth(out, sizeof out, "u", 1, name, 256) ==
	    SOCKS5_E_ARG, "auth 256-byte password");
	CHECK(socks5_build_auth(out, sizeof out, name, 255, name, 255) ==
	    SOCKS5_AUTH_MAX, "auth 255 + 255");
	CHECK(socks5_build_auth(out, 12, "user", 4, "secret", 6) ==
	    SOCKS5_E_SPACE, "auth space");
	n = socks5_build_auth(out, sizeof out, "user", 4, "secret", 6);
	CHECK(socks5_parse_auth(out, (size_t)n, &a) == n && a.userlen == 4 &&
	    a.passlen == 6, "auth round trip");

	n = socks5_build_connect_name(out, sizeof out, "example.com", 11,
	    443);
	CHECK(n == 18 && memcmp(out, "\x05\x01\x00\x03\x0b" "example.com"
	    "\x01\xbb", 18) == 0, "connect name");
	CHECK(socks5_parse_request(out, (size_t)n, &rq) == n &&
	    rq.dst.port == 443, "connect name round trip");
	CHECK(socks5_build_connect_name(out, 17, "example.com", 11, 443) ==
	    SOCKS5_E_SPACE, "connect name space");
	CHECK(socks5_build_connect_name(out, sizeof out, "", 0, 443) ==
	    SOCKS5_E_ARG, "connect empty name");
	CHECK(socks5_build_connect_name(out, sizeof out, "a", 1, 0) ==
	    SOCKS5_E_ARG, "connect port 0");
	CHECK(socks5_build_connect_name(out, sizeof out, "a\0b", 3, 80) ==
	    SOCKS5_E_ARG, "connect name with NUL");
	CHECK(socks5_build_connect_name(out, sizeof out, "a b", 3, 80) ==
	    SOCKS5_E_ARG, "connect name with space");
	memset(name, 'a', sizeof name);
	CHECK(socks5_build_connect_name(out, sizeof out, name, 256, 80) ==
	    SOCKS5_E_ARG, "connect 256-byte name");
	CHECK(socks5_build_connect_name(out, sizeof out, name, 255, 80) ==
	    SOCKS5_REQUEST_MAX, "connect 255-byte name");

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(0xc0a80001);
	sin.sin_port = htons(22);
	n = socks5_build_connect_addr(out, sizeof out,
	    (struct sockaddr *)&sin);
	CHECK(n == 10 && memcmp(out, "\x05\x01\x00\x01\xc0\xa8\x00\x01"
	    "\x00\x16", 10) == 0, "connect ipv4");
	CHECK(socks5_build_connect_addr(out, 9, (struct sockaddr *)&sin) ==
	    SOCKS5_E_SPACE, "connect ipv4 space");
	sin.sin_port = 0;
	CHECK(socks5_build_connect_addr(out, sizeof out,
	    (struct sockaddr *)&sin) == SOCKS5_E_ARG, "connect ipv4 port 0");

	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	sin6.sin6_port = htons(8443);
	n = socks5_build_connect_addr(out, sizeof out,
	    (struct sockaddr *)&sin6);
	CHECK(n == 22 && memcmp(out, "\x05\x01\x00\x04" "\x00\x00\x00\x00"
	    "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01" "\x20\xfb",
	    22) == 0, "connect ipv6");
	CHECK(socks5_parse_request(out, (size_t)n, &rq) == n &&
	    rq.dst.atyp == SOCKS5_ATYP_IPV6 && rq.dst.port == 8443,
	    "connect ipv6 round trip");
	CHECK(socks5_build_connect_addr(out, sizeof out, NULL) ==
	    SOCKS5_E_ARG, "connect null");
}

static void
messages_are_described(void)
{
	CHECK_STR(socks5_reply_str(SOCKS5_REP_SUCCEEDED), "succeeded");
	CHECK_STR(socks5_reply_str(SOCKS5_REP_NOT_ALLOWED),
	    "connection not allowed by ruleset");
	CHECK_STR(socks5_reply_str(SOCKS5_REP_ATYP_UNSUPP),
	    "address type not supported");
	CHECK_STR(socks5_reply_str(0x09), "unassigned reply code");
	CHECK_STR(socks5_reply_str(0xff), "unassigned reply code");
	for (int rv = SOCKS5_NEED_MORE; rv >= SOCKS5_E_ARG; rv--)
		CHECK(strstr(socks5_strerror(rv), "unknown") == NULL,
		    "code %d has a message", rv);
	CHECK_STR(socks5_strerror(-99), "unknown SOCKS5 error");
}

int
main(void)
{
	RUN(greeting_table_whole_bytewise_and_pipelined);
	RUN(greeting_reports_offered_methods);
	RUN(auth_table_whole_bytewise_and_pipelined);
	RUN(auth_slices_point_into_the_buffer);
	RUN(request_table_whole_bytewise_and_pipelined);
	RUN(request_fields_are_decoded);
	RUN(client_replies_whole_bytewise_and_pipelined);
	RUN(client_reply_fields_are_decoded);
	RUN(server_builders_write_exact_bytes);
	RUN(client_builders_write_exact_bytes_and_check_bounds);
	RUN(messages_are_described);
	return test_done("socks5_parse");
}
