/*
 * SOCKS5 handshake as an explicit state machine over the client's input:
 * GREETING -> (AUTH) -> REQUEST -> dialing -> tunnel. Every message goes
 * through socks5_parse; replies use the codes as RFC 1928 means them
 * (0x02 for policy, 0x03/0x04/0x05 for unreachable network, host and
 * refusal, 0x07 for BIND and UDP ASSOCIATE, 0x08 for an unknown address
 * type).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include <openssl/crypto.h>

#include "builtin/dial.h"
#include "builtin/mitm.h"
#include "builtin/sandbox.h"
#include "builtin/policy.h"
#include "builtin/proxy.h"
#include "builtin/tunnel.h"
#include "common/log.h"
#include "socks5/socks5.h"
#include "socks5/socks5_parse.h"

enum socks_state {
	SOCKS_GREETING,
	SOCKS_AUTH,
	SOCKS_REQUEST,
	SOCKS_DIAL,
};

static void
send_bytes(struct conn *c, const uint8_t *buf, int len)
{
	if (len > 0)
		evbuffer_add(bufferevent_get_output(c->client), buf,
		    (size_t)len);
}

/* Refuse with a reply code, audit, and close once it is delivered. */
static void
refuse(struct conn *c, uint8_t rep, int status, const char *reason,
    const char *rule)
{
	uint8_t reply[SOCKS5_REPLY_MAX];

	send_bytes(c, reply, socks5_build_reply(reply, sizeof reply, rep,
	    NULL));
	c->req.status = status;
	if (rule != NULL)
		c->req.rule = rule;
	if (rep == SOCKS5_REP_NOT_ALLOWED) {
		c->srv->stats.denied++;
		if (c->sb != NULL)
			c->sb->n->denials++;
		conn_audit(c, "deny", "deny", reason);
	} else {
		c->srv->stats.errors++;
		conn_audit(c, "error", c->req.rule ? "allow" : NULL, reason);
	}
	log_info("conn %llu: socks5 %s: %s", (unsigned long long)c->id,
	    c->req.dest.host[0] ? c->req.dest.host : "-", reason);
	conn_finish(c);
}

/* A handshake that is not SOCKS5 as we speak it: just close. */
static void
abandon(struct conn *c, const char *why)
{
	c->srv->stats.errors++;
	conn_audit(c, "error", NULL, why);
	c->in_request = false;
	conn_finish(c);
}

static uint8_t
reply_for(const struct dial_result *res)
{
	switch (res->err) {
	case EACCES:
		return SOCKS5_REP_NOT_ALLOWED;
	case ECONNREFUSED:
		return SOCKS5_REP_REFUSED;
	case ENETUNREACH:
		return SOCKS5_REP_NET_UNREACH;
	case EPROTO:		/* the upstream proxy said no */
		return SOCKS5_REP_FAILURE;
	case ETIMEDOUT:
	case EHOSTUNREACH:
	default:
		return SOCKS5_REP_HOST_UNREACH;
	}
}

static void
tunnel_done(struct conn *c, const char *why)
{
	conn_close(c, why);	/* audits the tunnel with its byte counts */
}

static void
dialed(int ofd, const struct dial_result *res, void *arg)
{
	struct conn		*c = arg;
	struct sockaddr_storage	 bound;
	socklen_t		 blen = sizeof bound;
	struct evbuffer		*in;
	uint8_t			 reply[SOCKS5_REPLY_MAX +
				    sizeof res->leftover];
	int			 n;

	c->dial = NULL;
	c->req.via = res->via;
	if (ofd == -1) {
		refuse(c, reply_for(res), res->status, res->reason, res->rule);
		return;
	}
	if (getsockname(ofd, (struct sockaddr *)&bound, &blen) != 0)
		memset(&bound, 0, sizeof bound);
	n = socks5_build_reply(reply, sizeof reply, SOCKS5_REP_SUCCEEDED,
	    (struct sockaddr *)&bound);
	c->req.status = 200;
	memcpy(reply + n, res->leftover, res->leftover_len);
	n += (int)res->leftover_len;
	in = bufferevent_get_input(c->client);
	c->tunnel = tunnel_start(c, c->fd, ofd, reply, (size_t)n,
	    evbuffer_pullup(in, -1), evbuffer_get_length(in), tunnel_done);
	if (c->tunnel == NULL && (errno == EMFILE || errno == ENFILE)) {
		refuse(c, SOCKS5_REP_FAILURE, 503, "the proxy is out of file "
		    "descriptors for the tunnel; raise 'ulimit -n'", NULL);
		return;
	}
	bufferevent_free(c->client);
	c->client = NULL;
	if (c->tunnel == NULL) {
		conn_close(c, "cannot start the tunnel");
		return;
	}
	c->state = CONN_TUNNEL;
}

