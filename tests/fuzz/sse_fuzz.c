/*
 * Fuzz the SSE parser against a whole-buffer reference written from the
 * WHATWG text: the events (type, data, id, offsets), the retry value and
 * the consumption must match whether the stream is fed whole, byte by byte
 * or at cut points drawn from the input; offsets and the pending mark stay
 * ordered; every piece is an exact-size heap copy.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/sse.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)

struct rec {
	uint8_t		*p;	/* events, serialised */
	size_t		 len;
	size_t		 cap;
	int64_t		 retry;
	int		 result;
};

static void
rec_add(struct rec *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2 + 64;
		r->p = xreallocarray(r->p, r->cap, 1);
	}
	if (n > 0)
		memcpy(r->p + r->len, p, n);
	r->len += n;
}

static void
rec_field(struct rec *r, const char *p, size_t n)
{
	rec_add(r, &n, sizeof n);
	rec_add(r, p, n);
}

static void
rec_event(struct rec *r, const char *type, size_t tl, const char *data,
    size_t dl, const char *id, size_t il, uint64_t start, uint64_t end)
{
	rec_field(r, type, tl);
	rec_field(r, data, dl);
	rec_field(r, id, il);
	rec_add(r, &start, sizeof start);
	rec_add(r, &end, sizeof end);
}

/* The reference: lines first, then fields, over the whole stream. */
static void
reference(const uint8_t *in, size_t len, struct rec *r)
{
	uint8_t		*data = xcalloc(len + 1, 1);
	uint8_t		*type = xcalloc(len + 1, 1);
	uint8_t		*id = xcalloc(len + 1, 1);
	size_t		 dl = 0, tl = 0, il = 0, i = 0, ls, le, c, v;
	uint64_t	 start = 0;
	int64_t		 x;

	r->retry = -1;
	r->result = 0;
	if (len >= 3 && memcmp(in, "\xef\xbb\xbf", 3) == 0)
		i = start = 3;
	while (i < len) {
		ls = i;
		while (i < len && in[i] != '\r' && in[i] != '\n')
			i++;
		if (i == len)
			break;			/* an unfinished line */
		le = i;
		i++;
		if (ls == le) {			/* blank */
			if (dl > 0)
				rec_event(r, tl ? (char *)type : "message",
				    tl ? tl : 7, (char *)data, dl - 1,
				    (char *)id, il, start, i);
			dl = tl = 0;
			start = i;
			if (in[le] == '\r' && i < len && in[i] == '\n')
				start = ++i;
			continue;
		}
		if (in[le] == '\r' && i < len && in[i] == '\n')
			i++;
		if (in[ls] == ':')
			continue;
		for (c = ls; c < le && in[c] != ':'; c++)
			;
		v = c < le ? c + 1 : le;
		if (v < le && in[v] == ' ')
			v++;
#define IS(s)	(c - ls == strlen(s) && memcmp(in + ls, s, c - ls) == 0)
		if (IS("data")) {
			memcpy(data + dl, in + v, le - v);
			dl += le - v;
			data[dl++] = '\n';
		} else if (IS("event")) {
			memcpy(type, in + v, le - v);
			tl = le - v;
		} else if (IS("id")) {
			if (memchr(in + v, 0, le - v) == NULL) {
				memcpy(id, in + v, le - v);
				il = le - v;
			}
		} else if (IS("retry") && le > v) {
			for (x = 0; v < le; v++) {
				if (in[v] < '0' || in[v] > '9' ||
				    x > (INT32_MAX - (in[v] - '0')) / 10)
					break;
				x = x * 10 + in[v] - '0';
			}
			if (v == le)
				r->retry = x;
		}
#undef IS
	}
	free(data);
	free(type);
	free(id);
}

/* Feed at the cuts (sorted offsets into in), each piece a heap copy. */
static void
feed(const uint8_t *in, size_t len, const size_t *cuts, size_t ncuts,
    struct rec *r)
{
	struct sse		*s = sse_new();
	struct sse_event	 ev;
	size_t			 i, from = 0, to, off, used;
	uint64_t		 last_end = 0;
	int			 rc = SSE_NEED_MORE;

	for (i = 0; i <= ncuts && rc >= 0; i++) {
		to = i < ncuts ? cuts[i] : len;
		uint8_t *p = xcalloc(to - from ? to - from : 1, 1);
		memcpy(p, in + from, to - from);
		off = 0;
		while (off < to - from) {
			rc = sse_next(s, p + off, to - from - off, &used, &ev);
			ASSERT(used <= to - from - off);
			off += used;
			if (rc < 0)
				break;
			ASSERT(sse_pending(s) <= sse_offset(s));
			if (rc == SSE_NEED_MORE) {
				ASSERT(off == to - from);
				continue;
			}
			ASSERT(rc == SSE_EVENT && used > 0);
			ASSERT(ev.start >= last_end && ev.start < ev.end &&
			    ev.end == sse_offset(s) &&
			    sse_pending(s) == sse_offset(s));
			ASSERT(ev.data_len < SSE_EVENT_MAX && ev.type_len > 0);
			ASSERT(ev.data[ev.data_len] == '\0' &&
			    ev.type[ev.type_len] == '\0' &&
			    ev.id[ev.id_len] == '\0');
			ASSERT(memchr(ev.data, '\r', ev.data_len) == NULL &&
			    memchr(ev.type, '\n', ev.type_len) == NULL &&
			    memchr(ev.id, '\0', ev.id_len) == NULL);
			last_end = ev.end;
			rec_event(r, ev.type, ev.type_len, ev.data,
			    ev.data_len, ev.id, ev.id_len, ev.start, ev.end);
		}
		free(p);
		if (rc >= 0)
			ASSERT(sse_offset(s) == to);
		from = to;
	}
	r->result = rc < 0 ? rc : 0;
	r->retry = sse_retry(s);
	sse_free(s);
}

static void
same(const struct rec *a, const struct rec *b)
{
	ASSERT(a->result == b->result && a->retry == b->retry);
	ASSERT(a->len == b->len && (a->len == 0 ||
	    memcmp(a->p, b->p, a->len) == 0));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec	 want, got;
	size_t		*cuts, ncuts = 0, i;

	if (size > 64 * 1024)
		return 0;
	memset(&want, 0, sizeof want);
	reference(data, size, &want);

	memset(&got, 0, sizeof got);
	feed(data, size, NULL, 0, &got);
	same(&want, &got);
	free(got.p);

	/* Cut wherever the input has a byte >= 0xf0 (outside UTF-8 BOMs
	 * and most text), and byte by byte. */
	cuts = xcalloc(size + 1, sizeof *cuts);
	for (i = 1; i < size; i++)
		if (data[i] >= 0xf0)
			cuts[ncuts++] = i;
	memset(&got, 0, sizeof got);
	feed(data, size, cuts, ncuts, &got);
	same(&want, &got);
	free(got.p);
	if (size <= 4096) {
		for (i = 0; i + 1 < size; i++)
			cuts[i] = i + 1;
		memset(&got, 0, sizeof got);
		feed(data, size, cuts, size ? size - 1 : 0, &got);
		same(&want, &got);
		free(got.p);
	}
	free(cuts);
	free(want.p);
	return 0;
}
