/*
 * git smart-HTTP pkt-lines (issue 8, the push guard): one-packet framing,
 * the git-receive-pack request a push sends -- shallow lines, commands or
 * a push certificate carrying them, push options -- parsed as it streams
 * in, up to where its packfile starts; and the status report that answers
 * a push the way git prints it. Pure: no I/O.
 */
#ifndef BUILTIN_PKTLINE_H
#define BUILTIN_PKTLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PKTLINE_MAX		65520	/* longest packet, length included */
#define PKTLINE_OID_MAX		64	/* hex digits of a SHA-256 oid */
#define PKTLINE_SIDEBAND_MAX	1000	/* packet size under "side-band" */

enum pktline_result {
	PKTLINE_NEED_MORE = -1,	/* pktline_next(): a prefix of a packet */
	PKTLINE_E_LENGTH = -2,	/* length not 4 hex digits, 0003, or over
				   PKTLINE_MAX */
	PKTLINE_E_PROTOCOL = -3, /* a packet not allowed there: delim or
				   response-end, "ERR ", anything after a
				   certificate but flush, a second one */
	PKTLINE_E_COMMAND = -4,	/* not "old-oid SP new-oid SP ref": oids of
				   the wrong length or not hex, a ref empty
				   or with a space or control byte */
	PKTLINE_E_CAPS = -5,	/* capabilities not on the first line, a NUL
				   in them, an unknown or second
				   object-format, shallow oids of another
				   length */
	PKTLINE_E_CERT = -6,	/* push certificate lines not one "...\n"
				   each, no "certificate version 0.1" first
				   or no blank line after the header, a
				   signature marker in the header or twice,
				   a flush inside */
	PKTLINE_E_SHALLOW = -7,	/* "shallow" not followed by one oid */
	PKTLINE_E_ARG = -8,	/* pktline_report(): a string with LF, CR or
				   NUL, or a line too long */
};

enum pktline_kind {
	PKTLINE_DATA,		/* a payload (maybe empty: "0004") */
	PKTLINE_FLUSH,		/* 0000 */
	PKTLINE_DELIM,		/* 0001 */
	PKTLINE_END,		/* 0002 response-end */
};

/*
 * One packet at buf: > 0 its length (consumed), PKTLINE_NEED_MORE, or
 * PKTLINE_E_LENGTH. Length digits may be either case, as git reads them.
 * *payload points into buf (*paylen bytes, 0 but for PKTLINE_DATA).
 */
ssize_t	pktline_next(const uint8_t *buf, size_t len, enum pktline_kind *,
	    const uint8_t **payload, size_t *paylen);

/* Capabilities the client asked for on its first line. */
#define PKTLINE_CAP_REPORT_STATUS	0x001
#define PKTLINE_CAP_REPORT_STATUS_V2	0x002
#define PKTLINE_CAP_SIDE_BAND		0x004
#define PKTLINE_CAP_SIDE_BAND_64K	0x008
#define PKTLINE_CAP_ATOMIC		0x010
#define PKTLINE_CAP_PUSH_OPTIONS	0x020	/* options follow the flush */
#define PKTLINE_CAP_QUIET		0x040
#define PKTLINE_CAP_OFS_DELTA		0x080
#define PKTLINE_CAP_SHA256		0x100	/* object-format=sha256 */
#define PKTLINE_CAP_PUSH_CERT		0x200	/* a certificate was sent */

enum pktline_event_type {
	PKTLINE_EV_NONE,	/* bytes taken, nothing complete yet */
	PKTLINE_EV_SHALLOW,	/* oid in old_oid */
	PKTLINE_EV_COMMAND,
	PKTLINE_EV_OPTION,	/* a push option in text */
	PKTLINE_EV_DONE,	/* the command section has ended */
};

struct pktline_event {
	enum pktline_event_type	 type;
	char			 old_oid[PKTLINE_OID_MAX + 1]; /* lower-case
						   hex, NUL-terminated */
	char			 new_oid[PKTLINE_OID_MAX + 1];
	const char		*text;		/* COMMAND: the ref name;
						   OPTION: the option. Not
						   NUL-terminated; valid
						   until the next step */
	size_t			 textlen;
	bool			 is_create;	/* old oid all zeros */
	bool			 is_delete;	/* new oid all zeros */
	bool			 from_cert;	/* signed, inside a push-cert */
};

struct pktline;

struct pktline	*pktline_new(void);
void		 pktline_free(struct pktline *);	/* NULL: no-op */

/*
 * Feed a receive-pack request body in pieces of any size. Each call takes
 * at most one packet's bytes (a partial one is kept inside, up to
 * PKTLINE_MAX) and returns how many (> 0; 0 once done or when len is 0),
 * or a negative pktline_result, after which every call returns it again.
 * *ev says what those bytes completed. The grammar, as git's receive-pack
 * reads it, strictly:
 *
 *	*("shallow" SP oid)
 *	( command [NUL caps] *command | "push-cert" [NUL caps] cert-lines
 *	  "push-cert-end\n" ) flush
 *	[*push-option flush]		if caps hold push-options
 *	packfile			if any command is not a delete
 *
 * A trailing LF on a packet is dropped (but certificate lines must end in
 * one). Certificate commands are the lines after the header's blank line
 * and before a signature ("-----BEGIN PGP SIGNATURE-----" and git's other
 * markers); they come with from_cert. A flush alone (no command) is done
 * at once. Never takes a byte past the command section: when ev is DONE,
 * pktline_offset() is where the packfile starts in the body.
 */
ssize_t		 pktline_step(struct pktline *, const uint8_t *buf,
		    size_t len, struct pktline_event *ev);

bool		 pktline_done(const struct pktline *);
uint64_t	 pktline_offset(const struct pktline *);  /* bytes taken */
unsigned	 pktline_caps(const struct pktline *);	  /* PKTLINE_CAP_* */
size_t		 pktline_oid_len(const struct pktline *); /* 40 or 64 */
size_t		 pktline_commands(const struct pktline *); /* so far */
/* Some command creates or updates a ref: a packfile follows. */
bool		 pktline_pack_expected(const struct pktline *);

/* One line of a status report: reason NULL for "ok <ref>", else
 * "ng <ref> <reason>". */
struct pktline_status {
	const char	*ref;
	const char	*reason;
};

/*
 * The receive-pack status report, as git's receive-pack writes it:
 * "unpack <unpack>" (NULL: "ok"), then "ok <ref>" or "ng <ref> <reason>"
 * per status, each a pkt-line ending in LF, then a flush. With caps
 * holding side-band-64k (or side-band) the whole report rides in
 * channel-1 packets of at most 65520 (1000) bytes, preceded by message
 * (if not NULL) on channel 2 -- git prints it as "remote: ..." lines --
 * and followed by a flush. A client then shows
 *	! [remote rejected] main -> main (<reason>)
 * Writes into out when the whole report fits in outlen and returns its
 * length either way (call with NULL, 0 to size it), or PKTLINE_E_ARG.
 */
ssize_t		 pktline_report(uint8_t *out, size_t outlen, unsigned caps,
		    const char *unpack, const struct pktline_status *,
		    size_t n, const char *message);

const char	*pktline_strerror(int);

#endif
