/*
 * Request rules (issue 8): --rule specs, config-file rule objects and
 * --preset github, judged on an intercepted request's method, destination,
 * decoded path and, when a rule asks for it, its body. Host patterns are
 * policy.c's; paths and bodies are PCRE2 regexes compiled once (JIT when
 * available); GraphQL mutations come from graphql.c. Pure after set-up.
 */
#ifndef BUILTIN_RULES_H
#define BUILTIN_RULES_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;
struct dest;
struct rules;

#define RULES_BODY_MAX		(256 * 1024)	/* bytes of body a rule
						   judges; more: refuse */
#define RULES_PATH_MAX		8192	/* request path bytes judged;
					   longer: RULES_E_PATH */
#define RULES_REGEX_MAX		4096	/* regex source bytes */
#define RULES_METHODS_MAX	16	/* methods in one rule */
#define RULES_MUTATIONS_MAX	64	/* GraphQL fields in one rule */

enum rules_action {
	RULES_NONE = 0,		/* no rule matched: host policy decides */
	RULES_ALLOW,
	RULES_DENY,
	RULES_NEED_BODY,	/* the first rule whose method, host and path
				   match also judges the body: buffer it (up
				   to RULES_BODY_MAX) and call
				   rules_eval_body() */
};

enum rules_result {
	RULES_OK = 0,
	RULES_E_ESCAPE = -1,	/* a '%' not followed by two hex digits */
	RULES_E_NUL = -2,	/* %00 or a NUL byte in the path */
	RULES_E_PATH = -3,	/* not "/..." (or "*"), a '#', or longer
				   than RULES_PATH_MAX */
	RULES_E_MATCH = -4,	/* PCRE2 gave up (match limit, bad UTF-8
				   under a (*UTF) rule) */
	RULES_E_BODY = -5,	/* body over RULES_BODY_MAX, or JSON that
				   cannot be decoded faithfully */
	RULES_E_GRAPHQL = -6,	/* a GraphQL body that cannot be parsed */
};

/*
 * The decision. On a negative return of rules_eval*() action is
 * RULES_DENY with reason saying why the request could not be judged: a
 * caller that only looks at action refuses it.
 */
struct rule_verdict {
	enum rules_action	 action;
	const char		*rule;		/* the deciding rule's text
						   (audit "rule"), NULL for
						   RULES_NONE; valid while
						   the rules live */
	size_t			 index;		/* its position, from 0 */
	char			 reason[256];	/* one line for the 403
						   page, X-Egress-Run-Reason
						   and the audit; set for
						   DENY (the rule's reason,
						   or one naming it) */
};

struct rules	*rules_new(void);
void		 rules_free(struct rules *);	/* NULL is a no-op */

/*
 * --rule 'deny|allow METHODS HOST-PATTERN PATH-REGEX [REASON...]'.
 * Fields are separated by spaces or tabs, so PATH-REGEX holds none (write
 * \x20 or \s); REASON is the rest of the line. METHODS is '*' (any) or
 * METHOD[,METHOD...]: letters, digits, '-' and '_', compared without
 * regard to case ("delete" is DELETE: a deny cannot be dodged by case).
 * HOST-PATTERN is a destination pattern (SPEC §5, policy.h). PATH-REGEX
 * is PCRE2, anchored at both ends, matched against the path as
 * rules_decode_path() gives it. Returns 0, or -1 with one line in err
 * naming the rule: "bad rule 'SPEC': path regex: missing closing
 * parenthesis at column 9" (column = PCRE2's error offset + 1).
 */
int		 rules_add_spec(struct rules *, const char *spec, char *err,
		    size_t errlen);

/*
 * A config-file rule: {"action": "deny"|"allow", "methods": "GET,POST" or
 * ["GET", "POST"] (default "*"), "host": PATTERN (required), "path":
 * REGEX (default: any path), "body": REGEX, "mutations": [GraphQL field
 * names], "reason": TEXT}. Unknown or repeated keys are errors (a typo
 * must not widen a rule). "body" is searched for anywhere (not anchored;
 * inline flags such as (?i) (?m) (?s) work) in the text
 * rules_body_text() gives; "mutations" matches a request whose body holds
 * a GraphQL mutation selecting one of those top-level fields. A rule with
 * both needs both.
 */
int		 rules_add_json(struct rules *, const struct cJSON *obj,
		    char *err, size_t errlen);

