/*
 * Building the child's environment from the parent's and what the proxy
 * reported. The variable lists follow SPEC §4; every tool that reads a
 * lower-case twin gets it too.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "common/util.h"
#include "common/xmalloc.h"
#include "env/bouquet.h"
#include "env/trust.h"

static const char *proxy_vars[] = {
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"GRPC_PROXY", "grpc_proxy", "npm_config_proxy",
	"npm_config_https_proxy",
};

static const char *trust_vars[] = {
	"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT",
	"GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE",
	"CARGO_HTTP_CAINFO", "DENO_CERT", "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
	"NIX_SSL_CERT_FILE", "HTTPLIB2_CA_CERTS",
	"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "npm_config_cafile",
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static ssize_t
find(const struct strlist *l, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < l->n; i++)
		if (strncmp(l->v[i], name, n) == 0 && l->v[i][n] == '=')
			return (ssize_t)i;
	return -1;
}

const char *
bouquet_get(const struct bouquet *b, const char *name)
{
	ssize_t i = find(&b->env, name);

	return i < 0 ? NULL : strchr(b->env.v[i], '=') + 1;
}

static void
put(struct bouquet *b, const char *name, const char *value)
{
	char	*entry = xprintf("%s=%s", name, value);
	ssize_t	 i;

	if ((i = find(&b->env, name)) >= 0) {
		free(b->env.v[i]);
		b->env.v[i] = entry;
	} else
		strlist_add_owned(&b->env, entry);
	if ((i = find(&b->set, name)) >= 0) {
		free(b->set.v[i]);
		b->set.v[i] = xstrdup(entry);
	} else
		strlist_add(&b->set, entry);
}

/* Append to a space-separated variable, keeping what the user had. */
static void
append(struct bouquet *b, const char *name, const char *add)
{
	const char *old = bouquet_get(b, name);

	if (old != NULL && *old != '\0') {
		char *v = xprintf("%s %s", old, add);
		put(b, name, v);
		free(v);
	} else
		put(b, name, add);
}

/*
 * GIT_SSH_COMMAND: our ProxyCommand goes right after the program name, so it
 * precedes (and so beats, for ssh) any -o the user's own command carries,
 * while the user's other options stay.
 */
static void
git_ssh(struct bouquet *b, const char *self)
{
	const char	*user = bouquet_get(b, "GIT_SSH_COMMAND");
	const char	*prog = bouquet_get(b, "GIT_SSH");
	char		*qself, *pc, *opt, *v, *qprog = NULL;
	size_t		 split = 0;
	char		 quote = 0;

	qself = util_shell_quote(self);
	pc = xprintf("ProxyCommand=%s connect %%h %%p", qself);
	opt = util_shell_quote(pc);
	if (user != NULL && *user != '\0') {
		/* End of the first shell word, honouring quotes. */
		for (split = 0; user[split] != '\0'; split++) {
			char ch = user[split];
			if (quote != 0) {
				if (ch == quote)
					quote = 0;
			} else if (ch == '\'' || ch == '"')
				quote = ch;
			else if (ch == ' ' || ch == '\t')
				break;
		}
		v = xprintf("%.*s -o %s%s", (int)split, user, opt, user + split);
	} else if (prog != NULL && *prog != '\0') {
		qprog = util_shell_quote(prog);
		v = xprintf("%s -o %s", qprog, opt);
	} else
		v = xprintf("ssh -o %s", opt);
	put(b, "GIT_SSH_COMMAND", v);
	free(v);
	free(qprog);
	free(opt);
	free(pc);
	free(qself);
}

/* An inherited value that holds an upstream password never reaches the
 * child, whatever the variable is called. */
static bool
scrubbed(const struct bouquet_opts *o, const char *value)
{
	for (size_t j = 0; o->scrub != NULL && o->scrub[j] != NULL; j++)
		if (*o->scrub[j] != '\0' && strstr(value, o->scrub[j]) != NULL)
			return true;
	return false;
}

