/*
 * Plain-HTTP forwarding. The request head is rebuilt for the origin (origin
 * form, Host from the URI's authority, hop-by-hop fields dropped), bodies
 * are moved buffer to buffer (never copied whole, never held whole) as far
 * as the receiving side's output allows, and the response head is rebuilt
 * for the client. Chunked bodies pass through the chunked parser so the
 * proxy always knows where a message ends: keep-alive on both sides, and
 * an idle origin connection goes back to the pool.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <openssl/crypto.h>

#include "builtin/account.h"
#include "builtin/llm.h"
#include "builtin/dial.h"
#include "builtin/hooks.h"
#include "builtin/http_fwd.h"
#include "builtin/mitm.h"
#include "builtin/policy.h"
#include "builtin/secrets.h"
#include "builtin/proxy.h"
#include "builtin/gitguard.h"
#include "builtin/rules.h"
#include "builtin/sandbox.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "upstream/proxy_url.h"
#include "upstream/upstream.h"

struct origin {
	struct server		*srv;
	struct bufferevent	*bev;
	struct conn		*conn;		/* NULL while pooled */
	TAILQ_ENTRY(origin)	 entry;		/* pooled: srv->pool */
	TAILQ_ENTRY(origin)	 rentry;	/* pooled: its route's list */
	struct pool_route	*route;		/* pooled: its route; else
						   NULL */
	uint64_t		 hash;		/* of key */
	char			 key[ADDR_HOST_MAX + 160];	/* route */
	uint64_t		 sandbox;	/* serial, when the route is
						   one sandbox's; or 0 */
	size_t			 scanned;	/* response head search */
	bool			 handshaking;	/* TLS to the origin */
	bool			 timeouts_set;
	bool			 shut;		/* half-closed for the client */
	long long		 idle_since;	/* pooled: when (ms) */
};

/*
 * The pool's index: a hash table of routes, each holding its idle origin
 * connections most recently used first, so taking one is O(1) however
 * many routes and connections sit idle. A route is the pool key (host,
 * port, TLS, upstream: see acquire()). Empty routes are freed by the
 * sweep.
 */
TAILQ_HEAD(route_idle, origin);

struct pool_route {
	struct pool_route	*next;		/* hash chain */
	uint64_t		 hash;
	struct route_idle	 idle;
	char			 key[];
};

struct pool_index {
	struct pool_route	**bucket;
	size_t			 nbucket;	/* a power of two */
	size_t			 nroute;
	size_t			 fd_cap;	/* RLIMIT_NOFILE's share */
};

#define POOL_BUCKETS_MIN	64
#define POOL_SHED		64	/* idle origins closed on EMFILE */

static void	origin_read(struct bufferevent *, void *);
static void	origin_write(struct bufferevent *, void *);
static void	origin_event(struct bufferevent *, short, void *);
static void	pump_request(struct conn *);
static void	pump_collect(struct conn *);
#define COLLECT_COPY_MAX	(1024 * 1024)	/* a gathered body kept for a
						   retry */

static bool	rules_gate(struct conn *, const struct http_request *);
static bool	git_gate(struct conn *, const struct http_request *);
static void	git_refuse(struct conn *, struct gitguard_verdict *);
static void	git_too_big(struct conn *);
static ssize_t	move_chunked(struct evbuffer *, struct evbuffer *,
		    struct http_chunked *, size_t, bool, struct conn *);
static void	emit_up(void *, const void *, size_t);
static void	pump_response(struct conn *);
static void	shut_origin(struct conn *);

/* FNV-1a. */
static uint64_t
route_hash(const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void
index_grow(struct pool_index *x)
{
	size_t			  n = x->nbucket * 2;
	struct pool_route	**b = xcalloc(n, sizeof *b), *r, *next;

	for (size_t i = 0; i < x->nbucket; i++)
		for (r = x->bucket[i]; r != NULL; r = next) {
			next = r->next;
			r->next = b[r->hash & (n - 1)];
			b[r->hash & (n - 1)] = r;
		}
	free(x->bucket);
	x->bucket = b;
	x->nbucket = n;
}

/* The route of key (its hash given); made when create is set. */
static struct pool_route *
route_find(struct pool_index *x, const char *key, uint64_t hash, bool create)
{
	struct pool_route	*r;
	size_t			 len;

	for (r = x->bucket[hash & (x->nbucket - 1)]; r != NULL; r = r->next)
		if (r->hash == hash && strcmp(r->key, key) == 0)
			return r;
	if (!create)
		return NULL;
	len = strlen(key) + 1;
	r = xcalloc(1, sizeof *r + len);
	memcpy(r->key, key, len);
	r->hash = hash;
	TAILQ_INIT(&r->idle);
	if (x->nroute >= x->nbucket)
		index_grow(x);
	r->next = x->bucket[hash & (x->nbucket - 1)];
	x->bucket[hash & (x->nbucket - 1)] = r;
	x->nroute++;
	return r;
}

/* Free the routes left without idle connections. */
static void
index_prune(struct pool_index *x)
{
	struct pool_route **pp, *r;

	for (size_t i = 0; i < x->nbucket; i++)
		for (pp = &x->bucket[i]; (r = *pp) != NULL; ) {
			if (!TAILQ_EMPTY(&r->idle)) {
				pp = &r->next;
				continue;
			}
			*pp = r->next;
			free(r);
			x->nroute--;
		}
}

/* Take o out of the pool (it is in it). */
static void
pool_unlink(struct origin *o)
{
	TAILQ_REMOVE(&o->srv->pool, o, entry);
	TAILQ_REMOVE(&o->route->idle, o, rentry);
	o->route = NULL;
	o->srv->npool--;
}

void
http_fwd_origin_free(struct origin *o)
{
	if (o == NULL)
		return;
	if (o->route != NULL)		/* pooled */
		pool_unlink(o);
	bufferevent_free(o->bev);	/* CLOSE_ON_FREE */
	free(o);
}

void
http_fwd_pool_flush(struct server *srv)
{
	struct origin *o;

	while ((o = TAILQ_FIRST(&srv->pool)) != NULL)
		http_fwd_origin_free(o);
	if (srv->pool_sweep != NULL)
		event_free(srv->pool_sweep);
	srv->pool_sweep = NULL;
	if (srv->pool_index != NULL) {
		index_prune(srv->pool_index);
		free(srv->pool_index->bucket);
		free(srv->pool_index);
		srv->pool_index = NULL;
	}
}

/*
 * How many idle connections may wait: one per live client connection (a
 * keep-alive client holds at most one origin at a time, and gets one back
 * from here for its next request), at least PROXY_POOL_MAX for clients to
 * come, but never more than a share of the descriptor limit.
 */
static unsigned
pool_cap(const struct server *srv)
{
	size_t n = srv->nconns;

	if (n > srv->pool_index->fd_cap)
		n = srv->pool_index->fd_cap;
	return n > PROXY_POOL_MAX ? (unsigned)n : PROXY_POOL_MAX;
}

/*
 * Pooled connections sit most recently used first; a sweep every few
 * seconds closes those idle too long from the tail (so putting one back
 * costs no timer changes), and those over the cap now that fewer clients
 * are connected.
 */
static void
pool_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;
	struct origin	*o;
	long long	 limit = server_now_ms() - PROXY_POOL_IDLE * 1000;
	unsigned	 cap = pool_cap(srv);

	(void)fd;
	(void)what;
	while ((o = TAILQ_LAST(&srv->pool, origin_list)) != NULL &&
	    (o->idle_since < limit || srv->npool > cap))
		http_fwd_origin_free(o);
	index_prune(srv->pool_index);
}

