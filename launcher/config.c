/*
 * Options and the JSON config file. One table below lists every option with
 * its config-file key and type; the argv parser and the JSON loader both walk
 * it. Values are stored in struct config; a bit per row records "given on the
 * command line" so the file never overrides a flag.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "builtin/hooks.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "launcher/config.h"

enum opt_type {
	OPT_FLAG,	/* bool */
	OPT_STR,	/* char * */
	OPT_LIST,	/* struct strlist, repeatable */
	OPT_SECRET,	/* struct strlist whose argv copy is blanked */
	OPT_SECONDS,	/* unsigned milliseconds, given in seconds */
	OPT_UINT,	/* unsigned in [min, max] */
	OPT_VERBOSE,	/* -v: verbosity + 1 */
	OPT_QUIET,	/* -q: verbosity = -1 */
	OPT_SPECS,	/* struct strlist; in the file, strings or objects
			   (kept as their JSON text) */
	OPT_HOOKS,	/* struct strlist of checked hook specs; in the file
			   also {"name","event","target"} objects */
};

struct opt {
	const char	*name;		/* long form, without "--" */
	char		 short_name;
	const char	*key;		/* config-file key */
	enum opt_type	 type;
	size_t		 off;
	long long	 min, max;	/* OPT_UINT */
};

#define F(field) offsetof(struct config, field)

static const struct opt opts[] = {
	{ "external", 0, "external", OPT_STR, F(external), 0, 0 },
	{ "external-addr", 0, "external_addr", OPT_STR, F(external_addr), 0, 0 },
	{ "external-ca", 0, "external_ca", OPT_STR, F(external_ca), 0, 0 },
	{ "bind-timeout", 0, "bind_timeout", OPT_SECONDS, F(bind_timeout_ms),
	  0, 0 },
	{ "listen", 0, "listen", OPT_STR, F(listen), 0, 0 },
	{ "max-conns", 0, "max_conns", OPT_UINT, F(max_conns), 1, 1000000 },
	{ "allow", 0, "allow", OPT_LIST, F(allow), 0, 0 },
	{ "deny", 0, "deny", OPT_LIST, F(deny), 0, 0 },
	{ "resolve", 0, "resolve", OPT_LIST, F(resolve), 0, 0 },
	{ "secret", 0, "secrets", OPT_SECRET, F(secrets), 0, 0 },
	{ "ca-cert", 0, "ca_cert", OPT_STR, F(ca_cert), 0, 0 },
	{ "ca-key", 0, "ca_key", OPT_STR, F(ca_key), 0, 0 },
	{ "no-mitm", 0, "no_mitm", OPT_LIST, F(no_mitm), 0, 0 },
	{ "upstream", 0, "upstream", OPT_STR, F(upstream), 0, 0 },
	{ "no-upstream", 0, "no_upstream", OPT_FLAG, F(no_upstream), 0, 0 },
	{ "upstream-ca", 0, "upstream_ca", OPT_STR, F(upstream_ca), 0, 0 },
	{ "no-proxy", 0, "no_proxy", OPT_LIST, F(no_proxy), 0, 0 },
	{ "gateway", 0, "gateways", OPT_LIST, F(gateways), 0, 0 },
	{ "rule", 0, "rules", OPT_SPECS, F(rules), 0, 0 },
	{ "preset", 0, "preset", OPT_LIST, F(presets), 0, 0 },
	{ "git-repo", 0, "git_repos", OPT_LIST, F(git_repos), 0, 0 },
	{ "git-protect", 0, "git_protect", OPT_LIST, F(git_protect), 0, 0 },
	{ "git-push-prefix", 0, "git_push_prefix", OPT_LIST,
	  F(git_push_prefix), 0, 0 },
	{ "git-allow-delete", 0, "git_allow_delete", OPT_FLAG,
	  F(git_allow_delete), 0, 0 },
	{ "git-allow-force", 0, "git_allow_force", OPT_FLAG,
	  F(git_allow_force), 0, 0 },
	{ "llm-host", 0, "llm_hosts", OPT_LIST, F(llm_hosts), 0, 0 },
	{ "no-llm", 0, "no_llm", OPT_FLAG, F(no_llm), 0, 0 },
	{ "llm-budget", 0, "llm_budget", OPT_UINT, F(llm_budget), 1,
	  4000000000LL },
	{ "llm-max-requests", 0, "llm_max_requests", OPT_UINT,
	  F(llm_max_requests), 1, 4000000000LL },
	{ "llm-summary", 0, "llm_summary", OPT_FLAG, F(llm_summary), 0, 0 },
	{ "isolate", 0, "isolate", OPT_FLAG, F(isolate), 0, 0 },
	{ "host-port", 0, "host_ports", OPT_LIST, F(host_ports), 0, 0 },
	{ "audit", 0, "audit", OPT_STR, F(audit), 0, 0 },
	{ "hook", 0, "hooks", OPT_HOOKS, F(hooks), 0, 0 },
	{ "metrics", 0, "metrics", OPT_STR, F(metrics), 0, 0 },
	{ "control", 0, "control", OPT_STR, F(control), 0, 0 },
	{ "via", 0, "via", OPT_STR, F(via), 0, 0 },
	{ "fail-closed", 0, "fail_closed", OPT_FLAG, F(fail_closed), 0, 0 },
	{ "print-env", 0, "print_env", OPT_FLAG, F(print_env), 0, 0 },
	{ "verbose", 'v', "verbose", OPT_VERBOSE, F(verbosity), 0, 3 },
	{ "quiet", 'q', "quiet", OPT_QUIET, F(verbosity), 0, 0 },
};
#define NOPTS (sizeof opts / sizeof opts[0])

