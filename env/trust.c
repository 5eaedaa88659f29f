/*
 * Building the combined trust bundle and its wget and Java forms. Files are
 * created 0600 inside the private state directory.
 *
 * This runs on every start, so the roots are not parsed as certificates:
 * the bundle is the roots file's bytes followed by each extra file's, and
 * the Java trust store is DER assembled around the certificates' own bytes,
 * with the roots' part kept in the user's cache directory (checked before
 * it is used: ours, private, intact, made from this very roots file).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "common/xmalloc.h"
#include "env/trust.h"

#define EXTRA_MAX	(16 * 1024 * 1024)	/* one extra PEM file */
#define ROOTS_MAX	(64 * 1024 * 1024)	/* the roots file */
#define CACHE_MAX	(64 * 1024 * 1024)
#define CACHE_FILES_MAX	8		/* roots parts kept at most */
#define MAC_ITER	2048
#define SALT_LEN	16
#define MAC_LEN		32			/* HMAC-SHA-256 */
#define DIGEST_LEN	32			/* SHA-256 */
#define CACHE_MAGIC	"egress-run trust cache 2\n"
#define CACHE_MAGIC_LEN	(sizeof CACHE_MAGIC - 1)
#define DER_HEAD_MAX	10			/* tag, 0x88, 8 length bytes */
#define DER_DEPTH_MAX	32

/* DER of the object identifiers and algorithms a trust store uses. */
static const unsigned char oid_data[] = {	/* pkcs7-data */
	0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01
};
static const unsigned char oid_cert_bag[] = {	/* pkcs-12 certBag */
	0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x0c, 0x0a,
	0x01, 0x03
};
static const unsigned char oid_x509_cert[] = {	/* pkcs-9 x509Certificate */
	0x06, 0x0a, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x16,
	0x01
};
static const unsigned char oid_friendly_name[] = {	/* pkcs-9 */
	0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x14
};
/*
 * Java reads a PKCS#12 certificate as trusted only with its "trusted key
 * usage" attribute (2.16.840.1.113894.746875.1.1), here for any extended
 * key usage (2.5.29.37.0): the attribute whole, a constant.
 */
static const unsigned char attr_jdk_trusted[] = {
	0x30, 0x16, 0x06, 0x0c, 0x60, 0x86, 0x48, 0x01, 0x86, 0xf9, 0x66,
	0xad, 0xca, 0x7b, 0x01, 0x01, 0x31, 0x06, 0x06, 0x04, 0x55, 0x1d,
	0x25, 0x00
};
static const unsigned char alg_sha256[] = {	/* with NULL parameters */
	0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04,
	0x02, 0x01, 0x05, 0x00
};

/* A growing byte buffer for DER being assembled. */
struct buf {
	unsigned char	*p;
	size_t		 len;
	size_t		 cap;
};

/* The roots file, opened once: every use reads this same file. */
struct roots {
	const char	*path;
	int		 fd;		/* -1: no roots */
	struct stat	 st;
	struct buf	 text;		/* not a regular file: all of it */
};

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

static void
buf_add(struct buf *b, const void *p, size_t len)
{
	if (len > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 4096;

		while (len > cap - b->len)
			cap *= 2;
		b->p = xreallocarray(b->p, 1, cap);
		b->cap = cap;
	}
	if (len > 0)
		memcpy(b->p + b->len, p, len);
	b->len += len;
}

static void
buf_free(struct buf *b)
{
	free(b->p);
	memset(b, 0, sizeof *b);
}

/* The DER tag and definite length of len bytes of content; its size. */
static size_t
der_head(unsigned char *out, unsigned char tag, size_t len)
{
	size_t	n = 0, k = 0;

	out[n++] = tag;
	if (len < 0x80) {
		out[n++] = (unsigned char)len;
		return n;
	}
	for (size_t v = len; v != 0; v >>= 8)
		k++;
	out[n++] = (unsigned char)(0x80 | k);
	while (k-- > 0)
		out[n++] = (unsigned char)(len >> (8 * k));
	return n;
}

/* The whole size of a DER element with len bytes of content. */
static size_t
der_size(size_t len)
{
	unsigned char	head[DER_HEAD_MAX];

	return der_head(head, 0, len) + len;
}

static void
der_add_head(struct buf *b, unsigned char tag, size_t len)
{
	unsigned char	head[DER_HEAD_MAX];

	buf_add(b, head, der_head(head, tag, len));
}

/*
 * The size of the DER SEQUENCE at the start of p (header and content), or
 * 0 when p does not start with one that fits in len.
 */
static size_t
der_sequence_size(const unsigned char *p, size_t len)
{
	size_t	head, body = 0, k;

	if (len < 2 || p[0] != 0x30)
		return 0;
	if (p[1] < 0x80) {
		head = 2;
		body = p[1];
	} else {
		k = p[1] & 0x7f;
		if (k == 0 || k > 4 || len < 2 + k)
			return 0;
		for (size_t i = 0; i < k; i++)
			body = body << 8 | p[2 + i];
		head = 2 + k;
	}
	if (body > len - head)
		return 0;
	return head + body;
}

