/*
 * Event hooks: an event's JSON built once, then appended to a file (one
 * write per line, O_APPEND) or queued for a webhook. A webhook delivery is
 * a small state machine on the loop: dial (dial.c, DIAL_HOOK: the
 * corporate upstream applies, the agent's policy does not), TLS for
 * https:// (mitm.c's verifying client), one POST with Connection: close,
 * the answer's head read through the one HTTP parser; a timeout per try,
 * a few tries with backoff, a bounded queue whose overflow is counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "builtin/audit.h"
#include "builtin/dial.h"
#include "builtin/hooks.h"
#include "builtin/http_parse.h"
#include "builtin/mitm.h"
#include "builtin/proxy.h"
#include "builtin/sandbox.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "launcher/config.h"

#define HOOK_ANSWER_MAX		(16 * 1024)	/* the webhook's answer head */

static const char *const kind_names[] = {
	[HOOK_REQUEST] = "request",
	[HOOK_RESPONSE] = "response",
	[HOOK_DENY] = "deny",
	[HOOK_LLM] = "llm",
};
#define NKINDS	(sizeof kind_names / sizeof kind_names[0])

struct delivery {
	struct hook		*hook;
	TAILQ_ENTRY(delivery)	 entry;
	char			*body;
	size_t			 len;
	unsigned		 tries;
	bool			 backoff;	/* waiting to try again */
	struct dial		*dial;
	struct bufferevent	*bev;
	struct event		*timer;		/* this try, or the backoff */
	size_t			 scanned;	/* answer bytes searched */
};
TAILQ_HEAD(delivery_list, delivery);

struct hook {
	struct hooks		*hooks;
	struct hook_spec	 spec;
	char			*label;		/* name, or EVENT:DISPLAY */
	char			*head;		/* request line and fixed
						   headers (webhooks) */
	int			 fd;		/* file hooks */
	struct delivery_list	 queue;		/* waiting */
	size_t			 nqueue;
	struct delivery_list	 active;	/* in flight or backing off */
	size_t			 nactive;
	uint64_t		 delivered;
	uint64_t		 failed;
	uint64_t		 full;		/* dropped: queue full */
	uint64_t		 unsent;	/* dropped: unsent at exit */
	bool			 failing;	/* warned; quiet until fixed */
	bool			 warned_full;
	char			 why[224];	/* the last failure */
};

struct hooks {
	struct event_base	*base;
	struct server		*srv;
	struct hook		*v;
	size_t			 n;
	unsigned		 kinds;		/* bit per kind with a hook */
	bool			 closing;	/* flushing at exit */
	bool			 expired;	/* the flush's wait is over */
};

static void	pump(struct hook *);
static void	try_send(struct delivery *);

/* -------------------------------------------------------------------------
 * Specs
 */

const char *
hooks_kind_name(enum hook_kind k)
{
	return (size_t)k < NKINDS ? kind_names[k] : "?";
}

int
hooks_kind_parse(const char *s, size_t len)
{
	for (size_t i = 0; i < NKINDS; i++)
		if (strlen(kind_names[i]) == len &&
		    memcmp(kind_names[i], s, len) == 0)
			return (int)i;
	return -1;
}

static bool
name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
}

/* "host[:port]" for a Host header or a URL: brackets around IPv6, the port
 * only when it is not the scheme's own. */
static void
authority(const struct dest *d, bool tls, char *buf, size_t len)
{
	bool v6 = d->kind == ADDR_IPV6;

	if (d->port == (tls ? 443 : 80))
		snprintf(buf, len, "%s%s%s", v6 ? "[" : "", d->host,
		    v6 ? "]" : "");
	else
		snprintf(buf, len, "%s%s%s:%u", v6 ? "[" : "", d->host,
		    v6 ? "]" : "", d->port);
}

