/*
 * SOCKS5 (RFC 1928) and its username/password sub-negotiation (RFC 1929),
 * both directions: the server side for the SOCKS door (socks5.c), the client
 * side for a socks5/socks5h upstream (upstream.c). Pure functions over
 * (bytes, length): no allocation, no I/O; names are slices into the
 * caller's buffer and are not NUL-terminated.
 */
#ifndef SOCKS5_SOCKS5_PARSE_H
#define SOCKS5_SOCKS5_PARSE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SOCKS5_VERSION		0x05
#define SOCKS5_AUTH_VERSION	0x01	/* RFC 1929 sub-negotiation */

/* Authentication methods. */
#define SOCKS5_METHOD_NONE	0x00
#define SOCKS5_METHOD_GSSAPI	0x01
#define SOCKS5_METHOD_USERPASS	0x02
#define SOCKS5_METHOD_REFUSED	0xff	/* no acceptable methods */

/* Commands. */
#define SOCKS5_CMD_CONNECT	0x01
#define SOCKS5_CMD_BIND		0x02
#define SOCKS5_CMD_UDP		0x03	/* UDP ASSOCIATE */

/* Address types. */
#define SOCKS5_ATYP_IPV4	0x01
#define SOCKS5_ATYP_DOMAIN	0x03
#define SOCKS5_ATYP_IPV6	0x04

/* Reply codes (REP). */
#define SOCKS5_REP_SUCCEEDED	0x00
#define SOCKS5_REP_FAILURE	0x01	/* general SOCKS server failure */
#define SOCKS5_REP_NOT_ALLOWED	0x02	/* connection not allowed by ruleset */
#define SOCKS5_REP_NET_UNREACH	0x03
#define SOCKS5_REP_HOST_UNREACH	0x04
#define SOCKS5_REP_REFUSED	0x05
#define SOCKS5_REP_TTL_EXPIRED	0x06
#define SOCKS5_REP_CMD_UNSUPP	0x07
#define SOCKS5_REP_ATYP_UNSUPP	0x08

/* RFC 1929 status: 0 is success, anything else is failure. */
#define SOCKS5_AUTH_OK		0x00
#define SOCKS5_AUTH_FAILED	0x01

/* Largest messages, for buffers. */
#define SOCKS5_GREETING_MAX	257	/* VER NMETHODS METHODS[255] */
#define SOCKS5_AUTH_MAX		513	/* VER ULEN UNAME PLEN PASSWD */
#define SOCKS5_REQUEST_MAX	262	/* VER CMD RSV ATYP LEN NAME[255] PORT;
					   a reply has the same layout */
#define SOCKS5_REPLY_MAX	22	/* a reply we build (IPv6 form) */

/* Return codes: > 0 is the message's length (bytes consumed or built). */
enum socks5_result {
	SOCKS5_NEED_MORE = -1,	/* a prefix of a valid message: read more */
	SOCKS5_E_VERSION = -2,	/* VER is not 5 (not 1 in RFC 1929) */
	SOCKS5_E_NMETHODS = -3,	/* a greeting offering no method */
	SOCKS5_E_AUTH = -4,	/* empty user name */
	SOCKS5_E_COMMAND = -5,	/* CMD not CONNECT/BIND/UDP: reply 0x07 */
	SOCKS5_E_RESERVED = -6,	/* RSV is not 0 */
	SOCKS5_E_ATYP = -7,	/* unknown address type: reply 0x08 */
	SOCKS5_E_DOMAIN = -8,	/* empty name, or a NUL, control or space */
	SOCKS5_E_PORT = -9,	/* destination port 0 */
	SOCKS5_E_SPACE = -10,	/* builder: output buffer too small */
	SOCKS5_E_ARG = -11,	/* builder: a field is empty, too long or
				   holds a byte a name cannot */
};

/* A greeting (client -> server): the methods the client offers. */
struct socks5_greeting {
	const uint8_t	*methods;	/* slice into the buffer */
	size_t		 nmethods;	/* 1..255 */
	bool		 none;		/* 0x00 offered */
	bool		 userpass;	/* 0x02 offered */
};

/*
 * RFC 1929 request (client -> server). ULEN is 1..255; PLEN may be 0,
 * because curl sends an empty password as PLEN 0.
 */
