/*
 * One run of egress-run: start a proxy (external, else built-in, else none,
 * per the fail-open chain), build the child's environment, run COMMAND on
 * the event loop until it exits, tear everything down.
 */
#ifndef LAUNCHER_SESSION_H
#define LAUNCHER_SESSION_H

struct config;

/* Returns the process exit status (COMMAND's, or 125/126/127). Inline
 * secret values in the configuration are wiped once taken. */
int	session_run(struct config *, const char *self);

#endif
