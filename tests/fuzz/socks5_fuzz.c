/*
 * Every SOCKS5 parser, server and client side, over the same input. After
 * each parse: consumed <= len, slices inside the input, a prefix gives
 * NEED_MORE or the same answer (so a byte-at-a-time feed agrees with a
 * whole one), and what parses is rebuilt and parsed back unchanged.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "socks5/socks5_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define PREFIX_MAX	(SOCKS5_AUTH_MAX + 8)

#define ASSERT(c) do { if (!(c)) abort(); } while (0)

static void
inside(const uint8_t *buf, size_t len, const void *p, size_t n)
{
	const uint8_t *q = p;

	if (n == 0)
		return;
	ASSERT(q != NULL && q >= buf && q + n <= buf + len);
}

typedef int (*parse_fn)(const uint8_t *, size_t, void *);

static int
greeting(const uint8_t *b, size_t n, void *o)
{
	return socks5_parse_greeting(b, n, o);
}

static int
auth(const uint8_t *b, size_t n, void *o)
{
	return socks5_parse_auth(b, n, o);
}

static int
request(const uint8_t *b, size_t n, void *o)
{
	return socks5_parse_request(b, n, o);
}

static int
method_reply(const uint8_t *b, size_t n, void *o)
{
	return socks5_parse_method_reply(b, n, o);
}

static int
auth_reply(const uint8_t *b, size_t n, void *o)
{
	return socks5_parse_auth_reply(b, n, o);
}

static int
reply(const uint8_t *b, size_t n, void *o)
{
	return socks5_parse_reply(b, n, o);
}

/* Whole and every prefix: returns the whole answer. */
static int
check(parse_fn fn, const uint8_t *buf, size_t len, void *out, size_t outsz)
{
	uint8_t	 scratch[sizeof(struct socks5_request) + 64];
	int	 whole, rv;
	size_t	 lim = len < PREFIX_MAX ? len : PREFIX_MAX, first = SIZE_MAX;

	ASSERT(outsz <= sizeof scratch);
	whole = fn(buf, len, out);
	ASSERT(whole == SOCKS5_NEED_MORE || whole > 0 ||
	    (whole <= SOCKS5_E_VERSION && whole >= SOCKS5_E_PORT));
	ASSERT(whole <= 0 || (size_t)whole <= len);
	for (size_t i = 0; i <= lim; i++) {
		rv = fn(buf, i, scratch);
		if (rv == SOCKS5_NEED_MORE) {
			ASSERT(first == SIZE_MAX);
			continue;
		}
		if (first == SIZE_MAX)
			first = i;
		ASSERT(rv == whole);
	}
	/* A message is complete exactly at its own length, and none is
	 * longer than PREFIX_MAX. */
	if (whole > 0)
		ASSERT(first == (size_t)whole);
	return whole;
}

static void
addr_inside(const uint8_t *buf, size_t len, const struct socks5_addr *a)
{
	if (a->atyp == SOCKS5_ATYP_DOMAIN)
		inside(buf, len, a->name, a->namelen);
	else
		ASSERT(a->name == NULL && a->namelen == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
	struct socks5_greeting	 g;
	struct socks5_auth	 a, a2;
	struct socks5_request	 r, r2;
	struct socks5_reply	 p;
	uint8_t			 out[SOCKS5_AUTH_MAX], m;
	int			 rv, n;

	/* Server side. */
	rv = check(greeting, buf, len, &g, sizeof g);
	if (rv > 0) {
		inside(buf, len, g.methods, g.nmethods);
		ASSERT(g.nmethods >= 1 && (size_t)rv == 2 + g.nmethods);
		ASSERT(g.none == (memchr(g.methods, 0, g.nmethods) != NULL));
		ASSERT(g.userpass ==
		    (memchr(g.methods, 2, g.nmethods) != NULL));
	}

	rv = check(auth, buf, len, &a, sizeof a);
	if (rv > 0) {
		inside(buf, len, a.user, a.userlen);
		inside(buf, len, a.pass, a.passlen);
		ASSERT(a.userlen >= 1 && (size_t)rv == 3 + a.userlen +
		    a.passlen);
		n = socks5_build_auth(out, sizeof out, a.user, a.userlen,
		    a.pass, a.passlen);
		ASSERT(n == rv && memcmp(out, buf, (size_t)n) == 0);
		ASSERT(socks5_parse_auth(out, (size_t)n, &a2) == n);
	}

	rv = check(request, buf, len, &r, sizeof r);
	if (rv > 0) {
		addr_inside(buf, len, &r.dst);
		ASSERT(r.dst.port != 0);
		ASSERT(r.cmd >= SOCKS5_CMD_CONNECT && r.cmd <= SOCKS5_CMD_UDP);
		if (r.dst.atyp == SOCKS5_ATYP_DOMAIN) {
			n = socks5_build_connect_name(out, sizeof out,
			    r.dst.name, r.dst.namelen, r.dst.port);
			ASSERT(n == rv);
			ASSERT(socks5_parse_request(out, (size_t)n, &r2) == n);
			ASSERT(r2.dst.namelen == r.dst.namelen &&
			    memcmp(r2.dst.name, r.dst.name,
			    r.dst.namelen) == 0 && r2.dst.port == r.dst.port);
		}
	}

	/* Client side. */
	rv = check(method_reply, buf, len, &m, sizeof m);
	ASSERT(rv == 2 || rv < 0);
	rv = check(auth_reply, buf, len, &m, sizeof m);
	ASSERT(rv == 2 || rv < 0);
	rv = check(reply, buf, len, &p, sizeof p);
	if (rv > 0)
		addr_inside(buf, len, &p.bnd);
	else
		ASSERT(p.rep != SOCKS5_REP_SUCCEEDED);

	/* Builders never overrun a short buffer. */
	for (size_t k = 0; k < 24 && k <= len; k++) {
		n = socks5_build_connect_name(out, k, (const char *)buf,
		    len, 443);
		ASSERT(n == SOCKS5_E_SPACE || n == SOCKS5_E_ARG ||
		    (n > 0 && (size_t)n <= k));
		n = socks5_build_reply(out, k, len ? buf[0] : 0, NULL);
		ASSERT(n == SOCKS5_E_SPACE || (n > 0 && (size_t)n <= k));
	}
	return 0;
}
