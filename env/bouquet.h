/*
 * The child's environment: the parent's, plus the variables that make curl,
 * git, npm, pip, node, python, go and Java use the proxy and trust its CA.
 * Pure: it reads the parent's environment only through its argument.
 */
#ifndef ENV_BOUQUET_H
#define ENV_BOUQUET_H

#include <stdio.h>

#include "common/strlist.h"

struct trust_files;

struct bouquet_opts {
	const char			*proxy_host;	/* NULL: no proxy */
	unsigned			 proxy_port;
	const char			*proxy_userinfo;/* "ID:TOKEN" in the
							   URLs (--via), or
							   NULL */
	const char			*all_proxy;	/* ALL_PROXY URL, or NULL
							   for the HTTP one */
	const struct trust_files	*trust;		/* NULL: no trust vars */
	const char			*self;		/* egress-run's path */
	const struct strlist		*no_proxy;	/* additions */
	const struct strlist		*replace;	/* NAME=value overrides
							   (secret placeholders) */
	const char *const		*scrub;		/* drop any inherited
							   variable holding one
							   of these (upstream
							   passwords) */
};

struct bouquet {
	struct strlist	env;	/* the whole environment, for execve */
	struct strlist	set;	/* the NAME=value entries egress-run set */
};

void	bouquet_build(struct bouquet *, char *const *parent,
	    const struct bouquet_opts *);
/* One shell-quoted NAME='value' line per variable egress-run set. */
void	bouquet_print(const struct bouquet *, FILE *);
/* The value of NAME in the built environment, or NULL. */
const char *bouquet_get(const struct bouquet *, const char *);
void	bouquet_free(struct bouquet *);

#endif
