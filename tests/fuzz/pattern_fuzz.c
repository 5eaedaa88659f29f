/*
 * Policy patterns and --resolve specs: the input (up to a NUL) is given to
 * policy_allow, policy_deny and policy_pin, then fixed destinations and
 * addresses (and some derived from the input) are checked. Invariants:
 * allow and deny accept the same patterns; errors are one line naming the
 * input; an allow pattern that matches implies the same deny pattern
 * matches; a rule's canonical text re-parses to a pattern with the same
 * verdicts; a pin never makes an address less allowed.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/policy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define NDEST	24
#define NADDR	12

static const char *const fixed_dests[] = {
	"example.com:443", "a.example.com:80", "localhost:8080",
	"localhost:443", "127.0.0.1:443", "10.1.2.3:22", "[::1]:443",
	"[fd00::1]:443", "[::ffff:10.1.2.3]:443", "[2002:a01:203::]:443",
	"169.254.169.254:80", "com:443", "x:1",
};

static const char *const fixed_addrs[] = {
	"127.0.0.1", "::1", "169.254.169.254", "10.1.2.3", "8.8.8.8",
	"::ffff:127.0.0.1", "fd00:ec2::254", "0.0.0.0", "192.168.1.5",
};

static void
check_verdict(const struct verdict *v)
{
	ASSERT(v->rule != NULL && v->rule[0] != '\0');
	ASSERT(memchr(v->reason, '\0', sizeof v->reason) != NULL);
	ASSERT(strchr(v->reason, '\n') == NULL);
}

static void
check_err(int r, const char *err, const char *what)
{
	if (r == 0)
		return;
	ASSERT(r == -1);
	ASSERT(strncmp(err, what, strlen(what)) == 0);
	ASSERT(strchr(err, '\n') == NULL);
}

/* Destinations: the fixed ones, and what the input itself names. */
static size_t
make_dests(const char *s, struct dest *d)
{
	size_t		 n = 0, i, len = strlen(s);
	const char	*slash;

	for (i = 0; i < sizeof fixed_dests / sizeof fixed_dests[0]; i++)
		if (addr_parse_authority(fixed_dests[i],
		    strlen(fixed_dests[i]), 443, &d[n]) == ADDR_OK)
			n++;
	if (len >= 2 && s[0] == '*' && s[1] == '.') {
		s += 2;
		len -= 2;
		if (addr_parse_authority(s, len, 443, &d[n]) == ADDR_OK)
			n++;
		/* a subdomain of it */
		if (len > 0 && len < 200) {
			char sub[256];
			memcpy(sub, "sub.", 4);
			memcpy(sub + 4, s, len);
			if (addr_parse_authority(sub, len + 4, 443, &d[n]) ==
			    ADDR_OK)
				n++;
		}
	}
	if (addr_parse_authority(s, len, 443, &d[n]) == ADDR_OK)
		n++;
	if (addr_parse_host(s, len, &d[n]) == ADDR_OK)
		n++;
	if ((slash = memchr(s, '/', len)) != NULL &&
	    addr_parse_host(s, (size_t)(slash - s), &d[n]) == ADDR_OK) {
		d[n].port = 443;
		n++;
	}
	return n;
}

static void
to_sockaddr(const struct dest *d, struct sockaddr_storage *ss)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	memset(ss, 0, sizeof *ss);
	if (d->kind == ADDR_IPV4) {
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr = d->v4;
		memcpy(ss, &sin, sizeof sin);
	} else {
		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		sin6.sin6_addr = d->v6;
		memcpy(ss, &sin6, sizeof sin6);
	}
}

static size_t
make_addrs(const struct dest *d, size_t nd, struct sockaddr_storage *ss)
{
	struct dest	e;
	size_t		n = 0, i;

	for (i = 0; i < sizeof fixed_addrs / sizeof fixed_addrs[0]; i++) {
		if (addr_parse_host(fixed_addrs[i], strlen(fixed_addrs[i]),
		    &e) == ADDR_OK)
			to_sockaddr(&e, &ss[n++]);
	}
	for (i = nd; i-- > 0 && n < NADDR;)
		if (d[i].kind != ADDR_NAME)
			to_sockaddr(&d[i], &ss[n++]);
	return n;
}

static void
self_and_local(struct policy *p)
{
	struct sockaddr_in	sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons(8080);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	policy_set_self(p, (struct sockaddr *)&sin);
	sin.sin_port = 0;
	sin.sin_addr.s_addr = htonl(0xc0a80105);	/* 192.168.1.5 */
	policy_add_local(p, (struct sockaddr *)&sin);
}

