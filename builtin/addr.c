/*
 * Destinations: canonical host text from what clients send (URI authority,
 * Host header, CONNECT target, SOCKS5 name) and the classes of IP addresses
 * that the address guard in policy.c refuses. Pure: no resolution, no I/O.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "builtin/addr.h"
#include "common/util.h"

#define LABEL_MAX	63
#define PORT_DIGITS	5
/* The longest IPv6 text: "ffff:...:ffff:255.255.255.255". */
#define V6_TEXT_MAX	(INET6_ADDRSTRLEN - 1)

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_name_byte(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    is_digit(c) || c == '-' || c == '_' || c == '.';
}

/*
 * One part of an IPv4 address as the WHATWG URL parser reads it: "0x"/"0X"
 * then hex (possibly no digit at all: "0x" is 0), a leading 0 then octal,
 * else decimal. Values above UINT32_MAX saturate: they fail later anyway.
 */
static int
v4_number(const char *s, size_t len, uint64_t *out)
{
	unsigned	base = 10;
	uint64_t	v = 0;
	size_t		i;
	int		d;

	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
		len -= 2;
	} else if (len >= 2 && s[0] == '0') {
		base = 8;
		s++;
		len--;
	} else if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if ((d = util_hexval((unsigned char)s[i])) < 0 ||
		    (unsigned)d >= base)
			return -1;
		v = v * base + (unsigned)d;
		if (v > UINT32_MAX)
			v = (uint64_t)UINT32_MAX + 1;
	}
	*out = v;
	return 0;
}

/* WHATWG "ends in a number": decides that the host must be IPv4. */
static bool
v4_ends_in_number(const char *s, size_t len)
{
	const char	*last = s;
	size_t		 i, n;
	uint64_t	 v;

	for (i = 0; i < len; i++)
		if (s[i] == '.')
			last = s + i + 1;
	n = len - (size_t)(last - s);
	if (n == 0)
		return false;
	for (i = 0; i < n && is_digit((unsigned char)last[i]); i++)
		;
	if (i == n)
		return true;
	return v4_number(last, n, &v) == 0;
}

/* 1 to 4 parts, the last filling the bytes the others leave. */
static int
v4_parse(const char *s, size_t len, uint32_t *out)
{
	uint64_t	parts[4], v;
	size_t		n = 0, start = 0, i, k;

	for (i = 0; i <= len; i++) {
		if (i < len && s[i] != '.')
			continue;
		if (n == 4 || v4_number(s + start, i - start, &parts[n]) != 0)
			return -1;
		n++;
		start = i + 1;
	}
	for (k = 0; k + 1 < n; k++)
		if (parts[k] > 255)
			return -1;
	if (parts[n - 1] >= (uint64_t)1 << (8 * (5 - n)))
		return -1;
	v = parts[n - 1];
	for (k = 0; k + 1 < n; k++)
		v |= parts[k] << (8 * (3 - k));
	*out = (uint32_t)v;
	return 0;
}

/*
 * RFC 5952 text, the same on every libc: lower-case hex without leading
 * zeros, the first longest run of two or more zero groups as "::", dotted
 * IPv4 only for IPv4-mapped ::ffff:0:0/96. (glibc's inet_ntop() also
 * prints ::1:443 as "::0.1.4.67", which no reader expects.)
 */
static void
v6_format(const uint8_t *b, char *buf, size_t len)
{
	static const char	hex[] = "0123456789abcdef";
	char			out[INET6_ADDRSTRLEN];
	unsigned		w[8];
	int			i, best = -1, bestlen = 0, cur = -1, curlen = 0;
	int			shift;
	size_t			o = 0;
	bool			lead;

	if (len == 0)
		return;
	for (i = 0; i < 8; i++)
		w[i] = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
	if (w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == 0 && w[4] == 0 &&
	    w[5] == 0xffff) {
		snprintf(buf, len, "::ffff:%u.%u.%u.%u", b[12], b[13], b[14],
		    b[15]);
		return;
	}
	for (i = 0; i < 8; i++) {
		if (w[i] != 0) {
			cur = -1;
			continue;
		}
		if (cur < 0) {
			cur = i;
			curlen = 0;
		}
		if (++curlen > bestlen) {
			best = cur;
			bestlen = curlen;
		}
	}
	if (bestlen < 2)
		best = -1;
	for (i = 0; i < 8; i++) {
		if (i == best) {
			out[o++] = ':';
			out[o++] = ':';
			i += bestlen - 1;
			continue;
		}
		if (i > 0 && i != best + bestlen)
			out[o++] = ':';
		lead = true;
		for (shift = 12; shift >= 0; shift -= 4) {
			unsigned nib = (w[i] >> shift) & 0xf;
			if (lead && nib == 0 && shift > 0)
				continue;
			lead = false;
			out[o++] = hex[nib];
		}
	}
	out[o] = '\0';
	snprintf(buf, len, "%s", out);
}

