/*
 * launcher/external.c: free-port choice, wait-for-bind against real
 * listeners in forked processes (late, never, dying, staying), and the start
 * and stop of a real proxy command.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "launcher/child.h"
#include "launcher/config.h"
#include "launcher/external.h"
#include "test.h"

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct sockaddr_in
loopback(unsigned port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sin;
}

/* A listening socket on 127.0.0.1:port, or -1. */
static int
listen_on(unsigned port)
{
	struct sockaddr_in	sin = loopback(port);
	int			fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sin, sizeof sin) == -1 ||
	    listen(fd, 16) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * Fork a process that sleeps delay_ms, then either listens on port (and
 * stays up to 10 s) or exits with exit_code without listening.
 */
static pid_t
fork_listener(unsigned port, int delay_ms, int listen_then_stay,
    int exit_code)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	usleep((useconds_t)delay_ms * 1000);
	if (!listen_then_stay)
		_exit(exit_code);
	if (listen_on(port) == -1)
		_exit(99);
	sleep(10);
	_exit(0);
}

static void
reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

static void
free_port_is_bindable_on_loopback(void)
{
	for (int i = 0; i < 5; i++) {
		unsigned	port = external_free_port();
		int		fd;

		CHECK(port > 0 && port <= 65535, "port %u", port);
		fd = listen_on(port);
		CHECK(fd != -1, "cannot bind the free port %u: %s", port,
		    strerror(errno));
		if (fd != -1)
			close(fd);
	}
}

static void
late_listener_is_waited_for(void)
{
	unsigned		port = external_free_port();
	struct sockaddr_in	sin = loopback(port);
	pid_t			pid = fork_listener(port, 300, 1, 0);
	long long		t0 = now_ms(), took;
	int			status = 0, r;

	r = external_wait_bind((struct sockaddr *)&sin, sizeof sin, pid, 5000,
	    &status);
	took = now_ms() - t0;
	CHECK(r == 0, "returned %d", r);
	CHECK(took >= 250 && took < 1500, "took %lld ms for a listener that "
	    "appears after 300 ms", took);
	/* Still running: waiting did not reap it. */
	CHECK(waitpid(pid, &status, WNOHANG) == 0, "listener gone");
	reap(pid);
}

static void
listener_that_never_appears_times_out(void)
{
	static const unsigned timeouts[] = { 300, 700 };

	for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
		unsigned		port = external_free_port();
		struct sockaddr_in	sin = loopback(port);
		long long		t0 = now_ms(), took;
		int			status = 0, r;

		/* A process that lives but never listens, and none at all. */
		pid_t pid = i == 0 ? fork_listener(port, 10000, 0, 0) : 0;
		r = external_wait_bind((struct sockaddr *)&sin, sizeof sin,
		    pid, timeouts[i], &status);
		took = now_ms() - t0;
		CHECK(r == -1, "timeout %u: returned %d", timeouts[i], r);
		CHECK(took >= timeouts[i] - 20 && took < timeouts[i] + 300,
		    "timeout %u ms took %lld ms", timeouts[i], took);
		reap(pid);
	}
}

static void
process_that_exits_first_is_noticed_at_once(void)
{
	static const struct {
		int	delay_ms;
		int	code;
	} cases[] = { { 0, 3 }, { 150, 42 }, { 50, 0 } };

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		unsigned		port = external_free_port();
		struct sockaddr_in	sin = loopback(port);
		pid_t			pid;
		long long		t0 = now_ms(), took;
		int			status = -1, r;

		pid = fork_listener(port, cases[i].delay_ms, 0, cases[i].code);
		r = external_wait_bind((struct sockaddr *)&sin, sizeof sin,
		    pid, 10000, &status);
		took = now_ms() - t0;
		CHECK(r == -2, "case %zu: returned %d", i, r);
		CHECK(took < cases[i].delay_ms + 400, "case %zu: took %lld ms "
		    "(timeout 10 s)", i, took);
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) ==
		    cases[i].code, "case %zu: status %#x", i, status);
		/* It was reaped: nothing left to wait for. */
		CHECK(waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD,
		    "case %zu: not reaped", i);
	}
}

