/*
 * Reaching an origin: pins or asynchronous resolution (evdns), the address
 * guard on every candidate (policy stage 2), then a non-blocking connect to
 * the very address that was checked — or, when a corporate upstream proxy
 * applies, a connection to it and the handshake through it (the upstream
 * resolves names; pins and literals are still checked and sent as such).
 * The result always arrives on a later loop turn, never inside
 * dial_start().
 */
#ifndef BUILTIN_DIAL_H
#define BUILTIN_DIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct dest;
struct proxy_url;
struct dial;
struct policy;
struct server;

struct dial_result {
	int			 status;	/* 0 connected, 403 policy,
						   502 unreachable, 504
						   timeout */
	const char		*rule;		/* 403: the deciding rule */
	int			 err;		/* errno-style cause: EACCES
						   (policy), ECONNREFUSED,
						   ENETUNREACH, ETIMEDOUT,
						   EHOSTUNREACH (no address),
						   EPROTO (upstream refused) */
	char			 reason[224];
	struct sockaddr_storage	 addr;		/* connected (or refused) */
	const struct proxy_url	*via;		/* the upstream used, or NULL */
	bool			 absolute;	/* connected to an HTTP upstream
						   for plain HTTP: send the
						   request in absolute form */
	uint8_t			 leftover[8192];/* the origin's first bytes,
						   read during a handshake */
	size_t			 leftover_len;
};

enum dial_mode {
	DIAL_STREAM,		/* a byte stream to the origin (tunnels) */
	DIAL_HTTP,		/* somewhere to send a plain-HTTP request */
	DIAL_FORWARD,		/* --host-port: this host's loopback, as the
				   user asked; no policy, no upstream */
	DIAL_HOOK,		/* egress-run's own traffic (webhooks): a
				   byte stream, pins and the upstream as
				   usual, but not the agent's policy nor its
				   address guard */
};

/* fd is the connected socket (non-blocking) when status is 0, else -1. */
typedef void	 dial_cb(int fd, const struct dial_result *, void *);

/* policy: the sandbox's (pins, address guard); NULL for DIAL_FORWARD. */
struct dial	*dial_start(struct server *, const struct policy *,
		    const struct dest *, enum dial_mode, dial_cb *, void *);
/* Abandon a dial whose callback has not run yet. */
void		 dial_cancel(struct dial *);

#endif
