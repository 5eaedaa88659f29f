/*
 * tunnelgen: egress-run's own load generator for new tunnels per second
 * (PERF.md P4) and for idle tunnels held open (P7).
 *
 *   tunnelgen [-x PROXY_HOST:PORT] -t HOST:PORT [-p PATH] [-c CONC]
 *             [-d SECONDS] [-w WARMUP]
 *   tunnelgen -x PROXY_HOST:PORT -t HOST:PORT --hold N [--hold-get] [-c CONC]
 *
 * Load mode (the default) keeps CONC connections in flight for SECONDS
 * (after WARMUP seconds that are not counted). Each one: connect to the
 * proxy, send "CONNECT HOST:PORT", read the 200, send one GET for PATH,
 * read the whole response (Content-Length), close, start again. Without -x
 * each one is connect + GET + close straight to HOST:PORT (the "direct"
 * peer). One JSON line goes to stdout:
 *
 *   {"completed":N,"errors":N,"seconds":S,"rate":R,"p50_ms":..,"p99_ms":..,
 *    "err_connect":N,"err_proxy":N,"err_http":N,"err_eof":N}
 *
 * Hold mode opens N tunnels (CONNECT + 200, and one GET + response with
 * --hold-get, so that the tunnel has carried data), CONC at a time, prints
 * "ready OPENED FAILED" on stdout and keeps them all open until stdin is
 * closed or reaches end of file; then it closes them and exits.
 *
 * Linux only (epoll), no dependencies: cc -O2 -o tunnelgen tunnelgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUFSZ	8192

enum state {
	S_FREE,
	S_CONNECTING,
	S_SEND_CONNECT,
	S_READ_200,
	S_SEND_GET,
	S_READ_RESP,
	S_HELD,
};

struct slot {
	int		 fd;
	enum state	 st;
	double		 t0;		/* when this connection started */
	size_t		 off;		/* bytes of the request sent */
	size_t		 len;		/* bytes in buf */
	long long	 need;		/* response bytes still expected */
	bool		 have_hdr;
	int		 tries;
	char		 buf[BUFSZ];
};

static struct sockaddr_in proxy_sa, target_sa;
static bool	 use_proxy;
static char	 target_hp[300];
static char	 connect_req[512], get_req[1024];
static size_t	 connect_len, get_len;
static int	 ep;

static struct slot *slots;
static int	 nslots;
static int	*freeq;			/* slots waiting to (re)start */
static int	 nfree;

/* results */
static long long completed, errors, err_connect, err_proxy, err_http,
    err_eof;
static float	*lat;			/* latencies, ms */
static size_t	 nlat, caplat;
static bool	 counting;
static bool	 hold_mode, hold_get;
static long	 held, hold_failed;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *msg)
{
	fprintf(stderr, "tunnelgen: %s\n", msg);
	exit(2);
}

static int
parse_hp(const char *s, struct sockaddr_in *sa)
{
	char		 host[256];
	const char	*colon = strrchr(s, ':');
	size_t		 n;
	long		 port;

	if (colon == NULL || (n = (size_t)(colon - s)) == 0 ||
	    n >= sizeof host)
		return -1;
	memcpy(host, s, n);
	host[n] = '\0';
	port = strtol(colon + 1, NULL, 10);
	if (port <= 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof *sa);
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return -1;
	return 0;
}

static void
set_events(struct slot *s, uint32_t ev)
{
	struct epoll_event e = { .events = ev, .data.ptr = s };

	if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e) == -1)
		die("epoll_ctl MOD");
}

static void
requeue(struct slot *s)
{
	freeq[nfree++] = (int)(s - slots);
}

