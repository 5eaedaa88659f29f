/*
 * A user-provided proxy: either a command we run (--external, in its own
 * process group, output to a log in the state directory) or an address of
 * one already running (--external-addr). Either way we wait until it accepts
 * TCP connections before COMMAND starts.
 */
#ifndef LAUNCHER_EXTERNAL_H
#define LAUNCHER_EXTERNAL_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

struct config;
struct external;

/*
 * Start (or locate) the proxy and wait for it to accept. On failure return
 * NULL with the cause in err; nothing is left running.
 */
struct external	*external_start(const struct config *, const char *logpath,
		    char *, size_t);
const char	*external_host(const struct external *);
unsigned	 external_port(const struct external *);
pid_t		 external_pid(const struct external *);	/* -1: none */

/* The proxy process exited while COMMAND runs: say so on stderr. */
void		 external_lost(struct external *, int);

/* Repeat the last lines of a proxy log on stderr, after a failure. */
void		 external_log_tail(const char *);

/* SIGTERM to its group, SIGKILL after a grace period; free. NULL: no-op. */
void		 external_stop(struct external *);

/* A free TCP port on 127.0.0.1, or 0 with errno set. */
unsigned	 external_free_port(void);

/*
 * Poll a TCP connect to addr with exponential backoff (capped at 200 ms)
 * until it succeeds or timeout_ms passes. If pid > 0 and that process exits
 * first, store its wait status and stop at once. Returns 0 when accepted,
 * -1 on timeout, -2 when the process exited, -3 when interrupted by a
 * signal that stops the run.
 */
int		 external_wait_bind(const struct sockaddr *, socklen_t, pid_t,
		    unsigned timeout_ms, int *);

#endif
