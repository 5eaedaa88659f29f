/*
 * GraphQL operation extraction for request rules (rules.c): a tokenizer
 * after the spec's lexical grammar and a two-pass walk -- the first checks
 * the whole document and finds its fragments, the second reports the
 * top-level fields of every operation, following spreads. No allocation
 * but cJSON's, for a JSON envelope.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "builtin/graphql.h"

#define WORK_FACTOR	16	/* pass 2 may lex this many times pass 1's
				   tokens (spreads re-walk fragments) */
#define WORK_SLACK	4096

enum tok {
	T_EOF,
	T_PUNCT,	/* ! $ & ( ) : = @ [ ] { | } */
	T_SPREAD,	/* ... */
	T_NAME,
	T_NUMBER,
	T_STRING,	/* "..." or """...""" */
};

struct token {
	enum tok	 type;
	char		 c;		/* T_PUNCT */
	const char	*p;		/* T_NAME: the name */
	size_t		 len;
	size_t		 start;		/* offset of the token */
};

struct fragment {
	const char	*name;
	size_t		 len;
	size_t		 body;		/* offset of its '{' */
};

typedef void	field_cb(void *, enum graphql_op, const char *, size_t);

struct parser {
	const char	*s;
	size_t		 len;
	size_t		 pos;		/* next byte to lex */
	struct token	 cur;		/* the lookahead */
	size_t		 work;		/* tokens lexed */
	size_t		 budget;
	struct fragment	 frag[GRAPHQL_FRAGMENTS_MAX];
	size_t		 nfrag;
	size_t		 stack[GRAPHQL_SPREAD_MAX];	/* spreads being
							   followed */
	size_t		 nstack;
	field_cb	*cb;
	void		*arg;
};

static bool
is_name_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
is_name_char(int c)
{
	return is_name_start(c) || (c >= '0' && c <= '9');
}

static bool
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
at(const struct parser *p, size_t off, const char *lit)
{
	size_t	n = strlen(lit);

	return off <= p->len && p->len - off >= n &&
	    memcmp(p->s + off, lit, n) == 0;
}

/* A comment, from '#' to the line's end: no byte some parser might take
 * for a line break (or a NUL) may hide in it. */
static int
lex_comment(struct parser *p)
{
	const uint8_t	*s = (const uint8_t *)p->s;

	for (p->pos++; p->pos < p->len; p->pos++) {
		uint8_t c = s[p->pos];
		if (c == '\n' || c == '\r')
			return 0;
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return GRAPHQL_E_LEX;
		if (at(p, p->pos, "\xc2\x85") ||
		    at(p, p->pos, "\xe2\x80\xa8") ||
		    at(p, p->pos, "\xe2\x80\xa9"))
			return GRAPHQL_E_LEX;
	}
	return 0;
}

/* "..." with escapes, one line; p->pos at the opening quote. */
static int
lex_string(struct parser *p)
{
	const uint8_t	*s = (const uint8_t *)p->s;
	size_t		 i, n;

	for (p->pos++; p->pos < p->len; p->pos++) {
		uint8_t c = s[p->pos];
		if (c == '"') {
			p->pos++;
			return 0;
		}
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return GRAPHQL_E_LEX;	/* LF, CR, NUL, controls */
		if (c != '\\')
			continue;
		if (++p->pos >= p->len)
			return GRAPHQL_E_LEX;
		c = s[p->pos];
		if (strchr("\"\\/bfnrt", c) != NULL && c != '\0')
			continue;
		if (c != 'u')
			return GRAPHQL_E_LEX;
		if (p->pos + 1 < p->len && s[p->pos + 1] == '{') {
			/* \u{X...}: 1 to 6 hex digits */
			for (i = p->pos + 2, n = 0; i < p->len && is_hex(s[i]);
			    i++)
				n++;
			if (n == 0 || n > 6 || i >= p->len || s[i] != '}')
				return GRAPHQL_E_LEX;
			p->pos = i;
			continue;
		}
		for (i = 1; i <= 4; i++)
			if (p->pos + i >= p->len || !is_hex(s[p->pos + i]))
				return GRAPHQL_E_LEX;
		p->pos += 4;
	}
	return GRAPHQL_E_LEX;		/* unterminated */
}

