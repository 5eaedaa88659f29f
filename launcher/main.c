/*
 * egress-run: parse the command line and config file, then either relay a
 * connection for ssh (connect) or run COMMAND behind a proxy (session).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "launcher/config.h"
#include "launcher/connect.h"
#include "launcher/serve.h"
#include "launcher/session.h"

int
main(int argc, char **argv)
{
	struct config	cfg;
	char		err[1024], self[PATH_MAX];
	ssize_t		n;
	int		r;

	if (argc >= 2 && strcmp(argv[1], "connect") == 0)
		return connect_main(argc - 1, argv + 1);

	/*
	 * Secret values and the CA key live in this process's memory, and
	 * COMMAND runs as the same user: no core dumps, no ptrace, no
	 * /proc/PID/mem for it. (COMMAND itself is dumpable again after
	 * execve.)
	 */
	(void)prctl(PR_SET_DUMPABLE, 0);
	/* OpenSSL's clean-up at exit frees what the exit frees anyway: it
	 * costs half a millisecond a run. Keys are wiped when we free them. */
	(void)OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
	/*
	 * Random numbers from SP 800-90A's Hash_DRBG over SHA-256 rather than
	 * OpenSSL's default CTR_DRBG over AES-256: the same strength, set up
	 * 0.7 ms sooner on the first draw (every start that makes a CA has
	 * one). It must be chosen before the first random number is drawn.
	 */
	(void)RAND_set_DRBG_type(NULL, "HASH-DRBG", NULL, NULL, "SHA256");

	config_init(&cfg);
	if (argc >= 2 && strcmp(argv[1], "serve") == 0) {
		cfg.serve = true;	/* its options follow the word */
		argc--;
		argv++;
	}
	switch (config_parse_args(&cfg, argc, argv, err, sizeof err)) {
	case CONFIG_HELP:
		fputs(config_usage, stdout);
		return 0;
	case CONFIG_VERSION:
		printf("egress-run %s\n", EGRESS_VERSION);
		return 0;
	case CONFIG_ERR:
		log_error("%s", err);
		config_free(&cfg);
		return 125;
	case CONFIG_OK:
		break;
	}
	if ((cfg.config_file != NULL && config_load_file(&cfg,
	    cfg.config_file, err, sizeof err) != 0) ||
	    config_validate(&cfg, err, sizeof err) != 0) {
		log_error("%s", err);
		config_free(&cfg);
		return 125;
	}
	log_set_level(cfg.verbosity);

	/* The ProxyCommand in GIT_SSH_COMMAND needs our absolute path. */
	if ((n = readlink("/proc/self/exe", self, sizeof self - 1)) <= 0)
		n = (ssize_t)strlen(strncpy(self, argv[0], sizeof self - 1));
	self[n] = '\0';

	r = cfg.serve ? serve_run(&cfg) : session_run(&cfg, self);
	config_free(&cfg);
	return r;
}