/*
 * Whether p holds exactly a series of well-formed DER elements, those of
 * constructed ones included (definite lengths that fit, at most
 * DER_DEPTH_MAX deep). Java refuses a whole trust store for one
 * certificate it cannot read, so a garbled block is left out of it.
 */
static bool
der_valid(const unsigned char *p, size_t len, int depth)
{
	while (len > 0) {
		size_t	i = 1, body = 0, k;
		bool	constructed = (p[0] & 0x20) != 0;

		if ((p[0] & 0x1f) == 0x1f) {	/* a tag of several bytes */
			while (i < len && (p[i] & 0x80) != 0 && i < 5)
				i++;
			if (i >= len || (p[i] & 0x80) != 0)
				return false;
			i++;
		}
		if (i >= len)
			return false;
		if (p[i] < 0x80)
			body = p[i++];
		else {
			k = p[i++] & 0x7f;
			if (k == 0 || k > 4 || k > len - i)
				return false;
			while (k-- > 0)
				body = body << 8 | p[i++];
		}
		if (body > len - i)
			return false;
		if (constructed && (depth >= DER_DEPTH_MAX ||
		    !der_valid(p + i, body, depth + 1)))
			return false;
		p += i + body;
		len -= i + body;
	}
	return true;
}

/*
 * The next DER element of *p (a tag of one byte): its tag; *p and *len
 * move past it, and *body and *blen, when given, hold its content.
 */
static bool
der_next(const unsigned char **p, size_t *len, unsigned char *tag,
    const unsigned char **body, size_t *blen)
{
	const unsigned char	*q = *p;
	size_t			 h = 2, n = 0, k;

	if (*len < 2 || (q[0] & 0x1f) == 0x1f)
		return false;
	if (q[1] < 0x80)
		n = q[1];
	else {
		k = q[1] & 0x7f;
		if (k == 0 || k > 4 || k > *len - 2)
			return false;
		for (size_t i = 0; i < k; i++)
			n = n << 8 | q[2 + i];
		h += k;
	}
	if (n > *len - h)
		return false;
	*tag = q[0];
	if (body != NULL) {
		*body = q + h;
		*blen = n;
	}
	*p += h + n;
	*len -= h + n;
	return true;
}

/*
 * Whether der has the shape of a certificate (RFC 5280 4.1): a SEQUENCE
 * of the TBSCertificate, the signature's algorithm and a BIT STRING, the
 * first starting with an optional [0] version, an INTEGER serial and five
 * SEQUENCEs (signature, issuer, validity, subject, public key). Cheap,
 * unlike decoding one; enough to keep out what is plainly no certificate.
 */
static bool
cert_shaped(const unsigned char *der, size_t len)
{
	const unsigned char	*c, *t;
	size_t			 clen, tlen;
	unsigned char		 tag;

	if (!der_next(&der, &len, &tag, &c, &clen) || tag != 0x30 ||
	    len != 0 ||
	    !der_next(&c, &clen, &tag, &t, &tlen) || tag != 0x30 ||
	    !der_next(&c, &clen, &tag, NULL, NULL) || tag != 0x30 ||
	    !der_next(&c, &clen, &tag, NULL, NULL) || tag != 0x03 ||
	    clen != 0)
		return false;
	if (!der_next(&t, &tlen, &tag, NULL, NULL) ||
	    (tag == 0xa0 && !der_next(&t, &tlen, &tag, NULL, NULL)) ||
	    tag != 0x02)
		return false;
	for (int i = 0; i < 5; i++)
		if (!der_next(&t, &tlen, &tag, NULL, NULL) || tag != 0x30)
			return false;
	return true;
}

/*
 * A certBag holding the certificate der (RFC 7292 4.2.3) with Java's
 * trusted-key-usage attribute and a friendly name (a BMPString: Java's
 * alias). The attributes are a DER SET OF, sorted: Java's, the shorter,
 * goes first.
 */
