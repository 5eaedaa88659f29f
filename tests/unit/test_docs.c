/*
 * Every option is documented everywhere a user looks: --help, the man page
 * and the README. Adding an option without documenting it fails here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "launcher/config.h"
#include "test.h"

static char *
slurp(const char *dir, const char *name)
{
	char	 path[4096];
	FILE	*f;
	char	*buf;
	long	 n;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	if ((f = fopen(path, "rb")) == NULL) {
		perror(path);
		exit(1);
	}
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n)
		exit(1);
	fclose(f);
	return buf;
}

/* The man page writes "--name" as "\-\-name". */
static int
in_man(const char *man, const char *opt)
{
	char	esc[128];
	size_t	o = 0;

	for (const char *p = opt; *p != '\0' && o + 3 < sizeof esc; p++) {
		if (*p == '-')
			esc[o++] = '\\';
		esc[o++] = *p;
	}
	esc[o] = '\0';
	return strstr(man, esc) != NULL;
}

static void
every_option_is_documented(const char *src)
{
	char *man = slurp(src, "docs/egress-run.1");
	char *readme = slurp(src, "README.md");

	for (size_t i = 0; i < config_option_count(); i++) {
		const char *opt = config_option_name(i);

		CHECK(strstr(config_usage, opt) != NULL, "%s missing from "
		    "--help", opt);
		CHECK(in_man(man, opt), "%s missing from the man page", opt);
		CHECK(strstr(readme, opt) != NULL, "%s missing from README.md",
		    opt);
	}
	free(man);
	free(readme);
}

static void
help_fits_one_screen(void)
{
	int lines = 0, col = 0, widest = 0;

	for (const char *p = config_usage; *p != '\0'; p++) {
		if (*p == '\n') {
			lines++;
			col = 0;
		} else if (++col > widest)
			widest = col;
	}
	CHECK(lines <= 48, "--help has %d lines", lines);
	CHECK(widest <= 80, "--help is %d columns wide", widest);
}

int
main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: test_docs SOURCE_DIR\n");
		return 2;
	}
	RUN(help_fits_one_screen);
	every_option_is_documented(argv[1]);
	return test_done("docs");
}
