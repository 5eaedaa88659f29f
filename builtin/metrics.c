/*
 * Prometheus metrics. The counters the server lacks (by door and decision,
 * by rule) are kept here as small label tables, bounded; the text is made
 * per scrape from them, the server's statistics, the LLM totals (llm.h)
 * and the hooks' counts. The endpoint is a one-request-per-connection
 * HTTP/1.1 server on loopback, its heads read through the one parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "builtin/account.h"
#include "builtin/addr.h"
#include "builtin/audit.h"
#include "builtin/hooks.h"
#include "builtin/http_parse.h"
#include "builtin/llm.h"
#include "builtin/metrics.h"
#include "builtin/proxy.h"
#include "builtin/sandbox.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define METRICS_PAUSE_MS	100	/* accept paused: out of descriptors */

/* One labelled counter: one or two label values. */
struct series {
	char		*a;
	char		*b;		/* NULL: one label */
	uint64_t	 n;
};

struct family {
	struct series	*v;
	size_t		 n;
	size_t		 cap;
};

struct scrape {
	struct metrics		*m;
	TAILQ_ENTRY(scrape)	 entry;
	struct bufferevent	*bev;
	size_t			 scanned;
	bool			 answered;
};
TAILQ_HEAD(scrape_list, scrape);

struct metrics {
	struct server		*srv;
	struct family		 requests;	/* door, decision */
	struct family		 errors;	/* door */
	struct family		 denials;	/* rule */
	struct evconnlistener	*lev;
	struct event		*pause;
	struct scrape_list	 scrapes;
	unsigned		 nscrapes;
	unsigned		 port;
};

/* -------------------------------------------------------------------------
 * Counters
 */

static bool
same(const char *x, const char *y)
{
	return (x == NULL && y == NULL) || (x != NULL && y != NULL &&
	    strcmp(x, y) == 0);
}

/* Count one for (a, b); past METRICS_SERIES_MAX new label values share
 * one "(other)" series, so a flood of names cannot grow memory. */
static void
family_add(struct family *f, const char *a, const char *b)
{
	struct series *s;

	for (size_t i = 0; i < f->n; i++)
		if (same(f->v[i].a, a) && same(f->v[i].b, b)) {
			f->v[i].n++;
			return;
		}
	if (f->n >= METRICS_SERIES_MAX) {
		a = "(other)";
		b = b != NULL ? "(other)" : NULL;
		for (size_t i = METRICS_SERIES_MAX; i < f->n; i++)
			if (same(f->v[i].a, a) && same(f->v[i].b, b)) {
				f->v[i].n++;
				return;
			}
	}
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 8;
		f->v = xreallocarray(f->v, f->cap, sizeof *f->v);
	}
	s = &f->v[f->n++];
	s->a = xstrdup(a);
	s->b = b != NULL ? xstrdup(b) : NULL;
	s->n = 1;
}

static void
family_clear(struct family *f)
{
	for (size_t i = 0; i < f->n; i++) {
		free(f->v[i].a);
		free(f->v[i].b);
	}
	free(f->v);
	memset(f, 0, sizeof *f);
}

struct metrics *
metrics_new(void)
{
	struct metrics *m = xcalloc(1, sizeof *m);

	TAILQ_INIT(&m->scrapes);
	return m;
}

void
metrics_audit(struct metrics *m, const struct audit_event *e)
{
	const char *door;

	if (m == NULL || e->event == NULL)
		return;
	/* llm and budget events follow a request's own: not counted. */
	if (strcmp(e->event, "request") != 0 &&
	    strcmp(e->event, "connect") != 0 &&
	    strcmp(e->event, "deny") != 0 && strcmp(e->event, "error") != 0)
		return;
	door = e->door != NULL ? e->door : "none";
	family_add(&m->requests, door, e->decision != NULL ? e->decision :
	    "none");
	if (strcmp(e->event, "error") == 0)
		family_add(&m->errors, door, NULL);
	else if (strcmp(e->event, "deny") == 0)
		family_add(&m->denials, e->rule != NULL ? e->rule : "(none)",
		    NULL);
}

/* -------------------------------------------------------------------------
 * The text
 */

/* A label value: backslash, double quote and newline escaped. */
static void
put_value(struct evbuffer *out, const char *v)
{
	for (const char *p = v; *p != '\0'; p++) {
		if (*p == '\\')
			evbuffer_add(out, "\\\\", 2);
		else if (*p == '"')
			evbuffer_add(out, "\\\"", 2);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, p, 1);
	}
}

