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

/*
 * The child is forked early (child_fork_early) with isolate_prep: it makes
 * its namespaces while egress-run starts its proxy, says whether it could
 * (isolate_ready), then binds the ports it is sent (isolate_send_ports)
 * and hands the listeners back (isolate_receive).
 */
struct isolate {
	int	sock[2];		/* [0] egress-run's, [1] the child's */
};

/* The socketpair, before the fork. 0 or -1 with errno. */
int	isolate_init(struct isolate *);

/* In the forked child (a child_prep_fn): 0 or an errno. */
int	isolate_prep(void *);

/*
 * Could the child make its namespaces? 0, or -1 with the cause and what to
 * change (a sysctl, the container's seccomp profile) in err.
 */
int	isolate_ready(struct isolate *, char *, size_t);

/* Have the child bind 127.0.0.1:PORT for each of ports, the proxy's
 * first. 0 or -1 with errno. */
int	isolate_send_ports(struct isolate *, const uint16_t *, size_t);

/*
 * The listening sockets, one per port sent, in order, into fds. 0, or -1
 * with errno (the child failed first).
 */
int	isolate_receive(struct isolate *, int *fds, size_t);

void	isolate_close(struct isolate *);

#endif
