/*
 * The run: data flows one way, config -> proxy -> trust/bouquet -> child.
 * The event loop serves the built-in proxy and reaps children; the child's
 * exit ends it.
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "builtin/gateway.h"
#include "builtin/secrets.h"
#include "builtin/server.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/control.h"
#include "env/bouquet.h"
#include "env/trust.h"
#include "launcher/child.h"
#include "launcher/config.h"
#include "launcher/external.h"
#include "launcher/isolate.h"
#include "launcher/session.h"
#include "launcher/state.h"
#include "launcher/via.h"
#include "upstream/upstream.h"

extern char **environ;

struct session {
	const struct config	*cfg;
	struct event_base	*base;
	struct state		*state;
	struct external		*ext;
	struct server		*srv;
	struct control		*ctl;		/* --control, or NULL */
	struct via		*via;		/* --via: a daemon's sandbox */
	struct child_early	 early;		/* --isolate: COMMAND's child,
						   making its namespaces */
	struct secrets		*secrets;
	struct upstream		*upstream;	/* corporate proxy, or NULL */
	struct gateways		*gateways;
	bool			 isolate;	/* --isolate, and possible */
	struct isolate		 iso;
	int			 early_errno;	/* no early child: why */
	uint16_t		 fwd_inside[ISOLATE_MAX_PORTS];
	uint16_t		 fwd_host[ISOLATE_MAX_PORTS];
	size_t			 nfwd;
	struct trust_files	 trust;
	struct bouquet		 bouquet;
	pid_t			 child;
	int			 status;	/* exit status to return */
};

static void
on_libevent_log(int severity, const char *msg)
{
	log_msg(severity >= EVENT_LOG_WARN ? LOG_WARN : LOG_DEBUG,
	    "libevent: %s", msg);
}

static void
on_sigchld(evutil_socket_t fd, short what, void *arg)
{
	struct session	*s = arg;
	int		 status;
	pid_t		 pid;

	(void)fd;
	(void)what;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == s->child) {
			child_reaped();
			s->child = -1;
			s->status = child_exit_code(status);
			event_base_loopexit(s->base, NULL);
		} else if (s->ext != NULL && pid == external_pid(s->ext))
			external_lost(s->ext, status);
	}
}

/* The built-in proxy, or (fail-open) none at all. */
static int
start_builtin(struct session *s)
{
	struct server_parts	parts = { .secrets = s->secrets,
				    .upstream = s->upstream,
				    .gateways = s->gateways,
				    .multi = s->cfg->control != NULL };
	char			err[1024];
	bool			fatal;

	if ((s->srv = server_start(s->base, s->cfg, &parts,
	    state_dir(s->state), err, sizeof err, &fatal)) != NULL) {
		if (s->cfg->control == NULL)
			return 0;
		/* Asked for by name: no running without it. */
		if ((s->ctl = control_start(s->base, s->srv, s->cfg->control,
		    err, sizeof err)) != NULL)
			return 0;
		log_error("%s", err);
		return -1;
	}
	if (fatal) {
		log_error("%s", err);
		return -1;
	}
	if (s->cfg->fail_closed) {
		log_error("the built-in proxy cannot start: %s (--fail-closed: "
		    "not starting COMMAND)", err);
		return -1;
	}
	log_warn("the built-in proxy cannot start: %s; running COMMAND "
	    "without a proxy", err);
	return 0;
}

/* --via: a daemon's proxy; unreachable, our own (fail-open). */
static int
start_via(struct session *s)
{
	char	err[1024];
	int	refused;

	if (via_register(s->via, state_dir(s->state), err, sizeof err,
	    &refused) == 0)
		return 0;
	via_free(s->via);
	s->via = NULL;
	if (refused) {		/* a mistake in the policy: say so, stop */
		log_error("%s", err);
		return -1;
	}
	if (s->cfg->fail_closed) {
		log_error("%s (--fail-closed: not starting COMMAND)", err);
		return -1;
	}
	log_warn("%s; falling back to the built-in proxy", err);
	return start_builtin(s);
}

