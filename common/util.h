/* Small string helpers shared by every module: numbers, host:port, quoting. */
#ifndef COMMON_UTIL_H
#define COMMON_UTIL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Decimal integer in [min, max], the whole string and nothing else.
 * Returns 0, or -1 when empty, malformed or out of range.
 */
int	 util_strtonum(const char *, long long, long long, long long *);

/*
 * Split "host:port" or "[v6]:port" into an allocated host (brackets removed)
 * and a port in 0..65535 (0 only when allow_zero). Returns 0 or -1.
 */
int	 util_hostport(const char *, char **, unsigned *, bool allow_zero);

/* A copy of the argument quoted for /bin/sh (single quotes). */
char	*util_shell_quote(const char *);

/* "host:port" with brackets around an IPv6 host. */
char	*util_join_hostport(const char *, unsigned);

/* The value of a hexadecimal digit, either case; -1 for anything else. */
int	 util_hexval(int c);

/* 2 * n hex digits (either case) into n bytes: true, or false at the first
 * byte that is not a digit. */
bool	 util_unhex(const void *, size_t n, unsigned char *out);

#endif
