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

/* Work done in the forked child just before exec (entering namespaces):
 * 0, or an errno that stops the run. */
typedef int	child_prep_fn(void *);

/*
 * Spawn argv with envp, running prep(arg) in the child first when given.
 * On success store the pid and return 0; otherwise report why on stderr
 * and return 125 (prep failed), 126 (cannot execute) or 127 (not found).
 */
int	child_spawn(char *const argv[], char *const envp[], child_prep_fn *,
	    void *, pid_t *);

/* Forget the child once reaped: later signals are no longer forwarded. */
void	child_reaped(void);

/* The exit status egress-run reports for a waitpid() status. */
int	child_exit_code(int);

#endif