_Static_assert(NOPTS <= 64, "struct config.set holds one bit per option");

const char config_usage[] =
"usage: egress-run [OPTIONS] [--] COMMAND [ARG...]\n"
"       egress-run connect HOST PORT      (ssh ProxyCommand via the proxy)\n"
"       egress-run serve --control PATH [--listen ADDR:PORT]  (a daemon)\n"
"Run COMMAND with its network egress routed through a proxy.\n"
"\n"
"Proxy:    --external CMD ({port}: a free port)  --external-addr HOST:PORT\n"
"          --external-ca FILE  --bind-timeout SECS (10)\n"
"          --listen ADDR:PORT (127.0.0.1:0)  --max-conns N (1024)\n"
"Policy:   --allow PATTERN  --deny PATTERN  --resolve HOST:PORT:ADDR\n"
"          --secret KEY:HOST[:HEADER] (COMMAND gets a placeholder)\n"
"          --ca-cert FILE --ca-key FILE  --no-mitm PATTERN\n"
"Rules:    --rule 'deny|allow METHODS HOST PATH-REGEX [REASON]'\n"
"          --preset github[:HOST]  --git-repo HOST/OWNER/REPO\n"
"          --git-protect GLOB (main, master)  --git-push-prefix GLOB\n"
"          --git-allow-delete  --git-allow-force\n"
"Gateway:  --gateway NAME=URL[,VAR] | anthropic | openai | gemini | ...\n"
"LLM:      --llm-budget TOKENS  --llm-max-requests N  --llm-summary\n"
"          --llm-host HOST[:anthropic|openai|google]  --no-llm\n"
"Upstream: --upstream URL ($HTTPS_PROXY &c)  --no-upstream\n"
"          --upstream-ca FILE\n"
"Isolate:  --isolate  --host-port PORT[:HOSTPORT]\n"
"Daemon:   --via PATH (run through a daemon)  --control PATH (live policy:\n"
"          PUT /v1/sandboxes/ID on a 0600 socket)\n"
"Events:   --hook EVENT:TARGET (request|response|deny|llm: file:PATH | URL)\n"
"          --metrics ADDR:PORT (loopback: Prometheus text at /metrics)\n"
"Run:      --config FILE  --audit FILE ('-': stderr)  --no-proxy HOSTS\n"
"          --fail-closed  --print-env  -q, --quiet  -v, --verbose (-vv)\n"
"          --help  --version\n"
"Exit: COMMAND's status; 128+N if it was killed by signal N; 125 egress-run\n"
"error; 126 COMMAND not executable; 127 not found. Details: egress-run(1).\n";

