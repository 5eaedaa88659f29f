/*
 * pktline.c: packet framing, the receive-pack request table (commands,
 * capabilities, sha256, shallow, push options, push certificates, and the
 * errors), each fed whole, byte by byte and in uneven pieces with the
 * same result; and the status report against hand-computed bytes.
 *
 * Two helper modes serve tests/integration/test_pktline_git.py:
 *	test_pktline --parse < body		prints what the parser saw
 *	test_pktline --report CAPS MESSAGE [REF REASON]...
 *						writes a report to stdout
 *						(REASON "" for ok)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/pktline.h"
#include "tests/unit/test.h"

#define X10(c)	c c c c c c c c c c
#define A	X10("a") X10("a") X10("a") X10("a")
#define B	X10("b") X10("b") X10("b") X10("b")
#define C	X10("c") X10("c") X10("c") X10("c")
#define Z	X10("0") X10("0") X10("0") X10("0")
#define UA	X10("A") X10("A") X10("A") X10("A")
#define A64	A X10("a") X10("a") "aaaa"
#define B64	B X10("b") X10("b") "bbbb"
#define Z64	Z X10("0") X10("0") "0000"

#define CAPS	"report-status side-band-64k agent=git/2.39.5"

/* --- pktline_next -------------------------------------------------------- */

static void
next_table(void)
{
	static const struct {
		const char	*in;
		size_t		 len;
		ssize_t		 rc;
		int		 kind;
		const char	*payload;
	} t[] = {
		{ "0000", 4, 4, PKTLINE_FLUSH, "" },
		{ "0001", 4, 4, PKTLINE_DELIM, "" },
		{ "0002", 4, 4, PKTLINE_END, "" },
		{ "0003", 4, PKTLINE_E_LENGTH, 0, "" },
		{ "0004", 4, 4, PKTLINE_DATA, "" },
		{ "0005a", 5, 5, PKTLINE_DATA, "a" },
		{ "0005ab", 6, 5, PKTLINE_DATA, "a" },
		{ "000Aabcdef", 10, 10, PKTLINE_DATA, "abcdef" },
		{ "000aabcdef", 10, 10, PKTLINE_DATA, "abcdef" },
		{ "000aabcde", 9, PKTLINE_NEED_MORE, 0, "" },
		{ "", 0, PKTLINE_NEED_MORE, 0, "" },
		{ "00", 2, PKTLINE_NEED_MORE, 0, "" },
		{ "0g", 2, PKTLINE_E_LENGTH, 0, "" },
		{ "g", 1, PKTLINE_E_LENGTH, 0, "" },
		{ " 004", 4, PKTLINE_E_LENGTH, 0, "" },
		{ "-004", 4, PKTLINE_E_LENGTH, 0, "" },
		{ "fff0", 4, PKTLINE_NEED_MORE, 0, "" },
		{ "fff1", 4, PKTLINE_E_LENGTH, 0, "" },
		{ "ffff", 4, PKTLINE_E_LENGTH, 0, "" },
	};
	enum pktline_kind	 kind;
	const uint8_t		*pl;
	size_t			 i, plen;
	ssize_t			 rc;

	for (i = 0; i < sizeof t / sizeof t[0]; i++) {
		rc = pktline_next((const uint8_t *)t[i].in, t[i].len, &kind,
		    &pl, &plen);
		CHECK(rc == t[i].rc, "'%s': %zd, want %zd", t[i].in, rc,
		    t[i].rc);
		if (rc > 0) {
			CHECK((int)kind == t[i].kind, "'%s' kind %d", t[i].in,
			    kind);
			CHECK(plen == strlen(t[i].payload) && (plen == 0 ||
			    memcmp(pl, t[i].payload, plen) == 0),
			    "'%s' payload", t[i].in);
		}
	}
}

/* --- the request table --------------------------------------------------- */

/* Packets separated by '|': "F" flush, "D" delim, "E" response-end,
 * "#raw" those bytes as they are; otherwise a payload, '^' for NUL. */
