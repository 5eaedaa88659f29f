/*
 * The git push guard: --git-repo patterns, ref globs, the classification
 * of requests on guarded hosts, and the judgement of a push -- its
 * commands through pktline.c, fast-forwards through gitpack.c, the answer
 * through pktline_report(). When in doubt a match goes the refusing way:
 * protected branches match without regard to case, allow-lists (repos,
 * --git-push-prefix) with it.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/gitguard.h"
#include "builtin/gitpack.h"
#include "builtin/pktline.h"
#include "builtin/rules.h"
#include "common/strlist.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define CT_REPORT	"application/x-git-receive-pack-result"
#define CT_TEXT		"text/plain"
#define REF_MAX		4096	/* longer ref names are refused */
#define FF		"egress-run: force-push blocked: "

static const char R_REPO[] = "git-repo";
static const char R_PREFIX[] = "git-push-prefix";
static const char R_DELETE[] = "git-delete";
static const char R_FORCE[] = "git-force";
static const char R_PUSH[] = "git-push";
static const char R_WEBDAV[] = "git-webdav";

struct repo {
	char		 *spec;		/* as given */
	char		 *hosttext;	/* HOST[:PORT] as given */
	char		  host[ADDR_HOST_MAX + 1];	/* canonical */
	enum addr_kind	  kind;
	uint16_t	  port;		/* 0: any */
	char		**segs;		/* path globs, ".git" dropped */
	size_t		  nsegs;
};

struct glob {
	char		*pat;
	char		*rule;		/* "git-protect main" */
	bool		 full;		/* over the whole ref name */
};

struct gitguard {
	struct repo	*repos;
	size_t		 nrepos;
	struct glob	*protect;
	size_t		 nprotect;
	bool		 protect_default;
	struct glob	*prefix;
	size_t		 nprefix;
	bool		 allow_delete;
	bool		 allow_force;
};

/* --- globs --------------------------------------------------------------- */

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + 32) : c;
}

/* '*' any run, '?' one byte; O(len(p) * n) at worst. */
static bool
glob_match(const char *p, const char *s, size_t n, bool fold)
{
	size_t	pl = strlen(p), pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < n) {
		if (pi < pl && p[pi] == '*') {
			star = pi++;
			mark = si;
		} else if (pi < pl && (p[pi] == '?' || p[pi] == s[si] ||
		    (fold && lower(p[pi]) == lower(s[si])))) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1;
			si = ++mark;
		} else
			return false;
	}
	while (pi < pl && p[pi] == '*')
		pi++;
	return pi == pl;
}

static void
glob_add(struct glob **v, size_t *n, const char *pat, const char *opt)
{
	struct glob	*g;

	*v = xreallocarray(*v, *n + 1, sizeof **v);
	g = &(*v)[(*n)++];
	g->pat = xstrdup(pat);
	g->rule = xprintf("%s %s", opt, pat);
	g->full = strncmp(pat, "refs/", 5) == 0;
}

static void
glob_clear(struct glob **v, size_t *n)
{
	for (size_t i = 0; i < *n; i++) {
		free((*v)[i].pat);
		free((*v)[i].rule);
	}
	free(*v);
	*v = NULL;
	*n = 0;
}

static int
glob_check(const char *opt, const char *pat, char *err, size_t errlen)
{
	size_t	n = strlen(pat);

	if (n == 0) {
		snprintf(err, errlen, "bad --%s '': give a branch glob such "
		    "as main or sandbox/*", opt);
		return -1;
	}
	if (n > GITGUARD_GLOB_MAX) {
		snprintf(err, errlen, "bad --%s: longer than %d bytes", opt,
		    GITGUARD_GLOB_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)pat[i];
		if (c <= 0x20 || c == 0x7f || strchr("~^:[\\", c) != NULL) {
			snprintf(err, errlen, "bad --%s '%s': '%c' is not "
			    "allowed (globs take * and ?, and characters git "
			    "allows in ref names)", opt, pat, c > 0x20 &&
			    c != 0x7f ? c : '?');
			return -1;
		}
	}
	if (pat[0] == '/' || pat[n - 1] == '/') {
		snprintf(err, errlen, "bad --%s '%s': a glob cannot start or "
		    "end with '/'", opt, pat);
		return -1;
	}
	return 0;
}

/* Does ref match g? A short glob is over branch names only. */
static bool
glob_ref(const struct glob *g, const char *ref, bool fold)
{
	if (g->full)
		return glob_match(g->pat, ref, strlen(ref), fold);
	if (strncmp(ref, "refs/heads/", 11) != 0)
		return false;
	return glob_match(g->pat, ref + 11, strlen(ref + 11), fold);
}

/* --- set-up -------------------------------------------------------------- */

struct gitguard *
gitguard_new(void)
{
	struct gitguard	*g = xcalloc(1, sizeof *g);

	glob_add(&g->protect, &g->nprotect, "main", "git-protect");
	glob_add(&g->protect, &g->nprotect, "master", "git-protect");
	g->protect_default = true;
	return g;
}

