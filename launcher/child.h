/*
 * COMMAND as a child process: spawned in egress-run's own process group, so
 * it keeps the terminal and job control; signals sent to egress-run are
 * forwarded to it, those the terminal sends already reach it and are not.
 */
#ifndef LAUNCHER_CHILD_H
#define LAUNCHER_CHILD_H

#include <sys/types.h>

/* Install the forwarding handlers (SIGINT, SIGQUIT, SIGTERM, SIGHUP) and
 * ignore SIGPIPE. Call once, before any proxy is started. */
void	child_signals_install(void);

/* Raise egress-run's descriptor limit to the hard limit (a proxy needs
 * many); COMMAND gets the original back. */
void	child_raise_nofile(void);

/* A signal that arrived while no child ran (0 if none): the run stops. */
int	child_signal_pending(void);

/*
 * Spawn argv with envp. On success store the pid and return 0; otherwise
 * report why on stderr and return 126 (cannot execute) or 127 (not found).
 */
int	child_spawn(char *const argv[], char *const envp[], pid_t *);

/* Work done in a forked child before exec (entering namespaces): 0, or an
 * errno that stops the run. */
typedef int	child_prep_fn(void *);

/*
 * A child forked ahead of COMMAND's start, so that slow preparation
 * (--isolate's namespaces) overlaps egress-run's own: it runs prep(arg) at
 * once, then waits for its environment.
 */
struct child_early {
	pid_t		 pid;		/* -1: none */
	int		 go;		/* the environment goes here */
	int		 status;	/* exec's outcome comes back here */
	char *const	*argv;
};

/* Fork it (its signals are reset, as for child_spawn). 0, or -1 with
 * errno. argv must live until it is released. */
int	child_fork_early(struct child_early *, char *const argv[],
	    child_prep_fn *, void *);

/* Let it exec with envp: what child_spawn returns, and 125 if prep
 * failed. */
int	child_release(struct child_early *, char *const envp[], pid_t *);

/* Kill and reap it, if there is one (a run that stops before COMMAND). */
void	child_abandon(struct child_early *);

/* Forget the child once reaped: later signals are no longer forwarded. */
void	child_reaped(void);

/* The exit status egress-run reports for a waitpid() status. */
int	child_exit_code(int);

#endif