static void
header(struct evbuffer *out, const char *name, const char *type,
    const char *help)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
	    name, type);
}

/* name{k1="v1",k2="v2"} n; k1 NULL: no labels. */
static void
sample(struct evbuffer *out, const char *name, const char *k1,
    const char *v1, const char *k2, const char *v2, uint64_t n)
{
	evbuffer_add(out, name, strlen(name));
	if (k1 != NULL) {
		evbuffer_add_printf(out, "{%s=\"", k1);
		put_value(out, v1);
		if (k2 != NULL) {
			evbuffer_add_printf(out, "\",%s=\"", k2);
			put_value(out, v2);
		}
		evbuffer_add(out, "\"}", 2);
	}
	evbuffer_add_printf(out, " %llu\n", (unsigned long long)n);
}

static void
family_text(struct evbuffer *out, const struct family *f, const char *name,
    const char *k1, const char *k2)
{
	for (size_t i = 0; i < f->n; i++)
		sample(out, name, k1, f->v[i].a, k2, f->v[i].b, f->v[i].n);
}

static void
llm_text(struct evbuffer *out, const struct llm_stats *st)
{
	static const char *const types[] = { "input", "output", "cache_read",
	    "cache_write" };
	size_t n = st != NULL ? llm_stats_rows(st) : 0;

	header(out, "egress_run_llm_requests_total", "counter",
	    "LLM calls admitted, by provider and model.");
	for (size_t i = 0; i < n; i++) {
		const struct llm_row *r = llm_stats_row(st, i);
		sample(out, "egress_run_llm_requests_total", "provider",
		    r->provider, "model", r->model, r->requests);
	}
	header(out, "egress_run_llm_errors_total", "counter",
	    "LLM calls that failed (status >= 400 or no response).");
	for (size_t i = 0; i < n; i++) {
		const struct llm_row *r = llm_stats_row(st, i);
		sample(out, "egress_run_llm_errors_total", "provider",
		    r->provider, "model", r->model, r->errors);
	}
	header(out, "egress_run_llm_refused_total", "counter",
	    "LLM calls refused by --llm-budget or --llm-max-requests.");
	for (size_t i = 0; i < n; i++) {
		const struct llm_row *r = llm_stats_row(st, i);
		sample(out, "egress_run_llm_refused_total", "provider",
		    r->provider, "model", r->model, r->refused);
	}
	header(out, "egress_run_llm_tokens_total", "counter",
	    "LLM tokens by provider, model and type.");
	for (size_t i = 0; i < n; i++) {
		const struct llm_row *r = llm_stats_row(st, i);
		const uint64_t v[] = { r->usage.input, r->usage.output,
		    r->usage.cache_read, r->usage.cache_write };

		for (size_t t = 0; t < 4; t++) {
			evbuffer_add(out, "egress_run_llm_tokens_total{"
			    "provider=\"", 38);
			put_value(out, r->provider);
			evbuffer_add(out, "\",model=\"", 9);
			put_value(out, r->model);
			evbuffer_add_printf(out, "\",type=\"%s\"} %llu\n",
			    types[t], (unsigned long long)v[t]);
		}
	}
}

static void
hooks_text(struct evbuffer *out, const struct hooks *hs)
{
	size_t		  n = hooks_count(hs);
	struct hook_stats st;

	header(out, "egress_run_hook_deliveries_total", "counter",
	    "Hook events delivered (a 2xx answer, a line written) or failed "
	    "after every try.");
	for (size_t i = 0; i < n; i++) {
		hooks_stats(hs, i, &st);
		sample(out, "egress_run_hook_deliveries_total", "hook",
		    st.name, "result", "delivered", st.delivered);
		sample(out, "egress_run_hook_deliveries_total", "hook",
		    st.name, "result", "failed", st.failed);
	}
	header(out, "egress_run_hook_drops_total", "counter",
	    "Hook events dropped: the queue was full.");
	for (size_t i = 0; i < n; i++) {
		hooks_stats(hs, i, &st);
		sample(out, "egress_run_hook_drops_total", "hook", st.name,
		    NULL, NULL, st.dropped);
	}
	header(out, "egress_run_hook_queued", "gauge",
	    "Hook events waiting or in flight.");
	for (size_t i = 0; i < n; i++) {
		hooks_stats(hs, i, &st);
		sample(out, "egress_run_hook_queued", "hook", st.name, NULL,
		    NULL, st.queued);
	}
}

