/*
 * Request rules (issue 8): what an agent may do on a host it may reach.
 * The launcher adds --rule specs, config rules and presets; the proxy asks
 * rules_names_host() which tunnels to intercept and rules_eval() about each
 * request inside. Hosts are matched by policy.c (one single-pattern policy
 * per rule), paths and bodies by PCRE2, GraphQL bodies by graphql.c.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>

#include "builtin/addr.h"
#include "builtin/graphql.h"
#include "builtin/policy.h"
#include "builtin/rules.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define SHOW_MAX	96	/* bytes of a rule shown in an error */
#define METHOD_MAX	32	/* bytes of one method token */
#define NAME_SHOW	64	/* bytes of a GraphQL field in a reason */
#define MATCH_LIMIT	1000000	/* PCRE2 backtracking bound */
#define JIT_STACK_MIN	(32 * 1024)
#define JIT_STACK_MAX	(1024 * 1024)

struct rule {
	enum rules_action	 action;	/* ALLOW or DENY */
	char			*methods[RULES_METHODS_MAX]; /* upper case */
	size_t			 nmethods;	/* 0: any method */
	char			*host;		/* as given */
	struct policy		*hostp;		/* the one pattern */
	pcre2_code		*path;		/* NULL: any path */
	pcre2_code		*body;		/* NULL: body not judged */
	char			*mutations[RULES_MUTATIONS_MAX];
	size_t			 nmutations;
	char			*text;
	char			*reason;	/* NULL: a default one */
};

struct rules {
	struct rule		*v;
	size_t			 n;
	pcre2_match_data	*md;
	pcre2_match_context	*mctx;
	pcre2_jit_stack		*jstack;
	char			*pathbuf;	/* RULES_PATH_MAX + 2 */
	bool			 bodies;
};

/* What rules_eval_body() has learnt of a body, each part made once. */
struct body {
	const char	*raw;		/* NULL: over the bound */
	size_t		 len;
	bool		 text_done;
	int		 text_err;
	char		*text;		/* decoded JSON, or NULL: use raw */
	size_t		 textlen;
	bool		 gql_done;
	int		 gql_err;
	char		(*hit)[NAME_SHOW];	/* per rule: the mutation
						   that matched, or "" */
	const struct rules *rules;
};

struct tbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
};

