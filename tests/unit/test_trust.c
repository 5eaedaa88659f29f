/*
 * env/trust.c: the combined bundle (roots first, then every extra, in
 * order), errors that name the bad file, private file modes, the wgetrc that
 * keeps the user's settings, and a PKCS#12 trust store that the openssl CLI
 * and (when installed) Java's keytool read as trusted certificates; the
 * cache of the store's roots part (reused, made again when damaged, not
 * ours or the roots change, safe against concurrent starts), roots without
 * a trailing newline or from a pipe, and garbled certificates.
 * Certificates are made at run time with the openssl CLI.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include "env/trust.h"
#include "test.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char	tmpdir[] = "/tmp/test_trust.XXXXXX";
static char	root_pem[600], a_pem[600], b_pem[600], cache_dir[600];

static char *
path_in(const char *dir, const char *name)
{
	static char	buf[4][600];
	static int	next;
	char		*p = buf[next++ % 4];

	snprintf(p, 600, "%s/%s", dir, name);
	return p;
}

static int
make_cert(const char *cn, const char *out)
{
	char cmd[2048];

	snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt "
	    "ec_paramgen_curve:P-256 -nodes -days 2 -subj '/CN=%s' -keyout "
	    "'%s.key' -out '%s' 2>/dev/null", cn, out, out);
	return system(cmd);
}

static char *
slurp(const char *path, size_t *lenp)
{
	FILE	*f = fopen(path, "rb");
	char	*buf;
	size_t	 n;

	if (lenp != NULL)
		*lenp = 0;
	if (f == NULL)
		return NULL;
	buf = calloc(1, 1 << 20);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	if (lenp != NULL)
		*lenp = n;
	return buf;
}

/* The subject CNs of every certificate in a PEM file, '|'-joined. */
static const char *
subjects(const char *path)
{
	static char	 out[8192];
	FILE		*f = fopen(path, "r");
	X509		*x;

	out[0] = '\0';
	if (f == NULL)
		return "(unreadable)";
	while ((x = PEM_read_X509(f, NULL, NULL, NULL)) != NULL) {
		char cn[256] = "";
		X509_NAME_get_text_by_NID(X509_get_subject_name(x),
		    NID_commonName, cn, sizeof cn);
		snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s",
		    out[0] ? "|" : "", cn);
		X509_free(x);
	}
	fclose(f);
	return out;
}

