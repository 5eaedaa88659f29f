/*
 * Peer credentials for TCP over loopback. SO_PEERCRED only works on Unix
 * sockets; for TCP the kernel's sock_diag interface looks a socket up by
 * its exact four-tuple and reports its owner. One request, one answer:
 * over the netlink socket peer_open() made for the process's life, else
 * over one made for the question and closed after it.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "builtin/peer.h"

static int	nlfd = -1;	/* kept: peer_open() was called */
static bool	nlkeep;
static __u32	nlseq;

static int
nl_socket(void)
{
	return socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC,
	    NETLINK_SOCK_DIAG);
}

void
peer_open(void)
{
	nlkeep = true;
	if (nlfd == -1)
		nlfd = nl_socket();
}

/* Done with the question's socket; on trouble, a kept one is made afresh
 * next time, so a stray answer is never taken for the next question's. */
static void
nl_done(bool trouble)
{
	int e = errno;

	if (nlfd != -1 && (trouble || !nlkeep)) {
		close(nlfd);
		nlfd = -1;
	}
	errno = e;
}

int
peer_uid(int fd, uid_t *uid)
{
	struct sockaddr_storage	 local, remote;
	socklen_t		 llen = sizeof local, rlen = sizeof remote;
	struct {
		struct nlmsghdr		nh;
		struct inet_diag_req_v2	req;
	} msg;
	struct sockaddr_nl	 nl = { .nl_family = AF_NETLINK };
	union {
		struct nlmsghdr	nh;
		char		buf[8192];
	} ans;
	struct inet_diag_msg	*dm;
	ssize_t			 n;

	if (getsockname(fd, (struct sockaddr *)&local, &llen) != 0 ||
	    getpeername(fd, (struct sockaddr *)&remote, &rlen) != 0)
		return -1;
	memset(&msg, 0, sizeof msg);
	msg.nh.nlmsg_len = sizeof msg;
	msg.nh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nh.nlmsg_flags = NLM_F_REQUEST;
	msg.nh.nlmsg_seq = ++nlseq;
	msg.req.sdiag_family = (__u8)local.ss_family;
	msg.req.sdiag_protocol = IPPROTO_TCP;
	msg.req.idiag_states = ~0U;
	msg.req.id.idiag_cookie[0] = msg.req.id.idiag_cookie[1] =
	    INET_DIAG_NOCOOKIE;
	/* The socket we look for is the client's: its source is our peer. */
	if (local.ss_family == AF_INET) {
		struct sockaddr_in *l = (void *)&local, *p = (void *)&remote;
		msg.req.id.idiag_sport = p->sin_port;
		msg.req.id.idiag_dport = l->sin_port;
		memcpy(msg.req.id.idiag_src, &p->sin_addr, 4);
		memcpy(msg.req.id.idiag_dst, &l->sin_addr, 4);
	} else if (local.ss_family == AF_INET6) {
		struct sockaddr_in6 *l = (void *)&local, *p = (void *)&remote;
		msg.req.id.idiag_sport = p->sin6_port;
		msg.req.id.idiag_dport = l->sin6_port;
		memcpy(msg.req.id.idiag_src, &p->sin6_addr, 16);
		memcpy(msg.req.id.idiag_dst, &l->sin6_addr, 16);
	} else {
		errno = EAFNOSUPPORT;
		return -1;
	}
	if (nlfd == -1 && (nlfd = nl_socket()) == -1)
		return -1;
	if (sendto(nlfd, &msg, sizeof msg, 0, (struct sockaddr *)&nl,
	    sizeof nl) != (ssize_t)sizeof msg) {
		nl_done(true);
		return -1;
	}
	/* The kernel answers inside sendto(): the answer is already queued,
	 * so never wait for one. */
	do
		n = recv(nlfd, &ans, sizeof ans, MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n < (ssize_t)sizeof(struct nlmsghdr) ||
	    !NLMSG_OK(&ans.nh, (size_t)n) || ans.nh.nlmsg_seq != nlseq) {
		if (n >= 0)
			errno = EPROTO;
		nl_done(true);
		return -1;
	}
	nl_done(false);
	if (ans.nh.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
	    NLMSG_PAYLOAD(&ans.nh, 0) < sizeof *dm) {
		errno = ans.nh.nlmsg_type == NLMSG_ERROR ? ENOENT : EPROTO;
		return -1;
	}
	dm = NLMSG_DATA(&ans.nh);
	*uid = dm->idiag_uid;
	return 0;
}
