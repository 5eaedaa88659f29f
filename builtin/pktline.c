/*
 * pkt-lines for the git push guard: the receive-pack request as a state
 * machine fed in pieces (one packet per step, a partial one held in a
 * fixed buffer), and the status report builder. Strict where git's
 * receive-pack is lenient, so that what this parser accepts, git reads the
 * same way; everything else is an error and the push is refused.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/pktline.h"
#include "common/util.h"
#include "common/xmalloc.h"

#define OID_SHA1	40
#define OID_SHA256	64

enum state {
	ST_HEAD,	/* shallow lines, then the first command or cert */
	ST_COMMANDS,	/* more commands until flush */
	ST_CERT_FIRST,	/* "certificate version 0.1\n" */
	ST_CERT_HEADER,	/* until the blank line */
	ST_CERT_BODY,	/* commands until a signature or the end */
	ST_CERT_SIG,	/* signature lines until push-cert-end */
	ST_AFTER_CERT,	/* only the flush */
	ST_OPTIONS,	/* push options until flush */
	ST_DONE,
	ST_ERROR,
};

struct pktline {
	enum state	 state;
	int		 error;
	uint64_t	 offset;
	unsigned	 caps;
	size_t		 oidlen;	/* from the first line's caps */
	size_t		 shallow_oidlen;	/* 0: no shallow line yet */
	size_t		 ncommands;
	bool		 pack;
	size_t		 have;		/* bytes of a partial packet */
	uint8_t		 buf[PKTLINE_MAX];
};

/* git's signature markers (gpg-interface.c): a line starting with one
 * starts the signature. */
static const char *const sig_markers[] = {
	"-----BEGIN PGP SIGNATURE-----",
	"-----BEGIN PGP MESSAGE-----",
	"-----BEGIN SIGNED MESSAGE-----",
	"-----BEGIN SSH SIGNATURE-----",
};

ssize_t
pktline_next(const uint8_t *buf, size_t len, enum pktline_kind *kind,
    const uint8_t **payload, size_t *paylen)
{
	size_t	i, n = 0;
	int	v;

	*kind = PKTLINE_DATA;
	*payload = NULL;
	*paylen = 0;
	for (i = 0; i < 4 && i < len; i++) {
		if ((v = util_hexval(buf[i])) < 0)
			return PKTLINE_E_LENGTH;
		n = n << 4 | (size_t)v;
	}
	if (len < 4)
		return PKTLINE_NEED_MORE;
	if (n < 4) {
		if (n == 3)
			return PKTLINE_E_LENGTH;
		*kind = n == 0 ? PKTLINE_FLUSH : n == 1 ? PKTLINE_DELIM :
		    PKTLINE_END;
		return 4;
	}
	if (n > PKTLINE_MAX)
		return PKTLINE_E_LENGTH;
	if (len < n)
		return PKTLINE_NEED_MORE;
	*payload = buf + 4;
	*paylen = n - 4;
	return (ssize_t)n;
}

struct pktline *
pktline_new(void)
{
	struct pktline	*p = xcalloc(1, sizeof *p);

	p->oidlen = OID_SHA1;
	return p;
}

void
pktline_free(struct pktline *p)
{
	free(p);
}

bool
pktline_done(const struct pktline *p)
{
	return p->state == ST_DONE;
}

uint64_t
pktline_offset(const struct pktline *p)
{
	return p->offset;
}

unsigned
pktline_caps(const struct pktline *p)
{
	return p->caps;
}

size_t
pktline_oid_len(const struct pktline *p)
{
	return p->oidlen;
}

size_t
pktline_commands(const struct pktline *p)
{
	return p->ncommands;
}

bool
pktline_pack_expected(const struct pktline *p)
{
	return p->pack;
}

static bool
is_lit(const uint8_t *s, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(s, lit, len) == 0;
}

static bool
starts(const uint8_t *s, size_t len, const char *lit)
{
	size_t	n = strlen(lit);

	return len >= n && memcmp(s, lit, n) == 0;
}

static bool
is_sig_marker(const uint8_t *s, size_t len)
{
	size_t	i;

	for (i = 0; i < sizeof sig_markers / sizeof sig_markers[0]; i++)
		if (starts(s, len, sig_markers[i]))
			return true;
	return false;
}

