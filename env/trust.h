/*
 * The child's trust: one combined PEM bundle (the roots the parent trusts +
 * the proxy's CA + extra roots) and the same roots in the forms that tools
 * ignoring SSL_CERT_FILE read: a wgetrc for wget, a PKCS#12 trust store for
 * Java. Several trust variables *replace* a tool's store, so the bundle must
 * always hold the ordinary roots too.
 */
#ifndef ENV_TRUST_H
#define ENV_TRUST_H

#include <stddef.h>

struct trust_files {
	char	*bundle;	/* combined PEM bundle */
	char	*wgetrc;	/* user's wgetrc + ca_certificate */
	char	*truststore;	/* PKCS#12 for Java */
};

#define TRUST_STORE_PASSWORD	"changeit"

/* The roots file the parent environment names, or OpenSSL's default. */
const char	*trust_default_roots(void);

/*
 * Write the files into dir: roots (may be NULL: no ordinary roots found)
 * followed by every extra PEM file. Each extra must hold at least one
 * certificate; each is decoded, but for the first nours, which egress-run
 * wrote itself from certificates it made or decoded (their shape is
 * checked; a decoding would cost the start-up a third of a millisecond).
 * Returns 0, or -1 with a one-line cause in err.
 */
int		 trust_build(const char *dir, const char *roots,
		    const char *const *extra, size_t nextra, size_t nours,
		    struct trust_files *, char *, size_t);
void		 trust_files_free(struct trust_files *);

#endif