static size_t
build(const char *spec, uint8_t *out, size_t cap)
{
	const char	*p = spec, *bar;
	size_t		 o = 0, n, i;
	char		 hdr[8];

	while (*p != '\0') {
		bar = strchr(p, '|');
		n = bar ? (size_t)(bar - p) : strlen(p);
		if (n == 1 && (*p == 'F' || *p == 'D' || *p == 'E')) {
			memcpy(out + o, *p == 'F' ? "0000" : *p == 'D' ?
			    "0001" : "0002", 4);
			o += 4;
		} else if (n >= 1 && *p == '#') {
			memcpy(out + o, p + 1, n - 1);
			o += n - 1;
		} else {
			snprintf(hdr, sizeof hdr, "%04zx", n + 4);
			memcpy(out + o, hdr, 4);
			for (i = 0; i < n; i++)
				out[o + 4 + i] = p[i] == '^' ? '\0' :
				    (uint8_t)p[i];
			o += 4 + n;
		}
		if (o > cap)
			abort();
		p += n;
		if (*p == '|')
			p++;
	}
	return o;
}

struct result {
	char		log[2048];
	int		rc;
	uint64_t	offset;
	unsigned	caps;
	size_t		ncommands;
	bool		pack;
	bool		done;
};

static void
logf_event(struct result *res, const struct pktline_event *ev)
{
	size_t	o = strlen(res->log);
	char	*l = res->log + o;
	size_t	 left = sizeof res->log - o;

	switch (ev->type) {
	case PKTLINE_EV_NONE:
		return;
	case PKTLINE_EV_SHALLOW:
		snprintf(l, left, "S %.4s|", ev->old_oid);
		return;
	case PKTLINE_EV_COMMAND:
		snprintf(l, left, "C %.4s %.4s %.*s%s%s%s|", ev->old_oid,
		    ev->new_oid, (int)ev->textlen, ev->text,
		    ev->is_create ? " +create" : "",
		    ev->is_delete ? " +delete" : "",
		    ev->from_cert ? " +cert" : "");
		return;
	case PKTLINE_EV_OPTION:
		snprintf(l, left, "O %.*s|", (int)ev->textlen, ev->text);
		return;
	case PKTLINE_EV_DONE:
		snprintf(l, left, "D|");
		return;
	}
}

/* Feed buf in pieces: step 0 whole, 1 byte by byte, else pieces cycling
 * through 1..step bytes. */
static void
feed(const uint8_t *buf, size_t len, size_t step, struct result *res)
{
	struct pktline		*p = pktline_new();
	struct pktline_event	 ev;
	uint8_t			*copy;
	size_t			 off = 0, piece = 1, n, k;
	ssize_t			 r = 1;

	memset(res, 0, sizeof *res);
	while (off < len && r > 0) {
		n = step == 0 ? len - off : piece;
		if (n > len - off)
			n = len - off;
		/* each piece in its own heap copy: reads past it show */
		copy = malloc(n);
		memcpy(copy, buf + off, n);
		for (k = 0; k < n; k += (size_t)r) {
			if ((r = pktline_step(p, copy + k, n - k, &ev)) <= 0)
				break;
			logf_event(res, &ev);
		}
		if (r < 0)
			res->rc = (int)r;
		off += k;
		free(copy);
		piece = step <= 1 ? 1 : piece % step + 1;
	}
	/* a finished or failed parser takes nothing more */
	r = pktline_step(p, (const uint8_t *)"0000", 4, &ev);
	if (res->rc != 0)
		CHECK(r == res->rc, "sticky error %zd", r);
	else if (pktline_done(p))
		CHECK(r == 0 && ev.type == PKTLINE_EV_NONE, "after done");
	res->offset = pktline_offset(p);
	res->caps = pktline_caps(p);
	res->ncommands = pktline_commands(p);
	res->pack = pktline_pack_expected(p);
	res->done = pktline_done(p);
	pktline_free(p);
}

