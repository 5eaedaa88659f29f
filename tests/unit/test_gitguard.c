/*
 * gitguard.c and gitpack.c: --git-* option values (good and bad), the
 * classification of requests on guarded hosts, push judgements with their
 * status reports, the ssh rewrite variables; and the pack walker on packs
 * built here (zlib, SHA-1/SHA-256) to reach what git never writes:
 * deltas against blobs, forward REF_DELTAs, parents after the header,
 * corrupt streams, early stops. Packs from real git are in
 * tests/integration/test_gitguard_git.py, which drives the helper modes:
 *
 *	test_gitguard --judge [GUARD-OPTION...] -- METHOD AUTHORITY TARGET
 *		< body		judges a request (and a push's body); prints
 *				"ACTION STATUS BODYLEN TYPE", the reason,
 *				the rule, then the response body
 *	test_gitguard --git-env [GUARD-OPTION...] -- [NAME=VALUE...]
 *				prints the ssh rewrite variables
 *	test_gitguard --pack-stats < body
 *				walks a receive-pack body's pack, prints
 *				what it found
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZLIB_CONST
#include <openssl/evp.h>
#include <zlib.h>

#include "builtin/addr.h"
#include "builtin/gitguard.h"
#include "builtin/gitpack.h"
#include "builtin/pktline.h"
#include "common/strlist.h"
#include "tests/unit/test.h"

/* --- building packs ------------------------------------------------------ */

struct buf {
	uint8_t	*b;
	size_t	 n;
	size_t	 cap;
};

static void
put(struct buf *b, const void *p, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->b = realloc(b->b, b->cap);
	}
	if (n > 0)
		memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void
putc8(struct buf *b, uint8_t c)
{
	put(b, &c, 1);
}

static void
putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2,
    3)));

static void
putf(struct buf *b, const char *fmt, ...)
{
	char	tmp[4096];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	put(b, tmp, (size_t)n);
}

struct pack {
	struct buf	b;
	uint32_t	count;
	size_t		oidlen;
};

static void
hash_obj(size_t oidlen, const char *type, const void *p, size_t n,
    uint8_t *oid)
{
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	char		 hdr[64];
	unsigned	 len;
	int		 k;

	k = snprintf(hdr, sizeof hdr, "%s %zu", type, n);
	EVP_DigestInit_ex(ctx, oidlen == 20 ? EVP_sha1() : EVP_sha256(), NULL);
	EVP_DigestUpdate(ctx, hdr, (size_t)k + 1);
	EVP_DigestUpdate(ctx, p, n);
	EVP_DigestFinal_ex(ctx, oid, &len);
	EVP_MD_CTX_free(ctx);
}

static void
tohex(const uint8_t *oid, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", oid[i]);
}

static void
pack_begin(struct pack *pk, size_t oidlen)
{
	memset(pk, 0, sizeof *pk);
	pk->oidlen = oidlen;
	put(&pk->b, "PACK\0\0\0\2\0\0\0\0", 12);
}

static void
obj_header(struct buf *b, int type, uint64_t size)
{
	uint8_t	c = (uint8_t)(type << 4 | (size & 15));

	size >>= 4;
	while (size > 0) {
		putc8(b, c | 0x80);
		c = size & 0x7f;
		size >>= 7;
	}
	putc8(b, c);
}

static void
put_zlib(struct buf *b, const void *p, size_t n)
{
	uLongf	 zn = compressBound((uLong)n);
	uint8_t	*z = malloc(zn);

	compress2(z, &zn, p, (uLong)n, 1);
	put(b, z, zn);
	free(z);
}

/* A whole object; returns its offset. */
static size_t
pack_obj(struct pack *pk, int type, const void *p, size_t n)
{
	size_t	off = pk->b.n;

	obj_header(&pk->b, type, n);
	put_zlib(&pk->b, p, n);
	pk->count++;
	return off;
}

static size_t
pack_ofs(struct pack *pk, size_t base, const void *delta, size_t n)
{
	size_t	off = pk->b.n, ofs = off - base;
	uint8_t	tmp[16];
	int	i = 15;

	obj_header(&pk->b, 6, n);
	tmp[i] = ofs & 0x7f;
	while (ofs >>= 7)
		tmp[--i] = 0x80 | (--ofs & 0x7f);
	put(&pk->b, tmp + i, (size_t)(16 - i));
	put_zlib(&pk->b, delta, n);
	pk->count++;
	return off;
}

static size_t
pack_ref(struct pack *pk, const uint8_t *base, const void *delta, size_t n)
{
	size_t	off = pk->b.n;

	obj_header(&pk->b, 7, n);
	put(&pk->b, base, pk->oidlen);
	put_zlib(&pk->b, delta, n);
	pk->count++;
	return off;
}

static void
pack_end(struct pack *pk)
{
	uint8_t	oid[32];

	pk->b.b[8] = (uint8_t)(pk->count >> 24);
	pk->b.b[9] = (uint8_t)(pk->count >> 16);
	pk->b.b[10] = (uint8_t)(pk->count >> 8);
	pk->b.b[11] = (uint8_t)pk->count;
	memset(oid, 0x5a, sizeof oid);		/* not checked */
	put(&pk->b, oid, pk->oidlen);
}

static void
varint(struct buf *b, size_t v)
{
	do {
		putc8(b, (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)));
		v >>= 7;
	} while (v > 0);
}

/* A delta from src to dst: copy the common prefix, insert the rest. */
static void
make_delta(struct buf *d, const char *src, size_t sn, const char *dst,
    size_t dn)
{
	size_t	pre = 0, i, k;

	memset(d, 0, sizeof *d);
	varint(d, sn);
	varint(d, dn);
	while (pre < sn && pre < dn && pre < 0xffff && src[pre] == dst[pre])
		pre++;
	if (pre > 0) {
		putc8(d, 0x80 | 0x10 | 0x20);	/* offset 0, 2 size bytes */
		putc8(d, pre & 0xff);
		putc8(d, (uint8_t)(pre >> 8));
	}
	for (i = pre; i < dn; i += k) {
		k = dn - i > 127 ? 127 : dn - i;
		putc8(d, (uint8_t)k);
		put(d, dst + i, k);
	}
}

#define TREE1	"4b825dc642cb6eb9a060e54bf8d69288fbee4904"
#define TREE2	"4b825dc642cb6eb9a060e54bf8d69288fbee4904" \
		"4b825dc642cb6eb9a060e54b"

/* A commit with the given parents (binary ids). */
struct com {
	char	text[2048];
	size_t	len;
	uint8_t	oid[32];
	char	hex[65];
};

static void
make_commit(struct com *c, size_t oidlen, const uint8_t *const *parents,
    size_t np, const char *msg)
{
	struct buf	b;
	char		hex[65];

	memset(&b, 0, sizeof b);
	putf(&b, "tree %s\n", oidlen == 20 ? TREE1 : TREE2);
	for (size_t i = 0; i < np; i++) {
		tohex(parents[i], oidlen, hex);
		putf(&b, "parent %s\n", hex);
	}
	putf(&b, "author A U Thor <a@example.com> 1700000000 +0000\n"
	    "committer A U Thor <a@example.com> 1700000000 +0000\n\n%s\n",
	    msg);
	memcpy(c->text, b.b, b.n);
	c->len = b.n;
	free(b.b);
	hash_obj(oidlen, "commit", c->text, c->len, c->oid);
	tohex(c->oid, oidlen, c->hex);
}

static void
chain(struct com *c, size_t n, size_t oidlen, const char *tag)
{
	char	msg[128];

	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = i > 0 ? c[i - 1].oid : NULL;
		snprintf(msg, sizeof msg, "%s commit %zu, a message long "
		    "enough that deltas against it pay", tag, i);
		make_commit(&c[i], oidlen, &p, i > 0 ? 1 : 0, msg);
	}
}

static enum gitpack_proof
prove1(const struct pack *pk, const uint8_t *old, const uint8_t *new,
    int *rc, struct gitpack_stats *st)
{
	struct gitpack_goal	g;

	memset(&g, 0, sizeof g);
	memcpy(g.old, old, pk->oidlen);
	memcpy(g.new, new, pk->oidlen);
	*rc = gitpack_prove(pk->b.b, pk->b.n, pk->oidlen, &g, 1, NULL, NULL,
	    st);
	return g.proof;
}

