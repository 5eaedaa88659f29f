/*
 * External proxy lifecycle: pick a port, run the command in its own process
 * group with output to a log file, wait for it to accept, notice when it
 * dies, stop it (SIGTERM to the group, SIGKILL after a grace period).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "launcher/child.h"
#include "launcher/config.h"
#include "launcher/external.h"

#define GRACE_MS	1000	/* SIGTERM to SIGKILL */
#define BACKOFF_MIN_MS	2
#define BACKOFF_MAX_MS	200
#define LOG_TAIL_LINES	5

struct external {
	pid_t	 pid;		/* -1 when nothing was spawned */
	bool	 reaped;
	char	*host;		/* what COMMAND is told to use */
	unsigned port;
	char	*logpath;
};

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned
external_free_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof sin;
	int			fd;
	unsigned		port = 0;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return 0;
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
		port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

/* One non-blocking connect attempt, bounded by wait_ms. 0 if accepted. */
static int
try_connect(const struct sockaddr *sa, socklen_t salen, int wait_ms)
{
	struct pollfd	pfd;
	socklen_t	len = sizeof(int);
	int		fd, err = 0, r = -1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1)
		return -1;
	if (connect(fd, sa, salen) == 0)
		r = 0;
	else if (errno == EINPROGRESS) {
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, wait_ms) == 1 &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 &&
		    err == 0)
			r = 0;
	}
	close(fd);
	return r;
}

static int
open_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

int
external_wait_bind(const struct sockaddr *sa, socklen_t salen, pid_t pid,
    unsigned timeout_ms, int *status)
{
	long long	deadline = now_ms() + timeout_ms;
	int		backoff = BACKOFF_MIN_MS, pidfd = -1, r = -1;

	if (pid > 0)
		pidfd = open_pidfd(pid);
	for (;;) {
		long long left = deadline - now_ms();

		if (child_signal_pending()) {
			r = -3;
			break;
		}
		if (pid > 0 && waitpid(pid, status, WNOHANG) == pid) {
			r = -2;
			break;
		}
		if (left <= 0)
			break;
		if (try_connect(sa, salen, (int)(left < 1000 ? left : 1000))
		    == 0) {
			r = 0;
			break;
		}
		left = deadline - now_ms();
		if (left <= 0)
			continue;
		/* Sleep, but wake at once if the process exits. */
		struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
		(void)poll(&pfd, pidfd != -1 ? 1 : 0,
		    (int)(left < backoff ? left : backoff));
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
		    backoff * 2;
	}
	if (pidfd != -1)
		close(pidfd);
	return r;
}

/* Replace every "{port}" in cmd. */
static char *
substitute_port(const char *cmd, unsigned port)
{
	char		 num[8];
	size_t		 n = 0, nlen;
	const char	*p;
	char		*out, *o;

	nlen = (size_t)snprintf(num, sizeof num, "%u", port);
	for (p = cmd; (p = strstr(p, "{port}")) != NULL; p += 6)
		n++;
	o = out = xcalloc(1, strlen(cmd) + n * nlen + 1);
	for (p = cmd; *p != '\0';) {
		if (strncmp(p, "{port}", 6) == 0) {
			memcpy(o, num, nlen);
			o += nlen;
			p += 6;
		} else
			*o++ = *p++;
	}
	*o = '\0';
	return out;
}

/* A wait status reproduced as our own: exit code, or death by the signal. */
static void __attribute__((noreturn))
exit_like(int status)
{
	sigset_t	 sig;
	struct rlimit	 nocore = { 0, 0 };

	if (WIFSIGNALED(status)) {
		(void)setrlimit(RLIMIT_CORE, &nocore);
		signal(WTERMSIG(status), SIG_DFL);
		sigemptyset(&sig);
		sigaddset(&sig, WTERMSIG(status));
		sigprocmask(SIG_UNBLOCK, &sig, NULL);
		raise(WTERMSIG(status));
		_exit(128 + WTERMSIG(status));
	}
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 125);
}