/* The output of a shell command, or "" */
static char *
run(const char *cmd)
{
	static char	 out[1 << 16];
	FILE		*p = popen(cmd, "r");
	size_t		 n = 0;

	out[0] = '\0';
	if (p == NULL)
		return out;
	n = fread(out, 1, sizeof out - 1, p);
	out[n] = '\0';
	pclose(p);
	return out;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static char *
fresh_dir(const char *name)
{
	char *d = path_in(tmpdir, name);

	mkdir(d, 0700);
	return d;
}

static void
bundle_is_roots_then_extras_in_order(void)
{
	static const struct {
		const char	*name;
		int		 with_roots;
		int		 a_first;
		const char	*want;
	} cases[] = {
		{ "order1", 1, 1, "egress-root|egress-A|egress-B" },
		{ "order2", 1, 0, "egress-root|egress-B|egress-A" },
		{ "noroots", 0, 1, "egress-A|egress-B" },
	};

	for (size_t i = 0; i < NELEM(cases); i++) {
		struct trust_files	 tf;
		char			 err[512], dir[600];
		const char		*extra[2];
		char			*roots, *bundle;
		size_t			 rlen, blen;
		int			 r;

		snprintf(dir, sizeof dir, "%s", fresh_dir(cases[i].name));
		extra[0] = cases[i].a_first ? a_pem : b_pem;
		extra[1] = cases[i].a_first ? b_pem : a_pem;
		r = trust_build(dir, cases[i].with_roots ? root_pem : NULL,
		    extra, 2, 0, &tf, err, sizeof err);
		CHECK(r == 0, "%s: %s", cases[i].name, err);
		if (r != 0)
			continue;
		CHECK_STR(subjects(tf.bundle), cases[i].want);
		CHECK(strncmp(tf.bundle, dir, strlen(dir)) == 0, "bundle %s is "
		    "outside %s", tf.bundle, dir);
		/* The roots file is copied as it is, at the top. */
		roots = slurp(root_pem, &rlen);
		bundle = slurp(tf.bundle, &blen);
		if (cases[i].with_roots)
			CHECK(roots && bundle && blen > rlen &&
			    memcmp(roots, bundle, rlen) == 0,
			    "%s: bundle does not start with the roots",
			    cases[i].name);
		CHECK(bundle && strstr(bundle, a_pem) != NULL, "the bundle "
		    "does not say where the extra came from");
		free(roots);
		free(bundle);
		trust_files_free(&tf);
	}
}

static void
bad_extra_file_is_an_error_naming_it(void)
{
	char		 notcert[600], missing[600], err[512];
	struct trust_files tf;
	FILE		*f;

	snprintf(notcert, sizeof notcert, "%s", path_in(tmpdir,
	    "not-a-cert.pem"));
	snprintf(missing, sizeof missing, "%s", path_in(tmpdir,
	    "missing.pem"));
	if ((f = fopen(notcert, "w")) != NULL) {
		fputs("hello, I am not a certificate\n", f);
		fclose(f);
	}
	char keyfile[700];
	snprintf(keyfile, sizeof keyfile, "%s.key", a_pem);	/* a key, no cert */
	/* A good certificate, then one that is not (Java would refuse the
	 * whole store, OpenSSL the whole bundle). */
	char garbled[600];
	snprintf(garbled, sizeof garbled, "%s", path_in(tmpdir,
	    "garbled-extra.pem"));
	{
		char	*a = slurp(a_pem, NULL), text[8192];

		snprintf(text, sizeof text, "%s%s", a ? a : "",
		    "-----BEGIN CERTIFICATE-----\nMAMCAQA=\n"
		    "-----END CERTIFICATE-----\n");
		if ((f = fopen(garbled, "w")) != NULL) {
			fputs(text, f);
			fclose(f);
		}
		free(a);
	}
	/* Refused also as egress-run's own (nours: read, shape-checked,
	 * only not decoded). */
	const char *cases[] = { notcert, missing, keyfile, garbled };
	for (size_t i = 0; i < 2 * NELEM(cases); i++) {
		const char	*extra[] = { a_pem, cases[i / 2] };
		char		 dir[600];

		snprintf(dir, sizeof dir, "%s/bad%zu", tmpdir, i);
		mkdir(dir, 0700);
		err[0] = '\0';
		CHECK(trust_build(dir, root_pem, extra, 2, i % 2 ? 2 : 0, &tf,
		    err, sizeof err) != 0, "%s accepted", cases[i / 2]);
		CHECK(strstr(err, cases[i / 2]) != NULL, "'%s' does not name "
		    "%s", err, cases[i / 2]);
		CHECK(tf.bundle == NULL && tf.wgetrc == NULL &&
		    tf.truststore == NULL, "paths left set after failure");
		trust_files_free(&tf);
	}
	/* Unreadable by mode: meaningful only when not root. */
	if (geteuid() != 0) {
		const char *extra[] = { notcert };
		char dir[600];
		chmod(notcert, 0);
		snprintf(dir, sizeof dir, "%s/bad-mode", tmpdir);
		mkdir(dir, 0700);
		CHECK(trust_build(dir, NULL, extra, 1, 0, &tf, err,
		    sizeof err) != 0, "unreadable file accepted");
		CHECK(strstr(err, notcert) != NULL, "'%s'", err);
	}
}

static void
files_are_private(void)
{
	const char		*extra[] = { a_pem };
	struct trust_files	 tf;
	char			 err[512], dir[600];
	mode_t			 old = umask(0);

	snprintf(dir, sizeof dir, "%s", fresh_dir("modes"));
	CHECK(trust_build(dir, root_pem, extra, 1, 0, &tf, err,
	    sizeof err) == 0, "%s", err);
	umask(old);
	const char *files[] = { tf.bundle, tf.wgetrc, tf.truststore };
	for (size_t i = 0; i < NELEM(files); i++) {
		struct stat st;
		CHECK(files[i] != NULL && stat(files[i], &st) == 0 &&
		    (st.st_mode & 07777) == 0600, "%s: mode %o", files[i],
		    files[i] ? (unsigned)(st.st_mode & 07777) : 0);
	}
	trust_files_free(&tf);
}

static void
wgetrc_keeps_the_users_settings(void)
{
	static const struct {
		const char	*name;
		const char	*user;		/* NULL: no user wgetrc */
		int		 via_home;	/* ~/.wgetrc, not $WGETRC */
		const char	*keep;
	} cases[] = {
		{ "wget1", "tries = 3\nhttps_only = on\n", 0,
		  "tries = 3\nhttps_only = on\n" },
		{ "wget2", "timeout = 9", 0, "timeout = 9\n" },	/* no EOL */
		{ "wget3", "user_agent = agent-x\n", 1,
		  "user_agent = agent-x\n" },
		{ "wget4", NULL, 0, "" },
	};
	char	*old_wgetrc = getenv("WGETRC") ? strdup(getenv("WGETRC")) :
	    NULL;
	char	*old_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char		*extra[] = { a_pem };
		struct trust_files	 tf;
		char			 err[512], dir[600], user[700], want[1400];
		char			*text;
		FILE			*f;

		snprintf(dir, sizeof dir, "%s", fresh_dir(cases[i].name));
		snprintf(user, sizeof user, "%s/%s", dir, cases[i].via_home ?
		    ".wgetrc" : "user-wgetrc");
		if (cases[i].user != NULL && (f = fopen(user, "w")) != NULL) {
			fputs(cases[i].user, f);
			fclose(f);
		}
		unsetenv("WGETRC");
		setenv("HOME", dir, 1);
		if (!cases[i].via_home && cases[i].user != NULL)
			setenv("WGETRC", user, 1);
		CHECK(trust_build(dir, root_pem, extra, 1, 0, &tf, err,
		    sizeof err) == 0, "%s", err);
		text = slurp(tf.wgetrc, NULL);
		CHECK(text != NULL && strncmp(text, cases[i].keep,
		    strlen(cases[i].keep)) == 0, "%s: user settings lost: "
		    "'%s'", cases[i].name, text ? text : "");
		CHECK(text != NULL && strstr(text, "ca_certificate = ") != NULL
		    && strstr(text, tf.bundle) != NULL, "%s: '%s'",
		    cases[i].name, text ? text : "");
		/* The last line names the bundle: it wins over a user's own
		 * ca_certificate earlier in the file. */
		snprintf(want, sizeof want, "ca_certificate = %s\n", tf.bundle);
		CHECK(text != NULL && strlen(text) >= strlen(want) &&
		    strcmp(text + strlen(text) - strlen(want), want) == 0,
		    "%s: does not end with '%s': '%s'", cases[i].name, want,
		    text ? text : "");
		free(text);
		trust_files_free(&tf);
	}
	if (old_wgetrc)
		setenv("WGETRC", old_wgetrc, 1);
	else
		unsetenv("WGETRC");
	if (old_home)
		setenv("HOME", old_home, 1);
	free(old_wgetrc);
	free(old_home);
}