/* """...""", where \""" is an escaped triple quote. */
static int
lex_block_string(struct parser *p)
{
	const uint8_t	*s = (const uint8_t *)p->s;

	for (p->pos += 3; p->pos < p->len;) {
		uint8_t c = s[p->pos];
		if (at(p, p->pos, "\"\"\"")) {
			p->pos += 3;
			return 0;
		}
		if (at(p, p->pos, "\\\"\"\"")) {
			p->pos += 4;
			continue;
		}
		if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
		    c == 0x7f)
			return GRAPHQL_E_LEX;
		p->pos++;
	}
	return GRAPHQL_E_LEX;
}

/* -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, not followed by a name
 * character or '.'. */
static int
lex_number(struct parser *p)
{
	const char	*s = p->s;
	size_t		 i = p->pos;

	if (s[i] == '-')
		i++;
	if (i >= p->len || !is_digit(s[i]))
		return GRAPHQL_E_LEX;
	if (s[i] == '0')
		i++;
	else
		while (i < p->len && is_digit(s[i]))
			i++;
	if (i < p->len && s[i] == '.') {
		if (++i >= p->len || !is_digit(s[i]))
			return GRAPHQL_E_LEX;
		while (i < p->len && is_digit(s[i]))
			i++;
	}
	if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < p->len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= p->len || !is_digit(s[i]))
			return GRAPHQL_E_LEX;
		while (i < p->len && is_digit(s[i]))
			i++;
	}
	if (i < p->len && (is_name_char(s[i]) || s[i] == '.'))
		return GRAPHQL_E_LEX;
	p->pos = i;
	return 0;
}

/* The next token into p->cur. */
static int
advance(struct parser *p)
{
	struct token	*t = &p->cur;
	const char	*s = p->s;
	int		 r;

	if (++p->work > p->budget)
		return GRAPHQL_E_LIMIT;
	for (;;) {
		if (p->pos >= p->len) {
			t->type = T_EOF;
			t->start = p->len;
			return 0;
		}
		if (s[p->pos] == ' ' || s[p->pos] == '\t' ||
		    s[p->pos] == '\n' || s[p->pos] == '\r' ||
		    s[p->pos] == ',')
			p->pos++;
		else if (at(p, p->pos, "\xef\xbb\xbf"))
			p->pos += 3;
		else if (s[p->pos] == '#') {
			if ((r = lex_comment(p)) != 0)
				return r;
		} else
			break;
	}
	t->start = p->pos;
	t->p = s + p->pos;
	if (is_name_start(s[p->pos])) {
		while (p->pos < p->len && is_name_char(s[p->pos]))
			p->pos++;
		t->type = T_NAME;
		t->len = p->pos - t->start;
		return 0;
	}
	if (s[p->pos] == '-' || is_digit(s[p->pos])) {
		t->type = T_NUMBER;
		return lex_number(p);
	}
	if (s[p->pos] == '"') {
		t->type = T_STRING;
		return at(p, p->pos, "\"\"\"") ? lex_block_string(p) :
		    lex_string(p);
	}
	if (s[p->pos] == '.') {
		if (!at(p, p->pos, "..."))
			return GRAPHQL_E_LEX;
		p->pos += 3;
		t->type = T_SPREAD;
		return 0;
	}
	if (s[p->pos] != '\0' && strchr("!$&():=@[]{|}", s[p->pos]) != NULL) {
		t->type = T_PUNCT;
		t->c = s[p->pos++];
		return 0;
	}
	return GRAPHQL_E_LEX;
}

static bool
is_punct(const struct parser *p, char c)
{
	return p->cur.type == T_PUNCT && p->cur.c == c;
}

static bool
is_name(const struct parser *p, const char *name)
{
	size_t	n = strlen(name);

	return p->cur.type == T_NAME && p->cur.len == n &&
	    memcmp(p->cur.p, name, n) == 0;
}

/* cur opens a ( [ or {: skip through its match; cur is then the token
 * after it. */