void
http_fwd_pool_init(struct server *srv)
{
	struct timeval	 tv = { 5, 0 };
	struct rlimit	 rl;
	struct pool_index *x = xcalloc(1, sizeof *x);

	x->nbucket = POOL_BUCKETS_MIN;
	x->bucket = xcalloc(x->nbucket, sizeof *x->bucket);
	x->fd_cap = PROXY_POOL_MAX;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		if (rl.rlim_cur == RLIM_INFINITY)
			x->fd_cap = SIZE_MAX;
		else
			x->fd_cap = (size_t)rl.rlim_cur / PROXY_POOL_FD_SHARE;
	}
	srv->pool_index = x;
	srv->pool_sweep = event_new(srv->base, -1, EV_PERSIST, pool_sweep,
	    srv);
	event_add(srv->pool_sweep, &tv);
}

static void
pool_put(struct origin *o)
{
	struct server *srv = o->srv;

	/* Shutting down: no pool. Its sandbox gone: nobody to serve. */
	if (srv->pool_index == NULL || (o->sandbox != 0 && o->conn != NULL &&
	    o->conn->sb != NULL && o->conn->sb->gone)) {
		http_fwd_origin_free(o);
		return;
	}
	while (srv->npool > 0 && srv->npool >= pool_cap(srv))
		http_fwd_origin_free(TAILQ_LAST(&srv->pool, origin_list));
	o->conn = NULL;
	o->scanned = 0;
	o->idle_since = server_now_ms();
	o->route = route_find(srv->pool_index, o->key, o->hash, true);
	TAILQ_INSERT_HEAD(&srv->pool, o, entry);
	TAILQ_INSERT_HEAD(&o->route->idle, o, rentry);
	srv->npool++;
	/* Idle: any byte or EOF closes it (origin_read, origin_event). */
	if (!(bufferevent_get_enabled(o->bev) & EV_READ))
		bufferevent_enable(o->bev, EV_READ);
}

void
http_fwd_pool_forget(struct server *srv, uint64_t sandbox)
{
	struct origin *o, *next;

	for (o = TAILQ_FIRST(&srv->pool); o != NULL; o = next) {
		next = TAILQ_NEXT(o, entry);
		if (o->sandbox == sandbox)
			http_fwd_origin_free(o);
	}
	if (srv->pool_index != NULL)
		index_prune(srv->pool_index);
}

/* The most recently used idle connection of this route, or NULL. */
static struct origin *
pool_get(struct server *srv, const char *key)
{
	struct pool_route	*r;
	struct origin		*o;

	if (srv->npool == 0)
		return NULL;
	r = route_find(srv->pool_index, key, route_hash(key), false);
	if (r == NULL || (o = TAILQ_FIRST(&r->idle)) == NULL)
		return NULL;
	pool_unlink(o);
	return o;
}

/* Out of descriptors: close the least recently used idle connections.
 * How many were closed. */
static unsigned
pool_shed(struct server *srv)
{
	unsigned n = 0;

	while (n < POOL_SHED && !TAILQ_EMPTY(&srv->pool)) {
		http_fwd_origin_free(TAILQ_LAST(&srv->pool, origin_list));
		n++;
	}
	return n;
}

static struct origin *
origin_new(struct conn *c, struct bufferevent *bev)
{
	struct origin *o = xcalloc(1, sizeof *o);

	o->srv = c->srv;
	snprintf(o->key, sizeof o->key, "%s", c->req.pool_key);
	o->hash = route_hash(o->key);
	o->sandbox = c->req.pool_sandbox;
	o->bev = bev;
	bufferevent_setwatermark(o->bev, EV_READ, 0, PROXY_HIGH_WATER);
	bufferevent_setwatermark(o->bev, EV_WRITE, PROXY_HIGH_WATER / 2, 0);
	bufferevent_set_max_single_read(o->bev, 128 * 1024);
	bufferevent_set_max_single_write(o->bev, 128 * 1024);
	return o;
}

/* The request line: origin form, or absolute form for an HTTP upstream
 * (with its credentials). */
static void
request_line(struct conn *c, struct evbuffer *out)
{
	struct request	*r = &c->req;
	size_t		 before = evbuffer_get_length(out);
	char		*auth;

	evbuffer_add(out, r->method, strlen(r->method));
	evbuffer_add(out, " ", 1);
	if (r->absolute) {
		/* A pinned name goes to the upstream as its pinned address
		 * (the Host header keeps the name): pins decide what we
		 * send, as for CONNECT. */
		struct sockaddr_storage	pin;
		char			a[64];

		if (policy_pinned(c->sb->policy, &r->dest, &pin, 1) == 1) {
			addr_ntop((struct sockaddr *)&pin, a, sizeof a);
			evbuffer_add_printf(out, pin.ss_family == AF_INET6 ?
			    "http://[%s]:%u" : "http://%s:%u", a, r->dest.port);
		} else
			evbuffer_add_printf(out, r->dest.kind == ADDR_IPV6 ?
			    "http://[%s]:%u" : "http://%s:%u", r->dest.host,
			    r->dest.port);
	}
	evbuffer_add(out, r->target, strlen(r->target));
	evbuffer_add(out, " HTTP/1.1\r\n", 11);
	if (r->absolute) {
		auth = upstream_auth_header(r->via);
		evbuffer_add(out, auth, strlen(auth));
		freezero_str(auth);
	}
	r->bytes_up += evbuffer_get_length(out) - before;
}

/* Give the request to an origin connection and start moving bytes. */
static void
attach(struct conn *c, struct origin *o)
{
	struct timeval	 rt = { PROXY_RESPONSE_TIMEOUT, 0 };
	struct evbuffer	*out = bufferevent_get_output(o->bev);

	o->conn = c;
	o->scanned = 0;
	c->origin = o;
	c->state = CONN_HTTP;
	bufferevent_setcb(o->bev, origin_read, origin_write, origin_event, o);
	if (!o->timeouts_set) {		/* once per origin connection */
		bufferevent_set_timeouts(o->bev, &rt, NULL);
		o->timeouts_set = true;
	}
	/* A copy: the head is sent again if a pooled origin turns out to
	 * have closed just now. Heads are small. */
	/* Line and head in one piece: one TLS record, one write. */
	{
		struct evbuffer *whole = evbuffer_new();

		request_line(c, whole);
		c->req.bytes_up += evbuffer_get_length(c->req.out_head);
		evbuffer_add(whole, evbuffer_pullup(c->req.out_head, -1),
		    evbuffer_get_length(c->req.out_head));
		size_t n = c->req.collect != NULL ?
		    evbuffer_get_length(c->req.collect) : 0;
		bool big = n > COLLECT_COPY_MAX;

		if (c->req.collect != NULL) {
			/* Copied, not moved: a retry sends it again -- but a
			 * big one (a git push) is moved, and not retried. */
			evbuffer_add_printf(whole, "Content-Length: %zu\r\n"
			    "\r\n", n);
			if (!big)
				evbuffer_add(whole, evbuffer_pullup(
				    c->req.collect, -1), n);
			c->req.bytes_up += n;
		} else
			evbuffer_add(whole, "\r\n", 2);
		evbuffer_add(out, evbuffer_pullup(whole, -1),
		    evbuffer_get_length(whole));
		/* It may hold an injected secret. */
		OPENSSL_cleanse(evbuffer_pullup(whole, -1),
		    evbuffer_get_length(whole));
		evbuffer_free(whole);
		if (big) {
			evbuffer_add_buffer(out, c->req.collect);
			c->req.retried = true;
		}
	}
	c->req.secret = c->req.secret_pending;
	if ((bufferevent_get_enabled(o->bev) & (EV_READ | EV_WRITE)) !=
	    (EV_READ | EV_WRITE))
		bufferevent_enable(o->bev, EV_READ | EV_WRITE);
	if (!c->client_eof && !(bufferevent_get_enabled(c->client) & EV_READ))
		bufferevent_enable(c->client, EV_READ);
	pump_request(c);
	if (c->state == CONN_HTTP)
		shut_origin(c);
	if (c->state == CONN_HTTP)
		pump_response(c);
}

