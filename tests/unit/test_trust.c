/*
 * env/trust.c: the combined bundle (roots first, then every extra, in
 * order), errors that name the bad file, private file modes, the wgetrc that
 * keeps the user's settings, and a PKCS#12 trust store that the openssl CLI
 * and (when installed) Java's keytool read as trusted certificates.
 * Certificates are made at run time with the openssl CLI.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "env/trust.h"
#include "test.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static char	tmpdir[] = "/tmp/test_trust.XXXXXX";
static char	root_pem[600], a_pem[600], b_pem[600];

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
		    extra, 2, &tf, err, sizeof err);
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
	const char *cases[] = { notcert, missing, keyfile };
	for (size_t i = 0; i < NELEM(cases); i++) {
		const char	*extra[] = { a_pem, cases[i] };
		char		 dir[600];

		snprintf(dir, sizeof dir, "%s/bad%zu", tmpdir, i);
		mkdir(dir, 0700);
		err[0] = '\0';
		CHECK(trust_build(dir, root_pem, extra, 2, &tf, err,
		    sizeof err) != 0, "%s accepted", cases[i]);
		CHECK(strstr(err, cases[i]) != NULL, "'%s' does not name %s",
		    err, cases[i]);
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
		CHECK(trust_build(dir, NULL, extra, 1, &tf, err, sizeof err) !=
		    0, "unreadable file accepted");
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
	CHECK(trust_build(dir, root_pem, extra, 1, &tf, err, sizeof err) == 0,
	    "%s", err);
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
		CHECK(trust_build(dir, root_pem, extra, 1, &tf, err,
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
	CHECK(trust_build(dir, root_pem, extra, 2, &tf, err, sizeof err) == 0,
	    "%s", err);
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
	CHECK(trust_build(dir, roots, extra, 1, &tf, err, sizeof err) == 0,
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
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return test_done("test_trust");
}
