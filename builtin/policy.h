/*
 * Destination policy (SPEC §5): allow/deny patterns, --resolve pins, and the
 * address guard. One decision for every door. Pure after set-up: strings
 * and addresses in, a verdict out.
 */
#ifndef BUILTIN_POLICY_H
#define BUILTIN_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct dest;
struct policy;

struct verdict {
	bool		 allow;
	const char	*rule;		/* the pattern that decided, in its
					   canonical form ("deny *.evil.com",
					   "allow 10.0.0.0/8"), or "default";
					   stage 2 adds "guard" (the address
					   guard refused), "self" (our own
					   listener) and "pin" (--resolve).
					   Valid while the policy lives. */
	char		 reason[192];	/* one line, for 403 pages & audit;
					   empty when allowed by stage 1 */
};

struct policy	*policy_new(void);
void		 policy_free(struct policy *);

/* Patterns: example.com, *.example.com, an optional :port, IPv4 (any
 * numeric spelling), [IPv6] (bare IPv6 too, without a port), CIDR
 * (10.0.0.0/8, fd00::/8, [fd00::]/8, [fd00::]/8:443), *. A CIDR with bits
 * set beyond its prefix (10.0.0.1/8) is an error, not masked. Return 0 or
 * -1 with a one-line message naming the pattern in err. */
int		 policy_allow(struct policy *, const char *, char *, size_t);
int		 policy_deny(struct policy *, const char *, char *, size_t);

/* --resolve HOST:PORT:ADDR[,ADDR...] as curl takes it (PORT may be '*',
 * IPv6 ADDR in brackets or not; HOST a name; curl's leading '+' is
 * accepted and ignored, its '-' refused). A later entry for the same
 * HOST:PORT replaces the earlier one. */
int		 policy_pin(struct policy *, const char *, char *, size_t);

/* This host's own addresses (guarded), and the proxy's listening address
 * and port (always refused: no loops; call once per listening socket; a
 * wildcard listener covers every loopback and local address). */
void		 policy_add_local(struct policy *, const struct sockaddr *);
void		 policy_set_self(struct policy *, const struct sockaddr *);

/* True when at least one allow pattern exists (else allow-all default). */
bool		 policy_has_allow(const struct policy *);

/*
 * Stage 1, before resolving: is the destination (name or literal, and
 * port) allowed? Deny wins; no allow pattern at all means allowed.
 */
/* Does any of the policy's patterns (allow or deny) match dest? No
 * verdict, no reason text: for request rules, which ask it per rule. */
bool		 policy_names_dest(const struct policy *, const struct dest *);
void		 policy_check_dest(const struct policy *, const struct dest *,
		    struct verdict *);

/* The pinned addresses for dest (name and port), at most max; 0 if none.
 * A pin for dest's exact port wins over a '*' one. Ports in the results
 * are dest's port. */
size_t		 policy_pinned(const struct policy *, const struct dest *,
		    struct sockaddr_storage *, size_t max);

/*
 * Stage 2, for the address the proxy is about to connect to (a resolved
 * one, or the literal itself): deny patterns naming addresses, the proxy's
 * own address, and the guard (SPEC §5) with its exceptions — an allow
 * pattern naming the address or a CIDR holding it, pinned, or the name is
 * localhost and "localhost" is itself allowed (then only for a loopback
 * address). The port checked is the sockaddr's, or dest's when that is 0.
 */
void		 policy_check_addr(const struct policy *, const struct dest *,
		    const struct sockaddr *, bool pinned, struct verdict *);

#endif