static void
repo_clear(struct repo *r)
{
	for (size_t i = 0; i < r->nsegs; i++)
		free(r->segs[i]);
	free(r->segs);
	free(r->spec);
	free(r->hosttext);
}

void
gitguard_free(struct gitguard *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->nrepos; i++)
		repo_clear(&g->repos[i]);
	free(g->repos);
	glob_clear(&g->protect, &g->nprotect);
	glob_clear(&g->prefix, &g->nprefix);
	free(g);
}

static bool
ends_with(const char *s, size_t n, const char *suffix)
{
	size_t	k = strlen(suffix);

	return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* The path globs of a --git-repo (after the host's '/'). */
static int
repo_path(struct repo *r, const char *path, char *err, size_t errlen)
{
	const char	*s = path, *e;
	size_t		 n, len = strlen(path);

	if (len > 0 && path[len - 1] == '/')
		len--;			/* one trailing '/' is forgiven */
	while (s < path + len) {
		e = memchr(s, '/', (size_t)(path + len - s));
		n = e != NULL ? (size_t)(e - s) : (size_t)(path + len - s);
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 &&
		    s[0] == '.' && s[1] == '.')) {
			snprintf(err, errlen, "bad --git-repo '%s': empty, '.' "
			    "or '..' path segment", r->spec);
			return -1;
		}
		if (e == NULL && ends_with(s, n, ".git") && n > 4)
			n -= 4;
		r->segs = xreallocarray(r->segs, r->nsegs + 1,
		    sizeof *r->segs);
		r->segs[r->nsegs++] = xstrndup(s, n);
		if (e == NULL)
			break;
		s = e + 1;
	}
	if (r->nsegs == 0) {
		snprintf(err, errlen, "bad --git-repo '%s': no repository "
		    "path: give HOST/OWNER/REPO (globs allowed in the path: "
		    "github.com/acme/*)", r->spec);
		return -1;
	}
	return 0;
}

int
gitguard_add_repo(struct gitguard *g, const char *spec, char *err,
    size_t errlen)
{
	struct repo	 r;
	struct dest	 d;
	const char	*slash, *rb;
	size_t		 alen, i;
	bool		 port;
	int		 rc;

	memset(&r, 0, sizeof r);
	r.spec = xstrdup(spec);
	for (i = 0; spec[i] != '\0'; i++)
		if ((unsigned char)spec[i] <= 0x20 || spec[i] == 0x7f ||
		    spec[i] == '%' || spec[i] == '\\' || spec[i] == '#')
			break;
	if (spec[i] != '\0' || i == 0) {
		snprintf(err, errlen, "bad --git-repo '%s': give HOST/OWNER/"
		    "REPO (no spaces, controls, '%%', '\\' or '#')", spec);
		goto fail;
	}
	if (strstr(spec, "://") != NULL) {
		snprintf(err, errlen, "bad --git-repo '%s': give HOST/OWNER/"
		    "REPO without a scheme (github.com/acme/widget)", spec);
		goto fail;
	}
	if ((slash = strchr(spec, '/')) == NULL) {
		snprintf(err, errlen, "bad --git-repo '%s': no repository "
		    "path: give HOST/OWNER/REPO (globs allowed in the path: "
		    "github.com/acme/*)", spec);
		goto fail;
	}
	alen = (size_t)(slash - spec);
	if (memchr(spec, '*', alen) != NULL || memchr(spec, '?', alen) !=
	    NULL) {
		snprintf(err, errlen, "bad --git-repo '%s': the host cannot "
		    "be a glob (one --git-repo per host)", spec);
		goto fail;
	}
	if (spec[0] == '[')
		port = (rb = memchr(spec, ']', alen)) != NULL &&
		    rb + 1 < slash && rb[1] == ':';
	else
		port = memchr(spec, ':', alen) != NULL;
	rc = port ? addr_parse_authority(spec, alen, 0, &d) :
	    addr_parse_host(spec, alen, &d);
	if (rc != 0) {
		snprintf(err, errlen, "bad --git-repo '%s': host: %s", spec,
		    addr_strerror(rc));
		goto fail;
	}
	memcpy(r.host, d.host, sizeof r.host);
	r.kind = d.kind;
	r.port = port ? d.port : 0;
	r.hosttext = xstrndup(spec, alen);
	if (repo_path(&r, slash + 1, err, errlen) != 0)
		goto fail;
	g->repos = xreallocarray(g->repos, g->nrepos + 1, sizeof *g->repos);
	g->repos[g->nrepos++] = r;
	return 0;
fail:
	repo_clear(&r);
	return -1;
}

int
gitguard_add_protect(struct gitguard *g, const char *pat, char *err,
    size_t errlen)
{
	if (glob_check("git-protect", pat, err, errlen) != 0)
		return -1;
	if (g->protect_default) {
		glob_clear(&g->protect, &g->nprotect);
		g->protect_default = false;
	}
	glob_add(&g->protect, &g->nprotect, pat, "git-protect");
	return 0;
}

