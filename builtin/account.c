/*
 * Accounting glue. A call is classified when its request starts (method,
 * path, provider), admitted or refused against the budget, its body read
 * for the model (and, for an OpenAI stream that did not ask for usage,
 * rewritten to ask), and its response read as it streams: JSON bodies
 * through a bounded copy, event streams through the SSE parser. Only the
 * extra usage chunk we asked for is ever removed; everything else goes to
 * the client the moment it arrives.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "builtin/account.h"
#include "builtin/audit.h"
#include "builtin/llm.h"
#include "builtin/proxy.h"
#include "builtin/sandbox.h"
#include "builtin/sse.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "launcher/config.h"

struct account {
	struct llm_registry	*reg;
	bool			 on;
};

struct llm_call {
	struct llm_request	 rq;
	struct llm_response	 rs;
	bool			 admitted;
	bool			 responded;	/* a response head came */
	bool			 ended;
	bool			 sse;		/* an event stream */
	bool			 readable;	/* identity-encoded */
	bool			 broken;	/* over a bound: stop reading */
	bool			 filter;	/* strip the usage chunk */
	struct sse		*parser;
	struct evbuffer		*json;		/* bounded copy */
	struct evbuffer		*stage;		/* filtering: held bytes */
	uint64_t		 stage_off;	/* stream offset of stage[0] */
	long long		 t_first;	/* response head, ms */
};

struct account *
account_new(const struct config *cfg, char *err, size_t errlen)
{
	struct account *a = xcalloc(1, sizeof *a);

	a->reg = llm_registry_new();
	a->on = !cfg->no_llm;
	for (size_t i = 0; i < cfg->llm_hosts.n; i++)
		if (llm_registry_add(a->reg, cfg->llm_hosts.v[i], err,
		    errlen) != 0) {
			account_free(a);
			return NULL;
		}
	if (cfg->no_llm && (cfg->llm_budget || cfg->llm_max_requests)) {
		snprintf(err, errlen, "--no-llm turns accounting off: an LLM "
		    "budget cannot be held without it");
		account_free(a);
		return NULL;
	}
	return a;
}

void
account_free(struct account *a)
{
	if (a == NULL)
		return;
	llm_registry_free(a->reg);
	free(a);
}

bool
account_host(const struct account *a, const struct dest *d)
{
	return a != NULL && a->on && llm_registry_match(a->reg, d) != NULL;
}

bool
account_on(const struct account *a)
{
	return a != NULL && a->on;
}

void
account_summary(const struct llm_stats *st, bool show)
{
	char *t;

	if (st == NULL || !show)
		return;
	t = llm_stats_summary(st);
	for (char *line = t, *nl; line != NULL && *line != '\0';
	    line = nl ? nl + 1 : NULL) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl = '\0';
		if (strncmp(line, "egress-run: ", 12) == 0)
			line += 12;
		log_msg(LOG_ERROR, "%s", line);
	}
	free(t);
}

void
account_call_free(struct llm_call *k)
{
	if (k == NULL)
		return;
	sse_free(k->parser);
	if (k->json != NULL)
		evbuffer_free(k->json);
	if (k->stage != NULL)
		evbuffer_free(k->stage);
	free(k);
}

/* A limit just ran out: one line on stderr and an audit event. */
static void
tripped(struct conn *c)
{
	struct llm_stats	*st = c->sb->llm;
	enum llm_limit		 l;
	char			 msg[256];

	while ((l = llm_stats_tripped(st)) != LLM_LIMIT_NONE) {
		llm_stats_describe(st, l, msg, sizeof msg);
		log_warn("%s", msg + (strncmp(msg, "egress-run: ", 12) == 0 ?
		    12 : 0));
		conn_audit_llm(c, "budget", "allow", msg, NULL);
	}
}

void
account_request(struct conn *c, const struct http_request *req)
{
	struct account			*a = c->srv->account;
	const struct llm_provider	*p;
	struct llm_call			*k;

	if (a == NULL || !a->on ||
	    (p = llm_registry_match(a->reg, &c->req.dest)) == NULL)
		return;
	k = xcalloc(1, sizeof *k);
	if (!llm_request_classify(p, req->method.p, req->method.len,
	    c->req.target ? c->req.target : req->path.p, c->req.target ?
	    strlen(c->req.target) : req->path.len, &k->rq)) {
		free(k);
		return;
	}
	c->req.llm = k;
}