/* Fail-open chain, SPEC §6. Returns -1 only when --fail-closed stops us. */
static int
start_proxy(struct session *s)
{
	const struct config	*cfg = s->cfg;
	char			 err[1024], *log;

	if (cfg->via != NULL)
		return start_via(s);

	if (cfg->external != NULL || cfg->external_addr != NULL) {
		log = state_path(s->state, "external.log");
		s->ext = external_start(cfg, log, err, sizeof err);
		if (s->ext == NULL && child_signal_pending()) {
			free(log);	/* stopped by a signal: no fallback */
			return 0;
		}
		if (s->ext != NULL) {
			free(log);
			if (cfg->allow.n || cfg->deny.n || cfg->secrets.n ||
			    cfg->rules.n || cfg->presets.n ||
			    cfg->git_repos.n || cfg->llm_budget ||
			    cfg->llm_max_requests || cfg->hooks.n ||
			    cfg->metrics != NULL || cfg->gateways.n)
				log_warn("policy, secrets, rules, the git guard, "
				    "LLM budgets, hooks, metrics and gateways "
				    "belong to the built-in proxy; the external "
				    "proxy applies its own policy");
			if (cfg->upstream != NULL || getenv("HTTPS_PROXY") ||
			    getenv("https_proxy") || getenv("HTTP_PROXY") ||
			    getenv("http_proxy") || getenv("ALL_PROXY"))
				log_info("not chaining to an upstream proxy: "
				    "the external proxy owns its own upstream");
			return 0;
		}
		if (cfg->fail_closed)
			log_error("%s (--fail-closed: not starting COMMAND)",
			    err);
		else
			log_warn("%s; falling back to the built-in proxy", err);
		if (cfg->external != NULL)
			external_log_tail(log);
		free(log);
		if (cfg->fail_closed)
			return -1;
	}
	return start_builtin(s);
}

/*
 * mitmproxy and friends write their CA when they first start: give the file
 * the rest of the bind timeout to appear.
 */
static void
wait_for_file(const char *path, unsigned timeout_ms)
{
	for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
		if (access(path, R_OK) == 0 || child_signal_pending())
			return;
		usleep(10000);
	}
}

/* The trust bundle: parent roots + the proxy's CA + extra roots. */
static int
build_trust(struct session *s)
{
	const struct config	*cfg = s->cfg;
	const char		*extra[4];
	size_t			 n = 0, ours;
	char			 err[1024];

	/* First the proxy's CA, written from a certificate egress-run made
	 * or has decoded: it needs no second decoding. */
	if (s->srv != NULL && server_ca_file(s->srv) != NULL)
		extra[n++] = server_ca_file(s->srv);
	ours = n;
	if (s->via != NULL && via_ca_file(s->via) != NULL)
		extra[n++] = via_ca_file(s->via);
	if (s->ext != NULL && cfg->external_ca != NULL) {
		wait_for_file(cfg->external_ca, cfg->bind_timeout_ms);
		extra[n++] = cfg->external_ca;
	}
	if (cfg->upstream_ca != NULL)
		extra[n++] = cfg->upstream_ca;
	if (n == 0)
		return 0;
	if (trust_build(state_dir(s->state), trust_default_roots(), extra, n,
	    ours, &s->trust, err, sizeof err) == 0)
		return 0;
	if (cfg->fail_closed) {
		log_error("%s (--fail-closed: not starting COMMAND)", err);
		return -1;
	}
	log_warn("%s; COMMAND keeps its own trust settings", err);
	return 0;
}

