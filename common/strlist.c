/* Growable string lists. */
#include <stdlib.h>

#include "common/strlist.h"
#include "common/xmalloc.h"

void
strlist_add_owned(struct strlist *l, char *s)
{
	if (l->n + 2 > l->cap) {
		l->cap = l->cap ? l->cap * 2 : 8;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
	}
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
}

void
strlist_add(struct strlist *l, const char *s)
{
	strlist_add_owned(l, xstrdup(s));
}

void
strlist_clear(struct strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

void
strlist_copy(struct strlist *dst, const struct strlist *src)
{
	strlist_clear(dst);
	for (size_t i = 0; i < src->n; i++)
		strlist_add(dst, src->v[i]);
}

char **
strlist_array(struct strlist *l)
{
	if (l->n == 0) {
		l->cap = 2;
		l->v = xreallocarray(l->v, l->cap, sizeof *l->v);
		l->v[0] = NULL;
	}
	return l->v;
}
