/*
 * The built-in proxy, as the launcher sees it: start it on the run's event
 * loop, learn where it listens, stop it. HTTP forward, CONNECT (and later
 * SOCKS5) on one loopback port, with the destination policy and audit log.
 */
#ifndef BUILTIN_SERVER_H
#define BUILTIN_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct gateways;
struct secrets;
struct upstream;
struct event_base;
struct server;
struct strlist;

/*
 * The secret bindings, the upstream and the gateways are the launcher's
 * (it gives the child the placeholders and the gateways' variables, and
 * keeps the upstream's password from it); the server borrows them. NULL with a one-line cause in err. *fatal says the cause is a mistake in
 * the configuration (a bad pattern, an unwritable audit log), which no
 * fallback can mend, rather than a run-time failure (port in use).
 */
/* What the launcher owns and the server borrows. */
struct server_parts {
	struct secrets		*secrets;	/* bindings (maybe none) */
	struct upstream		*upstream;	/* corporate proxy, or NULL */
	struct gateways		*gateways;	/* --gateway (maybe none) */
	bool			 multi;		/* a sandbox registry: the
						   daemon, or --control */
	bool			 daemon;	/* no sandbox of its own */
};

struct server	*server_start(struct event_base *, const struct config *,
		    const struct server_parts *, const char *state_dir,
		    char *, size_t, bool *fatal);

/* The address clients should use: "127.0.0.1" / "::1" and the port. */
const char	*server_host(const struct server *);
unsigned	 server_port(const struct server *);

/* The interception CA's certificate (PEM, in the state directory) for the
 * child's trust bundle, or NULL when nothing is intercepted. */
const char	*server_ca_file(const struct server *);

/* For COMMAND's environment: git configuration sending ssh remotes of the
 * git guard's hosts over HTTPS (gitguard.h), added to out. 0, or -1 with
 * a one-line warning in err. */
int		 server_git_env(const struct server *, char *const *env,
		    struct strlist *out, char *, size_t);

/*
 * Listening sockets handed over from COMMAND's namespace (--isolate): the
 * proxy served on another one, or connections forwarded to a port of this
 * host's loopback (--host-port, door "forward"). The server owns fd.
 */
void		 server_adopt(struct server *, int fd);
void		 server_forward(struct server *, int fd, uint16_t port);

/* Close every connection, flush the audit log, print the summary at -v,
 * free. NULL is a no-op. */
void		 server_stop(struct server *);

#endif