int
gitguard_add_push_prefix(struct gitguard *g, const char *pat, char *err,
    size_t errlen)
{
	if (glob_check("git-push-prefix", pat, err, errlen) != 0)
		return -1;
	glob_add(&g->prefix, &g->nprefix, pat, "git-push-prefix");
	return 0;
}

void
gitguard_allow_delete(struct gitguard *g, bool on)
{
	g->allow_delete = on;
}

void
gitguard_allow_force(struct gitguard *g, bool on)
{
	g->allow_force = on;
}

size_t
gitguard_count(const struct gitguard *g)
{
	return g->nrepos;
}

const char *
gitguard_repo(const struct gitguard *g, size_t i)
{
	return i < g->nrepos ? g->repos[i].spec : NULL;
}

const char *
gitguard_host(const struct gitguard *g, size_t i)
{
	return i < g->nrepos ? g->repos[i].hosttext : NULL;
}

static bool
repo_host(const struct repo *r, const struct dest *d, bool any_port)
{
	return strcmp(r->host, d->host) == 0 && (any_port || r->port == 0 ||
	    r->port == d->port);
}

/* Ports that never carry git's smart HTTP (ssh, git://): a --git-repo
 * without a port does not name them, so their tunnels are refused, not
 * intercepted (where ssh would only fail). */
static bool
never_http(uint16_t port)
{
	return port == 22 || port == 9418;
}

bool
gitguard_names_host(const struct gitguard *g, const struct dest *d)
{
	for (size_t i = 0; g != NULL && i < g->nrepos; i++)
		if (repo_host(&g->repos[i], d, false) &&
		    (g->repos[i].port != 0 || !never_http(d->port)))
			return true;
	return false;
}

bool
gitguard_names_name(const struct gitguard *g, const struct dest *d)
{
	for (size_t i = 0; g != NULL && i < g->nrepos; i++)
		if (repo_host(&g->repos[i], d, true))
			return true;
	return false;
}

/* --- requests ------------------------------------------------------------ */

enum kind {
	K_NONE,
	K_INFO_REFS,	/* PATH/info/refs */
	K_UPLOAD,	/* PATH/git-upload-pack */
	K_RECEIVE,	/* PATH/git-receive-pack */
	K_DUMB,		/* PATH/objects/... (dumb-HTTP fetch) */
	K_LFS,		/* PATH/info/lfs/... */
	K_DUMB_WRITE,	/* PATH/refs/heads/..., HEAD, packed-refs */
};

struct seg {
	const char	*p;
	size_t		 n;
};

/* A decoded request path, split, and what it is. */
struct gitpath {
	char		*buf;		/* decoded, NUL-terminated */
	size_t		 len;
	struct seg	*segs;
	size_t		 nsegs;
	size_t		 nrepo;		/* segments of the repository path */
	enum kind	 kind;
};

static bool
seg_is(const struct seg *s, const char *lit)
{
	return s->n == strlen(lit) && memcmp(s->p, lit, s->n) == 0;
}

static bool
seg_hex(const struct seg *s, size_t from, size_t n)
{
	if (s->n != from + n)
		return false;
	for (size_t i = from; i < s->n; i++)
		if (!((s->p[i] >= '0' && s->p[i] <= '9') ||
		    (s->p[i] >= 'a' && s->p[i] <= 'f')))
			return false;
	return true;
}

/* objects/info/packs, objects/pack/pack-HEX.pack, objects/XX/HEX... */
static bool
dumb_object(const struct seg *s)
{
	size_t	n;

	if (!seg_is(&s[0], "objects"))
		return false;
	if (seg_is(&s[1], "info"))
		return seg_is(&s[2], "packs") || seg_is(&s[2], "alternates") ||
		    seg_is(&s[2], "http-alternates");
	if (seg_is(&s[1], "pack")) {
		n = s[2].n;
		if (n < 5 || memcmp(s[2].p, "pack-", 5) != 0)
			return false;
		if (n > 5 + 5 && memcmp(s[2].p + n - 5, ".pack", 5) == 0)
			n -= 5;
		else if (n > 5 + 4 && memcmp(s[2].p + n - 4, ".idx", 4) == 0)
			n -= 4;
		else
			return false;
		return n == 5 + 40 || n == 5 + 64;
	}
	return seg_hex(&s[1], 0, 2) && (seg_hex(&s[2], 0, 38) ||
	    seg_hex(&s[2], 0, 62));
}

