/*
 * A client connection: read a request head through the one parser, decide
 * with the policy, then hand over to HTTP forwarding or a CONNECT tunnel.
 * Errors are answered with a status the client can act on and a one-line
 * reason; conn_close() is the one teardown, and the free is deferred to the
 * next loop turn so no callback ever touches freed memory.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "builtin/account.h"
#include "builtin/audit.h"
#include "builtin/dial.h"
#include "builtin/gateway.h"
#include "builtin/hooks.h"
#include "builtin/http_fwd.h"
#include "builtin/metrics.h"
#include "builtin/mitm.h"
#include "builtin/policy.h"
#include "builtin/secrets.h"
#include "builtin/proxy.h"
#include "builtin/sandbox.h"
#include "builtin/tunnel.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "socks5/socks5.h"
#include "upstream/proxy_url.h"

static void	client_read(struct bufferevent *, void *);
static void	client_write(struct bufferevent *, void *);
static void	client_event(struct bufferevent *, short, void *);
static void	parse_head(struct conn *);
static void	respond_error(struct conn *, int, const char *, const char *,
		    bool);
static void	half_close_when_sent(struct conn *);

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 407: return "Proxy Authentication Required";
	case 408: return "Request Timeout";
	case 421: return "Misdirected Request";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

static void
set_timer(struct conn *c, int seconds)
{
	struct timeval tv = { seconds, 0 };

	evtimer_add(c->timer, &tv);
}

/* The connection's one timer (head, body, idle): seconds, 0 to stop. */
void
conn_set_timeout(struct conn *c, int seconds)
{
	evtimer_del(c->timer);
	if (seconds > 0)
		set_timer(c, seconds);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->state) {
	case CONN_HEAD:
		if (c->scanned == 0 && evbuffer_get_length(
		    bufferevent_get_input(c->client)) == 0) {
			conn_close(c, NULL);	/* idle keep-alive: quiet */
			return;
		}
		c->req.door = "http";	/* as for every other head error */
		conn_error(c, 408, "the request head was not complete within "
		    "the time allowed", NULL);
		return;
	case CONN_SOCKS:
		conn_close(c, "the SOCKS5 handshake was not complete within "
		    "the time allowed");
		return;
	case CONN_TLS:
		conn_close(c, "the client's TLS handshake was not complete "
		    "within the time allowed");
		return;
	case CONN_BODY:
		conn_error(c, 408, "the request body was not complete within "
		    "the time allowed", NULL);
		return;
	case CONN_CLOSING:
		conn_close(c, NULL);
		return;
	default:
		return;
	}
}

struct conn *
conn_new(struct server *srv, int fd, const struct sockaddr *peer,
    socklen_t peerlen)
{
	struct conn *c = xcalloc(1, sizeof *c);

	c->srv = srv;
	c->id = ++srv->next_id;
	c->fd = fd;
	c->state = CONN_HEAD;
	if (peerlen <= sizeof c->peer)
		memcpy(&c->peer, peer, peerlen);
	if (srv->sb != NULL) {		/* a single run's: no question */
		c->sb = sandbox_ref(srv->sb);
		c->sb->n->conns++;
	}
	conn_set_client(c, bufferevent_socket_new(srv->base, fd, 0));
	c->timer = evtimer_new(srv->base, on_timer, c);
	set_timer(c, PROXY_HEAD_TIMEOUT);
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->nconns++;
	srv->stats.conns++;
	return c;
}