static void
process_killed_by_a_signal_reports_it(void)
{
	unsigned		port = external_free_port();
	struct sockaddr_in	sin = loopback(port);
	pid_t			pid = fork_listener(port, 10000, 0, 0);
	int			status = -1, r;

	usleep(50000);
	kill(pid, SIGTERM);
	r = external_wait_bind((struct sockaddr *)&sin, sizeof sin, pid, 5000,
	    &status);
	CHECK(r == -2, "returned %d", r);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM, "status %#x",
	    status);
}

static void
listener_that_binds_and_stays(void)
{
	unsigned		port = external_free_port();
	struct sockaddr_in	sin = loopback(port);
	pid_t			pid = fork_listener(port, 0, 1, 0);
	long long		t0 = now_ms(), took;
	int			status = 0, r;

	r = external_wait_bind((struct sockaddr *)&sin, sizeof sin, pid, 5000,
	    &status);
	took = now_ms() - t0;
	CHECK(r == 0, "returned %d", r);
	CHECK(took < 1000, "took %lld ms", took);
	/* Asked twice, still there. */
	r = external_wait_bind((struct sockaddr *)&sin, sizeof sin, pid, 1000,
	    &status);
	CHECK(r == 0, "second wait returned %d", r);
	CHECK(waitpid(pid, &status, WNOHANG) == 0, "listener gone");
	reap(pid);
}

static void
already_listening_without_a_process(void)
{
	int			fd = listen_on(0);
	struct sockaddr_in	sin;
	socklen_t		len = sizeof sin;
	int			status = 0;

	CHECK(fd != -1, "listen");
	getsockname(fd, (struct sockaddr *)&sin, &len);
	CHECK(external_wait_bind((struct sockaddr *)&sin, len, 0, 1000,
	    &status) == 0, "an existing listener is not seen");
	close(fd);
}

/*
 * A process still running with this string in its command line: its pid,
 * or 0. Zombies have an empty cmdline and do not count.
 */
