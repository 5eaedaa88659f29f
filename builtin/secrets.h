/*
 * Secret bindings (SPEC §7): --secret specs parsed into bindings, the
 * placeholders the child sees instead of values, which bindings apply to a
 * destination, and placeholder-to-value substitution in header values and
 * streamed bodies. Pure: no I/O; conn.c and mitm.c do the wiring.
 */
#ifndef BUILTIN_SECRETS_H
#define BUILTIN_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dest;
struct secrets;
struct strlist;
struct subst;

#define SECRETS_MARKER		"EGRESSRUN"	/* in every placeholder */
#define SECRETS_DEFAULT_HEADER	"Authorization"	/* "Bearer <value>" */
#define SECRETS_PH_MIN		32		/* shortest placeholder */
#define SECRETS_VALUE_MAX	16384		/* longest value */

/*
 * Parse every spec (KEY=value:host, KEY:host, KEY:host:header; the host of
 * the inline form is after its last ':'), take the values (inline, or
 * egress-run's own variable KEY from env, a NULL-terminated "NAME=value"
 * array, NULL for none) and make one placeholder per binding. The values
 * are copied: the caller may blank the specs afterwards. NULL with a
 * one-line message in err that never holds a value (an inline spec shows as
 * KEY=***:host). n == 0 gives an empty set.
 *
 * A placeholder keeps the value's leading prefix up to its last '-' or '_'
 * within the first 16 bytes (sk-ant-api03-, ghp_), when that prefix is
 * [A-Za-z0-9_-] and at least 20 bytes of the value follow it; then
 * SECRETS_MARKER, then random [A-Za-z0-9], max(len(value), 32) bytes in
 * all. A value of 32 bytes or more thus has a placeholder of its exact
 * length: substitution is length-preserving, Content-Length never changes
 * and bodies stream as they are. A shorter value has a longer placeholder
 * and a body carrying one must be re-framed (see secrets_subst_delta).
 */
struct secrets	*secrets_new(char *const *specs, size_t n, char *const *env,
		    char *err, size_t errlen);
/* Wipes every value, then frees. NULL is a no-op. */
void		 secrets_free(struct secrets *);
/* Zeroes every value in place now (at exit, or before a crash dump);
 * the bindings stay, injecting zero bytes. secrets_free() does it too. */
void		 secrets_wipe(struct secrets *);

/* Overwrite with '*' every bound value found in the NUL-terminated str
 * (egress-run's own environment, once COMMAND's is built). */
void		 secrets_scrub(const struct secrets *, char *);

/* Bindings in spec order, 0 <= i < secrets_count(). */
size_t		 secrets_count(const struct secrets *);
const char	*secrets_name(const struct secrets *, size_t);	/* KEY */
/* Canonical host pattern: "api.example.com", "*.example.com", "10.0.0.1". */
const char	*secrets_host(const struct secrets *, size_t);
/* The custom header's name as given, or NULL for the default
 * "Authorization: Bearer <value>". */
const char	*secrets_header(const struct secrets *, size_t);
/* The header to set, never NULL: the custom one or SECRETS_DEFAULT_HEADER;
 * a client's header of that name (any case) is dropped. */
const char	*secrets_header_name(const struct secrets *, size_t);
const char	*secrets_placeholder(const struct secrets *, size_t);

/*
 * The child's environment overrides (for bouquet_opts.replace): KEY=<its
 * placeholder> for each binding, then every other variable of the env given
 * to secrets_new that held a bound value, with the value replaced by its
 * placeholder (a value under 8 bytes only when it is the whole variable).
 */
void		 secrets_child_env(const struct secrets *, struct strlist *);

/*
 * Placeholders made elsewhere (a daemon's, for --via): binding KEY names[k]
 * takes phs[k], and the other variables of env are swapped anew with them.
 */
void		 secrets_take_placeholders(struct secrets *,
		    const char *const *names, const char *const *phs,
		    size_t n, char *const *env);

/* Does binding i apply to dest (its host: exact, or *.domain covering the
 * apex and below; any port)? */
bool		 secrets_applies(const struct secrets *, size_t,
		    const struct dest *);
/* Does any binding apply (so a tunnel to dest must be intercepted)? */
bool		 secrets_for_host(const struct secrets *, const struct dest *);
/*
 * The first binding at or after `from` that applies to dest, or
 * secrets_count() when none:
 *	for (i = secrets_next(s, d, 0); i < secrets_count(s);
 *	    i = secrets_next(s, d, i + 1))
 */
size_t		 secrets_next(const struct secrets *, const struct dest *,
		    size_t);

/*
 * The header line to inject for binding i, "Authorization: Bearer
 * <value>\r\n" or "<header>: <value>\r\n", NUL-terminated, its length in
 * *len. Holds the value: the caller frees it with freezero(p, *len).
 */
char		*secrets_header_line(const struct secrets *, size_t,
		    size_t *len);

/*
 * A header value (or any slice) with the placeholders of dest's bindings
 * replaced by their values: returns how many were replaced. 0: *out is NULL
 * (keep the original; the common case costs one scan and no allocation).
 * Otherwise *out is allocated, NUL-terminated, *outlen long, and holds a
 * value: the caller frees it with freezero(*out, *outlen).
 */
size_t		 secrets_replace(const struct secrets *, const struct dest *,
		    const char *, size_t, char **out, size_t *outlen);

/*
 * Streaming substitution in a body for dest's bindings. Output goes to
 * emit(arg, bytes, n) as soon as it is decided; at most the longest
 * placeholder's length - 1 bytes that could begin a placeholder are held
 * back between feeds, so a placeholder split across reads or chunks is
 * still found, and the output is the same however the input is split.
 * Non-overlapping, leftmost first. Emitted bytes may be a value: the sink
 * must treat them as secret. The secrets must outlive the subst.
 */
struct subst	*secrets_subst_new(const struct secrets *, const struct dest *);
void		 secrets_subst_free(struct subst *);
void		 secrets_subst_feed(struct subst *, const void *, size_t,
		    void (*)(void *, const void *, size_t), void *);
/* End of a body: emits what was held back. The subst may then be fed the
 * next body; counts go on accumulating. */
void		 secrets_subst_finish(struct subst *,
		    void (*)(void *, const void *, size_t), void *);
/* Output bytes minus input bytes over the replacements so far (held bytes
 * are not counted): 0 while every placeholder is length-preserving, never
 * positive. */
int64_t		 secrets_subst_delta(const struct subst *);
/* Placeholders replaced so far (audit: was a secret injected?). */
size_t		 secrets_subst_count(const struct subst *);
/* True when every placeholder of dest's bindings has its value's length:
 * the body keeps its Content-Length whatever it carries. */
bool		 secrets_subst_preserving(const struct subst *);
/* Does dest have any binding (else the subst passes bytes through)? */
bool		 secrets_subst_active(const struct subst *);

#endif
