/*
 * SOCKS5 handshake messages, parsed and built without I/O or allocation.
 * The SOCKS door (socks5.c) and the upstream dialer (upstream.c) drive the
 * state machines; this file only knows the bytes.
 */
#include <string.h>

#include "socks5/socks5_parse.h"

/*
 * The one way wire bytes are read here: every read checks the bytes left
 * first, and running out is "need more", never an error.
 */
struct cur {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
};

static size_t
cur_left(const struct cur *c)
{
	return c->len - c->off;
}

static int
cur_u8(struct cur *c, uint8_t *v)
{
	if (cur_left(c) < 1)
		return SOCKS5_NEED_MORE;
	*v = c->p[c->off++];
	return 0;
}

static int
cur_u16(struct cur *c, uint16_t *v)
{
	if (cur_left(c) < 2)
		return SOCKS5_NEED_MORE;
	*v = (uint16_t)((c->p[c->off] << 8) | c->p[c->off + 1]);
	c->off += 2;
	return 0;
}

static int
cur_bytes(struct cur *c, size_t n, const uint8_t **v)
{
	if (cur_left(c) < n)
		return SOCKS5_NEED_MORE;
	*v = c->p + c->off;
	c->off += n;
	return 0;
}

/* A byte that may appear in a host name we pass on or accept. */
static int
name_byte_ok(uint8_t ch)
{
	return ch > 0x20 && ch != 0x7f;
}

/*
 * ATYP ADDR PORT. strict (requests): a name must be 1..255 plausible bytes,
 * and a bad byte is reported as soon as it has arrived. Replies are read
 * leniently: the caller has no use for BND.ADDR beyond logging it.
 */
static int
parse_addr(struct cur *c, struct socks5_addr *a, int strict)
{
	const uint8_t	*p;
	uint8_t		 n;
	size_t		 avail;
	int		 rv;

	if ((rv = cur_u8(c, &a->atyp)) != 0)
		return rv;
	switch (a->atyp) {
	case SOCKS5_ATYP_IPV4:
		if ((rv = cur_bytes(c, sizeof a->v4, &p)) != 0)
			return rv;
		memcpy(&a->v4, p, sizeof a->v4);
		break;
	case SOCKS5_ATYP_IPV6:
		if ((rv = cur_bytes(c, sizeof a->v6, &p)) != 0)
			return rv;
		memcpy(&a->v6, p, sizeof a->v6);
		break;
	case SOCKS5_ATYP_DOMAIN:
		if ((rv = cur_u8(c, &n)) != 0)
			return rv;
		if (strict && n == 0)
			return SOCKS5_E_DOMAIN;
		if (strict) {
			avail = cur_left(c) < n ? cur_left(c) : n;
			for (size_t i = 0; i < avail; i++)
				if (!name_byte_ok(c->p[c->off + i]))
					return SOCKS5_E_DOMAIN;
		}
		if ((rv = cur_bytes(c, n, &p)) != 0)
			return rv;
		a->name = (const char *)p;
		a->namelen = n;
		break;
	default:
		return SOCKS5_E_ATYP;
	}
	return cur_u16(c, &a->port);
}

int
socks5_parse_greeting(const uint8_t *buf, size_t len,
    struct socks5_greeting *g)
{
	struct cur	 c = { buf, len, 0 };
	uint8_t		 ver, n;
	int		 rv;

	memset(g, 0, sizeof *g);
	if ((rv = cur_u8(&c, &ver)) != 0)
		return rv;
	if (ver != SOCKS5_VERSION)
		return SOCKS5_E_VERSION;
	if ((rv = cur_u8(&c, &n)) != 0)
		return rv;
	if (n == 0)
		return SOCKS5_E_NMETHODS;
	if ((rv = cur_bytes(&c, n, &g->methods)) != 0) {
		g->methods = NULL;
		return rv;
	}
	g->nmethods = n;
	for (size_t i = 0; i < n; i++) {
		if (g->methods[i] == SOCKS5_METHOD_NONE)
			g->none = true;
		else if (g->methods[i] == SOCKS5_METHOD_USERPASS)
			g->userpass = true;
	}
	return (int)c.off;
}

int
socks5_parse_auth(const uint8_t *buf, size_t len, struct socks5_auth *a)
{
	struct cur	 c = { buf, len, 0 };
	const uint8_t	*p;
	uint8_t		 ver, n;
	int		 rv;

	memset(a, 0, sizeof *a);
	if ((rv = cur_u8(&c, &ver)) != 0)
		return rv;
	if (ver != SOCKS5_AUTH_VERSION)
		return SOCKS5_E_VERSION;
	if ((rv = cur_u8(&c, &n)) != 0)
		return rv;
	if (n == 0)
		return SOCKS5_E_AUTH;
	if ((rv = cur_bytes(&c, n, &p)) != 0)
		return rv;
	a->user = (const char *)p;
	a->userlen = n;
	if ((rv = cur_u8(&c, &n)) != 0 || (rv = cur_bytes(&c, n, &p)) != 0) {
		memset(a, 0, sizeof *a);
		return rv;
	}
	a->pass = (const char *)p;
	a->passlen = n;
	return (int)c.off;
}

