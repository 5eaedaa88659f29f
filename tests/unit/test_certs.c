/*
 * certs: the interception CA, leaf minting and its cache, and real TLS
 * handshakes over a socketpair with both SSL_CTXs. CAs from files are made
 * with the openssl CLI in a temporary directory at run time.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "builtin/certs.h"
#include "test.h"

static char	tmpdir[64];

static const char *
tmp(const char *name)
{
	static char	buf[8][256];
	static int	i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, name);
	return buf[i];
}

static int
sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
sh(const char *fmt, ...)
{
	va_list	ap;
	char	cmd[2048];

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void
rm_tmpdir(void)
{
	DIR		*d;
	struct dirent	*e;

	if ((d = opendir(tmpdir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			unlink(tmp(e->d_name));
	closedir(d);
	rmdir(tmpdir);
}

/* A CA (or not) made by the openssl CLI: name.pem and name.key (0600). */
static int
make_ca_files(const char *name, const char *newkey, const char *bc,
    const char *extra)
{
	int	r;

	r = sh("openssl req -config %s -x509 -newkey %s -noenc "
	    "-keyout %s/%s.key -out %s/%s.pem -days 2 -subj '/CN=%s test CA' "
	    "-addext 'basicConstraints=%s' %s >/dev/null 2>&1",
	    tmp("req.cnf"), newkey, tmpdir, name, tmpdir, name, name, bc,
	    extra);
	if (r == 0) {
		char key[256];

		snprintf(key, sizeof key, "%s/%s.key", tmpdir, name);
		r = chmod(key, 0600);
	}
	return r;
}

static long
secs_between(const ASN1_TIME *from, const ASN1_TIME *to)
{
	int	days, secs;

	if (ASN1_TIME_diff(&days, &secs, from, to) != 1)
		return -1;
	return (long)days * 86400 + secs;
}

static long
secs_from_now(const ASN1_TIME *t)
{
	ASN1_TIME	*now = ASN1_TIME_set(NULL, time(NULL));
	long		 d = secs_between(now, t);

	ASN1_TIME_free(now);
	return d;
}

static bool
is_p256(EVP_PKEY *k)
{
	char	group[64];

	return EVP_PKEY_is_a(k, "EC") &&
	    EVP_PKEY_get_group_name(k, group, sizeof group, NULL) == 1 &&
	    strcmp(group, "prime256v1") == 0;
}

static bool
ext_critical(X509 *x, int nid)
{
	int	i = X509_get_ext_by_NID(x, nid, -1);

	return i >= 0 && X509_EXTENSION_get_critical(X509_get_ext(x, i)) == 1;
}

/* The single SAN entry: its type, and its text (DNS) or bytes (IP). */
static int
only_san(X509 *x, char *buf, size_t len, int *blen)
{
	GENERAL_NAMES	*gens;
	GENERAL_NAME	*gn;
	int		 type = -1;
	const unsigned char *p;
	int		 n;

	buf[0] = '\0';
	*blen = 0;
	if ((gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL)) ==
	    NULL)
		return -1;
	if (sk_GENERAL_NAME_num(gens) == 1) {
		gn = sk_GENERAL_NAME_value(gens, 0);
		type = gn->type;
		if (type == GEN_DNS || type == GEN_IPADD) {
			p = ASN1_STRING_get0_data(type == GEN_DNS ?
			    gn->d.dNSName : gn->d.iPAddress);
			n = ASN1_STRING_length(type == GEN_DNS ?
			    gn->d.dNSName : gn->d.iPAddress);
			if (n >= 0 && (size_t)n < len) {
				memcpy(buf, p, (size_t)n);
				buf[n] = '\0';
				*blen = n;
			}
		}
	}
	GENERAL_NAMES_free(gens);
	return type;
}

static void
cn_of(X509 *x, char *buf, size_t len)
{
	buf[0] = '\0';
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName,
	    buf, (int)len);
}

/* X509_verify_cert with only ca trusted, strict checks (unless told
 * otherwise), TLS server purpose, and a host name or IP address to match.
 * The X509 error. */
static int
verify_leaf_strict(const X509 *ca, X509 *leaf, const char *host,
    const char *ip, bool strict)
{
	X509_STORE		*st = X509_STORE_new();
	X509_STORE_CTX		*ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM	*p;
	int			 e;

	X509_STORE_add_cert(st, (X509 *)ca);
	X509_STORE_CTX_init(ctx, st, leaf, NULL);
	p = X509_STORE_CTX_get0_param(ctx);
	if (strict)
		X509_VERIFY_PARAM_set_flags(p, X509_V_FLAG_X509_STRICT);
	X509_VERIFY_PARAM_set_purpose(p, X509_PURPOSE_SSL_SERVER);
	if (host != NULL)
		X509_VERIFY_PARAM_set1_host(p, host, 0);
	if (ip != NULL)
		X509_VERIFY_PARAM_set1_ip_asc(p, ip);
	if (X509_verify_cert(ctx) == 1)
		e = X509_V_OK;
	else if ((e = X509_STORE_CTX_get_error(ctx)) == X509_V_OK)
		e = -1;
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(st);
	ERR_clear_error();
	return e;
}

static int
verify_leaf(const X509 *ca, X509 *leaf, const char *host, const char *ip)
{
	return verify_leaf_strict(ca, leaf, host, ip, true);
}

static struct certs *
new_ephemeral(void)
{
	char		 err[256] = "";
	struct certs	*c = certs_new(NULL, NULL, err, sizeof err);

	CHECK(c != NULL, "certs_new: %s", err);
	return c;
}

