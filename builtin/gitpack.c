/*
 * The pushed pack's commits and the fast-forward proof. One pass over the
 * pack: commits are inflated and hashed, other objects inflated into a
 * scratch buffer only to find where they end; a delta is resolved at once
 * when its base commit is known, else it waits on that base (by offset
 * for OFS_DELTA, by id for REF_DELTA) and is inflated again when the base
 * turns up. Then a breadth-first walk over parent lines from each new
 * commit. Every count is bounded (gitpack.h); the pack's own numbers are
 * only ever compared against what is really there.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <openssl/evp.h>
#include <zlib.h>

#include "builtin/gitpack.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define T_COMMIT	1
#define T_TREE		2
#define T_BLOB		3
#define T_TAG		4
#define T_OFS_DELTA	6
#define T_REF_DELTA	7

#define PACK_HEADER	12
#define NONE		UINT32_MAX
#define SCRATCH		65536

enum estate {
	E_PENDING,	/* a delta whose base is not resolved yet */
	E_COMMIT,	/* a commit (whole or resolved) */
};

/* An object that is or may become a commit. Others are not kept. */
struct entry {
	uint64_t	off;		/* its first byte in the pack */
	uint64_t	data;		/* its zlib stream */
	uint64_t	size;		/* declared inflated size */
	uint32_t	base;		/* OFS_DELTA: the base's entry;
					   REF_DELTA: index in refoids */
	uint32_t	commit;		/* E_COMMIT: index in commits */
	uint32_t	waiters;	/* first OFS_DELTA entry waiting on
					   this one, or NONE */
	uint32_t	next;		/* next entry waiting on the same base,
					   or NONE */
	uint8_t		type;
	uint8_t		state;
};

struct commit {
	uint8_t		oid[GITPACK_OID_MAX];
	uint64_t	body;		/* offset in keep */
	uint32_t	len;
	uint32_t	parents;	/* first in pars */
	uint32_t	nparents;
	uint32_t	mark;		/* walk epoch */
};

/* Open addressing, values are indices; the key of a value is found
 * through the walk (a commit's id, a waiting delta's base id). */
struct oidmap {
	uint32_t	*slot;		/* NONE: empty */
	size_t		 cap;		/* a power of two, or 0 */
	size_t		 n;
};

struct walk {
	const uint8_t		*pack;
	size_t			 len;
	size_t			 oidlen;
	const EVP_MD		*md;
	EVP_MD_CTX		*ctx;
	z_stream		 z;

	struct entry		*ents;
	size_t			 nents, capents;
	struct commit		*coms;
	size_t			 ncoms, capcoms;
	uint8_t			*keep;		/* commit bodies */
	size_t			 nkeep, capkeep;
	uint8_t			*pars;		/* parent ids */
	size_t			 npars, cappars;
	uint8_t			*refoids;	/* REF_DELTA base ids */
	size_t			 nrefoids, caprefoids;
	struct oidmap		 cmap;		/* id -> commit */
	struct oidmap		 rmap;		/* base id -> waiting entry */
	uint32_t		*stack;
	size_t			 nstack, capstack;
	uint32_t		*queue;
	size_t			 capqueue;

	uint8_t			*obuf;		/* a commit being made */
	size_t			 capobuf;
	uint8_t			*dbuf;		/* a delta, inflated */
	size_t			 capdbuf;
	uint8_t			 scratch[SCRATCH];

	uint64_t		 inflated;
	uint64_t		 work;
	uint32_t		 epoch;
	size_t			 checked;	/* commits at the last proof */
	size_t			 delta_commits;

	struct gitpack_goal	*goals;
	size_t			 ngoals;
	void			(*on_commit)(void *, const uint8_t *,
				    const uint8_t *, size_t);
	void			*arg;
};

static void
grow(void *pp, size_t *cap, size_t need, size_t elem)
{
	void	**p = pp;
	size_t	  n = *cap == 0 ? 16 : *cap;

	if (need <= *cap)
		return;
	while (n < need)
		n *= 2;
	*p = xreallocarray(*p, n, elem);
	*cap = n;
}