static const struct {
	const char	*name;
	const char	*in;
	int		 rc;
	const char	*log;
	int		 offset;	/* -1: the whole input */
	unsigned	 caps;		/* must be set */
	bool		 pack;
} reqs[] = {
	{ "one update", A " " B " refs/heads/main^" CAPS "|F|#PACK....",
	    0, "C aaaa bbbb refs/heads/main|D|", -8,
	    PKTLINE_CAP_REPORT_STATUS | PKTLINE_CAP_SIDE_BAND_64K, true },
	{ "create and delete", Z " " A " refs/heads/new^report-status|" A " "
	    Z " refs/heads/old|F", 0,
	    "C 0000 aaaa refs/heads/new +create|C aaaa 0000 refs/heads/old "
	    "+delete|D|", -1, PKTLINE_CAP_REPORT_STATUS, true },
	{ "delete only", A " " Z " refs/heads/x^report-status atomic|F", 0,
	    "C aaaa 0000 refs/heads/x +delete|D|", -1, PKTLINE_CAP_ATOMIC,
	    false },
	{ "trailing LF", A " " B " refs/heads/a^quiet\n|" B " " A
	    " refs/heads/b\n|F", 0,
	    "C aaaa bbbb refs/heads/a|C bbbb aaaa refs/heads/b|D|", -1,
	    PKTLINE_CAP_QUIET, true },
	{ "no caps", A " " B " refs/heads/a|F", 0,
	    "C aaaa bbbb refs/heads/a|D|", -1, 0, true },
	{ "upper-case oids", UA " " B " refs/heads/a|F", 0,
	    "C aaaa bbbb refs/heads/a|D|", -1, 0, true },
	{ "utf-8 ref", A " " B " refs/heads/caf\xc3\xa9|F", 0,
	    "C aaaa bbbb refs/heads/caf\xc3\xa9|D|", -1, 0, true },
	{ "push options", A " " B " refs/heads/main^report-status "
	    "push-options|F|ci.skip|topic=x y\n||F|#PACK", 0,
	    "C aaaa bbbb refs/heads/main|O ci.skip|O topic=x y|O |D|", -4,
	    PKTLINE_CAP_PUSH_OPTIONS, true },
	{ "sha256", A64 " " B64 " refs/heads/main^object-format=sha256 "
	    "report-status-v2|F", 0, "C aaaa bbbb refs/heads/main|D|", -1,
	    PKTLINE_CAP_SHA256 | PKTLINE_CAP_REPORT_STATUS_V2, true },
	{ "sha1 named", A " " B " r^object-format=sha1|F", 0,
	    "C aaaa bbbb r|D|", -1, 0, true },
	{ "sha256 create", Z64 " " A64 " refs/heads/n^object-format=sha256|"
	    A64 " " Z64 " refs/heads/o|F", 0,
	    "C 0000 aaaa refs/heads/n +create|C aaaa 0000 refs/heads/o "
	    "+delete|D|", -1, PKTLINE_CAP_SHA256, true },
	{ "shallow", "shallow " C "|shallow " A "\n|" A " " B " r^ofs-delta|F",
	    0, "S cccc|S aaaa|C aaaa bbbb r|D|", -1, PKTLINE_CAP_OFS_DELTA,
	    true },
	{ "shallow only", "shallow " C "|F", 0, "S cccc|D|", -1, 0, false },
	{ "flush only", "F|#PACK", 0, "D|", 4, 0, false },
	{ "push-cert", "push-cert^" CAPS "|certificate version 0.1\n|"
	    "pusher A U Thor <a@example.com> 1700000000 +0000\n|"
	    "pushee https://example.com/r.git\n|nonce 1700000000-abc\n|\n|"
	    A " " B " refs/heads/main\n|" Z " " A " refs/tags/v1\n|"
	    "-----BEGIN PGP SIGNATURE-----\n|\n|iQEzBAABCAAdFiEE\n|"
	    A " " B " refs/heads/sneaky\n|-----END PGP SIGNATURE-----\n|"
	    "push-cert-end\n|F|#PACK", 0,
	    "C aaaa bbbb refs/heads/main +cert|C 0000 aaaa refs/tags/v1 "
	    "+create +cert|D|", -4,
	    PKTLINE_CAP_PUSH_CERT | PKTLINE_CAP_SIDE_BAND_64K, true },
	{ "push-cert ssh, options", "push-cert^report-status push-options|"
	    "certificate version 0.1\n|pusher k 1 +0000\n|nonce n\n|"
	    "push-option o1\n|\n|" A " " B " refs/heads/main\n|"
	    "-----BEGIN SSH SIGNATURE-----\n|x\n|push-cert-end\n|F|o1|F", 0,
	    "C aaaa bbbb refs/heads/main +cert|O o1|D|", -1,
	    PKTLINE_CAP_PUSH_CERT | PKTLINE_CAP_PUSH_OPTIONS, true },
	{ "push-cert unsigned", "push-cert|certificate version 0.1\n|\n|"
	    A " " B " r\n|push-cert-end\n|F", 0, "C aaaa bbbb r +cert|D|", -1,
	    PKTLINE_CAP_PUSH_CERT, true },
	/* framing */
	{ "length 0003", "#0003", PKTLINE_E_LENGTH, "", 0, 0, false },
	{ "length not hex", "#00g5a", PKTLINE_E_LENGTH, "", 0, 0, false },
	{ "length too big", "#fff1", PKTLINE_E_LENGTH, "", 0, 0, false },
	{ "delim", "D", PKTLINE_E_PROTOCOL, "", 0, 0, false },
	{ "response-end", A " " B " r|E", PKTLINE_E_PROTOCOL,
	    "C aaaa bbbb r|", 0, 0, false },
	{ "ERR", "ERR go away", PKTLINE_E_PROTOCOL, "", 0, 0, false },
	{ "ERR option", A " " B " r^push-options|F|ERR x|F",
	    PKTLINE_E_PROTOCOL, "C aaaa bbbb r|", 0, 0, false },
	/* commands */
	{ "empty packet", "#0004", PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "no ref", A " " B, PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "empty ref", A " " B " ", PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "double space", A "  " B " r", PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "space in ref", A " " B " refs/heads/a b", PKTLINE_E_COMMAND, "",
	    0, 0, false },
	{ "tab in ref", A " " B " refs/heads/a\tb", PKTLINE_E_COMMAND, "", 0,
	    0, false },
	{ "LF in ref", A " " B " refs/heads/a\n^report-status",
	    PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "not hex", "g" A " " B " r", PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "short oid", "aaa " B " r", PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "sha256 oids, sha1 caps", A64 " " B64 " r", PKTLINE_E_COMMAND, "", 0,
	    0, false },
	{ "sha1 oids, sha256 caps", A " " B " r^object-format=sha256",
	    PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "second line caps", A " " B " r|" A " " B " s^atomic",
	    PKTLINE_E_CAPS, "C aaaa bbbb r|", 0, 0, false },
	{ "unknown format", A " " B " r^object-format=md5", PKTLINE_E_CAPS,
	    "", 0, 0, false },
	{ "two formats", A " " B " r^object-format=sha1 object-format=sha1",
	    PKTLINE_E_CAPS, "", 0, 0, false },
	{ "NUL in caps", A " " B " r^atomic^quiet", PKTLINE_E_CAPS, "", 0, 0,
	    false },
	{ "shallow of another length", "shallow " C "|" A64 " " B64
	    " r^object-format=sha256", PKTLINE_E_CAPS, "S cccc|", 0, 0,
	    false },
	{ "shallow bad", "shallow xyz", PKTLINE_E_SHALLOW, "", 0, 0, false },
	{ "shallow after command", A " " B " r|shallow " C,
	    PKTLINE_E_COMMAND, "C aaaa bbbb r|", 0, 0, false },
	{ "NUL in option", A " " B " r^push-options|F|a^b",
	    PKTLINE_E_PROTOCOL, "C aaaa bbbb r|", 0, 0, false },
	/* certificates */
	{ "cert no version", "push-cert|pusher x\n|\n|" A " " B " r\n|"
	    "push-cert-end\n|F", PKTLINE_E_CERT, "", 0, 0, false },
	{ "cert blank first", "push-cert|\n|" A " " B " r\n|push-cert-end\n|F",
	    PKTLINE_E_CERT, "", 0, 0, false },
	{ "cert no blank line", "push-cert|certificate version 0.1\n|"
	    "push-cert-end\n|F", PKTLINE_E_CERT, "", 0, 0, false },
	{ "cert line without LF", "push-cert|certificate version 0.1\n|"
	    "nonce x|\n", PKTLINE_E_CERT, "", 0, 0, false },
	{ "cert two lines in one", "push-cert|certificate version 0.1\n"
	    "\n|", PKTLINE_E_CERT, "", 0, 0, false },
	{ "cert flush inside", "push-cert|certificate version 0.1\n|\n|"
	    A " " B " r\n|F", PKTLINE_E_CERT, "C aaaa bbbb r +cert|", 0, 0,
	    false },
	{ "cert marker in header", "push-cert|certificate version 0.1\n|"
	    "-----BEGIN PGP SIGNATURE-----\n|\n", PKTLINE_E_CERT, "", 0, 0,
	    false },
	{ "cert two markers", "push-cert|certificate version 0.1\n|\n|"
	    A " " B " r\n|-----BEGIN PGP SIGNATURE-----\n|"
	    "-----BEGIN SSH SIGNATURE-----\n", PKTLINE_E_CERT,
	    "C aaaa bbbb r +cert|", 0, 0, false },
	{ "cert no commands", "push-cert|certificate version 0.1\n|\n|"
	    "push-cert-end\n|F", PKTLINE_E_CERT, "", 0, 0, false },
	{ "cert bad command", "push-cert|certificate version 0.1\n|\n|"
	    "hello\n", PKTLINE_E_COMMAND, "", 0, 0, false },
	{ "command after cert", "push-cert|certificate version 0.1\n|\n|"
	    A " " B " r\n|push-cert-end\n|" A " " B " s|F",
	    PKTLINE_E_PROTOCOL, "C aaaa bbbb r +cert|", 0, 0, false },
	{ "NUL in cert line", "push-cert|certificate version 0.1\n|"
	    "nonce a^b\n", PKTLINE_E_CERT, "", 0, 0, false },
};