static void
classify(struct gitpath *gp)
{
	struct seg	*s = gp->segs;
	size_t		 n = gp->nsegs, i;

	gp->kind = K_NONE;
	gp->nrepo = 0;
	if (n < 2)
		return;
	if (seg_is(&s[n - 1], "git-upload-pack")) {
		gp->kind = K_UPLOAD;
		gp->nrepo = n - 1;
	} else if (seg_is(&s[n - 1], "git-receive-pack")) {
		gp->kind = K_RECEIVE;
		gp->nrepo = n - 1;
	} else if (n >= 3 && seg_is(&s[n - 2], "info") &&
	    seg_is(&s[n - 1], "refs")) {
		gp->kind = K_INFO_REFS;
		gp->nrepo = n - 2;
	} else if (n >= 4 && dumb_object(&s[n - 3])) {
		gp->kind = K_DUMB;
		gp->nrepo = n - 3;
	} else if (seg_is(&s[n - 1], "HEAD") ||
	    seg_is(&s[n - 1], "packed-refs")) {
		gp->kind = K_DUMB_WRITE;
		gp->nrepo = n - 1;
	}
	for (i = 1; gp->kind == K_NONE && i + 1 < n; i++) {
		if (seg_is(&s[i], "info") && seg_is(&s[i + 1], "lfs")) {
			gp->kind = K_LFS;
			gp->nrepo = i;
		} else if (seg_is(&s[i], "refs") && (seg_is(&s[i + 1],
		    "heads") || seg_is(&s[i + 1], "tags"))) {
			gp->kind = K_DUMB_WRITE;
			gp->nrepo = i;
		}
	}
}

static void
gitpath_free(struct gitpath *gp)
{
	free(gp->buf);
	free(gp->segs);
}

/* Decode and split; -1 when the path cannot be decoded. */
static int
gitpath_parse(const char *target, size_t len, struct gitpath *gp)
{
	size_t	i, start;

	memset(gp, 0, sizeof *gp);
	gp->buf = xcalloc(1, len + 2);
	if (rules_decode_path(target, len, gp->buf, len + 2, &gp->len) != 0)
		return -1;
	gp->segs = xreallocarray(NULL, gp->len / 2 + 1, sizeof *gp->segs);
	for (i = 0; i < gp->len; i = start) {
		start = i + 1;
		while (start < gp->len && gp->buf[start] != '/')
			start++;
		if (start > i + 1) {
			gp->segs[gp->nsegs].p = gp->buf + i + 1;
			gp->segs[gp->nsegs].n = start - i - 1;
			gp->nsegs++;
		}
	}
	classify(gp);
	return 0;
}

static bool
repo_path_match(const struct repo *r, const struct gitpath *gp)
{
	struct seg	last;

	if (r->nsegs != gp->nrepo)
		return false;
	for (size_t i = 0; i + 1 < gp->nrepo; i++)
		if (!glob_match(r->segs[i], gp->segs[i].p, gp->segs[i].n,
		    false))
			return false;
	last = gp->segs[gp->nrepo - 1];
	if (ends_with(last.p, last.n, ".git") && last.n > 4)
		last.n -= 4;
	return glob_match(r->segs[gp->nrepo - 1], last.p, last.n, false);
}

static bool
repo_allowed(const struct gitguard *g, const struct dest *d,
    const struct gitpath *gp)
{
	for (size_t i = 0; i < g->nrepos; i++)
		if (repo_host(&g->repos[i], d, false) &&
		    repo_path_match(&g->repos[i], gp))
			return true;
	return false;
}

static void
verdict_init(struct gitguard_verdict *v)
{
	memset(v, 0, sizeof *v);
	v->action = GITGUARD_NONE;
}

void
gitguard_verdict_clear(struct gitguard_verdict *v)
{
	free(v->body);
	verdict_init(v);
}

/* A refusal git shows as "remote: <reason>" (the discovery GET) or "RPC
 * failed" (a POST). */
static void
refuse_text(struct gitguard_verdict *v, const char *rule, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
refuse_text(struct gitguard_verdict *v, const char *rule, const char *fmt,
    ...)
{
	va_list	ap;
	size_t	n;

	free(v->body);
	v->action = GITGUARD_REFUSE;
	v->rule = rule;
	v->status = 403;
	v->content_type = CT_TEXT;
	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof v->reason, fmt, ap);
	va_end(ap);
	n = strlen(v->reason);
	v->body = xcalloc(1, n + 1);
	memcpy(v->body, v->reason, n);
	v->body[n] = '\n';
	v->bodylen = n + 1;
}

static bool
method_is(const char *m, size_t n, const char *lit)
{
	size_t	k = strlen(lit);

	if (n != k)
		return false;
	for (size_t i = 0; i < n; i++)
		if (lower(m[i]) != lower(lit[i]))
			return false;
	return true;
}

static bool
webdav_method(const char *m, size_t n)
{
	static const char *const dav[] = { "PROPFIND", "PROPPATCH", "MKCOL",
	    "COPY", "MOVE", "LOCK", "UNLOCK" };

	for (size_t i = 0; i < sizeof dav / sizeof dav[0]; i++)
		if (method_is(m, n, dav[i]))
			return true;
	return false;
}

