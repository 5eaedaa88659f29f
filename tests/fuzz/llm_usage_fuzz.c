/*
 * Fuzz the usage extractors. The first byte picks the format, whether the
 * request was rewritten (so the usage chunk is dropped), the status and
 * whether the body is a JSON response or an SSE stream; the rest is the
 * body. Invariants: the stream gives the same usage, flags and dropped
 * events fed whole and byte by byte through sse.c; only a rewritten openai
 * stream drops anything, and only what llm_openai_usage_chunk recognises;
 * estimates appear only on 2xx and never lower a reported count; a JSON
 * body gives the same result twice.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/llm.h"
#include "builtin/sse.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)

static const enum llm_format formats[] = { LLM_ANTHROPIC, LLM_OPENAI,
    LLM_GOOGLE, LLM_FMT_NONE };
static const int statuses[] = { 200, 429 };

struct run {
	struct llm_response	 rs;
	uint64_t		 drops;		/* sum of dropped events'
						   start offsets + 1 */
	size_t			 ndrops;
};

static void
stream(const struct llm_request *rq, int status, const uint8_t *in,
    size_t len, size_t piece, struct run *out)
{
	struct sse		*s = sse_new();
	struct sse_event	 ev;
	struct llm_usage	 u;
	size_t			 from = 0, n, off, used;
	int			 r = SSE_NEED_MORE, d;

	memset(out, 0, sizeof *out);
	llm_response_init(&out->rs, rq, status);
	while (from < len && r >= 0) {
		n = piece == 0 || len - from < piece ? len - from : piece;
		uint8_t *p = xcalloc(n, 1);
		memcpy(p, in + from, n);
		off = 0;
		while (off < n) {
			r = sse_next(s, p + off, n - off, &used, &ev);
			off += used;
			if (r < 0)
				break;
			if (r != SSE_EVENT)
				continue;
			d = llm_response_event(&out->rs, ev.type, ev.type_len,
			    ev.data, ev.data_len);
			ASSERT(d == LLM_EVENT_KEEP || d == LLM_EVENT_DROP);
			if (d == LLM_EVENT_DROP) {
				ASSERT(rq->usage_added &&
				    rq->format == LLM_OPENAI);
				ASSERT(llm_openai_usage_chunk(ev.data,
				    ev.data_len, &u));
				out->drops += ev.start + 1;
				out->ndrops++;
			}
		}
		free(p);
		from += n;
	}
	llm_response_finish(&out->rs, r >= 0);
	sse_free(s);
}

static void
same(const struct run *a, const struct run *b)
{
	ASSERT(memcmp(&a->rs.usage, &b->rs.usage, sizeof a->rs.usage) == 0);
	ASSERT(a->rs.estimated == b->rs.estimated &&
	    a->rs.error == b->rs.error &&
	    a->rs.text_bytes == b->rs.text_bytes);
	ASSERT(a->drops == b->drops && a->ndrops == b->ndrops);
}

static void
check_estimate(const struct llm_response *rs, int status, uint64_t req_len)
{
	if (status != 200)
		ASSERT(!rs->estimated);
	if (rs->estimated)
		ASSERT(rs->usage.output >= rs->text_bytes / 4);
	(void)req_len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct llm_request	 rq;
	struct run		 whole, part;
	struct llm_response	 rs2;
	int			 status, rc, rc2;

	if (size < 1 || size > 64 * 1024)
		return 0;
	memset(&rq, 0, sizeof rq);
	rq.format = formats[data[0] & 3];
	rq.usage_added = (data[0] & 4) != 0;
	rq.body_len = size;
	status = statuses[(data[0] >> 3) & 1];
	data++;
	size--;

	if (data[-1] & 0x10) {
		/* A JSON response body: the same result twice. */
		uint8_t *b = xcalloc(size ? size : 1, 1);
		memcpy(b, data, size);
		llm_response_init(&whole.rs, &rq, status);
		rc = llm_response_json(&whole.rs, b, size);
		ASSERT(rc == LLM_OK || rc == LLM_E_JSON);
		llm_response_finish(&whole.rs, rc == LLM_OK);
		llm_response_init(&rs2, &rq, status);
		rc2 = llm_response_json(&rs2, b, size);
		llm_response_finish(&rs2, rc2 == LLM_OK);
		ASSERT(rc == rc2 && memcmp(&whole.rs.usage, &rs2.usage,
		    sizeof rs2.usage) == 0 && whole.rs.error == rs2.error);
		check_estimate(&whole.rs, status, size);
		if (rc != LLM_OK && status == 200)
			ASSERT(whole.rs.estimated);
		free(b);
		return 0;
	}

	stream(&rq, status, data, size, 0, &whole);
	check_estimate(&whole.rs, status, size);
	stream(&rq, status, data, size, 1, &part);
	same(&whole, &part);
	stream(&rq, status, data, size, 1 + (size_t)(data[-1] >> 5) * 7,
	    &part);
	same(&whole, &part);
	return 0;
}
