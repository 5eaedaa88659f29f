/*
 * Chaining to a corporate proxy: which one (--upstream, else egress-run's
 * own HTTPS_PROXY/HTTP_PROXY/ALL_PROXY), which destinations bypass it (its
 * own NO_PROXY), and the handshake that opens a stream through it (HTTP
 * CONNECT with Basic credentials, or SOCKS5 with RFC 1929). The built-in
 * proxy's dialer drives the handshake; policy has been applied before.
 */
#ifndef UPSTREAM_UPSTREAM_H
#define UPSTREAM_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct config;
struct dest;
struct event_base;
struct proxy_url;
struct upstream;
struct upstream_hs;

/*
 * The upstream for this run from the configuration and env (egress-run's
 * own environment). NULL when there is none; NULL with err set when a URL
 * is malformed (a configuration error; the message never holds the
 * password).
 */
struct upstream	*upstream_new(const struct config *, char *const *env,
		    char *, size_t);
void		 upstream_free(struct upstream *);

/*
 * The proxy to use for a destination, or NULL to go direct (no upstream,
 * or NO_PROXY names it). plain: a plain-HTTP request (HTTP_PROXY), else a
 * tunnel (HTTPS_PROXY).
 */
const struct proxy_url *upstream_route(const struct upstream *, bool plain,
		    const struct dest *);

/* The proxy's addresses, resolved once at start; 0 if it has none. */
size_t		 upstream_addrs(const struct upstream *,
		    const struct proxy_url *, const struct sockaddr_storage **);

/* Say at start what is configured, and warn if it does not accept
 * connections (then -1). */
int		 upstream_check(const struct upstream *, unsigned timeout_ms);

/* Every upstream password, for scrubbing them from the child's
 * environment; NULL-terminated, owned by the upstream. */
const char *const *upstream_secrets(const struct upstream *);

/*
 * The handshake on a connected socket to the proxy. target_addr, when not
 * NULL, is sent instead of the name (a --resolve pin, or an address we
 * resolved for a socks5:// proxy). The callback runs once, from the event
 * loop: status 0 with the bytes the proxy sent after its answer (leftover,
 * already the origin's), or 502 with a reason that names the upstream.
 */
typedef void	 upstream_hs_cb(int status, const char *reason,
		    const uint8_t *leftover, size_t, void *);

struct upstream_hs *upstream_hs_start(struct event_base *, int fd,
		    const struct proxy_url *, const struct dest *target,
		    const struct sockaddr *target_addr, upstream_hs_cb *,
		    void *);
void		 upstream_hs_cancel(struct upstream_hs *);

/* "Proxy-Authorization: Basic ...\r\n" for an HTTP proxy with
 * credentials, else ""; the caller wipes and frees it. */
char		*upstream_auth_header(const struct proxy_url *);

#endif
