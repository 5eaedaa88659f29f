/*
 * launcher/state.c: the private directory is created 0700 under $TMPDIR,
 * and state_remove() deletes a whole tree without following symbolic links
 * out of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launcher/state.h"
#include "test.h"

static char base[] = "/tmp/test_state.XXXXXX";

static void
touch(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL, "cannot create %s: %s", path, strerror(errno));
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

static int
exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void
created_private_under_tmpdir(void)
{
	char		 tmp[600];
	struct state	*s;
	struct stat	 st;
	mode_t		 old;

	snprintf(tmp, sizeof tmp, "%s/tmpdir", base);
	mkdir(tmp, 0755);
	setenv("TMPDIR", tmp, 1);
	old = umask(0);		/* the mode must not depend on the umask */
	s = state_create();
	umask(old);
	CHECK(s != NULL, "state_create: %s", strerror(errno));
	if (s == NULL)
		return;
	CHECK(strncmp(state_dir(s), tmp, strlen(tmp)) == 0 &&
	    state_dir(s)[strlen(tmp)] == '/', "%s is not under %s",
	    state_dir(s), tmp);
	CHECK(strstr(state_dir(s), "egress-run") != NULL, "%s", state_dir(s));
	CHECK(stat(state_dir(s), &st) == 0 && S_ISDIR(st.st_mode) &&
	    (st.st_mode & 07777) == 0700, "mode %o",
	    (unsigned)(st.st_mode & 07777));
	CHECK(st.st_uid == geteuid(), "owner %u", (unsigned)st.st_uid);
	state_remove(s);
}

static void
each_run_gets_its_own_directory(void)
{
	struct state *a, *b;

	setenv("TMPDIR", base, 1);
	a = state_create();
	b = state_create();
	CHECK(a != NULL && b != NULL, "state_create");
	if (a != NULL && b != NULL)
		CHECK(strcmp(state_dir(a), state_dir(b)) != 0, "same dir %s",
		    state_dir(a));
	state_remove(a);
	state_remove(b);
}

static void
relative_or_empty_tmpdir_falls_back_to_tmp(void)
{
	static const char *const values[] = { "relative/dir", "", NULL };

	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		struct state *s;

		if (values[i] != NULL)
			setenv("TMPDIR", values[i], 1);
		else
			unsetenv("TMPDIR");
		s = state_create();
		CHECK(s != NULL, "TMPDIR='%s': %s", values[i] ? values[i] :
		    "(unset)", strerror(errno));
		if (s != NULL)
			CHECK(strncmp(state_dir(s), "/tmp/", 5) == 0, "%s",
			    state_dir(s));
		state_remove(s);
	}
}

static void
missing_tmpdir_is_an_error(void)
{
	char tmp[600];

	snprintf(tmp, sizeof tmp, "%s/does-not-exist", base);
	setenv("TMPDIR", tmp, 1);
	errno = 0;
	CHECK(state_create() == NULL, "created under a missing directory");
	CHECK(errno == ENOENT, "errno %d", errno);
}

static void
state_path_names_a_file_inside(void)
{
	struct state	*s;
	char		*p, want[700];

	setenv("TMPDIR", base, 1);
	if ((s = state_create()) == NULL) {
		CHECK(0, "state_create");
		return;
	}
	p = state_path(s, "external.log");
	snprintf(want, sizeof want, "%s/external.log", state_dir(s));
	CHECK_STR(p, want);
	free(p);
	state_remove(s);
}

static void
remove_deletes_the_tree_but_not_what_links_point_to(void)
{
	char		 outside_file[600], outside_dir[600], victim[700];
	char		 p[800], dir[600];
	struct state	*s;

	snprintf(outside_file, sizeof outside_file, "%s/outside.txt", base);
	snprintf(outside_dir, sizeof outside_dir, "%s/outside-dir", base);
	snprintf(victim, sizeof victim, "%s/keep-me.txt", outside_dir);
	touch(outside_file, "precious\n");
	mkdir(outside_dir, 0755);
	touch(victim, "also precious\n");

	setenv("TMPDIR", base, 1);
	if ((s = state_create()) == NULL) {
		CHECK(0, "state_create");
		return;
	}
	snprintf(dir, sizeof dir, "%s", state_dir(s));
	/* Files, nested directories, an empty one, a hidden file. */
	snprintf(p, sizeof p, "%s/ca-bundle.pem", dir);
	touch(p, "x");
	snprintf(p, sizeof p, "%s/a", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/a/b", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/a/b/deep.txt", dir);
	touch(p, "x");
	snprintf(p, sizeof p, "%s/a/file", dir);
	touch(p, "x");
	snprintf(p, sizeof p, "%s/empty", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof p, "%s/.hidden", dir);
	touch(p, "x");
	/* Links pointing out of the tree, at a file and at a directory. */
	snprintf(p, sizeof p, "%s/link-to-file", dir);
	CHECK(symlink(outside_file, p) == 0, "symlink");
	snprintf(p, sizeof p, "%s/a/link-to-dir", dir);
	CHECK(symlink(outside_dir, p) == 0, "symlink");
	snprintf(p, sizeof p, "%s/dangling", dir);
	CHECK(symlink("/nonexistent/target", p) == 0, "symlink");

	state_remove(s);

	CHECK(!exists(dir), "%s still exists", dir);
	CHECK(exists(outside_file), "the file a link pointed to was removed");
	CHECK(exists(outside_dir), "the directory a link pointed to was "
	    "removed");
	CHECK(exists(victim), "a file inside a linked-to directory was "
	    "removed");
}

static void
remove_of_null_is_a_no_op(void)
{
	state_remove(NULL);
	CHECK(1, "survived");
}

int
main(void)
{
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	RUN(created_private_under_tmpdir);
	RUN(each_run_gets_its_own_directory);
	RUN(relative_or_empty_tmpdir_falls_back_to_tmp);
	RUN(missing_tmpdir_is_an_error);
	RUN(state_path_names_a_file_inside);
	RUN(remove_deletes_the_tree_but_not_what_links_point_to);
	RUN(remove_of_null_is_a_no_op);
	{
		char cmd[600];
		snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'",
		    base, base);
		(void)!system(cmd);
	}
	return test_done("test_state");
}
