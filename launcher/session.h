/*
 * One run of egress-run: start a proxy (external, else built-in, else none,
 * per the fail-open chain), build the child's environment, run COMMAND on
 * the event loop until it exits, tear everything down.
 */
#ifndef LAUNCHER_SESSION_H
#define LAUNCHER_SESSION_H

struct config;

/* Returns the process exit status (COMMAND's, or 125/126/127). */
int	session_run(const struct config *, const char *self);

#endif
