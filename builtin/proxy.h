/*
 * Internals of the built-in proxy, shared by its modules (the way tmux.h is
 * shared): the server context, a client connection, and the limits. The
 * launcher sees only builtin/server.h.
 *
 *   server.c    listener, accept, limits, deferred frees, statistics
 *   conn.c      a client connection: request heads, dispatch, errors, close
 *   http_fwd.c  forwarding one HTTP request; the idle origin pool
 *   tunnel.c    CONNECT tunnels, relayed with splice(2)
 *   dial.c      resolve, address guard, connect
 *   audit.c     the audit log
 */
#ifndef BUILTIN_PROXY_H
#define BUILTIN_PROXY_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>

#include "builtin/addr.h"
#include "builtin/http_parse.h"

#define PROXY_HIGH_WATER	(256 * 1024)	/* stop reading a half whose
						   peer has this much queued */
#define PROXY_HEAD_TIMEOUT	30		/* s: whole request head */
#define PROXY_IDLE_TIMEOUT	120		/* s: keep-alive between
						   requests */
#define PROXY_CONNECT_TIMEOUT	10		/* s: TCP connect */
#define PROXY_RESPONSE_TIMEOUT	600		/* s: origin silent mid-
						   request (LLM calls are
						   slow) */
#define PROXY_POOL_IDLE		30		/* s: idle origin kept */
#define PROXY_POOL_MAX		256		/* idle origins always allowed;
						   beyond it, one per live
						   client connection */
#define PROXY_POOL_FD_SHARE	4		/* ... but no more than
						   RLIMIT_NOFILE / this */
#define PROXY_LINGER_MS		2000		/* drain after an error */

struct audit;
struct audit_event;
struct config;
struct conn;
struct dial;
struct event;
struct evbuffer;
struct evdns_base;
struct origin;
struct pool_index;
struct policy;
struct mitm;
struct secrets;
struct subst;
struct gateways;
struct account;
struct rules;
struct sandbox;
struct sandbox_list;
struct hooks;
struct metrics;
struct audit_llm;
struct llm_call;
struct bufferevent;
struct proxy_url;
struct upstream;
struct tunnel;

TAILQ_HEAD(conn_list, conn);
TAILQ_HEAD(origin_list, origin);

struct stats {
	uint64_t	conns;
	uint64_t	forwards;	/* --host-port connections */
	uint64_t	requests;
	uint64_t	tunnels;
	uint64_t	denied;
	uint64_t	errors;
	uint64_t	bytes_up;
	uint64_t	bytes_down;
};

#define SERVER_MAX_LISTENERS	40

/* A listening socket: the proxy itself (on the host, or handed over from
 * COMMAND's namespace), or a --host-port forward. */
struct listener {
	struct server		*srv;
	int			 fd;
	struct event		*ev;
	bool			 check_owner;	/* loopback on the host: serve
						   our own user only */
	uint16_t		 forward_to;	/* host loopback port, or 0 */
};

struct server {
	struct event_base	*base;
	const struct config	*cfg;
	struct sandbox		*sb;		/* whose traffic this is: the
						   run's one sandbox, or NULL
						   (daemon: per connection) */
	struct sandbox_list	*sandboxes;	/* daemon and --control: the
						   registry (sandbox.c) */
	bool			 multi;		/* events name the sandbox */
	struct audit		*audit;
	struct evdns_base	*dns;
	struct upstream		*upstream;	/* corporate proxy, or NULL */
	struct mitm		*mitm;		/* interception set-up */
	struct gateways		*gateways;	/* --gateway (maybe none) */
	struct account		*account;	/* LLM accounting */
	struct hooks		*hooks;		/* --hook (maybe none) */
	struct metrics		*metrics;	/* --metrics, or NULL */
	char			*ca_file;	/* interception CA, or NULL */

	int			 lfd;		/* the host's listener */
	struct listener		 listeners[SERVER_MAX_LISTENERS];
	size_t			 nlisteners;
	struct event		*accept_timer;	/* resumes accept after
						   EMFILE */
	int			 reserve_fd;	/* freed to refuse politely
						   when out of descriptors */
	struct sockaddr_storage	 laddr;
	char			 host[64];	/* for clients: 127.0.0.1 */
	unsigned		 port;
	unsigned		 max_conns;

	struct conn_list	 conns;
	unsigned		 nconns;
	struct conn_list	 dead;		/* freed on the next turn */
	struct event		*reap_ev;
	struct origin_list	 pool;		/* idle origin connections,
						   most recently used first */
	struct pool_index	*pool_index;	/* the same, by route */
	struct event		*pool_sweep;
	unsigned		 npool;

	uint64_t		 next_id;
	struct stats		 stats;
};

enum conn_state {
	CONN_HEAD,		/* reading a request head */
	CONN_SOCKS,		/* SOCKS5 handshake */
	CONN_TLS,		/* TLS handshake of an intercepted tunnel */
	CONN_BODY,		/* gathering a request body (accounting) */
	CONN_DIAL,		/* waiting for an origin */
	CONN_HTTP,		/* forwarding a request and its response */
	CONN_TUNNEL,		/* CONNECT relay */
	CONN_CLOSING,		/* flushing an answer, then close */
	CONN_DEAD,		/* closed; freed on the next turn */
};

