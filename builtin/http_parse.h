/*
 * The one HTTP/1.x head parser: request heads from clients, response heads
 * from origins, and chunked framing. Pure functions over (bytes, length):
 * no allocation, no I/O; results are slices into the caller's buffer, which
 * must stay put while they are used. Every byte a client or origin sends
 * passes through here before anything acts on it.
 */
#ifndef BUILTIN_HTTP_PARSE_H
#define BUILTIN_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define HTTP_HEAD_MAX		(64 * 1024)	/* whole head, request line
						   included: over it -> 431 */
#define HTTP_MAX_HEADERS	128		/* more -> 431 */

/*
 * Return codes: > 0 is the head's length (through the blank line). The
 * parse functions zero their output on entry, except headers[] entries
 * past nheaders, which are left unspecified.
 */
enum http_parse_result {
	HTTP_NEED_MORE = -1,	/* a prefix of a valid head: read more */
	HTTP_E_TOO_LARGE = -2,	/* head or header count over limits: 431 */
	HTTP_E_SYNTAX = -3,	/* malformed line, token, CR, NUL, obs-fold */
	HTTP_E_VERSION = -4,	/* not HTTP/1.0 or HTTP/1.1: 505 */
	HTTP_E_FRAMING = -5,	/* duplicate/conflicting Content-Length,
				   Content-Length with Transfer-Encoding,
				   Transfer-Encoding not ending in chunked
				   (requests) or in HTTP/1.0, invalid
				   values */
	HTTP_E_TARGET = -6,	/* request-target form does not belong to
				   the method */
	HTTP_E_HOST = -7,	/* missing (1.1) or duplicate Host */
};

struct http_slice {
	const char	*p;
	size_t		 len;
};

struct http_header {
	struct http_slice name;		/* token, as sent */
	struct http_slice value;	/* leading/trailing OWS removed */
};

enum http_target_form {
	HTTP_FORM_ORIGIN,	/* /path?query */
	HTTP_FORM_ABSOLUTE,	/* http://authority/path?query */
	HTTP_FORM_AUTHORITY,	/* host:port, CONNECT only */
	HTTP_FORM_ASTERISK,	/* *, OPTIONS only */
};

enum http_body {
	HTTP_BODY_NONE,		/* no body */
	HTTP_BODY_LENGTH,	/* content_length bytes */
	HTTP_BODY_CHUNKED,	/* chunked framing (see http_chunked_*) */
	HTTP_BODY_CLOSE,	/* responses only: until the origin closes */
};

struct http_request {
	struct http_slice	 method;
	struct http_slice	 target;	/* as sent */
	enum http_target_form	 form;
	int			 minor;		/* HTTP/1.<minor>, 0 or 1 */
	/* Absolute form: scheme (any scheme, "http" for forwarding: the
	 * caller decides), authority ("host[:port]", never empty, never with
	 * userinfo), path (from the first '/' on, query included; a static
	 * "/" when absent; "scheme://host?query" is HTTP_E_TARGET). Origin
	 * form: path = target. Authority form ("host:port", port required):
	 * authority = target, path empty. Asterisk form: path empty. The
	 * parser checks the authority's shape only: addr_parse_authority()
	 * judges the host and port. */
	struct http_slice	 scheme;
	struct http_slice	 authority;
	struct http_slice	 path;
	struct http_slice	 host;		/* the Host header value (may
						   be empty; p NULL if none) */
	struct http_header	 headers[HTTP_MAX_HEADERS];
	size_t			 nheaders;
	enum http_body		 body;		/* NONE, LENGTH or CHUNKED */
	uint64_t		 content_length; /* body == LENGTH; else 0 */
	bool			 keep_alive;	/* per version and Connection */
	bool			 expect_continue;
};

struct http_response {
	int			 minor;
	int			 status;	/* 100..999 */
	struct http_slice	 reason;
	struct http_header	 headers[HTTP_MAX_HEADERS];
	size_t			 nheaders;
	enum http_body		 body;
	uint64_t		 content_length; /* body == LENGTH; else 0 */
	bool			 keep_alive;	/* false when body == CLOSE */
};