/*
 * "github" (api.github.com, and release-asset uploads on
 * uploads.github.com) or "github:HOST" (GitHub Enterprise Server: REST
 * under /api/v3, GraphQL at /api/graphql, uploads under /api/uploads, all
 * on HOST, a destination pattern). Adds deny rules for merging (REST
 * merge endpoints; GraphQL mergePullRequest, enablePullRequestAutoMerge,
 * enqueuePullRequest, mergeBranch), releases (create, edit, delete,
 * assets; createRelease, updateRelease, deleteRelease), deleting or
 * transferring a repository (deleteRepository), branch protection and
 * rulesets (any write; the *BranchProtectionRule and *RepositoryRuleset
 * mutations), deleting refs and force-updating them (REST DELETE
 * git/refs, PATCH git/refs with "force" other than false; updateRef,
 * updateRefs, deleteRef -- refused outright, their force flag may come
 * from variables). Paths match /repos/OWNER/REPO and /repositories/ID and
 * ignore case. Any method on the GraphQL endpoint has its body parsed: a
 * body that cannot be parsed is refused. Everything else falls through.
 */
int		 rules_add_preset(struct rules *, const char *name, char *err,
		    size_t errlen);

size_t		 rules_count(const struct rules *);
/* Rule i's text (the audit "rule": "deny PUT api.github.com /x" or
 * "preset github: PUT /repos/{owner}/{repo}/pulls/{n}/merge") and its
 * host pattern as given. */
const char	*rules_text(const struct rules *, size_t);
const char	*rules_host(const struct rules *, size_t);

/* Does any rule name dest (so a tunnel to it must be intercepted: method
 * and path are invisible otherwise)? */
bool		 rules_names_host(const struct rules *, const struct dest *);

/* Does any rule judge bodies (so the caller need ever buffer one)? */
bool		 rules_need_bodies(const struct rules *);

/*
 * First matching rule wins. method: the request's; path: the request
 * path as sent, query included (it is cut at the first '?'), decoded with
 * rules_decode_path(). Returns the action (>= 0) or a negative
 * rules_result (an undecodable path on a host some rule names: refuse).
 * Rules are only matched once the path is needed, so a host no rule
 * names costs no decoding. Not thread-safe: one struct rules per thread.
 */
int		 rules_eval(const struct rules *, const char *method,
		    size_t methodlen, const struct dest *, const char *path,
		    size_t pathlen, struct rule_verdict *);

/*
 * After RULES_NEED_BODY: the same request with its body (any method; no
 * body is "", 0). Evaluates every rule again from the first, body rules
 * now judged, so the result is never RULES_NEED_BODY. body NULL means the
 * body ran over RULES_BODY_MAX: the request is refused (RULES_E_BODY)
 * with a reason that says so.
 */
int		 rules_eval_body(const struct rules *, const char *method,
		    size_t methodlen, const struct dest *, const char *path,
		    size_t pathlen, const char *body, size_t bodylen,
		    struct rule_verdict *);

/*
 * A request path as rules see it, pure. Cut at the first '?'; must start
 * with '/' (or be exactly "*"); '#' is refused. Percent-escapes are
 * decoded once -- %2F too, so an encoded slash separates segments like a
 * plain one (a deny rule cannot be dodged by encoding; an origin that
 * keeps %2F inside a segment only ever sees fewer separators than the rule
 * did) -- then dot-segments are resolved ("." dropped, ".." drops the
 * previous segment, never above the root), empty segments ("//") dropped
 * and a trailing '/' removed (except for "/" itself). So
 * "/a/.%2E//b/%2e/c/" is "/b/c". Case, ';', '\\' and '+' are kept as they
 * are. %00, a NUL byte and an invalid escape ("%", "%4", "%G0") are
 * errors. out gets the NUL-terminated result, *outlen its length; outsize
 * >= len + 2 always suffices. Returns 0 or a negative rules_result.
 */
int		 rules_decode_path(const char *path, size_t len, char *out,
		    size_t outsize, size_t *outlen);

/*
 * The text a body regex runs on, for a body that is JSON: every key and
 * every scalar value, in document order, each decoded and followed by a
 * '\n' -- strings as their decoded bytes (\u escapes resolved, no
 * quotes), true/false/null as those words, numbers in %.17g form. So
 * {"sha":"1a","force":true} reads "sha\n1a\nforce\ntrue\n" and a regex
 * (?m)^force\ntrue$ finds it. Allocated, NUL-terminated, length in *len.
 * rules_eval_body() uses it for a body whose first byte past whitespace
 * (and a UTF-8 BOM) is { [ or ", which must then parse whole, without a
 * NUL or \u0000 (cJSON would cut the string there), else RULES_E_BODY; a
 * body that is not JSON is matched as it was sent.
 */
char		*rules_body_text(const struct cJSON *, size_t *len);

const char	*rules_strerror(int);

#endif
