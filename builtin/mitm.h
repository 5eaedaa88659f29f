/*
 * TLS interception for the hosts that need it (secret bindings; later
 * request rules and LLM accounting). The client side of an intercepted
 * tunnel is a TLS server with a leaf minted for the tunnel's host; its
 * requests then go through the ordinary head parser and forwarding, with
 * the origin reached over a verifying TLS client.
 */
#ifndef BUILTIN_MITM_H
#define BUILTIN_MITM_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct config;
struct conn;
struct dest;
struct mitm;
struct sandbox;
struct server;

/*
 * Set up TLS for the run: when needed, the interception CA (ephemeral or
 * --ca-cert/--ca-key) with its certificate written to ca_path for the
 * child's trust bundle; when needed or client, the verifying client
 * context for origins (gateways need only that). NULL with err set on a
 * configuration error.
 */
struct mitm	*mitm_new(const struct config *, bool needed, bool client,
		    const char *ca_path, char *, size_t);
void		 mitm_free(struct mitm *);

/* Is dest excluded with --no-mitm? */
bool		 mitm_excluded(const struct mitm *, const struct dest *);

/*
 * Intercept an allowed tunnel: queue hello (the proxy's "200" or SOCKS
 * reply) in the clear, then speak TLS as dest with a minted leaf. The
 * connection goes back to reading request heads once the handshake is
 * done; c->mitm is set.
 */
void		 mitm_start(struct conn *, const void *hello, size_t);

/* The client's TLS handshake with us ended: well (check its SNI) or
 * not (close, saying why). Called by conn.c. */
void		 mitm_client_ready(struct conn *);
void		 mitm_client_failed(struct conn *);

/* Should the sandbox's tunnel to dest be intercepted? Hosts of its secret
 * bindings, rules and git guard, and LLM hosts; unless --no-mitm names
 * them. */
bool		 mitm_wanted(const struct server *, const struct sandbox *,
		    const struct dest *);

/* The origin leg: a TLS client bufferevent over a connected socket,
 * verifying dest's certificate (system roots + --upstream-ca). */
struct bufferevent *mitm_origin(struct server *, int fd, const struct dest *);

/* The same for egress-run's own connections (webhooks), whether or not
 * anything is intercepted. */
struct bufferevent *mitm_client(struct server *, int fd, const struct dest *);

/* Why the origin's TLS failed (certificate verification, ...). */
void		 mitm_origin_error(struct bufferevent *, char *, size_t);

#endif