/* The request in flight on a connection (HTTP or CONNECT). */
struct request {
	struct dest		 dest;
	char			 method[24];
	char			*path;		/* no query; NULL for CONNECT */
	const char		*door;		/* "http", "connect" */
	long long		 start_ms;
	uint64_t		 bytes_up;	/* body bytes client->origin */
	uint64_t		 bytes_down;	/* bytes origin->client */
	int			 status;
	const char		*rule;
	int			 client_minor;	/* HTTP/1.<minor> */
	bool			 client_keepalive;
	bool			 head;		/* HEAD: no response body */
	enum http_body		 req_body;
	uint64_t		 req_left;	/* LENGTH: bytes to send */
	struct http_chunked	 req_chunked;
	bool			 req_done;
	enum http_body		 resp_body;
	uint64_t		 resp_left;
	struct http_chunked	 resp_chunked;
	bool			 resp_dechunk;	/* chunked to a 1.0 client */
	bool			 resp_head_done;
	bool			 resp_done;
	bool			 resp_keepalive;
	struct evbuffer		*out_head;	/* head for the origin */
	bool			 origin_eof;
	const struct proxy_url	*via;		/* upstream used, or NULL */
	char			*target;	/* path and query, for the
						   request line */
	char			 pool_key[ADDR_HOST_MAX + 160];
	uint64_t		 pool_sandbox;	/* the serial of the sandbox
						   whose alone the origin
						   connection is, or 0 */
	bool			 absolute;	/* request line in absolute
						   form (HTTP upstream) */
	bool			 origin_tls;	/* TLS to the origin
						   (interception, gateway) */
	struct subst		*subst;		/* secret substitution in the
						   request body, or NULL */
	bool			 out_chunked;	/* body re-chunked for the
						   origin */
	struct evbuffer		*xbuf;		/* substituted bytes */
	const char		*secret;	/* binding injected, for the
						   audit event */
	const char		*secret_pending;/* ... once the head is sent */
	const char		*note;		/* audit reason on success */
	struct llm_call		*llm;		/* an accounted LLM call */
	struct evbuffer		*collect;	/* its body, gathered */
	bool			 subst_whole;	/* secrets in the gathered
						   body */
	bool			 rules_body;	/* a rule judges the gathered
						   body */
	bool			 git_push;	/* the git guard judges it */
	bool			 collect_chunked; /* gathering decodes chunks */
	bool			 reframe;	/* response filtered: decoded
						   and re-chunked */
	struct evbuffer		*fbuf;		/* decoded, to filter */
	struct evbuffer		*fout;		/* filtered, to send */
	bool			 reused;	/* origin came from the pool */
	bool			 retried;
	bool			 shed;		/* idle origins closed to
						   dial again (EMFILE) */
};

struct conn {
	uint64_t		 id;
	struct server		*srv;
	struct sandbox		*sb;		/* a reference; NULL until the
						   connection is attributed */
	TAILQ_ENTRY(conn)	 entry;
	enum conn_state		 state;
	struct bufferevent	*client;	/* NULL once a tunnel owns fd */
	int			 fd;
	struct sockaddr_storage	 peer;
	struct event		*timer;		/* head / idle / linger */
	size_t			 scanned;	/* head bytes searched */
	unsigned		 nrequests;
	int			 socks_state;
	struct request		 req;
	bool			 in_request;	/* req holds a request */
	struct dial		*dial;
	struct origin		*origin;
	struct tunnel		*tunnel;
	bool			 mitm;		/* requests come from inside an
						   intercepted tunnel */
	bool			 sni_mismatch;
	bool			 client_eof;	/* the client half-closed */
	struct dest		 tunnel_dest;	/* the tunnel's host and port */
	const char		*tunnel_door;
};

/* server.c */
long long	 server_now_ms(void);
void		 server_local_addrs(struct policy *);
void		 server_conn_dead(struct server *, struct conn *);

/* conn.c */
struct conn	*conn_new(struct server *, int, const struct sockaddr *,
		    socklen_t);
void		 conn_free(struct conn *);
void		 conn_close(struct conn *, const char *);
void		 conn_error(struct conn *, int, const char *, const char *);
void		 conn_finish(struct conn *);
void		 conn_deny_json(struct conn *, const char *, const char *);
void		 conn_set_client(struct conn *, struct bufferevent *);
void		 conn_set_timeout(struct conn *, int);
void		 conn_intercept(struct conn *, const void *, size_t);
void		 conn_forward(struct conn *, uint16_t);
void		 conn_request_done(struct conn *);
void		 conn_audit(struct conn *, const char *, const char *,
		    const char *);
void		 conn_audit_llm(struct conn *, const char *event,
		    const char *decision, const char *reason,
		    const struct audit_llm *);
void		 conn_reply(struct conn *, int, const char *, const void *,
		    size_t);

#endif
