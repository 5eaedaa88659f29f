/*
 * launcher/config.c: the command line (both "--opt value" and "--opt=value"),
 * the JSON config file, their merge (flags win) and the cross-option checks.
 * One table lists every option with a command-line value, a JSON value and
 * the value expected in struct config; a new option without a row fails here.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/config.h"
#include "test.h"

enum kind { K_STR, K_LIST, K_FLAG, K_MS, K_UINT };

#define F(field) offsetof(struct config, field)

static const struct option_case {
	const char	*name;		/* without "--" */
	const char	*key;		/* config-file key */
	enum kind	 kind;
	size_t		 off;
	const char	*arg;		/* command-line value (NULL: a flag) */
	const char	*json;		/* JSON value in a config file */
	const char	*want;		/* expected, as value_str() shows it */
	const char	*want_json;	/* expected from the file */
	const char	*wrong_json;	/* a value of the wrong type */
} option_cases[] = {
	{ "external", "external", K_STR, F(external), "squid -N -a {port}",
	  "\"mitmdump -p {port}\"", "squid -N -a {port}",
	  "mitmdump -p {port}", "3128" },
	{ "external-addr", "external_addr", K_STR, F(external_addr),
	  "127.0.0.1:3128", "\"[::1]:8080\"", "127.0.0.1:3128", "[::1]:8080",
	  "[\"127.0.0.1:1\"]" },
	{ "external-ca", "external_ca", K_STR, F(external_ca), "/tmp/ca.pem",
	  "\"/etc/mitm.pem\"", "/tmp/ca.pem", "/etc/mitm.pem", "true" },
	{ "bind-timeout", "bind_timeout", K_MS, F(bind_timeout_ms), "2.5", "3",
	  "2500", "3000", "\"3\"" },
	{ "listen", "listen", K_STR, F(listen), "127.0.0.1:8080",
	  "\"[::1]:0\"", "127.0.0.1:8080", "[::1]:0", "8080" },
	{ "max-conns", "max_conns", K_UINT, F(max_conns), "77", "500", "77",
	  "500", "1.5" },
	{ "allow", "allow", K_LIST, F(allow), "*.example.com",
	  "[\"a.test\", \"b.test\"]", "*.example.com", "a.test|b.test",
	  "\"a.test\"" },
	{ "deny", "deny", K_LIST, F(deny), "10.0.0.0/8", "[\"evil.test\"]",
	  "10.0.0.0/8", "evil.test", "[\"a\", 1]" },
	{ "resolve", "resolve", K_LIST, F(resolve), "a.test:443:10.0.0.1",
	  "[\"b.test:80:10.0.0.2\"]", "a.test:443:10.0.0.1",
	  "b.test:80:10.0.0.2", "{}" },
	{ "secret", "secrets", K_LIST, F(secrets), "TOKEN:api.example.com",
	  "[\"GH:api.github.com:X-Token\"]", "TOKEN:api.example.com",
	  "GH:api.github.com:X-Token", "\"TOKEN:host\"" },
	{ "ca-cert", "ca_cert", K_STR, F(ca_cert), "/tmp/ca.crt",
	  "\"/f/ca.crt\"", "/tmp/ca.crt", "/f/ca.crt", "null" },
	{ "ca-key", "ca_key", K_STR, F(ca_key), "/tmp/ca.key",
	  "\"/f/ca.key\"", "/tmp/ca.key", "/f/ca.key", "false" },
	{ "no-mitm", "no_mitm", K_LIST, F(no_mitm), "pinned.test",
	  "[\"*.bank.test\"]", "pinned.test", "*.bank.test", "true" },
	{ "upstream", "upstream", K_STR, F(upstream), "http://proxy:3128",
	  "\"socks5h://p:1080\"", "http://proxy:3128", "socks5h://p:1080",
	  "1080" },
	{ "no-upstream", "no_upstream", K_FLAG, F(no_upstream), NULL, "true",
	  "true", "true", "\"yes\"" },
	{ "upstream-ca", "upstream_ca", K_STR, F(upstream_ca), "/tmp/corp.pem",
	  "\"/corp.pem\"", "/tmp/corp.pem", "/corp.pem", "[]" },
	{ "gateway", "gateways", K_LIST, F(gateways), "anthropic",
	  "[\"api=https://api.test,API_URL\"]", "anthropic",
	  "api=https://api.test,API_URL", "\"openai\"" },
	{ "rule", "rules", K_LIST, F(rules), "deny * a.test ^/x$",
	  "[\"allow GET b.test ^/$\"]", "deny * a.test ^/x$",
	  "allow GET b.test ^/$", "\"deny * a.test ^/x$\"" },
	{ "preset", "preset", K_LIST, F(presets), "github", "[\"github:ghe.test\"]",
	  "github", "github:ghe.test", "\"github\"" },
	{ "git-repo", "git_repos", K_LIST, F(git_repos), "github.com/acme/*",
	  "[\"ghe.test/a/b\"]", "github.com/acme/*", "ghe.test/a/b", "1" },
	{ "git-protect", "git_protect", K_LIST, F(git_protect), "release/*",
	  "[\"main\"]", "release/*", "main", "\"main\"" },
	{ "git-push-prefix", "git_push_prefix", K_LIST, F(git_push_prefix),
	  "sandbox/*", "[\"agent/*\"]", "sandbox/*", "agent/*", "{}" },
	{ "git-allow-delete", "git_allow_delete", K_FLAG, F(git_allow_delete),
	  NULL, "true", "true", "true", "\"no\"" },
	{ "git-allow-force", "git_allow_force", K_FLAG, F(git_allow_force),
	  NULL, "true", "true", "true", "2" },
	{ "llm-host", "llm_hosts", K_LIST, F(llm_hosts), "llm.test:openai",
	  "[\"a.test:anthropic\"]", "llm.test:openai", "a.test:anthropic",
	  "\"x\"" },
	{ "no-llm", "no_llm", K_FLAG, F(no_llm), NULL, "true", "true", "true",
	  "0" },
	{ "llm-budget", "llm_budget", K_UINT, F(llm_budget), "5000", "100",
	  "5000", "100", "-1" },
	{ "llm-max-requests", "llm_max_requests", K_UINT, F(llm_max_requests),
	  "7", "9", "7", "9", "1.5" },
	{ "llm-summary", "llm_summary", K_FLAG, F(llm_summary), NULL, "true",
	  "true", "true", "\"on\"" },
	{ "isolate", "isolate", K_FLAG, F(isolate), NULL, "true", "true",
	  "true", "1" },
	{ "host-port", "host_ports", K_LIST, F(host_ports), "5432",
	  "[\"8080:3000\"]", "5432", "8080:3000", "5432" },
	{ "no-proxy", "no_proxy", K_LIST, F(no_proxy), "internal.test",
	  "[\"a.internal\", \".corp\"]", "internal.test", "a.internal|.corp",
	  "\"a.internal\"" },
	{ "audit", "audit", K_STR, F(audit), "-", "\"/var/log/a.jsonl\"", "-",
	  "/var/log/a.jsonl", "1" },
	{ "hook", "hooks", K_LIST, F(hooks), "deny:file:/tmp/deny.jsonl",
	  "[{\"name\": \"siem\", \"event\": \"llm\", \"target\": "
	  "\"https://hooks.test/in?k=1\"}, \"response:http://[::1]:9/r\"]",
	  "deny:file:/tmp/deny.jsonl",
	  "siem=llm:https://hooks.test/in?k=1|response:http://[::1]:9/r",
	  "\"deny:file:/x\"" },
	{ "metrics", "metrics", K_STR, F(metrics), "127.0.0.1:9464",
	  "\"[::1]:9464\"", "127.0.0.1:9464", "[::1]:9464", "9464" },
	{ "control", "control", K_STR, F(control), "/run/egress.sock",
	  "\"/tmp/e.sock\"", "/run/egress.sock", "/tmp/e.sock", "[]" },
	{ "via", "via", K_STR, F(via), "/run/egress.sock", "\"/tmp/e.sock\"",
	  "/run/egress.sock", "/tmp/e.sock", "7" },
	{ "fail-closed", "fail_closed", K_FLAG, F(fail_closed), NULL, "true",
	  "true", "true", "1" },
	{ "print-env", "print_env", K_FLAG, F(print_env), NULL, "true", "true",
	  "true", "\"true\"" },
};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* A field of struct config as text: lists joined with '|'. */
static const char *
value_str(const struct config *c, enum kind kind, size_t off)
{
	static char	 buf[1024];
	const char	*p = (const char *)c + off;

	buf[0] = '\0';
	switch (kind) {
	case K_STR:
		snprintf(buf, sizeof buf, "%s", *(char *const *)p ?
		    *(char *const *)p : "(null)");
		break;
	case K_LIST: {
		const struct strlist *l = (const struct strlist *)p;
		for (size_t i = 0; i < l->n; i++)
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf),
			    "%s%s", i ? "|" : "", l->v[i]);
		break;
	}
	case K_FLAG:
		snprintf(buf, sizeof buf, "%s", *(const bool *)p ? "true" :
		    "false");
		break;
	case K_MS:
	case K_UINT:
		snprintf(buf, sizeof buf, "%u", *(const unsigned *)p);
		break;
	}
	return buf;
}