static int
parse_v6(const char *s, size_t len, struct dest *d)
{
	char	buf[V6_TEXT_MAX + 1];
	size_t	i;

	if (len == 0)
		return ADDR_E_EMPTY;
	if (len > V6_TEXT_MAX)
		return ADDR_E_SYNTAX;
	/* inet_pton() would stop at a NUL: allow only what IPv6 text has. */
	for (i = 0; i < len; i++)
		if (util_hexval((unsigned char)s[i]) < 0 && s[i] != ':' &&
		    s[i] != '.')
			return ADDR_E_SYNTAX;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET6, buf, &d->v6) != 1)
		return ADDR_E_SYNTAX;
	v6_format(d->v6.s6_addr, d->host, sizeof d->host);
	d->kind = ADDR_IPV6;
	return ADDR_OK;
}

/* A name or an IPv4 address, no brackets, no colon. */
static int
parse_name(const char *s, size_t len, struct dest *d)
{
	size_t		i, label = 0;
	uint32_t	v4;

	if (len == 0)
		return ADDR_E_EMPTY;
	/* One trailing dot is the root; "." alone or ".." is not a name. */
	if (s[len - 1] == '.')
		len--;
	if (len == 0 || s[len - 1] == '.')
		return ADDR_E_SYNTAX;
	for (i = 0; i < len; i++) {
		if (!is_name_byte((unsigned char)s[i]))
			return ADDR_E_SYNTAX;
		if (s[i] == '.' && (i == 0 || s[i - 1] == '.'))
			return ADDR_E_SYNTAX;
	}
	if (v4_ends_in_number(s, len)) {
		if (v4_parse(s, len, &v4) != 0)
			return ADDR_E_IPV4;
		d->v4.s_addr = htonl(v4);
		if (inet_ntop(AF_INET, &d->v4, d->host, sizeof d->host) == NULL)
			return ADDR_E_IPV4;
		d->kind = ADDR_IPV4;
		return ADDR_OK;
	}
	if (len > ADDR_HOST_MAX)
		return ADDR_E_TOOLONG;
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			label = 0;
			d->host[i] = '.';
			continue;
		}
		if (++label > LABEL_MAX)
			return ADDR_E_TOOLONG;
		d->host[i] = (s[i] >= 'A' && s[i] <= 'Z') ?
		    (char)(s[i] - 'A' + 'a') : s[i];
	}
	d->host[len] = '\0';
	d->kind = ADDR_NAME;
	return ADDR_OK;
}

/* '@' and '%' anywhere refuse the whole input, before any other check. */
static int
refuse_bytes(const char *s, size_t len)
{
	if (memchr(s, '@', len) != NULL)
		return ADDR_E_USERINFO;
	if (memchr(s, '%', len) != NULL)
		return ADDR_E_PERCENT;
	return ADDR_OK;
}

static int
parse_host(const char *s, size_t len, bool bare_v6, struct dest *d)
{
	int	r;

	if (len == 0)
		return ADDR_E_EMPTY;
	if (s[0] == '[') {
		if (len < 2 || s[len - 1] != ']')
			return ADDR_E_SYNTAX;
		r = parse_v6(s + 1, len - 2, d);
	} else if (memchr(s, ':', len) != NULL) {
		if (!bare_v6)
			return ADDR_E_SYNTAX;
		r = parse_v6(s, len, d);
	} else
		r = parse_name(s, len, d);
	if (r != ADDR_OK)
		memset(d, 0, sizeof *d);
	return r;
}

/* 1..65535 in at most five decimal digits; leading zeros are tolerated
 * ("080" is 80, as browsers and curl read it), signs and spaces are not. */