static void
pkcs12_store_holds_every_certificate_as_trusted(void)
{
	const char		*extra[] = { a_pem, b_pem };
	struct trust_files	 tf;
	char			 err[512], dir[600], cmd[1400];
	const char		*out;

	snprintf(dir, sizeof dir, "%s", fresh_dir("p12"));
	CHECK(trust_build(dir, root_pem, extra, 2, 0, &tf, err,
	    sizeof err) == 0, "%s", err);
	if (tf.truststore == NULL)
		return;
	snprintf(cmd, sizeof cmd, "openssl pkcs12 -in '%s' -nokeys -info "
	    "-passin pass:%s 2>&1", tf.truststore, TRUST_STORE_PASSWORD);
	out = run(cmd);
	CHECK(count(out, "BEGIN CERTIFICATE") == 3, "%d certificates: %s",
	    count(out, "BEGIN CERTIFICATE"), out);
	CHECK(strstr(out, "CN = egress-root") && strstr(out, "CN = egress-A")
	    && strstr(out, "CN = egress-B"), "%s", out);
	/* Java's "trusted key usage" attribute on every bag. */
	CHECK(count(out, "2.16.840.1.113894.746875.1.1") == 3, "%s", out);
	CHECK(strstr(out, "MAC") != NULL, "no integrity MAC: %s", out);
	/* The wrong password fails: the MAC is checked. */
	snprintf(cmd, sizeof cmd, "openssl pkcs12 -in '%s' -nokeys "
	    "-passin pass:wrong >/dev/null 2>&1 && echo opened", tf.truststore);
	CHECK(strstr(run(cmd), "opened") == NULL, "opened with a wrong "
	    "password");

	if (system("command -v keytool >/dev/null 2>&1") != 0) {
		fprintf(stderr, "test_trust: NOTE: keytool not installed; "
		    "the Java check of the trust store is skipped\n");
	} else {
		snprintf(cmd, sizeof cmd, "keytool -list -keystore '%s' "
		    "-storetype PKCS12 -storepass %s 2>&1", tf.truststore,
		    TRUST_STORE_PASSWORD);
		out = run(cmd);
		CHECK(count(out, "trustedCertEntry") == 3, "keytool: %s", out);
	}
	trust_files_free(&tf);
}