/* A mutable argv built from string literals (config blanks secrets). */
struct args {
	int	 argc;
	char	*argv[32];
};

static void
args_make(struct args *a, const char *const *in)
{
	a->argc = 0;
	a->argv[a->argc++] = strdup("egress-run");
	for (size_t i = 0; in[i] != NULL && a->argc < 31; i++)
		a->argv[a->argc++] = strdup(in[i]);
	a->argv[a->argc] = NULL;
}

static void
args_free(struct args *a)
{
	for (int i = 0; i < a->argc; i++)
		free(a->argv[i]);
	a->argc = 0;
}

static enum config_result
parse(struct config *c, struct args *a, const char *const *in, char *err,
    size_t errlen)
{
	config_init(c);
	args_make(a, in);
	err[0] = '\0';
	return config_parse_args(c, a->argc, a->argv, err, errlen);
}

static const struct option_case *
find_case(const char *name)
{
	for (size_t i = 0; i < NELEM(option_cases); i++)
		if (strcmp(option_cases[i].name, name) == 0)
			return &option_cases[i];
	return NULL;
}

static void
every_table_option_has_a_test_case(void)
{
	static const char *const special[] = {
		"--config", "--help", "--version", "--verbose", "--quiet",
	};

	CHECK(config_option_count() >= NELEM(option_cases) + 3, "count %zu",
	    config_option_count());
	for (size_t i = 0; i < config_option_count(); i++) {
		const char	*name = config_option_name(i);
		bool		 known = false;

		for (size_t j = 0; j < NELEM(special); j++)
			known |= strcmp(name, special[j]) == 0;
		CHECK(known || (strncmp(name, "--", 2) == 0 &&
		    find_case(name + 2) != NULL),
		    "option %s has no row in option_cases", name);
		if (!known && find_case(name + 2) != NULL && i <
		    config_option_count() - 3)
			CHECK_STR(config_option_key(i),
			    find_case(name + 2)->key);
	}
}

