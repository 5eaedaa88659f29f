/*
 * The built-in proxy's listener and its shared context: policy from the
 * configuration, the resolver, the audit log, the connection list. Accept
 * never busy-loops: at the connection limit a client gets a polite 503; out
 * of descriptors, a reserved one is freed to answer, and accepting pauses
 * briefly.
 */
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <event2/dns.h>
#include <event2/event.h>

#include "builtin/account.h"
#include "builtin/audit.h"
#include "builtin/hooks.h"
#include "builtin/http_fwd.h"
#include "builtin/metrics.h"
#include "builtin/mitm.h"
#include "builtin/sandbox.h"
#include "builtin/secrets.h"
#include "builtin/gateway.h"
#include "builtin/gitguard.h"
#include "builtin/peer.h"
#include "builtin/policy.h"
#include "builtin/proxy.h"
#include "builtin/server.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "launcher/config.h"
#include "upstream/upstream.h"


#define ACCEPT_BURST		64
#define ACCEPT_PAUSE_MS		100

long long
server_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
	struct server	*srv = arg;
	struct conn	*c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->dead)) != NULL) {
		TAILQ_REMOVE(&srv->dead, c, entry);
		conn_free(c);
	}
}

void
server_conn_dead(struct server *srv, struct conn *c)
{
	TAILQ_INSERT_TAIL(&srv->dead, c, entry);
	event_active(srv->reap_ev, EV_TIMEOUT, 0);
}

/* Best effort, on a fresh socket: the answer fits its send buffer. */
static void
refuse(int fd, int status, const char *reason)
{
	char	buf[320];
	int	n;

	n = snprintf(buf, sizeof buf, "HTTP/1.1 %d %s\r\n"
	    "X-Egress-Run-Reason: %s\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", status, status == 403 ?
	    "Forbidden" : "Service Unavailable", reason);
	(void)!write(fd, buf, (size_t)n);
	close(fd);
}

/*
 * A loopback proxy serves its own user (and root) only: another local
 * account must not borrow its secrets or policy. Returns false to refuse.
 */
static bool
same_user(struct listener *l, int fd)
{
	static bool	 warned;
	uid_t		 uid;

	if (!l->check_owner)
		return true;
	if (peer_uid(fd, &uid) != 0) {
		if (!warned)
			log_info("cannot tell which user connects to the "
			    "proxy (%s): not checking", strerror(errno));
		warned = true;
		return true;
	}
	return uid == geteuid() || uid == 0;
}

static void
on_accept_timer(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < srv->nlisteners; i++)
		event_add(srv->listeners[i].ev, NULL);
}

/* Out of descriptors: free the reserve to refuse one, then pause. */
static void
out_of_fds(struct listener *l)
{
	static long long	 warned;
	struct server		*srv = l->srv;
	struct timeval		 tv = { 0, ACCEPT_PAUSE_MS * 1000 };
	int			 fd;

	if (srv->reserve_fd != -1) {
		close(srv->reserve_fd);
		fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd != -1)
			refuse(fd, 503, "the proxy is out of file "
			    "descriptors");
		srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	}
	if (server_now_ms() - warned > 5000) {
		log_warn("out of file descriptors (%u connections open): "
		    "refusing new ones for now; raise 'ulimit -n'",
		    srv->nconns);
		warned = server_now_ms();
	}
	for (size_t i = 0; i < srv->nlisteners; i++)
		event_del(srv->listeners[i].ev);
	evtimer_add(srv->accept_timer, &tv);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct listener		*l = arg;
	struct server		*srv = l->srv;
	struct sockaddr_storage	 ss;
	socklen_t		 len;
	int			 fd, one = 1;
	struct conn		*c;

	(void)what;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		len = sizeof ss;
		fd = accept4(lfd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				out_of_fds(l);
			return;
		}
		if (srv->nconns >= srv->max_conns) {
			refuse(fd, 503, "connection limit reached "
			    "(--max-conns)");
			continue;
		}
		if (!same_user(l, fd)) {
			refuse(fd, 403, "this proxy serves only the user who "
			    "started it");
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		c = conn_new(srv, fd, (struct sockaddr *)&ss, len);
		if (l->forward_to != 0)
			conn_forward(c, l->forward_to);
	}
}