static uint64_t
sandbox_counter(const struct sandbox_counters *n, int i)
{
	switch (i) {
	case 0:
		return n->conns;
	case 1:
		return n->requests;
	default:
		return n->denials;
	}
}

/* Per sandbox, when there is a registry: whose traffic it was. */
static void
sandboxes_text(struct evbuffer *out, const struct sandbox_list *l)
{
	static const char *const name[] = {
		"egress_run_sandbox_connections_total",
		"egress_run_sandbox_requests_total",
		"egress_run_sandbox_denials_total",
	};
	static const char *const help[] = {
		"Client connections attributed to the sandbox.",
		"Requests and tunnels of the sandbox.",
		"Requests and tunnels of the sandbox refused.",
	};
	const struct sandbox *sb;

	if (l == NULL)
		return;
	for (int i = 0; i < 3; i++) {
		header(out, name[i], "counter", help[i]);
		TAILQ_FOREACH(sb, l, entry)
			sample(out, name[i], "sandbox", sb->id, NULL, NULL,
			    sandbox_counter(sb->n, i));
	}
	header(out, "egress_run_sandbox_bytes_total", "counter",
	    "Bytes relayed for the sandbox, up and down.");
	TAILQ_FOREACH(sb, l, entry) {
		sample(out, "egress_run_sandbox_bytes_total", "sandbox",
		    sb->id, "direction", "up", sb->n->bytes_up);
		sample(out, "egress_run_sandbox_bytes_total", "sandbox",
		    sb->id, "direction", "down", sb->n->bytes_down);
	}
	header(out, "egress_run_sandbox_llm_tokens_total", "counter",
	    "LLM tokens of the sandbox, input and output.");
	TAILQ_FOREACH(sb, l, entry) {
		sample(out, "egress_run_sandbox_llm_tokens_total", "sandbox",
		    sb->id, "type", "input", sb->n->llm_input);
		sample(out, "egress_run_sandbox_llm_tokens_total", "sandbox",
		    sb->id, "type", "output", sb->n->llm_output);
	}
}

char *
metrics_format(const struct metrics *m, const struct metrics_snapshot *snap,
    size_t *len)
{
	struct evbuffer	*out = evbuffer_new();
	char		*text;

	header(out, "egress_run_connections_total", "counter",
	    "Client connections accepted by the proxy.");
	sample(out, "egress_run_connections_total", NULL, NULL, NULL, NULL,
	    snap->conns);
	header(out, "egress_run_connections_open", "gauge",
	    "Client connections open now.");
	sample(out, "egress_run_connections_open", NULL, NULL, NULL, NULL,
	    snap->conns_open);
	header(out, "egress_run_requests_total", "counter",
	    "Requests and tunnels by door and policy decision (none: "
	    "refused before the policy was asked).");
	family_text(out, &m->requests, "egress_run_requests_total", "door",
	    "decision");
	header(out, "egress_run_errors_total", "counter",
	    "Requests and tunnels that ended in an error, by door.");
	family_text(out, &m->errors, "egress_run_errors_total", "door", NULL);
	header(out, "egress_run_denials_total", "counter",
	    "Destinations refused, by the deciding rule.");
	family_text(out, &m->denials, "egress_run_denials_total", "rule",
	    NULL);
	header(out, "egress_run_bytes_total", "counter",
	    "Bytes relayed for finished requests and tunnels, up (client to "
	    "origin) and down.");
	sample(out, "egress_run_bytes_total", "direction", "up", NULL, NULL,
	    snap->bytes_up);
	sample(out, "egress_run_bytes_total", "direction", "down", NULL, NULL,
	    snap->bytes_down);
	llm_text(out, snap->llm);
	hooks_text(out, snap->hooks);
	sandboxes_text(out, snap->sandboxes);
	*len = evbuffer_get_length(out);
	text = xcalloc(1, *len + 1);
	evbuffer_remove(out, text, *len);
	evbuffer_free(out);
	return text;
}

/* -------------------------------------------------------------------------
 * The endpoint
 */

