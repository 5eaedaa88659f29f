/*
 * The interception CA and the leaf certificates minted from it, and the two
 * TLS contexts of an intercepted tunnel: the server side the agent talks to
 * (our leaf) and the client side towards the origin (verified for real).
 */
#ifndef BUILTIN_CERTS_H
#define BUILTIN_CERTS_H

#include <stddef.h>

#include <openssl/types.h>

/* Leaves kept per struct certs; the least recently used goes first. */
#define CERTS_CACHE_MAX		1024

struct certs;

/*
 * Both files NULL: an ephemeral CA (P-256, key only in memory, 30 days).
 * Otherwise a PEM certificate and an unencrypted PEM key (EC, RSA or
 * Ed25519): refused when the key file is group/world accessible, a file is
 * unreadable or not PEM, the key does not match, the certificate is no CA
 * (basicConstraints CA:TRUE) or is expired. NULL on failure with a one-line
 * reason in err (never key material). Also builds the server SSL_CTX.
 */
struct certs	*certs_new(const char *ca_cert_file, const char *ca_key_file,
		    char *err, size_t errlen);
/* Free everything (keys included); NULL is a no-op. */
void		 certs_free(struct certs *);

/* The CA certificate, for trust bundles and chain checks. */
const X509	*certs_ca(const struct certs *);
/* The CA certificate (never the key) as PEM, mode 0644. 0 or -1. */
int		 certs_write_ca(const struct certs *, const char *path,
		    char *err, size_t errlen);

/*
 * A leaf for a canonical host (struct dest.host: lower-case name, dotted
 * IPv4, IPv6 without brackets), from the cache or minted now (one P-256
 * key shared by every leaf; SAN DNS or IP; valid now-1h .. now+24h). On 0
 * *cert and *key are new references: the caller frees them with X509_free
 * and EVP_PKEY_free. -1 (and NULLs) for an empty or over-long host or a
 * signing failure.
 */
int		 certs_leaf(struct certs *, const char *host, X509 **cert,
		    EVP_PKEY **key);
/* Leaves in the cache now (at most CERTS_CACHE_MAX). */
size_t		 certs_cache_count(const struct certs *);

/*
 * The server context for every intercepted client: TLS 1.2 minimum, ALPN
 * http/1.1 only (never h2), no client certificates, no session resumption.
 * Made on the first call, then the same context on every call, as a new
 * reference the caller releases with SSL_CTX_free (SSL objects hold their
 * own, so they may outlive it). NULL if it cannot be made.
 */
SSL_CTX		*certs_server_ctx(struct certs *);
/* Put host's leaf and key on a server SSL before its handshake. 0 or -1. */
int		 certs_ssl_set_leaf(struct certs *, SSL *, const char *host);
/*
 * After the handshake: did the client's SNI name host? Case-insensitive,
 * one trailing dot ignored. A name needs SNI; an IP literal may come with
 * none. 1 or 0.
 */
int		 certs_ssl_sni_matches(SSL *, const char *host);

/*
 * The client context for origin legs: SSL_VERIFY_PEER against the default
 * roots (SSL_CERT_FILE/SSL_CERT_DIR of our own environment, as OpenSSL
 * reads them) plus extra_ca_file (--upstream-ca) when not NULL, TLS 1.2
 * minimum, ALPN http/1.1 only. Built on the first call; every call returns
 * a new reference the caller releases with SSL_CTX_free. A later call with
 * another extra_ca_file is an error. With a NULL certs (no interception,
 * gateways only) a fresh context is returned each time. NULL on failure
 * with a reason in err.
 */
SSL_CTX		*certs_client_ctx(struct certs *, const char *extra_ca_file,
		    char *err, size_t errlen);
/* SNI (names only) and the name or address the origin's certificate must
 * carry, on a client SSL before its handshake. 0 or -1. */
int		 certs_ssl_client_setup(SSL *, const char *host);
/* Why verification failed ("certificate has expired", "hostname
 * mismatch", ...), or NULL when it did not. */
const char	*certs_verify_error(SSL *);

/* Drain OpenSSL's error queue into buf as one line ("reason; reason"), for
 * diagnostics after a TLS failure. Returns buf ("unknown TLS error" when the
 * queue was empty). */
const char	*certs_tls_errors(char *buf, size_t len);

#endif
