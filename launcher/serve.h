/*
 * egress-run serve: the built-in proxy with no COMMAND, for many sandboxes
 * registered through the control API (daemon/control.h). Runs until
 * SIGINT or SIGTERM; 0 then, 125 when it cannot start.
 */
#ifndef LAUNCHER_SERVE_H
#define LAUNCHER_SERVE_H

struct config;

int	serve_run(struct config *);

#endif