static void *
field(struct config *c, const struct opt *o)
{
	return (char *)c + o->off;
}

void
config_init(struct config *c)
{
	memset(c, 0, sizeof *c);
	c->bind_timeout_ms = 10000;
	c->max_conns = 1024;
}

static void
clear_value(struct config *c, const struct opt *o)
{
	switch (o->type) {
	case OPT_STR:
		free(*(char **)field(c, o));
		*(char **)field(c, o) = NULL;
		break;
	case OPT_SECRET: {
		struct strlist *l = field(c, o);
		for (size_t i = 0; i < l->n; i++)
			freezero_str(l->v[i]), l->v[i] = NULL;
		l->n = 0;
		strlist_clear(l);
		break;
	}
	case OPT_LIST:
	case OPT_SPECS:
	case OPT_HOOKS:
		strlist_clear(field(c, o));
		break;
	default:
		break;
	}
}

void
config_free(struct config *c)
{
	for (size_t i = 0; i < NOPTS; i++)
		clear_value(c, &opts[i]);
	free(c->config_file);
	c->config_file = NULL;
}

void
config_wipe_secrets(struct config *c)
{
	for (size_t i = 0; i < c->secrets.n; i++)
		OPENSSL_cleanse(c->secrets.v[i], strlen(c->secrets.v[i]));
}

size_t
config_option_count(void)
{
	return NOPTS + 3;	/* + --config, --help, --version */
}

const char *
config_option_name(size_t i)
{
	static char	name[64];
	static const char *extra[] = { "config", "help", "version" };

	snprintf(name, sizeof name, "--%s",
	    i < NOPTS ? opts[i].name : extra[i - NOPTS]);
	return name;
}

const char *
config_option_key(size_t i)
{
	return i < NOPTS ? opts[i].key : (i == NOPTS ? NULL : NULL);
}

static const struct opt *
find_long(const char *name, size_t len)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strlen(opts[i].name) == len &&
		    strncmp(opts[i].name, name, len) == 0)
			return &opts[i];
	return NULL;
}

static const struct opt *
find_short(char ch)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (opts[i].short_name == ch)
			return &opts[i];
	return NULL;
}

static int
takes_value(const struct opt *o)
{
	return o->type != OPT_FLAG && o->type != OPT_VERBOSE &&
	    o->type != OPT_QUIET;
}

static int
parse_seconds(const char *s, unsigned *ms)
{
	char	*end;
	double	 d;

	if (*s == '\0' || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	d = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(d) || d <= 0 ||
	    d > 86400)
		return -1;
	*ms = (unsigned)(d * 1000 + 0.5);
	if (*ms == 0)
		*ms = 1;
	return 0;
}

