/*
 * --metrics: the proxy's counters in Prometheus text format, served on a
 * loopback address from the run's event loop (GET /metrics; 404
 * elsewhere). Counters the server does not keep itself (requests by door
 * and decision, denials by rule) are fed from the audit point in conn.c;
 * the rest is read at scrape time from the server's statistics, the LLM
 * accounting and the hooks.
 */
#ifndef BUILTIN_METRICS_H
#define BUILTIN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct audit_event;
struct hooks;
struct llm_stats;
struct metrics;
struct server;

#define METRICS_SERIES_MAX	256	/* per family; more share "(other)" */
#define METRICS_CONNS_MAX	16	/* scrapes at once */
#define METRICS_HEAD_MAX	8192	/* a scrape's request head */
#define METRICS_TIMEOUT		5	/* s: a scrape's request and answer */

/* What the server knows, read at scrape time. */
struct sandbox_list;

struct metrics_snapshot {
	uint64_t		 conns;		/* accepted */
	uint64_t		 conns_open;
	uint64_t		 bytes_up;
	uint64_t		 bytes_down;
	const struct llm_stats	*llm;		/* NULL: no accounting */
	const struct hooks	*hooks;		/* NULL: no hooks */
	const struct sandbox_list *sandboxes;	/* the registry (daemon,
						   --control), or NULL */
};

/*
 * ADDR:PORT for --metrics: a loopback address (127.0.0.0/8, ::1 as
 * "[::1]:PORT", or "localhost" for 127.0.0.1). 0, or -1 with a one-line
 * reason in err naming the spec.
 */
int		 metrics_parse_addr(const char *, struct sockaddr_storage *,
		    char *, size_t);

/* Counters only (no listener): for the server without --metrics there is
 * no metrics object at all; tests use this. */
struct metrics	*metrics_new(void);

/*
 * The endpoint for --metrics spec on srv's loop. NULL with err set when
 * the spec is wrong (*fatal set) or, with fail_closed, when it cannot be
 * bound; otherwise a port that cannot be bound is a warning and the run
 * goes on without the endpoint.
 */
struct metrics	*metrics_start(struct server *, const char *spec,
		    bool fail_closed, char *, size_t, bool *fatal);

/* An audit event (conn.c's audit point). NULL metrics is a no-op. */
void		 metrics_audit(struct metrics *, const struct audit_event *);

/* The exposition text, allocated, *len long (NUL-terminated). */
char		*metrics_format(const struct metrics *,
		    const struct metrics_snapshot *, size_t *len);

/* The bound address's port (0 when not listening). */
unsigned	 metrics_port(const struct metrics *);

/* Close the endpoint and its scrapes, free. NULL is a no-op. */
void		 metrics_free(struct metrics *);

#endif