static void
every_option_parses_in_both_forms(void)
{
	for (size_t i = 0; i < NELEM(option_cases); i++) {
		const struct option_case *oc = &option_cases[i];
		char	 opt[64], joined[512], err[512];
		struct config c;
		struct args a;

		snprintf(opt, sizeof opt, "--%s", oc->name);
		for (int form = 0; form < (oc->arg ? 2 : 1); form++) {
			const char *sep[] = { opt, oc->arg, "--", "true", NULL };
			const char *eq[] = { joined, "--", "true", NULL };
			const char *flag[] = { opt, "--", "true", NULL };
			const char *const *in;

			snprintf(joined, sizeof joined, "%s=%s", opt,
			    oc->arg ? oc->arg : "");
			in = oc->arg == NULL ? flag : form == 0 ? sep : eq;
			CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK,
			    "%s (form %d): %s", opt, form, err);
			if (strcmp(oc->name, "config") != 0)
				CHECK_STR(value_str(&c, oc->kind, oc->off),
				    oc->want);
			CHECK(c.command != NULL && c.command[0] != NULL &&
			    strcmp(c.command[0], "true") == 0 &&
			    c.command[1] == NULL, "%s: command", opt);
			CHECK(c.set != 0, "%s: not marked as given", opt);
			config_free(&c);
			args_free(&a);
		}
	}
}

static void
config_option_takes_both_forms(void)
{
	const char *const forms[][4] = {
		{ "--config", "/etc/er.json", "true", NULL },
		{ "--config=/etc/er.json", "true", NULL, NULL },
	};
	char		err[256];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(forms); i++) {
		CHECK(parse(&c, &a, forms[i], err, sizeof err) == CONFIG_OK,
		    "%s", err);
		CHECK_STR(c.config_file, "/etc/er.json");
		CHECK(c.command != NULL && strcmp(c.command[0], "true") == 0,
		    "command after --config");
		config_free(&c);
		args_free(&a);
	}
}

static void
repeated_list_options_accumulate_in_order(void)
{
	const char *in[] = { "--allow", "a.test", "--allow=b.test", "--deny",
	    "c.test", "--allow", "d.test", "true", NULL };
	char		err[256];
	struct config	c;
	struct args	a;

	CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK, "%s", err);
	CHECK_STR(value_str(&c, K_LIST, F(allow)), "a.test|b.test|d.test");
	CHECK_STR(value_str(&c, K_LIST, F(deny)), "c.test");
	config_free(&c);
	args_free(&a);
}

static void
end_of_options_and_command_arguments(void)
{
	static const struct {
		const char	*in[8];
		const char	*cmd0;		/* NULL: no command */
		const char	*cmd1;
		int		 verbosity;
		bool		 fail_closed;
	} cases[] = {
		/* "--" ends options; what follows belongs to COMMAND. */
		{ { "--", "curl", "-v", NULL }, "curl", "-v", 0, false },
		{ { "-v", "--", "--fail-closed", NULL }, "--fail-closed",
		  NULL, 1, false },
		/* The first non-option ends options too. */
		{ { "curl", "-v", "--fail-closed", NULL }, "curl", "-v", 0,
		  false },
		{ { "--fail-closed", "sh", "--help", NULL }, "sh", "--help", 0,
		  true },
		/* A lone "-" is an operand, not an option. */
		{ { "-", NULL }, "-", NULL, 0, false },
		/* Only the first "--" is ours. */
		{ { "--", "--", "x", NULL }, "--", "x", 0, false },
		{ { "--fail-closed", NULL }, NULL, NULL, 0, true },
		{ { "--", NULL }, NULL, NULL, 0, false },
	};
	char		err[256];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++) {
		CHECK(parse(&c, &a, cases[i].in, err, sizeof err) ==
		    CONFIG_OK, "case %zu: %s", i, err);
		if (cases[i].cmd0 == NULL)
			CHECK(c.command == NULL, "case %zu: unexpected "
			    "command '%s'", i, c.command ? c.command[0] : "");
		else {
			CHECK(c.command != NULL, "case %zu: no command", i);
			if (c.command != NULL) {
				CHECK_STR(c.command[0], cases[i].cmd0);
				if (cases[i].cmd1 != NULL)
					CHECK_STR(c.command[1], cases[i].cmd1);
				else
					CHECK(c.command[1] == NULL,
					    "case %zu: extra argument", i);
			}
		}
		CHECK(c.verbosity == cases[i].verbosity, "case %zu: "
		    "verbosity %d", i, c.verbosity);
		CHECK(c.fail_closed == cases[i].fail_closed, "case %zu: "
		    "fail_closed", i);
		config_free(&c);
		args_free(&a);
	}
}

static void
verbosity_flags(void)
{
	static const struct {
		const char	*in[8];
		int		 want;
	} cases[] = {
		{ { "true", NULL }, 0 },
		{ { "-v", "true", NULL }, 1 },
		{ { "-vv", "true", NULL }, 2 },
		{ { "-v", "-v", "true", NULL }, 2 },
		{ { "--verbose", "true", NULL }, 1 },
		{ { "-vvvvvv", "true", NULL }, 3 },	/* capped */
		{ { "-q", "true", NULL }, -1 },
		{ { "--quiet", "true", NULL }, -1 },
		{ { "-v", "-q", "true", NULL }, -1 },	/* the last one wins */
		{ { "-q", "-v", "true", NULL }, 1 },
	};
	char		err[256];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++) {
		CHECK(parse(&c, &a, cases[i].in, err, sizeof err) ==
		    CONFIG_OK, "case %zu: %s", i, err);
		CHECK(c.verbosity == cases[i].want, "case %zu: verbosity %d, "
		    "want %d", i, c.verbosity, cases[i].want);
		config_free(&c);
		args_free(&a);
	}
}

