/*
 * launcher/child.c: exit-status mapping from real wait statuses, spawning
 * (127 not found, 126 not executable), the child's exact environment, the
 * signal state COMMAND starts with (nothing ignored, nothing blocked), and
 * early children (prep at once, the environment at release, abandon).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher/child.h"
#include "test.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char tmpdir[] = "/tmp/test_child.XXXXXX";

/* A real wait status: a child that exits with code, or dies of sig. */
static int
real_status(int code, int sig)
{
	int	status = 0;
	pid_t	pid = fork();

	if (pid == 0) {
		if (sig != 0) {
			struct rlimit no_core = { 0, 0 };
			setrlimit(RLIMIT_CORE, &no_core);
			signal(sig, SIG_DFL);
			raise(sig);
		}
		_exit(code);
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	return status;
}

static void
exit_code_mapping(void)
{
	static const struct {
		int	code, sig, want;
	} cases[] = {
		{ 0, 0, 0 }, { 1, 0, 1 }, { 3, 0, 3 }, { 125, 0, 125 },
		{ 126, 0, 126 }, { 127, 0, 127 }, { 255, 0, 255 },
		{ 0, SIGHUP, 129 }, { 0, SIGINT, 130 }, { 0, SIGQUIT, 131 },
		{ 0, SIGABRT, 134 }, { 0, SIGKILL, 137 }, { 0, SIGSEGV, 139 },
		{ 0, SIGPIPE, 141 }, { 0, SIGTERM, 143 },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		int got = child_exit_code(real_status(cases[i].code,
		    cases[i].sig));
		CHECK(got == cases[i].want, "exit %d / signal %d: got %d, "
		    "want %d", cases[i].code, cases[i].sig, got, cases[i].want);
	}
}

static char *
make_file(const char *name, const char *text, mode_t mode)
{
	static char	path[512];
	int		fd;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd != -1) {
		(void)!write(fd, text, strlen(text));
		close(fd);
	}
	chmod(path, mode);
	return path;
}

static void
spawn_failures_are_126_and_127(void)
{
	char		 dir[512], noexec[512], missing[512];
	char		*const empty_env[] = { NULL };
	pid_t		 pid;

	snprintf(dir, sizeof dir, "%s/a-directory", tmpdir);
	mkdir(dir, 0755);
	snprintf(noexec, sizeof noexec, "%s", make_file("script.sh",
	    "#!/bin/sh\nexit 0\n", 0644));
	snprintf(missing, sizeof missing, "%s/no-such-command", tmpdir);

	const struct {
		const char	*argv0;
		int		 want;
	} cases[] = {
		{ "egress-run-no-such-command-xyzzy", 127 },	/* PATH search */
		{ missing, 127 },
		{ "/nonexistent-dir/cmd", 127 },
		{ noexec, 126 },		/* no x bit, even for root */
		{ dir, 126 },
	};
	for (size_t i = 0; i < NELEM(cases); i++) {
		char *argv[] = { (char *)cases[i].argv0, NULL };
		int r;

		pid = -1;
		r = child_spawn(argv, empty_env, &pid);
		CHECK(r == cases[i].want, "%s: got %d, want %d",
		    cases[i].argv0, r, cases[i].want);
		/* Nothing left behind to reap. */
		CHECK(waitpid(-1, NULL, WNOHANG) == -1 && errno == ECHILD,
		    "%s: a child was left", cases[i].argv0);
	}
}

static void
spawn_success_gives_a_pid_and_its_status(void)
{
	char	*argv[] = { "/bin/sh", "-c", "exit 7", NULL };
	char	*envp[] = { "PATH=/usr/bin:/bin", NULL };
	pid_t	 pid = -1;
	int	 status = 0;

	CHECK(child_spawn(argv, envp, &pid) == 0, "spawn failed");
	CHECK(pid > 0, "pid %d", (int)pid);
	if (pid > 0) {
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
		CHECK(child_exit_code(status) == 7, "status %#x", status);
		child_reaped();
	}
	/* Found through PATH, as execvp does. */
	{
		char *argv2[] = { "true", NULL };
		pid = -1;
		CHECK(child_spawn(argv2, envp, &pid) == 0,
		    "true not found");
		if (pid > 0) {
			waitpid(pid, &status, 0);
			CHECK(child_exit_code(status) == 0, "true failed");
			child_reaped();
		}
	}
}