/* "HOST/PATH" of a request, for messages: bounded, no controls. */
static void
where(const struct dest *d, const struct gitpath *gp, char *out,
    size_t outlen)
{
	size_t	i, o;
	int	k;

	k = snprintf(out, outlen, "%s", d->host);
	o = k < 0 ? 0 : (size_t)k >= outlen ? outlen - 1 : (size_t)k;
	for (i = 0; i < gp->nrepo && o + 2 < outlen; i++) {
		out[o++] = '/';
		for (size_t j = 0; j < gp->segs[i].n && o + 1 < outlen; j++) {
			unsigned char c = (unsigned char)gp->segs[i].p[j];
			out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		}
	}
	out[o] = '\0';
}

/* The judgement shared by requests and pushes: NONE, ALLOW, NEED_BODY or
 * a refusal already written into v. */
static void
judge_request(const struct gitguard *g, const char *method, size_t mlen,
    const struct dest *d, const struct gitpath *gp,
    struct gitguard_verdict *v)
{
	char	w[160];
	bool	get = method_is(method, mlen, "GET") ||
		    method_is(method, mlen, "HEAD");
	bool	post = method_is(method, mlen, "POST");

	if (webdav_method(method, mlen)) {
		refuse_text(v, R_WEBDAV, "egress-run: %.*s on a git host is "
		    "refused: git pushes over WebDAV (dumb HTTP) cannot be "
		    "inspected", (int)(mlen > 16 ? 16 : mlen), method);
		return;
	}
	/* Reading HEAD or refs/heads/x is the web UI's business; only a
	 * write there would be git's (not under /api/, GitHub Enterprise's
	 * REST API, which request rules judge). */
	if (gp->kind == K_NONE || (gp->kind == K_DUMB_WRITE && (get ||
	    post || method_is(method, mlen, "OPTIONS") ||
	    seg_is(&gp->segs[0], "api"))))
		return;				/* not git */
	where(d, gp, w, sizeof w);
	if (gp->kind == K_DUMB_WRITE || ((gp->kind == K_INFO_REFS ||
	    gp->kind == K_DUMB) && !get)) {
		refuse_text(v, R_WEBDAV, "egress-run: writing a git "
		    "repository's files over HTTP is refused (%s)", w);
		return;
	}
	if (!repo_allowed(g, d, gp)) {
		refuse_text(v, R_REPO, "egress-run: git access to %s is not "
		    "allowed (not named by --git-repo)", w);
		return;
	}
	switch (gp->kind) {
	case K_INFO_REFS:
	case K_DUMB:
	case K_LFS:
		v->action = GITGUARD_ALLOW;
		return;
	case K_UPLOAD:
	case K_RECEIVE:
		if (!post) {
			refuse_text(v, R_REPO, "egress-run: %.*s is not a git "
			    "request (%s)", (int)(mlen > 16 ? 16 : mlen),
			    method, w);
			return;
		}
		v->action = gp->kind == K_UPLOAD ? GITGUARD_ALLOW :
		    GITGUARD_NEED_BODY;
		return;
	default:
		return;
	}
}

int
gitguard_request(const struct gitguard *g, const char *method, size_t mlen,
    const struct dest *d, const char *target, size_t tlen,
    struct gitguard_verdict *v)
{
	struct gitpath	gp;

	verdict_init(v);
	if (g == NULL || !gitguard_names_name(g, d))
		return 0;
	if (gitpath_parse(target, tlen, &gp) != 0) {
		gitpath_free(&gp);
		refuse_text(v, R_REPO, "egress-run: a request path on a git "
		    "host that cannot be decoded is refused");
		return 0;
	}
	judge_request(g, method, mlen, d, &gp, v);
	gitpath_free(&gp);
	return 0;
}

/* --- pushes -------------------------------------------------------------- */

struct cmd {
	char		 old[PKTLINE_OID_MAX + 1];
	char		 new[PKTLINE_OID_MAX + 1];
	char		*ref;
	bool		 create;
	bool		 del;
	char		*reason;	/* NULL: ok so far */
	const char	*rule;
	size_t		 goal;		/* index in goals, or SIZE_MAX */
};

struct push {
	struct cmd	*cmds;
	size_t		 n;
	unsigned	 caps;
	size_t		 oidlen;	/* hex digits */
	uint64_t	 packoff;
	bool		 done;
	int		 error;		/* pktline's */
};

static void
push_free(struct push *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->cmds[i].ref);
		free(p->cmds[i].reason);
	}
	free(p->cmds);
}