static void
dialed(int fd, const struct dial_result *res, void *arg)
{
	struct conn	*c = arg;
	struct origin	*o;

	c->dial = NULL;
	if (fd == -1 && (res->err == EMFILE || res->err == ENFILE) &&
	    !c->req.shed && pool_shed(c->srv) > 0) {
		/* Our idle connections held the descriptors: once more. */
		c->req.shed = true;
		c->dial = dial_start(c->srv, c->sb->policy, &c->req.dest,
		    c->req.origin_tls ? DIAL_STREAM : DIAL_HTTP, dialed, c);
		return;
	}
	if (fd == -1) {
		conn_error(c, res->status, res->reason, res->rule);
		return;
	}
	if (c->req.origin_tls) {
		/* TLS to the origin first; attach() once it is up. */
		struct bufferevent *bev = mitm_origin(c->srv, fd, &c->req.dest);
		if (bev == NULL) {
			close(fd);
			conn_error(c, 502, "cannot set up TLS to the origin",
			    NULL);
			return;
		}
		struct timeval hs = { PROXY_CONNECT_TIMEOUT, 0 };
		o = origin_new(c, bev);
		o->conn = c;
		o->handshaking = true;
		bufferevent_set_timeouts(bev, &hs, &hs);
		c->origin = o;
		bufferevent_setcb(bev, origin_read, origin_write,
		    origin_event, o);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	o = origin_new(c, bufferevent_socket_new(c->srv->base, fd,
	    BEV_OPT_CLOSE_ON_FREE));
	/* Bytes the origin sent during an upstream handshake come first. */
	evbuffer_add(bufferevent_get_input(o->bev), res->leftover,
	    res->leftover_len);
	attach(c, o);
}

/*
 * An origin: a pooled one for the same route, else a new dial. Direct and
 * SOCKS-chained connections belong to one host and port; a connection to
 * an HTTP upstream carries requests for any host.
 */
static void
acquire(struct conn *c)
{
	struct request	*r = &c->req;
	struct origin	*o;

	if (!r->retried)
		hooks_request(c);	/* the "request" hooks: it goes now */
	r->via = upstream_route(c->srv->upstream, !r->origin_tls, &r->dest);
	r->absolute = !r->origin_tls && r->via != NULL &&
	    r->via->scheme == PROXY_SCHEME_HTTP;
	if (r->origin_tls)
		snprintf(r->pool_key, sizeof r->pool_key, "tls %s:%u%s%s",
		    r->dest.host, r->dest.port, r->via ? " via " : "",
		    r->via ? r->via->display : "");
	else if (r->absolute)
		snprintf(r->pool_key, sizeof r->pool_key, "proxy %s",
		    r->via->display);
	else if (r->via != NULL)
		snprintf(r->pool_key, sizeof r->pool_key, "%s:%u via %s",
		    r->dest.host, r->dest.port, r->via->display);
	else {
		/* The common case, without printf: "host:port". */
		size_t	hl = strlen(r->dest.host);
		char	*k = r->pool_key, num[6];
		int	 nl = 0;

		memcpy(k, r->dest.host, hl);
		k[hl] = ':';
		for (unsigned p = r->dest.port; p > 0; p /= 10)
			num[nl++] = (char)('0' + p % 10);
		while (nl > 0)
			k[++hl] = num[--nl];
		k[hl + 1] = '\0';
	}
	/*
	 * With many sandboxes, an origin connection serves the sandbox that
	 * dialled it only: another's pins and address guard could have
	 * sent the same name elsewhere. (A plain-HTTP upstream resolves
	 * every name itself: its connections serve everyone.)
	 */
	r->pool_sandbox = 0;
	if (c->srv->multi && !r->absolute && c->sb != NULL) {
		size_t kl = strlen(r->pool_key);

		r->pool_sandbox = c->sb->serial;
		snprintf(r->pool_key + kl, sizeof r->pool_key - kl, " #%llu",
		    (unsigned long long)c->sb->serial);
	}
	/* A big gathered body cannot be sent twice: a fresh connection. */
	if (!r->retried && (r->collect == NULL ||
	    evbuffer_get_length(r->collect) <= COLLECT_COPY_MAX) &&
	    (o = pool_get(c->srv, r->pool_key)) != NULL) {
		r->reused = true;
		attach(c, o);
		return;
	}
	r->reused = false;
	c->state = CONN_DIAL;
	/* The client is read meanwhile only up to the high watermark
	 * (client_read), so a reset is noticed and a body cannot pile up. */
	if (evbuffer_get_length(bufferevent_get_input(c->client)) >=
	    PROXY_HIGH_WATER)
		bufferevent_disable(c->client, EV_READ);
	c->dial = dial_start(c->srv, c->sb->policy, &r->dest, r->origin_tls ?
	    DIAL_STREAM : DIAL_HTTP, dialed, c);
}

/* Append one header line. */
static void
add_header(struct evbuffer *b, const struct http_header *h)
{
	evbuffer_add(b, h->name.p, h->name.len);
	evbuffer_add(b, ": ", 2);
	evbuffer_add(b, h->value.p, h->value.len);
	evbuffer_add(b, "\r\n", 2);
}

#define MAX_BOUND	16	/* bindings applied to one request */

/* Is h a header our injection replaces? */
static bool
injected(const struct secrets *s, const size_t *idx, size_t n,
    const struct http_header *h)
{
	for (size_t i = 0; i < n; i++)
		if (http_slice_eq(h->name, secrets_header_name(s, idx[i])))
			return true;
	return false;
}

/*
 * Names that CGI-style origins read as framing or routing fields
 * (Content_Length is Content-Length to them): never forwarded, so no
 * second opinion on where a message ends can reach the origin.
 */
static bool
underscore_alias(const struct http_header *h)
{
	static const char *names[] = { "content-length", "transfer-encoding",
	    "host", "connection" };
	char	n[32];

	if (memchr(h->name.p, '_', h->name.len) == NULL ||
	    h->name.len >= sizeof n)
		return false;
	for (size_t i = 0; i < h->name.len; i++)
		n[i] = h->name.p[i] == '_' ? '-' : (char)(h->name.p[i] |
		    ((h->name.p[i] >= 'A' && h->name.p[i] <= 'Z') ? 0x20 : 0));
	n[h->name.len] = '\0';
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(n, names[i]) == 0)
			return true;
	return false;
}