static void
help_and_version_results(void)
{
	static const struct {
		const char		*in[6];
		enum config_result	 want;
	} cases[] = {
		{ { "--help", NULL }, CONFIG_HELP },
		{ { "-h", NULL }, CONFIG_HELP },
		{ { "--version", NULL }, CONFIG_VERSION },
		{ { "-v", "--help", "true", NULL }, CONFIG_HELP },
		{ { "--fail-closed", "--version", NULL }, CONFIG_VERSION },
		/* After the command they are COMMAND's own arguments. */
		{ { "--", "ls", "--help", NULL }, CONFIG_OK },
		{ { "ls", "--version", NULL }, CONFIG_OK },
	};
	char		err[256];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++) {
		enum config_result r = parse(&c, &a, cases[i].in, err,
		    sizeof err);
		CHECK(r == cases[i].want, "case %zu: result %d, want %d", i,
		    (int)r, (int)cases[i].want);
		config_free(&c);
		args_free(&a);
	}
}

static void
bad_command_lines_are_errors_naming_the_option(void)
{
	static const struct {
		const char	*in[6];
		const char	*mention;	/* the error must contain it */
	} cases[] = {
		{ { "--no-such-option", "true", NULL }, "--no-such-option" },
		{ { "--no-such=1", "true", NULL }, "--no-such" },
		{ { "-x", "true", NULL }, "-x" },
		{ { "-vx", "true", NULL }, "-x" },
		/* A prefix of an option is not the option. */
		{ { "--ext", "x", "true", NULL }, "--ext" },
		/* Missing values. */
		{ { "--external", NULL }, "--external" },
		{ { "--allow", NULL }, "--allow" },
		{ { "--bind-timeout", NULL }, "--bind-timeout" },
		{ { "--config", NULL }, "--config" },
		/* A value given to a flag. */
		{ { "--fail-closed=yes", "true", NULL }, "--fail-closed" },
		{ { "--print-env=1", "true", NULL }, "--print-env" },
		{ { "--no-upstream=", "true", NULL }, "--no-upstream" },
		/* Numbers. */
		{ { "--bind-timeout", "abc", "true", NULL }, "abc" },
		{ { "--bind-timeout", "0", "true", NULL }, "--bind-timeout" },
		{ { "--bind-timeout", "-1", "true", NULL }, "--bind-timeout" },
		{ { "--bind-timeout", "", "true", NULL }, "--bind-timeout" },
		{ { "--bind-timeout", "10s", "true", NULL }, "10s" },
		{ { "--bind-timeout", " 1", "true", NULL }, "--bind-timeout" },
		{ { "--bind-timeout", "nan", "true", NULL }, "nan" },
		{ { "--bind-timeout", "inf", "true", NULL }, "inf" },
		{ { "--bind-timeout", "1e9", "true", NULL }, "1e9" },
		{ { "--bind-timeout=+3", "true", NULL }, "+3" },
		{ { "--max-conns", "0", "true", NULL }, "--max-conns" },
		{ { "--max-conns", "-5", "true", NULL }, "--max-conns" },
		{ { "--max-conns", "1000001", "true", NULL }, "1000001" },
		{ { "--max-conns", "12x", "true", NULL }, "12x" },
		{ { "--max-conns", "1.5", "true", NULL }, "1.5" },
		{ { "--max-conns=", "true", NULL }, "--max-conns" },
		{ { "--max-conns", "99999999999999999999", "true", NULL },
		  "--max-conns" },
		/* Hook specs are checked as they are read. */
		{ { "--hook", "nope:file:/x", "true", NULL }, "nope" },
		{ { "--hook", "deny:ftp://x", "true", NULL }, "--hook" },
		{ { "--hook", "deny", "true", NULL }, "EVENT:TARGET" },
		{ { "--hook", "deny:file:", "true", NULL }, "PATH" },
		{ { "--hook", "a b=deny:file:/x", "true", NULL }, "NAME" },
		{ { "--hook=llm:https://u:p@h.test/", "true", NULL },
		  "credentials" },
	};
	char		err[512];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++) {
		enum config_result r = parse(&c, &a, cases[i].in, err,
		    sizeof err);
		CHECK(r == CONFIG_ERR, "case %zu (%s): accepted", i,
		    cases[i].in[0]);
		CHECK(strstr(err, cases[i].mention) != NULL, "case %zu: "
		    "error '%s' does not name '%s'", i, err, cases[i].mention);
		CHECK(strchr(err, '\n') == NULL, "case %zu: error is not one "
		    "line", i);
		config_free(&c);
		args_free(&a);
	}
}

static void
good_numbers_are_accepted(void)
{
	static const struct {
		const char	*in[4];
		size_t		 off;
		unsigned	 want;
	} cases[] = {
		{ { "--bind-timeout", "0.5", "true", NULL },
		  F(bind_timeout_ms), 500 },
		{ { "--bind-timeout=10", "true", NULL }, F(bind_timeout_ms),
		  10000 },
		{ { "--bind-timeout", "0.0001", "true", NULL },
		  F(bind_timeout_ms), 1 },	/* never rounds to "no wait" */
		{ { "--bind-timeout", "86400", "true", NULL },
		  F(bind_timeout_ms), 86400000 },
		{ { "--max-conns", "1", "true", NULL }, F(max_conns), 1 },
		{ { "--max-conns=1000000", "true", NULL }, F(max_conns),
		  1000000 },
		{ { "true", NULL }, F(bind_timeout_ms), 10000 },  /* default */
		{ { "true", NULL }, F(max_conns), 1024 },	    /* default */
	};
	char		err[256];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++) {
		CHECK(parse(&c, &a, cases[i].in, err, sizeof err) ==
		    CONFIG_OK, "case %zu: %s", i, err);
		CHECK(*(unsigned *)((char *)&c + cases[i].off) ==
		    cases[i].want, "case %zu: %u, want %u", i,
		    *(unsigned *)((char *)&c + cases[i].off), cases[i].want);
		config_free(&c);
		args_free(&a);
	}
}