/* --- gitpack ------------------------------------------------------------- */

static void
pack_linear(void)
{
	static const size_t	lens[] = { 20, 32 };
	struct com		c[5];
	struct pack		pk;
	struct gitpack_stats	st;
	uint8_t			other[32];
	int			rc;

	memset(other, 0x77, sizeof other);
	for (size_t l = 0; l < 2; l++) {
		size_t L = lens[l];

		chain(c, 5, L, "linear");
		pack_begin(&pk, L);
		pack_obj(&pk, 1, c[4].text, c[4].len);
		pack_obj(&pk, 1, c[3].text, c[3].len);
		pack_obj(&pk, 1, c[2].text, c[2].len);
		pack_obj(&pk, 3, "blob\n", 5);
		pack_end(&pk);
		/* c1 is on the remote: c2's parent line names it */
		CHECK(prove1(&pk, c[1].oid, c[4].oid, &rc, &st) ==
		    GITPACK_PROVEN && rc == 0, "linear %zu: rc %d", L, rc);
		CHECK(st.commits == 3 && st.early, "linear %zu: commits %zu "
		    "early %d", L, st.commits, st.early);
		CHECK(prove1(&pk, c[2].oid, c[4].oid, &rc, &st) ==
		    GITPACK_PROVEN, "linear %zu: old in the pack", L);
		CHECK(prove1(&pk, c[3].oid, c[3].oid, &rc, &st) ==
		    GITPACK_PROVEN, "linear %zu: old == new", L);
		/* c0 is beyond c1, which is not in the pack */
		CHECK(prove1(&pk, c[0].oid, c[4].oid, &rc, &st) ==
		    GITPACK_UNPROVEN && rc == 0 && !st.early,
		    "linear %zu: walk leaves the pack", L);
		CHECK(prove1(&pk, c[1].oid, other, &rc, &st) ==
		    GITPACK_MISSING, "linear %zu: new missing", L);
		/* the child does not prove the parent */
		CHECK(prove1(&pk, c[4].oid, c[2].oid, &rc, &st) !=
		    GITPACK_PROVEN, "linear %zu: backwards", L);
		free(pk.b.b);
	}
}

static void
pack_not_ancestor(void)
{
	struct com	r[3], x;
	struct pack	pk;
	int		rc;

	/* a whole new history, root included: old is not in it */
	chain(r, 3, 20, "orphan");
	make_commit(&x, 20, NULL, 0, "the remote's commit");
	pack_begin(&pk, 20);
	for (int i = 2; i >= 0; i--)
		pack_obj(&pk, 1, r[i].text, r[i].len);
	pack_end(&pk);
	CHECK(prove1(&pk, x.oid, r[2].oid, &rc, NULL) ==
	    GITPACK_NOT_ANCESTOR && rc == 0, "orphan history");
	free(pk.b.b);
}

static void
pack_merge(void)
{
	struct com	 o, a, b, m, side;
	const uint8_t	*p[2];
	struct pack	 pk;
	int		 rc;

	make_commit(&o, 20, NULL, 0, "old");
	p[0] = o.oid;
	make_commit(&a, 20, p, 1, "a");
	make_commit(&side, 20, NULL, 0, "side root, on the remote");
	p[0] = side.oid;
	make_commit(&b, 20, p, 1, "b");
	p[0] = b.oid;
	p[1] = a.oid;
	make_commit(&m, 20, p, 2, "merge, old on the second parent");
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, m.text, m.len);
	pack_obj(&pk, 1, b.text, b.len);
	pack_obj(&pk, 1, a.text, a.len);
	pack_end(&pk);
	CHECK(prove1(&pk, o.oid, m.oid, &rc, NULL) == GITPACK_PROVEN,
	    "merge: second parent");
	CHECK(prove1(&pk, side.oid, m.oid, &rc, NULL) == GITPACK_PROVEN,
	    "merge: first parent");
	free(pk.b.b);
}

static void
pack_deltas(void)
{
	struct com		c[6];
	struct pack		pk;
	struct buf		d1, d2, d3;
	struct gitpack_stats	st;
	size_t			o4;
	int			rc;

	chain(c, 6, 20, "delta");
	/* OFS_DELTA against an earlier commit */
	pack_begin(&pk, 20);
	o4 = pack_obj(&pk, 1, c[5].text, c[5].len);
	make_delta(&d1, c[5].text, c[5].len, c[4].text, c[4].len);
	pack_ofs(&pk, o4, d1.b, d1.n);
	pack_end(&pk);
	CHECK(prove1(&pk, c[3].oid, c[5].oid, &rc, &st) == GITPACK_PROVEN &&
	    rc == 0 && st.delta_commits == 1, "ofs delta: rc %d deltas %zu",
	    rc, st.delta_commits);
	free(pk.b.b);

	/* REF_DELTAs before their bases, and a chain of them: c3 from c4
	 * (later), c4 from c5 (later), c2 an OFS_DELTA from the pending c4 */
	make_delta(&d2, c[4].text, c[4].len, c[3].text, c[3].len);
	pack_begin(&pk, 20);
	pack_ref(&pk, c[4].oid, d2.b, d2.n);		/* c3 from c4 */
	o4 = pack_ref(&pk, c[5].oid, d1.b, d1.n);	/* c4 from c5 */
	make_delta(&d3, c[4].text, c[4].len, c[2].text, c[2].len);
	pack_ofs(&pk, o4, d3.b, d3.n);			/* c2 from c4 */
	pack_obj(&pk, 1, c[5].text, c[5].len);
	pack_end(&pk);
	CHECK(prove1(&pk, c[1].oid, c[5].oid, &rc, &st) == GITPACK_PROVEN &&
	    rc == 0 && st.delta_commits == 3, "ref chain: rc %d deltas %zu",
	    rc, st.delta_commits);
	free(pk.b.b);
	free(d1.b);
	free(d2.b);
	free(d3.b);
}

/* Only objects of type commit (or deltas whose chain starts at one) are
 * commits: a blob holding a commit's bytes proves nothing. */
static void
pack_not_commits(void)
{
	struct com	c[4];
	struct pack	pk;
	struct buf	d;
	size_t		ob;
	char		junk[64];
	int		rc;

	chain(c, 4, 20, "typed");
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, c[3].text, c[3].len);
	pack_obj(&pk, 3, c[2].text, c[2].len);		/* c2 as a blob */
	pack_obj(&pk, 4, c[2].text, c[2].len);		/* and a tag */
	pack_end(&pk);
	CHECK(prove1(&pk, c[1].oid, c[3].oid, &rc, NULL) == GITPACK_UNPROVEN,
	    "blob holding a commit");
	free(pk.b.b);

	memset(junk, 'j', sizeof junk);
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, c[3].text, c[3].len);
	ob = pack_obj(&pk, 3, junk, sizeof junk);
	make_delta(&d, junk, sizeof junk, c[2].text, c[2].len);
	pack_ofs(&pk, ob, d.b, d.n);			/* blob -> "c2" */
	pack_end(&pk);
	CHECK(prove1(&pk, c[1].oid, c[3].oid, &rc, NULL) == GITPACK_UNPROVEN,
	    "delta against a blob");
	free(pk.b.b);
	free(d.b);
}

/* git reads parents only right after the tree line. */
/* tmpl with each '@' replaced by hex (at most n bytes of it). */
static int
subst(char *out, size_t outlen, const char *tmpl, const char *hex, size_t n)
{
	size_t	o = 0;

	for (; *tmpl != '\0' && o + 1 < outlen; tmpl++) {
		if (*tmpl != '@') {
			out[o++] = *tmpl;
			continue;
		}
		for (size_t i = 0; i < n && hex[i] != '\0' && o + 1 < outlen;
		    i++)
			out[o++] = hex[i];
	}
	out[o] = '\0';
	return (int)o;
}

