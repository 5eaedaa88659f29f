/* Small string helpers: strict numbers, host:port splitting, sh quoting. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xmalloc.h"

int
util_strtonum(const char *s, long long min, long long max, long long *out)
{
	char		*end;
	long long	 v;

	if (s == NULL || *s == '\0' || *s == ' ' || *s == '+')
		return -1;
	for (const char *p = (*s == '-') ? s + 1 : s; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
util_hostport(const char *s, char **host, unsigned *port, bool allow_zero)
{
	const char	*colon, *h;
	size_t		 hlen;
	long long	 p;

	*host = NULL;
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (close == NULL || close[1] != ':')
			return -1;
		h = s + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		h = s;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || util_strtonum(colon + 1, allow_zero ? 0 : 1, 65535,
	    &p) != 0)
		return -1;
	*host = xstrndup(h, hlen);
	*port = (unsigned)p;
	return 0;
}

char *
util_shell_quote(const char *s)
{
	size_t	 n = 3;
	char	*out, *o;

	for (const char *p = s; *p != '\0'; p++)
		n += (*p == '\'') ? 4 : 1;
	o = out = xcalloc(1, n);
	*o++ = '\'';
	for (const char *p = s; *p != '\0'; p++) {
		if (*p == '\'') {
			memcpy(o, "'\\''", 4);
			o += 4;
		} else
			*o++ = *p;
	}
	*o++ = '\'';
	*o = '\0';
	return out;
}

char *
util_join_hostport(const char *host, unsigned port)
{
	if (strchr(host, ':') != NULL)
		return xprintf("[%s]:%u", host, port);
	return xprintf("%s:%u", host, port);
}

int
util_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
util_unhex(const void *hex, size_t n, unsigned char *out)
{
	const unsigned char	*s = hex;
	int			 hi, lo;

	for (size_t i = 0; i < n; i++) {
		if ((hi = util_hexval(s[2 * i])) < 0 ||
		    (lo = util_hexval(s[2 * i + 1])) < 0)
			return false;
		out[i] = (unsigned char)(hi << 4 | lo);
	}
	return true;
}