static void
build_env(struct session *s, const char *self)
{
	struct bouquet_opts	o;
	struct strlist		placeholders;

	memset(&o, 0, sizeof o);
	memset(&placeholders, 0, sizeof placeholders);
	if (s->ext != NULL) {
		o.proxy_host = external_host(s->ext);
		o.proxy_port = external_port(s->ext);
	} else if (s->via != NULL) {
		o.proxy_host = via_host(s->via);
		o.proxy_port = via_port(s->via);
		o.proxy_userinfo = via_userinfo(s->via);
	} else if (s->srv != NULL) {
		/* Isolated, COMMAND reaches the proxy on its own loopback. */
		o.proxy_host = s->isolate ? "127.0.0.1" : server_host(s->srv);
		o.proxy_port = server_port(s->srv);
	}
	/* Whichever proxy runs, the upstream's password stays out. */
	if (s->upstream != NULL)
		o.scrub = upstream_secrets(s->upstream);
	/* Placeholders whichever proxy runs: with none able to inject, the
	 * agent's requests fail to authenticate rather than hold a key. */
	if (s->via != NULL) {	/* COMMAND holds the daemon's placeholders */
		const char *const	*names, *const *phs;
		size_t			 n;

		via_placeholders(s->via, &names, &phs, &n);
		secrets_take_placeholders(s->secrets, names, phs, n, environ);
	}
	secrets_child_env(s->secrets, &placeholders);
	if (s->srv != NULL) {
		char err[256];

		gateways_child_env(s->gateways, o.proxy_host, o.proxy_port,
		    &placeholders);
		if (server_git_env(s->srv, environ, &placeholders, err,
		    sizeof err) != 0)
			log_warn("%s: ssh remotes of --git-repo hosts are not "
			    "rewritten to https", err);
	}
	o.replace = &placeholders;
	o.trust = s->trust.bundle != NULL ? &s->trust : NULL;
	o.self = self;
	o.no_proxy = &s->cfg->no_proxy;
	bouquet_build(&s->bouquet, environ, &o);
	strlist_clear(&placeholders);
}

/* Say what a user of Node must know, at -v. */
static void
node_notice(char *const *argv, bool isolated)
{
	const char *base = strrchr(argv[0], '/');

	base = base ? base + 1 : argv[0];
	if (strcmp(base, "node") != 0 && strcmp(base, "nodejs") != 0)
		return;
	if (isolated)
		log_info("node before version 24 ignores proxy variables in "
		    "its https module and fetch: under --isolate such "
		    "requests fail (NODE_USE_ENV_PROXY=1 is set for newer "
		    "versions)");
	else
		log_info("node before version 24 ignores proxy variables in "
		    "its https module and fetch: such requests bypass the "
		    "proxy (NODE_USE_ENV_PROXY=1 is set for newer versions)");
}

/*
 * COMMAND has its environment now. Egress-run's own still holds the secret
 * values and upstream passwords, readable in /proc/PID/environ by whoever
 * may read it (root; others are kept out by PR_SET_DUMPABLE): overwrite
 * them where they lie.
 */
static void
scrub_own_environment(struct session *s)
{
	const char *const	*up = s->upstream ? upstream_secrets(s->upstream) :
				    NULL;

	for (char **e = environ; e != NULL && *e != NULL; e++) {
		char *v = strchr(*e, '=');

		if (v == NULL)
			continue;
		secrets_scrub(s->secrets, v + 1);
		for (size_t i = 0; up != NULL && up[i] != NULL; i++) {
			size_t	 n = strlen(up[i]);
			char	*p;

			while (n > 0 && (p = strstr(v + 1, up[i])) != NULL)
				memset(p, '*', n);
		}
	}
}

/* --host-port PORT[:HOSTPORT], each checked now: 0 or -1. */
static int
parse_host_ports(struct session *s, char *err, size_t errlen)
{
	const struct strlist	*l = &s->cfg->host_ports;
	long long		 in, out;

	for (size_t i = 0; i < l->n; i++) {
		char *spec = xstrdup(l->v[i]), *colon = strchr(spec, ':');

		if (colon != NULL)
			*colon++ = '\0';
		if (s->nfwd + 1 >= ISOLATE_MAX_PORTS ||
		    util_strtonum(spec, 1, 65535, &in) != 0 ||
		    util_strtonum(colon ? colon : spec, 1, 65535, &out) != 0) {
			snprintf(err, errlen, "--host-port '%s' is not "
			    "PORT[:HOSTPORT] (1-65535)%s", l->v[i],
			    s->nfwd + 1 >= ISOLATE_MAX_PORTS ? ": too many" :
			    "");
			free(spec);
			return -1;
		}
		free(spec);
		for (size_t j = 0; j < s->nfwd; j++)
			if (s->fwd_inside[j] == in) {
				snprintf(err, errlen, "--host-port: port %lld "
				    "is given twice", in);
				return -1;
			}
		s->fwd_inside[s->nfwd] = (uint16_t)in;
		s->fwd_host[s->nfwd++] = (uint16_t)out;
	}
	return 0;
}

