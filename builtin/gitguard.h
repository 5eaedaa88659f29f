/*
 * The git push guard (issue 8): which git smart-HTTP requests to the hosts
 * --git-repo names may pass and, for a push, which ref updates. A refused
 * push is answered with a receive-pack status report (pktline.c) so that
 * git prints "! [remote rejected] main -> main (egress-run: ...)";
 * fast-forwards are proven by walking the pushed pack (gitpack.c). Also
 * the child's git configuration that sends ssh remotes of guarded hosts
 * over HTTPS. Pure after set-up: no I/O.
 */
#ifndef BUILTIN_GITGUARD_H
#define BUILTIN_GITGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dest;
struct gitguard;
struct strlist;

#define GITGUARD_BODY_MAX	(256u << 20)	/* receive-pack body the
						   caller buffers */
#define GITGUARD_GLOB_MAX	256		/* bytes of one glob */

enum gitguard_action {
	GITGUARD_NONE = 0,	/* not git on a guarded host: not the
				   guard's business */
	GITGUARD_ALLOW,		/* forward it as it is */
	GITGUARD_NEED_BODY,	/* a push: buffer the whole body (up to
				   GITGUARD_BODY_MAX) and call
				   gitguard_push() before forwarding any of
				   it */
	GITGUARD_REFUSE,	/* answer with status, content_type, body */
};

/* gitguard_push() flags */
#define GITGUARD_TRUNCATED	0x1	/* body is only the first
					   GITGUARD_BODY_MAX bytes */
#define GITGUARD_ENCODED	0x2	/* sent with a Content-Encoding other
					   than identity: not inspectable */

struct gitguard_verdict {
	enum gitguard_action	 action;
	const char		*rule;		/* REFUSE: audit "rule" --
						   "git-repo", "git-protect
						   GLOB", "git-push-prefix",
						   "git-delete", "git-force",
						   "git-push" (a push that
						   cannot be judged), "git-
						   webdav"; valid while the
						   guard lives */
	int			 status;	/* REFUSE: 200 for a status
						   report, else 403 */
	const char		*content_type;	/* REFUSE: "application/x-
						   git-receive-pack-result"
						   or "text/plain" (git
						   prints a text/plain body
						   as "remote: ...") */
	uint8_t			*body;		/* REFUSE: the whole response
						   body, allocated */
	size_t			 bodylen;
	char			 reason[256];	/* REFUSE: one line for the
						   audit and
						   X-Egress-Run-Reason */
};

struct gitguard	*gitguard_new(void);
void		 gitguard_free(struct gitguard *);	/* NULL: no-op */

/*
 * --git-repo HOST[:PORT]/PATH: HOST a name or an address ([v6] with a
 * port), without a port for any port but 22 and 9418 (ssh's and git://'s,
 * never HTTP: their tunnels are refused); PATH the repository's path on that
 * host, one or more segments, "*" (any run) and "?" (one character)
 * matching within a segment, a ".git" at its end ignored:
 * "github.com/acme/widget", "ghe.corp:8443/git/acme/widget-?", and
 * "github.com/acme/" followed by '*' for every repository of acme.
 * Returns 0, or -1 with one line in err naming the option and value.
 */
int		 gitguard_add_repo(struct gitguard *, const char *, char *err,
		    size_t errlen);

/*
 * --git-protect GLOB and --git-push-prefix GLOB: a glob over branch names
 * (refs/heads/ left out), or over whole ref names when it starts with
 * "refs/" ("refs/tags/v*"). '*' matches any run, '/' included; '?' one
 * character; every other character is itself and must be one git allows
 * in a ref name. The first --git-protect replaces the default (main,
 * master). Returns 0, or -1 with one line in err.
 */
int		 gitguard_add_protect(struct gitguard *, const char *,
		    char *err, size_t errlen);
int		 gitguard_add_push_prefix(struct gitguard *, const char *,
		    char *err, size_t errlen);
void		 gitguard_allow_delete(struct gitguard *, bool);
void		 gitguard_allow_force(struct gitguard *, bool);