/* Store a string value for an option given on the command line. */
static int
set_arg(struct config *c, const struct opt *o, const char *v, char *err,
    size_t errlen)
{
	long long n;

	switch (o->type) {
	case OPT_STR:
		free(*(char **)field(c, o));
		*(char **)field(c, o) = xstrdup(v);
		break;
	case OPT_LIST:
	case OPT_SECRET:
	case OPT_SPECS:
		strlist_add(field(c, o), v);
		break;
	case OPT_HOOKS: {
		struct hook_spec	hs;
		char			why[256];

		if (hooks_spec_parse(v, &hs, why, sizeof why) != 0) {
			snprintf(err, errlen, "--%s '%.*s': %s", o->name,
			    (int)strcspn(v, "?@"), v, why);
			return -1;
		}
		hooks_spec_clear(&hs);
		strlist_add(field(c, o), v);
		break;
	}
	case OPT_SECONDS:
		if (parse_seconds(v, field(c, o)) != 0) {
			snprintf(err, errlen, "--%s: '%s' is not a number of "
			    "seconds (e.g. 10 or 0.5)", o->name, v);
			return -1;
		}
		break;
	case OPT_UINT:
		if (util_strtonum(v, o->min, o->max, &n) != 0) {
			snprintf(err, errlen, "--%s: '%s' is not an integer "
			    "from %lld to %lld", o->name, v, o->min, o->max);
			return -1;
		}
		*(unsigned *)field(c, o) = (unsigned)n;
		break;
	case OPT_FLAG:
		*(bool *)field(c, o) = true;
		break;
	case OPT_VERBOSE:
		if (c->verbosity < 0)
			c->verbosity = 0;
		if (c->verbosity < 3)
			c->verbosity++;
		break;
	case OPT_QUIET:
		c->verbosity = -1;
		break;
	}
	c->set |= UINT64_C(1) << (o - opts);
	return 0;
}

/*
 * An inline secret (KEY=value:host) would stay readable in /proc/PID/cmdline:
 * keep our copy, then overwrite everything after the '=' in argv.
 */
static void
blank_secret(char *arg)
{
	char *eq = strchr(arg, '=');

	if (eq != NULL)
		memset(eq + 1, '*', strlen(eq + 1));
}

/*
 * The same for a proxy URL's password (--upstream http://user:pass@host):
 * everything between the first ':' after the scheme and the last '@'.
 */
static void
blank_url_password(char *arg)
{
	char	*auth = strstr(arg, "://"), *at, *colon;

	auth = auth ? auth + 3 : arg;
	if ((at = strrchr(auth, '@')) == NULL)
		return;
	if ((colon = memchr(auth, ':', (size_t)(at - auth))) != NULL)
		memset(colon + 1, '*', (size_t)(at - colon - 1));
}

enum config_result
config_parse_args(struct config *c, int argc, char **argv, char *err,
    size_t errlen)
{
	int i;

	for (i = 1; i < argc; i++) {
		char		*a = argv[i], *value = NULL;
		const struct opt *o;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' || a[1] == '\0')
			break;
		if (a[1] != '-') {		/* -v, -q, -vv, -h */
			for (char *p = a + 1; *p != '\0'; p++) {
				if (*p == 'h')
					return CONFIG_HELP;
				if ((o = find_short(*p)) == NULL) {
					snprintf(err, errlen, "unknown option "
					    "'-%c' (see egress-run --help)", *p);
					return CONFIG_ERR;
				}
				(void)set_arg(c, o, "", err, errlen);
			}
			continue;
		}
		a += 2;
		size_t len = strcspn(a, "=");
		if (a[len] == '=')
			value = a + len + 1;
		if (len == 4 && strncmp(a, "help", 4) == 0)
			return CONFIG_HELP;
		if (len == 7 && strncmp(a, "version", 7) == 0)
			return CONFIG_VERSION;
		if (len == 6 && strncmp(a, "config", 6) == 0) {
			if (value == NULL && (value = argv[++i]) == NULL) {
				snprintf(err, errlen, "--config needs a FILE");
				return CONFIG_ERR;
			}
			free(c->config_file);
			c->config_file = xstrdup(value);
			continue;
		}
		if ((o = find_long(a, len)) == NULL) {
			snprintf(err, errlen, "unknown option '--%.*s' (see "
			    "egress-run --help)", (int)len, a);
			return CONFIG_ERR;
		}
		if (!takes_value(o)) {
			if (value != NULL) {
				snprintf(err, errlen, "--%s takes no value",
				    o->name);
				return CONFIG_ERR;
			}
		} else if (value == NULL) {
			if (i + 1 >= argc) {
				snprintf(err, errlen, "--%s needs a value (see "
				    "egress-run --help)", o->name);
				return CONFIG_ERR;
			}
			value = argv[++i];
		}
		if (set_arg(c, o, value ? value : "", err, errlen) != 0)
			return CONFIG_ERR;
		if (o->type == OPT_SECRET)
			blank_secret(value);
		else if (o->off == F(upstream))
			blank_url_password(value);
	}
	c->command = (i < argc) ? &argv[i] : NULL;
	return CONFIG_OK;
}