/* The destination as the request gives it: by address or by name. */
static int
request_dest(const struct socks5_request *r, struct dest *d)
{
	int e;

	memset(d, 0, sizeof *d);
	switch (r->dst.atyp) {
	case SOCKS5_ATYP_IPV4: {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		sin.sin_addr = r->dst.v4;
		d->kind = ADDR_IPV4;
		d->v4 = r->dst.v4;
		addr_ntop((struct sockaddr *)&sin, d->host, sizeof d->host);
		break;
	}
	case SOCKS5_ATYP_IPV6: {
		struct sockaddr_in6 sin6 = { .sin6_family = AF_INET6 };
		sin6.sin6_addr = r->dst.v6;
		d->kind = ADDR_IPV6;
		d->v6 = r->dst.v6;
		addr_ntop((struct sockaddr *)&sin6, d->host, sizeof d->host);
		break;
	}
	default:
		if ((e = addr_parse_host(r->dst.name, r->dst.namelen, d)) !=
		    ADDR_OK)
			return e;
		break;
	}
	d->port = r->dst.port;
	return ADDR_OK;
}

static void
handle_request(struct conn *c, const struct socks5_request *r, size_t n)
{
	struct verdict	 v;
	const char	*why;
	int		 e, st;

	/* The name points into the input: copy it, then consume the
	 * request, before anything takes over the connection. */
	e = request_dest(r, &c->req.dest);
	evbuffer_drain(bufferevent_get_input(c->client), n);
	if ((st = sandbox_attribute(c, NULL, NULL, 0, &why)) != 0) {
		refuse(c, SOCKS5_REP_NOT_ALLOWED, st, why, NULL);
		return;
	}
	c->sb->n->requests++;

	if (r->cmd != SOCKS5_CMD_CONNECT) {
		refuse(c, SOCKS5_REP_CMD_UNSUPP, 501, r->cmd == SOCKS5_CMD_BIND ?
		    "BIND is not supported" : "UDP ASSOCIATE is not supported",
		    NULL);
		return;
	}
	if (e != ADDR_OK) {
		refuse(c, SOCKS5_REP_HOST_UNREACH, 400, addr_strerror(e), NULL);
		return;
	}
	policy_check_dest(c->sb->policy, &c->req.dest, &v);
	if (!v.allow) {
		refuse(c, SOCKS5_REP_NOT_ALLOWED, 403, v.reason, v.rule);
		return;
	}
	c->req.rule = v.rule;
	if ((why = sandbox_tunnel_refusal(c->sb, &c->req.dest)) != NULL) {
		refuse(c, SOCKS5_REP_NOT_ALLOWED, 403, why, "git-ssh");
		return;
	}
	evtimer_del(c->timer);
	if (mitm_wanted(c->srv, c->sb, &c->req.dest)) {
		/* A bound host: answer success, then TLS as that host. */
		uint8_t	reply[SOCKS5_REPLY_MAX];
		int	len = socks5_build_reply(reply, sizeof reply,
			    SOCKS5_REP_SUCCEEDED, NULL);

		c->socks_state = SOCKS_DIAL;
		conn_intercept(c, reply, (size_t)len);
		return;
	}
	c->state = CONN_DIAL;
	c->socks_state = SOCKS_DIAL;
	/* Still read (to the watermark) so that a reset is noticed. */
	c->dial = dial_start(c->srv, c->sb->policy, &c->req.dest, DIAL_STREAM,
	    dialed, c);
}


