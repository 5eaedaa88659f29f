/*
 * Building the combined trust bundle and its wget and Java forms. Files are
 * created 0600 inside the private state directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "common/xmalloc.h"
#include "env/trust.h"

/* Java reads a PKCS#12 certificate as trusted only with this attribute. */
#define OID_JDK_TRUSTED_KEY_USAGE	"2.16.840.1.113894.746875.1.1"
#define OID_ANY_EXTENDED_KEY_USAGE	"2.5.29.37.0"

const char *
trust_default_roots(void)
{
	static const char *fallback[] = {
		"/etc/ssl/certs/ca-certificates.crt",
		"/etc/pki/tls/certs/ca-bundle.crt",
		"/etc/ssl/cert.pem",
	};
	const char *p;

	if ((p = getenv("SSL_CERT_FILE")) != NULL && *p != '\0' &&
	    access(p, R_OK) == 0)
		return p;
	if (access(X509_get_default_cert_file(), R_OK) == 0)
		return X509_get_default_cert_file();
	for (size_t i = 0; i < sizeof fallback / sizeof fallback[0]; i++)
		if (access(fallback[i], R_OK) == 0)
			return fallback[i];
	return NULL;
}

/* Read a whole file (bounded) into a BIO. */
static BIO *
read_file(const char *path, char *err, size_t errlen)
{
	BIO	*in, *mem;
	char	 buf[16384];
	int	 n;

	if ((in = BIO_new_file(path, "rb")) == NULL) {
		snprintf(err, errlen, "cannot read '%s': %s", path,
		    strerror(errno ? errno : EIO));
		ERR_clear_error();
		return NULL;
	}
	mem = BIO_new(BIO_s_mem());
	while ((n = BIO_read(in, buf, sizeof buf)) > 0)
		BIO_write(mem, buf, n);
	BIO_free(in);
	return mem;
}

/* Append every certificate of a PEM file to certs and its text to out. */
static int
add_pem(const char *path, STACK_OF(X509) *certs, BIO *out, int required,
    char *err, size_t errlen)
{
	BIO	*mem;
	X509	*x;
	char	*data;
	long	 len;
	int	 n = 0;

	if ((mem = read_file(path, err, errlen)) == NULL)
		return -1;
	len = BIO_get_mem_data(mem, &data);
	BIO_write(out, data, (int)len);
	if (len > 0 && data[len - 1] != '\n')
		BIO_write(out, "\n", 1);
	while (certs != NULL &&
	    (x = PEM_read_bio_X509(mem, NULL, NULL, NULL)) != NULL) {
		sk_X509_push(certs, x);
		n++;
	}
	ERR_clear_error();
	BIO_free(mem);
	if (n == 0 && required) {
		snprintf(err, errlen, "'%s' holds no PEM certificate", path);
		return -1;
	}
	return 0;
}

