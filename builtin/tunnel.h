/*
 * An opaque CONNECT tunnel: bytes nobody needs to read, moved between the
 * two sockets with splice(2) through a pipe per direction, so they never
 * enter user space. The pipe is also the backpressure: a full pipe stops
 * reading its source until the destination drains it.
 */
#ifndef BUILTIN_TUNNEL_H
#define BUILTIN_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct tunnel;

/*
 * Relay between the client's socket (still owned by conn) and the origin's
 * (owned by the tunnel from now on, closed by tunnel_free). hello goes to the
 * client first (the proxy's "200 Connection established"), early holds bytes
 * the client sent after its request head, for the origin. When both
 * directions have ended, or on an error, done(conn, reason) is called once,
 * always from the event loop. NULL on failure, with ofd already closed;
 * errno EMFILE or ENFILE then means nothing was written to the client (the
 * caller can still answer it with a refusal).
 */
struct tunnel	*tunnel_start(struct conn *, int cfd, int ofd,
		    const void *hello, size_t hellolen,
		    const void *early, size_t earlylen,
		    void (*done)(struct conn *, const char *));
uint64_t	 tunnel_bytes_up(const struct tunnel *);
uint64_t	 tunnel_bytes_down(const struct tunnel *);
void		 tunnel_free(struct tunnel *);

#endif