int
metrics_parse_addr(const char *spec, struct sockaddr_storage *ss, char *err,
    size_t errlen)
{
	struct dest	 d;
	char		*host = NULL;
	unsigned	 port;
	int		 r = -1;

	memset(ss, 0, sizeof *ss);
	if (util_hostport(spec, &host, &port, true) != 0) {
		snprintf(err, errlen, "--metrics '%s' is not ADDR:PORT (e.g. "
		    "127.0.0.1:9464)", spec);
		goto out;
	}
	if (strcmp(host, "localhost") == 0) {
		free(host);
		host = xstrdup("127.0.0.1");
	}
	if (addr_parse_host(host, strlen(host), &d) != ADDR_OK ||
	    d.kind == ADDR_NAME) {
		snprintf(err, errlen, "--metrics '%s': '%s' is not an IP "
		    "address (use 127.0.0.1 or [::1])", spec, host);
		goto out;
	}
	if (!(d.kind == ADDR_IPV4 && (ntohl(d.v4.s_addr) >> 24) == 127) &&
	    !(d.kind == ADDR_IPV6 && IN6_IS_ADDR_LOOPBACK(&d.v6))) {
		snprintf(err, errlen, "--metrics '%s': metrics are served on "
		    "loopback only (127.0.0.1 or [::1]), where only this host "
		    "can read them", spec);
		goto out;
	}
	if (d.kind == ADDR_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;
		sin->sin_family = AF_INET;
		sin->sin_addr = d.v4;
		sin->sin_port = htons((uint16_t)port);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = d.v6;
		sin6->sin6_port = htons((uint16_t)port);
	}
	r = 0;
out:
	free(host);
	return r;
}

static void
scrape_close(struct scrape *s)
{
	TAILQ_REMOVE(&s->m->scrapes, s, entry);
	s->m->nscrapes--;
	bufferevent_free(s->bev);
	free(s);
}

static void
answer(struct scrape *s, int status, const char *reason, const char *extra,
    const char *body, size_t len, bool head)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%sContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", status, reason, extra, len);
	if (!head)
		evbuffer_add(out, body, len);
	s->answered = true;
	bufferevent_disable(s->bev, EV_READ);
	bufferevent_enable(s->bev, EV_WRITE);
}

static void
serve(struct scrape *s, const struct http_request *req)
{
	struct server		*srv = s->m->srv;
	struct metrics_snapshot	 snap;
	size_t			 plen, len;
	char			*text;
	bool			 head = http_slice_eq(req->method, "HEAD");

	plen = req->path.len;
	if (req->path.p != NULL && memchr(req->path.p, '?', plen) != NULL)
		plen = (size_t)((const char *)memchr(req->path.p, '?', plen) -
		    req->path.p);
	if (req->form != HTTP_FORM_ORIGIN || plen != 8 ||
	    memcmp(req->path.p, "/metrics", 8) != 0) {
		static const char nf[] = "not found: metrics are at /metrics\n";
		answer(s, 404, "Not Found", "Content-Type: text/plain\r\n", nf,
		    sizeof nf - 1, head);
		return;
	}
	if (!head && !http_slice_eq(req->method, "GET")) {
		static const char na[] = "use GET\n";
		answer(s, 405, "Method Not Allowed", "Allow: GET, HEAD\r\n"
		    "Content-Type: text/plain\r\n", na, sizeof na - 1, false);
		return;
	}
	memset(&snap, 0, sizeof snap);
	if (srv != NULL) {
		snap.conns = srv->stats.conns;
		snap.conns_open = srv->nconns;
		snap.bytes_up = srv->stats.bytes_up;
		snap.bytes_down = srv->stats.bytes_down;
		snap.llm = srv->sb != NULL ? srv->sb->llm : NULL;
		snap.hooks = srv->hooks;
		snap.sandboxes = srv->sandboxes;
	}
	text = metrics_format(s->m, &snap, &len);
	answer(s, 200, "OK", "Content-Type: text/plain; version=0.0.4; "
	    "charset=utf-8\r\n", text, len, head);
	free(text);
}

static void
scrape_read(struct bufferevent *bev, void *arg)
{
	struct scrape		*s = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 p;
	struct http_request	 req;
	size_t			 len = evbuffer_get_length(in);
	int			 r;

	if (s->answered)
		return;
	evbuffer_ptr_set(in, &p, s->scanned > 3 ? s->scanned - 3 : 0,
	    EVBUFFER_PTR_SET);
	p = evbuffer_search(in, "\r\n\r\n", 4, &p);
	if (p.pos == -1) {
		s->scanned = len;
		if (len > METRICS_HEAD_MAX)
			answer(s, 431, "Request Header Fields Too Large", "",
			    "", 0, false);
		return;
	}
	len = (size_t)p.pos + 4;
	r = http_parse_request(evbuffer_pullup(in, (ssize_t)len), len, &req);
	if (r < 0) {
		answer(s, r == HTTP_E_VERSION ? 505 : 400, r == HTTP_E_VERSION ?
		    "HTTP Version Not Supported" : "Bad Request", "", "", 0,
		    false);
		return;
	}
	serve(s, &req);
}

