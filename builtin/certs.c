/*
 * The interception CA (ephemeral, or loaded from --ca-cert/--ca-key), leaf
 * certificates minted per host and kept in a bounded LRU, and the SSL_CTXs
 * of both legs of an intercepted tunnel. mitm.c drives the connections; the
 * CA certificate reaches the child's trust bundle through env/trust.c.
 *
 * Every leaf shares one P-256 key (as mitmproxy does), generated with the
 * first leaf: minting is then one certificate to build and sign, and
 * everything in a leaf but its names, serial and dates is precomputed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "builtin/addr.h"
#include "builtin/certs.h"
#include "common/xmalloc.h"

#define HOUR		3600
#define CA_LIFETIME	(30 * 24 * HOUR)
#define LEAF_LIFETIME	(24 * HOUR)
#define BACKDATE	HOUR		/* for clients whose clock lags */
#define REMINT_MARGIN	HOUR		/* a cached leaf with less is redone */
#define NBUCKETS	2048		/* power of two, 2 * CERTS_CACHE_MAX */
#define CN_MAX		64		/* ub-common-name, RFC 5280 */
#define KEY_FILE_MAX	(64 * 1024)
#define CERT_FILE_MAX	(1024 * 1024)
#define PROBE_HOST	"egress-run.invalid"

static const unsigned char alpn_h11[] = "http/1.1";
static const unsigned char alpn_offer[] = "\x08http/1.1";

/* Extensions identical in every leaf, encoded once. */
enum {
	EXT_BC,
	EXT_KU,
	EXT_EKU,
	EXT_SKI,
	EXT_AKI,
	NLEAFEXT
};

struct leaf {
	struct leaf	*hnext;		/* hash chain */
	struct leaf	*prev;		/* LRU list, most recent first */
	struct leaf	*next;
	X509		*cert;
	time_t		 not_after;
	uint32_t	 hash;
	char		 host[ADDR_HOST_MAX + 1];
};

struct certs {
	X509		*ca;
	EVP_PKEY	*ca_key;
	const EVP_MD	*md;		/* NULL: the key's own (EdDSA) */
	EVP_PKEY	*leaf_key;
	EVP_PKEY	*leaf_pub;	/* its public half, legacy form */
	X509_EXTENSION	*ext[NLEAFEXT];

	struct leaf	*bucket[NBUCKETS];
	struct leaf	*head;
	struct leaf	*tail;
	size_t		 count;
	uint32_t	 seed;

	SSL_CTX		*server;
	SSL_CTX		*client;
	char		*client_extra;	/* the client's extra CA file */
};

const char *
certs_tls_errors(char *buf, size_t len)
{
	unsigned long	 e, last = 0;
	const char	*reason;
	char		 code[32];
	size_t		 used = 0;
	int		 n;

	if (len == 0) {
		ERR_clear_error();
		return buf;
	}
	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if (last != 0 && ERR_GET_LIB(e) == ERR_GET_LIB(last) &&
		    ERR_GET_REASON(e) == ERR_GET_REASON(last))
			continue;
		last = e;
		if ((reason = ERR_reason_error_string(e)) == NULL) {
			snprintf(code, sizeof code, "error %lx", e);
			reason = code;
		}
		if (used >= len)
			continue;
		n = snprintf(buf + used, len - used, "%s%s", used ? "; " : "",
		    reason);
		if (n > 0)
			used += (size_t)n;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "unknown TLS error");
	return buf;
}

static bool
is_ip(const char *host, unsigned char *ip, int *iplen)
{
	unsigned char	buf[16];

	if (ip == NULL)
		ip = buf;
	if (inet_pton(AF_INET, host, ip) == 1) {
		if (iplen != NULL)
			*iplen = 4;
		return true;
	}
	if (inet_pton(AF_INET6, host, ip) == 1) {
		if (iplen != NULL)
			*iplen = 16;
		return true;
	}
	return false;
}

static void
time_str(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm	tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "an unreadable date");
}