/* Accept on fd (listening, non-blocking): the proxy itself, or a
 * forward to a port of this host's loopback. */
static void
add_listener(struct server *srv, int fd, bool check_owner,
    uint16_t forward_to)
{
	struct listener *l;

	if (srv->nlisteners == SERVER_MAX_LISTENERS) {
		close(fd);
		return;
	}
	l = &srv->listeners[srv->nlisteners++];
	l->srv = srv;
	l->fd = fd;
	l->check_owner = check_owner;
	l->forward_to = forward_to;
	if (check_owner)
		peer_open();	/* one netlink socket for every accept */
	(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	l->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST, on_accept, l);
	event_add(l->ev, NULL);
}

void
server_adopt(struct server *srv, int fd)
{
	/* Only COMMAND's own namespace can reach it: no user check. */
	add_listener(srv, fd, false, 0);
}

void
server_forward(struct server *srv, int fd, uint16_t port)
{
	add_listener(srv, fd, false, port);
}

/* This host's own addresses are guarded like loopback (SPEC §5). */
void
server_local_addrs(struct policy *p)
{
	struct ifaddrs *ifa, *i;

	if (getifaddrs(&ifa) == -1)
		return;
	for (i = ifa; i != NULL; i = i->ifa_next)
		if (i->ifa_addr != NULL && (i->ifa_addr->sa_family == AF_INET ||
		    i->ifa_addr->sa_family == AF_INET6))
			policy_add_local(p, i->ifa_addr);
	freeifaddrs(ifa);
}

static int
open_listener(struct server *srv, const char *listen_spec, char *err,
    size_t errlen, bool *fatal, bool *owner_only)
{
	struct addrinfo	 hints, *res = NULL;
	char		*host = NULL, port[8];
	unsigned	 p;
	socklen_t	 len = sizeof srv->laddr;
	int		 fd = -1, one = 1, e;

	if (util_hostport(listen_spec, &host, &p, true) != 0) {
		snprintf(err, errlen, "--listen '%s' is not ADDR:PORT (e.g. "
		    "127.0.0.1:8080)", listen_spec);
		*fatal = true;
		return -1;
	}
	memset(&hints, 0, sizeof hints);
	hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%u", p);
	if ((e = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "--listen '%s': '%s' is not an IP "
		    "address", listen_spec, host);
		*fatal = true;
		free(host);
		return -1;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 1024) == -1 ||
	    getsockname(fd, (struct sockaddr *)&srv->laddr, &len) == -1) {
		snprintf(err, errlen, "cannot listen on %s: %s", listen_spec,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		freeaddrinfo(res);
		free(host);
		return -1;
	}
	freeaddrinfo(res);
	free(host);
	srv->lfd = fd;
	/* On loopback the kernel can tell who connects: check it. */
	*owner_only = (srv->laddr.ss_family == AF_INET &&
	    (ntohl(((struct sockaddr_in *)&srv->laddr)->sin_addr.s_addr) >> 24)
	    == 127) || (srv->laddr.ss_family == AF_INET6 &&
	    IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)&srv->laddr)->
	    sin6_addr));
	srv->port = ntohs(srv->laddr.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&srv->laddr)->sin_port :
	    ((struct sockaddr_in6 *)&srv->laddr)->sin6_port);
	/* What clients dial: a wildcard listener is reached on loopback. */
	if (srv->laddr.ss_family == AF_INET &&
	    ((struct sockaddr_in *)&srv->laddr)->sin_addr.s_addr == INADDR_ANY)
		snprintf(srv->host, sizeof srv->host, "127.0.0.1");
	else if (srv->laddr.ss_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(
	    &((struct sockaddr_in6 *)&srv->laddr)->sin6_addr))
		snprintf(srv->host, sizeof srv->host, "::1");
	else
		addr_ntop((struct sockaddr *)&srv->laddr, srv->host,
		    sizeof srv->host);
	return 0;
}

