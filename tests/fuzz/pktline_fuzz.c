/*
 * pkt-lines: the input as a receive-pack request body, fed whole, byte by
 * byte and in pieces whose sizes come from the input. Invariants: the same
 * events, error and offset however it is split; events are well formed
 * (lower-case hex oids of the negotiated length, refs without spaces or
 * controls); when done, the offset ends a packet walked from the start;
 * nothing is taken past it. Then a status report built from the input's
 * bytes demultiplexes back to the plain report, packets within bounds.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/pktline.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define MAXIN	(4 * PKTLINE_MAX)

struct run {
	uint64_t	hash;
	int		rc;
	uint64_t	offset;
	bool		done;
	size_t		ncommands;
};

static void
check_event(const struct pktline *p, const struct pktline_event *ev,
    struct run *res)
{
	size_t	i, L = pktline_oid_len(p);

	ASSERT(L == 40 || L == 64);
	switch (ev->type) {
	case PKTLINE_EV_NONE:
		return;
	case PKTLINE_EV_COMMAND:
		ASSERT(strlen(ev->old_oid) == L && strlen(ev->new_oid) == L);
		ASSERT(strspn(ev->old_oid, "0123456789abcdef") == L);
		ASSERT(strspn(ev->new_oid, "0123456789abcdef") == L);
		ASSERT(ev->textlen > 0);
		for (i = 0; i < ev->textlen; i++)
			ASSERT((uint8_t)ev->text[i] > 0x20 &&
			    ev->text[i] != 0x7f);
		ASSERT(ev->is_create == (strspn(ev->old_oid, "0") == L));
		ASSERT(ev->is_delete == (strspn(ev->new_oid, "0") == L));
		break;
	case PKTLINE_EV_SHALLOW:
		ASSERT(strlen(ev->old_oid) == 40 || strlen(ev->old_oid) == 64);
		break;
	case PKTLINE_EV_OPTION:
		ASSERT(memchr(ev->text, '\0', ev->textlen) == NULL);
		break;
	case PKTLINE_EV_DONE:
		ASSERT(pktline_done(p));
		break;
	}
	res->hash = res->hash * 1000003u + (uint64_t)ev->type;
	res->hash = res->hash * 31u + (uint64_t)ev->from_cert;
	for (i = 0; ev->text != NULL && i < ev->textlen; i++)
		res->hash = res->hash * 31u + (uint8_t)ev->text[i];
	for (i = 0; ev->old_oid[i] != '\0'; i++)
		res->hash = res->hash * 31u + (uint8_t)ev->old_oid[i];
	for (i = 0; ev->new_oid[i] != '\0'; i++)
		res->hash = res->hash * 31u + (uint8_t)ev->new_oid[i];
}

/* step 0: whole; else piece sizes from seed */
static void
run(const uint8_t *data, size_t size, unsigned step, uint32_t seed,
    struct run *res)
{
	struct pktline		*p = pktline_new();
	struct pktline_event	 ev;
	uint8_t			*copy;
	size_t			 off = 0, n, k;
	ssize_t			 r = 1;

	memset(res, 0, sizeof *res);
	while (off < size && r > 0) {
		if (step == 0)
			n = size - off;
		else if (step == 1)
			n = 1;
		else {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % step;
		}
		if (n > size - off)
			n = size - off;
		copy = malloc(n);
		memcpy(copy, data + off, n);
		for (k = 0; k < n; k += (size_t)r) {
			if ((r = pktline_step(p, copy + k, n - k, &ev)) <= 0)
				break;
			ASSERT((size_t)r <= n - k);
			check_event(p, &ev, res);
		}
		if (r < 0)
			ASSERT(ev.type == PKTLINE_EV_NONE);
		off += k;
		free(copy);
	}
	res->rc = r < 0 ? (int)r : 0;
	res->offset = pktline_offset(p);
	res->done = pktline_done(p);
	res->ncommands = pktline_commands(p);
	ASSERT(res->offset == off || res->rc != 0);
	ASSERT(res->offset <= size);
	if (res->done)
		ASSERT(pktline_step(p, data, size, &ev) == 0);
	pktline_free(p);
}

/* The packets from the start end exactly at a finished parser's offset. */
static void
check_boundary(const uint8_t *data, uint64_t offset)
{
	enum pktline_kind	 kind;
	const uint8_t		*pl;
	size_t			 plen;
	uint64_t		 o = 0;
	ssize_t			 r;

	while (o < offset) {
		r = pktline_next(data + o, (size_t)(offset - o), &kind, &pl,
		    &plen);
		ASSERT(r > 0);
		o += (uint64_t)r;
	}
	ASSERT(o == offset);
}

