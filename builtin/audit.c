/*
 * Audit events as JSON Lines. Each event is formatted into a line buffer
 * and appended to an evbuffer; the evbuffer is written out when it passes
 * a size, on a 200 ms timer, and at exit. Nothing here may stop the proxy:
 * a write error is reported once and the events are counted as lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "builtin/audit.h"
#include "common/log.h"
#include "common/xmalloc.h"

#define AUDIT_FLUSH_BYTES	(64 * 1024)
#define AUDIT_FLUSH_MS		200
#define AUDIT_LINE_MAX		8192
#define AUDIT_VALUE_MAX		1024	/* longer values are cut */

struct audit {
	int		 fd;
	bool		 own_fd;
	bool		 failing;	/* a write failed; warned once */
	size_t		 tail;		/* bytes of an unfinished line at
					   the end of the file */
	uint64_t	 lost;
	char		*path;
	struct evbuffer	*buf;
	struct event	*timer;
};

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	audit_flush(arg);
}

struct audit *
audit_open(struct event_base *base, const char *path)
{
	struct audit	*a;
	int		 fd;

	if (strcmp(path, "-") == 0)
		fd = STDERR_FILENO;
	else if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	    0600)) == -1)
		return NULL;
	a = xcalloc(1, sizeof *a);
	a->fd = fd;
	a->own_fd = fd != STDERR_FILENO;
	a->path = xstrdup(path);
	a->buf = evbuffer_new();
	a->timer = evtimer_new(base, on_timer, a);
	return a;
}

