/*
 * CONNECT tunnels with splice(2). Each direction is a source socket, a
 * queue and a destination socket: splice source -> pipe, then pipe ->
 * destination. The pipe is taken from a small pool shared by all tunnels
 * when the source has bytes and given back once drained, so an idle tunnel
 * holds its two sockets and nothing else. A pipe starts at the kernel's
 * default size and grows only for a stream that keeps filling it; a grown
 * pipe stays with its stream until the stream has been quiet for a second,
 * then goes back shrunk. With no pipe to be had (out of descriptors), the
 * bytes go through a buffer in user space instead. While the queue holds
 * bytes the destination would not take, the source is not read
 * (backpressure). A source's EOF becomes a shutdown(SHUT_WR) of the
 * destination once the queue is empty, so half-closed connections behave
 * as they would without the proxy.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "builtin/proxy.h"
#include "builtin/tunnel.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define PIPE_BIG	(1024 * 1024)	/* a bulk stream's pipe */
#define PIPE_MID	(256 * 1024)	/* when PIPE_BIG is refused */
#define POOL_MAX	16		/* free pipes kept while tunnels live */
#define GROW_AFTER	2		/* fills in a row that filled the pipe */
#define BURST		8		/* fill + flush rounds per wake-up */
#define SWEEP_MS	1000		/* a quiet stream's grown pipe goes back */
#define COPY_SIZE	(64 * 1024)	/* the user-space queue */
#define SPLICE_FLAGS	(SPLICE_F_NONBLOCK | SPLICE_F_MOVE)

struct tpipe {
	int		 rd;		/* -1: none */
	int		 wr;
	size_t		 cap;		/* capacity now */
	size_t		 base;		/* capacity as made */
};

struct direction {
	struct tunnel	*t;
	int		 src;
	int		 dst;
	struct tpipe	 p;		/* the queue, when a pipe */
	char		*buf;		/* the queue, when no pipe could be had */
	size_t		 bufsize;
	size_t		 off;		/* buf: first queued byte */
	size_t		 queued;	/* bytes in the queue */
	uint64_t	 bytes;
	unsigned	 full;		/* fills in a row that filled the pipe */
	bool		 nogrow;	/* the kernel refused to grow this pipe */
	bool		 busy;		/* filled since the last sweep */
	bool		 grown;		/* on pool.grown */
	bool		 eof;		/* source ended */
	bool		 shut;		/* destination shut for writing */
	struct event	*rd;
	struct event	*wr;
	LIST_ENTRY(direction) entry;	/* pool.grown */
};

struct tunnel {
	struct conn	*conn;
	struct direction up;		/* client -> origin */
	struct direction down;		/* origin -> client */
	void		(*done)(struct conn *, const char *);
	bool		 finished;
	bool		 counted;	/* in pool.ntunnels */
};

/*
 * Free pipes, all at their size as made, and the directions holding a
 * grown one. Kept while any tunnel lives; closed with the last.
 */
static struct {
	struct tpipe	 free[POOL_MAX];
	int		 nfree;
	unsigned	 ntunnels;
	LIST_HEAD(, direction) grown;
	struct event	*sweep;
} pool = { .grown = LIST_HEAD_INITIALIZER(pool.grown) };

static void	on_read(evutil_socket_t, short, void *);
static void	on_write(evutil_socket_t, short, void *);

static void
pipe_close(struct tpipe *p)
{
	if (p->rd != -1) {
		close(p->rd);
		close(p->wr);
	}
	p->rd = p->wr = -1;
}

