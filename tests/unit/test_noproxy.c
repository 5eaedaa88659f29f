/*
 * NO_PROXY matching: curl's own table (tests/unit/unit1614.c, as current
 * curl behaves), then hostile entries — bad CIDR lengths, trailing dots,
 * empty entries, over-long input, ports, wildcards — and the counts of
 * skipped entries a warning would report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/noproxy.h"
#include "tests/unit/test.h"

struct mcase {
	const char	*host;
	uint16_t	 port;
	const char	*list;
	bool		 match;
};

static void
run_match(const struct mcase *t, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct noproxy	*np;
		bool		 m;

		np = noproxy_parse(t[i].list, strlen(t[i].list));
		m = noproxy_match(np, t[i].host, strlen(t[i].host), t[i].port);
		CHECK(m == t[i].match, "host '%s' port %u in '%s' should %s"
		    "match", t[i].host, t[i].port, t[i].list,
		    t[i].match ? "" : "not ");
		noproxy_free(np);
	}
}

#define NITEMS(t)	(sizeof(t) / sizeof((t)[0]))

/* The cases of curl's unit1614, with curl's current answers. */
static void
curl_unit1614_cases_agree(void)
{
	static const struct mcase t[] = {
		{ "www.example.com", 0, "localhost,.example.com,.example.de",
		    true },
		{ "www.example.com.", 0, "localhost,.example.com,.example.de",
		    true },
		{ "example.com", 0, "localhost,.example.com,.example.de",
		    true },
		{ "example.com.", 0, "localhost,.example.com,.example.de",
		    true },
		{ "www.example.com", 0, "localhost,.example.com.,.example.de",
		    true },
		{ "www.example.com", 0,
		    "localhost,www.example.com.,.example.de", true },
		{ "example.com", 0, "localhost,example.com,.example.de", true },
		{ "example.com.", 0, "localhost,example.com,.example.de",
		    true },
		{ "www.example.com", 0, "localhost,example.com,.example.de",
		    true },
		{ "127.0.0.1", 0, "127.0.0.1,localhost", true },
		{ "127.0.0.1", 0, "127.0.0.1,localhost,", true },
		{ "127.0.0.1", 0, "127.0.0.1/8,localhost,", true },
		{ "127.0.0.1", 0, "127.0.0.1/28,localhost,", true },
		{ "127.0.0.1", 0, "127.0.0.1/31,localhost,", true },
		{ "127.0.0.1", 0, "localhost,127.0.0.1", true },
		{ "127.0.0.1", 0, "localhost,127.0.0.1.127.0.0.1.127.0.0.1."
		    "127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.1."
		    "127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.", false },
		{ "127.0.0.1", 0, "localhost,127.0.0.1.127.0.0.1.127.0.0.1."
		    "127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.1."
		    "127.0.0.1.127.0.0.1.127.0.0.1.127.0.0.1.127.0.0", false },
		{ "localhost", 0, "localhost,127.0.0.1", true },
		{ "localhost", 0, "127.0.0.1,localhost", true },
		{ "foobar", 0, "barfoo", false },
		{ "foobar", 0, "foobar", true },
		{ "192.168.0.1", 0, "foobar", false },
		{ "192.168.0.1", 0, "192.168.0.0/16", true },
		{ "192.168.0.1", 0, "192.168.0.0/24", true },
		{ "192.168.0.1", 0, "192.168.0.0/32", false },
		{ "192.168.0.1", 0, "192.168.0.0", false },
		{ "192.168.1.1", 0, "192.168.0.0/24", false },
		{ "192.168.1.1", 0, "foo, bar, 192.168.0.0/24", false },
		{ "192.168.1.1", 0, "foo, bar, 192.168.0.0/16", true },
		{ "[::1]", 0, "foo, bar, 192.168.0.0/16", false },
		{ "[::1]", 0, "foo, bar, ::1/64", true },
		{ "bar", 0, "foo, bar, ::1/64", true },
		{ "BAr", 0, "foo, bar, ::1/64", true },
		{ "BAr", 0, "foo,,,,,              bar, ::1/64", true },
		{ "www.example.com", 0, "foo, .example.com", true },
		{ "www.example.com", 0, "www2.example.com, .example.net",
		    false },
		{ "example.com", 0, ".example.com, .example.net", true },
		{ "nonexample.com", 0, ".example.com, .example.net", false },
	};

	run_match(t, NITEMS(t));
}