/* Not isolated after all: the early child goes. */
static void
abandon_isolation(struct session *s)
{
	child_abandon(&s->early);
	isolate_close(&s->iso);
}

/*
 * --isolate: the child forked at start has made its namespaces, and bound
 * the proxy's port (and --host-port ports) on its own loopback since
 * plan_isolation sent them: its listeners go to the proxy.
 */
static int
adopt_listeners(struct session *s)
{
	int fds[ISOLATE_MAX_PORTS];

	if (isolate_receive(&s->iso, fds, 1 + s->nfwd) != 0) {
		log_error("cannot isolate: no listeners from COMMAND's "
		    "namespace: %s", strerror(errno));
		return -1;
	}
	server_adopt(s->srv, fds[0]);
	for (size_t i = 0; i < s->nfwd; i++)
		server_forward(s->srv, fds[1 + i], s->fwd_host[i]);
	isolate_close(&s->iso);
	return 0;
}

/*
 * Decide whether COMMAND gets its own namespace (SPEC: fail open with a
 * warning that names the cause). -1 only for a stop.
 */
static int
plan_isolation(struct session *s)
{
	const struct config	*cfg = s->cfg;
	uint16_t		 ports[ISOLATE_MAX_PORTS];
	char			 err[512];
	int			 ready;

	if (!cfg->isolate) {
		if (s->nfwd > 0)
			log_warn("--host-port needs --isolate: ignored "
			    "(COMMAND reaches this host's loopback directly)");
		return 0;
	}
	if (s->early.pid > 0)
		ready = isolate_ready(&s->iso, err, sizeof err);
	else {
		snprintf(err, sizeof err, "cannot start a child to make the "
		    "namespaces: %s", strerror(s->early_errno));
		ready = -1;
	}
	if (s->srv == NULL) {
		abandon_isolation(s);
		if (cfg->fail_closed) {
			log_error("--isolate needs the built-in proxy, which "
			    "is not running (--fail-closed: not starting "
			    "COMMAND)");
			return -1;
		}
		log_warn("--isolate needs the built-in proxy, which is not "
		    "running: COMMAND is not isolated");
		if (s->nfwd > 0)
			log_warn("--host-port ignored: COMMAND is not "
			    "isolated and reaches this host's loopback ports "
			    "as they are");
		return 0;
	}
	for (size_t i = 0; i < s->nfwd; i++)
		if (s->fwd_inside[i] == server_port(s->srv)) {
			log_error("--host-port %u: that is the proxy's own port "
			    "inside COMMAND's namespace; choose another",
			    s->fwd_inside[i]);
			abandon_isolation(s);
			return -1;
		}
	if (ready != 0) {
		abandon_isolation(s);
		if (child_signal_pending())	/* ^C killed the child: stop */
			return 0;
		if (cfg->fail_closed) {
			log_error("cannot isolate: %s (--fail-closed: not "
			    "starting COMMAND)", err);
			return -1;
		}
		log_warn("cannot isolate: %s; COMMAND runs with proxy "
		    "variables only", err);
		if (s->nfwd > 0)
			log_warn("--host-port ignored: COMMAND is not "
			    "isolated and reaches this host's loopback ports "
			    "as they are");
		return 0;
	}
	/* Inside, the proxy keeps its port number on 127.0.0.1; the child
	 * binds while we go on. */
	ports[0] = (uint16_t)server_port(s->srv);
	memcpy(ports + 1, s->fwd_inside, s->nfwd * sizeof ports[0]);
	if (isolate_send_ports(&s->iso, ports, 1 + s->nfwd) != 0) {
		log_error("cannot isolate: %s", strerror(errno));
		abandon_isolation(s);
		return -1;
	}
	s->isolate = true;
	return 0;
}