static void
ephemeral_ca_is_a_p256_ca_valid_for_30_days(void)
{
	struct certs		*c = new_ephemeral();
	X509			*ca;
	BASIC_CONSTRAINTS	*bc;
	char			 cn[128] = "", o[64] = "";
	int			 crit = -1;
	long			 d;

	if (c == NULL)
		return;
	ca = (X509 *)certs_ca(c);
	X509_NAME_get_text_by_NID(X509_get_subject_name(ca), NID_commonName,
	    cn, sizeof cn);
	X509_NAME_get_text_by_NID(X509_get_subject_name(ca),
	    NID_organizationName, o, sizeof o);
	CHECK(strncmp(cn, "egress-run ephemeral CA ", 24) == 0, "cn %s", cn);
	CHECK(strlen(cn) <= 64 && cn[strlen(cn) - 1] == 'Z', "cn %s", cn);
	CHECK_STR(o, "egress-run");
	CHECK(X509_NAME_cmp(X509_get_subject_name(ca),
	    X509_get_issuer_name(ca)) == 0, "self-issued");
	CHECK(X509_verify(ca, X509_get0_pubkey(ca)) == 1, "self-signed");
	CHECK(is_p256(X509_get0_pubkey(ca)), "P-256 key");
	CHECK(X509_get_version(ca) == X509_VERSION_3, "v3");

	bc = X509_get_ext_d2i(ca, NID_basic_constraints, &crit, NULL);
	CHECK(bc != NULL && bc->ca && crit == 1, "critical CA:TRUE");
	CHECK(bc != NULL && bc->pathlen != NULL &&
	    ASN1_INTEGER_get(bc->pathlen) == 0, "pathlen:0");
	BASIC_CONSTRAINTS_free(bc);
	CHECK(ext_critical(ca, NID_key_usage), "keyUsage critical");
	CHECK(X509_get_key_usage(ca) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN),
	    "keyUsage %x", X509_get_key_usage(ca));
	CHECK(X509_get0_subject_key_id(ca) != NULL, "SKI");

	CHECK(ASN1_STRING_length(X509_get0_serialNumber(ca)) == 16 &&
	    ASN1_STRING_type(X509_get0_serialNumber(ca)) == V_ASN1_INTEGER,
	    "positive 128-bit serial");
	d = secs_from_now(X509_get0_notBefore(ca));
	CHECK(d <= -3590 && d >= -3610, "notBefore now-1h: %ld", d);
	d = secs_from_now(X509_get0_notAfter(ca));
	CHECK(d >= 30 * 86400 - 10 && d <= 30 * 86400 + 10,
	    "notAfter now+30d: %ld", d);
	certs_free(c);
}

static void
ephemeral_cas_differ_between_runs(void)
{
	struct certs	*a = new_ephemeral(), *b = new_ephemeral();

	if (a == NULL || b == NULL)
		goto out;
	CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(certs_ca(a)),
	    X509_get0_serialNumber(certs_ca(b))) != 0, "serials");
	CHECK(EVP_PKEY_eq(X509_get0_pubkey(certs_ca(a)),
	    X509_get0_pubkey(certs_ca(b))) != 1, "keys");
out:
	certs_free(a);
	certs_free(b);
}

static void
leaf_for_name_has_dns_san_and_verifies_for_that_name_only(void)
{
	struct certs	*c = new_ephemeral();
	X509		*x = NULL;
	EVP_PKEY	*k = NULL;
	char		 san[256], cn[128];
	int		 n;

	if (c == NULL)
		return;
	CHECK(certs_leaf(c, "example.test", &x, &k) == 0, "mint");
	if (x == NULL)
		goto out;
	CHECK(only_san(x, san, sizeof san, &n) == GEN_DNS, "one DNS SAN");
	CHECK_STR(san, "example.test");
	cn_of(x, cn, sizeof cn);
	CHECK_STR(cn, "example.test");
	CHECK(X509_NAME_cmp(X509_get_issuer_name(x),
	    X509_get_subject_name(certs_ca(c))) == 0, "issuer is the CA");
	CHECK(X509_check_private_key(x, k) == 1, "key is the leaf's");
	CHECK(verify_leaf(certs_ca(c), x, "example.test", NULL) == X509_V_OK,
	    "right host verifies");
	CHECK(verify_leaf(certs_ca(c), x, "EXAMPLE.test", NULL) == X509_V_OK,
	    "case-insensitive");
	CHECK(verify_leaf(certs_ca(c), x, "other.test", NULL) ==
	    X509_V_ERR_HOSTNAME_MISMATCH, "other host fails");
	CHECK(verify_leaf(certs_ca(c), x, "a.example.test", NULL) ==
	    X509_V_ERR_HOSTNAME_MISMATCH, "no wildcard");
	CHECK(verify_leaf(certs_ca(c), x, NULL, "192.0.2.1") ==
	    X509_V_ERR_IP_ADDRESS_MISMATCH, "no IP");
out:
	X509_free(x);
	EVP_PKEY_free(k);
	certs_free(c);
}

static void
leaf_for_ip_literal_has_ip_san_and_verifies_for_that_address_only(void)
{
	static const struct {
		const char	*host;
		int		 len;
		const char	*other;
	} t[] = {
		{ "192.0.2.7", 4, "192.0.2.8" },
		{ "2001:db8::1", 16, "2001:db8::2" },
		{ "::1", 16, "127.0.0.1" },
		{ "::ffff:127.0.0.1", 16, "127.0.0.1" },
	};
	struct certs	*c = new_ephemeral();
	X509		*x;
	EVP_PKEY	*k;
	char		 san[64], cn[128];
	int		 n;

	if (c == NULL)
		return;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		CHECK(certs_leaf(c, t[i].host, &x, &k) == 0, "%s", t[i].host);
		if (x == NULL)
			continue;
		CHECK(only_san(x, san, sizeof san, &n) == GEN_IPADD,
		    "%s: one IP SAN", t[i].host);
		CHECK(n == t[i].len, "%s: %d bytes", t[i].host, n);
		cn_of(x, cn, sizeof cn);
		CHECK_STR(cn, t[i].host);
		CHECK(verify_leaf(certs_ca(c), x, NULL, t[i].host) ==
		    X509_V_OK, "%s verifies", t[i].host);
		CHECK(verify_leaf(certs_ca(c), x, NULL, t[i].other) ==
		    X509_V_ERR_IP_ADDRESS_MISMATCH, "%s: %s fails", t[i].host,
		    t[i].other);
		X509_free(x);
		EVP_PKEY_free(k);
	}
	certs_free(c);
}