static void
push_parse(const uint8_t *body, size_t len, struct push *p)
{
	struct pktline		*pl = pktline_new();
	struct pktline_event	 ev;
	struct cmd		*c;
	size_t			 off = 0;
	ssize_t			 r;

	while (off < len) {
		if ((r = pktline_step(pl, body + off, len - off, &ev)) <= 0) {
			if (r < 0)
				p->error = (int)r;
			break;
		}
		off += (size_t)r;
		if (ev.type != PKTLINE_EV_COMMAND)
			continue;
		p->cmds = xreallocarray(p->cmds, p->n + 1, sizeof *p->cmds);
		c = &p->cmds[p->n++];
		memset(c, 0, sizeof *c);
		memcpy(c->old, ev.old_oid, sizeof c->old);
		memcpy(c->new, ev.new_oid, sizeof c->new);
		c->ref = xstrndup(ev.text, ev.textlen);
		c->create = ev.is_create;
		c->del = ev.is_delete;
		c->goal = SIZE_MAX;
	}
	p->caps = pktline_caps(pl);
	p->oidlen = pktline_oid_len(pl);
	p->done = pktline_done(pl);
	p->packoff = pktline_offset(pl);
	pktline_free(pl);
}

static void
cmd_refuse(struct cmd *c, const char *rule, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
cmd_refuse(struct cmd *c, const char *rule, const char *fmt, ...)
{
	char	buf[512];
	va_list	ap;

	if (c->reason != NULL)
		return;			/* the first reason stands */
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	c->reason = xstrdup(buf);
	c->rule = rule;
}

/* git's check_refname_format(), flags 0, for a name under refs/. */
static bool
refname_ok(const char *ref)
{
	size_t	n = strlen(ref), i, comp = 0;

	if (n > REF_MAX || strncmp(ref, "refs/", 5) != 0 || n == 5)
		return false;
	if (ref[n - 1] == '/' || ref[n - 1] == '.')
		return false;
	for (i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)ref[i];
		if (c == '/' || c == '\0') {
			if (i == comp || ref[comp] == '.' ||
			    (i - comp >= 5 && memcmp(ref + i - 5, ".lock",
			    5) == 0))
				return false;
			comp = i + 1;
			continue;
		}
		if (c < 0x20 || c == 0x7f || strchr(" ~^:?*[\\", c) != NULL)
			return false;
		if (c == '.' && ref[i + 1] == '.')
			return false;
		if (c == '@' && ref[i + 1] == '{')
			return false;
	}
	return true;
}

static const char *
ref_kind(const char *ref)
{
	if (strncmp(ref, "refs/heads/", 11) == 0)
		return "branch";
	if (strncmp(ref, "refs/tags/", 10) == 0)
		return "tag";
	return "ref";
}

/* Protected / prefix / delete / tag rules; a pending update gets a goal
 * slot (fast-forward still to prove). */
static void
judge_cmd(const struct gitguard *g, struct cmd *c, size_t *ngoals)
{
	char	list[GITGUARD_GLOB_MAX + 64];
	size_t	i, o = 0;
	bool	ok;

	if (!refname_ok(c->ref)) {
		cmd_refuse(c, R_PUSH, "egress-run: invalid ref name");
		return;
	}
	for (i = 0; i < g->nprotect; i++)
		if (glob_ref(&g->protect[i], c->ref, true)) {
			cmd_refuse(c, g->protect[i].rule, "egress-run: "
			    "protected %s (--git-protect %s): open a pull "
			    "request instead", ref_kind(c->ref),
			    g->protect[i].pat);
			return;
		}
	if (g->nprefix > 0) {
		for (ok = false, i = 0; !ok && i < g->nprefix; i++)
			ok = glob_ref(&g->prefix[i], c->ref, false);
		if (!ok) {
			for (i = 0; i < g->nprefix && o + 8 < sizeof list;
			    i++) {
				int k = snprintf(list + o, sizeof list - o,
				    "%s%s", i > 0 ? " " : "", g->prefix[i].pat);
				if (k < 0 || (size_t)k >= sizeof list - o) {
					list[o] = '\0';
					break;
				}
				o += (size_t)k;
			}
			cmd_refuse(c, R_PREFIX, "egress-run: only refs "
			    "matching --git-push-prefix may be pushed (%s%s)",
			    list, i < g->nprefix ? " ..." : "");
			return;
		}
	}
	if (c->del) {
		if (!g->allow_delete)
			cmd_refuse(c, R_DELETE, "egress-run: deleting a %s is "
			    "blocked (--git-allow-delete)", ref_kind(c->ref));
		return;
	}
	if (c->create || strcmp(c->old, c->new) == 0 || g->allow_force)
		return;
	if (strncmp(c->ref, "refs/tags/", 10) == 0) {
		cmd_refuse(c, R_FORCE, "egress-run: moving a tag is blocked "
		    "(--git-allow-force)");
		return;
	}
	c->goal = (*ngoals)++;
}

