/*
 * Network isolation with namespaces, no root and no helpers. COMMAND's
 * child, forked when egress-run starts, unshares a user and a network
 * namespace, maps its own uid and gid to themselves (the agent is not root
 * in there) and brings up lo while the proxy starts; then it binds the
 * listeners egress-run will serve, passes them back with SCM_RIGHTS and
 * execs. Its capabilities in the new namespace end at exec (its uid is
 * not 0), so it cannot rebuild a route out.
 *
 * DNS needs no server of ours: in a namespace with only lo, a query to the
 * resolver in /etc/resolv.conf fails at once (no route; or a refused port
 * for a loopback resolver like 127.0.0.53), never after a timeout. The
 * host's resolver sockets are hidden (hide_resolvers): only the proxy
 * resolves names, as policy intends.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>

#include "common/util.h"
#include "launcher/isolate.h"

static int
write_file(const char *path, const char *text)
{
	int	fd;
	ssize_t	n, len = (ssize_t)strlen(text);

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	n = write(fd, text, (size_t)len);
	close(fd);
	return n == len ? 0 : -1;
}

/*
 * Unix sockets are files: they cross a network namespace. Those through
 * which a name can be resolved on the host (systemd-resolved's varlink
 * and D-Bus-free stub paths, nscd) are hidden under empty, read-only
 * tmpfs mounts in COMMAND's private mount namespace, so that only the
 * proxy resolves names. Missing directories are skipped.
 */
static const char *resolver_dirs[] = {
	"/run/systemd/resolve",
	"/var/run/nscd",
	"/run/nscd",
};

static int
hide_resolvers(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1)
		return errno;
	for (size_t i = 0; i < sizeof resolver_dirs / sizeof resolver_dirs[0];
	    i++) {
		if (access(resolver_dirs[i], F_OK) != 0)
			continue;
		if (mount("tmpfs", resolver_dirs[i], "tmpfs", MS_RDONLY |
		    MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755") ==
		    -1)
			return errno;
	}
	return 0;
}

/* The namespaces and the identity maps; errno on failure. */
static int
enter(void)
{
	char	map[64];
	uid_t	uid = geteuid();
	gid_t	gid = getegid();
	int	e;

	/*
	 * egress-run is not dumpable (its memory holds secrets), and a
	 * non-dumpable process's /proc/self files belong to root: it could
	 * not write its own maps. It is, for as long as that takes.
	 */
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS) == -1)
		return errno;
	(void)prctl(PR_SET_DUMPABLE, 1);
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if (write_file("/proc/self/uid_map", map) == -1)
		goto fail;
	/* An unprivileged gid map needs setgroups denied first. */
	if (write_file("/proc/self/setgroups", "deny") == -1 &&
	    errno != ENOENT)
		goto fail;
	snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if (write_file("/proc/self/gid_map", map) == -1)
		goto fail;
	/* Until exec, this child holds a copy of egress-run's memory. */
	(void)prctl(PR_SET_DUMPABLE, 0);
	return 0;
fail:
	e = errno;
	(void)prctl(PR_SET_DUMPABLE, 0);
	return e;
}

static int
loopback_up(void)
{
	struct ifreq	ifr;
	int		fd, r = 0;

	if ((fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return errno;
	memset(&ifr, 0, sizeof ifr);
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == -1)
		r = errno;
	else {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		if (ioctl(fd, SIOCSIFFLAGS, &ifr) == -1)
			r = errno;
	}
	close(fd);
	return r;
}

/* A number from a /proc/sys file, or -1. */
static long long
sysctl_value(const char *path)
{
	char		 buf[32];
	long long	 v;
	FILE		*f;

	if ((f = fopen(path, "re")) == NULL)
		return -1;
	if (fgets(buf, sizeof buf, f) == NULL) {
		fclose(f);
		return -1;
	}
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	return util_strtonum(buf, 0, INT64_MAX, &v) == 0 ? v : -1;
}

int
isolate_ready(struct isolate *iso, char *err, size_t errlen)
{
	ssize_t	n;
	int	e = 0;

	if (iso->sock[1] != -1) {
		close(iso->sock[1]);	/* EOF if the child dies first */
		iso->sock[1] = -1;
	}
	do
		n = recv(iso->sock[0], &e, sizeof e, 0);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)sizeof e)
		e = EIO;
	if (e == 0)
		return 0;
	/* Say what to change, as precisely as the system lets us. */
	if (sysctl_value("/proc/sys/user/max_user_namespaces") == 0) {
		snprintf(err, errlen, "user namespaces are switched off (sysctl "
		    "user.max_user_namespaces=0): set it above 0 to use "
		    "--isolate");
		return -1;
	}
	if (sysctl_value("/proc/sys/kernel/unprivileged_userns_clone") == 0) {
		snprintf(err, errlen, "unprivileged user namespaces are "
		    "disabled (sysctl kernel.unprivileged_userns_clone=0): set "
		    "it to 1 to use --isolate");
		return -1;
	}
	if (sysctl_value("/proc/sys/kernel/apparmor_restrict_unprivileged_"
	    "userns") == 1) {
		snprintf(err, errlen, "AppArmor restricts unprivileged user "
		    "namespaces (sysctl kernel.apparmor_restrict_unprivileged_"
		    "userns=1): allow egress-run in a profile or set it to 0");
		return -1;
	}
	snprintf(err, errlen, "cannot create a user and network namespace: "
	    "%s (a container's seccomp profile or an old kernel may forbid "
	    "it)", strerror(e));
	return -1;
}

