/*
 * HTTP/1.x heads and chunked framing (RFC 9110, RFC 9112), parsed strictly:
 * the forwarder and the tunnel act only on what passes here. Pure: bytes
 * in, slices into those bytes and a result out; no allocation, one pass.
 */
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "builtin/http_parse.h"

#define EMPTY_LINES_MAX	4	/* CRLFs tolerated before a request line */
#define CL_MAX		(UINT64_C(1) << 62)
#define CHUNK_DIGITS_MAX 16	/* hex digits in a chunk size: 64 bits */
#define CHUNK_LINE_MAX	4096	/* chunk-size line, extensions included */
#define TRAILER_MAX	(64 * 1024)

/* Character classes, one table lookup per byte. */
#define C_TCHAR		0x01	/* token */
#define C_FIELD		0x02	/* field-value: VCHAR obs-text SP HTAB */
#define C_TARGET	0x04	/* request-target: VCHAR but '#' */
#define C_HEX		0x08
#define C_DIGIT		0x10
#define C_HOST		0x20	/* reg-name: unreserved sub-delims '%' */
#define C_SCHEME	0x40	/* ALPHA DIGIT '+' '-' '.' */
#define C_ALPHA		0x80

static const uint8_t ctype[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,	/* 0x00 */
	0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,	/* 0x08 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,	/* 0x10 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,	/* 0x18 */
	0x02, 0x27, 0x06, 0x03, 0x27, 0x27, 0x27, 0x27,	/* 0x20 */
	0x26, 0x26, 0x27, 0x67, 0x26, 0x67, 0x67, 0x06,	/* 0x28 */
	0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f,	/* 0x30 */
	0x7f, 0x7f, 0x06, 0x26, 0x06, 0x26, 0x06, 0x06,	/* 0x38 */
	0x06, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xe7,	/* 0x40 */
	0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7,	/* 0x48 */
	0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7,	/* 0x50 */
	0xe7, 0xe7, 0xe7, 0x06, 0x06, 0x06, 0x07, 0x27,	/* 0x58 */
	0x07, 0xef, 0xef, 0xef, 0xef, 0xef, 0xef, 0xe7,	/* 0x60 */
	0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7,	/* 0x68 */
	0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7, 0xe7,	/* 0x70 */
	0xe7, 0xe7, 0xe7, 0x06, 0x07, 0x06, 0x27, 0x00,	/* 0x78 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0x80 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0x88 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0x90 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0x98 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xa0 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xa8 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xb0 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xb8 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xc0 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xc8 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xd0 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xd8 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xe0 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xe8 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xf0 */
	0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02, 0x02,	/* 0xf8 */
};

#define IS(c, cls)	((ctype[(uint8_t)(c)] & (cls)) != 0)

/*
 * The cursor every wire byte is read through: p never passes end, which
 * is min(len, HTTP_HEAD_MAX) for a head.
 */
struct cursor {
	const uint8_t	*p;
	const uint8_t	*end;
};

/* What the header fields say about framing and the connection. */
struct fields {
	struct http_header	*h;		/* the caller's array */
	size_t			 n;
	bool			 request;
	int			 minor;
	int			 ncl;		/* Content-Length fields */
	uint64_t		 cl;
	bool			 te;		/* Transfer-Encoding seen */
	bool			 chunked;	/* its last coding is chunked */
	int			 nhost;
	struct http_slice	 host;
	bool			 close;		/* Connection: close */
	bool			 keep_alive;	/* Connection: keep-alive */
	bool			 expect_continue;
};

static inline bool
is_ws(uint8_t c)
{
	return c == ' ' || c == '\t';
}

static inline uint8_t
lower(uint8_t c)
{
	return (c >= 'A' && c <= 'Z') ? c | 0x20 : c;
}

/* Case-insensitive: n wire bytes against a lower-case literal. */
static bool
ieq(const uint8_t *p, size_t n, const char *lit, size_t litlen)
{
	if (n != litlen)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(p[i]) != (uint8_t)lit[i])
			return false;
	return true;
}