static void
scrape_write(struct bufferevent *bev, void *arg)
{
	struct scrape *s = arg;

	if (s->answered && evbuffer_get_length(bufferevent_get_output(bev)) ==
	    0)
		scrape_close(s);
}

static void
scrape_event(struct bufferevent *bev, short what, void *arg)
{
	struct scrape *s = arg;

	/* A client that half-closes after its request still gets it all. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    s->answered && evbuffer_get_length(bufferevent_get_output(bev)) >
	    0) {
		bufferevent_disable(bev, EV_READ);
		return;
	}
	scrape_close(s);
}

static void
on_accept(struct evconnlistener *lev, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct metrics	*m = arg;
	struct scrape	*s;
	struct timeval	 tv = { METRICS_TIMEOUT, 0 };

	(void)lev;
	(void)sa;
	(void)salen;
	if (m->nscrapes >= METRICS_CONNS_MAX) {
		close(fd);
		return;
	}
	s = xcalloc(1, sizeof *s);
	s->m = m;
	if ((s->bev = bufferevent_socket_new(evconnlistener_get_base(lev), fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		close(fd);
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&m->scrapes, s, entry);
	m->nscrapes++;
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_setcb(s->bev, scrape_read, scrape_write, scrape_event, s);
	bufferevent_enable(s->bev, EV_READ);
}

static void
on_pause_end(evutil_socket_t fd, short what, void *arg)
{
	struct metrics *m = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(m->lev);
}

/* Out of descriptors, say: stop accepting a moment, not spin. */
static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
	struct metrics	*m = arg;
	struct timeval	 tv = { 0, METRICS_PAUSE_MS * 1000 };

	evconnlistener_disable(lev);
	evtimer_add(m->pause, &tv);
}

struct metrics *
metrics_start(struct server *srv, const char *spec, bool fail_closed,
    char *err, size_t errlen, bool *fatal)
{
	struct metrics		*m;
	struct sockaddr_storage	 ss, bound;
	socklen_t		 blen = sizeof bound;
	int			 fd = -1, one = 1;

	*fatal = false;
	if (metrics_parse_addr(spec, &ss, err, errlen) != 0) {
		*fatal = true;
		return NULL;
	}
	m = metrics_new();
	m->srv = srv;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, ss.ss_family == AF_INET ?
	    sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6)) == -1 ||
	    listen(fd, 64) == -1 ||
	    getsockname(fd, (struct sockaddr *)&bound, &blen) == -1) {
		snprintf(err, errlen, "cannot serve metrics on %s: %s", spec,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		if (fail_closed) {
			metrics_free(m);
			return NULL;
		}
		log_warn("%s; running without --metrics", err);
		return m;
	}
	m->port = ntohs(bound.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&bound)->sin_port :
	    ((struct sockaddr_in6 *)&bound)->sin6_port);
	m->pause = evtimer_new(srv->base, on_pause_end, m);
	m->lev = evconnlistener_new(srv->base, on_accept, m,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (m->lev == NULL) {
		close(fd);
		snprintf(err, errlen, "cannot serve metrics on %s", spec);
		metrics_free(m);
		return NULL;
	}
	evconnlistener_set_error_cb(m->lev, on_accept_error);
	log_info("metrics at http://%s/metrics (port %u)", spec, m->port);
	return m;
}

unsigned
metrics_port(const struct metrics *m)
{
	return m != NULL && m->lev != NULL ? m->port : 0;
}

void
metrics_free(struct metrics *m)
{
	struct scrape *s;

	if (m == NULL)
		return;
	while ((s = TAILQ_FIRST(&m->scrapes)) != NULL)
		scrape_close(s);
	if (m->lev != NULL)
		evconnlistener_free(m->lev);
	if (m->pause != NULL)
		event_free(m->pause);
	family_clear(&m->requests);
	family_clear(&m->errors);
	family_clear(&m->denials);
	free(m);
}
