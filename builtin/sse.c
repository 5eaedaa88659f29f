/*
 * Server-Sent Events, incrementally: a byte-driven state machine over the
 * WHATWG rules, holding only the event being built (data, type, id) and the
 * first bytes of a field name. llm.c reads the events; the proxy forwards
 * the stream itself, never waiting for this parser.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/sse.h"
#include "common/xmalloc.h"

#define NAME_MAX_LEN	8	/* longer field names are none of ours */
#define RETRY_MAX	INT32_MAX

enum sse_state {
	S_BOM,		/* stream start: maybe a UTF-8 BOM */
	S_NAME,		/* line start or inside a field name */
	S_SPACE,	/* just after the colon */
	S_VALUE,	/* a field value, up to the line end */
	S_IGNORE,	/* a comment or an unknown field's value */
	S_BROKEN,	/* after an error */
};

enum sse_field {
	F_NONE,
	F_DATA,
	F_EVENT,
	F_ID,
	F_RETRY,
};

struct buf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

struct sse {
	enum sse_state	 state;
	enum sse_field	 field;
	bool		 after_cr;	/* the last line ended in CR: skip
					   one LF */
	size_t		 bom;		/* BOM bytes matched so far */
	char		 name[NAME_MAX_LEN];
	size_t		 namelen;	/* may exceed NAME_MAX_LEN */
	struct buf	 data;		/* each line + '\n' */
	struct buf	 type;
	struct buf	 idtmp;		/* the "id" line being read */
	bool		 id_nul;	/* ... holds a NUL */
	struct buf	 id;		/* the last event ID */
	bool		 retry_ok;	/* digits only so far, at least one */
	bool		 retry_any;
	int64_t		 retry_val;
	int64_t		 retry;		/* -1: none */
	uint64_t	 offset;	/* bytes consumed */
	uint64_t	 pending;	/* where the event being built starts */
};

static const uint8_t bom[3] = { 0xef, 0xbb, 0xbf };

struct sse *
sse_new(void)
{
	struct sse	*s = xcalloc(1, sizeof *s);

	s->state = S_BOM;
	s->retry = -1;
	return s;
}

void
sse_free(struct sse *s)
{
	if (s == NULL)
		return;
	free(s->data.p);
	free(s->type.p);
	free(s->idtmp.p);
	free(s->id.p);
	free(s);
}

int64_t
sse_retry(const struct sse *s)
{
	return s->retry;
}

uint64_t
sse_offset(const struct sse *s)
{
	return s->offset;
}

uint64_t
sse_pending(const struct sse *s)
{
	return s->pending;
}

const char *
sse_strerror(int r)
{
	switch (r) {
	case SSE_NEED_MORE:
		return "need more";
	case SSE_EVENT:
		return "event";
	case SSE_E_TOO_LARGE:
		return "event stream: event over 1 MiB";
	}
	return "event stream: unknown error";
}

/* Bytes held for the event being built, against SSE_EVENT_MAX. */
static size_t
held(const struct sse *s)
{
	return s->data.len + s->type.len + s->idtmp.len;
}

