/*
 * Placeholder substitution (secrets_subst_*, secrets_replace). The input is
 * a little program that builds a body: plain bytes, whole placeholders,
 * placeholder heads, the marker, and cut points where the body is split
 * between feeds. Invariants: the output is the obvious replace-all's
 * (leftmost first, only the destination's placeholders) whether fed whole,
 * at the cuts or byte by byte; counts and delta agree; at most the longest
 * placeholder - 1 bytes are ever held back; secrets_replace agrees too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/secrets.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define BODY_MAX	8192
#define CUTS_MAX	64

/* Placeholders with a shared head, a short value's, another host's. */
#define TEN(c)	c c c c c c c c c c
#define VA	"sk-ant-api03-" TEN("a") TEN("a") TEN("a") TEN("a") "a"
#define VB	"sk-ant-api03-" TEN("b") TEN("b") TEN("b") TEN("b") TEN("b")
#define VD	"sk-ant-api03-" TEN("d") TEN("d") TEN("d") TEN("d") "d"

static const char *const values[] = { VA, VB, "short", VD, "x-y" };
static const char *const dests[] = { "a.com:443", "b.a.com:443",
    "d.com:80", "x.com:443" };
#define NB	(sizeof values / sizeof values[0])

static struct secrets	*set;
static size_t		 maxph;

struct out {
	uint8_t	*p;
	size_t	 len;
	size_t	 cap;
};

static void
emit(void *arg, const void *p, size_t n)
{
	struct out	*o = arg;

	ASSERT(n > 0);
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->p = xreallocarray(o->p, o->cap, 1);
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void
setup(void)
{
	static char	*specs[] = { "A:a.com", "B:*.a.com:X-B", "C:a.com:X-C",
	    "D:d.com", "E:*.a.com:X-E" };
	static char	*env[] = { "A=" VA, "B=" VB, "C=short", "D=" VD,
	    "E=x-y", NULL };
	char		 err[256];
	size_t		 i;

	if (set != NULL)
		return;
	set = secrets_new(specs, NB, env, err, sizeof err);
	ASSERT(set != NULL);
	for (i = 0; i < NB; i++)
		if (strlen(secrets_placeholder(set, i)) > maxph)
			maxph = strlen(secrets_placeholder(set, i));
}

static void
reference(const struct dest *d, const uint8_t *in, size_t len,
    struct out *o, size_t *count, int64_t *delta)
{
	const char	*ph;
	size_t		 i = 0, j, pl;
	bool		 hit;

	*count = 0;
	*delta = 0;
	while (i < len) {
		hit = false;
		for (j = 0; j < NB && !hit; j++) {
			if (!secrets_applies(set, j, d))
				continue;
			ph = secrets_placeholder(set, j);
			pl = strlen(ph);
			if (pl <= len - i && memcmp(in + i, ph, pl) == 0) {
				emit(o, values[j], strlen(values[j]));
				*delta += (int64_t)strlen(values[j]) -
				    (int64_t)pl;
				(*count)++;
				i += pl;
				hit = true;
			}
		}
		if (!hit)
			emit(o, in + i++, 1);
	}
}

/* Feed in pieces; after each feed, check how much is held back. */
static void
run(const struct dest *d, const uint8_t *in, size_t len, const size_t *cuts,
    size_t ncuts, struct out *o, size_t *count, int64_t *delta)
{
	struct subst	*sb = secrets_subst_new(set, d);
	size_t		 i, from = 0, to, held;

	for (i = 0; i <= ncuts; i++) {
		to = i < ncuts ? cuts[i] : len;
		secrets_subst_feed(sb, in + from, to - from, emit, o);
		from = to;
		held = (size_t)((int64_t)from - ((int64_t)o->len -
		    secrets_subst_delta(sb)));
		ASSERT(held < maxph);
	}
	secrets_subst_finish(sb, emit, o);
	ASSERT((int64_t)o->len - secrets_subst_delta(sb) == (int64_t)len);
	*count = secrets_subst_count(sb);
	*delta = secrets_subst_delta(sb);
	ASSERT(*delta <= 0);
	ASSERT(!secrets_subst_preserving(sb) || *delta == 0);
	secrets_subst_free(sb);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dest	 d;
	struct out	 want, got;
	uint8_t		*body;
	const char	*ph;
	size_t		 len = 0, ncuts = 0, cuts[CUTS_MAX], i, n, wc, gc, j;
	size_t		 rlen, rc;
	int64_t		 wd, gd;
	char		*r;

	setup();
	if (size < 1)
		return 0;
	ASSERT(addr_parse_authority(dests[data[0] % 4], strlen(dests[data[0] %
	    4]), 0, &d) == ADDR_OK);
	body = xcalloc(BODY_MAX + 256, 1);
	for (i = 1; i < size && len < BODY_MAX; i++) {
		uint8_t c = data[i];
		if (c >= 0xf0 && c < 0xf0 + NB) {
			ph = secrets_placeholder(set, c - 0xf0);
			memcpy(body + len, ph, strlen(ph));
			len += strlen(ph);
		} else if (c >= 0xf8 && c < 0xf8 + NB && i + 1 < size) {
			ph = secrets_placeholder(set, c - 0xf8);
			n = data[++i] % strlen(ph);
			memcpy(body + len, ph, n);
			len += n;
		} else if (c == 0xef) {
			memcpy(body + len, SECRETS_MARKER, 9);
			len += 9;
		} else if (c == 0xee) {
			memcpy(body + len, "sk-ant-api03-", 13);
			len += 13;
		} else if (c == 0xed) {
			if (ncuts < CUTS_MAX)
				cuts[ncuts++] = len;
		} else
			body[len++] = c;
	}

	memset(&want, 0, sizeof want);
	reference(&d, body, len, &want, &wc, &wd);
	ASSERT((int64_t)want.len - wd == (int64_t)len);

	/* At the cuts. */
	memset(&got, 0, sizeof got);
	run(&d, body, len, cuts, ncuts, &got, &gc, &gd);
	ASSERT(got.len == want.len && (want.len == 0 ||
	    memcmp(got.p, want.p, want.len) == 0));
	ASSERT(gc == wc && gd == wd);
	free(got.p);

	/* Whole, then byte by byte. */
	memset(&got, 0, sizeof got);
	run(&d, body, len, NULL, 0, &got, &gc, &gd);
	ASSERT(got.len == want.len && (want.len == 0 ||
	    memcmp(got.p, want.p, want.len) == 0));
	free(got.p);
	if (len <= 2048) {
		size_t *every = xcalloc(len + 1, sizeof *every);
		for (j = 0; j < len; j++)
			every[j] = j;
		memset(&got, 0, sizeof got);
		run(&d, body, len, every, len, &got, &gc, &gd);
		ASSERT(got.len == want.len && (want.len == 0 ||
		    memcmp(got.p, want.p, want.len) == 0));
		ASSERT(gc == wc);
		free(got.p);
		free(every);
	}

	/* The header helper gives the same result. */
	rc = secrets_replace(set, &d, (const char *)body, len, &r, &rlen);
	ASSERT(rc == wc);
	if (rc == 0)
		ASSERT(r == NULL && rlen == 0);
	else {
		ASSERT(rlen == want.len && memcmp(r, want.p, rlen) == 0);
		ASSERT(r[rlen] == '\0');
		freezero(r, rlen);
	}
	free(want.p);
	free(body);
	return 0;
}