static void
system_roots_make_a_full_store(void)
{
	const char		*roots = trust_default_roots();
	const char		*extra[] = { a_pem };
	struct trust_files	 tf;
	char			 err[512], dir[600], cmd[1400];
	const char		*out;

	CHECK(roots != NULL, "no system roots found");
	if (roots == NULL)
		return;
	snprintf(dir, sizeof dir, "%s", fresh_dir("system"));
	CHECK(trust_build(dir, roots, extra, 1, 0, &tf, err, sizeof err) == 0,
	    "%s", err);
	snprintf(cmd, sizeof cmd, "grep -c 'BEGIN CERTIFICATE' '%s'",
	    tf.bundle);
	out = run(cmd);
	CHECK(atoi(out) > 20, "only %d certificates in the bundle", atoi(out));
	snprintf(cmd, sizeof cmd, "openssl pkcs12 -in '%s' -nokeys -passin "
	    "pass:%s 2>/dev/null | grep -c 'BEGIN CERTIFICATE'", tf.truststore,
	    TRUST_STORE_PASSWORD);
	CHECK(atoi(run(cmd)) > 20, "trust store has %d certificates",
	    atoi(run(cmd)));
	trust_files_free(&tf);
}

static void
default_roots_follow_ssl_cert_file(void)
{
	char *old = getenv("SSL_CERT_FILE") ? strdup(getenv("SSL_CERT_FILE")) :
	    NULL;

	setenv("SSL_CERT_FILE", root_pem, 1);
	CHECK_STR(trust_default_roots(), root_pem);
	/* A name that does not exist is not used. */
	setenv("SSL_CERT_FILE", "/nonexistent/bundle.pem", 1);
	CHECK(trust_default_roots() == NULL ||
	    strcmp(trust_default_roots(), "/nonexistent/bundle.pem") != 0,
	    "a missing SSL_CERT_FILE is used");
	unsetenv("SSL_CERT_FILE");
	CHECK(trust_default_roots() == NULL ||
	    access(trust_default_roots(), R_OK) == 0, "unreadable default");
	if (old != NULL)
		setenv("SSL_CERT_FILE", old, 1);
	free(old);
}

/* What a trust store holds, read with OpenSSL: the MAC checked. */
struct store_info {
	int		n;		/* certificates; -1: does not open */
	char		cns[4096];	/* their CNs, '|'-joined, in order */
	unsigned char	salt[64];	/* the MAC's salt */
	int		saltlen;
};

static void
store_read(const char *path, struct store_info *si)
{
	STACK_OF(PKCS7)			*safes = NULL;
	const ASN1_OCTET_STRING		*salt = NULL;
	PKCS12				*p12 = NULL;
	FILE				*f;

	memset(si, 0, sizeof *si);
	si->n = -1;
	if ((f = fopen(path, "rb")) == NULL)
		return;
	p12 = d2i_PKCS12_fp(f, NULL);
	fclose(f);
	if (p12 == NULL || PKCS12_verify_mac(p12, TRUST_STORE_PASSWORD, -1) != 1
	    || (safes = PKCS12_unpack_authsafes(p12)) == NULL)
		goto out;
	PKCS12_get0_mac(NULL, NULL, &salt, NULL, p12);
	if (salt != NULL && ASN1_STRING_length(salt) <= 64) {
		si->saltlen = ASN1_STRING_length(salt);
		memcpy(si->salt, ASN1_STRING_get0_data(salt), si->saltlen);
	}
	si->n = 0;
	for (int i = 0; i < sk_PKCS7_num(safes); i++) {
		STACK_OF(PKCS12_SAFEBAG) *bags =
		    PKCS12_unpack_p7data(sk_PKCS7_value(safes, i));

		for (int j = 0; j < sk_PKCS12_SAFEBAG_num(bags); j++) {
			X509	*x = PKCS12_SAFEBAG_get1_cert(
			    sk_PKCS12_SAFEBAG_value(bags, j));
			char	 cn[256] = "";

			if (x == NULL) {
				si->n = -1;
				continue;
			}
			X509_NAME_get_text_by_NID(X509_get_subject_name(x),
			    NID_commonName, cn, sizeof cn);
			snprintf(si->cns + strlen(si->cns), sizeof si->cns -
			    strlen(si->cns), "%s%s", si->cns[0] ? "|" : "", cn);
			X509_free(x);
			if (si->n >= 0)
				si->n++;
		}
		sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
	}
out:
	ERR_clear_error();
	sk_PKCS7_pop_free(safes, PKCS7_free);
	PKCS12_free(p12);
}

static int
same_salt(const struct store_info *a, const struct store_info *b)
{
	return a->saltlen > 0 && a->saltlen == b->saltlen &&
	    memcmp(a->salt, b->salt, a->saltlen) == 0;
}

/* Roots parts in the cache directory (and temporary files in *tmp). */
static int
cache_files(char *name, size_t len, int *tmp)
{
	DIR		*d = opendir(cache_dir);
	struct dirent	*e;
	int		 n = 0;

	if (tmp != NULL)
		*tmp = 0;
	if (d == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "roots-", 6) != 0)
			continue;
		if (strstr(e->d_name, ".tmp") != NULL) {
			if (tmp != NULL)
				(*tmp)++;
			continue;
		}
		if (name != NULL)
			snprintf(name, len, "%s/%s", cache_dir, e->d_name);
		n++;
	}
	closedir(d);
	return n;
}

