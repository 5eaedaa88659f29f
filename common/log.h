/*
 * Diagnostics on stderr: one line each, "egress-run: ...", written with a
 * single write(2) so lines from egress-run never interleave mid-line.
 */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_ERROR = -1,	/* always shown, even with -q */
	LOG_WARN = 0,	/* shown unless -q */
	LOG_INFO = 1,	/* -v */
	LOG_DEBUG = 2,	/* -vv */
};

void	log_set_level(int);
int	log_level(void);
int	log_enabled(enum log_level);
void	log_msg(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_vmsg(enum log_level, const char *, va_list)
	    __attribute__((format(printf, 2, 0)));

#define log_error(...)	log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)	log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)	log_msg(LOG_DEBUG, __VA_ARGS__)

/* A broken invariant or an unrecoverable start-up failure: exit 125. */
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2),
	    noreturn));

#endif
