/*
 * Sandboxes: a policy bundle and its identity. Built from the same keys
 * as the configuration file, so a registration with the daemon and a
 * single run's flags mean the same thing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "builtin/account.h"
#include "builtin/addr.h"
#include "builtin/gitguard.h"
#include "builtin/hooks.h"
#include "builtin/http_fwd.h"
#include "builtin/llm.h"
#include "builtin/mitm.h"
#include "builtin/policy.h"
#include "builtin/proxy.h"
#include "builtin/rules.h"
#include "builtin/sandbox.h"
#include "builtin/secrets.h"
#include "builtin/server.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "launcher/config.h"

/* A pattern no interception can enforce must not look enforced. */
static int
check_mitm(struct server *srv, const char *what, const char *host,
    char *err, size_t errlen)
{
	struct dest d;

	if (host[0] == '*' && host[1] == '.')
		host += 2;		/* the apex stands for the domain */
	if (addr_parse_host(host, strlen(host), &d) == ADDR_OK &&
	    mitm_excluded(srv->mitm, &d)) {
		snprintf(err, errlen, "%s names %s, which is --no-mitm: it "
		    "could not be enforced", what, host);
		return -1;
	}
	return 0;
}

static int
load_policy(struct sandbox *sb, const struct config *cfg, char *err,
    size_t errlen)
{
	for (size_t i = 0; i < cfg->allow.n; i++)
		if (policy_allow(sb->policy, cfg->allow.v[i], err, errlen) != 0)
			return -1;
	for (size_t i = 0; i < cfg->deny.n; i++)
		if (policy_deny(sb->policy, cfg->deny.v[i], err, errlen) != 0)
			return -1;
	for (size_t i = 0; i < cfg->resolve.n; i++)
		if (policy_pin(sb->policy, cfg->resolve.v[i], err, errlen) != 0)
			return -1;
	return 0;
}

/*
 * Request rules, in order: --rule and the file's rules first, then the
 * presets (so a user's allow can make an exception to a preset). A rule
 * whose host is also --no-mitm could not be enforced: that is an error.
 */
static int
load_rules(struct sandbox *sb, struct server *srv, const struct config *cfg,
    char *err, size_t errlen)
{
	char e[256];

	for (size_t i = 0; i < cfg->rules.n; i++) {
		const char	*spec = cfg->rules.v[i];
		int		 r;

		if (spec[0] == '{') {		/* an object from the file */
			cJSON *j = cJSON_Parse(spec);
			r = rules_add_json(sb->rules, j, e, sizeof e);
			cJSON_Delete(j);
		} else
			r = rules_add_spec(sb->rules, spec, e, sizeof e);
		if (r != 0) {
			snprintf(err, errlen, "%s", e);
			return -1;
		}
	}
	for (size_t i = 0; i < cfg->presets.n; i++)
		if (rules_add_preset(sb->rules, cfg->presets.v[i], e,
		    sizeof e) != 0) {
			snprintf(err, errlen, "--preset '%s': %s",
			    cfg->presets.v[i], e);
			return -1;
		}
	for (size_t i = 0; i < rules_count(sb->rules); i++) {
		char what[300];

		snprintf(what, sizeof what, "rule '%s'", rules_text(sb->rules,
		    i));
		if (check_mitm(srv, what, rules_host(sb->rules, i), err,
		    errlen) != 0)
			return -1;
	}
	return 0;
}