static void
inline_secret_is_blanked_in_argv_and_kept_in_config(void)
{
	static const struct {
		const char	*in[5];
		int		 argi;		/* argv index holding it */
		const char	*kept;
		const char	*prefix;	/* still readable in argv */
	} cases[] = {
		{ { "--secret", "TOKEN=s3cr3t-VALUE:api.example.com", "true",
		  NULL }, 2, "TOKEN=s3cr3t-VALUE:api.example.com", "TOKEN=" },
		{ { "--secret=TOKEN=s3cr3t-VALUE:api.example.com", "true",
		  NULL }, 1, "TOKEN=s3cr3t-VALUE:api.example.com",
		  "--secret=TOKEN=" },
		{ { "--secret", "K=s3cr3t-VALUE:h.test:X-Key", "true", NULL },
		  2, "K=s3cr3t-VALUE:h.test:X-Key", "K=" },
	};
	char		err[256];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++) {
		CHECK(parse(&c, &a, cases[i].in, err, sizeof err) ==
		    CONFIG_OK, "case %zu: %s", i, err);
		CHECK(strstr(a.argv[cases[i].argi], "s3cr3t-VALUE") == NULL,
		    "case %zu: argv still holds the value: %s", i,
		    a.argv[cases[i].argi]);
		/* The name stays readable: ps shows which binding it was. */
		CHECK(strncmp(a.argv[cases[i].argi], cases[i].prefix,
		    strlen(cases[i].prefix)) == 0, "case %zu: name lost: %s",
		    i, a.argv[cases[i].argi]);
		CHECK(c.secrets.n == 1, "case %zu: %zu secrets", i,
		    c.secrets.n);
		if (c.secrets.n == 1)
			CHECK_STR(c.secrets.v[0], cases[i].kept);
		CHECK_STR(c.command[0], "true");
		config_free(&c);
		args_free(&a);
	}
}

static void
secret_from_environment_leaves_argv_alone(void)
{
	const char *in[] = { "--secret", "TOKEN:api.example.com", "true",
	    NULL };
	char		err[256];
	struct config	c;
	struct args	a;

	CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK, "%s", err);
	CHECK_STR(a.argv[2], "TOKEN:api.example.com");
	CHECK_STR(c.secrets.v[0], "TOKEN:api.example.com");
	config_free(&c);
	args_free(&a);
}

/* ---- config file ---- */

static char tmpdir[] = "/tmp/test_config.XXXXXX";

static char *
write_file(const char *name, const char *text)
{
	static char	path[512];
	FILE		*f;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	if ((f = fopen(path, "w")) == NULL) {
		CHECK(0, "cannot write %s: %s", path, strerror(errno));
		return path;
	}
	fputs(text, f);
	fclose(f);
	return path;
}

/* Load JSON text through a real file; returns the loader's result. */
static int
load_text(struct config *c, const char *text, char *err, size_t errlen,
    char **pathp)
{
	char *path = write_file("config.json", text);

	err[0] = '\0';
	if (pathp != NULL)
		*pathp = path;
	return config_load_file(c, path, err, errlen);
}

static void
every_key_loads_from_a_file(void)
{
	for (size_t i = 0; i < NELEM(option_cases); i++) {
		const struct option_case *oc = &option_cases[i];
		char		 text[512], err[512];
		struct config	 c;

		snprintf(text, sizeof text, "{\n  \"%s\": %s\n}\n", oc->key,
		    oc->json);
		config_init(&c);
		CHECK(load_text(&c, text, err, sizeof err, NULL) == 0,
		    "key %s: %s", oc->key, err);
		CHECK_STR(value_str(&c, oc->kind, oc->off), oc->want_json);
		config_free(&c);
	}
}

static void
every_table_key_has_a_json_case(void)
{
	for (size_t i = 0; i < config_option_count(); i++) {
		const char	*key = config_option_key(i);
		bool		 found = false;

		if (key == NULL || strcmp(key, "verbose") == 0 ||
		    strcmp(key, "quiet") == 0)
			continue;
		for (size_t j = 0; j < NELEM(option_cases); j++)
			found |= strcmp(option_cases[j].key, key) == 0;
		CHECK(found, "config key '%s' has no row in option_cases",
		    key);
	}
}

static void
verbose_and_quiet_keys(void)
{
	static const struct {
		const char	*json;
		int		 want;
		int		 ok;
	} cases[] = {
		{ "{\"verbose\": 2}", 2, 1 },
		{ "{\"verbose\": 0}", 0, 1 },
		{ "{\"quiet\": true}", -1, 1 },
		{ "{\"quiet\": false}", 0, 1 },
		{ "{\"verbose\": 4}", 0, 0 },
		{ "{\"verbose\": -1}", 0, 0 },
		{ "{\"verbose\": 1.5}", 0, 0 },
		{ "{\"verbose\": true}", 0, 0 },
		{ "{\"quiet\": 1}", 0, 0 },
	};
	char		err[512];
	struct config	c;

	for (size_t i = 0; i < NELEM(cases); i++) {
		char *path;
		int r;

		config_init(&c);
		r = load_text(&c, cases[i].json, err, sizeof err, &path);
		CHECK((r == 0) == cases[i].ok, "case %zu (%s): %s", i,
		    cases[i].json, err);
		if (cases[i].ok)
			CHECK(c.verbosity == cases[i].want, "case %zu: %d", i,
			    c.verbosity);
		else
			CHECK(strstr(err, path) != NULL && (strstr(err,
			    "'verbose'") != NULL || strstr(err, "'quiet'") !=
			    NULL), "case %zu: '%s'", i, err);
		config_free(&c);
	}
}

