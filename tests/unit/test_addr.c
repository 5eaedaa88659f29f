/*
 * addr.c: authority and host parsing (every numeric IPv4 spelling, IPv6,
 * hostile bytes), the guard's address classes and embedded IPv4. Inputs
 * sit right before a PROT_NONE page, unterminated, so a read past the end
 * faults.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "builtin/addr.h"
#include "tests/unit/test.h"

#define NONE	((uint16_t)0)

static char	*guard_page;
static size_t	 page_size;

/* len bytes of s, unterminated, ending right at a PROT_NONE page. */
static const char *
guarded(const char *s, size_t len)
{
	if (guard_page == NULL) {
		page_size = (size_t)sysconf(_SC_PAGESIZE);
		guard_page = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (guard_page == MAP_FAILED ||
		    mprotect(guard_page + page_size, page_size, PROT_NONE) != 0)
			abort();
	}
	if (len > page_size)
		abort();
	memcpy(guard_page + page_size - len, s, len);
	return guard_page + page_size - len;
}

static int
authority(const char *s, uint16_t def, struct dest *d)
{
	size_t	len = strlen(s);

	return addr_parse_authority(guarded(s, len), len, def, d);
}

static int
host(const char *s, struct dest *d)
{
	size_t	len = strlen(s);

	return addr_parse_host(guarded(s, len), len, d);
}

static bool
dest_zero(const struct dest *d)
{
	static const struct dest	zero;

	return memcmp(d, &zero, sizeof zero) == 0;
}

static bool
dest_same(const struct dest *a, const struct dest *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port &&
	    a->kind == b->kind && memcmp(&a->v4, &b->v4, sizeof a->v4) == 0 &&
	    memcmp(&a->v6, &b->v6, sizeof a->v6) == 0;
}