/* --- the id maps --------------------------------------------------------- */

static const uint8_t *
cmap_key(const struct walk *w, uint32_t v)
{
	return w->coms[v].oid;
}

static const uint8_t *
rmap_key(const struct walk *w, uint32_t v)
{
	return w->refoids + (size_t)w->ents[v].base * w->oidlen;
}

static size_t
oidhash(const uint8_t *oid, size_t cap)
{
	uint64_t	h;

	memcpy(&h, oid, sizeof h);
	h *= 0x9e3779b97f4a7c15ULL;
	return (size_t)(h >> 32) & (cap - 1);
}

static uint32_t
map_find(struct walk *w, const struct oidmap *m,
    const uint8_t *(*key)(const struct walk *, uint32_t), const uint8_t *oid)
{
	size_t	i;

	if (m->cap == 0)
		return NONE;
	for (i = oidhash(oid, m->cap); m->slot[i] != NONE;
	    i = (i + 1) & (m->cap - 1)) {
		w->work++;
		if (memcmp(key(w, m->slot[i]), oid, w->oidlen) == 0)
			return m->slot[i];
	}
	return NONE;
}

static void
map_put(struct walk *w, struct oidmap *m,
    const uint8_t *(*key)(const struct walk *, uint32_t), uint32_t v)
{
	uint32_t	*old = m->slot;
	size_t		 oldcap = m->cap, i, j;

	if (2 * (m->n + 1) > m->cap) {
		m->cap = oldcap == 0 ? 64 : 2 * oldcap;
		m->slot = xreallocarray(NULL, m->cap, sizeof *m->slot);
		memset(m->slot, 0xff, m->cap * sizeof *m->slot);
		for (j = 0; j < oldcap; j++) {
			if (old[j] == NONE)
				continue;
			for (i = oidhash(key(w, old[j]), m->cap);
			    m->slot[i] != NONE; i = (i + 1) & (m->cap - 1))
				w->work++;
			m->slot[i] = old[j];
		}
		free(old);
	}
	for (i = oidhash(key(w, v), m->cap); m->slot[i] != NONE;
	    i = (i + 1) & (m->cap - 1))
		w->work++;
	m->slot[i] = v;
	m->n++;
}

/* --- reading the pack ---------------------------------------------------- */

/*
 * The zlib stream at pack[at], which must inflate to exactly size bytes:
 * into out (size + 1 bytes of room) or, out NULL, thrown away. *used is
 * the stream's compressed length.
 */
static int
inflate_at(struct walk *w, uint64_t at, uint64_t size, uint8_t *out,
    uint64_t *used)
{
	uint64_t	got = 0, left;
	size_t		room;
	uint8_t		*dst;
	int		zr;

	if (at >= w->len)
		return GITPACK_E_TRUNCATED;
	if (inflateReset(&w->z) != Z_OK)
		return GITPACK_E_ZLIB;
	w->z.next_in = w->pack + at;
	left = w->len - at;
	w->z.avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
	left -= w->z.avail_in;
	for (;;) {
		if (out != NULL) {
			dst = out + got;
			room = (size_t)(size - got + 1);
		} else {
			dst = w->scratch;
			room = size - got < SCRATCH ? (size_t)(size - got + 1) :
			    SCRATCH;
		}
		if (room > UINT_MAX)
			room = UINT_MAX;
		if (w->z.avail_in == 0 && left > 0) {
			w->z.avail_in = left > UINT_MAX ? UINT_MAX :
			    (uInt)left;
			left -= w->z.avail_in;
		}
		w->z.next_out = dst;
		w->z.avail_out = (uInt)room;
		zr = inflate(&w->z, Z_NO_FLUSH);
		got += room - w->z.avail_out;
		w->inflated += room - w->z.avail_out;
		if (got > size)
			return GITPACK_E_ZLIB;
		if (w->inflated > GITPACK_INFLATE_MAX)
			return GITPACK_E_LIMIT;
		if (zr == Z_STREAM_END)
			break;
		if (zr == Z_BUF_ERROR && w->z.avail_in == 0 && left == 0)
			return GITPACK_E_TRUNCATED;
		if (zr != Z_OK && zr != Z_BUF_ERROR)
			return GITPACK_E_ZLIB;
	}
	if (got != size)
		return GITPACK_E_ZLIB;
	*used = w->z.total_in;
	return 0;
}