static int
pool_get(struct tpipe *p)
{
	int fds[2], sz;

	if (pool.nfree > 0) {
		*p = pool.free[--pool.nfree];
		return 0;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	p->rd = fds[0];
	p->wr = fds[1];
	sz = fcntl(p->wr, F_GETPIPE_SZ);
	p->cap = p->base = sz > 0 ? (size_t)sz : 4096;
	return 0;
}

/* An empty pipe back to the pool, at its first size (pages a grown one
 * held count against the user's fs.pipe-user-pages-soft). */
static void
pool_put(struct tpipe *p)
{
	if (p->rd == -1)
		return;
	if (p->cap != p->base) {
		if (fcntl(p->wr, F_SETPIPE_SZ, (int)p->base) == -1) {
			pipe_close(p);
			return;
		}
		p->cap = p->base;
	}
	if (pool.nfree < POOL_MAX) {
		pool.free[pool.nfree++] = *p;
		p->rd = p->wr = -1;
	} else
		pipe_close(p);
}

/* The last tunnel is gone: a proxy at rest holds no pipe. */
static void
pool_empty(void)
{
	while (pool.nfree > 0)
		pipe_close(&pool.free[--pool.nfree]);
	if (pool.sweep != NULL) {
		event_free(pool.sweep);
		pool.sweep = NULL;
	}
}

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

/* The queue is empty: give back what holds it. */
static void
release(struct direction *d)
{
	if (d->queued != 0)
		return;
	if (d->grown) {
		LIST_REMOVE(d, entry);
		d->grown = false;
	}
	pool_put(&d->p);
	free(d->buf);
	d->buf = NULL;
	d->off = 0;
}

/* Give grown pipes back from streams that did not fill them since the
 * last pass. */
static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct direction	*d, *next;
	struct timeval		 tv = { SWEEP_MS / 1000, 0 };

	(void)fd;
	(void)what;
	(void)arg;
	for (d = LIST_FIRST(&pool.grown); d != NULL; d = next) {
		next = LIST_NEXT(d, entry);
		if (!d->busy && d->queued == 0)
			release(d);
		d->busy = false;
	}
	if (!LIST_EMPTY(&pool.grown))
		evtimer_add(pool.sweep, &tv);
}

/* A stream that keeps filling its pipe gets a bigger one, if the kernel
 * lets this user have it; otherwise it carries on at the size it has. */
static void
grow(struct direction *d)
{
	static const int	 sizes[] = { PIPE_BIG, PIPE_MID };
	struct timeval		 tv = { SWEEP_MS / 1000, 0 };
	int			 sz = -1;

	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0] && sz == -1;
	    i++)
		if ((size_t)sizes[i] > d->p.cap)
			sz = fcntl(d->p.wr, F_SETPIPE_SZ, sizes[i]);
	if (sz <= 0 || (size_t)sz <= d->p.cap) {
		d->nogrow = true;
		return;
	}
	d->p.cap = (size_t)sz;
	if (!d->grown) {
		LIST_INSERT_HEAD(&pool.grown, d, entry);
		d->grown = true;
	}
	if (pool.sweep == NULL)
		pool.sweep = evtimer_new(event_get_base(d->rd), on_sweep, NULL);
	if (!evtimer_pending(pool.sweep, NULL))
		evtimer_add(pool.sweep, &tv);
}

/* Something to queue bytes in: a pipe, or a buffer of at least size. */
static int
take(struct direction *d, size_t size)
{
	if (d->p.rd != -1 || d->buf != NULL)
		return 0;
	if (pool_get(&d->p) == 0)
		return 0;
	log_debug("conn %llu: no pipe for the tunnel (%s): copying",
	    (unsigned long long)d->t->conn->id, strerror(errno));
	d->bufsize = size > COPY_SIZE ? size : COPY_SIZE;
	if ((d->buf = malloc(d->bufsize)) == NULL)
		return -1;
	d->off = 0;
	return 0;
}

