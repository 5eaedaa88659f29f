/*
 * graphql.c: top-level field extraction from documents and JSON bodies --
 * aliases, fragments (spread before and after their definition, nested,
 * inline), comments, strings and block strings, \u escapes in JSON,
 * batches -- and the errors that make a caller refuse.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/graphql.h"
#include "tests/unit/test.h"

struct out {
	char	buf[1024];
	size_t	len;
};

static void
collect(void *arg, enum graphql_op op, const char *name, size_t len)
{
	struct out	*o = arg;
	int		 n;

	n = snprintf(o->buf + o->len, sizeof o->buf - o->len, "%s%c:%.*s",
	    o->len ? " " : "", graphql_op_name(op)[0], (int)len, name);
	if (n > 0 && (size_t)n < sizeof o->buf - o->len)
		o->len += (size_t)n;
}

/* Expected: "q:viewer m:mergePullRequest" (first letter of the operation
 * type), or "" with an error code. */
static const struct {
	const char	*doc;
	int		 rc;
	const char	*want;
} docs[] = {
	/* shapes */
	{ "{ viewer { login } }", 0, "q:viewer" },
	{ "query { a b c }", 0, "q:a q:b q:c" },
	{ "query Q($x: Int = 3) @dir(a: 1) { a(x: $x) { b } }", 0, "q:a" },
	{ "mutation { mergePullRequest(input: {pullRequestId: \"x\"}) "
	    "{ clientMutationId } }", 0, "m:mergePullRequest" },
	{ "mutation M { a b }", 0, "m:a m:b" },
	{ "subscription { s }", 0, "s:s" },
	{ "query A { a } mutation B { b } query C { c }", 0, "q:a m:b q:c" },
	{ "mutation{a,b,,c}", 0, "m:a m:b m:c" },
	{ "\xef\xbb\xbfmutation { a }", 0, "m:a" },
	/* aliases: the field, never the alias */
	{ "mutation { x: mergePullRequest(input: {}) { a } }", 0,
	    "m:mergePullRequest" },
	{ "mutation { mergePullRequest: viewer }", 0, "m:viewer" },
	{ "mutation { a : b, c:d }", 0, "m:b m:d" },
	/* keywords are only keywords in place */
	{ "mutation { query mutation fragment on }", 0,
	    "m:query m:mutation m:fragment m:on" },
	{ "{ fragment: mergePullRequest }", 0, "q:mergePullRequest" },
	/* fragments */
	{ "mutation { ...F } fragment F on Mutation { mergePullRequest }", 0,
	    "m:mergePullRequest" },
	{ "fragment F on Mutation { m1 m2 } mutation { a ...F b }", 0,
	    "m:a m:m1 m:m2 m:b" },
	{ "mutation { ...F } fragment F on Mutation { ...G x } "
	    "fragment G on Mutation { deleteRef }", 0, "m:deleteRef m:x" },
	{ "mutation { ...F @include(if: true) } "
	    "fragment F on Mutation @d { a }", 0, "m:a" },
	{ "mutation { ...F ...F } fragment F on Mutation { a }", 0,
	    "m:a m:a" },
	{ "mutation { ... on Mutation { mergePullRequest } }", 0,
	    "m:mergePullRequest" },
	{ "mutation { ... @include(if: true) { a } }", 0, "m:a" },
	{ "mutation { ... { ... on M { z } } }", 0, "m:z" },
	{ "query { x { ...F } } fragment F on T { y }", 0, "q:x" },
	/* comments, strings, block strings */
	{ "# mutation { a }\nquery { b }", 0, "q:b" },
	{ "mutation { # mergePullRequest\n a }", 0, "m:a" },
	{ "mutation { a # } b\r b }", 0, "m:a m:b" },
	{ "mutation { a(s: \"} mergePullRequest {\") }", 0, "m:a" },
	{ "mutation { a(s: \"\\\" } b\") c }", 0, "m:a m:c" },
	{ "mutation { a(s: \"\"\"} \" \"\" \\\"\"\" x\n y\"\"\") b }", 0,
	    "m:a m:b" },
	{ "mutation { a(s: \"\\u00e9\\u{1F600}\\n\") }", 0, "m:a" },
	{ "mutation { a(l: [1, -2.5e3, true, null, ENUM, {k: [$v]}]) }", 0,
	    "m:a" },
	{ "mutation { a(s: \"caf\xc3\xa9\") }", 0, "m:a" },
	/* errors */
	{ "", GRAPHQL_E_EMPTY, "" },
	{ "# only a comment", GRAPHQL_E_EMPTY, "" },
	{ "fragment F on T { a }", GRAPHQL_E_EMPTY, "" },
	{ "{}", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { a", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { a } }", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { a(x: 1 }", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { a(x: [1) }", GRAPHQL_E_SYNTAX, "" },
	{ "Mutation { a }", GRAPHQL_E_SYNTAX, "" },
	{ "type Query { a: Int }", GRAPHQL_E_SYNTAX, "" },
	{ "schema { query: Q }", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { 1 }", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { a: }", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { ...F }", GRAPHQL_E_FRAGMENT, "" },
	{ "mutation { ...F } fragment F on M { a } fragment F on M { b }",
	    GRAPHQL_E_FRAGMENT, "" },
	{ "mutation { ...F } fragment F on M { ...F }", GRAPHQL_E_FRAGMENT,
	    "" },
	{ "mutation { ...F } fragment F on M { ...G } "
	    "fragment G on M { ...F }", GRAPHQL_E_FRAGMENT, "" },
	{ "fragment on on M { a } { b }", GRAPHQL_E_SYNTAX, "" },
	{ "fragment F { a } { b }", GRAPHQL_E_SYNTAX, "" },
	{ "mutation { a(s: \"x) }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(s: \"x\ny\") }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(s: \"\\q\") }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(s: \"\\u12\") }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(s: \"\\u{}\") }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(s: \"\"\"x) }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(n: 01) }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(n: 1.) }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(n: 1x) }", GRAPHQL_E_LEX, "" },
	{ "mutation { a(n: -) }", GRAPHQL_E_LEX, "" },
	{ "mutation { .. a }", GRAPHQL_E_LEX, "" },
	{ "mutation { a \x01 }", GRAPHQL_E_LEX, "" },
	{ "mutation { a \xc2\xa0 b }", GRAPHQL_E_LEX, "" },
	{ "mutation { a \v b }", GRAPHQL_E_LEX, "" },
	{ "mutation { a } # \xe2\x80\xa8 mutation { b }", GRAPHQL_E_LEX,
	    "" },
	{ "mutation { a } # \xc2\x85 b", GRAPHQL_E_LEX, "" },
	{ "mutation { a } # x\x0b", GRAPHQL_E_LEX, "" },
};

static const struct {
	const char	*body;
	int		 rc;
	const char	*want;
} bodies[] = {
	{ "{\"query\": \"mutation { mergePullRequest(input: {}) { a } }\"}", 0,
	    "m:mergePullRequest" },
	{ "{\"query\":\"query{viewer{login}}\",\"variables\":{}}", 0,
	    "q:viewer" },
	/* \u escapes decoded before the walk */
	{ "{\"query\": \"mutation { merge\\u0050ullRequest }\"}", 0,
	    "m:mergePullRequest" },
	{ "{\"query\": \"\\u006dutation { a }\"}", 0, "m:a" },
	{ "{\"query\": \"mutation { a # \\n b }\"}", 0, "m:a m:b" },
	{ "{\"query\": \"mutation { a(s: \\\"}\\\") b }\"}", 0, "m:a m:b" },
	/* every "query" member, and only exactly "query" */
	{ "{\"query\": \"{ a }\", \"query\": \"mutation { b }\"}", 0,
	    "q:a m:b" },
	{ "{\"Query\": \"mutation { b }\", \"query\": \"{ a }\"}", 0, "q:a" },
	/* batches */
	{ "[{\"query\": \"{ a }\"}, {\"query\": \"mutation { b }\"}]", 0,
	    "q:a m:b" },
	{ "  \n[{\"query\": \"mutation { ...F } fragment F on Mutation "
	    "{ deleteRef }\"}]", 0, "m:deleteRef" },
	/* raw documents */
	{ "mutation { a }", 0, "m:a" },
	{ "{ viewer { login } }", 0, "q:viewer" },
	{ "\n  { viewer }", 0, "q:viewer" },
	/* errors */
	{ "", GRAPHQL_E_EMPTY, "" },
	{ "{\"variables\": {}}", GRAPHQL_E_ENVELOPE, "" },
	{ "{\"query\": 1}", GRAPHQL_E_ENVELOPE, "" },
	{ "{\"query\": null}", GRAPHQL_E_ENVELOPE, "" },
	{ "[]", GRAPHQL_E_ENVELOPE, "" },
	{ "[1]", GRAPHQL_E_ENVELOPE, "" },
	{ "[{\"query\": \"{ a }\"}, 2]", GRAPHQL_E_ENVELOPE, "" },
	{ "{\"query\": \"mutation { a }\"", GRAPHQL_E_JSON, "" },
	{ "{\"query\": \"{ a }\"} {\"query\": \"mutation { b }\"}",
	    GRAPHQL_E_JSON, "" },
	{ "[{\"query\": \"{ a }\"}] x", GRAPHQL_E_JSON, "" },
	/* cJSON would cut the string at \u0000: refused */
	{ "{\"query\": \"{ a }\\u0000 mutation { b }\"}", GRAPHQL_E_JSON, "" },
	{ "{\"query\": \"{ a \\ud800 }\"}", GRAPHQL_E_JSON, "" },
	{ "{\"query\": \"mutation { a(\"}", GRAPHQL_E_SYNTAX, "" },
	{ "{\"documentId\": \"abc\"}", GRAPHQL_E_ENVELOPE, "" },
	{ "query=mutation+%7B+a+%7D", GRAPHQL_E_SYNTAX, "" },
};

static void
check_doc(const char *doc, size_t len, int rc, const char *want, int json)
{
	struct out	o;
	int		r;

	memset(&o, 0, sizeof o);
	r = json ? graphql_body(doc, len, collect, &o) :
	    graphql_document(doc, len, collect, &o);
	CHECK(r == rc, "%s: '%s': rc %d (%s), want %d", json ? "body" : "doc",
	    doc, r, graphql_strerror(r), rc);
	if (rc == 0)
		CHECK(strcmp(o.buf, want) == 0, "'%s': got '%s', want '%s'",
		    doc, o.buf, want);
}

static void
table(void)
{
	size_t	i;

	for (i = 0; i < sizeof docs / sizeof docs[0]; i++)
		check_doc(docs[i].doc, strlen(docs[i].doc), docs[i].rc,
		    docs[i].want, 0);
	for (i = 0; i < sizeof bodies / sizeof bodies[0]; i++)
		check_doc(bodies[i].body, strlen(bodies[i].body),
		    bodies[i].rc, bodies[i].want, 1);
}

/* Every document again inside a JSON envelope, every byte \u-escaped:
 * the same fields, or the same error. */
static void
escaped_envelope_matches_document(void)
{
	char	*buf;
	size_t	 i, j, o;

	for (i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		const char *d = docs[i].doc;
		size_t len = strlen(d);
		buf = malloc(len * 6 + 32);
		o = (size_t)snprintf(buf, 32, "{\"query\":\"");
		for (j = 0; j < len; j++)
			o += (size_t)snprintf(buf + o, 7, "\\u%04x",
			    (unsigned char)d[j]);
		memcpy(buf + o, "\"}", 3);
		o += 2;
		/* non-ASCII bytes become Latin-1 code points: skip those */
		for (j = 0; j < len; j++)
			if ((unsigned char)d[j] >= 0x80)
				break;
		if (j == len)
			check_doc(buf, o, docs[i].rc, docs[i].want, 1);
		free(buf);
	}
}

/* Inputs need not be NUL-terminated: a document cut short is judged on
 * its bytes only. */
static void
length_is_respected(void)
{
	const char	*d = "mutation { a } mutation { b }";
	struct out	 o;

	memset(&o, 0, sizeof o);
	CHECK(graphql_document(d, 14, collect, &o) == 0, "prefix");
	CHECK_STR(o.buf, "m:a");
	CHECK(graphql_document(d, 13, NULL, NULL) == GRAPHQL_E_SYNTAX,
	    "cut inside");
}

static void
limits(void)
{
	char	*buf;
	size_t	 i, o;
	int	 r;

	/* nesting */
	buf = malloc(4096);
	o = (size_t)snprintf(buf, 64, "mutation { a");
	for (i = 0; i < GRAPHQL_DEPTH_MAX + 1; i++)
		buf[o++] = '(', buf[o++] = 'x', buf[o++] = ':', buf[o++] = '[';
	buf[o] = '\0';
	r = graphql_document(buf, o, NULL, NULL);
	CHECK(r == GRAPHQL_E_LIMIT, "deep nesting: %d", r);
	free(buf);

	/* a chain of spreads deeper than GRAPHQL_SPREAD_MAX */
	buf = malloc(8192);
	o = (size_t)snprintf(buf, 64, "mutation { ...F0 }");
	for (i = 0; i < GRAPHQL_SPREAD_MAX + 2; i++)
		o += (size_t)snprintf(buf + o, 64,
		    " fragment F%zu on M { ...F%zu }", i, i + 1);
	o += (size_t)snprintf(buf + o, 64, " fragment F%zu on M { x }", i);
	r = graphql_document(buf, o, NULL, NULL);
	CHECK(r == GRAPHQL_E_LIMIT, "deep spreads: %d", r);
	free(buf);

	/* spreads doubling at each level: bounded work */
	buf = malloc(8192);
	o = (size_t)snprintf(buf, 64, "mutation { ...F0 }");
	for (i = 0; i < 14; i++)
		o += (size_t)snprintf(buf + o, 64,
		    " fragment F%zu on M { ...F%zu ...F%zu }", i, i + 1,
		    i + 1);
	o += (size_t)snprintf(buf + o, 64, " fragment F%zu on M { x }", i);
	r = graphql_document(buf, o, NULL, NULL);
	CHECK(r == GRAPHQL_E_LIMIT, "exponential spreads: %d", r);
	free(buf);

	/* too many fragments */
	buf = malloc(65536);
	o = (size_t)snprintf(buf, 64, "{ a }");
	for (i = 0; i < GRAPHQL_FRAGMENTS_MAX + 1; i++)
		o += (size_t)snprintf(buf + o, 64, " fragment F%zu on M { x }",
		    i);
	r = graphql_document(buf, o, NULL, NULL);
	CHECK(r == GRAPHQL_E_LIMIT, "many fragments: %d", r);
	free(buf);

	/* too large */
	buf = calloc(1, GRAPHQL_DOC_MAX + 2);
	memset(buf, ' ', GRAPHQL_DOC_MAX + 1);
	buf[0] = '{', buf[1] = 'a', buf[2] = '}';
	CHECK(graphql_document(buf, GRAPHQL_DOC_MAX + 1, NULL, NULL) ==
	    GRAPHQL_E_LIMIT, "size");
	CHECK(graphql_document(buf, GRAPHQL_DOC_MAX, NULL, NULL) == 0,
	    "size at the bound");
	free(buf);

	/* batches */
	buf = malloc(65536);
	o = 0;
	buf[o++] = '[';
	for (i = 0; i < GRAPHQL_BATCH_MAX + 1; i++)
		o += (size_t)snprintf(buf + o, 64, "%s{\"query\":\"{a}\"}",
		    i ? "," : "");
	buf[o++] = ']';
	CHECK(graphql_body(buf, o, NULL, NULL) == GRAPHQL_E_LIMIT, "batch");
	free(buf);
}

static void
strings(void)
{
	int	codes[] = { GRAPHQL_OK, GRAPHQL_E_JSON, GRAPHQL_E_ENVELOPE,
	    GRAPHQL_E_LEX, GRAPHQL_E_SYNTAX, GRAPHQL_E_FRAGMENT,
	    GRAPHQL_E_LIMIT, GRAPHQL_E_EMPTY };
	size_t	i;

	for (i = 0; i < sizeof codes / sizeof codes[0]; i++)
		CHECK(strcmp(graphql_strerror(codes[i]),
		    graphql_strerror(-99)) != 0, "code %d", codes[i]);
	CHECK_STR(graphql_op_name(GRAPHQL_MUTATION), "mutation");
}

int
main(void)
{
	RUN(table);
	RUN(escaped_envelope_matches_document);
	RUN(length_is_respected);
	RUN(limits);
	RUN(strings);
	return test_done("graphql");
}
