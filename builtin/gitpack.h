/*
 * The packfile of a git push (issue 8, the push guard, gitguard.c): its
 * commits found by walking the pack -- object headers, zlib streams,
 * OFS_DELTA and REF_DELTA commits resolved against bases in the same pack
 * -- and hashed to their ids (SHA-1 or SHA-256); then, for each ref
 * update, whether the old commit is reached from the new one through the
 * parent lines of commits in the pack. Pure: bytes in, verdicts out;
 * bounded in memory and work whatever the pack declares.
 */
#ifndef BUILTIN_GITPACK_H
#define BUILTIN_GITPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GITPACK_OID_MAX		32		/* bytes of a SHA-256 id */
#define GITPACK_COMMIT_MAX	(1 << 20)	/* one commit, inflated; a
						   bigger one is not walked */
#define GITPACK_DELTA_MAX	(4 << 20)	/* one delta that may make a
						   commit, inflated */
#define GITPACK_KEEP_MAX	(64 << 20)	/* commit bytes kept (delta
						   bases) */
#define GITPACK_INFLATE_MAX	(1ULL << 30)	/* bytes inflated, all objects
						   together */
#define GITPACK_ENTRIES_MAX	(1 << 19)	/* commits and deltas that
						   may be commits */
#define GITPACK_WORK_MAX	(1 << 26)	/* walk steps and table
						   probes */

enum gitpack_result {
	GITPACK_OK = 0,
	GITPACK_E_HEADER = -1,	/* not "PACK", or a version but 2 and 3 */
	GITPACK_E_TRUNCATED = -2, /* the data ends inside an object, or
				   before the declared number of them */
	GITPACK_E_OBJECT = -3,	/* an object header: type 0 or 5, a size
				   over 64 bits, a delta base offset out
				   of range */
	GITPACK_E_ZLIB = -4,	/* a stream that is not zlib or inflates to
				   other than its declared size */
	GITPACK_E_DELTA = -5,	/* a delta that does not apply to its base
				   (git's patch_delta() rules) */
	GITPACK_E_LIMIT = -6,	/* one of the bounds above */
	GITPACK_E_TRAILER = -7,	/* after the last object, other than one
				   checksum's worth of bytes */
	GITPACK_E_ARG = -8,	/* oidlen not 20 or 32 */
};

enum gitpack_proof {
	GITPACK_UNPROVEN = 0,	/* the walk from new left the pack (or the
				   pack could not be walked) before it
				   reached old */
	GITPACK_PROVEN,		/* old is new or one of its ancestors */
	GITPACK_MISSING,	/* new is not a commit of the pack */
	GITPACK_NOT_ANCESTOR,	/* all of new's history is in the pack, and
				   old is not in it: history was rewritten */
};

struct gitpack_goal {
	uint8_t			old[GITPACK_OID_MAX];	/* oidlen bytes */
	uint8_t			new[GITPACK_OID_MAX];
	enum gitpack_proof	proof;			/* out */
};

struct gitpack_stats {
	uint32_t	version;	/* 2 or 3 */
	uint32_t	declared;	/* objects the header declares */
	uint32_t	objects;	/* objects walked */
	size_t		commits;	/* distinct commits found */
	size_t		delta_commits;	/* of which first made from a delta */
	uint64_t	inflated;	/* bytes */
	uint64_t	offset;		/* where the walk stopped: the end, an
					   error's object, or early */
	bool		early;		/* stopped once every goal was proven */
};

/*
 * Walk pack (len bytes: a whole packfile, header to trailer) whose ids
 * are oidlen bytes (20: SHA-1, 32: SHA-256) and settle each goal's proof.
 * Commits are parsed as git's parse_commit_buffer() reads them: "tree
 * <hex>\n" first, then the "parent <hex>\n" lines right after it; a
 * commit that does not parse that way has no parents here (fewer edges
 * prove less). Only commits of the pack are followed; a delta whose base
 * is not a commit of the pack gives no commit. With goals, the walk stops
 * early once all are proven: a proof rests only on objects already read,
 * so what follows cannot undo it (and the server refuses a pack that is
 * corrupt further on). Without goals the whole pack is walked.
 *
 * Each commit found is passed to on_commit (may be NULL): its id, its
 * bytes (without the "commit <size>\0" header), in pack order, deltas when
 * resolved. Returns 0 or a negative gitpack_result; on an error the goals
 * proven before it stay PROVEN, the others are UNPROVEN.
 */
int	gitpack_prove(const uint8_t *pack, size_t len, size_t oidlen,
	    struct gitpack_goal *goals, size_t ngoals,
	    void (*on_commit)(void *, const uint8_t *oid, const uint8_t *body,
	    size_t bodylen), void *arg, struct gitpack_stats *);

const char *gitpack_strerror(int);

#endif