static void
cache_clear(void)
{
	char cmd[700];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", cache_dir);
	(void)!system(cmd);
}

static int
write_text(const char *path, const char *text, size_t len)
{
	FILE	*f = fopen(path, "wb");
	int	 r;

	if (f == NULL)
		return -1;
	r = fwrite(text, 1, len, f) == len ? 0 : -1;
	return fclose(f) == 0 ? r : -1;
}

/* roots + extras into dir; the store read back. */
static int
build_read(const char *dir, const char *roots, const char *extra1,
    struct store_info *si)
{
	const char		*extra[] = { extra1 };
	struct trust_files	 tf;
	char			 err[512];
	int			 r;

	mkdir(dir, 0700);
	r = trust_build(dir, roots, extra, 1, 0, &tf, err, sizeof err);
	if (r != 0) {
		fprintf(stderr, "test_trust: trust_build: %s\n", err);
		memset(si, 0, sizeof *si);
		si->n = -1;
		return r;
	}
	store_read(tf.truststore, si);
	trust_files_free(&tf);
	return 0;
}

static void
cache_is_reused_until_the_roots_change(void)
{
	char			 roots[600], dir[600], name[1024], name2[1024];
	char			*root, *a, *both;
	size_t			 rlen, alen;
	struct store_info	 s1, s2, s3, s4;
	struct stat		 st, st2;
	int			 fd;

	snprintf(roots, sizeof roots, "%s", path_in(tmpdir, "croots.pem"));
	snprintf(dir, sizeof dir, "%s", path_in(tmpdir, "cache-reuse"));
	root = slurp(root_pem, &rlen);
	a = slurp(a_pem, &alen);
	CHECK(root && a && write_text(roots, root, rlen) == 0, "setup");
	cache_clear();

	CHECK(build_read(dir, roots, b_pem, &s1) == 0, "first build");
	CHECK_STR(s1.cns, "egress-root|egress-B");
	CHECK(cache_files(name, sizeof name, NULL) == 1, "%d roots parts "
	    "cached", cache_files(NULL, 0, NULL));
	CHECK(stat(name, &st) == 0 && (st.st_mode & 07777) == 0600 &&
	    st.st_uid == geteuid(), "%s: mode %o", name,
	    (unsigned)(st.st_mode & 07777));
	CHECK(stat(cache_dir, &st2) == 0 && (st2.st_mode & 07777) == 0700,
	    "%s: mode %o", cache_dir, (unsigned)(st2.st_mode & 07777));

	/* Reused: the same salt (random when made), the file untouched. */
	CHECK(build_read(dir, roots, b_pem, &s2) == 0, "second build");
	CHECK_STR(s2.cns, "egress-root|egress-B");
	CHECK(same_salt(&s1, &s2), "the cached part was not reused");
	CHECK(stat(name, &st2) == 0 && st2.st_ino == st.st_ino &&
	    st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
	    st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec, "cache rewritten");

	/* The roots file grows: made again, the old part removed. */
	both = malloc(rlen + alen);
	memcpy(both, root, rlen);
	memcpy(both + rlen, a, alen);
	CHECK(write_text(roots, both, rlen + alen) == 0, "append");
	CHECK(build_read(dir, roots, b_pem, &s3) == 0, "third build");
	CHECK_STR(s3.cns, "egress-root|egress-A|egress-B");
	CHECK(!same_salt(&s2, &s3), "stale part used after the roots grew");
	CHECK(cache_files(name2, sizeof name2, NULL) == 1, "%d roots parts "
	    "cached: the old one was not removed",
	    cache_files(NULL, 0, NULL));

	/* Rewritten in place, same size, modification time put back: only
	 * the change time tells (and it ticks coarsely: wait). */
	CHECK(stat(roots, &st) == 0, "stat");
	usleep(30000);
	memcpy(both, a, alen);
	memcpy(both + alen, root, rlen);
	if ((fd = open(roots, O_WRONLY)) != -1) {
		struct timespec ts[2] = { st.st_atim, st.st_mtim };

		CHECK(write(fd, both, rlen + alen) == (ssize_t)(rlen + alen),
		    "rewrite");
		CHECK(futimens(fd, ts) == 0, "futimens");
		close(fd);
	}
	CHECK(stat(roots, &st2) == 0 && st2.st_ino == st.st_ino &&
	    st2.st_size == st.st_size && st2.st_mtim.tv_nsec ==
	    st.st_mtim.tv_nsec, "the rewrite changed more than content");
	CHECK(build_read(dir, roots, b_pem, &s4) == 0, "fourth build");
	CHECK_STR(s4.cns, "egress-A|egress-root|egress-B");
	free(root);
	free(a);
	free(both);
}