static void
leaf_is_a_short_lived_v3_server_certificate(void)
{
	struct certs			*c = new_ephemeral();
	X509				*x = NULL;
	EVP_PKEY			*k = NULL;
	BASIC_CONSTRAINTS		*bc;
	const ASN1_OCTET_STRING		*aki;
	int				 crit = -1;
	long				 d;

	if (c == NULL)
		return;
	if (certs_leaf(c, "example.test", &x, &k) != 0)
		goto out;
	CHECK(X509_get_version(x) == X509_VERSION_3, "v3");
	CHECK(ASN1_STRING_length(X509_get0_serialNumber(x)) == 16 &&
	    ASN1_STRING_type(X509_get0_serialNumber(x)) == V_ASN1_INTEGER,
	    "positive 128-bit serial");
	bc = X509_get_ext_d2i(x, NID_basic_constraints, &crit, NULL);
	CHECK(bc != NULL && !bc->ca, "CA:FALSE");
	BASIC_CONSTRAINTS_free(bc);
	CHECK(ext_critical(x, NID_key_usage), "keyUsage critical");
	CHECK(X509_get_key_usage(x) == KU_DIGITAL_SIGNATURE, "keyUsage %x",
	    X509_get_key_usage(x));
	CHECK(X509_get_extended_key_usage(x) == XKU_SSL_SERVER, "EKU %x",
	    X509_get_extended_key_usage(x));
	CHECK(X509_get0_subject_key_id(x) != NULL, "SKI");
	aki = X509_get0_authority_key_id(x);
	CHECK(aki != NULL && ASN1_OCTET_STRING_cmp(aki,
	    X509_get0_subject_key_id((X509 *)certs_ca(c))) == 0,
	    "AKI is the CA's SKI");
	CHECK(X509_get_signature_nid(x) == NID_ecdsa_with_SHA256,
	    "ecdsa-with-SHA256, got %d", X509_get_signature_nid(x));
	CHECK(is_p256(k), "P-256 leaf key");
	d = secs_from_now(X509_get0_notBefore(x));
	CHECK(d <= -3590 && d >= -3610, "notBefore now-1h: %ld", d);
	d = secs_from_now(X509_get0_notAfter(x));
	CHECK(d >= 86400 - 10 && d <= 86400 + 10, "notAfter now+24h: %ld", d);
out:
	X509_free(x);
	EVP_PKEY_free(k);
	certs_free(c);
}

static void
leaves_share_one_key_but_never_a_serial(void)
{
	struct certs	*c = new_ephemeral();
	X509		*a = NULL, *b = NULL;
	EVP_PKEY	*ka = NULL, *kb = NULL;

	if (c == NULL)
		return;
	CHECK(certs_leaf(c, "a.test", &a, &ka) == 0, "a");
	CHECK(certs_leaf(c, "b.test", &b, &kb) == 0, "b");
	if (a != NULL && b != NULL) {
		CHECK(ka == kb, "one key for all leaves");
		CHECK(ASN1_INTEGER_cmp(X509_get0_serialNumber(a),
		    X509_get0_serialNumber(b)) != 0, "serials differ");
		CHECK(EVP_PKEY_eq(ka, X509_get0_pubkey(certs_ca(c))) != 1,
		    "leaf key is not the CA key");
	}
	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(ka);
	EVP_PKEY_free(kb);
	certs_free(c);
}

static void
leaf_is_cached_per_host(void)
{
	struct certs	*c = new_ephemeral();
	X509		*a1 = NULL, *a2 = NULL, *b = NULL;
	EVP_PKEY	*k1 = NULL, *k2 = NULL, *k3 = NULL;

	if (c == NULL)
		return;
	certs_leaf(c, "a.test", &a1, &k1);
	certs_leaf(c, "a.test", &a2, &k2);
	certs_leaf(c, "b.test", &b, &k3);
	CHECK(a1 != NULL && a1 == a2, "same host, same certificate");
	CHECK(a1 != NULL && b != NULL && ASN1_INTEGER_cmp(
	    X509_get0_serialNumber(a1), X509_get0_serialNumber(b)) != 0,
	    "other host, other certificate");
	CHECK(certs_cache_count(c) == 2, "count %zu", certs_cache_count(c));
	X509_free(a1);
	X509_free(a2);
	X509_free(b);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(k3);
	/* The cache's own references outlive the caller's. */
	CHECK(certs_leaf(c, "a.test", &a1, &k1) == 0 &&
	    X509_check_private_key(a1, k1) == 1, "cached leaf still good");
	X509_free(a1);
	EVP_PKEY_free(k1);
	certs_free(c);
}

/* Mint host "h<i>.test" and return its serial (a copy). */
static ASN1_INTEGER *
serial_of(struct certs *c, int i)
{
	char		 host[32];
	X509		*x;
	EVP_PKEY	*k;
	ASN1_INTEGER	*s;

	snprintf(host, sizeof host, "h%d.test", i);
	if (certs_leaf(c, host, &x, &k) != 0)
		return NULL;
	s = ASN1_INTEGER_dup(X509_get0_serialNumber(x));
	X509_free(x);
	EVP_PKEY_free(k);
	return s;
}

static bool
same_serial(struct certs *c, int i, const ASN1_INTEGER *before)
{
	ASN1_INTEGER	*now = serial_of(c, i);
	bool		 same;

	same = now != NULL && ASN1_INTEGER_cmp(now, before) == 0;

	ASN1_INTEGER_free(now);
	return same;
}

static void
leaf_cache_is_bounded_and_evicts_least_recently_used(void)
{
	struct certs	*c = new_ephemeral();
	ASN1_INTEGER	*first[3] = { NULL, NULL, NULL }, *last = NULL, *s;

	if (c == NULL)
		return;
	for (int i = 0; i < CERTS_CACHE_MAX; i++) {
		s = serial_of(c, i);
		CHECK(s != NULL, "mint %d", i);
		if (i < 3)
			first[i] = s;
		else
			ASN1_INTEGER_free(s);
	}
	CHECK(certs_cache_count(c) == CERTS_CACHE_MAX, "full: %zu",
	    certs_cache_count(c));
	/* Use h0 again: h1 is now the least recently used. */
	CHECK(same_serial(c, 0, first[0]), "h0 cached");
	last = serial_of(c, CERTS_CACHE_MAX);
	CHECK(certs_cache_count(c) == CERTS_CACHE_MAX, "bound kept: %zu",
	    certs_cache_count(c));
	CHECK(same_serial(c, 0, first[0]), "recently used h0 kept");
	CHECK(same_serial(c, 2, first[2]), "h2 kept");
	CHECK(same_serial(c, CERTS_CACHE_MAX, last), "newest kept");
	CHECK(!same_serial(c, 1, first[1]), "h1 evicted and minted anew");
	CHECK(certs_cache_count(c) == CERTS_CACHE_MAX, "bound kept: %zu",
	    certs_cache_count(c));
	for (int i = 0; i < 3; i++)
		ASN1_INTEGER_free(first[i]);
	ASN1_INTEGER_free(last);
	certs_free(c);
}