static void
wrong_types_name_the_key_and_the_file(void)
{
	for (size_t i = 0; i < NELEM(option_cases); i++) {
		const struct option_case *oc = &option_cases[i];
		char		 text[512], err[512], quoted[80], *path;
		struct config	 c;

		snprintf(text, sizeof text, "{\"%s\": %s}", oc->key,
		    oc->wrong_json);
		snprintf(quoted, sizeof quoted, "'%s'", oc->key);
		config_init(&c);
		CHECK(load_text(&c, text, err, sizeof err, &path) != 0,
		    "key %s accepted %s", oc->key, oc->wrong_json);
		CHECK(strstr(err, quoted) != NULL, "'%s' does not name %s",
		    err, quoted);
		CHECK(strstr(err, path) != NULL, "'%s' does not name the file",
		    err);
		config_free(&c);
	}
}

static void
bad_files_are_errors_naming_the_file(void)
{
	static const struct {
		const char	*json;
		const char	*mention;	/* besides the file's name */
	} cases[] = {
		{ "{\"no_such_key\": 1}", "'no_such_key'" },
		{ "{\"allow\": [\"a\"], \"allow\": [\"b\"]}", "'allow'" },
		{ "{\"external\": \"a {port}\",\n \"external\": \"b {port}\"}",
		  "twice" },
		{ "[\"--external\"]", "object" },
		{ "\"external\"", "object" },
		{ "42", "object" },
		{ "null", "object" },
		{ "", "line 1" },
		{ "{\"bind_timeout\": 0}", "'bind_timeout'" },
		{ "{\"bind_timeout\": -2}", "'bind_timeout'" },
		{ "{\"bind_timeout\": 100000}", "'bind_timeout'" },
		{ "{\"max_conns\": 0}", "'max_conns'" },
		{ "{\"max_conns\": 1e7}", "'max_conns'" },
		/* Command-line-only spellings are not keys. */
		{ "{\"bind-timeout\": 1}", "'bind-timeout'" },
		{ "{\"config\": \"other.json\"}", "'config'" },
		/* Hooks: each object checked, named by its place. */
		{ "{\"hooks\": [{\"event\": \"deny\"}]}", "hook 1" },
		{ "{\"hooks\": [\"deny:file:/a\", {\"event\": \"nope\", "
		  "\"target\": \"file:/x\"}]}", "hook 2" },
		{ "{\"hooks\": [{\"event\": \"deny\", \"target\": "
		  "\"ftp://x\"}]}", "TARGET" },
		{ "{\"hooks\": [{\"event\": \"deny\", \"target\": "
		  "\"file:/x\", \"url\": \"y\"}]}", "'url'" },
		{ "{\"hooks\": [{\"event\": \"deny\", \"target\": 1}]}",
		  "'target'" },
		{ "{\"hooks\": [{\"name\": \"a=b\", \"event\": \"deny\", "
		  "\"target\": \"file:/x\"}]}", "name" },
		{ "{\"hooks\": [{\"event\": \"deny:file:/y\", \"target\": "
		  "\"file:/x\"}]}", "unknown event" },
		{ "{\"hooks\": [7]}", "hook 1" },
		{ "{\"hooks\": {\"event\": \"deny\"}}", "'hooks'" },
	};
	char		err[512], *path;
	struct config	c;

	for (size_t i = 0; i < NELEM(cases); i++) {
		config_init(&c);
		CHECK(load_text(&c, cases[i].json, err, sizeof err, &path) !=
		    0, "case %zu (%s) accepted", i, cases[i].json);
		CHECK(strstr(err, path) != NULL, "case %zu: '%s' does not "
		    "name the file", i, err);
		CHECK(strstr(err, cases[i].mention) != NULL, "case %zu: '%s' "
		    "does not say '%s'", i, err, cases[i].mention);
		config_free(&c);
	}
}

/*
 * The line must be exact; the column may be off by one, since cJSON points
 * either at the bad token or just past it, and at the last byte on EOF.
 */
static void
invalid_json_reports_line_and_column(void)
{
	static const struct {
		const char	*json;
		unsigned	 line, col;
	} cases[] = {
		{ "{\n  \"external\": \"x {port}\",\n  \"allow\": [\"a\" \"b\"]\n}",
		  3, 16 },
		{ "{\"fail_closed\": tru}", 1, 17 },
		{ "{\n\n\n    oops\n}", 4, 5 },
		{ "{\"allow\": [\"a\",", 1, 16 },
		/* Trailing text after the object is not ignored. */
		{ "{\"fail_closed\": true}\n}", 2, 1 },
		{ "{} {}", 1, 4 },
		{ "{\"a\": 1} x", 1, 10 },
	};
	char		err[512], *path;
	struct config	c;

	for (size_t i = 0; i < NELEM(cases); i++) {
		const char	*at;
		unsigned	 line = 0, col = 0;

		config_init(&c);
		CHECK(load_text(&c, cases[i].json, err, sizeof err, &path) !=
		    0, "case %zu accepted", i);
		at = strstr(err, "line ");
		CHECK(at != NULL && sscanf(at, "line %u, column %u", &line,
		    &col) == 2, "case %zu: no position in '%s'", i, err);
		CHECK(line == cases[i].line && col + 1 >= cases[i].col &&
		    col <= cases[i].col + 1, "case %zu: '%s', want line %u, "
		    "column %u", i, err, cases[i].line, cases[i].col);
		CHECK(strstr(err, path) != NULL, "case %zu: '%s'", i, err);
		config_free(&c);
	}
}

