/*
 * The control API: HTTP/1.1 + JSON on a Unix socket (mode 0600; peers of
 * another user are refused), never on the proxy's port.
 *
 *   POST   /v1/sandboxes          register (201: id, token, proxy, CA, ...)
 *   GET    /v1/sandboxes          list, with counters
 *   GET    /v1/sandboxes/ID       one, with counters
 *   PUT    /v1/sandboxes/ID       replace its policy (next request on)
 *   PATCH  /v1/sandboxes/ID       {"expires_at": ...}: renew
 *   DELETE /v1/sandboxes/ID       drop it; its connections are closed
 *
 * The daemon (egress-run serve) serves many sandboxes; a run with
 * --control serves its one, "default" (PUT, GET only).
 */
#ifndef DAEMON_CONTROL_H
#define DAEMON_CONTROL_H

#include <stddef.h>

struct control;
struct event_base;
struct server;

/* Listen on path (a stale socket there is replaced; a live one is an
 * error). NULL with one line in err. */
struct control	*control_start(struct event_base *, struct server *,
		    const char *path, char *err, size_t errlen);
/* Close every client, remove the socket, free. NULL is a no-op. */
void		 control_stop(struct control *);

#endif
