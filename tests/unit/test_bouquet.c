/*
 * env/bouquet.c: the child's environment. Every variable of SPEC §4 with its
 * value, the user's own values kept where they must be (JAVA_TOOL_OPTIONS,
 * GIT_SSH_COMMAND), and bouquet_print() read back by a real /bin/sh.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env/bouquet.h"
#include "env/trust.h"
#include "test.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *const proxy_vars[] = {
	"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"ALL_PROXY", "all_proxy", "GRPC_PROXY", "grpc_proxy",
	"npm_config_proxy", "npm_config_https_proxy",
};

static const char *const trust_vars[] = {
	"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "PIP_CERT",
	"GIT_SSL_CAINFO", "NODE_EXTRA_CA_CERTS", "AWS_CA_BUNDLE",
	"CARGO_HTTP_CAINFO", "DENO_CERT", "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE",
	"NIX_SSL_CERT_FILE", "HTTPLIB2_CA_CERTS",
	"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH", "npm_config_cafile",
};

static struct trust_files test_trust = {
	.bundle = "/state/ca-bundle.pem",
	.wgetrc = "/state/wgetrc",
	.truststore = "/state/truststore.p12",
};

static char *const base_env[] = {
	"PATH=/usr/bin:/bin", "HOME=/home/u", "LANG=C.UTF-8", NULL,
};

static void
opts_init(struct bouquet_opts *o)
{
	memset(o, 0, sizeof *o);
	o->proxy_host = "127.0.0.1";
	o->proxy_port = 41234;
	o->self = "/usr/bin/egress-run";
}

/* How many entries of the built environment define NAME. */
static int
count_defs(const struct bouquet *b, const char *name)
{
	size_t	n = strlen(name);
	int	count = 0;

	for (size_t i = 0; i < b->env.n; i++)
		if (strncmp(b->env.v[i], name, n) == 0 && b->env.v[i][n] == '=')
			count++;
	return count;
}

static bool
in_set(const struct bouquet *b, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < b->set.n; i++)
		if (strncmp(b->set.v[i], name, n) == 0 && b->set.v[i][n] == '=')
			return true;
	return false;
}

static void
every_proxy_variable_points_at_the_proxy(void)
{
	static const struct {
		const char	*host;
		unsigned	 port;
		const char	*url;
	} cases[] = {
		{ "127.0.0.1", 41234, "http://127.0.0.1:41234" },
		{ "::1", 8080, "http://[::1]:8080" },
		{ "localhost", 3128, "http://localhost:3128" },
	};

	for (size_t c = 0; c < NELEM(cases); c++) {
		struct bouquet_opts	o;
		struct bouquet		b;

		opts_init(&o);
		o.proxy_host = cases[c].host;
		o.proxy_port = cases[c].port;
		bouquet_build(&b, base_env, &o);
		for (size_t i = 0; i < NELEM(proxy_vars); i++) {
			CHECK_STR(bouquet_get(&b, proxy_vars[i]), cases[c].url);
			CHECK(count_defs(&b, proxy_vars[i]) == 1, "%s defined "
			    "%d times", proxy_vars[i],
			    count_defs(&b, proxy_vars[i]));
			CHECK(in_set(&b, proxy_vars[i]), "%s not in set",
			    proxy_vars[i]);
		}
		CHECK_STR(bouquet_get(&b, "NODE_USE_ENV_PROXY"), "1");
		CHECK_STR(bouquet_get(&b, "EGRESS_RUN"), "1");
		/* The parent's variables are all there. */
		CHECK_STR(bouquet_get(&b, "PATH"), "/usr/bin:/bin");
		CHECK_STR(bouquet_get(&b, "HOME"), "/home/u");
		CHECK_STR(bouquet_get(&b, "LANG"), "C.UTF-8");
		CHECK(!in_set(&b, "PATH"), "PATH is not ours to print");
		bouquet_free(&b);
	}
}