void
http_fwd_start(struct conn *c, const struct http_request *req, size_t headlen)
{
	struct request		*r = &c->req;
	const struct secrets	*sec = c->sb->secrets;
	struct evbuffer		*h;
	bool			 bound, rechunk = false;
	bool			 skip[HTTP_MAX_HEADERS];
	char			*nv;
	size_t			 nvlen, i, idx[MAX_BOUND], nidx = 0;
	bool			 collect;

	/* The target is written when the route is known (attach()); a
	 * gateway set its own. */
	if (r->target == NULL)
		r->target = xstrndup(req->path.p, req->path.len);
	/* What the agent may do where it goes. */
	if (git_gate(c, req) || rules_gate(c, req))
		return;
	h = evbuffer_new();
	/* An LLM call is accounted; its body is read first when small. */
	account_request(c, req);
	collect = r->rules_body || r->git_push || account_collect(c, req);

	/* A host with secret bindings: its header set, placeholders in
	 * headers and body replaced by values. */
	for (i = sec ? secrets_next(sec, &r->dest, 0) : 0; sec != NULL &&
	    i < secrets_count(sec) && nidx < MAX_BOUND;
	    i = secrets_next(sec, &r->dest, i + 1))
		idx[nidx++] = i;
	bound = nidx > 0;
	if (bound && req->body != HTTP_BODY_NONE && !collect &&
	    !(req->body == HTTP_BODY_LENGTH && req->content_length == 0)) {
		r->subst = secrets_subst_new(sec, &r->dest);
		/* A chunked body is decoded and re-chunked; one whose length
		 * changes is sent chunked. */
		r->out_chunked = req->body == HTTP_BODY_CHUNKED ||
		    !secrets_subst_preserving(r->subst);
		rechunk = r->out_chunked && req->body == HTTP_BODY_LENGTH;
		r->xbuf = evbuffer_new();
	}

	/* The URI's authority becomes the Host. */
	evbuffer_add(h, "Host: ", 6);
	if (r->dest.kind == ADDR_IPV6)
		evbuffer_add_printf(h, "[%s]", r->dest.host);
	else
		evbuffer_add(h, r->dest.host, strlen(r->dest.host));
	if (r->dest.port != (r->origin_tls ? 443 : 80)) {
		char	num[8];
		int	n = snprintf(num, sizeof num, ":%u", r->dest.port);
		evbuffer_add(h, num, (size_t)n);
	}
	evbuffer_add(h, "\r\n", 2);
	http_hop_by_hop_mark(req->headers, req->nheaders, skip);
	for (i = 0; i < req->nheaders; i++) {
		const struct http_header *hd = &req->headers[i];
		if (skip[i] || http_slice_eq(hd->name, "host") ||
		    underscore_alias(hd) || account_drops_header(c,
		    hd->name.p, hd->name.len) || ((rechunk || collect) &&
		    http_slice_eq(hd->name, "content-length")) || (collect &&
		    http_slice_eq(hd->name, "expect")))
			continue;
		if (bound) {
			if (injected(sec, idx, nidx, hd))
				continue;
			if (secrets_replace(sec, &r->dest, hd->value.p,
			    hd->value.len, &nv, &nvlen) > 0) {
				evbuffer_add(h, hd->name.p, hd->name.len);
				evbuffer_add(h, ": ", 2);
				evbuffer_add(h, nv, nvlen);
				evbuffer_add(h, "\r\n", 2);
				freezero(nv, nvlen);
				continue;
			}
		}
		add_header(h, hd);
	}
	for (i = 0; i < nidx; i++) {
		char *line = secrets_header_line(sec, idx[i], &nvlen);
		evbuffer_add(h, line, nvlen);
		freezero(line, nvlen);
		if (r->secret_pending == NULL)
			r->secret_pending = secrets_name(sec, idx[i]);
	}
	if (bound && !r->origin_tls)
		r->note = "a secret was sent in clear (plain HTTP)";
	if (r->llm != NULL)
		evbuffer_add(h, LLM_ACCEPT_ENCODING,
		    sizeof LLM_ACCEPT_ENCODING - 1);
	if (!collect && (req->body == HTTP_BODY_CHUNKED || rechunk))
		evbuffer_add(h, "Transfer-Encoding: chunked\r\n", 28);
	/* The blank line follows in attach(), after a Content-Length of
	 * our own for a gathered body. */

	r->out_head = h;
	r->req_body = req->body;
	r->req_left = req->content_length;
	http_chunked_init(&r->req_chunked);
	r->req_done = req->body == HTTP_BODY_NONE ||
	    (req->body == HTTP_BODY_LENGTH && req->content_length == 0);
	if (r->req_done && r->out_chunked)
		r->req_done = false;	/* the last chunk is still to go */
	evbuffer_drain(bufferevent_get_input(c->client), headlen);
	if (collect) {
		/* Gather it (bounded: LLM_REQUEST_BODY_MAX, RULES_BODY_MAX)
		 * first; a chunked one is decoded. */
		r->collect = evbuffer_new();
		r->collect_chunked = req->body == HTTP_BODY_CHUNKED;
		/* A push is passed on as pushed: a placeholder committed
		 * must not become the secret in a repository. */
		r->subst_whole = bound && !r->git_push;
		c->state = CONN_BODY;
		/* The origin sees the request only once the body is here:
		 * the go-ahead is ours to give. */
		if (req->expect_continue && req->minor >= 1)
			evbuffer_add(bufferevent_get_output(c->client),
			    "HTTP/1.1 100 Continue\r\n\r\n", 25);
		conn_set_timeout(c, PROXY_HEAD_TIMEOUT);
		pump_collect(c);
		return;
	}
	if (account_admit(c))
		return;
	acquire(c);
}

/* The gathered body is complete: read it, secrets in, then send. */
static void
collected(struct conn *c)
{
	struct request	*r = &c->req;
	struct evbuffer	*whole;

	conn_set_timeout(c, 0);
	if (r->rules_body) {
		struct rule_verdict	v;
		size_t			n = evbuffer_get_length(r->collect);
		int			rr;

		rr = rules_eval_body(c->sb->rules, r->method, strlen(r->method),
		    &r->dest, r->target, strlen(r->target), (const char *)
		    evbuffer_pullup(r->collect, -1), n, &v);
		if (rr < 0 || v.action == RULES_DENY) {
			conn_deny_json(c, v.reason, v.rule);
			return;
		}
		if (v.rule != NULL)
			r->rule = v.rule;
	}
	if (r->git_push) {
		struct gitguard_verdict gv;

		(void)gitguard_push(c->sb->git, &r->dest, r->target,
		    strlen(r->target), evbuffer_pullup(r->collect, -1),
		    evbuffer_get_length(r->collect), 0, &gv);
		if (gv.action == GITGUARD_REFUSE) {
			git_refuse(c, &gv);
			return;
		}
		gitguard_verdict_clear(&gv);
	}
	account_body(c, r->collect);
	if (r->subst_whole) {
		struct subst *sb = secrets_subst_new(c->sb->secrets, &r->dest);

		r->xbuf = evbuffer_new();
		secrets_subst_feed(sb, evbuffer_pullup(r->collect, -1),
		    evbuffer_get_length(r->collect), emit_up, c);
		secrets_subst_finish(sb, emit_up, c);
		secrets_subst_free(sb);
		whole = r->collect;
		r->collect = r->xbuf;
		r->xbuf = NULL;
		evbuffer_free(whole);
	}
	r->req_done = true;
	if (account_admit(c))
		return;
	acquire(c);
}

/* Gathering: client input into r->collect, up to the Content-Length or
 * the last chunk (decoded), within the bound. */