int
isolate_init(struct isolate *iso)
{
	iso->sock[0] = iso->sock[1] = -1;
	return socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
	    iso->sock);
}

static int
listen_on(uint16_t port)
{
	struct sockaddr_in	sin;
	int			fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		return -1;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons(port);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(fd, 1024) == -1) {
		int e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int
isolate_prep(void *arg)
{
	struct isolate	*iso = arg;
	uint16_t	 ports[ISOLATE_MAX_PORTS];
	int		 fds[ISOLATE_MAX_PORTS], e;
	char		 cbuf[CMSG_SPACE(sizeof fds)];
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cm;
	char		 tag = 'L';
	ssize_t		 n;
	size_t		 nports;

	close(iso->sock[0]);
	if ((e = enter()) == 0 && (e = loopback_up()) == 0)
		e = hide_resolvers();
	if (send(iso->sock[1], &e, sizeof e, 0) != (ssize_t)sizeof e)
		return e != 0 ? e : errno;
	if (e != 0)
		return e;
	/* The ports, once the proxy has one; nothing: egress-run gave up. */
	do
		n = recv(iso->sock[1], ports, sizeof ports, 0);
	while (n == -1 && errno == EINTR);
	if (n <= 0 || n % (ssize_t)sizeof ports[0] != 0)
		return n == -1 ? errno : ECANCELED;
	nports = (size_t)n / sizeof ports[0];
	for (size_t i = 0; i < nports; i++)
		if ((fds[i] = listen_on(ports[i])) == -1)
			return errno;
	memset(&msg, 0, sizeof msg);
	memset(cbuf, 0, sizeof cbuf);
	iov.iov_base = &tag;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = CMSG_SPACE(nports * sizeof(int));
	cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(nports * sizeof(int));
	memcpy(CMSG_DATA(cm), fds, nports * sizeof(int));
	if (sendmsg(iso->sock[1], &msg, 0) == -1)
		return errno;
	/* The listeners are egress-run's now; COMMAND inherits none. */
	for (size_t i = 0; i < nports; i++)
		close(fds[i]);
	close(iso->sock[1]);
	return 0;
}

int
isolate_send_ports(struct isolate *iso, const uint16_t *ports, size_t n)
{
	if (n == 0 || n > ISOLATE_MAX_PORTS) {
		errno = EINVAL;
		return -1;
	}
	return send(iso->sock[0], ports, n * sizeof ports[0], 0) ==
	    (ssize_t)(n * sizeof ports[0]) ? 0 : -1;
}

int
isolate_receive(struct isolate *iso, int *fds, size_t n)
{
	char		 cbuf[CMSG_SPACE(ISOLATE_MAX_PORTS * sizeof(int))];
	struct msghdr	 msg;
	struct iovec	 iov;
	struct cmsghdr	*cm;
	struct pollfd	 pfd;
	char		 tag;
	ssize_t		 r;

	pfd.fd = iso->sock[0];
	pfd.events = POLLIN;
	if (poll(&pfd, 1, 5000) != 1) {
		errno = ETIMEDOUT;
		return -1;
	}
	memset(&msg, 0, sizeof msg);
	iov.iov_base = &tag;
	iov.iov_len = 1;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = cbuf;
	msg.msg_controllen = sizeof cbuf;
	do
		r = recvmsg(iso->sock[0], &msg, MSG_CMSG_CLOEXEC);
	while (r == -1 && errno == EINTR);
	if (r != 1 || (cm = CMSG_FIRSTHDR(&msg)) == NULL ||
	    cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(n * sizeof(int))) {
		errno = r == 0 ? ECHILD : EPROTO;
		return -1;
	}
	memcpy(fds, CMSG_DATA(cm), n * sizeof(int));
	return 0;
}

void
isolate_close(struct isolate *iso)
{
	for (int i = 0; i < 2; i++)
		if (iso->sock[i] != -1)
			close(iso->sock[i]);
	iso->sock[0] = iso->sock[1] = -1;
}
