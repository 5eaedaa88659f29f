/*
 * GraphQL extraction: the input as a raw document and as a request body.
 * Invariants: every reported name is a GraphQL Name lying inside the
 * input (a document); a document that parses gives the
 * same fields, in the same order, wrapped in a JSON envelope with every
 * ASCII byte \u-escaped -- and a document that fails fails the same way
 * there. The input is an exact-size heap copy: no read past its end.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/graphql.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define MAXIN	65536

struct fields {
	const char	*doc;		/* set: names must lie inside */
	size_t		 len;
	uint64_t	 hash;		/* of (op, name) in order */
	size_t		 n;
};

static void
on_field(void *arg, enum graphql_op op, const char *name, size_t len)
{
	struct fields	*f = arg;
	size_t		 i;

	ASSERT(op >= GRAPHQL_QUERY && op <= GRAPHQL_SUBSCRIPTION);
	ASSERT(len > 0);
	ASSERT((name[0] >= 'a' && name[0] <= 'z') ||
	    (name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_');
	for (i = 0; i < len; i++)
		ASSERT((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') || name[i] == '_');
	if (f->doc != NULL)
		ASSERT(name >= f->doc && name + len <= f->doc + f->len);
	f->hash = f->hash * 1000003u + (uint64_t)op;
	for (i = 0; i < len; i++)
		f->hash = f->hash * 31u + (uint8_t)name[i];
	f->hash = f->hash * 31u + 0xff;
	f->n++;
}

static char *
envelope(const uint8_t *d, size_t n, size_t *outlen)
{
	static const char hex[] = "0123456789abcdef";
	char	*j = malloc(n * 6 + 16);
	size_t	 o = 0, i;

	memcpy(j, "{\"query\":\"", 10);
	o = 10;
	for (i = 0; i < n; i++) {
		if (d[i] >= 0x80) {
			j[o++] = (char)d[i];	/* raw: cJSON keeps bytes */
			continue;
		}
		j[o++] = '\\';
		j[o++] = 'u';
		j[o++] = '0';
		j[o++] = '0';
		j[o++] = hex[d[i] >> 4];
		j[o++] = hex[d[i] & 15];
	}
	memcpy(j + o, "\"}", 2);
	o += 2;
	*outlen = o;
	return j;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fields	 a, b, c;
	char		*doc, *json;
	size_t		 jlen;
	int		 r, rb, rj;

	if (size > MAXIN)
		return 0;
	/* an exact-size copy, so reads past the end are caught */
	doc = malloc(size ? size : 1);
	memcpy(doc, data, size);

	memset(&a, 0, sizeof a);
	a.doc = doc;
	a.len = size;
	r = graphql_document(doc, size, on_field, &a);
	ASSERT(r <= 0 && r >= GRAPHQL_E_EMPTY);
	ASSERT(graphql_strerror(r) != NULL);
	if (r == 0)
		ASSERT(a.n > 0);

	memset(&b, 0, sizeof b);
	rb = graphql_body(doc, size, on_field, &b);
	ASSERT(rb <= 0 && rb >= GRAPHQL_E_EMPTY);

	if (memchr(doc, '\0', size) == NULL) {
		json = envelope(data, size, &jlen);
		memset(&c, 0, sizeof c);
		rj = graphql_body(json, jlen, on_field, &c);
		ASSERT(rj == r);
		if (r == 0)
			ASSERT(c.n == a.n && c.hash == a.hash);
		free(json);
	}
	free(doc);
	return 0;
}
