/*
 * Proxy URLs: scheme, percent-decoded credentials, canonical host and port
 * (through addr_parse_authority, the one host parser), and a display form
 * safe for logs. Errors are fixed strings: the input may hold a password.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "upstream/proxy_url.h"

#define RFC1929_MAX	255

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	    c == '\f';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
scheme_is(const char *s, size_t len, const char *name)
{
	if (strlen(name) != len)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = (s[i] >= 'A' && s[i] <= 'Z') ?
		    (char)(s[i] - 'A' + 'a') : s[i];
		if (c != name[i])
			return false;
	}
	return true;
}

/*
 * "scheme://" at the start, if the bytes before "://" form a scheme
 * (RFC 3986: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )); otherwise there
 * is none and the URL is http, as curl reads "host:port".
 */
static int
parse_scheme(const char *s, size_t len, size_t *skip,
    enum proxy_scheme *scheme)
{
	size_t i;

	*skip = 0;
	*scheme = PROXY_SCHEME_HTTP;
	if (len == 0 || !is_alpha(s[0]))
		return PROXY_URL_OK;
	for (i = 1; i < len; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '+' &&
		    s[i] != '-' && s[i] != '.')
			break;
	if (len - i < 3 || memcmp(s + i, "://", 3) != 0)
		return PROXY_URL_OK;
	*skip = i + 3;
	if (scheme_is(s, i, "http"))
		*scheme = PROXY_SCHEME_HTTP;
	else if (scheme_is(s, i, "socks5"))
		*scheme = PROXY_SCHEME_SOCKS5;
	else if (scheme_is(s, i, "socks5h"))
		*scheme = PROXY_SCHEME_SOCKS5H;
	else if (scheme_is(s, i, "https"))
		return PROXY_URL_E_HTTPS;
	else if (scheme_is(s, i, "socks4") || scheme_is(s, i, "socks4a") ||
	    scheme_is(s, i, "socks"))
		return PROXY_URL_E_SOCKS4;
	else
		return PROXY_URL_E_SCHEME;
	return PROXY_URL_OK;
}

/* Decode %XX into a new NUL-terminated string; %00 and bad escapes fail. */
static int
pct_decode(const char *s, size_t len, char **out)
{
	char	*d;
	size_t	 n = 0;
	int	 hi, lo;

	d = xcalloc(1, len + 1);
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%') {
			d[n++] = s[i];
			continue;
		}
		if (len - i < 3 || (hi = util_hexval(s[i + 1])) < 0 ||
		    (lo = util_hexval(s[i + 2])) < 0 || (hi | lo) == 0) {
			freezero(d, len + 1);
			return PROXY_URL_E_USERINFO;
		}
		d[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	*out = d;
	return PROXY_URL_OK;
}

/* The user name for display: unreserved bytes as they are, others %XX, so
 * no byte of it can break a log line. */
static char *
user_display(const char *user)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 len = strlen(user), n = 0;
	char			*d;

	d = xcalloc(1, 3 * len + 1);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)user[i];

		if (is_alpha((char)c) || is_digit((char)c) || c == '-' ||
		    c == '.' || c == '_' || c == '~')
			d[n++] = (char)c;
		else {
			d[n++] = '%';
			d[n++] = hex[c >> 4];
			d[n++] = hex[c & 0xf];
		}
	}
	return d;
}