/* A random positive 128-bit serial, always 16 bytes long in DER. */
static int
set_serial(X509 *x)
{
	unsigned char	b[16];

	if (RAND_bytes(b, sizeof b) != 1)
		return -1;
	b[0] = (b[0] & 0x7f) | 0x40;
	if (ASN1_STRING_set(X509_get_serialNumber(x), b, sizeof b) != 1)
		return -1;
	return 0;
}

static int
set_validity(X509 *x, time_t now, long lifetime)
{
	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -BACKDATE,
	    &now) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), 0, lifetime, &now) == NULL)
		return -1;
	return 0;
}

/* RFC 5280 key identifier: SHA-1 of the subjectPublicKey bits. */
static ASN1_OCTET_STRING *
key_id(EVP_PKEY *key)
{
	X509_PUBKEY		*pk = NULL;
	ASN1_OCTET_STRING	*id = NULL;
	const unsigned char	*bits;
	unsigned char		 md[EVP_MAX_MD_SIZE];
	unsigned int		 mdlen;
	int			 bitslen;

	if (X509_PUBKEY_set(&pk, key) != 1 ||
	    X509_PUBKEY_get0_param(NULL, &bits, &bitslen, NULL, pk) != 1 ||
	    EVP_Digest(bits, (size_t)bitslen, md, &mdlen, EVP_sha1(),
	    NULL) != 1)
		goto out;
	if ((id = ASN1_OCTET_STRING_new()) == NULL)
		goto out;
	if (ASN1_OCTET_STRING_set(id, md, (int)mdlen) != 1) {
		ASN1_OCTET_STRING_free(id);
		id = NULL;
	}
out:
	X509_PUBKEY_free(pk);
	return id;
}

/* The ECParameters of P-256: its named-curve OID (RFC 5480). */
static const unsigned char p256_params[] = {
	0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
};
#define P256_POINT_LEN	65		/* uncompressed: 04 || x || y */

/*
 * The public half of a P-256 key we generated, as a "legacy" EVP_PKEY.
 * OpenSSL 3 puts a provider key into a certificate through its encoder and
 * decoder: ~170 us a time, ~500 us the first time (the encoders are looked
 * up), most of the cost of a leaf and of the CA at start-up. A legacy key
 * is encoded directly (~5 us). The point is read as a parameter and put
 * into a key made from the curve's parameters: both d2i calls below take
 * the legacy path (d2i_PUBKEY would not: it decodes through providers).
 * On failure the key itself serves, only slower.
 */
static EVP_PKEY *
legacy_public(EVP_PKEY *key)
{
	unsigned char		 point[P256_POINT_LEN];
	const unsigned char	*p = p256_params, *q = point;
	EVP_PKEY		*pub = NULL;
	char			 group[32];
	size_t			 len;

	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof group, NULL) != 1 ||
	    strcmp(group, SN_X9_62_prime256v1) != 0 ||
	    EVP_PKEY_get_octet_string_param(key,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point, sizeof point,
	    &len) != 1 || len != sizeof point)
		goto fail;
	if ((pub = d2i_KeyParams(EVP_PKEY_EC, NULL, &p,
	    sizeof p256_params)) == NULL ||
	    d2i_PublicKey(EVP_PKEY_EC, &pub, &q, sizeof point) == NULL)
		goto fail;
	return pub;
fail:
	EVP_PKEY_free(pub);	/* d2i_PublicKey leaves *a to us */
	ERR_clear_error();
	if (EVP_PKEY_up_ref(key) != 1)
		return NULL;
	return key;
}

static X509_EXTENSION *
conf_ext(int nid, const char *value)
{
	X509V3_CTX	v3;

	X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&v3);
	return X509V3_EXT_conf_nid(NULL, &v3, nid, value);
}

static X509_EXTENSION *
ski_ext(EVP_PKEY *key)
{
	ASN1_OCTET_STRING	*id;
	X509_EXTENSION		*e;

	if ((id = key_id(key)) == NULL)
		return NULL;
	e = X509V3_EXT_i2d(NID_subject_key_identifier, 0, id);
	ASN1_OCTET_STRING_free(id);
	return e;
}

/* The AKI of every leaf: the CA's own SKI, or its key's identifier when a
 * loaded CA carries none. */