/* Fast-forwards: one walk of the pack for every pending update. */
static void
prove(struct push *p, size_t ngoals, const uint8_t *body, size_t len)
{
	struct gitpack_goal	*goals;
	const uint8_t		*pack = body + p->packoff;
	size_t			 packlen = len - (size_t)p->packoff;
	size_t			 nb = p->oidlen / 2, i;
	struct cmd		*c;
	int			 r;

	goals = xreallocarray(NULL, ngoals, sizeof *goals);
	memset(goals, 0, ngoals * sizeof *goals);
	for (i = 0; i < p->n; i++) {
		c = &p->cmds[i];
		if (c->goal == SIZE_MAX)
			continue;
		(void)util_unhex(c->old, nb, goals[c->goal].old);
		(void)util_unhex(c->new, nb, goals[c->goal].new);
	}
	r = packlen == 0 ? 0 : gitpack_prove(pack, packlen, nb, goals,
	    ngoals, NULL, NULL, NULL);
	for (i = 0; i < p->n; i++) {
		c = &p->cmds[i];
		if (c->goal == SIZE_MAX)
			continue;
		if (packlen == 0)
			cmd_refuse(c, R_FORCE, FF "cannot prove fast-forward: "
			    "no pack was sent");
		else if (goals[c->goal].proof == GITPACK_PROVEN)
			continue;
		else if (r != 0)
			cmd_refuse(c, R_FORCE, FF "cannot prove fast-forward: "
			    "%s", gitpack_strerror(r));
		else if (goals[c->goal].proof == GITPACK_MISSING)
			cmd_refuse(c, R_FORCE, FF "cannot prove fast-forward: "
			    "%.12s is not in the pushed pack (the remote may "
			    "have it already)", c->new);
		else if (goals[c->goal].proof == GITPACK_NOT_ANCESTOR)
			cmd_refuse(c, R_FORCE, FF "%.12s is not an ancestor "
			    "of %.12s", c->old, c->new);
		else
			cmd_refuse(c, R_FORCE, FF "cannot prove fast-forward: "
			    "the walk from %.12s left the pushed pack before "
			    "reaching %.12s", c->new, c->old);
	}
	free(goals);
}

/* The refusal of the whole push: a status report when the client asked
 * for one and it can be built, else text. */
static void
refuse_push(struct push *p, const char *w, const char *unpack,
    struct gitguard_verdict *v)
{
	struct pktline_status	*st;
	const struct cmd	*first = NULL;
	char			 msg[128];
	size_t			 i, nref = 0;
	ssize_t			 n;

	st = xreallocarray(NULL, p->n + 1, sizeof *st);
	for (i = 0; i < p->n; i++) {
		if (p->cmds[i].reason != NULL) {
			nref++;
			if (first == NULL)
				first = &p->cmds[i];
		}
		st[i].ref = p->cmds[i].ref;
		st[i].reason = p->cmds[i].reason != NULL ? p->cmds[i].reason :
		    "egress-run: refused with the rest of the push (atomic)";
	}
	if (first != NULL)
		snprintf(v->reason, sizeof v->reason, "egress-run: git push "
		    "to %s refused: %s: %s", w, first->ref, first->reason +
		    (strncmp(first->reason, "egress-run: ", 12) == 0 ? 12 : 0));
	else
		snprintf(v->reason, sizeof v->reason, "egress-run: git push "
		    "to %s refused: %s", w, unpack + (strncmp(unpack,
		    "egress-run: ", 12) == 0 ? 12 : 0));
	snprintf(msg, sizeof msg, "egress-run: push refused, nothing was "
	    "updated (%zu of %zu ref updates blocked)", nref, p->n);
	v->action = GITGUARD_REFUSE;
	v->rule = first != NULL ? first->rule : R_PUSH;
	n = -1;
	if (p->n > 0 && (p->caps & (PKTLINE_CAP_REPORT_STATUS |
	    PKTLINE_CAP_REPORT_STATUS_V2)) &&
	    (n = pktline_report(NULL, 0, p->caps, unpack, st, p->n, msg)) >
	    0) {
		v->body = xcalloc(1, (size_t)n);
		if (pktline_report(v->body, (size_t)n, p->caps, unpack, st,
		    p->n, msg) != n)
			n = -1;
	}
	if (n > 0) {
		v->status = 200;
		v->content_type = CT_REPORT;
		v->bodylen = (size_t)n;
	} else {
		char reason[sizeof v->reason];

		memcpy(reason, v->reason, sizeof reason);
		refuse_text(v, v->rule, "%s", reason);
	}
	free(st);
}

int
gitguard_push_head(const uint8_t *body, size_t len)
{
	struct push	p;
	int		r;

	memset(&p, 0, sizeof p);
	push_parse(body, len, &p);
	r = p.error != 0 ? -1 : p.done ? 1 : 0;
	push_free(&p);
	return r;
}

