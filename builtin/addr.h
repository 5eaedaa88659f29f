/*
 * Destinations: canonical host text from what clients send (URI authority,
 * Host header, CONNECT target, SOCKS5 name), and classes of IP addresses
 * for the address guard. Pure: no resolution, no I/O.
 */
#ifndef BUILTIN_ADDR_H
#define BUILTIN_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDR_HOST_MAX	253

enum addr_kind {
	ADDR_NAME,
	ADDR_IPV4,
	ADDR_IPV6,
};

struct dest {
	/* Canonical text: a name in lower case without its trailing dot; an
	 * IPv4 address as a dotted quad (whatever numeric spelling was sent:
	 * 2130706433, 0x7f.1, 017700000001, 127.1); an IPv6 address in its
	 * RFC 5952 form, without brackets, dotted only for IPv4-mapped
	 * (::ffff:127.0.0.1, but ::7f00:1). */
	char		host[ADDR_HOST_MAX + 1];
	uint16_t	port;
	enum addr_kind	kind;
	struct in_addr	v4;		/* ADDR_IPV4 */
	struct in6_addr	v6;		/* ADDR_IPV6 */
};

enum addr_result {
	ADDR_OK = 0,
	ADDR_E_SYNTAX = -1,	/* not a host name or address */
	ADDR_E_USERINFO = -2,	/* user@host */
	ADDR_E_PERCENT = -3,	/* percent-encoding (or an IPv6 zone) */
	ADDR_E_PORT = -4,	/* missing, empty, zero or > 65535 port */
	ADDR_E_TOOLONG = -5,	/* name over 253 bytes or a label over 63 */
	ADDR_E_EMPTY = -6,
	ADDR_E_IPV4 = -7,	/* ends in a number but is no IPv4 address */
};

/*
 * "host[:port]" as found in an absolute URI, a Host header or a CONNECT
 * target; "[v6]" with brackets. Without a port, default_port is used unless
 * it is 0 (then a port is required). A port is 1 to 5 decimal digits, value
 * 1..65535; leading zeros are tolerated ("080" is 80, as browsers read
 * it). The input need not be NUL-terminated. On error dest is all zero.
 */
int	addr_parse_authority(const char *, size_t, uint16_t default_port,
	    struct dest *);

/* A bare host: name, IPv4 (any numeric spelling), IPv6 with or without
 * brackets. port is left 0. */
int	addr_parse_host(const char *, size_t, struct dest *);

const char *addr_strerror(int);

/* Address classes (bit flags) for the guard. */
#define ADDR_C_LOOPBACK		0x01	/* 127/8, ::1 */
#define ADDR_C_LINKLOCAL	0x02	/* 169.254/16, fe80::/10 */
#define ADDR_C_UNSPECIFIED	0x04	/* 0/8, :: */
#define ADDR_C_MULTICAST	0x08	/* 224/4, ff00::/8 */
#define ADDR_C_METADATA		0x10	/* 169.254.169.254, fd00:ec2::254,
					   100.100.100.200, ... */
#define ADDR_C_BROADCAST	0x20	/* 255.255.255.255 */
#define ADDR_C_RESERVED		0x40	/* 240/4 */
#define ADDR_C_PRIVATE		0x80	/* RFC 1918, CGNAT, ULA: not guarded */
#define ADDR_C_GUARDED		0x7f	/* refused unless explicitly allowed */

/*
 * The classes of an address. An IPv6 address that embeds an IPv4 one
 * (IPv4-mapped, IPv4-compatible, NAT64 64:ff9b::/96, 6to4 2002::/16,
 * Teredo 2001::/32) also carries the classes of the IPv4 inside.
 */
unsigned addr_classify(const struct sockaddr *);

/* The most telling guarded class's name ("cloud metadata" before
 * "link-local", then "loopback", "unspecified", "link-local", "multicast",
 * "broadcast", "reserved"); "private" or "public" when none is guarded. */
const char *addr_class_name(unsigned);

/* The IPv4 address an IPv6 one embeds, if any (the forms above, and
 * IPv4-translated ::ffff:0:0:0/96). out may be NULL. */
bool	addr_embedded_v4(const struct in6_addr *, struct in_addr *);

/* Address without port: "127.0.0.1", "::1". */
void	addr_ntop(const struct sockaddr *, char *, size_t);

#endif