static int
write_bio(const char *path, BIO *b, char *err, size_t errlen)
{
	char	*data;
	long	 len = BIO_get_mem_data(b, &data);
	FILE	*f;
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1 || (f = fdopen(fd, "wb")) == NULL) {
		snprintf(err, errlen, "cannot write '%s': %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	if (fwrite(data, 1, (size_t)len, f) != (size_t)len || fclose(f) != 0) {
		snprintf(err, errlen, "cannot write '%s': %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* wget (GnuTLS) ignores SSL_CERT_FILE; keep the user's wgetrc, add ours. */
static int
write_wgetrc(const char *path, const char *bundle, char *err, size_t errlen)
{
	const char	*user = getenv("WGETRC"), *home = getenv("HOME");
	char		*deflt = NULL, errbuf[8];
	BIO		*out = BIO_new(BIO_s_mem()), *in;
	int		 r;

	if ((user == NULL || *user == '\0') && home != NULL)
		user = deflt = xprintf("%s/.wgetrc", home);
	if (user != NULL && access(user, R_OK) == 0 &&
	    (in = read_file(user, errbuf, sizeof errbuf)) != NULL) {
		char *data;
		long len = BIO_get_mem_data(in, &data);
		BIO_write(out, data, (int)len);
		if (len > 0 && data[len - 1] != '\n')
			BIO_write(out, "\n", 1);
		BIO_free(in);
	}
	BIO_printf(out, "# added by egress-run\nca_certificate = %s\n", bundle);
	r = write_bio(path, out, err, errlen);
	BIO_free(out);
	free(deflt);
	return r;
}

/* Bags for certs, each with an alias and Java's trusted-key-usage. */
static STACK_OF(PKCS12_SAFEBAG) *
make_bags(STACK_OF(X509) *certs, const char *prefix)
{
	STACK_OF(PKCS12_SAFEBAG)	*bags = NULL;
	ASN1_OBJECT			*eku;
	int				 nid;

	if ((nid = OBJ_txt2nid(OID_JDK_TRUSTED_KEY_USAGE)) == NID_undef)
		nid = OBJ_create(OID_JDK_TRUSTED_KEY_USAGE,
		    "oracle-jdk-trustedkeyusage", "Trusted key usage (Oracle)");
	if (nid == NID_undef ||
	    (eku = OBJ_txt2obj(OID_ANY_EXTENDED_KEY_USAGE, 1)) == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(certs); i++) {
		PKCS12_SAFEBAG *bag;
		char alias[48];

		snprintf(alias, sizeof alias, "%s-%d", prefix, i);
		if ((bag = PKCS12_add_cert(&bags, sk_X509_value(certs, i))) ==
		    NULL || !PKCS12_add_friendlyname_asc(bag, alias, -1) ||
		    !PKCS12_add1_attr_by_NID(bag, nid, V_ASN1_OBJECT,
		    (const unsigned char *)eku, -1)) {
			sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
			bags = NULL;
			break;
		}
	}
	ASN1_OBJECT_free(eku);
	return bags;
}

/* An encoded trust store of these safes (certificates are public: no
 * encryption, an integrity MAC). */
static BIO *
encode_store(STACK_OF(PKCS7) *safes)
{
	PKCS12	*p12;
	BIO	*out = NULL;

	if ((p12 = PKCS12_add_safes(safes, 0)) != NULL &&
	    PKCS12_set_mac(p12, TRUST_STORE_PASSWORD, -1, NULL, 0, 2048, NULL)) {
		out = BIO_new(BIO_s_mem());
		if (i2d_PKCS12_bio(out, p12) != 1) {
			BIO_free(out);
			out = NULL;
		}
	}
	PKCS12_free(p12);
	return out;
}

/*
 * The roots' part of the Java trust store. Parsing ~150 certificates
 * costs OpenSSL 3 some 25 ms (it decodes every public key), so it is done
 * once per roots file and kept in the user's cache directory, keyed by the
 * file's identity; each run then adds only its own CA. Without a usable
 * cache directory, it is built every time.
 */
static char *
cache_path(const char *roots, const struct stat *st)
{
	const char	*xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char		*dir, *path;
	uint64_t	 h = 1469598103934665603ULL;	/* FNV-1a */

	if (xdg != NULL && *xdg == '/')
		dir = xprintf("%s/egress-run", xdg);
	else if (home != NULL && *home == '/')
		dir = xprintf("%s/.cache/egress-run", home);
	else
		return NULL;
	for (const char *p = roots; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	path = xprintf("%s/roots-%016llx-%llx-%llx-%llx-%llx.p12", dir,
	    (unsigned long long)h, (unsigned long long)st->st_dev,
	    (unsigned long long)st->st_ino, (unsigned long long)st->st_size,
	    (unsigned long long)st->st_mtime);
	/* The parent first (~/.cache may not exist yet). */
	{
		char *parent = xstrndup(dir, (size_t)(strrchr(dir, '/') - dir));
		(void)mkdir(parent, 0700);
		free(parent);
	}
	(void)mkdir(dir, 0700);
	free(dir);
	return path;
}

static STACK_OF(PKCS7) *
roots_safes(const char *roots)
{
	STACK_OF(PKCS7)			*safes = NULL;
	STACK_OF(PKCS12_SAFEBAG)	*bags = NULL;
	STACK_OF(X509)			*certs = NULL;
	struct stat			 st;
	PKCS12				*p12;
	char				*path = NULL, *tmp = NULL, errbuf[8];
	BIO				*in, *enc;
	X509				*x;

	if (roots == NULL || stat(roots, &st) != 0)
		return sk_PKCS7_new_null();
	if ((path = cache_path(roots, &st)) != NULL &&
	    (in = BIO_new_file(path, "rb")) != NULL) {
		p12 = d2i_PKCS12_bio(in, NULL);
		BIO_free(in);
		if (p12 != NULL && PKCS12_verify_mac(p12, TRUST_STORE_PASSWORD,
		    -1))
			safes = PKCS12_unpack_authsafes(p12);
		PKCS12_free(p12);
		ERR_clear_error();
		if (safes != NULL)
			goto out;
	}
	/* Build it (slow), and keep it for the next run. */
	certs = sk_X509_new_null();
	if ((in = BIO_new_file(roots, "rb")) != NULL) {
		while ((x = PEM_read_bio_X509(in, NULL, NULL, NULL)) != NULL)
			sk_X509_push(certs, x);
		BIO_free(in);
	}
	ERR_clear_error();
	safes = sk_PKCS7_new_null();
	if ((bags = make_bags(certs, "egress-run-root")) == NULL ||
	    !PKCS12_add_safe(&safes, bags, -1, 0, NULL))
		goto out;
	if (path != NULL && (enc = encode_store(safes)) != NULL) {
		tmp = xprintf("%s.%ld.tmp", path, (long)getpid());
		if (write_bio(tmp, enc, errbuf, sizeof errbuf) != 0 ||
		    rename(tmp, path) != 0)
			(void)unlink(tmp);
		BIO_free(enc);
	}
out:
	ERR_clear_error();
	sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	sk_X509_pop_free(certs, X509_free);
	free(path);
	free(tmp);
	return safes;
}

static int
write_truststore(const char *path, const char *roots, STACK_OF(X509) *extra,
    char *err, size_t errlen)
{
	STACK_OF(PKCS12_SAFEBAG)	*bags = NULL;
	STACK_OF(PKCS7)			*safes;
	BIO				*out = NULL;
	int				 r = -1;

	if ((safes = roots_safes(roots)) == NULL)
		goto out;
	if (sk_X509_num(extra) > 0 &&
	    ((bags = make_bags(extra, "egress-run")) == NULL ||
	    !PKCS12_add_safe(&safes, bags, -1, 0, NULL)))
		goto out;
	if ((out = encode_store(safes)) == NULL)
		goto out;
	r = write_bio(path, out, err, errlen);
	err = NULL;
out:
	if (r != 0 && err != NULL)
		snprintf(err, errlen, "cannot build the Java trust store: %s",
		    ERR_reason_error_string(ERR_peek_last_error()) ?
		    ERR_reason_error_string(ERR_peek_last_error()) : "failed");
	ERR_clear_error();
	BIO_free(out);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	return r;
}

int
trust_build(const char *dir, const char *roots, const char *const *extra,
    size_t nextra, struct trust_files *tf, char *err, size_t errlen)
{
	STACK_OF(X509)	*certs = sk_X509_new_null();
	BIO		*bundle = BIO_new(BIO_s_mem());
	int		 r = -1;

	memset(tf, 0, sizeof *tf);
	/* The roots are copied as they are: parsing them is the slow part,
	 * and the trust store gets them from its cache. */
	if (roots != NULL && add_pem(roots, NULL, bundle, 0, err, errlen) != 0)
		goto out;
	for (size_t i = 0; i < nextra; i++) {
		BIO_printf(bundle, "# %s (added by egress-run)\n", extra[i]);
		if (add_pem(extra[i], certs, bundle, 1, err, errlen) != 0)
			goto out;
	}
	tf->bundle = xprintf("%s/ca-bundle.pem", dir);
	tf->wgetrc = xprintf("%s/wgetrc", dir);
	tf->truststore = xprintf("%s/truststore.p12", dir);
	if (write_bio(tf->bundle, bundle, err, errlen) != 0 ||
	    write_wgetrc(tf->wgetrc, tf->bundle, err, errlen) != 0 ||
	    write_truststore(tf->truststore, roots, certs, err, errlen) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		trust_files_free(tf);
	sk_X509_pop_free(certs, X509_free);
	BIO_free(bundle);
	return r;
}

void
trust_files_free(struct trust_files *tf)
{
	free(tf->bundle);
	free(tf->wgetrc);
	free(tf->truststore);
	memset(tf, 0, sizeof *tf);
}