struct socks5_auth {
	const char	*user;		/* slices into the buffer */
	size_t		 userlen;
	const char	*pass;
	size_t		 passlen;
};

/* An address and port as SOCKS5 carries them (DST or BND). */
struct socks5_addr {
	uint8_t		 atyp;		/* SOCKS5_ATYP_* */
	struct in_addr	 v4;		/* ATYP_IPV4 */
	struct in6_addr	 v6;		/* ATYP_IPV6 */
	const char	*name;		/* ATYP_DOMAIN: a slice, not
					   NUL-terminated; canonicalise it
					   with addr_parse_host() */
	size_t		 namelen;
	uint16_t	 port;		/* host order */
};

/* A request (client -> server). */
struct socks5_request {
	uint8_t			 cmd;	/* SOCKS5_CMD_* */
	struct socks5_addr	 dst;	/* port is never 0 */
};

/* A reply (server -> client). */
struct socks5_reply {
	uint8_t			 rep;	/* SOCKS5_REP_*; only 0 is success */
	struct socks5_addr	 bnd;	/* port may be 0 */
};

/*
 * Server side. Each returns the bytes consumed (> 0), SOCKS5_NEED_MORE, or
 * an error; bytes after the message (a client that pipelines its auth,
 * request or first data) are left for the caller. The first invalid byte
 * decides the error, so a byte-at-a-time feed sees it as early as a whole
 * one does. Outputs are zeroed on entry.
 */
int	socks5_parse_greeting(const uint8_t *, size_t,
	    struct socks5_greeting *);
int	socks5_parse_auth(const uint8_t *, size_t, struct socks5_auth *);
int	socks5_parse_request(const uint8_t *, size_t, struct socks5_request *);

/*
 * Server side builders: the method selection (VER METHOD), the RFC 1929
 * status (VER STATUS) and a reply (VER REP RSV ATYP BND.ADDR BND.PORT;
 * 0.0.0.0:0 when bound is NULL or neither AF_INET nor AF_INET6). Each
 * returns the length written or SOCKS5_E_SPACE.
 */
int	socks5_build_method_reply(uint8_t *, size_t, uint8_t method);
int	socks5_build_auth_reply(uint8_t *, size_t, uint8_t status);
int	socks5_build_reply(uint8_t *, size_t, uint8_t rep,
	    const struct sockaddr *bound);

/*
 * Client side parsers, same conventions. The method reply gives the
 * server's choice (the caller checks it was offered; 0xff is a refusal).
 * The auth reply gives the status (0 is success); its VER may be 1 (RFC
 * 1929) or 5 (servers that echo the SOCKS version). The reply's RSV is
 * ignored; a domain BND.ADDR may be empty and is not checked.
 */
int	socks5_parse_method_reply(const uint8_t *, size_t, uint8_t *method);
int	socks5_parse_auth_reply(const uint8_t *, size_t, uint8_t *status);
int	socks5_parse_reply(const uint8_t *, size_t, struct socks5_reply *);

/*
 * Client side builders. Each returns the length written, SOCKS5_E_SPACE,
 * or SOCKS5_E_ARG.
 * greeting: offers 0x00, and 0x02 too when userpass is set.
 * auth: user 1..255 bytes, password 0..255 bytes.
 * connect_name: CONNECT by name (socks5h), 1..255 bytes, no NUL, control
 *   or space; port 1..65535.
 * connect_addr: CONNECT by address (socks5): an AF_INET or AF_INET6
 *   sockaddr, its port (not 0) included.
 */
int	socks5_build_greeting(uint8_t *, size_t, bool userpass);
int	socks5_build_auth(uint8_t *, size_t, const char *user, size_t userlen,
	    const char *pass, size_t passlen);
int	socks5_build_connect_name(uint8_t *, size_t, const char *name,
	    size_t namelen, uint16_t port);
int	socks5_build_connect_addr(uint8_t *, size_t, const struct sockaddr *);

/* A one-line description of a negative result. */
const char *socks5_strerror(int);

/* The RFC 1928 text of a reply code ("connection refused"); "unassigned
 * reply code" for 0x09..0xff. */
const char *socks5_reply_str(uint8_t);

#endif
