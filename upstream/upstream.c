/*
 * Upstream selection and the handshake through it. The handshake is a
 * small state machine on the raw socket: send one message, read until its
 * answer parses (http_parse_response for CONNECT, socks5_parse for SOCKS5),
 * then the next. Credentials go out base64'd (HTTP) or in RFC 1929, and are
 * wiped from every buffer that held them.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "builtin/addr.h"
#include "builtin/http_parse.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "launcher/config.h"
#include "socks5/socks5_parse.h"
#include "upstream/noproxy.h"
#include "upstream/proxy_url.h"
#include "upstream/upstream.h"

#define HS_TIMEOUT	30		/* s: the whole handshake */
#define HS_BUF		8192
#define MAX_ADDRS	8

struct upstream_proxy {
	struct proxy_url	url;
	char			*raw_password;	/* as the URL spells it, when
						   that differs (%40 for @) */
	struct sockaddr_storage	addrs[MAX_ADDRS];
	size_t			naddrs;
	const char		*source;	/* "--upstream", "HTTPS_PROXY" */
};

struct upstream {
	struct upstream_proxy	 tls;		/* tunnels */
	struct upstream_proxy	 plain;		/* plain HTTP */
	bool			 has_tls;
	bool			 has_plain;
	struct noproxy		*noproxy;
	const char		*secrets[5];
};

static const char *
env_get(char *const *env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], name, n) == 0 && env[i][n] == '=' &&
		    env[i][n + 1] != '\0')
			return env[i] + n + 1;
	return NULL;
}

/* The first of the variables that is set. */
static const char *
env_first(char *const *env, const char **names, const char **which)
{
	const char *v;

	for (; *names != NULL; names++)
		if ((v = env_get(env, *names)) != NULL) {
			*which = *names;
			return v;
		}
	return NULL;
}

static void
resolve(struct upstream_proxy *p)
{
	struct addrinfo	 hints, *res = NULL, *ai;
	char		 port[8];

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%u", p->url.dest.port);
	if (getaddrinfo(p->url.dest.host, port, &hints, &res) != 0)
		return;
	for (ai = res; ai != NULL && p->naddrs < MAX_ADDRS; ai = ai->ai_next)
		if (ai->ai_addrlen <= sizeof p->addrs[0])
			memcpy(&p->addrs[p->naddrs++], ai->ai_addr,
			    ai->ai_addrlen);
	freeaddrinfo(res);
}

/*
 * The password as the URL spells it (the authority split as
 * proxy_url_parse splits it), kept only when it differs from the decoded
 * one: another variable holding the same URL ("p%40ss") must be scrubbed
 * from the child's environment too, and a search for "p@ss" misses it.
 */
static char *
raw_password(const char *url, const char *decoded)
{
	const char	*auth, *at, *colon;
	size_t		 alen, i;

	if (decoded == NULL)
		return NULL;
	url += strspn(url, " \t\n\r\v\f");
	/* A scheme is ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) "://". */
	for (i = 0; isalnum((unsigned char)url[i]) || url[i] == '+' ||
	    url[i] == '-' || url[i] == '.'; i++)
		;
	auth = i > 0 && isalpha((unsigned char)url[0]) &&
	    strncmp(url + i, "://", 3) == 0 ? url + i + 3 : url;
	alen = strcspn(auth, "/?#");
	if ((at = memrchr(auth, '@', alen)) == NULL ||
	    (colon = memchr(auth, ':', (size_t)(at - auth))) == NULL ||
	    at - colon - 1 <= 0)
		return NULL;
	if ((size_t)(at - colon - 1) == strlen(decoded) &&
	    memcmp(colon + 1, decoded, strlen(decoded)) == 0)
		return NULL;
	return xstrndup(colon + 1, (size_t)(at - colon - 1));
}

static int
load(struct upstream_proxy *p, const char *url, const char *source,
    char *err, size_t errlen)
{
	int r;

	if ((r = proxy_url_parse(url, strlen(url), &p->url)) != PROXY_URL_OK) {
		snprintf(err, errlen, "upstream proxy from %s: %s", source,
		    proxy_url_strerror(r));
		return -1;
	}
	p->raw_password = raw_password(url, p->url.password);
	p->source = source;
	resolve(p);
	return 0;
}