static void
trailing_whitespace_after_the_object_is_fine(void)
{
	char		err[512];
	struct config	c;

	config_init(&c);
	CHECK(load_text(&c, "\n {\"fail_closed\": true} \n\t\n", err,
	    sizeof err, NULL) == 0, "%s", err);
	CHECK(c.fail_closed, "fail_closed not set");
	config_free(&c);
}

static void
unreadable_config_file_is_an_error_naming_it(void)
{
	char		 err[512], missing[512];
	struct config	 c;

	snprintf(missing, sizeof missing, "%s/does-not-exist.json", tmpdir);
	config_init(&c);
	CHECK(config_load_file(&c, missing, err, sizeof err) != 0, "loaded");
	CHECK(strstr(err, missing) != NULL, "'%s'", err);
	CHECK(strstr(err, "No such file") != NULL, "'%s'", err);
	config_free(&c);

	/* A directory opens fine but is not a config file. */
	config_init(&c);
	CHECK(config_load_file(&c, tmpdir, err, sizeof err) != 0, "loaded");
	CHECK(strstr(err, tmpdir) != NULL, "'%s'", err);
	config_free(&c);

	/* Mode 000: only meaningful when not root (root reads anything). */
	if (geteuid() != 0) {
		char *p = write_file("locked.json", "{}");
		chmod(p, 0);
		config_init(&c);
		CHECK(config_load_file(&c, p, err, sizeof err) != 0, "loaded");
		CHECK(strstr(err, p) != NULL, "'%s'", err);
		config_free(&c);
	}
}

static void
flags_override_the_file(void)
{
	const char *json =
	    "{\"external\": \"file-proxy {port}\",\n"
	    " \"allow\": [\"file-a.test\", \"file-b.test\"],\n"
	    " \"deny\": [\"file-deny.test\"],\n"
	    " \"bind_timeout\": 3,\n"
	    " \"max_conns\": 9,\n"
	    " \"fail_closed\": true,\n"
	    " \"verbose\": 2,\n"
	    " \"audit\": \"/file/audit\"}\n";
	const char *in[] = { "--external", "flag-proxy {port}", "--allow",
	    "flag.test", "--max-conns=5", "-q", "--config", NULL, "true",
	    NULL };
	char		err[512];
	struct config	c;
	struct args	a;

	in[7] = write_file("override.json", json);
	CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK, "%s", err);
	CHECK(config_load_file(&c, c.config_file, err, sizeof err) == 0,
	    "%s", err);
	/* From the flags: */
	CHECK_STR(c.external, "flag-proxy {port}");
	CHECK_STR(value_str(&c, K_LIST, F(allow)), "flag.test");
	CHECK(c.max_conns == 5, "max_conns %u", c.max_conns);
	CHECK(c.verbosity == -1, "verbosity %d", c.verbosity);
	/* From the file, where no flag was given: */
	CHECK_STR(value_str(&c, K_LIST, F(deny)), "file-deny.test");
	CHECK(c.bind_timeout_ms == 3000, "bind_timeout %u", c.bind_timeout_ms);
	CHECK(c.fail_closed, "fail_closed from the file");
	CHECK_STR(c.audit, "/file/audit");
	config_free(&c);
	args_free(&a);
}

static void
file_values_apply_when_no_flag_is_given(void)
{
	const char *in[] = { "-v", "--config", NULL, "true", NULL };
	char		err[512];
	struct config	c;
	struct args	a;

	in[2] = write_file("plain.json", "{\"quiet\": true, "
	    "\"external_addr\": \"127.0.0.1:3128\"}");
	CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK, "%s", err);
	CHECK(config_load_file(&c, c.config_file, err, sizeof err) == 0,
	    "%s", err);
	/* -v on the command line beats "quiet" in the file. */
	CHECK(c.verbosity == 1, "verbosity %d", c.verbosity);
	CHECK_STR(c.external_addr, "127.0.0.1:3128");
	config_free(&c);
	args_free(&a);
}

/* Parse in (as `egress-run serve` when serve), validate: valid when
 * mention is NULL, else an error that says mention. */
static void
check_validate(const char *const *in, bool serve, const char *mention,
    size_t i)
{
	char		err[512];
	struct config	c;
	struct args	a;
	int		r;

	CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK, "case %zu: %s",
	    i, err);
	c.serve = serve;
	err[0] = '\0';
	r = config_validate(&c, err, sizeof err);
	if (mention == NULL)
		CHECK(r == 0, "case %zu: %s", i, err);
	else {
		CHECK(r != 0, "case %zu: valid", i);
		CHECK(strstr(err, mention) != NULL, "case %zu: '%s' does not "
		    "say '%s'", i, err, mention);
	}
	config_free(&c);
	args_free(&a);
}