static void
buf_put(struct buf *b, const void *p, size_t n)
{
	size_t	cap;

	if (b->len + n + 1 > b->cap) {
		cap = b->cap < 256 ? 256 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xreallocarray(b->p, cap, 1);
		b->cap = cap;
	}
	if (n > 0)
		memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static int
buf_add(struct sse *s, struct buf *b, const void *p, size_t n)
{
	if (n > SSE_EVENT_MAX - held(s))
		return SSE_E_TOO_LARGE;
	buf_put(b, p, n);
	return 0;
}

static enum sse_field
field_of(const struct sse *s)
{
	static const struct {
		const char	*name;
		enum sse_field	 field;
	} fields[] = {
		{ "data", F_DATA }, { "event", F_EVENT }, { "id", F_ID },
		{ "retry", F_RETRY },
	};
	size_t	i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (s->namelen == strlen(fields[i].name) &&
		    memcmp(s->name, fields[i].name, s->namelen) == 0)
			return fields[i].field;
	return F_NONE;
}

/* The colon ended the name (or the line did): get ready for the value. */
static void
field_start(struct sse *s)
{
	s->field = field_of(s);
	switch (s->field) {
	case F_EVENT:
		s->type.len = 0;
		break;
	case F_ID:
		s->idtmp.len = 0;
		s->id_nul = false;
		break;
	case F_RETRY:
		s->retry_ok = true;
		s->retry_any = false;
		s->retry_val = 0;
		break;
	default:
		break;
	}
}

static int
value_add(struct sse *s, const uint8_t *p, size_t n)
{
	size_t	i;

	switch (s->field) {
	case F_DATA:
		return buf_add(s, &s->data, p, n);
	case F_EVENT:
		return buf_add(s, &s->type, p, n);
	case F_ID:
		if (memchr(p, '\0', n) != NULL)
			s->id_nul = true;
		return buf_add(s, &s->idtmp, p, n);
	case F_RETRY:
		for (i = 0; i < n && s->retry_ok; i++) {
			if (p[i] < '0' || p[i] > '9') {
				s->retry_ok = false;
				break;
			}
			s->retry_any = true;
			if (s->retry_val <= (RETRY_MAX - (p[i] - '0')) / 10)
				s->retry_val = s->retry_val * 10 +
				    (p[i] - '0');
			else
				s->retry_ok = false;	/* out of range */
		}
		return 0;
	default:
		return 0;
	}
}

/* A field line ended. */
static int
field_end(struct sse *s)
{
	int	r = 0;

	switch (s->field) {
	case F_DATA:
		r = buf_add(s, &s->data, "\n", 1);
		break;
	case F_ID:
		if (!s->id_nul) {
			/* Bounded already: it was read into idtmp. */
			s->id.len = 0;
			buf_put(&s->id, s->idtmp.p != NULL ? s->idtmp.p : "",
			    s->idtmp.len);
		}
		s->idtmp.len = 0;
		break;
	case F_RETRY:
		if (s->retry_ok && s->retry_any)
			s->retry = s->retry_val;
		break;
	default:
		break;
	}
	s->field = F_NONE;
	return r;
}

static void
event_fill(struct sse *s, struct sse_event *ev)
{
	memset(ev, 0, sizeof *ev);
	/* Drop the last '\n'; the NUL goes in its place. */
	s->data.len--;
	s->data.p[s->data.len] = '\0';
	ev->data = s->data.p;
	ev->data_len = s->data.len;
	if (s->type.len > 0) {
		ev->type = s->type.p;
		ev->type_len = s->type.len;
	} else {
		ev->type = "message";
		ev->type_len = 7;
	}
	ev->id = s->id.len > 0 ? s->id.p : "";
	ev->id_len = s->id.len;
	ev->start = s->pending;
	ev->end = s->offset;
	/* Lengths go to zero now; the bytes stay until the next call adds
	 * to them, so ev's slices hold until then. */
	s->data.len = 0;
	s->type.len = 0;
}

/*
 * A line ended at offset (just past its terminator). Returns SSE_EVENT when
 * it was a blank line that dispatches, 0, or an error.
 */
static int
line_end(struct sse *s, struct sse_event *ev)
{
	int	r;

	switch (s->state) {
	case S_NAME:
		if (s->namelen == 0) {
			/* Blank line: dispatch, or just reset. */
			if (s->data.len > 0) {
				event_fill(s, ev);
				r = SSE_EVENT;
			} else {
				s->type.len = 0;
				r = 0;
			}
			s->pending = s->offset;
			return r;
		}
		/* A field name alone: the value is empty. */
		field_start(s);
		if ((r = field_end(s)) != 0)
			return r;
		break;
	case S_SPACE:
	case S_VALUE:
		if ((r = field_end(s)) != 0)
			return r;
		break;
	default:
		break;
	}
	s->state = S_NAME;
	s->namelen = 0;
	return 0;
}

/* Index of the first CR or LF in p[0..n), or n. */
static size_t
eol_scan(const uint8_t *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (p[i] == '\r' || p[i] == '\n')
			break;
	return i;
}

/*
 * Feed one run of line bytes (no CR, no LF) in the current state. A BOM
 * prefix that did not complete is fed through here too.
 */
static int
line_bytes(struct sse *s, const uint8_t *p, size_t n)
{
	size_t	i = 0;

	while (i < n) {
		switch (s->state) {
		case S_NAME:
			if (p[i] == ':') {
				i++;
				if (s->namelen == 0)
					s->state = S_IGNORE;
				else {
					field_start(s);
					s->state = s->field == F_NONE ?
					    S_IGNORE : S_SPACE;
				}
				break;
			}
			if (s->namelen < NAME_MAX_LEN)
				s->name[s->namelen] = (char)p[i];
			if (s->namelen < SIZE_MAX)
				s->namelen++;
			i++;
			break;
		case S_SPACE:
			if (p[i] == ' ')
				i++;
			s->state = S_VALUE;
			break;
		case S_VALUE:
			{
				int r = value_add(s, p + i, n - i);
				if (r != 0)
					return r;
			}
			i = n;
			break;
		case S_IGNORE:
			i = n;
			break;
		default:
			return SSE_E_TOO_LARGE;
		}
	}
	return 0;
}

int
sse_next(struct sse *s, const uint8_t *buf, size_t len, size_t *consumed,
    struct sse_event *ev)
{
	size_t	i = 0, n;
	int	r = SSE_NEED_MORE;

	*consumed = 0;
	if (s->state == S_BROKEN)
		return SSE_E_TOO_LARGE;
	while (i < len) {
		if (s->state == S_BOM) {
			if (buf[i] == bom[s->bom]) {
				i++;
				s->offset++;
				if (++s->bom == sizeof bom) {
					s->state = S_NAME;
					s->pending = s->offset;
				}
				continue;
			}
			/* Not a BOM: what matched was a field name's start. */
			s->state = S_NAME;
			if ((r = line_bytes(s, bom, s->bom)) != 0)
				goto out;
			continue;
		}
		if (s->after_cr) {
			s->after_cr = false;
			if (buf[i] == '\n') {
				/* The LF of a CRLF lies between lines: it is
				 * in no event unless one is under way. */
				if (s->pending == s->offset)
					s->pending++;
				i++;
				s->offset++;
				continue;
			}
		}
		if (buf[i] == '\r' || buf[i] == '\n') {
			s->after_cr = buf[i] == '\r';
			i++;
			s->offset++;
			if ((r = line_end(s, ev)) != 0)
				goto out;
			continue;
		}
		n = eol_scan(buf + i, len - i);
		if ((r = line_bytes(s, buf + i, n)) != 0)
			goto out;
		i += n;
		s->offset += n;
	}
	r = SSE_NEED_MORE;
 out:
	if (r < 0)
		s->state = S_BROKEN;
	*consumed = i;
	return r;
}
