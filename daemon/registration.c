/*
 * Registration JSON: identity keys taken here, the rest handed to the
 * configuration's own reader (config.c) once they are known to be a
 * sandbox's.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "builtin/policy.h"
#include "common/xmalloc.h"
#include "daemon/registration.h"

/* The configuration keys a sandbox may have. */
static const char *const policy_keys[] = {
	"allow", "deny", "resolve", "secrets", "rules", "preset",
	"git_repos", "git_protect", "git_push_prefix", "git_allow_delete",
	"git_allow_force", "llm_budget", "llm_max_requests", "hooks",
};

/* "git": {...} spelled out as the flat keys. */
static const struct {
	const char	*sub;
	const char	*key;
} git_keys[] = {
	{ "repos", "git_repos" }, { "protect", "git_protect" },
	{ "push_prefix", "git_push_prefix" },
	{ "allow_delete", "git_allow_delete" },
	{ "allow_force", "git_allow_force" },
};

#define N(a)			(sizeof (a) / sizeof (a)[0])
#define REGISTRATION_KEYS_MAX	64

static bool
policy_key(const char *k)
{
	for (size_t i = 0; i < N(policy_keys); i++)
		if (strcmp(k, policy_keys[i]) == 0)
			return true;
	return false;
}

bool
registration_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > REGISTRATION_ID_MAX || !isalnum((unsigned char)id[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && id[i] != '.' &&
		    id[i] != '_' && id[i] != '-')
			return false;
	return true;
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
registration_time(const char *s, time_t *t)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	struct tm	tm;
	int		Y, M, D, h, m, sec, oh = 0, om = 0, sign = 0;
	const char	*p;
	time_t		v;

	if (strlen(s) < 20 || digits(s, 4, &Y) || s[4] != '-' ||
	    digits(s + 5, 2, &M) || s[7] != '-' || digits(s + 8, 2, &D) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &m) ||
	    s[16] != ':' || digits(s + 17, 2, &sec))
		return -1;
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] ||
	    h > 23 || m > 59 || sec > 60)
		return -1;
	p = s + 19;
	if (*p == '.') {		/* fractions: read, not kept */
		if (!isdigit((unsigned char)p[1]))
			return -1;
		for (p++; isdigit((unsigned char)*p); p++)
			;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-') {
		sign = *p == '+' ? 1 : -1;
		if (digits(p + 1, 2, &oh) || p[3] != ':' ||
		    digits(p + 4, 2, &om) || oh > 23 || om > 59)
			return -1;
		p += 6;
	} else
		return -1;
	if (*p != '\0')
		return -1;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec == 60 ? 59 : sec;
	if ((v = timegm(&tm)) == (time_t)-1 || tm.tm_mday != D)
		return -1;	/* Feb 29 of a common year, say */
	*t = v - sign * (oh * 3600 + om * 60);
	return 0;
}

void
registration_format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static const char *
type_name(const cJSON *j)
{
	return cJSON_IsString(j) ? "a string" : cJSON_IsNumber(j) ?
	    "a number" : cJSON_IsBool(j) ? "a boolean" : cJSON_IsNull(j) ?
	    "null" : cJSON_IsArray(j) ? "an array" : "an object";
}

/* Inline secret values: overwritten before the memory goes back. */
static void
wipe_strings(cJSON *j)
{
	cJSON *e;

	if (cJSON_IsString(j))
		OPENSSL_cleanse(j->valuestring, strlen(j->valuestring));
	else if (cJSON_IsArray(j) || cJSON_IsObject(j))
		cJSON_ArrayForEach(e, j)
			wipe_strings(e);
}

static int
take_sources(struct registration *r, const cJSON *j, char *err,
    size_t errlen)
{
	struct policy	*p;
	const cJSON	*e;
	char		 why[256];
	int		 ret = 0;

	if (cJSON_IsString(j))
		strlist_add(&r->sources, j->valuestring);
	else if (cJSON_IsArray(j)) {
		cJSON_ArrayForEach(e, j) {
			if (!cJSON_IsString(e)) {
				snprintf(err, errlen, "registration: 'source' "
				    "must hold strings, not %s", type_name(e));
				return -1;
			}
			strlist_add(&r->sources, e->valuestring);
		}
	} else {
		snprintf(err, errlen, "registration: 'source' must be an "
		    "address or CIDR, or a list of them, not %s",
		    type_name(j));
		return -1;
	}
	/* Each one as the proxy will read it. */
	p = policy_new();
	for (size_t i = 0; i < r->sources.n && ret == 0; i++)
		if (policy_allow(p, r->sources.v[i], why, sizeof why) != 0 ||
		    strchr(r->sources.v[i], '*') != NULL ||
		    !(isdigit((unsigned char)r->sources.v[i][0]) ||
		    r->sources.v[i][0] == '[' || strchr(r->sources.v[i], ':'))) {
			snprintf(err, errlen, "registration: 'source' '%s' is "
			    "not an address or CIDR", r->sources.v[i]);
			ret = -1;
		}
	policy_free(p);
	return ret;
}