static void
finish(struct slot *s, bool ok, long long *why)
{
	if (s->fd != -1) {
		close(s->fd);	/* also leaves the epoll set */
		s->fd = -1;
	}
	s->st = S_FREE;
	if (hold_mode) {
		if (!ok) {
			if (++s->tries < 5) {
				requeue(s);
				return;
			}
			hold_failed++;
		}
		return;
	}
	if (counting) {
		if (ok) {
			completed++;
			if (nlat == caplat) {
				caplat = caplat ? caplat * 2 : 65536;
				if ((lat = realloc(lat, caplat *
				    sizeof *lat)) == NULL)
					die("out of memory");
			}
			lat[nlat++] = (float)((now() - s->t0) * 1e3);
		} else {
			errors++;
			(*why)++;
		}
	}
	requeue(s);
}

static void
start(struct slot *s)
{
	struct epoll_event	 e;
	const struct sockaddr_in *sa = use_proxy ? &proxy_sa : &target_sa;
	int			 one = 1;

	s->t0 = now();
	s->off = s->len = 0;
	s->need = 0;
	s->have_hdr = false;
	if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		if (errno == EMFILE || errno == ENFILE)
			die("out of file descriptors (raise ulimit -n)");
		die("socket");
	}
	(void)setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	s->st = S_CONNECTING;
	e.events = EPOLLOUT;
	e.data.ptr = s;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e) == -1)
		die("epoll_ctl ADD");
	if (connect(s->fd, (const struct sockaddr *)sa, sizeof *sa) == -1 &&
	    errno != EINPROGRESS) {
		/* EADDRNOTAVAIL (ports exhausted), ECONNREFUSED, ... */
		finish(s, false, &err_connect);
		return;
	}
}

/* Send what is left of req; true when all of it has gone. */
static int
send_rest(struct slot *s, const char *req, size_t len)
{
	ssize_t n;

	while (s->off < len) {
		n = send(s->fd, req + s->off, len - s->off, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			return -1;
		}
		s->off += (size_t)n;
	}
	return 1;
}

static char *
find_hdr_end(char *buf, size_t len)
{
	return memmem(buf, len, "\r\n\r\n", 4);
}

static bool
status_is(const char *buf, size_t len, int code)
{
	char want[4];

	snprintf(want, sizeof want, "%d", code);
	return len >= 12 && memcmp(buf, "HTTP/1.", 7) == 0 &&
	    memcmp(buf + 9, want, 3) == 0;
}

static long long
content_length(const char *hdr, size_t len)
{
	const char *p = hdr, *end = hdr + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			break;
		p = nl + 1;
		if ((size_t)(end - p) > 15 &&
		    strncasecmp(p, "content-length:", 15) == 0)
			return strtoll(p + 15, NULL, 10);
	}
	return -1;
}