static void
all_proxy_may_differ(void)
{
	struct bouquet_opts	o;
	struct bouquet		b;

	opts_init(&o);
	o.all_proxy = "socks5h://127.0.0.1:41234";
	bouquet_build(&b, base_env, &o);
	CHECK_STR(bouquet_get(&b, "ALL_PROXY"), "socks5h://127.0.0.1:41234");
	CHECK_STR(bouquet_get(&b, "all_proxy"), "socks5h://127.0.0.1:41234");
	CHECK_STR(bouquet_get(&b, "HTTPS_PROXY"), "http://127.0.0.1:41234");
	bouquet_free(&b);
}

static void
parent_proxy_variables_are_replaced_not_duplicated(void)
{
	/* Python's os.environ keeps the *last* of duplicate entries and
	 * getenv() the first: the child must see one definition only. */
	char *const parent[] = {
		"HTTPS_PROXY=http://corp:3128", "https_proxy=http://corp:3128",
		"HTTP_PROXY=http://corp:3128", "no_proxy=corp.internal",
		"HTTPS_PROXY=http://second:3128", "EGRESS_RUN=0",
		"NOEQUALS", "=weird", "PATH=/bin", NULL,
	};
	struct bouquet_opts	o;
	struct bouquet		b;

	opts_init(&o);
	bouquet_build(&b, parent, &o);
	CHECK_STR(bouquet_get(&b, "HTTPS_PROXY"), "http://127.0.0.1:41234");
	CHECK(count_defs(&b, "HTTPS_PROXY") == 1, "HTTPS_PROXY defined %d "
	    "times", count_defs(&b, "HTTPS_PROXY"));
	CHECK(count_defs(&b, "https_proxy") == 1, "https_proxy");
	CHECK(count_defs(&b, "EGRESS_RUN") == 1, "EGRESS_RUN");
	CHECK_STR(bouquet_get(&b, "no_proxy"), "localhost,127.0.0.1,::1");
	for (size_t i = 0; i < b.env.n; i++) {
		CHECK(strchr(b.env.v[i], '=') != NULL && b.env.v[i][0] != '=',
		    "malformed entry '%s' passed on", b.env.v[i]);
		CHECK(strstr(b.env.v[i], "corp:3128") == NULL &&
		    strstr(b.env.v[i], "second:3128") == NULL,
		    "parent proxy survives in '%s'", b.env.v[i]);
	}
	CHECK_STR(bouquet_get(&b, "PATH"), "/bin");
	bouquet_free(&b);
}

static void
no_proxy_is_loopback_plus_additions(void)
{
	static const struct {
		const char	*add[3];
		const char	*want;
	} cases[] = {
		{ { NULL }, "localhost,127.0.0.1,::1" },
		{ { "internal.test", NULL },
		  "localhost,127.0.0.1,::1,internal.test" },
		{ { "a.test", ".corp,10.0.0.0/8", NULL },
		  "localhost,127.0.0.1,::1,a.test,.corp,10.0.0.0/8" },
	};

	for (size_t c = 0; c < NELEM(cases); c++) {
		struct strlist		add = { 0 };
		struct bouquet_opts	o;
		struct bouquet		b;

		for (size_t i = 0; cases[c].add[i] != NULL; i++)
			strlist_add(&add, cases[c].add[i]);
		opts_init(&o);
		o.no_proxy = &add;
		bouquet_build(&b, base_env, &o);
		CHECK_STR(bouquet_get(&b, "NO_PROXY"), cases[c].want);
		CHECK_STR(bouquet_get(&b, "no_proxy"), cases[c].want);
		bouquet_free(&b);
		strlist_clear(&add);
	}
}