/* git reads parents only right after the tree line. */
static void
pack_parent_parsing(void)
{
	static const struct {
		const char	*tmpl;
		size_t		 hexlen;
	} bad[] = {
		{ "tree " TREE1 "\nauthor A <a@b> 1 +0000\nparent @\n\nm\n",
		    40 },
		{ "tree " TREE1 "\nparent @ \n\nm\n", 40 },
		{ "tree " TREE1 "\nparent @\n\nm\n", 39 },
		{ "tree " TREE1 "x\nparent @\n\nm\n", 40 },
		{ "parent @\ntree " TREE1 "\n\nm\n", 40 },
		{ "tree  " TREE1 "\nparent @\n\nm\n", 40 },
		{ "tree " TREE1 "\nparent @", 40 },	/* no LF, no room */
		{ "tree " TREE1 "\nparent " TREE1 "\nparent @Z\n", 40 },
		{ "tree " TREE1 "\nparent @\nparent xyz" TREE1 "\n\n", 40 },
	};
	struct com	o;
	struct pack	pk;
	char		text[512], up[41];
	uint8_t		oid[20];
	int		rc, n;

	make_commit(&o, 20, NULL, 0, "old");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		n = subst(text, sizeof text, bad[i].tmpl, o.hex,
		    bad[i].hexlen);
		hash_obj(20, "commit", text, (size_t)n, oid);
		pack_begin(&pk, 20);
		pack_obj(&pk, 1, text, (size_t)n);
		pack_end(&pk);
		CHECK(prove1(&pk, o.oid, oid, &rc, NULL) != GITPACK_PROVEN,
		    "bad parent form %zu proved", i);
		free(pk.b.b);
	}
	/* upper-case hex is read as git reads it */
	for (size_t i = 0; i < 40; i++)
		up[i] = o.hex[i] >= 'a' ? (char)(o.hex[i] - 32) : o.hex[i];
	up[40] = '\0';
	n = subst(text, sizeof text, "tree " TREE1 "\nparent @\n\nm\n", up,
	    40);
	hash_obj(20, "commit", text, (size_t)n, oid);
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, text, (size_t)n);
	pack_end(&pk);
	CHECK(prove1(&pk, o.oid, oid, &rc, NULL) == GITPACK_PROVEN,
	    "upper-case parent");
	free(pk.b.b);
}

static void
pack_corrupt(void)
{
	struct com		c[3];
	struct pack		pk;
	struct buf		d;
	struct gitpack_stats	st;
	size_t			o;
	uint8_t			*copy;
	int			rc;

	chain(c, 3, 20, "corrupt");

	/* header */
	CHECK(gitpack_prove((const uint8_t *)"PACK\0\0\0\4\0\0\0\0", 12, 20,
	    NULL, 0, NULL, NULL, NULL) == GITPACK_E_HEADER, "version 4");
	CHECK(gitpack_prove((const uint8_t *)"KCAP\0\0\0\2\0\0\0\0", 12, 20,
	    NULL, 0, NULL, NULL, NULL) == GITPACK_E_HEADER, "magic");
	CHECK(gitpack_prove((const uint8_t *)"PAC", 3, 20, NULL, 0, NULL,
	    NULL, NULL) == GITPACK_E_TRUNCATED, "short");
	CHECK(gitpack_prove((const uint8_t *)"", 0, 20, NULL, 0, NULL,
	    NULL, NULL) == GITPACK_E_TRUNCATED, "empty");
	CHECK(gitpack_prove((const uint8_t *)"PACK\0\0\0\2\0\0\0\0", 12, 21,
	    NULL, 0, NULL, NULL, NULL) == GITPACK_E_ARG, "oidlen");

	/* an empty pack is fine */
	pack_begin(&pk, 20);
	pack_end(&pk);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, &st) ==
	    0 && st.declared == 0, "empty pack");
	CHECK(prove1(&pk, c[0].oid, c[1].oid, &rc, NULL) == GITPACK_MISSING,
	    "empty pack: missing");
	/* trailer too long or short */
	put(&pk.b, "x", 1);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) ==
	    GITPACK_E_TRAILER, "trailer");
	pk.b.n -= 2;
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) ==
	    GITPACK_E_TRUNCATED, "short trailer");
	free(pk.b.b);

	/* declared size differs from the stream */
	pack_begin(&pk, 20);
	obj_header(&pk.b, 1, c[2].len + 1);
	put_zlib(&pk.b, c[2].text, c[2].len);
	pk.count++;
	pack_end(&pk);
	CHECK(prove1(&pk, c[1].oid, c[2].oid, &rc, NULL) == GITPACK_UNPROVEN &&
	    rc == GITPACK_E_ZLIB, "size mismatch: %d", rc);
	free(pk.b.b);
	pack_begin(&pk, 20);
	obj_header(&pk.b, 3, 3);
	put_zlib(&pk.b, "abcd", 4);
	pk.count++;
	pack_end(&pk);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) ==
	    GITPACK_E_ZLIB, "longer stream");
	free(pk.b.b);

	/* type 5, type 0 */
	for (int t = 0; t <= 5; t += 5) {
		pack_begin(&pk, 20);
		obj_header(&pk.b, t, 1);
		put_zlib(&pk.b, "a", 1);
		pk.count++;
		pack_end(&pk);
		CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL,
		    NULL) == GITPACK_E_OBJECT, "type %d", t);
		free(pk.b.b);
	}
	/* a size over 64 bits */
	pack_begin(&pk, 20);
	put(&pk.b, "\x9f\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 11);
	pk.count++;
	pack_end(&pk);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) ==
	    GITPACK_E_OBJECT, "size overflow");
	free(pk.b.b);

	/* truncated inside a stream, and fewer objects than declared */
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pk.count++;
	pack_end(&pk);
	copy = malloc(pk.b.n);
	memcpy(copy, pk.b.b, pk.b.n);
	CHECK(gitpack_prove(copy, pk.b.n - 20 - 5, 20, NULL, 0, NULL, NULL,
	    NULL) == GITPACK_E_TRUNCATED, "truncated stream");
	CHECK(gitpack_prove(copy, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) !=
	    0, "missing object");
	free(copy);
	free(pk.b.b);

	/* OFS_DELTA offsets: zero, beyond the start */
	pack_begin(&pk, 20);
	o = pack_obj(&pk, 1, c[2].text, c[2].len);
	make_delta(&d, c[2].text, c[2].len, c[1].text, c[1].len);
	obj_header(&pk.b, 6, d.n);
	put(&pk.b, "\x7f", 1);				/* 127 back */
	put_zlib(&pk.b, d.b, d.n);
	pk.count++;
	pack_end(&pk);
	CHECK(prove1(&pk, c[0].oid, c[2].oid, &rc, NULL) != GITPACK_PROVEN,
	    "ofs to nowhere");
	free(pk.b.b);
	pack_begin(&pk, 20);
	obj_header(&pk.b, 6, d.n);
	put(&pk.b, "\x7f", 1);				/* before the header */
	put_zlib(&pk.b, d.b, d.n);
	pk.count++;
	pack_end(&pk);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) ==
	    GITPACK_E_OBJECT, "ofs before the pack");
	free(pk.b.b);
	(void)o;

	/* a delta that does not apply: source size, copy out of range,
	 * reserved opcode, short result */
	{
		static const uint8_t	bad[][12] = {
			{ 5, 3, 3, 'a', 'b', 'c' },
			{ 0, 3, 0x91, 0, 3 },
			{ 0, 3, 0 },
			{ 0, 4, 3, 'a', 'b', 'c' },
			{ 0, 2, 3, 'a', 'b', 'c' },
			{ 0, 3, 0x91 },
		};
		static const size_t	blen[] = { 6, 5, 3, 6, 6, 3 };

		for (size_t i = 0; i < sizeof blen / sizeof blen[0]; i++) {
			uint8_t b[12];

			memcpy(b, bad[i], blen[i]);
			if (b[0] == 0)
				b[0] = (uint8_t)c[2].len;	/* one byte */
			if (c[2].len > 127)
				continue;
			pack_begin(&pk, 20);
			o = pack_obj(&pk, 1, c[2].text, c[2].len);
			pack_ofs(&pk, o, b, blen[i]);
			pack_end(&pk);
			CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL,
			    NULL, NULL) == GITPACK_E_DELTA, "bad delta %zu",
			    i);
			free(pk.b.b);
		}
	}
	free(d.b);
}