/* printable ASCII of s, at most SHOW_MAX bytes then "..." */
static void
show(const char *s, size_t len, char *out, size_t outlen)
{
	size_t	i, o = 0, n = len > SHOW_MAX ? SHOW_MAX : len;

	for (i = 0; i < n && o + 1 < outlen; i++)
		out[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	for (i = 0; n < len && i < 3 && o + 1 < outlen; i++)
		out[o++] = '.';
	if (outlen > 0)
		out[o] = '\0';
}

static int __attribute__((format(printf, 4, 5)))
fail(char *err, size_t errlen, const char *what, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (errlen == 0)
		return -1;
	n = snprintf(err, errlen, "bad rule %s: ", what);
	if (n < 0 || (size_t)n >= errlen)
		return -1;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends n bytes, keeping a NUL after them. */
static void
tbuf_add(struct tbuf *t, const char *s, size_t n)
{
	if (t->cap - t->len < n + 2) {
		size_t cap = t->cap ? t->cap : 256;
		while (cap - t->len < n + 2)
			cap *= 2;
		t->p = xreallocarray(t->p, cap, 1);
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static void
rule_clear(struct rule *ru)
{
	size_t	i;

	for (i = 0; i < ru->nmethods; i++)
		free(ru->methods[i]);
	for (i = 0; i < ru->nmutations; i++)
		free(ru->mutations[i]);
	free(ru->host);
	policy_free(ru->hostp);
	pcre2_code_free(ru->path);
	pcre2_code_free(ru->body);
	free(ru->text);
	free(ru->reason);
	memset(ru, 0, sizeof *ru);
}

struct rules *
rules_new(void)
{
	struct rules	*r = xcalloc(1, sizeof *r);

	r->md = pcre2_match_data_create(1, NULL);
	r->mctx = pcre2_match_context_create(NULL);
	r->jstack = pcre2_jit_stack_create(JIT_STACK_MIN, JIT_STACK_MAX,
	    NULL);
	if (r->md == NULL || r->mctx == NULL)
		fatal("out of memory");
	pcre2_set_match_limit(r->mctx, MATCH_LIMIT);
	if (r->jstack != NULL)	/* NULL without JIT: the interpreter */
		pcre2_jit_stack_assign(r->mctx, NULL, r->jstack);
	r->pathbuf = xcalloc(1, RULES_PATH_MAX + 2);
	return r;
}

void
rules_free(struct rules *r)
{
	size_t	i;

	if (r == NULL)
		return;
	for (i = 0; i < r->n; i++)
		rule_clear(&r->v[i]);
	free(r->v);
	pcre2_match_data_free(r->md);
	pcre2_match_context_free(r->mctx);
	pcre2_jit_stack_free(r->jstack);
	free(r->pathbuf);
	free(r);
}

size_t
rules_count(const struct rules *r)
{
	return r->n;
}

const char *
rules_text(const struct rules *r, size_t i)
{
	return i < r->n ? r->v[i].text : NULL;
}

const char *
rules_host(const struct rules *r, size_t i)
{
	return i < r->n ? r->v[i].host : NULL;
}

bool
rules_need_bodies(const struct rules *r)
{
	return r->bodies;
}

/* --- building a rule ----------------------------------------------------- */

static int
set_action(struct rule *ru, const char *s, size_t len, const char *what,
    char *err, size_t errlen)
{
	char	buf[SHOW_MAX + 4];

	if (len == 4 && memcmp(s, "deny", 4) == 0)
		ru->action = RULES_DENY;
	else if (len == 5 && memcmp(s, "allow", 5) == 0)
		ru->action = RULES_ALLOW;
	else {
		show(s, len, buf, sizeof buf);
		return fail(err, errlen, what,
		    "action '%s' is neither 'deny' nor 'allow'", buf);
	}
	return 0;
}

static bool
method_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* One method token, or '*' standing alone. */
static int
add_method(struct rule *ru, const char *s, size_t len, bool *any,
    const char *what, char *err, size_t errlen)
{
	char	buf[SHOW_MAX + 4];
	size_t	i;

	show(s, len, buf, sizeof buf);
	if (len == 1 && s[0] == '*') {
		if (*any || ru->nmethods > 0)
			return fail(err, errlen, what,
			    "method '*' must stand alone");
		*any = true;
		return 0;
	}
	if (*any)
		return fail(err, errlen, what, "method '*' must stand alone");
	if (len == 0)
		return fail(err, errlen, what, "empty method in the list");
	if (len > METHOD_MAX)
		return fail(err, errlen, what, "method '%s' is too long", buf);
	for (i = 0; i < len; i++)
		if (!method_char(s[i]))
			return fail(err, errlen, what,
			    "bad method '%s' (methods are separated by ',')",
			    buf);
	if (ru->nmethods == RULES_METHODS_MAX)
		return fail(err, errlen, what, "more than %d methods",
		    RULES_METHODS_MAX);
	ru->methods[ru->nmethods] = xstrndup(s, len);
	for (i = 0; i < len; i++)
		if (ru->methods[ru->nmethods][i] >= 'a' &&
		    ru->methods[ru->nmethods][i] <= 'z')
			ru->methods[ru->nmethods][i] -= 'a' - 'A';
	ru->nmethods++;
	return 0;
}

/* "GET,POST" or "*" */
static int
add_methods(struct rule *ru, const char *s, size_t len, bool *any,
    const char *what, char *err, size_t errlen)
{
	const char	*comma;
	size_t		 n;

	for (;;) {
		comma = memchr(s, ',', len);
		n = comma != NULL ? (size_t)(comma - s) : len;
		if (add_method(ru, s, n, any, what, err, errlen) != 0)
			return -1;
		if (comma == NULL)
			return 0;
		s += n + 1;
		len -= n + 1;
	}
}

static int
set_host(struct rule *ru, const char *s, size_t len, const char *what,
    char *err, size_t errlen)
{
	char	perr[256];
	int	r;

	ru->host = xstrndup(s, len);
	ru->hostp = policy_new();
	/* A deny rule matches as a deny pattern does (an IPv4 pattern also
	 * catches IPv6 spellings embedding it), an allow rule as an allow
	 * pattern: neither can be stretched by the other's reading. */
	if (ru->action == RULES_DENY)
		r = policy_deny(ru->hostp, ru->host, perr, sizeof perr);
	else
		r = policy_allow(ru->hostp, ru->host, perr, sizeof perr);
	if (r != 0)
		return fail(err, errlen, what, "host: %s", perr);
	return 0;
}

static int
compile(pcre2_code **re, const char *s, size_t len, uint32_t opts,
    const char *field, const char *what, char *err, size_t errlen)
{
	PCRE2_UCHAR	msg[160];
	PCRE2_SIZE	off;
	int		code;

	if (len > RULES_REGEX_MAX)
		return fail(err, errlen, what, "%s regex over %d bytes", field,
		    RULES_REGEX_MAX);
	*re = pcre2_compile((PCRE2_SPTR)s, len, opts, &code, &off, NULL);
	if (*re == NULL) {
		if (pcre2_get_error_message(code, msg, sizeof msg) < 0)
			snprintf((char *)msg, sizeof msg, "error %d", code);
		return fail(err, errlen, what, "%s regex: %s at column %zu",
		    field, (char *)msg, (size_t)off + 1);
	}
	/* Without JIT support (or memory for it) the interpreter runs the
	 * same pattern: only slower. */
	(void)pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);
	return 0;
}

static int
set_path(struct rule *ru, const char *s, size_t len, const char *what,
    char *err, size_t errlen)
{
	/* DOTALL: a %0A in a path must not stop a '.*'. */
	return compile(&ru->path, s, len,
	    PCRE2_ANCHORED | PCRE2_ENDANCHORED | PCRE2_DOTALL, "path", what,
	    err, errlen);
}

static bool
graphql_name(const char *s)
{
	size_t	i;

	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') ||
	    s[0] == '_'))
		return false;
	for (i = 1; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return i <= 128;
}

static int
add_mutation(struct rule *ru, const char *s, const char *what, char *err,
    size_t errlen)
{
	char	buf[SHOW_MAX + 4];

	show(s, strlen(s), buf, sizeof buf);
	if (!graphql_name(s))
		return fail(err, errlen, what,
		    "mutations: '%s' is not a GraphQL field name", buf);
	if (ru->nmutations == RULES_MUTATIONS_MAX)
		return fail(err, errlen, what, "more than %d mutations",
		    RULES_MUTATIONS_MAX);
	ru->mutations[ru->nmutations++] = xstrdup(s);
	return 0;
}

/* "deny PUT,POST host /path" plus what a spec cannot say. */
static char *
canonical(const struct rule *ru, const char *path, size_t pathlen,
    const char *body)
{
	struct tbuf	t = { NULL, 0, 0 };
	size_t		i;

	tbuf_add(&t, ru->action == RULES_DENY ? "deny " : "allow ",
	    ru->action == RULES_DENY ? 5 : 6);
	if (ru->nmethods == 0)
		tbuf_add(&t, "*", 1);
	for (i = 0; i < ru->nmethods; i++) {
		if (i > 0)
			tbuf_add(&t, ",", 1);
		tbuf_add(&t, ru->methods[i], strlen(ru->methods[i]));
	}
	tbuf_add(&t, " ", 1);
	tbuf_add(&t, ru->host, strlen(ru->host));
	if (path != NULL) {
		tbuf_add(&t, " ", 1);
		tbuf_add(&t, path, pathlen);
	}
	if (body != NULL) {
		tbuf_add(&t, " body=", 6);
		tbuf_add(&t, body, strlen(body));
	}
	for (i = 0; i < ru->nmutations; i++) {
		tbuf_add(&t, i == 0 ? " mutations=" : ",", i == 0 ? 11 : 1);
		tbuf_add(&t, ru->mutations[i], strlen(ru->mutations[i]));
	}
	return t.p;
}

static void
append(struct rules *r, struct rule *ru)
{
	r->v = xreallocarray(r->v, r->n + 1, sizeof *r->v);
	r->v[r->n++] = *ru;
	if (ru->body != NULL || ru->nmutations > 0)
		r->bodies = true;
	memset(ru, 0, sizeof *ru);
}

static bool
space(char c)
{
	return c == ' ' || c == '\t';
}

int
rules_add_spec(struct rules *r, const char *spec, char *err, size_t errlen)
{
	struct rule	 ru;
	const char	*f[4], *p, *reason;
	size_t		 flen[4], n = 0, rlen;
	char		 shown[SHOW_MAX + 8], what[SHOW_MAX + 16];
	bool		 any = false;

	memset(&ru, 0, sizeof ru);
	if (spec == NULL)
		spec = "";
	show(spec, strlen(spec), shown, sizeof shown);
	snprintf(what, sizeof what, "'%s'", shown);
	for (p = spec; n < 4;) {
		while (space(*p))
			p++;
		if (*p == '\0')
			break;
		f[n] = p;
		while (*p != '\0' && !space(*p))
			p++;
		flen[n] = (size_t)(p - f[n]);
		n++;
	}
	if (n < 4)
		return fail(err, errlen, what, "too few fields: want "
		    "'deny|allow METHODS HOST-PATTERN PATH-REGEX [REASON]'");
	while (space(*p))
		p++;
	reason = p;
	rlen = strlen(reason);
	while (rlen > 0 && (space(reason[rlen - 1]) || reason[rlen - 1] ==
	    '\n' || reason[rlen - 1] == '\r'))
		rlen--;
	if (set_action(&ru, f[0], flen[0], what, err, errlen) != 0 ||
	    add_methods(&ru, f[1], flen[1], &any, what, err, errlen) != 0 ||
	    set_host(&ru, f[2], flen[2], what, err, errlen) != 0 ||
	    set_path(&ru, f[3], flen[3], what, err, errlen) != 0)
		goto fail;
	if (memchr(reason, '\n', rlen) != NULL ||
	    memchr(reason, '\r', rlen) != NULL) {
		fail(err, errlen, what, "the reason must be one line");
		goto fail;
	}
	if (rlen > 0)
		ru.reason = xstrndup(reason, rlen);
	ru.text = canonical(&ru, f[3], flen[3], NULL);
	append(r, &ru);
	return 0;
 fail:
	rule_clear(&ru);
	return -1;
}

/* A string member, or an element of the array named key. */
static int
json_string(const cJSON *m, const char *key, const char **s,
    const char *what, char *err, size_t errlen)
{
	*s = "";
	if (!cJSON_IsString(m) || m->valuestring == NULL)
		return fail(err, errlen, what, "\"%s\" %s", key,
		    m->string != NULL ? "must be a string" :
		    "must hold strings");
	*s = m->valuestring;
	return 0;
}

/* "methods": absent (any), "GET,POST", or ["GET", "POST"]. */
static int
json_methods(struct rule *ru, const cJSON *m, const char *what, char *err,
    size_t errlen)
{
	const cJSON	*e;
	const char	*s;
	bool		 any = false;

	if (m == NULL)
		return 0;
	if (!cJSON_IsArray(m)) {
		if (json_string(m, "methods", &s, what, err, errlen) != 0)
			return -1;
		return add_methods(ru, s, strlen(s), &any, what, err, errlen);
	}
	if (m->child == NULL)
		return fail(err, errlen, what, "\"methods\" is empty");
	for (e = m->child; e != NULL; e = e->next)
		if (json_string(e, "methods", &s, what, err, errlen) != 0 ||
		    add_method(ru, s, strlen(s), &any, what, err, errlen) != 0)
			return -1;
	return 0;
}

static int
json_mutations(struct rule *ru, const cJSON *m, const char *what,
    char *err, size_t errlen)
{
	const cJSON	*e;
	const char	*s;

	if (!cJSON_IsArray(m) || m->child == NULL)
		return fail(err, errlen, what,
		    "\"mutations\" must be a non-empty array");
	for (e = m->child; e != NULL; e = e->next)
		if (json_string(e, "mutations", &s, what, err, errlen) != 0 ||
		    add_mutation(ru, s, what, err, errlen) != 0)
			return -1;
	return 0;
}

int
rules_add_json(struct rules *r, const cJSON *obj, char *err, size_t errlen)
{
	static const char *const keys[] = { "action", "methods", "host",
	    "path", "body", "mutations", "reason" };
	struct rule	 ru;
	const cJSON	*m, *by[7];
	const char	*s = NULL, *path = NULL, *body = NULL;
	char		 what[SHOW_MAX + 16], key[SHOW_MAX + 4], *printed;
	size_t		 i;

	memset(&ru, 0, sizeof ru);
	memset(by, 0, sizeof by);
	printed = obj != NULL ? cJSON_PrintUnformatted(obj) : NULL;
	show(printed ? printed : "null", strlen(printed ? printed : "null"),
	    what, sizeof what);
	free(printed);
	if (!cJSON_IsObject(obj))
		return fail(err, errlen, what, "a rule must be an object");
	for (m = obj->child; m != NULL; m = m->next) {
		for (i = 0; i < 7; i++)
			if (m->string != NULL && strcmp(m->string, keys[i]) ==
			    0)
				break;
		if (i == 7) {
			show(m->string ? m->string : "", m->string ?
			    strlen(m->string) : 0, key, sizeof key);
			return fail(err, errlen, what, "unknown key \"%s\"",
			    key);
		}
		if (by[i] != NULL)
			return fail(err, errlen, what, "key \"%s\" repeated",
			    keys[i]);
		by[i] = m;
	}
	if (by[0] == NULL)
		return fail(err, errlen, what, "no \"action\"");
	if (by[2] == NULL)
		return fail(err, errlen, what, "no \"host\"");
	if (json_string(by[0], "action", &s, what, err, errlen) != 0 ||
	    set_action(&ru, s, strlen(s), what, err, errlen) != 0)
		goto fail;
	if (json_methods(&ru, by[1], what, err, errlen) != 0)
		goto fail;
	if (json_string(by[2], "host", &s, what, err, errlen) != 0 ||
	    set_host(&ru, s, strlen(s), what, err, errlen) != 0)
		goto fail;
	if (by[3] != NULL && (json_string(by[3], "path", &path, what, err,
	    errlen) != 0 || set_path(&ru, path, strlen(path), what, err,
	    errlen) != 0))
		goto fail;
	if (by[4] != NULL && (json_string(by[4], "body", &body, what, err,
	    errlen) != 0 || compile(&ru.body, body, strlen(body), 0, "body",
	    what, err, errlen) != 0))
		goto fail;
	if (by[5] != NULL && json_mutations(&ru, by[5], what, err, errlen) !=
	    0)
		goto fail;
	if (by[6] != NULL) {
		if (json_string(by[6], "reason", &s, what, err, errlen) != 0)
			goto fail;
		if (strchr(s, '\n') != NULL || strchr(s, '\r') != NULL) {
			fail(err, errlen, what, "the reason must be one line");
			goto fail;
		}
		if (s[0] != '\0')
			ru.reason = xstrdup(s);
	}
	ru.text = canonical(&ru, path, path ? strlen(path) : 0, body);
	append(r, &ru);
	return 0;
 fail:
	rule_clear(&ru);
	return -1;
}

/* --- the GitHub preset --------------------------------------------------- */

#define REPO	"(?:repos/[^/]+/[^/]+|repositories/[0-9]+)"
#define WRITES	"PUT,POST,PATCH,DELETE"

enum preset_where {
	PRE_API,	/* api.github.com, or HOST/api/v3 */
	PRE_UPLOADS,	/* uploads.github.com, or HOST/api/uploads */
	PRE_GRAPHQL,	/* api.github.com/graphql, or HOST/api/graphql */
};

static const struct preset_rule {
	enum preset_where	 where;
	const char		*methods;
	const char		*path;		/* after the prefix */
	const char		*body;
	const char		*mutations;	/* space-separated */
	const char		*text;		/* after "preset NAME: " */
	const char		*reason;	/* before " (preset NAME)" */
} github[] = {
	{ PRE_API, "PUT", "/" REPO "/pulls/[^/]+/merge", NULL, NULL,
	    "PUT /repos/{owner}/{repo}/pulls/{n}/merge",
	    "merging pull requests is blocked by egress-run" },
	{ PRE_API, "POST", "/" REPO "/merges", NULL, NULL,
	    "POST /repos/{owner}/{repo}/merges",
	    "merging branches is blocked by egress-run" },
	{ PRE_API, "POST", "/" REPO "/merge-upstream", NULL, NULL,
	    "POST /repos/{owner}/{repo}/merge-upstream",
	    "merging upstream into a fork is blocked by egress-run" },
	{ PRE_API, "POST", "/" REPO "/releases", NULL, NULL,
	    "POST /repos/{owner}/{repo}/releases",
	    "creating releases is blocked by egress-run" },
	{ PRE_API, "PUT,PATCH,DELETE", "/" REPO "/releases/.+", NULL, NULL,
	    "PUT|PATCH|DELETE /repos/{owner}/{repo}/releases/...",
	    "changing or deleting releases is blocked by egress-run" },
	{ PRE_UPLOADS, WRITES, "/" REPO "/releases/[^/]+/assets", NULL, NULL,
	    "POST /repos/{owner}/{repo}/releases/{id}/assets (uploads)",
	    "uploading release assets is blocked by egress-run" },
	{ PRE_API, "DELETE", "/" REPO, NULL, NULL,
	    "DELETE /repos/{owner}/{repo}",
	    "deleting repositories is blocked by egress-run" },
	{ PRE_API, "POST", "/" REPO "/transfer", NULL, NULL,
	    "POST /repos/{owner}/{repo}/transfer",
	    "transferring repositories is blocked by egress-run" },
	{ PRE_API, WRITES, "/" REPO "/branches/.+/protection(?:/.*)?", NULL,
	    NULL, "PUT|POST|PATCH|DELETE /repos/{owner}/{repo}/branches/"
	    "{branch}/protection...",
	    "changing branch protection is blocked by egress-run" },
	{ PRE_API, WRITES, "/(?:" REPO "|orgs/[^/]+|enterprises/[^/]+)"
	    "/rulesets(?:/.*)?", NULL, NULL,
	    "PUT|POST|PATCH|DELETE .../rulesets...",
	    "changing rulesets is blocked by egress-run" },
	{ PRE_API, "DELETE", "/" REPO "/git/refs/.+", NULL, NULL,
	    "DELETE /repos/{owner}/{repo}/git/refs/{ref}",
	    "deleting branches and tags is blocked by egress-run" },
	/* "force" with any value but false (Rails also reads "0", and
	 * "false" as a string prints the same). */
	{ PRE_API, "PATCH", "/" REPO "/git/refs/.+",
	    "(?m)^force\\n(?!(?:false|0|null)$)", NULL,
	    "PATCH /repos/{owner}/{repo}/git/refs/{ref} with force",
	    "force-updating branches is blocked by egress-run" },
	{ PRE_GRAPHQL, "*", NULL, NULL,
	    "mergePullRequest enablePullRequestAutoMerge enqueuePullRequest "
	    "mergeBranch", "GraphQL merge mutations",
	    "merging is blocked by egress-run" },
	{ PRE_GRAPHQL, "*", NULL, NULL,
	    "createRelease updateRelease deleteRelease",
	    "GraphQL release mutations",
	    "creating or changing releases is blocked by egress-run" },
	{ PRE_GRAPHQL, "*", NULL, NULL, "deleteRepository",
	    "GraphQL deleteRepository",
	    "deleting repositories is blocked by egress-run" },
	{ PRE_GRAPHQL, "*", NULL, NULL, "updateRef updateRefs deleteRef",
	    "GraphQL ref mutations",
	    "updating or deleting refs through the API is blocked by "
	    "egress-run (it can force-push): push with git" },
	{ PRE_GRAPHQL, "*", NULL, NULL,
	    "createBranchProtectionRule updateBranchProtectionRule "
	    "deleteBranchProtectionRule createRepositoryRuleset "
	    "updateRepositoryRuleset deleteRepositoryRuleset",
	    "GraphQL branch protection and ruleset mutations",
	    "changing branch protection is blocked by egress-run" },
};

static int
preset_add(struct rules *r, const struct preset_rule *pr, const char *name,
    const char *host, const char *prefix, char *err, size_t errlen)
{
	struct rule	 ru;
	const char	*m, *sp;
	char		 what[SHOW_MAX + 16], shown[SHOW_MAX + 4], *path;
	bool		 any = false;
	int		 rc = -1;

	memset(&ru, 0, sizeof ru);
	show(name, strlen(name), shown, sizeof shown);
	snprintf(what, sizeof what, "preset '%s'", shown);
	ru.action = RULES_DENY;
	if (pr->where == PRE_GRAPHQL)
		path = xprintf("(?i)%s", prefix);
	else
		path = xprintf("(?i)%s%s", prefix, pr->path);
	if (add_methods(&ru, pr->methods, strlen(pr->methods), &any, what,
	    err, errlen) != 0 || set_host(&ru, host, strlen(host), what, err,
	    errlen) != 0 || set_path(&ru, path, strlen(path), what, err,
	    errlen) != 0)
		goto out;
	if (pr->body != NULL && compile(&ru.body, pr->body, strlen(pr->body),
	    0, "body", what, err, errlen) != 0)
		goto out;
	for (m = pr->mutations; m != NULL && *m != '\0'; m = sp) {
		char one[128];
		sp = strchr(m, ' ');
		snprintf(one, sizeof one, "%.*s",
		    (int)(sp ? (size_t)(sp - m) : strlen(m)), m);
		if (add_mutation(&ru, one, what, err, errlen) != 0)
			goto out;
		if (sp != NULL)
			sp++;
	}
	ru.text = xprintf("preset %s: %s", name, pr->text);
	ru.reason = xprintf("%s (preset %s)", pr->reason, name);
	append(r, &ru);
	rc = 0;
 out:
	if (rc != 0)
		rule_clear(&ru);
	free(path);
	return rc;
}

int
rules_add_preset(struct rules *r, const char *name, char *err, size_t errlen)
{
	const char	*host = NULL, *api, *up, *gql, *uphost;
	char		 shown[SHOW_MAX + 8];
	size_t		 i, before = r->n;

	if (name == NULL)
		name = "";
	show(name, strlen(name), shown, sizeof shown);
	if (strcmp(name, "github") == 0) {
		api = "";
		up = "";
		gql = "/graphql";
		host = "api.github.com";
		uphost = "uploads.github.com";
	} else if (strncmp(name, "github:", 7) == 0) {
		host = name + 7;
		uphost = host;
		api = "/api/v3";
		up = "/api/uploads";
		gql = "/api/graphql";
		if (host[0] == '\0') {
			snprintf(err, errlen, "bad preset '%s': no host after "
			    "'github:'", shown);
			return -1;
		}
	} else {
		snprintf(err, errlen, "bad preset '%s': known presets are "
		    "'github' and 'github:HOST'", shown);
		return -1;
	}
	for (i = 0; i < sizeof github / sizeof github[0]; i++) {
		const struct preset_rule *pr = &github[i];
		if (preset_add(r, pr, name,
		    pr->where == PRE_UPLOADS ? uphost : host,
		    pr->where == PRE_API ? api : pr->where == PRE_UPLOADS ?
		    up : gql, err, errlen) != 0) {
			while (r->n > before)
				rule_clear(&r->v[--r->n]);
			return -1;
		}
	}
	return 0;
}

/* --- paths --------------------------------------------------------------- */

int
rules_decode_path(const char *path, size_t len, char *out, size_t outsize,
    size_t *outlen)
{
	const char	*q;
	size_t		 i, n = 0, r, w, s, seglen;
	int		 hi, lo;

	*outlen = 0;
	if (outsize > 0)
		out[0] = '\0';
	if ((q = memchr(path, '?', len)) != NULL)
		len = (size_t)(q - path);
	if (len > RULES_PATH_MAX)
		return RULES_E_PATH;
	if (outsize < len + 2)
		return RULES_E_PATH;
	if (len == 1 && path[0] == '*') {
		memcpy(out, "*", 2);
		*outlen = 1;
		return 0;
	}
	if (len == 0 || path[0] != '/')
		return RULES_E_PATH;
	for (i = 0; i < len; i++) {
		char c = path[i];
		if (c == '\0')
			return RULES_E_NUL;
		if (c == '#')
			return RULES_E_PATH;
		if (c != '%') {
			out[n++] = c;
			continue;
		}
		if (i + 2 >= len || (hi = util_hexval(path[i + 1])) < 0 ||
		    (lo = util_hexval(path[i + 2])) < 0)
			return RULES_E_ESCAPE;
		if (hi == 0 && lo == 0)
			return RULES_E_NUL;
		out[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	/* out[0..n) starts with '/': resolve segments in place, the write
	 * position never passing the read one. */
	for (r = 0, w = 0; r < n;) {
		r++;				/* the '/' */
		s = r;
		while (r < n && out[r] != '/')
			r++;
		seglen = r - s;
		if (seglen == 0 || (seglen == 1 && out[s] == '.'))
			continue;
		if (seglen == 2 && out[s] == '.' && out[s + 1] == '.') {
			while (w > 0 && out[--w] != '/')
				;
			continue;
		}
		out[w++] = '/';
		memmove(out + w, out + s, seglen);
		w += seglen;
	}
	if (w == 0)
		out[w++] = '/';
	out[w] = '\0';
	*outlen = w;
	return 0;
}

/* --- JSON bodies --------------------------------------------------------- */

/* One JSON value: a scalar on its own line, or its members (key line,
 * then value) and elements in order. */
static void
text_item(struct tbuf *t, const cJSON *item)
{
	const cJSON	*c;
	char		 num[40];
	double		 d;

	if (cJSON_IsString(item) && item->valuestring != NULL)
		tbuf_add(t, item->valuestring, strlen(item->valuestring));
	else if (cJSON_IsNumber(item)) {
		d = item->valuedouble;
		if (d > -9007199254740992.0 && d < 9007199254740992.0 &&
		    d == (double)(int64_t)d)
			snprintf(num, sizeof num, "%lld", (long long)d);
		else
			snprintf(num, sizeof num, "%.17g", d);
		tbuf_add(t, num, strlen(num));
	} else if (cJSON_IsTrue(item))
		tbuf_add(t, "true", 4);
	else if (cJSON_IsFalse(item))
		tbuf_add(t, "false", 5);
	else if (cJSON_IsNull(item))
		tbuf_add(t, "null", 4);
	else {
		for (c = item->child; c != NULL; c = c->next) {
			if (cJSON_IsObject(item) && c->string != NULL) {
				tbuf_add(t, c->string, strlen(c->string));
				tbuf_add(t, "\n", 1);
			}
			text_item(t, c);
		}
		return;
	}
	tbuf_add(t, "\n", 1);
}

char *
rules_body_text(const cJSON *root, size_t *len)
{
	struct tbuf	t = { NULL, 0, 0 };

	tbuf_add(&t, "", 0);
	if (root != NULL)
		text_item(&t, root);
	*len = t.len;
	return t.p;
}

/* As graphql.c: bytes cJSON would read differently from the origin. */
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
		i++;
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

/*
 * The text body regexes run on. A body whose first byte past whitespace
 * (and a UTF-8 BOM) opens JSON -- { [ " -- must parse whole and is read
 * as its decoded text; one that does not is refused, since an origin more
 * lenient than cJSON (trailing commas, lone surrogates) could still take
 * it as JSON the regex never saw decoded. Any other body is matched as
 * it was sent.
 */
static int
body_text(struct body *b)
{
	const char	*end = NULL, *p = b->raw;
	size_t		 len = b->len, i = 0;
	cJSON		*root;

	if (b->text_done)
		return b->text_err;
	b->text_done = true;
	if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
		p += 3;
		len -= 3;
	}
	while (i < len && json_space(p[i]))
		i++;
	if (i == len || (p[i] != '{' && p[i] != '[' && p[i] != '"'))
		return 0;
	if (json_suspect(p, len))
		return b->text_err = RULES_E_BODY;
	if ((root = cJSON_ParseWithLengthOpts(p + i, len - i, &end,
	    false)) == NULL)
		return b->text_err = RULES_E_BODY;
	while (end != NULL && end < p + len && json_space(*end))
		end++;
	if (end != p + len) {
		cJSON_Delete(root);
		return b->text_err = RULES_E_BODY;
	}
	b->text = rules_body_text(root, &b->textlen);
	cJSON_Delete(root);
	return 0;
}

static void
on_field(void *arg, enum graphql_op op, const char *name, size_t len)
{
	struct body		*b = arg;
	const struct rules	*r = b->rules;
	size_t			 i, j;

	if (op != GRAPHQL_MUTATION)
		return;
	for (i = 0; i < r->n; i++) {
		if (b->hit[i][0] != '\0')
			continue;
		for (j = 0; j < r->v[i].nmutations; j++) {
			if (strlen(r->v[i].mutations[j]) == len &&
			    memcmp(r->v[i].mutations[j], name, len) == 0) {
				show(name, len, b->hit[i], NAME_SHOW);
				break;
			}
		}
	}
}

static int
body_graphql(struct body *b)
{
	if (b->gql_done)
		return b->gql_err;
	b->gql_done = true;
	b->hit = xcalloc(b->rules->n, sizeof *b->hit);
	return b->gql_err = graphql_body(b->raw, b->len, on_field, b);
}

/* --- evaluation ---------------------------------------------------------- */

static bool
method_match(const struct rule *ru, const char *m, size_t len)
{
	size_t	i;

	if (ru->nmethods == 0)
		return true;
	for (i = 0; i < ru->nmethods; i++)
		if (strlen(ru->methods[i]) == len &&
		    strncasecmp(ru->methods[i], m, len) == 0)
			return true;
	return false;
}

static bool
host_match(const struct rule *ru, const struct dest *d)
{
	/* The rule's one pattern (in hostp's deny list for a deny rule,
	 * its allow list for an allow rule): matched, no verdict made. */
	return policy_names_dest(ru->hostp, d);
}

/* 1 match, 0 none, -1 PCRE2 gave up */
static int
re_match(const struct rules *r, const pcre2_code *re, const char *s,
    size_t len)
{
	int	rc;

	rc = pcre2_match(re, (PCRE2_SPTR)(len > 0 ? s : ""), len, 0, 0, r->md,
	    r->mctx);
	if (rc >= 0)
		return 1;
	return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

static void
verdict_set(struct rule_verdict *v, enum rules_action a,
    const struct rules *r, size_t i)
{
	v->action = a;
	v->rule = r->v[i].text;
	v->index = i;
	v->reason[0] = '\0';
}

static int __attribute__((format(printf, 5, 6)))
refuse(struct rule_verdict *v, int code, const struct rules *r, size_t i,
    const char *fmt, ...)
{
	va_list	ap;

	verdict_set(v, RULES_DENY, r, i);
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof v->reason, fmt, ap);
	va_end(ap);
	return code;
}

static int
eval(const struct rules *r, const char *method, size_t mlen,
    const struct dest *d, const char *path, size_t plen, struct body *b,
    struct rule_verdict *v)
{
	const struct rule	*ru;
	const char		*text;
	size_t			 i, dlen = 0, tlen;
	bool			 decoded = false;
	int			 rc;

	memset(v, 0, sizeof *v);
	v->action = RULES_NONE;
	for (i = 0; i < r->n; i++) {
		ru = &r->v[i];
		if (!method_match(ru, method, mlen) || !host_match(ru, d))
			continue;
		if (ru->path != NULL) {
			if (!decoded && (rc = rules_decode_path(path, plen,
			    r->pathbuf, RULES_PATH_MAX + 2, &dlen)) != 0)
				return refuse(v, rc, r, i, "request path "
				    "cannot be checked against request rules: "
				    "%s", rules_strerror(rc));
			decoded = true;
			if ((rc = re_match(r, ru->path, r->pathbuf, dlen)) < 0)
				return refuse(v, RULES_E_MATCH, r, i,
				    "request rule could not be evaluated on "
				    "this path (PCRE2 gave up)");
			if (rc == 0)
				continue;
		}
		if (ru->body != NULL || ru->nmutations > 0) {
			if (b == NULL) {
				verdict_set(v, RULES_NEED_BODY, r, i);
				return RULES_NEED_BODY;
			}
			if (b->raw == NULL)
				return refuse(v, RULES_E_BODY, r, i,
				    "request body over %d KiB cannot be "
				    "checked against request rules",
				    RULES_BODY_MAX / 1024);
		}
		if (ru->body != NULL) {
			if ((rc = body_text(b)) != 0)
				return refuse(v, rc, r, i, "request body "
				    "cannot be decoded faithfully for request "
				    "rules (malformed JSON, or \\u0000)");
			text = b->text != NULL ? b->text : b->raw;
			tlen = b->text != NULL ? b->textlen : b->len;
			if ((rc = re_match(r, ru->body, text, tlen)) < 0)
				return refuse(v, RULES_E_MATCH, r, i,
				    "request rule could not be evaluated on "
				    "this body (PCRE2 gave up)");
			if (rc == 0)
				continue;
		}
		if (ru->nmutations > 0) {
			if ((rc = body_graphql(b)) != 0)
				return refuse(v, RULES_E_GRAPHQL, r, i,
				    "GraphQL request cannot be checked against "
				    "request rules: %s", graphql_strerror(rc));
			if (b->hit[i][0] == '\0')
				continue;
		}
		verdict_set(v, ru->action, r, i);
		if (ru->action == RULES_DENY) {
			if (ru->nmutations > 0)
				snprintf(v->reason, sizeof v->reason,
				    "GraphQL %s: %s", b->hit[i], ru->reason ?
				    ru->reason : "refused by a request rule");
			else if (ru->reason != NULL)
				snprintf(v->reason, sizeof v->reason, "%s",
				    ru->reason);
			else
				snprintf(v->reason, sizeof v->reason,
				    "refused by request rule '%s'", ru->text);
		}
		return ru->action;
	}
	return RULES_NONE;
}

int
rules_eval(const struct rules *r, const char *method, size_t mlen,
    const struct dest *d, const char *path, size_t plen,
    struct rule_verdict *v)
{
	return eval(r, method, mlen, d, path, plen, NULL, v);
}

int
rules_eval_body(const struct rules *r, const char *method, size_t mlen,
    const struct dest *d, const char *path, size_t plen, const char *body,
    size_t blen, struct rule_verdict *v)
{
	struct body	b;
	int		rc;

	memset(&b, 0, sizeof b);
	b.rules = r;
	if (body != NULL && blen <= RULES_BODY_MAX) {
		b.raw = body;
		b.len = blen;
	}
	rc = eval(r, method, mlen, d, path, plen, &b, v);
	free(b.text);
	free(b.hit);
	return rc;
}

bool
rules_names_host(const struct rules *r, const struct dest *d)
{
	size_t	i;

	for (i = 0; i < r->n; i++)
		if (host_match(&r->v[i], d))
			return true;
	return false;
}

const char *
rules_strerror(int code)
{
	switch (code) {
	case RULES_OK:
		return "ok";
	case RULES_E_ESCAPE:
		return "invalid percent-escape in the path";
	case RULES_E_NUL:
		return "NUL byte (%00) in the path";
	case RULES_E_PATH:
		return "not an origin path, a '#' in it, or too long";
	case RULES_E_MATCH:
		return "regex match gave up (limit or invalid UTF-8)";
	case RULES_E_BODY:
		return "body too large or not decodable";
	case RULES_E_GRAPHQL:
		return "GraphQL body cannot be parsed";
	}
	return "unknown rules error";
}
