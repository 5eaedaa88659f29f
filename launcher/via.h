/*
 * egress-run --via PATH: COMMAND's traffic goes through a daemon's proxy
 * (egress-run serve) instead of one of our own. Its policy -- this run's
 * flags and config -- is registered as a sandbox with a token identity and
 * a lease, renewed while COMMAND runs and deleted when it ends.
 */
#ifndef LAUNCHER_VIA_H
#define LAUNCHER_VIA_H

#include <stddef.h>

struct config;
struct strlist;
struct via;

#define VIA_LEASE	60	/* s: a registration outlives a crash by this */
#define VIA_RENEW	20	/* s: between renewals */

/*
 * This run's policy as a registration for the daemon at cfg->via, made
 * before the configuration's secret values are wiped (it holds them until
 * sent).
 */
struct via	*via_new(const struct config *, char *const *env);
/*
 * Register: 0, or -1 with one line in err when the daemon cannot be
 * reached or refuses (*refused: it answered, with the reason in err -- a
 * policy mistake no fallback mends). The CA the daemon intercepts with is
 * written to dir.
 */
int		 via_register(struct via *, const char *dir, char *err,
		    size_t errlen, int *refused);
const char	*via_host(const struct via *);
unsigned	 via_port(const struct via *);
const char	*via_userinfo(const struct via *);	/* ID:TOKEN */
const char	*via_ca_file(const struct via *);	/* or NULL */
/* The daemon's placeholder of each secret KEY (for
 * secrets_take_placeholders): n of each. */
void		 via_placeholders(const struct via *, const char *const **names,
		    const char *const **phs, size_t *n);
/* Push the lease on (0, or -1 with a warning logged). */
int		 via_renew(struct via *);
/* Delete the registration and free; NULL is a no-op. */
void		 via_free(struct via *);

#endif