/* n hex digits into out, lower case; false if any is not hex. */
static bool
oid_copy(const uint8_t *s, size_t n, char *out)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		if (util_hexval(s[i]) < 0)
			return false;
		out[i] = (s[i] >= 'A' && s[i] <= 'F') ? (char)(s[i] + 32) :
		    (char)s[i];
	}
	out[n] = '\0';
	return true;
}

static bool
oid_zero(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s != '0')
			return false;
	return true;
}

static int
parse_caps(struct pktline *p, const uint8_t *s, size_t len)
{
	static const struct {
		const char	*name;
		unsigned	 flag;
	} known[] = {
		{ "report-status", PKTLINE_CAP_REPORT_STATUS },
		{ "report-status-v2", PKTLINE_CAP_REPORT_STATUS_V2 },
		{ "side-band", PKTLINE_CAP_SIDE_BAND },
		{ "side-band-64k", PKTLINE_CAP_SIDE_BAND_64K },
		{ "atomic", PKTLINE_CAP_ATOMIC },
		{ "push-options", PKTLINE_CAP_PUSH_OPTIONS },
		{ "quiet", PKTLINE_CAP_QUIET },
		{ "ofs-delta", PKTLINE_CAP_OFS_DELTA },
	};
	const uint8_t	*sp;
	size_t		 n, i;
	bool		 format = false;

	if (memchr(s, '\0', len) != NULL)
		return PKTLINE_E_CAPS;
	while (len > 0) {
		sp = memchr(s, ' ', len);
		n = sp != NULL ? (size_t)(sp - s) : len;
		for (i = 0; i < sizeof known / sizeof known[0]; i++)
			if (is_lit(s, n, known[i].name))
				p->caps |= known[i].flag;
		if (starts(s, n, "object-format=")) {
			if (format)
				return PKTLINE_E_CAPS;
			format = true;
			if (is_lit(s, n, "object-format=sha1"))
				p->oidlen = OID_SHA1;
			else if (is_lit(s, n, "object-format=sha256")) {
				p->oidlen = OID_SHA256;
				p->caps |= PKTLINE_CAP_SHA256;
			} else
				return PKTLINE_E_CAPS;
		}
		if (sp == NULL)
			break;
		s += n + 1;
		len -= n + 1;
	}
	return 0;
}

/* "old SP new SP ref" */
static int
parse_command(struct pktline *p, const uint8_t *s, size_t len,
    bool from_cert, struct pktline_event *ev)
{
	size_t	L = p->oidlen, i;

	if (len < 2 * L + 3 || s[L] != ' ' || s[2 * L + 1] != ' ' ||
	    !oid_copy(s, L, ev->old_oid) ||
	    !oid_copy(s + L + 1, L, ev->new_oid))
		return PKTLINE_E_COMMAND;
	for (i = 2 * L + 2; i < len; i++)
		if (s[i] <= 0x20 || s[i] == 0x7f)
			return PKTLINE_E_COMMAND;
	ev->type = PKTLINE_EV_COMMAND;
	ev->text = (const char *)s + 2 * L + 2;
	ev->textlen = len - (2 * L + 2);
	ev->is_create = oid_zero(ev->old_oid);
	ev->is_delete = oid_zero(ev->new_oid);
	ev->from_cert = from_cert;
	if (!ev->is_delete)
		p->pack = true;
	p->ncommands++;
	return 0;
}

static int
parse_shallow(struct pktline *p, const uint8_t *s, size_t len,
    struct pktline_event *ev)
{
	if (len != OID_SHA1 && len != OID_SHA256)
		return PKTLINE_E_SHALLOW;
	if (p->shallow_oidlen != 0 && p->shallow_oidlen != len)
		return PKTLINE_E_SHALLOW;
	if (!oid_copy(s, len, ev->old_oid))
		return PKTLINE_E_SHALLOW;
	p->shallow_oidlen = len;
	ev->type = PKTLINE_EV_SHALLOW;
	return 0;
}

/* The first line: caps after a NUL, then a command or "push-cert". */
static int
first_line(struct pktline *p, const uint8_t *s, size_t len,
    struct pktline_event *ev)
{
	const uint8_t	*nul;
	size_t		 l = len;
	int		 r;

