/*
 * The run's private state directory (mode 0700): the external proxy's log,
 * the combined trust bundle, generated wgetrc and Java trust store. Removed,
 * with everything in it, at exit.
 */
#ifndef LAUNCHER_STATE_H
#define LAUNCHER_STATE_H

struct state;

/* Create it under $TMPDIR (or /tmp). NULL and errno on failure. */
struct state	*state_create(void);
const char	*state_dir(const struct state *);
/* An allocated path to NAME inside the directory. */
char		*state_path(const struct state *, const char *);
/* Remove the directory tree and free; NULL is a no-op. */
void		 state_remove(struct state *);

#endif
