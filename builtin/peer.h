/*
 * Who is on the other end of a loopback TCP connection: the owner of the
 * client's socket, asked of the kernel (NETLINK_SOCK_DIAG, as ss(8) does).
 * The built-in proxy serves only its own user: any local account could
 * otherwise borrow its policy exceptions and its secret injection.
 */
#ifndef BUILTIN_PEER_H
#define BUILTIN_PEER_H

#include <sys/socket.h>
#include <sys/types.h>

/*
 * The uid owning the socket at the far end of fd (an accepted TCP
 * connection from this host). 0 on success; -1 with errno when the kernel
 * cannot say (no such socket: the peer is on another host, or sock_diag is
 * unavailable).
 */
int	peer_uid(int fd, uid_t *);

/*
 * Keep one netlink socket for every later peer_uid() (one descriptor for
 * the process's life, saving a socket() and a close() per question). Call
 * at start, before descriptors are counted or limited; best effort.
 */
void	peer_open(void);

#endif
