/*
 * Spawning COMMAND and forwarding signals to it. The child stays in our
 * process group (the terminal's foreground group), so keys typed at the
 * terminal signal it directly; the kernel reports those to us with si_code
 * SI_KERNEL and we leave them alone. Signals someone sends to egress-run
 * (kill, systemd, a CI runner) are relayed to the child, which decides.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/xmalloc.h"
#include "launcher/child.h"

static volatile sig_atomic_t child_pid;
static struct rlimit saved_nofile;
static bool nofile_raised;
static volatile sig_atomic_t pending;
/*
 * Signals ignored when egress-run started (nohup, a background job of a
 * script): they stay ignored, for egress-run and for COMMAND, as env(1) and
 * nice(1) would leave them.
 */
static sigset_t inherited_ignored;

static const int forwarded[] = { SIGINT, SIGQUIT, SIGTERM, SIGHUP };

static void
on_signal(int sig, siginfo_t *si, void *ctx)
{
	int	saved = errno;
	pid_t	pid = child_pid;

	(void)ctx;
	if (pid > 0) {
		/* The terminal already signalled the whole group. */
		if (si->si_code != SI_KERNEL && si->si_pid != pid)
			(void)kill(pid, sig);
	} else if (pending == 0)
		pending = sig;
	errno = saved;
}

void
child_signals_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaddset(&sa.sa_mask, forwarded[i]);
	sigemptyset(&inherited_ignored);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++) {
		struct sigaction cur;

		if (sigaction(forwarded[i], NULL, &cur) == 0 &&
		    !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == SIG_IGN) {
			sigaddset(&inherited_ignored, forwarded[i]);
			continue;
		}
		(void)sigaction(forwarded[i], &sa, NULL);
	}
	signal(SIGPIPE, SIG_IGN);
}

void
child_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	saved_nofile = rl;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
		nofile_raised = true;
}

int
child_signal_pending(void)
{
	return pending;
}

void
child_reaped(void)
{
	child_pid = 0;
}

int
child_exit_code(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 125;
}

/* Why the child did not become COMMAND: which stage, and errno. */
enum { FAIL_PREP = 1, FAIL_EXEC = 2 };

/* All of len bytes from fd, or -1. */
static int
read_full(int fd, void *buf, size_t len)
{
	for (size_t off = 0; off < len; ) {
		ssize_t r = read(fd, (char *)buf + off, len - off);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		off += (size_t)r;
	}
	return 0;
}

/*
 * In an early child: the environment, as the parent sends it (its length,
 * then each variable NUL-terminated). NULL with errno: ECANCELED when the
 * parent gave up.
 */
static char **
receive_env(int fd)
{
	size_t	 len, n = 0;
	char	*buf, **envp, *p;

	if (read_full(fd, &len, sizeof len) != 0) {
		errno = ECANCELED;
		return NULL;
	}
	if ((buf = malloc(len + 1)) == NULL)
		return NULL;
	if (read_full(fd, buf, len) != 0 || (len > 0 && buf[len - 1] != '\0')) {
		errno = ECANCELED;
		return NULL;
	}
	close(fd);
	for (size_t i = 0; i < len; i++)
		n += buf[i] == '\0';
	if ((envp = calloc(n + 1, sizeof *envp)) == NULL)
		return NULL;
	p = buf;
	for (size_t i = 0; i < n; i++, p += strlen(p) + 1)
		envp[i] = p;
	return envp;
}

/*
 * In the forked child: undo what egress-run changed, run prep, wait for
 * the environment if it comes later (gofd), then exec.
 */
