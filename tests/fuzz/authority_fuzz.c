/*
 * addr_parse_authority (with and without a default port) and
 * addr_parse_host on arbitrary bytes. Invariants: a failure leaves dest
 * zeroed; a success gives a NUL-terminated host of at most 253 bytes in
 * canonical form (lower case, no trailing dot, the binary address filled)
 * whose text re-parses to the identical struct dest.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)

static int
same(const struct dest *a, const struct dest *b)
{
	return strcmp(a->host, b->host) == 0 && a->port == b->port &&
	    a->kind == b->kind && memcmp(&a->v4, &b->v4, sizeof a->v4) == 0 &&
	    memcmp(&a->v6, &b->v6, sizeof a->v6) == 0;
}

static void
check(int rc, const struct dest *d, int authority)
{
	static const struct dest	zero;
	struct sockaddr_storage		ss;
	struct sockaddr_in		sin;
	struct sockaddr_in6		sin6;
	struct dest			e;
	struct in_addr			in;
	struct in6_addr			in6;
	char				buf[ADDR_HOST_MAX + 16];
	size_t				len, i;
	int				n;

	ASSERT(rc <= 0 && rc >= ADDR_E_IPV4);
	ASSERT(addr_strerror(rc) != NULL);
	if (rc != ADDR_OK) {
		ASSERT(memcmp(d, &zero, sizeof zero) == 0);
		return;
	}
	len = strnlen(d->host, sizeof d->host);
	ASSERT(len > 0 && len <= ADDR_HOST_MAX);
	ASSERT(authority ? d->port != 0 : d->port == 0);

	switch (d->kind) {
	case ADDR_NAME:
		ASSERT(d->host[len - 1] != '.' && d->host[0] != '.');
		for (i = 0; i < len; i++)
			ASSERT((d->host[i] >= 'a' && d->host[i] <= 'z') ||
			    (d->host[i] >= '0' && d->host[i] <= '9') ||
			    d->host[i] == '-' || d->host[i] == '_' ||
			    (d->host[i] == '.' && d->host[i + 1] != '.'));
		ASSERT(d->v4.s_addr == 0);
		break;
	case ADDR_IPV4:
		ASSERT(inet_pton(AF_INET, d->host, &in) == 1);
		ASSERT(in.s_addr == d->v4.s_addr);
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_addr = d->v4;
		memcpy(&ss, &sin, sizeof sin);
		(void)addr_class_name(addr_classify((struct sockaddr *)&ss));
		break;
	case ADDR_IPV6:
		ASSERT(inet_pton(AF_INET6, d->host, &in6) == 1);
		ASSERT(memcmp(&in6, &d->v6, sizeof in6) == 0);
		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		sin6.sin6_addr = d->v6;
		memcpy(&ss, &sin6, sizeof sin6);
		(void)addr_class_name(addr_classify((struct sockaddr *)&ss));
		(void)addr_embedded_v4(&d->v6, &in);
		addr_ntop((struct sockaddr *)&ss, buf, sizeof buf);
		ASSERT(strcmp(buf, d->host) == 0);
		break;
	default:
		abort();
	}

	/* The canonical text parses back to the very same dest. */
	ASSERT(addr_parse_host(d->host, len, &e) == ADDR_OK);
	e.port = d->port;
	ASSERT(same(d, &e));
	if (authority) {
		n = snprintf(buf, sizeof buf, d->kind == ADDR_IPV6 ?
		    "[%s]:%u" : "%s:%u", d->host, d->port);
		ASSERT(n > 0 && (size_t)n < sizeof buf);
		ASSERT(addr_parse_authority(buf, (size_t)n, 0, &e) == ADDR_OK);
		ASSERT(same(d, &e));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char	*s = (const char *)data;
	struct dest	 d;
	int		 rc, rc0;

	rc0 = addr_parse_authority(s, size, 0, &d);
	check(rc0, &d, 1);
	rc = addr_parse_authority(s, size, 443, &d);
	check(rc, &d, 1);
	/* A default port only ever turns a missing port into success. */
	ASSERT(rc0 == rc || (rc0 == ADDR_E_PORT && rc == ADDR_OK));
	rc = addr_parse_host(s, size, &d);
	check(rc, &d, 0);
	return 0;
}