static int
parse_url(struct hook_spec *h, const char *url, const char **why)
{
	const char	*auth, *rest;
	char		 a[ADDR_HOST_MAX + 16];
	size_t		 alen, plen;
	int		 r;

	for (const char *p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
			*why = "the URL has a space or a control character: "
			    "percent-encode it";
			return -1;
		}
	if (strncmp(url, "https://", 8) == 0) {
		h->tls = true;
		auth = url + 8;
	} else
		auth = url + 7;		/* "http://", checked by the caller */
	alen = strcspn(auth, "/?#");
	if (memchr(auth, '@', alen) != NULL) {
		*why = "credentials in a webhook URL are not supported: put "
		    "a token in its path or query";
		return -1;
	}
	if ((r = addr_parse_authority(auth, alen, h->tls ? 443 : 80,
	    &h->dest)) != ADDR_OK) {
		*why = addr_strerror(r);
		return -1;
	}
	rest = auth + alen;
	if (strchr(rest, '#') != NULL) {
		*why = "a webhook URL has no use for a fragment ('#')";
		return -1;
	}
	if (*rest == '/')
		h->target = xstrdup(rest);
	else
		h->target = xprintf("/%s", rest);	/* "" or "?query" */
	plen = strcspn(h->target, "?");
	authority(&h->dest, h->tls, a, sizeof a);
	h->display = xprintf("%s://%s%.*s", h->tls ? "https" : "http", a,
	    (int)plen, h->target);
	return 0;
}

int
hooks_spec_parse(const char *spec, struct hook_spec *h, char *err,
    size_t errlen)
{
	const char	*colon, *eq, *ev, *target, *why = NULL;
	int		 k;

	memset(h, 0, sizeof *h);
	if ((colon = strchr(spec, ':')) == NULL) {
		snprintf(err, errlen, "expected [NAME=]EVENT:TARGET, EVENT "
		    "one of request, response, deny, llm and TARGET file:PATH "
		    "or an http:// or https:// URL");
		return -1;
	}
	ev = spec;
	if ((eq = memchr(spec, '=', (size_t)(colon - spec))) != NULL) {
		size_t n = (size_t)(eq - spec);

		if (n == 0 || n > HOOK_NAME_MAX) {
			snprintf(err, errlen, "a hook's NAME is 1 to %d "
			    "characters", HOOK_NAME_MAX);
			return -1;
		}
		for (size_t i = 0; i < n; i++)
			if (!name_char(spec[i])) {
				snprintf(err, errlen, "a hook's NAME may hold "
				    "letters, digits, '.', '_' and '-' only");
				return -1;
			}
		memcpy(h->name, spec, n);
		h->name[n] = '\0';
		ev = eq + 1;
	}
	if ((k = hooks_kind_parse(ev, (size_t)(colon - ev))) < 0) {
		snprintf(err, errlen, "unknown event '%.*s': use request, "
		    "response, deny or llm", (int)((colon - ev) > 32 ? 32 :
		    (colon - ev)), ev);
		return -1;
	}
	h->kind = (enum hook_kind)k;
	target = colon + 1;
	if (strncmp(target, "file:", 5) == 0) {
		if (target[5] == '\0') {
			snprintf(err, errlen, "file: needs a PATH");
			return -1;
		}
		h->path = xstrdup(target + 5);
		h->display = xprintf("file:%s", h->path);
		return 0;
	}
	if (strncmp(target, "http://", 7) != 0 &&
	    strncmp(target, "https://", 8) != 0) {
		snprintf(err, errlen, "TARGET must be file:PATH or an http:// "
		    "or https:// URL");
		return -1;
	}
	h->webhook = true;
	if (parse_url(h, target, &why) != 0) {
		snprintf(err, errlen, "%s", why);
		hooks_spec_clear(h);
		return -1;
	}
	return 0;
}

void
hooks_spec_clear(struct hook_spec *h)
{
	free(h->path);
	free(h->target);
	free(h->display);
	memset(h, 0, sizeof *h);
}

/* -------------------------------------------------------------------------
 * Payloads
 */

int
hooks_kind_of(const struct audit_event *e)
{
	if (e->event == NULL)
		return -1;
	if (strcmp(e->event, "deny") == 0)
		return HOOK_DENY;
	if (strcmp(e->event, "llm") == 0 || strcmp(e->event, "budget") == 0)
		return HOOK_LLM;
	if (strcmp(e->event, "request") == 0 ||
	    strcmp(e->event, "connect") == 0 ||
	    strcmp(e->event, "error") == 0)
		return HOOK_RESPONSE;
	return -1;
}