static size_t
room(const struct direction *d)
{
	if (d->p.rd != -1)
		return d->p.cap > d->queued ? d->p.cap - d->queued : 0;
	return d->queued == 0 ? d->bufsize : 0;
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
	buf = (const char *)buf + n;
	len -= (size_t)n;
	if (take(d, len) != 0)
		return -1;
	if (d->p.rd != -1 && len > room(d)) {
		/* Bigger than a pipe: a buffer, this once. */
		pool_put(&d->p);
		d->bufsize = len;
		if ((d->buf = malloc(len)) == NULL)
			return -1;
	}
	if (d->buf != NULL)
		memcpy(d->buf, buf, len);
	else if (write(d->p.wr, buf, len) != (ssize_t)len)
		return -1;
	d->queued = len;
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

/*
 * Move what the queue holds to the destination. True when it is empty and
 * the source may be read again.
 */
static bool
flush(struct direction *d)
{
	struct tunnel	*t = d->t;
	ssize_t		 n;

	while (d->queued > 0) {
		if (d->buf != NULL)
			n = write(d->dst, d->buf + d->off, d->queued);
		else
			n = splice(d->p.rd, NULL, d->dst, NULL, d->queued,
			    SPLICE_FLAGS);
		if (n > 0) {
			d->queued -= (size_t)n;
			d->off = d->queued == 0 ? 0 : d->off + (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN) {
			event_add(d->wr, NULL);
			if (room(d) == 0)
				event_del(d->rd);
			return false;
		}
		end(t, n == 0 ? "peer closed" : strerror(errno));
		return false;
	}
	/* A grown pipe stays for the stream's next bytes (the sweep takes it
	 * back); anything else goes back now. */
	if (!d->grown || d->eof)
		release(d);
	if (d->eof) {
		if (!d->shut) {
			shutdown(d->dst, SHUT_WR);
			d->shut = true;
		}
		check_done(t);
		return false;
	}
	event_add(d->rd, NULL);
	return true;
}

/*
 * The source has bytes. While it keeps filling the pipe and the
 * destination keeps taking them, go round again instead of back to the
 * loop: one wake-up moves up to BURST pipes' worth.
 */
static void
on_read(evutil_socket_t fd, short what, void *arg)
{
	struct direction	*d = arg;
	size_t			 space;
	ssize_t			 n;
	bool			 filled;

	(void)fd;
	(void)what;
	for (int i = 0; i < BURST; i++) {
		if (take(d, COPY_SIZE) != 0) {
			end(d->t, "out of memory for the tunnel");
			return;
		}
		if ((space = room(d)) == 0) {	/* wait for the destination */
			event_del(d->rd);
			return;
		}
		if (d->buf != NULL)
			n = read(d->src, d->buf, space);
		else
			n = splice(d->src, NULL, d->p.wr, NULL, space,
			    SPLICE_FLAGS);
		if (n > 0) {
			d->queued += (size_t)n;
			d->bytes += (uint64_t)n;
			d->busy = true;
			filled = (size_t)n >= space - space / 4;
		} else if (n == 0) {
			d->eof = true;
			event_del(d->rd);
			filled = false;
		} else if (errno == EAGAIN || errno == EINTR) {
			if (d->queued == 0) {
				/* Nothing came: idle (a grown pipe waits
				 * for the sweep). */
				if (!d->grown)
					release(d);
			} else if (errno == EAGAIN)
				event_del(d->rd); /* the pipe's slots are
						   * full: wait for a drain */
			return;
		} else if (errno == ECONNRESET || errno == EPIPE) {
			end(d->t, "connection reset");
			return;
		} else {
			end(d->t, strerror(errno));
			return;
		}
		if (!filled) {
			d->full = 0;
			d->nogrow = false;	/* try again next burst */
		} else if (++d->full >= GROW_AFTER && d->p.rd != -1 &&
		    !d->nogrow && d->p.cap < PIPE_BIG)
			grow(d);
		if (event_pending(d->wr, EV_WRITE, NULL))
			return;		/* the destination is full: wait */
		if (!flush(d) || !filled)
			return;
	}
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
	d->p.rd = d->p.wr = -1;
	d->rd = event_new(base, src, EV_READ | EV_PERSIST, on_read, d);
	d->wr = event_new(base, dst, EV_WRITE, on_write, d);
}

/*
 * Make sure one pipe can be had now, before a byte is written: a proxy
 * out of descriptors can still refuse (EMFILE) instead of answering 200
 * for a tunnel it cannot serve well. (Later, a direction that finds no
 * pipe copies through user space rather than fail mid-stream.)
 */
static int
pool_reserve(void)
{
	struct tpipe p;

	if (pool.nfree > 0)
		return 0;
	if (pool_get(&p) != 0)
		return -1;
	pool_put(&p);
	return 0;
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
	t->counted = true;
	pool.ntunnels++;
	if (pool_reserve() != 0) {
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
	if (d->queued != 0) {		/* bytes nobody will read */
		pipe_close(&d->p);
		d->queued = 0;
	}
	release(d);
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
	if (t->counted && --pool.ntunnels == 0)
		pool_empty();
	free(t);
}
