/*
 * The audit log (SPEC §8): one JSON object per line. Writes are buffered and
 * flushed on a short timer, when the buffer grows, and at exit; a failing
 * disk costs a warning and the lost events are counted, never the proxy.
 */
#ifndef BUILTIN_AUDIT_H
#define BUILTIN_AUDIT_H

#include <stdbool.h>
#include <stdint.h>

struct audit;
struct event_base;

/* An "llm" event's own fields. */
struct audit_llm {
	const char	*provider;
	const char	*model;		/* NULL: unknown */
	bool		 stream;
	bool		 estimated;
	uint64_t	 input;
	uint64_t	 output;
	uint64_t	 cache_read;
	uint64_t	 cache_write;
	long long	 ttfb_ms;	/* -1: no response */
};

struct audit_event {
	const char	*event;		/* connect, request, deny, error */
	const char	*door;		/* http, connect, socks5, ... */
	const char	*host;
	unsigned	 port;
	const char	*method;	/* NULL -> null */
	const char	*path;		/* query string already removed */
	size_t		 pathlen;
	const char	*decision;	/* allow, deny */
	const char	*rule;
	int		 status;	/* 0 -> null */
	uint64_t	 bytes_up;
	uint64_t	 bytes_down;
	long long	 ms;
	bool		 mitm;
	const char	*secret;	/* binding name, never a value */
	const char	*reason;
	const char	*upstream;	/* the corporate proxy used (no
					   password), or NULL: direct */
	const struct audit_llm *llm;	/* "llm" events, else NULL */
	const char	*sandbox;	/* the daemon's: whose; else NULL */
};

/* path "-" means stderr. NULL with errno when the file cannot be opened. */
struct audit	*audit_open(struct event_base *, const char *);
void		 audit_log(struct audit *, const struct audit_event *);
void		 audit_flush(struct audit *);
/* Flush and close; NULL is a no-op. */
void		 audit_close(struct audit *);

/*
 * Append s (len bytes, need not be NUL-terminated) to out as a JSON string
 * body: quotes, backslashes and controls escaped, invalid UTF-8 replaced by
 * U+FFFD. Returns the bytes written, at most outlen - 1; out is terminated.
 */
size_t		 audit_json_escape(char *out, size_t outlen, const char *s,
		    size_t len);

#endif
