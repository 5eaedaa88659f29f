/*
 * Diagnostics: one line per call on stderr, prefixed "egress-run:".
 * Everything in egress-run reports through here, libevent included.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static int log_threshold = LOG_WARN;

void
log_set_level(int level)
{
	log_threshold = level;
}

int
log_level(void)
{
	return log_threshold;
}

int
log_enabled(enum log_level level)
{
	return level == LOG_ERROR || (int)level <= log_threshold;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	char	 line[2048];
	int	 n, saved = errno;
	size_t	 len;

	if (!log_enabled(level))
		return;
	n = snprintf(line, sizeof line, "egress-run: ");
	if (n < 0)
		return;
	len = (size_t)n;
	n = vsnprintf(line + len, sizeof line - len - 1, fmt, ap);
	if (n < 0)
		return;
	len += (size_t)n;
	if (len > sizeof line - 2)
		len = sizeof line - 2;
	/* Never let a stray control character from the network reach a tty. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	line[len++] = '\n';
	(void)!write(STDERR_FILENO, line, len);
	errno = saved;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, fmt, ap);
	va_end(ap);
	exit(125);
}