static void
names_match_domain_and_subdomains_only(void)
{
	static const struct mcase t[] = {
		{ "example.com", 0, "example.com", true },
		{ "a.b.example.com", 0, "example.com", true },
		{ "notexample.com", 0, "example.com", false },
		{ "example.com.evil.net", 0, "example.com", false },
		{ "example.co", 0, "example.com", false },
		{ "com", 0, "example.com", false },
		{ "EXAMPLE.COM", 0, "example.com", true },
		{ "www.example.com", 0, "EXAMPLE.com", true },
		{ "www.example.com", 0, "*.example.com", true },
		{ "example.com", 0, "*.example.com", true },
		{ "notexample.com", 0, "*.example.com", false },
		{ "www.example.com", 0, "*example.com", false },
		{ "www.example.com", 0, "www.*.com", false },
		{ "example.com", 0, "example.com.", true },
		{ "example.com", 0, ".example.com.", true },
		{ "example.com.", 0, "example.com.", true },
		{ "example.com..", 0, "example.com", false },
		{ "example.com", 0, "example.com..", false },
		{ "example.com", 0, "..example.com", false },
		{ "example.com", 0, ".", false },
		{ "example.com", 0, "..", false },
		{ "example.com", 0, "com", true },
		{ "localhost", 0, "localhost", true },
		{ "localhost.", 0, "localhost", true },
		{ "my_host.corp", 0, "my_host.corp", true },
		{ "x.example.com", 0, "\texample.com\n", true },
		{ "x.example.com", 0, "a b\texample.com", true },
		{ "example.com", 0, "", false },
		{ "", 0, "example.com", false },
		{ "", 0, "*", false },
		{ ".", 0, "example.com", false },
		/* names never match addresses, nothing is resolved */
		{ "localhost", 0, "127.0.0.1", false },
		{ "127.0.0.1", 0, "localhost", false },
		{ "1.2.3.4", 0, "3.4", false },
		{ "1.2.3.4", 0, "2.3.4", false },
		{ "example", 0, "www.example.com", false },
	};

	run_match(t, NITEMS(t));
}

static void
star_alone_matches_everything(void)
{
	static const struct mcase t[] = {
		{ "example.com", 0, "*", true },
		{ "10.1.2.3", 443, "*", true },
		{ "[::1]", 0, "*", true },
		{ "example.com", 0, " * ", true },
		{ "example.com", 0, "*,", true },
		/* as in curl, "*" among other entries matches nothing */
		{ "example.com", 0, "localhost,*", false },
		{ "example.com", 0, "*,*", false },
		{ "localhost", 0, "localhost,*", true },
		{ "example.com", 0, "**", false },
		{ "example.com", 0, "*.", false },
		{ "example.com", 0, "*.*", false },
	};

	run_match(t, NITEMS(t));
}