static void
no_proxy_variables_without_a_proxy(void)
{
	char *const parent[] = { "PATH=/bin", "SSL_CERT_FILE=/mine.pem",
	    "JAVA_TOOL_OPTIONS=-Xmx1g", NULL };
	struct bouquet_opts	o;
	struct bouquet		b;

	opts_init(&o);
	o.proxy_host = NULL;
	bouquet_build(&b, parent, &o);
	for (size_t i = 0; i < NELEM(proxy_vars); i++)
		CHECK(bouquet_get(&b, proxy_vars[i]) == NULL, "%s is set",
		    proxy_vars[i]);
	for (size_t i = 0; i < NELEM(trust_vars); i++)
		CHECK(!in_set(&b, trust_vars[i]), "%s is set", trust_vars[i]);
	CHECK(bouquet_get(&b, "NO_PROXY") == NULL, "NO_PROXY");
	CHECK(bouquet_get(&b, "NODE_USE_ENV_PROXY") == NULL, "NODE_USE_...");
	CHECK(bouquet_get(&b, "GIT_SSH_COMMAND") == NULL, "GIT_SSH_COMMAND");
	CHECK_STR(bouquet_get(&b, "JAVA_TOOL_OPTIONS"), "-Xmx1g");
	CHECK_STR(bouquet_get(&b, "SSL_CERT_FILE"), "/mine.pem");
	/* Still marked: the child knows it runs under egress-run. */
	CHECK_STR(bouquet_get(&b, "EGRESS_RUN"), "1");
	CHECK(b.set.n == 1, "%zu variables set, want only EGRESS_RUN",
	    b.set.n);
	bouquet_free(&b);
}

static void
trust_variables_only_with_a_bundle_and_all_point_at_it(void)
{
	char *const parent[] = { "PATH=/bin", "SSL_CERT_FILE=/mine.pem",
	    "WGETRC=/home/u/.wgetrc", NULL };
	struct bouquet_opts	o;
	struct bouquet		b;

	/* Without: nothing of ours, the parent's value untouched. */
	opts_init(&o);
	bouquet_build(&b, parent, &o);
	for (size_t i = 0; i < NELEM(trust_vars); i++)
		CHECK(!in_set(&b, trust_vars[i]), "%s set without a bundle",
		    trust_vars[i]);
	CHECK_STR(bouquet_get(&b, "SSL_CERT_FILE"), "/mine.pem");
	CHECK_STR(bouquet_get(&b, "WGETRC"), "/home/u/.wgetrc");
	CHECK(strstr(bouquet_get(&b, "JAVA_TOOL_OPTIONS"), "trustStore") ==
	    NULL, "Java trust store without a bundle");
	bouquet_free(&b);

	/* With: every one of them names the combined bundle. */
	opts_init(&o);
	o.trust = &test_trust;
	bouquet_build(&b, parent, &o);
	for (size_t i = 0; i < NELEM(trust_vars); i++) {
		CHECK_STR(bouquet_get(&b, trust_vars[i]), test_trust.bundle);
		CHECK(count_defs(&b, trust_vars[i]) == 1, "%s twice",
		    trust_vars[i]);
	}
	CHECK_STR(bouquet_get(&b, "WGETRC"), test_trust.wgetrc);
	CHECK(count_defs(&b, "WGETRC") == 1, "WGETRC twice");
	bouquet_free(&b);
}

static void
java_tool_options_appended_to_the_users(void)
{
	static const struct {
		const char	*user;		/* NULL: none */
		bool		 trust;
		const char	*want;
	} cases[] = {
		{ NULL, false,
		  "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=41234 "
		  "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=41234" },
		{ "-Xmx1g -Dfile.encoding=UTF-8", false,
		  "-Xmx1g -Dfile.encoding=UTF-8 "
		  "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=41234 "
		  "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=41234" },
		{ "", false,
		  "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=41234 "
		  "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=41234" },
		{ "-Xmx1g", true,
		  "-Xmx1g "
		  "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=41234 "
		  "-Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=41234 "
		  "-Djavax.net.ssl.trustStore=/state/truststore.p12 "
		  "-Djavax.net.ssl.trustStoreType=PKCS12 "
		  "-Djavax.net.ssl.trustStorePassword=changeit" },
	};

	for (size_t c = 0; c < NELEM(cases); c++) {
		char			 user[256];
		char			*parent[] = { "PATH=/bin", NULL, NULL };
		struct bouquet_opts	 o;
		struct bouquet		 b;

		if (cases[c].user != NULL) {
			snprintf(user, sizeof user, "JAVA_TOOL_OPTIONS=%s",
			    cases[c].user);
			parent[1] = user;
		}
		opts_init(&o);
		o.trust = cases[c].trust ? &test_trust : NULL;
		bouquet_build(&b, parent, &o);
		CHECK_STR(bouquet_get(&b, "JAVA_TOOL_OPTIONS"), cases[c].want);
		CHECK(count_defs(&b, "JAVA_TOOL_OPTIONS") == 1, "case %zu", c);
		bouquet_free(&b);
	}
}