/*
 * Run argv with envp, its stdout to a file: what it printed, and in *codep
 * what spawning and the exit said. Spawned with child_spawn, or (early)
 * forked with child_fork_early running prep(arg), then released.
 */
static char *
capture(char *const argv[], char *const envp[], bool early,
    child_prep_fn *prep, void *arg, int *codep)
{
	static char		 out[262144];
	struct child_early	 e;
	char			 path[512];
	int			 fd, saved, status = 0;
	pid_t			 pid = -1;
	FILE			*f;
	size_t			 n = 0;

	snprintf(path, sizeof path, "%s/capture", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	saved = dup(STDOUT_FILENO);
	fflush(stdout);
	dup2(fd, STDOUT_FILENO);
	close(fd);
	if (!early)
		*codep = child_spawn(argv, envp, &pid);
	else if ((*codep = child_fork_early(&e, argv, prep, arg)) != 0)
		*codep = -1;
	dup2(saved, STDOUT_FILENO);
	close(saved);
	if (early && *codep == 0)
		*codep = child_release(&e, envp, &pid);
	if (*codep == 0) {
		waitpid(pid, &status, 0);
		child_reaped();
		*codep = child_exit_code(status);
	}
	out[0] = '\0';
	if ((f = fopen(path, "r")) != NULL) {
		n = fread(out, 1, sizeof out - 1, f);
		fclose(f);
	}
	out[n] = '\0';
	return out;
}

static char *
spawn_capture(char *const argv[], char *const envp[], int *codep)
{
	return capture(argv, envp, false, NULL, NULL, codep);
}

static void
child_environment_is_exactly_envp(void)
{
	char	*argv[] = { "/usr/bin/env", NULL };
	char	*envp[] = { "A=1", "B=two words", "EMPTY=", "PATH=/nowhere",
	    NULL };
	char	*none[] = { NULL };
	int	 code;

	setenv("TEST_CHILD_PARENT_ONLY", "leak", 1);
	CHECK_STR(spawn_capture(argv, envp, &code),
	    "A=1\nB=two words\nEMPTY=\nPATH=/nowhere\n");
	CHECK(code == 0, "env exited %d", code);
	CHECK_STR(spawn_capture(argv, none, &code), "");
	unsetenv("TEST_CHILD_PARENT_ONLY");
}

/* A hex mask line ("SigIgn:\t0000000000001000") of /proc/PID/status. */
static unsigned long long
mask_of(const char *status_text, const char *field)
{
	const char *p = strstr(status_text, field);

	return p == NULL ? ~0ULL : strtoull(p + strlen(field) + 1, NULL, 16);
}

#define BIT(sig)	(1ULL << ((sig) - 1))

/*
 * In a fresh process (signal state is process-wide): set up the parent as
 * described, install egress-run's handlers, spawn cat /proc/self/status and
 * return the child's SigIgn and SigBlk masks through a pipe.
 */
static int
child_masks(int hup_ignored_at_start, unsigned long long *ign,
    unsigned long long *blk)
{
	int	p[2], status = 0;
	pid_t	pid;

	*ign = *blk = ~0ULL;
	if (pipe(p) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		char		*argv[] = { "/bin/cat", "/proc/self/status", NULL };
		char		*envp[] = { NULL };
		unsigned long long m[2];
		sigset_t	 block;
		const char	*text;
		int		 code;

		close(p[0]);
		if (hup_ignored_at_start)
			signal(SIGHUP, SIG_IGN);	/* as nohup does */
		child_signals_install();		/* ignores SIGPIPE */
		signal(SIGUSR2, SIG_IGN);
		sigemptyset(&block);
		sigaddset(&block, SIGUSR1);
		sigprocmask(SIG_BLOCK, &block, NULL);
		text = spawn_capture(argv, envp, &code);
		m[0] = mask_of(text, "SigIgn:");
		m[1] = mask_of(text, "SigBlk:");
		(void)!write(p[1], m, sizeof m);
		_exit(code);
	}
	close(p[1]);
	{
		unsigned long long m[2];
		if (read(p[0], m, sizeof m) == (ssize_t)sizeof m) {
			*ign = m[0];
			*blk = m[1];
		}
	}
	close(p[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void
child_starts_with_default_signals_and_an_empty_mask(void)
{
	unsigned long long	ign, blk;
	const unsigned long long forwarded = BIT(SIGINT) | BIT(SIGQUIT) |
	    BIT(SIGTERM) | BIT(SIGHUP);

	CHECK(child_masks(0, &ign, &blk) == 0, "cat failed");
	/* egress-run ignores SIGPIPE, COMMAND must not. */
	CHECK((ign & BIT(SIGPIPE)) == 0, "SIGPIPE ignored in the child "
	    "(SigIgn %llx)", ign);
	CHECK((ign & forwarded) == 0, "a forwarded signal is ignored in the "
	    "child (SigIgn %llx)", ign);
	/* The check can see an ignored signal: one the parent ignored
	 * before egress-run existed is passed on, as by env(1). */
	CHECK((ign & BIT(SIGUSR2)) != 0, "SigIgn %llx", ign);
	CHECK(blk == 0, "child starts with blocked signals %llx", blk);
}

static void
signals_ignored_at_start_stay_ignored(void)
{
	unsigned long long ign, blk;

	/* nohup egress-run ...: the hang-up stays ignored for COMMAND. */
	CHECK(child_masks(1, &ign, &blk) == 0, "cat failed");
	CHECK((ign & BIT(SIGHUP)) != 0, "SIGHUP no longer ignored (SigIgn "
	    "%llx)", ign);
	CHECK((ign & (BIT(SIGPIPE) | BIT(SIGTERM) | BIT(SIGINT))) == 0,
	    "SigIgn %llx", ign);
}

static void
sigpipe_kills_a_child_that_writes_to_a_closed_pipe(void)
{
	/* With SIGPIPE ignored, yes would get EPIPE and exit 1; with the
	 * default disposition it dies of SIGPIPE, as in a shell pipeline. */
	char	*yes[] = { "/usr/bin/yes", NULL };
	char	*envp[] = { "PATH=/usr/bin:/bin", NULL };
	int	 p[2], status = 0, saved;
	pid_t	 pid = -1;

	signal(SIGPIPE, SIG_IGN);
	if (pipe2(p, O_CLOEXEC) == -1)
		return;
	saved = dup(STDOUT_FILENO);
	dup2(p[1], STDOUT_FILENO);
	close(p[1]);
	CHECK(child_spawn(yes, envp, &pid) == 0, "spawn yes");
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(p[0]);		/* the reader goes away */
	if (pid > 0) {
		waitpid(pid, &status, 0);
		child_reaped();
		CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE,
		    "yes was not killed by SIGPIPE: status %#x", status);
	}
}

/* An early child's prep: leave a mark (the file arg). */
static int
prep_mark(void *arg)
{
	int fd = open(arg, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

	if (fd == -1)
		return errno;
	close(fd);
	return 0;
}

static int
prep_refuse(void *arg)
{
	(void)arg;
	return EPERM;
}

static void
early_child_preps_at_once_and_execs_with_envp(void)
{
	char			*env[] = { "/usr/bin/env", NULL };
	char			*none[] = { NULL };
	char			*big = malloc(100 * 1024 + 8), *three[4];
	char			 mark[512], want[110 * 1024];
	struct child_early	 e;
	const char		*out;
	pid_t			 pid = -1;
	int			 code, status = 0;

	/* prep runs as soon as the child is forked, before any release. */
	snprintf(mark, sizeof mark, "%s/mark", tmpdir);
	CHECK(child_fork_early(&e, env, prep_mark, mark) == 0, "fork");
	for (int i = 0; i < 200 && access(mark, F_OK) != 0; i++)
		usleep(10000);
	CHECK(access(mark, F_OK) == 0, "prep did not run before release");
	CHECK(child_release(&e, none, &pid) == 0, "release");
	if (pid > 0) {
		waitpid(pid, &status, 0);
		child_reaped();
		CHECK(child_exit_code(status) == 0, "env failed: %#x", status);
	}
	/* The environment arrives exactly: none at all, or a big one. */
	out = capture(env, none, true, NULL, NULL, &code);
	CHECK(code == 0 && out[0] == '\0', "empty env: %d '%.60s'", code,
	    out);
	if (big == NULL)
		return;
	memcpy(big, "BIG=", 4);
	for (size_t i = 0; i < 100 * 1024; i++)
		big[4 + i] = (char)('a' + i % 26);
	big[4 + 100 * 1024] = '\0';
	three[0] = "A=1";
	three[1] = big;
	three[2] = "C=with spaces=and equals";
	three[3] = NULL;
	snprintf(want, sizeof want, "A=1\n%s\nC=with spaces=and equals\n",
	    big);
	out = capture(env, three, true, NULL, NULL, &code);
	CHECK(code == 0 && strcmp(out, want) == 0, "big env: %d, %zu bytes "
	    "back of %zu", code, strlen(out), strlen(want));
	free(big);
}

static void
early_child_failures_and_abandon(void)
{
	char			*env[] = { "/usr/bin/env", NULL };
	char			*missing[] = { "/nonexistent/command", NULL };
	char			*path[] = { "PATH=/usr/bin:/bin", NULL };
	char			*huge = malloc(200 * 1024 + 8), *one[2];
	struct child_early	 e;
	int			 code;

	(void)capture(env, path, true, prep_refuse, NULL, &code);
	CHECK(code == 125, "failed prep: %d", code);
	(void)capture(missing, path, true, NULL, NULL, &code);
	CHECK(code == 127, "missing command: %d", code);
	/* One variable past execve's bound for a string (128 KiB): the
	 * exec fails and says so, as child_spawn's would. */
	if (huge != NULL) {
		memcpy(huge, "HUGE=", 5);
		memset(huge + 5, 'x', 200 * 1024);
		huge[5 + 200 * 1024] = '\0';
		one[0] = huge;
		one[1] = NULL;
		(void)capture(env, one, true, NULL, NULL, &code);
		CHECK(code == 126, "oversized environment: %d", code);
		free(huge);
	}
	/* Abandoned: killed and reaped, nothing left. */
	CHECK(child_fork_early(&e, env, NULL, NULL) == 0, "fork");
	{
		pid_t pid = e.pid;

		child_abandon(&e);
		CHECK(e.pid == -1, "pid kept");
		CHECK(kill(pid, 0) == -1 && errno == ESRCH,
		    "abandoned child %d still there", (int)pid);
	}
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(exit_code_mapping);
	RUN(spawn_failures_are_126_and_127);
	RUN(spawn_success_gives_a_pid_and_its_status);
	RUN(child_environment_is_exactly_envp);
	RUN(child_starts_with_default_signals_and_an_empty_mask);
	RUN(signals_ignored_at_start_stay_ignored);
	RUN(sigpipe_kills_a_child_that_writes_to_a_closed_pipe);
	RUN(early_child_preps_at_once_and_execs_with_envp);
	RUN(early_child_failures_and_abandon);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return test_done("test_child");
}