/* "line L, column C" of a byte offset, for JSON syntax errors. */
static void
position(const char *text, size_t off, unsigned *line, unsigned *col)
{
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < off && text[i] != '\0'; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else
			(*col)++;
	}
}

static const char *
json_type(const cJSON *j)
{
	if (cJSON_IsString(j))
		return "a string";
	if (cJSON_IsNumber(j))
		return "a number";
	if (cJSON_IsBool(j))
		return "a boolean";
	if (cJSON_IsArray(j))
		return "an array";
	if (cJSON_IsObject(j))
		return "an object";
	return "null";
}

/* A hook object {"name", "event", "target"} as its spec, or NULL with err
 * naming the file, the key and the hook's place. */
static char *
hook_object_spec(const cJSON *e, const char *file, const char *key,
    size_t n, char *err, size_t errlen)
{
	static const char *const keys[] = { "name", "event", "target" };
	const char	*v[3] = { NULL, NULL, NULL };
	const cJSON	*k;
	size_t		 i;

	cJSON_ArrayForEach(k, e) {
		for (i = 0; i < 3 && strcmp(k->string, keys[i]) != 0; i++)
			;
		if (i == 3) {
			snprintf(err, errlen, "%s: key '%s': hook %zu: unknown "
			    "key '%s' (a hook has \"name\", \"event\" and "
			    "\"target\")", file, key, n, k->string);
			return NULL;
		}
		if (!cJSON_IsString(k) || v[i] != NULL) {
			snprintf(err, errlen, "%s: key '%s': hook %zu: '%s' "
			    "must be a string, given once", file, key, n,
			    k->string);
			return NULL;
		}
		v[i] = k->valuestring;
	}
	if (v[1] == NULL || v[2] == NULL) {
		snprintf(err, errlen, "%s: key '%s': hook %zu: \"event\" and "
		    "\"target\" are required", file, key, n);
		return NULL;
	}
	/* The spec's separators must not hide in a part. */
	if (v[0] != NULL && strpbrk(v[0], "=:") != NULL) {
		snprintf(err, errlen, "%s: key '%s': hook %zu: a hook's name "
		    "may hold letters, digits, '.', '_' and '-' only", file,
		    key, n);
		return NULL;
	}
	if (strpbrk(v[1], "=:") != NULL) {
		snprintf(err, errlen, "%s: key '%s': hook %zu: unknown event: "
		    "use request, response, deny or llm", file, key, n);
		return NULL;
	}
	return xprintf("%s%s%s:%s", v[0] ? v[0] : "", v[0] ? "=" : "", v[1],
	    v[2]);
}

/*
 * The "hooks" key: objects {"name", "event", "target"} ("name" optional),
 * or spec strings as --hook takes them. Each is checked now and kept as
 * its spec, "[NAME=]EVENT:TARGET".
 */