struct upstream *
upstream_new(const struct config *cfg, char *const *env, char *err,
    size_t errlen)
{
	static const char	*tls_vars[] = { "https_proxy", "HTTPS_PROXY",
	    "all_proxy", "ALL_PROXY", NULL };
	static const char	*plain_vars[] = { "http_proxy", "HTTP_PROXY",
	    "all_proxy", "ALL_PROXY", NULL };
	static const char	*np_vars[] = { "no_proxy", "NO_PROXY", NULL };
	struct upstream		*u;
	const char		*tls, *plain, *np, *tls_src = "--upstream",
				*plain_src = "--upstream", *np_src;
	size_t			 n = 0;

	err[0] = '\0';
	if (cfg->no_upstream)
		return NULL;
	if (cfg->upstream != NULL)
		tls = plain = cfg->upstream;
	else {
		tls = env_first(env, tls_vars, &tls_src);
		plain = env_first(env, plain_vars, &plain_src);
	}
	if (tls == NULL && plain == NULL)
		return NULL;
	u = xcalloc(1, sizeof *u);
	if (tls != NULL) {
		if (load(&u->tls, tls, tls_src, err, errlen) != 0)
			goto fail;
		u->has_tls = true;
	}
	if (plain != NULL) {
		if (load(&u->plain, plain, plain_src, err, errlen) != 0)
			goto fail;
		u->has_plain = true;
	}
	np = env_first(env, np_vars, &np_src);
	u->noproxy = noproxy_parse(np, np ? strlen(np) : 0);
	if (u->has_tls && u->tls.url.password && *u->tls.url.password)
		u->secrets[n++] = u->tls.url.password;
	if (u->has_plain && u->plain.url.password && *u->plain.url.password)
		u->secrets[n++] = u->plain.url.password;
	if (u->has_tls && u->tls.raw_password != NULL)
		u->secrets[n++] = u->tls.raw_password;
	if (u->has_plain && u->plain.raw_password != NULL)
		u->secrets[n++] = u->plain.raw_password;
	return u;
fail:
	upstream_free(u);
	return NULL;
}

void
upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	proxy_url_clear(&u->tls.url);
	proxy_url_clear(&u->plain.url);
	freezero_str(u->tls.raw_password);
	freezero_str(u->plain.raw_password);
	noproxy_free(u->noproxy);
	free(u);
}

const struct proxy_url *
upstream_route(const struct upstream *u, bool plain, const struct dest *d)
{
	if (u == NULL || (plain ? !u->has_plain : !u->has_tls))
		return NULL;
	if (noproxy_match(u->noproxy, d->host, strlen(d->host), d->port))
		return NULL;
	return plain ? &u->plain.url : &u->tls.url;
}

size_t
upstream_addrs(const struct upstream *u, const struct proxy_url *url,
    const struct sockaddr_storage **out)
{
	const struct upstream_proxy *p = url == &u->tls.url ? &u->tls :
	    &u->plain;

	*out = p->addrs;
	return p->naddrs;
}

const char *const *
upstream_secrets(const struct upstream *u)
{
	return u->secrets;
}

static int
check_one(const struct upstream_proxy *p, unsigned timeout_ms)
{
	int fd, ok = 0;

	log_info("chaining to the upstream proxy %s (from %s)",
	    p->url.display, p->source);
	if (p->naddrs == 0) {
		log_warn("upstream proxy %s (from %s): cannot resolve %s; "
		    "connections through it will fail", p->url.display,
		    p->source, p->url.dest.host);
		return -1;
	}
	for (size_t i = 0; i < p->naddrs && !ok; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&p->addrs[i];
		struct pollfd pfd;
		socklen_t len = sizeof(int);
		int e = 0;

		fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd == -1)
			continue;
		if (connect(fd, sa, sa->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in))
		    == 0)
			ok = 1;
		else if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			if (poll(&pfd, 1, (int)timeout_ms) == 1 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) == 0
			    && e == 0)
				ok = 1;
		}
		close(fd);
	}
	if (!ok)
		log_warn("upstream proxy %s (from %s) does not accept "
		    "connections; requests through it will fail until it "
		    "does", p->url.display, p->source);
	return ok ? 0 : -1;
}