/* The git push guard: --git-repo and the options that go with it. */
static int
load_git(struct sandbox *sb, struct server *srv, const struct config *cfg,
    char *err, size_t errlen)
{
	if (cfg->git_repos.n == 0) {
		if (cfg->git_protect.n > 0 || cfg->git_push_prefix.n > 0 ||
		    cfg->git_allow_delete || cfg->git_allow_force)
			log_warn("--git-protect, --git-push-prefix and "
			    "--git-allow-* apply to the repositories "
			    "--git-repo names: none is given");
		return 0;
	}
	sb->git = gitguard_new();
	for (size_t i = 0; i < cfg->git_repos.n; i++)
		if (gitguard_add_repo(sb->git, cfg->git_repos.v[i], err,
		    errlen) != 0)
			return -1;
	for (size_t i = 0; i < cfg->git_protect.n; i++)
		if (gitguard_add_protect(sb->git, cfg->git_protect.v[i], err,
		    errlen) != 0)
			return -1;
	for (size_t i = 0; i < cfg->git_push_prefix.n; i++)
		if (gitguard_add_push_prefix(sb->git, cfg->git_push_prefix.v[i],
		    err, errlen) != 0)
			return -1;
	gitguard_allow_delete(sb->git, cfg->git_allow_delete);
	gitguard_allow_force(sb->git, cfg->git_allow_force);
	for (size_t i = 0; i < gitguard_count(sb->git); i++) {
		char	 what[300], *host = xstrdup(gitguard_host(sb->git, i));
		char	*colon = strrchr(host, ':');
		int	 r;

		/* The name alone: --no-mitm patterns name hosts. */
		if (colon != NULL && host[0] != '[')
			*colon = '\0';
		snprintf(what, sizeof what, "--git-repo '%s'",
		    gitguard_repo(sb->git, i));
		r = check_mitm(srv, what, host, err, errlen);
		free(host);
		if (r != 0)
			return -1;
	}
	return 0;
}

struct sandbox *
sandbox_new(struct server *srv, const char *id, const struct config *cfg,
    struct secrets *secrets, char *const *env, struct sandbox *prev,
    char *err, size_t errlen)
{
	static uint64_t	 serials;
	struct sandbox	*sb = xcalloc(1, sizeof *sb);

	sb->refs = 1;
	sb->serial = ++serials;
	sb->id = xstrdup(id);
	sb->policy = policy_new();
	sb->rules = rules_new();
	if ((cfg->llm_budget || cfg->llm_max_requests) &&
	    !account_on(srv->account)) {
		snprintf(err, errlen, "an LLM budget needs LLM accounting, "
		    "which --no-llm turned off");
		goto fail;
	}
	if (prev != NULL) {
		/* Spending goes on under the new limits. */
		sb->llm = prev->llm;
		sb->llm_owner = sandbox_ref(prev->llm_owner != NULL ?
		    prev->llm_owner : prev);
		llm_stats_set_limits(sb->llm, cfg->llm_budget,
		    cfg->llm_max_requests);
		sb->n = prev->n;		/* counting goes on too */
	} else {
		sb->llm = llm_stats_new(cfg->llm_budget, cfg->llm_max_requests);
		sb->n = xcalloc(1, sizeof *sb->n);
	}
	if (secrets != NULL)
		sb->secrets = secrets;
	else if (prev != NULL && cfg->secrets.n == 0) {
		/* The bindings (and the placeholders COMMAND holds) stay. */
		sb->secrets = prev->secrets;
		if (prev->own_secrets || prev->secrets_owner != NULL)
			sb->secrets_owner = sandbox_ref(prev->own_secrets ?
			    prev : prev->secrets_owner);
	} else {
		sb->secrets = secrets_new(cfg->secrets.v, cfg->secrets.n, env,
		    err, errlen);
		sb->own_secrets = true;
		if (sb->secrets == NULL)
			goto fail;
	}
	if (load_policy(sb, cfg, err, errlen) != 0 ||
	    load_rules(sb, srv, cfg, err, errlen) != 0 ||
	    load_git(sb, srv, cfg, err, errlen) != 0)
		goto fail;
	/* The run's own hooks are the server's; a registration's are its
	 * own. */
	if (secrets == NULL && cfg->hooks.n > 0 && (sb->hooks = hooks_new(cfg,
	    srv->base, srv, err, errlen)) == NULL)
		goto fail;
	/* The proxy itself and this host's addresses: for every sandbox. */
	if (srv->laddr.ss_family != 0)
		policy_set_self(sb->policy, (struct sockaddr *)&srv->laddr);
	server_local_addrs(sb->policy);
	return sb;
fail:
	sandbox_unref(sb);
	return NULL;
}