/* Serve the client through bev from now on (a TLS filter, say). */
void
conn_set_client(struct conn *c, struct bufferevent *bev)
{
	c->client = bev;
	bufferevent_setcb(bev, client_read, client_write, client_event, c);
	bufferevent_setwatermark(bev, EV_READ, 0, PROXY_HIGH_WATER);
	bufferevent_setwatermark(bev, EV_WRITE, PROXY_HIGH_WATER / 2, 0);
	bufferevent_set_max_single_read(bev, 128 * 1024);
	bufferevent_set_max_single_write(bev, 128 * 1024);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void	audit_with(struct conn *, const char *, const char *,
		    const char *, const struct audit_llm *);

/* The request's audit event; what says which kind. */
void
conn_audit(struct conn *c, const char *event, const char *decision,
    const char *reason)
{
	audit_with(c, event, decision, reason, NULL);
}

/* An "llm" (or "budget") event for the request's accounted call. */
void
conn_audit_llm(struct conn *c, const char *event, const char *decision,
    const char *reason, const struct audit_llm *llm)
{
	audit_with(c, event, decision, reason, llm);
}

static void
audit_with(struct conn *c, const char *event, const char *decision,
    const char *reason, const struct audit_llm *llm)
{
	struct request		*r = &c->req;
	struct audit_event	 e;

	memset(&e, 0, sizeof e);
	e.event = event;
	e.door = r->door;
	e.host = r->dest.host[0] ? r->dest.host : NULL;
	e.port = r->dest.port;
	e.method = r->method[0] ? r->method : NULL;
	e.path = r->path;
	e.pathlen = r->path ? strlen(r->path) : 0;
	e.decision = decision;
	e.rule = r->rule;
	e.status = r->status;
	e.bytes_up = r->bytes_up;
	e.bytes_down = r->bytes_down;
	e.ms = r->start_ms ? server_now_ms() - r->start_ms : 0;
	e.reason = reason;
	e.mitm = c->mitm;
	e.secret = r->secret;
	e.llm = llm;
	e.upstream = r->via ? r->via->display : NULL;
	e.sandbox = c->srv->multi && c->sb != NULL ? c->sb->id : NULL;
	audit_log(c->srv->audit, &e);
	hooks_emit(c->srv->hooks, &e, c->mitm || r->origin_tls);
	if (c->sb != NULL && c->sb->hooks != NULL)
		hooks_emit(c->sb->hooks, &e, c->mitm || r->origin_tls);
	metrics_audit(c->srv->metrics, &e);
	if (llm != NULL || strcmp(event, "budget") == 0)
		return;		/* the request's own event counts bytes */
	c->srv->stats.bytes_up += r->bytes_up;
	c->srv->stats.bytes_down += r->bytes_down;
	if (c->sb != NULL) {
		c->sb->n->bytes_up += r->bytes_up;
		c->sb->n->bytes_down += r->bytes_down;
	}
}

static void
request_reset(struct conn *c)
{
	free(c->req.path);
	free(c->req.target);
	if (c->req.out_head != NULL) {
		/* It may hold an injected secret. */
		size_t n = evbuffer_get_length(c->req.out_head);
		if (n > 0)
			OPENSSL_cleanse(evbuffer_pullup(c->req.out_head, -1), n);
		evbuffer_free(c->req.out_head);
	}
	if (c->req.xbuf != NULL)
		evbuffer_free(c->req.xbuf);
	if (c->req.collect != NULL)
		evbuffer_free(c->req.collect);
	if (c->req.fbuf != NULL)
		evbuffer_free(c->req.fbuf);
	if (c->req.fout != NULL)
		evbuffer_free(c->req.fout);
	secrets_subst_free(c->req.subst);
	account_call_free(c->req.llm);
	memset(&c->req, 0, sizeof c->req);
	c->in_request = false;
}

void
conn_free(struct conn *c)
{
	request_reset(c);
	sandbox_unref(c->sb);
	free(c);
}

void
conn_close(struct conn *c, const char *why)
{
	if (c->state == CONN_DEAD)
		return;
	account_end(c, false);
	if (c->in_request && c->tunnel != NULL) {
		/* A tunnel cut short (shutdown, say) still says what moved. */
		c->req.bytes_up = tunnel_bytes_up(c->tunnel);
		c->req.bytes_down = tunnel_bytes_down(c->tunnel);
		c->srv->stats.tunnels++;
		conn_audit(c, "connect", "allow", why);
	} else if (c->in_request && why != NULL) {
		/* Every request leaves a trace, however it ended. */
		c->srv->stats.errors++;
		conn_audit(c, "error", c->req.rule ? "allow" : NULL, why);
	}
	if (why != NULL)
		log_debug("conn %llu: closed: %s", (unsigned long long)c->id,
		    why);
	c->state = CONN_DEAD;
	dial_cancel(c->dial);
	c->dial = NULL;
	tunnel_free(c->tunnel);
	c->tunnel = NULL;
	http_fwd_origin_free(c->origin);
	c->origin = NULL;
	if (c->client != NULL) {
		struct bufferevent *u = bufferevent_get_underlying(c->client);

		/* Take the descriptor out of epoll now: freed from inside one
		 * of its callbacks (a TLS handshake that fails as the filter
		 * is set up), a bufferevent lives on until that callback
		 * returns, and must not touch the descriptor closed below. */
		bufferevent_disable(c->client, EV_READ | EV_WRITE);
		if (u != NULL)
			bufferevent_disable(u, EV_READ | EV_WRITE);
		bufferevent_free(c->client);
	}
	c->client = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	event_free(c->timer);
	c->timer = NULL;
	TAILQ_REMOVE(&c->srv->conns, c, entry);
	c->srv->nconns--;
	server_conn_dead(c->srv, c);
}

/* Sanitise a reason for a header line: printable ASCII only. */
static void
header_safe(char *out, size_t outlen, const char *in)
{
	size_t o = 0;

	for (; *in != '\0' && o + 1 < outlen; in++)
		out[o++] = (*in >= 0x20 && *in < 0x7f) ? *in : '?';
	out[o] = '\0';
}

/*
 * Answer with an error and close once it is delivered. 403 is a policy
 * refusal (audited as "deny"); every other status is an "error" event.
 */
void
conn_error(struct conn *c, int status, const char *reason, const char *rule)
{
	respond_error(c, status, reason, rule, false);
}

/* A request rule's refusal: JSON APIs' clients (gh, SDKs) print a JSON
 * body's "message". */
void
conn_deny_json(struct conn *c, const char *reason, const char *rule)
{
	respond_error(c, 403, reason, rule, true);
}

static void
respond_error(struct conn *c, int status, const char *reason,
    const char *rule, bool json)
{
	struct evbuffer	*out;
	char		 safe[256], body[640];
	int		 blen;

	if (c->state == CONN_DEAD || c->state == CONN_CLOSING)
		return;
	dial_cancel(c->dial);
	c->dial = NULL;
	http_fwd_origin_free(c->origin);
	c->origin = NULL;
	c->req.status = status;
	account_end(c, false);
	header_safe(safe, sizeof safe, reason);
	if (json) {
		char esc[512];

		audit_json_escape(esc, sizeof esc, safe, strlen(safe));
		blen = snprintf(body, sizeof body, "{\"message\":\"egress-run: "
		    "%s\"}\n", esc);
	} else
		blen = snprintf(body, sizeof body, "egress-run: %s\n", safe);
	c->req.status = status;
	if (rule != NULL)
		c->req.rule = rule;
	if (status == 403) {
		c->srv->stats.denied++;
		if (c->sb != NULL)
			c->sb->n->denials++;
		conn_audit(c, "deny", "deny", reason);
	} else {
		/* After an allow decision the rule is the allowing one. */
		c->srv->stats.errors++;
		conn_audit(c, "error", c->req.rule ? "allow" : NULL, reason);
	}
	log_info("conn %llu: %s %s: %d %s", (unsigned long long)c->id,
	    c->req.method[0] ? c->req.method : "-",
	    c->req.dest.host[0] ? c->req.dest.host : "-", status, safe);
	c->in_request = false;
	out = bufferevent_get_output(c->client);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %d\r\n"
	    "X-Egress-Run-Reason: %s\r\n%s"
	    "Connection: close\r\n\r\n", status, status_text(status),
	    json ? "application/json" : "text/plain; charset=utf-8", blen,
	    safe, status == 407 ? "Proxy-Authenticate: Basic "
	    "realm=\"egress-run\"\r\n" : "");
	if (!c->req.head)
		evbuffer_add(out, body, (size_t)blen);
	conn_finish(c);
}