static int
skip_balanced(struct parser *p)
{
	char	want[GRAPHQL_DEPTH_MAX];
	size_t	depth = 0;
	int	r;

	for (;;) {
		if (p->cur.type == T_EOF)
			return GRAPHQL_E_SYNTAX;
		if (p->cur.type == T_PUNCT) {
			char c = p->cur.c;
			if (c == '(' || c == '[' || c == '{') {
				if (depth == sizeof want)
					return GRAPHQL_E_LIMIT;
				want[depth++] = c == '(' ? ')' :
				    c == '[' ? ']' : '}';
			} else if (c == ')' || c == ']' || c == '}') {
				if (depth == 0 || want[depth - 1] != c)
					return GRAPHQL_E_SYNTAX;
				depth--;
			}
		}
		if ((r = advance(p)) != 0)
			return r;
		if (depth == 0)
			return 0;
	}
}

/* Zero or more "@name(args)". */
static int
skip_directives(struct parser *p)
{
	int	r;

	while (is_punct(p, '@')) {
		if ((r = advance(p)) != 0)
			return r;
		if (p->cur.type != T_NAME)
			return GRAPHQL_E_SYNTAX;
		if ((r = advance(p)) != 0)
			return r;
		if (is_punct(p, '(') && (r = skip_balanced(p)) != 0)
			return r;
	}
	return 0;
}

static const struct fragment *
fragment_find(const struct parser *p, const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < p->nfrag; i++)
		if (p->frag[i].len == len &&
		    memcmp(p->frag[i].name, name, len) == 0)
			return &p->frag[i];
	return NULL;
}

static int	top_level(struct parser *, enum graphql_op);

/* cur is a fragment's name after "...": walk its selection set as if it
 * stood here, then come back. */
static int
follow_spread(struct parser *p, enum graphql_op op)
{
	const struct fragment	*f;
	size_t			 i, idx, save;
	int			 r;

	if ((f = fragment_find(p, p->cur.p, p->cur.len)) == NULL)
		return GRAPHQL_E_FRAGMENT;
	idx = (size_t)(f - p->frag);
	for (i = 0; i < p->nstack; i++)
		if (p->stack[i] == idx)
			return GRAPHQL_E_FRAGMENT;	/* a cycle */
	if (p->nstack == GRAPHQL_SPREAD_MAX)
		return GRAPHQL_E_LIMIT;
	if ((r = advance(p)) != 0 || (r = skip_directives(p)) != 0)
		return r;
	save = p->cur.start;
	p->stack[p->nstack++] = idx;
	p->pos = f->body;
	if ((r = advance(p)) != 0 || (r = top_level(p, op)) != 0)
		return r;
	p->nstack--;
	p->pos = save;		/* re-lex the token after the spread */
	return advance(p);
}

/*
 * cur is the '{' of an operation's (or a spread fragment's) selection set:
 * report each field's name, follow spreads and inline fragments, skip the
 * rest. cur is then the token after the matching '}'.
 */
static int
top_level(struct parser *p, enum graphql_op op)
{
	const char	*name;
	size_t		 len, n = 0;
	int		 r;

	if (!is_punct(p, '{'))
		return GRAPHQL_E_SYNTAX;
	if ((r = advance(p)) != 0)
		return r;
	while (!is_punct(p, '}')) {
		n++;
		if (p->cur.type == T_SPREAD) {
			if ((r = advance(p)) != 0)
				return r;
			if (p->cur.type == T_NAME && !is_name(p, "on")) {
				if ((r = follow_spread(p, op)) != 0)
					return r;
				continue;
			}
			if (is_name(p, "on")) {
				if ((r = advance(p)) != 0)
					return r;
				if (p->cur.type != T_NAME)
					return GRAPHQL_E_SYNTAX;
				if ((r = advance(p)) != 0)
					return r;
			}
			if ((r = skip_directives(p)) != 0 ||
			    (r = top_level(p, op)) != 0)
				return r;
			continue;
		}
		if (p->cur.type != T_NAME)
			return GRAPHQL_E_SYNTAX;
		name = p->cur.p;
		len = p->cur.len;
		if ((r = advance(p)) != 0)
			return r;
		if (is_punct(p, ':')) {		/* alias: name */
			if ((r = advance(p)) != 0)
				return r;
			if (p->cur.type != T_NAME)
				return GRAPHQL_E_SYNTAX;
			name = p->cur.p;
			len = p->cur.len;
			if ((r = advance(p)) != 0)
				return r;
		}
		if (p->cb != NULL)
			p->cb(p->arg, op, name, len);
		if (is_punct(p, '(') && (r = skip_balanced(p)) != 0)
			return r;
		if ((r = skip_directives(p)) != 0)
			return r;
		if (is_punct(p, '{') && (r = skip_balanced(p)) != 0)
			return r;
	}
	if (n == 0)
		return GRAPHQL_E_SYNTAX;	/* "{}" */
	return advance(p);
}