int
gitguard_push(const struct gitguard *g, const struct dest *d,
    const char *target, size_t tlen, const uint8_t *body, size_t len,
    unsigned flags, struct gitguard_verdict *v)
{
	struct gitpath	 gp;
	struct push	 p;
	char		 w[160], unpack[160];
	size_t		 i, ngoals = 0;
	bool		 refused = false;

	verdict_init(v);
	memset(&p, 0, sizeof p);
	if (g == NULL || !gitguard_names_host(g, d))
		return 0;
	if (gitpath_parse(target, tlen, &gp) != 0 || gp.kind != K_RECEIVE) {
		gitpath_free(&gp);
		refuse_text(v, R_PUSH, "egress-run: not a git push");
		return 0;
	}
	judge_request(g, "POST", 4, d, &gp, v);
	where(d, &gp, w, sizeof w);
	gitpath_free(&gp);
	if (v->action != GITGUARD_NEED_BODY)
		return 0;
	verdict_init(v);
	if (flags & GITGUARD_ENCODED) {
		refuse_text(v, R_PUSH, "egress-run: a push with an encoded "
		    "(compressed) body cannot be inspected");
		return 0;
	}
	push_parse(body, len, &p);
	if (p.error != 0 || !p.done) {
		if (!p.done && p.error == 0 && (flags & GITGUARD_TRUNCATED))
			snprintf(unpack, sizeof unpack, "egress-run: push too "
			    "large to inspect (over %u MiB)",
			    GITGUARD_BODY_MAX >> 20);
		else
			snprintf(unpack, sizeof unpack, "egress-run: malformed "
			    "push (%s)", p.error != 0 ?
			    pktline_strerror(p.error) : "ends early");
		for (i = 0; i < p.n; i++)
			cmd_refuse(&p.cmds[i], R_PUSH, "%s", unpack);
		refuse_push(&p, w, unpack, v);
		push_free(&p);
		return 0;
	}
	for (i = 0; i < p.n; i++) {
		if (flags & GITGUARD_TRUNCATED)
			cmd_refuse(&p.cmds[i], R_PUSH, "egress-run: push too "
			    "large to inspect (over %u MiB)",
			    GITGUARD_BODY_MAX >> 20);
		else
			judge_cmd(g, &p.cmds[i], &ngoals);
	}
	if (ngoals > 0)
		prove(&p, ngoals, body, len);
	for (i = 0; i < p.n; i++)
		if (p.cmds[i].reason != NULL)
			refused = true;
	if (refused)
		refuse_push(&p, w, "ok", v);
	else
		v->action = GITGUARD_ALLOW;
	push_free(&p);
	return 0;
}

/* --- ssh remotes --------------------------------------------------------- */

int
gitguard_git_env(const struct gitguard *g, char *const *env,
    struct strlist *out, char *err, size_t errlen)
{
	static const char *const forms[][2] = { { "git@", ":" },
	    { "ssh://git@", "/" }, { "ssh://git@", ":22/" },
	    { "ssh://", "/" } };
	const char	*count = NULL, *s;
	char		*h, *base, *val;
	size_t		 i, j, k;
	long long	 n = 0;
	bool		 dup;

	for (i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], "GIT_CONFIG_COUNT=", 17) == 0)
			count = env[i] + 17;
	if (count != NULL) {
		for (s = count; *s != '\0'; s++)
			if (*s < '0' || *s > '9' || n > INT_MAX)
				break;
			else
				n = n * 10 + (*s - '0');
		if (*s != '\0' || s - count > 10 || n > INT_MAX) {
			snprintf(err, errlen, "GIT_CONFIG_COUNT is not a "
			    "count: ssh remotes of git hosts are not "
			    "rewritten to https");
			return -1;
		}
	}
	k = 0;
	for (i = 0; g != NULL && i < g->nrepos; i++) {
		for (dup = false, j = 0; j < i && !dup; j++)
			dup = strcmp(g->repos[j].host, g->repos[i].host) == 0;
		if (dup)
			continue;
		h = g->repos[i].kind == ADDR_IPV6 ? xprintf("[%s]",
		    g->repos[i].host) : xstrdup(g->repos[i].host);
		if (g->repos[i].port != 0 && g->repos[i].port != 443)
			base = xprintf("https://%s:%u/", h,
			    (unsigned)g->repos[i].port);
		else
			base = xprintf("https://%s/", h);
		for (j = 0; j < sizeof forms / sizeof forms[0]; j++) {
			if (n + (long long)k >= INT_MAX) {
				snprintf(err, errlen, "GIT_CONFIG_COUNT is too "
				    "large: ssh remotes are not rewritten");
				free(h);
				free(base);
				return -1;
			}
			strlist_add_owned(out, xprintf(
			    "GIT_CONFIG_KEY_%lld=url.%s.insteadOf",
			    n + (long long)k, base));
			val = xprintf("%s%s%s", forms[j][0], h, forms[j][1]);
			strlist_add_owned(out, xprintf(
			    "GIT_CONFIG_VALUE_%lld=%s", n + (long long)k, val));
			free(val);
			k++;
		}
		free(h);
		free(base);
	}
	if (k > 0)
		strlist_add_owned(out, xprintf("GIT_CONFIG_COUNT=%lld",
		    n + (long long)k));
	return 0;
}
