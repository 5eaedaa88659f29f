/*
 * --isolate: COMMAND in its own user + network namespace holding only a
 * loopback interface, unprivileged and without helper processes. The child
 * binds the proxy's port (and --host-port ports) on its own loopback before
 * exec and hands the listening sockets to egress-run over a socketpair
 * (SCM_RIGHTS); egress-run accepts on them and dials out from the host's
 * namespace. Anything else COMMAND tries finds no route.
 */
#ifndef LAUNCHER_ISOLATE_H
#define LAUNCHER_ISOLATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ISOLATE_MAX_PORTS	32

struct isolate {
	uint16_t	ports[ISOLATE_MAX_PORTS];	/* to bind inside: [0] is
							   the proxy's */
	size_t		nports;
	int		sock[2];			/* [0] parent, [1] child */
};

/* The question "can this process make the namespaces?", asked of a
 * child that runs while we go on starting up. */
struct isolate_probe {
	pid_t	pid;		/* -1: none (asked and answered, or never) */
	int	fd;		/* the child's answer, an errno */
	int	error;		/* fork or pipe failed: its errno */
};

/* Ask (fork a child that tries). Nothing to check: the answer says. */
void	isolate_probe_start(struct isolate_probe *);

/*
 * The answer (waiting for it): 0, or -1 with the cause and what to change
 * (a sysctl, the container's seccomp profile) in err. Reaps the child; a
 * second call, or one without a start, answers -1.
 */
int	isolate_probe_finish(struct isolate_probe *, char *, size_t);

/* Prepare: the ports to bind inside, and the socketpair. 0 or -1. */
int	isolate_init(struct isolate *, const uint16_t *, size_t);

/* In the forked child, before exec (a child_prep_fn): enter the
 * namespaces, bring lo up, bind and send the listeners. 0 or an errno. */
int	isolate_enter(void *);

/*
 * In the parent, after the child started: receive one listening socket per
 * port, in order, into fds. 0, or -1 with errno (the child failed first).
 */
int	isolate_receive(struct isolate *, int *fds, size_t);

void	isolate_close(struct isolate *);

#endif