	if ((nul = memchr(s, '\0', len)) != NULL) {
		l = (size_t)(nul - s);
		if ((r = parse_caps(p, nul + 1, len - l - 1)) != 0)
			return r;
	}
	if (p->shallow_oidlen != 0 && p->shallow_oidlen != p->oidlen)
		return PKTLINE_E_CAPS;
	if (is_lit(s, l, "push-cert")) {
		p->caps |= PKTLINE_CAP_PUSH_CERT;
		p->state = ST_CERT_FIRST;
		return 0;
	}
	p->state = ST_COMMANDS;
	return parse_command(p, s, l, false, ev);
}

static void
end_commands(struct pktline *p, struct pktline_event *ev)
{
	if (p->ncommands > 0 && (p->caps & PKTLINE_CAP_PUSH_OPTIONS)) {
		p->state = ST_OPTIONS;
		return;
	}
	p->state = ST_DONE;
	ev->type = PKTLINE_EV_DONE;
}

/* A certificate line: exactly one "...\n", no NUL. */
static int
cert_line(struct pktline *p, const uint8_t *s, size_t len,
    struct pktline_event *ev)
{
	size_t	l;

	if (len == 0 || s[len - 1] != '\n')
		return PKTLINE_E_CERT;
	l = len - 1;
	if (memchr(s, '\n', l) != NULL || memchr(s, '\0', l) != NULL)
		return PKTLINE_E_CERT;
	switch (p->state) {
	case ST_CERT_FIRST:
		if (!is_lit(s, l, "certificate version 0.1"))
			return PKTLINE_E_CERT;
		p->state = ST_CERT_HEADER;
		return 0;
	case ST_CERT_HEADER:
		if (is_lit(s, l, "push-cert-end") || is_sig_marker(s, l))
			return PKTLINE_E_CERT;
		if (l == 0)
			p->state = ST_CERT_BODY;
		return 0;
	case ST_CERT_BODY:
		if (is_lit(s, l, "push-cert-end")) {
			if (p->ncommands == 0)
				return PKTLINE_E_CERT;
			p->state = ST_AFTER_CERT;
			return 0;
		}
		if (is_sig_marker(s, l)) {
			p->state = ST_CERT_SIG;
			return 0;
		}
		return parse_command(p, s, l, true, ev);
	case ST_CERT_SIG:
		if (is_sig_marker(s, l))
			return PKTLINE_E_CERT;
		if (is_lit(s, l, "push-cert-end")) {
			if (p->ncommands == 0)
				return PKTLINE_E_CERT;
			p->state = ST_AFTER_CERT;
		}
		return 0;
	default:
		return PKTLINE_E_CERT;
	}
}

/* One whole packet in the current state. */
static int
packet(struct pktline *p, enum pktline_kind kind, const uint8_t *s,
    size_t len, struct pktline_event *ev)
{
	bool	cert = p->state >= ST_CERT_FIRST && p->state <= ST_CERT_SIG;

	if (kind == PKTLINE_DELIM || kind == PKTLINE_END)
		return PKTLINE_E_PROTOCOL;
	if (kind == PKTLINE_DATA && starts(s, len, "ERR "))
		return PKTLINE_E_PROTOCOL;
	if (kind == PKTLINE_FLUSH) {
		switch (p->state) {
		case ST_HEAD:
			p->state = ST_DONE;
			ev->type = PKTLINE_EV_DONE;
			return 0;
		case ST_COMMANDS:
		case ST_AFTER_CERT:
			end_commands(p, ev);
			return 0;
		case ST_OPTIONS:
			p->state = ST_DONE;
			ev->type = PKTLINE_EV_DONE;
			return 0;
		default:
			return PKTLINE_E_CERT;	/* inside a certificate */
		}
	}
	if (cert)
		return cert_line(p, s, len, ev);
	if (len > 0 && s[len - 1] == '\n')	/* git chomps one LF */
		len--;
	switch (p->state) {
	case ST_HEAD:
		if (len > 8 && starts(s, len, "shallow "))
			return parse_shallow(p, s + 8, len - 8, ev);
		return first_line(p, s, len, ev);
	case ST_COMMANDS:
		if (memchr(s, '\0', len) != NULL)
			return PKTLINE_E_CAPS;
		return parse_command(p, s, len, false, ev);
	case ST_OPTIONS:
		if (memchr(s, '\0', len) != NULL)
			return PKTLINE_E_PROTOCOL;
		ev->type = PKTLINE_EV_OPTION;
		ev->text = (const char *)s;
		ev->textlen = len;
		return 0;
	default:
		return PKTLINE_E_PROTOCOL;	/* ST_AFTER_CERT */
	}
}