static void
pack_early_and_errors(void)
{
	struct com		c[3];
	struct pack		pk;
	struct gitpack_stats	st;
	int			rc;

	chain(c, 3, 20, "early");
	/* proven before the corruption: the proof stands */
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pack_obj(&pk, 2, "tree", 4);
	put(&pk.b, "\x35garbage-not-zlib", 17);
	pk.count++;
	pack_end(&pk);
	CHECK(prove1(&pk, c[1].oid, c[2].oid, &rc, &st) == GITPACK_PROVEN &&
	    rc == 0 && st.early && st.objects == 2, "early: rc %d objects %u",
	    rc, st.objects);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, NULL, NULL, NULL) ==
	    GITPACK_E_ZLIB, "no goals: whole walk");
	free(pk.b.b);
	/* corruption first: nothing proven */
	pack_begin(&pk, 20);
	put(&pk.b, "\x35garbage-not-zlib", 17);
	pk.count++;
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pack_end(&pk);
	CHECK(prove1(&pk, c[1].oid, c[2].oid, &rc, &st) == GITPACK_UNPROVEN &&
	    rc == GITPACK_E_ZLIB, "corrupt first");
	free(pk.b.b);
}

static void
pack_bounds(void)
{
	struct com	o;
	struct pack	pk;
	struct buf	b;
	uint8_t		oid[20];
	int		rc;

	/* a commit over GITPACK_COMMIT_MAX is not followed */
	make_commit(&o, 20, NULL, 0, "old");
	memset(&b, 0, sizeof b);
	putf(&b, "tree " TREE1 "\nparent %s\n\n", o.hex);
	while (b.n <= GITPACK_COMMIT_MAX)
		put(&b, "0123456789abcdef0123456789abcdef", 32);
	hash_obj(20, "commit", b.b, b.n, oid);
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, b.b, b.n);
	pack_end(&pk);
	CHECK(prove1(&pk, o.oid, oid, &rc, NULL) == GITPACK_MISSING &&
	    rc == 0, "huge commit: %d", rc);
	free(pk.b.b);
	free(b.b);
}

static void
commit_seen(void *arg, const uint8_t *oid, const uint8_t *body, size_t len)
{
	size_t	*n = arg;
	uint8_t	 check[20];

	hash_obj(20, "commit", body, len, check);
	CHECK(memcmp(check, oid, 20) == 0, "callback id");
	(*n)++;
}

static void
pack_callback_and_duplicates(void)
{
	struct com		c[3];
	struct pack		pk;
	struct gitpack_stats	st;
	size_t			n = 0;

	chain(c, 3, 20, "dup");
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pack_obj(&pk, 1, c[1].text, c[1].len);
	pack_end(&pk);
	CHECK(gitpack_prove(pk.b.b, pk.b.n, 20, NULL, 0, commit_seen, &n,
	    &st) == 0 && n == 2 && st.commits == 2 && st.objects == 3,
	    "duplicates: %zu", n);
	free(pk.b.b);
}

/* --- options ------------------------------------------------------------- */

static void
repo_options(void)
{
	static const char *const good[] = {
		"github.com/acme/widget", "github.com/acme/*",
		"github.com:8443/acme/x", "[::1]:8080/a/b", "127.0.0.1/a",
		"ghe.corp/git/acme/widget.git", "GitHub.COM/acme/x/",
		"github.com/acme/w?dget-*",
	};
	static const char *const bad[] = {
		"", "github.com", "github.com/", "https://github.com/a/b",
		"*.github.com/a/b", "github.com/a//b", "github.com/a/../b",
		"git hub/a", "github.com:0/a", "github.com:99999/a", "[::1/a",
		"github.com/a%20b", "user@github.com/a/b", "github.com/./a",
		"gith?b.com/a",
	};
	struct gitguard	*g = gitguard_new();
	char		 err[256];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		CHECK(gitguard_add_repo(g, good[i], err, sizeof err) == 0,
		    "good '%s': %s", good[i], err);
	CHECK(gitguard_count(g) == sizeof good / sizeof good[0], "count");
	CHECK_STR(gitguard_repo(g, 2), "github.com:8443/acme/x");
	CHECK_STR(gitguard_host(g, 2), "github.com:8443");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(gitguard_add_repo(g, bad[i], err, sizeof err) == -1,
		    "bad '%s' accepted", bad[i]);
		CHECK(strstr(err, "--git-repo") != NULL &&
		    strstr(err, bad[i]) != NULL && strchr(err, '\n') == NULL,
		    "error for '%s': %s", bad[i], err);
	}
	CHECK(gitguard_count(g) == sizeof good / sizeof good[0], "count");
	gitguard_free(g);
	gitguard_free(NULL);
}

static void
glob_options(void)
{
	static const char *const good[] = { "main", "sandbox/*", "rel-?",
	    "refs/tags/v*", "*", "a.b_c@d" };
	static const char *const bad[] = { "", "a b", "a~b", "[x]", "/x",
	    "x/", "a:b", "a^", "a\\b", "tab\there" };
	struct gitguard	*g = gitguard_new();
	char		 err[256];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK(gitguard_add_protect(g, good[i], err, sizeof err) == 0,
		    "protect '%s': %s", good[i], err);
		CHECK(gitguard_add_push_prefix(g, good[i], err, sizeof err) ==
		    0, "prefix '%s': %s", good[i], err);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		CHECK(gitguard_add_protect(g, bad[i], err, sizeof err) == -1 &&
		    strstr(err, "--git-protect") != NULL, "protect '%s': %s",
		    bad[i], err);
		err[0] = '\0';
		CHECK(gitguard_add_push_prefix(g, bad[i], err, sizeof err) ==
		    -1 && strstr(err, "--git-push-prefix") != NULL,
		    "prefix '%s': %s", bad[i], err);
	}
	gitguard_free(g);
}

/* --- requests ------------------------------------------------------------ */

static struct gitguard *
guard(const char *const *repos)
{
	struct gitguard	*g = gitguard_new();
	char		 err[256];

	for (; *repos != NULL; repos++)
		if (gitguard_add_repo(g, *repos, err, sizeof err) != 0)
			fprintf(stderr, "guard: %s\n", err);
	return g;
}

static void
dest(const char *authority, uint16_t defport, struct dest *d)
{
	if (addr_parse_authority(authority, strlen(authority), defport, d) !=
	    0)
		fprintf(stderr, "dest %s\n", authority);
}