struct sandbox *
sandbox_ref(struct sandbox *sb)
{
	if (sb != NULL)
		sb->refs++;
	return sb;
}

void
sandbox_unref(struct sandbox *sb)
{
	if (sb == NULL || --sb->refs > 0)
		return;
	policy_free(sb->policy);
	policy_free(sb->sources);
	strlist_clear(&sb->source_list);
	rules_free(sb->rules);
	gitguard_free(sb->git);
	hooks_free(sb->hooks);
	if (sb->llm_owner != NULL)
		sandbox_unref(sb->llm_owner);
	else {
		llm_stats_free(sb->llm);
		free(sb->n);
	}
	if (sb->own_secrets)
		secrets_free(sb->secrets);
	sandbox_unref(sb->secrets_owner);
	freezero_str(sb->token);
	free(sb->id);
	free(sb);
}

int
sandbox_set_sources(struct sandbox *sb, const char *const *src, size_t n,
    char *err, size_t errlen)
{
	policy_free(sb->sources);
	sb->sources = NULL;
	strlist_clear(&sb->source_list);
	if (n == 0)
		return 0;
	sb->sources = policy_new();
	for (size_t i = 0; i < n; i++) {
		if (policy_allow(sb->sources, src[i], err, errlen) != 0)
			return -1;
		strlist_add(&sb->source_list, src[i]);
	}
	return 0;
}

bool
sandbox_has_source(const struct sandbox *sb, const struct sockaddr *sa)
{
	struct verdict	v;
	struct dest	d;
	char		a[64];

	if (sb->sources == NULL)
		return false;
	addr_ntop(sa, a, sizeof a);
	if (addr_parse_host(a, strlen(a), &d) != ADDR_OK)
		return false;
	policy_check_dest(sb->sources, &d, &v);
	return v.allow;
}

bool
sandbox_token_ok(const struct sandbox *sb, const char *tok, size_t len)
{
	size_t want;

	if (sb->token == NULL)
		return false;
	want = strlen(sb->token);
	/* Compare in constant time; the lengths may differ. */
	return (len == want) & (CRYPTO_memcmp(sb->token, tok, len < want ?
	    len : want) == 0);
}

bool
sandbox_expired(const struct sandbox *sb, time_t now)
{
	return sb->expires != 0 && now >= sb->expires;
}

bool
sandbox_intercepts(const struct server *srv, const struct sandbox *sb,
    const struct dest *d)
{
	return secrets_for_host(sb->secrets, d) ||
	    account_host(srv->account, d) ||
	    rules_names_host(sb->rules, d) ||
	    (sb->git != NULL && gitguard_names_host(sb->git, d));
}

const char *
sandbox_tunnel_refusal(const struct sandbox *sb, const struct dest *d)
{
	if (sb->git == NULL || !gitguard_names_name(sb->git, d) ||
	    gitguard_names_host(sb->git, d))
		return NULL;
	return "git over ssh (or any port but the guarded HTTPS one) to a "
	    "--git-repo host is not allowed: use an https:// remote";
}

void
sandbox_register(struct server *srv, struct sandbox *sb)
{
	struct sandbox *old = sandbox_find(srv, sb->id);

	if (old != NULL) {
		TAILQ_REMOVE(srv->sandboxes, old, entry);
		old->listed = false;
		old->gone = true;
		http_fwd_pool_forget(srv, old->serial);
		if (srv->sb == old) {	/* the run's own, replaced */
			srv->sb = sandbox_ref(sb);
			sandbox_unref(old);
		}
		sandbox_unref(old);
	}
	TAILQ_INSERT_TAIL(srv->sandboxes, sb, entry);
	sb->listed = true;
}

