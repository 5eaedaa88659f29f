/*
 * egress-run connect HOST PORT: open a CONNECT tunnel through the session's
 * proxy (found in the environment egress-run gave us) and relay it to
 * stdin/stdout, for ssh -o ProxyCommand.
 */
#ifndef LAUNCHER_CONNECT_H
#define LAUNCHER_CONNECT_H

/* argv[0] is "connect". Returns the process exit status. */
int	connect_main(int, char **);

#endif