static void
request_table(void)
{
	static const char *const repos[] = { "github.com/acme/*",
	    "ghe.corp:8443/git/team/widget", "[::1]/x/y", NULL };
	static const struct {
		const char	*method;
		const char	*host;
		const char	*target;
		int		 action;
		const char	*rule;
		const char	*in_reason;
	} t[] = {
		{ "GET", "github.com", "/acme/widget.git/info/refs?service="
		    "git-upload-pack", GITGUARD_ALLOW, NULL, NULL },
		{ "GET", "github.com", "/acme/widget/info/refs?service="
		    "git-receive-pack", GITGUARD_ALLOW, NULL, NULL },
		{ "HEAD", "github.com", "/acme/widget/info/refs",
		    GITGUARD_ALLOW, NULL, NULL },
		{ "POST", "github.com", "/acme/widget.git/git-upload-pack",
		    GITGUARD_ALLOW, NULL, NULL },
		{ "POST", "github.com", "/acme/widget.git/git-receive-pack",
		    GITGUARD_NEED_BODY, NULL, NULL },
		{ "post", "github.com:443", "/acme/widget/git-receive-pack",
		    GITGUARD_NEED_BODY, NULL, NULL },
		{ "GET", "github.com", "/evil/widget.git/info/refs?service="
		    "git-upload-pack", GITGUARD_REFUSE, "git-repo",
		    "github.com/evil/widget.git is not allowed" },
		{ "POST", "github.com", "/evil/w/git-receive-pack",
		    GITGUARD_REFUSE, "git-repo", "github.com/evil/w" },
		{ "GET", "github.com", "/acme/widget/../../evil/x/info/refs",
		    GITGUARD_REFUSE, "git-repo", "github.com/evil/x" },
		{ "GET", "github.com", "/acme/widget/%2e%2e/%2E%2e/evil/x/"
		    "info/refs", GITGUARD_REFUSE, "git-repo", "evil/x" },
		{ "GET", "github.com", "/acme/widget/info%2frefs",
		    GITGUARD_ALLOW, NULL, NULL },
		{ "GET", "github.com", "/acme//widget/info/refs",
		    GITGUARD_ALLOW, NULL, NULL },
		{ "GET", "github.com", "/acme/x/y/info/refs", GITGUARD_REFUSE,
		    "git-repo", NULL },
		{ "GET", "github.com", "/Acme/widget/info/refs",
		    GITGUARD_REFUSE, "git-repo", NULL },
		{ "GET", "github.com", "/info/refs", GITGUARD_NONE, NULL,
		    NULL },
		{ "GET", "github.com", "/acme/widget", GITGUARD_NONE, NULL,
		    NULL },
		{ "GET", "github.com", "/acme/widget/issues?q=1",
		    GITGUARD_NONE, NULL, NULL },
		{ "GET", "github.com", "/acme/widget/blob/main/HEAD",
		    GITGUARD_NONE, NULL, NULL },
		{ "GET", "github.com", "/acme/w/tree/refs/heads/x",
		    GITGUARD_NONE, NULL, NULL },
		{ "PUT", "github.com", "/acme/widget.git/HEAD",
		    GITGUARD_REFUSE, "git-webdav", NULL },
		{ "DELETE", "github.com", "/acme/widget.git/refs/heads/main",
		    GITGUARD_REFUSE, "git-webdav", NULL },
		{ "PUT", "github.com", "/acme/widget.git/info/refs",
		    GITGUARD_REFUSE, "git-webdav", NULL },
		{ "PROPFIND", "github.com", "/acme/widget.git/",
		    GITGUARD_REFUSE, "git-webdav", "WebDAV" },
		{ "lock", "github.com", "/x", GITGUARD_REFUSE, "git-webdav",
		    NULL },
		{ "PATCH", "github.com", "/api/v3/repos/o/r/git/refs/heads/"
		    "main", GITGUARD_NONE, NULL, NULL },
		{ "GET", "github.com", "/acme/widget.git/git-receive-pack",
		    GITGUARD_REFUSE, "git-repo", "not a git request" },
		{ "GET", "github.com", "/acme/widget.git/objects/ab/"
		    "0123456789abcdef0123456789abcdef012345", GITGUARD_ALLOW,
		    NULL, NULL },
		{ "GET", "github.com", "/evil/x/objects/info/packs",
		    GITGUARD_REFUSE, "git-repo", NULL },
		{ "GET", "github.com", "/evil/x/objects/pack/pack-"
		    "0123456789abcdef0123456789abcdef01234567.pack",
		    GITGUARD_REFUSE, "git-repo", NULL },
		{ "GET", "github.com", "/evil/x/objects/pack/pack-"
		    "0123456789abcdef0123456789abcdef01234567.zip",
		    GITGUARD_NONE, NULL, NULL },
		{ "POST", "github.com", "/acme/widget.git/info/lfs/objects/"
		    "batch", GITGUARD_ALLOW, NULL, NULL },
		{ "POST", "github.com", "/evil/x.git/info/lfs/objects/batch",
		    GITGUARD_REFUSE, "git-repo", NULL },
		{ "GET", "github.com", "/acme/%zz/info/refs", GITGUARD_REFUSE,
		    "git-repo", "decoded" },
		{ "GET", "github.com", "/acme/w%00/info/refs", GITGUARD_REFUSE,
		    "git-repo", NULL },
		{ "GET", "api.github.com", "/evil/x/info/refs", GITGUARD_NONE,
		    NULL, NULL },
		{ "GET", "ghe.corp:8443", "/git/team/widget.git/info/refs",
		    GITGUARD_ALLOW, NULL, NULL },
		{ "GET", "ghe.corp:8443", "/team/widget/info/refs",
		    GITGUARD_REFUSE, "git-repo", NULL },
		{ "GET", "ghe.corp:8443", "/x/git/team/widget/info/refs",
		    GITGUARD_REFUSE, "git-repo", NULL },
		/* another port of a guarded name (plain HTTP): no
		 * repository is allowed there */
		{ "GET", "ghe.corp", "/evil/x/info/refs", GITGUARD_REFUSE,
		    "git-repo", NULL },
		{ "GET", "ghe.corp:80", "/git/team/widget.git/info/refs",
		    GITGUARD_REFUSE, "git-repo", NULL },
		{ "GET", "ghe.corp:80", "/git/team/widget/issues",
		    GITGUARD_NONE, NULL, NULL },
		{ "GET", "[0:0::1]:9", "/x/y.git/info/refs", GITGUARD_ALLOW,
		    NULL, NULL },
		{ "GET", "GITHUB.com.", "/acme/w/info/refs", GITGUARD_ALLOW,
		    NULL, NULL },
	};
	struct gitguard		*g = guard(repos);
	struct gitguard_verdict	 v;
	struct dest		 d;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		dest(t[i].host, 443, &d);
		gitguard_request(g, t[i].method, strlen(t[i].method), &d,
		    t[i].target, strlen(t[i].target), &v);
		CHECK((int)v.action == t[i].action, "%s %s %s: action %d, "
		    "want %d (%s)", t[i].method, t[i].host, t[i].target,
		    v.action, t[i].action, v.reason);
		if (t[i].rule != NULL)
			CHECK(v.rule != NULL && strcmp(v.rule, t[i].rule) == 0,
			    "%s %s: rule %s", t[i].method, t[i].target,
			    v.rule ? v.rule : "(null)");
		if (t[i].in_reason != NULL)
			CHECK(strstr(v.reason, t[i].in_reason) != NULL,
			    "%s: reason '%s'", t[i].target, v.reason);
		if (v.action == GITGUARD_REFUSE) {
			CHECK(v.status == 403 && strcmp(v.content_type,
			    "text/plain") == 0 && v.bodylen == strlen(v.reason)
			    + 1 && memcmp(v.body, v.reason, v.bodylen - 1) ==
			    0 && v.body[v.bodylen - 1] == '\n',
			    "%s: refusal body", t[i].target);
			CHECK(strncmp(v.reason, "egress-run: ", 12) == 0 &&
			    strchr(v.reason, '\n') == NULL, "reason form");
		}
		gitguard_verdict_clear(&v);
	}
	/* no port: every port but ssh's and git://'s, which are never
	 * HTTP (their tunnels are refused, not intercepted) */
	dest("github.com:8080", 0, &d);
	CHECK(gitguard_names_host(g, &d), "port any");
	dest("github.com:22", 0, &d);
	CHECK(!gitguard_names_host(g, &d) && gitguard_names_name(g, &d),
	    "name, port 22");
	dest("github.com:9418", 0, &d);
	CHECK(!gitguard_names_host(g, &d) && gitguard_names_name(g, &d),
	    "name, port 9418");
	dest("ghe.corp:22", 0, &d);
	CHECK(!gitguard_names_host(g, &d) && gitguard_names_name(g, &d),
	    "ghe port 22");
	dest("example.com:443", 0, &d);
	CHECK(!gitguard_names_host(g, &d) && !gitguard_names_name(g, &d),
	    "unguarded");
	CHECK(!gitguard_names_host(NULL, &d), "no guard");
	gitguard_free(g);
}

/* --- pushes -------------------------------------------------------------- */

#define ZERO40	"0000000000000000000000000000000000000000"
#define ZERO64	ZERO40 "000000000000000000000000"

struct pushcmd {
	const char	*old;
	const char	*new;
	const char	*ref;
};

static void
pkt(struct buf *b, const char *s, size_t n)
{
	putf(b, "%04zx", n + 4);
	put(b, s, n);
}

