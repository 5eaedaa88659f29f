/*
 * sse.c: WHATWG event-stream cases (line endings, fields, comments, the
 * space after the colon, BOM, id persistence and NUL, retry, dispatch
 * rules) each fed whole, byte by byte and split at every point, with the
 * same events and offsets each time; the per-event bound; offsets and the
 * pending mark that lets a caller drop one event.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/sse.h"
#include "common/xmalloc.h"
#include "tests/unit/test.h"

/*
 * Events as text: "type|data|id|start-end\n" each, with '\n' in data shown
 * as "\\n" and other bytes below 0x20 as "\\xHH"; then "=R" with the final
 * result and "retry=N".
 */
struct out {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

static void
out_add(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->p = xreallocarray(o->p, o->cap, 1);
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void
out_str(struct out *o, const char *s)
{
	out_add(o, s, strlen(s));
}

static void
out_esc(struct out *o, const char *s, size_t n)
{
	char	b[8];
	size_t	i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			out_str(o, "\\n");
		else if ((unsigned char)s[i] < 0x20) {
			snprintf(b, sizeof b, "\\x%02x", (unsigned char)s[i]);
			out_str(o, b);
		} else
			out_add(o, s + i, 1);
	}
}

static void
out_event(struct out *o, const struct sse_event *ev)
{
	char	b[64];

	CHECK(ev->type[ev->type_len] == '\0' &&
	    ev->data[ev->data_len] == '\0' && ev->id[ev->id_len] == '\0',
	    "slices are NUL-terminated");
	out_esc(o, ev->type, ev->type_len);
	out_str(o, "|");
	out_esc(o, ev->data, ev->data_len);
	out_str(o, "|");
	out_esc(o, ev->id, ev->id_len);
	snprintf(b, sizeof b, "|%llu-%llu\n", (unsigned long long)ev->start,
	    (unsigned long long)ev->end);
	out_str(o, b);
}

/*
 * Feed in pieces of at most `piece` bytes (0: whole; SIZE_MAX: cut once
 * at `cut`), each an exact-size heap copy.
 */
static char *
run(const char *in, size_t len, size_t piece, size_t cut)
{
	struct sse		*s = sse_new();
	struct sse_event	 ev;
	struct out		 o = { NULL, 0, 0 };
	size_t			 from = 0, n, off, used;
	int			 r = SSE_NEED_MORE;
	char			 b[64];

	out_str(&o, "");
	while (from < len && r >= 0) {
		if (piece == SIZE_MAX)
			n = from < cut ? cut - from : len - from;
		else
			n = piece == 0 || len - from < piece ? len - from :
			    piece;
		char *p = xcalloc(n ? n : 1, 1);
		memcpy(p, in + from, n);
		off = 0;
		while (off < n) {
			r = sse_next(s, (uint8_t *)p + off, n - off, &used,
			    &ev);
			CHECK(used <= n - off, "consumed too much");
			off += used;
			if (r < 0)
				break;
			if (r == SSE_EVENT) {
				CHECK(ev.end == sse_offset(s), "end offset");
				CHECK(sse_pending(s) == sse_offset(s),
				    "nothing pending after an event");
				out_event(&o, &ev);
			} else
				CHECK(off == n, "need more before the end");
		}
		free(p);
		from += n;
		if (r >= 0)
			CHECK(sse_offset(s) == from, "offset %llu != %zu",
			    (unsigned long long)sse_offset(s), from);
	}
	snprintf(b, sizeof b, "=%d retry=%lld", r < 0 ? r : 0,
	    (long long)sse_retry(s));
	out_str(&o, b);
	sse_free(s);
	return o.p;
}

static const struct {
	const char	*name;
	const char	*in;
	size_t		 len;	/* 0: strlen */
	const char	*want;
} cases[] = {
	{ "empty_stream_dispatches_nothing", "", 0, "=0 retry=-1" },
	{ "one_event_lf", "data: hello\n\n", 0,
	    "message|hello||0-13\n=0 retry=-1" },
	{ "one_event_crlf", "data: hello\r\n\r\n", 0,
	    "message|hello||0-14\n=0 retry=-1" },
	{ "one_event_cr", "data: hello\r\r", 0,
	    "message|hello||0-13\n=0 retry=-1" },
	{ "mixed_line_endings", "data: a\rdata: b\ndata: c\r\n\n", 0,
	    "message|a\\nb\\nc||0-26\n=0 retry=-1" },
	{ "lf_after_cr_between_events_belongs_to_none",
	    "data: a\r\n\r\ndata: b\r\n\r\n", 0,
	    "message|a||0-10\nmessage|b||11-21\n=0 retry=-1" },
	{ "cr_cr_lf_is_two_lines", "data: a\r\r\ndata: b\n\n", 0,
	    "message|a||0-9\nmessage|b||10-19\n=0 retry=-1" },
	{ "data_lines_joined_with_lf", "data: a\ndata: b\ndata:\n\n", 0,
	    "message|a\\nb\\n||0-23\n=0 retry=-1" },
	{ "only_one_space_removed", "data:  two\n\n", 0,
	    "message| two||0-12\n=0 retry=-1" },
	{ "no_space_after_colon", "data:x\n\n", 0,
	    "message|x||0-8\n=0 retry=-1" },
	{ "tab_is_not_removed", "data:\tx\n\n", 0,
	    "message|\\x09x||0-9\n=0 retry=-1" },
	{ "field_without_colon_is_empty_value", "data\n\n", 0,
	    "message|||0-6\n=0 retry=-1" },
	{ "event_names_the_type", "event: message_start\ndata: {}\n\n", 0,
	    "message_start|{}||0-31\n=0 retry=-1" },
	{ "event_type_resets_after_dispatch",
	    "event: a\ndata: 1\n\ndata: 2\n\n", 0,
	    "a|1||0-18\nmessage|2||18-27\n=0 retry=-1" },
	{ "empty_event_name_is_message", "event:\ndata: 1\n\n", 0,
	    "message|1||0-16\n=0 retry=-1" },
	{ "last_event_field_wins", "event: a\nevent: b\ndata: x\n\n", 0,
	    "b|x||0-27\n=0 retry=-1" },
	{ "no_data_no_dispatch_and_type_reset",
	    "event: ping\n\ndata: x\n\n", 0,
	    "message|x||13-22\n=0 retry=-1" },
	{ "comment_ignored", ": keep-alive\ndata: x\n\n", 0,
	    "message|x||0-22\n=0 retry=-1" },
	{ "comment_alone_dispatches_nothing", ": ping\n\n: ping\n\n", 0,
	    "=0 retry=-1" },
	{ "unknown_field_ignored", "foo: bar\ndata: x\nDATA: y\n\n", 0,
	    "message|x||0-26\n=0 retry=-1" },
	{ "long_unknown_field_ignored", "dataextra: y\ndata: x\n\n", 0,
	    "message|x||0-22\n=0 retry=-1" },
	{ "field_names_are_case_sensitive", "Data: x\n\n", 0,
	    "=0 retry=-1" },
	{ "colon_in_value_kept", "data: a: b\n\n", 0,
	    "message|a: b||0-12\n=0 retry=-1" },
	{ "id_persists", "id: 7\ndata: a\n\ndata: b\n\n", 0,
	    "message|a|7|0-15\nmessage|b|7|15-24\n=0 retry=-1" },
	{ "empty_id_resets", "id: 7\ndata: a\n\nid\ndata: b\n\n", 0,
	    "message|a|7|0-15\nmessage|b||15-27\n=0 retry=-1" },
	{ "id_with_nul_ignored", "id: 7\ndata: a\n\nid: 8\0x\ndata: b\n\n",
	    32, "message|a|7|0-15\nmessage|b|7|15-32\n=0 retry=-1" },
	{ "id_set_without_data_still_persists", "id: 9\n\ndata: b\n\n", 0,
	    "message|b|9|7-16\n=0 retry=-1" },
	{ "retry_digits", "retry: 3000\n\n", 0, "=0 retry=3000" },
	{ "retry_not_digits_ignored", "retry: 30s\nretry: -1\nretry:\n\n", 0,
	    "=0 retry=-1" },
	{ "retry_later_wins", "retry: 10\nretry: 20\nretry: x\n\n", 0,
	    "=0 retry=20" },
	{ "retry_overflow_ignored", "retry: 99999999999999999999\n\n", 0,
	    "=0 retry=-1" },
	{ "bom_skipped", "\xef\xbb\xbf" "data: x\n\n", 0,
	    "message|x||3-12\n=0 retry=-1" },
	{ "bom_only_at_start", "data: x\n\n\xef\xbb\xbf" "data: y\n\n", 0,
	    "message|x||0-9\n=0 retry=-1" },
	{ "partial_bom_is_field_name_bytes", "\xef\xbb" "data: x\n\n", 0,
	    "=0 retry=-1" },
	{ "partial_bom_then_data_line", "\xef\n" "data: x\n\n", 0,
	    "message|x||0-11\n=0 retry=-1" },
	{ "two_boms_second_is_a_field",
	    "\xef\xbb\xbf\xef\xbb\xbf" "data: x\n\n", 0, "=0 retry=-1" },
	{ "incomplete_event_not_dispatched", "data: x\n", 0, "=0 retry=-1" },
	{ "incomplete_line_not_dispatched", "data: x", 0, "=0 retry=-1" },
	{ "nul_in_data_kept", "data: a\0b\n\n", 11,
	    "message|a\\x00b||0-11\n=0 retry=-1" },
	{ "utf8_passes_through", "data: h\xc3\xa9\n\n", 0,
	    "message|h\xc3\xa9||0-11\n=0 retry=-1" },
	{ "leading_blank_lines", "\n\r\n\rdata: x\n\n", 0,
	    "message|x||4-13\n=0 retry=-1" },
	{ "anthropic_stream",
	    "event: message_start\n"
	    "data: {\"type\":\"message_start\"}\n\n"
	    "event: ping\ndata: {\"type\": \"ping\"}\n\n", 0,
	    "message_start|{\"type\":\"message_start\"}||0-53\n"
	    "ping|{\"type\": \"ping\"}||53-89\n=0 retry=-1" },
	{ "openai_done", "data: {\"choices\":[]}\n\ndata: [DONE]\n\n", 0,
	    "message|{\"choices\":[]}||0-22\nmessage|[DONE]||22-36\n"
	    "=0 retry=-1" },
};

static void
sse_cases_fed_whole_bytewise_and_split(void)
{
	size_t	i, len, cut;
	char	*whole, *got;

	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		len = cases[i].len ? cases[i].len : strlen(cases[i].in);
		whole = run(cases[i].in, len, 0, 0);
		CHECK(strcmp(whole, cases[i].want) == 0,
		    "%s: got\n%s\nwant\n%s", cases[i].name, whole,
		    cases[i].want);
		got = run(cases[i].in, len, 1, 0);
		CHECK(strcmp(got, whole) == 0, "%s: byte by byte:\n%s",
		    cases[i].name, got);
		free(got);
		for (cut = 1; cut < len; cut++) {
			got = run(cases[i].in, len, SIZE_MAX, cut);
			CHECK(strcmp(got, whole) == 0, "%s: cut at %zu:\n%s",
			    cases[i].name, cut, got);
			free(got);
		}
		free(whole);
	}
}