static int
parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned	v = 0;
	size_t		i;

	if (len == 0 || len > PORT_DIGITS)
		return ADDR_E_PORT;
	for (i = 0; i < len; i++) {
		if (!is_digit((unsigned char)s[i]))
			return ADDR_E_PORT;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return ADDR_E_PORT;
	*port = (uint16_t)v;
	return ADDR_OK;
}

int
addr_parse_authority(const char *s, size_t len, uint16_t default_port,
    struct dest *d)
{
	const char	*colon = NULL, *close;
	size_t		 hlen = len;
	int		 r;

	memset(d, 0, sizeof *d);
	if (len == 0)
		return ADDR_E_EMPTY;
	if ((r = refuse_bytes(s, len)) != ADDR_OK)
		return r;
	if (s[0] == '[') {
		if ((close = memchr(s, ']', len)) == NULL)
			return ADDR_E_SYNTAX;
		hlen = (size_t)(close - s) + 1;
		if (hlen < len) {
			if (s[hlen] != ':')
				return ADDR_E_SYNTAX;
			colon = s + hlen;
		}
	} else if ((colon = memchr(s, ':', len)) != NULL) {
		hlen = (size_t)(colon - s);
		/* Two colons: an IPv6 address without its brackets. */
		if (memchr(colon + 1, ':', len - hlen - 1) != NULL)
			return ADDR_E_SYNTAX;
	}
	if ((r = parse_host(s, hlen, false, d)) != ADDR_OK)
		return r;
	if (colon == NULL) {
		if (default_port == 0) {
			memset(d, 0, sizeof *d);
			return ADDR_E_PORT;
		}
		d->port = default_port;
		return ADDR_OK;
	}
	if ((r = parse_port(colon + 1, len - hlen - 1, &d->port)) != ADDR_OK)
		memset(d, 0, sizeof *d);
	return r;
}

int
addr_parse_host(const char *s, size_t len, struct dest *d)
{
	int	r;

	memset(d, 0, sizeof *d);
	if (len == 0)
		return ADDR_E_EMPTY;
	if ((r = refuse_bytes(s, len)) != ADDR_OK)
		return r;
	return parse_host(s, len, true, d);
}

const char *
addr_strerror(int r)
{
	switch (r) {
	case ADDR_OK:
		return "no error";
	case ADDR_E_SYNTAX:
		return "not a host name or IP address";
	case ADDR_E_USERINFO:
		return "user information (user@host) is not allowed";
	case ADDR_E_PERCENT:
		return "percent-encoding and IPv6 zone ids are not allowed";
	case ADDR_E_PORT:
		return "the port is missing, empty or not 1-65535";
	case ADDR_E_TOOLONG:
		return "name over 253 bytes or a label over 63";
	case ADDR_E_EMPTY:
		return "empty host";
	case ADDR_E_IPV4:
		return "ends in a number but is not an IPv4 address";
	}
	return "unknown address error";
}

static unsigned
v4_classes(uint32_t a)
{
	unsigned	c = 0;

	if ((a >> 24) == 127)
		c |= ADDR_C_LOOPBACK;
	if ((a >> 16) == 0xa9fe)			/* 169.254/16 */
		c |= ADDR_C_LINKLOCAL;
	if ((a >> 24) == 0)
		c |= ADDR_C_UNSPECIFIED;
	if ((a >> 28) == 0xe)
		c |= ADDR_C_MULTICAST;
	if ((a >> 28) == 0xf)
		c |= ADDR_C_RESERVED;
	if (a == 0xffffffff)
		c |= ADDR_C_BROADCAST;
	if (a == 0xa9fea9fe ||		/* 169.254.169.254: AWS, GCP, Azure */
	    a == 0xa9feaa02 ||		/* 169.254.170.2: ECS task role */
	    a == 0x646464c8 ||		/* 100.100.100.200: Alibaba */
	    a == 0xc00000c0)		/* 192.0.0.192: Oracle */
		c |= ADDR_C_METADATA;
	if ((a >> 24) == 10 ||				/* 10/8 */
	    (a & 0xfff00000) == 0xac100000 ||		/* 172.16/12 */
	    (a >> 16) == 0xc0a8 ||			/* 192.168/16 */
	    (a & 0xffc00000) == 0x64400000)		/* 100.64/10 */
		c |= ADDR_C_PRIVATE;
	return c;
}

static bool
all_zero(const uint8_t *b, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

static uint32_t
load32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 |
	    (uint32_t)b[2] << 8 | b[3];
}

