/*
 * Resolve, guard, connect, and (through an upstream) handshake. Target
 * candidates come from --resolve pins, an address literal, or evdns; each
 * is judged by policy_check_addr() and refused ones are dropped. Direct
 * dials try the survivors in order, each with a connect timeout: the
 * address dialled is the address checked, never resolved twice. Through an
 * upstream proxy, its addresses are dialled instead and the target goes
 * into the handshake: by name when the upstream resolves (http://,
 * socks5h://), by checked address when pinned, literal or socks5://.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "builtin/dial.h"
#include "builtin/policy.h"
#include "builtin/proxy.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "upstream/proxy_url.h"
#include "upstream/upstream.h"

#define DIAL_MAX_CANDIDATES	16

struct dial {
	struct server			*srv;
	const struct policy		*policy;	/* the sandbox's */
	struct dest			 dest;
	enum dial_mode			 mode;
	dial_cb				*cb;
	void				*arg;
	const struct proxy_url		*via;
	struct evdns_getaddrinfo_request *req;
	struct upstream_hs		*hs;
	bool				 resolved;
	bool				 cancelled;
	bool				 pinned;
	bool				 have_target;	/* cand holds targets */
	struct sockaddr_storage		 cand[DIAL_MAX_CANDIDATES];
	size_t				 ncand;
	const struct sockaddr_storage	*conn;		/* what to dial */
	size_t				 nconn;
	size_t				 next;
	int				 fd;
	struct event			*ev;		/* connect / step */
	struct dial_result		 res;		/* first failure */
	bool				 have_failure;
};

static void	step(evutil_socket_t, short, void *);

static socklen_t
sa_len(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);
}

static void
set_port(struct sockaddr_storage *ss, uint16_t port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
}

static void
dial_free(struct dial *d)
{
	if (d->fd != -1)
		close(d->fd);
	if (d->ev != NULL)
		event_free(d->ev);
	free(d);
}

/* Hand the result over and free the dial. */
static void
finish(struct dial *d, int fd)
{
	dial_cb			*cb = d->cb;
	void			*arg = d->arg;
	struct dial_result	*res = xcalloc(1, sizeof *res);

	*res = d->res;
	if (fd != -1)
		res->status = 0;
	res->via = d->via;
	d->fd = -1;
	dial_free(d);
	cb(fd, res, arg);
	free(res);
}

/* Remember the first failure: it is what the client is told. */
static void
fail(struct dial *d, int status, int err, const char *rule, const char *fmt,
    ...) __attribute__((format(printf, 5, 6)));

static void
fail(struct dial *d, int status, int err, const char *rule, const char *fmt,
    ...)
{
	va_list ap;

	if (d->have_failure)
		return;
	d->have_failure = true;
	d->res.status = status;
	d->res.err = err;
	d->res.rule = rule;
	va_start(ap, fmt);
	vsnprintf(d->res.reason, sizeof d->res.reason, fmt, ap);
	va_end(ap);
}

/* Drop candidates the policy refuses (SPEC §5, stage 2). */
static void
guard(struct dial *d)
{
	size_t kept = 0;

	for (size_t i = 0; i < d->ncand; i++) {
		struct verdict v;

		policy_check_addr(d->policy, &d->dest,
		    (struct sockaddr *)&d->cand[i], d->pinned, &v);
		if (!v.allow) {
			fail(d, 403, EACCES, v.rule, "%s", v.reason);
			memcpy(&d->res.addr, &d->cand[i], sizeof d->cand[i]);
			continue;
		}
		d->cand[kept++] = d->cand[i];
	}
	d->ncand = kept;
}

/* Continue from the event loop. */
static void
schedule(struct dial *d)
{
	if (d->ev != NULL)
		event_free(d->ev);
	d->ev = event_new(d->srv->base, -1, 0, step, d);
	event_active(d->ev, EV_TIMEOUT, 0);
}