static void
damaged_cache_is_made_again(void)
{
	enum { TRUNC_HALF, TRUNC_10, EMPTY, FLIP_CERT, FLIP_ID, FLIP_MAGIC,
	    FLIP_DIGEST, APPEND, MODE_0644, NOT_OURS, SYMLINK };
	static const struct {
		const char	*name;
		int		 how;
	} cases[] = {
		{ "truncated to half", TRUNC_HALF },
		{ "truncated to 10 bytes", TRUNC_10 },
		{ "empty", EMPTY },
		{ "a byte of a certificate changed", FLIP_CERT },
		{ "a byte of the identity changed", FLIP_ID },
		{ "a byte of the magic changed", FLIP_MAGIC },
		{ "a byte of the digest changed", FLIP_DIGEST },
		{ "a byte appended", APPEND },
		{ "readable by others", MODE_0644 },
		{ "owned by another user", NOT_OURS },
		{ "a symbolic link to a sound copy", SYMLINK },
	};
	char	dir[600];

	snprintf(dir, sizeof dir, "%s", path_in(tmpdir, "cache-damage"));
	for (size_t i = 0; i < NELEM(cases); i++) {
		struct store_info	 s1, s2, s3;
		char			 name[1024], copy[900];
		char			*data;
		size_t			 len;

		if (cases[i].how == NOT_OURS && geteuid() != 0)
			continue;	/* chown needs root */
		cache_clear();
		CHECK(build_read(dir, root_pem, a_pem, &s1) == 0 &&
		    cache_files(name, sizeof name, NULL) == 1, "%s: setup",
		    cases[i].name);
		data = slurp(name, &len);
		if (data == NULL || len < 200) {
			CHECK(0, "%s: cache file %s too short", cases[i].name,
			    name);
			free(data);
			continue;
		}
		switch (cases[i].how) {
		case TRUNC_HALF:
			CHECK(truncate(name, (off_t)len / 2) == 0, "truncate");
			break;
		case TRUNC_10:
			CHECK(truncate(name, 10) == 0, "truncate");
			break;
		case EMPTY:
			CHECK(truncate(name, 0) == 0, "truncate");
			break;
		case FLIP_CERT:		/* in the last signature: DER intact */
		case FLIP_ID:		/* after magic, digest and length */
		case FLIP_MAGIC:
		case FLIP_DIGEST:
			data[cases[i].how == FLIP_CERT ? len - 40 :
			    cases[i].how == FLIP_ID ? 25 + 32 + 2 + 3 :
			    cases[i].how == FLIP_MAGIC ? 3 : 30] ^= 0x01;
			CHECK(write_text(name, data, len) == 0, "rewrite");
			break;
		case APPEND:
			data = realloc(data, len + 1);
			data[len] = 0x00;
			CHECK(write_text(name, data, len + 1) == 0, "rewrite");
			break;
		case MODE_0644:
			CHECK(chmod(name, 0644) == 0, "chmod");
			break;
		case NOT_OURS:
			CHECK(chown(name, 65534, 65534) == 0, "chown");
			break;
		case SYMLINK:
			snprintf(copy, sizeof copy, "%s/sound-copy", tmpdir);
			CHECK(write_text(copy, data, len) == 0 &&
			    chmod(copy, 0600) == 0 && unlink(name) == 0 &&
			    symlink(copy, name) == 0, "symlink");
			break;
		}
		free(data);
		CHECK(build_read(dir, root_pem, a_pem, &s2) == 0, "%s: build "
		    "failed", cases[i].name);
		CHECK(s2.n == 2 && strcmp(s2.cns, "egress-root|egress-A") == 0,
		    "%s: store holds %d: %s", cases[i].name, s2.n, s2.cns);
		CHECK(!same_salt(&s1, &s2), "%s: the cache file was trusted",
		    cases[i].name);
		/* Made again, saved sound, and reused next time. */
		CHECK(build_read(dir, root_pem, a_pem, &s3) == 0 &&
		    same_salt(&s2, &s3), "%s: the new cache file is not used",
		    cases[i].name);
		CHECK(cache_files(NULL, 0, NULL) == 1, "%s: %d cache files",
		    cases[i].name, cache_files(NULL, 0, NULL));
	}
}