/* The daemon's lease on our sandbox, pushed on while COMMAND runs. */
static void
on_renew(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)via_renew(arg);
}

static int
run_child(struct session *s)
{
	struct event	*sigchld, *renew = NULL;
	char *const	*env = strlist_array(&s->bouquet.env);
	int		 r;

	node_notice(s->cfg->command, s->isolate);
	sigchld = evsignal_new(s->base, SIGCHLD, on_sigchld, s);
	event_add(sigchld, NULL);
	if (s->via != NULL) {
		struct timeval tv = { VIA_RENEW, 0 };

		renew = event_new(s->base, -1, EV_PERSIST, on_renew, s->via);
		event_add(renew, &tv);
	}
	if (s->isolate)
		r = adopt_listeners(s) != 0 ? 125 :
		    child_release(&s->early, env, &s->child);
	else
		r = child_spawn(s->cfg->command, env, &s->child);
	if (r == 0) {
		/* A SIGCHLD before the event was armed is caught here. */
		on_sigchld(-1, 0, s);
		if (s->child > 0)
			event_base_dispatch(s->base);
		r = s->status;
	}
	event_free(sigchld);
	if (renew != NULL)
		event_free(renew);
	return r;
}

int
session_run(struct config *cfg, const char *self)
{
	struct session	s;
	char		err[1024];
	int		r = 125;

	memset(&s, 0, sizeof s);
	s.cfg = cfg;
	s.child = -1;
	s.early.pid = -1;
	s.iso.sock[0] = s.iso.sock[1] = -1;
	event_set_log_callback(on_libevent_log);
	child_signals_install();
	child_raise_nofile();
	if ((s.state = state_create()) == NULL) {
		log_error("cannot create a state directory in %s: %s",
		    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
		    strerror(errno));
		return 125;
	}
	/* COMMAND's child makes its namespaces while the proxy starts. */
	if (cfg->isolate && (isolate_init(&s.iso) != 0 ||
	    child_fork_early(&s.early, cfg->command, isolate_prep,
	    &s.iso) != 0))
		s.early_errno = errno;
	if ((s.base = event_base_new()) == NULL) {
		log_error("cannot create the event loop");
		goto out;
	}
	if ((s.secrets = secrets_new(cfg->secrets.v, cfg->secrets.n, environ,
	    err, sizeof err)) == NULL) {
		log_error("%s", err);
		goto out;
	}
	if (cfg->via != NULL)	/* the registration takes the values */
		s.via = via_new(cfg, environ);
	/* Inline values now live in the bindings only. */
	config_wipe_secrets(cfg);
	s.upstream = upstream_new(cfg, environ, err, sizeof err);
	if (s.upstream == NULL && err[0] != '\0') {
		log_error("%s", err);
		goto out;
	}
	if ((s.gateways = gateways_new(cfg->gateways.v, cfg->gateways.n, err,
	    sizeof err)) == NULL) {
		log_error("%s", err);
		goto out;
	}
	if (parse_host_ports(&s, err, sizeof err) != 0) {
		log_error("%s", err);
		goto out;
	}
	if (start_proxy(&s) != 0 || plan_isolation(&s) != 0 ||
	    build_trust(&s) != 0)
		goto out;
	if (child_signal_pending()) {
		r = 128 + child_signal_pending();
		goto out;
	}
	build_env(&s, self);
	scrub_own_environment(&s);
	if (cfg->print_env) {
		bouquet_print(&s.bouquet, stdout);
		r = fflush(stdout) == 0 ? 0 : 125;
		goto out;
	}
	r = run_child(&s);
out:
	abandon_isolation(&s);	/* stopped before COMMAND started */
	via_free(s.via);
	control_stop(s.ctl);
	server_stop(s.srv);
	secrets_free(s.secrets);
	upstream_free(s.upstream);
	gateways_free(s.gateways);
	external_stop(s.ext);
	bouquet_free(&s.bouquet);
	trust_files_free(&s.trust);
	state_remove(s.state);
	if (s.base != NULL)
		event_base_free(s.base);
	return r;
}