static X509_EXTENSION *
aki_ext(X509 *ca)
{
	AUTHORITY_KEYID			*akid;
	const ASN1_OCTET_STRING		*ski;
	X509_EXTENSION			*e = NULL;

	if ((akid = AUTHORITY_KEYID_new()) == NULL)
		return NULL;
	if ((ski = X509_get0_subject_key_id(ca)) != NULL)
		akid->keyid = ASN1_OCTET_STRING_dup(ski);
	else
		akid->keyid = key_id(X509_get0_pubkey(ca));
	if (akid->keyid != NULL)
		e = X509V3_EXT_i2d(NID_authority_key_identifier, 0, akid);
	AUTHORITY_KEYID_free(akid);
	return e;
}

static int
make_ca(struct certs *c, char *err, size_t errlen)
{
	X509_NAME	*name = NULL;
	X509_EXTENSION	*e;
	EVP_PKEY	*pub = NULL;
	char		 host[256], stamp[32], cn[CN_MAX + 1], tls[256];
	struct tm	 tm;
	time_t		 now = time(NULL);
	int		 r = -1;

	if (gethostname(host, sizeof host) != 0 || host[0] == '\0')
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	for (char *p = host; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f)
			*p = '?';
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
	/* 24 + 19 + 1 + 20 = 64 bytes: the host name gives way. */
	snprintf(cn, sizeof cn, "egress-run ephemeral CA %.19s %.20s", host,
	    stamp);

	if ((c->ca_key = EVP_EC_gen("P-256")) == NULL ||
	    (pub = legacy_public(c->ca_key)) == NULL ||
	    (c->ca = X509_new()) == NULL ||
	    (name = X509_NAME_new()) == NULL)
		goto tls;
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_NID(name, NID_organizationName,
	    MBSTRING_UTF8, (const unsigned char *)"egress-run", -1, -1,
	    0) != 1)
		goto tls;
	if (X509_set_version(c->ca, X509_VERSION_3) != 1 ||
	    set_serial(c->ca) != 0 ||
	    X509_set_subject_name(c->ca, name) != 1 ||
	    X509_set_issuer_name(c->ca, name) != 1 ||
	    set_validity(c->ca, now, CA_LIFETIME) != 0 ||
	    X509_set_pubkey(c->ca, pub) != 1)
		goto tls;

	if ((e = conf_ext(NID_basic_constraints,
	    "critical,CA:TRUE,pathlen:0")) == NULL ||
	    X509_add_ext(c->ca, e, -1) != 1) {
		X509_EXTENSION_free(e);
		goto tls;
	}
	X509_EXTENSION_free(e);
	if ((e = conf_ext(NID_key_usage, "critical,keyCertSign,cRLSign")) ==
	    NULL || X509_add_ext(c->ca, e, -1) != 1) {
		X509_EXTENSION_free(e);
		goto tls;
	}
	X509_EXTENSION_free(e);
	if ((e = ski_ext(pub)) == NULL ||
	    X509_add_ext(c->ca, e, -1) != 1) {
		X509_EXTENSION_free(e);
		goto tls;
	}
	X509_EXTENSION_free(e);
	if (X509_sign(c->ca, c->ca_key, EVP_sha256()) <= 0)
		goto tls;
	r = 0;
	goto out;
tls:
	snprintf(err, errlen, "cannot create the ephemeral CA: %s",
	    certs_tls_errors(tls, sizeof tls));
out:
	EVP_PKEY_free(pub);
	X509_NAME_free(name);
	return r;
}