static void
on_ready(struct slot *s, uint32_t ev)
{
	ssize_t	 n;
	int	 r, err;
	char	*he;

	switch (s->st) {
	case S_CONNECTING: {
		socklen_t sl = sizeof err;

		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &sl) == -1 ||
		    err != 0) {
			finish(s, false, &err_connect);
			return;
		}
		s->off = 0;
		s->st = use_proxy ? S_SEND_CONNECT : S_SEND_GET;
	}
		/* FALLTHROUGH */
	case S_SEND_CONNECT:
	case S_SEND_GET:
		if (s->st == S_SEND_CONNECT)
			r = send_rest(s, connect_req, connect_len);
		else
			r = send_rest(s, get_req, get_len);
		if (r < 0) {
			finish(s, false, &err_eof);
			return;
		}
		if (r == 0) {
			set_events(s, EPOLLOUT);
			return;
		}
		s->len = 0;
		s->st = s->st == S_SEND_CONNECT ? S_READ_200 : S_READ_RESP;
		set_events(s, EPOLLIN);
		return;
	case S_READ_200:
	case S_READ_RESP:
		for (;;) {
			if (s->len == sizeof s->buf) {
				if (!s->have_hdr) {
					finish(s, false, &err_http);
					return;
				}
				s->len = 0;	/* body bytes: only counted */
			}
			n = recv(s->fd, s->buf + s->len, sizeof s->buf - s->len,
			    0);
			if (n == 0) {
				finish(s, false, s->st == S_READ_200 ?
				    &err_proxy : &err_eof);
				return;
			}
			if (n < 0) {
				if (errno == EAGAIN || errno == EINTR)
					return;
				finish(s, false, s->st == S_READ_200 ?
				    &err_proxy : &err_eof);
				return;
			}
			if (s->have_hdr) {
				s->need -= n;
				if (s->need <= 0)
					break;
				s->len = 0;
				continue;
			}
			s->len += (size_t)n;
			if ((he = find_hdr_end(s->buf, s->len)) == NULL)
				continue;
			if (s->st == S_READ_200) {
				if (!status_is(s->buf, s->len, 200)) {
					finish(s, false, &err_proxy);
					return;
				}
				/* A proxy sends nothing after its 200. */
				if (hold_mode && !hold_get) {
					s->st = S_HELD;
					set_events(s, EPOLLIN);
					held++;
					return;
				}
				s->off = 0;
				s->len = 0;
				s->st = S_SEND_GET;
				on_ready(s, EPOLLOUT);
				return;
			}
			if (!status_is(s->buf, s->len, 200)) {
				finish(s, false, &err_http);
				return;
			}
			{
				long long cl = content_length(s->buf,
				    (size_t)(he - s->buf) + 2);
				size_t	  hl = (size_t)(he - s->buf) + 4;

				if (cl < 0) {
					finish(s, false, &err_http);
					return;
				}
				s->have_hdr = true;
				s->need = cl - (long long)(s->len - hl);
				if (s->need <= 0)
					break;
				s->len = 0;
			}
		}
		/* The whole response is in. */
		if (hold_mode) {
			s->st = S_HELD;
			set_events(s, EPOLLIN);
			held++;
			return;
		}
		finish(s, true, NULL);
		return;
	case S_HELD:
		/* The far end closed a held tunnel. */
		(void)ev;
		held--;
		hold_failed++;
		close(s->fd);
		s->fd = -1;
		s->st = S_FREE;
		return;
	case S_FREE:
		return;
	}
}

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double p)
{
	size_t i;

	if (nlat == 0)
		return 0;
	i = (size_t)(p * (double)(nlat - 1));
	return lat[i];
}