void
bouquet_build(struct bouquet *b, char *const *parent,
    const struct bouquet_opts *o)
{
	memset(b, 0, sizeof *b);
	/*
	 * A name defined twice keeps its first value (getenv's). Otherwise a
	 * second HTTPS_PROXY would survive put(), which replaces only the first,
	 * and Python, whose os.environ keeps the last, would bypass the proxy.
	 */
	for (size_t i = 0; parent != NULL && parent[i] != NULL; i++) {
		const char *eq = strchr(parent[i], '=');
		char *name;

		if (eq == NULL || eq == parent[i])
			continue;
		if (scrubbed(o, eq + 1))
			continue;
		name = xstrndup(parent[i], (size_t)(eq - parent[i]));
		if (find(&b->env, name) < 0)
			strlist_add(&b->env, parent[i]);
		free(name);
	}

	if (o->proxy_host != NULL) {
		char *hp = util_join_hostport(o->proxy_host, o->proxy_port);
		char *url = o->proxy_userinfo != NULL ? xprintf("http://%s@%s",
		    o->proxy_userinfo, hp) : xprintf("http://%s", hp);
		char *noproxy = xstrdup("localhost,127.0.0.1,::1");

		for (size_t i = 0; i < NELEM(proxy_vars); i++)
			put(b, proxy_vars[i], url);
		put(b, "ALL_PROXY", o->all_proxy ? o->all_proxy : url);
		put(b, "all_proxy", o->all_proxy ? o->all_proxy : url);
		for (size_t i = 0; o->no_proxy != NULL && i < o->no_proxy->n;
		    i++) {
			char *n = xprintf("%s,%s", noproxy, o->no_proxy->v[i]);
			free(noproxy);
			noproxy = n;
		}
		put(b, "NO_PROXY", noproxy);
		put(b, "no_proxy", noproxy);
		put(b, "NODE_USE_ENV_PROXY", "1");

		char *java = xprintf("-Dhttp.proxyHost=%s -Dhttp.proxyPort=%u "
		    "-Dhttps.proxyHost=%s -Dhttps.proxyPort=%u", o->proxy_host,
		    o->proxy_port, o->proxy_host, o->proxy_port);
		append(b, "JAVA_TOOL_OPTIONS", java);
		free(java);
		if (o->self != NULL)
			git_ssh(b, o->self);
		free(noproxy);
		free(url);
		free(hp);
	}

	if (o->trust != NULL && o->trust->bundle != NULL) {
		for (size_t i = 0; i < NELEM(trust_vars); i++)
			put(b, trust_vars[i], o->trust->bundle);
		if (o->trust->wgetrc != NULL)
			put(b, "WGETRC", o->trust->wgetrc);
		if (o->trust->truststore != NULL) {
			char *java = xprintf("-Djavax.net.ssl.trustStore=%s "
			    "-Djavax.net.ssl.trustStoreType=PKCS12 "
			    "-Djavax.net.ssl.trustStorePassword=%s",
			    o->trust->truststore, TRUST_STORE_PASSWORD);
			append(b, "JAVA_TOOL_OPTIONS", java);
			free(java);
		}
	}

	for (size_t i = 0; o->replace != NULL && i < o->replace->n; i++) {
		const char *eq = strchr(o->replace->v[i], '=');
		char *name;

		if (eq == NULL)
			continue;
		name = xstrndup(o->replace->v[i], (size_t)(eq - o->replace->v[i]));
		put(b, name, eq + 1);
		free(name);
	}
	put(b, "EGRESS_RUN", "1");
}

void
bouquet_print(const struct bouquet *b, FILE *f)
{
	for (size_t i = 0; i < b->set.n; i++) {
		const char	*eq = strchr(b->set.v[i], '=');
		char		*q = util_shell_quote(eq + 1);

		fprintf(f, "%.*s=%s\n", (int)(eq - b->set.v[i]), b->set.v[i], q);
		free(q);
	}
}

void
bouquet_free(struct bouquet *b)
{
	strlist_clear(&b->env);
	strlist_clear(&b->set);
}