static void
leaf_for_long_name_truncates_cn_but_not_san(void)
{
	struct certs	*c = new_ephemeral();
	char		 host[254], san[256], cn[128];
	X509		*x = NULL;
	EVP_PKEY	*k = NULL;
	int		 n;

	if (c == NULL)
		return;
	/* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 bytes */
	memset(host, 'a', 253);
	host[63] = host[127] = host[191] = '.';
	host[253] = '\0';
	CHECK(certs_leaf(c, host, &x, &k) == 0, "mint 253 bytes");
	if (x != NULL) {
		only_san(x, san, sizeof san, &n);
		CHECK_STR(san, host);
		cn_of(x, cn, sizeof cn);
		CHECK(strlen(cn) == 64 && strncmp(cn, host, 64) == 0,
		    "cn %s", cn);
		CHECK(verify_leaf(certs_ca(c), x, host, NULL) == X509_V_OK,
		    "verifies");
	}
	X509_free(x);
	EVP_PKEY_free(k);
	certs_free(c);
}

static void
leaf_refuses_empty_overlong_or_binary_host(void)
{
	struct certs	*c = new_ephemeral();
	char		 host[300];
	X509		*x = (X509 *)1;
	EVP_PKEY	*k = (EVP_PKEY *)1;

	if (c == NULL)
		return;
	memset(host, 'a', sizeof host - 1);
	host[sizeof host - 1] = '\0';
	CHECK(certs_leaf(c, "", &x, &k) == -1 && x == NULL && k == NULL,
	    "empty");
	CHECK(certs_leaf(c, NULL, &x, &k) == -1, "NULL");
	CHECK(certs_leaf(c, host, &x, &k) == -1, "over 253 bytes");
	CHECK(certs_leaf(c, "a b.test", &x, &k) == -1, "space");
	CHECK(certs_leaf(c, "a\n.test", &x, &k) == -1, "control");
	CHECK(certs_cache_count(c) == 0, "nothing cached");
	certs_free(c);
}

static struct certs *
load(const char *cert, const char *key, char *err, size_t errlen)
{
	err[0] = '\0';
	return certs_new(cert, key, err, errlen);
}

static void
ca_from_files_with_mode_600_signs_verifiable_leaves(void)
{
	static const struct {
		const char	*name;
		const char	*newkey;
		const char	*extra;
		int		 signature;
		bool		 strict;
	} t[] = {
		{ "ec", "ec -pkeyopt ec_paramgen_curve:P-256",
		    "-addext 'keyUsage=critical,keyCertSign,cRLSign'",
		    NID_ecdsa_with_SHA256, true },
		{ "rsa", "rsa:2048",
		    "-addext 'keyUsage=critical,keyCertSign,cRLSign'",
		    NID_sha256WithRSAEncryption, true },
		/* No SKI: the leaves' AKI is computed from the key (and a
		 * CA without SKI fails strict checks, whatever its leaves). */
		{ "ed", "ed25519", "-addext 'subjectKeyIdentifier=none' "
		    "-addext 'keyUsage=critical,keyCertSign,cRLSign'",
		    NID_ED25519, false },
	};
	struct certs	*c;
	char		 err[256], cert[256], key[256];
	X509		*x;
	EVP_PKEY	*k;
	int		 e;

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		CHECK(make_ca_files(t[i].name, t[i].newkey,
		    "critical,CA:TRUE", t[i].extra) == 0, "openssl %s",
		    t[i].name);
		snprintf(cert, sizeof cert, "%s/%s.pem", tmpdir, t[i].name);
		snprintf(key, sizeof key, "%s/%s.key", tmpdir, t[i].name);
		c = load(cert, key, err, sizeof err);
		CHECK(c != NULL, "%s: %s", t[i].name, err);
		if (c == NULL)
			continue;
		CHECK(certs_leaf(c, "example.test", &x, &k) == 0, "%s: mint",
		    t[i].name);
		if (x != NULL) {
			CHECK(X509_get_signature_nid(x) == t[i].signature,
			    "%s: signature %d", t[i].name,
			    X509_get_signature_nid(x));
			CHECK(is_p256(k), "%s: P-256 leaf", t[i].name);
			e = verify_leaf_strict(certs_ca(c), x, "example.test",
			    NULL, t[i].strict);
			CHECK(e == X509_V_OK, "%s: verifies: %s", t[i].name,
			    X509_verify_cert_error_string(e));
			CHECK(X509_get0_authority_key_id(x) != NULL,
			    "%s: AKI", t[i].name);
			X509_free(x);
			EVP_PKEY_free(k);
		}
		certs_free(c);
	}
}

static void
ca_key_readable_by_others_is_refused(void)
{
	static const mode_t	modes[] = { 0644, 0640, 0604, 0660 };
	struct certs		*c;
	char			 err[512], want[512];
	const char		*key = tmp("ec.key");

	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		chmod(key, modes[i]);
		c = load(tmp("ec.pem"), key, err, sizeof err);
		CHECK(c == NULL, "mode %o accepted", (unsigned)modes[i]);
		certs_free(c);
		snprintf(want, sizeof want,
		    "ca key '%s' is readable by others: chmod 600 %s", key,
		    key);
		CHECK_STR(err, want);
	}
	chmod(key, 0400);
	c = load(tmp("ec.pem"), key, err, sizeof err);
	CHECK(c != NULL, "0400: %s", err);
	certs_free(c);
	chmod(key, 0600);
}

