/*
 * Fuzz the chunked decoder: every step makes progress within its input,
 * runs add up to what was consumed, and the decoded data, the end and the
 * verdict do not depend on where the input is split.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/http_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(x)	do { if (!(x)) __builtin_trap(); } while (0)
#define MORE		1	/* result: input exhausted, body unfinished */
#define DONE		2	/* result: body complete */

struct run {
	int	 result;	/* MORE, DONE or the error */
	uint8_t	*data;
	size_t	 ndata;
	size_t	 consumed;	/* through the last successful step */
};

/*
 * Feed data in pieces of at most `piece` bytes (0: whole), each piece an
 * exact-size heap copy so that a read past it is caught.
 */
static void
feed(const uint8_t *data, size_t len, size_t piece, struct run *out)
{
	struct http_chunked	 ch;
	size_t			 from = 0;

	out->result = MORE;
	out->ndata = out->consumed = 0;
	http_chunked_init(&ch);
	ASSERT(!http_chunked_done(&ch));
	while (from < len && out->result == MORE) {
		size_t	 plen = piece == 0 || len - from < piece ?
		    len - from : piece;
		uint8_t	*p = malloc(plen);
		size_t	 off = 0;

		if (p == NULL)
			abort();
		memcpy(p, data + from, plen);
		while (off < plen) {
			bool	is_data = true;
			ssize_t	n = http_chunked_step(&ch, p + off, plen - off,
			    &is_data);

			if (n < 0) {
				ASSERT(n == HTTP_E_SYNTAX ||
				    n == HTTP_E_TOO_LARGE);
				out->result = (int)n;
				break;
			}
			if (n == 0) {
				/* Only a finished body stops consuming. */
				ASSERT(http_chunked_done(&ch) && !is_data);
				break;
			}
			ASSERT((size_t)n <= plen - off);
			if (is_data) {
				memcpy(out->data + out->ndata, p + off,
				    (size_t)n);
				out->ndata += (size_t)n;
			}
			off += (size_t)n;
			out->consumed += (size_t)n;
		}
		free(p);
		from += off;
		if (http_chunked_done(&ch)) {
			bool is_data;

			out->result = DONE;
			ASSERT(http_chunked_step(&ch, data, len, &is_data) ==
			    0);
		} else if (out->result == MORE)
			ASSERT(off == plen);
	}
	ASSERT(out->consumed <= len && out->ndata <= out->consumed);
}

static void
same(const struct run *a, const struct run *b)
{
	ASSERT(a->result == b->result);
	ASSERT(a->ndata == b->ndata &&
	    memcmp(a->data, b->data, a->ndata) == 0);
	if (a->result != HTTP_E_SYNTAX && a->result != HTTP_E_TOO_LARGE)
		ASSERT(a->consumed == b->consumed);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct run	 whole, part;
	size_t		 piece;

	if ((whole.data = malloc(len + 1)) == NULL ||
	    (part.data = malloc(len + 1)) == NULL)
		abort();
	feed(data, len, 0, &whole);
	if (whole.result == MORE)
		ASSERT(whole.consumed == len);

	feed(data, len, 1, &part);
	same(&whole, &part);
	piece = len > 0 ? 1 + data[0] % 17 : 1;
	feed(data, len, piece, &part);
	same(&whole, &part);
	piece = len > 1 ? 1 + (data[len - 1] * 31 + data[1]) % (len - 1) : 1;
	feed(data, len, piece, &part);
	same(&whole, &part);

	/* Re-framed as one chunk, the data decodes to itself. */
	if (whole.result == DONE && whole.ndata > 0) {
		size_t	 n = whole.ndata, o;
		uint8_t	*re = malloc(n + 32);
		int	 w;

		if (re == NULL)
			abort();
		w = snprintf((char *)re, 32, "%zx\r\n", n);
		o = (size_t)w;
		memcpy(re + o, whole.data, n);
		memcpy(re + o + n, "\r\n0\r\n\r\n", 7);
		feed(re, o + n + 7, 0, &part);
		ASSERT(part.result == DONE && part.ndata == n &&
		    memcmp(part.data, whole.data, n) == 0 &&
		    part.consumed == o + n + 7);
		free(re);
	}
	free(whole.data);
	free(part.data);
	return 0;
}