/*
 * The process group's leader: runs CMD with /bin/sh as its only child and
 * exits as that shell does, so to egress-run it *is* the proxy process. It
 * exists for the one case no teardown code sees: egress-run killed outright.
 * PR_SET_PDEATHSIG reaches only a direct child, and sh forks the real proxy;
 * so the leader takes the death signal and kills the whole group (SIGTERM,
 * SIGKILL after the grace period). Signals sent to the group by
 * external_stop() reach the shell and the proxy; the leader just waits.
 */
static void __attribute__((noreturn))
supervise(const char *cmd, pid_t parent)
{
	sigset_t	 wait_for, none;	/* none: reused for SIGCHLD */
	siginfo_t	 si;
	struct timespec	 ts;
	long long	 deadline;
	int		 status;
	pid_t		 pid;

	sigemptyset(&wait_for);
	sigaddset(&wait_for, SIGCHLD);
	sigaddset(&wait_for, SIGUSR1);		/* egress-run died */
	sigaddset(&wait_for, SIGTERM);
	sigaddset(&wait_for, SIGINT);
	sigaddset(&wait_for, SIGHUP);
	sigaddset(&wait_for, SIGQUIT);
	sigprocmask(SIG_SETMASK, &wait_for, NULL);
	(void)prctl(PR_SET_PDEATHSIG, SIGUSR1);
	if (getppid() != parent)		/* died before prctl */
		_exit(125);
	if ((pid = fork()) == -1)
		_exit(126);
	if (pid == 0) {
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (;;) {
		if (sigwaitinfo(&wait_for, &si) == -1)
			continue;
		if (si.si_signo == SIGCHLD) {
			if (waitpid(pid, &status, WNOHANG) == pid)
				exit_like(status);
			continue;
		}
		if (si.si_signo != SIGUSR1 || getppid() == parent)
			continue;	/* the shell got the same signal */
		/* egress-run is gone: stop everything it started. */
		(void)kill(-getpid(), SIGTERM);
		deadline = now_ms() + GRACE_MS;
		sigemptyset(&none);
		sigaddset(&none, SIGCHLD);
		while (waitpid(pid, &status, WNOHANG) == 0 &&
		    now_ms() < deadline) {
			long long left = deadline - now_ms();

			ts.tv_sec = left / 1000;
			ts.tv_nsec = (left % 1000) * 1000000;
			(void)sigtimedwait(&none, NULL, &ts);
		}
		(void)kill(-getpid(), SIGKILL);		/* ourselves too */
		_exit(125);
	}
}

static pid_t
spawn(const char *cmd, const char *logpath, char *err, size_t errlen)
{
	int	logfd, nullfd;
	pid_t	pid, parent = getpid();

	logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (logfd == -1) {
		snprintf(err, errlen, "cannot create %s: %s", logpath,
		    strerror(errno));
		return -1;
	}
	if ((pid = fork()) == -1) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(logfd);
		return -1;
	}
	if (pid == 0) {
		/* Own process group: teardown signals the whole group. */
		setpgid(0, 0);
		nullfd = open("/dev/null", O_RDONLY);
		dup2(nullfd, STDIN_FILENO);
		dup2(logfd, STDOUT_FILENO);
		dup2(logfd, STDERR_FILENO);
		closefrom(3);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGQUIT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		supervise(cmd, parent);
	}
	/* Also from here, so the group exists before anyone signals it. */
	setpgid(pid, pid);
	close(logfd);
	return pid;
}