/* An answer of our own (a budget's 429): the status, extra header lines
 * (each ending in CRLF), the body; then close. */
void
conn_reply(struct conn *c, int status, const char *headers, const void *body,
    size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->client);

	dial_cancel(c->dial);
	c->dial = NULL;
	http_fwd_origin_free(c->origin);
	c->origin = NULL;
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", status, status_text(status), headers,
	    len);
	if (!c->req.head)
		evbuffer_add(out, body, len);
	c->req.bytes_down += evbuffer_get_length(out);
	conn_finish(c);
}

/*
 * Deliver what is queued, half-close, and linger a moment reading (and
 * discarding) until the client closes: closing with unread input would
 * reset the connection and could destroy the answer in flight.
 */
/* The TLS records under a filter went out: half-close now. */
static void
tls_out_drained(struct evbuffer *b, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn *c = arg;

	(void)info;
	if (evbuffer_get_length(b) > 0)
		return;
	evbuffer_remove_cb(b, tls_out_drained, c);
	if (c->state == CONN_CLOSING)
		half_close_when_sent(c);
}

/*
 * Half-close once every byte is out (or close, if the client already
 * has). Under a TLS filter the filter's output empties as soon as its
 * records are made; they still wait in the socket's bufferevent, which
 * tells the filter (not us) when it drains.
 */