/* A small regular file, whole; the caller wipes it (it may be a key). */
static int
read_small(int fd, size_t max, char **out, size_t *outlen)
{
	struct stat	 st;
	char		*buf;
	size_t		 cap, len = 0;
	ssize_t		 n;

	if (fstat(fd, &st) == -1)
		return -1;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		return -1;
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size >= max) {
		errno = EFBIG;
		return -1;
	}
	cap = (size_t)st.st_size + 1;
	buf = xcalloc(1, cap);
	for (;;) {
		if (len == cap) {
			freezero(buf, cap);
			errno = EFBIG;
			return -1;
		}
		if ((n = read(fd, buf + len, cap - len)) == -1) {
			if (errno == EINTR)
				continue;
			n = errno;
			freezero(buf, cap);
			errno = (int)n;
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static const char *
read_error(int e)
{
	if (e == EINVAL)
		return "not a regular file";
	if (e == EFBIG)
		return "file too large";
	return strerror(e);
}

/* The PEM password callback: never prompt, just note that one was asked. */
static int
no_password(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	if (arg != NULL)
		*(int *)arg = 1;
	return -1;
}

static int
load_key(struct certs *c, const char *path, char *err, size_t errlen)
{
	struct stat	 st;
	BIO		*bio = NULL;
	char		*buf = NULL, tls[256];
	size_t		 len = 0;
	int		 fd, asked = 0, r = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot read ca key '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & 077) != 0) {
		snprintf(err, errlen,
		    "ca key '%s' is readable by others: chmod 600 %s", path,
		    path);
		goto out;
	}
	if (read_small(fd, KEY_FILE_MAX, &buf, &len) != 0) {
		snprintf(err, errlen, "cannot read ca key '%s': %s", path,
		    read_error(errno));
		goto out;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL) {
		snprintf(err, errlen, "cannot read ca key '%s': %s", path,
		    certs_tls_errors(tls, sizeof tls));
		goto out;
	}
	c->ca_key = PEM_read_bio_PrivateKey(bio, NULL, no_password, &asked);
	if (c->ca_key == NULL) {
		certs_tls_errors(tls, sizeof tls);
		if (asked)
			snprintf(err, errlen, "ca key '%s' is encrypted: "
			    "give an unencrypted copy (openssl pkey -in %s "
			    "-out NEW), mode 600", path, path);
		else
			snprintf(err, errlen, "ca key '%s' is not a PEM "
			    "private key: %s", path, tls);
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	if (buf != NULL)
		freezero(buf, len + 1);
	close(fd);
	return r;
}

static int
load_cert(struct certs *c, const char *path, char *err, size_t errlen)
{
	BIO	*bio = NULL;
	char	*buf = NULL, tls[256];
	size_t	 len = 0;
	int	 fd, r = -1;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "cannot read ca certificate '%s': %s",
		    path, strerror(errno));
		return -1;
	}
	if (read_small(fd, CERT_FILE_MAX, &buf, &len) != 0) {
		snprintf(err, errlen, "cannot read ca certificate '%s': %s",
		    path, read_error(errno));
		goto out;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (c->ca = PEM_read_bio_X509(bio, NULL, no_password, NULL)) ==
	    NULL) {
		snprintf(err, errlen, "ca certificate '%s' is not a PEM "
		    "certificate: %s", path, certs_tls_errors(tls, sizeof tls));
		goto out;
	}
	r = 0;
out:
	BIO_free(bio);
	free(buf);
	close(fd);
	return r;
}

static int
load_ca(struct certs *c, const char *cert_file, const char *key_file,
    char *err, size_t errlen)
{
	uint32_t	flags;
	char		when[64];

	/* The key first: a key others can read is refused before anything
	 * else is said about it. */
	if (load_key(c, key_file, err, errlen) != 0 ||
	    load_cert(c, cert_file, err, errlen) != 0)
		return -1;
	if (X509_check_private_key(c->ca, c->ca_key) != 1) {
		ERR_clear_error();
		snprintf(err, errlen, "ca key '%s' does not match ca "
		    "certificate '%s'", key_file, cert_file);
		return -1;
	}
	flags = X509_get_extension_flags(c->ca);
	if ((flags & EXFLAG_INVALID) != 0) {
		snprintf(err, errlen, "ca certificate '%s' has invalid "
		    "extensions", cert_file);
		return -1;
	}
	if ((flags & EXFLAG_CA) == 0) {
		snprintf(err, errlen, "ca certificate '%s' is not a CA "
		    "certificate (no basicConstraints CA:TRUE)", cert_file);
		return -1;
	}
	if ((flags & EXFLAG_KUSAGE) != 0 &&
	    (X509_get_key_usage(c->ca) & KU_KEY_CERT_SIGN) == 0) {
		snprintf(err, errlen, "ca certificate '%s' may not sign "
		    "certificates (keyUsage without keyCertSign)", cert_file);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(c->ca)) <= 0) {
		time_str(X509_get0_notAfter(c->ca), when, sizeof when);
		snprintf(err, errlen, "ca certificate '%s' expired on %s",
		    cert_file, when);
		return -1;
	}
	if (X509_cmp_current_time(X509_get0_notBefore(c->ca)) >= 0) {
		time_str(X509_get0_notBefore(c->ca), when, sizeof when);
		snprintf(err, errlen, "ca certificate '%s' is not valid "
		    "before %s", cert_file, when);
		return -1;
	}
	return 0;
}