int
proxy_url_parse(const char *s, size_t len, struct proxy_url *u)
{
	const char	*auth, *host, *colon, *at;
	size_t		 alen, hlen, ulen, skip, i;
	char		*user;
	int		 rv;

	memset(u, 0, sizeof *u);
	while (len > 0 && is_space(s[0])) {
		s++;
		len--;
	}
	while (len > 0 && is_space(s[len - 1]))
		len--;
	if (len == 0)
		return PROXY_URL_E_EMPTY;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return PROXY_URL_E_SYNTAX;
	if ((rv = parse_scheme(s, len, &skip, &u->scheme)) != PROXY_URL_OK)
		goto out;

	/* The authority ends at the first '/', '?' or '#'; only "/" may
	 * follow it. */
	auth = s + skip;
	alen = len - skip;
	for (i = 0; i < alen; i++)
		if (auth[i] == '/' || auth[i] == '?' || auth[i] == '#')
			break;
	if (i < alen && !(i + 1 == alen && auth[i] == '/')) {
		rv = PROXY_URL_E_PATH;
		goto out;
	}
	alen = i;

	host = auth;
	hlen = alen;
	if ((at = memrchr(auth, '@', alen)) != NULL) {
		host = at + 1;
		hlen = alen - (size_t)(host - auth);
		ulen = (size_t)(at - auth);
		colon = memchr(auth, ':', ulen);
		if (colon != NULL) {
			if ((rv = pct_decode(auth, (size_t)(colon - auth),
			    &u->user)) != PROXY_URL_OK ||
			    (rv = pct_decode(colon + 1,
			    (size_t)(at - colon - 1), &u->password)) !=
			    PROXY_URL_OK)
				goto out;
		} else if (ulen > 0 &&
		    (rv = pct_decode(auth, ulen, &u->user)) != PROXY_URL_OK)
			goto out;
	}

	rv = addr_parse_authority(host, hlen, PROXY_URL_DEFAULT_PORT,
	    &u->dest);
	if (rv == ADDR_E_PORT) {
		rv = PROXY_URL_E_PORT;
		goto out;
	} else if (rv != ADDR_OK) {
		rv = PROXY_URL_E_HOST;
		goto out;
	}

	if (u->scheme != PROXY_SCHEME_HTTP && u->user != NULL &&
	    (strlen(u->user) == 0 || strlen(u->user) > RFC1929_MAX ||
	    (u->password != NULL && strlen(u->password) > RFC1929_MAX))) {
		rv = PROXY_URL_E_CREDLEN;
		goto out;
	}

	user = u->user != NULL ? user_display(u->user) : NULL;
	u->display = xprintf("%s://%s%s%s%s%s%s:%u",
	    proxy_url_scheme_name(u->scheme), user != NULL ? user : "",
	    u->password != NULL ? ":***" : "", user != NULL ? "@" : "",
	    u->dest.kind == ADDR_IPV6 ? "[" : "", u->dest.host,
	    u->dest.kind == ADDR_IPV6 ? "]" : "", u->dest.port);
	free(user);
	return PROXY_URL_OK;
out:
	proxy_url_clear(u);
	return rv;
}

void
proxy_url_clear(struct proxy_url *u)
{
	if (u == NULL)
		return;
	freezero_str(u->user);
	freezero_str(u->password);
	free(u->display);
	memset(u, 0, sizeof *u);
}

const char *
proxy_url_strerror(int rv)
{
	switch (rv) {
	case PROXY_URL_OK:
		return "no error";
	case PROXY_URL_E_EMPTY:
		return "empty proxy URL";
	case PROXY_URL_E_SYNTAX:
		return "proxy URL contains a space or control character: "
		    "percent-encode it";
	case PROXY_URL_E_SCHEME:
		return "unsupported proxy scheme: use http://, socks5:// or "
		    "socks5h://";
	case PROXY_URL_E_HTTPS:
		return "https:// proxies (TLS to the proxy) are not supported: "
		    "use http://; HTTPS through it stays end-to-end encrypted";
	case PROXY_URL_E_SOCKS4:
		return "SOCKS4 proxies are not supported: use socks5:// or "
		    "socks5h://";
	case PROXY_URL_E_USERINFO:
		return "bad percent-encoding in the proxy user name or "
		    "password (%00 is not allowed)";
	case PROXY_URL_E_CREDLEN:
		return "SOCKS5 proxy user name must be 1-255 bytes and its "
		    "password at most 255 (RFC 1929)";
	case PROXY_URL_E_HOST:
		return "bad proxy host: give a name, an IPv4 address or an "
		    "IPv6 address in brackets";
	case PROXY_URL_E_PORT:
		return "bad proxy port: give a number from 1 to 65535";
	case PROXY_URL_E_PATH:
		return "a proxy URL has no path, query or fragment: use "
		    "scheme://[user[:password]@]host[:port] and percent-encode "
		    "'/', '?' and '#' in a password";
	}
	return "unknown proxy URL error";
}

const char *
proxy_url_scheme_name(enum proxy_scheme scheme)
{
	switch (scheme) {
	case PROXY_SCHEME_HTTP:
		return "http";
	case PROXY_SCHEME_SOCKS5:
		return "socks5";
	case PROXY_SCHEME_SOCKS5H:
		return "socks5h";
	}
	return "unknown";
}