/* A status report from the input's bytes, plain and side-band. */
static void
check_report(const uint8_t *data, size_t size)
{
	struct pktline_status	 st[4];
	char			 str[8][64];
	uint8_t			*plain, *band, *inner;
	enum pktline_kind	 kind;
	const uint8_t		*pl;
	size_t			 i, k, o = 0, plen, n = 0, ilen = 0;
	ssize_t			 lp, lb, r;
	unsigned		 caps;
	size_t			 max;

	for (i = 0; i < 8; i++) {
		for (k = 0; k < 63 && o < size && data[o] != '|'; k++, o++)
			str[i][k] = (char)data[o];
		str[i][k] = '\0';
		o++;
	}
	for (i = 0; i < 3; i++) {
		st[i].ref = str[1 + 2 * i];
		st[i].reason = str[2 + 2 * i][0] ? str[2 + 2 * i] : NULL;
	}
	caps = size > 0 ? data[0] : 0;
	max = (caps & PKTLINE_CAP_SIDE_BAND_64K) ? PKTLINE_MAX :
	    PKTLINE_SIDEBAND_MAX;
	lp = pktline_report(NULL, 0, 0, str[0][0] ? str[0] : NULL, st, 3,
	    NULL);
	if (lp < 0) {
		ASSERT(lp == PKTLINE_E_ARG);
		return;
	}
	plain = malloc((size_t)lp);
	ASSERT(pktline_report(plain, (size_t)lp, 0, str[0][0] ? str[0] : NULL,
	    st, 3, NULL) == lp);
	lb = pktline_report(NULL, 0, caps, str[0][0] ? str[0] : NULL, st, 3,
	    str[7]);
	ASSERT(lb >= lp);
	band = malloc((size_t)lb);
	inner = malloc((size_t)lb);
	ASSERT(pktline_report(band, (size_t)lb, caps, str[0][0] ? str[0] :
	    NULL, st, 3, str[7]) == lb);
	if (!(caps & (PKTLINE_CAP_SIDE_BAND | PKTLINE_CAP_SIDE_BAND_64K))) {
		ASSERT(lb == lp && memcmp(band, plain, (size_t)lp) == 0);
		memcpy(inner, plain, (size_t)lp);
		ilen = (size_t)lp;
	} else {
		for (o = 0; o < (size_t)lb; o += (size_t)r) {
			r = pktline_next(band + o, (size_t)lb - o, &kind, &pl,
			    &plen);
			ASSERT(r > 0);
			ASSERT((size_t)r <= max);
			if (kind == PKTLINE_FLUSH) {
				ASSERT(o + 4 == (size_t)lb);
				continue;
			}
			ASSERT(kind == PKTLINE_DATA && plen >= 2);
			ASSERT(pl[0] == 1 || pl[0] == 2);
			if (pl[0] == 1) {
				memcpy(inner + ilen, pl + 1, plen - 1);
				ilen += plen - 1;
			}
		}
		ASSERT(ilen == (size_t)lp && memcmp(inner, plain, ilen) == 0);
	}
	/* the plain report: unpack, one line per status, flush */
	for (o = 0; o < ilen; o += (size_t)r, n++) {
		r = pktline_next(inner + o, ilen - o, &kind, &pl, &plen);
		ASSERT(r > 0);
		if (kind == PKTLINE_FLUSH) {
			ASSERT(o + 4 == ilen && n == 4);
			continue;
		}
		ASSERT(plen > 0 && pl[plen - 1] == '\n');
		ASSERT(memchr(pl, '\n', plen - 1) == NULL);
		if (n == 0)
			ASSERT(plen >= 7 && memcmp(pl, "unpack ", 7) == 0);
		else
			ASSERT(memcmp(pl, st[n - 1].reason ? "ng " : "ok ",
			    3) == 0);
	}
	free(plain);
	free(band);
	free(inner);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run	whole, bytes, pieces;
	uint32_t	seed = 2166136261u;
	size_t		i;

	if (size > MAXIN)
		return 0;
	for (i = 0; i < size && i < 64; i++)
		seed = (seed ^ data[i]) * 16777619u;
	run(data, size, 0, 0, &whole);
	run(data, size, 1, 0, &bytes);
	run(data, size, 1 + seed % 97, seed, &pieces);
	ASSERT(whole.hash == bytes.hash && whole.hash == pieces.hash);
	ASSERT(whole.rc == bytes.rc && whole.rc == pieces.rc);
	ASSERT(whole.done == bytes.done && whole.done == pieces.done);
	ASSERT(whole.ncommands == bytes.ncommands);
	if (whole.rc == 0) {
		ASSERT(whole.offset == bytes.offset &&
		    whole.offset == pieces.offset);
		if (whole.done)
			check_boundary(data, whole.offset);
	}
	check_report(data, size);
	return 0;
}