static void
leaf_unprepare(struct certs *c)
{
	for (int i = 0; i < NLEAFEXT; i++) {
		X509_EXTENSION_free(c->ext[i]);
		c->ext[i] = NULL;
	}
	EVP_PKEY_free(c->leaf_pub);
	EVP_PKEY_free(c->leaf_key);
	c->leaf_pub = c->leaf_key = NULL;
}

/*
 * The key and the extensions every leaf shares. Made for the first leaf,
 * not at start: a run that intercepts nothing never pays for them.
 */
static int
leaf_prepare(struct certs *c)
{
	if (c->leaf_key != NULL)
		return 0;
	if ((c->leaf_key = EVP_EC_gen("P-256")) == NULL ||
	    (c->leaf_pub = legacy_public(c->leaf_key)) == NULL ||
	    (c->ext[EXT_BC] = conf_ext(NID_basic_constraints,
	    "critical,CA:FALSE")) == NULL ||
	    (c->ext[EXT_KU] = conf_ext(NID_key_usage,
	    "critical,digitalSignature")) == NULL ||
	    (c->ext[EXT_EKU] = conf_ext(NID_ext_key_usage,
	    "serverAuth")) == NULL ||
	    (c->ext[EXT_SKI] = ski_ext(c->leaf_pub)) == NULL ||
	    (c->ext[EXT_AKI] = aki_ext(c->ca)) == NULL) {
		leaf_unprepare(c);
		return -1;
	}
	return 0;
}

static int
add_san(X509 *x, const char *host)
{
	GENERAL_NAMES		*names = NULL;
	GENERAL_NAME		*gn = NULL;
	ASN1_OCTET_STRING	*ip = NULL;
	ASN1_IA5STRING		*dns = NULL;
	unsigned char		 addr[16];
	int			 addrlen, r = -1;

	if ((gn = GENERAL_NAME_new()) == NULL)
		goto out;
	if (is_ip(host, addr, &addrlen)) {
		if ((ip = ASN1_OCTET_STRING_new()) == NULL ||
		    ASN1_OCTET_STRING_set(ip, addr, addrlen) != 1)
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		ip = NULL;
	} else {
		if ((dns = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(dns, host, -1) != 1)
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
		dns = NULL;
	}
	if ((names = GENERAL_NAMES_new()) == NULL ||
	    sk_GENERAL_NAME_push(names, gn) <= 0)
		goto out;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0,
	    X509V3_ADD_DEFAULT) != 1)
		goto out;
	r = 0;
out:
	ASN1_OCTET_STRING_free(ip);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return r;
}

static X509 *
mint(struct certs *c, const char *host, time_t now)
{
	X509		*x;
	X509_NAME	*name = NULL;
	size_t		 cnlen;
	int		 ok = 0;

	if ((x = X509_new()) == NULL || (name = X509_NAME_new()) == NULL)
		goto out;
	if ((cnlen = strlen(host)) > CN_MAX)
		cnlen = CN_MAX;
	if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
	    (const unsigned char *)host, (int)cnlen, -1, 0) != 1)
		goto out;
	if (X509_set_version(x, X509_VERSION_3) != 1 ||
	    set_serial(x) != 0 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x, X509_get_subject_name(c->ca)) != 1 ||
	    set_validity(x, now, LEAF_LIFETIME) != 0 ||
	    X509_set_pubkey(x, c->leaf_pub) != 1)
		goto out;
	for (int i = 0; i < NLEAFEXT; i++)
		if (X509_add_ext(x, c->ext[i], -1) != 1)
			goto out;
	if (add_san(x, host) != 0 || X509_sign(x, c->ca_key, c->md) <= 0)
		goto out;
	ok = 1;
