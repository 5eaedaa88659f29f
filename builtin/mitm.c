/*
 * Interception: the CA and TLS contexts for the run, the client-facing TLS
 * server of an intercepted tunnel (an OpenSSL filter over the client's
 * bufferevent, so bytes the client sent early are not lost), and the
 * verifying TLS client towards the origin. Everything after the handshake
 * is the ordinary HTTP path in conn.c and http_fwd.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "builtin/account.h"
#include "builtin/certs.h"
#include "builtin/mitm.h"
#include "builtin/policy.h"
#include "builtin/sandbox.h"
#include "builtin/secrets.h"
#include "builtin/proxy.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "launcher/config.h"

struct mitm {
	struct certs	*certs;		/* NULL: nothing is intercepted */
	SSL_CTX		*server_ctx;
	SSL_CTX		*client_ctx;	/* made on first use: loading the
					   system roots costs ~25 ms */
	bool		 client;	/* origin legs may be needed */
	char		*upstream_ca;
	struct policy	*nomitm;	/* --no-mitm, as allow patterns */
	size_t		 nnomitm;
};

struct mitm *
mitm_new(const struct config *cfg, bool needed, bool client,
    const char *ca_path, char *err, size_t errlen)
{
	struct mitm	*m = xcalloc(1, sizeof *m);
	char		 perr[256];

	err[0] = '\0';
	m->nomitm = policy_new();
	for (size_t i = 0; i < cfg->no_mitm.n; i++) {
		if (policy_allow(m->nomitm, cfg->no_mitm.v[i], perr,
		    sizeof perr) != 0) {
			snprintf(err, errlen, "--no-mitm: %s", perr);
			goto fail;
		}
		m->nnomitm++;
	}
	/* A CA given explicitly is checked even if nothing needs it yet. */
	if (needed || cfg->ca_cert != NULL) {
		if ((m->certs = certs_new(cfg->ca_cert, cfg->ca_key, err,
		    errlen)) == NULL)
			goto fail;
		if (certs_write_ca(m->certs, ca_path, err, errlen) != 0)
			goto fail;
	}
	/* Origin legs: interception, and gateways to https:// URLs. The
	 * --upstream-ca file is checked now; the context is made when the
	 * first origin needs it. */
	m->client = needed || client;
	if (cfg->upstream_ca != NULL) {
		if (access(cfg->upstream_ca, R_OK) != 0) {
			snprintf(err, errlen, "cannot read --upstream-ca '%s': "
			    "%s", cfg->upstream_ca, strerror(errno));
			goto fail;
		}
		m->upstream_ca = xstrdup(cfg->upstream_ca);
	}
	return m;
fail:
	mitm_free(m);
	return NULL;
}

void
mitm_free(struct mitm *m)
{
	if (m == NULL)
		return;
	SSL_CTX_free(m->server_ctx);
	SSL_CTX_free(m->client_ctx);
	free(m->upstream_ca);
	certs_free(m->certs);
	policy_free(m->nomitm);
	free(m);
}

bool
mitm_wanted(const struct server *srv, const struct sandbox *sb,
    const struct dest *d)
{
	return srv->mitm != NULL && srv->mitm->certs != NULL &&
	    sandbox_intercepts(srv, sb, d) && !mitm_excluded(srv->mitm, d);
}

bool
mitm_excluded(const struct mitm *m, const struct dest *d)
{
	struct verdict v;

	if (m == NULL || m->nnomitm == 0)
		return false;
	policy_check_dest(m->nomitm, d, &v);
	return v.allow;
}

void
mitm_start(struct conn *c, const void *hello, size_t len)
{
	struct mitm		*m = c->srv->mitm;
	struct bufferevent	*filter;
	SSL			*ssl = NULL;

	evbuffer_add(bufferevent_get_output(c->client), hello, len);
	if (m->server_ctx == NULL)	/* the first client intercepted */
		m->server_ctx = certs_server_ctx(m->certs);
	if (m->server_ctx == NULL || (ssl = SSL_new(m->server_ctx)) == NULL ||
	    certs_ssl_set_leaf(m->certs, ssl, c->req.dest.host) != 0) {
		char e[256];
		certs_tls_errors(e, sizeof e);
		SSL_free(ssl);
		conn_close(c, e);
		return;
	}
	/* The filter hands its records to the plain bufferevent and stops
	 * only at that one's write high watermark: without one, a client
	 * that reads slowly makes us hold the whole response. */
	bufferevent_setwatermark(c->client, EV_WRITE, PROXY_HIGH_WATER / 2,
	    PROXY_HIGH_WATER);
	/* The filter owns the plain bufferevent (which does not own the
	 * descriptor: conn closes that). */
	filter = bufferevent_openssl_filter_new(c->srv->base, c->client, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	c->mitm = true;
	c->tunnel_dest = c->req.dest;
	c->tunnel_door = c->req.door;
	c->state = CONN_TLS;
	conn_set_client(c, filter);
}

/* The client finished (or failed) its TLS handshake with us. */
void
mitm_client_ready(struct conn *c)
{
	SSL *ssl = bufferevent_openssl_get_ssl(c->client);

	c->sni_mismatch = !certs_ssl_sni_matches(ssl, c->tunnel_dest.host);
	log_debug("conn %llu: intercepting %s port %u%s",
	    (unsigned long long)c->id, c->tunnel_dest.host,
	    c->tunnel_dest.port, c->sni_mismatch ? " (SNI mismatch)" : "");
}

void
mitm_client_failed(struct conn *c)
{
	char e[256], why[384];

	certs_tls_errors(e, sizeof e);
	snprintf(why, sizeof why, "TLS handshake with the client failed "
	    "(does it trust egress-run's CA?): %s", e);
	/* Audited as an error of the tunnel's CONNECT. */
	c->in_request = true;
	c->req.status = 0;
	conn_close(c, why);
}

struct bufferevent *
mitm_origin(struct server *srv, int fd, const struct dest *d)
{
	struct mitm		*m = srv->mitm;
	struct bufferevent	*bev;
	SSL			*ssl = NULL;

	if (m->client_ctx == NULL && m->client) {
		char err[256];

		if ((m->client_ctx = certs_client_ctx(m->certs,
		    m->upstream_ca, err, sizeof err)) == NULL) {
			log_warn("%s", err);
			return NULL;
		}
	}
	if (m->client_ctx == NULL ||
	    (ssl = SSL_new(m->client_ctx)) == NULL ||
	    certs_ssl_client_setup(ssl, d->host) != 0) {
		SSL_free(ssl);
		return NULL;
	}
	bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev != NULL)
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

struct bufferevent *
mitm_client(struct server *srv, int fd, const struct dest *d)
{
	srv->mitm->client = true;
	return mitm_origin(srv, fd, d);
}

void
mitm_origin_error(struct bufferevent *bev, char *buf, size_t len)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	const char	*v = ssl ? certs_verify_error(ssl) : NULL;
	char		 e[256];

	certs_tls_errors(e, sizeof e);
	if (v != NULL)
		snprintf(buf, len, "the origin's certificate did not verify: "
		    "%s", v);
	else
		snprintf(buf, len, "TLS with the origin failed: %s", e);
}