/*
 * Parse a request head at the start of buf: > 0 the head's length (with
 * up to 4 empty lines before the request line), HTTP_NEED_MORE for a valid
 * prefix, or an error. The result depends only on the bytes scanned, left
 * to right: a prefix of an input never gives a different error, and once
 * len >= HTTP_HEAD_MAX an incomplete head is HTTP_E_TOO_LARGE. Strict:
 * CRLF only (a bare CR or LF is HTTP_E_SYNTAX); Content-Length must be
 * 1*DIGIT <= 2^62 and appear once; Transfer-Encoding must end in chunked
 * (once) and is HTTP_E_FRAMING in HTTP/1.0 or with Content-Length. An
 * unsupported version is reported before the target's form is judged.
 * Each call rescans from buf: a caller reading a head in pieces should
 * call again only once "\r\n\r\n" has arrived past the previous end (or
 * the buffer holds HTTP_HEAD_MAX bytes), so that a peer dribbling bytes
 * costs linear, not quadratic, time. The same holds for responses.
 */
int	http_parse_request(const uint8_t *buf, size_t len,
	    struct http_request *req);

/*
 * Parse a response head. method_head: the request was HEAD; method_connect:
 * it was CONNECT. These decide the body (no body for HEAD, 1xx, 204, 304,
 * and 2xx to CONNECT). Otherwise Transfer-Encoding ending in chunked is
 * CHUNKED, any other Transfer-Encoding CLOSE, Content-Length LENGTH, none
 * CLOSE. Whatever the status, Content-Length must be valid and single,
 * chunked may appear only once and last, and Transfer-Encoding must not
 * come with Content-Length or in HTTP/1.0 (HTTP_E_FRAMING). The reason
 * phrase may be empty, with or without its SP. Host is not looked at.
 */
int	http_parse_response(const uint8_t *buf, size_t len, bool method_head,
	    bool method_connect, struct http_response *resp);

/* A one-line description of a negative result, for logs and error pages. */
const char *http_parse_strerror(int);

/* Case-insensitive header lookup; the first match or NULL. */
const struct http_header *http_header_find(const struct http_header *,
	    size_t, const char *name);

/*
 * True if the header must not be forwarded: the fixed hop-by-hop set
 * (Connection, Proxy-Connection, Keep-Alive, TE, Trailer, Upgrade,
 * Transfer-Encoding -- the caller re-frames the body --,
 * Proxy-Authorization, Proxy-Authenticate) and any name listed in any
 * Connection header (case-insensitive). Names are compared, never values.
 */
bool	http_is_hop_by_hop(const struct http_header *, size_t,
	    const struct http_header *);

/*
 * The same for a whole header list at once, in linear time: skip[i] is
 * set for every header that must not be forwarded.
 */
void	http_hop_by_hop_mark(const struct http_header *, size_t, bool *skip);

/* Case-insensitive comparison of a slice with a NUL-terminated string. */
bool	http_slice_eq(struct http_slice, const char *);

/*
 * Chunked framing, streamed: a decoder that says, for each run of bytes,
 * whether it is framing (sizes, extensions, CRLFs, trailers) or chunk data.
 * Forward verbatim by passing every run along; decode by keeping only data.
 */
struct http_chunked {
	int		state;
	uint64_t	remaining;	/* data bytes left in this chunk */
	size_t		line;		/* bytes in the current size/trailer
					   line, bounded */
	size_t		trailer;	/* trailer bytes so far, bounded */
	int		digits;
};

void	http_chunked_init(struct http_chunked *);

/*
 * Consume a prefix of buf: returns its length (> 0, or 0 when len is 0 or
 * the body is already complete), sets *is_data for whether those bytes are
 * chunk data. A run is all framing or all data: framing runs stop where
 * data starts and right after the final CRLF, so bytes after the body are
 * never consumed. Returns HTTP_E_SYNTAX or HTTP_E_TOO_LARGE on bad framing
 * (a chunk size over 16 hex digits, a size line over 4096 bytes, trailer
 * fields over 64 KiB); the decoder is then unusable. Whitespace is allowed
 * only around extension ";" and "=" (BWS), never after a bare size.
 */
ssize_t	http_chunked_step(struct http_chunked *, const uint8_t *buf,
	    size_t len, bool *is_data);

/* The last-chunk and trailer section have been consumed. */
bool	http_chunked_done(const struct http_chunked *);

#endif