static int
set_hooks(struct config *c, const struct opt *o, const cJSON *j,
    const char *file, char *err, size_t errlen)
{
	struct strlist	 specs = { NULL, 0, 0 };
	struct hook_spec hs;
	const cJSON	*e;
	char		 why[256], *spec;
	size_t		 n = 0;

	cJSON_ArrayForEach(e, j) {
		n++;
		if (cJSON_IsString(e))
			spec = xstrdup(e->valuestring);
		else if (!cJSON_IsObject(e)) {
			snprintf(err, errlen, "%s: key '%s': hook %zu must be "
			    "an object, not %s", file, o->key, n,
			    json_type(e));
			goto fail;
		} else if ((spec = hook_object_spec(e, file, o->key, n, err,
		    errlen)) == NULL)
			goto fail;
		if (hooks_spec_parse(spec, &hs, why, sizeof why) != 0) {
			snprintf(err, errlen, "%s: key '%s': hook %zu: %s",
			    file, o->key, n, why);
			free(spec);
			goto fail;
		}
		hooks_spec_clear(&hs);
		strlist_add_owned(&specs, spec);
	}
	for (size_t i = 0; i < specs.n; i++)
		strlist_add(field(c, o), specs.v[i]);
	strlist_clear(&specs);
	return 0;
fail:
	strlist_clear(&specs);
	return -1;
}

static int
set_json(struct config *c, const struct opt *o, const cJSON *j,
    const char *file, char *err, size_t errlen)
{
	const char	*want = NULL;
	const cJSON	*e;

	switch (o->type) {
	case OPT_STR:
		if (!cJSON_IsString(j)) {
			want = "a string";
			break;
		}
		free(*(char **)field(c, o));
		*(char **)field(c, o) = xstrdup(j->valuestring);
		break;
	case OPT_LIST:
	case OPT_SECRET:
		if (!cJSON_IsArray(j)) {
			want = "an array of strings";
			break;
		}
		cJSON_ArrayForEach(e, j)
			if (!cJSON_IsString(e)) {
				snprintf(err, errlen, "%s: key '%s': every "
				    "element must be a string, not %s", file,
				    o->key, json_type(e));
				return -1;
			}
		cJSON_ArrayForEach(e, j)
			strlist_add(field(c, o), e->valuestring);
		break;
	case OPT_SPECS:
		if (!cJSON_IsArray(j)) {
			want = "an array";
			break;
		}
		cJSON_ArrayForEach(e, j)
			if (!cJSON_IsString(e) && !cJSON_IsObject(e)) {
				snprintf(err, errlen, "%s: key '%s': every "
				    "element must be a string or an object, not "
				    "%s", file, o->key, json_type(e));
				return -1;
			}
		cJSON_ArrayForEach(e, j) {
			if (cJSON_IsString(e))
				strlist_add(field(c, o), e->valuestring);
			else {
				char *t = cJSON_PrintUnformatted(e);
				if (t == NULL)
					fatal("out of memory");
				strlist_add(field(c, o), t);
				cJSON_free(t);
			}
		}
		break;
	case OPT_HOOKS:
		if (!cJSON_IsArray(j)) {
			want = "an array of {\"name\", \"event\", "
			    "\"target\"} objects";
			break;
		}
		return set_hooks(c, o, j, file, err, errlen);
	case OPT_FLAG:
	case OPT_QUIET:
		if (!cJSON_IsBool(j)) {
			want = "true or false";
			break;
		}
		if (o->type == OPT_FLAG)
			*(bool *)field(c, o) = cJSON_IsTrue(j);
		else if (cJSON_IsTrue(j))
			c->verbosity = -1;
		break;
	case OPT_SECONDS:
		if (!cJSON_IsNumber(j) || !(j->valuedouble > 0) ||
		    j->valuedouble > 86400) {
			want = "a number of seconds above 0";
			break;
		}
		*(unsigned *)field(c, o) = (unsigned)(j->valuedouble * 1000 +
		    0.5) ?: 1;
		break;
	case OPT_UINT:
	case OPT_VERBOSE: {
		long long min = o->type == OPT_UINT ? o->min : 0;
		if (!cJSON_IsNumber(j) || j->valuedouble != floor(j->valuedouble)
		    || j->valuedouble < (double)min ||
		    j->valuedouble > (double)o->max) {
			snprintf(err, errlen, "%s: key '%s' must be an integer "
			    "from %lld to %lld", file, o->key, min, o->max);
			return -1;
		}
		if (o->type == OPT_UINT)
			*(unsigned *)field(c, o) = (unsigned)j->valuedouble;
		else
			c->verbosity = (int)j->valuedouble;
		break;
	}
	}
	if (want != NULL) {
		snprintf(err, errlen, "%s: key '%s' must be %s, not %s", file,
		    o->key, want, json_type(j));
		return -1;
	}
	return 0;
}

