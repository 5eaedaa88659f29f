/*
 * A sandbox: whose traffic a connection carries, and the policy that goes
 * with it — destination policy, secret bindings, request rules, the LLM
 * budget — and its counters. A single run has one, implicit; the daemon
 * (egress-run serve) registers many and attributes every connection by its
 * source address or its proxy credentials. Connections hold a reference:
 * a sandbox replaced or deleted lives on until they are done with it.
 */
#ifndef BUILTIN_SANDBOX_H
#define BUILTIN_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include "common/strlist.h"

struct config;
struct conn;
struct dest;
struct gitguard;
struct hooks;
struct llm_stats;
struct policy;
struct rules;
struct secrets;
struct server;

struct sandbox_counters {
	uint64_t	conns;
	uint64_t	requests;
	uint64_t	denials;
	uint64_t	bytes_up;
	uint64_t	bytes_down;
	uint64_t	llm_input;
	uint64_t	llm_output;
};

struct sandbox {
	unsigned			 refs;
	char				*id;
	uint64_t			 serial;	/* never reused: keys
							   its pooled origin
							   connections */
	struct policy			*policy;
	struct rules			*rules;
	struct gitguard			*git;		/* --git-repo &c, or
							   NULL */
	struct hooks			*hooks;		/* its own, or NULL */
	struct secrets			*secrets;
	bool				 own_secrets;
	struct sandbox			*secrets_owner;	/* a reference, or
							   NULL */
	struct llm_stats		*llm;		/* its spending */
	struct sandbox			*llm_owner;	/* a reference: the
							   sandbox it replaced
							   owns them, or NULL */
	struct policy			*sources;	/* source addresses and
							   CIDRs, or NULL */
	struct strlist			 source_list;	/* as given */
	char				*token;		/* or NULL */
	time_t				 expires;	/* 0: never */
	bool				 gone;		/* deleted, replaced or
							   expired */
	bool				 listed;	/* in the registry */
	struct sandbox_counters		*n;		/* shared, like llm,
							   with the sandboxes
							   it replaced */
	TAILQ_ENTRY(sandbox)		 entry;
};

TAILQ_HEAD(sandbox_list, sandbox);

/*
 * A sandbox from configuration keys (allow, deny, resolve, rules, preset,
 * git_*, llm_budget, llm_max_requests, secrets, hooks). secrets: the run's
 * bindings (borrowed), or NULL to build them from cfg->secrets with env.
 * prev: the sandbox this one replaces, or NULL: its LLM spending goes on
 * (under the new limits), and so do its secret bindings when cfg has none.
 * NULL with a one-line error in err.
 */
struct sandbox	*sandbox_new(struct server *, const char *id,
		    const struct config *, struct secrets *, char *const *env,
		    struct sandbox *prev, char *, size_t);
struct sandbox	*sandbox_ref(struct sandbox *);
void		 sandbox_unref(struct sandbox *);

/* Identity (daemon): sources are patterns (an address or CIDR each). */
int		 sandbox_set_sources(struct sandbox *, const char *const *,
		    size_t, char *, size_t);
bool		 sandbox_has_source(const struct sandbox *,
		    const struct sockaddr *);
/* Constant-time comparison with the sandbox's token. */
bool		 sandbox_token_ok(const struct sandbox *, const char *, size_t);
bool		 sandbox_expired(const struct sandbox *, time_t now);

/* Does the sandbox's policy need interception of dest? */
bool		 sandbox_intercepts(const struct server *,
		    const struct sandbox *, const struct dest *);

/* A tunnel the git guard forbids (ssh or git:// to a guarded host: any
 * port of it that is not intercepted): the reason, else NULL. */
const char	*sandbox_tunnel_refusal(const struct sandbox *,
		    const struct dest *);

/*
 * The registry (daemon, --control): add (replacing a sandbox with the same
 * id, which is then gone: connections that hold it finish their request
 * with it and take the new one for the next), find by id, drop (gone; its
 * connections are closed).
 */
void		 sandbox_register(struct server *, struct sandbox *);
struct sandbox	*sandbox_find(const struct server *, const char *id);
void		 sandbox_drop(struct server *, struct sandbox *,
		    const char *why);
size_t		 sandbox_count(const struct server *);

/*
 * Whose is a request? c->sb is updated: a sandbox that is gone is followed
 * to the one that replaced it; in the daemon a connection not yet
 * attributed is by its source address, or by proxy credentials ID:TOKEN
 * (user, pass; NULL when none were sent). Returns 0, or the status to
 * refuse with (403 unknown or expired, 407 credentials needed or wrong)
 * and a reason.
 */
int		 sandbox_attribute(struct conn *, const char *user,
		    const char *pass, size_t passlen, const char **reason);

#endif