/* The --git-repo patterns, as given, and each one's HOST[:PORT]. */
size_t		 gitguard_count(const struct gitguard *);
const char	*gitguard_repo(const struct gitguard *, size_t);
const char	*gitguard_host(const struct gitguard *, size_t);

/* Is dest (name and port) named by a --git-repo? Then it must be
 * intercepted and each request on it passed to gitguard_request(). */
bool		 gitguard_names_host(const struct gitguard *,
		    const struct dest *);
/* Is dest's name guarded, whatever the port? Then a tunnel to any port
 * that is not intercepted (ssh's 22, git://'s 9418) must be refused. */
bool		 gitguard_names_name(const struct gitguard *,
		    const struct dest *);

/*
 * One request to a guarded name, whatever the port (gitguard_names_name();
 * on a port no --git-repo names, no repository is allowed, so plain HTTP
 * to another port of the host is no way round): method, dest, and the
 * request target as sent (origin form, query included; decoded here as
 * rules_decode_path() does). Git requests are the smart-HTTP ones
 * (PATH/info/refs, PATH/git-upload-pack, PATH/git-receive-pack), dumb-HTTP
 * object fetches (PATH/objects/...) and LFS (PATH/info/lfs/...): allowed
 * when PATH matches a --git-repo for dest, else refused (fetch and push
 * alike). A POST to git-receive-pack is GITGUARD_NEED_BODY. WebDAV
 * methods (git's dumb-HTTP push) are refused on guarded hosts. Anything
 * else is GITGUARD_NONE. Returns 0; the verdict says the rest (free its
 * body with gitguard_verdict_clear()).
 */
int		 gitguard_request(const struct gitguard *, const char *method,
		    size_t methodlen, const struct dest *, const char *target,
		    size_t targetlen, struct gitguard_verdict *);

/*
 * The push itself: the same dest and target, and the whole request body
 * (chunked framing removed; flags GITGUARD_TRUNCATED or
 * GITGUARD_ENCODED when it is not all there or not readable). Every
 * command is judged -- ref name, --git-protect, --git-push-prefix,
 * deletion, tag moves, and fast-forward proven through the pack unless
 * --git-allow-force -- and if any is refused, the whole push is: each ref
 * gets "ng" in a status report, in the side-band the client asked for.
 * GITGUARD_ALLOW or GITGUARD_REFUSE. Returns 0.
 */
int		 gitguard_push(const struct gitguard *, const struct dest *,
		    const char *target, size_t targetlen, const uint8_t *body,
		    size_t bodylen, unsigned flags, struct gitguard_verdict *);

/*
 * Does body, the start of a push's request body, hold its whole command
 * section (commands, capabilities, push options, certificate)? 1 yes, 0
 * not yet, -1 malformed. For a push too big to gather: its commands are
 * read, then gitguard_push() with GITGUARD_TRUNCATED answers each with
 * "ng" in a status report.
 */
#define GITGUARD_HEAD_MAX	(1u << 20)	/* command section a caller
						   waits for */
int		 gitguard_push_head(const uint8_t *body, size_t len);

void		 gitguard_verdict_clear(struct gitguard_verdict *);

/*
 * For COMMAND's environment: git configuration that rewrites ssh remotes
 * of each guarded host (git@HOST:, ssh://git@HOST/, ssh://git@HOST:22/,
 * ssh://HOST/) to https://HOST[:PORT]/, as url.<base>.insteadOf entries
 * in GIT_CONFIG_KEY_n / GIT_CONFIG_VALUE_n numbered after the
 * GIT_CONFIG_COUNT env already holds (env: "NAME=value" strings,
 * NULL-terminated), and the new GIT_CONFIG_COUNT. Adds "NAME=value"
 * strings to out (nothing when no host is guarded). Returns 0, or -1 with
 * one line in err when env's GIT_CONFIG_COUNT is not a count git reads.
 */
int		 gitguard_git_env(const struct gitguard *, char *const *env,
		    struct strlist *out, char *err, size_t errlen);

#endif