int
config_load_json(struct config *c, const char *text, size_t len,
    const char *file, char *err, size_t errlen)
{
	const char	*end = NULL;
	cJSON		*root;
	int		 r = -1;

	root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (root == NULL) {
		unsigned line, col;
		const char *at = cJSON_GetErrorPtr();
		size_t off = (at != NULL && at >= text && at <= text + len) ?
		    (size_t)(at - text) : 0;
		position(text, off, &line, &col);
		snprintf(err, errlen, "%s: invalid JSON at line %u, column %u",
		    file, line, col);
		return -1;
	}
	/* cJSON stops after the first value: text after it is an error too,
	 * not something to ignore ("{...}\n}" is a typo, not a config). */
	while (end != NULL && end < text + len && (*end == ' ' ||
	    *end == '\t' || *end == '\n' || *end == '\r'))
		end++;
	if (end != NULL && end < text + len) {
		unsigned line, col;
		position(text, (size_t)(end - text), &line, &col);
		snprintf(err, errlen, "%s: invalid JSON at line %u, column %u: "
		    "text after the top-level object", file, line, col);
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "%s: the top level must be a JSON "
		    "object, not %s", file, json_type(root));
		goto out;
	}
	r = config_load_object(c, root, file, err, errlen);
out:
	cJSON_Delete(root);
	return r;
}

bool
config_key_known(const char *key)
{
	for (size_t i = 0; i < NOPTS; i++)
		if (strcmp(opts[i].key, key) == 0)
			return true;
	return false;
}

int
config_load_object(struct config *c, const void *obj, const char *file,
    char *err, size_t errlen)
{
	const cJSON	*root = obj, *j;

	cJSON_ArrayForEach(j, root) {
		const struct opt *o = NULL;

		for (const cJSON *k = root->child; k != j; k = k->next)
			if (strcmp(k->string, j->string) == 0) {
				snprintf(err, errlen, "%s: key '%s' appears "
				    "twice", file, j->string);
				return -1;
			}
		for (size_t i = 0; i < NOPTS; i++)
			if (strcmp(opts[i].key, j->string) == 0)
				o = &opts[i];
		if (o == NULL) {
			snprintf(err, errlen, "%s: unknown key '%s'", file,
			    j->string);
			return -1;
		}
		/* A flag given on the command line wins over the file. */
		if (c->set & (UINT64_C(1) << (o - opts)))
			continue;
		/* -v and -q share a field: either one given wins. */
		if ((o->type == OPT_VERBOSE || o->type == OPT_QUIET) &&
		    (c->set & (UINT64_C(1) << (find_short('v') - opts) |
		    UINT64_C(1) << (find_short('q') - opts))))
			continue;
		if (set_json(c, o, j, file, err, errlen) != 0)
			return -1;
	}
	return 0;
}

int
config_load_file(struct config *c, const char *path, char *err,
    size_t errlen)
{
	struct stat	 st;
	char		*text = NULL;
	ssize_t		 n;
	size_t		 got = 0;
	int		 fd, r = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot read config file '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_size > 4 * 1024 * 1024) {
		snprintf(err, errlen, "cannot read config file '%s': %s", path,
		    S_ISREG(st.st_mode) ? "larger than 4 MiB" :
		    "not a regular file");
		goto out;
	}
	text = xcalloc(1, (size_t)st.st_size + 1);
	while (got < (size_t)st.st_size &&
	    (n = read(fd, text + got, (size_t)st.st_size - got)) > 0)
		got += (size_t)n;
	if (got != (size_t)st.st_size) {
		snprintf(err, errlen, "cannot read config file '%s': short "
		    "read", path);
		goto out;
	}
	r = config_load_json(c, text, got, path, err, errlen);