static void
half_close_when_sent(struct conn *c)
{
	struct bufferevent	*u;
	struct evbuffer		*uo;

	if (evbuffer_get_length(bufferevent_get_output(c->client)) > 0)
		return;		/* client_write() comes back */
	if ((u = bufferevent_get_underlying(c->client)) != NULL &&
	    evbuffer_get_length(uo = bufferevent_get_output(u)) > 0) {
		evbuffer_remove_cb(uo, tls_out_drained, c);
		evbuffer_add_cb(uo, tls_out_drained, c);
		return;
	}
	if (c->client_eof) {		/* nothing to linger for */
		conn_close(c, NULL);
		return;
	}
	shutdown(c->fd, SHUT_WR);
	bufferevent_disable(c->client, EV_WRITE);
}

void
conn_finish(struct conn *c)
{
	c->state = CONN_CLOSING;
	c->in_request = false;
	bufferevent_setwatermark(c->client, EV_WRITE, 0, 0);
	/* After the client's EOF there is nothing to linger for. */
	bufferevent_enable(c->client, c->client_eof ? EV_WRITE :
	    EV_READ | EV_WRITE);
	evtimer_del(c->timer);
	set_timer(c, PROXY_LINGER_MS / 1000);
	half_close_when_sent(c);
}

/* The error status for a parser result. */
static int
parse_status(int r)
{
	switch (r) {
	case HTTP_E_TOO_LARGE:
		return 431;
	case HTTP_E_VERSION:
		return 505;
	default:
		return 400;
	}
}

static void
tunnel_done(struct conn *c, const char *why)
{
	c->req.bytes_up = tunnel_bytes_up(c->tunnel);
	c->req.bytes_down = tunnel_bytes_down(c->tunnel);
	if (strcmp(c->req.door, "forward") != 0)
		c->srv->stats.tunnels++;
	/* A clean close needs no reason; a reset or an error does. */
	conn_audit(c, "connect", "allow", why != NULL &&
	    strcmp(why, "closed") != 0 ? why : NULL);
	c->in_request = false;
	conn_close(c, why);
}

static void
connect_dialed(int ofd, const struct dial_result *res, void *arg)
{
	static const char	 hello[] = "HTTP/1.1 200 Connection established"
	    "\r\n\r\n";
	struct conn		*c = arg;
	struct evbuffer		*in;
	unsigned char		*early, down[sizeof hello + sizeof res->leftover];
	size_t			 elen;

	c->dial = NULL;
	c->req.via = res->via;
	if (ofd == -1) {
		conn_error(c, res->status, res->reason, res->rule);
		return;
	}
	c->req.status = 200;
	/* Our answer, then whatever the origin already said (through an
	 * upstream, its banner may come with the proxy's answer). */
	memcpy(down, hello, sizeof hello - 1);
	memcpy(down + sizeof hello - 1, res->leftover, res->leftover_len);
	/* The client may have sent its TLS hello already: pass it on. */
	in = bufferevent_get_input(c->client);
	elen = evbuffer_get_length(in);
	early = evbuffer_pullup(in, -1);
	c->tunnel = tunnel_start(c, c->fd, ofd, down, sizeof hello - 1 +
	    res->leftover_len, early, elen, tunnel_done);
	if (c->tunnel == NULL && (errno == EMFILE || errno == ENFILE)) {
		conn_error(c, 503, "the proxy is out of file descriptors for "
		    "the tunnel; raise 'ulimit -n'", NULL);
		return;
	}
	bufferevent_free(c->client);	/* the fd stays: not CLOSE_ON_FREE */
	c->client = NULL;
	if (c->tunnel == NULL) {
		conn_close(c, "cannot start the tunnel");
		return;
	}
	c->state = CONN_TUNNEL;
	log_debug("conn %llu: tunnel to %s port %u",
	    (unsigned long long)c->id, c->req.dest.host, c->req.dest.port);
}

/*
 * Intercept an allowed tunnel: its opening is audited now, each request
 * inside it later (mitm: true).
 */
void
conn_intercept(struct conn *c, const void *hello, size_t len)
{
	c->req.status = 200;
	c->mitm = true;
	conn_audit(c, "connect", "allow", NULL);
	c->srv->stats.tunnels++;
	c->in_request = false;
	mitm_start(c, hello, len);
}

static void
forward_dialed(int ofd, const struct dial_result *res, void *arg)
{
	struct conn	*c = arg;
	struct evbuffer	*in;

	c->dial = NULL;
	if (ofd == -1) {
		c->req.status = res->status;
		conn_close(c, res->reason);
		return;
	}
	c->req.status = 200;
	in = bufferevent_get_input(c->client);
	c->tunnel = tunnel_start(c, c->fd, ofd, NULL, 0,
	    evbuffer_pullup(in, -1), evbuffer_get_length(in), tunnel_done);
	bufferevent_free(c->client);
	c->client = NULL;
	if (c->tunnel == NULL) {
		conn_close(c, "cannot start the forward");
		return;
	}
	c->state = CONN_TUNNEL;
}