int
socks5_parse_request(const uint8_t *buf, size_t len, struct socks5_request *r)
{
	struct cur	 c = { buf, len, 0 };
	uint8_t		 ver, rsv;
	int		 rv;

	memset(r, 0, sizeof *r);
	if ((rv = cur_u8(&c, &ver)) != 0)
		goto out;
	if (ver != SOCKS5_VERSION) {
		rv = SOCKS5_E_VERSION;
		goto out;
	}
	if ((rv = cur_u8(&c, &r->cmd)) != 0)
		goto out;
	if (r->cmd != SOCKS5_CMD_CONNECT && r->cmd != SOCKS5_CMD_BIND &&
	    r->cmd != SOCKS5_CMD_UDP) {
		rv = SOCKS5_E_COMMAND;
		goto out;
	}
	if ((rv = cur_u8(&c, &rsv)) != 0)
		goto out;
	if (rsv != 0) {
		rv = SOCKS5_E_RESERVED;
		goto out;
	}
	if ((rv = parse_addr(&c, &r->dst, 1)) != 0)
		goto out;
	if (r->dst.port == 0) {
		rv = SOCKS5_E_PORT;
		goto out;
	}
	return (int)c.off;
out:
	memset(r, 0, sizeof *r);
	return rv;
}

int
socks5_parse_method_reply(const uint8_t *buf, size_t len, uint8_t *method)
{
	*method = SOCKS5_METHOD_REFUSED;
	if (len < 1)
		return SOCKS5_NEED_MORE;
	if (buf[0] != SOCKS5_VERSION)
		return SOCKS5_E_VERSION;
	if (len < 2)
		return SOCKS5_NEED_MORE;
	*method = buf[1];
	return 2;
}

int
socks5_parse_auth_reply(const uint8_t *buf, size_t len, uint8_t *status)
{
	*status = SOCKS5_AUTH_FAILED;
	if (len < 1)
		return SOCKS5_NEED_MORE;
	if (buf[0] != SOCKS5_AUTH_VERSION && buf[0] != SOCKS5_VERSION)
		return SOCKS5_E_VERSION;
	if (len < 2)
		return SOCKS5_NEED_MORE;
	*status = buf[1];
	return 2;
}

int
socks5_parse_reply(const uint8_t *buf, size_t len, struct socks5_reply *r)
{
	struct cur	 c = { buf, len, 0 };
	uint8_t		 ver, rsv;
	int		 rv;

	memset(r, 0, sizeof *r);
	r->rep = SOCKS5_REP_FAILURE;
	if ((rv = cur_u8(&c, &ver)) != 0)
		goto out;
	if (ver != SOCKS5_VERSION) {
		rv = SOCKS5_E_VERSION;
		goto out;
	}
	if ((rv = cur_u8(&c, &r->rep)) != 0 ||
	    (rv = cur_u8(&c, &rsv)) != 0 ||
	    (rv = parse_addr(&c, &r->bnd, 0)) != 0)
		goto out;
	return (int)c.off;
out:
	memset(r, 0, sizeof *r);
	r->rep = SOCKS5_REP_FAILURE;
	return rv;
}

int
socks5_build_method_reply(uint8_t *out, size_t outlen, uint8_t method)
{
	if (outlen < 2)
		return SOCKS5_E_SPACE;
	out[0] = SOCKS5_VERSION;
	out[1] = method;
	return 2;
}

int
socks5_build_auth_reply(uint8_t *out, size_t outlen, uint8_t status)
{
	if (outlen < 2)
		return SOCKS5_E_SPACE;
	out[0] = SOCKS5_AUTH_VERSION;
	out[1] = status;
	return 2;
}

/* ATYP ADDR PORT for an IPv4 or IPv6 address; an IPv4-mapped IPv6 one is
 * written as the IPv4 it holds. out has room for 19 bytes. */
static size_t
put_sockaddr(uint8_t *out, const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin;
	const struct sockaddr_in6	*sin6;
	size_t				 n;

	if (sa != NULL && sa->sa_family == AF_INET6) {
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			out[0] = SOCKS5_ATYP_IPV4;
			memcpy(out + 1, &sin6->sin6_addr.s6_addr[12], 4);
			n = 5;
		} else {
			out[0] = SOCKS5_ATYP_IPV6;
			memcpy(out + 1, &sin6->sin6_addr, 16);
			n = 17;
		}
		memcpy(out + n, &sin6->sin6_port, 2);
		return n + 2;
	}
	out[0] = SOCKS5_ATYP_IPV4;
	if (sa != NULL && sa->sa_family == AF_INET) {
		sin = (const struct sockaddr_in *)sa;
		memcpy(out + 1, &sin->sin_addr, 4);
		memcpy(out + 5, &sin->sin_port, 2);
	} else
		memset(out + 1, 0, 6);
	return 7;
}