void
socks5_read(struct conn *c)
{
	struct evbuffer		*in = bufferevent_get_input(c->client);
	struct socks5_greeting	 g;
	struct socks5_auth	 a;
	struct socks5_request	 r;
	uint8_t			 out[4];
	const uint8_t		*data;
	size_t			 len;
	int			 n;
	/* The daemon takes proxy credentials (a sandbox's ID and token)
	 * when the client has them; a source address may do instead. */
	bool			 creds = false;

	while (c->state == CONN_SOCKS && (len = evbuffer_get_length(in)) > 0) {
		if (len > SOCKS5_AUTH_MAX)
			len = SOCKS5_AUTH_MAX;
		data = evbuffer_pullup(in, (ssize_t)len);
		switch (c->socks_state) {
		case SOCKS_GREETING:
			if ((n = socks5_parse_greeting(data, len, &g)) ==
			    SOCKS5_NEED_MORE)
				return;
			if (n < 0) {
				abandon(c, socks5_strerror(n));
				return;
			}
			evbuffer_drain(in, (size_t)n);
			creds = g.userpass && c->srv->sandboxes != NULL &&
			    c->srv->sb == NULL;
			if (!creds && !g.none) {
				send_bytes(c, out, socks5_build_method_reply(
				    out, sizeof out, SOCKS5_METHOD_REFUSED));
				abandon(c, "the client offered no method we "
				    "accept");
				return;
			}
			send_bytes(c, out, socks5_build_method_reply(out,
			    sizeof out, creds ? SOCKS5_METHOD_USERPASS :
			    SOCKS5_METHOD_NONE));
			c->socks_state = creds ? SOCKS_AUTH : SOCKS_REQUEST;
			break;
		case SOCKS_AUTH:
			if ((n = socks5_parse_auth(data, len, &a)) ==
			    SOCKS5_NEED_MORE)
				return;
			if (n < 0) {
				abandon(c, socks5_strerror(n));
				return;
			}
			char user[256];
			const char *why = NULL;
			int st;

			memcpy(user, a.user, a.userlen);
			user[a.userlen] = '\0';
			st = sandbox_attribute(c, user, (const char *)a.pass,
			    a.passlen, &why);
			OPENSSL_cleanse((void *)data, (size_t)n);
			evbuffer_drain(in, (size_t)n);
			send_bytes(c, out, socks5_build_auth_reply(out,
			    sizeof out, st == 0 ? SOCKS5_AUTH_OK :
			    SOCKS5_AUTH_FAILED));
			if (st != 0) {
				c->req.status = st;
				abandon(c, why);
				return;
			}
			c->socks_state = SOCKS_REQUEST;
			break;
		case SOCKS_REQUEST:
			if ((n = socks5_parse_request(data, len, &r)) ==
			    SOCKS5_NEED_MORE)
				return;
			if (n == SOCKS5_E_COMMAND) {
				refuse(c, SOCKS5_REP_CMD_UNSUPP, 501,
				    socks5_strerror(n), NULL);
				return;
			}
			if (n == SOCKS5_E_ATYP) {
				refuse(c, SOCKS5_REP_ATYP_UNSUPP, 400,
				    socks5_strerror(n), NULL);
				return;
			}
			if (n < 0) {
				refuse(c, SOCKS5_REP_FAILURE, 400,
				    socks5_strerror(n), NULL);
				return;
			}
			handle_request(c, &r, (size_t)n);
			return;
		default:
			return;
		}
	}
}

void
socks5_start(struct conn *c)
{
	/* The head timer keeps running: it bounds the whole handshake. */
	c->state = CONN_SOCKS;
	c->socks_state = SOCKS_GREETING;
	c->in_request = true;
	c->req.door = "socks5";
	snprintf(c->req.method, sizeof c->req.method, "CONNECT");
	c->req.start_ms = server_now_ms();
	c->srv->stats.requests++;
	socks5_read(c);
}
