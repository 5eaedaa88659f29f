/*
 * Server-Sent Events (WHATWG HTML, "event stream interpretation"), parsed
 * incrementally from arbitrary splits of a response body, so that LLM
 * accounting (llm.c) can read a stream the proxy forwards untouched and at
 * once. Pure: no I/O. The parser keeps only the event being built, bounded.
 */
#ifndef BUILTIN_SSE_H
#define BUILTIN_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSE_EVENT_MAX	(1024 * 1024)	/* data + event name + id of one
					   event, in bytes */

struct sse;

enum sse_result {
	SSE_NEED_MORE = 0,	/* every byte consumed, no event yet */
	SSE_EVENT = 1,		/* an event was dispatched: see *ev */
	SSE_E_TOO_LARGE = -1,	/* the event outgrew SSE_EVENT_MAX: stop
				   accounting for this stream (keep
				   forwarding it); the parser is then
				   unusable */
};

/*
 * A dispatched event. The slices point into the parser and stay valid
 * until the next call on it; each is also NUL-terminated at [len] for
 * convenience, but may hold NUL bytes: the length is what counts.
 */
struct sse_event {
	const char	*type;		/* the "event" field, or "message" */
	size_t		 type_len;
	const char	*data;		/* "data" lines joined with '\n' */
	size_t		 data_len;
	const char	*id;		/* the last event ID (it persists from
					   event to event), maybe empty */
	size_t		 id_len;
	uint64_t	 start;		/* stream offsets of the event's bytes:
					   its first field line .. just past */
	uint64_t	 end;		/* the blank line that dispatched it */
};

struct sse	*sse_new(void);
void		 sse_free(struct sse *);	/* NULL is a no-op */

/*
 * Consume a prefix of buf. Returns SSE_EVENT with *ev set once a blank line
 * dispatches an event (*consumed then stops just past that line's end, so
 * the caller sees event boundaries in its own buffer: call again with the
 * rest), SSE_NEED_MORE once all len bytes are consumed without one (an
 * incomplete line or event is kept for the next call), or an error.
 * *consumed is set in every case. Lines end in CRLF, LF or CR (a CRLF split
 * between calls counts once); a UTF-8 BOM at the start of the stream is
 * skipped; "event", "data", "id" (ignored when it holds a NUL) and "retry"
 * (ASCII digits only) are the fields, any other field and ":" comments are
 * ignored, one space after the colon is removed. A blank line with no data
 * since the last dispatch dispatches nothing (WHATWG). Bytes are not decoded
 * from UTF-8: they come out as they went in. The events, offsets included,
 * are the same however the stream is split.
 */
int		 sse_next(struct sse *, const uint8_t *buf, size_t len,
		    size_t *consumed, struct sse_event *ev);

/* The last valid "retry" value in milliseconds, or -1 when none came. */
int64_t		 sse_retry(const struct sse *);

/* Bytes consumed so far over the whole stream (BOM included). */
uint64_t	 sse_offset(const struct sse *);

/*
 * Where the event being built starts: the stream offset of the first byte
 * of the first line after the last blank line, or sse_offset() when no
 * byte has been consumed since. A caller that may have to drop a whole
 * event (llm.c's extra usage chunk) forwards everything before this offset
 * at once and holds the rest until the event dispatches.
 */
uint64_t	 sse_pending(const struct sse *);

const char	*sse_strerror(int);

#endif