/* Type and size; *pos moves past the header. */
static int
obj_header(const struct walk *w, uint64_t *pos, int *type, uint64_t *size)
{
	uint64_t	p = *pos, v;
	unsigned	shift = 4;
	uint8_t		c;

	if (p >= w->len)
		return GITPACK_E_TRUNCATED;
	c = w->pack[p++];
	*type = (c >> 4) & 7;
	*size = c & 15;
	while (c & 0x80) {
		if (p >= w->len)
			return GITPACK_E_TRUNCATED;
		if (shift >= 64)
			return GITPACK_E_OBJECT;
		c = w->pack[p++];
		v = c & 0x7f;
		if (shift > 57 && (v >> (64 - shift)) != 0)
			return GITPACK_E_OBJECT;
		*size |= v << shift;
		shift += 7;
	}
	if (*type == 0 || *type == 5)
		return GITPACK_E_OBJECT;
	*pos = p;
	return 0;
}

/* OFS_DELTA's base: a negative offset, git's encoding (each further byte
 * adds one before the shift, so encodings are unique). */
static int
ofs_base(const struct walk *w, uint64_t off, uint64_t *pos, uint64_t *base)
{
	uint64_t	p = *pos, ofs;
	uint8_t		c;

	if (p >= w->len)
		return GITPACK_E_TRUNCATED;
	c = w->pack[p++];
	ofs = c & 0x7f;
	while (c & 0x80) {
		ofs += 1;
		if (ofs == 0 || (ofs >> (64 - 7)) != 0)
			return GITPACK_E_OBJECT;
		if (p >= w->len)
			return GITPACK_E_TRUNCATED;
		c = w->pack[p++];
		ofs = (ofs << 7) + (c & 0x7f);
	}
	if (ofs == 0 || ofs >= off)
		return GITPACK_E_OBJECT;
	*base = off - ofs;
	*pos = p;
	return 0;
}