int
socks5_build_reply(uint8_t *out, size_t outlen, uint8_t rep,
    const struct sockaddr *bound)
{
	uint8_t	tmp[SOCKS5_REPLY_MAX];
	size_t	n;

	tmp[0] = SOCKS5_VERSION;
	tmp[1] = rep;
	tmp[2] = 0;
	n = 3 + put_sockaddr(tmp + 3, bound);
	if (outlen < n)
		return SOCKS5_E_SPACE;
	memcpy(out, tmp, n);
	return (int)n;
}

int
socks5_build_greeting(uint8_t *out, size_t outlen, bool userpass)
{
	size_t n = userpass ? 4 : 3;

	if (outlen < n)
		return SOCKS5_E_SPACE;
	out[0] = SOCKS5_VERSION;
	out[1] = userpass ? 2 : 1;
	out[2] = SOCKS5_METHOD_NONE;
	if (userpass)
		out[3] = SOCKS5_METHOD_USERPASS;
	return (int)n;
}

int
socks5_build_auth(uint8_t *out, size_t outlen, const char *user,
    size_t userlen, const char *pass, size_t passlen)
{
	size_t n;

	if (user == NULL || userlen == 0 || userlen > 255 || passlen > 255 ||
	    (pass == NULL && passlen != 0))
		return SOCKS5_E_ARG;
	n = 3 + userlen + passlen;
	if (outlen < n)
		return SOCKS5_E_SPACE;
	out[0] = SOCKS5_AUTH_VERSION;
	out[1] = (uint8_t)userlen;
	memcpy(out + 2, user, userlen);
	out[2 + userlen] = (uint8_t)passlen;
	if (passlen > 0)
		memcpy(out + 3 + userlen, pass, passlen);
	return (int)n;
}

int
socks5_build_connect_name(uint8_t *out, size_t outlen, const char *name,
    size_t namelen, uint16_t port)
{
	size_t n;

	if (name == NULL || namelen == 0 || namelen > 255 || port == 0)
		return SOCKS5_E_ARG;
	for (size_t i = 0; i < namelen; i++)
		if (!name_byte_ok((uint8_t)name[i]))
			return SOCKS5_E_ARG;
	n = 7 + namelen;
	if (outlen < n)
		return SOCKS5_E_SPACE;
	out[0] = SOCKS5_VERSION;
	out[1] = SOCKS5_CMD_CONNECT;
	out[2] = 0;
	out[3] = SOCKS5_ATYP_DOMAIN;
	out[4] = (uint8_t)namelen;
	memcpy(out + 5, name, namelen);
	out[5 + namelen] = (uint8_t)(port >> 8);
	out[6 + namelen] = (uint8_t)(port & 0xff);
	return (int)n;
}

int
socks5_build_connect_addr(uint8_t *out, size_t outlen,
    const struct sockaddr *sa)
{
	uint8_t	tmp[SOCKS5_REPLY_MAX];
	size_t	n;

	if (sa == NULL ||
	    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6))
		return SOCKS5_E_ARG;
	if ((sa->sa_family == AF_INET &&
	    ((const struct sockaddr_in *)sa)->sin_port == 0) ||
	    (sa->sa_family == AF_INET6 &&
	    ((const struct sockaddr_in6 *)sa)->sin6_port == 0))
		return SOCKS5_E_ARG;
	tmp[0] = SOCKS5_VERSION;
	tmp[1] = SOCKS5_CMD_CONNECT;
	tmp[2] = 0;
	n = 3 + put_sockaddr(tmp + 3, sa);
	if (outlen < n)
		return SOCKS5_E_SPACE;
	memcpy(out, tmp, n);
	return (int)n;
}

const char *
socks5_strerror(int rv)
{
	switch (rv) {
	case SOCKS5_NEED_MORE:
		return "incomplete SOCKS5 message";
	case SOCKS5_E_VERSION:
		return "not a SOCKS5 message (bad version byte)";
	case SOCKS5_E_NMETHODS:
		return "SOCKS5 greeting offers no authentication method";
	case SOCKS5_E_AUTH:
		return "SOCKS5 authentication with an empty user name";
	case SOCKS5_E_COMMAND:
		return "SOCKS5 command not supported";
	case SOCKS5_E_RESERVED:
		return "SOCKS5 request with a non-zero reserved byte";
	case SOCKS5_E_ATYP:
		return "SOCKS5 address type not supported";
	case SOCKS5_E_DOMAIN:
		return "SOCKS5 request with an empty or invalid host name";
	case SOCKS5_E_PORT:
		return "SOCKS5 request for port 0";
	case SOCKS5_E_SPACE:
		return "SOCKS5 message does not fit the buffer";
	case SOCKS5_E_ARG:
		return "SOCKS5 field empty, too long or invalid";
	default:
		return "unknown SOCKS5 error";
	}
}

const char *
socks5_reply_str(uint8_t rep)
{
	static const char *const str[] = {
		"succeeded",
		"general SOCKS server failure",
		"connection not allowed by ruleset",
		"network unreachable",
		"host unreachable",
		"connection refused",
		"TTL expired",
		"command not supported",
		"address type not supported",
	};

	if (rep < sizeof str / sizeof str[0])
		return str[rep];
	return "unassigned reply code";
}