static void
add_cert_bag(struct buf *out, const unsigned char *der, size_t len,
    const char *alias)
{
	size_t	namelen = strlen(alias), bmp = 2 * namelen;
	size_t	name_attr, attrs, cert_bag, bag;

	name_attr = sizeof oid_friendly_name + der_size(der_size(bmp));
	attrs = sizeof attr_jdk_trusted + der_size(name_attr);
	cert_bag = sizeof oid_x509_cert + der_size(der_size(len));
	bag = sizeof oid_cert_bag + der_size(der_size(cert_bag)) +
	    der_size(attrs);

	der_add_head(out, 0x30, bag);
	buf_add(out, oid_cert_bag, sizeof oid_cert_bag);
	der_add_head(out, 0xa0, der_size(cert_bag));
	der_add_head(out, 0x30, cert_bag);
	buf_add(out, oid_x509_cert, sizeof oid_x509_cert);
	der_add_head(out, 0xa0, der_size(len));
	der_add_head(out, 0x04, len);
	buf_add(out, der, len);
	der_add_head(out, 0x31, attrs);
	buf_add(out, attr_jdk_trusted, sizeof attr_jdk_trusted);
	der_add_head(out, 0x30, name_attr);
	buf_add(out, oid_friendly_name, sizeof oid_friendly_name);
	der_add_head(out, 0x31, der_size(bmp));
	der_add_head(out, 0x1e, bmp);
	for (size_t i = 0; i < namelen; i++) {
		unsigned char c[2] = { 0, (unsigned char)alias[i] };

		buf_add(out, c, sizeof c);
	}
}

/*
 * A bag for every certificate of a PEM text: the bytes of each
 * CERTIFICATE, X509 CERTIFICATE or TRUSTED CERTIFICATE block (the
 * certificate is its leading SEQUENCE; a trusted one has OpenSSL's
 * settings after it), other blocks skipped. With strict, a certificate is
 * decoded (a few extra files), else only its DER and its shape are checked
 * (the ~150 roots: decoding them costs OpenSSL 3 ~30 ms). A certificate
 * that fails is left out and counted in *bad. Aliases are prefix-N, N
 * counting on from *next. Returns how many were added.
 */
static int
add_pem_bags(struct buf *out, BIO *in, const char *prefix, int *next,
    bool strict, int *bad)
{
	char		*name = NULL, *header = NULL, alias[64];
	unsigned char	*data = NULL;
	long		 len;
	size_t		 size;
	int		 n = 0;

	while (PEM_read_bio(in, &name, &header, &data, &len) == 1) {
		bool trusted = strcmp(name, PEM_STRING_X509_TRUSTED) == 0;

		if (!trusted && strcmp(name, PEM_STRING_X509) != 0 &&
		    strcmp(name, PEM_STRING_X509_OLD) != 0)
			goto next;
		if (len > 0 &&
		    (size = der_sequence_size(data, (size_t)len)) != 0 &&
		    (trusted || size == (size_t)len) &&
		    der_valid(data, size, 0) && cert_shaped(data, size)) {
			if (strict) {
				const unsigned char	*q = data;
				X509			*x;

				if ((x = d2i_X509(NULL, &q, (long)size)) ==
				    NULL || q != data + size) {
					X509_free(x);
					(*bad)++;
					goto next;
				}
				X509_free(x);
			}
			snprintf(alias, sizeof alias, "%s-%d", prefix,
			    (*next)++);
			add_cert_bag(out, data, size, alias);
			n++;
		} else
			(*bad)++;
next:
		OPENSSL_free(name);
		OPENSSL_free(header);
		OPENSSL_free(data);
		name = header = NULL;
		data = NULL;
	}
	ERR_clear_error();	/* the end of the text is an error too */
	return n;
}

/* A ContentInfo of type data (not encrypted) with SafeContents of bags. */
static void
add_safe(struct buf *out, const struct buf *bags)
{
	size_t	seq = der_size(bags->len), oct = der_size(seq);

	der_add_head(out, 0x30, sizeof oid_data + der_size(oct));
	buf_add(out, oid_data, sizeof oid_data);
	der_add_head(out, 0xa0, oct);
	der_add_head(out, 0x04, seq);
	der_add_head(out, 0x30, bags->len);
	buf_add(out, bags->p, bags->len);
}