void
external_log_tail(const char *logpath)
{
	char	 buf[4096];
	ssize_t	 n;
	int	 fd, lines = 0;
	off_t	 size;
	char	*p, *start;

	if ((fd = open(logpath, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	size = lseek(fd, 0, SEEK_END);
	if (size > (off_t)sizeof buf - 1)
		lseek(fd, size - (off_t)sizeof buf + 1, SEEK_SET);
	else
		lseek(fd, 0, SEEK_SET);
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = '\0';
	for (start = buf + n; start > buf; start--)
		if (start[-1] == '\n' && ++lines == LOG_TAIL_LINES)
			break;
	for (p = start; p != NULL && *p != '\0';) {
		char *nl = strchr(p, '\n');
		if (nl != NULL)
			*nl = '\0';
		log_warn("  | %s", p);
		p = nl ? nl + 1 : NULL;
	}
}

static void
describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d",
		    WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "stopped");
}

static int
resolve_addr(const char *host, unsigned port, struct sockaddr_storage *ss,
    socklen_t *len, char *err, size_t errlen)
{
	struct addrinfo	 hints, *res = NULL;
	char		 portstr[8];
	int		 e;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%u", port);
	if ((e = getaddrinfo(host, portstr, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve '%s': %s", host,
		    gai_strerror(e));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

struct external *
external_start(const struct config *cfg, const char *logpath, char *err,
    size_t errlen)
{
	struct external		*e = xcalloc(1, sizeof *e);
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			*cmd = NULL, what[128];
	int			 status = 0, r;

	e->pid = -1;
	e->logpath = xstrdup(logpath);
	if (cfg->external_addr != NULL) {
		if (util_hostport(cfg->external_addr, &e->host, &e->port,
		    false) != 0) {
			snprintf(err, errlen, "--external-addr '%s' is not "
			    "HOST:PORT", cfg->external_addr);
			goto fail;
		}
	} else {
		if ((e->port = external_free_port()) == 0) {
			snprintf(err, errlen, "no free loopback port: %s",
			    strerror(errno));
			goto fail;
		}
		e->host = xstrdup("127.0.0.1");
	}
	if (resolve_addr(e->host, e->port, &ss, &sslen, err, errlen) != 0)
		goto fail;
	if (cfg->external != NULL) {
		cmd = substitute_port(cfg->external, e->port);
		log_info("starting external proxy: %s", cmd);
		if ((e->pid = spawn(cmd, logpath, err, errlen)) == -1)
			goto fail;
	}
	r = external_wait_bind((struct sockaddr *)&ss, sslen, e->pid,
	    cfg->bind_timeout_ms, &status);
	if (r == -2) {
		e->reaped = true;
		describe_status(status, what, sizeof what);
		snprintf(err, errlen, "external proxy '%s' %s before it "
		    "accepted connections", cmd, what);
		goto fail;
	}
	if (r == -1) {
		snprintf(err, errlen, "external proxy %s%s%sdid not accept "
		    "connections on %s:%u within %.1f s (--bind-timeout)",
		    cmd ? "'" : "", cmd ? cmd : "", cmd ? "' " : "", e->host,
		    e->port, cfg->bind_timeout_ms / 1000.0);
		goto fail;
	}
	if (r == -3) {
		snprintf(err, errlen, "interrupted by a signal");
		goto fail;
	}
	log_info("external proxy accepts on %s:%u", e->host, e->port);
	free(cmd);
	return e;
fail:
	free(cmd);
	external_stop(e);
	return NULL;
}

const char *
external_host(const struct external *e)
{
	return e->host;
}

unsigned
external_port(const struct external *e)
{
	return e->port;
}

pid_t
external_pid(const struct external *e)
{
	return e->reaped ? -1 : e->pid;
}

void
external_lost(struct external *e, int status)
{
	char what[128];

	e->reaped = true;
	describe_status(status, what, sizeof what);
	log_error("the external proxy %s while COMMAND runs: its connections "
	    "now fail (last output below)", what);
	external_log_tail(e->logpath);
}

void
external_stop(struct external *e)
{
	long long	deadline;
	int		status;

	if (e == NULL)
		return;
	if (e->pid > 0) {
		(void)kill(-e->pid, SIGTERM);
		deadline = now_ms() + GRACE_MS;
		while (!e->reaped && now_ms() < deadline) {
			pid_t r = waitpid(e->pid, &status, WNOHANG);
			if (r == e->pid || (r == -1 && errno == ECHILD))
				e->reaped = true;
			else
				usleep(5000);
		}
		/* Whatever is left of the group, leader or not. */
		(void)kill(-e->pid, SIGKILL);
		if (!e->reaped)
			(void)waitpid(e->pid, &status, 0);
		/* A killed process is gone only once it has exited: wait
		 * (bounded) until no member of the group is left, so that
		 * nothing we started is seen running after we return. (Not
		 * long: an orphan's zombie waits on whoever reaps for init.) */
		deadline = now_ms() + 250;
		while (kill(-e->pid, 0) == 0 && now_ms() < deadline)
			usleep(2000);
	}
	free(e->host);
	free(e->logpath);
	free(e);
}
