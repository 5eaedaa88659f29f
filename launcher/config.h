/*
 * The run's configuration: every command-line option, every config-file key.
 * One table drives both parsers, so an option cannot exist in one and not the
 * other; flags override the file. Modules receive a const struct config.
 */
#ifndef LAUNCHER_CONFIG_H
#define LAUNCHER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/strlist.h"

struct config {
	char		*config_file;

	char		*external;	/* --external CMD */
	char		*external_addr;	/* --external-addr HOST:PORT */
	char		*external_ca;
	unsigned	 bind_timeout_ms;

	char		*listen;	/* built-in proxy address */
	unsigned	 max_conns;
	struct strlist	 allow;
	struct strlist	 deny;
	struct strlist	 resolve;
	struct strlist	 secrets;	/* specs; inline values live here only */
	char		*ca_cert;
	char		*ca_key;
	struct strlist	 no_mitm;

	char		*upstream;
	bool		 no_upstream;
	char		*upstream_ca;

	struct strlist	 no_proxy;	/* additions to the child's NO_PROXY */
	struct strlist	 gateways;	/* NAME=URL[,VAR] or a preset */
	struct strlist	 rules;		/* --rule specs; from the file also
					   objects, kept as JSON text */
	struct strlist	 presets;	/* github[:HOST] */
	struct strlist	 git_repos;	/* HOST/OWNER/REPO globs */
	struct strlist	 git_protect;	/* branch globs (default main,
					   master) */
	struct strlist	 git_push_prefix;
	bool		 git_allow_delete;
	bool		 git_allow_force;
	struct strlist	 llm_hosts;	/* HOST[:format] */
	bool		 no_llm;
	unsigned	 llm_budget;	/* tokens, 0: none */
	unsigned	 llm_max_requests;
	bool		 llm_summary;
	bool		 isolate;	/* own network namespace */
	struct strlist	 host_ports;	/* PORT[:HOSTPORT] under --isolate */
	char		*audit;
	struct strlist	 hooks;		/* [NAME=]EVENT:TARGET, checked */
	char		*metrics;	/* loopback ADDR:PORT */
	char		*control;	/* --control PATH: the API socket */
	char		*via;		/* --via PATH: a daemon's socket */
	bool		 serve;		/* egress-run serve: no COMMAND */
	bool		 fail_closed;
	bool		 print_env;
	int		 verbosity;	/* -1 quiet, 0 default, 1.. verbose */

	char	       **command;	/* points into argv; NULL if none */

	uint64_t	 set;		/* options given (bit per table row) */
};

enum config_result {
	CONFIG_ERR = -1,
	CONFIG_OK = 0,
	CONFIG_HELP,
	CONFIG_VERSION,
};

void	config_init(struct config *);
void	config_free(struct config *);

/*
 * Parse argv (argv[0] is the program). Inline secret values are copied out
 * and blanked in argv. Errors are one line in err.
 */
enum config_result config_parse_args(struct config *, int, char **, char *,
	    size_t);

/* Load a JSON file; keys already set in cfg (from flags) keep their value. */
int	config_load_file(struct config *, const char *, char *, size_t);

/* Parse JSON text (used by config_load_file and the fuzz target). */
int	config_load_json(struct config *, const char *, size_t, const char *,
	    char *, size_t);

/* The keys of a parsed JSON object (cJSON *), as config_load_json does;
 * "file" names the source in errors. */
int	config_load_object(struct config *, const void *, const char *,
	    char *, size_t);

/* Is key a config-file key? */
bool	config_key_known(const char *);

/* Wipe the secret specs (inline values) once they have been taken. */
void	config_wipe_secrets(struct config *);

/* Checks across options, after flags and file are merged. */
int	config_validate(const struct config *, char *, size_t);

/* The option table, for --help/man page consistency tests. */
size_t	 config_option_count(void);
const char *config_option_name(size_t);	/* "--external" */
const char *config_option_key(size_t);	/* "external" */

/* The one-screen usage text. */
extern const char config_usage[];

#endif