static void
cache_directory_others_can_enter_is_not_used(void)
{
	struct store_info	 s1, s2;
	char			 dir[600];

	snprintf(dir, sizeof dir, "%s", path_in(tmpdir, "cache-dirmode"));
	cache_clear();
	CHECK(build_read(dir, root_pem, a_pem, &s1) == 0, "setup");
	CHECK(chmod(cache_dir, 0755) == 0, "chmod");
	CHECK(build_read(dir, root_pem, a_pem, &s2) == 0 && s2.n == 2,
	    "build without a cache: %d", s2.n);
	CHECK(!same_salt(&s1, &s2), "the cache in a 0755 directory was used");
	chmod(cache_dir, 0700);
}

static void
cache_keeps_few_files(void)
{
	struct store_info	si;
	char			dir[600], roots[600];
	char			*root;
	size_t			rlen;

	snprintf(dir, sizeof dir, "%s", path_in(tmpdir, "cache-many"));
	root = slurp(root_pem, &rlen);
	cache_clear();
	/* As in nested runs: a roots file named by a new path each time. */
	for (int i = 0; i < 12; i++) {
		snprintf(roots, sizeof roots, "%s/many-%d.pem", tmpdir, i);
		CHECK(root && write_text(roots, root, rlen) == 0, "write");
		CHECK(build_read(dir, roots, a_pem, &si) == 0 && si.n == 2,
		    "build %d", i);
	}
	CHECK(cache_files(NULL, 0, NULL) <= 8, "%d cache files",
	    cache_files(NULL, 0, NULL));
	free(root);
}

