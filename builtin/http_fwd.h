/*
 * Forwarding one plain-HTTP request (absolute form) to its origin and the
 * response back: heads rewritten without hop-by-hop fields, bodies streamed
 * in both directions under backpressure, idle origin connections pooled
 * for the next request to the same host and port.
 */
#ifndef BUILTIN_HTTP_FWD_H
#define BUILTIN_HTTP_FWD_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct http_request;
struct origin;
struct server;

/* The request head is at the start of the client's input (headlen bytes);
 * policy has allowed it. Takes over from here. */
void	http_fwd_start(struct conn *, const struct http_request *, size_t);

/* The client's input grew, its output drained, or it hung up. */
void	http_fwd_client_read(struct conn *);
void	http_fwd_client_drained(struct conn *);
void	http_fwd_client_eof(struct conn *);

/* Close an origin connection now (not back to the pool); NULL: no-op. */
void	http_fwd_origin_free(struct origin *);
/* Start the pool's idle sweep; close every pooled origin connection. */
void	http_fwd_pool_init(struct server *);
void	http_fwd_pool_flush(struct server *);
/* Close the idle origin connections of a sandbox that is gone. */
void	http_fwd_pool_forget(struct server *, uint64_t sandbox);

#endif