/* A JSON object being written: every field goes in whole or not at all,
 * and two bytes are always left for the closing brace and the NUL. */
struct jbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static void
j_field(struct jbuf *b, const char *key, const char *raw, size_t rawlen)
{
	size_t klen = strlen(key);

	if (b->len + klen + 4 + rawlen + 2 > b->cap)
		return;
	b->p[b->len++] = ',';
	b->p[b->len++] = '"';
	memcpy(b->p + b->len, key, klen);
	b->len += klen;
	b->p[b->len++] = '"';
	b->p[b->len++] = ':';
	memcpy(b->p + b->len, raw, rawlen);
	b->len += rawlen;
	b->p[b->len] = '\0';
}

/* A string value (len bytes, need not be NUL-terminated), cut to fit. */
static void
j_str(struct jbuf *b, const char *key, const char *v, size_t vlen)
{
	size_t klen = strlen(key), n;

	if (v == NULL) {
		j_field(b, key, "null", 4);
		return;
	}
	if (b->len + klen + 6 + 2 > b->cap)
		return;
	j_field(b, key, "\"", 1);
	n = audit_json_escape(b->p + b->len, b->cap - b->len - 2, v, vlen);
	b->len += n;
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
}

static void
j_cstr(struct jbuf *b, const char *key, const char *v)
{
	j_str(b, key, v, v ? strlen(v) : 0);
}

static void
j_num(struct jbuf *b, const char *key, long long v, bool null)
{
	char	num[32];
	int	n;

	if (null) {
		j_field(b, key, "null", 4);
		return;
	}
	n = snprintf(num, sizeof num, "%lld", v);
	j_field(b, key, num, (size_t)n);
}

static void
j_bool(struct jbuf *b, const char *key, bool v)
{
	j_field(b, key, v ? "true" : "false", v ? 4 : 5);
}

/* scheme://host[:port]/path, never the query; 0 when there is no URL (a
 * tunnel: no path). */
static size_t
event_url(const struct audit_event *e, bool tls, char *buf, size_t len)
{
	struct dest	d;
	char		a[ADDR_HOST_MAX + 16];
	size_t		plen, o;
	int		n;

	if (e->host == NULL || e->path == NULL || len < 16)
		return 0;
	/* Hosts are canonical (addr.h); anything else makes no URL. */
	for (const char *p = e->host; *p != '\0'; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f ||
		    strchr("/?#@[]\\\"", *p) != NULL)
			return 0;
	memset(&d, 0, sizeof d);
	snprintf(d.host, sizeof d.host, "%s", e->host);
	d.kind = strchr(e->host, ':') != NULL ? ADDR_IPV6 : ADDR_NAME;
	d.port = (uint16_t)e->port;
	authority(&d, tls, a, sizeof a);
	n = snprintf(buf, len, "%s://%s", tls ? "https" : "http", a);
	if (n < 0 || (size_t)n >= len)
		return 0;
	o = (size_t)n;
	/* The path has no query already; a stray '?' or '#' ends it. */
	for (plen = 0; plen < e->pathlen && e->path[plen] != '?' &&
	    e->path[plen] != '#'; plen++)
		;
	if (o + 2 > len)
		return 0;
	if (plen == 0 || e->path[0] != '/')
		buf[o++] = '/';
	if (plen > len - o - 1)
		plen = len - o - 1;
	memcpy(buf + o, e->path, plen);
	o += plen;
	buf[o] = '\0';
	return o;
}