static ssize_t
failed(struct pktline *p, int r)
{
	p->state = ST_ERROR;
	p->error = r;
	return r;
}

ssize_t
pktline_step(struct pktline *p, const uint8_t *buf, size_t len,
    struct pktline_event *ev)
{
	enum pktline_kind	 kind;
	const uint8_t		*pl;
	size_t			 plen, want, take, i;
	ssize_t			 n;
	int			 r;

	memset(ev, 0, sizeof *ev);
	ev->type = PKTLINE_EV_NONE;
	if (p->state == ST_ERROR)
		return p->error;
	if (p->state == ST_DONE || len == 0)
		return 0;
	if (p->have == 0) {
		n = pktline_next(buf, len, &kind, &pl, &plen);
		if (n > 0) {
			if ((r = packet(p, kind, pl, plen, ev)) != 0)
				return failed(p, r);
			p->offset += (uint64_t)n;
			return n;
		}
		if (n != PKTLINE_NEED_MORE)
			return failed(p, (int)n);
	}
	/* A partial packet: hold bytes up to its end, never past it (its
	 * length digits, once held, were checked by pktline_next()). */
	want = 4;
	if (p->have >= 4)
		for (want = 0, i = 0; i < 4; i++)
			want = want << 4 | (size_t)util_hexval(p->buf[i]);
	take = want - p->have < len ? want - p->have : len;
	memcpy(p->buf + p->have, buf, take);
	p->have += take;
	p->offset += take;
	n = pktline_next(p->buf, p->have, &kind, &pl, &plen);
	if (n == PKTLINE_NEED_MORE)
		return (ssize_t)take;
	if (n < 0)
		return failed(p, (int)n);
	p->have = 0;
	if ((r = packet(p, kind, pl, plen, ev)) != 0)
		return failed(p, r);
	return (ssize_t)take;
}

/* --- the status report --------------------------------------------------- */

/* Writes (when out is set) or only counts. In band mode each byte of the
 * report goes into channel-1 packets of at most chunk data bytes; total is
 * the report's length, known beforehand, to size the last one. */
struct emit {
	uint8_t		*out;
	size_t		 len;
	int		 band;		/* 0: none */
	size_t		 chunk;
	size_t		 total;
	size_t		 done;
};

static void
put(struct emit *e, const void *s, size_t n)
{
	if (e->out != NULL && n > 0)
		memcpy(e->out + e->len, s, n);
	e->len += n;
}

static void
put_header(struct emit *e, size_t n, int band)
{
	char	h[8];
	uint8_t	b = (uint8_t)band;

	snprintf(h, sizeof h, "%04zx", n);
	put(e, h, 4);
	if (band != 0)
		put(e, &b, 1);
}

static void
report_put(struct emit *e, const void *s, size_t n)
{
	const uint8_t	*c = s;
	size_t		 off, take, m;

	if (e->band == 0) {
		put(e, s, n);
		return;
	}
	while (n > 0) {
		off = e->done % e->chunk;
		if (off == 0) {
			m = e->total - e->done < e->chunk ?
			    e->total - e->done : e->chunk;
			put_header(e, m + 5, 1);
		}
		take = n < e->chunk - off ? n : e->chunk - off;
		put(e, c, take);
		c += take;
		n -= take;
		e->done += take;
	}
}

static bool
one_line(const char *s)
{
	return s != NULL && strchr(s, '\n') == NULL && strchr(s, '\r') ==
	    NULL;
}

