/*
 * Building the combined trust bundle and its wget and Java forms. Files are
 * created 0600 inside the private state directory.
 */
#include <errno.h>
#include <fcntl.h>
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
	while ((x = PEM_read_bio_X509(mem, NULL, NULL, NULL)) != NULL) {
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

static int
write_truststore(const char *path, STACK_OF(X509) *certs, char *err,
    size_t errlen)
{
	STACK_OF(PKCS12_SAFEBAG)	*bags = NULL;
	STACK_OF(PKCS7)			*safes = NULL;
	PKCS12				*p12 = NULL;
	ASN1_OBJECT			*eku = NULL;
	BIO				*out = NULL;
	int				 nid, r = -1;

	if ((nid = OBJ_txt2nid(OID_JDK_TRUSTED_KEY_USAGE)) == NID_undef)
		nid = OBJ_create(OID_JDK_TRUSTED_KEY_USAGE,
		    "oracle-jdk-trustedkeyusage", "Trusted key usage (Oracle)");
	eku = OBJ_txt2obj(OID_ANY_EXTENDED_KEY_USAGE, 1);
	if (nid == NID_undef || eku == NULL)
		goto out;
	for (int i = 0; i < sk_X509_num(certs); i++) {
		PKCS12_SAFEBAG *bag;
		char alias[32];

		if ((bag = PKCS12_add_cert(&bags, sk_X509_value(certs, i))) ==
		    NULL)
			goto out;
		snprintf(alias, sizeof alias, "egress-run-%d", i);
		if (!PKCS12_add_friendlyname_asc(bag, alias, -1) ||
		    !PKCS12_add1_attr_by_NID(bag, nid, V_ASN1_OBJECT,
		    (const unsigned char *)eku, -1))
			goto out;
	}
	/* Certificates are public: an unencrypted safe, an integrity MAC. */
	if (!PKCS12_add_safe(&safes, bags, -1, 0, NULL) ||
	    (p12 = PKCS12_add_safes(safes, 0)) == NULL ||
	    !PKCS12_set_mac(p12, TRUST_STORE_PASSWORD, -1, NULL, 0, 2048,
	    NULL))
		goto out;
	out = BIO_new(BIO_s_mem());
	if (i2d_PKCS12_bio(out, p12) != 1)
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
	PKCS12_free(p12);
	sk_PKCS7_pop_free(safes, PKCS7_free);
	sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	ASN1_OBJECT_free(eku);
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
	if (roots != NULL && add_pem(roots, certs, bundle, 0, err, errlen) != 0)
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
	    write_truststore(tf->truststore, certs, err, errlen) != 0)
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
