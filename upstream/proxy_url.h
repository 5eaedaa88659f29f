/*
 * Upstream proxy URLs, as --upstream and egress-run's own HTTPS_PROXY,
 * HTTP_PROXY and ALL_PROXY give them: [scheme://][user[:password]@]host
 * [:port][/]. The launcher parses; upstream.c dials what comes out. The
 * password never reaches a message or the display form.
 */
#ifndef UPSTREAM_PROXY_URL_H
#define UPSTREAM_PROXY_URL_H

#include <stddef.h>

#include "builtin/addr.h"

/*
 * Without a port, curl's default: 1080, for http:// as for socks (curl
 * uses 443 only for https://, which we refuse). Python and Go would use
 * 80 for http://; the variables are usually set for curl too.
 */
#define PROXY_URL_DEFAULT_PORT	1080

enum proxy_scheme {
	PROXY_SCHEME_HTTP,	/* HTTP CONNECT; also when no scheme is given */
	PROXY_SCHEME_SOCKS5,	/* SOCKS5, egress-run resolves names */
	PROXY_SCHEME_SOCKS5H,	/* SOCKS5, the proxy resolves names */
};

struct proxy_url {
	enum proxy_scheme	 scheme;
	struct dest		 dest;	/* canonical host, kind, port */
	char			*user;	/* percent-decoded; NULL if none */
	char			*password; /* percent-decoded; NULL if none,
					      "" for "user:@"; wiped when
					      cleared */
	char			*display; /* for logs, never the password:
					     "socks5h://user:***@gw:1080",
					     the user name re-encoded */
};

enum proxy_url_result {
	PROXY_URL_OK = 0,
	PROXY_URL_E_EMPTY = -1,
	PROXY_URL_E_SYNTAX = -2,	/* space or control character inside */
	PROXY_URL_E_SCHEME = -3,	/* not http, socks5, socks5h */
	PROXY_URL_E_HTTPS = -4,		/* https:// (TLS to the proxy) */
	PROXY_URL_E_SOCKS4 = -5,	/* socks4://, socks4a://, socks:// */
	PROXY_URL_E_USERINFO = -6,	/* bad %XX, %00 */
	PROXY_URL_E_CREDLEN = -7,	/* SOCKS5: user not 1..255 bytes or
					   password over 255 (RFC 1929) */
	PROXY_URL_E_HOST = -8,
	PROXY_URL_E_PORT = -9,		/* empty, 0, over 65535, not digits */
	PROXY_URL_E_PATH = -10,		/* a path other than "/", a query or
					   a fragment */
};

/*
 * Parse len bytes (need not be NUL-terminated; surrounding white space is
 * ignored). On success fills *u, which the caller releases with
 * proxy_url_clear(); on failure *u is left cleared. User names and
 * passwords are percent-decoded: '@', ':', '/', '?', '#' and '%' in them
 * must be sent encoded (the last '@' is taken as the separator, so a raw
 * '@' in a password still works). An empty user with no password ("@host")
 * means no credentials.
 */
int	proxy_url_parse(const char *, size_t, struct proxy_url *);

/* Free and wipe (OPENSSL_cleanse) what a parse allocated; idempotent. */
void	proxy_url_clear(struct proxy_url *);

/* A one-line description of a negative result, with what to do. It never
 * quotes the input. */
const char *proxy_url_strerror(int);

/* "http", "socks5", "socks5h". */
const char *proxy_url_scheme_name(enum proxy_scheme);

#endif