/*
 * --host-port: a connection from COMMAND's namespace to this host's
 * loopback port, as the user asked: relayed, audited, not judged.
 */
void
conn_forward(struct conn *c, uint16_t port)
{
	evtimer_del(c->timer);
	c->in_request = true;
	c->nrequests++;
	c->req.door = "forward";
	c->req.start_ms = server_now_ms();
	c->req.dest.kind = ADDR_IPV4;
	c->req.dest.v4.s_addr = htonl(INADDR_LOOPBACK);
	c->req.dest.port = port;
	memcpy(c->req.dest.host, "127.0.0.1", 10);
	c->srv->stats.forwards++;
	c->state = CONN_DIAL;
	bufferevent_disable(c->client, EV_READ);
	c->dial = dial_start(c->srv, NULL, &c->req.dest, DIAL_FORWARD,
	    forward_dialed, c);
}

static void
start_connect(struct conn *c, const struct http_request *req, size_t headlen)
{
	struct verdict	 v;
	const char	*why;
	int		 r;

	c->req.door = "connect";
	r = addr_parse_authority(req->authority.p, req->authority.len, 0,
	    &c->req.dest);
	evbuffer_drain(bufferevent_get_input(c->client), headlen);
	if (r != ADDR_OK) {
		conn_error(c, 400, addr_strerror(r), NULL);
		return;
	}
	policy_check_dest(c->sb->policy, &c->req.dest, &v);
	if (!v.allow) {
		conn_error(c, 403, v.reason, v.rule);
		return;
	}
	c->req.rule = v.rule;
	if ((why = sandbox_tunnel_refusal(c->sb, &c->req.dest)) != NULL) {
		conn_error(c, 403, why, "git-ssh");
		return;
	}
	if (mitm_wanted(c->srv, c->sb, &c->req.dest)) {
		static const char ok[] = "HTTP/1.1 200 Connection established"
		    "\r\n\r\n";
		conn_intercept(c, ok, sizeof ok - 1);
		return;
	}
	c->state = CONN_DIAL;
	/* Reading goes on while the origin is dialled (up to the high
	 * watermark: client_read), so a client that resets is noticed at
	 * once; what it sends goes to the origin first. */
	c->dial = dial_start(c->srv, c->sb->policy, &c->req.dest, DIAL_STREAM,
	    connect_dialed, c);
}

static void
start_forward(struct conn *c, const struct http_request *req,
    size_t headlen)
{
	struct verdict	v;
	int		r;

	c->req.door = "http";
	if (!http_slice_eq(req->scheme, "http")) {
		conn_error(c, 400, "only http:// URLs are forwarded; clients "
		    "use CONNECT for https", NULL);
		return;
	}
	r = addr_parse_authority(req->authority.p, req->authority.len, 80,
	    &c->req.dest);
	if (r != ADDR_OK) {
		conn_error(c, 400, addr_strerror(r), NULL);
		return;
	}
	policy_check_dest(c->sb->policy, &c->req.dest, &v);
	if (!v.allow) {
		conn_error(c, 403, v.reason, v.rule);
		return;
	}
	c->req.rule = v.rule;
	http_fwd_start(c, req, headlen);
}

/*
 * A request inside an intercepted tunnel: it may only go to the tunnel's
 * host, which its Host (and an absolute URI) must name; the same policy
 * decides, per request.
 */
static void
start_inner(struct conn *c, const struct http_request *req, size_t headlen)
{
	struct dest	h;
	struct verdict	v;
	char		why[ADDR_HOST_MAX * 2 + 64];

	c->req.door = c->tunnel_door;
	c->req.dest = c->tunnel_dest;
	if (req->form == HTTP_FORM_AUTHORITY || req->form ==
	    HTTP_FORM_ASTERISK) {
		conn_error(c, 400, "CONNECT or '*' inside an intercepted "
		    "tunnel", NULL);
		return;
	}
	if (c->sni_mismatch) {
		conn_error(c, 421, "the TLS server name does not name the "
		    "tunnel's host", NULL);
		return;
	}
	if (addr_parse_authority(req->host.p, req->host.len,
	    c->tunnel_dest.port, &h) != ADDR_OK ||
	    strcmp(h.host, c->tunnel_dest.host) != 0 ||
	    h.port != c->tunnel_dest.port || (req->form == HTTP_FORM_ABSOLUTE &&
	    (addr_parse_authority(req->authority.p, req->authority.len,
	    c->tunnel_dest.port, &h) != ADDR_OK ||
	    strcmp(h.host, c->tunnel_dest.host) != 0 ||
	    h.port != c->tunnel_dest.port))) {
		snprintf(why, sizeof why, "the request names %.*s, not the "
		    "tunnel's host %s", (int)(req->host.len > 255 ? 255 :
		    req->host.len), req->host.p, c->tunnel_dest.host);
		conn_error(c, 421, why, NULL);
		return;
	}
	policy_check_dest(c->sb->policy, &c->req.dest, &v);
	if (!v.allow) {
		conn_error(c, 403, v.reason, v.rule);
		return;
	}
	c->req.rule = v.rule;
	c->req.origin_tls = true;
	http_fwd_start(c, req, headlen);
}