static void
ca_key_not_matching_the_certificate_is_refused(void)
{
	struct certs	*c;
	char		 err[512];

	/* rsa.key against ec.pem: another key and another kind. */
	c = load(tmp("ec.pem"), tmp("rsa.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "does not match") != NULL &&
	    strstr(err, "rsa.key") != NULL, "%s", err);
	certs_free(c);
	CHECK(sh("openssl genpkey -algorithm EC -pkeyopt "
	    "ec_paramgen_curve:P-256 -out %s 2>/dev/null && chmod 600 %s",
	    tmp("other.key"), tmp("other.key")) == 0, "genpkey");
	c = load(tmp("ec.pem"), tmp("other.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "does not match") != NULL, "%s", err);
	certs_free(c);
}

static void
certificate_that_is_no_ca_is_refused(void)
{
	struct certs	*c;
	char		 err[512];

	CHECK(make_ca_files("leaf", "ec -pkeyopt ec_paramgen_curve:P-256",
	    "critical,CA:FALSE", "") == 0, "openssl");
	c = load(tmp("leaf.pem"), tmp("leaf.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "is not a CA") != NULL &&
	    strstr(err, "leaf.pem") != NULL, "%s", err);
	certs_free(c);

	CHECK(make_ca_files("nosign", "ec -pkeyopt ec_paramgen_curve:P-256",
	    "critical,CA:TRUE", "-addext 'keyUsage=critical,digitalSignature'")
	    == 0, "openssl");
	c = load(tmp("nosign.pem"), tmp("nosign.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "keyCertSign") != NULL, "%s", err);
	certs_free(c);
}

/* openssl req cannot back-date: an expired CA made with the API. */
static int
write_expired_ca(const char *cert, const char *key)
{
	EVP_PKEY		*k = EVP_EC_gen("P-256");
	X509			*x = X509_new();
	X509_EXTENSION		*e;
	X509V3_CTX		 v3;
	FILE			*f;
	time_t			 now = time(NULL);
	int			 r = -1;

	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
	X509_NAME_add_entry_by_NID(X509_get_subject_name(x), NID_commonName,
	    MBSTRING_UTF8, (const unsigned char *)"expired CA", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_time_adj_ex(X509_getm_notBefore(x), -3, 0, &now);
	X509_time_adj_ex(X509_getm_notAfter(x), -1, 0, &now);
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&v3);
	e = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints,
	    "critical,CA:TRUE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (X509_sign(x, k, EVP_sha256()) <= 0)
		goto out;
	if ((f = fopen(cert, "w")) == NULL)
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	if ((f = fopen(key, "w")) == NULL)
		goto out;
	fchmod(fileno(f), 0600);
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	r = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return r;
}

static void
expired_ca_is_refused(void)
{
	struct certs	*c;
	char		 err[512];

	CHECK(write_expired_ca(tmp("old.pem"), tmp("old.key")) == 0, "make");
	c = load(tmp("old.pem"), tmp("old.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "expired on ") != NULL &&
	    strstr(err, "old.pem") != NULL, "%s", err);
	certs_free(c);
}

static void
unreadable_or_non_pem_files_are_refused(void)
{
	struct certs	*c;
	char		 err[512];
	int		 fd;

	c = load(tmp("ec.pem"), tmp("missing.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "cannot read ca key") != NULL &&
	    strstr(err, "missing.key") != NULL &&
	    strstr(err, "No such file") != NULL, "%s", err);
	certs_free(c);
	c = load(tmp("missing.pem"), tmp("ec.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "cannot read ca certificate") !=
	    NULL && strstr(err, "missing.pem") != NULL, "%s", err);
	certs_free(c);
	c = load(tmpdir, tmp("ec.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "not a regular file") != NULL, "%s",
	    err);
	certs_free(c);

	fd = open(tmp("junk.key"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd != -1 && write(fd, "not a key\n", 10) == 10, "junk");
	close(fd);
	c = load(tmp("ec.pem"), tmp("junk.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "is not a PEM private key") != NULL,
	    "%s", err);
	certs_free(c);
	/* The key in place of the certificate. */
	c = load(tmp("ec.key"), tmp("ec.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "is not a PEM certificate") != NULL,
	    "%s", err);
	CHECK(strstr(err, "BEGIN") == NULL, "no file content: %s", err);
	certs_free(c);
}

static void
encrypted_ca_key_is_refused_without_a_prompt(void)
{
	struct certs	*c;
	char		 err[512];

	CHECK(sh("openssl pkey -in %s -aes256 -passout pass:hunter2 "
	    "-out %s 2>/dev/null && chmod 600 %s", tmp("ec.key"),
	    tmp("enc.key"), tmp("enc.key")) == 0, "openssl pkey");
	c = load(tmp("ec.pem"), tmp("enc.key"), err, sizeof err);
	CHECK(c == NULL && strstr(err, "is encrypted") != NULL, "%s", err);
	certs_free(c);
}

static void
ca_certificate_without_key_is_refused(void)
{
	struct certs	*c;
	char		 err[256] = "";

	c = certs_new(tmp("ec.pem"), NULL, err, sizeof err);
	CHECK(c == NULL && strstr(err, "--ca-key") != NULL, "%s", err);
	certs_free(c);
	c = certs_new(NULL, tmp("ec.key"), err, sizeof err);
	CHECK(c == NULL, "key alone");
	certs_free(c);
}

static void
write_ca_writes_the_certificate_alone_mode_644(void)
{
	struct certs	*c = new_ephemeral();
	struct stat	 st;
	char		 err[256], line[512] = "", buf[8192];
	FILE		*p;
	int		 fd;
	ssize_t		 n;

	if (c == NULL)
		return;
	CHECK(certs_write_ca(c, tmp("written.pem"), err, sizeof err) == 0,
	    "%s", err);
	CHECK(stat(tmp("written.pem"), &st) == 0 &&
	    (st.st_mode & 07777) == 0644, "mode %o",
	    (unsigned)(st.st_mode & 07777));
	snprintf(buf, sizeof buf, "openssl x509 -noout -subject -in %s",
	    tmp("written.pem"));
	if ((p = popen(buf, "r")) != NULL) {
		if (fgets(line, sizeof line, p) == NULL)
			line[0] = '\0';
		CHECK(pclose(p) == 0, "openssl x509 failed");
	}
	CHECK(strstr(line, "egress-run ephemeral CA") != NULL &&
	    strstr(line, "O = egress-run") != NULL, "subject: %s", line);
	fd = open(tmp("written.pem"), O_RDONLY);
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	CHECK(strstr(buf, "PRIVATE") == NULL, "no key in the file");
	CHECK(strncmp(buf, "-----BEGIN CERTIFICATE-----", 27) == 0, "PEM");

	CHECK(certs_write_ca(c, tmp("nodir/x.pem"), err, sizeof err) == -1 &&
	    strstr(err, "nodir/x.pem") != NULL, "%s", err);
	certs_free(c);
}

/*
 * TLS over a socketpair: both ends non-blocking, driven in turn until
 * both finish or one fails.
 */
struct tls_pair {
	SSL	*cli;
	SSL	*srv;
	int	 fd[2];
};

/* The server end uses certs' server context; our reference to it is
 * released at once (the SSL holds its own). */
static void
pair_open(struct tls_pair *t, SSL_CTX *cctx, struct certs *c)
{
	SSL_CTX	*sctx;

	t->fd[0] = t->fd[1] = -1;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, t->fd) != 0 ||
	    (sctx = certs_server_ctx(c)) == NULL)
		abort();
	t->cli = SSL_new(cctx);
	t->srv = SSL_new(sctx);
	SSL_CTX_free(sctx);
	SSL_set_fd(t->cli, t->fd[0]);
	SSL_set_fd(t->srv, t->fd[1]);
	SSL_set_connect_state(t->cli);
	SSL_set_accept_state(t->srv);
}

static int
pair_handshake(struct tls_pair *t)
{
	SSL	*s[2] = { t->cli, t->srv };
	bool	 done[2] = { false, false };
	int	 r, e;

	for (int round = 0; round < 1000 && !(done[0] && done[1]); round++)
		for (int i = 0; i < 2; i++) {
			if (done[i])
				continue;
			if ((r = SSL_do_handshake(s[i])) == 1) {
				done[i] = true;
				continue;
			}
			e = SSL_get_error(s[i], r);
			if (e != SSL_ERROR_WANT_READ &&
			    e != SSL_ERROR_WANT_WRITE) {
				ERR_clear_error();
				return -1;
			}
		}
	return done[0] && done[1] ? 0 : -1;
}

static void
pair_close(struct tls_pair *t)
{
	SSL_free(t->cli);
	SSL_free(t->srv);
	close(t->fd[0]);
	close(t->fd[1]);
}

/* A plain client context trusting one CA file only. */
static SSL_CTX *
client_trusting(const char *cafile, const unsigned char *alpn,
    unsigned alpnlen)
{
	SSL_CTX	*ctx = SSL_CTX_new(TLS_client_method());

	SSL_CTX_load_verify_file(ctx, cafile);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (alpn != NULL)
		SSL_CTX_set_alpn_protos(ctx, alpn, alpnlen);
	return ctx;
}

static void
alpn_of(SSL *ssl, char *buf, size_t len)
{
	const unsigned char	*p;
	unsigned int		 n;

	SSL_get0_alpn_selected(ssl, &p, &n);
	snprintf(buf, len, "%.*s", (int)n, p != NULL ? (const char *)p : "");
}

static void
handshake_with_leaf_verifies_against_written_ca(void)
{
	static const unsigned char	 offer[] = "\x02h2\x08http/1.1";
	struct certs			*c = new_ephemeral();
	SSL_CTX				*cctx;
	struct tls_pair			 t;
	char				 err[256], alpn[32];

	if (c == NULL)
		return;
	CHECK(certs_write_ca(c, tmp("mitm-ca.pem"), err, sizeof err) == 0,
	    "%s", err);
	cctx = client_trusting(tmp("mitm-ca.pem"), offer, sizeof offer - 1);
	pair_open(&t, cctx, c);
	CHECK(certs_ssl_set_leaf(c, t.srv, "example.test") == 0, "set leaf");
	SSL_set_tlsext_host_name(t.cli, "example.test");
	SSL_set1_host(t.cli, "example.test");
	CHECK(pair_handshake(&t) == 0, "handshake");
	CHECK(SSL_get_verify_result(t.cli) == X509_V_OK, "verify: %s",
	    X509_verify_cert_error_string(SSL_get_verify_result(t.cli)));
	CHECK(certs_ssl_sni_matches(t.srv, "example.test") == 1, "SNI");
	CHECK(certs_ssl_sni_matches(t.srv, "example.test.") == 1,
	    "trailing dot");
	CHECK(certs_ssl_sni_matches(t.srv, "other.test") == 0, "other");
	alpn_of(t.cli, alpn, sizeof alpn);
	CHECK_STR(alpn, "http/1.1");
	CHECK(SSL_version(t.cli) >= TLS1_2_VERSION, "TLS >= 1.2");
	CHECK(SSL_session_reused(t.cli) == 0, "full handshake");
	pair_close(&t);
	SSL_CTX_free(cctx);
	certs_free(c);
}

static void
sni_must_name_the_host(void)
{
	static const struct {
		const char	*sni;		/* NULL: none sent */
		const char	*host;
		int		 match;
	} t[] = {
		{ "example.test", "example.test", 1 },
		{ "EXAMPLE.Test.", "example.test", 1 },
		{ "other.test", "example.test", 0 },
		{ "example.test.evil", "example.test", 0 },
		{ "xexample.test", "example.test", 0 },
		{ "example.tes", "example.test", 0 },
		{ NULL, "example.test", 0 },
		{ NULL, "192.0.2.7", 1 },
		{ NULL, "2001:db8::1", 1 },
		{ "192.0.2.7", "192.0.2.7", 1 },
		{ "example.test", "192.0.2.7", 0 },
	};
	struct certs	*c = new_ephemeral();
	SSL_CTX		*cctx;
	struct tls_pair	 p;

	if (c == NULL)
		return;
	cctx = SSL_CTX_new(TLS_client_method());
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		pair_open(&p, cctx, c);
		certs_ssl_set_leaf(c, p.srv, t[i].host);
		if (t[i].sni != NULL)
			SSL_set_tlsext_host_name(p.cli, t[i].sni);
		CHECK(pair_handshake(&p) == 0, "handshake %zu", i);
		CHECK(certs_ssl_sni_matches(p.srv, t[i].host) == t[i].match,
		    "SNI %s, host %s", t[i].sni ? t[i].sni : "(none)",
		    t[i].host);
		pair_close(&p);
	}
	SSL_CTX_free(cctx);
	certs_free(c);
}

static void
alpn_selects_http11_only(void)
{
	static const struct {
		const char	*offer;
		unsigned	 len;
		const char	*want;
	} t[] = {
		{ "\x02h2\x08http/1.1", 12, "http/1.1" },
		{ "\x08http/1.1\x02h2", 12, "http/1.1" },
		{ "\x02h2", 3, "" },
		{ "\x08http/1.0", 9, "" },
		{ NULL, 0, "" },
	};
	struct certs	*c = new_ephemeral();
	SSL_CTX		*cctx;
	struct tls_pair	 p;
	char		 alpn[32];

	if (c == NULL)
		return;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		cctx = SSL_CTX_new(TLS_client_method());
		if (t[i].offer != NULL)
			SSL_CTX_set_alpn_protos(cctx,
			    (const unsigned char *)t[i].offer, t[i].len);
		pair_open(&p, cctx, c);
		certs_ssl_set_leaf(c, p.srv, "example.test");
		CHECK(pair_handshake(&p) == 0, "handshake %zu", i);
		alpn_of(p.cli, alpn, sizeof alpn);
		CHECK_STR(alpn, t[i].want);
		pair_close(&p);
		SSL_CTX_free(cctx);
	}
	certs_free(c);
}

/* An origin: its own CA (not ours), a leaf for host, one handshake with a
 * client SSL set up by certs_ssl_client_setup for want_host. */
static int
origin_handshake(SSL_CTX *cctx, struct certs *origin, const char *host,
    const char *want_host, const char **why)
{
	struct tls_pair	t;
	int		r;

	pair_open(&t, cctx, origin);
	certs_ssl_set_leaf(origin, t.srv, host);
	if (certs_ssl_client_setup(t.cli, want_host) != 0)
		abort();
	r = pair_handshake(&t);
	*why = certs_verify_error(t.cli);
	pair_close(&t);
	return r;
}

static void
client_ctx_refuses_an_untrusted_origin_and_says_why(void)
{
	struct certs	*c = new_ephemeral(), *origin = new_ephemeral();
	SSL_CTX		*cctx;
	const char	*why = NULL;
	char		 err[256] = "";

	if (c == NULL || origin == NULL)
		goto out;
	cctx = certs_client_ctx(c, NULL, err, sizeof err);
	CHECK(cctx != NULL, "%s", err);
	if (cctx == NULL)
		goto out;
	CHECK(origin_handshake(cctx, origin, "origin.test", "origin.test",
	    &why) == -1, "untrusted origin accepted");
	CHECK(why != NULL && strstr(why, "issuer") != NULL, "why: %s",
	    why ? why : "(null)");
	SSL_CTX_free(cctx);
out:
	certs_free(c);
	certs_free(origin);
}

static void
client_ctx_trusts_upstream_ca_and_checks_names(void)
{
	struct certs	*c = new_ephemeral(), *origin = new_ephemeral();
	SSL_CTX		*cctx, *again;
	struct tls_pair	 t;
	const char	*why = "unset";
	char		 err[256] = "", alpn[32];

	if (c == NULL || origin == NULL)
		goto out;
	certs_write_ca(origin, tmp("origin-ca.pem"), err, sizeof err);
	cctx = certs_client_ctx(c, tmp("origin-ca.pem"), err, sizeof err);
	CHECK(cctx != NULL, "%s", err);
	if (cctx == NULL)
		goto out;
	again = certs_client_ctx(c, tmp("origin-ca.pem"), err, sizeof err);
	CHECK(again == cctx, "one client context");
	SSL_CTX_free(again);
	CHECK(certs_client_ctx(c, NULL, err, sizeof err) == NULL,
	    "another extra CA is an error");

	CHECK(origin_handshake(cctx, origin, "origin.test", "origin.test",
	    &why) == 0, "trusted origin: %s", why ? why : "");
	CHECK(why == NULL, "no verify error: %s", why ? why : "");
	CHECK(origin_handshake(cctx, origin, "origin.test", "other.test",
	    &why) == -1, "wrong name accepted");
	CHECK(why != NULL && strstr(why, "hostname mismatch") != NULL,
	    "why: %s", why ? why : "(null)");
	CHECK(origin_handshake(cctx, origin, "192.0.2.7", "192.0.2.7",
	    &why) == 0, "IP origin: %s", why ? why : "");
	CHECK(origin_handshake(cctx, origin, "192.0.2.7", "192.0.2.8",
	    &why) == -1, "wrong address accepted");
	CHECK(why != NULL && strstr(why, "IP address mismatch") != NULL,
	    "why: %s", why ? why : "(null)");

	/* SNI for names only; ALPN http/1.1 offered. */
	pair_open(&t, cctx, origin);
	certs_ssl_set_leaf(origin, t.srv, "192.0.2.7");
	certs_ssl_client_setup(t.cli, "192.0.2.7");
	CHECK(pair_handshake(&t) == 0, "handshake");
	CHECK(SSL_get_servername(t.srv, TLSEXT_NAMETYPE_host_name) == NULL,
	    "no SNI for an address");
	alpn_of(t.srv, alpn, sizeof alpn);
	CHECK_STR(alpn, "http/1.1");
	pair_close(&t);
	pair_open(&t, cctx, origin);
	certs_ssl_set_leaf(origin, t.srv, "origin.test");
	certs_ssl_client_setup(t.cli, "origin.test");
	CHECK(pair_handshake(&t) == 0, "handshake");
	CHECK(certs_ssl_sni_matches(t.srv, "origin.test") == 1, "SNI sent");
	pair_close(&t);
	SSL_CTX_free(cctx);
out:
	certs_free(c);
	certs_free(origin);
}

static void
client_ctx_honours_ssl_cert_file(void)
{
	struct certs	*c = new_ephemeral(), *origin = new_ephemeral();
	SSL_CTX		*cctx;
	const char	*why = "unset";
	char		 err[256] = "";

	if (c == NULL || origin == NULL)
		goto out;
	certs_write_ca(origin, tmp("env-ca.pem"), err, sizeof err);
	setenv("SSL_CERT_FILE", tmp("env-ca.pem"), 1);
	cctx = certs_client_ctx(c, NULL, err, sizeof err);
	unsetenv("SSL_CERT_FILE");
	CHECK(cctx != NULL, "%s", err);
	if (cctx != NULL)
		CHECK(origin_handshake(cctx, origin, "origin.test",
		    "origin.test", &why) == 0, "SSL_CERT_FILE root: %s",
		    why ? why : "");
	SSL_CTX_free(cctx);
out:
	certs_free(c);
	certs_free(origin);
}

static void
client_ctx_refuses_a_bad_upstream_ca_file(void)
{
	struct certs	*c = new_ephemeral();
	char		 err[256] = "";

	if (c == NULL)
		return;
	CHECK(certs_client_ctx(c, tmp("missing-ca.pem"), err, sizeof err) ==
	    NULL && strstr(err, "missing-ca.pem") != NULL, "%s", err);
	certs_free(c);
}

static void
contexts_are_references_the_caller_releases(void)
{
	struct certs	*c = new_ephemeral();
	SSL_CTX		*a, *b, *cctx;
	struct tls_pair	 t;

	if (c == NULL)
		return;
	a = certs_server_ctx(c);
	b = certs_server_ctx(c);
	CHECK(a != NULL && a == b, "one server context");
	SSL_CTX_free(a);
	SSL_CTX_free(b);
	/* Still usable after the caller let go of its references, and an
	 * SSL outlives the struct certs that made its context. */
	cctx = SSL_CTX_new(TLS_client_method());
	pair_open(&t, cctx, c);
	certs_ssl_set_leaf(c, t.srv, "example.test");
	certs_free(c);
	CHECK(pair_handshake(&t) == 0, "handshake after certs_free");
	pair_close(&t);
	SSL_CTX_free(cctx);
}

static void
tls_errors_drains_the_queue_into_one_line(void)
{
	char	 buf[256];
	BIO	*bio = BIO_new_mem_buf("junk", 4);

	ERR_clear_error();
	CHECK(PEM_read_bio_X509(bio, NULL, NULL, NULL) == NULL, "junk read");
	BIO_free(bio);
	CHECK(ERR_peek_error() != 0, "an error queued");
	certs_tls_errors(buf, sizeof buf);
	CHECK(strstr(buf, "no start line") != NULL, "%s", buf);
	CHECK(strchr(buf, '\n') == NULL, "one line");
	CHECK(ERR_peek_error() == 0, "queue drained");
	CHECK_STR(certs_tls_errors(buf, sizeof buf), "unknown TLS error");
	CHECK_STR(certs_tls_errors(buf, 8), "unknown");
}

static void
free_null_is_a_no_op(void)
{
	certs_free(NULL);
	CHECK(1, "survived");
}

static double
elapsed_us(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e6 +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e3;
}

/* P5: a new host must cost < 5 ms. Printed, not asserted. */
static void
minting_speed(void)
{
	struct timespec	 t0, t1, t2, t3;
	struct certs	*c;
	char		 err[256], host[32];
	X509		*x;
	EVP_PKEY	*k;
	const int	 n = 1000;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	c = certs_new(NULL, NULL, err, sizeof err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (c == NULL)
		return;
	for (int i = 0; i < n; i++) {
		snprintf(host, sizeof host, "host%d.test", i);
		if (certs_leaf(c, host, &x, &k) == 0) {
			X509_free(x);
			EVP_PKEY_free(k);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t2);
	for (int i = 0; i < n; i++) {
		snprintf(host, sizeof host, "host%d.test", i);
		if (certs_leaf(c, host, &x, &k) == 0) {
			X509_free(x);
			EVP_PKEY_free(k);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t3);
	fprintf(stderr, "certs: ephemeral CA %.0f us; leaf minted %.1f us, "
	    "cached %.2f us (mean of %d)\n", elapsed_us(&t0, &t1),
	    elapsed_us(&t1, &t2) / n, elapsed_us(&t2, &t3) / n, n);
	certs_free(c);
}

int
main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_certs.XXXXXX");
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (sh("printf '[req]\\ndistinguished_name = dn\\n[dn]\\n' > %s",
	    tmp("req.cnf")) != 0) {
		fprintf(stderr, "cannot write req.cnf\n");
		return 1;
	}

	RUN(ephemeral_ca_is_a_p256_ca_valid_for_30_days);
	RUN(ephemeral_cas_differ_between_runs);
	RUN(leaf_for_name_has_dns_san_and_verifies_for_that_name_only);
	RUN(leaf_for_ip_literal_has_ip_san_and_verifies_for_that_address_only);
	RUN(leaf_is_a_short_lived_v3_server_certificate);
	RUN(leaves_share_one_key_but_never_a_serial);
	RUN(leaf_is_cached_per_host);
	RUN(leaf_cache_is_bounded_and_evicts_least_recently_used);
	RUN(leaf_for_long_name_truncates_cn_but_not_san);
	RUN(leaf_refuses_empty_overlong_or_binary_host);

	RUN(ca_from_files_with_mode_600_signs_verifiable_leaves);
	RUN(ca_key_readable_by_others_is_refused);
	RUN(ca_key_not_matching_the_certificate_is_refused);
	RUN(certificate_that_is_no_ca_is_refused);
	RUN(expired_ca_is_refused);
	RUN(unreadable_or_non_pem_files_are_refused);
	RUN(encrypted_ca_key_is_refused_without_a_prompt);
	RUN(ca_certificate_without_key_is_refused);
	RUN(write_ca_writes_the_certificate_alone_mode_644);

	RUN(handshake_with_leaf_verifies_against_written_ca);
	RUN(sni_must_name_the_host);
	RUN(alpn_selects_http11_only);
	RUN(client_ctx_refuses_an_untrusted_origin_and_says_why);
	RUN(client_ctx_trusts_upstream_ca_and_checks_names);
	RUN(client_ctx_honours_ssl_cert_file);
	RUN(client_ctx_refuses_a_bad_upstream_ca_file);
	RUN(contexts_are_references_the_caller_releases);
	RUN(tls_errors_drains_the_queue_into_one_line);
	RUN(free_null_is_a_no_op);
	RUN(minting_speed);

	rm_tmpdir();
	return test_done("test_certs");
}