static void
addresses_and_cidr_match_ip_literals(void)
{
	static const struct mcase t[] = {
		{ "10.1.2.3", 0, "10.0.0.0/8", true },
		{ "11.1.2.3", 0, "10.0.0.0/8", false },
		{ "10.1.2.3", 0, "10.1.2.3", true },
		{ "10.1.2.3", 0, "10.1.2.3/32", true },
		{ "10.1.2.4", 0, "10.1.2.3/32", false },
		{ "10.1.2.3", 0, "10.1.2.0/31", false },
		{ "10.1.2.1", 0, "10.1.2.0/31", true },
		{ "10.1.2.3", 0, "0.0.0.0/0", true },
		{ "[::1]", 0, "0.0.0.0/0", false },
		{ "172.16.5.4", 0, "172.16.0.0/12", true },
		{ "172.32.0.1", 0, "172.16.0.0/12", false },
		{ "10.1.2.3", 0, "10.0.0.0/33", false },
		{ "10.1.2.3", 0, "10.0.0.0/16a", false },
		{ "10.1.2.3", 0, "10.0.0.0/", false },
		{ "10.1.2.3", 0, "10.0.0.0/-1", false },
		{ "10.1.2.3", 0, "10.0.0.0/+8", false },
		{ "10.1.2.3", 0, "10.0.0.0/ 8", false },
		{ "10.1.2.3", 0, "10.0.0.0/8/8", false },
		{ "10.1.2.3", 0, "10.0.0.0/000008", false },
		{ "10.1.2.3", 0, "10/8", false },
		{ "10.1.2.3", 0, "10.0.0.0.0/8", false },
		{ "10.1.2.3", 0, "10.1.2.3.", true },
		{ "10.1.2.3.", 0, "10.1.2.3", true },
		/* hosts are canonical text: other IPv4 spellings are names */
		{ "010.001.002.003", 0, "10.1.2.3", false },
		{ "::1", 0, "::1", true },
		{ "[::1]", 0, "::1", true },
		{ "::1", 0, "[::1]", true },
		{ "[::1]", 0, "0:0::1", true },
		{ "[0:0:0:0:0:0:0:1]", 0, "::1/128", true },
		{ "[::2]", 0, "::1/128", false },
		{ "[::2]", 0, "::1/127", false },
		{ "[::1]", 0, "::1/129", false },
		{ "[fd12:3456::1]", 0, "fd00::/8", true },
		{ "[fd12:3456::1]", 0, "[fd00::]/8", true },
		{ "[fe80::1]", 0, "fd00::/8", false },
		{ "[fe80::1]", 0, "fe80::/10", true },
		{ "[febf::1]", 0, "fe80::/10", true },
		{ "[fec0::1]", 0, "fe80::/10", false },
		{ "[2001:db8::1]", 0, "::/0", true },
		{ "10.0.0.1", 0, "::/0", false },
		{ "[::ffff:10.0.0.1]", 0, "10.0.0.0/8", false },
		{ "[fe80::1%eth0]", 0, "fe80::/10", false },
		{ "[::1", 0, "::1", false },
		{ "::1]", 0, "::1", false },
		{ "[]", 0, "::1", false },
		{ "fe80::1", 0, "fe80::1%eth0", false },
	};

	run_match(t, NITEMS(t));
}

static void
entries_with_a_port_match_only_that_port(void)
{
	static const struct mcase t[] = {
		{ "example.com", 8080, "example.com:8080", true },
		{ "www.example.com", 8080, ".example.com:8080", true },
		{ "example.com", 443, "example.com:8080", false },
		{ "example.com", 0, "example.com:8080", false },
		{ "example.com", 443, "example.com", true },
		{ "10.0.0.1", 8080, "10.0.0.1:8080", true },
		{ "10.0.0.1", 80, "10.0.0.1:8080", false },
		{ "[::1]", 8080, "[::1]:8080", true },
		{ "[::1]", 80, "[::1]:8080", false },
		{ "example.com", 8080, "example.com:", false },
		{ "example.com", 0, "example.com:0", false },
		{ "example.com", 65535, "example.com:65535", true },
		{ "example.com", 1, "example.com:65536", false },
		{ "example.com", 80, "example.com:80:80", false },
		{ "example.com", 80, "example.com:+80", false },
		{ "example.com", 80, ":80", false },
		{ "[::1]", 80, "[::1]:", false },
		{ "[::1]", 80, "[::1]x", false },
	};

	run_match(t, NITEMS(t));
}

