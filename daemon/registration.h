/*
 * A sandbox's registration with the daemon (POST and PUT /v1/sandboxes):
 * JSON in, checked out. Identity -- "id", "source" (an address or CIDR, or
 * a list), "token" (true: the daemon makes one), "expires_at" (RFC 3339) --
 * and the policy, with the configuration file's own keys: allow, deny,
 * resolve, secrets, rules, preset, git_repos, git_protect, git_push_prefix,
 * git_allow_delete, git_allow_force (or "git": {repos, protect,
 * push_prefix, allow_delete, allow_force}), llm_budget, llm_max_requests,
 * hooks; and "env", the values secrets of the KEY:host forms take (what
 * egress-run --via sends from its own environment). A pure function of the
 * bytes (the fuzz target's).
 */
#ifndef DAEMON_REGISTRATION_H
#define DAEMON_REGISTRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/strlist.h"
#include "launcher/config.h"

#define REGISTRATION_MAX	(1024 * 1024)	/* bytes of JSON */
#define REGISTRATION_ID_MAX	64
#define REGISTRATION_SOURCES_MAX 256

struct registration {
	char		*id;		/* NULL: the daemon names it */
	struct strlist	 sources;
	bool		 token;		/* a token identity is asked for */
	bool		 has_token;	/* "token" was given */
	time_t		 expires;	/* 0: never */
	bool		 has_expires;
	struct strlist	 env;		/* "env": {"KEY": "value"}: where
					   secrets KEY:host[:header] take
					   their values ("KEY=value") */
	struct config	 cfg;		/* the policy keys */
};

/* 0, or -1 with one line in err naming the key at fault. r is
 * initialised either way: free it with registration_free(). */
int	registration_parse(const char *, size_t, struct registration *,
	    char *err, size_t errlen);
void	registration_free(struct registration *);

/* RFC 3339 ("2026-11-25T12:00:00Z", "...T12:00:00.5+01:00"): 0 and *t,
 * or -1. */
int	registration_time(const char *, time_t *);
/* "2026-11-25T12:00:00Z" into buf (at least 21 bytes). */
void	registration_format_time(time_t, char *, size_t);
/* An id: 1-64 of [A-Za-z0-9._-], starting with a letter or digit. */
bool	registration_id_ok(const char *);

#endif