int
upstream_check(const struct upstream *u, unsigned timeout_ms)
{
	int r = 0;

	if (u == NULL)
		return 0;
	if (u->has_tls && check_one(&u->tls, timeout_ms) != 0)
		r = -1;
	if (u->has_plain && (!u->has_tls ||
	    strcmp(u->plain.url.display, u->tls.url.display) != 0) &&
	    check_one(&u->plain, timeout_ms) != 0)
		r = -1;
	return r;
}

char *
upstream_auth_header(const struct proxy_url *url)
{
	unsigned char	*plain, *b64;
	char		*h;
	size_t		 n;

	if (url->user == NULL || url->scheme != PROXY_SCHEME_HTTP)
		return xstrdup("");
	plain = (unsigned char *)xprintf("%s:%s", url->user,
	    url->password ? url->password : "");
	n = strlen((char *)plain);
	b64 = xcalloc(1, 4 * ((n + 2) / 3) + 1);
	EVP_EncodeBlock(b64, plain, (int)n);
	h = xprintf("Proxy-Authorization: Basic %s\r\n", b64);
	freezero(plain, n);
	freezero(b64, strlen((char *)b64));
	return h;
}

/* The handshake. */

enum hs_state {
	HS_HTTP,		/* CONNECT sent, reading the answer */
	HS_SOCKS_METHOD,	/* greeting sent */
	HS_SOCKS_AUTH,		/* RFC 1929 sent */
	HS_SOCKS_CONNECT,	/* request sent */
};

struct upstream_hs {
	int			 fd;
	enum hs_state		 state;
	const struct proxy_url	*url;
	struct dest		 target;
	struct sockaddr_storage	 target_addr;
	bool			 by_addr;
	uint8_t			 out[HS_BUF];
	size_t			 outlen, outoff;
	uint8_t			 in[HS_BUF];
	size_t			 inlen;
	struct event		*ev;
	upstream_hs_cb		*cb;
	void			*arg;
};

static void	hs_io(evutil_socket_t, short, void *);

static void
hs_free(struct upstream_hs *hs)
{
	OPENSSL_cleanse(hs->out, sizeof hs->out);
	if (hs->ev != NULL)
		event_free(hs->ev);
	free(hs);
}

static void
hs_done(struct upstream_hs *hs, int status, const char *reason,
    size_t consumed)
{
	upstream_hs_cb	*cb = hs->cb;
	void		*arg = hs->arg;
	uint8_t		 left[HS_BUF];
	size_t		 n = 0;

	if (status == 0 && hs->inlen > consumed) {
		n = hs->inlen - consumed;
		memcpy(left, hs->in + consumed, n);
	}
	hs_free(hs);
	cb(status, reason, left, n, arg);
}