out:
	if (text != NULL)
		freezero(text, (size_t)st.st_size + 1);	/* may hold secrets */
	close(fd);
	return r;
}

/* egress-run serve: the proxy and its API, policy from registrations. */
static int
validate_serve(const struct config *c, char *err, size_t errlen)
{
	static const char *const per_run[] = { "external", "external_addr",
	    "external_ca", "bind_timeout", "isolate", "host_ports",
	    "print_env", "via", "allow", "deny", "resolve", "secrets",
	    "rules", "preset", "git_repos", "git_protect", "git_push_prefix",
	    "git_allow_delete", "git_allow_force", "llm_budget",
	    "llm_max_requests", "llm_summary" };

	if (c->command != NULL) {
		snprintf(err, errlen, "egress-run serve runs no COMMAND "
		    "('%s'): use --via to run one through it", c->command[0]);
		return -1;
	}
	if (c->control == NULL) {
		snprintf(err, errlen, "egress-run serve needs --control PATH "
		    "(the socket sandboxes are registered on)");
		return -1;
	}
	for (size_t i = 0; i < NOPTS; i++)
		for (size_t k = 0; k < sizeof per_run / sizeof per_run[0]; k++)
			if ((c->set & (UINT64_C(1) << i)) &&
			    strcmp(opts[i].key, per_run[k]) == 0) {
				snprintf(err, errlen, "egress-run serve: --%s "
				    "belongs to a sandbox (register it: POST "
				    "/v1/sandboxes) or to a run", opts[i].name);
				return -1;
			}
	if (c->allow.n || c->deny.n || c->resolve.n || c->secrets.n ||
	    c->rules.n || c->presets.n || c->git_repos.n || c->llm_budget ||
	    c->llm_max_requests || c->external || c->isolate) {
		snprintf(err, errlen, "egress-run serve: the config file holds "
		    "a sandbox's policy (allow, deny, secrets, rules, ...): "
		    "register it (POST /v1/sandboxes) instead");
		return -1;
	}
	return 0;
}

int
config_validate(const struct config *c, char *err, size_t errlen)
{
	if (c->external != NULL && c->external_addr == NULL &&
	    strstr(c->external, "{port}") == NULL) {
		snprintf(err, errlen, "--external: the command has no {port} "
		    "to fill in; add one, or say where it listens with "
		    "--external-addr");
		return -1;
	}
	if ((c->ca_cert == NULL) != (c->ca_key == NULL)) {
		snprintf(err, errlen, "--ca-cert and --ca-key go together: "
		    "give both or neither");
		return -1;
	}
	if (c->upstream != NULL && c->no_upstream) {
		snprintf(err, errlen, "--upstream and --no-upstream contradict "
		    "each other: give one");
		return -1;
	}
	if (c->serve)
		return validate_serve(c, err, errlen);
	if (c->command == NULL && !c->print_env) {
		snprintf(err, errlen, "no COMMAND given (usage: egress-run "
		    "[OPTIONS] -- COMMAND [ARG...])");
		return -1;
	}
	if (c->via != NULL && (c->external != NULL || c->external_addr !=
	    NULL || c->control != NULL || c->isolate || c->listen != NULL)) {
		snprintf(err, errlen, "--via uses a daemon's proxy: --%s "
		    "cannot go with it", c->external ? "external" :
		    c->external_addr ? "external-addr" : c->control ? "control" :
		    c->isolate ? "isolate" : "listen");
		return -1;
	}
	if (c->control != NULL && (c->external != NULL ||
	    c->external_addr != NULL)) {
		snprintf(err, errlen, "--control changes the built-in proxy's "
		    "policy: it cannot go with --external");
		return -1;
	}
	return 0;
}
