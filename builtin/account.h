/*
 * LLM accounting on the wire: the glue between the forwarding path
 * (http_fwd.c) and the pure accounting of llm.c and sse.c. Every accounted
 * call is counted per provider and model, held to the run's budget (429 in
 * the provider's own shape once it is spent), and written to the audit log
 * as an "llm" event with its tokens and timings. Streams are read as they
 * pass, never held back (but for the one extra usage chunk egress-run
 * asked an OpenAI stream for, which the client must not see).
 */
#ifndef BUILTIN_ACCOUNT_H
#define BUILTIN_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>

struct account;
struct config;
struct conn;
struct dest;
struct evbuffer;
struct http_request;
struct http_response;
struct llm_call;
struct llm_stats;

/* The run's registry and totals; NULL with err set for a bad --llm-host.
 * With --no-llm, an account that matches no host. */
struct account	*account_new(const struct config *, char *, size_t);
void		 account_free(struct account *);

/* Is dest an LLM API host (so its tunnels are intercepted)? */
bool		 account_host(const struct account *, const struct dest *);

/* At exit: the table on stderr (when asked or at -v) and totals. */
void		 account_summary(const struct llm_stats *, bool show);

/* Is accounting on (not --no-llm)? */
bool		 account_on(const struct account *);

/* A request is about to be forwarded to an allowed destination: when it
 * is an accounted call, c->req.llm is set. */
void		 account_request(struct conn *, const struct http_request *);

/*
 * Just before it is sent (its body read, when gathered): admit the call,
 * or, when the budget refuses it, write the 429 and return true (the
 * request is over).
 */
bool		 account_admit(struct conn *);

/* Should the (Content-Length) body be gathered before sending, to read
 * the model and maybe rewrite it? */
bool		 account_collect(const struct conn *,
		    const struct http_request *);

/* The gathered body: read it, and replace its contents if rewritten. */
void		 account_body(struct conn *, struct evbuffer *);

/* Drop the client's Accept-Encoding (accounted calls ask for identity). */
bool		 account_drops_header(const struct conn *, const char *,
		    size_t);

/* The response head came: is its body to be filtered (the extra usage
 * chunk removed) rather than passed through? */
void		 account_response(struct conn *, const struct http_response *);
bool		 account_filtering(const struct conn *);

/* Body bytes (chunk data) passing to the client as they are. */
void		 account_tee(struct conn *, const void *, size_t);

/* Filtering: bytes in, what the client gets appended to out. At the end
 * of the body, call it with len 0 to flush. */
void		 account_filter(struct conn *, const void *, size_t,
		    struct evbuffer *);

/* The call is over (complete: the whole response was read): totals, the
 * audit event, a tripped budget. Idempotent. */
void		 account_end(struct conn *, bool complete);

/* Free what a call held. NULL is a no-op. */
void		 account_call_free(struct llm_call *);

#endif