static void
hostile_and_long_input_is_survived(void)
{
	char		*list, *host;
	size_t		 n = 1 << 20;
	struct noproxy	*np;

	/* A megabyte of commas and dots. */
	list = malloc(n);
	CHECK(list != NULL, "malloc");
	for (size_t i = 0; i < n; i++)
		list[i] = (i % 3 == 0) ? ',' : '.';
	np = noproxy_parse(list, n);
	CHECK(noproxy_count(np) == 0, "no entries from dots");
	CHECK(!noproxy_match(np, "example.com", 11, 0), "dots match nothing");
	noproxy_free(np);

	/* One 1 MB entry: skipped, not truncated into a match. */
	memset(list, 'a', n);
	memcpy(list + n - 12, ".example.com", 12);
	np = noproxy_parse(list, n);
	CHECK(noproxy_count(np) == 0 && noproxy_skipped(np) == 1,
	    "long entry skipped");
	CHECK(!noproxy_match(np, "example.com", 11, 0), "long entry");
	noproxy_free(np);

	/* A label of 64 bytes is no name; 63 is. */
	memset(list, 'a', 64);
	np = noproxy_parse(list, 64);
	CHECK(noproxy_skipped(np) == 1, "64-byte label");
	noproxy_free(np);
	np = noproxy_parse(list, 63);
	CHECK(noproxy_count(np) == 1 && noproxy_match(np, list, 63, 0),
	    "63-byte label");
	noproxy_free(np);

	/* Very long hosts are compared, not copied. */
	host = malloc(n);
	CHECK(host != NULL, "malloc");
	memset(host, 'b', n);
	memcpy(host + n - 12, ".example.com", 12);
	np = noproxy_parse("example.com", 11);
	CHECK(noproxy_match(np, host, n, 0), "long host under the domain");
	noproxy_free(np);

	/* NUL bytes inside the list or the host. */
	np = noproxy_parse("example.com\0evil.com", 20);
	CHECK(noproxy_count(np) == 0 && noproxy_skipped(np) == 1,
	    "NUL inside an entry");
	CHECK(!noproxy_match(np, "evil.com", 8, 0), "NUL list");
	noproxy_free(np);
	np = noproxy_parse("10.0.0.1", 8);
	CHECK(!noproxy_match(np, "10.0.0.1\0x", 10, 0), "NUL in ip host");
	noproxy_free(np);
	np = noproxy_parse("example.com", 11);
	CHECK(!noproxy_match(np, "x\0.example.com", 14, 0), "NUL in host");
	CHECK(!noproxy_match(np, NULL, 0, 0), "NULL host");
	noproxy_free(np);

	/* Not NUL-terminated: only len bytes are read. */
	np = noproxy_parse("example.comXXXX", 11);
	CHECK(noproxy_match(np, "example.com", 11, 0), "list len honoured");
	CHECK(noproxy_match(np, "example.comYYY", 11, 0), "host len honoured");
	noproxy_free(np);

	np = noproxy_parse(NULL, 0);
	CHECK(noproxy_count(np) == 0 && !noproxy_all(np), "NULL list");
	CHECK(!noproxy_match(np, "example.com", 11, 0), "NULL list matches");
	noproxy_free(np);
	noproxy_free(NULL);
	CHECK(!noproxy_match(NULL, "example.com", 11, 0), "NULL noproxy");

	free(host);
	free(list);
}

struct ccase {
	const char	*list;
	size_t		 count;
	size_t		 skipped;
};

static void
malformed_entries_are_skipped_and_counted(void)
{
	static const struct ccase t[] = {
		{ "", 0, 0 },
		{ ",,, ,\t,", 0, 0 },
		{ "*", 1, 0 },
		{ "*,localhost", 1, 1 },
		{ "localhost,127.0.0.1,::1", 3, 0 },
		{ "10.0.0.0/33", 0, 1 },
		{ "10.0.0.0/16a", 0, 1 },
		{ "::/129", 0, 1 },
		{ "[::1]/129", 0, 1 },
		{ "[::1]:99999", 0, 1 },
		{ "[10.0.0.1]", 0, 1 },
		{ "[::1", 0, 1 },
		{ "foo/8", 0, 1 },
		{ "a..b", 0, 1 },
		{ "-.", 1, 0 },
		{ "exa$mple.com", 0, 1 },
		{ "ex\xc3\xa4mple.com", 0, 1 },
		{ "user@host", 0, 1 },
		{ "http://example.com", 0, 1 },
		{ "example.com:http", 0, 1 },
		{ "fe80::1%eth0", 0, 1 },
		{ ".", 0, 1 },
		{ "*.", 0, 1 },
		{ "good.example, bad..example, also.good", 2, 1 },
	};

	for (size_t i = 0; i < NITEMS(t); i++) {
		struct noproxy *np;

		np = noproxy_parse(t[i].list, strlen(t[i].list));
		CHECK(noproxy_count(np) == t[i].count &&
		    noproxy_skipped(np) == t[i].skipped,
		    "'%s': %zu entries, %zu skipped; want %zu, %zu", t[i].list,
		    noproxy_count(np), noproxy_skipped(np), t[i].count,
		    t[i].skipped);
		noproxy_free(np);
	}
}

int
main(void)
{
	RUN(curl_unit1614_cases_agree);
	RUN(names_match_domain_and_subdomains_only);
	RUN(star_alone_matches_everything);
	RUN(addresses_and_cidr_match_ip_literals);
	RUN(entries_with_a_port_match_only_that_port);
	RUN(hostile_and_long_input_is_survived);
	RUN(malformed_entries_are_skipped_and_counted);
	return test_done("noproxy");
}
