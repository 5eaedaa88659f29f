/* A growable list of owned strings (repeatable options, environments). */
#ifndef COMMON_STRLIST_H
#define COMMON_STRLIST_H

#include <stddef.h>

struct strlist {
	char	**v;		/* NULL-terminated when n > 0 */
	size_t	  n;
	size_t	  cap;
};

void	strlist_add(struct strlist *, const char *);
void	strlist_add_owned(struct strlist *, char *);
void	strlist_clear(struct strlist *);
void	strlist_copy(struct strlist *, const struct strlist *);
/* The NULL-terminated array, never NULL itself. */
char  **strlist_array(struct strlist *);

#endif