static void
hs_fail(struct upstream_hs *hs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
hs_fail(struct upstream_hs *hs, const char *fmt, ...)
{
	char	reason[256];
	va_list	ap;
	int	n;

	n = snprintf(reason, sizeof reason, "upstream proxy %s: ",
	    hs->url->display);
	va_start(ap, fmt);
	vsnprintf(reason + n, sizeof reason - (size_t)n, fmt, ap);
	va_end(ap);
	hs_done(hs, 502, reason, 0);
}

/* Queue a message and wait for the socket to take it. */
static void
hs_send(struct upstream_hs *hs, const void *buf, size_t len)
{
	OPENSSL_cleanse(hs->out, hs->outlen);
	memcpy(hs->out, buf, len);
	hs->outlen = len;
	hs->outoff = 0;
	hs->inlen = 0;
}

/* The target as "host:port" for CONNECT, brackets for IPv6. */
static void
target_text(const struct upstream_hs *hs, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (hs->by_addr) {
		const struct sockaddr *sa =
		    (const struct sockaddr *)&hs->target_addr;
		addr_ntop(sa, a, sizeof a);
		snprintf(buf, len, sa->sa_family == AF_INET6 ? "[%s]:%u" :
		    "%s:%u", a, hs->target.port);
	} else
		snprintf(buf, len, hs->target.kind == ADDR_IPV6 ? "[%s]:%u" :
		    "%s:%u", hs->target.host, hs->target.port);
}

static void
socks_connect(struct upstream_hs *hs)
{
	uint8_t	msg[SOCKS5_REQUEST_MAX];
	int	n;

	if (hs->by_addr || hs->target.kind != ADDR_NAME) {
		struct sockaddr_storage ss = hs->target_addr;
		if (!hs->by_addr) {
			memset(&ss, 0, sizeof ss);
			if (hs->target.kind == ADDR_IPV4) {
				struct sockaddr_in *s4 = (void *)&ss;
				s4->sin_family = AF_INET;
				s4->sin_addr = hs->target.v4;
			} else {
				struct sockaddr_in6 *s6 = (void *)&ss;
				s6->sin6_family = AF_INET6;
				s6->sin6_addr = hs->target.v6;
			}
		}
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port =
			    htons(hs->target.port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port =
			    htons(hs->target.port);
		n = socks5_build_connect_addr(msg, sizeof msg,
		    (struct sockaddr *)&ss);
	} else
		n = socks5_build_connect_name(msg, sizeof msg, hs->target.host,
		    strlen(hs->target.host), hs->target.port);
	if (n < 0) {
		hs_fail(hs, "cannot build the SOCKS5 request: %s",
		    socks5_strerror(n));
		return;
	}
	hs_send(hs, msg, (size_t)n);
	hs->state = HS_SOCKS_CONNECT;
}

/* A complete answer is in hs->in: act on it. Returns bytes used, 0 if
 * more are needed, -1 once finished (hs freed). */
static int
hs_answer(struct upstream_hs *hs)
{
	struct http_response	 resp;
	struct socks5_reply	 rep;
	uint8_t			 method, status, msg[SOCKS5_AUTH_MAX];
	int			 r, n;

	switch (hs->state) {
	case HS_HTTP:
		r = http_parse_response(hs->in, hs->inlen, false, true, &resp);
		if (r == HTTP_NEED_MORE)
			return 0;
		if (r < 0) {
			hs_fail(hs, "bad answer to CONNECT: %s",
			    http_parse_strerror(r));
			return -1;
		}
		if (resp.status == 407) {
			static bool warned;
			if (!warned)
				log_warn("upstream proxy %s asks for "
				    "authentication (407): check the user "
				    "and password in %s", hs->url->display,
				    hs->url->user ? "its URL" : "the URL "
				    "(none given)");
			warned = true;
			hs_fail(hs, "authentication failed (407 Proxy "
			    "Authentication Required)");
			return -1;
		}
		if (resp.status / 100 != 2) {
			hs_fail(hs, "refused the tunnel: %d %.*s", resp.status,
			    (int)resp.reason.len, resp.reason.p);
			return -1;
		}
		hs_done(hs, 0, NULL, (size_t)r);
		return -1;
	case HS_SOCKS_METHOD:
		if ((r = socks5_parse_method_reply(hs->in, hs->inlen, &method))
		    == SOCKS5_NEED_MORE)
			return 0;
		if (r < 0 || method == SOCKS5_METHOD_REFUSED ||
		    (method == SOCKS5_METHOD_USERPASS && hs->url->user == NULL)
		    || (method != SOCKS5_METHOD_NONE &&
		    method != SOCKS5_METHOD_USERPASS)) {
			hs_fail(hs, "no acceptable SOCKS5 authentication "
			    "method%s", hs->url->user ? "" : " (it may want "
			    "a user and password in the URL)");
			return -1;
		}
		if (method == SOCKS5_METHOD_NONE) {
			socks_connect(hs);
			return r;
		}
		n = socks5_build_auth(msg, sizeof msg, hs->url->user,
		    strlen(hs->url->user), hs->url->password ?
		    hs->url->password : "", hs->url->password ?
		    strlen(hs->url->password) : 0);
		if (n < 0) {
			hs_fail(hs, "cannot send credentials: %s",
			    socks5_strerror(n));
			return -1;
		}
		hs_send(hs, msg, (size_t)n);
		OPENSSL_cleanse(msg, sizeof msg);
		hs->state = HS_SOCKS_AUTH;
		return r;
	case HS_SOCKS_AUTH:
		if ((r = socks5_parse_auth_reply(hs->in, hs->inlen, &status))
		    == SOCKS5_NEED_MORE)
			return 0;
		if (r < 0 || status != SOCKS5_AUTH_OK) {
			hs_fail(hs, "authentication failed (SOCKS5 user/"
			    "password refused)");
			return -1;
		}
		socks_connect(hs);
		return r;
	case HS_SOCKS_CONNECT:
		if ((r = socks5_parse_reply(hs->in, hs->inlen, &rep)) ==
		    SOCKS5_NEED_MORE)
			return 0;
		if (r < 0) {
			hs_fail(hs, "bad SOCKS5 reply: %s", socks5_strerror(r));
			return -1;
		}
		if (rep.rep != SOCKS5_REP_SUCCEEDED) {
			hs_fail(hs, "refused the connection: %s",
			    socks5_reply_str(rep.rep));
			return -1;
		}
		hs_done(hs, 0, NULL, (size_t)r);
		return -1;
	}
	return -1;
}

static void
hs_io(evutil_socket_t fd, short what, void *arg)
{
	struct upstream_hs	*hs = arg;
	struct timeval		 tv = { HS_TIMEOUT, 0 };
	ssize_t			 n;
	int			 used;

	if (what & EV_TIMEOUT) {
		hs_fail(hs, "no answer within %d s", HS_TIMEOUT);
		return;
	}
	while (hs->outoff < hs->outlen) {
		n = write(fd, hs->out + hs->outoff, hs->outlen - hs->outoff);
		if (n > 0) {
			hs->outoff += (size_t)n;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			event_del(hs->ev);
			event_assign(hs->ev, event_get_base(hs->ev), fd,
			    EV_WRITE, hs_io, hs);
			event_add(hs->ev, &tv);
			return;
		}
		hs_fail(hs, "connection lost: %s", strerror(errno));
		return;
	}
	if (what & EV_READ) {
		n = read(fd, hs->in + hs->inlen, sizeof hs->in - hs->inlen);
		if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR)) {
			hs_fail(hs, "closed the connection during the "
			    "handshake");
			return;
		}
		if (n > 0)
			hs->inlen += (size_t)n;
		while (hs->inlen > 0) {
			if ((used = hs_answer(hs)) < 0)
				return;		/* finished; hs is freed */
			if (used == 0) {
				if (hs->inlen == sizeof hs->in) {
					hs_fail(hs, "answer too large");
					return;
				}
				break;
			}
			/* A new message was queued: send it first. */
			if (hs->outoff < hs->outlen)
				break;
		}
		if (hs->outoff < hs->outlen) {
			hs_io(fd, EV_WRITE, hs);
			return;
		}
	}
	event_del(hs->ev);
	event_assign(hs->ev, event_get_base(hs->ev), fd, EV_READ, hs_io, hs);
	event_add(hs->ev, &tv);
}