static void __attribute__((noreturn))
exec_child(char *const argv[], char *const envp[], child_prep_fn *prep,
    void *arg, int errfd, int gofd)
{
	sigset_t	all;
	char		**late = NULL;
	int		msg[2];

	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		if (!sigismember(&inherited_ignored, forwarded[i]))
			signal(forwarded[i], SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (nofile_raised)
		(void)setrlimit(RLIMIT_NOFILE, &saved_nofile);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* If egress-run is killed outright, COMMAND must not outlive it. */
	(void)prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(125);
	if (prep != NULL && (msg[1] = prep(arg)) != 0) {
		msg[0] = FAIL_PREP;
		(void)!write(errfd, msg, sizeof msg);
		_exit(125);
	}
	if (gofd != -1 && (late = receive_env(gofd)) == NULL &&
	    errno == ECANCELED)
		_exit(125);	/* given up: egress-run says why */
	if (gofd == -1 || late != NULL)
		execvpe(argv[0], argv, late != NULL ? late : envp);
	msg[0] = FAIL_EXEC;
	msg[1] = errno;
	(void)!write(errfd, msg, sizeof msg);
	_exit(msg[1] == ENOENT ? 127 : 126);
}

/*
 * Fork, holding the forwarded signals until child_pid is set (with
 * forward; an early child is not signalled until it is released). The
 * child never returns. 0, or -1 with errno.
 */
static int
fork_child(char *const argv[], char *const envp[], child_prep_fn *prep,
    void *arg, int p[2], int gofd, bool forward, pid_t *pidp)
{
	sigset_t	block, old;
	pid_t		pid;
	int		err;

	sigemptyset(&block);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaddset(&block, forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	/*
	 * A child with nothing to prepare only execs: vfork, so that
	 * egress-run's memory is not set up for copying on write for it
	 * (0.2-0.4 ms of every start). Until it execs it makes system calls
	 * only, in exec_child's own frame.
	 */
	if ((pid = prep == NULL && gofd == -1 ? vfork() : fork()) == -1) {
		err = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		errno = err;
		return -1;
	}
	if (pid == 0) {
		close(p[0]);
		exec_child(argv, envp, prep, arg, p[1], gofd);
	}
	*pidp = pid;
	if (forward)
		child_pid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	return 0;
}

/* The child's word on its exec: 0 (it runs COMMAND) or an exit status. */
static int
await_exec(const char *cmd, pid_t pid, int fd)
{
	int	msg[2], status, err;
	ssize_t	n;

	do
		n = read(fd, msg, sizeof msg);
	while (n == -1 && errno == EINTR);
	close(fd);
	if (n != (ssize_t)sizeof msg)
		return 0;
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	child_pid = 0;
	err = msg[1];
	if (msg[0] == FAIL_PREP) {
		log_error("cannot prepare '%s' (isolation): %s", cmd,
		    strerror(err));
		return 125;
	}
	if (err == ENOENT) {
		log_error("cannot run '%s': command not found", cmd);
		return 127;
	}
	log_error("cannot run '%s': %s", cmd, strerror(err));
	return 126;
}

int
child_spawn(char *const argv[], char *const envp[], pid_t *out)
{
	pid_t	pid;
	int	p[2], r;

	if (pipe2(p, O_CLOEXEC) == -1) {
		log_error("cannot start '%s': pipe: %s", argv[0],
		    strerror(errno));
		return 126;
	}
	if (fork_child(argv, envp, NULL, NULL, p, -1, true, &pid) == -1) {
		log_error("cannot start '%s': fork: %s", argv[0],
		    strerror(errno));
		close(p[0]);
		close(p[1]);
		return 126;
	}
	if ((r = await_exec(argv[0], pid, p[0])) != 0)
		return r;
	*out = pid;
	return 0;
}

int
child_fork_early(struct child_early *e, char *const argv[],
    child_prep_fn *prep, void *arg)
{
	int	p[2], go[2];

	e->pid = -1;
	e->go = e->status = -1;
	e->argv = argv;
	if (pipe2(p, O_CLOEXEC) == -1)
		return -1;
	if (pipe2(go, O_CLOEXEC) == -1) {
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (fork_child(argv, NULL, prep, arg, p, go[0], false,
	    &e->pid) == -1) {
		int err = errno;

		close(p[0]);
		close(p[1]);
		close(go[0]);
		close(go[1]);
		errno = err;
		return -1;
	}
	close(go[0]);
	e->go = go[1];
	e->status = p[0];
	return 0;
}

int
child_release(struct child_early *e, char *const envp[], pid_t *out)
{
	size_t	 len = 0, off = 0;
	char	*blob, *p;
	ssize_t	 n;
	pid_t	 pid = e->pid;
	int	 r;

	for (size_t i = 0; envp[i] != NULL; i++)
		len += strlen(envp[i]) + 1;
	blob = xreallocarray(NULL, sizeof len + len + 1, 1);
	memcpy(blob, &len, sizeof len);
	p = blob + sizeof len;
	for (size_t i = 0; envp[i] != NULL; i++)
		p = stpcpy(p, envp[i]) + 1;
	len += sizeof len;
	child_pid = pid;	/* from now on, signals are COMMAND's */
	/* A child that failed first says why on its own pipe. */
	while (off < len && ((n = write(e->go, blob + off, len - off)) > 0 ||
	    (n == -1 && errno == EINTR)))
		off += n > 0 ? (size_t)n : 0;
	free(blob);
	close(e->go);
	r = await_exec(e->argv[0], pid, e->status);
	e->pid = -1;
	e->go = e->status = -1;
	if (r != 0)
		return r;
	*out = pid;
	return 0;
}

void
child_abandon(struct child_early *e)
{
	if (e->pid <= 0)
		return;
	close(e->go);
	close(e->status);
	(void)kill(e->pid, SIGKILL);
	while (waitpid(e->pid, NULL, 0) == -1 && errno == EINTR)
		;
	e->pid = -1;
	e->go = e->status = -1;
}
