/*
 * NO_PROXY: which destinations bypass the upstream proxy (upstream.c asks,
 * the launcher parses egress-run's own NO_PROXY/no_proxy). Semantics are
 * curl's (lib/noproxy.c), with the extensions noted. Pure: strings in,
 * bool out; no resolution.
 *
 *   - Entries are separated by commas and/or white space; empty ones are
 *     ignored.
 *   - A list that is "*" and nothing else matches every host. A "*" among
 *     other entries is skipped, as it never matches in curl either.
 *   - A name matches itself and its subdomains: "example.com" and
 *     ".example.com" both match example.com and www.example.com, never
 *     notexample.com. "*.example.com" is read as ".example.com" (curl
 *     never matches it; Go and our --allow patterns read it this way).
 *     Case-insensitive; one trailing dot is ignored on both sides.
 *   - IPv4 and IPv6 entries (IPv6 bare or in brackets) match IP-literal
 *     hosts of the same address, compared as addresses ("::1" matches
 *     "0:0::1"). CIDR entries ("10.0.0.0/8", "fd00::/8", "[fd00::]/8")
 *     match IP-literal hosts in range; /0 matches every address of its
 *     family. Names never match addresses and addresses never match names:
 *     nothing is resolved.
 *   - An entry may carry a port ("example.com:8080", "10.0.0.1:8080",
 *     "[::1]:8080"); it then matches only that destination port (as Go
 *     does; curl never matches such an entry).
 *   - Malformed entries ("/33", "/16a", "a..b", over-long names, bad
 *     bytes, ports out of range) are skipped and counted, never fatal.
 */
#ifndef UPSTREAM_NOPROXY_H
#define UPSTREAM_NOPROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct noproxy;

/* Parse a list (len bytes, need not be NUL-terminated; NULL is an empty
 * list). Never fails: bad entries are skipped. Never returns NULL. */
struct noproxy	*noproxy_parse(const char *list, size_t len);
void		 noproxy_free(struct noproxy *);

/*
 * Does host bypass the proxy? host is a name or an IP literal (an IPv6 one
 * with or without brackets), without a port; port is the destination port,
 * or 0 when unknown (then entries with a port do not match).
 */
bool		 noproxy_match(const struct noproxy *, const char *host,
		    size_t hostlen, uint16_t port);

/* Usable entries, and entries skipped as malformed (for a warning). */
size_t		 noproxy_count(const struct noproxy *);
size_t		 noproxy_skipped(const struct noproxy *);

/* True if the list matches every host ("*"). */
bool		 noproxy_all(const struct noproxy *);

#endif