size_t
hooks_payload(enum hook_kind kind, const struct audit_event *e, bool tls,
    const struct timeval *now, char *buf, size_t len)
{
	struct jbuf	 b = { buf, 0, len };
	struct tm	 tm;
	char		 url[ADDR_HOST_MAX + 1100];
	size_t		 ulen;
	const char	*ev = hooks_kind_name(kind);
	int		 n;

	if (len < 64) {
		if (len > 0)
			buf[0] = '\0';
		return 0;
	}
	if (kind == HOOK_LLM && e->event != NULL &&
	    strcmp(e->event, "budget") == 0)
		ev = "budget";
	gmtime_r(&now->tv_sec, &tm);
	n = snprintf(buf, len, "{\"timestamp\":\"%04d-%02d-%02dT%02d:%02d:"
	    "%02d.%03ldZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, (long)now->tv_usec / 1000);
	b.len = (size_t)n;
	j_cstr(&b, "event", ev);
	j_cstr(&b, "audit_event", kind == HOOK_REQUEST ? NULL : e->event);
	j_cstr(&b, "door", e->door);
	j_cstr(&b, "method", e->method);
	ulen = event_url(e, tls, url, sizeof url);
	j_str(&b, "url", ulen ? url : NULL, ulen);
	j_cstr(&b, "host", e->host);
	j_num(&b, "port", e->port, e->port == 0);
	j_num(&b, "status", e->status, e->status == 0 ||
	    kind == HOOK_REQUEST);
	/* Whether, never which: the binding's name is for the audit log. */
	j_bool(&b, "secret_injected", e->secret != NULL);
	j_num(&b, "latency_ms", e->ms, kind == HOOK_REQUEST);
	if (kind != HOOK_REQUEST) {
		j_num(&b, "bytes_up", (long long)e->bytes_up, false);
		j_num(&b, "bytes_down", (long long)e->bytes_down, false);
	}
	j_cstr(&b, "rule", e->rule);
	j_cstr(&b, "reason", e->reason);
	if (e->sandbox != NULL)		/* a daemon's: whose it was */
		j_cstr(&b, "sandbox", e->sandbox);
	if (e->llm != NULL) {
		const struct audit_llm *l = e->llm;

		j_cstr(&b, "provider", l->provider);
		j_cstr(&b, "model", l->model);
		j_bool(&b, "stream", l->stream);
		j_num(&b, "input_tokens", (long long)l->input, false);
		j_num(&b, "output_tokens", (long long)l->output, false);
		j_num(&b, "cache_read_tokens", (long long)l->cache_read,
		    false);
		j_num(&b, "cache_write_tokens", (long long)l->cache_write,
		    false);
		j_bool(&b, "estimated", l->estimated);
		j_num(&b, "ttfb_ms", l->ttfb_ms, l->ttfb_ms < 0);
	}
	buf[b.len++] = '}';
	buf[b.len] = '\0';
	return b.len;
}

/* -------------------------------------------------------------------------
 * Webhook deliveries
 */

static void
attempt_close(struct delivery *d)
{
	dial_cancel(d->dial);
	d->dial = NULL;
	if (d->bev != NULL)
		bufferevent_free(d->bev);
	d->bev = NULL;
	d->scanned = 0;
	evtimer_del(d->timer);
}

static void
delivery_free(struct delivery *d)
{
	attempt_close(d);
	event_free(d->timer);
	free(d->body);
	free(d);
}

/* The delivery is over, one way or the other: make room for the next. */
static void
done(struct delivery *d)
{
	struct hook *h = d->hook;

	TAILQ_REMOVE(&h->active, d, entry);
	h->nactive--;
	delivery_free(d);
	pump(h);
}

static void
succeeded(struct delivery *d)
{
	struct hook *h = d->hook;

	h->delivered++;
	if (h->failing) {
		log_warn("hook %s: delivering again", h->label);
		h->failing = false;
	}
	done(d);
}

/* This try failed; try again after a pause, or give up. */
static void
attempt_failed(struct delivery *d, const char *why, bool retry)
{
	struct hook	*h = d->hook;
	struct timeval	 tv = { 0, 0 };
	long		 ms;

	attempt_close(d);
	snprintf(h->why, sizeof h->why, "%s", why);
	log_debug("hook %s: try %u failed: %s", h->label, d->tries, why);
	if (retry && d->tries < HOOK_ATTEMPTS && !h->hooks->expired) {
		/* At exit there is no time for a pause. */
		ms = h->hooks->closing ? 0 : (long)HOOK_BACKOFF_MS <<
		    (d->tries - 1);
		tv.tv_sec = ms / 1000;
		tv.tv_usec = (ms % 1000) * 1000;
		d->backoff = true;
		evtimer_add(d->timer, &tv);
		return;
	}
	h->failed++;
	if (!h->failing)
		log_warn("hook %s: an event could not be delivered after %u "
		    "tr%s: %s; check the receiver (events are dropped while "
		    "it fails)", h->label, d->tries, d->tries == 1 ? "y" :
		    "ies", why);
	h->failing = true;
	done(d);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct delivery	*d = arg;
	char		 why[64];

	(void)fd;
	(void)what;
	if (d->backoff) {
		try_send(d);
		return;
	}
	snprintf(why, sizeof why, "no answer within %d s",
	    HOOK_TIMEOUT_MS / 1000);
	attempt_failed(d, why, true);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct delivery		*d = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 p;
	struct http_response	 resp;
	size_t			 len;
	char			 why[96];
	int			 r;

	for (;;) {
		len = evbuffer_get_length(in);
		evbuffer_ptr_set(in, &p, d->scanned > 3 ? d->scanned - 3 : 0,
		    EVBUFFER_PTR_SET);
		p = evbuffer_search(in, "\r\n\r\n", 4, &p);
		if (p.pos == -1) {
			d->scanned = len;
			if (len > HOOK_ANSWER_MAX)
				attempt_failed(d, "the webhook's answer head "
				    "is too large", false);
			return;
		}
		len = (size_t)p.pos + 4;
		r = http_parse_response(evbuffer_pullup(in, (ssize_t)len), len,
		    false, false, &resp);
		if (r < 0) {
			snprintf(why, sizeof why, "the webhook's answer is not "
			    "HTTP: %s", http_parse_strerror(r));
			attempt_failed(d, why, false);
			return;
		}
		if (resp.status >= 200)
			break;
		evbuffer_drain(in, (size_t)r);	/* 100 Continue &c */
		d->scanned = 0;
	}
	if (resp.status < 300) {
		succeeded(d);
		return;
	}
	snprintf(why, sizeof why, "the webhook answered %d", resp.status);
	/* Worth another try: the receiver's trouble, not our request's. */
	attempt_failed(d, why, resp.status >= 500 || resp.status == 429 ||
	    resp.status == 408);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct delivery	*d = arg;
	char		 why[256];

	if (what & BEV_EVENT_CONNECTED)
		return;			/* TLS is up; the request is queued */
	if (what & BEV_EVENT_EOF)
		snprintf(why, sizeof why, "the webhook closed the connection "
		    "without an answer");
	else if (d->hook->spec.tls)
		mitm_origin_error(bev, why, sizeof why);
	else
		snprintf(why, sizeof why, "%s", evutil_socket_error_to_string(
		    EVUTIL_SOCKET_ERROR()));
	attempt_failed(d, why, true);
}

/* Is a the proxy's own listener? Hook traffic sent there would come back
 * as events: a loop. */
static bool
is_self(const struct server *srv, const struct sockaddr_storage *a)
{
	const struct sockaddr_storage *l = &srv->laddr;

	if (a->ss_family != l->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a,
		    *y = (const void *)l;
		return x->sin_port == y->sin_port &&
		    (x->sin_addr.s_addr == y->sin_addr.s_addr ||
		    y->sin_addr.s_addr == htonl(INADDR_ANY));
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a,
		    *y = (const void *)l;
		return x->sin6_port == y->sin6_port &&
		    (IN6_ARE_ADDR_EQUAL(&x->sin6_addr, &y->sin6_addr) ||
		    IN6_IS_ADDR_UNSPECIFIED(&y->sin6_addr));
	}
	return false;
}

static void
dialed(int fd, const struct dial_result *res, void *arg)
{
	struct delivery		*d = arg;
	struct hook		*h = d->hook;
	struct server		*srv = h->hooks->srv;
	struct bufferevent	*bev;
	struct evbuffer		*out;

	d->dial = NULL;
	if (fd == -1) {
		attempt_failed(d, res->reason, true);
		return;
	}
	if (res->via == NULL && is_self(srv, &res->addr)) {
		close(fd);
		attempt_failed(d, "the webhook is egress-run's own proxy port",
		    false);
		return;
	}
	if (h->spec.tls)
		bev = mitm_client(srv, fd, &h->spec.dest);
	else
		bev = bufferevent_socket_new(h->hooks->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		close(fd);
		attempt_failed(d, "cannot set up TLS to the webhook", false);
		return;
	}
	d->bev = bev;
	if (!h->spec.tls && res->leftover_len > 0)
		evbuffer_add(bufferevent_get_input(bev), res->leftover,
		    res->leftover_len);
	out = bufferevent_get_output(bev);
	evbuffer_add(out, h->head, strlen(h->head));
	evbuffer_add_printf(out, "Content-Length: %zu\r\n\r\n", d->len);
	evbuffer_add(out, d->body, d->len);
	bufferevent_setcb(bev, on_read, NULL, on_event, d);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void
try_send(struct delivery *d)
{
	struct hook	*h = d->hook;
	struct timeval	 tv = { HOOK_TIMEOUT_MS / 1000,
	    (HOOK_TIMEOUT_MS % 1000) * 1000 };

	d->backoff = false;
	d->tries++;
	evtimer_add(d->timer, &tv);
	/* The answer always comes on a later loop turn. */
	d->dial = dial_start(h->hooks->srv, h->hooks->srv->sb != NULL ?
	    h->hooks->srv->sb->policy : NULL, &h->spec.dest, DIAL_HOOK, dialed,
	    d);
}

static void
pump(struct hook *h)
{
	struct delivery *d;

	while (h->nactive < HOOK_PARALLEL &&
	    (d = TAILQ_FIRST(&h->queue)) != NULL) {
		TAILQ_REMOVE(&h->queue, d, entry);
		h->nqueue--;
		TAILQ_INSERT_TAIL(&h->active, d, entry);
		h->nactive++;
		try_send(d);
	}
}

static void
enqueue(struct hook *h, const char *body, size_t len)
{
	struct delivery *d;

	if (h->nqueue >= HOOK_QUEUE_MAX) {
		h->full++;
		if (!h->warned_full)
			log_warn("hook %s: %d events are waiting: dropping new "
			    "ones until the receiver catches up", h->label,
			    HOOK_QUEUE_MAX);
		h->warned_full = true;
		return;
	}
	d = xcalloc(1, sizeof *d);
	d->hook = h;
	d->body = xstrndup(body, len);
	d->len = len;
	d->timer = evtimer_new(h->hooks->base, on_timer, d);
	TAILQ_INSERT_TAIL(&h->queue, d, entry);
	h->nqueue++;
	pump(h);
}

/* One line, one write: appends from several writers never interleave. */
static void
append_line(struct hook *h, const char *line, size_t len)
{
	ssize_t n;

	do
		n = write(h->fd, line, len);
	while (n == -1 && errno == EINTR);
	if (n == (ssize_t)len) {
		h->delivered++;
		if (h->failing)
			log_warn("hook %s: writing again", h->label);
		h->failing = false;
		return;
	}
	h->failed++;
	snprintf(h->why, sizeof h->why, "%s", n == -1 ? strerror(errno) :
	    "short write");
	if (!h->failing)
		log_warn("hook %s: write failed: %s; events are lost until it "
		    "recovers (the proxy carries on)", h->label, h->why);
	h->failing = true;
}

static void
deliver(struct hooks *hs, enum hook_kind kind, const struct audit_event *e,
    bool tls)
{
	char		buf[HOOK_PAYLOAD_MAX];
	struct timeval	now;
	size_t		len;

	gettimeofday(&now, NULL);
	len = hooks_payload(kind, e, tls, &now, buf, sizeof buf - 1);
	for (size_t i = 0; i < hs->n; i++) {
		struct hook *h = &hs->v[i];

		if (h->spec.kind != kind)
			continue;
		if (h->spec.webhook)
			enqueue(h, buf, len);
		else {
			buf[len] = '\n';
			append_line(h, buf, len + 1);
		}
	}
}

void
hooks_emit(struct hooks *hs, const struct audit_event *e, bool tls)
{
	int k;

	if (hs == NULL || hs->kinds == 0 || (k = hooks_kind_of(e)) < 0 ||
	    !(hs->kinds & (1u << k)))
		return;
	deliver(hs, (enum hook_kind)k, e, tls);
}

void
hooks_request(struct conn *c)
{
	struct hooks		*hs = c->srv->hooks;
	struct hooks		*own = c->sb != NULL ? c->sb->hooks : NULL;
	struct request		*r = &c->req;
	struct audit_event	 e;

	/* The run's (or daemon's) hooks, and the sandbox's own. */
	if (hs != NULL && !(hs->kinds & (1u << HOOK_REQUEST)))
		hs = NULL;
	if (own != NULL && !(own->kinds & (1u << HOOK_REQUEST)))
		own = NULL;
	if (hs == NULL && own == NULL)
		return;
	memset(&e, 0, sizeof e);
	e.event = "request";
	e.door = r->door;
	e.host = r->dest.host[0] ? r->dest.host : NULL;
	e.port = r->dest.port;
	e.method = r->method[0] ? r->method : NULL;
	e.path = r->path;
	e.pathlen = r->path ? strlen(r->path) : 0;
	e.decision = "allow";
	e.rule = r->rule;
	e.mitm = c->mitm;
	/* Set while the head was built; "secret" once it is sent. */
	e.secret = r->secret_pending ? r->secret_pending : r->secret;
	e.sandbox = c->srv->multi && c->sb != NULL ? c->sb->id : NULL;
	if (hs != NULL)
		deliver(hs, HOOK_REQUEST, &e, c->mitm || r->origin_tls);
	if (own != NULL)
		deliver(own, HOOK_REQUEST, &e, c->mitm || r->origin_tls);
}

/* -------------------------------------------------------------------------
 * The run's hooks
 */

/* A spec for a message: cut before any query or credentials. */
static void
shown(const char *spec, char *buf, size_t len)
{
	size_t n = strcspn(spec, "?@");

	snprintf(buf, len, "%.*s%s", (int)(n > 200 ? 200 : n), spec,
	    spec[n] != '\0' || n > 200 ? "..." : "");
}

struct hooks *
hooks_new(const struct config *cfg, struct event_base *base,
    struct server *srv, char *err, size_t errlen)
{
	struct hooks	*hs = xcalloc(1, sizeof *hs);
	char		 why[256], s[256], a[ADDR_HOST_MAX + 16];

	hs->base = base;
	hs->srv = srv;
	hs->v = xcalloc(cfg->hooks.n > 0 ? cfg->hooks.n : 1, sizeof *hs->v);
	for (size_t i = 0; i < cfg->hooks.n; i++) {
		struct hook *h = &hs->v[hs->n++];

		h->hooks = hs;
		h->fd = -1;
		TAILQ_INIT(&h->queue);
		TAILQ_INIT(&h->active);
		shown(cfg->hooks.v[i], s, sizeof s);
		if (hooks_spec_parse(cfg->hooks.v[i], &h->spec, why,
		    sizeof why) != 0) {
			snprintf(err, errlen, "hook '%s': %s", s, why);
			goto fail;
		}
		for (size_t j = 0; j < i; j++)
			if (h->spec.name[0] != '\0' && strcmp(h->spec.name,
			    hs->v[j].spec.name) == 0) {
				snprintf(err, errlen, "two hooks are named "
				    "'%s': names must differ", h->spec.name);
				goto fail;
			}
		if (h->spec.name[0] != '\0')
			h->label = xprintf("'%s' (%s:%s)", h->spec.name,
			    hooks_kind_name(h->spec.kind), h->spec.display);
		else
			h->label = xprintf("%s:%s",
			    hooks_kind_name(h->spec.kind), h->spec.display);
		if (!h->spec.webhook) {
			h->fd = open(h->spec.path, O_WRONLY | O_CREAT |
			    O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0600);
			if (h->fd == -1) {
				snprintf(err, errlen, "hook '%s': cannot open "
				    "'%s': %s", s, h->spec.path,
				    strerror(errno));
				goto fail;
			}
		} else if (srv == NULL) {
			snprintf(err, errlen, "hook '%s': webhooks need the "
			    "built-in proxy", s);
			goto fail;
		} else {
			authority(&h->spec.dest, h->spec.tls, a, sizeof a);
			h->head = xprintf("POST %s HTTP/1.1\r\nHost: %s\r\n"
			    "User-Agent: egress-run/%s\r\n"
			    "Content-Type: application/json\r\n"
			    "X-Egress-Run-Event: %s\r\n"
			    "Connection: close\r\n", h->spec.target, a,
			    EGRESS_VERSION, hooks_kind_name(h->spec.kind));
		}
		hs->kinds |= 1u << h->spec.kind;
		log_info("event hook %s", h->label);
	}
	return hs;
fail:
	hooks_free(hs);
	return NULL;
}

static bool
pending(const struct hooks *hs)
{
	for (size_t i = 0; i < hs->n; i++)
		if (hs->v[i].nqueue > 0 || hs->v[i].nactive > 0)
			return true;
	return false;
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct hooks *hs = arg;

	(void)fd;
	(void)what;
	hs->expired = true;
}

/* Drop what is still queued or in flight, counted as unsent. */
static void
abandon(struct hook *h)
{
	struct delivery *d;

	while ((d = TAILQ_FIRST(&h->queue)) != NULL) {
		TAILQ_REMOVE(&h->queue, d, entry);
		h->nqueue--;
		h->unsent++;
		delivery_free(d);
	}
	while ((d = TAILQ_FIRST(&h->active)) != NULL) {
		TAILQ_REMOVE(&h->active, d, entry);
		h->nactive--;
		h->unsent++;
		delivery_free(d);
	}
}

void
hooks_flush(struct hooks *hs, int timeout_ms)
{
	struct timeval	 tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct timeval	 now = { 0, 0 };
	struct event	*deadline;
	struct delivery	*d;

	if (hs == NULL)
		return;
	hs->closing = true;
	if (pending(hs)) {
		/* Pauses between tries end now. */
		for (size_t i = 0; i < hs->n; i++)
			TAILQ_FOREACH(d, &hs->v[i].active, entry)
				if (d->backoff)
					evtimer_add(d->timer, &now);
		deadline = evtimer_new(hs->base, on_deadline, hs);
		evtimer_add(deadline, &tv);
		/* EVLOOP_ONCE, again and again: a loopexit pending from the
		 * run (the child's end) must not cut the wait short. */
		while (pending(hs) && !hs->expired)
			if (event_base_loop(hs->base, EVLOOP_ONCE) != 0)
				break;
		event_free(deadline);
	}
	for (size_t i = 0; i < hs->n; i++) {
		struct hook	*h = &hs->v[i];
		uint64_t	 lost;

		abandon(h);
		lost = h->full + h->unsent + h->failed;
		if (lost > 0)
			log_warn("hook %s: %llu of %llu events not delivered "
			    "(%llu dropped with the queue full, %llu unsent at "
			    "exit, %llu failed%s%s)", h->label,
			    (unsigned long long)lost,
			    (unsigned long long)(lost + h->delivered),
			    (unsigned long long)h->full,
			    (unsigned long long)h->unsent,
			    (unsigned long long)h->failed,
			    h->why[0] ? "; last error: " : h->unsent > 0 ?
			    "; the receiver had not answered at exit" : "",
			    h->why);
		else if (h->delivered > 0)
			log_info("hook %s: %llu events delivered", h->label,
			    (unsigned long long)h->delivered);
	}
}

uint64_t
hooks_drops(const struct hooks *hs)
{
	uint64_t n = 0;

	if (hs == NULL)
		return 0;
	for (size_t i = 0; i < hs->n; i++)
		n += hs->v[i].full + hs->v[i].unsent + hs->v[i].failed;
	return n;
}

size_t
hooks_count(const struct hooks *hs)
{
	return hs == NULL ? 0 : hs->n;
}

void
hooks_stats(const struct hooks *hs, size_t i, struct hook_stats *st)
{
	const struct hook *h = &hs->v[i];

	memset(st, 0, sizeof *st);
	st->name = h->spec.name[0] ? h->spec.name : h->label;
	st->delivered = h->delivered;
	st->failed = h->failed;
	st->dropped = h->full + h->unsent;
	st->queued = h->nqueue + h->nactive;
}

void
hooks_free(struct hooks *hs)
{
	if (hs == NULL)
		return;
	for (size_t i = 0; i < hs->n; i++) {
		struct hook *h = &hs->v[i];

		abandon(h);
		if (h->fd != -1)
			close(h->fd);
		hooks_spec_clear(&h->spec);
		free(h->label);
		free(h->head);
	}
	free(hs->v);
	free(hs);
}