/*
 * An origin-form request on the proxy's own port: a gateway's, if its
 * path names one; else a mistake (404 for an unknown gateway, 400).
 */
static void
start_gateway(struct conn *c, const struct http_request *req, size_t headlen)
{
	const struct gateway	*gw;
	struct verdict		 v;
	size_t			 rest;
	bool			 unknown;

	c->req.door = "gateway";
	gw = gateways_match(c->srv->gateways, req->path.p, req->path.len,
	    &rest, &unknown);
	if (gw == NULL) {
		if (unknown)
			conn_error(c, 404, "no gateway has that name (see "
			    "--gateway)", NULL);
		else {
			c->req.door = "http";
			conn_error(c, 400, "this is a proxy: send absolute-"
			    "form requests (GET http://host/path), CONNECT, "
			    "or /gw/NAME/ for a --gateway", NULL);
		}
		return;
	}
	c->req.dest = gw->dest;
	c->req.origin_tls = gw->tls;
	/* URL's base, then the rest of the path (and its query). */
	c->req.target = xprintf("%s%.*s", gw->base,
	    (int)(req->path.len - rest), req->path.p + rest);
	if (c->req.target[0] == '\0') {
		free(c->req.target);
		c->req.target = xstrdup("/");
	}
	free(c->req.path);
	c->req.path = xstrndup(c->req.target, strcspn(c->req.target, "?"));
	policy_check_dest(c->sb->policy, &c->req.dest, &v);
	if (!v.allow) {
		conn_error(c, 403, v.reason, v.rule);
		return;
	}
	c->req.rule = v.rule;
	http_fwd_start(c, req, headlen);
}

/*
 * Proxy credentials "Basic base64(ID:TOKEN)" into user (NUL-terminated)
 * and the token (in buf). Returns 0, or -1 when they are not that.
 */
static int
basic_creds(struct http_slice v, unsigned char *buf, size_t bufsize,
    char *user, size_t usersize, const char **pass, size_t *passlen)
{
	const unsigned char	*colon;
	size_t			 len, pad = 0, ulen;
	int			 n;

	if (v.len < 7 || strncasecmp(v.p, "Basic ", 6) != 0)
		return -1;
	v.p += 6;
	v.len -= 6;
	while (v.len > 0 && v.p[0] == ' ') {
		v.p++;
		v.len--;
	}
	if (v.len == 0 || v.len % 4 != 0 || v.len / 4 * 3 > bufsize)
		return -1;
	if ((n = EVP_DecodeBlock(buf, (const unsigned char *)v.p,
	    (int)v.len)) < 0)
		return -1;
	while (pad < 2 && v.p[v.len - 1 - pad] == '=')
		pad++;
	len = (size_t)n - pad;
	if ((colon = memchr(buf, ':', len)) == NULL ||
	    (ulen = (size_t)(colon - buf)) >= usersize ||
	    memchr(buf, '\0', len) != NULL)
		return -1;
	memcpy(user, buf, ulen);
	user[ulen] = '\0';
	*pass = (const char *)colon + 1;
	*passlen = len - ulen - 1;
	return 0;
}

/*
 * Whose request is this (sandbox.c)? Refused here, before anything else
 * happens, when nobody's: 403, or 407 for missing or wrong credentials.
 */
