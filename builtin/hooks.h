/*
 * Event hooks (--hook, "hooks" in the config file): what the proxy sees,
 * told to other systems as it happens. Each hook takes one kind of event
 * and appends it as a JSON line to a file, or POSTs it to a webhook.
 * Events come from the audit point (conn.c) and, for "request", from the
 * moment a request is forwarded (http_fwd.c). Webhooks never slow the
 * proxy: deliveries are asynchronous on the event loop, queued (bounded,
 * drops counted), retried a few times, and given a bounded wait at exit.
 */
#ifndef BUILTIN_HOOKS_H
#define BUILTIN_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#include "builtin/addr.h"

struct audit_event;
struct config;
struct conn;
struct event_base;
struct hooks;
struct server;

enum hook_kind {
	HOOK_REQUEST,		/* a request is forwarded to its origin */
	HOOK_RESPONSE,		/* a request or tunnel is over (its answer,
				   ours or the origin's) */
	HOOK_DENY,		/* the policy refused a destination */
	HOOK_LLM,		/* an accounted LLM call ended (or a budget
				   tripped) */
};

#define HOOK_NAME_MAX		64
#define HOOK_PAYLOAD_MAX	8192	/* one event's JSON, newline
					   included */
#define HOOK_QUEUE_MAX		512	/* events waiting per webhook */
#define HOOK_PARALLEL		4	/* deliveries at once per webhook */
#define HOOK_ATTEMPTS		3	/* tries per event */
#define HOOK_TIMEOUT_MS		5000	/* per try: connect to answer */
#define HOOK_BACKOFF_MS		500	/* before the 2nd try; doubles */
#define HOOKS_FLUSH_MS		2000	/* the wait at exit */

/* "[NAME=]EVENT:TARGET", parsed. */
struct hook_spec {
	char		 name[HOOK_NAME_MAX + 1];	/* "" when not named */
	enum hook_kind	 kind;
	bool		 webhook;	/* else a file */
	char		*path;		/* file: where */
	struct dest	 dest;		/* webhook: host and port */
	bool		 tls;		/* webhook: https:// */
	char		*target;	/* webhook: path and query, as sent in
					   the request line */
	char		*display;	/* the target for messages: "file:PATH"
					   or scheme://host[:port]/path, never
					   the query */
};

/*
 * Parse a hook spec: EVENT is request, response, deny or llm; TARGET is
 * file:PATH or an http:// or https:// URL (a query is kept and sent, never
 * shown; credentials and fragments are refused). NAME, when given, is 1 to
 * 64 of [A-Za-z0-9._-]. 0, or -1 with a one-line reason in err (it does
 * not quote the spec: the caller names it). Clear with hooks_spec_clear().
 */
int		 hooks_spec_parse(const char *, struct hook_spec *, char *,
		    size_t);
void		 hooks_spec_clear(struct hook_spec *);

/* "request", "response", "deny", "llm"; parsing (len bytes, exact),
 * the kind or -1. */
const char	*hooks_kind_name(enum hook_kind);
int		 hooks_kind_parse(const char *, size_t);

/*
 * Which hooks an audit event goes to: deny -> HOOK_DENY; llm and budget
 * -> HOOK_LLM; request, connect and error -> HOOK_RESPONSE. -1: none.
 */
int		 hooks_kind_of(const struct audit_event *);

/*
 * An event's JSON object (no newline) into buf: timestamp (RFC 3339, UTC,
 * from now), event (the kind; "budget" for a tripped budget), audit_event,
 * door, method, url (scheme://host[:port]/path: never the query; null for
 * a tunnel), host, port, status, secret_injected (a boolean: never the
 * binding, never a value), latency_ms, bytes_up, bytes_down, rule, reason,
 * and for LLM calls provider, model, stream, input_tokens, output_tokens,
 * cache_read_tokens, cache_write_tokens, estimated, ttfb_ms. tls says the
 * scheme for a request (intercepted, or a gateway's to an https:// URL).
 * Never a body. Returns the length (< len; values are cut to fit).
 */
size_t		 hooks_payload(enum hook_kind, const struct audit_event *,
		    bool tls, const struct timeval *now, char *buf,
		    size_t len);

/*
 * The run's hooks from cfg->hooks (specs checked again; files opened
 * now). srv carries the loop, the resolver, the upstream and the TLS
 * client for webhooks; NULL allows file hooks only (tests). Never NULL
 * but with err set (a file that cannot be opened, a bad spec).
 */
struct hooks	*hooks_new(const struct config *, struct event_base *,
		    struct server *, char *, size_t);

/* An audit event (conn.c's audit point): to the hooks of its kind.
 * tls as for hooks_payload. NULL hooks is a no-op. */
void		 hooks_emit(struct hooks *, const struct audit_event *,
		    bool tls);

/* The "request" hooks, as c's request is about to be forwarded (its head
 * is built: whether a secret is injected is known). */
void		 hooks_request(struct conn *);

/*
 * At exit: stop taking events, run the loop until every queued webhook
 * delivery is done or timeout_ms passes, then give up on the rest and say
 * on stderr, per hook, how many events were lost and why. Returns at once
 * when nothing is pending.
 */
void		 hooks_flush(struct hooks *, int timeout_ms);

/* Events that never reached their target: dropped (queue full, unsent at
 * exit) or failed (every try). */
uint64_t	 hooks_drops(const struct hooks *);

/* Per hook, for the metrics. */
struct hook_stats {
	const char	*name;		/* the name, or "EVENT:DISPLAY" */
	uint64_t	 delivered;	/* 2xx answers, lines written */
	uint64_t	 failed;	/* given up after every try */
	uint64_t	 dropped;	/* queue full, or unsent at exit */
	uint64_t	 queued;	/* waiting or in flight now */
};
size_t		 hooks_count(const struct hooks *);
void		 hooks_stats(const struct hooks *, size_t,
		    struct hook_stats *);

/* Cancel what is in flight (uncounted) and free. NULL is a no-op. */
void		 hooks_free(struct hooks *);

#endif