/*
 * One definition at cur. Pass 1 (report false) checks it and records
 * fragments; pass 2 reports the fields of operations.
 */
static int
definition(struct parser *p, bool report, bool *is_op)
{
	enum graphql_op	 op;
	struct fragment	*f;
	int		 r;

	*is_op = false;
	if (is_punct(p, '{')) {
		*is_op = true;
		return report ? top_level(p, GRAPHQL_QUERY) :
		    skip_balanced(p);
	}
	if (is_name(p, "fragment")) {
		if ((r = advance(p)) != 0)
			return r;
		if (p->cur.type != T_NAME || is_name(p, "on"))
			return GRAPHQL_E_SYNTAX;
		if (!report) {
			if (fragment_find(p, p->cur.p, p->cur.len) != NULL)
				return GRAPHQL_E_FRAGMENT;
			if (p->nfrag == GRAPHQL_FRAGMENTS_MAX)
				return GRAPHQL_E_LIMIT;
			f = &p->frag[p->nfrag++];
			f->name = p->cur.p;
			f->len = p->cur.len;
		} else
			f = NULL;
		if ((r = advance(p)) != 0)
			return r;
		if (!is_name(p, "on"))
			return GRAPHQL_E_SYNTAX;
		if ((r = advance(p)) != 0)
			return r;
		if (p->cur.type != T_NAME)
			return GRAPHQL_E_SYNTAX;
		if ((r = advance(p)) != 0 || (r = skip_directives(p)) != 0)
			return r;
		if (!is_punct(p, '{'))
			return GRAPHQL_E_SYNTAX;
		if (f != NULL)
			f->body = p->cur.start;
		return skip_balanced(p);
	}
	if (is_name(p, "query"))
		op = GRAPHQL_QUERY;
	else if (is_name(p, "mutation"))
		op = GRAPHQL_MUTATION;
	else if (is_name(p, "subscription"))
		op = GRAPHQL_SUBSCRIPTION;
	else
		return GRAPHQL_E_SYNTAX;
	*is_op = true;
	if ((r = advance(p)) != 0)
		return r;
	if (p->cur.type == T_NAME && (r = advance(p)) != 0)
		return r;
	if (is_punct(p, '(') && (r = skip_balanced(p)) != 0)
		return r;
	if ((r = skip_directives(p)) != 0)
		return r;
	if (!is_punct(p, '{'))
		return GRAPHQL_E_SYNTAX;
	return report ? top_level(p, op) : skip_balanced(p);
}

static int
walk(struct parser *p, bool report)
{
	size_t	nops = 0;
	bool	is_op;
	int	r;

	p->pos = 0;
	if ((r = advance(p)) != 0)
		return r;
	while (p->cur.type != T_EOF) {
		if ((r = definition(p, report, &is_op)) != 0)
			return r;
		if (is_op)
			nops++;
	}
	return nops == 0 ? GRAPHQL_E_EMPTY : 0;
}

int
graphql_document(const char *doc, size_t len,
    void (*cb)(void *, enum graphql_op, const char *, size_t), void *arg)
{
	struct parser	*p, mem;
	int		 r;

	if (len > GRAPHQL_DOC_MAX)
		return GRAPHQL_E_LIMIT;
	p = &mem;
	memset(p, 0, sizeof *p);
	p->s = doc;
	p->len = len;
	p->budget = len + WORK_SLACK;	/* a token is at least a byte */
	if ((r = walk(p, false)) != 0)
		return r;
	p->budget = p->work * WORK_FACTOR + WORK_SLACK;
	p->work = 0;
	p->cb = cb;
	p->arg = arg;
	return walk(p, true);
}

/* Bytes cJSON would read differently from the origin: a NUL byte, or a
 * \u0000 escape (cJSON ends the decoded string there). */
