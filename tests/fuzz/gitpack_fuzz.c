/*
 * The pack walker: the input's first byte picks the ids (odd: SHA-256),
 * the rest is a packfile, walked whole. Invariants: each commit reported
 * hashes ("commit <len>\0" + its bytes) to its id and fits the bound; the
 * counts agree (distinct commits <= objects walked <= objects declared);
 * the walk is the same twice; and, walked again with goals, every commit
 * found proves its own id and -- when its parent lines read as git reads
 * them (checked here independently) -- each of its parents.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "builtin/gitpack.h"
#include "common/util.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define MAXIN	(1 << 20)
#define KEEP	16

struct seen {
	size_t	oidlen;
	size_t	n;		/* commits reported */
	size_t	kept;
	uint8_t	oid[KEEP][32];
	uint8_t	parent[KEEP][4][32];
	size_t	nparents[KEEP];
	uint64_t hash;
};

/* git's parse_commit_buffer(), again: up to 4 parents, or none when any
 * parent line is malformed (-1: more than 4, not checked). */
static int
parents(const uint8_t *b, size_t len, size_t oidlen, uint8_t out[4][32])
{
	size_t	hexsz = 2 * oidlen, tl = hexsz + 5, pl = hexsz + 7, p;
	uint8_t	tmp[32];
	int	n = 0;

	if (len <= tl + 1 || memcmp(b, "tree ", 5) != 0 || b[tl] != '\n' ||
	    !util_unhex(b + 5, oidlen, tmp))
		return 0;
	for (p = tl + 1; p + pl < len && memcmp(b + p, "parent ", 7) == 0;
	    p += pl + 1) {
		if (!util_unhex(b + p + 7, oidlen, tmp) || b[p + pl] != '\n')
			return 0;
		if (n == 4)
			return -1;
		memcpy(out[n++], tmp, oidlen);
	}
	return n;
}

static void
on_commit(void *arg, const uint8_t *oid, const uint8_t *body, size_t len)
{
	struct seen	*s = arg;
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	uint8_t		 check[32];
	char		 hdr[32];
	unsigned	 n;
	int		 k, np;

	ASSERT(len <= GITPACK_COMMIT_MAX);
	k = snprintf(hdr, sizeof hdr, "commit %zu", len);
	EVP_DigestInit_ex(ctx, s->oidlen == 20 ? EVP_sha1() : EVP_sha256(),
	    NULL);
	EVP_DigestUpdate(ctx, hdr, (size_t)k + 1);
	EVP_DigestUpdate(ctx, body, len);
	EVP_DigestFinal_ex(ctx, check, &n);
	EVP_MD_CTX_free(ctx);
	ASSERT(n == s->oidlen && memcmp(check, oid, n) == 0);
	for (size_t i = 0; i < s->oidlen; i++)
		s->hash = s->hash * 31u + oid[i];
	s->n++;
	if (s->kept < KEEP) {
		memcpy(s->oid[s->kept], oid, s->oidlen);
		np = parents(body, len, s->oidlen, s->parent[s->kept]);
		if (np >= 0) {
			s->nparents[s->kept] = (size_t)np;
			s->kept++;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gitpack_goal	*goals;
	struct gitpack_stats	 st, st2;
	struct seen		 s, s2;
	size_t			 oidlen, ng = 0, i, k;
	int			 rc, rc2;

	if (size < 1 || size > MAXIN)
		return 0;
	oidlen = (data[0] & 1) ? 32 : 20;
	memset(&s, 0, sizeof s);
	s.oidlen = oidlen;
	rc = gitpack_prove(data + 1, size - 1, oidlen, NULL, 0, on_commit, &s,
	    &st);
	ASSERT(rc <= 0 && rc >= GITPACK_E_TRAILER);
	ASSERT(gitpack_strerror(rc) != NULL);
	ASSERT(s.n == st.commits);
	ASSERT(st.commits <= st.objects && st.objects <= st.declared);
	ASSERT(st.delta_commits <= st.commits);
	ASSERT(st.offset <= size - 1 && !st.early);
	ASSERT(st.inflated <= GITPACK_INFLATE_MAX);

	memset(&s2, 0, sizeof s2);
	s2.oidlen = oidlen;
	rc2 = gitpack_prove(data + 1, size - 1, oidlen, NULL, 0, on_commit,
	    &s2, &st2);
	ASSERT(rc == rc2 && s.hash == s2.hash && s.n == s2.n);
	ASSERT(memcmp(&st, &st2, sizeof st) == 0);

	/* goals: each commit proves itself and its parents */
	goals = calloc(KEEP * 5, sizeof *goals);
	for (i = 0; i < s.kept; i++) {
		memcpy(goals[ng].old, s.oid[i], oidlen);
		memcpy(goals[ng++].new, s.oid[i], oidlen);
		for (k = 0; k < s.nparents[i]; k++) {
			memcpy(goals[ng].old, s.parent[i][k], oidlen);
			memcpy(goals[ng++].new, s.oid[i], oidlen);
		}
	}
	if (ng > 0) {
		rc2 = gitpack_prove(data + 1, size - 1, oidlen, goals, ng,
		    NULL, NULL, &st2);
		for (i = 0; i < ng; i++)
			ASSERT(goals[i].proof == GITPACK_PROVEN);
		ASSERT(rc2 == 0 || rc2 == rc);
	}
	free(goals);
	return 0;
}