/* Case-insensitive: n bytes against n bytes. */
static bool
iequal(const uint8_t *a, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

#define IEQ(p, n, lit)	ieq((p), (n), (lit), sizeof(lit) - 1)

static inline struct http_slice
slice(const uint8_t *p, const uint8_t *e)
{
	struct http_slice s = { (const char *)p, (size_t)(e - p) };

	return s;
}

/* Advance over bytes of a class; returns where the run started. */
static inline const uint8_t *
cur_span(struct cursor *c, uint8_t cls)
{
	const uint8_t *start = c->p;

	while (c->p < c->end && IS(*c->p, cls))
		c->p++;
	return start;
}

/*
 * Field values and targets are most of a head: skip eight ordinary bytes
 * at a time. SWAR tests (Mycroft): a byte below n, a byte equal to m.
 */
#define ONES		UINT64_C(0x0101010101010101)
#define HIGHS		UINT64_C(0x8080808080808080)
#define HAS_LESS(x, n)	(((x) - ONES * (n)) & ~(x) & HIGHS)
#define HAS_BYTE(x, m)	HAS_LESS((x) ^ (ONES * (m)), 1)

static inline uint64_t
load64(const uint8_t *p)
{
	uint64_t x;

	memcpy(&x, p, sizeof x);
	return x;
}

/* Might these 8 bytes hold a CTL (HTAB included) or DEL? */
static inline bool
field_special(uint64_t x)
{
	return (HAS_LESS(x, 0x20) | HAS_BYTE(x, 0x7f)) != 0;
}

/* Might these 8 bytes hold anything but VCHAR, or '#'? */
static inline bool
target_special(uint64_t x)
{
	return ((x & HIGHS) | HAS_LESS(x, 0x21) | HAS_BYTE(x, 0x7f) |
	    HAS_BYTE(x, '#')) != 0;
}

/*
 * cur_span() for C_FIELD or C_TARGET: words without a suspect byte are
 * skipped whole, a word with one (an HTAB, the CR at the end) byte by byte.
 */
static inline const uint8_t *
cur_span_fast(struct cursor *c, uint8_t cls)
{
	const uint8_t	*start = c->p, *p = c->p, *end = c->end, *lim;

	for (;;) {
		if (cls == C_FIELD)
			while (end - p >= 8 && !field_special(load64(p)))
				p += 8;
		else
			while (end - p >= 8 && !target_special(load64(p)))
				p += 8;
		lim = end - p > 8 ? p + 8 : end;
		while (p < lim && IS(*p, cls))
			p++;
		if (p < lim || p == end)
			break;
	}
	c->p = p;
	return start;
}

/* A non-empty run of a class that must be followed by something more. */
static int
cur_token(struct cursor *c, uint8_t cls, const uint8_t **start)
{
	*start = cur_span(c, cls);
	if (c->p == c->end)
		return HTTP_NEED_MORE;
	if (c->p == *start)
		return HTTP_E_SYNTAX;
	return 0;
}

/* Consume one given byte: 0, need more at the end, syntax otherwise. */
static inline int
cur_byte(struct cursor *c, uint8_t ch)
{
	if (c->p == c->end)
		return HTTP_NEED_MORE;
	if (*c->p != ch)
		return HTTP_E_SYNTAX;
	c->p++;
	return 0;
}

static inline int
cur_crlf(struct cursor *c)
{
	int r;

	if ((r = cur_byte(c, '\r')) != 0)
		return r;
	return cur_byte(c, '\n');
}

static int
cur_digit(struct cursor *c, int *d)
{
	if (c->p == c->end)
		return HTTP_NEED_MORE;
	if (!IS(*c->p, C_DIGIT))
		return HTTP_E_SYNTAX;
	*d = *c->p++ - '0';
	return 0;
}

/*
 * "HTTP/" DIGIT "." DIGIT. A well-formed version other than 1.0 or 1.1
 * sets *supported false: the caller says so once the line is complete,
 * so that the error never depends on how much of the line has arrived.
 */
static int
parse_version(struct cursor *c, int *minor, bool *supported)
{
	static const char	 name[] = "HTTP/";
	int			 major, r;

	for (size_t i = 0; i < sizeof(name) - 1; i++)
		if ((r = cur_byte(c, (uint8_t)name[i])) != 0)
			return r;
	if ((r = cur_digit(c, &major)) != 0 ||
	    (r = cur_byte(c, '.')) != 0 ||
	    (r = cur_digit(c, minor)) != 0)
		return r;
	*supported = major == 1 && *minor <= 1;
	return 0;
}

/*
 * The next element of a comma-separated list, OWS trimmed (possibly
 * empty); false when the list is exhausted. *pos is NULL at the end.
 */
static bool
list_next(const uint8_t **pos, const uint8_t *end, const uint8_t **elem,
    size_t *elen)
{
	const uint8_t *p = *pos, *s, *t;

	if (p == NULL)
		return false;
	s = p;
	while (p < end && *p != ',')
		p++;
	t = p;
	*pos = p < end ? p + 1 : NULL;
	while (s < t && is_ws(*s))
		s++;
	while (t > s && is_ws(t[-1]))
		t--;
	*elem = s;
	*elen = (size_t)(t - s);
	return true;
}

/* 1*DIGIT, at most CL_MAX; anything else (a sign, a list) is framing. */
static int
parse_content_length(const uint8_t *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return HTTP_E_FRAMING;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (!IS(p[i], C_DIGIT))
			return HTTP_E_FRAMING;
		d = p[i] - '0';
		if (v > (CL_MAX - d) / 10)
			return HTTP_E_FRAMING;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/*
 * Transfer-Encoding = #( token *( OWS ";" OWS parameter ) ). chunked must
 * be the last coding of all the fields together and appear once, without
 * parameters; an element that is not a coding is a framing error.
 */
static int
parse_transfer_encoding(struct fields *f, const uint8_t *v, size_t n)
{
	const uint8_t	*pos = v, *e;
	size_t		 elen, tlen;

	if (f->minor == 0 || f->ncl > 0)
		return HTTP_E_FRAMING;
	f->te = true;
	while (list_next(&pos, v + n, &e, &elen)) {
		if (elen == 0)
			continue;	/* empty elements are allowed */
		for (tlen = 0; tlen < elen && IS(e[tlen], C_TCHAR); tlen++)
			;
		if (tlen == 0)
			return HTTP_E_FRAMING;
		if (tlen < elen) {
			size_t i = tlen;

			while (i < elen && is_ws(e[i]))
				i++;
			if (i == elen || e[i] != ';')
				return HTTP_E_FRAMING;
		}
		if (f->chunked)
			return HTTP_E_FRAMING;	/* a coding after chunked */
		if (IEQ(e, tlen, "chunked")) {
			if (tlen < elen)
				return HTTP_E_FRAMING;
			f->chunked = true;
		}
	}
	return 0;
}

static void
parse_connection(struct fields *f, const uint8_t *v, size_t n)
{
	const uint8_t	*pos = v, *e;
	size_t		 elen;

	while (list_next(&pos, v + n, &e, &elen)) {
		if (IEQ(e, elen, "close"))
			f->close = true;
		else if (IEQ(e, elen, "keep-alive"))
			f->keep_alive = true;
	}
}

/* Act on the fields that frame the message, as each one completes. */
static int
field_check(struct fields *f, const struct http_header *h)
{
	const uint8_t	*n = (const uint8_t *)h->name.p;
	const uint8_t	*v = (const uint8_t *)h->value.p;
	size_t		 vlen = h->value.len;

	switch (h->name.len) {
	case 4:
		if (f->request && IEQ(n, 4, "host")) {
			if (++f->nhost > 1)
				return HTTP_E_HOST;
			f->host = h->value;
		}
		break;
	case 6:
		if (f->request && IEQ(n, 6, "expect") &&
		    IEQ(v, vlen, "100-continue"))
			f->expect_continue = true;
		break;
	case 10:
		if (IEQ(n, 10, "connection"))
			parse_connection(f, v, vlen);
		break;
	case 14:
		if (IEQ(n, 14, "content-length")) {
			if (f->ncl++ > 0 || f->te)
				return HTTP_E_FRAMING;
			return parse_content_length(v, vlen, &f->cl);
		}
		break;
	case 17:
		if (IEQ(n, 17, "transfer-encoding"))
			return parse_transfer_encoding(f, v, vlen);
		break;
	}
	return 0;
}

/*
 * field-line CRLF ... CRLF: name ":" OWS value OWS. The name is a token
 * right up to the colon; a line starting with whitespace (obs-fold), a
 * bare CR or LF, or a CTL in a value is a syntax error.
 */
static int
parse_fields(struct cursor *c, struct fields *f)
{
	const uint8_t	*name, *v, *ve;
	int		 r;

	for (;;) {
		if (c->p == c->end)
			return HTTP_NEED_MORE;
		if (*c->p == '\r') {
			c->p++;
			return cur_byte(c, '\n');
		}
		if (f->n == HTTP_MAX_HEADERS)
			return HTTP_E_TOO_LARGE;
		if ((r = cur_token(c, C_TCHAR, &name)) != 0)
			return r;
		f->h[f->n].name = slice(name, c->p);
		if ((r = cur_byte(c, ':')) != 0)
			return r;
		while (c->p < c->end && is_ws(*c->p))
			c->p++;
		v = cur_span_fast(c, C_FIELD);
		ve = c->p;
		if ((r = cur_crlf(c)) != 0)
			return r;
		while (ve > v && is_ws(ve[-1]))
			ve--;
		f->h[f->n].value = slice(v, ve);
		if ((r = field_check(f, &f->h[f->n])) != 0)
			return r;
		f->n++;
	}
}

static bool
fields_keep_alive(const struct fields *f)
{
	if (f->close)
		return false;
	return f->minor >= 1 || f->keep_alive;
}

/* A head that is not complete within HTTP_HEAD_MAX bytes never will be. */
static int
finish(int r, size_t len)
{
	if (r == HTTP_NEED_MORE && len >= HTTP_HEAD_MAX)
		return HTTP_E_TOO_LARGE;
	return r;
}

static void
cur_init(struct cursor *c, const uint8_t *buf, size_t len)
{
	c->p = buf;
	c->end = buf + (len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX);
}

/*
 * authority = host [ ":" port ]: an IP-literal in brackets or a reg-name,
 * port 1..5 digits (the number, the name and percent-encoding are judged
 * by addr_parse_authority). No userinfo: "a@b" is an error here, so that
 * nothing downstream can be fooled by http://allowed@evil/.
 */
static bool
authority_ok(const uint8_t *p, size_t n, bool need_port)
{
	size_t i = 0, digits;

	if (n > 0 && p[0] == '[') {
		for (i = 1; i < n && p[i] != ']'; i++)
			if (!IS(p[i], C_HEX) && p[i] != ':' && p[i] != '.')
				return false;
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		while (i < n && IS(p[i], C_HOST))
			i++;
	}
	if (i == 0)
		return false;
	if (i == n)
		return !need_port;
	if (p[i++] != ':')
		return false;
	for (digits = 0; i < n && IS(p[i], C_DIGIT); i++)
		digits++;
	return i == n && digits >= 1 && digits <= 5;
}

static bool
method_is(struct http_slice m, const char *s, size_t n)
{
	return m.len == n && memcmp(m.p, s, n) == 0;	/* case-sensitive */
}

/*
 * Which form the target takes, and whether it belongs to the method:
 * CONNECT takes authority-form only, "*" is for OPTIONS only, everything
 * else takes origin-form or absolute-form scheme "://" authority [ path ].
 */
static int
parse_target(struct http_request *req)
{
	static const char	 slash[] = "/";
	const uint8_t		*t = (const uint8_t *)req->target.p;
	const uint8_t		*end = t + req->target.len, *p, *a;

	if (method_is(req->method, "CONNECT", 7)) {
		if (!authority_ok(t, req->target.len, true))
			return HTTP_E_TARGET;
		req->form = HTTP_FORM_AUTHORITY;
		req->authority = req->target;
		return 0;
	}
	if (t[0] == '/') {
		req->form = HTTP_FORM_ORIGIN;
		req->path = req->target;
		return 0;
	}
	if (req->target.len == 1 && t[0] == '*') {
		if (!method_is(req->method, "OPTIONS", 7))
			return HTTP_E_TARGET;
		req->form = HTTP_FORM_ASTERISK;
		return 0;
	}
	if (!IS(t[0], C_ALPHA))
		return HTTP_E_TARGET;
	for (p = t + 1; p < end && IS(*p, C_SCHEME); p++)
		;
	req->scheme = slice(t, p);
	if (end - p < 3 || memcmp(p, "://", 3) != 0)
		return HTTP_E_TARGET;
	for (a = p += 3; p < end && *p != '/' && *p != '?'; p++)
		;
	if (!authority_ok(a, (size_t)(p - a), false))
		return HTTP_E_TARGET;
	req->authority = slice(a, p);
	if (p == end)
		req->path = slice((const uint8_t *)slash,
		    (const uint8_t *)slash + 1);
	else if (*p == '?')
		return HTTP_E_TARGET;	/* no path to put the query on */
	else
		req->path = slice(p, end);
	req->form = HTTP_FORM_ABSOLUTE;
	return 0;
}

static int
parse_request(struct cursor *c, struct http_request *req)
{
	struct fields	 f;
	const uint8_t	*m, *t;
	bool		 supported;
	int		 r;

	/* RFC 9112 2.2: ignore a few empty lines before the request-line. */
	for (int i = 0; c->p < c->end && *c->p == '\r'; i++) {
		if (i == EMPTY_LINES_MAX)
			return HTTP_E_SYNTAX;
		if ((r = cur_crlf(c)) != 0)
			return r;
	}
	if ((r = cur_token(c, C_TCHAR, &m)) != 0)
		return r;
	req->method = slice(m, c->p);
	if ((r = cur_byte(c, ' ')) != 0)
		return r;
	t = cur_span_fast(c, C_TARGET);
	if (c->p == c->end)
		return HTTP_NEED_MORE;
	if (c->p == t)
		return HTTP_E_SYNTAX;
	req->target = slice(t, c->p);
	if ((r = cur_byte(c, ' ')) != 0 ||
	    (r = parse_version(c, &req->minor, &supported)) != 0 ||
	    (r = cur_crlf(c)) != 0)
		return r;
	/* Another version's request is not judged by HTTP/1.1's rules. */
	if (!supported)
		return HTTP_E_VERSION;
	if ((r = parse_target(req)) != 0)
		return r;

	memset(&f, 0, sizeof f);
	f.h = req->headers;
	f.request = true;
	f.minor = req->minor;
	if ((r = parse_fields(c, &f)) != 0)
		return r;
	req->nheaders = f.n;

	if (f.te) {
		if (!f.chunked)
			return HTTP_E_FRAMING;
		req->body = HTTP_BODY_CHUNKED;
	} else if (f.ncl > 0) {
		req->body = HTTP_BODY_LENGTH;
		req->content_length = f.cl;
	} else
		req->body = HTTP_BODY_NONE;
	if (f.nhost == 0 && req->minor >= 1)
		return HTTP_E_HOST;
	req->host = f.host;
	req->keep_alive = fields_keep_alive(&f);
	req->expect_continue = f.expect_continue;
	return 0;
}

int
http_parse_request(const uint8_t *buf, size_t len, struct http_request *req)
{
	struct cursor	c;
	int		r;

	/* Zero all but headers[], only [0, nheaders) of which is ever set:
	 * 4 KiB less to clear for every head. */
	memset(req, 0, offsetof(struct http_request, headers));
	memset(&req->nheaders, 0,
	    sizeof *req - offsetof(struct http_request, nheaders));
	cur_init(&c, buf, len);
	if ((r = parse_request(&c, req)) != 0)
		return finish(r, len);
	return (int)(c.p - buf);
}

static int
parse_response(struct cursor *c, bool method_head, bool method_connect,
    struct http_response *resp)
{
	struct fields	 f;
	const uint8_t	*reason;
	bool		 supported;
	int		 d, r;

	if ((r = parse_version(c, &resp->minor, &supported)) != 0 ||
	    (r = cur_byte(c, ' ')) != 0)
		return r;
	for (int i = 0; i < 3; i++) {
		if ((r = cur_digit(c, &d)) != 0)
			return r;
		resp->status = resp->status * 10 + d;
	}
	if (resp->status < 100)
		return HTTP_E_SYNTAX;
	/* Tolerate "HTTP/1.1 200\r\n": no SP before an empty reason. */
	reason = c->p;
	if (c->p < c->end && *c->p == ' ') {
		c->p++;
		reason = cur_span_fast(c, C_FIELD);
	}
	resp->reason = slice(reason, c->p);
	if ((r = cur_crlf(c)) != 0)
		return r;
	if (!supported)
		return HTTP_E_VERSION;

	memset(&f, 0, sizeof f);
	f.h = resp->headers;
	f.minor = resp->minor;
	if ((r = parse_fields(c, &f)) != 0)
		return r;
	resp->nheaders = f.n;

	/* RFC 9112 6.3, in order. */
	if (method_head || resp->status < 200 || resp->status == 204 ||
	    resp->status == 304 ||
	    (method_connect && resp->status / 100 == 2))
		resp->body = HTTP_BODY_NONE;
	else if (f.te)
		resp->body = f.chunked ? HTTP_BODY_CHUNKED : HTTP_BODY_CLOSE;
	else if (f.ncl > 0) {
		resp->body = HTTP_BODY_LENGTH;
		resp->content_length = f.cl;
	} else
		resp->body = HTTP_BODY_CLOSE;
	resp->keep_alive = fields_keep_alive(&f) &&
	    resp->body != HTTP_BODY_CLOSE;
	return 0;
}

int
http_parse_response(const uint8_t *buf, size_t len, bool method_head,
    bool method_connect, struct http_response *resp)
{
	struct cursor	c;
	int		r;

	memset(resp, 0, offsetof(struct http_response, headers));
	memset(&resp->nheaders, 0,
	    sizeof *resp - offsetof(struct http_response, nheaders));
	cur_init(&c, buf, len);
	if ((r = parse_response(&c, method_head, method_connect, resp)) != 0)
		return finish(r, len);
	return (int)(c.p - buf);
}

const char *
http_parse_strerror(int code)
{
	switch (code) {
	case HTTP_NEED_MORE:
		return "incomplete message head";
	case HTTP_E_TOO_LARGE:
		return "header section too large";
	case HTTP_E_SYNTAX:
		return "malformed message";
	case HTTP_E_VERSION:
		return "HTTP version not supported";
	case HTTP_E_FRAMING:
		return "invalid or conflicting message framing";
	case HTTP_E_TARGET:
		return "request-target does not fit the method";
	case HTTP_E_HOST:
		return "missing or duplicate Host header";
	}
	return "unknown HTTP parse error";
}

bool
http_slice_eq(struct http_slice s, const char *str)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (str[i] == '\0' ||
		    lower((uint8_t)s.p[i]) != lower((uint8_t)str[i]))
			return false;
	return str[i] == '\0';
}

const struct http_header *
http_header_find(const struct http_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (http_slice_eq(h[i].name, name))
			return &h[i];
	return NULL;
}

bool
http_is_hop_by_hop(const struct http_header *h, size_t n,
    const struct http_header *which)
{
	static const struct {
		const char	*name;
		size_t		 len;
	} fixed[] = {
		{ "te", 2 }, { "trailer", 7 }, { "upgrade", 7 },
		{ "connection", 10 }, { "keep-alive", 10 },
		{ "proxy-connection", 16 }, { "transfer-encoding", 17 },
		{ "proxy-authenticate", 18 }, { "proxy-authorization", 19 },
	};
	const uint8_t	*pos, *end, *e;
	size_t		 elen, len = which->name.len;

	/* Every request and response header comes through here: compare
	 * lengths before bytes. */
	if (len == 0)
		return false;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (fixed[i].len == len && iequal((const uint8_t *)
		    which->name.p, (const uint8_t *)fixed[i].name, len))
			return true;
	for (size_t i = 0; i < n; i++) {
		if (h[i].name.len != 10 || h[i].value.len == 0 ||
		    !iequal((const uint8_t *)h[i].name.p,
		    (const uint8_t *)"connection", 10))
			continue;
		pos = (const uint8_t *)h[i].value.p;
		end = pos + h[i].value.len;
		while (list_next(&pos, end, &e, &elen))
			if (elen == len &&
			    iequal(e, (const uint8_t *)which->name.p, elen))
				return true;
	}
	return false;
}

void
http_hop_by_hop_mark(const struct http_header *h, size_t n, bool *skip)
{
	const uint8_t	*pos, *end, *e;
	size_t		 elen;

	for (size_t i = 0; i < n; i++)
		skip[i] = false;
	for (size_t i = 0; i < n; i++) {
		if (http_is_hop_by_hop(h + i, 1, h + i)) {
			skip[i] = true;
			if (h[i].name.len != 10 || !iequal((const uint8_t *)
			    h[i].name.p, (const uint8_t *)"connection", 10))
				continue;
			/* Connection names more fields that end here. */
			pos = (const uint8_t *)h[i].value.p;
			end = pos + h[i].value.len;
			while (list_next(&pos, end, &e, &elen))
				for (size_t j = 0; j < n; j++)
					if (h[j].name.len == elen &&
					    iequal(e, (const uint8_t *)
					    h[j].name.p, elen))
						skip[j] = true;
		}
	}
}

/*
 * Chunked framing (RFC 9112 7.1), one byte at a time through the framing
 * and in one piece through the data:
 *
 *   chunk-size [ chunk-ext ] CRLF data CRLF ... "0" [ chunk-ext ] CRLF
 *   *( field-line CRLF ) CRLF
 *   chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted ) ] )
 *
 * The order matters: chunk_byte() bounds the size line by counting the
 * bytes seen in the states up to CH_SIZE_LF, and the trailer section by
 * those from CH_TRAILER_START on.
 */
enum chunk_state {
	CH_SIZE_START,		/* the first hex digit */
	CH_SIZE,		/* more hex digits */
	CH_EXT_BWS,		/* whitespace before ";" */
	CH_EXT_NAME_START,	/* after ";" */
	CH_EXT_NAME,
	CH_EXT_NAME_BWS,	/* whitespace after a name: "=" or ";" next */
	CH_EXT_VAL_START,	/* after "=" */
	CH_EXT_VAL,		/* token value */
	CH_EXT_QUOTED,		/* inside a quoted value */
	CH_EXT_QUOTED_PAIR,	/* after a backslash */
	CH_EXT_VAL_END,		/* after the closing quote */
	CH_SIZE_LF,		/* the CR ending the size line was read */
	CH_DATA,
	CH_DATA_CR,
	CH_DATA_LF,
	CH_TRAILER_START,	/* a field line or the final CRLF */
	CH_TRAILER_NAME,
	CH_TRAILER_VALUE,
	CH_TRAILER_LF,
	CH_END_LF,
	CH_DONE,
};

void
http_chunked_init(struct http_chunked *ch)
{
	memset(ch, 0, sizeof *ch);
	ch->state = CH_SIZE_START;
}

bool
http_chunked_done(const struct http_chunked *ch)
{
	return ch->state == CH_DONE;
}

/* One framing byte; 0 or an error. */
static int
chunk_byte(struct http_chunked *ch, uint8_t b)
{
	int s = ch->state;

	if (s <= CH_SIZE_LF && ++ch->line > CHUNK_LINE_MAX)
		return HTTP_E_TOO_LARGE;
	if (s >= CH_TRAILER_START && ++ch->trailer > TRAILER_MAX)
		return HTTP_E_TOO_LARGE;

	switch (s) {
	case CH_SIZE_START:
	case CH_SIZE:
		if (IS(b, C_HEX)) {
			if (ch->digits++ == CHUNK_DIGITS_MAX)
				return HTTP_E_TOO_LARGE;
			ch->remaining = ch->remaining << 4 |
			    (uint64_t)(IS(b, C_DIGIT) ? b - '0' :
			    lower(b) - 'a' + 10);
			ch->state = CH_SIZE;
			return 0;
		}
		if (s == CH_SIZE_START)
			return HTTP_E_SYNTAX;
		if (b == '\r')
			ch->state = CH_SIZE_LF;
		else if (b == ';')
			ch->state = CH_EXT_NAME_START;
		else if (is_ws(b))
			ch->state = CH_EXT_BWS;
		else
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_BWS:
		if (b == ';')
			ch->state = CH_EXT_NAME_START;
		else if (!is_ws(b))
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_NAME_START:
		if (IS(b, C_TCHAR))
			ch->state = CH_EXT_NAME;
		else if (!is_ws(b))
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_NAME:
	case CH_EXT_NAME_BWS:
		if (s == CH_EXT_NAME && IS(b, C_TCHAR))
			return 0;
		if (s == CH_EXT_NAME && b == '\r')
			ch->state = CH_SIZE_LF;
		else if (b == '=')
			ch->state = CH_EXT_VAL_START;
		else if (b == ';')
			ch->state = CH_EXT_NAME_START;
		else if (is_ws(b))
			ch->state = CH_EXT_NAME_BWS;
		else
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_VAL_START:
		if (IS(b, C_TCHAR))
			ch->state = CH_EXT_VAL;
		else if (b == '"')
			ch->state = CH_EXT_QUOTED;
		else if (!is_ws(b))
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_VAL:
	case CH_EXT_VAL_END:
		if (s == CH_EXT_VAL && IS(b, C_TCHAR))
			return 0;
		if (b == '\r')
			ch->state = CH_SIZE_LF;
		else if (b == ';')
			ch->state = CH_EXT_NAME_START;
		else if (is_ws(b))
			ch->state = CH_EXT_BWS;
		else
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_QUOTED:
		/* qdtext: HTAB SP VCHAR obs-text, but '"' and '\' */
		if (b == '"')
			ch->state = CH_EXT_VAL_END;
		else if (b == '\\')
			ch->state = CH_EXT_QUOTED_PAIR;
		else if (!IS(b, C_FIELD))
			return HTTP_E_SYNTAX;
		return 0;
	case CH_EXT_QUOTED_PAIR:
		if (!IS(b, C_FIELD))
			return HTTP_E_SYNTAX;
		ch->state = CH_EXT_QUOTED;
		return 0;
	case CH_SIZE_LF:
		if (b != '\n')
			return HTTP_E_SYNTAX;
		ch->state = ch->remaining > 0 ? CH_DATA : CH_TRAILER_START;
		return 0;
	case CH_DATA_CR:
		if (b != '\r')
			return HTTP_E_SYNTAX;
		ch->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (b != '\n')
			return HTTP_E_SYNTAX;
		ch->state = CH_SIZE_START;
		ch->line = 0;
		ch->digits = 0;
		return 0;
	case CH_TRAILER_START:
		if (b == '\r')
			ch->state = CH_END_LF;
		else if (IS(b, C_TCHAR))
			ch->state = CH_TRAILER_NAME;
		else
			return HTTP_E_SYNTAX;
		return 0;
	case CH_TRAILER_NAME:
		if (b == ':')
			ch->state = CH_TRAILER_VALUE;
		else if (!IS(b, C_TCHAR))
			return HTTP_E_SYNTAX;
		return 0;
	case CH_TRAILER_VALUE:
		if (b == '\r')
			ch->state = CH_TRAILER_LF;
		else if (!IS(b, C_FIELD))
			return HTTP_E_SYNTAX;
		return 0;
	case CH_TRAILER_LF:
		if (b != '\n')
			return HTTP_E_SYNTAX;
		ch->state = CH_TRAILER_START;
		return 0;
	case CH_END_LF:
		if (b != '\n')
			return HTTP_E_SYNTAX;
		ch->state = CH_DONE;
		return 0;
	}
	return HTTP_E_SYNTAX;	/* CH_DATA, CH_DONE: not framing */
}

ssize_t
http_chunked_step(struct http_chunked *ch, const uint8_t *buf, size_t len,
    bool *is_data)
{
	size_t	i;
	int	r;

	*is_data = false;
	if (len == 0 || ch->state == CH_DONE)
		return 0;
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	if (ch->state == CH_DATA) {
		if ((uint64_t)len > ch->remaining)
			len = (size_t)ch->remaining;
		ch->remaining -= len;
		if (ch->remaining == 0)
			ch->state = CH_DATA_CR;
		*is_data = true;
		return (ssize_t)len;
	}
	for (i = 0; i < len; i++) {
		if ((r = chunk_byte(ch, buf[i])) != 0)
			return r;
		if (ch->state == CH_DATA || ch->state == CH_DONE) {
			i++;
			break;
		}
	}
	return (ssize_t)i;
}