out:
	X509_NAME_free(name);
	if (!ok) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

static SSL_CTX *
server_ctx(void)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* No resumption: a full handshake with an EC leaf costs little, and
	 * every connection then shows its SNI and gets its host's leaf. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

/* http/1.1 when the client offers it, else no ALPN at all: never h2, the
 * relay speaks HTTP/1.1 only. */
static int
alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	unsigned int	i = 0, n;

	(void)ssl;
	(void)arg;
	while (i < inlen) {
		n = in[i++];
		if (n > inlen - i)
			break;
		if (n == sizeof alpn_h11 - 1 &&
		    memcmp(in + i, alpn_h11, n) == 0) {
			*out = alpn_h11;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

struct certs *
certs_new(const char *ca_cert_file, const char *ca_key_file, char *err,
    size_t errlen)
{
	struct certs	*c;
	X509		*probe;
	char		 tls[256];

	ERR_clear_error();
	c = xcalloc(1, sizeof *c);
	if ((ca_cert_file == NULL) != (ca_key_file == NULL)) {
		snprintf(err, errlen, "--ca-cert and --ca-key go together: "
		    "give both or neither");
		goto fail;
	}
	if (ca_cert_file == NULL) {
		if (make_ca(c, err, errlen) != 0)
			goto fail;
	} else if (load_ca(c, ca_cert_file, ca_key_file, err, errlen) != 0)
		goto fail;

	if (EVP_PKEY_is_a(c->ca_key, "ED25519") ||
	    EVP_PKEY_is_a(c->ca_key, "ED448"))
		c->md = NULL;
	else
		c->md = EVP_sha256();
	/* A loaded key may be of a kind that cannot sign certificates
	 * (X25519, ...): find out now, not at the first connection. An
	 * ephemeral CA prepares its leaves when the first is asked for. */
	if (ca_key_file != NULL) {
		if (leaf_prepare(c) != 0) {
			snprintf(err, errlen, "cannot prepare leaf "
			    "certificates: %s", certs_tls_errors(tls,
			    sizeof tls));
			goto fail;
		}
		if ((probe = mint(c, PROBE_HOST, time(NULL))) == NULL) {
			snprintf(err, errlen, "ca key '%s' cannot sign "
			    "certificates: %s", ca_key_file,
			    certs_tls_errors(tls, sizeof tls));
			goto fail;
		}
		X509_free(probe);
	}
	if (RAND_bytes((unsigned char *)&c->seed, sizeof c->seed) != 1)
		c->seed = (uint32_t)time(NULL);
	return c;
fail:
	certs_free(c);
	return NULL;
}

void
certs_free(struct certs *c)
{
	struct leaf	*l, *next;

	if (c == NULL)
		return;
	for (l = c->head; l != NULL; l = next) {
		next = l->next;
		X509_free(l->cert);
		free(l);
	}
	leaf_unprepare(c);
	SSL_CTX_free(c->server);
	SSL_CTX_free(c->client);
	free(c->client_extra);
	EVP_PKEY_free(c->ca_key);
	X509_free(c->ca);
	OPENSSL_cleanse(c, sizeof *c);
	free(c);
}

const X509 *
certs_ca(const struct certs *c)
{
	return c->ca;
}

int
certs_write_ca(const struct certs *c, const char *path, char *err,
    size_t errlen)
{
	BIO	*mem = NULL;
	char	*data, tls[256];
	long	 len;
	size_t	 off = 0;
	ssize_t	 n;
	int	 fd = -1, r = -1;

	if ((mem = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_X509(mem, c->ca) != 1 ||
	    (len = BIO_get_mem_data(mem, &data)) <= 0) {
		snprintf(err, errlen, "cannot encode the CA certificate: %s",
		    certs_tls_errors(tls, sizeof tls));
		goto out;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0644);
	if (fd == -1 || fchmod(fd, 0644) == -1)
		goto syserr;
	while (off < (size_t)len) {
		if ((n = write(fd, data + off, (size_t)len - off)) == -1) {
			if (errno == EINTR)
				continue;
			goto syserr;
		}
		off += (size_t)n;
	}
	n = close(fd);
	fd = -1;
	if (n == -1)
		goto syserr;
	r = 0;
	goto out;
syserr:
	snprintf(err, errlen, "cannot write the CA certificate to '%s': %s",
	    path, strerror(errno));
out:
	if (fd != -1)
		close(fd);
	BIO_free(mem);
	return r;
}

static uint32_t
hash_host(const struct certs *c, const char *host)
{
	uint32_t	h = 2166136261u ^ c->seed;	/* FNV-1a, seeded */

	for (; *host != '\0'; host++) {
		h ^= (unsigned char)*host;
		h *= 16777619u;
	}
	return h;
}

static void
lru_unlink(struct certs *c, struct leaf *l)
{
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		c->head = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	else
		c->tail = l->prev;
	l->prev = l->next = NULL;
}

static void
lru_push(struct certs *c, struct leaf *l)
{
	l->prev = NULL;
	l->next = c->head;
	if (c->head != NULL)
		c->head->prev = l;
	c->head = l;
	if (c->tail == NULL)
		c->tail = l;
}

static struct leaf *
cache_find(struct certs *c, const char *host, uint32_t h)
{
	struct leaf	*l;

	for (l = c->bucket[h & (NBUCKETS - 1)]; l != NULL; l = l->hnext)
		if (l->hash == h && strcmp(l->host, host) == 0)
			return l;
	return NULL;
}

static void
cache_remove(struct certs *c, struct leaf *l)
{
	struct leaf	**pp;

	for (pp = &c->bucket[l->hash & (NBUCKETS - 1)]; *pp != l;
	    pp = &(*pp)->hnext)
		;
	*pp = l->hnext;
	lru_unlink(c, l);
	X509_free(l->cert);
	free(l);
	c->count--;
}

static bool
valid_host(const char *host)
{
	size_t	len;

	if (host == NULL || (len = strlen(host)) == 0 || len > ADDR_HOST_MAX)
		return false;
	for (; *host != '\0'; host++)
		if (*host <= ' ' || *host >= 0x7f)
			return false;
	return true;
}

int
certs_leaf(struct certs *c, const char *host, X509 **cert, EVP_PKEY **key)
{
	struct leaf	*l;
	X509		*x;
	time_t		 now = time(NULL);
	uint32_t	 h;

	*cert = NULL;
	*key = NULL;
	if (!valid_host(host))
		return -1;
	h = hash_host(c, host);
	if ((l = cache_find(c, host, h)) != NULL) {
		if (l->not_after - now >= REMINT_MARGIN) {
			lru_unlink(c, l);
			lru_push(c, l);
			goto found;
		}
		cache_remove(c, l);
	}
	if (leaf_prepare(c) != 0 || (x = mint(c, host, now)) == NULL)
		return -1;
	if (c->count >= CERTS_CACHE_MAX)
		cache_remove(c, c->tail);
	l = xcalloc(1, sizeof *l);
	memcpy(l->host, host, strlen(host) + 1);
	l->cert = x;
	l->not_after = now + LEAF_LIFETIME;
	l->hash = h;
	l->hnext = c->bucket[h & (NBUCKETS - 1)];
	c->bucket[h & (NBUCKETS - 1)] = l;
	lru_push(c, l);
	c->count++;
found:
	if (X509_up_ref(l->cert) != 1)
		return -1;
	if (EVP_PKEY_up_ref(c->leaf_key) != 1) {
		X509_free(l->cert);
		return -1;
	}
	*cert = l->cert;
	*key = c->leaf_key;
	return 0;
}

size_t
certs_cache_count(const struct certs *c)
{
	return c->count;
}

SSL_CTX *
certs_server_ctx(struct certs *c)
{
	/* Made when the first client is intercepted: half a millisecond
	 * of OpenSSL's first use that need not delay COMMAND's start. */
	if (c->server == NULL) {
		if ((c->server = server_ctx()) == NULL)
			return NULL;
		SSL_CTX_set_alpn_select_cb(c->server, alpn_select, NULL);
	}
	if (SSL_CTX_up_ref(c->server) != 1)
		return NULL;
	return c->server;
}

int
certs_ssl_set_leaf(struct certs *c, SSL *ssl, const char *host)
{
	X509		*x;
	EVP_PKEY	*key;
	int		 r = -1;

	if (certs_leaf(c, host, &x, &key) != 0)
		return -1;
	/* Both take references of their own. */
	if (SSL_use_certificate(ssl, x) == 1 &&
	    SSL_use_PrivateKey(ssl, key) == 1)
		r = 0;
	X509_free(x);
	EVP_PKEY_free(key);
	return r;
}

/* Equal names, case-insensitive, one trailing dot ignored on either. */
static bool
same_name(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la > 0 && la == lb && strncasecmp(a, b, la) == 0;
}

int
certs_ssl_sni_matches(SSL *ssl, const char *host)
{
	const char	*sni;

	if (host == NULL)
		return 0;
	if ((sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) == NULL)
		return is_ip(host, NULL, NULL) ? 1 : 0;
	return same_name(sni, host) ? 1 : 0;
}

SSL_CTX *
certs_client_ctx(struct certs *c, const char *extra_ca_file, char *err,
    size_t errlen)
{
	SSL_CTX	*ctx;
	char	 tls[256];

	if (c != NULL && c->client != NULL) {
		if ((extra_ca_file == NULL) != (c->client_extra == NULL) ||
		    (extra_ca_file != NULL &&
		    strcmp(extra_ca_file, c->client_extra) != 0)) {
			snprintf(err, errlen, "the origin TLS context exists "
			    "already, with other extra roots");
			return NULL;
		}
		goto ref;
	}
	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_default_verify_paths(ctx) != 1) {
		snprintf(err, errlen, "cannot create the TLS client context: "
		    "%s", certs_tls_errors(tls, sizeof tls));
		goto fail;
	}
	if (extra_ca_file != NULL &&
	    SSL_CTX_load_verify_file(ctx, extra_ca_file) != 1) {
		snprintf(err, errlen, "cannot load upstream ca '%s': %s",
		    extra_ca_file, certs_tls_errors(tls, sizeof tls));
		goto fail;
	}
	/* Returns 0 on success, unlike the rest of OpenSSL. */
	if (SSL_CTX_set_alpn_protos(ctx, alpn_offer,
	    sizeof alpn_offer - 1) != 0) {
		snprintf(err, errlen, "cannot set ALPN: %s",
		    certs_tls_errors(tls, sizeof tls));
		goto fail;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	/* Any root we were given is an anchor, even an intermediate (a
	 * corporate --upstream-ca often is): what curl does too. */
	X509_VERIFY_PARAM_set_flags(SSL_CTX_get0_param(ctx),
	    X509_V_FLAG_PARTIAL_CHAIN);
	if (c == NULL)		/* nothing to cache it in: the caller's */
		return ctx;
	c->client = ctx;
	c->client_extra = extra_ca_file != NULL ? xstrdup(extra_ca_file) :
	    NULL;
ref:
	if (SSL_CTX_up_ref(c->client) != 1) {
		snprintf(err, errlen, "cannot reference the TLS client "
		    "context");
		return NULL;
	}
	return c->client;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

int
certs_ssl_client_setup(SSL *ssl, const char *host)
{
	if (!valid_host(host))
		return -1;
	if (is_ip(host, NULL, NULL)) {
		/* No SNI for an address (RFC 6066), but check the address. */
		if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
		    host) != 1)
			return -1;
		return 0;
	}
	if (SSL_set_tlsext_host_name(ssl, host) != 1 ||
	    SSL_set1_host(ssl, host) != 1)
		return -1;
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	return 0;
}

const char *
certs_verify_error(SSL *ssl)
{
	long	r;

	if ((r = SSL_get_verify_result(ssl)) == X509_V_OK)
		return NULL;
	return X509_verify_cert_error_string(r);
}
