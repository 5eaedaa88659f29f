/*
 * NO_PROXY lists: parsed once into entries (names, addresses, CIDR ranges,
 * optional ports), then matched against each destination. See noproxy.h
 * for the semantics and where they differ from curl.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/xmalloc.h"
#include "upstream/noproxy.h"

#define NAME_MAX_LEN	253
#define LABEL_MAX_LEN	63
#define IP_TEXT_MAX	63	/* longer is no address inet_pton takes */

enum entry_kind {
	ENTRY_NAME,
	ENTRY_V4,
	ENTRY_V6,
};

struct entry {
	enum entry_kind	 kind;
	uint16_t	 port;		/* 0: any port */
	unsigned	 bits;		/* prefix length (addresses) */
	uint8_t		 addr[16];	/* network order; 4 bytes for v4 */
	size_t		 namelen;
	char		 name[NAME_MAX_LEN + 1];	/* lower case */
};

struct noproxy {
	struct entry	*v;
	size_t		 n;
	size_t		 cap;
	size_t		 skipped;
	bool		 all;
};

static bool
is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\v' || c == '\f';
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
name_eq(const char *a, const char *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

/* Decimal digits only, value in [min, max]; at most 5 digits read. */
static int
parse_num(const char *s, size_t len, unsigned min, unsigned max,
    unsigned *out)
{
	unsigned v = 0;

	if (len == 0 || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static int
parse_port(const char *s, size_t len, uint16_t *port)
{
	unsigned v;

	if (parse_num(s, len, 1, 65535, &v) != 0)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/* An exact IPv4 (dotted quad) or IPv6 address, as inet_pton reads it. */
static int
parse_ip(const char *s, size_t len, int af, uint8_t *out)
{
	char buf[IP_TEXT_MAX + 1];

	if (len == 0 || len > IP_TEXT_MAX || memchr(s, '\0', len) != NULL)
		return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return inet_pton(af, buf, out) == 1 ? 0 : -1;
}

/* A name: one trailing dot, then one leading "." or "*." dropped. */
static int
parse_name(const char *s, size_t len, struct entry *e)
{
	size_t label = 0;

	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
	} else if (len > 0 && s[0] == '.') {
		s++;
		len--;
	}
	if (len == 0 || len > NAME_MAX_LEN)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (c == '.') {
			if (label == 0)
				return -1;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > LABEL_MAX_LEN)
				return -1;
		} else
			return -1;
		e->name[i] = lower(c);
	}
	if (label == 0)
		return -1;
	e->name[len] = '\0';
	e->namelen = len;
	e->kind = ENTRY_NAME;
	return 0;
}

static int
parse_entry(const char *s, size_t len, struct entry *e)
{
	const char	*close, *slash, *colon, *rest;
	size_t		 alen, restlen, ncolon = 0;

	memset(e, 0, sizeof *e);
	if (s[0] == '[') {
		/* [v6], [v6]:port, [v6]/bits */
		if ((close = memchr(s, ']', len)) == NULL ||
		    parse_ip(s + 1, (size_t)(close - s - 1), AF_INET6,
		    e->addr) != 0)
			return -1;
		e->kind = ENTRY_V6;
		e->bits = 128;
		rest = close + 1;
		restlen = len - (size_t)(rest - s);
		if (restlen == 0)
			return 0;
		if (rest[0] == ':')
			return parse_port(rest + 1, restlen - 1, &e->port);
		if (rest[0] == '/')
			return parse_num(rest + 1, restlen - 1, 0, 128,
			    &e->bits);
		return -1;
	}
	if ((slash = memchr(s, '/', len)) != NULL) {
		/* CIDR: v4/bits, v6/bits */
		alen = (size_t)(slash - s);
		if (parse_ip(s, alen, AF_INET, e->addr) == 0)
			e->kind = ENTRY_V4;
		else if (parse_ip(s, alen, AF_INET6, e->addr) == 0)
			e->kind = ENTRY_V6;
		else
			return -1;
		return parse_num(slash + 1, len - alen - 1, 0,
		    e->kind == ENTRY_V4 ? 32 : 128, &e->bits);
	}
	for (size_t i = 0; i < len; i++)
		if (s[i] == ':')
			ncolon++;
	if (ncolon >= 2) {
		/* A bare IPv6 address cannot carry a port. */
		if (parse_ip(s, len, AF_INET6, e->addr) != 0)
			return -1;
		e->kind = ENTRY_V6;
		e->bits = 128;
		return 0;
	}
	if (ncolon == 1) {
		colon = memchr(s, ':', len);
		alen = (size_t)(colon - s);
		if (parse_port(colon + 1, len - alen - 1, &e->port) != 0)
			return -1;
		len = alen;
	}
	/* One trailing dot is ignored, on addresses as on names. */
	if (parse_ip(s, len > 0 && s[len - 1] == '.' ? len - 1 : len,
	    AF_INET, e->addr) == 0) {
		e->kind = ENTRY_V4;
		e->bits = 32;
		return 0;
	}
	return parse_name(s, len, e);
}

struct noproxy *
noproxy_parse(const char *list, size_t len)
{
	struct noproxy	*np;
	struct entry	 e;
	size_t		 i = 0, start, ntok = 0;
	bool		 star = false;

	np = xcalloc(1, sizeof *np);
	if (list == NULL)
		return np;
	while (i < len) {
		while (i < len && is_sep(list[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_sep(list[i]))
			i++;
		ntok++;
		if (i - start == 1 && list[start] == '*') {
			star = true;
			continue;
		}
		if (parse_entry(list + start, i - start, &e) != 0) {
			np->skipped++;
			continue;
		}
		if (np->n == np->cap) {
			np->cap = np->cap ? np->cap * 2 : 8;
			np->v = xreallocarray(np->v, np->cap, sizeof *np->v);
		}
		np->v[np->n++] = e;
	}
	if (star && ntok == 1)
		np->all = true;
	else if (star)
		np->skipped++;
	return np;
}

void
noproxy_free(struct noproxy *np)
{
	if (np == NULL)
		return;
	free(np->v);
	free(np);
}

size_t
noproxy_count(const struct noproxy *np)
{
	return np->n + (np->all ? 1 : 0);
}

size_t
noproxy_skipped(const struct noproxy *np)
{
	return np->skipped;
}

bool
noproxy_all(const struct noproxy *np)
{
	return np->all;
}

static bool
prefix_eq(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned	full = bits / 8, rest = bits % 8;
	uint8_t		mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

/* host equals the entry's name or ends in "." and the name. */
static bool
name_match(const struct entry *e, const char *host, size_t hostlen)
{
	if (hostlen == e->namelen)
		return name_eq(host, e->name, hostlen);
	if (hostlen > e->namelen)
		return host[hostlen - e->namelen - 1] == '.' &&
		    name_eq(host + hostlen - e->namelen, e->name, e->namelen);
	return false;
}

bool
noproxy_match(const struct noproxy *np, const char *host, size_t hostlen,
    uint16_t port)
{
	enum entry_kind	kind;
	uint8_t		addr[16];

	if (np == NULL || host == NULL || hostlen == 0 ||
	    memchr(host, '\0', hostlen) != NULL)
		return false;
	if (np->all)
		return true;
	if (host[0] == '[') {
		if (hostlen < 2 || host[hostlen - 1] != ']' ||
		    parse_ip(host + 1, hostlen - 2, AF_INET6, addr) != 0)
			return false;
		kind = ENTRY_V6;
	} else {
		if (host[hostlen - 1] == '.')
			hostlen--;
		if (hostlen == 0)
			return false;
		if (parse_ip(host, hostlen, AF_INET, addr) == 0)
			kind = ENTRY_V4;
		else if (parse_ip(host, hostlen, AF_INET6, addr) == 0)
			kind = ENTRY_V6;
		else
			kind = ENTRY_NAME;
	}
	for (size_t i = 0; i < np->n; i++) {
		const struct entry *e = &np->v[i];

		if (e->kind != kind || (e->port != 0 && e->port != port))
			continue;
		if (kind == ENTRY_NAME ? name_match(e, host, hostlen) :
		    prefix_eq(e->addr, addr, e->bits))
			return true;
	}
	return false;
}