static const struct {
	const char	*in;
	uint16_t	 def;
	int		 rc;
	const char	*host;
	uint16_t	 port;
	enum addr_kind	 kind;
} authorities[] = {
	/* names */
	{ "example.com:443", 0, ADDR_OK, "example.com", 443, ADDR_NAME },
	{ "example.com", 80, ADDR_OK, "example.com", 80, ADDR_NAME },
	{ "EXAMPLE.Com:8080", 0, ADDR_OK, "example.com", 8080, ADDR_NAME },
	{ "example.com.:443", 0, ADDR_OK, "example.com", 443, ADDR_NAME },
	{ "example.com.", 80, ADDR_OK, "example.com", 80, ADDR_NAME },
	{ "localhost:1", 0, ADDR_OK, "localhost", 1, ADDR_NAME },
	{ "a:65535", 0, ADDR_OK, "a", 65535, ADDR_NAME },
	{ "_dmarc.example.com:53", 0, ADDR_OK, "_dmarc.example.com", 53,
	    ADDR_NAME },
	{ "xn--bcher-kva.example:443", 0, ADDR_OK, "xn--bcher-kva.example",
	    443, ADDR_NAME },
	{ "-leading-hyphen.example:1", 0, ADDR_OK, "-leading-hyphen.example",
	    1, ADDR_NAME },
	{ "1.2.3.example:80", 0, ADDR_OK, "1.2.3.example", 80, ADDR_NAME },
	{ "example.123a:80", 0, ADDR_OK, "example.123a", 80, ADDR_NAME },
	{ "example.0xg:80", 0, ADDR_OK, "example.0xg", 80, ADDR_NAME },
	{ "example.1e5:80", 0, ADDR_OK, "example.1e5", 80, ADDR_NAME },
	/* ports */
	{ "example.com:080", 0, ADDR_OK, "example.com", 80, ADDR_NAME },
	{ "example.com:00443", 0, ADDR_OK, "example.com", 443, ADDR_NAME },
	{ "example.com:000443", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:", 443, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:0", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:00000", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:65536", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:99999", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:4294967377", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:+80", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:-80", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com: 80", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:80 ", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:0x50", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:8o", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "[::1]", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com:80:90", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	/* IPv4 in every spelling */
	{ "127.0.0.1:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "2130706433:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "0x7f000001:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "0X7F000001:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "017700000001:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "127.1:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "127.0.1:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "0x7f.0.0.1:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "0177.0.0.01:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "127.0.0.1.:80", 0, ADDR_OK, "127.0.0.1", 80, ADDR_IPV4 },
	{ "0:80", 0, ADDR_OK, "0.0.0.0", 80, ADDR_IPV4 },
	{ "0x:80", 0, ADDR_OK, "0.0.0.0", 80, ADDR_IPV4 },
	{ "0x.0x.0x.0x:80", 0, ADDR_OK, "0.0.0.0", 80, ADDR_IPV4 },
	{ "4294967295:80", 0, ADDR_OK, "255.255.255.255", 80, ADDR_IPV4 },
	{ "0xA9FEA9FE:80", 0, ADDR_OK, "169.254.169.254", 80, ADDR_IPV4 },
	{ "169.254.43518:80", 0, ADDR_OK, "169.254.169.254", 80, ADDR_IPV4 },
	{ "0000000000000000000000000000000000001:80", 0, ADDR_OK, "0.0.0.1",
	    80, ADDR_IPV4 },
	{ "0x00000000000000000000000000000000007f000001:80", 0, ADDR_OK,
	    "127.0.0.1", 80, ADDR_IPV4 },
	{ "1.2.3.256:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "1.2.3.4.5:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "127.0.0.1.5:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "256.1:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "1.16777216:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "4294967296:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "0x100000000:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "99999999999999999999999999:80", 0, ADDR_E_IPV4, "", 0,
	    ADDR_NAME },
	{ "09:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "1.2.3.08:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "foo.0x:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "example.123:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "a_b.1:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	{ "0x7g.1:80", 0, ADDR_E_IPV4, "", 0, ADDR_NAME },
	/* IPv6 */
	{ "[::1]:443", 0, ADDR_OK, "::1", 443, ADDR_IPV6 },
	{ "[::1]", 8080, ADDR_OK, "::1", 8080, ADDR_IPV6 },
	{ "[0:0:0:0:0:0:0:1]:1", 0, ADDR_OK, "::1", 1, ADDR_IPV6 },
	{ "[2001:DB8::A]:1", 0, ADDR_OK, "2001:db8::a", 1, ADDR_IPV6 },
	{ "[2001:db8:0:0:1:0:0:1]:1", 0, ADDR_OK, "2001:db8::1:0:0:1", 1,
	    ADDR_IPV6 },
	{ "[2001:db8:0:1:1:1:1:1]:1", 0, ADDR_OK, "2001:db8:0:1:1:1:1:1", 1,
	    ADDR_IPV6 },
	{ "[::ffff:127.0.0.1]:1", 0, ADDR_OK, "::ffff:127.0.0.1", 1,
	    ADDR_IPV6 },
	{ "[::ffff:7f00:1]:1", 0, ADDR_OK, "::ffff:127.0.0.1", 1, ADDR_IPV6 },
	{ "[::]:1", 0, ADDR_OK, "::", 1, ADDR_IPV6 },
	{ "[fd00:ec2::254]:80", 0, ADDR_OK, "fd00:ec2::254", 80, ADDR_IPV6 },
	{ "::1", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "::1:443", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[::1]443", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[::1]:", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "[::1", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[::1]]:1", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[[::1]]:1", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "]", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[]:443", 0, ADDR_E_EMPTY, "", 0, ADDR_NAME },
	{ "[]", 443, ADDR_E_EMPTY, "", 0, ADDR_NAME },
	{ "[127.0.0.1]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[example.com]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[v1.fe]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[::1::2]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[1:2:3:4:5:6:7:8:9]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[::ffff:1.2.3.04]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[::ffff:1.2.3.256]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[ ::1]:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "[0000:0000:0000:0000:0000:0000:0000:0000:0001]:1", 0,
	    ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	/* hostile */
	{ "", 443, ADDR_E_EMPTY, "", 0, ADDR_NAME },
	{ ":443", 0, ADDR_E_EMPTY, "", 0, ADDR_NAME },
	{ ":", 443, ADDR_E_EMPTY, "", 0, ADDR_NAME },
	{ "user@example.com:443", 0, ADDR_E_USERINFO, "", 0, ADDR_NAME },
	{ "user:pass@example.com:443", 0, ADDR_E_USERINFO, "", 0,
	    ADDR_NAME },
	{ "@example.com", 443, ADDR_E_USERINFO, "", 0, ADDR_NAME },
	{ "example.com:443@evil.com", 0, ADDR_E_USERINFO, "", 0, ADDR_NAME },
	{ "[::1]@evil.com", 443, ADDR_E_USERINFO, "", 0, ADDR_NAME },
	{ "ex%61mple.com:443", 0, ADDR_E_PERCENT, "", 0, ADDR_NAME },
	{ "[fe80::1%25eth0]:443", 0, ADDR_E_PERCENT, "", 0, ADDR_NAME },
	{ "[fe80::1%eth0]:443", 0, ADDR_E_PERCENT, "", 0, ADDR_NAME },
	{ "%", 443, ADDR_E_PERCENT, "", 0, ADDR_NAME },
	{ ".", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "..", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example.com..", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example.com..:443", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ ".example.com", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example..com", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "exa mple.com", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ " example.com", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example.com\r\n", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example.com/path", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example.com\\@evil", 443, ADDR_E_USERINFO, "", 0, ADDR_NAME },
	{ "example.com\\", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "*.example.com", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "b\xc3\xbc" "cher.example", 443, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "http://example.com", 0, ADDR_E_PORT, "", 0, ADDR_NAME },
	{ "example.com#:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
	{ "example.com?:80", 0, ADDR_E_SYNTAX, "", 0, ADDR_NAME },
};

static void
authority_table_matches(void)
{
	struct dest	d;
	size_t		i;
	int		rc;

	for (i = 0; i < sizeof authorities / sizeof authorities[0]; i++) {
		rc = authority(authorities[i].in, authorities[i].def, &d);
		CHECK(rc == authorities[i].rc, "'%s': rc %d, want %d",
		    authorities[i].in, rc, authorities[i].rc);
		if (rc != ADDR_OK) {
			CHECK(dest_zero(&d), "'%s': dest not zeroed",
			    authorities[i].in);
			continue;
		}
		CHECK_STR(d.host, authorities[i].host);
		CHECK(d.port == authorities[i].port, "'%s': port %u",
		    authorities[i].in, d.port);
		CHECK(d.kind == authorities[i].kind, "'%s': kind %d",
		    authorities[i].in, (int)d.kind);
	}
}

/* Every prefix of every input parses or fails without reading past it. */
static void
authority_prefixes_never_overread(void)
{
	struct dest	d;
	size_t		i, n, len;
	int		rc;

	for (i = 0; i < sizeof authorities / sizeof authorities[0]; i++) {
		len = strlen(authorities[i].in);
		for (n = 0; n <= len; n++) {
			rc = addr_parse_authority(guarded(authorities[i].in, n),
			    n, 443, &d);
			CHECK(rc <= 0 && (rc == 0 || dest_zero(&d)),
			    "'%.*s': rc %d", (int)n, authorities[i].in, rc);
			rc = addr_parse_host(guarded(authorities[i].in, n),
			    n, &d);
			CHECK(rc <= 0 && (rc == 0 || dest_zero(&d)),
			    "'%.*s': rc %d", (int)n, authorities[i].in, rc);
		}
	}
}

static void
authority_with_embedded_nul_is_syntax(void)
{
	struct dest	d;

	CHECK(addr_parse_authority(guarded("a\0b:80", 6), 6, 0, &d) ==
	    ADDR_E_SYNTAX, "NUL in a name");
	CHECK(addr_parse_authority(guarded("[::1\0]:80", 9), 9, 0, &d) ==
	    ADDR_E_SYNTAX, "NUL in IPv6");
	CHECK(addr_parse_host(guarded("::1\0:2", 6), 6, &d) == ADDR_E_SYNTAX,
	    "NUL in a bare IPv6");
	CHECK(addr_parse_authority(guarded("a.com:8\0", 8), 8, 0, &d) ==
	    ADDR_E_PORT, "NUL in the port");
	CHECK(addr_parse_host(guarded("1.2.3.4\0", 8), 8, &d) ==
	    ADDR_E_SYNTAX, "NUL after an IPv4");
}

static const struct {
	const char	*in;
	int		 rc;
	const char	*host;
	enum addr_kind	 kind;
} hosts[] = {
	{ "example.com", ADDR_OK, "example.com", ADDR_NAME },
	{ "Example.COM.", ADDR_OK, "example.com", ADDR_NAME },
	{ "::1", ADDR_OK, "::1", ADDR_IPV6 },
	{ "[::1]", ADDR_OK, "::1", ADDR_IPV6 },
	{ "[FE80::1]", ADDR_OK, "fe80::1", ADDR_IPV6 },
	{ "::ffff:169.254.169.254", ADDR_OK, "::ffff:169.254.169.254",
	    ADDR_IPV6 },
	{ "0177.1", ADDR_OK, "127.0.0.1", ADDR_IPV4 },
	{ "3232235777", ADDR_OK, "192.168.1.1", ADDR_IPV4 },
	{ "example.com:443", ADDR_E_SYNTAX, "", ADDR_NAME },
	{ "[::1]:443", ADDR_E_SYNTAX, "", ADDR_NAME },
	{ "[::1", ADDR_E_SYNTAX, "", ADDR_NAME },
	{ "::1]", ADDR_E_SYNTAX, "", ADDR_NAME },
	{ "fe80::1%eth0", ADDR_E_PERCENT, "", ADDR_NAME },
	{ "a@b", ADDR_E_USERINFO, "", ADDR_NAME },
	{ "", ADDR_E_EMPTY, "", ADDR_NAME },
	{ "[]", ADDR_E_EMPTY, "", ADDR_NAME },
	{ ".", ADDR_E_SYNTAX, "", ADDR_NAME },
	{ "1.2.3.4.5", ADDR_E_IPV4, "", ADDR_NAME },
	{ ":::", ADDR_E_SYNTAX, "", ADDR_NAME },
	{ "g::1", ADDR_E_SYNTAX, "", ADDR_NAME },
};

static void
host_table_matches(void)
{
	struct dest	d;
	size_t		i;
	int		rc;

	for (i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
		rc = host(hosts[i].in, &d);
		CHECK(rc == hosts[i].rc, "'%s': rc %d, want %d", hosts[i].in,
		    rc, hosts[i].rc);
		if (rc != ADDR_OK) {
			CHECK(dest_zero(&d), "'%s': not zeroed", hosts[i].in);
			continue;
		}
		CHECK_STR(d.host, hosts[i].host);
		CHECK(d.kind == hosts[i].kind, "'%s': kind", hosts[i].in);
		CHECK(d.port == 0, "'%s': port %u", hosts[i].in, d.port);
	}
}

static void
host_fills_binary_address(void)
{
	struct dest	d;
	struct in6_addr	want;

	CHECK(host("0x7f.1", &d) == ADDR_OK && d.kind == ADDR_IPV4 &&
	    d.v4.s_addr == htonl(0x7f000001), "v4 not filled");
	inet_pton(AF_INET6, "2001:db8::1", &want);
	CHECK(host("[2001:DB8::1]", &d) == ADDR_OK && d.kind == ADDR_IPV6 &&
	    memcmp(&d.v6, &want, sizeof want) == 0, "v6 not filled");
	CHECK(host("example.com", &d) == ADDR_OK && d.v4.s_addr == 0,
	    "a name has no v4");
}

/* Build a name of n bytes from labels of `label` bytes. */
static void
make_name(char *buf, size_t n, size_t label)
{
	size_t	i;

	for (i = 0; i < n; i++)
		buf[i] = ((i + 1) % (label + 1) == 0) ? '.' : 'a';
	buf[n] = '\0';
}

static void
name_length_limits(void)
{
	char		buf[600];
	struct dest	d;

	make_name(buf, 253, 63);
	CHECK(host(buf, &d) == ADDR_OK && strlen(d.host) == 253,
	    "253 bytes is the limit");
	buf[253] = '.';
	buf[254] = '\0';
	CHECK(host(buf, &d) == ADDR_OK && strlen(d.host) == 253,
	    "253 bytes and the root dot");
	make_name(buf, 254, 63);
	CHECK(host(buf, &d) == ADDR_E_TOOLONG, "254 bytes");
	make_name(buf, 590, 63);
	CHECK(host(buf, &d) == ADDR_E_TOOLONG, "590 bytes");
	make_name(buf, 63, 63);
	CHECK(host(buf, &d) == ADDR_OK, "63-byte label");
	make_name(buf, 64, 64);
	CHECK(host(buf, &d) == ADDR_E_TOOLONG, "64-byte label");
	make_name(buf, 200, 64);
	CHECK(host(buf, &d) == ADDR_E_TOOLONG, "64-byte labels");
	memcpy(buf, "example.", 8);
	memset(buf + 8, 'a', 64);
	memcpy(buf + 72, ":80", 4);
	CHECK(authority(buf, 0, &d) == ADDR_E_TOOLONG, "long last label");
	/* A long numeric spelling is still one IPv4 address. */
	memset(buf, '0', 300);
	memcpy(buf + 300, "1", 2);
	CHECK(host(buf, &d) == ADDR_OK && strcmp(d.host, "0.0.0.1") == 0,
	    "301-digit octal 1");
}

/* The canonical text parses back to the very same struct dest. */
static void
canonical_text_reparses_identically(void)
{
	struct dest	a, b;
	char		buf[ADDR_HOST_MAX + 16];
	size_t		i;
	int		n;

	for (i = 0; i < sizeof authorities / sizeof authorities[0]; i++) {
		if (authority(authorities[i].in, authorities[i].def, &a) !=
		    ADDR_OK)
			continue;
		if (a.kind == ADDR_IPV6)
			n = snprintf(buf, sizeof buf, "[%s]:%u", a.host,
			    a.port);
		else
			n = snprintf(buf, sizeof buf, "%s:%u", a.host, a.port);
		CHECK(n > 0 && (size_t)n < sizeof buf, "buffer");
		CHECK(authority(buf, 0, &b) == ADDR_OK && dest_same(&a, &b),
		    "'%s' -> '%s' does not re-parse", authorities[i].in, buf);
		CHECK(host(a.host, &b) == ADDR_OK && b.port == 0 &&
		    (b.port = a.port, dest_same(&a, &b)),
		    "'%s' host does not re-parse", a.host);
	}
}

static const struct {
	const char	*in;
	const char	*out;
} v6_texts[] = {
	{ "::", "::" },
	{ "::1", "::1" },
	{ "1::", "1::" },
	{ "::1:443", "::1:443" },
	{ "::7f00:1", "::7f00:1" },
	{ "::127.0.0.1", "::7f00:1" },
	{ "::0.0.0.2", "::2" },
	{ "::ffff:7f00:1", "::ffff:127.0.0.1" },
	{ "0:0:0:0:0:FFFF:0A00:0001", "::ffff:10.0.0.1" },
	{ "::ffff:0:1.2.3.4", "::ffff:0:102:304" },
	{ "64:ff9b::1.2.3.4", "64:ff9b::102:304" },
	{ "1:0:0:2:0:0:0:3", "1:0:0:2::3" },
	{ "1:0:0:2:0:0:3:4", "1::2:0:0:3:4" },
	{ "1:0:2:3:4:5:6:7", "1:0:2:3:4:5:6:7" },
	{ "0:1:2:3:4:5:6:0", "0:1:2:3:4:5:6:0" },
	{ "0:0:1:2:3:4:5:6", "::1:2:3:4:5:6" },
	{ "1:2:3:4:5:6:0:0", "1:2:3:4:5:6::" },
	{ "2001:0DB8:0000:0000:0001:0000:0000:0001", "2001:db8::1:0:0:1" },
	{ "fe80:0:0:0:0:0:0:1", "fe80::1" },
	{ "00ff:0f0f:f00f:0000:1000:0100:0010:0001",
	    "ff:f0f:f00f:0:1000:100:10:1" },
	{ "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff" },
};

static void
ipv6_text_is_rfc5952_on_every_libc(void)
{
	struct dest	d;
	size_t		i;

	for (i = 0; i < sizeof v6_texts / sizeof v6_texts[0]; i++) {
		CHECK(host(v6_texts[i].in, &d) == ADDR_OK, "'%s'",
		    v6_texts[i].in);
		CHECK_STR(d.host, v6_texts[i].out);
	}
}

/* Where glibc's inet_ntop() prints hex, ours prints the same text. */
static void
ipv6_text_agrees_with_inet_ntop(void)
{
	struct sockaddr_in6	sin6;
	char			ours[INET6_ADDRSTRLEN], libc[INET6_ADDRSTRLEN];
	unsigned		seed = 1;
	int			i, j, agree = 0;

	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	for (i = 0; i < 20000; i++) {
		for (j = 0; j < 16; j++) {
			seed = seed * 1103515245 + 12345;
			/* mostly zero groups, to exercise "::" */
			sin6.sin6_addr.s6_addr[j] = (seed >> 16) % 3 == 0 ?
			    (uint8_t)(seed >> 8) : 0;
		}
		addr_ntop((struct sockaddr *)&sin6, ours, sizeof ours);
		inet_ntop(AF_INET6, &sin6.sin6_addr, libc, sizeof libc);
		if (strchr(libc, '.') != NULL &&
		    strncmp(libc, "::ffff:", 7) != 0)
			continue;
		agree++;
		CHECK(strcmp(ours, libc) == 0, "ours '%s', libc '%s'", ours,
		    libc);
	}
	CHECK(agree > 18000, "only %d compared", agree);
}

static unsigned
classify(const char *s)
{
	struct sockaddr_storage	ss;
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	memset(&ss, 0, sizeof ss);
	memset(&sin, 0, sizeof sin);
	memset(&sin6, 0, sizeof sin6);
	if (inet_pton(AF_INET, s, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		memcpy(&ss, &sin, sizeof sin);
	} else if (inet_pton(AF_INET6, s, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		memcpy(&ss, &sin6, sizeof sin6);
	} else
		abort();
	return addr_classify((struct sockaddr *)&ss);
}

#define LO	ADDR_C_LOOPBACK
#define LL	ADDR_C_LINKLOCAL
#define UN	ADDR_C_UNSPECIFIED
#define MC	ADDR_C_MULTICAST
#define MD	ADDR_C_METADATA
#define BC	ADDR_C_BROADCAST
#define RS	ADDR_C_RESERVED
#define PV	ADDR_C_PRIVATE

static const struct {
	const char	*addr;
	unsigned	 classes;
	const char	*name;
} classes[] = {
	{ "127.0.0.1", LO, "loopback" },
	{ "127.255.255.254", LO, "loopback" },
	{ "126.255.255.255", 0, "public" },
	{ "128.0.0.1", 0, "public" },
	{ "169.254.0.1", LL, "link-local" },
	{ "169.253.255.255", 0, "public" },
	{ "169.255.0.0", 0, "public" },
	{ "0.0.0.0", UN, "unspecified" },
	{ "0.255.255.255", UN, "unspecified" },
	{ "1.0.0.0", 0, "public" },
	{ "224.0.0.1", MC, "multicast" },
	{ "239.255.255.255", MC, "multicast" },
	{ "223.255.255.255", 0, "public" },
	{ "240.0.0.1", RS, "reserved" },
	{ "255.255.255.254", RS, "reserved" },
	{ "255.255.255.255", BC | RS, "broadcast" },
	{ "169.254.169.254", MD | LL, "cloud metadata" },
	{ "169.254.170.2", MD | LL, "cloud metadata" },
	{ "100.100.100.200", MD | PV, "cloud metadata" },
	{ "192.0.0.192", MD, "cloud metadata" },
	{ "192.0.0.193", 0, "public" },
	{ "10.0.0.1", PV, "private" },
	{ "10.255.255.255", PV, "private" },
	{ "11.0.0.0", 0, "public" },
	{ "172.16.0.0", PV, "private" },
	{ "172.31.255.255", PV, "private" },
	{ "172.15.255.255", 0, "public" },
	{ "172.32.0.0", 0, "public" },
	{ "192.168.0.1", PV, "private" },
	{ "192.169.0.1", 0, "public" },
	{ "100.64.0.1", PV, "private" },
	{ "100.127.255.255", PV, "private" },
	{ "100.63.255.255", 0, "public" },
	{ "100.128.0.0", 0, "public" },
	{ "8.8.8.8", 0, "public" },
	{ "::1", LO, "loopback" },
	{ "::", UN, "unspecified" },
	{ "::2", UN, "unspecified" },
	{ "fe80::1", LL, "link-local" },
	{ "febf:ffff::1", LL, "link-local" },
	{ "fec0::1", 0, "public" },
	{ "ff02::1", MC, "multicast" },
	{ "ff00::", MC, "multicast" },
	{ "fd00:ec2::254", MD | PV, "cloud metadata" },
	{ "fd00:ec2::253", PV, "private" },
	{ "fc00::1", PV, "private" },
	{ "fdff:ffff::1", PV, "private" },
	{ "fe00::1", 0, "public" },
	{ "2606:4700::1111", 0, "public" },
	/* IPv4 inside IPv6 */
	{ "::ffff:127.0.0.1", LO, "loopback" },
	{ "::ffff:169.254.169.254", MD | LL, "cloud metadata" },
	{ "::ffff:10.1.2.3", PV, "private" },
	{ "::ffff:8.8.8.8", 0, "public" },
	{ "::ffff:0.0.0.0", UN, "unspecified" },
	{ "::127.0.0.1", LO, "loopback" },
	{ "::7f00:1", LO, "loopback" },
	{ "::169.254.169.254", MD | LL, "cloud metadata" },
	{ "::ffff:0:127.0.0.1", LO, "loopback" },
	{ "64:ff9b::127.0.0.1", LO, "loopback" },
	{ "64:ff9b::a9fe:a9fe", MD | LL, "cloud metadata" },
	{ "64:ff9b::8.8.8.8", 0, "public" },
	{ "64:ff9b:1::7f00:1", LO, "loopback" },
	{ "64:ff9b:1:ab::7f00:1", LO, "loopback" },
	{ "64:ff9b:2::7f00:1", 0, "public" },
	{ "2002:7f00:1::", LO, "loopback" },
	{ "2002:a9fe:a9fe::1", MD | LL, "cloud metadata" },
	{ "2002:0808:0808::1", 0, "public" },
	{ "2002:e000:1::", MC, "multicast" },
	/* Teredo: client 127.0.0.1 is stored inverted, 80ff:fffe */
	{ "2001:0:4136:e378:8000:63bf:80ff:fffe", LO, "loopback" },
	{ "2001:0:4136:e378:8000:63bf:5601:5601", LL | MD, "cloud metadata" },
	{ "2001:0:4136:e378:8000:63bf:f7f7:f7f7", 0, "public" },
	{ "2001:db8::7f00:1", 0, "public" },
	{ "2001:1::80ff:fffe", 0, "public" },
};

static void
classify_table_matches(void)
{
	size_t		i;
	unsigned	c;

	for (i = 0; i < sizeof classes / sizeof classes[0]; i++) {
		c = classify(classes[i].addr);
		CHECK(c == classes[i].classes, "%s: classes %#x, want %#x",
		    classes[i].addr, c, classes[i].classes);
		CHECK_STR(addr_class_name(c), classes[i].name);
	}
}

static void
classify_other_family_is_nothing(void)
{
	struct sockaddr_storage	ss;

	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	CHECK(addr_classify((struct sockaddr *)&ss) == 0, "AF_UNIX");
	CHECK(addr_classify(NULL) == 0, "NULL");
	CHECK((ADDR_C_GUARDED & ADDR_C_PRIVATE) == 0, "private is guarded");
}

static const struct {
	const char	*v6;
	const char	*v4;		/* NULL: embeds none */
} embedded[] = {
	{ "::ffff:1.2.3.4", "1.2.3.4" },
	{ "::ffff:0:1.2.3.4", "1.2.3.4" },
	{ "::1.2.3.4", "1.2.3.4" },
	{ "::0.0.0.2", "0.0.0.2" },
	{ "::", NULL },
	{ "::1", NULL },
	{ "::1:0:0:0", NULL },
	{ "64:ff9b::1.2.3.4", "1.2.3.4" },
	{ "64:ff9b:1::1.2.3.4", "1.2.3.4" },
	{ "64:ff9b:0:0:0:1:1.2.3.4", NULL },
	{ "2002:102:304::", "1.2.3.4" },
	{ "2002:102:304:ffff:ffff:ffff:ffff:ffff", "1.2.3.4" },
	{ "2001::fefd:fcfb", "1.2.3.4" },
	{ "2001:0:1::fefd:fcfb", "1.2.3.4" },
	{ "2001:1::fefd:fcfb", NULL },
	{ "2003::1", NULL },
	{ "fe80::1.2.3.4", NULL },
};

static void
embedded_v4_table_matches(void)
{
	struct in6_addr	in6;
	struct in_addr	in;
	char		buf[INET_ADDRSTRLEN];
	size_t		i;
	bool		got;

	for (i = 0; i < sizeof embedded / sizeof embedded[0]; i++) {
		if (inet_pton(AF_INET6, embedded[i].v6, &in6) != 1)
			abort();
		got = addr_embedded_v4(&in6, &in);
		CHECK(got == (embedded[i].v4 != NULL), "%s: embeds %d",
		    embedded[i].v6, got);
		if (!got || embedded[i].v4 == NULL)
			continue;
		inet_ntop(AF_INET, &in, buf, sizeof buf);
		CHECK_STR(buf, embedded[i].v4);
		CHECK(addr_embedded_v4(&in6, NULL), "NULL out");
	}
}

static void
class_name_prefers_metadata_then_loopback(void)
{
	CHECK_STR(addr_class_name(ADDR_C_LINKLOCAL | ADDR_C_METADATA),
	    "cloud metadata");
	CHECK_STR(addr_class_name(ADDR_C_GUARDED), "cloud metadata");
	CHECK_STR(addr_class_name(ADDR_C_LOOPBACK | ADDR_C_UNSPECIFIED),
	    "loopback");
	CHECK_STR(addr_class_name(ADDR_C_RESERVED | ADDR_C_BROADCAST),
	    "broadcast");
	CHECK_STR(addr_class_name(ADDR_C_PRIVATE | ADDR_C_MULTICAST),
	    "multicast");
	CHECK_STR(addr_class_name(0), "public");
}

static void
ntop_formats_without_port(void)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
	struct sockaddr_storage	ss;
	char			buf[INET6_ADDRSTRLEN], small[4];

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(443);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	addr_ntop((struct sockaddr *)&sin, buf, sizeof buf);
	CHECK_STR(buf, "127.0.0.1");
	memset(&sin6, 0, sizeof sin6);
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	inet_pton(AF_INET6, "2001:DB8:0:0::1", &sin6.sin6_addr);
	addr_ntop((struct sockaddr *)&sin6, buf, sizeof buf);
	CHECK_STR(buf, "2001:db8::1");
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	addr_ntop((struct sockaddr *)&ss, buf, sizeof buf);
	CHECK_STR(buf, "?");
	addr_ntop((struct sockaddr *)&sin, small, sizeof small);
	CHECK(strlen(small) < sizeof small, "small buffer overflowed");
	addr_ntop((struct sockaddr *)&sin, small, 0);
}

static void
strerror_has_a_line_per_code(void)
{
	int	codes[] = { ADDR_E_SYNTAX, ADDR_E_USERINFO, ADDR_E_PERCENT,
	    ADDR_E_PORT, ADDR_E_TOOLONG, ADDR_E_EMPTY, ADDR_E_IPV4 };
	size_t	i, j, n = sizeof codes / sizeof codes[0];

	for (i = 0; i < n; i++) {
		const char *s = addr_strerror(codes[i]);
		CHECK(s != NULL && *s != '\0' && strchr(s, '\n') == NULL,
		    "code %d", codes[i]);
		for (j = 0; j < i; j++)
			CHECK(strcmp(s, addr_strerror(codes[j])) != 0,
			    "codes %d and %d share a message", codes[i],
			    codes[j]);
	}
	CHECK(addr_strerror(-99) != NULL, "unknown code");
}

int
main(void)
{
	RUN(authority_table_matches);
	RUN(authority_prefixes_never_overread);
	RUN(authority_with_embedded_nul_is_syntax);
	RUN(host_table_matches);
	RUN(host_fills_binary_address);
	RUN(name_length_limits);
	RUN(canonical_text_reparses_identically);
	RUN(ipv6_text_is_rfc5952_on_every_libc);
	RUN(ipv6_text_agrees_with_inet_ntop);
	RUN(classify_table_matches);
	RUN(classify_other_family_is_nothing);
	RUN(embedded_v4_table_matches);
	RUN(class_name_prefers_metadata_then_loopback);
	RUN(ntop_formats_without_port);
	RUN(strerror_has_a_line_per_code);
	return test_done("test_addr");
}