static void
config_validate_errors(void)
{
	static const struct {
		const char	*in[8];
		const char	*mention;	/* NULL: valid */
	} cases[] = {
		{ { "true", NULL }, NULL },
		{ { "--external", "squid -a {port}", "true", NULL }, NULL },
		{ { "--external", "squid -a 3128", "true", NULL }, "{port}" },
		{ { "--external", "p 3128", "--external-addr",
		  "127.0.0.1:3128", "true", NULL }, NULL },
		{ { "--ca-cert", "c.pem", "true", NULL }, "--ca-key" },
		{ { "--ca-key", "k.pem", "true", NULL }, "--ca-cert" },
		{ { "--ca-cert", "c.pem", "--ca-key", "k.pem", "true", NULL },
		  NULL },
		{ { "--upstream", "http://p:1", "--no-upstream", "true",
		  NULL }, "--no-upstream" },
		{ { "--fail-closed", NULL }, "COMMAND" },
		{ { NULL }, "COMMAND" },
		{ { "--print-env", NULL }, NULL },
		{ { "--via", "/run/e.sock", "true", NULL }, NULL },
		{ { "--via", "/run/e.sock", "--isolate", "true", NULL },
		  "--isolate" },
		{ { "--via", "/run/e.sock", "--listen", "127.0.0.1:1", "true",
		  NULL }, "--listen" },
		{ { "--via", "/run/e.sock", "--external", "p {port}", "true",
		  NULL }, "--external" },
		{ { "--via", "/e", "--control", "/c", "true", NULL },
		  "--control" },
		{ { "--control", "/run/c.sock", "true", NULL }, NULL },
		{ { "--control", "/c", "--external-addr", "127.0.0.1:1",
		  "true", NULL }, "--external" },
	};

	for (size_t i = 0; i < NELEM(cases); i++)
		check_validate(cases[i].in, false, cases[i].mention, i);
}

/* egress-run serve: its options follow the word; no COMMAND, no policy. */
static void
serve_validation(void)
{
	static const struct {
		const char	*in[8];
		const char	*mention;	/* NULL: valid */
	} cases[] = {
		{ { "--control", "/run/c.sock", NULL }, NULL },
		{ { "--control", "/c", "--listen", "0.0.0.0:3128", NULL },
		  NULL },
		{ { "--listen", "127.0.0.1:3128", NULL }, "--control" },
		{ { "--control", "/c", "true", NULL }, "COMMAND" },
		{ { "--control", "/c", "--allow", "a.test", NULL }, "--allow" },
		{ { "--control", "/c", "--secret", "K:a.test", NULL },
		  "--secret" },
		{ { "--control", "/c", "--isolate", NULL }, "--isolate" },
		{ { "--control", "/c", "--via", "/d", NULL }, "--via" },
		{ { "--control", "/c", "--llm-budget", "9", NULL },
		  "--llm-budget" },
	};
	char		err[512];
	struct config	c;
	struct args	a;

	for (size_t i = 0; i < NELEM(cases); i++)
		check_validate(cases[i].in, true, cases[i].mention, i);
	/* A sandbox's policy in the daemon's own config file is refused. */
	{
		const char *in[] = { "--control", "/c", "--config", NULL,
		    NULL };

		in[3] = write_file("serve.json", "{\"allow\": [\"a.test\"]}");
		CHECK(parse(&c, &a, in, err, sizeof err) == CONFIG_OK, "%s",
		    err);
		CHECK(config_load_file(&c, c.config_file, err, sizeof err) ==
		    0, "%s", err);
		c.serve = true;
		CHECK(config_validate(&c, err, sizeof err) != 0,
		    "policy in a daemon's file accepted");
		CHECK(strstr(err, "/v1/sandboxes") != NULL, "%s", err);
		config_free(&c);
		args_free(&a);
	}
}

/* The option's name appears in the text as a whole word. */
static bool
mentions(const char *text, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = text; (p = strstr(p, name)) != NULL; p++) {
		char after = p[n];
		if (!(after >= 'a' && after <= 'z') && after != '-' &&
		    (p == text || p[-1] == ' ' || p[-1] == ','))
			return true;
	}
	return false;
}

static void
usage_lists_every_option_and_fits_one_screen(void)
{
	size_t	lines = 0, col = 0, widest = 0;

	for (size_t i = 0; i < config_option_count(); i++)
		CHECK(mentions(config_usage, config_option_name(i)),
		    "--help does not list %s", config_option_name(i));
	for (const char *p = config_usage; *p != '\0'; p++) {
		if (*p == '\n') {
			lines++;
			col = 0;
		} else if (++col > widest)
			widest = col;
		CHECK(*p != '\t', "tab in usage");
	}
	CHECK(lines <= 40, "usage has %zu lines", lines);
	CHECK(widest <= 80, "usage has a line of %zu columns", widest);
	CHECK(strncmp(config_usage, "usage: egress-run", 17) == 0,
	    "usage starts with '%.20s'", config_usage);
	/* The mention check is not vacuous. */
	CHECK(!mentions(config_usage, "--no-such-option"), "mentions()");
	CHECK(!mentions("  --external-addr H:P", "--external"), "mentions()");
}

int
main(void)
{
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(every_table_option_has_a_test_case);
	RUN(every_option_parses_in_both_forms);
	RUN(config_option_takes_both_forms);
	RUN(repeated_list_options_accumulate_in_order);
	RUN(end_of_options_and_command_arguments);
	RUN(verbosity_flags);
	RUN(help_and_version_results);
	RUN(bad_command_lines_are_errors_naming_the_option);
	RUN(good_numbers_are_accepted);
	RUN(inline_secret_is_blanked_in_argv_and_kept_in_config);
	RUN(secret_from_environment_leaves_argv_alone);
	RUN(every_key_loads_from_a_file);
	RUN(every_table_key_has_a_json_case);
	RUN(verbose_and_quiet_keys);
	RUN(wrong_types_name_the_key_and_the_file);
	RUN(bad_files_are_errors_naming_the_file);
	RUN(invalid_json_reports_line_and_column);
	RUN(trailing_whitespace_after_the_object_is_fine);
	RUN(unreadable_config_file_is_an_error_naming_it);
	RUN(flags_override_the_file);
	RUN(file_values_apply_when_no_flag_is_given);
	RUN(config_validate_errors);
	RUN(serve_validation);
	RUN(usage_lists_every_option_and_fits_one_screen);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
		(void)!system(cmd);
	}
	return test_done("test_config");
}