/* SSE_EVENT_MAX holds; one byte more is SSE_E_TOO_LARGE, then the parser
 * stays broken. */
static void
sse_event_over_bound_is_too_large(void)
{
	struct sse		*s;
	struct sse_event	 ev;
	size_t			 used, n = SSE_EVENT_MAX - 1, off;
	char			*big = xcalloc(SSE_EVENT_MAX + 16, 1);
	int			 r;

	/* data + '\n' = SSE_EVENT_MAX exactly: fits. */
	memcpy(big, "data:", 5);
	memset(big + 5, 'x', n);
	memcpy(big + 5 + n, "\n\n", 2);
	s = sse_new();
	r = sse_next(s, (uint8_t *)big, n + 7, &used, &ev);
	CHECK(r == SSE_EVENT && ev.data_len == n && used == n + 7,
	    "at the bound: r %d len %zu", r, ev.data_len);
	sse_free(s);

	/* One more byte of data. */
	memset(big + 5, 'x', n + 1);
	memcpy(big + 6 + n, "\n\n", 2);
	s = sse_new();
	r = sse_next(s, (uint8_t *)big, n + 8, &used, &ev);
	CHECK(r == SSE_E_TOO_LARGE, "over the bound: %d", r);
	CHECK(sse_next(s, (const uint8_t *)"\n", 1, &used, &ev) ==
	    SSE_E_TOO_LARGE, "stays broken");
	CHECK(strstr(sse_strerror(SSE_E_TOO_LARGE), "1 MiB") != NULL,
	    "strerror");
	sse_free(s);

	/* A long line adds up across calls. */
	s = sse_new();
	r = SSE_NEED_MORE;
	for (off = 0; off < 2 * 1024 && r == SSE_NEED_MORE; off++)
		r = sse_next(s, (const uint8_t *)big, 1024, &used, &ev);
	CHECK(r == SSE_E_TOO_LARGE, "a long line: %d", r);
	sse_free(s);

	/* The event name counts toward the bound too. */
	s = sse_new();
	memcpy(big, "event:", 6);
	memset(big + 6, 'x', SSE_EVENT_MAX);
	big[6 + SSE_EVENT_MAX] = '\n';
	r = sse_next(s, (uint8_t *)big, SSE_EVENT_MAX + 7, &used, &ev);
	CHECK(r == SSE_NEED_MORE, "a name at the bound: %d", r);
	r = sse_next(s, (const uint8_t *)"data: y\n\n", 9, &used, &ev);
	CHECK(r == SSE_E_TOO_LARGE, "event name counts: %d", r);
	sse_free(s);

	/* A huge comment costs nothing and is fine. */
	s = sse_new();
	big[0] = ':';
	for (off = 0; off < 3; off++) {
		memset(big + 1, 'c', n);
		r = sse_next(s, (uint8_t *)big, n + 1, &used, &ev);
		CHECK(r == SSE_NEED_MORE && used == n + 1, "comment: %d", r);
		big[0] = 'c';
	}
	r = sse_next(s, (const uint8_t *)"\ndata: ok\n\n", 11, &used, &ev);
	CHECK(r == SSE_EVENT && ev.data_len == 2, "after comment: %d", r);
	sse_free(s);
	free(big);
}

