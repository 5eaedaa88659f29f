/*
 * The daemon: config -> upstream, gateways -> the proxy (no sandbox of its
 * own) -> the control API; then the loop until a signal to stop.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "builtin/gateway.h"
#include "builtin/server.h"
#include "common/log.h"
#include "daemon/control.h"
#include "launcher/child.h"
#include "launcher/config.h"
#include "launcher/serve.h"
#include "launcher/state.h"
#include "upstream/upstream.h"

extern char **environ;

static void
on_stop(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("signal %d: stopping", (int)sig);
	event_base_loopexit(arg, NULL);
}

int
serve_run(struct config *cfg)
{
	struct server_parts	 parts = { .multi = true, .daemon = true };
	struct event_base	*base = NULL;
	struct state		*state = NULL;
	struct server		*srv = NULL;
	struct control		*ctl = NULL;
	struct event		*sig[3] = { NULL, NULL, NULL };
	static const int	 sigs[3] = { SIGINT, SIGTERM, SIGHUP };
	char			 err[1024];
	bool			 fatal;
	int			 r = 125;

	signal(SIGPIPE, SIG_IGN);
	child_raise_nofile();
	if ((state = state_create()) == NULL) {
		log_error("cannot create a state directory: %s",
		    strerror(errno));
		return 125;
	}
	if ((base = event_base_new()) == NULL) {
		log_error("cannot create the event loop");
		goto out;
	}
	parts.upstream = upstream_new(cfg, environ, err, sizeof err);
	if (parts.upstream == NULL && err[0] != '\0') {
		log_error("%s", err);
		goto out;
	}
	if ((parts.gateways = gateways_new(cfg->gateways.v, cfg->gateways.n,
	    err, sizeof err)) == NULL) {
		log_error("%s", err);
		goto out;
	}
	if ((srv = server_start(base, cfg, &parts, state_dir(state), err,
	    sizeof err, &fatal)) == NULL) {
		log_error("%s", err);
		goto out;
	}
	if ((ctl = control_start(base, srv, cfg->control, err,
	    sizeof err)) == NULL) {
		log_error("%s", err);
		goto out;
	}
	for (size_t i = 0; i < 3; i++) {
		sig[i] = evsignal_new(base, sigs[i], on_stop, base);
		event_add(sig[i], NULL);
	}
	/* Where it listens, for whoever started it (--listen ...:0). */
	printf(strchr(server_host(srv), ':') ? "http://[%s]:%u\n" :
	    "http://%s:%u\n", server_host(srv), server_port(srv));
	fflush(stdout);
	event_base_dispatch(base);
	r = 0;
out:
	for (size_t i = 0; i < 3; i++)
		if (sig[i] != NULL)
			event_free(sig[i]);
	control_stop(ctl);
	server_stop(srv);
	gateways_free(parts.gateways);
	upstream_free(parts.upstream);
	state_remove(state);
	if (base != NULL)
		event_base_free(base);
	return r;
}
