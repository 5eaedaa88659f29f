/*
 * Destination policy (SPEC §5): allow/deny patterns parsed once into a
 * compact form, --resolve pins, and the address guard. Every door (HTTP,
 * CONNECT, SOCKS5, intercepted requests) asks the same two questions: is
 * this destination allowed (policy_check_dest), and may the proxy dial this
 * address for it (policy_check_addr). Checks never allocate.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/policy.h"
#include "common/xmalloc.h"

#define QUOTE_MAX	64	/* pattern bytes echoed in an error */
#define SHOW_MAX	64	/* host bytes shown in a reason */

enum pat_kind {
	PAT_ANY,		/* "*" */
	PAT_EXACT,		/* "example.com" */
	PAT_DOMAIN,		/* "*.example.com": the apex and below */
	PAT_V4,			/* IPv4 address or CIDR */
	PAT_V6,			/* IPv6 address or CIDR */
};

/* An address, IPv4 in the first four bytes, network order. */
struct ip {
	int		af;
	uint8_t		b[16];
};

/*
 * Compact (56 bytes) so that a long list is scanned from cache: a name is
 * first compared through `head`, its first 8 bytes, without following the
 * pointer.
 */
struct pattern {
	enum pat_kind	 kind;
	uint16_t	 port;		/* 0: any port */
	uint16_t	 namelen;
	unsigned	 prefix;	/* bits of ip that must match */
	struct ip	 ip;		/* PAT_V4, PAT_V6 */
	uint64_t	 head;		/* name[0..7], zero-padded */
	const char	*name;		/* canonical, no "*.", unterminated:
					   inside rule once stored */
	char		*rule;		/* "allow *.example.com" */
};

/* A destination prepared once per check. */
struct subject {
	const struct dest	*d;
	size_t			 hostlen;
	struct ip		 ip;	/* address destinations */
	char			 host[ADDR_HOST_MAX + 1 + 8]; /* zero-padded */
};

struct pin {
	char		 host[ADDR_HOST_MAX + 1];
	uint16_t	 port;		/* 0: any port ('*') */
	struct ip	*addrs;
	size_t		 naddrs;
};

struct self {
	struct ip	 ip;
	uint16_t	 port;
};

struct policy {
	struct pattern	*allow;
	size_t		 nallow;
	struct pattern	*deny;
	size_t		 ndeny;
	struct pin	*pins;
	size_t		 npins;
	struct ip	*locals;
	size_t		 nlocals;
	struct self	*selves;
	size_t		 nselves;
};