static pid_t
process_with_marker(const char *marker)
{
	DIR		*d = opendir("/proc");
	struct dirent	*de;
	pid_t		 found = 0;

	while (d != NULL && found == 0 && (de = readdir(d)) != NULL) {
		char	 path[300], buf[4096];
		FILE	*f;
		size_t	 n;

		if (de->d_name[0] < '0' || de->d_name[0] > '9' ||
		    atoi(de->d_name) == (int)getpid())
			continue;
		snprintf(path, sizeof path, "/proc/%s/cmdline", de->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		for (size_t i = 0; i < n; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[n] = '\0';
		if (strstr(buf, marker) != NULL)
			found = (pid_t)atoi(de->d_name);
	}
	if (d != NULL)
		closedir(d);
	return found;
}

/* After a failed check: kill, by pid, what carries the marker. */
static void
kill_marked(const char *marker)
{
	pid_t pid;

	for (int i = 0; i < 10 && (pid = process_with_marker(marker)) != 0;
	    i++) {
		kill(pid, SIGKILL);
		usleep(20000);
	}
}

/* Live (non-zombie) members of a process group, polled up to wait_ms. */
static int
group_alive(pid_t pgid, int wait_ms)
{
	for (int waited = 0;; waited += 10) {
		DIR		*d = opendir("/proc");
		struct dirent	*de;
		int		 alive = 0;

		while (d != NULL && !alive && (de = readdir(d)) != NULL) {
			char	 path[300], buf[1024], state;
			int	 pg;
			FILE	*f;
			char	*rp;

			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
			if ((f = fopen(path, "r")) == NULL)
				continue;
			buf[0] = '\0';
			(void)!fgets(buf, sizeof buf, f);
			fclose(f);
			/* pid (comm) state ppid pgrp: comm may hold spaces */
			if ((rp = strrchr(buf, ')')) != NULL &&
			    sscanf(rp + 1, " %c %*d %d", &state, &pg) == 2 &&
			    pg == pgid && state != 'Z')
				alive = 1;
		}
		if (d != NULL)
			closedir(d);
		if (!alive || waited >= wait_ms)
			return alive;
		usleep(10000);
	}
}

static char tmpdir[] = "/tmp/test_external.XXXXXX";

static void
start_substitutes_port_and_stop_kills_the_group(void)
{
	struct config	 cfg;
	struct external	*e;
	char		 err[1024], log[600], cmd[1024], marker[64];
	pid_t		 pid;

	snprintf(marker, sizeof marker, "ext-marker-%d-a", (int)getpid());
	snprintf(log, sizeof log, "%s/a.log", tmpdir);
	/* A background helper in the same group must die with it. */
	snprintf(cmd, sizeof cmd, "sleep 30 & echo port={port} again={port}; "
	    "exec /usr/bin/python3 -c 'import socket, sys, time; "
	    "s = socket.socket(); s.bind((\"127.0.0.1\", int(sys.argv[1]))); "
	    "s.listen(); time.sleep(30)' {port} %s", marker);
	config_init(&cfg);
	cfg.external = strdup(cmd);
	cfg.bind_timeout_ms = 10000;
	e = external_start(&cfg, log, err, sizeof err);
	CHECK(e != NULL, "external_start: %s", err);
	if (e == NULL) {
		config_free(&cfg);
		return;
	}
	CHECK_STR(external_host(e), "127.0.0.1");
	CHECK(external_port(e) > 0, "port");
	pid = external_pid(e);
	CHECK(pid > 0 && getpgid(pid) == pid, "not a process group leader");
	CHECK(process_with_marker(marker), "proxy not running");
	CHECK(group_alive(pid, 0), "group %d not seen", (int)pid);
	{
		char want[128], text[256] = "";
		FILE *f = fopen(log, "r");
		if (f != NULL) {
			(void)!fgets(text, sizeof text, f);
			fclose(f);
		}
		snprintf(want, sizeof want, "port=%u again=%u\n",
		    external_port(e), external_port(e));
		CHECK_STR(text, want);
	}
	external_stop(e);
	CHECK(!group_alive(pid, 500), "process group %d survives "
	    "external_stop", (int)pid);
	CHECK(!process_with_marker(marker), "proxy survives");
	kill_marked(marker);
	config_free(&cfg);
}

static void
proxy_dies_with_egress_run_even_behind_a_shell(void)
{
	static const char *const prefixes[] = { "", "true; ", "exec " };

	for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
		char	 marker[64], log[600], cmd[1024];
		int	 p[2], status;
		pid_t	 pid;

		snprintf(marker, sizeof marker, "ext-marker-%d-orphan%zu",
		    (int)getpid(), i);
		snprintf(log, sizeof log, "%s/orphan%zu.log", tmpdir, i);
		/* sh forks python here (dash does not exec the last command),
		 * so a death signal given to sh alone would leave it running. */
		snprintf(cmd, sizeof cmd, "%s/usr/bin/python3 -c 'import "
		    "socket, sys, time; s = socket.socket(); s.bind("
		    "(\"127.0.0.1\", int(sys.argv[1]))); s.listen(); "
		    "time.sleep(30)' {port} %s", prefixes[i], marker);
		if (pipe(p) == -1)
			return;
		if ((pid = fork()) == 0) {
			/* Plays egress-run: starts the proxy, then is killed
			 * outright, with no chance to stop it. */
			struct config cfg;
			char err[512];

			close(p[0]);
			config_init(&cfg);
			cfg.external = strdup(cmd);
			if (external_start(&cfg, log, err, sizeof err) == NULL)
				_exit(1);
			(void)!write(p[1], "up", 2);
			raise(SIGKILL);
		}
		close(p[1]);
		{
			char buf[2];
			CHECK(read(p[0], buf, 2) == 2, "case %zu: the proxy "
			    "did not start", i);
		}
		close(p[0]);
		waitpid(pid, &status, 0);
		CHECK(WIFSIGNALED(status), "case %zu: status %#x", i, status);
		for (int w = 0; w < 300 && process_with_marker(marker); w++)
			usleep(10000);
		CHECK(!process_with_marker(marker), "case %zu ('%s'): the proxy "
		    "outlived egress-run", i, prefixes[i]);
		kill_marked(marker);
	}
}

static void
start_reports_early_exit_with_status(void)
{
	struct config	 cfg;
	struct external	*e;
	char		 err[1024], log[600];
	long long	 t0 = now_ms();

	snprintf(log, sizeof log, "%s/b.log", tmpdir);
	config_init(&cfg);
	cfg.external = strdup("echo cannot bind {port} >&2; exit 3");
	cfg.bind_timeout_ms = 10000;
	e = external_start(&cfg, log, err, sizeof err);
	CHECK(e == NULL, "started");
	CHECK(now_ms() - t0 < 2000, "took %lld ms", now_ms() - t0);
	CHECK(strstr(err, "exited with status 3") != NULL, "'%s'", err);
	external_stop(e);
	config_free(&cfg);
}

static void
start_gives_up_after_the_bind_timeout_and_kills(void)
{
	struct config	 cfg;
	struct external	*e;
	char		 err[1024], log[600], cmd[256], marker[64];
	long long	 t0 = now_ms(), took;

	snprintf(marker, sizeof marker, "ext-marker-%d-c", (int)getpid());
	snprintf(log, sizeof log, "%s/c.log", tmpdir);
	/* Ignores SIGTERM: only the SIGKILL after the grace period works. */
	snprintf(cmd, sizeof cmd, "trap '' TERM; sleep 30; : %s {port}",
	    marker);
	config_init(&cfg);
	cfg.external = strdup(cmd);
	cfg.bind_timeout_ms = 400;
	e = external_start(&cfg, log, err, sizeof err);
	took = now_ms() - t0;
	CHECK(e == NULL, "started");
	CHECK(strstr(err, "--bind-timeout") != NULL && strstr(err, "0.4 s")
	    != NULL, "'%s'", err);
	CHECK(took >= 380 && took < 400 + 3000, "took %lld ms", took);
	CHECK(!process_with_marker(marker), "proxy survives the timeout");
	kill_marked(marker);
	config_free(&cfg);
}

static void
external_addr_is_waited_for_too(void)
{
	struct config	 cfg;
	struct external	*e;
	char		 err[1024], log[600], addr[64];
	unsigned	 port = external_free_port();
	pid_t		 pid = fork_listener(port, 200, 1, 0);

	snprintf(log, sizeof log, "%s/d.log", tmpdir);
	snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
	config_init(&cfg);
	cfg.external_addr = strdup(addr);
	cfg.bind_timeout_ms = 5000;
	e = external_start(&cfg, log, err, sizeof err);
	CHECK(e != NULL, "%s", err);
	if (e != NULL) {
		CHECK(external_port(e) == port, "port %u", external_port(e));
		CHECK(external_pid(e) == -1, "spawned something");
	}
	external_stop(e);
	/* external_stop does not touch a proxy it did not start. */
	CHECK(waitpid(pid, NULL, WNOHANG) == 0, "listener was killed");
	reap(pid);
	config_free(&cfg);

	config_init(&cfg);
	cfg.external_addr = strdup("no-port-here");
	CHECK(external_start(&cfg, log, err, sizeof err) == NULL, "started");
	CHECK(strstr(err, "no-port-here") != NULL, "'%s'", err);
	config_free(&cfg);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(free_port_is_bindable_on_loopback);
	RUN(late_listener_is_waited_for);
	RUN(listener_that_never_appears_times_out);
	RUN(process_that_exits_first_is_noticed_at_once);
	RUN(process_killed_by_a_signal_reports_it);
	RUN(listener_that_binds_and_stays);
	RUN(already_listening_without_a_process);
	RUN(start_substitutes_port_and_stop_kills_the_group);
	RUN(proxy_dies_with_egress_run_even_behind_a_shell);
	RUN(start_reports_early_exit_with_status);
	RUN(start_gives_up_after_the_bind_timeout_and_kills);
	RUN(external_addr_is_waited_for_too);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return test_done("test_external");
}