static void
request_table(void)
{
	static uint8_t		buf[8192];
	struct result		res, other;
	size_t			i, len, steps[] = { 1, 2, 3, 7, 64 };
	size_t			s;

	for (i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
		len = build(reqs[i].in, buf, sizeof buf);
		feed(buf, len, 0, &res);
		CHECK(res.rc == reqs[i].rc, "%s: rc %d (%s), want %d",
		    reqs[i].name, res.rc, pktline_strerror(res.rc),
		    reqs[i].rc);
		CHECK(strcmp(res.log, reqs[i].log) == 0,
		    "%s: log '%s', want '%s'", reqs[i].name, res.log,
		    reqs[i].log);
		if (reqs[i].rc == 0) {
			uint64_t want = reqs[i].offset == -1 ? len :
			    reqs[i].offset < 0 ? len - (size_t)-reqs[i].offset :
			    (size_t)reqs[i].offset;
			CHECK(res.done, "%s: not done", reqs[i].name);
			CHECK(res.offset == want, "%s: offset %llu, want %llu",
			    reqs[i].name, (unsigned long long)res.offset,
			    (unsigned long long)want);
			CHECK((res.caps & reqs[i].caps) == reqs[i].caps,
			    "%s: caps %#x", reqs[i].name, res.caps);
			CHECK(res.pack == reqs[i].pack, "%s: pack %d",
			    reqs[i].name, res.pack);
		} else
			CHECK(!res.done, "%s: done despite error",
			    reqs[i].name);
		for (s = 0; s < sizeof steps / sizeof steps[0]; s++) {
			feed(buf, len, steps[s], &other);
			CHECK(other.rc == res.rc && strcmp(other.log,
			    res.log) == 0 && other.done == res.done &&
			    (res.rc != 0 || other.offset == res.offset),
			    "%s: pieces of %zu: rc %d log '%s' offset %llu",
			    reqs[i].name, steps[s], other.rc, other.log,
			    (unsigned long long)other.offset);
		}
	}
}