static bool
json_suspect(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (s[i] == '\0')
			return true;
		if (s[i] != '\\')
			continue;
		if (i + 5 < len && s[i + 1] == 'u' &&
		    memcmp(s + i + 2, "0000", 4) == 0)
			return true;
		i++;			/* the escaped byte */
	}
	return false;
}

/* JSON whitespace, and what lenient parsers skip too (\f, \v) */
static bool
json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
	    c == '\f' || c == '\v';
}

/* {"query": "..."}: every member named exactly "query". */
static int
request(const cJSON *obj, field_cb *cb, void *arg)
{
	const cJSON	*m;
	size_t		 n = 0;
	int		 r;

	if (!cJSON_IsObject(obj))
		return GRAPHQL_E_ENVELOPE;
	for (m = obj->child; m != NULL; m = m->next) {
		if (m->string == NULL || strcmp(m->string, "query") != 0)
			continue;
		if (!cJSON_IsString(m) || m->valuestring == NULL)
			return GRAPHQL_E_ENVELOPE;
		if ((r = graphql_document(m->valuestring,
		    strlen(m->valuestring), cb, arg)) != 0)
			return r;
		n++;
	}
	return n == 0 ? GRAPHQL_E_ENVELOPE : 0;
}

static int
json_body(const char *body, size_t len, field_cb *cb, void *arg)
{
	const char	*end = NULL;
	const cJSON	*e;
	cJSON		*root;
	size_t		 n = 0;
	int		 r;

	if (json_suspect(body, len))
		return GRAPHQL_E_JSON;
	root = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (root == NULL)
		return GRAPHQL_E_JSON;
	while (end != NULL && end < body + len && json_space(*end))
		end++;
	if (end != body + len) {
		r = GRAPHQL_E_JSON;
		goto out;
	}
	if (!cJSON_IsArray(root)) {
		r = request(root, cb, arg);
		goto out;
	}
	r = GRAPHQL_E_ENVELOPE;
	for (e = root->child; e != NULL; e = e->next) {
		if (++n > GRAPHQL_BATCH_MAX) {
			r = GRAPHQL_E_LIMIT;
			goto out;
		}
		if ((r = request(e, cb, arg)) != 0)
			goto out;
	}
 out:
	cJSON_Delete(root);
	return r;
}

int
graphql_body(const char *body, size_t len,
    void (*cb)(void *, enum graphql_op, const char *, size_t), void *arg)
{
	size_t	i = 0;
	int	r;

	if (len > GRAPHQL_DOC_MAX)
		return GRAPHQL_E_LIMIT;
	while (i < len && json_space(body[i]))
		i++;
	if (i < len && body[i] == '[')
		return json_body(body, len, cb, arg);
	if (i < len && body[i] == '{') {
		/* JSON and GraphQL cannot both take the same bytes: a JSON
		 * object's keys are strings, a selection set's are names. */
		if ((r = json_body(body, len, cb, arg)) == GRAPHQL_E_JSON &&
		    graphql_document(body, len, NULL, NULL) == 0)
			return graphql_document(body, len, cb, arg);
		return r;
	}
	return graphql_document(body, len, cb, arg);
}

const char *
graphql_strerror(int code)
{
	switch (code) {
	case GRAPHQL_OK:
		return "ok";
	case GRAPHQL_E_JSON:
		return "malformed JSON body";
	case GRAPHQL_E_ENVELOPE:
		return "JSON body without a \"query\" string";
	case GRAPHQL_E_LEX:
		return "invalid character or token in GraphQL document";
	case GRAPHQL_E_SYNTAX:
		return "GraphQL syntax error";
	case GRAPHQL_E_FRAGMENT:
		return "unknown, duplicate or cyclic GraphQL fragment";
	case GRAPHQL_E_LIMIT:
		return "GraphQL document over a size or nesting limit";
	case GRAPHQL_E_EMPTY:
		return "GraphQL document without an operation";
	}
	return "unknown GraphQL error";
}

const char *
graphql_op_name(enum graphql_op op)
{
	switch (op) {
	case GRAPHQL_QUERY:
		return "query";
	case GRAPHQL_MUTATION:
		return "mutation";
	case GRAPHQL_SUBSCRIPTION:
		return "subscription";
	}
	return "unknown";
}