static void
on_resolved(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct dial *d = arg;

	d->req = NULL;
	d->resolved = true;
	if (d->cancelled) {
		if (ai != NULL)
			evutil_freeaddrinfo(ai);
		dial_free(d);
		return;
	}
	if (err != 0)
		fail(d, 502, EHOSTUNREACH, NULL, "cannot resolve %s: %s",
		    d->dest.host, evutil_gai_strerror(err));
	for (struct evutil_addrinfo *a = ai; a != NULL &&
	    d->ncand < DIAL_MAX_CANDIDATES; a = a->ai_next) {
		if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
			continue;
		memcpy(&d->cand[d->ncand], a->ai_addr, a->ai_addrlen);
		set_port(&d->cand[d->ncand++], d->dest.port);
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	if (d->mode != DIAL_HOOK)
		guard(d);
	schedule(d);
}

static void
handshaken(int status, const char *reason, const uint8_t *left, size_t n,
    void *arg)
{
	struct dial	*d = arg;
	int		 fd = d->fd;

	d->hs = NULL;
	if (status != 0) {
		d->have_failure = false;	/* this is the failure to tell */
		fail(d, 502, EPROTO, NULL, "%s", reason);
		finish(d, -1);
		return;
	}
	if (n > sizeof d->res.leftover)
		n = sizeof d->res.leftover;
	memcpy(d->res.leftover, left, n);
	d->res.leftover_len = n;
	finish(d, fd);
}

/* Connected to the upstream: open the way through it if needed. */
static void
through_upstream(struct dial *d)
{
	if (d->mode == DIAL_HTTP && d->via->scheme == PROXY_SCHEME_HTTP) {
		/* Plain HTTP goes to an HTTP proxy as it is, in absolute
		 * form: no tunnel. */
		d->res.absolute = true;
		finish(d, d->fd);
		return;
	}
	event_del(d->ev);
	d->hs = upstream_hs_start(d->srv->base, d->fd, d->via, &d->dest,
	    d->have_target ? (struct sockaddr *)&d->cand[0] : NULL,
	    handshaken, d);
}

/* Try the next address to dial, or report. */
static void
try_next(struct dial *d)
{
	struct timeval	 tv = { PROXY_CONNECT_TIMEOUT, 0 };
	struct sockaddr	*sa;
	char		 a[64];
	int		 one = 1;

	while (d->next < d->nconn) {
		sa = (struct sockaddr *)&d->conn[d->next++];
		d->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (d->fd == -1) {
			int e = errno;

			/* Our own shortage, not the origin's fault: 503. */
			if (e == EMFILE || e == ENFILE || e == ENOBUFS ||
			    e == ENOMEM)
				fail(d, 503, e, NULL, "the proxy is out of file "
				    "descriptors (socket: %s); raise 'ulimit -n'",
				    strerror(e));
			else
				fail(d, 502, e, NULL, "cannot connect to %s: "
				    "socket: %s", d->dest.host, strerror(e));
			continue;
		}
		setsockopt(d->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (connect(d->fd, sa, sa_len(sa)) == 0 || errno == EINPROGRESS) {
			memcpy(&d->res.addr, sa, sa_len(sa));
			if (d->ev != NULL)
				event_free(d->ev);
			d->ev = event_new(d->srv->base, d->fd, EV_WRITE, step,
			    d);
			event_add(d->ev, &tv);
			return;
		}
		addr_ntop(sa, a, sizeof a);
		fail(d, 502, errno, NULL, "cannot connect to %s%s (%s port "
		    "%u): %s", d->via ? "the upstream proxy " : "",
		    d->via ? d->via->display : d->dest.host, a,
		    ntohs(((struct sockaddr_in *)sa)->sin_port),
		    strerror(errno));
		close(d->fd);
		d->fd = -1;
	}
	if (!d->have_failure)
		fail(d, 502, EHOSTUNREACH, NULL, "%s has no usable address",
		    d->via ? d->via->display : d->dest.host);
	finish(d, -1);
}

/* Targets are known (or not needed): choose what to dial. */
static void
targets_ready(struct dial *d)
{
	if (d->have_target && d->ncand == 0) {
		/* Every candidate was refused or none resolved. */
		if (!d->have_failure)
			fail(d, 502, EHOSTUNREACH, NULL, "%s has no usable "
			    "address", d->dest.host);
		finish(d, -1);
		return;
	}
	if (d->via != NULL)
		d->nconn = upstream_addrs(d->srv->upstream, d->via, &d->conn);
	else {
		d->conn = d->cand;
		d->nconn = d->ncand;
	}
	try_next(d);
}

static void
step(evutil_socket_t fd, short what, void *arg)
{
	struct dial	*d = arg;
	socklen_t	 len = sizeof(int);
	int		 err = 0, port;
	char		 a[64];

	(void)fd;
	if (d->fd == -1) {		/* candidates are ready */
		targets_ready(d);
		return;
	}
	addr_ntop((struct sockaddr *)&d->res.addr, a, sizeof a);
	port = ntohs(((struct sockaddr_in *)&d->res.addr)->sin_port);
	if (what & EV_TIMEOUT) {
		fail(d, 504, ETIMEDOUT, NULL, "connecting to %s%s (%s port %d) "
		    "timed out after %d s", d->via ? "the upstream proxy " : "",
		    d->via ? d->via->display : d->dest.host, a, port,
		    PROXY_CONNECT_TIMEOUT);
	} else if (getsockopt(d->fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
	    err == 0) {
		if (d->via != NULL) {
			through_upstream(d);
			return;
		}
		int cfd = d->fd;
		d->fd = -1;
		finish(d, cfd);
		return;
	} else
		fail(d, 502, err ? err : errno, NULL, "cannot connect to %s%s "
		    "(%s port %d): %s", d->via ? "the upstream proxy " : "",
		    d->via ? d->via->display : d->dest.host, a, port,
		    strerror(err ? err : errno));
	close(d->fd);
	d->fd = -1;
	try_next(d);
}

struct dial *
dial_start(struct server *srv, const struct policy *policy,
    const struct dest *dest, enum dial_mode mode, dial_cb *cb, void *arg)
{
	struct dial			*d = xcalloc(1, sizeof *d);
	struct evutil_addrinfo		 hints;
	struct evdns_getaddrinfo_request *req;

	d->srv = srv;
	d->policy = policy;
	d->dest = *dest;
	d->mode = mode;
	d->cb = cb;
	d->arg = arg;
	d->fd = -1;
	d->via = mode == DIAL_FORWARD ? NULL : upstream_route(srv->upstream,
	    mode == DIAL_HTTP, dest);

	d->ncand = policy == NULL ? 0 : policy_pinned(policy, dest, d->cand,
	    DIAL_MAX_CANDIDATES);
	d->have_target = true;
	if (d->ncand > 0) {
		d->pinned = true;
	} else if (dest->kind == ADDR_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&d->cand[0];
		sin->sin_family = AF_INET;
		sin->sin_addr = dest->v4;
		sin->sin_port = htons(dest->port);
		d->ncand = 1;
	} else if (dest->kind == ADDR_IPV6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&d->cand[0];
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = dest->v6;
		sin6->sin6_port = htons(dest->port);
		d->ncand = 1;
	} else if (d->via != NULL && d->via->scheme != PROXY_SCHEME_SOCKS5) {
		/* The upstream resolves the name: no guard of ours. */
		d->have_target = false;
		schedule(d);
		return d;
	} else {
		memset(&hints, 0, sizeof hints);
		hints.ai_family = AF_UNSPEC;
		hints.ai_socktype = SOCK_STREAM;
		hints.ai_protocol = IPPROTO_TCP;
		hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
		req = evdns_getaddrinfo(srv->dns, dest->host, NULL, &hints,
		    on_resolved, d);
		/* The callback may already have run (hosts file, cache). */
		if (!d->resolved)
			d->req = req;
		return d;
	}
	if (mode != DIAL_FORWARD && mode != DIAL_HOOK)
		guard(d);
	schedule(d);
	return d;
}

void
dial_cancel(struct dial *d)
{
	if (d == NULL)
		return;
	if (d->req != NULL) {
		/* evdns calls on_resolved later with EAI_CANCEL: free there. */
		d->cancelled = true;
		evdns_getaddrinfo_cancel(d->req);
		return;
	}
	upstream_hs_cancel(d->hs);
	dial_free(d);
}