/* A receive-pack body: commands, caps on the first, flush, pack. */
static void
push_body(struct buf *b, const struct pushcmd *c, size_t n,
    const char *caps, const struct pack *pk)
{
	char	line[1024];
	int	k;

	memset(b, 0, sizeof *b);
	for (size_t i = 0; i < n; i++) {
		k = snprintf(line, sizeof line, "%s %s %s", c[i].old,
		    c[i].new, c[i].ref);
		if (i == 0 && caps != NULL) {
			line[k] = '\0';
			k += snprintf(line + k + 1, sizeof line - (size_t)k - 1,
			    "%s", caps) + 1;
		}
		line[k++] = '\n';
		pkt(b, line, (size_t)k);
	}
	put(b, "0000", 4);
	if (pk != NULL)
		put(b, pk->b.b, pk->b.n);
}

/* The plain report inside (side-band demuxed), as text lines. */
static void
report_text(const struct gitguard_verdict *v, char *out, size_t outlen)
{
	struct buf		 inner;
	enum pktline_kind	 kind;
	const uint8_t		*pl;
	size_t			 o, plen, w = 0;
	ssize_t			 r;
	bool			 band;

	memset(&inner, 0, sizeof inner);
	out[0] = '\0';
	if (v->body == NULL)
		return;
	r = pktline_next(v->body, v->bodylen, &kind, &pl, &plen);
	band = r > 0 && kind == PKTLINE_DATA && plen > 0 && (pl[0] == 1 ||
	    pl[0] == 2);
	for (o = 0; o < v->bodylen; o += (size_t)r) {
		r = pktline_next(v->body + o, v->bodylen - o, &kind, &pl,
		    &plen);
		if (r <= 0)
			return;
		if (kind != PKTLINE_DATA)
			continue;
		if (!band)
			put(&inner, v->body + o, (size_t)r);
		else if (pl[0] == 1)
			put(&inner, pl + 1, plen - 1);
	}
	for (o = 0; o < inner.n; o += (size_t)r) {
		r = pktline_next(inner.b + o, inner.n - o, &kind, &pl, &plen);
		if (r <= 0 || kind != PKTLINE_DATA)
			break;
		if (w + plen + 1 < outlen) {
			memcpy(out + w, pl, plen);
			w += plen;
		}
	}
	out[w] = '\0';
	free(inner.b);
}

struct pushcase {
	struct gitguard		*g;
	struct dest		 d;
	struct gitguard_verdict	 v;
	char			 report[8192];
};

static void
run_push(struct pushcase *pc, const struct pushcmd *c, size_t n,
    const char *caps, const struct pack *pk, unsigned flags)
{
	struct buf	b;

	push_body(&b, c, n, caps, pk);
	gitguard_verdict_clear(&pc->v);
	gitguard_push(pc->g, &pc->d, "/acme/widget.git/git-receive-pack", 33,
	    b.b, b.n, flags, &pc->v);
	report_text(&pc->v, pc->report, sizeof pc->report);
	free(b.b);
}

#define CAPS	"report-status side-band-64k agent=git/2.39.5"