void
audit_flush(struct audit *a)
{
	if (a == NULL)
		return;
	/* A line cut short by an earlier failure that could not be taken
	 * back: end it, so the next event starts a line of its own. */
	if (a->tail > 0 && evbuffer_get_length(a->buf) > 0)
		evbuffer_prepend(a->buf, "\n", 1);
	while (evbuffer_get_length(a->buf) > 0) {
		size_t		 len = evbuffer_get_length(a->buf);
		const char	*p = (const char *)evbuffer_pullup(a->buf, -1);
		const char	*nl;
		ssize_t		 n = write(a->fd, p, len);
		struct stat	 st;

		if (n > 0) {
			/* Does the file end mid-line now? */
			nl = memrchr(p, '\n', (size_t)n);
			a->tail = nl != NULL ? (size_t)(p + n - 1 - nl) :
			    a->tail + (size_t)n;
			evbuffer_drain(a->buf, (size_t)n);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (!a->failing)
			log_warn("audit log %s: write failed: %s; events are "
			    "lost until it recovers (the proxy carries on)",
			    a->path, n == 0 ? "no progress" : strerror(errno));
		a->failing = true;
		a->lost++;	/* at least one; lines are not counted here */
		evbuffer_drain(a->buf, evbuffer_get_length(a->buf));
		/* Take back the part of a line that fitted: every line in
		 * the file stays one JSON object. */
		if (a->tail > 0 && a->own_fd && fstat(a->fd, &st) == 0 &&
		    (off_t)a->tail <= st.st_size &&
		    ftruncate(a->fd, st.st_size - (off_t)a->tail) == 0)
			a->tail = 0;
		return;
	}
	if (a->failing) {
		log_warn("audit log %s: writing again", a->path);
		a->failing = false;
	}
}

/* Length of a valid UTF-8 sequence at s, or 0. */
static size_t
utf8_len(const unsigned char *s, size_t len)
{
	unsigned	c = s[0];
	size_t		n;
	uint32_t	cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

size_t
audit_json_escape(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < len;) {
		unsigned char	c = (unsigned char)s[i];
		char		esc[8];
		size_t		n = 0, u;

		if (c == '"' || c == '\\') {
			esc[n++] = '\\';
			esc[n++] = (char)c;
			u = 1;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
			u = 1;
		} else if ((u = utf8_len((const unsigned char *)s + i,
		    len - i)) == 0) {
			memcpy(esc, "\xef\xbf\xbd", 3);	/* U+FFFD */
			n = 3;
			u = 1;
		} else {
			if (o + u >= outlen)
				break;
			memcpy(out + o, s + i, u);
			o += u;
			i += u;
			continue;
		}
		if (o + n >= outlen)
			break;
		memcpy(out + o, esc, n);
		o += n;
		i += u;
	}
	out[o] = '\0';
	return o;
}

/* Append "key":"value" (or null) to line at *off. */
static void
put_str(char *line, size_t *off, const char *key, const char *v, size_t vlen)
{
	int n;

	if (*off >= AUDIT_LINE_MAX - 64)
		return;
	if (v == NULL) {
		n = snprintf(line + *off, AUDIT_LINE_MAX - *off, ",\"%s\":null",
		    key);
		*off += (size_t)n;
		return;
	}
	if (vlen > AUDIT_VALUE_MAX)
		vlen = AUDIT_VALUE_MAX;
	n = snprintf(line + *off, AUDIT_LINE_MAX - *off, ",\"%s\":\"", key);
	*off += (size_t)n;
	*off += audit_json_escape(line + *off, AUDIT_LINE_MAX - 8 - *off, v,
	    vlen);
	line[(*off)++] = '"';
	line[*off] = '\0';
}

static void
put_num(char *line, size_t *off, const char *key, long long v, bool null)
{
	int n;

	if (null)
		n = snprintf(line + *off, AUDIT_LINE_MAX - *off, ",\"%s\":null",
		    key);
	else
		n = snprintf(line + *off, AUDIT_LINE_MAX - *off, ",\"%s\":%lld",
		    key, v);
	if (n > 0 && (size_t)n < AUDIT_LINE_MAX - *off)
		*off += (size_t)n;
}

#define STR(k, v) put_str(line, &off, k, v, (v) ? strlen(v) : 0)

void
audit_log(struct audit *a, const struct audit_event *e)
{
	char		line[AUDIT_LINE_MAX];
	struct timeval	tv;
	struct tm	tm;
	size_t		off;
	int		n;

	if (a == NULL)
		return;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof line, "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:"
	    "%02d.%03ldZ\"", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
	off = (size_t)n;
	STR("event", e->event);
	STR("door", e->door);
	STR("host", e->host);
	put_num(line, &off, "port", e->port, e->port == 0);
	STR("method", e->method);
	put_str(line, &off, "path", e->path, e->pathlen);
	STR("decision", e->decision);
	STR("rule", e->rule);
	put_num(line, &off, "status", e->status, e->status == 0);
	put_num(line, &off, "bytes_up", (long long)e->bytes_up, false);
	put_num(line, &off, "bytes_down", (long long)e->bytes_down, false);
	put_num(line, &off, "ms", e->ms, false);
	n = snprintf(line + off, sizeof line - off, ",\"mitm\":%s",
	    e->mitm ? "true" : "false");
	off += (size_t)n;
	STR("secret", e->secret);
	STR("reason", e->reason);
	STR("upstream", e->upstream);
	if (e->sandbox != NULL)
		STR("sandbox", e->sandbox);
	if (e->llm != NULL) {
		const struct audit_llm *l = e->llm;

		STR("provider", l->provider);
		STR("model", l->model);
		n = snprintf(line + off, sizeof line - off, ",\"stream\":%s,"
		    "\"estimated\":%s", l->stream ? "true" : "false",
		    l->estimated ? "true" : "false");
		if (n > 0 && (size_t)n < sizeof line - off)
			off += (size_t)n;
		put_num(line, &off, "input_tokens", (long long)l->input, false);
		put_num(line, &off, "output_tokens", (long long)l->output,
		    false);
		put_num(line, &off, "cache_read_tokens",
		    (long long)l->cache_read, false);
		put_num(line, &off, "cache_write_tokens",
		    (long long)l->cache_write, false);
		put_num(line, &off, "ttfb_ms", l->ttfb_ms, l->ttfb_ms < 0);
	}
	if (off > sizeof line - 3)
		off = sizeof line - 3;
	line[off++] = '}';
	line[off++] = '\n';
	evbuffer_add(a->buf, line, off);
	if (!a->own_fd || evbuffer_get_length(a->buf) >= AUDIT_FLUSH_BYTES)
		audit_flush(a);
	else if (!evtimer_pending(a->timer, NULL)) {
		struct timeval t = { 0, AUDIT_FLUSH_MS * 1000 };
		evtimer_add(a->timer, &t);
	}
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	audit_flush(a);
	if (a->lost > 0)
		log_warn("audit log %s: some events were lost (write errors)",
		    a->path);
	if (a->own_fd)
		close(a->fd);
	event_free(a->timer);
	evbuffer_free(a->buf);
	free(a->path);
	free(a);
}