static void
large_packets(void)
{
	static uint8_t		buf[3 * PKTLINE_MAX];
	struct result		res;
	char			*spec;
	size_t			len, reflen = PKTLINE_MAX - 4 - 82;

	/* a ref filling a packet to PKTLINE_MAX exactly */
	spec = malloc(reflen + 200);
	snprintf(spec, 100, "%s %s ", A, B);
	memset(spec + 82, 'r', reflen);
	memcpy(spec + 82 + reflen, "|F", 3);
	len = build(spec, buf, sizeof buf);
	CHECK(len == PKTLINE_MAX + 4, "built %zu", len);
	feed(buf, len, 0, &res);
	CHECK(res.rc == 0 && res.done, "max packet: %d", res.rc);
	feed(buf, len, 4093, &res);
	CHECK(res.rc == 0 && res.done, "max packet in pieces: %d", res.rc);
	/* one byte more */
	memset(spec + 82, 'r', reflen + 1);
	memcpy(spec + 82 + reflen + 1, "|F", 3);
	len = build(spec, buf, sizeof buf);
	feed(buf, len, 0, &res);
	CHECK(res.rc == PKTLINE_E_LENGTH, "over max: %d", res.rc);
	feed(buf, len, 1, &res);
	CHECK(res.rc == PKTLINE_E_LENGTH, "over max bytewise: %d", res.rc);
	free(spec);
}