/*
 * Split a string into words the way git does with GIT_SSH_COMMAND: it hands
 * it to sh. Returns the number of words, each in words[] (static storage).
 */
static int
sh_words(const char *cmdline, char words[][256], int max)
{
	char	 file[] = "/tmp/test_bouquet.words.XXXXXX", line[256];
	FILE	*f;
	int	 n = 0, fd;
	pid_t	 pid;

	if ((fd = mkstemp(file)) == -1)
		return -1;
	if ((pid = fork()) == 0) {
		dup2(fd, STDOUT_FILENO);
		setenv("CMDLINE", cmdline, 1);
		execl("/bin/sh", "sh", "-c",
		    "eval \"set -- $CMDLINE\"; for a; do printf '%s\\n' \"$a\";"
		    " done", (char *)NULL);
		_exit(127);
	}
	close(fd);
	waitpid(pid, NULL, 0);
	if ((f = fopen(file, "r")) != NULL) {
		while (n < max && fgets(line, sizeof line, f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(words[n++], 256, "%s", line);
		}
		fclose(f);
	}
	unlink(file);
	return n;
}

static void
git_ssh_command_uses_egress_run_connect(void)
{
	static const struct {
		const char	*parent[3];
		const char	*self;
		const char	*words[10];	/* as sh splits the result */
	} cases[] = {
		/* No user value: plain ssh. */
		{ { NULL }, "/usr/bin/egress-run",
		  { "ssh", "-o",
		    "ProxyCommand='/usr/bin/egress-run' connect %h %p",
		    NULL } },
		/* Ours right after the program, the user's options kept. */
		{ { "GIT_SSH_COMMAND=ssh -i key -p 22", NULL },
		  "/usr/bin/egress-run",
		  { "ssh", "-o",
		    "ProxyCommand='/usr/bin/egress-run' connect %h %p",
		    "-i", "key", "-p", "22", NULL } },
		/* A quoted program name with a space stays one word. */
		{ { "GIT_SSH_COMMAND='/opt/my ssh/ssh' -F cfg", NULL },
		  "/usr/bin/egress-run",
		  { "/opt/my ssh/ssh", "-o",
		    "ProxyCommand='/usr/bin/egress-run' connect %h %p",
		    "-F", "cfg", NULL } },
		/* GIT_SSH names a program (no arguments). */
		{ { "GIT_SSH=/usr/local/bin/my ssh", NULL },
		  "/usr/bin/egress-run",
		  { "/usr/local/bin/my ssh", "-o",
		    "ProxyCommand='/usr/bin/egress-run' connect %h %p",
		    NULL } },
		/* GIT_SSH_COMMAND wins over GIT_SSH, as in git. */
		{ { "GIT_SSH=/bin/false", "GIT_SSH_COMMAND=ssh -v", NULL },
		  "/usr/bin/egress-run",
		  { "ssh", "-o",
		    "ProxyCommand='/usr/bin/egress-run' connect %h %p",
		    "-v", NULL } },
		/* Our own path with a space and a quote survives both shells. */
		{ { NULL }, "/opt/it's here/egress-run",
		  { "ssh", "-o",
		    "ProxyCommand='/opt/it'\\''s here/egress-run' connect %h %p",
		    NULL } },
	};

	for (size_t c = 0; c < NELEM(cases); c++) {
		char			 words[16][256];
		char			*parent[4] = { 0 };
		struct bouquet_opts	 o;
		struct bouquet		 b;
		const char		*v;
		int			 n, want = 0;

		for (size_t i = 0; cases[c].parent[i] != NULL; i++)
			parent[i] = (char *)cases[c].parent[i];
		opts_init(&o);
		o.self = cases[c].self;
		bouquet_build(&b, parent, &o);
		v = bouquet_get(&b, "GIT_SSH_COMMAND");
		CHECK(v != NULL, "case %zu: no GIT_SSH_COMMAND", c);
		if (v == NULL) {
			bouquet_free(&b);
			continue;
		}
		n = sh_words(v, words, 16);
		while (cases[c].words[want] != NULL)
			want++;
		CHECK(n == want, "case %zu: '%s' is %d words, want %d", c, v,
		    n, want);
		for (int i = 0; i < n && i < want; i++)
			CHECK_STR(words[i], cases[c].words[i]);
		/* And ssh's sh turns the ProxyCommand back into our argv. */
		if (n >= 3) {
			char pc[16][256];
			int m = sh_words(words[2] + strlen("ProxyCommand="),
			    pc, 16);
			CHECK(m == 4, "case %zu: ProxyCommand has %d words",
			    c, m);
			if (m >= 1)
				CHECK_STR(pc[0], cases[c].self);
			if (m >= 2)
				CHECK_STR(pc[1], "connect");
		}
		bouquet_free(&b);
	}
}

static void
replace_overrides_any_variable(void)
{
	char *const parent[] = { "PATH=/bin", "OPENAI_API_KEY=sk-real-value",
	    NULL };
	struct strlist		rep = { 0 };
	struct bouquet_opts	o;
	struct bouquet		b;

	strlist_add(&rep, "OPENAI_API_KEY=egress-placeholder-1234");
	strlist_add(&rep, "NEW_TOKEN=egress-placeholder-5678");
	strlist_add(&rep, "NO_EQUALS_SIGN");
	opts_init(&o);
	o.replace = &rep;
	bouquet_build(&b, parent, &o);
	CHECK_STR(bouquet_get(&b, "OPENAI_API_KEY"),
	    "egress-placeholder-1234");
	CHECK_STR(bouquet_get(&b, "NEW_TOKEN"), "egress-placeholder-5678");
	CHECK(bouquet_get(&b, "NO_EQUALS_SIGN") == NULL, "entry without =");
	CHECK(count_defs(&b, "OPENAI_API_KEY") == 1, "defined twice");
	for (size_t i = 0; i < b.env.n; i++)
		CHECK(strstr(b.env.v[i], "sk-real-value") == NULL,
		    "the real value reached the child: %s", b.env.v[i]);
	CHECK(in_set(&b, "OPENAI_API_KEY"), "placeholder not printed");
	bouquet_free(&b);
	strlist_clear(&rep);
}

/* eval the printed bouquet in /bin/sh and print one variable back. */
static char *
sh_roundtrip(const char *file, const char *name, size_t *lenp)
{
	char	 out[] = "/tmp/test_bouquet.out.XXXXXX";
	char	*buf = calloc(1, 65536);
	FILE	*f;
	int	 fd, status = -1;
	pid_t	 pid;

	*lenp = 0;
	if ((fd = mkstemp(out)) == -1)
		return buf;
	if ((pid = fork()) == 0) {
		dup2(fd, STDOUT_FILENO);
		setenv("BQ_FILE", file, 1);
		setenv("BQ_NAME", name, 1);
		execl("/bin/sh", "sh", "-c", "eval \"$(cat \"$BQ_FILE\")\"; "
		    "eval \"printf %s \\\"\\$$BQ_NAME\\\"\"", (char *)NULL);
		_exit(127);
	}
	close(fd);
	waitpid(pid, &status, 0);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "sh failed for "
	    "%s: status %d", name, status);
	if ((f = fopen(out, "rb")) != NULL) {
		*lenp = fread(buf, 1, 65535, f);
		fclose(f);
	}
	unlink(out);
	return buf;
}