static void
raise_nofile(long want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < (rlim_t)want) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)want ? rl.rlim_max :
		    (rlim_t)want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: tunnelgen [-x PROXY_HOST:PORT] -t HOST:PORT "
	    "[-p PATH] [-c CONC] [-d SECONDS] [-w WARMUP]\n"
	    "       tunnelgen -x PROXY_HOST:PORT -t HOST:PORT --hold N "
	    "[--hold-get] [-c CONC]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char		*target = NULL, *path = "/small.bin";
	double			 seconds = 5, warmup = 1, t_start, t_end;
	long			 conc = 50, hold_n = 0;
	struct epoll_event	*evs;
	int			 i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--hold-get") == 0) {
			hold_get = true;
			continue;
		}
		if (v == NULL)
			usage();
		if (strcmp(a, "-x") == 0) {
			if (parse_hp(v, &proxy_sa) != 0)
				die("-x wants IPV4:PORT");
			use_proxy = true;
		} else if (strcmp(a, "-t") == 0) {
			target = v;
		} else if (strcmp(a, "-p") == 0) {
			path = v;
		} else if (strcmp(a, "-c") == 0) {
			conc = strtol(v, NULL, 10);
		} else if (strcmp(a, "-d") == 0) {
			seconds = strtod(v, NULL);
		} else if (strcmp(a, "-w") == 0) {
			warmup = strtod(v, NULL);
		} else if (strcmp(a, "--hold") == 0) {
			hold_n = strtol(v, NULL, 10);
			hold_mode = true;
		} else
			usage();
		i++;
	}
	if (target == NULL || conc <= 0 || seconds <= 0 ||
	    (hold_mode && (hold_n <= 0 || !use_proxy)))
		usage();
	if (parse_hp(target, &target_sa) != 0)
		die("-t wants IPV4:PORT");
	snprintf(target_hp, sizeof target_hp, "%s", target);
	connect_len = (size_t)snprintf(connect_req, sizeof connect_req,
	    "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target_hp, target_hp);
	get_len = (size_t)snprintf(get_req, sizeof get_req,
	    "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tunnelgen\r\n"
	    "Accept: */*\r\n\r\n", path, target_hp);
	signal(SIGPIPE, SIG_IGN);

	nslots = (int)(hold_mode ? hold_n : conc);
	raise_nofile((long)nslots + 64);
	if ((slots = calloc((size_t)nslots, sizeof *slots)) == NULL ||
	    (freeq = calloc((size_t)nslots, sizeof *freeq)) == NULL ||
	    (evs = calloc(1024, sizeof *evs)) == NULL)
		die("out of memory");
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1");
	for (i = 0; i < nslots; i++) {
		slots[i].fd = -1;
		slots[i].st = S_FREE;
	}

	if (hold_mode) {
		/* Open CONC at a time, so that no listen queue overflows. */
		int next = 0;
		long inflight;

		for (;;) {
			int nq = nfree;

			/* retries first */
			nfree = 0;
			for (i = 0; i < nq; i++)
				start(&slots[freeq[i]]);
			inflight = 0;
			for (i = 0; i < next; i++)
				if (slots[i].st != S_FREE &&
				    slots[i].st != S_HELD)
					inflight++;
			while (inflight < conc && next < nslots) {
				start(&slots[next++]);
				inflight++;
			}
			if (next == nslots && inflight == 0 && nfree == 0)
				break;
			int n = epoll_wait(ep, evs, 1024, 1000);
			for (int k = 0; k < n; k++)
				on_ready(evs[k].data.ptr, evs[k].events);
		}
		printf("ready %ld %ld\n", held, hold_failed);
		fflush(stdout);
		/* Hold until stdin ends; report tunnels the far end closed. */
		{
			char c;
			struct epoll_event e = { .events = EPOLLIN,
			    .data.ptr = NULL };

			if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &e) == -1) {
				/* stdin not pollable (a file): just wait */
				while (read(0, &c, 1) > 0)
					;
			} else
				for (;;) {
					int n = epoll_wait(ep, evs, 1024, -1);
					bool done = false;

					for (int k = 0; k < n; k++) {
						if (evs[k].data.ptr == NULL) {
							if (read(0, &c, 1) <= 0)
								done = true;
						} else
							on_ready(evs[k].data.ptr,
							    evs[k].events);
					}
					if (done)
						break;
				}
		}
		fprintf(stderr, "tunnelgen: %ld tunnels still open at the "
		    "end\n", held);
		return 0;
	}

	t_start = now() + warmup;
	t_end = t_start + seconds;
	counting = warmup <= 0;
	for (i = 0; i < nslots; i++)
		requeue(&slots[i]);
	for (;;) {
		double t = now();
		int n, nq = nfree;

		nfree = 0;
		for (i = 0; i < nq; i++)
			start(&slots[freeq[i]]);

		if (!counting && t >= t_start)
			counting = true;
		if (t >= t_end)
			break;
		n = epoll_wait(ep, evs, 1024, 20);
		for (int k = 0; k < n; k++)
			on_ready(evs[k].data.ptr, evs[k].events);
	}
	qsort(lat, nlat, sizeof *lat, cmp_float);
	printf("{\"completed\":%lld,\"errors\":%lld,\"seconds\":%.3f,"
	    "\"rate\":%.1f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,"
	    "\"err_connect\":%lld,\"err_proxy\":%lld,\"err_http\":%lld,"
	    "\"err_eof\":%lld,\"conc\":%ld}\n",
	    completed, errors, seconds, (double)completed / seconds, pct(0.5),
	    pct(0.99), err_connect, err_proxy, err_http, err_eof, conc);
	return 0;
}