/* Identity keys out of root (detached and freed), "git" flattened. */
static int
take_identity(struct registration *r, cJSON *root, char *err, size_t errlen)
{
	cJSON *j, *next;

	/* A sandbox has some twenty keys: a flood of them is refused before
	 * anything looks at each against the others. */
	if (cJSON_GetArraySize(root) > REGISTRATION_KEYS_MAX) {
		snprintf(err, errlen, "registration: more than %d keys",
		    REGISTRATION_KEYS_MAX);
		return -1;
	}
	/* Before anything is taken out: a key given twice is a mistake. */
	for (j = root->child; j != NULL; j = j->next)
		for (cJSON *k = root->child; k != j; k = k->next)
			if (strcmp(k->string, j->string) == 0) {
				snprintf(err, errlen, "registration: key '%s' "
				    "appears twice", j->string);
				return -1;
			}
	for (j = root->child; j != NULL; j = next) {
		next = j->next;
		if (strcmp(j->string, "id") == 0) {
			if (!cJSON_IsString(j) ||
			    !registration_id_ok(j->valuestring)) {
				snprintf(err, errlen, "registration: 'id' must "
				    "be 1-64 letters, digits, '.', '_' or '-'");
				return -1;
			}
			r->id = xstrdup(j->valuestring);
		} else if (strcmp(j->string, "source") == 0) {
			if (take_sources(r, j, err, errlen) != 0)
				return -1;
		} else if (strcmp(j->string, "token") == 0) {
			if (!cJSON_IsBool(j)) {
				snprintf(err, errlen, "registration: 'token' "
				    "must be true or false (the daemon makes "
				    "the token), not %s", type_name(j));
				return -1;
			}
			r->token = cJSON_IsTrue(j);
			r->has_token = true;
		} else if (strcmp(j->string, "expires_at") == 0) {
			if (cJSON_IsNull(j)) {
				r->expires = 0;
			} else if (!cJSON_IsString(j) ||
			    registration_time(j->valuestring, &r->expires) !=
			    0) {
				snprintf(err, errlen, "registration: "
				    "'expires_at' must be an RFC 3339 time "
				    "(2026-11-25T12:00:00Z) or null");
				return -1;
			}
			r->has_expires = true;
		} else if (strcmp(j->string, "env") == 0) {
			const cJSON *e;

			if (!cJSON_IsObject(j)) {
				snprintf(err, errlen, "registration: 'env' must "
				    "be an object of strings, not %s",
				    type_name(j));
				return -1;
			}
			cJSON_ArrayForEach(e, j) {
				if (!cJSON_IsString(e) || e->string[0] == '\0' ||
				    strchr(e->string, '=') != NULL) {
					snprintf(err, errlen, "registration: "
					    "'env' must map names to strings");
					return -1;
				}
				strlist_add_owned(&r->env, xprintf("%s=%s",
				    e->string, e->valuestring));
			}
			wipe_strings(j);
		} else if (strcmp(j->string, "git") == 0) {
			cJSON *g;

			if (!cJSON_IsObject(j) ||
			    cJSON_GetArraySize(j) > (int)N(git_keys)) {
				snprintf(err, errlen, "registration: 'git' must "
				    "be an object of its %zu keys", N(git_keys));
				return -1;
			}
			while ((g = j->child) != NULL) {
				size_t i;

				for (i = 0; i < N(git_keys); i++)
					if (strcmp(g->string, git_keys[i].sub)
					    == 0)
						break;
				if (i == N(git_keys)) {
					snprintf(err, errlen, "registration: "
					    "unknown key 'git.%s' (repos, "
					    "protect, push_prefix, "
					    "allow_delete, allow_force)",
					    g->string);
					return -1;
				}
				cJSON_DetachItemViaPointer(j, g);
				cJSON_AddItemToObject(root, git_keys[i].key,
				    g);
			}
		} else {
			if (!policy_key(j->string)) {
				snprintf(err, errlen, "registration: key '%s' "
				    "is not a sandbox's (id, source, token, "
				    "expires_at, allow, deny, resolve, "
				    "secrets, env, rules, preset, git, "
				    "llm_budget, llm_max_requests, hooks)",
				    j->string);
				return -1;
			}
			continue;
		}
		cJSON_Delete(cJSON_DetachItemViaPointer(root, j));
	}
	return 0;
}

int
registration_parse(const char *text, size_t len, struct registration *r,
    char *err, size_t errlen)
{
	const char	*end = NULL;
	cJSON		*root;
	int		 ret = -1;

	memset(r, 0, sizeof *r);
	config_init(&r->cfg);
	if (len > REGISTRATION_MAX) {
		snprintf(err, errlen, "registration: larger than 1 MiB");
		return -1;
	}
	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (root == NULL) {
		const char *at = cJSON_GetErrorPtr();

		snprintf(err, errlen, "registration: invalid JSON at byte %zu",
		    at != NULL && at >= text && at <= text + len ?
		    (size_t)(at - text) : 0);
		return -1;
	}
	while (end != NULL && end < text + len && isspace((unsigned char)*end))
		end++;
	if (end != NULL && end < text + len) {
		snprintf(err, errlen, "registration: invalid JSON at byte %zu: "
		    "text after the object", (size_t)(end - text));
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "registration: must be a JSON object, "
		    "not %s", type_name(root));
		goto out;
	}
	if (take_identity(r, root, err, errlen) != 0 ||
	    config_load_object(&r->cfg, root, "registration", err,
	    errlen) != 0)
		goto out;
	ret = 0;
out:
	wipe_strings(cJSON_GetObjectItemCaseSensitive(root, "secrets"));
	cJSON_Delete(root);
	/* The error quotes keys and values from the request: one line. */
	for (char *p = err; ret != 0 && *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return ret;
}

void
registration_free(struct registration *r)
{
	for (size_t i = 0; i < r->env.n; i++)
		OPENSSL_cleanse(r->env.v[i], strlen(r->env.v[i]));
	strlist_clear(&r->env);
	config_wipe_secrets(&r->cfg);
	config_free(&r->cfg);
	strlist_clear(&r->sources);
	free(r->id);
	r->id = NULL;
}
