/*
 * GraphQL request bodies (issue 8): which operations a request carries and
 * the top-level fields each one selects -- what a mutation rule in rules.c
 * is judged on. Pure: a small tokenizer and a recursive-descent walk with
 * fixed limits, no regex, no I/O; cJSON only decodes a JSON envelope.
 */
#ifndef BUILTIN_GRAPHQL_H
#define BUILTIN_GRAPHQL_H

#include <stddef.h>

#define GRAPHQL_DOC_MAX		(1024 * 1024)	/* document or body bytes */
#define GRAPHQL_DEPTH_MAX	64	/* ( [ { nesting */
#define GRAPHQL_FRAGMENTS_MAX	256	/* fragment definitions per doc */
#define GRAPHQL_SPREAD_MAX	16	/* nested top-level spreads */
#define GRAPHQL_BATCH_MAX	64	/* requests in a batched array */

enum graphql_op {
	GRAPHQL_QUERY = 1,	/* "query ..." or the "{ ... }" shorthand */
	GRAPHQL_MUTATION,
	GRAPHQL_SUBSCRIPTION,
};

enum graphql_result {
	GRAPHQL_OK = 0,
	GRAPHQL_E_JSON = -1,	 /* a JSON body that cJSON cannot take whole:
				    malformed, trailing bytes, a NUL byte or
				    a \u0000 escape (cJSON would cut the
				    string there) */
	GRAPHQL_E_ENVELOPE = -2, /* JSON, but not {"query": "..."} or an
				    array of those (persisted queries with
				    no "query" text land here) */
	GRAPHQL_E_LEX = -3,	 /* a byte no GraphQL token allows, an
				    unterminated string, a bad escape */
	GRAPHQL_E_SYNTAX = -4,	 /* tokens in an order the grammar refuses,
				    or a type-system definition */
	GRAPHQL_E_FRAGMENT = -5, /* unknown, duplicate or cyclic fragment */
	GRAPHQL_E_LIMIT = -6,	 /* over a size, depth, count or work bound */
	GRAPHQL_E_EMPTY = -7,	 /* no operation at all */
};

/*
 * Walk one executable GraphQL document (raw text, as application/graphql
 * sends it; need not be NUL-terminated): for every operation, in order,
 * cb(arg, type, name, len) once per field of its top-level selection set.
 * The name is the field's, never its alias ("x: mergePullRequest" gives
 * mergePullRequest); a slice into doc. Fragment spreads and inline
 * fragments at the top level are followed (a fragment may be defined after
 * its use), so "mutation { ...F } fragment F on Mutation { m }" gives m.
 * Comments, strings (block strings too), arguments, directives, variable
 * definitions and nested selection sets are skipped token by token.
 * Every operation is reported, whatever "operationName" picks.
 *
 * Strict where the origin's parser might read the bytes differently: only
 * the spec's ignored tokens (space, tab, CR, LF, comma, BOM, comments) and
 * ASCII tokens outside strings; no control characters (nor U+0085,
 * U+2028, U+2029) in comments. Returns 0 or a negative graphql_result; on
 * an error the fields already reported mean nothing -- callers refuse
 * what cannot be parsed.
 */
int	graphql_document(const char *doc, size_t len,
	    void (*cb)(void *, enum graphql_op, const char *, size_t),
	    void *arg);

/*
 * A request body, its form found from the bytes, never from a Content-Type
 * a client controls: a JSON object {"query": "...", ...} (every member
 * named exactly "query" is walked, duplicates included) or a batched array
 * of them; else raw GraphQL text. A body opening with '{' that is not
 * valid JSON is tried as a document (the "{ viewer { login } }"
 * shorthand); if that fails too the JSON error is returned. Query strings
 * are decoded by cJSON, so \u escapes cannot hide a field name.
 */
int	graphql_body(const char *body, size_t len,
	    void (*cb)(void *, enum graphql_op, const char *, size_t),
	    void *arg);

const char *graphql_strerror(int);
const char *graphql_op_name(enum graphql_op);	/* "query", "mutation", ... */

#endif