static void
print_output_round_trips_through_sh(void)
{
	static const struct {
		const char	*name;
		const char	*value;
	} tricky[] = {
		{ "T_SQUOTE", "it's a 'quoted' value" },
		{ "T_DQUOTE", "say \"hi\"" },
		{ "T_SPACES", "  leading and trailing  " },
		{ "T_DOLLAR", "$HOME ${PATH} $(id) `id`" },
		{ "T_BACKSLASH", "a\\b\\\\c\\n\\'" },
		{ "T_NEWLINE", "line1\nline2\n" },
		{ "T_GLOB", "* ? [a] ~ ; & | < > # !" },
		{ "T_EMPTY", "" },
		{ "T_MIXED", "'\"$\\\n'" },
	};
	char			 file[] = "/tmp/test_bouquet.env.XXXXXX";
	struct strlist		 rep = { 0 };
	struct strlist		 add = { 0 };
	struct bouquet_opts	 o;
	struct bouquet		 b;
	char			*parent[] = { "PATH=/bin",
	    "JAVA_TOOL_OPTIONS=-Dx='y z'", "GIT_SSH_COMMAND=ssh -i 'my key'",
	    NULL };
	FILE			*f;
	int			 fd;

	for (size_t i = 0; i < NELEM(tricky); i++) {
		char *e = NULL;
		if (asprintf(&e, "%s=%s", tricky[i].name, tricky[i].value) < 0)
			return;
		strlist_add_owned(&rep, e);
	}
	strlist_add(&add, "it's.test");
	opts_init(&o);
	o.self = "/opt/$weird 'dir'/egress-run";
	o.replace = &rep;
	o.no_proxy = &add;
	o.trust = &test_trust;
	bouquet_build(&b, parent, &o);
	if ((fd = mkstemp(file)) == -1 || (f = fdopen(fd, "w")) == NULL) {
		CHECK(0, "mkstemp");
		return;
	}
	bouquet_print(&b, f);
	fclose(f);

	for (size_t i = 0; i < NELEM(tricky); i++) {
		size_t	 len;
		char	*got = sh_roundtrip(file, tricky[i].name, &len);

		CHECK(len == strlen(tricky[i].value) &&
		    memcmp(got, tricky[i].value, len) == 0,
		    "%s: got '%.*s', want '%s'", tricky[i].name, (int)len, got,
		    tricky[i].value);
		free(got);
	}
	/* Everything we set comes back exactly, the generated ones too. */
	for (size_t i = 0; i < b.set.n; i++) {
		const char	*eq = strchr(b.set.v[i], '=');
		char		 name[128];
		size_t		 len;
		char		*got;

		snprintf(name, sizeof name, "%.*s", (int)(eq - b.set.v[i]),
		    b.set.v[i]);
		got = sh_roundtrip(file, name, &len);
		CHECK(len == strlen(eq + 1) && memcmp(got, eq + 1, len) == 0,
		    "%s: got '%.*s', want '%s'", name, (int)len, got, eq + 1);
		free(got);
	}
	/* Only what egress-run set is printed: not PATH. */
	{
		char	 line[4096];
		int	 lines = 0;

		f = fopen(file, "r");
		while (f != NULL && fgets(line, sizeof line, f) != NULL) {
			CHECK(strncmp(line, "PATH=", 5) != 0, "PATH printed");
			lines++;
		}
		if (f != NULL)
			fclose(f);
		/* T_NEWLINE and T_MIXED span two lines each. */
		CHECK(lines >= (int)b.set.n, "%d lines for %zu variables",
		    lines, b.set.n);
	}
	unlink(file);
	bouquet_free(&b);
	strlist_clear(&rep);
	strlist_clear(&add);
}

static void
free_is_safe_twice(void)
{
	struct bouquet_opts	o;
	struct bouquet		b;

	opts_init(&o);
	bouquet_build(&b, NULL, &o);
	CHECK_STR(bouquet_get(&b, "EGRESS_RUN"), "1");
	CHECK(bouquet_get(&b, "PATH") == NULL, "PATH from nowhere");
	bouquet_free(&b);
	bouquet_free(&b);
}

int
main(void)
{
	RUN(every_proxy_variable_points_at_the_proxy);
	RUN(all_proxy_may_differ);
	RUN(parent_proxy_variables_are_replaced_not_duplicated);
	RUN(no_proxy_is_loopback_plus_additions);
	RUN(no_proxy_variables_without_a_proxy);
	RUN(trust_variables_only_with_a_bundle_and_all_point_at_it);
	RUN(java_tool_options_appended_to_the_users);
	RUN(git_ssh_command_uses_egress_run_connect);
	RUN(replace_overrides_any_variable);
	RUN(print_output_round_trips_through_sh);
	RUN(free_is_safe_twice);
	return test_done("test_bouquet");
}
