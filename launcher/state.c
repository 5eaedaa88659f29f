/* The private state directory: created 0700, removed recursively at exit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/xmalloc.h"
#include "launcher/state.h"

struct state {
	char	*dir;
};

struct state *
state_create(void)
{
	const char	*tmp = getenv("TMPDIR");
	struct state	*s;
	char		*tmpl;

	if (tmp == NULL || *tmp != '/')
		tmp = "/tmp";
	tmpl = xprintf("%s/egress-run.XXXXXX", tmp);
	if (mkdtemp(tmpl) == NULL) {	/* mkdtemp makes it 0700 */
		int saved = errno;
		free(tmpl);
		errno = saved;
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	s->dir = tmpl;
	return s;
}

const char *
state_dir(const struct state *s)
{
	return s->dir;
}

char *
state_path(const struct state *s, const char *name)
{
	return xprintf("%s/%s", s->dir, name);
}

/* Remove the contents of an open directory, depth first, without following
 * symbolic links. */
static void
remove_tree(int dfd)
{
	DIR		*d;
	struct dirent	*e;

	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			continue;
		if (errno == EISDIR || errno == EPERM) {
			int sub = openat(dirfd(d), e->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub != -1)
				remove_tree(sub);
			(void)unlinkat(dirfd(d), e->d_name, AT_REMOVEDIR);
		}
	}
	closedir(d);
}

void
state_remove(struct state *s)
{
	int fd;

	if (s == NULL)
		return;
	fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd != -1)
		remove_tree(fd);
	(void)rmdir(s->dir);
	free(s->dir);
	free(s);
}
