/*
 * CONNECT tunnels with splice(2). Each direction is a source socket, a pipe
 * created on first use, and a destination socket: splice source -> pipe,
 * then pipe -> destination. While the pipe holds bytes the destination
 * would not take, the source is not read (backpressure without buffers of
 * our own). A source's EOF becomes a shutdown(SHUT_WR) of the destination
 * once the pipe is empty, so half-closed connections behave as they would
 * without the proxy.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "builtin/proxy.h"
#include "builtin/tunnel.h"
#include "common/xmalloc.h"

#define PIPE_SIZE	(1024 * 1024)
#define SPLICE_FLAGS	(SPLICE_F_NONBLOCK | SPLICE_F_MOVE)

struct direction {
	struct tunnel	*t;
	int		 src;
	int		 dst;
	int		 pipe[2];
	size_t		 cap;		/* pipe capacity */
	size_t		 queued;	/* bytes in the pipe */
	uint64_t	 bytes;
	bool		 eof;		/* source ended */
	bool		 shut;		/* destination shut for writing */
	struct event	*rd;
	struct event	*wr;
};

struct tunnel {
	struct conn	*conn;
	struct direction up;		/* client -> origin */
	struct direction down;		/* origin -> client */
	void		(*done)(struct conn *, const char *);
	bool		 finished;
};

static void	on_read(evutil_socket_t, short, void *);
static void	on_write(evutil_socket_t, short, void *);

static void
end(struct tunnel *t, const char *reason)
{
	if (t->finished)
		return;
	t->finished = true;
	event_del(t->up.rd);
	event_del(t->up.wr);
	event_del(t->down.rd);
	event_del(t->down.wr);
	t->done(t->conn, reason);
}

static int
open_pipe(struct direction *d)
{
	int sz;

	if (d->pipe[0] != -1)
		return 0;
	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	if ((sz = fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_SIZE)) == -1)
		sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	d->cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

/* Put bytes of our own (the 200 answer, early data) ahead of the stream. */
static int
prime(struct direction *d, const void *buf, size_t len)
{
	ssize_t n;

	if (len == 0)
		return 0;
	n = write(d->dst, buf, len);
	if (n == (ssize_t)len)
		return 0;
	if (n < 0) {
		if (errno != EAGAIN)
			return -1;
		n = 0;
	}
	if (open_pipe(d) != 0 || len - (size_t)n > d->cap)
		return -1;
	if (write(d->pipe[1], (const char *)buf + n, len - (size_t)n) !=
	    (ssize_t)(len - (size_t)n))
		return -1;
	d->queued += len - (size_t)n;
	return 0;
}

/* The other direction ended too: the tunnel is over. */
static void
check_done(struct tunnel *t)
{
	if (t->up.shut && t->down.shut && t->up.queued == 0 &&
	    t->down.queued == 0)
		end(t, "closed");
}

/* Move what the pipe holds to the destination. */
static void
flush(struct direction *d)
{
	struct tunnel *t = d->t;

	while (d->queued > 0) {
		ssize_t n = splice(d->pipe[0], NULL, d->dst, NULL, d->queued,
		    SPLICE_FLAGS);
		if (n > 0) {
			d->queued -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			event_add(d->wr, NULL);
			if (d->queued >= d->cap)
				event_del(d->rd);
			return;
		}
		end(t, n == 0 ? "peer closed" : strerror(errno));
		return;
	}
	if (d->eof) {
		if (!d->shut) {
			shutdown(d->dst, SHUT_WR);
			d->shut = true;
		}
		check_done(t);
		return;
	}
	event_add(d->rd, NULL);
}

static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct direction	*d = arg;
	ssize_t			 n;

	(void)fd;
	(void)what;
	if (open_pipe(d) != 0) {
		end(d->t, "out of descriptors for a pipe");
		return;
	}
	if (d->queued >= d->cap) {	/* full: wait for the destination */
		event_del(d->rd);
		return;
	}
	n = splice(d->src, NULL, d->pipe[1], NULL, d->cap - d->queued,
	    SPLICE_FLAGS);
	if (n > 0) {
		d->queued += (size_t)n;
		d->bytes += (uint64_t)n;
	} else if (n == 0) {
		d->eof = true;
		event_del(d->rd);
	} else if (errno == EAGAIN || errno == EINTR) {
		return;
	} else if (errno == ECONNRESET || errno == EPIPE) {
		end(d->t, "connection reset");
		return;
	} else {
		end(d->t, strerror(errno));
		return;
	}
	if (event_pending(d->wr, EV_WRITE, NULL))
		return;		/* the destination is full: wait for it */
	flush(d);
}

static void
on_write(evutil_socket_t fd, short what, void *arg)
{
	struct direction *d = arg;

	(void)fd;
	(void)what;
	flush(d);
}

static void
direction_init(struct tunnel *t, struct direction *d, int src, int dst,
    struct event_base *base)
{
	d->t = t;
	d->src = src;
	d->dst = dst;
	d->pipe[0] = d->pipe[1] = -1;
	d->rd = event_new(base, src, EV_READ | EV_PERSIST, on_read, d);
	d->wr = event_new(base, dst, EV_WRITE, on_write, d);
}

struct tunnel *
tunnel_start(struct conn *conn, int cfd, int ofd, const void *hello,
    size_t hellolen, const void *early, size_t earlylen,
    void (*done)(struct conn *, const char *))
{
	struct tunnel		*t = xcalloc(1, sizeof *t);
	struct event_base	*base = conn->srv->base;

	t->conn = conn;
	t->done = done;
	direction_init(t, &t->up, cfd, ofd, base);
	direction_init(t, &t->down, ofd, cfd, base);
	/* Both pipes now, before a byte is written: a proxy out of
	 * descriptors can still refuse (EMFILE) instead of opening a tunnel
	 * that dies at once. Pipes hold no pages until they carry data. */
	if (open_pipe(&t->up) != 0 || open_pipe(&t->down) != 0) {
		int e = errno;

		t->finished = true;
		tunnel_free(t);
		errno = e;
		return NULL;
	}
	if (prime(&t->down, hello, hellolen) != 0 ||
	    prime(&t->up, early, earlylen) != 0) {
		t->finished = true;	/* the caller closes; no callback */
		tunnel_free(t);
		errno = EIO;		/* not a shortage: do not refuse */
		return NULL;
	}
	/* The client's early bytes went up too (the hello is ours). */
	t->up.bytes = earlylen;
	/* Everything else happens on the loop, never inside this call. */
	event_add(t->up.queued ? t->up.wr : t->up.rd, NULL);
	event_add(t->down.queued ? t->down.wr : t->down.rd, NULL);
	return t;
}

uint64_t
tunnel_bytes_up(const struct tunnel *t)
{
	return t->up.bytes;
}

uint64_t
tunnel_bytes_down(const struct tunnel *t)
{
	return t->down.bytes;
}

static void
direction_free(struct direction *d)
{
	if (d->rd != NULL)
		event_free(d->rd);
	if (d->wr != NULL)
		event_free(d->wr);
	if (d->pipe[0] != -1)
		close(d->pipe[0]);
	if (d->pipe[1] != -1)
		close(d->pipe[1]);
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	direction_free(&t->up);
	direction_free(&t->down);
	/* The origin's socket is ours; the client's belongs to its conn. */
	close(t->up.dst);
	free(t);
}
