/*
 * Fuzz http_parse_response: no crash, no read past the input, a body
 * decision that follows RFC 9112 6.3 for every request method, and the
 * same answer however the bytes arrive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/http_parse.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(x)	do { if (!(x)) __builtin_trap(); } while (0)
#define PREFIX_ALL	1024

static struct http_response	resp[3], resp2;

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

static int
same_slice(struct http_slice a, const uint8_t *abase, struct http_slice b,
    const uint8_t *bbase)
{
	if (a.len != b.len || (a.p == NULL) != (b.p == NULL))
		return 0;
	return a.p == NULL ||
	    a.p - (const char *)abase == b.p - (const char *)bbase;
}

static int
same_head(const struct http_response *a, const uint8_t *abase,
    const struct http_response *b, const uint8_t *bbase)
{
	if (a->minor != b->minor || a->status != b->status ||
	    a->nheaders != b->nheaders ||
	    !same_slice(a->reason, abase, b->reason, bbase))
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
count_headers(const struct http_response *r, const char *name)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nheaders; i++)
		n += http_slice_eq(r->headers[i].name, name);
	return n;
}

static void
check_head(const struct http_response *p, const uint8_t *data, size_t r,
    bool head, bool connect)
{
	bool none;

	ASSERT(p->nheaders <= HTTP_MAX_HEADERS);
	ASSERT(p->minor == 0 || p->minor == 1);
	ASSERT(p->status >= 100 && p->status <= 999);
	check_slice(p->reason, data, r);
	for (size_t i = 0; i < p->nheaders; i++) {
		check_slice(p->headers[i].name, data, r);
		check_slice(p->headers[i].value, data, r);
		ASSERT(p->headers[i].name.len > 0);
		ASSERT(memchr(p->headers[i].value.p, '\r',
		    p->headers[i].value.len) == NULL &&
		    memchr(p->headers[i].value.p, '\n',
		    p->headers[i].value.len) == NULL);
		(void)http_is_hop_by_hop(p->headers, p->nheaders,
		    &p->headers[i]);
	}
	ASSERT(count_headers(p, "content-length") <= 1);
	ASSERT(count_headers(p, "content-length") == 0 ||
	    count_headers(p, "transfer-encoding") == 0);
	ASSERT(p->minor == 1 || count_headers(p, "transfer-encoding") == 0);

	none = head || p->status < 200 || p->status == 204 ||
	    p->status == 304 || (connect && p->status / 100 == 2);
	if (none)
		ASSERT(p->body == HTTP_BODY_NONE);
	else
		ASSERT(p->body != HTTP_BODY_NONE);
	if (p->body == HTTP_BODY_LENGTH)
		ASSERT(count_headers(p, "content-length") == 1 &&
		    p->content_length <= (UINT64_C(1) << 62));
	else
		ASSERT(p->content_length == 0);
	if (p->body == HTTP_BODY_CHUNKED)
		ASSERT(count_headers(p, "transfer-encoding") >= 1);
	if (p->body == HTTP_BODY_CLOSE)
		ASSERT(!p->keep_alive);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static const bool	 flags[3][2] = {
		{ false, false }, { true, false }, { false, true },
	};
	const uint8_t		*base;
	uint8_t			*copy;
	size_t			 h = 5381;
	int			 r[3], rk;

	for (int f = 0; f < 3; f++) {
		r[f] = http_parse_response(data, len, flags[f][0],
		    flags[f][1], &resp[f]);
		ASSERT(r[f] > 0 ||
		    (r[f] <= HTTP_NEED_MORE && r[f] >= HTTP_E_HOST));
		/* The method changes the body, never the verdict. */
		ASSERT(r[f] == r[0]);
		if (r[f] > 0) {
			ASSERT((size_t)r[f] <= len && r[f] <= HTTP_HEAD_MAX);
			ASSERT(memcmp(data + r[f] - 4, "\r\n\r\n", 4) == 0);
			check_head(&resp[f], data, (size_t)r[f], flags[f][0],
			    flags[f][1]);
			ASSERT(same_head(&resp[0], data, &resp[f], data));
		}
	}
	ASSERT(r[0] != HTTP_E_HOST && r[0] != HTTP_E_TARGET);
	if (r[0] == HTTP_NEED_MORE)
		ASSERT(len < HTTP_HEAD_MAX);
	if (len == 0)
		return 0;

	if ((copy = malloc(len)) == NULL)
		abort();
	for (size_t i = 0; i < len && i < 64; i++)
		h = h * 33 + data[i];
	for (size_t i = 0; i <= len && i < PREFIX_ALL + 8; i++) {
		size_t k;

		if (r[0] > 0 && (size_t)r[0] <= PREFIX_ALL)
			k = i;	/* every prefix through the head */
		else if (i < 8) {
			h = h * 6364136223846793005ULL + 1442695040888963407ULL;
			k = (h >> 33) % (len + 1);
		} else
			break;
		if (r[0] > 0 && (size_t)r[0] <= PREFIX_ALL && k > (size_t)r[0])
			break;
		base = copy + (len - k);
		memcpy(copy + (len - k), data, k);
		rk = http_parse_response(base, k, false, false, &resp2);
		if (r[0] > 0 && k >= (size_t)r[0]) {
			ASSERT(rk == r[0]);
			ASSERT(same_head(&resp[0], data, &resp2, base));
			ASSERT(resp2.body == resp[0].body &&
			    resp2.content_length == resp[0].content_length &&
			    resp2.keep_alive == resp[0].keep_alive);
		} else if (r[0] > 0 || r[0] == HTTP_NEED_MORE)
			ASSERT(rk == HTTP_NEED_MORE);
		else
			ASSERT(rk == HTTP_NEED_MORE || rk == r[0]);
	}
	free(copy);
	return 0;
}