/*
 * IPv4-mapped ::ffff:0:0/96, IPv4-translated ::ffff:0:0:0/96 (SIIT),
 * IPv4-compatible ::/96 (but :: and ::1), NAT64 64:ff9b::/96 and the
 * local-use 64:ff9b:1::/48 (read with the usual /96 layout: the IPv4 in
 * the last 32 bits), 6to4 2002::/16 (bits 16..47), Teredo 2001::/32 (the
 * client, last 32 bits inverted).
 */
bool
addr_embedded_v4(const struct in6_addr *in6, struct in_addr *out)
{
	static const uint8_t	nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	static const uint8_t	nat64_local[6] = { 0x00, 0x64, 0xff, 0x9b,
	    0x00, 0x01 };
	const uint8_t		*b = in6->s6_addr;
	uint32_t		 v;

	if (all_zero(b, 10) && b[10] == 0xff && b[11] == 0xff)
		v = load32(b + 12);
	else if (all_zero(b, 8) && b[8] == 0xff && b[9] == 0xff &&
	    b[10] == 0 && b[11] == 0)
		v = load32(b + 12);
	else if (all_zero(b, 12) && load32(b + 12) > 1)
		v = load32(b + 12);
	else if (memcmp(b, nat64, sizeof nat64) == 0 ||
	    memcmp(b, nat64_local, sizeof nat64_local) == 0)
		v = load32(b + 12);
	else if (b[0] == 0x20 && b[1] == 0x02)
		v = load32(b + 2);
	else if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0)
		v = load32(b + 12) ^ 0xffffffff;
	else
		return false;
	if (out != NULL)
		out->s_addr = htonl(v);
	return true;
}

static unsigned
v6_classes(const struct in6_addr *in6)
{
	static const uint8_t	aws[16] = { 0xfd, 0x00, 0x0e, 0xc2,
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };
	const uint8_t		*b = in6->s6_addr;
	struct in_addr		 v4;
	unsigned		 c = 0;

	if (all_zero(b, 16))
		c |= ADDR_C_UNSPECIFIED;
	if (all_zero(b, 15) && b[15] == 1)
		c |= ADDR_C_LOOPBACK;
	if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80)
		c |= ADDR_C_LINKLOCAL;
	if (b[0] == 0xff)
		c |= ADDR_C_MULTICAST;
	if ((b[0] & 0xfe) == 0xfc)
		c |= ADDR_C_PRIVATE;
	if (memcmp(b, aws, sizeof aws) == 0)
		c |= ADDR_C_METADATA;
	if (addr_embedded_v4(in6, &v4))
		c |= v4_classes(ntohl(v4.s_addr));
	return c;
}

unsigned
addr_classify(const struct sockaddr *sa)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	if (sa == NULL)
		return 0;
	switch (sa->sa_family) {
	case AF_INET:
		memcpy(&sin, sa, sizeof sin);
		return v4_classes(ntohl(sin.sin_addr.s_addr));
	case AF_INET6:
		memcpy(&sin6, sa, sizeof sin6);
		return v6_classes(&sin6.sin6_addr);
	}
	return 0;
}

/* The most telling guarded class first: metadata is link-local too. */
const char *
addr_class_name(unsigned c)
{
	if (c & ADDR_C_METADATA)
		return "cloud metadata";
	if (c & ADDR_C_LOOPBACK)
		return "loopback";
	if (c & ADDR_C_UNSPECIFIED)
		return "unspecified";
	if (c & ADDR_C_LINKLOCAL)
		return "link-local";
	if (c & ADDR_C_MULTICAST)
		return "multicast";
	if (c & ADDR_C_BROADCAST)
		return "broadcast";
	if (c & ADDR_C_RESERVED)
		return "reserved";
	if (c & ADDR_C_PRIVATE)
		return "private";
	return "public";
}

void
addr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;
	const char		*r = NULL;

	if (buf == NULL || len == 0)
		return;
	if (sa != NULL && sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof sin);
		r = inet_ntop(AF_INET, &sin.sin_addr, buf, (socklen_t)len);
	} else if (sa != NULL && sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof sin6);
		v6_format(sin6.sin6_addr.s6_addr, buf, len);
		return;
	}
	if (r == NULL) {
		buf[0] = len > 1 ? '?' : '\0';
		if (len > 1)
			buf[1] = '\0';
	}
}