struct sandbox *
sandbox_find(const struct server *srv, const char *id)
{
	struct sandbox *sb;

	if (srv->sandboxes == NULL)
		return NULL;
	TAILQ_FOREACH(sb, srv->sandboxes, entry)
		if (strcmp(sb->id, id) == 0)
			return sb;
	return NULL;
}

size_t
sandbox_count(const struct server *srv)
{
	struct sandbox	*sb;
	size_t		 n = 0;

	if (srv->sandboxes != NULL)
		TAILQ_FOREACH(sb, srv->sandboxes, entry)
			n++;
	return n;
}

void
sandbox_drop(struct server *srv, struct sandbox *sb, const char *why)
{
	struct conn *c, *next;

	if (!sb->listed)
		return;
	TAILQ_REMOVE(srv->sandboxes, sb, entry);
	sb->listed = false;
	sb->gone = true;
	http_fwd_pool_forget(srv, sb->serial);
	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->sb == sb)
			conn_close(c, why);
	}
	if (srv->sb == sb) {
		srv->sb = NULL;
		sandbox_unref(sb);
	}
	sandbox_unref(sb);
}

/* By source address: the first sandbox that names it. */
static struct sandbox *
by_source(const struct server *srv, const struct sockaddr *sa)
{
	struct sandbox *sb;

	TAILQ_FOREACH(sb, srv->sandboxes, entry)
		if (sandbox_has_source(sb, sa))
			return sb;
	return NULL;
}

static void
attach(struct conn *c, struct sandbox *sb)
{
	if (c->sb == sb)
		return;
	sandbox_unref(c->sb);
	c->sb = sandbox_ref(sb);
	if (c->sb != NULL)
		c->sb->n->conns++;
}

int
sandbox_attribute(struct conn *c, const char *user, const char *pass,
    size_t passlen, const char **reason)
{
	struct server	*srv = c->srv;
	struct sandbox	*sb = NULL, *named;
	bool		 proven = false;

	if (srv->sandboxes == NULL) {		/* a single run */
		if (c->sb == NULL || c->sb->gone)
			attach(c, srv->sb);
		return 0;
	}
	if (user != NULL && (named = sandbox_find(srv, user)) != NULL &&
	    named->token != NULL) {
		if (!sandbox_token_ok(named, pass, passlen)) {
			attach(c, NULL);
			*reason = "wrong proxy credentials";
			return 407;
		}
		sb = named;
		proven = true;
	} else if (c->sb != NULL) {
		/* Attributed before (a tunnel's inner requests carry no
		 * credentials): the same sandbox, or what replaced it. */
		sb = c->sb->gone ? sandbox_find(srv, c->sb->id) : c->sb;
		proven = true;
	} else if (srv->sb != NULL) {
		sb = srv->sb;			/* --control: the run's own */
		proven = true;
	} else if ((sb = by_source(srv, (struct sockaddr *)&c->peer)) != NULL)
		proven = sb->token == NULL;
	else if (user != NULL) {
		attach(c, NULL);
		*reason = "wrong proxy credentials";
		return 407;
	}
	if (sb == NULL) {
		/* No source claims it: if some sandbox is known by its token,
		 * ask for one (a client may retry with credentials). */
		attach(c, NULL);
		TAILQ_FOREACH(named, srv->sandboxes, entry)
			if (named->token != NULL) {
				*reason = "proxy credentials required";
				return 407;
			}
		*reason = "unknown sandbox";
		return 403;
	}
	if (sandbox_expired(sb, time(NULL))) {
		log_info("sandbox %s: registration expired", sb->id);
		attach(c, NULL);	/* c is answered, not closed */
		sandbox_drop(srv, sb, "registration expired");
		*reason = "registration expired";
		return 403;
	}
	if (!proven) {
		attach(c, NULL);
		*reason = "proxy credentials required";
		return 407;
	}
	if (sb->sources != NULL &&
	    !sandbox_has_source(sb, (struct sockaddr *)&c->peer)) {
		attach(c, NULL);
		*reason = "unknown sandbox";
		return 403;
	}
	attach(c, sb);
	return 0;
}