struct upstream_hs *
upstream_hs_start(struct event_base *base, int fd,
    const struct proxy_url *url, const struct dest *target,
    const struct sockaddr *target_addr, upstream_hs_cb *cb, void *arg)
{
	struct upstream_hs	*hs = xcalloc(1, sizeof *hs);
	char			 t[ADDR_HOST_MAX + 16], *auth;
	uint8_t			 msg[8];
	int			 n;

	hs->fd = fd;
	hs->url = url;
	hs->target = *target;
	hs->cb = cb;
	hs->arg = arg;
	if (target_addr != NULL) {
		hs->by_addr = true;
		memcpy(&hs->target_addr, target_addr,
		    target_addr->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	}
	hs->ev = event_new(base, fd, EV_WRITE, hs_io, hs);
	if (url->scheme == PROXY_SCHEME_HTTP) {
		target_text(hs, t, sizeof t);
		auth = upstream_auth_header(url);
		n = snprintf((char *)hs->out, sizeof hs->out, "CONNECT %s "
		    "HTTP/1.1\r\nHost: %s\r\n%s\r\n", t, t, auth);
		freezero_str(auth);
		hs->outlen = (size_t)n;
		hs->state = HS_HTTP;
	} else {
		n = socks5_build_greeting(msg, sizeof msg, url->user != NULL);
		hs_send(hs, msg, (size_t)n);
		hs->state = HS_SOCKS_METHOD;
	}
	/* Start on the loop: the result never arrives inside this call. */
	event_active(hs->ev, EV_WRITE, 0);
	return hs;
}

void
upstream_hs_cancel(struct upstream_hs *hs)
{
	if (hs != NULL)
		hs_free(hs);
}