static void
pump_collect(struct conn *c)
{
	struct request	*r = &c->req;
	struct evbuffer	*in = bufferevent_get_input(c->client);
	size_t		 n = evbuffer_get_length(in);
	ssize_t		 m;

	if (n > 0)	/* the timeout is for a stall, not the whole body */
		conn_set_timeout(c, PROXY_HEAD_TIMEOUT);
	if (!r->collect_chunked) {
		if (n > r->req_left)
			n = (size_t)r->req_left;
		evbuffer_remove_buffer(in, r->collect, n);
		r->req_left -= n;
		if (r->git_push && r->req_left + evbuffer_get_length(
		    r->collect) > GITGUARD_BODY_MAX) {
			git_too_big(c);
			return;
		}
		if (r->req_left == 0)
			collected(c);
		return;
	}
	m = move_chunked(in, r->collect, &r->req_chunked, n, true, NULL);
	if (m < 0) {
		conn_close(c, "bad chunked framing in the request body");
		return;
	}
	if (r->git_push && evbuffer_get_length(r->collect) >
	    GITGUARD_BODY_MAX) {
		struct gitguard_verdict gv;

		(void)gitguard_push(c->sb->git, &r->dest, r->target,
		    strlen(r->target), evbuffer_pullup(r->collect,
		    GITGUARD_BODY_MAX), GITGUARD_BODY_MAX, GITGUARD_TRUNCATED,
		    &gv);
		git_refuse(c, &gv);
		return;
	}
	if (!r->git_push && r->rules_body && evbuffer_get_length(r->collect)
	    > RULES_BODY_MAX) {
		struct rule_verdict v;

		/* Name the rule that wanted the body (a NULL body is over
		 * the bound): not "default". */
		(void)rules_eval_body(c->sb->rules, r->method,
		    strlen(r->method), &r->dest, r->target, strlen(r->target),
		    NULL, 0, &v);
		conn_deny_json(c, "the request body is over 256 KiB, more than "
		    "a request rule can judge", v.rule);
		return;
	}
	if (!r->git_push && !r->rules_body && evbuffer_get_length(r->collect)
	    > LLM_REQUEST_BODY_MAX) {
		conn_error(c, 413, "a chunked LLM request body over 1 MiB "
		    "cannot be accounted: send it with a Content-Length", NULL);
		return;
	}
	if (http_chunked_done(&r->req_chunked))
		collected(c);
}

/*
 * A push whose Content-Length is over the bound: only its commands are
 * read (up to GITGUARD_HEAD_MAX), so that each can be refused in git's
 * status report; the rest is never gathered.
 */
static void
git_too_big(struct conn *c)
{
	struct request		*r = &c->req;
	struct gitguard_verdict	 gv;
	size_t			 n = evbuffer_get_length(r->collect);
	const uint8_t		*p = evbuffer_pullup(r->collect, -1);

	if (gitguard_push_head(p, n) == 0 && n < GITGUARD_HEAD_MAX)
		return;		/* the commands are still coming */
	(void)gitguard_push(c->sb->git, &r->dest, r->target,
	    strlen(r->target), p, n, GITGUARD_TRUNCATED, &gv);
	git_refuse(c, &gv);
}