/* The entry of the object starting at off (entries are in pack order). */
static uint32_t
entry_at(const struct walk *w, uint64_t off)
{
	size_t	lo = 0, hi = w->nents, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (w->ents[mid].off == off)
			return (uint32_t)mid;
		if (w->ents[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NONE;
}

static int
new_entry(struct walk *w, uint64_t off, uint64_t data, uint64_t size,
    int type, uint32_t *idx)
{
	struct entry	*e;

	if (w->nents >= GITPACK_ENTRIES_MAX)
		return GITPACK_E_LIMIT;
	grow(&w->ents, &w->capents, w->nents + 1, sizeof *w->ents);
	e = &w->ents[w->nents];
	memset(e, 0, sizeof *e);
	e->off = off;
	e->data = data;
	e->size = size;
	e->type = (uint8_t)type;
	e->state = E_PENDING;
	e->base = e->commit = e->waiters = e->next = NONE;
	*idx = (uint32_t)w->nents++;
	return 0;
}

/* --- commits ------------------------------------------------------------- */

/* A delta's size header: 7 bits a byte, least significant first. */
static bool
delta_size(const uint8_t *d, size_t len, size_t *p, uint64_t *out)
{
	unsigned	shift = 0;
	uint64_t	v = 0, c;

	do {
		if (*p >= len || shift >= 64)
			return false;
		c = d[*p];
		(*p)++;
		if (shift > 57 && ((c & 0x7f) >> (64 - shift)) != 0)
			return false;
		v |= (c & 0x7f) << shift;
		shift += 7;
	} while (c & 0x80);
	*out = v;
	return true;
}

/*
 * git's delta format (patch_delta()): source and target sizes, then copy
 * (offset and size from the source) and insert instructions. Into w->obuf.
 * Returns 0, GITPACK_E_DELTA, or 1 when the target would be larger than a
 * commit we walk (not an error: that object is just not followed).
 */
static int
apply_delta(struct walk *w, const uint8_t *base, size_t blen,
    const uint8_t *d, size_t dlen, size_t *outlen)
{
	uint64_t	src, dst, off, sz;
	size_t		p = 0, o = 0;
	uint8_t		cmd;
	int		i;

	if (!delta_size(d, dlen, &p, &src) || !delta_size(d, dlen, &p, &dst))
		return GITPACK_E_DELTA;
	if (src != blen)
		return GITPACK_E_DELTA;
	if (dst > GITPACK_COMMIT_MAX)
		return 1;
	grow(&w->obuf, &w->capobuf, (size_t)dst + 1, 1);
	while (p < dlen) {
		cmd = d[p++];
		if (cmd & 0x80) {
			off = sz = 0;
			for (i = 0; i < 4; i++)
				if (cmd & (1 << i)) {
					if (p >= dlen)
						return GITPACK_E_DELTA;
					off |= (uint64_t)d[p++] << (8 * i);
				}
			for (i = 0; i < 3; i++)
				if (cmd & (0x10 << i)) {
					if (p >= dlen)
						return GITPACK_E_DELTA;
					sz |= (uint64_t)d[p++] << (8 * i);
				}
			if (sz == 0)
				sz = 0x10000;
			if (off > blen || sz > blen - off || sz > dst - o)
				return GITPACK_E_DELTA;
			memcpy(w->obuf + o, base + off, (size_t)sz);
			o += (size_t)sz;
		} else if (cmd != 0) {
			if (cmd > dlen - p || cmd > dst - o)
				return GITPACK_E_DELTA;
			memcpy(w->obuf + o, d + p, cmd);
			o += cmd;
			p += cmd;
		} else
			return GITPACK_E_DELTA;	/* reserved */
	}
	if (o != dst)
		return GITPACK_E_DELTA;
	*outlen = o;
	return 0;
}

/*
 * Parent ids as git's parse_commit_buffer() takes them: the "tree" line
 * first, then consecutive "parent" lines. Anything git would call a bogus
 * commit has no parents here.
 */
static void
parse_parents(struct walk *w, const uint8_t *b, size_t len,
    struct commit *c)
{
	size_t	hexsz = 2 * w->oidlen, tree_len = hexsz + 5;
	size_t	parent_len = hexsz + 7, p, n = 0;
	uint8_t	tmp[GITPACK_OID_MAX];

	c->parents = (uint32_t)w->npars;
	c->nparents = 0;
	if (len <= tree_len + 1 || memcmp(b, "tree ", 5) != 0 ||
	    b[tree_len] != '\n' || !util_unhex(b + 5, w->oidlen, tmp))
		return;
	for (p = tree_len + 1; p + parent_len < len &&
	    memcmp(b + p, "parent ", 7) == 0; p += parent_len + 1) {
		if (!util_unhex(b + p + 7, w->oidlen, tmp) ||
		    b[p + parent_len] != '\n') {
			w->npars -= n;		/* bad parents: none */
			return;
		}
		grow(&w->pars, &w->cappars, (w->npars + 1) * w->oidlen, 1);
		memcpy(w->pars + w->npars * w->oidlen, tmp, w->oidlen);
		w->npars++;
		n++;
	}
	c->nparents = (uint32_t)n;
}

static void
hash_commit(struct walk *w, const uint8_t *b, size_t len, uint8_t *oid)
{
	char		hdr[32];
	unsigned	n = 0;
	int		k;

	k = snprintf(hdr, sizeof hdr, "commit %zu", len);
	if (EVP_DigestInit_ex(w->ctx, w->md, NULL) != 1 ||
	    EVP_DigestUpdate(w->ctx, hdr, (size_t)k + 1) != 1 ||
	    EVP_DigestUpdate(w->ctx, b, len) != 1 ||
	    EVP_DigestFinal_ex(w->ctx, oid, &n) != 1 || n != w->oidlen)
		fatal("cannot hash a commit: OpenSSL's %s failed",
		    w->oidlen == 20 ? "SHA-1" : "SHA-256");
}

/* A commit's bytes (in w->obuf): its index in *ci, *fresh if first seen. */
static int
add_commit(struct walk *w, size_t len, uint32_t *ci, bool *fresh)
{
	uint8_t		 oid[GITPACK_OID_MAX];
	struct commit	*c;
	uint32_t	 v;

	memset(oid, 0, sizeof oid);
	hash_commit(w, w->obuf, len, oid);
	*fresh = false;
	if (w->ncoms > 0 && (v = map_find(w, &w->cmap, cmap_key, oid)) !=
	    NONE) {
		*ci = v;
		return 0;
	}
	if (len > GITPACK_KEEP_MAX - w->nkeep)
		return GITPACK_E_LIMIT;
	grow(&w->coms, &w->capcoms, w->ncoms + 1, sizeof *w->coms);
	grow(&w->keep, &w->capkeep, w->nkeep + len + 1, 1);
	c = &w->coms[w->ncoms];
	memset(c, 0, sizeof *c);
	memcpy(c->oid, oid, w->oidlen);
	memcpy(w->keep + w->nkeep, w->obuf, len);
	c->body = w->nkeep;
	c->len = (uint32_t)len;
	w->nkeep += len;
	parse_parents(w, w->obuf, len, c);
	*ci = (uint32_t)w->ncoms++;
	map_put(w, &w->cmap, cmap_key, *ci);
	*fresh = true;
	if (w->on_commit != NULL)
		w->on_commit(w->arg, c->oid, w->keep + c->body, len);
	return 0;
}

/*
 * Entry e is a delta against commit ci: inflate it (again, if it waited)
 * and apply it. On success e is a commit; a target too large to walk
 * leaves it pending forever.
 */
static int
resolve(struct walk *w, uint32_t e, uint32_t ci, bool *made, bool *fresh)
{
	struct entry	*ent = &w->ents[e];
	uint64_t	 used;
	size_t		 olen;
	uint32_t	 nc;
	int		 r;

	*made = *fresh = false;
	if (ent->size > GITPACK_DELTA_MAX)
		return 0;
	grow(&w->dbuf, &w->capdbuf, (size_t)ent->size + 1, 1);
	if ((r = inflate_at(w, ent->data, ent->size, w->dbuf, &used)) != 0)
		return r;
	r = apply_delta(w, w->keep + w->coms[ci].body, w->coms[ci].len,
	    w->dbuf, (size_t)ent->size, &olen);
	if (r != 0)
		return r < 0 ? r : 0;
	if ((r = add_commit(w, olen, &nc, fresh)) != 0)
		return r;
	ent = &w->ents[e];
	ent->state = E_COMMIT;
	ent->commit = nc;
	if (*fresh)
		w->delta_commits++;
	*made = true;
	return 0;
}

/* The stack holds entries that just became commits; the top bit marks
 * one whose commit id had been seen before (its REF_DELTA waiters were
 * taken then). */
#define SEEN	0x80000000u

static void
push(struct walk *w, uint32_t e, bool fresh)
{
	grow(&w->stack, &w->capstack, w->nstack + 1, sizeof *w->stack);
	w->stack[w->nstack++] = e | (fresh ? 0 : SEEN);
}

/* Resolve what waits on x's commit: its OFS_DELTA waiters, and (first
 * sight of the id) the REF_DELTAs waiting on the id. */
static int
waiters(struct walk *w, uint32_t x, uint32_t first)
{
	uint32_t	y, ci = w->ents[x].commit;
	bool		made, fresh;
	int		r;

	for (y = first; y != NONE; y = w->ents[y].next) {
		w->work++;
		if (w->ents[y].state != E_PENDING)
			continue;
		if ((r = resolve(w, y, ci, &made, &fresh)) != 0)
			return r;
		if (made)
			push(w, y, fresh);
	}
	return 0;
}

/* Entry e just became a commit: resolve what waits on it, and on what
 * that resolves, without recursion. */
static int
resolved(struct walk *w, uint32_t e, bool fresh)
{
	uint32_t	x;
	int		r;

	w->nstack = 0;
	push(w, e, fresh);
	while (w->nstack > 0) {
		x = w->stack[--w->nstack];
		fresh = !(x & SEEN);
		x &= ~SEEN;
		if ((r = waiters(w, x, w->ents[x].waiters)) != 0)
			return r;
		if (fresh && w->rmap.n > 0 && (r = waiters(w, x,
		    map_find(w, &w->rmap, rmap_key,
		    w->coms[w->ents[x].commit].oid))) != 0)
			return r;
	}
	return 0;
}

/* --- the proof ----------------------------------------------------------- */

/* Goal g by a breadth-first walk from new over commits of the pack. */
static int
prove_one(struct walk *w, struct gitpack_goal *g, bool final)
{
	const uint8_t	*par;
	uint32_t	 ni, pi, c;
	size_t		 head = 0, tail = 0, k;
	bool		 left = false;

	ni = w->ncoms > 0 ? map_find(w, &w->cmap, cmap_key, g->new) : NONE;
	if (ni == NONE) {
		if (final)
			g->proof = GITPACK_MISSING;
		return 0;
	}
	grow(&w->queue, &w->capqueue, w->ncoms, sizeof *w->queue);
	w->epoch++;
	w->coms[ni].mark = w->epoch;
	w->queue[tail++] = ni;
	while (head < tail) {
		c = w->queue[head++];
		for (k = 0; k < w->coms[c].nparents; k++) {
			if (++w->work > GITPACK_WORK_MAX)
				return GITPACK_E_LIMIT;
			par = w->pars + ((size_t)w->coms[c].parents + k) *
			    w->oidlen;
			if (memcmp(par, g->old, w->oidlen) == 0) {
				g->proof = GITPACK_PROVEN;
				return 0;
			}
			pi = map_find(w, &w->cmap, cmap_key, par);
			if (pi == NONE) {
				left = true;
				continue;
			}
			if (w->coms[pi].mark != w->epoch) {
				w->coms[pi].mark = w->epoch;
				w->queue[tail++] = pi;
			}
		}
	}
	if (final)
		g->proof = left ? GITPACK_UNPROVEN : GITPACK_NOT_ANCESTOR;
	return 0;
}

/* Settle what can be; true when every goal is proven. */
static int
prove_all(struct walk *w, bool final, bool *all)
{
	size_t	i;
	int	r;

	*all = true;
	for (i = 0; i < w->ngoals; i++) {
		if (w->goals[i].proof == GITPACK_PROVEN)
			continue;
		if ((r = prove_one(w, &w->goals[i], final)) != 0)
			return r;
		if (w->goals[i].proof != GITPACK_PROVEN)
			*all = false;
	}
	return 0;
}

/* Between objects that cannot be commits: try the goals whenever the
 * commits found have doubled since the last try (git writes commits
 * first, so one try right after them usually settles a push). */
static int
checkpoint(struct walk *w, bool *all)
{
	*all = false;
	if (w->ngoals == 0 || w->ncoms == 0 || w->ncoms < 2 * w->checked ||
	    w->ncoms == w->checked)
		return 0;
	w->checked = w->ncoms;
	return prove_all(w, false, all);
}

/* --- the walk ------------------------------------------------------------ */

/* One object at *pos; *skipped when it cannot be a commit. */
static int
object(struct walk *w, uint64_t *pos, bool *skipped)
{
	uint64_t	 off = *pos, p = *pos, size, used, boff;
	const uint8_t	*bid = NULL;
	uint32_t	 b = NONE, ci = NONE, e;
	size_t		 olen;
	bool		 fresh;
	int		 type, r;

	*skipped = false;
	if ((r = obj_header(w, &p, &type, &size)) != 0)
		return r;
	if (type == T_OFS_DELTA) {
		if ((r = ofs_base(w, off, &p, &boff)) != 0)
			return r;
		b = entry_at(w, boff);
		if (b != NONE && w->ents[b].state == E_COMMIT)
			ci = w->ents[b].commit;
	} else if (type == T_REF_DELTA) {
		if (p > w->len || w->len - p < w->oidlen)
			return GITPACK_E_TRUNCATED;
		bid = w->pack + p;
		p += w->oidlen;
		if (w->ncoms > 0)
			ci = map_find(w, &w->cmap, cmap_key, bid);
	}

	if (type == T_COMMIT && size <= GITPACK_COMMIT_MAX) {
		grow(&w->obuf, &w->capobuf, (size_t)size + 1, 1);
		if ((r = inflate_at(w, p, size, w->obuf, &used)) != 0)
			return r;
		*pos = p + used;
		if ((r = add_commit(w, (size_t)size, &ci, &fresh)) != 0 ||
		    (r = new_entry(w, off, p, size, type, &e)) != 0)
			return r;
		w->ents[e].state = E_COMMIT;
		w->ents[e].commit = ci;
		return resolved(w, e, fresh);
	}
	if ((type == T_OFS_DELTA || type == T_REF_DELTA) && ci != NONE) {
		/* Its base is a commit: resolve it now. */
		if (size > GITPACK_DELTA_MAX) {
			*skipped = true;
			goto skip;
		}
		grow(&w->dbuf, &w->capdbuf, (size_t)size + 1, 1);
		if ((r = inflate_at(w, p, size, w->dbuf, &used)) != 0)
			return r;
		*pos = p + used;
		r = apply_delta(w, w->keep + w->coms[ci].body,
		    w->coms[ci].len, w->dbuf, (size_t)size, &olen);
		if (r < 0)
			return r;
		if (r > 0) {
			*skipped = true;
			return 0;
		}
		if ((r = add_commit(w, olen, &ci, &fresh)) != 0 ||
		    (r = new_entry(w, off, p, size, type, &e)) != 0)
			return r;
		w->ents[e].state = E_COMMIT;
		w->ents[e].commit = ci;
		if (fresh)
			w->delta_commits++;
		return resolved(w, e, fresh);
	}
	if ((type == T_OFS_DELTA && b != NONE) || type == T_REF_DELTA) {
		/* Its base may yet become a commit: wait on it. */
		if ((r = new_entry(w, off, p, size, type, &e)) != 0)
			return r;
		if (type == T_OFS_DELTA) {
			w->ents[e].base = b;
			w->ents[e].next = w->ents[b].waiters;
			w->ents[b].waiters = e;
		} else {
			grow(&w->refoids, &w->caprefoids,
			    (w->nrefoids + 1) * w->oidlen, 1);
			memcpy(w->refoids + w->nrefoids * w->oidlen, bid,
			    w->oidlen);
			w->ents[e].base = (uint32_t)w->nrefoids++;
			b = w->rmap.n > 0 ? map_find(w, &w->rmap, rmap_key,
			    bid) : NONE;
			if (b != NONE) {
				/* behind the first waiter on that id */
				w->ents[e].next = w->ents[b].next;
				w->ents[b].next = e;
			} else
				map_put(w, &w->rmap, rmap_key, e);
		}
	} else
		*skipped = true;
skip:
	if ((r = inflate_at(w, p, size, NULL, &used)) != 0)
		return r;
	*pos = p + used;
	return 0;
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static int
walk(struct walk *w, struct gitpack_stats *st, bool *early)
{
	uint64_t	pos = PACK_HEADER;
	uint32_t	i;
	bool		skipped, all;
	int		r;

	*early = false;
	if (w->len < PACK_HEADER)
		return w->len == 0 || (w->len < 4 && memcmp(w->pack, "PACK",
		    w->len) == 0) || (w->len >= 4 && memcmp(w->pack, "PACK",
		    4) == 0) ? GITPACK_E_TRUNCATED : GITPACK_E_HEADER;
	if (memcmp(w->pack, "PACK", 4) != 0)
		return GITPACK_E_HEADER;
	st->version = be32(w->pack + 4);
	st->declared = be32(w->pack + 8);
	if (st->version != 2 && st->version != 3)
		return GITPACK_E_HEADER;
	for (i = 0; i < st->declared; i++) {
		st->offset = pos;
		if ((r = object(w, &pos, &skipped)) != 0)
			return r;
		st->objects++;
		if (w->work > GITPACK_WORK_MAX)
			return GITPACK_E_LIMIT;
		if (skipped) {
			if ((r = checkpoint(w, &all)) != 0)
				return r;
			if (all) {
				*early = true;
				st->offset = pos;
				return 0;
			}
		}
	}
	st->offset = pos;
	if (w->len - pos != w->oidlen)
		return w->len - pos < w->oidlen ? GITPACK_E_TRUNCATED :
		    GITPACK_E_TRAILER;
	return 0;
}

int
gitpack_prove(const uint8_t *pack, size_t len, size_t oidlen,
    struct gitpack_goal *goals, size_t ngoals,
    void (*on_commit)(void *, const uint8_t *, const uint8_t *, size_t),
    void *arg, struct gitpack_stats *stats)
{
	struct gitpack_stats	 st;
	struct walk		*w;
	size_t			 i;
	bool			 early, all;
	int			 r, r2;

	memset(&st, 0, sizeof st);
	for (i = 0; i < ngoals; i++)
		goals[i].proof = GITPACK_UNPROVEN;
	if (stats != NULL)
		memset(stats, 0, sizeof *stats);
	if (oidlen != 20 && oidlen != 32)
		return GITPACK_E_ARG;
	for (i = 0; i < ngoals; i++)
		if (memcmp(goals[i].old, goals[i].new, oidlen) == 0)
			goals[i].proof = GITPACK_PROVEN;

	w = xcalloc(1, sizeof *w);
	w->pack = pack;
	w->len = len;
	w->oidlen = oidlen;
	w->goals = goals;
	w->ngoals = ngoals;
	w->on_commit = on_commit;
	w->arg = arg;
	w->md = oidlen == 20 ? EVP_sha1() : EVP_sha256();
	if ((w->ctx = EVP_MD_CTX_new()) == NULL ||
	    inflateInit(&w->z) != Z_OK)
		fatal("out of memory");

	r = walk(w, &st, &early);
	/* What was read proves what it proves, error or not; only a whole
	 * walk can say that new is missing or that old is not an
	 * ancestor. */
	r2 = prove_all(w, r == 0 && !early, &all);
	if (r == 0)
		r = r2;
	st.early = early;
	st.commits = w->ncoms;
	st.delta_commits = w->delta_commits;
	st.inflated = w->inflated;
	if (stats != NULL)
		*stats = st;

	inflateEnd(&w->z);
	EVP_MD_CTX_free(w->ctx);
	free(w->ents);
	free(w->coms);
	free(w->keep);
	free(w->pars);
	free(w->refoids);
	free(w->cmap.slot);
	free(w->rmap.slot);
	free(w->stack);
	free(w->queue);
	free(w->obuf);
	free(w->dbuf);
	free(w);
	return r;
}

const char *
gitpack_strerror(int code)
{
	switch (code) {
	case GITPACK_OK:
		return "ok";
	case GITPACK_E_HEADER:
		return "not a version 2 or 3 packfile";
	case GITPACK_E_TRUNCATED:
		return "truncated pack";
	case GITPACK_E_OBJECT:
		return "bad object header in the pack";
	case GITPACK_E_ZLIB:
		return "bad zlib stream in the pack";
	case GITPACK_E_DELTA:
		return "a delta in the pack does not apply to its base";
	case GITPACK_E_LIMIT:
		return "the pack is too large to walk";
	case GITPACK_E_TRAILER:
		return "bytes after the pack's last object";
	case GITPACK_E_ARG:
		return "object ids of an unknown length";
	}
	return "unknown pack error";
}
