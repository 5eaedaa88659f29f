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
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
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

/* In the forked child: undo what egress-run changed, then exec. */
static void __attribute__((noreturn))
exec_child(char *const argv[], char *const envp[], child_prep_fn *prep,
    void *arg, int errfd)
{
	sigset_t	all;
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
	execvpe(argv[0], argv, envp);
	msg[0] = FAIL_EXEC;
	msg[1] = errno;
	(void)!write(errfd, msg, sizeof msg);
	_exit(msg[1] == ENOENT ? 127 : 126);
}

int
child_spawn(char *const argv[], char *const envp[], child_prep_fn *prep,
    void *arg, pid_t *out)
{
	sigset_t	block, old;
	int		p[2], err = 0, msg[2];
	ssize_t		n;
	pid_t		pid;

	if (pipe2(p, O_CLOEXEC) == -1) {
		log_error("cannot start '%s': pipe: %s", argv[0],
		    strerror(errno));
		return 126;
	}
	/* No forwarding until child_pid is known: signals wait here. */
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof forwarded / sizeof forwarded[0]; i++)
		sigaddset(&block, forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	if ((pid = fork()) == -1) {
		err = errno;
		sigprocmask(SIG_SETMASK, &old, NULL);
		close(p[0]);
		close(p[1]);
		log_error("cannot start '%s': fork: %s", argv[0], strerror(err));
		return 126;
	}
	if (pid == 0) {
		close(p[0]);
		exec_child(argv, envp, prep, arg, p[1]);
	}
	child_pid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(p[1]);
	do
		n = read(p[0], msg, sizeof msg);
	while (n == -1 && errno == EINTR);
	close(p[0]);
	if (n == (ssize_t)sizeof msg) {
		int status;

		while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
			;
		child_pid = 0;
		err = msg[1];
		if (msg[0] == FAIL_PREP) {
			log_error("cannot prepare '%s' (isolation): %s", argv[0],
			    strerror(err));
			return 125;
		}
		if (err == ENOENT) {
			log_error("cannot run '%s': command not found",
			    argv[0]);
			return 127;
		}
		log_error("cannot run '%s': %s", argv[0], strerror(err));
		return 126;
	}
	*out = pid;
	return 0;
}