bool
account_admit(struct conn *c)
{
	struct llm_stats	*st = c->sb->llm;
	struct llm_call		*k = c->req.llm;
	enum llm_limit		 l;
	char			 msg[256], *body;
	size_t			 len;
	struct audit_llm	 al;

	if (k == NULL)
		return false;
	if ((l = llm_stats_admit(st, k->rq.provider->name,
	    k->rq.model[0] ? k->rq.model : "-")) == LLM_LIMIT_NONE) {
		k->admitted = true;
		tripped(c);
		return false;
	}
	/* Refused: the provider's own error, so the agent shows it. */
	llm_stats_describe(st, l, msg, sizeof msg);
	body = llm_error_body(k->rq.format, l, msg, &len);
	c->req.status = 429;
	k->ended = true;
	/* The refused call is a request answered by us, and an llm event
	 * that says which call it was. */
	conn_audit(c, "request", "deny", msg);
	memset(&al, 0, sizeof al);
	al.provider = k->rq.provider->name;
	al.model = k->rq.model[0] ? k->rq.model : NULL;
	al.stream = k->rq.stream;
	al.ttfb_ms = -1;		/* no origin answered */
	conn_audit_llm(c, "llm", "deny", msg, &al);
	conn_reply(c, 429, LLM_ERROR_HEADERS, body, len);
	free(body);
	tripped(c);
	return true;
}

bool
account_collect(const struct conn *c, const struct http_request *req)
{
	const struct http_header *ce;

	if (c->req.llm == NULL)
		return false;
	/* A chunked body is gathered (and decoded) too: its bound is
	 * checked as it comes (pump_collect()). */
	if (req->body == HTTP_BODY_LENGTH ?
	    req->content_length > LLM_REQUEST_BODY_MAX :
	    req->body != HTTP_BODY_CHUNKED)
		return false;
	ce = http_header_find(req->headers, req->nheaders,
	    "content-encoding");
	return ce == NULL || llm_encoding_readable(ce->value.p, ce->value.len);
}

void
account_body(struct conn *c, struct evbuffer *body)
{
	struct llm_call	*k = c->req.llm;
	char		*out = NULL;
	size_t		 outlen, len = evbuffer_get_length(body);

	if (k == NULL)
		return;
	(void)llm_request_body(&k->rq, evbuffer_pullup(body, -1), len, &out,
	    &outlen);
	if (out != NULL) {
		evbuffer_drain(body, len);
		evbuffer_add(body, out, outlen);
		free(out);
	}
}

bool
account_drops_header(const struct conn *c, const char *name, size_t len)
{
	return c->req.llm != NULL && llm_header_drop(name, len);
}

void
account_response(struct conn *c, const struct http_response *resp)
{
	struct llm_call			*k = c->req.llm;
	const struct http_header	*ce, *ct;

	if (k == NULL || k->ended)
		return;
	k->responded = true;
	k->t_first = server_now_ms();
	llm_response_init(&k->rs, &k->rq, resp->status);
	ce = http_header_find(resp->headers, resp->nheaders,
	    "content-encoding");
	ct = http_header_find(resp->headers, resp->nheaders, "content-type");
	k->readable = ce == NULL || llm_encoding_readable(ce->value.p,
	    ce->value.len);
	k->sse = ct != NULL && llm_is_event_stream(ct->value.p, ct->value.len);
	if (!k->readable || resp->body == HTTP_BODY_NONE)
		return;
	if (k->sse) {
		k->parser = sse_new();
		/* Only a stream we asked for usage carries a chunk to take
		 * out; the client did not ask for it. */
		k->filter = k->rq.usage_added;
		if (k->filter)
			k->stage = evbuffer_new();
	} else
		k->json = evbuffer_new();
}

bool
account_filtering(const struct conn *c)
{
	return c->req.llm != NULL && c->req.llm->filter;
}