/* Headers that would let a client say one method and mean another. */
static bool
method_override(const struct http_request *req)
{
	static const char *names[] = { "x-http-method-override",
	    "x-http-method", "x-method-override" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (http_header_find(req->headers, req->nheaders, names[i]) !=
		    NULL)
			return true;
	return false;
}

/*
 * The git push guard, for the repositories' host names (any port): fetches
 * of repositories not allowed, WebDAV, and pushes refused here; a push to
 * judge is gathered first (r->git_push). Returns true when the request was
 * refused.
 */
static bool
git_gate(struct conn *c, const struct http_request *req)
{
	struct request			*r = &c->req;
	const struct gitguard		*g = c->sb->git;
	const struct http_header	*ce;
	struct gitguard_verdict		 v;

	if (g == NULL || !gitguard_names_name(g, &r->dest))
		return false;
	(void)gitguard_request(g, r->method, strlen(r->method), &r->dest,
	    r->target, strlen(r->target), &v);
	if (v.action == GITGUARD_REFUSE) {
		git_refuse(c, &v);
		return true;
	}
	if (v.action != GITGUARD_NEED_BODY)
		return false;
	/* git never compresses a push; a body we cannot read is refused.
	 * One too big to hold is refused once its commands are read
	 * (git_too_big()). */
	ce = http_header_find(req->headers, req->nheaders, "content-encoding");
	if (ce != NULL && !http_slice_eq(ce->value, "identity")) {
		(void)gitguard_push(g, &r->dest, r->target, strlen(r->target),
		    (const uint8_t *)"", 0, GITGUARD_ENCODED, &v);
		git_refuse(c, &v);
		return true;
	}
	r->git_push = true;
	return false;
}

/* The guard's answer, in git's terms (a status report, or text git shows
 * as "remote: ..."), and a deny event. */
static void
git_refuse(struct conn *c, struct gitguard_verdict *v)
{
	char	 safe[256], *headers;
	size_t	 i;

	for (i = 0; v->reason[i] != '\0' && i < sizeof safe - 1; i++)
		safe[i] = (unsigned char)v->reason[i] < 0x20 ? ' ' :
		    v->reason[i];
	safe[i] = '\0';
	c->req.status = v->status;
	c->req.rule = v->rule;
	c->srv->stats.denied++;
	c->sb->n->denials++;
	conn_audit(c, "deny", "deny", safe);
	headers = xprintf("Content-Type: %s\r\nCache-Control: no-cache\r\n"
	    "X-Egress-Run-Reason: %s\r\n", v->content_type, safe);
	conn_reply(c, v->status, headers, v->body, v->bodylen);
	free(headers);
	gitguard_verdict_clear(v);
}

/*
 * Request rules (first match wins; none: host policy decided). Returns
 * true when the request was refused. A rule that judges the body marks it
 * to be gathered first (r->rules_body).
 */
static bool
rules_gate(struct conn *c, const struct http_request *req)
{
	struct request			*r = &c->req;
	const struct http_header	*ce;
	struct rule_verdict		 v;
	int				 rr;

	if (c->sb->rules == NULL || !rules_names_host(c->sb->rules,
	    &r->dest))
		return false;
	if (method_override(req)) {
		conn_deny_json(c, "method-override headers are not allowed "
		    "where request rules apply", NULL);
		return true;
	}
	rr = rules_eval(c->sb->rules, r->method, strlen(r->method), &r->dest,
	    r->target, strlen(r->target), &v);
	if (rr < 0 || v.action == RULES_DENY) {
		conn_deny_json(c, v.reason, v.rule);
		return true;
	}
	if (v.action == RULES_ALLOW)
		r->rule = v.rule;
	if (v.action != RULES_NEED_BODY)
		return false;
	ce = http_header_find(req->headers, req->nheaders, "content-encoding");
	if (ce != NULL && !http_slice_eq(ce->value, "identity")) {
		conn_deny_json(c, "an encoded request body cannot be judged by "
		    "a request rule", v.rule);
		return true;
	}
	if (req->body == HTTP_BODY_LENGTH &&
	    req->content_length > RULES_BODY_MAX) {
		conn_deny_json(c, "the request body is over 256 KiB, more than "
		    "a request rule can judge", v.rule);
		return true;
	}
	if (req->body == HTTP_BODY_NONE ||
	    (req->body == HTTP_BODY_LENGTH && req->content_length == 0)) {
		rr = rules_eval_body(c->sb->rules, r->method,
		    strlen(r->method), &r->dest, r->target, strlen(r->target),
		    "", 0, &v);
		if (rr < 0 || v.action == RULES_DENY) {
			conn_deny_json(c, v.reason, v.rule);
			return true;
		}
		return false;
	}
	r->rules_body = true;
	return false;
}

/* Substituted body bytes, gathered for one write (and one chunk). */
static void
emit_up(void *arg, const void *p, size_t n)
{
	struct conn *c = arg;

	evbuffer_add(c->req.xbuf, p, n);
}

/* What a feed produced goes to the origin, framed as it must be. */
static void
flush_up(struct conn *c, struct evbuffer *out, bool last)
{
	struct request	*r = &c->req;
	size_t		 n = evbuffer_get_length(r->xbuf);

	if (n > 0) {
		r->bytes_up += n;
		if (r->out_chunked) {
			/* Framing and data as one piece (one TLS record). */
			char	size[24];
			int	k = snprintf(size, sizeof size, "%zx\r\n", n);
			evbuffer_prepend(r->xbuf, size, (size_t)k);
			evbuffer_add(r->xbuf, "\r\n", 2);
		}
	}
	if (last && r->out_chunked)
		evbuffer_add(r->xbuf, "0\r\n\r\n", 5);
	evbuffer_add_buffer(out, r->xbuf);
}

/* Feed n bytes of src through the substitution, then drop them. */
static void
feed(struct conn *c, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec	v[16];
	struct evbuffer_ptr	p;
	size_t			done = 0;
	int			k;

	while (done < n) {
		evbuffer_ptr_set(src, &p, done, EVBUFFER_PTR_SET);
		k = evbuffer_peek(src, (ev_ssize_t)(n - done), &p, v, 16);
		if (k <= 0)
			break;
		for (int j = 0; j < k && j < 16 && done < n; j++) {
			size_t len = v[j].iov_len;
			if (len > n - done)
				len = n - done;
			secrets_subst_feed(c->req.subst, v[j].iov_base, len,
			    emit_up, c);
			done += len;
		}
	}
	evbuffer_drain(src, n);
}

/*
 * Walk chunked framing over the first bytes of src; return how many bytes
 * form complete runs, and (when data_only) move only chunk data to dst,
 * dropping the framing. Returns -1 on bad framing.
 */
static ssize_t
move_chunked(struct evbuffer *src, struct evbuffer *dst,
    struct http_chunked *st, size_t limit, bool data_only, struct conn *tee)
{
	struct evbuffer_iovec	 v[8];
	size_t			 total = 0;
	int			 n;

	while (total < limit && !http_chunked_done(st)) {
		struct evbuffer_ptr	p;
		size_t			off = total;

		/* Peek at what follows the bytes already judged. */
		if (data_only)
			off = 0;	/* judged bytes were removed */
		if (evbuffer_ptr_set(src, &p, off, EVBUFFER_PTR_SET) != 0)
			break;
		n = evbuffer_peek(src, -1, &p, v, 8);
		if (n <= 0)
			break;
		size_t len = v[0].iov_len;
		if (len == 0)
			break;
		if (len > limit - total)
			len = limit - total;
		bool	is_data;
		ssize_t	r = http_chunked_step(st, v[0].iov_base, len,
		    &is_data);
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		if (is_data && tee != NULL)	/* accounting reads along */
			account_tee(tee, v[0].iov_base, (size_t)r);
		if (data_only) {
			if (is_data)
				evbuffer_remove_buffer(src, dst, (size_t)r);
			else
				evbuffer_drain(src, (size_t)r);
		}
		total += (size_t)r;
	}
	if (!data_only && total > 0)
		evbuffer_remove_buffer(src, dst, total);
	return (ssize_t)total;
}

/* A request body to a bound host: decoded, substituted, re-framed. */
static void
pump_request_subst(struct conn *c, struct evbuffer *in, struct evbuffer *out)
{
	struct request	*r = &c->req;
	size_t		 avail, room, n;

	while (!r->req_done && (avail = evbuffer_get_length(in)) > 0) {
		size_t queued = evbuffer_get_length(out);
		if (queued >= PROXY_HIGH_WATER)
			return;
		room = PROXY_HIGH_WATER - queued;
		if (r->req_body == HTTP_BODY_LENGTH) {
			n = avail < room ? avail : room;
			if (n > r->req_left)
				n = (size_t)r->req_left;
			feed(c, in, n);
			r->req_left -= n;
		} else {
			/* One run at a time: framing is dropped, data fed. */
			struct evbuffer_iovec	v;
			bool			is_data;
			ssize_t			m;

			if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
				break;
			m = http_chunked_step(&r->req_chunked, v.iov_base,
			    v.iov_len < room ? v.iov_len : room, &is_data);
			if (m < 0) {
				conn_close(c, "bad chunked framing in the "
				    "request body");
				return;
			}
			if (m == 0)
				break;
			if (is_data)
				feed(c, in, (size_t)m);
			else
				evbuffer_drain(in, (size_t)m);
		}
		if ((r->req_body == HTTP_BODY_LENGTH && r->req_left == 0) ||
		    (r->req_body == HTTP_BODY_CHUNKED &&
		    http_chunked_done(&r->req_chunked))) {
			secrets_subst_finish(r->subst, emit_up, c);
			r->req_done = true;
		}
		flush_up(c, out, r->req_done);
	}
	if (!r->req_done && r->req_body == HTTP_BODY_LENGTH &&
	    r->req_left == 0) {		/* an empty body, re-chunked */
		r->req_done = true;
		flush_up(c, out, true);
	}
}

/* Client -> origin: the request body, as far as the origin takes it. */
static void
pump_request(struct conn *c)
{
	struct request	*r = &c->req;
	struct evbuffer	*in, *out;
	size_t		 room, avail, n;
	ssize_t		 m;

	if (r->req_done || c->origin == NULL)
		return;
	in = bufferevent_get_input(c->client);
	out = bufferevent_get_output(c->origin->bev);
	if (evbuffer_get_length(out) < PROXY_HIGH_WATER && !c->client_eof &&
	    !(bufferevent_get_enabled(c->client) & EV_READ))
		bufferevent_enable(c->client, EV_READ);
	if (r->subst != NULL) {
		pump_request_subst(c, in, out);
		if (c->state == CONN_HTTP && !r->req_done && c->client_eof &&
		    evbuffer_get_length(in) == 0)
			conn_close(c, "client closed mid-request");
		return;
	}
	while (!r->req_done && (avail = evbuffer_get_length(in)) > 0) {
		size_t queued = evbuffer_get_length(out);
		if (queued >= PROXY_HIGH_WATER) {
			/* Stop reading (not just the watermark: libevent
			 * 2.1.12 re-runs the read callback while the input
			 * stays full); origin_write resumes. */
			bufferevent_disable(c->client, EV_READ);
			return;
		}
		room = PROXY_HIGH_WATER - queued;
		if (r->req_body == HTTP_BODY_LENGTH) {
			n = avail < room ? avail : room;
			if (n > r->req_left)
				n = (size_t)r->req_left;
			evbuffer_remove_buffer(in, out, n);
			r->req_left -= n;
			r->bytes_up += n;
			if (r->req_left == 0)
				r->req_done = true;
		} else {
			m = move_chunked(in, out, &r->req_chunked,
			    avail < room ? avail : room, false, NULL);
			if (m < 0) {
				conn_close(c, "bad chunked framing in the "
				    "request body");
				return;
			}
			if (m == 0)
				break;
			r->bytes_up += (uint64_t)m;
			if (http_chunked_done(&r->req_chunked))
				r->req_done = true;
		}
	}
	if (!r->req_done && c->client_eof)
		/* The client half-closed before its body was whole: what is
		 * left can never be completed. */
		conn_close(c, "client closed mid-request");
}

/* Head building: pieces gathered in one buffer, added to the client's
 * output at once (every evbuffer_add there runs its callbacks). */
struct scratch {
	char	buf[HTTP_HEAD_MAX + 512];
	size_t	len;
};

static void
put(struct scratch *sc, const void *p, size_t n)
{
	if (n > sizeof sc->buf - sc->len)
		n = sizeof sc->buf - sc->len;	/* cannot happen: heads are
						   bounded by the parser */
	memcpy(sc->buf + sc->len, p, n);
	sc->len += n;
}

#define PUTS(sc, lit)	put((sc), (lit), sizeof(lit) - 1)

/* Build the client's response head from the origin's. */
static void
write_response_head(struct conn *c, const struct http_response *resp)
{
	static struct scratch	 sc;
	struct request		*r = &c->req;
	char			 line[16] = "HTTP/1.1 000 ";
	bool			 skip[HTTP_MAX_HEADERS];

	/* The status line without printf: this runs for every response. */
	line[7] = (char)('0' + (r->client_minor == 0 ? 0 : 1));
	line[9] = (char)('0' + resp->status / 100 % 10);
	line[10] = (char)('0' + resp->status / 10 % 10);
	line[11] = (char)('0' + resp->status % 10);
	sc.len = 0;
	put(&sc, line, 13);
	put(&sc, resp->reason.p, resp->reason.len);
	PUTS(&sc, "\r\n");
	http_hop_by_hop_mark(resp->headers, resp->nheaders, skip);
	for (size_t i = 0; i < resp->nheaders; i++) {
		const struct http_header *h = &resp->headers[i];
		if (skip[i] || (r->reframe && resp->status >= 200 &&
		    http_slice_eq(h->name, "content-length")))
			continue;
		put(&sc, h->name.p, h->name.len);
		PUTS(&sc, ": ");
		put(&sc, h->value.p, h->value.len);
		PUTS(&sc, "\r\n");
	}
	if (resp->status >= 200) {
		if ((resp->body == HTTP_BODY_CHUNKED && !r->resp_dechunk) ||
		    (r->reframe && r->client_minor >= 1))
			PUTS(&sc, "Transfer-Encoding: chunked\r\n");
		if (!r->client_keepalive)
			PUTS(&sc, "Connection: close\r\n");
		else if (r->client_minor == 0)
			PUTS(&sc, "Connection: keep-alive\r\n");
	}
	PUTS(&sc, "\r\n");
	evbuffer_add(bufferevent_get_output(c->client), sc.buf, sc.len);
	r->bytes_down += sc.len;
}

/* A complete response head is at the start of the origin's input? */
static int
parse_response_head(struct conn *c)
{
	struct request		*r = &c->req;
	struct origin		*o = c->origin;
	struct evbuffer		*in = bufferevent_get_input(o->bev);
	struct evbuffer_ptr	 p;
	struct http_response	 resp;
	size_t			 len = evbuffer_get_length(in), headlen;
	int			 n;

	if (len == 0)
		return 0;
	evbuffer_ptr_set(in, &p, o->scanned > 3 ? o->scanned - 3 : 0,
	    EVBUFFER_PTR_SET);
	p = evbuffer_search(in, "\r\n\r\n", 4, &p);
	if (p.pos == -1) {
		o->scanned = len;
		if (len > HTTP_HEAD_MAX) {
			conn_error(c, 502, "the origin's response head is too "
			    "large", NULL);
			return -1;
		}
		return 0;
	}
	headlen = (size_t)p.pos + 4;
	n = http_parse_response(evbuffer_pullup(in, (ssize_t)headlen), headlen,
	    r->head, false, &resp);
	o->scanned = 0;
	if (n < 0) {
		char why[160];
		snprintf(why, sizeof why, "bad response from the origin: %s",
		    http_parse_strerror(n));
		conn_error(c, 502, why, NULL);
		return -1;
	}
	if (resp.status == 101) {
		conn_error(c, 502, "the origin switched protocols unasked",
		    NULL);
		return -1;
	}
	if (resp.status == 407 && r->absolute) {
		/* The corporate proxy refused our credentials: the client
		 * must not think egress-run wants a password. */
		static bool	warned;
		char		why[256];

		if (!warned)
			log_warn("upstream proxy %s asks for authentication "
			    "(407): check the user and password in its URL",
			    r->via->display);
		warned = true;
		snprintf(why, sizeof why, "upstream proxy %s: authentication "
		    "failed (407 Proxy Authentication Required)",
		    r->via->display);
		conn_error(c, 502, why, NULL);
		return -1;
	}
	if (resp.status < 200) {
		/* Interim (100 Continue &c): HTTP/1.0 clients never see it. */
		if (r->client_minor >= 1)
			write_response_head(c, &resp);
		evbuffer_drain(in, (size_t)n);
		return 1;
	}
	r->status = resp.status;
	r->resp_body = resp.body;
	r->resp_left = resp.content_length;
	r->resp_keepalive = resp.keep_alive;
	http_chunked_init(&r->resp_chunked);
	if (resp.body == HTTP_BODY_CHUNKED && r->client_minor == 0)
		r->resp_dechunk = true;
	account_response(c, &resp);
	if (account_filtering(c)) {
		/* A chunk will be taken out: the body is decoded and sent
		 * re-chunked (1.1) or until the close (1.0). */
		r->reframe = true;
		r->resp_dechunk = true;
		r->fbuf = evbuffer_new();
		r->fout = evbuffer_new();
		if (r->client_minor == 0)
			r->client_keepalive = false;
	}
	if (resp.body == HTTP_BODY_CLOSE || (r->resp_dechunk && !r->reframe))
		r->client_keepalive = false;
	write_response_head(c, &resp);
	evbuffer_drain(in, (size_t)n);
	r->resp_head_done = true;
	r->resp_done = resp.body == HTTP_BODY_NONE ||
	    (resp.body == HTTP_BODY_LENGTH && resp.content_length == 0);
	return 1;
}

/* Request and response are both over: audit, pool, next request. */
static void
finish(struct conn *c)
{
	struct request	*r = &c->req;
	struct origin	*o = c->origin;
	bool		 reuse;

	conn_audit(c, "request", "allow", r->note);
	account_end(c, true);
	c->in_request = false;
	reuse = r->resp_keepalive && r->req_done && !o->shut &&
	    evbuffer_get_length(bufferevent_get_input(o->bev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(o->bev)) == 0;
	c->origin = NULL;
	if (reuse)
		pool_put(o);
	else
		http_fwd_origin_free(o);
	if (r->client_keepalive && r->req_done) {
		conn_request_done(c);
		return;
	}
	conn_finish(c);
}

/* Accounting reads n bytes at the start of src, as they pass. */
static void
tee_bytes(struct conn *c, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec	v[16];
	int			k;

	k = evbuffer_peek(src, (ev_ssize_t)n, NULL, v, 16);
	for (int i = 0; i < k && i < 16 && n > 0; i++) {
		size_t len = v[i].iov_len < n ? v[i].iov_len : n;
		account_tee(c, v[i].iov_base, len);
		n -= len;
	}
}

/*
 * A filtered response (accounting takes a chunk out): decoded bytes go
 * through the filter, then to the client re-chunked (HTTP/1.1) or as they
 * are (1.0, the close ends it).
 */
static void
flush_filtered(struct conn *c, struct evbuffer *out, bool last)
{
	struct request	*r = &c->req;
	struct evbuffer	*f = r->fout;
	size_t		 n, len = evbuffer_get_length(r->fbuf);

	if (len > 0) {
		account_filter(c, evbuffer_pullup(r->fbuf, -1), len, f);
		evbuffer_drain(r->fbuf, len);
	}
	if (last)
		account_filter(c, NULL, 0, f);
	if ((n = evbuffer_get_length(f)) > 0) {
		if (r->client_minor >= 1) {
			char	size[24];
			int	k = snprintf(size, sizeof size, "%zx\r\n", n);
			evbuffer_prepend(f, size, (size_t)k);
			evbuffer_add(f, "\r\n", 2);
		}
		r->bytes_down += evbuffer_get_length(f);
		evbuffer_add_buffer(out, f);
	}
	if (last && r->client_minor >= 1) {
		evbuffer_add(out, "0\r\n\r\n", 5);
		r->bytes_down += 5;
	}
}

/*
 * The origin cut the response short. What is already queued for the
 * client (the head, part of the body) is delivered before the close, so
 * the client sees a truncated transfer; with nothing queued, close now.
 */
static void
cut_short(struct conn *c, const char *why)
{
	if (evbuffer_get_length(bufferevent_get_output(c->client)) == 0) {
		conn_close(c, why);
		return;
	}
	account_end(c, false);
	c->srv->stats.errors++;
	conn_audit(c, "error", "allow", why);
	log_debug("conn %llu: %s", (unsigned long long)c->id, why);
	http_fwd_origin_free(c->origin);
	c->origin = NULL;
	c->req.client_keepalive = false;
	conn_finish(c);
}

/* Origin -> client: the response, as far as the client takes it. */
static void
pump_response(struct conn *c)
{
	struct request	*r = &c->req;
	struct evbuffer	*in, *out, *dst;
	struct conn	*tee;
	size_t		 avail, room, n;
	ssize_t		 m;
	int		 h;

	while (c->state == CONN_HTTP && !r->resp_head_done)
		if ((h = parse_response_head(c)) <= 0)
			return;
	if (c->state != CONN_HTTP)
		return;
	in = bufferevent_get_input(c->origin->bev);
	out = bufferevent_get_output(c->client);
	/* Accounting reads along (tee), or filters (dst is its buffer). */
	dst = r->reframe ? r->fbuf : out;
	tee = r->llm != NULL && !r->reframe ? c : NULL;
	if (evbuffer_get_length(out) < PROXY_HIGH_WATER &&
	    !(bufferevent_get_enabled(c->origin->bev) & EV_READ))
		bufferevent_enable(c->origin->bev, EV_READ);
	while (!r->resp_done && (avail = evbuffer_get_length(in)) > 0) {
		size_t queued = evbuffer_get_length(out);
		if (queued >= PROXY_HIGH_WATER) {
			bufferevent_disable(c->origin->bev, EV_READ);
			return;		/* client_write resumes */
		}
		room = PROXY_HIGH_WATER - queued;
		switch (r->resp_body) {
		case HTTP_BODY_LENGTH:
			n = avail < room ? avail : room;
			if (n > r->resp_left)
				n = (size_t)r->resp_left;
			if (tee != NULL)
				tee_bytes(c, in, n);
			evbuffer_remove_buffer(in, dst, n);
			r->resp_left -= n;
			if (!r->reframe)
				r->bytes_down += n;
			if (r->resp_left == 0)
				r->resp_done = true;
			break;
		case HTTP_BODY_CHUNKED:
			m = move_chunked(in, dst, &r->resp_chunked,
			    avail < room ? avail : room, r->resp_dechunk,
			    tee);
			if (m < 0) {
				conn_close(c, "bad chunked framing from the "
				    "origin");
				return;
			}
			if (m == 0) {
				if (r->origin_eof)	/* cut mid-chunk */
					cut_short(c, "the origin closed "
					    "mid-response");
				return;
			}
			if (!r->reframe)
				r->bytes_down += (uint64_t)m;
			if (http_chunked_done(&r->resp_chunked))
				r->resp_done = true;
			break;
		default:	/* until the origin closes */
			n = avail < room ? avail : room;
			if (tee != NULL)
				tee_bytes(c, in, n);
			evbuffer_remove_buffer(in, dst, n);
			if (!r->reframe)
				r->bytes_down += n;
			break;
		}
		if (r->reframe)
			flush_filtered(c, out, false);
	}
	if (!r->resp_done && r->origin_eof && evbuffer_get_length(in) == 0) {
		if (r->resp_body != HTTP_BODY_CLOSE) {
			cut_short(c, "the origin closed mid-response");
			return;
		}
		r->resp_done = true;	/* the close was the end */
	}
	if (r->resp_done) {
		if (r->reframe)
			flush_filtered(c, out, true);
		if (!r->req_done) {
			/* Answered before the whole body arrived: the
			 * connection cannot carry another request. */
			r->client_keepalive = false;
			r->resp_keepalive = false;
		}
		finish(c);
	}
}

void
http_fwd_client_read(struct conn *c)
{
	if (c->state == CONN_BODY)
		pump_collect(c);
	else
		pump_request(c);
}

void
http_fwd_client_drained(struct conn *c)
{
	if (c->origin != NULL)
		pump_response(c);
}

void
http_fwd_client_eof(struct conn *c)
{
	if (!c->req.req_done) {
		conn_close(c, "client closed mid-request");
		return;
	}
	/* Half-closed after its request: answer, then close. */
	c->req.client_keepalive = false;
	c->client_eof = true;
	bufferevent_disable(c->client, EV_READ);
	shut_origin(c);
}

/*
 * The client half-closed after its request: so does our side towards the
 * origin, once the request is out, as it would without a proxy. An origin
 * that takes a FIN for an abort (nginx's 499, Squid) stops working for
 * nobody; one that honours half-closes still answers. Plain TCP only: an
 * intercepted origin gets no half-close (TLS would need close_notify).
 */
static void
shut_origin(struct conn *c)
{
	struct origin *o = c->origin;

	if (o == NULL || o->shut || o->handshaking || c->mitm ||
	    !c->client_eof || !c->req.req_done)
		return;
	if (evbuffer_get_length(bufferevent_get_output(o->bev)) > 0) {
		/* origin_write() comes back once it is all out. */
		bufferevent_setwatermark(o->bev, EV_WRITE, 0, 0);
		return;
	}
	shutdown(bufferevent_getfd(o->bev), SHUT_WR);
	o->shut = true;
}

static void
origin_read(struct bufferevent *bev, void *arg)
{
	struct origin *o = arg;

	(void)bev;
	if (o->conn == NULL) {		/* pooled: unexpected bytes */
		http_fwd_origin_free(o);
		return;
	}
	if (!o->handshaking)
		pump_response(o->conn);
}

static void
origin_write(struct bufferevent *bev, void *arg)
{
	struct origin	*o = arg;
	struct conn	*c = o->conn;

	(void)bev;
	if (c != NULL && !o->handshaking) {
		pump_request(c);
		/* The pump may have closed c, freeing o (c itself is freed
		 * on the next loop turn). */
		if (c->state == CONN_HTTP)
			shut_origin(c);
	}
}

/* The origin closed or failed. */
static void
origin_event(struct bufferevent *bev, short what, void *arg)
{
	struct origin	*o = arg;
	struct conn	*c = o->conn;
	struct request	*r;

	(void)bev;
	if (c == NULL) {		/* pooled: EOF or idle timeout */
		http_fwd_origin_free(o);
		return;
	}
	r = &c->req;
	if (o->handshaking) {
		char why[320];

		if (what & BEV_EVENT_CONNECTED) {
			o->handshaking = false;
			attach(c, o);
			return;
		}
		if (what & BEV_EVENT_TIMEOUT) {
			conn_error(c, 504, "the origin's TLS handshake timed "
			    "out", NULL);
			return;
		}
		mitm_origin_error(o->bev, why, sizeof why);
		conn_error(c, 502, why, NULL);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (!r->resp_head_done)
			conn_error(c, 504, "the origin did not answer in time",
			    NULL);
		else
			conn_close(c, "the origin stalled mid-response");
		return;
	}
	/* Whatever arrived before the EOF is still to be delivered; the
	 * pump ends the response, or notices it was cut short. */
	r->origin_eof = true;
	r->resp_keepalive = false;
	pump_response(c);
	if (c->state != CONN_HTTP || c->origin != o || r->resp_head_done)
		return;
	if (r->reused && !r->retried && !o->shut &&
	    r->req_body == HTTP_BODY_NONE &&
	    evbuffer_get_length(bufferevent_get_input(o->bev)) == 0) {
		/* A pooled connection the origin had just closed: send the
		 * request again on a fresh one. */
		r->retried = true;
		r->origin_eof = false;
		r->resp_keepalive = false;
		c->origin = NULL;
		o->conn = c;
		http_fwd_origin_free(o);
		acquire(c);
		return;
	}
	conn_error(c, 502, (what & BEV_EVENT_ERROR) && errno ?
	    strerror(errno) : "the origin closed the connection without "
	    "answering", NULL);
}
