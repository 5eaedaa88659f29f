/*
 * Fuzz http_parse_request: no crash, no read past the input, and what a
 * caller relies on: slices inside the head, framing that agrees with the
 * header fields, and the same answer however the bytes arrive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/http_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(x)	do { if (!(x)) __builtin_trap(); } while (0)
#define PREFIX_ALL	1024	/* check every prefix of heads this short */

static struct http_request	req, req2;

static int
is_tchar(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z') || (c != '\0' &&
	    strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A slice lies in [base, base + len), or is empty and NULL. */
static void
check_slice(struct http_slice s, const uint8_t *base, size_t len)
{
	const char *b = (const char *)base;

	if (s.p == NULL) {
		ASSERT(s.len == 0);
		return;
	}
	ASSERT(s.p >= b && s.len <= len && s.p - b <= (ptrdiff_t)(len -
	    s.len));
}

static void
check_header(const struct http_header *h, const uint8_t *base, size_t len)
{
	const uint8_t *v = (const uint8_t *)h->value.p;

	check_slice(h->name, base, len);
	check_slice(h->value, base, len);
	ASSERT(h->name.len > 0);
	for (size_t i = 0; i < h->name.len; i++)
		ASSERT(is_tchar((uint8_t)h->name.p[i]));
	for (size_t i = 0; i < h->value.len; i++)
		ASSERT(v[i] >= 0x20 ? v[i] != 0x7f : v[i] == '\t');
	if (h->value.len > 0)
		ASSERT(v[0] != ' ' && v[0] != '\t' &&
		    v[h->value.len - 1] != ' ' && v[h->value.len - 1] != '\t');
}

/* Slices equal by offset from their own buffers (or both the same). */
static int
same_slice(struct http_slice a, const uint8_t *abase, struct http_slice b,
    const uint8_t *bbase)
{
	if (a.len != b.len || (a.p == NULL) != (b.p == NULL))
		return 0;
	if (a.p == NULL || a.p == b.p)
		return 1;
	return a.p - (const char *)abase == b.p - (const char *)bbase;
}

static int
same_request(const struct http_request *a, const uint8_t *abase,
    const struct http_request *b, const uint8_t *bbase)
{
	if (a->form != b->form || a->minor != b->minor ||
	    a->nheaders != b->nheaders || a->body != b->body ||
	    a->content_length != b->content_length ||
	    a->keep_alive != b->keep_alive ||
	    a->expect_continue != b->expect_continue)
		return 0;
	if (!same_slice(a->method, abase, b->method, bbase) ||
	    !same_slice(a->target, abase, b->target, bbase) ||
	    !same_slice(a->scheme, abase, b->scheme, bbase) ||
	    !same_slice(a->authority, abase, b->authority, bbase) ||
	    !same_slice(a->path, abase, b->path, bbase) ||
	    !same_slice(a->host, abase, b->host, bbase))
		return 0;
	for (size_t i = 0; i < a->nheaders; i++)
		if (!same_slice(a->headers[i].name, abase,
		    b->headers[i].name, bbase) ||
		    !same_slice(a->headers[i].value, abase,
		    b->headers[i].value, bbase))
			return 0;
	return 1;
}

static size_t
count_headers(const struct http_request *r, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		n += http_slice_eq(r->headers[i].name, name);
	return n;
}

static void
check_head(const uint8_t *data, size_t r)
{
	const struct http_header *h;

	ASSERT(req.nheaders <= HTTP_MAX_HEADERS);
	ASSERT(req.minor == 0 || req.minor == 1);
	check_slice(req.method, data, r);
	check_slice(req.target, data, r);
	check_slice(req.scheme, data, r);
	check_slice(req.authority, data, r);
	check_slice(req.host, data, r);
	if (!http_slice_eq(req.path, "/"))
		check_slice(req.path, data, r);
	ASSERT(req.method.len > 0 && req.target.len > 0);
	for (size_t i = 0; i < req.method.len; i++)
		ASSERT(is_tchar((uint8_t)req.method.p[i]));
	for (size_t i = 0; i < req.target.len; i++)
		ASSERT(req.target.p[i] > 0x20 && req.target.p[i] < 0x7f &&
		    req.target.p[i] != '#');
	for (size_t i = 0; i < req.nheaders; i++)
		check_header(&req.headers[i], data, r);

	switch (req.form) {
	case HTTP_FORM_ORIGIN:
		ASSERT(req.target.p[0] == '/' && req.path.p == req.target.p &&
		    req.path.len == req.target.len);
		break;
	case HTTP_FORM_ABSOLUTE:
		ASSERT(req.scheme.len > 0 && req.authority.len > 0 &&
		    req.path.len > 0 && req.path.p[0] == '/');
		ASSERT(memchr(req.authority.p, '@', req.authority.len) ==
		    NULL);
		break;
	case HTTP_FORM_AUTHORITY:
		ASSERT(req.method.len == 7 &&
		    memcmp(req.method.p, "CONNECT", 7) == 0);
		ASSERT(memchr(req.target.p, '/', req.target.len) == NULL &&
		    memchr(req.target.p, '@', req.target.len) == NULL);
		break;
	case HTTP_FORM_ASTERISK:
		ASSERT(req.target.len == 1 && req.target.p[0] == '*');
		ASSERT(req.method.len == 7 &&
		    memcmp(req.method.p, "OPTIONS", 7) == 0);
		break;
	default:
		ASSERT(0);
	}
	if (req.form != HTTP_FORM_AUTHORITY)
		ASSERT(!(req.method.len == 7 &&
		    memcmp(req.method.p, "CONNECT", 7) == 0));

	/* Framing agrees with the fields. */
	switch (req.body) {
	case HTTP_BODY_NONE:
		ASSERT(count_headers(&req, "content-length") == 0 &&
		    count_headers(&req, "transfer-encoding") == 0);
		ASSERT(req.content_length == 0);
		break;
	case HTTP_BODY_LENGTH:
		ASSERT(count_headers(&req, "content-length") == 1 &&
		    count_headers(&req, "transfer-encoding") == 0);
		ASSERT(req.content_length <= (UINT64_C(1) << 62));
		break;
	case HTTP_BODY_CHUNKED:
		ASSERT(req.minor == 1);
		ASSERT(count_headers(&req, "content-length") == 0 &&
		    count_headers(&req, "transfer-encoding") >= 1);
		ASSERT(req.content_length == 0);
		break;
	default:
		ASSERT(0);	/* CLOSE is for responses */
	}
	ASSERT(count_headers(&req, "host") == (req.host.p != NULL));
	ASSERT(req.minor == 0 || req.host.p != NULL);
	if ((h = http_header_find(req.headers, req.nheaders, "host")) != NULL)
		ASSERT(h->value.p == req.host.p &&
		    h->value.len == req.host.len);
	for (size_t i = 0; i < req.nheaders; i++) {
		bool hop = http_is_hop_by_hop(req.headers, req.nheaders,
		    &req.headers[i]);

		if (http_slice_eq(req.headers[i].name, "connection") ||
		    http_slice_eq(req.headers[i].name, "transfer-encoding"))
			ASSERT(hop);
		if (http_slice_eq(req.headers[i].name, "host"))
			ASSERT(!hop || count_headers(&req, "connection") > 0);
	}
}

/* Parse the first k bytes from an exact-size copy at the end of copy. */
static int
parse_prefix(uint8_t *copy, size_t len, const uint8_t *data, size_t k,
    const uint8_t **base)
{
	*base = copy + (len - k);
	memcpy(copy + (len - k), data, k);
	return http_parse_request(*base, k, &req2);
}

static void
check_prefix(uint8_t *copy, const uint8_t *data, size_t len, size_t k,
    int r)
{
	const uint8_t	*base;
	int		 rk = parse_prefix(copy, len, data, k, &base);

	if (r > 0 && k >= (size_t)r) {
		ASSERT(rk == r);
		ASSERT(same_request(&req, data, &req2, base));
	} else if (r > 0 || r == HTTP_NEED_MORE)
		ASSERT(rk == HTTP_NEED_MORE);
	else
		ASSERT(rk == HTTP_NEED_MORE || rk == r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	uint8_t	*copy;
	size_t	 h = 5381;
	int	 r;

	r = http_parse_request(data, len, &req);
	ASSERT(r > 0 || (r <= HTTP_NEED_MORE && r >= HTTP_E_HOST));
	ASSERT(http_parse_strerror(r) != NULL);
	if (r == HTTP_NEED_MORE)
		ASSERT(len < HTTP_HEAD_MAX);
	if (r > 0) {
		ASSERT((size_t)r <= len && r <= HTTP_HEAD_MAX);
		ASSERT(r >= 4 && memcmp(data + r - 4, "\r\n\r\n", 4) == 0);
		check_head(data, (size_t)r);
	}
	if (len == 0)
		return 0;

	/* However the bytes arrive, the answer is the same. */
	if ((copy = malloc(len)) == NULL)
		abort();
	if (r > 0 && (size_t)r <= PREFIX_ALL) {
		for (size_t k = 0; k <= (size_t)r; k++)
			check_prefix(copy, data, len, k, r);
	} else {
		for (size_t i = 0; i < len && i < 64; i++)
			h = h * 33 + data[i];
		check_prefix(copy, data, len, len - 1, r);
		check_prefix(copy, data, len, len / 2, r);
		for (int i = 0; i < 6; i++) {
			h = h * 6364136223846793005ULL + 1442695040888963407ULL;
			check_prefix(copy, data, len, (h >> 33) % len, r);
		}
		if (r > 0)
			check_prefix(copy, data, len, (size_t)r, r);
	}
	free(copy);
	return 0;
}