static int
attribute(struct conn *c, const struct http_request *req)
{
	const struct http_header	*h = NULL;
	unsigned char			 buf[768];
	char				 user[256];
	const char			*pass = NULL, *why = NULL;
	size_t				 passlen = 0;
	int				 st = 0;
	bool				 have = false;

	if (c->srv->sandboxes != NULL && c->srv->sb == NULL && !c->mitm)
		h = http_header_find(req->headers, req->nheaders,
		    "proxy-authorization");
	if (h != NULL) {
		if (basic_creds(h->value, buf, sizeof buf, user, sizeof user,
		    &pass, &passlen) == 0)
			have = true;
		else {
			st = 407;
			why = "proxy credentials must be Basic ID:TOKEN";
		}
	}
	if (st == 0)
		st = sandbox_attribute(c, have ? user : NULL, pass, passlen,
		    &why);
	OPENSSL_cleanse(buf, sizeof buf);
	if (st == 0) {
		c->sb->n->requests++;
		return 0;
	}
	c->req.door = c->mitm ? c->tunnel_door : req->form ==
	    HTTP_FORM_AUTHORITY ? "connect" : req->form == HTTP_FORM_ORIGIN ?
	    "gateway" : "http";
	/* The event says where it was going, when that is readable. */
	if (c->mitm)
		c->req.dest = c->tunnel_dest;
	else if (req->form == HTTP_FORM_AUTHORITY ||
	    req->form == HTTP_FORM_ABSOLUTE)
		(void)addr_parse_authority(req->authority.p,
		    req->authority.len, req->form == HTTP_FORM_AUTHORITY ? 0 :
		    80, &c->req.dest);
	conn_error(c, st, why, NULL);
	return -1;
}

static void
dispatch(struct conn *c, const struct http_request *req, size_t headlen)
{
	size_t plen;

	evtimer_del(c->timer);
	request_reset(c);
	c->nrequests++;
	c->in_request = true;
	c->req.start_ms = server_now_ms();
	c->srv->stats.requests++;
	plen = req->method.len < sizeof c->req.method - 1 ? req->method.len :
	    sizeof c->req.method - 1;
	memcpy(c->req.method, req->method.p, plen);
	c->req.method[plen] = '\0';
	c->req.client_minor = req->minor;
	c->req.client_keepalive = req->keep_alive;
	c->req.head = http_slice_eq(req->method, "HEAD");
	if (req->form != HTTP_FORM_AUTHORITY && req->path.len > 0) {
		/* Wire bytes, not a C string: bounded search. */
		const char *q = memchr(req->path.p, '?', req->path.len);
		plen = q ? (size_t)(q - req->path.p) : req->path.len;
		c->req.path = xstrndup(req->path.p, plen > 1024 ? 1024 : plen);
	}
	if (attribute(c, req) != 0)
		return;
	if (c->mitm) {
		start_inner(c, req, headlen);
		return;
	}
	switch (req->form) {
	case HTTP_FORM_AUTHORITY:
		start_connect(c, req, headlen);
		break;
	case HTTP_FORM_ABSOLUTE:
		start_forward(c, req, headlen);
		break;
	case HTTP_FORM_ORIGIN:
		start_gateway(c, req, headlen);
		break;
	default:
		c->req.door = "http";
		conn_error(c, 400, "this is a proxy: send absolute-form "
		    "requests (GET http://host/path) or CONNECT", NULL);
		break;
	}
}

/* Look for a complete head in the client's input and act on it. */
static void
parse_head(struct conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->client);
	struct evbuffer_ptr	 p;
	struct http_request	 req;
	size_t			 len, headlen;
	unsigned char		*data;
	int			 r;

	while (c->state == CONN_HEAD && (len = evbuffer_get_length(in)) > 0) {
		if (c->nrequests == 0 && c->scanned == 0 &&
		    *evbuffer_pullup(in, 1) == 0x05) {
			/* One port, two protocols: SOCKS5 starts with its
			 * version byte, which no HTTP request does. */
			c->nrequests++;
			socks5_start(c);
			return;
		}
		evbuffer_ptr_set(in, &p, c->scanned > 3 ? c->scanned - 3 : 0,
		    EVBUFFER_PTR_SET);
		p = evbuffer_search(in, "\r\n\r\n", 4, &p);
		if (p.pos == -1) {
			struct evbuffer_ptr lf;

			evbuffer_ptr_set(in, &lf, c->scanned > 1 ?
			    c->scanned - 1 : 0, EVBUFFER_PTR_SET);
			lf = evbuffer_search(in, "\n\n", 2, &lf);
			c->scanned = len;
			if (lf.pos != -1) {
				/* Lines ending in a bare LF: no head will ever
				 * end with CRLFCRLF; say so now, not at the
				 * timeout. */
				c->req.door = "http";
				conn_error(c, 400, http_parse_strerror(
				    HTTP_E_SYNTAX), NULL);
			} else if (len > HTTP_HEAD_MAX) {
				c->req.door = "http";
				conn_error(c, 431, "request head too large",
				    NULL);
			} else if (len >= 1 && (*evbuffer_pullup(in, 1) < 'A' ||
			    *evbuffer_pullup(in, 1) > 'Z') &&
			    *evbuffer_pullup(in, 1) != '\r') {
				/* Not HTTP at all (TLS straight to the
				 * proxy port, say): say so now. */
				c->req.door = "http";
				conn_error(c, 400, "not an HTTP request",
				    NULL);
			}
			return;
		}
		headlen = (size_t)p.pos + 4;
		data = evbuffer_pullup(in, (ssize_t)headlen);
		r = http_parse_request(data, headlen, &req);
		if (r == HTTP_NEED_MORE) {	/* blank lines before it */
			c->scanned = headlen;
			continue;
		}
		c->scanned = 0;
		if (r < 0) {
			c->req.door = "http";
			conn_error(c, parse_status(r), http_parse_strerror(r),
			    NULL);
			return;
		}
		dispatch(c, &req, (size_t)r);
		return;
	}
}