static void
push_rules(void)
{
	static const char *const repos[] = { "github.com/acme/*", NULL };
	struct pushcase	 pc;
	struct com	 c[4];
	struct pack	 pk, empty;
	char		 err[256];
	struct pushcmd	 cmd[3];

	memset(&pc, 0, sizeof pc);
	pc.g = guard(repos);
	dest("github.com", 443, &pc.d);
	chain(c, 4, 20, "push");
	pack_begin(&pk, 20);
	pack_obj(&pk, 1, c[3].text, c[3].len);
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pack_end(&pk);
	pack_begin(&empty, 20);
	pack_end(&empty);

	/* fast-forward of a branch */
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "ff: %s", pc.v.reason);

	/* creation */
	cmd[0] = (struct pushcmd){ ZERO40, c[3].hex, "refs/heads/new" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "create: %s", pc.v.reason);

	/* not proven: old beyond the pack */
	cmd[0] = (struct pushcmd){ c[0].hex, c[3].hex, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE && pc.v.status == 200 &&
	    strcmp(pc.v.content_type, "application/x-git-receive-pack-result")
	    == 0, "unproven: %d", pc.v.action);
	CHECK(strstr(pc.report, "unpack ok\nng refs/heads/feature egress-run: "
	    "force-push blocked: cannot prove fast-forward") != NULL,
	    "unproven report: %s", pc.report);
	CHECK_STR(pc.v.rule, "git-force");
	CHECK(strstr(pc.v.reason, "github.com/acme/widget.git refused: "
	    "refs/heads/feature: force-push blocked") != NULL, "reason %s",
	    pc.v.reason);
	CHECK(memmem(pc.v.body, pc.v.bodylen, "\002egress-run: push refused",
	    24) != NULL, "side-band message");

	/* new not in the pack (already on the remote) */
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, &empty, 0);
	CHECK(strstr(pc.report, "is not in the pushed pack") != NULL, "%s",
	    pc.report);
	run_push(&pc, cmd, 1, CAPS, NULL, 0);
	CHECK(strstr(pc.report, "no pack was sent") != NULL, "%s", pc.report);

	/* protected, whatever the case, even a fast-forward */
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/main" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "ng refs/heads/main egress-run: protected "
	    "branch (--git-protect main)") != NULL, "%s", pc.report);
	CHECK_STR(pc.v.rule, "git-protect main");
	cmd[0].ref = "refs/heads/MASTER";
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "ng refs/heads/MASTER egress-run: protected")
	    != NULL, "%s", pc.report);
	cmd[0] = (struct pushcmd){ ZERO40, c[3].hex, "refs/heads/main" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE, "creating main");
	/* refs/tags/main is not the branch */
	cmd[0] = (struct pushcmd){ ZERO40, c[3].hex, "refs/tags/main" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "tag named main");

	/* whole push: one refused, all refused */
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/feature" };
	cmd[1] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/main" };
	run_push(&pc, cmd, 2, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "ng refs/heads/feature egress-run: refused "
	    "with the rest of the push (atomic)\nng refs/heads/main egress-"
	    "run: protected") != NULL, "whole: %s", pc.report);
	CHECK(strstr(pc.v.reason, "refs/heads/main: protected") != NULL,
	    "whole reason %s", pc.v.reason);

	/* deletion, tags */
	cmd[0] = (struct pushcmd){ c[1].hex, ZERO40, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, NULL, 0);
	CHECK(strstr(pc.report, "ng refs/heads/feature egress-run: deleting "
	    "a branch is blocked (--git-allow-delete)") != NULL, "%s",
	    pc.report);
	CHECK_STR(pc.v.rule, "git-delete");
	cmd[0] = (struct pushcmd){ c[1].hex, ZERO40, "refs/tags/v1" };
	run_push(&pc, cmd, 1, CAPS, NULL, 0);
	CHECK(strstr(pc.report, "deleting a tag is blocked") != NULL, "%s",
	    pc.report);
	cmd[0] = (struct pushcmd){ ZERO40, c[3].hex, "refs/tags/v1" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "tag creation");
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/tags/v1" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "moving a tag is blocked") != NULL, "%s",
	    pc.report);

	/* ref names */
	cmd[0] = (struct pushcmd){ ZERO40, c[3].hex, "refs/heads/a..b" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "invalid ref name") != NULL, "%s", pc.report);
	{
		static const char *const badrefs[] = { "HEAD", "refs/heads/",
		    "refs/heads/x.lock", "refs/heads/.x", "refs/heads/x/",
		    "refs/heads//x", "refs/heads/a@{b", "refs/heads/x.",
		    "refs/heads/a\\b", "refs/heads/a:b", "refs/heads/a*",
		    "refs/heads/a?", "refs/heads/a[b", "refs/heads/a~1",
		    "refs/heads/a^", "refs" };
		for (size_t i = 0; i < sizeof badrefs / sizeof badrefs[0];
		    i++) {
			cmd[0] = (struct pushcmd){ ZERO40, c[3].hex,
			    badrefs[i] };
			run_push(&pc, cmd, 1, CAPS, &pk, 0);
			CHECK(pc.v.action == GITGUARD_REFUSE, "ref '%s'",
			    badrefs[i]);
		}
	}

	/* no report-status: text */
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/main" };
	run_push(&pc, cmd, 1, "side-band-64k", &pk, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE && pc.v.status == 403 &&
	    strcmp(pc.v.content_type, "text/plain") == 0, "no report-status");
	/* without side-band: plain report */
	run_push(&pc, cmd, 1, "report-status", &pk, 0);
	CHECK(pc.v.status == 200 && memcmp(pc.v.body + 4, "unpack ok\n", 10)
	    == 0, "plain report");
	/* side-band (1000) */
	run_push(&pc, cmd, 1, "report-status side-band", &pk, 0);
	CHECK(pc.v.status == 200 && strstr(pc.report, "ng refs/heads/main") !=
	    NULL, "side-band report");

	/* bodies that cannot be judged */
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, &pk, GITGUARD_TRUNCATED);
	CHECK(strstr(pc.report, "ng refs/heads/feature egress-run: push too "
	    "large to inspect (over 256 MiB)") != NULL, "%s", pc.report);
	run_push(&pc, cmd, 1, CAPS, &pk, GITGUARD_ENCODED);
	CHECK(pc.v.action == GITGUARD_REFUSE && pc.v.status == 403 &&
	    strstr(pc.v.reason, "encoded") != NULL, "encoded");
	{
		struct buf	b;
		size_t		k;

		memset(&b, 0, sizeof b);
		put(&b, "00zzjunk", 8);
		gitguard_verdict_clear(&pc.v);
		gitguard_push(pc.g, &pc.d, "/acme/w/git-receive-pack", 24,
		    b.b, b.n, 0, &pc.v);
		CHECK(pc.v.action == GITGUARD_REFUSE && strstr(pc.v.reason,
		    "malformed push") != NULL, "junk: %s", pc.v.reason);
		free(b.b);
		/* commands, then the body ends before the flush */
		push_body(&b, cmd, 1, CAPS, NULL);
		b.n -= 4;
		gitguard_verdict_clear(&pc.v);
		gitguard_push(pc.g, &pc.d, "/acme/w/git-receive-pack", 24,
		    b.b, b.n, 0, &pc.v);
		report_text(&pc.v, pc.report, sizeof pc.report);
		CHECK(strstr(pc.report, "unpack egress-run: malformed push "
		    "(ends early)\nng refs/heads/feature") != NULL, "%s",
		    pc.report);
		free(b.b);
		/* the command section of a push too big to gather: complete
		 * at the flush (at any split), whatever follows */
		push_body(&b, cmd, 1, CAPS, &pk);
		for (k = 0; k < b.n && gitguard_push_head(b.b, k) == 0; k++)
			continue;
		CHECK(k > 4 + 40 + 40 && k < b.n && memcmp(b.b + k - 4,
		    "0000", 4) == 0 && gitguard_push_head(b.b, b.n) == 1,
		    "head at the flush: %zu of %zu", k, b.n);
		CHECK(gitguard_push_head((const uint8_t *)"00zzjunk", 8) ==
		    -1, "head malformed");
		free(b.b);
	}
	/* a flush alone: nothing to judge */
	run_push(&pc, cmd, 0, NULL, NULL, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "empty push");
	/* a push to another repository, or not a push */
	{
		struct buf	b;

		push_body(&b, cmd, 1, CAPS, &pk);
		gitguard_verdict_clear(&pc.v);
		gitguard_push(pc.g, &pc.d, "/evil/w/git-receive-pack", 24,
		    b.b, b.n, 0, &pc.v);
		CHECK(pc.v.action == GITGUARD_REFUSE && strcmp(pc.v.rule,
		    "git-repo") == 0, "other repo");
		gitguard_verdict_clear(&pc.v);
		gitguard_push(pc.g, &pc.d, "/acme/w/info/refs", 17, b.b, b.n,
		    0, &pc.v);
		CHECK(pc.v.action == GITGUARD_REFUSE, "not a push");
		free(b.b);
	}

	/* flags */
	gitguard_allow_delete(pc.g, true);
	cmd[0] = (struct pushcmd){ c[1].hex, ZERO40, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, NULL, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "allow-delete");
	cmd[0].ref = "refs/heads/main";
	run_push(&pc, cmd, 1, CAPS, NULL, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE, "allow-delete, protected");
	gitguard_allow_force(pc.g, true);
	cmd[0] = (struct pushcmd){ c[0].hex, c[3].hex, "refs/heads/feature" };
	run_push(&pc, cmd, 1, CAPS, &empty, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "allow-force");
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/tags/v1" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "allow-force, tag");
	gitguard_allow_force(pc.g, false);

	/* --git-protect replaces the defaults; --git-push-prefix */
	CHECK(gitguard_add_protect(pc.g, "release/*", err, sizeof err) == 0,
	    "protect");
	cmd[0] = (struct pushcmd){ c[1].hex, c[3].hex, "refs/heads/main" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "main no longer protected");
	cmd[0].ref = "refs/heads/release/1.0/fix";
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "(--git-protect release/*)") != NULL, "%s",
	    pc.report);
	CHECK(gitguard_add_push_prefix(pc.g, "sandbox/*", err, sizeof err) ==
	    0 && gitguard_add_push_prefix(pc.g, "refs/tags/bot-*", err,
	    sizeof err) == 0, "prefix");
	cmd[0].ref = "refs/heads/sandbox/a/b";
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "sandbox/a/b: %s", pc.v.reason);
	cmd[0].ref = "refs/heads/Sandbox/a";
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(strstr(pc.report, "only refs matching --git-push-prefix may be "
	    "pushed (sandbox/* refs/tags/bot-*)") != NULL, "%s", pc.report);
	CHECK_STR(pc.v.rule, "git-push-prefix");
	cmd[0] = (struct pushcmd){ ZERO40, c[3].hex, "refs/tags/v2" };
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE, "tag outside the prefix");
	cmd[0].ref = "refs/tags/bot-1";
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "tag inside the prefix");
	cmd[0].ref = "refs/heads/release/x";
	run_push(&pc, cmd, 1, CAPS, &pk, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE, "prefix does not match");

	gitguard_verdict_clear(&pc.v);
	gitguard_free(pc.g);
	free(pk.b.b);
	free(empty.b.b);
}

static void
push_sha256(void)
{
	static const char *const repos[] = { "github.com/acme/widget", NULL };
	struct pushcase	 pc;
	struct com	 c[3];
	struct pack	 pk;
	struct pushcmd	 cmd;

	memset(&pc, 0, sizeof pc);
	pc.g = guard(repos);
	dest("github.com", 443, &pc.d);
	chain(c, 3, 32, "sha256");
	pack_begin(&pk, 32);
	pack_obj(&pk, 1, c[2].text, c[2].len);
	pack_end(&pk);
	cmd = (struct pushcmd){ c[1].hex, c[2].hex, "refs/heads/feature" };
	run_push(&pc, &cmd, 1, CAPS " object-format=sha256", &pk, 0);
	CHECK(pc.v.action == GITGUARD_ALLOW, "sha256 ff: %s", pc.v.reason);
	cmd = (struct pushcmd){ c[0].hex, c[2].hex, "refs/heads/feature" };
	run_push(&pc, &cmd, 1, CAPS " object-format=sha256", &pk, 0);
	CHECK(pc.v.action == GITGUARD_REFUSE, "sha256 unproven");
	cmd = (struct pushcmd){ ZERO64, c[2].hex, "refs/heads/main" };
	run_push(&pc, &cmd, 1, CAPS " object-format=sha256", &pk, 0);
	CHECK(strstr(pc.report, "ng refs/heads/main egress-run: protected") !=
	    NULL, "sha256 report: %s", pc.report);
	gitguard_verdict_clear(&pc.v);
	gitguard_free(pc.g);
	free(pk.b.b);
}

/* --- the child's git configuration --------------------------------------- */