static void
check_pins(const char *s)
{
	struct policy		*p = policy_new();
	struct sockaddr_storage	 ss[4];
	struct dest		 d;
	char			 err[256];
	const char		*h, *c1, *c2;
	size_t			 n, i;
	int			 r;

	r = policy_pin(p, s, err, sizeof err);
	check_err(r, err, "bad --resolve '");
	if (r != 0) {
		policy_free(p);
		return;
	}
	/* Accepted: HOST:PORT must then find at least one address. */
	h = s[0] == '+' ? s + 1 : s;
	c1 = strchr(h, ':');
	ASSERT(c1 != NULL);
	c2 = strchr(c1 + 1, ':');
	ASSERT(c2 != NULL);
	if (c2 - c1 == 2 && c1[1] == '*') {
		ASSERT(addr_parse_host(h, (size_t)(c1 - h), &d) == ADDR_OK);
		d.port = 8080;
	} else
		ASSERT(addr_parse_authority(h, (size_t)(c2 - h), 0, &d) ==
		    ADDR_OK);
	ASSERT(d.kind == ADDR_NAME);
	n = policy_pinned(p, &d, ss, 4);
	ASSERT(n >= 1 && n <= 4);
	for (i = 0; i < n; i++)
		ASSERT(ss[i].ss_family == AF_INET ||
		    ss[i].ss_family == AF_INET6);
	policy_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy		*allow, *deny, *again;
	struct dest		 d[NDEST];
	struct sockaddr_storage	 ss[NADDR];
	struct verdict		 va, vd, vr, v1, v2;
	char			 err[256], *s;
	size_t			 nd, na, i, j;
	int			 ra, rd;

	if (size > 4096)
		return 0;
	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	allow = policy_new();
	deny = policy_new();
	ra = policy_allow(allow, s, err, sizeof err);
	check_err(ra, err, "bad pattern '");
	rd = policy_deny(deny, s, err, sizeof err);
	check_err(rd, err, "bad pattern '");
	ASSERT(ra == rd);
	ASSERT(policy_has_allow(allow) == (ra == 0));
	ASSERT(!policy_has_allow(deny));

	nd = make_dests(s, d);
	na = make_addrs(d, nd, ss);
	/* Our own listener and a local address, as server.c sets them. */
	self_and_local(allow);
	self_and_local(deny);
	for (i = 0; i < nd; i++) {
		policy_check_dest(allow, &d[i], &va);
		check_verdict(&va);
		policy_check_dest(deny, &d[i], &vd);
		check_verdict(&vd);
		ASSERT(ra != 0 || va.allow == (strcmp(va.rule, "default") !=
		    0));
		/* deny patterns match at least what allow ones do */
		if (va.allow && ra == 0)
			ASSERT(!vd.allow);
		if (d[i].kind != ADDR_IPV6)
			ASSERT(ra != 0 || va.allow == !vd.allow);
		if (va.allow && ra == 0) {
			again = policy_new();
			ASSERT(strncmp(va.rule, "allow ", 6) == 0);
			ASSERT(policy_allow(again, va.rule + 6, err,
			    sizeof err) == 0);
			for (j = 0; j < nd; j++) {
				policy_check_dest(allow, &d[j], &v1);
				policy_check_dest(again, &d[j], &v2);
				ASSERT(v1.allow == v2.allow);
				ASSERT(strcmp(v1.rule, v2.rule) == 0);
			}
			policy_free(again);
		}
		for (j = 0; j < na; j++) {
			policy_check_addr(allow, &d[i],
			    (struct sockaddr *)&ss[j], false, &v1);
			check_verdict(&v1);
			policy_check_addr(allow, &d[i],
			    (struct sockaddr *)&ss[j], true, &v2);
			check_verdict(&v2);
			ASSERT(!v1.allow || v2.allow);
			policy_check_addr(deny, &d[i],
			    (struct sockaddr *)&ss[j], true, &vr);
			check_verdict(&vr);
			/* only a deny or a loop refuses a pinned address */
			ASSERT(vr.allow || strncmp(vr.rule, "deny ", 5) == 0 ||
			    strcmp(vr.rule, "self") == 0);
		}
	}
	policy_free(allow);
	policy_free(deny);
	check_pins(s);
	free(s);
	return 0;
}