/* --- the status report --------------------------------------------------- */

#define REASON	"egress-run: force-push blocked"
#define NG	"0036ng refs/heads/main " REASON "\n"
#define OKX	"0014ok refs/heads/x\n"

static void
check_report(unsigned caps, const char *unpack,
    const struct pktline_status *st, size_t n, const char *msg,
    const char *want, size_t wantlen, const char *what)
{
	uint8_t	out[4096];
	ssize_t	r, r0;

	r0 = pktline_report(NULL, 0, caps, unpack, st, n, msg);
	memset(out, 'X', sizeof out);
	r = pktline_report(out, sizeof out, caps, unpack, st, n, msg);
	CHECK(r == r0, "%s: sized %zd, wrote %zd", what, r0, r);
	CHECK(r == (ssize_t)wantlen && memcmp(out, want, wantlen) == 0,
	    "%s: got %zd bytes '%.*s'", what, r, (int)(r > 0 ? r : 0), out);
	CHECK(out[wantlen] == 'X', "%s: wrote past the end", what);
	/* too small: nothing written, the size returned */
	memset(out, 'X', sizeof out);
	r = pktline_report(out, wantlen - 1, caps, unpack, st, n, msg);
	CHECK(r == (ssize_t)wantlen && out[0] == 'X', "%s: small buffer",
	    what);
}