/* Back to reading heads after a completed request (keep-alive). */
void
conn_request_done(struct conn *c)
{
	request_reset(c);
	c->state = CONN_HEAD;
	c->scanned = 0;
	evtimer_del(c->timer);
	set_timer(c, evbuffer_get_length(bufferevent_get_input(c->client)) ?
	    PROXY_HEAD_TIMEOUT : PROXY_IDLE_TIMEOUT);
	if (!(bufferevent_get_enabled(c->client) & EV_READ))
		bufferevent_enable(c->client, EV_READ);
	parse_head(c);
}

static void
client_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	switch (c->state) {
	case CONN_HEAD:
		parse_head(c);
		break;
	case CONN_HTTP:
	case CONN_BODY:
		http_fwd_client_read(c);
		break;
	case CONN_SOCKS:
		socks5_read(c);
		break;
	case CONN_DIAL:
		/* Kept for the origin; stop at the watermark (libevent 2.1.12
		 * would re-run this callback while the input stays full). */
		if (evbuffer_get_length(bufferevent_get_input(bev)) >=
		    PROXY_HIGH_WATER)
			bufferevent_disable(bev, EV_READ);
		break;
	case CONN_CLOSING:	/* lingering: discard what still comes */
		evbuffer_drain(bufferevent_get_input(bev),
		    evbuffer_get_length(bufferevent_get_input(bev)));
		break;
	default:
		break;
	}
}

static void
client_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	switch (c->state) {
	case CONN_HTTP:
		http_fwd_client_drained(c);
		break;
	case CONN_CLOSING:
		/* Delivered: half-close, then linger for the client's EOF so
		 * unread bytes cause no reset. */
		half_close_when_sent(c);
		break;
	default:
		break;
	}
}

static void
client_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->state == CONN_TLS) {
		if (what & BEV_EVENT_CONNECTED) {
			mitm_client_ready(c);
			c->state = CONN_HEAD;
			c->scanned = 0;
			evtimer_del(c->timer);
			set_timer(c, PROXY_HEAD_TIMEOUT);
			parse_head(c);
		} else
			mitm_client_failed(c);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		switch (c->state) {
		case CONN_HTTP:
			http_fwd_client_eof(c);
			return;
		case CONN_HEAD:
			if (c->scanned == 0 && evbuffer_get_length(
			    bufferevent_get_input(c->client)) == 0 &&
			    evbuffer_get_length(bufferevent_get_output(
			    c->client)) > 0) {
				/* Its last answer is still going out. */
				c->client_eof = true;
				conn_finish(c);
				return;
			}
			conn_close(c, c->scanned || evbuffer_get_length(
			    bufferevent_get_input(c->client)) ?
			    "client closed mid-head" : NULL);
			return;
		case CONN_CLOSING:
			if (evbuffer_get_length(bufferevent_get_output(
			    c->client)) > 0) {
				/* The answer is still going out. */
				c->client_eof = true;
				bufferevent_disable(c->client, EV_READ);
				return;
			}
			conn_close(c, NULL);
			return;
		case CONN_DIAL:
			/* A half-close, as far as we can tell: whether what
			 * came before it is a whole request is known once the
			 * origin takes it (pump_request); a tunnel passes it
			 * on (it reads the EOF again from the socket). */
			c->client_eof = true;
			c->req.client_keepalive = false;
			bufferevent_disable(c->client, EV_READ);
			return;
		default:
			conn_close(c, "client closed");
			return;
		}
	}
	conn_close(c, (what & BEV_EVENT_ERROR) && errno ? strerror(errno) :
	    "client error");
}