/* The rest of a descriptor (at most max bytes in all) appended to out. */
static int
read_fd(int fd, size_t max, struct buf *out)
{
	unsigned char	chunk[16384];
	ssize_t		n;

	for (;;) {
		if ((n = read(fd, chunk, sizeof chunk)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			return 0;
		if ((size_t)n > max - out->len) {
			errno = EFBIG;
			return -1;
		}
		buf_add(out, chunk, (size_t)n);
	}
}

/* A whole file (at most max bytes) appended to out; errno on failure. */
static int
read_all(const char *path, size_t max, struct buf *out)
{
	int	fd, r, e;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	r = read_fd(fd, max, out);
	e = errno;
	close(fd);
	errno = e;
	return r;
}

/* Write all of iov, however the kernel splits it. */
static int
writev_all(int fd, struct iovec *iov, int n)
{
	ssize_t	w;

	for (;;) {
		while (n > 0 && iov->iov_len == 0) {
			iov++;
			n--;
		}
		if (n == 0)
			return 0;
		if ((w = writev(fd, iov, n > IOV_MAX ? IOV_MAX : n)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
}

static int
open_out(const char *path, char *err, size_t errlen)
{
	int	fd;

	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		snprintf(err, errlen, "cannot write '%s': %s", path,
		    strerror(errno));
	return fd;
}

static int
close_out(int fd, const char *path, int r, char *err, size_t errlen)
{
	if (r == 0 && close(fd) == 0)
		return 0;
	snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
	if (r != 0)
		close(fd);
	return -1;
}

static int
write_file(const char *path, struct iovec *iov, int n, char *err,
    size_t errlen)
{
	int	fd;

	if ((fd = open_out(path, err, errlen)) == -1)
		return -1;
	return close_out(fd, path, writev_all(fd, iov, n), err, errlen);
}

/*
 * Open the roots file once; a file that is not a regular one (a pipe, a
 * /dev/fd name) can be read only once, so it is read whole now.
 */
static int
roots_open(struct roots *r, const char *path, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	r->path = path;
	r->fd = -1;
	if (path == NULL)
		return 0;
	if ((r->fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(r->fd, &r->st) == -1 ||
	    (!S_ISREG(r->st.st_mode) && read_fd(r->fd, ROOTS_MAX,
	    &r->text) == -1)) {
		snprintf(err, errlen, "cannot read '%s': %s", path,
		    errno == EFBIG ? "file too large" : strerror(errno));
		return -1;
	}
	return 0;
}

static void
roots_close(struct roots *r)
{
	if (r->fd != -1)
		close(r->fd);
	buf_free(&r->text);
	r->fd = -1;
}

/* The roots file's bytes as they are, at the top of the bundle. */
static int
copy_roots(int out, const struct roots *r, const char *bundle, char *err,
    size_t errlen)
{
	off_t	 off = 0;
	ssize_t	 n = 0;
	char	 last = '\n', chunk[16384];

	if (!S_ISREG(r->st.st_mode)) {
		struct iovec v = { r->text.p, r->text.len };

		if (writev_all(out, &v, 1) != 0)
			goto fail;
		if (r->text.len > 0)
			last = (char)r->text.p[r->text.len - 1];
		goto eol;
	}
	/* In the kernel, without a copy in our memory. */
	while (off < r->st.st_size) {
		if ((n = sendfile(out, r->fd, &off, (size_t)(r->st.st_size -
		    off))) > 0)
			continue;
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (n == -1 && (errno == EINVAL || errno == ENOSYS)) {
		/* A file sendfile cannot read: by hand, from off. */
		while ((n = pread(r->fd, chunk, sizeof chunk, off)) != 0) {
			struct iovec v = { chunk, 0 };

			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1)
				break;
			v.iov_len = (size_t)n;
			if (writev_all(out, &v, 1) != 0) {
				n = -1;
				break;
			}
			off += n;
		}
	}
	if (n == -1) {
		snprintf(err, errlen, "cannot copy '%s' to '%s': %s", r->path,
		    bundle, strerror(errno));
		return -1;
	}
	if (off > 0 && pread(r->fd, &last, 1, off - 1) != 1)
		last = '\n';
eol:
	/* The next file's first line must not join the roots' last. */
	if (last != '\n' && write(out, "\n", 1) != 1)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "cannot write '%s': %s", bundle,
	    strerror(errno));
	return -1;
}

/* The roots, then every extra with a line that names it. */
static int
write_bundle(const char *path, const struct roots *roots,
    const char *const *extra, const struct buf *texts, size_t nextra,
    char *err, size_t errlen)
{
	int	fd, r = 0;

	if ((fd = open_out(path, err, errlen)) == -1)
		return -1;
	if (roots->fd != -1 && copy_roots(fd, roots, path, err, errlen) != 0) {
		close(fd);
		return -1;
	}
	for (size_t i = 0; i < nextra && r == 0; i++) {
		char		*line = xprintf("# %s (added by egress-run)\n",
				    extra[i]);
		struct iovec	 v[3] = {
			{ line, strlen(line) },
			{ texts[i].p, texts[i].len },
			{ "\n", texts[i].len > 0 &&
			    texts[i].p[texts[i].len - 1] != '\n' ? 1 : 0 },
		};

		r = writev_all(fd, v, 3);
		free(line);
	}
	return close_out(fd, path, r, err, errlen);
}

/* wget (GnuTLS) ignores SSL_CERT_FILE; keep the user's wgetrc, add ours. */
static int
write_wgetrc(const char *path, const char *bundle, char *err, size_t errlen)
{
	const char	*user = getenv("WGETRC"), *home = getenv("HOME");
	char		*deflt = NULL, *line;
	struct buf	 text = { 0 };
	int		 r;

	if ((user == NULL || *user == '\0') && home != NULL)
		user = deflt = xprintf("%s/.wgetrc", home);
	if (user != NULL && read_all(user, EXTRA_MAX, &text) != 0)
		text.len = 0;	/* none, or unreadable: ours alone */
	line = xprintf("%s# added by egress-run\nca_certificate = %s\n",
	    text.len > 0 && text.p[text.len - 1] != '\n' ? "\n" : "", bundle);
	{
		struct iovec v[2] = {
			{ text.p, text.len },
			{ line, strlen(line) },
		};

		r = write_file(path, v, 2, err, errlen);
	}
	free(line);
	buf_free(&text);
	free(deflt);
	return r;
}

/*
 * The roots' part of the Java trust store: a ContentInfo with a bag for
 * each root, and the salt and key of the store's MAC. Making it costs a
 * PEM decoding of the roots file (~1.5 ms for ~150 roots) and 2,048 rounds
 * of the PKCS#12 key derivation, so it is kept in the user's cache
 * directory and each run adds only its own certificates and a MAC. The MAC
 * key is derived from the store's public password: it protects nothing.
 *
 * A cache file is used only when the directory and the file are ours and
 * private (another user could otherwise slip a root into Java's trust),
 * its SHA-256 digest matches (truncated or damaged: made again), and it
 * names the roots file by path, device, inode, size and modification and
 * change times to the nanosecond (a roots file edited in place is another
 * file). It is written to a temporary name and renamed: starts that race
 * each write a whole file, and the last rename wins.
 */
struct roots_part {
	struct buf		 mem;
	const unsigned char	*safe;		/* in mem; NULL: no roots */
	size_t			 safelen;
	unsigned char		 salt[SALT_LEN];
	unsigned char		 key[MAC_LEN];
};

struct cache {
	int	 dfd;		/* the private directory; -1: no cache */
	char	*name;		/* roots-PATH-ID.p12part */
	char	*prefix;	/* roots-PATH-: the same roots file's parts */
	char	*id;		/* the roots file's name and identity */
};

static uint64_t
fnv1a(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

static bool
private_to_us(const struct stat *st)
{
	return st->st_uid == geteuid() && (st->st_mode & 077) == 0;
}

/* $XDG_CACHE_HOME/egress-run or ~/.cache/egress-run, opened; or -1. */
static int
cache_dir(void)
{
	const char	*xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char		*dir, *parent;
	struct stat	 st;
	int		 dfd;

	if (xdg != NULL && *xdg == '/')
		dir = xprintf("%s/egress-run", xdg);
	else if (home != NULL && *home == '/')
		dir = xprintf("%s/.cache/egress-run", home);
	else
		return -1;
	/* The parent first (~/.cache may not exist yet). */
	parent = xstrndup(dir, (size_t)(strrchr(dir, '/') - dir));
	(void)mkdir(parent, 0700);
	(void)mkdir(dir, 0700);
	free(parent);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	free(dir);
	if (dfd != -1 && (fstat(dfd, &st) == -1 || !private_to_us(&st))) {
		close(dfd);
		dfd = -1;
	}
	return dfd;
}

static void
cache_open(struct cache *c, const struct roots *r)
{
	const struct stat	*st = &r->st;
	uint64_t		 h;

	memset(c, 0, sizeof *c);
	c->dfd = -1;
	if (r->fd == -1 || !S_ISREG(st->st_mode))
		return;
	c->id = xprintf("%s\n%llu %llu %lld %lld.%09ld %lld.%09ld\n",
	    r->path, (unsigned long long)st->st_dev,
	    (unsigned long long)st->st_ino, (long long)st->st_size,
	    (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec,
	    (long long)st->st_ctim.tv_sec, (long)st->st_ctim.tv_nsec);
	if (strlen(c->id) > 0xffff || (c->dfd = cache_dir()) == -1)
		return;
	h = fnv1a(r->path);
	c->prefix = xprintf("roots-%016llx-", (unsigned long long)h);
	c->name = xprintf("%s%016llx.p12part", c->prefix,
	    (unsigned long long)fnv1a(c->id));
}

static void
cache_close(struct cache *c)
{
	if (c->dfd != -1)
		close(c->dfd);
	free(c->name);
	free(c->prefix);
	free(c->id);
	memset(c, 0, sizeof *c);
	c->dfd = -1;
}

static int
sha256(const struct iovec *v, int n, unsigned char *out)
{
	EVP_MD_CTX	*ctx;
	int		 r = -1;

	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	for (int i = 0; i < n; i++)
		if (EVP_DigestUpdate(ctx, v[i].iov_base, v[i].iov_len) != 1)
			goto out;
	if (EVP_DigestFinal_ex(ctx, out, NULL) == 1)
		r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

/*
 * A cache file: magic, SHA-256 of the rest, the identity's length (2
 * bytes) and the identity, salt, key, then the roots' ContentInfo (or
 * nothing: a roots file without certificates).
 */
static int
roots_load(const struct cache *c, struct roots_part *rp)
{
	const size_t		 head = CACHE_MAGIC_LEN + DIGEST_LEN + 2;
	size_t			 idlen = strlen(c->id), len;
	unsigned char		 digest[DIGEST_LEN];
	const unsigned char	*p;
	struct stat		 st;
	struct iovec		 v;
	int			 fd, r;

	if ((fd = openat(c->dfd, c->name, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return -1;
	r = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && private_to_us(&st) ?
	    read_fd(fd, CACHE_MAX, &rp->mem) : -1;
	close(fd);
	p = rp->mem.p;
	len = rp->mem.len;
	if (r != 0 || len < head + idlen + SALT_LEN + MAC_LEN ||
	    memcmp(p, CACHE_MAGIC, CACHE_MAGIC_LEN) != 0)
		return -1;
	v.iov_base = (void *)(p + CACHE_MAGIC_LEN + DIGEST_LEN);
	v.iov_len = len - CACHE_MAGIC_LEN - DIGEST_LEN;
	if (sha256(&v, 1, digest) != 0 ||
	    memcmp(digest, p + CACHE_MAGIC_LEN, DIGEST_LEN) != 0)
		return -1;
	p += CACHE_MAGIC_LEN + DIGEST_LEN;
	if ((size_t)(p[0] << 8 | p[1]) != idlen ||
	    memcmp(p + 2, c->id, idlen) != 0)
		return -1;
	p += 2 + idlen;
	memcpy(rp->salt, p, SALT_LEN);
	memcpy(rp->key, p + SALT_LEN, MAC_LEN);
	p += SALT_LEN + MAC_LEN;
	len = rp->mem.len - (size_t)(p - rp->mem.p);
	if (len > 0 && der_sequence_size(p, len) != len)
		return -1;
	rp->safe = len > 0 ? p : NULL;
	rp->safelen = len;
	return 0;
}

static int
roots_make(const struct roots *r, struct roots_part *rp)
{
	struct buf	 text = { 0 }, bags = { 0 };
	const struct buf *t = &r->text;
	BIO		*in;
	int		 next = 0, bad = 0, ret = -1;
	size_t		 passlen = strlen(TRUST_STORE_PASSWORD);

	/* The descriptor the bundle was copied from: the same file. */
	if (r->fd != -1 && S_ISREG(r->st.st_mode)) {
		if (lseek(r->fd, 0, SEEK_SET) == -1 ||
		    read_fd(r->fd, ROOTS_MAX, &text) != 0)
			goto out;
		t = &text;
	}
	if (t->len > 0 && (in = BIO_new_mem_buf(t->p, (int)t->len)) != NULL) {
		add_pem_bags(&bags, in, "egress-run-root", &next, false, &bad);
		BIO_free(in);
	}
	ERR_clear_error();
	if (bags.len > 0) {
		add_safe(&rp->mem, &bags);
		rp->safe = rp->mem.p;
		rp->safelen = rp->mem.len;
	}
	if (RAND_bytes(rp->salt, SALT_LEN) != 1 ||
	    PKCS12_key_gen_utf8(TRUST_STORE_PASSWORD, (int)passlen, rp->salt,
	    SALT_LEN, PKCS12_MAC_ID, MAC_ITER, MAC_LEN, rp->key,
	    EVP_sha256()) != 1)
		goto out;
	ret = 0;
out:
	buf_free(&text);
	buf_free(&bags);
	return ret;
}

struct cache_entry {
	char	*name;
	time_t	 mtime;
};

static int
entry_cmp(const void *a, const void *b)
{
	const struct cache_entry *x = a, *y = b;

	return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

/*
 * After a new part is saved: the same roots file's older parts go, and
 * the oldest of the others beyond CACHE_FILES_MAX (a roots file named by
 * a run's own state directory, as in a nested run, is never seen again),
 * and temporary files a crash left behind an hour ago.
 */
static void
cache_prune(const struct cache *c)
{
	struct cache_entry	*e = NULL;
	struct dirent		*d;
	struct stat		 st;
	size_t			 n = 0, keep = CACHE_FILES_MAX - 1;
	time_t			 now = time(NULL);
	DIR			*dir;
	int			 fd;

	if ((fd = dup(c->dfd)) == -1)
		return;
	if ((dir = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	rewinddir(dir);
	while ((d = readdir(dir)) != NULL) {
		size_t len = strlen(d->d_name);

		if (strncmp(d->d_name, "roots-", 6) != 0 ||
		    strcmp(d->d_name, c->name) == 0 ||
		    fstatat(c->dfd, d->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
			continue;
		if (len > 4 && strcmp(d->d_name + len - 4, ".tmp") == 0) {
			if (now - st.st_mtime > 3600)
				(void)unlinkat(c->dfd, d->d_name, 0);
			continue;
		}
		if (strncmp(d->d_name, c->prefix, strlen(c->prefix)) == 0) {
			(void)unlinkat(c->dfd, d->d_name, 0);
			continue;
		}
		e = xreallocarray(e, n + 1, sizeof *e);
		e[n].name = xstrdup(d->d_name);
		e[n++].mtime = st.st_mtime;
	}
	closedir(dir);
	if (n > keep)
		qsort(e, n, sizeof *e, entry_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + keep < n)
			(void)unlinkat(c->dfd, e[i].name, 0);
		free(e[i].name);
	}
	free(e);
}

static void
roots_save(const struct cache *c, const struct roots_part *rp)
{
	unsigned char	 digest[DIGEST_LEN], idlen[2], rnd[8];
	size_t		 len = strlen(c->id);
	char		*tmp;
	int		 fd, r;
	struct iovec	 v[7] = {
		{ CACHE_MAGIC, CACHE_MAGIC_LEN },
		{ digest, DIGEST_LEN },
		{ idlen, sizeof idlen },
		{ c->id, len },
		{ (void *)rp->salt, SALT_LEN },
		{ (void *)rp->key, MAC_LEN },
		{ (void *)rp->safe, rp->safelen },
	};

	idlen[0] = (unsigned char)(len >> 8);
	idlen[1] = (unsigned char)len;
	if (sha256(v + 2, 5, digest) != 0 || RAND_bytes(rnd, sizeof rnd) != 1)
		return;
	tmp = xprintf("%s.%02x%02x%02x%02x%02x%02x%02x%02x.tmp", c->name,
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	if ((fd = openat(c->dfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) != -1) {
		r = writev_all(fd, v, 7);
		if (close(fd) != 0 || r != 0 ||
		    renameat(c->dfd, tmp, c->dfd, c->name) != 0)
			(void)unlinkat(c->dfd, tmp, 0);
		else
			cache_prune(c);
	}
	free(tmp);
}

static int
roots_part(const struct roots *r, struct roots_part *rp)
{
	struct cache	c;
	int		ret;

	memset(rp, 0, sizeof *rp);
	cache_open(&c, r);
	if (c.dfd != -1 && roots_load(&c, rp) == 0) {
		cache_close(&c);
		return 0;
	}
	buf_free(&rp->mem);
	memset(rp, 0, sizeof *rp);
	if ((ret = roots_make(r, rp)) == 0 && c.dfd != -1)
		roots_save(&c, rp);
	cache_close(&c);
	return ret;
}

/* A positive INTEGER, minimal DER. */
static size_t
der_uint(unsigned char *out, unsigned long v)
{
	unsigned char	b[sizeof v + 1];
	size_t		n = 0;

	do {
		b[n++] = (unsigned char)v;
		v >>= 8;
	} while (v != 0);
	if (b[n - 1] & 0x80)
		b[n++] = 0;
	out[0] = 0x02;
	out[1] = (unsigned char)n;
	for (size_t i = 0; i < n; i++)
		out[2 + i] = b[n - 1 - i];
	return 2 + n;
}

static int
hmac_sha256(const unsigned char *key, const struct iovec *v, int n,
    unsigned char *out)
{
	char		 digest[] = "SHA256";
	OSSL_PARAM	 params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
		    digest, 0),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC		*mac;
	EVP_MAC_CTX	*ctx = NULL;
	size_t		 len = 0;
	int		 r = -1;

	if ((mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (ctx = EVP_MAC_CTX_new(mac)) == NULL ||
	    EVP_MAC_init(ctx, key, MAC_LEN, params) != 1)
		goto out;
	for (int i = 0; i < n; i++)
		if (EVP_MAC_update(ctx, v[i].iov_base, v[i].iov_len) != 1)
			goto out;
	if (EVP_MAC_final(ctx, out, &len, MAC_LEN) == 1 && len == MAC_LEN)
		r = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return r;
}
/*
 * The PKCS#12 trust store (RFC 7292): a PFX whose AuthenticatedSafe holds
 * the roots' ContentInfo and one of our own for the extras' bags, with an
 * HMAC-SHA-256 integrity MAC over it; certificates are public, so nothing
 * is encrypted. Written straight from its parts.
 */
static int
write_truststore(const char *path, const struct roots *roots,
    const struct buf *bags, char *err, size_t errlen)
{
	struct roots_part	 rp;
	struct buf		 ours = { 0 };
	unsigned char		 h_pfx[DER_HEAD_MAX], h_ci[DER_HEAD_MAX];
	unsigned char		 h_exp[DER_HEAD_MAX], h_oct[DER_HEAD_MAX];
	unsigned char		 h_as[DER_HEAD_MAX], mac[MAC_LEN];
	unsigned char		 iter[2 + sizeof(unsigned long) + 1];
	unsigned char		 version[3] = { 0x02, 0x01, 0x03 };
	struct buf		 macdata = { 0 };
	size_t			 as, oct, exp, ci, nh_as, niter, dinfo;
	int			 r = -1;

	if (roots_part(roots, &rp) != 0) {
		snprintf(err, errlen, "cannot build the Java trust store: %s",
		    ERR_reason_error_string(ERR_peek_last_error()) ?
		    ERR_reason_error_string(ERR_peek_last_error()) : "failed");
		goto out;
	}
	if (bags->len > 0)
		add_safe(&ours, bags);
	as = rp.safelen + ours.len;
	nh_as = der_head(h_as, 0x30, as);
	oct = der_size(nh_as + as);
	exp = der_size(oct);
	ci = sizeof oid_data + exp;
	{
		struct iovec v[3] = {
			{ h_as, nh_as },
			{ (void *)rp.safe, rp.safelen },
			{ ours.p, ours.len },
		};

		if (hmac_sha256(rp.key, v, 3, mac) != 0) {
			snprintf(err, errlen, "cannot build the Java trust "
			    "store: no HMAC-SHA-256");
			goto out;
		}
	}
	/* MacData: DigestInfo (sha256, mac), salt, iterations. */
	niter = der_uint(iter, MAC_ITER);
	dinfo = sizeof alg_sha256 + der_size(MAC_LEN);
	der_add_head(&macdata, 0x30, der_size(dinfo) + der_size(SALT_LEN) +
	    niter);
	der_add_head(&macdata, 0x30, dinfo);
	buf_add(&macdata, alg_sha256, sizeof alg_sha256);
	der_add_head(&macdata, 0x04, MAC_LEN);
	buf_add(&macdata, mac, MAC_LEN);
	der_add_head(&macdata, 0x04, SALT_LEN);
	buf_add(&macdata, rp.salt, SALT_LEN);
	buf_add(&macdata, iter, niter);
	{
		struct iovec v[10] = {
			{ h_pfx, der_head(h_pfx, 0x30, sizeof version +
			    der_size(ci) + macdata.len) },
			{ version, sizeof version },
			{ h_ci, der_head(h_ci, 0x30, ci) },
			{ (void *)oid_data, sizeof oid_data },
			{ h_exp, der_head(h_exp, 0xa0, oct) },
			{ h_oct, der_head(h_oct, 0x04, nh_as + as) },
			{ h_as, nh_as },
			{ (void *)rp.safe, rp.safelen },
			{ ours.p, ours.len },
			{ macdata.p, macdata.len },
		};

		r = write_file(path, v, 10, err, errlen);
	}
out:
	ERR_clear_error();
	buf_free(&rp.mem);
	buf_free(&ours);
	buf_free(&macdata);
	return r;
}

int
trust_build(const char *dir, const char *roots, const char *const *extra,
    size_t nextra, size_t nours, struct trust_files *tf, char *err,
    size_t errlen)
{
	struct buf	*texts = xcalloc(nextra, sizeof *texts), bags = { 0 };
	struct roots	 rf = { .fd = -1 };
	int		 r = -1, next = 0;

	memset(tf, 0, sizeof *tf);
	/* Every extra is read and checked before anything is written. */
	for (size_t i = 0; i < nextra; i++) {
		BIO	*mem;
		int	 n = 0, bad = 0;

		if (read_all(extra[i], EXTRA_MAX, &texts[i]) != 0) {
			snprintf(err, errlen, "cannot read '%s': %s", extra[i],
			    errno == EFBIG ? "file too large" :
			    strerror(errno));
			goto out;
		}
		if (texts[i].len > 0 && (mem = BIO_new_mem_buf(texts[i].p,
		    (int)texts[i].len)) != NULL) {
			n = add_pem_bags(&bags, mem, "egress-run", &next,
			    i >= nours, &bad);
			BIO_free(mem);
		}
		/* One that cannot be read would break the bundle for
		 * OpenSSL's readers and the whole store for Java's. */
		if (bad > 0) {
			snprintf(err, errlen, "'%s' holds a certificate that "
			    "cannot be read", extra[i]);
			goto out;
		}
		if (n == 0) {
			snprintf(err, errlen, "'%s' holds no PEM certificate",
			    extra[i]);
			goto out;
		}
	}
	if (roots_open(&rf, roots, err, errlen) != 0)
		goto out;
	tf->bundle = xprintf("%s/ca-bundle.pem", dir);
	tf->wgetrc = xprintf("%s/wgetrc", dir);
	tf->truststore = xprintf("%s/truststore.p12", dir);
	if (write_bundle(tf->bundle, &rf, extra, texts, nextra, err,
	    errlen) != 0 ||
	    write_wgetrc(tf->wgetrc, tf->bundle, err, errlen) != 0 ||
	    write_truststore(tf->truststore, &rf, &bags, err, errlen) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		trust_files_free(tf);
	roots_close(&rf);
	for (size_t i = 0; i < nextra; i++)
		buf_free(&texts[i]);
	free(texts);
	buf_free(&bags);
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