static void
report_bytes(void)
{
	static const struct pktline_status ng[] = {
		{ "refs/heads/main", REASON },
	};
	static const struct pktline_status two[] = {
		{ "refs/heads/main", REASON }, { "refs/heads/x", NULL },
	};
	static const char plain[] = "000eunpack ok\n" NG "0000";
	static const char plain2[] = "000eunpack ok\n" NG OKX "0000";
	/* 14 + 54 + 4 = 72 report bytes in one channel-1 packet of 77 */
	static const char band[] = "004d\001000eunpack ok\n" NG "0000" "0000";
	/* "egress-run: push refused" + LF: 25 bytes, packet of 30 */
	static const char band_msg[] = "001e\002egress-run: push refused\n"
	    "004d\001000eunpack ok\n" NG "0000" "0000";
	static const char unpack_err[] = "001dunpack index-pack failed\n"
	    OKX "0000";

	check_report(0, NULL, ng, 1, NULL, plain, sizeof plain - 1, "plain");
	check_report(0, "ok", two, 2, "ignored without side-band", plain2,
	    sizeof plain2 - 1, "plain two");
	check_report(PKTLINE_CAP_SIDE_BAND_64K, NULL, ng, 1, NULL, band,
	    sizeof band - 1, "side-band-64k");
	check_report(PKTLINE_CAP_SIDE_BAND_64K | PKTLINE_CAP_SIDE_BAND, NULL,
	    ng, 1, "egress-run: push refused", band_msg, sizeof band_msg - 1,
	    "side-band-64k message");
	check_report(PKTLINE_CAP_SIDE_BAND_64K, NULL, ng, 1,
	    "egress-run: push refused\n", band_msg, sizeof band_msg - 1,
	    "message with its LF");
	check_report(0, "index-pack failed", &two[1], 1, NULL, unpack_err,
	    sizeof unpack_err - 1, "unpack error");
}

/* Channel 1 of a side-band stream, concatenated; checks packet sizes. */
static size_t
demux(const uint8_t *s, size_t len, size_t max, uint8_t *out, size_t *n2)
{
	enum pktline_kind	 kind;
	const uint8_t		*pl;
	size_t			 plen, o = 0;
	ssize_t			 r;

	*n2 = 0;
	while (len > 0) {
		r = pktline_next(s, len, &kind, &pl, &plen);
		CHECK(r > 0, "demux: %zd", r);
		if (r <= 0)
			return 0;
		CHECK((size_t)r <= max, "packet of %zd > %zu", r, max);
		if (kind == PKTLINE_FLUSH) {
			CHECK((size_t)r == len, "bytes after the flush");
			break;
		}
		CHECK(plen >= 2, "empty band packet");
		if (pl[0] == 1) {
			memcpy(out + o, pl + 1, plen - 1);
			o += plen - 1;
		} else {
			CHECK(pl[0] == 2, "band %d", pl[0]);
			*n2 += plen - 1;
		}
		s += r;
		len -= (size_t)r;
	}
	return o;
}

static void
report_split(void)
{
	struct pktline_status	 st[40];
	static uint8_t		 plain[16384], band[16384], inner[16384];
	char			 refs[40][64], msg[3000];
	size_t			 i, n, n2;
	ssize_t			 lp, lb;

	for (i = 0; i < 40; i++) {
		snprintf(refs[i], sizeof refs[i], "refs/heads/branch-%02zu", i);
		st[i].ref = refs[i];
		st[i].reason = i % 3 ? REASON : NULL;
	}
	memset(msg, 'm', sizeof msg - 1);
	msg[sizeof msg - 1] = '\0';
	lp = pktline_report(plain, sizeof plain, 0, NULL, st, 40, NULL);
	CHECK(lp > 1000, "plain %zd", lp);
	lb = pktline_report(band, sizeof band, PKTLINE_CAP_SIDE_BAND, NULL,
	    st, 40, msg);
	CHECK(lb > lp, "band %zd", lb);
	n = demux(band, (size_t)lb, PKTLINE_SIDEBAND_MAX, inner, &n2);
	CHECK(n == (size_t)lp && memcmp(inner, plain, n) == 0,
	    "side-band 1000: channel 1 is the plain report");
	CHECK(n2 == sizeof msg, "channel 2: %zu", n2);
	lb = pktline_report(band, sizeof band, PKTLINE_CAP_SIDE_BAND_64K, NULL,
	    st, 40, NULL);
	n = demux(band, (size_t)lb, PKTLINE_MAX, inner, &n2);
	CHECK(n == (size_t)lp && memcmp(inner, plain, n) == 0 &&
	    lb == lp + 5 + 4, "side-band-64k: one packet");
}