/* "<a><b><c><d>\n" as one pkt-line of the report */
static void
report_line(struct emit *e, const char *a, const char *b, const char *c,
    const char *d)
{
	const char	*part[4] = { a, b, c, d };
	char		 h[8];
	size_t		 i, n = 4 + 1;

	for (i = 0; i < 4; i++)
		if (part[i] != NULL)
			n += strlen(part[i]);
	snprintf(h, sizeof h, "%04zx", n);
	report_put(e, h, 4);
	for (i = 0; i < 4; i++)
		if (part[i] != NULL)
			report_put(e, part[i], strlen(part[i]));
	report_put(e, "\n", 1);
}

static void
report_all(struct emit *e, const char *unpack,
    const struct pktline_status *st, size_t n, const char *message)
{
	const char	*m;
	size_t		 i, len, take;

	if (e->band != 0 && message != NULL && message[0] != '\0') {
		len = strlen(message);
		/* chunk - 1: room for the LF a last line may need */
		for (m = message; len > 0; m += take, len -= take) {
			take = len < e->chunk - 1 ? len : e->chunk - 1;
			put_header(e, take + 5 +
			    (take == len && m[take - 1] != '\n' ? 1 : 0), 2);
			put(e, m, take);
			if (take == len && m[take - 1] != '\n')
				put(e, "\n", 1);
		}
	}
	report_line(e, "unpack ", unpack, NULL, NULL);
	for (i = 0; i < n; i++) {
		if (st[i].reason == NULL)
			report_line(e, "ok ", st[i].ref, NULL, NULL);
		else
			report_line(e, "ng ", st[i].ref, " ", st[i].reason);
	}
	report_put(e, "0000", 4);
	if (e->band != 0)
		put(e, "0000", 4);
}

ssize_t
pktline_report(uint8_t *out, size_t outlen, unsigned caps,
    const char *unpack, const struct pktline_status *st, size_t n,
    const char *message)
{
	struct emit	e;
	size_t		i, total;
	int		pass;

	if (unpack == NULL)
		unpack = "ok";
	/* Each line must fit one packet: "ng " ref " " reason "\n". */
	if (!one_line(unpack) || strlen(unpack) > PKTLINE_MAX - 12)
		return PKTLINE_E_ARG;
	total = 4 + 7 + strlen(unpack) + 1 + 4;
	for (i = 0; i < n; i++) {
		if (!one_line(st[i].ref) || st[i].ref[0] == '\0' ||
		    (st[i].reason != NULL && !one_line(st[i].reason)))
			return PKTLINE_E_ARG;
		if (strlen(st[i].ref) > PKTLINE_MAX / 2 ||
		    (st[i].reason != NULL && strlen(st[i].reason) >
		    PKTLINE_MAX / 2 - 16))
			return PKTLINE_E_ARG;
		total += 4 + 3 + strlen(st[i].ref) + 1;
		if (st[i].reason != NULL)
			total += 1 + strlen(st[i].reason);
	}
	for (pass = 0; pass < 2; pass++) {
		memset(&e, 0, sizeof e);
		if (caps & PKTLINE_CAP_SIDE_BAND_64K)
			e.chunk = PKTLINE_MAX - 5;
		else if (caps & PKTLINE_CAP_SIDE_BAND)
			e.chunk = PKTLINE_SIDEBAND_MAX - 5;
		e.band = e.chunk != 0;
		e.total = total;
		e.out = pass == 1 ? out : NULL;
		report_all(&e, unpack, st, n, message);
		if (out == NULL || outlen < e.len)
			break;
	}
	return (ssize_t)e.len;
}

const char *
pktline_strerror(int code)
{
	switch (code) {
	case 0:
		return "ok";
	case PKTLINE_NEED_MORE:
		return "incomplete pkt-line";
	case PKTLINE_E_LENGTH:
		return "invalid pkt-line length";
	case PKTLINE_E_PROTOCOL:
		return "unexpected pkt-line in a push";
	case PKTLINE_E_COMMAND:
		return "malformed push command";
	case PKTLINE_E_CAPS:
		return "bad push capabilities";
	case PKTLINE_E_CERT:
		return "malformed push certificate";
	case PKTLINE_E_SHALLOW:
		return "malformed shallow line";
	case PKTLINE_E_ARG:
		return "status report line with a line break or too long";
	}
	return "unknown pkt-line error";
}