static void
concurrent_starts_leave_a_sound_cache(void)
{
	enum { NCHILD = 6, NRUN = 12 };
	pid_t	pid[NCHILD];
	int	failed = 0, tmp;

	cache_clear();
	for (int c = 0; c < NCHILD; c++) {
		if ((pid[c] = fork()) == 0) {
			struct store_info	si;
			char			dir[600], name[1024];
			int			bad = 0;

			snprintf(dir, sizeof dir, "%s/race-%d", tmpdir, c);
			for (int i = 0; i < NRUN; i++) {
				/* Some remove it: more starts write it. */
				if (c % 2 == 0 && cache_files(name,
				    sizeof name, NULL) == 1)
					(void)unlink(name);
				if (build_read(dir, root_pem, a_pem, &si) != 0
				    || si.n != 2 || strcmp(si.cns,
				    "egress-root|egress-A") != 0)
					bad++;
			}
			_exit(bad);
		}
	}
	for (int c = 0; c < NCHILD; c++) {
		int status;

		if (pid[c] == -1 || waitpid(pid[c], &status, 0) != pid[c] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	CHECK(failed == 0, "%d of %d racing children saw a bad store",
	    failed, NCHILD);
	CHECK(cache_files(NULL, 0, &tmp) <= 1 && tmp == 0, "%d parts, %d "
	    "temporary files left", cache_files(NULL, 0, NULL), tmp);
	{
		struct store_info	s1, s2;
		char			dir[600];

		snprintf(dir, sizeof dir, "%s/race-after", tmpdir);
		CHECK(build_read(dir, root_pem, a_pem, &s1) == 0 &&
		    build_read(dir, root_pem, a_pem, &s2) == 0 &&
		    same_salt(&s1, &s2) && s2.n == 2, "cache after the race");
	}
}

static void
roots_without_a_final_newline_or_from_a_pipe(void)
{
	char			 roots[600], extra[600], dir[600], pipe_path[64];
	char			*root, *a, *bundle, want[800];
	size_t			 rlen, alen;
	const char		*extras[1];
	struct trust_files	 tf;
	struct store_info	 si;
	char			 err[512];
	int			 p[2];

	snprintf(roots, sizeof roots, "%s", path_in(tmpdir, "noeol-roots.pem"));
	snprintf(extra, sizeof extra, "%s", path_in(tmpdir, "noeol-a.pem"));
	root = slurp(root_pem, &rlen);
	a = slurp(a_pem, &alen);
	CHECK(root && a && rlen > 0 && root[rlen - 1] == '\n' &&
	    write_text(roots, root, rlen - 1) == 0 &&
	    write_text(extra, a, alen - 1) == 0, "setup");
	extras[0] = extra;
	snprintf(dir, sizeof dir, "%s", fresh_dir("noeol"));
	CHECK(trust_build(dir, roots, extras, 1, 0, &tf, err, sizeof err) == 0,
	    "%s", err);
	if (tf.bundle != NULL) {
		CHECK_STR(subjects(tf.bundle), "egress-root|egress-A");
		bundle = slurp(tf.bundle, NULL);
		snprintf(want, sizeof want, "-----END CERTIFICATE-----\n# %s "
		    "(added by egress-run)\n-----BEGIN", extra);
		CHECK(bundle && strstr(bundle, want) != NULL, "bundle: %s",
		    bundle ? bundle : "");
		CHECK(bundle && strlen(bundle) > 0 &&
		    bundle[strlen(bundle) - 1] == '\n', "no final newline");
		free(bundle);
		store_read(tf.truststore, &si);
		CHECK_STR(si.cns, "egress-root|egress-A");
		trust_files_free(&tf);
	}

	/* A pipe can be read once: bundle and store from that one read. */
	CHECK(pipe(p) == 0, "pipe");
	CHECK(write(p[1], root, rlen) == (ssize_t)rlen, "pipe write");
	close(p[1]);
	snprintf(pipe_path, sizeof pipe_path, "/dev/fd/%d", p[0]);
	snprintf(dir, sizeof dir, "%s", fresh_dir("pipe"));
	extras[0] = a_pem;
	CHECK(trust_build(dir, pipe_path, extras, 1, 0, &tf, err, sizeof err) ==
	    0, "%s", err);
	close(p[0]);
	if (tf.bundle != NULL) {
		CHECK_STR(subjects(tf.bundle), "egress-root|egress-A");
		store_read(tf.truststore, &si);
		CHECK_STR(si.cns, "egress-root|egress-A");
		trust_files_free(&tf);
	}
	free(root);
	free(a);
}

/* A CERTIFICATE block whose DER is a SEQUENCE but not a certificate. */
#define GARBLED_PEM \
	"-----BEGIN CERTIFICATE-----\nMAMCAQA=\n-----END CERTIFICATE-----\n"
/* ... and one whose inner lengths run past its end. */
#define TRUNCATED_PEM \
	"-----BEGIN CERTIFICATE-----\nMAUwBQIBAA==\n-----END CERTIFICATE-----\n"

static void
garbled_root_is_left_out_of_the_store(void)
{
	char			 roots[600], dir[600], cmd[1400];
	char			*root, *b, text[8192];
	size_t			 rlen, blen;
	struct store_info	 si;

	snprintf(roots, sizeof roots, "%s", path_in(tmpdir, "garbled.pem"));
	snprintf(dir, sizeof dir, "%s", path_in(tmpdir, "garbled"));
	root = slurp(root_pem, &rlen);
	b = slurp(b_pem, &blen);
	snprintf(text, sizeof text, "%s%s%s%s", root ? root : "",
	    TRUNCATED_PEM, b ? b : "", GARBLED_PEM);
	CHECK(write_text(roots, text, strlen(text)) == 0, "setup");
	cache_clear();
	CHECK(build_read(dir, roots, a_pem, &si) == 0, "build");
	/* Java refuses a whole store for one certificate it cannot read:
	 * both are left out of it (the bundle keeps the bytes as they are). */
	CHECK(si.n == 3 && strcmp(si.cns, "egress-root|egress-B|egress-A") ==
	    0, "store: %d %s", si.n, si.cns);
	if (system("command -v keytool >/dev/null 2>&1") == 0) {
		snprintf(cmd, sizeof cmd, "keytool -list -keystore '%s/"
		    "truststore.p12' -storetype PKCS12 -storepass %s 2>&1",
		    dir, TRUST_STORE_PASSWORD);
		CHECK(count(run(cmd), "trustedCertEntry") == 3, "keytool: %s",
		    run(cmd));
	}
	free(root);
	free(b);
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(root_pem, sizeof root_pem, "%s/root.pem", tmpdir);
	snprintf(a_pem, sizeof a_pem, "%s/a.pem", tmpdir);
	snprintf(b_pem, sizeof b_pem, "%s/b.pem", tmpdir);
	/* The store's roots part is cached here, not in the user's cache. */
	snprintf(cache_dir, sizeof cache_dir, "%s/cache/egress-run", tmpdir);
	setenv("XDG_CACHE_HOME", path_in(tmpdir, "cache"), 1);
	if (make_cert("egress-root", root_pem) != 0 ||
	    make_cert("egress-A", a_pem) != 0 ||
	    make_cert("egress-B", b_pem) != 0) {
		fprintf(stderr, "test_trust: openssl req failed\n");
		return 1;
	}
	RUN(bundle_is_roots_then_extras_in_order);
	RUN(bad_extra_file_is_an_error_naming_it);
	RUN(files_are_private);
	RUN(wgetrc_keeps_the_users_settings);
	RUN(pkcs12_store_holds_every_certificate_as_trusted);
	RUN(system_roots_make_a_full_store);
	RUN(default_roots_follow_ssl_cert_file);
	RUN(cache_is_reused_until_the_roots_change);
	RUN(damaged_cache_is_made_again);
	RUN(cache_directory_others_can_enter_is_not_used);
	RUN(cache_keeps_few_files);
	RUN(concurrent_starts_leave_a_sound_cache);
	RUN(roots_without_a_final_newline_or_from_a_pipe);
	RUN(garbled_root_is_left_out_of_the_store);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return test_done("test_trust");
}