/* Printable ASCII of at most QUOTE_MAX bytes, for one-line messages. */
static void
quote(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	i, o = 0, n = len > QUOTE_MAX ? QUOTE_MAX : len;

	if (outlen == 0)
		return;
	for (i = 0; i < n && o + 1 < outlen; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (n < len)
		for (i = 0; i < 3 && o + 1 < outlen; i++)
			out[o++] = '.';
	out[o] = '\0';
}

static int
fail(char *err, size_t errlen, const char *what, const char *s, size_t len,
    const char *why)
{
	char	q[QUOTE_MAX + 4];

	if (err != NULL && errlen > 0) {
		quote(s, len, q, sizeof q);
		snprintf(err, errlen, "bad %s '%s': %s", what, q, why);
	}
	return -1;
}

static bool
all_digits(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return len > 0;
}

/* Decimal in [min, max], at most `digits` digits. */
static int
parse_uint(const char *s, size_t len, size_t digits, unsigned min,
    unsigned max, unsigned *out)
{
	unsigned	v = 0;
	size_t		i;

	if (len > digits || !all_digits(s, len))
		return -1;
	for (i = 0; i < len; i++)
		v = v * 10 + (unsigned)(s[i] - '0');
	if (v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

static void
ip_from_dest(const struct dest *d, struct ip *ip)
{
	memset(ip, 0, sizeof *ip);
	if (d->kind == ADDR_IPV4) {
		ip->af = AF_INET;
		memcpy(ip->b, &d->v4, 4);
	} else if (d->kind == ADDR_IPV6) {
		ip->af = AF_INET6;
		memcpy(ip->b, &d->v6, 16);
	}
}

static int
ip_from_sockaddr(const struct sockaddr *sa, struct ip *ip, uint16_t *port)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	memset(ip, 0, sizeof *ip);
	*port = 0;
	if (sa == NULL)
		return -1;
	if (sa->sa_family == AF_INET) {
		memcpy(&sin, sa, sizeof sin);
		ip->af = AF_INET;
		memcpy(ip->b, &sin.sin_addr, 4);
		*port = ntohs(sin.sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(&sin6, sa, sizeof sin6);
		ip->af = AF_INET6;
		memcpy(ip->b, &sin6.sin6_addr, 16);
		*port = ntohs(sin6.sin6_port);
		return 0;
	}
	return -1;
}

static void
ip_to_sockaddr(const struct ip *ip, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	memset(ss, 0, sizeof *ss);
	if (ip->af == AF_INET) {
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		memcpy(&sin.sin_addr, ip->b, 4);
		memcpy(ss, &sin, sizeof sin);
	} else {
		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		memcpy(&sin6.sin6_addr, ip->b, 16);
		memcpy(ss, &sin6, sizeof sin6);
	}
}

static bool
ip_equal(const struct ip *a, const struct ip *b)
{
	return a->af == b->af &&
	    memcmp(a->b, b->b, a->af == AF_INET ? 4 : 16) == 0;
}

/* ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket: the same endpoint. */
static bool
ip_unmap(const struct ip *ip, struct ip *v4)
{
	static const uint8_t	mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };

	if (ip->af != AF_INET6 || memcmp(ip->b, mapped, sizeof mapped) != 0)
		return false;
	memset(v4, 0, sizeof *v4);
	v4->af = AF_INET;
	memcpy(v4->b, ip->b + 12, 4);
	return true;
}

/* The IPv4 inside an IPv6 address in any form addr.c knows. */
static bool
ip_embedded(const struct ip *ip, struct ip *v4)
{
	struct in6_addr	in6;
	struct in_addr	in;

	if (ip->af != AF_INET6)
		return false;
	memcpy(&in6, ip->b, 16);
	if (!addr_embedded_v4(&in6, &in))
		return false;
	memset(v4, 0, sizeof *v4);
	v4->af = AF_INET;
	memcpy(v4->b, &in, 4);
	return true;
}

static bool
prefix_match(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned	full = bits / 8, rest = bits % 8;
	uint8_t		mask;

	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

/*
 * An IPv4 pattern also matches that address mapped into IPv6, and an IPv6
 * pattern an IPv4 address through its mapped form. A deny pattern goes
 * further: an IPv4 one matches any IPv6 address embedding a matching IPv4
 * (6to4, NAT64, Teredo...), so no spelling walks around a --deny.
 */
static bool
pattern_match_ip(const struct pattern *pat, const struct ip *ip, bool deny)
{
	struct ip	v4;

	if (pat->kind == PAT_ANY)
		return true;
	if (pat->kind == PAT_V4) {
		if (ip->af == AF_INET)
			return prefix_match(pat->ip.b, ip->b, pat->prefix);
		if (ip_unmap(ip, &v4) || (deny && ip_embedded(ip, &v4)))
			return prefix_match(pat->ip.b, v4.b, pat->prefix);
		return false;
	}
	if (pat->kind == PAT_V6) {
		if (ip->af == AF_INET6)
			return prefix_match(pat->ip.b, ip->b, pat->prefix);
		if (ip->af == AF_INET) {
			memset(&v4, 0, sizeof v4);
			v4.b[10] = v4.b[11] = 0xff;
			memcpy(v4.b + 12, ip->b, 4);
			return prefix_match(pat->ip.b, v4.b, pat->prefix);
		}
	}
	return false;
}

static uint64_t
load64(const char *s)
{
	uint64_t	v;

	memcpy(&v, s, sizeof v);
	return v;
}

static void
subject_init(struct subject *sj, const struct dest *d)
{
	sj->d = d;
	sj->hostlen = strnlen(d->host, sizeof d->host);
	memset(sj->host, 0, sizeof sj->host);
	if (d->kind == ADDR_NAME)
		memcpy(sj->host, d->host, sj->hostlen);
	ip_from_dest(d, &sj->ip);
}

/* Does the name end the host, at a label boundary for PAT_DOMAIN? */
static bool
name_match(const struct pattern *pat, const struct subject *sj)
{
	size_t	n = pat->namelen, off;

	if (sj->d->kind != ADDR_NAME || sj->hostlen < n)
		return false;
	off = sj->hostlen - n;
	if (pat->kind == PAT_EXACT ? off != 0 :
	    (off != 0 && sj->host[off - 1] != '.'))
		return false;
	/* Bytes past the host are zero, as past a short name in head. */
	return load64(sj->host + off) == pat->head &&
	    (n <= 8 || memcmp(sj->host + off + 8, pat->name + 8, n - 8) == 0);
}

static bool
pattern_match_dest(const struct pattern *pat, const struct subject *sj,
    bool deny)
{
	if (pat->port != 0 && pat->port != sj->d->port)
		return false;
	switch (pat->kind) {
	case PAT_ANY:
		return true;
	case PAT_EXACT:
	case PAT_DOMAIN:
		return name_match(pat, sj);
	case PAT_V4:
	case PAT_V6:
		return sj->d->kind != ADDR_NAME &&
		    pattern_match_ip(pat, &sj->ip, deny);
	}
	return false;
}

/*
 * A pattern, pure: (s, len) in, the compact form out. Grammar:
 *   *[:port]  *.NAME[:port]  NAME[:port]  IPV4[/len][:port]
 *   [IPV6][/len][:port]  IPV6[/len]
 * A CIDR with bits set beyond its prefix is refused, not masked: "10/8"
 * reads as 0.0.0.10/8 and 192.168.1.7/16 is more likely a typo than intent.
 */
static int
pattern_parse(const char *s, size_t len, struct pattern *pat,
    char name[ADDR_HOST_MAX + 1], char *err, size_t errlen)
{
	const char	*a = s, *pfx = NULL, *port = NULL, *p, *colon;
	const char	*end = s + len;
	size_t		 alen = len, pfxlen = 0, portlen = 0, ncolon = 0, i;
	struct dest	 d;
	char		 msg[160], q[QUOTE_MAX + 4];
	unsigned	 v, max;
	int		 r;

	memset(pat, 0, sizeof *pat);
#define BAD(why)	fail(err, errlen, "pattern", s, len, (why))
	if (len == 0)
		return BAD("empty pattern: write a host name, *.domain, an "
		    "address or a CIDR");
	if (memchr(s, '@', len) != NULL)
		return BAD("user@host is not a pattern: drop the user part");
	if (memchr(s, '%', len) != NULL)
		return BAD("percent-encoding and IPv6 zone ids are not "
		    "allowed");
	if (memchr(s, '\0', len) != NULL)
		return BAD("contains a NUL byte");
	for (i = 0; i < len; i++)
		if (s[i] == ':')
			ncolon++;

	/* Split ADDR, /PREFIX and :PORT. */
	if (s[0] == '[') {
		if ((p = memchr(s, ']', len)) == NULL)
			return BAD("'[' without its ']'");
		alen = (size_t)(p - s) + 1;
		p++;
		if (p < end && *p == '/') {
			pfx = ++p;
			while (p < end && *p != ':')
				p++;
			pfxlen = (size_t)(p - pfx);
		}
		if (p < end) {
			if (*p != ':')
				return BAD("unexpected text after ']'");
			port = p + 1;
			portlen = (size_t)(end - port);
		}
	} else {
		/* One colon ends NAME or IPV4; with two or more the whole is
		 * a bare IPv6 address, which takes no port without []. */
		if (ncolon == 1) {
			colon = memchr(s, ':', len);
			alen = (size_t)(colon - s);
			port = colon + 1;
			portlen = (size_t)(end - port);
		}
		if ((p = memchr(s, '/', alen)) != NULL) {
			pfx = p + 1;
			pfxlen = alen - (size_t)(pfx - s);
			alen = (size_t)(p - s);
		}
	}
	if (port != NULL && parse_uint(port, portlen, 5, 1, 65535, &v) != 0)
		return BAD("the port must be 1-65535");
	if (port != NULL)
		pat->port = (uint16_t)v;

	if (alen == 1 && a[0] == '*') {
		if (pfx != NULL)
			return BAD("'*' takes no prefix length");
		pat->kind = PAT_ANY;
		return 0;
	}
	if (alen >= 2 && a[0] == '.' && a[1] != '.' && a[1] != '*' &&
	    memchr(a, '*', alen) == NULL) {
		quote(a + 1, alen - 1, q, sizeof q);
		snprintf(msg, sizeof msg, "write *.%s for a domain and its "
		    "subdomains", q);
		return BAD(msg);
	}
	if (alen >= 2 && a[0] == '*' && a[1] == '.') {
		if (alen == 2)
			return BAD("'*.' needs a domain after it");
		if (memchr(a + 2, '*', alen - 2) != NULL)
			return BAD("'*' may only stand alone or lead as '*.'");
		if (pfx != NULL)
			return BAD("a prefix length needs an address");
		if ((r = addr_parse_host(a + 2, alen - 2, &d)) != ADDR_OK)
			return BAD(addr_strerror(r));
		if (d.kind != ADDR_NAME)
			return BAD("'*.' needs a domain name, not an address");
		pat->kind = PAT_DOMAIN;
		pat->namelen = (uint16_t)strlen(d.host);
		memcpy(name, d.host, sizeof d.host);
		pat->name = name;
		return 0;
	}
	if (memchr(a, '*', alen) != NULL)
		return BAD("'*' may only stand alone or lead as '*.' "
		    "(*.example.com)");
	if ((r = addr_parse_host(a, alen, &d)) != ADDR_OK)
		return BAD(addr_strerror(r));
	if (d.kind == ADDR_NAME) {
		if (pfx != NULL)
			return BAD("a prefix length needs an address");
		pat->kind = PAT_EXACT;
		pat->namelen = (uint16_t)strlen(d.host);
		memcpy(name, d.host, sizeof d.host);
		pat->name = name;
		return 0;
	}
	ip_from_dest(&d, &pat->ip);
	pat->kind = d.kind == ADDR_IPV4 ? PAT_V4 : PAT_V6;
	max = d.kind == ADDR_IPV4 ? 32 : 128;
	pat->prefix = max;
	if (pfx != NULL) {
		if (parse_uint(pfx, pfxlen, 3, 0, max, &pat->prefix) != 0) {
			snprintf(msg, sizeof msg, "the prefix length must be "
			    "0-%u", max);
			return BAD(msg);
		}
		for (v = pat->prefix; v < max; v++) {
			if (pat->ip.b[v / 8] & (0x80 >> (v % 8))) {
				snprintf(msg, sizeof msg, "address bits are "
				    "set beyond /%u: write the network "
				    "address", pat->prefix);
				return BAD(msg);
			}
		}
	}
	return 0;
#undef BAD
}

/* The canonical text of a pattern; it parses back to the same pattern. */
static void
pattern_format(const struct pattern *pat, char *buf, size_t len)
{
	struct sockaddr_storage	ss;
	char			a[INET6_ADDRSTRLEN], pfx[8] = "", port[8] = "";

	if (pat->port != 0)
		snprintf(port, sizeof port, ":%u", pat->port);
	switch (pat->kind) {
	case PAT_ANY:
		snprintf(buf, len, "*%s", port);
		break;
	case PAT_EXACT:
		snprintf(buf, len, "%.*s%s", (int)pat->namelen, pat->name,
		    port);
		break;
	case PAT_DOMAIN:
		snprintf(buf, len, "*.%.*s%s", (int)pat->namelen, pat->name,
		    port);
		break;
	case PAT_V4:
	case PAT_V6:
		ip_to_sockaddr(&pat->ip, 0, &ss);
		addr_ntop((struct sockaddr *)&ss, a, sizeof a);
		if (pat->prefix != (pat->kind == PAT_V4 ? 32u : 128u))
			snprintf(pfx, sizeof pfx, "/%u", pat->prefix);
		if (pat->kind == PAT_V4)
			snprintf(buf, len, "%s%s%s", a, pfx, port);
		else
			snprintf(buf, len, "[%s]%s%s", a, pfx, port);
		break;
	}
}

struct policy *
policy_new(void)
{
	return xcalloc(1, sizeof(struct policy));
}

void
policy_free(struct policy *p)
{
	size_t	i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nallow; i++)
		free(p->allow[i].rule);
	for (i = 0; i < p->ndeny; i++)
		free(p->deny[i].rule);
	for (i = 0; i < p->npins; i++)
		free(p->pins[i].addrs);
	free(p->allow);
	free(p->deny);
	free(p->pins);
	free(p->locals);
	free(p->selves);
	free(p);
}

static int
add_pattern(struct pattern **v, size_t *n, const char *verb, const char *s,
    char *err, size_t errlen)
{
	struct pattern	pat;
	char		text[ADDR_HOST_MAX + 16], name[ADDR_HOST_MAX + 1];

	if (s == NULL)
		return fail(err, errlen, "pattern", "", 0, "no pattern");
	if (pattern_parse(s, strlen(s), &pat, name, err, errlen) != 0)
		return -1;
	pattern_format(&pat, text, sizeof text);
	pat.rule = xprintf("%s %s", verb, text);
	/* The name lives on in the rule text: "allow *.NAME:port". */
	if (pat.name != NULL) {
		pat.name = pat.rule + strlen(verb) + 1 +
		    (pat.kind == PAT_DOMAIN ? 2 : 0);
		memcpy(&pat.head, pat.name, pat.namelen < 8 ? pat.namelen : 8);
	}
	*v = xreallocarray(*v, *n + 1, sizeof **v);
	(*v)[(*n)++] = pat;
	return 0;
}

int
policy_allow(struct policy *p, const char *s, char *err, size_t errlen)
{
	return add_pattern(&p->allow, &p->nallow, "allow", s, err, errlen);
}

int
policy_deny(struct policy *p, const char *s, char *err, size_t errlen)
{
	return add_pattern(&p->deny, &p->ndeny, "deny", s, err, errlen);
}

/*
 * HOST:PORT:ADDR[,ADDR]... as curl's --resolve, pure. A leading '+' (curl:
 * "the entry times out") means nothing here and is accepted; a leading '-'
 * (curl: remove an entry) is refused. HOST must be a name; ADDR an IPv4 in
 * any spelling or an IPv6 with or without brackets. addrs holds max.
 */
static int
pin_parse(const char *s, size_t len, struct pin *pin, struct ip *addrs,
    size_t max, char *err, size_t errlen)
{
	const char	*h = s, *pp, *a, *c, *end = s + len;
	struct dest	 d;
	unsigned	 v;
	int		 r;

#define BAD(why)	fail(err, errlen, "--resolve", s, len, (why))
	memset(pin, 0, sizeof *pin);
	if (len > 0 && s[0] == '-')
		return BAD("removing entries is not supported");
	if (len > 0 && s[0] == '+')
		h++;
	if ((pp = memchr(h, ':', (size_t)(end - h))) == NULL ||
	    (a = memchr(pp + 1, ':', (size_t)(end - pp - 1))) == NULL)
		return BAD("write HOST:PORT:ADDR[,ADDR...]");
	if ((r = addr_parse_host(h, (size_t)(pp - h), &d)) != ADDR_OK)
		return BAD(addr_strerror(r));
	if (d.kind != ADDR_NAME)
		return BAD("HOST must be a name, not an address");
	memcpy(pin->host, d.host, sizeof pin->host);
	pp++;
	if (a - pp == 1 && *pp == '*')
		pin->port = 0;
	else if (parse_uint(pp, (size_t)(a - pp), 5, 1, 65535, &v) != 0)
		return BAD("PORT must be 1-65535 or '*'");
	else
		pin->port = (uint16_t)v;
	for (a++;; a = c + 1) {
		if ((c = memchr(a, ',', (size_t)(end - a))) == NULL)
			c = end;
		if ((r = addr_parse_host(a, (size_t)(c - a), &d)) != ADDR_OK)
			return BAD(addr_strerror(r));
		if (d.kind == ADDR_NAME)
			return BAD("ADDR must be an IP address");
		if (pin->naddrs == max)
			return BAD("too many addresses");
		ip_from_dest(&d, &addrs[pin->naddrs++]);
		if (c == end)
			break;
	}
	pin->addrs = addrs;
	return 0;
#undef BAD
}

int
policy_pin(struct policy *p, const char *s, char *err, size_t errlen)
{
	struct pin	 pin;
	struct ip	*addrs;
	size_t		 len, max = 1, i;

	if (s == NULL)
		return fail(err, errlen, "--resolve", "", 0, "no value");
	len = strlen(s);
	for (i = 0; i < len; i++)
		if (s[i] == ',')
			max++;
	addrs = xreallocarray(NULL, max, sizeof *addrs);
	if (pin_parse(s, len, &pin, addrs, max, err, errlen) != 0) {
		free(addrs);
		return -1;
	}
	/* As curl: a later entry for the same HOST:PORT replaces it. */
	for (i = 0; i < p->npins; i++) {
		if (p->pins[i].port == pin.port &&
		    strcmp(p->pins[i].host, pin.host) == 0) {
			free(p->pins[i].addrs);
			p->pins[i] = pin;
			return 0;
		}
	}
	p->pins = xreallocarray(p->pins, p->npins + 1, sizeof *p->pins);
	p->pins[p->npins++] = pin;
	return 0;
}

void
policy_add_local(struct policy *p, const struct sockaddr *sa)
{
	struct ip	ip;
	uint16_t	port;

	if (ip_from_sockaddr(sa, &ip, &port) != 0)
		return;
	p->locals = xreallocarray(p->locals, p->nlocals + 1,
	    sizeof *p->locals);
	p->locals[p->nlocals++] = ip;
}

void
policy_set_self(struct policy *p, const struct sockaddr *sa)
{
	struct self	self;

	if (ip_from_sockaddr(sa, &self.ip, &self.port) != 0)
		return;
	p->selves = xreallocarray(p->selves, p->nselves + 1,
	    sizeof *p->selves);
	p->selves[p->nselves++] = self;
}

bool
policy_has_allow(const struct policy *p)
{
	return p->nallow > 0;
}

/* Truncating a long reason is fine: it stays one line. */
static void __attribute__((format(printf, 4, 5)))
verdict_set(struct verdict *v, bool allow, const char *rule,
    const char *fmt, ...)
{
	va_list	ap;

	v->allow = allow;
	v->rule = rule;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof v->reason, fmt, ap);
	va_end(ap);
}

/* "host", "host:port", "[v6]:port": at most SHOW_MAX bytes of a name. */
static void
dest_show(const struct dest *d, char *buf, size_t len)
{
	const char	*dots = strlen(d->host) > SHOW_MAX ? "..." : "";

	if (d->port == 0)
		snprintf(buf, len, "%.*s%s", SHOW_MAX, d->host, dots);
	else if (d->kind == ADDR_IPV6)
		snprintf(buf, len, "[%.*s]:%u", INET6_ADDRSTRLEN, d->host,
		    d->port);
	else
		snprintf(buf, len, "%.*s%s:%u", SHOW_MAX, d->host, dots,
		    d->port);
}

bool
policy_names_dest(const struct policy *p, const struct dest *d)
{
	struct subject	sj;

	subject_init(&sj, d);
	for (size_t i = 0; i < p->ndeny; i++)
		if (pattern_match_dest(&p->deny[i], &sj, true))
			return true;
	for (size_t i = 0; i < p->nallow; i++)
		if (pattern_match_dest(&p->allow[i], &sj, false))
			return true;
	return false;
}

void
policy_check_dest(const struct policy *p, const struct dest *d,
    struct verdict *v)
{
	struct subject	sj;
	char		show[SHOW_MAX + 16];
	size_t		i;

	subject_init(&sj, d);
	for (i = 0; i < p->ndeny; i++) {
		if (pattern_match_dest(&p->deny[i], &sj, true)) {
			dest_show(d, show, sizeof show);
			verdict_set(v, false, p->deny[i].rule,
			    "%s is denied (%s)", show, p->deny[i].rule);
			return;
		}
	}
	/* Allowed verdicts carry no reason text: this is every request's
	 * path, and nothing reports a reason for an allowed one. */
	if (p->nallow == 0) {
		v->allow = true;
		v->rule = "default";
		v->reason[0] = '\0';
		return;
	}
	for (i = 0; i < p->nallow; i++) {
		if (pattern_match_dest(&p->allow[i], &sj, false)) {
			v->allow = true;
			v->rule = p->allow[i].rule;
			v->reason[0] = '\0';
			return;
		}
	}
	dest_show(d, show, sizeof show);
	verdict_set(v, false, "default", "%s is not in the allow list", show);
}

static const struct pin *
pin_find(const struct policy *p, const struct dest *d)
{
	const struct pin	*any = NULL;
	size_t			 i;

	for (i = 0; i < p->npins; i++) {
		if (strcmp(p->pins[i].host, d->host) != 0)
			continue;
		if (p->pins[i].port == d->port)
			return &p->pins[i];
		if (p->pins[i].port == 0 && any == NULL)
			any = &p->pins[i];
	}
	return any;
}

size_t
policy_pinned(const struct policy *p, const struct dest *d,
    struct sockaddr_storage *out, size_t max)
{
	const struct pin	*pin;
	size_t			 i;

	if (d->kind != ADDR_NAME || (pin = pin_find(p, d)) == NULL)
		return 0;
	for (i = 0; i < pin->naddrs && i < max; i++)
		ip_to_sockaddr(&pin->addrs[i], d->port, &out[i]);
	return i;
}

static unsigned
ip_classes(const struct ip *ip)
{
	struct sockaddr_storage	ss;

	ip_to_sockaddr(ip, 0, &ss);
	return addr_classify((struct sockaddr *)&ss);
}

/* One of this host's addresses, directly or embedded in an IPv6 one. */
static bool
is_local(const struct policy *p, const struct ip *ip)
{
	struct ip	v4;
	bool		emb = ip_embedded(ip, &v4);
	size_t		i;

	for (i = 0; i < p->nlocals; i++)
		if (ip_equal(&p->locals[i], ip) ||
		    (emb && ip_equal(&p->locals[i], &v4)))
			return true;
	return false;
}

/*
 * Would dialling ip:port reach our own listener? Its exact address (also
 * IPv4-mapped); any unspecified address (connect(2) to 0.0.0.0 or :: lands
 * on this host); and, when we listen on a wildcard, every loopback and
 * local address.
 */
static bool
is_self(const struct policy *p, const struct ip *ip, uint16_t port,
    unsigned classes)
{
	const struct self	*s;
	struct ip		 a, b;
	size_t			 i;

	for (i = 0; i < p->nselves; i++) {
		s = &p->selves[i];
		if (s->port != port)
			continue;
		if (!ip_unmap(ip, &a))
			a = *ip;
		if (!ip_unmap(&s->ip, &b))
			b = s->ip;
		if (ip_equal(&a, &b) || (classes & ADDR_C_UNSPECIFIED))
			return true;
		if ((ip_classes(&b) & ADDR_C_UNSPECIFIED) &&
		    ((classes & ADDR_C_LOOPBACK) || is_local(p, ip)))
			return true;
	}
	return false;
}

/* "localhost", allowed by that exact name, grants loopback and only it. */
static const struct pattern *
localhost_allowed(const struct policy *p, const struct dest *d,
    unsigned classes, uint16_t port)
{
	const struct pattern	*pat;
	size_t			 i;

	if (d == NULL || d->kind != ADDR_NAME || classes != ADDR_C_LOOPBACK ||
	    strcmp(d->host, "localhost") != 0)
		return NULL;
	for (i = 0; i < p->nallow; i++) {
		pat = &p->allow[i];
		if (pat->kind == PAT_EXACT &&
		    (pat->port == 0 || pat->port == port) &&
		    pat->namelen == 9 &&
		    memcmp(pat->name, "localhost", 9) == 0)
			return pat;
	}
	return NULL;
}

static void
guard_refuse(const struct dest *d, const struct ip *ip, const char *a,
    unsigned classes, struct verdict *v)
{
	const char	*what = "this host's own", *art = "one of";
	const char	*l = "", *r = "", *sugg = a;

	if (classes != 0) {
		what = addr_class_name(classes);
		art = (what[0] == 'u') ? "an" : "a";
	}
	if (ip->af == AF_INET6) {
		l = "[";
		r = "]";
	}
	if (d != NULL && d->kind == ADDR_NAME &&
	    classes == ADDR_C_LOOPBACK && strcmp(d->host, "localhost") == 0) {
		sugg = "localhost";
		l = r = "";
	}
	if (d != NULL && d->kind == ADDR_NAME)
		verdict_set(v, false, "guard", "%.*s resolves to %s, %s %s "
		    "address%s (allow it explicitly with --allow %s%s%s)",
		    SHOW_MAX, d->host, a, art, what, classes ? "" : "es",
		    l, sugg, r);
	else
		verdict_set(v, false, "guard", "%s is %s %s address%s (allow "
		    "it explicitly with --allow %s%s%s)", a, art, what,
		    classes ? "" : "es", l, sugg, r);
}

void
policy_check_addr(const struct policy *p, const struct dest *d,
    const struct sockaddr *sa, bool pinned, struct verdict *v)
{
	const struct pattern	*pat;
	char			 a[INET6_ADDRSTRLEN];
	struct ip		 ip;
	uint16_t		 port;
	unsigned		 classes;
	size_t			 i;

	if (ip_from_sockaddr(sa, &ip, &port) != 0) {
		verdict_set(v, false, "guard", "not an IPv4 or IPv6 address");
		return;
	}
	if (port == 0 && d != NULL)
		port = d->port;
	addr_ntop(sa, a, sizeof a);

	for (i = 0; i < p->ndeny; i++) {
		pat = &p->deny[i];
		if ((pat->port == 0 || pat->port == port) &&
		    (pat->kind == PAT_ANY || pat->kind == PAT_V4 ||
		    pat->kind == PAT_V6) && pattern_match_ip(pat, &ip, true)) {
			verdict_set(v, false, pat->rule, "%s is denied (%s)",
			    a, pat->rule);
			return;
		}
	}

	classes = addr_classify(sa);
	if (is_self(p, &ip, port, classes)) {
		verdict_set(v, false, "self", "%s port %u is egress-run's own "
		    "proxy: refused to avoid a loop", a, port);
		return;
	}

	classes &= ADDR_C_GUARDED;
	if (classes == 0 && !is_local(p, &ip)) {
		verdict_set(v, true, "default", "%s is not guarded", a);
		return;
	}
	for (i = 0; i < p->nallow; i++) {
		pat = &p->allow[i];
		if ((pat->port == 0 || pat->port == port) &&
		    (pat->kind == PAT_V4 || pat->kind == PAT_V6) &&
		    pattern_match_ip(pat, &ip, false)) {
			verdict_set(v, true, pat->rule, "%s is allowed "
			    "explicitly (%s)", a, pat->rule);
			return;
		}
	}
	if (pinned) {
		verdict_set(v, true, "pin", "%s is pinned with --resolve", a);
		return;
	}
	if ((pat = localhost_allowed(p, d, classes, port)) != NULL) {
		verdict_set(v, true, pat->rule, "localhost is allowed "
		    "explicitly (%s)", pat->rule);
		return;
	}
	guard_refuse(d, &ip, a, classes, v);
}