/*
 * The interception CA and TLS contexts: for secret bindings, LLM hosts
 * (accounting reads their requests and responses), hosts that rules or the
 * git guard name, and always for many sandboxes (a registration may ask for
 * any of these).
 */
static int
setup_mitm(struct server *srv, const struct config *cfg,
    const struct secrets *secrets, const char *state_dir, char *err,
    size_t errlen)
{
	char	*ca = NULL;
	bool	 needed;
	int	 r = -1;

	needed = srv->sandboxes != NULL || secrets_count(secrets) > 0 ||
	    !cfg->no_llm || cfg->rules.n > 0 || cfg->presets.n > 0 ||
	    cfg->git_repos.n > 0;
	ca = xprintf("%s/egress-run-ca.pem", state_dir);
	if ((srv->mitm = mitm_new(cfg, needed, gateways_count(srv->gateways) >
	    0, ca, err, errlen)) == NULL)
		goto out;
	if (needed || cfg->ca_cert != NULL)
		srv->ca_file = xstrdup(ca);
	for (size_t i = 0; i < secrets_count(secrets); i++) {
		const char	*h = secrets_host(secrets, i);
		struct dest	 d;

		if (addr_parse_host(h, strlen(h), &d) == ADDR_OK &&
		    mitm_excluded(srv->mitm, &d))
			log_warn("--secret %s: %s is --no-mitm, so the secret "
			    "is injected only into plain-HTTP requests",
			    secrets_name(secrets, i), h);
	}
	r = 0;
out:
	free(ca);
	return r;
}

struct server *
server_start(struct event_base *base, const struct config *cfg,
    const struct server_parts *parts, const char *state_dir, char *err,
    size_t errlen, bool *fatal)
{
	struct server	*srv = xcalloc(1, sizeof *srv);
	bool		 owner_only = false;

	srv->upstream = parts->upstream;
	srv->gateways = parts->gateways;
	*fatal = false;
	srv->base = base;
	srv->cfg = cfg;
	srv->lfd = -1;
	srv->reserve_fd = -1;
	srv->max_conns = cfg->max_conns;
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->dead);
	TAILQ_INIT(&srv->pool);
	if (parts->multi) {
		srv->sandboxes = xcalloc(1, sizeof *srv->sandboxes);
		TAILQ_INIT(srv->sandboxes);
		srv->multi = true;
	}
	if ((srv->account = account_new(cfg, err, errlen)) == NULL ||
	    setup_mitm(srv, cfg, parts->secrets, state_dir, err, errlen) != 0) {
		*fatal = true;
		goto fail;
	}
	/* The run's own sandbox (none for the daemon: registrations). */
	if (!parts->daemon) {
		if ((srv->sb = sandbox_new(srv, "default", cfg, parts->secrets,
		    NULL, NULL, err, errlen)) == NULL) {
			*fatal = true;
			goto fail;
		}
		if (srv->sandboxes != NULL)
			sandbox_register(srv, sandbox_ref(srv->sb));
	}
	if (cfg->audit != NULL &&
	    (srv->audit = audit_open(base, cfg->audit)) == NULL) {
		snprintf(err, errlen, "cannot open the audit log '%s': %s",
		    cfg->audit, strerror(errno));
		*fatal = true;
		goto fail;
	}
	if ((srv->hooks = hooks_new(cfg, base, srv, err, errlen)) == NULL) {
		*fatal = true;
		goto fail;
	}
	if (open_listener(srv, cfg->listen ? cfg->listen : "127.0.0.1:0", err,
	    errlen, fatal, &owner_only) != 0)
		goto fail;
	if (upstream_check(srv->upstream, 1000) != 0 && cfg->fail_closed) {
		snprintf(err, errlen, "the upstream proxy does not accept "
		    "connections");
		goto fail;
	}
	if (srv->sb != NULL)
		policy_set_self(srv->sb->policy, (struct sockaddr *)&srv->laddr);

	srv->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE);
	if (srv->dns == NULL) {
		snprintf(err, errlen, "cannot set up the resolver");
		goto fail;
	}
	evdns_base_set_option(srv->dns, "timeout:", "3");
	evdns_base_set_option(srv->dns, "attempts:", "2");
	evdns_base_set_option(srv->dns, "randomize-case:", "0");
	if (cfg->metrics != NULL && (srv->metrics = metrics_start(srv,
	    cfg->metrics, cfg->fail_closed, err, errlen, fatal)) == NULL)
		goto fail;

	srv->reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	http_fwd_pool_init(srv);
	srv->reap_ev = event_new(base, -1, 0, on_reap, srv);
	srv->accept_timer = evtimer_new(base, on_accept_timer, srv);
	add_listener(srv, srv->lfd, owner_only, 0);
	if (srv->sb != NULL && !policy_has_allow(srv->sb->policy))
		log_warn("notice: no --allow pattern given: every destination "
		    "that is not denied is allowed");
	log_info("built-in proxy listening on %s port %u", srv->host,
	    srv->port);
	return srv;
