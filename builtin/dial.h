/*
 * Reaching an origin: pins or asynchronous resolution (evdns), the address
 * guard on every candidate (policy stage 2), then a non-blocking connect to
 * the very address that was checked. The result always arrives on a later
 * loop turn, never inside dial_start().
 */
#ifndef BUILTIN_DIAL_H
#define BUILTIN_DIAL_H

#include <sys/socket.h>

struct dest;
struct dial;
struct server;

struct dial_result {
	int			 status;	/* 0 connected, 403 policy,
						   502 unreachable, 504
						   timeout */
	const char		*rule;		/* 403: the deciding rule */
	int			 err;		/* errno-style cause: EACCES
						   (policy), ECONNREFUSED,
						   ENETUNREACH, ETIMEDOUT,
						   EHOSTUNREACH (no address) */
	char			 reason[224];
	struct sockaddr_storage	 addr;		/* connected (or refused) */
};

/* fd is the connected socket (non-blocking) when status is 0, else -1. */
typedef void	 dial_cb(int fd, const struct dial_result *, void *);

struct dial	*dial_start(struct server *, const struct dest *, dial_cb *,
		    void *);
/* Abandon a dial whose callback has not run yet. */
void		 dial_cancel(struct dial *);

#endif