/* One event for the accounting; its verdict (keep, drop). */
static int
event(struct llm_call *k, const struct sse_event *ev)
{
	return llm_response_event(&k->rs, ev->type, ev->type_len, ev->data,
	    ev->data_len);
}

void
account_tee(struct conn *c, const void *p, size_t len)
{
	struct llm_call		*k = c->req.llm;
	struct sse_event	 ev;
	size_t			 used;
	int			 r;

	if (k == NULL || k->ended || !k->readable || k->broken || len == 0)
		return;
	if (!k->sse) {
		if (evbuffer_get_length(k->json) + len > LLM_RESPONSE_BODY_MAX)
			k->broken = true;
		else
			evbuffer_add(k->json, p, len);
		return;
	}
	while (len > 0) {
		r = sse_next(k->parser, p, len, &used, &ev);
		if (r < 0) {
			k->broken = true;
			return;
		}
		if (r == SSE_EVENT)
			(void)event(k, &ev);
		p = (const char *)p + used;
		len -= used;
	}
}

/*
 * Filtering: every byte before the event under way goes out at once; that
 * event is held until its blank line says whether it is the extra usage
 * chunk (dropped) or not (sent).
 */
void
account_filter(struct conn *c, const void *p, size_t len,
    struct evbuffer *out)
{
	struct llm_call		*k = c->req.llm;
	struct sse_event	 ev;
	size_t			 used;
	uint64_t		 upto;
	int			 r;

	if (k->broken || len == 0) {	/* pass on; len 0: the end */
		evbuffer_add_buffer(out, k->stage);
		if (len > 0)
			evbuffer_add(out, p, len);
		return;
	}
	evbuffer_add(k->stage, p, len);
	while (len > 0) {
		r = sse_next(k->parser, p, len, &used, &ev);
		if (r < 0) {		/* unaccountable: pass all on */
			k->broken = true;
			evbuffer_add_buffer(out, k->stage);
			return;
		}
		p = (const char *)p + used;
		len -= used;
		if (r == SSE_EVENT && event(k, &ev) == LLM_EVENT_DROP) {
			/* Send what came before it, skip the event. */
			evbuffer_remove_buffer(k->stage, out,
			    (size_t)(ev.start - k->stage_off));
			evbuffer_drain(k->stage, (size_t)(ev.end - ev.start));
			k->stage_off = ev.end;
		}
	}
	upto = sse_pending(k->parser);
	if (upto > k->stage_off) {
		evbuffer_remove_buffer(k->stage, out,
		    (size_t)(upto - k->stage_off));
		k->stage_off = upto;
	}
}

void
account_end(struct conn *c, bool complete)
{
	struct llm_call	*k = c->req.llm;
	struct audit_llm al;
	long long	 now = server_now_ms();

	if (k == NULL || k->ended)
		return;
	k->ended = true;
	if (!k->responded)
		llm_response_init(&k->rs, &k->rq, c->req.status);
	if (k->json != NULL && !k->broken && complete)
		(void)llm_response_json(&k->rs, evbuffer_pullup(k->json, -1),
		    evbuffer_get_length(k->json));
	llm_response_finish(&k->rs, complete && k->readable && !k->broken);
	if (k->admitted) {
		llm_stats_done(c->sb->llm, k->rq.provider->name,
		    k->rq.model[0] ? k->rq.model : "-", &k->rs.usage,
		    !k->responded || k->rs.status >= 400 || k->rs.error,
		    k->rs.estimated, (uint64_t)(now - c->req.start_ms));
		c->sb->n->llm_input += k->rs.usage.input;
		c->sb->n->llm_output += k->rs.usage.output;
	}
	memset(&al, 0, sizeof al);
	al.provider = k->rq.provider->name;
	al.model = k->rq.model[0] ? k->rq.model : NULL;
	al.stream = k->rq.stream;
	al.input = k->rs.usage.input;
	al.output = k->rs.usage.output;
	al.cache_read = k->rs.usage.cache_read;
	al.cache_write = k->rs.usage.cache_write;
	al.estimated = k->rs.estimated;
	al.ttfb_ms = k->responded ? k->t_first - c->req.start_ms : -1;
	conn_audit_llm(c, "llm", "allow", complete ? NULL : "the response was cut "
	    "short", &al);
	tripped(c);
}