fail:
	server_stop(srv);
	return NULL;
}

int
server_git_env(const struct server *srv, char *const *env,
    struct strlist *out, char *err, size_t errlen)
{
	if (srv->sb == NULL || srv->sb->git == NULL)
		return 0;
	return gitguard_git_env(srv->sb->git, env, out, err, errlen);
}

const char *
server_ca_file(const struct server *srv)
{
	return srv->ca_file;
}

const char *
server_host(const struct server *srv)
{
	return srv->host;
}

unsigned
server_port(const struct server *srv)
{
	return srv->port;
}

void
server_stop(struct server *srv)
{
	struct conn	*c;
	struct stats	*st;

	if (srv == NULL)
		return;
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		conn_close(c, "egress-run is shutting down");
	if (srv->reap_ev != NULL)
		on_reap(-1, 0, srv);
	http_fwd_pool_flush(srv);
	/* Webhook events still queued get a bounded wait, on the loop;
	 * nothing new is accepted meanwhile. */
	metrics_free(srv->metrics);
	srv->metrics = NULL;
	for (size_t i = 0; i < srv->nlisteners; i++)
		event_del(srv->listeners[i].ev);
	hooks_flush(srv->hooks, HOOKS_FLUSH_MS);
	hooks_free(srv->hooks);
	srv->hooks = NULL;
	st = &srv->stats;
	if (srv->lfd != -1)
		log_info("built-in proxy: %llu connections, %llu requests, "
		    "%llu tunnels, %llu forwards, %llu denied, %llu errors, "
		    "%llu bytes up, %llu bytes down",
		    (unsigned long long)st->conns,
		    (unsigned long long)st->requests,
		    (unsigned long long)st->tunnels,
		    (unsigned long long)st->forwards,
		    (unsigned long long)st->denied,
		    (unsigned long long)st->errors,
		    (unsigned long long)st->bytes_up,
		    (unsigned long long)st->bytes_down);
	if (srv->sb != NULL)
		account_summary(srv->sb->llm, srv->cfg->llm_summary ||
		    log_enabled(LOG_INFO));
	account_free(srv->account);
	audit_close(srv->audit);
	if (srv->dns != NULL)
		evdns_base_free(srv->dns, 0);
	if (srv->sandboxes != NULL) {
		struct sandbox *sb;

		while ((sb = TAILQ_FIRST(srv->sandboxes)) != NULL)
			sandbox_drop(srv, sb, NULL);
		free(srv->sandboxes);
	}
	sandbox_unref(srv->sb);
	mitm_free(srv->mitm);
	free(srv->ca_file);
	for (size_t i = 0; i < srv->nlisteners; i++) {
		event_free(srv->listeners[i].ev);
		if (srv->listeners[i].fd != srv->lfd)
			close(srv->listeners[i].fd);
	}
	if (srv->accept_timer != NULL)
		event_free(srv->accept_timer);
	if (srv->reap_ev != NULL)
		event_free(srv->reap_ev);
	if (srv->lfd != -1)
		close(srv->lfd);
	if (srv->reserve_fd != -1)
		close(srv->reserve_fd);
	free(srv);
}