static void
git_env(void)
{
	static const char *const repos[] = { "github.com/acme/*",
	    "github.com/other/x", "ghe.corp:8443/a/b", "[fd00::1]/a/b",
	    NULL };
	struct gitguard	*g = guard(repos);
	struct strlist	 out;
	char		*env1[] = { "PATH=/bin", NULL };
	char		*env2[] = { "GIT_CONFIG_COUNT=2", "HOME=/h", NULL };
	char		*env3[] = { "GIT_CONFIG_COUNT=two", NULL };
	char		*env4[] = { "GIT_CONFIG_COUNT=", NULL };
	char		*env5[] = { "GIT_CONFIG_COUNT=99999999999", NULL };
	char		 err[256];

	memset(&out, 0, sizeof out);
	CHECK(gitguard_git_env(g, env1, &out, err, sizeof err) == 0, "env1");
	CHECK(out.n == 3 * 4 * 2 + 1, "vars: %zu", out.n);
	if (out.n == 25) {
		CHECK_STR(out.v[0], "GIT_CONFIG_KEY_0=url.https://github.com/"
		    ".insteadOf");
		CHECK_STR(out.v[1], "GIT_CONFIG_VALUE_0=git@github.com:");
		CHECK_STR(out.v[3], "GIT_CONFIG_VALUE_1=ssh://git@github.com/");
		CHECK_STR(out.v[5], "GIT_CONFIG_VALUE_2=ssh://git@github.com:"
		    "22/");
		CHECK_STR(out.v[7], "GIT_CONFIG_VALUE_3=ssh://github.com/");
		CHECK_STR(out.v[8], "GIT_CONFIG_KEY_4=url.https://ghe.corp:"
		    "8443/.insteadOf");
		CHECK_STR(out.v[9], "GIT_CONFIG_VALUE_4=git@ghe.corp:");
		CHECK_STR(out.v[16], "GIT_CONFIG_KEY_8=url.https://[fd00::1]/"
		    ".insteadOf");
		CHECK_STR(out.v[17], "GIT_CONFIG_VALUE_8=git@[fd00::1]:");
		CHECK_STR(out.v[24], "GIT_CONFIG_COUNT=12");
	}
	strlist_clear(&out);
	CHECK(gitguard_git_env(g, env2, &out, err, sizeof err) == 0, "env2");
	CHECK(out.n == 25 && strcmp(out.v[0], "GIT_CONFIG_KEY_2=url.https://"
	    "github.com/.insteadOf") == 0 && strcmp(out.v[24],
	    "GIT_CONFIG_COUNT=14") == 0, "after the user's");
	strlist_clear(&out);
	CHECK(gitguard_git_env(g, env4, &out, err, sizeof err) == 0 &&
	    out.n == 25 && strcmp(out.v[24], "GIT_CONFIG_COUNT=12") == 0,
	    "empty count is 0, as git reads it");
	strlist_clear(&out);
	CHECK(gitguard_git_env(g, env3, &out, err, sizeof err) == -1 &&
	    out.n == 0 && strstr(err, "GIT_CONFIG_COUNT") != NULL, "bad");
	CHECK(gitguard_git_env(g, env5, &out, err, sizeof err) == -1 &&
	    out.n == 0, "huge");
	gitguard_free(g);
	g = gitguard_new();
	CHECK(gitguard_git_env(g, env1, &out, err, sizeof err) == 0 &&
	    out.n == 0, "no guarded host");
	gitguard_free(g);
}

/* --- helper modes -------------------------------------------------------- */

static uint8_t *
read_all(FILE *f, size_t *len)
{
	struct buf	b;
	uint8_t		tmp[65536];
	size_t		n;

	memset(&b, 0, sizeof b);
	while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
		put(&b, tmp, n);
	*len = b.n;
	return b.b;
}

/* Guard options up to "--"; returns the index after it, or -1. */
static int
guard_opts(struct gitguard *g, int argc, char **argv, int i)
{
	char	err[256];
	int	r = 0;

	for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
		if (strcmp(argv[i], "--git-allow-delete") == 0)
			gitguard_allow_delete(g, true);
		else if (strcmp(argv[i], "--git-allow-force") == 0)
			gitguard_allow_force(g, true);
		else if (i + 1 < argc && strcmp(argv[i], "--git-repo") == 0)
			r = gitguard_add_repo(g, argv[++i], err, sizeof err);
		else if (i + 1 < argc && strcmp(argv[i], "--git-protect") == 0)
			r = gitguard_add_protect(g, argv[++i], err, sizeof err);
		else if (i + 1 < argc && strcmp(argv[i],
		    "--git-push-prefix") == 0)
			r = gitguard_add_push_prefix(g, argv[++i], err,
			    sizeof err);
		else {
			fprintf(stderr, "unknown option %s\n", argv[i]);
			return -1;
		}
		if (r != 0) {
			fprintf(stderr, "%s\n", err);
			return -1;
		}
	}
	return i < argc ? i + 1 : -1;
}

static int
mode_judge(int argc, char **argv)
{
	struct gitguard		*g = gitguard_new();
	struct gitguard_verdict	 v;
	struct dest		 d;
	uint8_t			*body;
	size_t			 len;
	int			 i;

	if ((i = guard_opts(g, argc, argv, 2)) < 0 || argc - i != 3)
		return 2;
	if (addr_parse_authority(argv[i + 1], strlen(argv[i + 1]), 443, &d) !=
	    0)
		return 2;
	body = read_all(stdin, &len);
	gitguard_request(g, argv[i], strlen(argv[i]), &d, argv[i + 2],
	    strlen(argv[i + 2]), &v);
	if (v.action == GITGUARD_NEED_BODY)
		gitguard_push(g, &d, argv[i + 2], strlen(argv[i + 2]), body,
		    len, len > GITGUARD_BODY_MAX ? GITGUARD_TRUNCATED : 0, &v);
	printf("%d %d %zu %s\n%s\n%s\n", v.action, v.status, v.bodylen,
	    v.content_type ? v.content_type : "-", v.reason,
	    v.rule ? v.rule : "-");
	if (v.bodylen > 0)
		fwrite(v.body, 1, v.bodylen, stdout);
	gitguard_verdict_clear(&v);
	gitguard_free(g);
	free(body);
	return 0;
}

static int
mode_git_env(int argc, char **argv)
{
	struct gitguard	*g = gitguard_new();
	struct strlist	 out;
	char		 err[256];
	int		 i;

	memset(&out, 0, sizeof out);
	if ((i = guard_opts(g, argc, argv, 2)) < 0)
		return 2;
	argv[argc] = NULL;
	if (gitguard_git_env(g, argv + i, &out, err, sizeof err) != 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	for (size_t k = 0; k < out.n; k++)
		printf("%s\n", out.v[k]);
	strlist_clear(&out);
	gitguard_free(g);
	return 0;
}

static int
mode_pack_stats(void)
{
	struct pktline		*p = pktline_new();
	struct pktline_event	 ev;
	struct gitpack_stats	 st;
	uint8_t			*body;
	size_t			 len, off = 0;
	ssize_t			 r;
	int			 rc;

	body = read_all(stdin, &len);
	while (off < len && (r = pktline_step(p, body + off, len - off, &ev)) >
	    0)
		off += (size_t)r;
	rc = gitpack_prove(body + off, len - off, pktline_oid_len(p) / 2,
	    NULL, 0, NULL, NULL, &st);
	printf("rc=%d objects=%u commits=%zu delta_commits=%zu\n", rc,
	    st.objects, st.commits, st.delta_commits);
	pktline_free(p);
	free(body);
	return rc != 0;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--judge") == 0)
		return mode_judge(argc, argv);
	if (argc > 1 && strcmp(argv[1], "--git-env") == 0)
		return mode_git_env(argc, argv);
	if (argc > 1 && strcmp(argv[1], "--pack-stats") == 0)
		return mode_pack_stats();
	RUN(pack_linear);
	RUN(pack_not_ancestor);
	RUN(pack_merge);
	RUN(pack_deltas);
	RUN(pack_not_commits);
	RUN(pack_parent_parsing);
	RUN(pack_corrupt);
	RUN(pack_early_and_errors);
	RUN(pack_bounds);
	RUN(pack_callback_and_duplicates);
	RUN(repo_options);
	RUN(glob_options);
	RUN(request_table);
	RUN(push_rules);
	RUN(push_sha256);
	RUN(git_env);
	return test_done("gitguard");
}
