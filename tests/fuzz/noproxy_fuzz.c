/*
 * NO_PROXY lists: the input up to the first newline is the list, the rest
 * one host; both are matched with fixed hosts too. Invariants: the counts
 * stay within the entries given, "*" matches every host, and a match does
 * not depend on letter case or on one trailing dot.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/noproxy.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define HOST_MAX	512

static const char *const hosts[] = {
	"example.com", "www.example.com", "notexample.com", "localhost",
	"10.1.2.3", "127.0.0.1", "192.168.0.1", "::1", "[::1]",
	"[fd00::1]", "2001:db8::1", "a.b.c.d.e.f", "x",
};

static void
one(const struct noproxy *np, const char *h, size_t n)
{
	char	 alt[HOST_MAX + 2];
	bool	 m;

	m = noproxy_match(np, h, n, 443);
	if (n == 0 || n > HOST_MAX || memchr(h, '\0', n) != NULL)
		return;
	if (noproxy_all(np))
		ASSERT(m);
	/* Ports: a match without a port implies one with any port. */
	if (noproxy_match(np, h, n, 0))
		ASSERT(m);
	for (size_t i = 0; i < n; i++)
		alt[i] = (h[i] >= 'a' && h[i] <= 'z') ?
		    (char)(h[i] - 'a' + 'A') : h[i];
	ASSERT(noproxy_match(np, alt, n, 443) == m);
	if (h[0] != '[' && h[n - 1] != '.') {
		memcpy(alt, h, n);
		alt[n] = '.';
		ASSERT(noproxy_match(np, alt, n + 1, 443) == m);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
	const char	*s = (const char *)buf, *nl;
	struct noproxy	*np;
	size_t		 listlen, tokens = 0;

	nl = memchr(s, '\n', len);
	listlen = nl != NULL ? (size_t)(nl - s) : len;
	np = noproxy_parse(s, listlen);
	for (size_t i = 0; i < listlen; i++)
		if (s[i] != ',' && s[i] != ' ' && s[i] != '\t' &&
		    s[i] != '\r' && s[i] != '\v' && s[i] != '\f' &&
		    (i == 0 || s[i - 1] == ',' || s[i - 1] == ' ' ||
		    s[i - 1] == '\t' || s[i - 1] == '\r' || s[i - 1] == '\v' ||
		    s[i - 1] == '\f'))
			tokens++;
	ASSERT(noproxy_count(np) + noproxy_skipped(np) <= tokens);
	for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
		one(np, hosts[i], strlen(hosts[i]));
	if (nl != NULL)
		one(np, nl + 1, len - listlen - 1);
	noproxy_free(np);
	return 0;
}