/* pending marks where the event under way began: before it, everything
 * may go out; from it, a caller that might drop the event holds. */
static void
sse_pending_marks_event_start(void)
{
	static const char	*in = "data: a\n\n: c\ndata: b";
	struct sse		*s = sse_new();
	struct sse_event	 ev;
	size_t			 used;
	int			 r;

	CHECK(sse_pending(s) == 0, "fresh");
	r = sse_next(s, (const uint8_t *)in, 4, &used, &ev);
	CHECK(r == SSE_NEED_MORE && sse_pending(s) == 0 &&
	    sse_offset(s) == 4, "mid line");
	r = sse_next(s, (const uint8_t *)in + 4, strlen(in) - 4, &used, &ev);
	CHECK(r == SSE_EVENT && used == 5 && ev.start == 0 && ev.end == 9,
	    "first event %d %zu", r, used);
	CHECK(sse_pending(s) == 9, "after event");
	r = sse_next(s, (const uint8_t *)in + 9, strlen(in) - 9, &used, &ev);
	CHECK(r == SSE_NEED_MORE && sse_pending(s) == 9 &&
	    sse_offset(s) == strlen(in), "under way: %llu",
	    (unsigned long long)sse_pending(s));
	r = sse_next(s, (const uint8_t *)"\n\n", 2, &used, &ev);
	CHECK(r == SSE_EVENT && ev.start == 9 && ev.end == 22 &&
	    ev.data_len == 1 && ev.data[0] == 'b', "second event");
	sse_free(s);
	sse_free(NULL);
}

/* Events come one per call; the rest waits in the caller's buffer. */
static void
sse_one_event_per_call(void)
{
	static const char	*in = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
	struct sse		*s = sse_new();
	struct sse_event	 ev;
	size_t			 off = 0, used, n = 0;
	int			 r;

	while (off < strlen(in)) {
		r = sse_next(s, (const uint8_t *)in + off, strlen(in) - off,
		    &used, &ev);
		off += used;
		if (r == SSE_EVENT) {
			n++;
			CHECK(ev.data_len == 1 && ev.data[0] == (char)('0' + n),
			    "event %zu", n);
			CHECK(off == n * 9, "stops after the blank line");
		}
	}
	CHECK(n == 3, "three events: %zu", n);
	sse_free(s);
}

int
main(void)
{
	RUN(sse_cases_fed_whole_bytewise_and_split);
	RUN(sse_event_over_bound_is_too_large);
	RUN(sse_pending_marks_event_start);
	RUN(sse_one_event_per_call);
	return test_done("test_sse");
}
