/*
 * Allocation that cannot fail: out of memory is fatal (exit 125), so callers
 * never carry an error path for it.
 */
#ifndef COMMON_XMALLOC_H
#define COMMON_XMALLOC_H

#include <stddef.h>

void	*xcalloc(size_t, size_t);
void	*xreallocarray(void *, size_t, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
char	*xprintf(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Wipe then free a buffer that held a secret. */
void	 freezero(void *, size_t);
/* Wipe then free a NUL-terminated string that held a secret. */
void	 freezero_str(char *);

#endif