static void
report_errors(void)
{
	static const struct {
		const char	*unpack;
		const char	*ref;
		const char	*reason;
	} bad[] = {
		{ NULL, "refs/heads/a\n", NULL },
		{ NULL, "refs/heads/a", "two\nlines" },
		{ NULL, "refs/heads/a", "cr\r" },
		{ NULL, "", NULL },
		{ "bad\n", "refs/heads/a", NULL },
	};
	struct pktline_status	st;
	char			*big;
	size_t			 i;

	for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		st.ref = bad[i].ref;
		st.reason = bad[i].reason;
		CHECK(pktline_report(NULL, 0, 0, bad[i].unpack, &st, 1, NULL) ==
		    PKTLINE_E_ARG, "bad %zu", i);
	}
	big = malloc(PKTLINE_MAX);
	memset(big, 'r', PKTLINE_MAX - 1);
	big[PKTLINE_MAX - 1] = '\0';
	st.ref = big;
	st.reason = NULL;
	CHECK(pktline_report(NULL, 0, 0, NULL, &st, 1, NULL) == PKTLINE_E_ARG,
	    "ref too long");
	free(big);
	CHECK(strstr(pktline_strerror(PKTLINE_E_CERT), "certificate") != NULL,
	    "strerror");
}

/* --- helper modes -------------------------------------------------------- */

static int
mode_parse(void)
{
	static uint8_t		 buf[1 << 20];
	struct pktline		*p = pktline_new();
	struct pktline_event	 ev;
	size_t			 len, off = 0;
	ssize_t			 r = 0;

	len = fread(buf, 1, sizeof buf, stdin);
	while (off < len && !pktline_done(p)) {
		/* pieces of 5 bytes: the streaming path on real git bytes */
		size_t n = len - off < 5 ? len - off : 5;
		if ((r = pktline_step(p, buf + off, n, &ev)) < 0)
			break;
		off += (size_t)r;
		if (ev.type == PKTLINE_EV_COMMAND)
			printf("command %s %s %.*s%s\n", ev.old_oid,
			    ev.new_oid, (int)ev.textlen, ev.text,
			    ev.from_cert ? " cert" : "");
		else if (ev.type == PKTLINE_EV_OPTION)
			printf("option %.*s\n", (int)ev.textlen, ev.text);
		else if (ev.type == PKTLINE_EV_SHALLOW)
			printf("shallow %s\n", ev.old_oid);
	}
	printf("result %s done=%d caps=%#x oidlen=%zu pack=%d offset=%llu "
	    "rest=%.4s\n", r < 0 ? pktline_strerror((int)r) : "ok",
	    pktline_done(p), pktline_caps(p), pktline_oid_len(p),
	    pktline_pack_expected(p), (unsigned long long)pktline_offset(p),
	    off < len ? (const char *)buf + off : "");
	pktline_free(p);
	return r < 0;
}

static int
mode_report(int argc, char **argv)
{
	struct pktline_status	 st[64];
	static uint8_t		 out[1 << 20];
	size_t			 n = 0;
	ssize_t			 r;
	int			 i;

	if (argc < 4)
		return 2;
	for (i = 4; i + 1 < argc && n < 64; i += 2, n++) {
		st[n].ref = argv[i];
		st[n].reason = argv[i + 1][0] ? argv[i + 1] : NULL;
	}
	r = pktline_report(out, sizeof out, (unsigned)strtoul(argv[2], NULL,
	    0), NULL, st, n, argv[3][0] ? argv[3] : NULL);
	if (r < 0 || (size_t)r > sizeof out)
		return 1;
	fwrite(out, 1, (size_t)r, stdout);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "--parse") == 0)
		return mode_parse();
	if (argc > 1 && strcmp(argv[1], "--report") == 0)
		return mode_report(argc, argv);
	RUN(next_table);
	RUN(request_table);
	RUN(large_packets);
	RUN(report_bytes);
	RUN(report_split);
	RUN(report_errors);
	return test_done("pktline");
}
