/*
 * policy.c: pattern syntax and its errors, the stage-1 decision (deny wins,
 * allow list or allow-all default), the stage-2 address guard with its
 * three exceptions, the proxy's own address, and --resolve pins.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/addr.h"
#include "builtin/policy.h"
#include "tests/unit/test.h"

/* A policy from space-separated allow and deny lists (NULL: none). */
static struct policy *
mk(const char *allow, const char *deny)
{
	struct policy	*p = policy_new();
	char		 buf[1024], err[256], *tok, *save;

	for (int i = 0; i < 2; i++) {
		const char *list = i == 0 ? allow : deny;
		if (list == NULL)
			continue;
		snprintf(buf, sizeof buf, "%s", list);
		for (tok = strtok_r(buf, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save)) {
			int r = i == 0 ? policy_allow(p, tok, err, sizeof err) :
			    policy_deny(p, tok, err, sizeof err);
			CHECK(r == 0, "pattern '%s' refused: %s", tok, err);
		}
	}
	return p;
}

static void
dest_of(const char *authority, struct dest *d)
{
	if (addr_parse_authority(authority, strlen(authority), 443, d) != 0) {
		fprintf(stderr, "bad test authority '%s'\n", authority);
		abort();
	}
}

static void
sa_of(const char *addr, uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in	sin;
	struct sockaddr_in6	sin6;

	memset(ss, 0, sizeof *ss);
	memset(&sin, 0, sizeof sin);
	memset(&sin6, 0, sizeof sin6);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) == 1) {
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		memcpy(ss, &sin, sizeof sin);
	} else if (inet_pton(AF_INET6, addr, &sin6.sin6_addr) == 1) {
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		memcpy(ss, &sin6, sizeof sin6);
	} else {
		fprintf(stderr, "bad test address '%s'\n", addr);
		abort();
	}
}

static const struct {
	const char	*pattern;
	const char	*err;		/* a substring of the message */
} bad_patterns[] = {
	{ "", "empty pattern" },
	{ "*.", "'*.' needs a domain after it" },
	{ "*.:443", "'*.' needs a domain after it" },
	{ "foo.*.com", "'*' may only stand alone or lead as '*.'" },
	{ "*example.com", "'*' may only stand alone or lead as '*.'" },
	{ "ex*ample.com", "'*' may only stand alone or lead as '*.'" },
	{ "example.*", "'*' may only stand alone or lead as '*.'" },
	{ "**", "'*' may only stand alone or lead as '*.'" },
	{ "*.*", "'*' may only stand alone or lead as '*.'" },
	{ "*.*.example.com", "'*' may only stand alone or lead as '*.'" },
	{ ".example.com", "bad pattern '.example.com': write *.example.com "
	    "for a domain and its subdomains" },
	{ ".example.com:443", "write *.example.com for a domain" },
	{ ".", "not a host name or IP address" },
	{ "..example.com", "not a host name or IP address" },
	{ "example.com..", "not a host name or IP address" },
	{ "example..com", "not a host name or IP address" },
	{ "example.com:0", "bad pattern 'example.com:0': the port must be "
	    "1-65535" },
	{ "example.com:99999", "the port must be 1-65535" },
	{ "example.com:65536", "the port must be 1-65535" },
	{ "example.com:", "the port must be 1-65535" },
	{ "example.com:+443", "the port must be 1-65535" },
	{ "example.com:-1", "the port must be 1-65535" },
	{ "example.com:44 3", "the port must be 1-65535" },
	{ "example.com:443:1", "not a host name or IP address" },
	{ "*:0", "the port must be 1-65535" },
	{ ":443", "empty host" },
	{ "user@example.com", "user@host is not a pattern" },
	{ "user:pw@example.com", "user@host is not a pattern" },
	{ "ex%61mple.com", "percent-encoding" },
	{ "[fe80::1%eth0]", "percent-encoding" },
	{ "10.0.0.0/33", "the prefix length must be 0-32" },
	{ "10.0.0.0/16a", "the prefix length must be 0-32" },
	{ "10.0.0.0/", "the prefix length must be 0-32" },
	{ "10.0.0.0/-8", "the prefix length must be 0-32" },
	{ "10.0.0.0/+8", "the prefix length must be 0-32" },
	{ "10.0.0.0/0008", "the prefix length must be 0-32" },
	{ "10.0.0.0/4294967304", "the prefix length must be 0-32" },
	{ "10.0.0.0/8/8", "the prefix length must be 0-32" },
	{ "10.0.0.1/8", "address bits are set beyond /8: write the network "
	    "address" },
	{ "10/8", "address bits are set beyond /8" },
	{ "192.168.1.7/16", "address bits are set beyond /16" },
	{ "fd00::/129", "the prefix length must be 0-128" },
	{ "fd00::1/8", "address bits are set beyond /8" },
	{ "[fd00::]/7", "address bits are set beyond /7" },
	{ "[fd00::]/8x", "the prefix length must be 0-128" },
	{ "[fd00::]/", "the prefix length must be 0-128" },
	{ "fd00::/8:443", "the prefix length must be 0-128" },
	{ "[::1", "'[' without its ']'" },
	{ "[::1]x", "unexpected text after ']'" },
	{ "[::1]:", "the port must be 1-65535" },
	{ "[::1]:0", "the port must be 1-65535" },
	{ "[]", "empty host" },
	{ "[example.com]", "not a host name or IP address" },
	{ "[127.0.0.1]", "not a host name or IP address" },
	{ "example.com/8", "a prefix length needs an address" },
	{ "*.example.com/8", "a prefix length needs an address" },
	{ "*/8", "'*' takes no prefix length" },
	{ "*.1.2.3.4", "'*.' needs a domain name, not an address" },
	{ "*.[::1]", "'*.' needs a domain name, not an address" },
	{ "*.123", "'*.' needs a domain name, not an address" },
	{ "*.example.123", "ends in a number but is not an IPv4 address" },
	{ "1.2.3.256", "ends in a number but is not an IPv4 address" },
	{ "1.2.3.4.5", "ends in a number but is not an IPv4 address" },
	{ "exa mple.com", "not a host name or IP address" },
	{ " example.com", "not a host name or IP address" },
	{ "exa\nmple.com", "bad pattern 'exa?mple.com'" },
	{ "http://example.com", "the port must be 1-65535" },
	{ "example.com/", "a prefix length needs an address" },
	{ "b\xc3\xbc" "cher.de", "bad pattern 'b??cher.de'" },
};

static bool
printable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s < 0x20 || *s >= 0x7f)
			return false;
	return true;
}

static void
bad_patterns_are_errors_naming_the_pattern(void)
{
	struct policy	*p = policy_new();
	char		 err[256], want[128];
	size_t		 i;

	for (i = 0; i < sizeof bad_patterns / sizeof bad_patterns[0]; i++) {
		const char *s = bad_patterns[i].pattern;
		for (int deny = 0; deny < 2; deny++) {
			err[0] = '\0';
			int r = deny ? policy_deny(p, s, err, sizeof err) :
			    policy_allow(p, s, err, sizeof err);
			CHECK(r == -1, "'%s' accepted", s);
			CHECK(strstr(err, bad_patterns[i].err) != NULL,
			    "'%s': got '%s'", s, err);
			if (printable(s)) {
				snprintf(want, sizeof want,
				    "bad pattern '%s': ", s);
				CHECK(strncmp(err, want, strlen(want)) == 0,
				    "'%s': message '%s'", s, err);
			}
			CHECK(strchr(err, '\n') == NULL, "'%s': two lines", s);
		}
	}
	CHECK(!policy_has_allow(p), "a refused allow pattern was kept");
	CHECK(policy_allow(p, NULL, err, sizeof err) == -1, "NULL pattern");
	policy_free(p);
}

static void
error_messages_are_bounded(void)
{
	struct policy	*p = policy_new();
	char		 big[400], err[256], tiny[8];

	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK(policy_allow(p, big, err, sizeof err) == -1, "400-byte name");
	CHECK(strstr(err, "...'") != NULL && strlen(err) < 160,
	    "long pattern not shortened: '%s'", err);
	CHECK(strstr(err, "name over 253 bytes") != NULL, "'%s'", err);
	memset(tiny, 'x', sizeof tiny);
	CHECK(policy_allow(p, "", tiny, sizeof tiny) == -1, "tiny");
	CHECK(memchr(tiny, '\0', sizeof tiny) != NULL, "not terminated");
	CHECK(policy_allow(p, "", NULL, 0) == -1, "no err buffer");
	CHECK(policy_deny(p, "*.", tiny, 0) == -1, "err length 0");
	CHECK(tiny[0] == 'b', "err length 0 written to");
	policy_free(p);
}

/* Each pattern's canonical rule text, shown when a destination matches. */
static const struct {
	const char	*pattern;
	const char	*dest;
	const char	*rule;
} canonical[] = {
	{ "example.com", "example.com", "allow example.com" },
	{ "EXAMPLE.Com.", "example.com", "allow example.com" },
	{ "*.GitHub.com.", "api.github.com", "allow *.github.com" },
	{ "*.github.com:443", "github.com", "allow *.github.com:443" },
	{ "*.github.com:0443", "github.com", "allow *.github.com:443" },
	{ "*", "anything", "allow *" },
	{ "*:443", "anything", "allow *:443" },
	{ "127.1", "127.0.0.1", "allow 127.0.0.1" },
	{ "2130706433", "127.0.0.1", "allow 127.0.0.1" },
	{ "0x7f.0.0.1:8080", "127.0.0.1:8080", "allow 127.0.0.1:8080" },
	{ "127.0.0.1/32", "127.0.0.1", "allow 127.0.0.1" },
	{ "10.0.0.0/8", "10.9.9.9", "allow 10.0.0.0/8" },
	{ "012.0.0.0/8", "10.9.9.9", "allow 10.0.0.0/8" },
	{ "10.0.0.0/8:22", "10.9.9.9:22", "allow 10.0.0.0/8:22" },
	{ "0.0.0.0/0", "8.8.8.8", "allow 0.0.0.0/0" },
	{ "[::1]", "[::1]", "allow [::1]" },
	{ "::1", "[::1]", "allow [::1]" },
	{ "[0:0::1]:8080", "[::1]:8080", "allow [::1]:8080" },
	{ "[::1]/128", "[::1]", "allow [::1]" },
	{ "fd00::/8", "[fd12::1]", "allow [fd00::]/8" },
	{ "[FD00::]/8", "[fd12::1]", "allow [fd00::]/8" },
	{ "[fd00::]/8:443", "[fd12::1]", "allow [fd00::]/8:443" },
	{ "[::]/0", "[2001:db8::1]", "allow [::]/0" },
	{ "::1:443", "[::1:443]", "allow [::1:443]" },
	{ "[::ffff:10.0.0.0]/104", "10.1.1.1", "allow [::ffff:10.0.0.0]/104" },
	{ "localhost", "localhost", "allow localhost" },
	{ "_srv.example.com", "_srv.example.com", "allow _srv.example.com" },
};

static void
rules_are_canonical_and_reparse(void)
{
	struct policy	*p, *q;
	struct verdict	 v, w;
	struct dest	 d;
	size_t		 i;

	for (i = 0; i < sizeof canonical / sizeof canonical[0]; i++) {
		p = policy_new();
		CHECK(policy_allow(p, canonical[i].pattern, NULL, 0) == 0,
		    "'%s' refused", canonical[i].pattern);
		dest_of(canonical[i].dest, &d);
		policy_check_dest(p, &d, &v);
		CHECK(v.allow, "'%s' does not match %s", canonical[i].pattern,
		    canonical[i].dest);
		CHECK_STR(v.rule, canonical[i].rule);
		q = mk(v.rule + strlen("allow "), NULL);
		policy_check_dest(q, &d, &w);
		CHECK(w.allow && strcmp(v.rule, w.rule) == 0,
		    "'%s' does not re-parse to itself", v.rule);
		policy_free(q);
		policy_free(p);
	}
}

static const struct {
	const char	*allow;
	const char	*deny;
	const char	*dest;		/* authority, default port 443 */
	bool		 ok;
	const char	*rule;
} decisions[] = {
	/* no allow list: everything not denied */
	{ NULL, NULL, "example.com", true, "default" },
	{ NULL, NULL, "127.0.0.1", true, "default" },
	{ NULL, "*.evil.com", "evil.com", false, "deny *.evil.com" },
	{ NULL, "*.evil.com", "www.evil.com", false, "deny *.evil.com" },
	{ NULL, "*.evil.com", "a.b.c.evil.com", false, "deny *.evil.com" },
	{ NULL, "*.evil.com", "WWW.EVIL.COM.", false, "deny *.evil.com" },
	{ NULL, "*.evil.com", "notevil.com", true, "default" },
	{ NULL, "*.evil.com", "evil.com.au", true, "default" },
	{ NULL, "*.evil.com", "evil.co", true, "default" },
	{ NULL, "*.evil.com", "vil.com", true, "default" },
	{ NULL, "evil.com", "www.evil.com", true, "default" },
	{ NULL, "*", "example.com", false, "deny *" },
	{ NULL, "*", "[::1]", false, "deny *" },
	{ NULL, "*:25", "mail.example.com:25", false, "deny *:25" },
	{ NULL, "*:25", "mail.example.com:587", true, "default" },
	/* an allow list */
	{ "*.github.com", NULL, "github.com", true, "allow *.github.com" },
	{ "*.github.com", NULL, "api.github.com", true,
	    "allow *.github.com" },
	{ "*.github.com", NULL, "API.GitHub.COM.", true,
	    "allow *.github.com" },
	{ "*.github.com", NULL, "evilgithub.com", false, "default" },
	{ "*.github.com", NULL, "github.com.evil.com", false, "default" },
	{ "*.github.com", NULL, "github.co", false, "default" },
	{ "*.github.com", NULL, "ithub.com", false, "default" },
	{ "*.github.com", NULL, "140.82.112.3", false, "default" },
	{ "example.com", NULL, "example.com", true, "allow example.com" },
	{ "example.com", NULL, "example.com.", true, "allow example.com" },
	{ "example.com", NULL, "www.example.com", false, "default" },
	{ "example.com", NULL, "example.co", false, "default" },
	{ "example.com", NULL, "93.184.216.34", false, "default" },
	{ "example.com:443", NULL, "example.com:443", true,
	    "allow example.com:443" },
	{ "example.com:443", NULL, "example.com:80", false, "default" },
	{ "*:443", NULL, "anything.example:443", true, "allow *:443" },
	{ "*:443", NULL, "anything.example:80", false, "default" },
	{ "*:443", NULL, "1.2.3.4:443", true, "allow *:443" },
	{ "*:443", NULL, "[2001:db8::1]:443", true, "allow *:443" },
	{ "*.com", NULL, "example.com", true, "allow *.com" },
	{ "*.com", NULL, "example.org", false, "default" },
	{ "a.com b.com c.com", NULL, "b.com", true, "allow b.com" },
	/* deny wins */
	{ "*", "*.evil.com", "evil.com", false, "deny *.evil.com" },
	{ "*", "*.evil.com", "good.com", true, "allow *" },
	{ "*.example.com", "bad.example.com", "bad.example.com", false,
	    "deny bad.example.com" },
	{ "*.example.com", "bad.example.com", "x.bad.example.com", true,
	    "allow *.example.com" },
	{ "*.example.com", "bad.example.com", "good.example.com", true,
	    "allow *.example.com" },
	{ "example.com", "*", "example.com", false, "deny *" },
	{ "example.com", "example.com:80", "example.com:80", false,
	    "deny example.com:80" },
	{ "example.com", "example.com:80", "example.com:443", true,
	    "allow example.com" },
	/* addresses match address patterns only, in any spelling */
	{ "10.0.0.0/8", NULL, "10.1.2.3", true, "allow 10.0.0.0/8" },
	{ "10.0.0.0/8", NULL, "167838211", true, "allow 10.0.0.0/8" },
	{ "10.0.0.0/8", NULL, "0xa.1.2.3", true, "allow 10.0.0.0/8" },
	{ "10.0.0.0/8", NULL, "11.0.0.1", false, "default" },
	{ "10.0.0.0/8", NULL, "9.255.255.255", false, "default" },
	{ "10.0.0.0/8", NULL, "[::ffff:10.1.2.3]", true,
	    "allow 10.0.0.0/8" },
	{ "10.0.0.0/8", NULL, "[2002:a01:203::]", false, "default" },
	{ "10.0.0.0/8", NULL, "[::10.1.2.3]", false, "default" },
	{ "10.0.0.0/8", NULL, "ten.example", false, "default" },
	{ "172.16.0.0/12", NULL, "172.31.255.255", true,
	    "allow 172.16.0.0/12" },
	{ "172.16.0.0/12", NULL, "172.32.0.0", false, "default" },
	{ "1.2.3.4/31", NULL, "1.2.3.5", true, "allow 1.2.3.4/31" },
	{ "1.2.3.4/31", NULL, "1.2.3.6", false, "default" },
	{ "0.0.0.0/0", NULL, "255.255.255.255", true, "allow 0.0.0.0/0" },
	{ "0.0.0.0/0", NULL, "[2001:db8::1]", false, "default" },
	{ "0.0.0.0/0", NULL, "example.com", false, "default" },
	{ "127.0.0.1", NULL, "2130706433", true, "allow 127.0.0.1" },
	{ "127.0.0.1", NULL, "localhost", false, "default" },
	{ "[fd00::]/8", NULL, "[fd12::1]", true, "allow [fd00::]/8" },
	{ "[fd00::]/8", NULL, "[fe00::1]", false, "default" },
	{ "[fc00::]/7", NULL, "[fdff::1]", true, "allow [fc00::]/7" },
	{ "[fc00::]/7", NULL, "[fe00::1]", false, "default" },
	{ "[2001:db8::]/33", NULL, "[2001:db8:7fff::1]", true,
	    "allow [2001:db8::]/33" },
	{ "[2001:db8::]/33", NULL, "[2001:db8:8000::1]", false, "default" },
	{ "[::1]", NULL, "127.0.0.1", false, "default" },
	{ "[::ffff:0:0]/96", NULL, "10.0.0.1", true,
	    "allow [::ffff:0.0.0.0]/96" },
	/* a deny of IPv4 also catches it inside IPv6 */
	{ "*", "10.0.0.0/8", "10.1.2.3", false, "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "012.1.2.3", false, "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[::ffff:10.1.2.3]", false, "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[::ffff:0:10.1.2.3]", false,
	    "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[::10.1.2.3]", false, "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[64:ff9b::a01:203]", false,
	    "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[64:ff9b:1::a01:203]", false,
	    "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[2002:a01:203::1]", false, "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[2001:0:1:2:3:4:f5fe:fdfc]", false,
	    "deny 10.0.0.0/8" },
	{ "*", "10.0.0.0/8", "[2001:db8::a01:203]", true, "allow *" },
	{ "*", "10.0.0.0/8", "11.1.2.3", true, "allow *" },
	{ "*", "[::ffff:0:0]/96", "10.0.0.1", false,
	    "deny [::ffff:0.0.0.0]/96" },
	{ "*", "[fd00::]/8", "[fd00::1]", false, "deny [fd00::]/8" },
	{ "*", "[fd00::]/8", "fd00.example", true, "allow *" },
	/* names that look like addresses are names */
	{ "*.1.2.3.example", NULL, "4.1.2.3.example", true,
	    "allow *.1.2.3.example" },
	{ "1.2.3.4", NULL, "1.2.3.4.example", false, "default" },
};

static void
decision_table_matches(void)
{
	struct policy	*p;
	struct verdict	 v;
	struct dest	 d;
	size_t		 i;

	for (i = 0; i < sizeof decisions / sizeof decisions[0]; i++) {
		p = mk(decisions[i].allow, decisions[i].deny);
		dest_of(decisions[i].dest, &d);
		memset(&v, 0xa5, sizeof v);
		policy_check_dest(p, &d, &v);
		CHECK(v.allow == decisions[i].ok, "allow '%s' deny '%s' %s: "
		    "allow %d (%s)", decisions[i].allow ? decisions[i].allow :
		    "", decisions[i].deny ? decisions[i].deny : "",
		    decisions[i].dest, v.allow, v.reason);
		CHECK_STR(v.rule, decisions[i].rule);
		/* A refusal says why in one line; an allowed verdict needs
		 * no text (it is every request's path). */
		CHECK((v.allow || strlen(v.reason) > 0) &&
		    strchr(v.reason, '\n') == NULL, "%s: reason '%s'",
		    decisions[i].dest, v.reason);
		policy_free(p);
	}
}

static void
reasons_are_one_human_line(void)
{
	struct policy	*p = mk("*.github.com", "*.evil.com");
	struct verdict	 v;
	struct dest	 d;
	char		 big[300];

	dest_of("example.org", &d);
	policy_check_dest(p, &d, &v);
	CHECK_STR(v.reason, "example.org:443 is not in the allow list");
	dest_of("www.evil.com:80", &d);
	policy_check_dest(p, &d, &v);
	CHECK_STR(v.reason, "www.evil.com:80 is denied (deny *.evil.com)");
	dest_of("api.github.com", &d);
	policy_check_dest(p, &d, &v);
	CHECK(v.allow && v.reason[0] == '\0', "'%s'", v.reason);
	CHECK_STR(v.rule, "allow *.github.com");
	dest_of("[2001:db8::1]:8443", &d);
	policy_check_dest(p, &d, &v);
	CHECK_STR(v.reason, "[2001:db8::1]:8443 is not in the allow list");
	addr_parse_host("example.org", 11, &d);
	policy_check_dest(p, &d, &v);
	CHECK_STR(v.reason, "example.org is not in the allow list");
	/* A 253-byte name is shortened, not truncated mid-sentence. */
	memset(big, 'a', 253);
	for (int i = 63; i < 253; i += 64)
		big[i] = '.';
	memcpy(big + 253, ":443", 5);
	dest_of(big, &d);
	policy_check_dest(p, &d, &v);
	CHECK(strstr(v.reason, "...:443 is not in the allow list") != NULL,
	    "'%s'", v.reason);
	policy_free(p);

	p = policy_new();
	policy_check_dest(p, &d, &v);
	CHECK(v.allow && strcmp(v.rule, "default") == 0, "'%s'", v.rule);
	policy_free(p);
}

static const struct {
	const char	*allow;
	const char	*deny;
	const char	*dest;		/* authority, default port 443 */
	const char	*addr;		/* about to be dialled */
	uint16_t	 port;		/* 0: the sockaddr carries none */
	bool		 pinned;
	bool		 ok;
	const char	*rule;
	const char	*reason;	/* a substring, or NULL */
} dials[] = {
	/* ordinary addresses pass; private ranges are not guarded */
	{ NULL, NULL, "example.com", "93.184.216.34", 443, false, true,
	    "default", NULL },
	{ NULL, NULL, "intranet", "10.1.2.3", 443, false, true, "default",
	    NULL },
	{ NULL, NULL, "intranet", "172.16.0.1", 443, false, true, "default",
	    NULL },
	{ NULL, NULL, "intranet", "192.168.1.1", 443, false, true, "default",
	    NULL },
	{ NULL, NULL, "cgnat", "100.64.0.1", 443, false, true, "default",
	    NULL },
	{ NULL, NULL, "ula", "fd12::1", 443, false, true, "default", NULL },
	{ NULL, NULL, "v6", "2606:4700::1111", 443, false, true, "default",
	    NULL },
	/* the guard, for names and literals alike */
	{ NULL, NULL, "example.com", "127.0.0.1", 443, false, false, "guard",
	    "example.com resolves to 127.0.0.1, a loopback address (allow "
	    "it explicitly with --allow 127.0.0.1)" },
	{ NULL, NULL, "127.0.0.1", "127.0.0.1", 443, false, false, "guard",
	    "127.0.0.1 is a loopback address (allow it explicitly with "
	    "--allow 127.0.0.1)" },
	{ NULL, NULL, "[::1]", "::1", 443, false, false, "guard",
	    "::1 is a loopback address (allow it explicitly with --allow "
	    "[::1])" },
	{ NULL, NULL, "x", "127.254.0.9", 443, false, false, "guard",
	    "loopback" },
	{ NULL, NULL, "x", "0.0.0.0", 443, false, false, "guard",
	    "x resolves to 0.0.0.0, an unspecified address" },
	{ NULL, NULL, "x", "::", 443, false, false, "guard",
	    "an unspecified address" },
	{ NULL, NULL, "x", "169.254.1.1", 443, false, false, "guard",
	    "a link-local address" },
	{ NULL, NULL, "x", "fe80::1", 443, false, false, "guard",
	    "a link-local address" },
	{ NULL, NULL, "x", "169.254.169.254", 80, false, false, "guard",
	    "169.254.169.254, a cloud metadata address" },
	{ NULL, NULL, "x", "169.254.170.2", 80, false, false, "guard",
	    "cloud metadata" },
	{ NULL, NULL, "x", "100.100.100.200", 80, false, false, "guard",
	    "cloud metadata" },
	{ NULL, NULL, "x", "192.0.0.192", 80, false, false, "guard",
	    "cloud metadata" },
	{ NULL, NULL, "x", "fd00:ec2::254", 80, false, false, "guard",
	    "cloud metadata address (allow it explicitly with --allow "
	    "[fd00:ec2::254])" },
	{ NULL, NULL, "x", "224.0.0.251", 5353, false, false, "guard",
	    "multicast" },
	{ NULL, NULL, "x", "ff02::fb", 5353, false, false, "guard",
	    "multicast" },
	{ NULL, NULL, "x", "255.255.255.255", 9, false, false, "guard",
	    "broadcast" },
	{ NULL, NULL, "x", "240.0.0.1", 9, false, false, "guard",
	    "reserved" },
	/* IPv4 inside IPv6 is judged as IPv4 too */
	{ NULL, NULL, "x", "::ffff:127.0.0.1", 443, false, false, "guard",
	    "loopback" },
	{ NULL, NULL, "x", "::ffff:169.254.169.254", 80, false, false,
	    "guard", "cloud metadata" },
	{ NULL, NULL, "x", "::127.0.0.1", 443, false, false, "guard",
	    "loopback" },
	{ NULL, NULL, "x", "64:ff9b::a9fe:a9fe", 80, false, false, "guard",
	    "cloud metadata" },
	{ NULL, NULL, "x", "64:ff9b:1::7f00:1", 80, false, false, "guard",
	    "loopback" },
	{ NULL, NULL, "x", "2002:7f00:1::1", 80, false, false, "guard",
	    "loopback" },
	{ NULL, NULL, "x", "2001:0:4136:e378:8000:63bf:80ff:fffe", 80, false,
	    false, "guard", "loopback" },
	{ NULL, NULL, "x", "::ffff:10.0.0.1", 80, false, true, "default",
	    NULL },
	/* wildcards and the default never grant guarded addresses */
	{ "*", NULL, "x", "127.0.0.1", 443, false, false, "guard", NULL },
	{ "*:443", NULL, "x", "127.0.0.1", 443, false, false, "guard", NULL },
	{ "*.local", NULL, "printer.local", "169.254.7.7", 631, false, false,
	    "guard", "printer.local resolves to 169.254.7.7, a link-local" },
	{ "x", NULL, "x", "127.0.0.1", 443, false, false, "guard", NULL },
	/* (a) an address or CIDR allowed explicitly, port-respecting */
	{ "127.0.0.1", NULL, "x", "127.0.0.1", 443, false, true,
	    "allow 127.0.0.1", "127.0.0.1 is allowed explicitly" },
	{ "127.0.0.0/8", NULL, "x", "127.9.9.9", 443, false, true,
	    "allow 127.0.0.0/8", NULL },
	{ "127.0.0.1:8080", NULL, "x:8080", "127.0.0.1", 8080, false, true,
	    "allow 127.0.0.1:8080", NULL },
	{ "127.0.0.1:8080", NULL, "x:9090", "127.0.0.1", 9090, false, false,
	    "guard", NULL },
	{ "127.0.0.1:8080", NULL, "x:8080", "127.0.0.1", 0, false, true,
	    "allow 127.0.0.1:8080", NULL },
	{ "127.0.0.1:8080", NULL, "x:9090", "127.0.0.1", 0, false, false,
	    "guard", NULL },
	{ "127.0.0.1", NULL, "x", "127.0.0.2", 443, false, false, "guard",
	    NULL },
	{ "127.0.0.1", NULL, "x", "::ffff:127.0.0.1", 443, false, true,
	    "allow 127.0.0.1", NULL },
	{ "127.0.0.1", NULL, "x", "2002:7f00:1::", 443, false, false,
	    "guard", NULL },
	{ "127.0.0.1", NULL, "x", "::1", 443, false, false, "guard", NULL },
	{ "[::1]", NULL, "x", "::1", 443, false, true, "allow [::1]", NULL },
	{ "[::1]", NULL, "x", "127.0.0.1", 443, false, false, "guard", NULL },
	{ "169.254.0.0/16", NULL, "x", "169.254.169.254", 80, false, true,
	    "allow 169.254.0.0/16", NULL },
	{ "0.0.0.0/0", NULL, "x", "127.0.0.1", 80, false, true,
	    "allow 0.0.0.0/0", NULL },
	{ "[fe80::]/10", NULL, "x", "fe80::1", 80, false, true,
	    "allow [fe80::]/10", NULL },
	/* (b) pinned with --resolve */
	{ NULL, NULL, "dev.test", "127.0.0.1", 443, true, true, "pin",
	    "127.0.0.1 is pinned with --resolve" },
	{ "*", NULL, "dev.test", "169.254.169.254", 80, true, true, "pin",
	    NULL },
	/* (c) localhost allowed by that exact name, loopback only */
	{ "localhost", NULL, "localhost", "127.0.0.1", 443, false, true,
	    "allow localhost", "localhost is allowed explicitly" },
	{ "localhost", NULL, "LOCALHOST.", "::1", 443, false, true,
	    "allow localhost", NULL },
	{ "localhost", NULL, "localhost", "::ffff:127.0.0.1", 443, false,
	    true, "allow localhost", NULL },
	{ "localhost", NULL, "localhost", "169.254.169.254", 80, false,
	    false, "guard", "cloud metadata" },
	{ "localhost", NULL, "localhost", "0.0.0.0", 80, false, false,
	    "guard", "unspecified" },
	{ "localhost:3000", NULL, "localhost:3000", "127.0.0.1", 3000, false,
	    true, "allow localhost:3000", NULL },
	{ "localhost:3000", NULL, "localhost:22", "127.0.0.1", 22, false,
	    false, "guard", "(allow it explicitly with --allow localhost)" },
	{ "*", NULL, "localhost", "127.0.0.1", 80, false, false, "guard",
	    "localhost resolves to 127.0.0.1, a loopback address (allow it "
	    "explicitly with --allow localhost)" },
	{ "*.localhost", NULL, "localhost", "127.0.0.1", 80, false, false,
	    "guard", NULL },
	{ "localhost", NULL, "foo.localhost", "127.0.0.1", 80, false, false,
	    "guard", NULL },
	{ "localhost", NULL, "127.0.0.1", "127.0.0.1", 80, false, false,
	    "guard", NULL },
	/* deny patterns naming addresses apply to resolved addresses */
	{ NULL, "10.0.0.0/8", "intranet", "10.1.2.3", 443, false, false,
	    "deny 10.0.0.0/8", "10.1.2.3 is denied (deny 10.0.0.0/8)" },
	{ NULL, "10.0.0.0/8", "intranet", "::ffff:10.1.2.3", 443, false,
	    false, "deny 10.0.0.0/8", NULL },
	{ NULL, "10.0.0.0/8", "intranet", "2002:a01:203::", 443, false,
	    false, "deny 10.0.0.0/8", NULL },
	{ NULL, "10.0.0.0/8", "intranet", "10.1.2.3", 443, true, false,
	    "deny 10.0.0.0/8", NULL },
	{ "10.0.0.0/8", "10.0.0.0/8", "intranet", "10.1.2.3", 443, false,
	    false, "deny 10.0.0.0/8", NULL },
	{ NULL, "10.0.0.0/8:22", "intranet", "10.1.2.3", 22, false, false,
	    "deny 10.0.0.0/8:22", NULL },
	{ NULL, "10.0.0.0/8:22", "intranet", "10.1.2.3", 443, false, true,
	    "default", NULL },
	{ NULL, "*:25", "mail", "1.2.3.4", 25, false, false, "deny *:25",
	    NULL },
	{ NULL, "127.0.0.1", "localhost", "127.0.0.1", 80, true, false,
	    "deny 127.0.0.1", NULL },
	{ NULL, "*.example.com", "a.example.com", "93.184.216.34", 443,
	    false, true, "default", NULL },
	{ NULL, "[fd00::]/8", "ula", "fd12::1", 443, false, false,
	    "deny [fd00::]/8", NULL },
};

static void
address_guard_table_matches(void)
{
	struct sockaddr_storage	ss;
	struct policy		*p;
	struct verdict		 v;
	struct dest		 d;
	size_t			 i;

	for (i = 0; i < sizeof dials / sizeof dials[0]; i++) {
		p = mk(dials[i].allow, dials[i].deny);
		dest_of(dials[i].dest, &d);
		sa_of(dials[i].addr, dials[i].port, &ss);
		memset(&v, 0xa5, sizeof v);
		policy_check_addr(p, &d, (struct sockaddr *)&ss,
		    dials[i].pinned, &v);
		CHECK(v.allow == dials[i].ok, "#%zu %s -> %s: allow %d (%s)",
		    i, dials[i].dest, dials[i].addr, v.allow, v.reason);
		CHECK_STR(v.rule, dials[i].rule);
		if (dials[i].reason != NULL)
			CHECK(strstr(v.reason, dials[i].reason) != NULL,
			    "#%zu: reason '%s'", i, v.reason);
		CHECK(strchr(v.reason, '\n') == NULL, "two lines");
		policy_free(p);
	}
}

static void
dial_check_refuses_other_families(void)
{
	struct sockaddr_storage	ss;
	struct policy		*p = policy_new();
	struct verdict		 v;
	struct dest		 d;

	dest_of("example.com", &d);
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	policy_check_addr(p, &d, (struct sockaddr *)&ss, true, &v);
	CHECK(!v.allow, "AF_UNIX allowed");
	policy_check_addr(p, &d, NULL, true, &v);
	CHECK(!v.allow, "NULL allowed");
	sa_of("8.8.8.8", 0, &ss);
	policy_check_addr(p, NULL, (struct sockaddr *)&ss, false, &v);
	CHECK(v.allow, "no dest");
	sa_of("127.0.0.1", 0, &ss);
	policy_check_addr(p, NULL, (struct sockaddr *)&ss, false, &v);
	CHECK(!v.allow && strstr(v.reason, "127.0.0.1 is a loopback") != NULL,
	    "no dest: '%s'", v.reason);
	policy_free(p);
}

static bool
dial(struct policy *p, const char *dest, const char *addr, uint16_t port,
    bool pinned, const char **rule)
{
	struct sockaddr_storage	ss;
	struct verdict		v;
	struct dest		d;

	dest_of(dest, &d);
	sa_of(addr, port, &ss);
	policy_check_addr(p, &d, (struct sockaddr *)&ss, pinned, &v);
	if (rule != NULL)
		*rule = v.rule;
	return v.allow;
}

static void
own_listener_is_always_refused(void)
{
	struct sockaddr_storage	ss;
	struct policy		*p = mk("127.0.0.0/8 [::]/0 0.0.0.0/0", NULL);
	const char		*rule;

	sa_of("127.0.0.1", 8080, &ss);
	policy_set_self(p, (struct sockaddr *)&ss);
	CHECK(!dial(p, "x:8080", "127.0.0.1", 8080, false, &rule) &&
	    strcmp(rule, "self") == 0, "self allowed");
	CHECK(!dial(p, "x:8080", "127.0.0.1", 8080, true, &rule),
	    "pinned self allowed");
	CHECK(!dial(p, "x:8080", "127.0.0.1", 0, false, &rule),
	    "self via dest port allowed");
	CHECK(!dial(p, "x:8080", "::ffff:127.0.0.1", 8080, false, &rule),
	    "mapped self allowed");
	CHECK(!dial(p, "x:8080", "0.0.0.0", 8080, false, &rule),
	    "0.0.0.0 reaches the listener");
	CHECK(!dial(p, "x:8080", "::", 8080, false, &rule),
	    ":: reaches the listener");
	CHECK(dial(p, "x:8081", "127.0.0.1", 8081, false, &rule),
	    "other port refused");
	CHECK(dial(p, "x:8080", "127.0.0.2", 8080, false, &rule),
	    "other loopback address refused");
	CHECK(dial(p, "x:8080", "8.8.8.8", 8080, false, &rule),
	    "remote same port refused");
	policy_free(p);

	/* A wildcard listener: every local and loopback address. */
	p = mk("0.0.0.0/0 [::]/0", NULL);
	sa_of("0.0.0.0", 3128, &ss);
	policy_set_self(p, (struct sockaddr *)&ss);
	sa_of("192.168.1.5", 0, &ss);
	policy_add_local(p, (struct sockaddr *)&ss);
	CHECK(!dial(p, "x:3128", "192.168.1.5", 3128, false, &rule),
	    "local address on the listener's port");
	CHECK(!dial(p, "x:3128", "127.0.0.2", 3128, false, &rule),
	    "127.0.0.2 on the listener's port");
	CHECK(!dial(p, "x:3128", "::1", 3128, false, &rule),
	    "::1 on the listener's port");
	CHECK(!dial(p, "x:3128", "::ffff:192.168.1.5", 3128, false, &rule),
	    "mapped local on the listener's port");
	CHECK(dial(p, "x:3128", "8.8.8.8", 3128, false, &rule),
	    "remote on the listener's port refused");
	CHECK(dial(p, "x:3129", "192.168.1.5", 3129, false, &rule),
	    "explicitly allowed local address refused");
	policy_free(p);

	/* Two listeners, IPv6 wildcard. */
	p = mk("[::]/0 0.0.0.0/0", NULL);
	sa_of("::", 1080, &ss);
	policy_set_self(p, (struct sockaddr *)&ss);
	sa_of("::1", 3128, &ss);
	policy_set_self(p, (struct sockaddr *)&ss);
	CHECK(!dial(p, "x:1080", "127.0.0.1", 1080, false, &rule),
	    ":: listener, IPv4 loopback");
	CHECK(!dial(p, "x:3128", "::1", 3128, false, &rule),
	    "second listener");
	CHECK(dial(p, "x:3128", "127.0.0.1", 3128, false, &rule),
	    "::1 listener is not 127.0.0.1");
	policy_free(p);
}

static void
own_addresses_are_guarded(void)
{
	struct sockaddr_storage	ss;
	struct policy		*p = policy_new();
	struct verdict		 v;
	struct dest		 d;

	sa_of("192.168.1.5", 0, &ss);
	policy_add_local(p, (struct sockaddr *)&ss);
	sa_of("2001:db8::5", 0, &ss);
	policy_add_local(p, (struct sockaddr *)&ss);
	memset(&ss, 0, sizeof ss);
	ss.ss_family = AF_UNIX;
	policy_add_local(p, (struct sockaddr *)&ss);

	dest_of("192.168.1.5", &d);
	sa_of("192.168.1.5", 443, &ss);
	policy_check_addr(p, &d, (struct sockaddr *)&ss, false, &v);
	CHECK(!v.allow, "own address allowed");
	CHECK_STR(v.rule, "guard");
	CHECK_STR(v.reason, "192.168.1.5 is one of this host's own addresses "
	    "(allow it explicitly with --allow 192.168.1.5)");
	CHECK(!dial(p, "x", "::ffff:192.168.1.5", 443, false, NULL),
	    "mapped own address allowed");
	CHECK(!dial(p, "x", "2002:c0a8:105::", 443, false, NULL),
	    "6to4 own address allowed");
	CHECK(!dial(p, "x", "2001:db8::5", 443, false, NULL),
	    "own IPv6 allowed");
	CHECK(dial(p, "x", "192.168.1.6", 443, false, NULL),
	    "neighbour refused");
	CHECK(dial(p, "x", "192.168.1.5", 443, true, NULL),
	    "pinned own address refused");
	policy_free(p);

	p = mk("192.168.1.0/24", NULL);
	sa_of("192.168.1.5", 0, &ss);
	policy_add_local(p, (struct sockaddr *)&ss);
	CHECK(dial(p, "x", "192.168.1.5", 443, false, NULL),
	    "CIDR holding the own address refused");
	policy_free(p);
}

static const struct {
	const char	*spec;
	const char	*err;
} bad_pins[] = {
	{ "", "write HOST:PORT:ADDR" },
	{ "example.com", "write HOST:PORT:ADDR" },
	{ "example.com:443", "write HOST:PORT:ADDR" },
	{ "example.com:443:", "empty host" },
	{ "example.com:443:1.2.3.4,", "empty host" },
	{ "example.com:443:,1.2.3.4", "empty host" },
	{ "example.com:443:1.2.3.4,,5.6.7.8", "empty host" },
	{ "example.com:0:1.2.3.4", "PORT must be 1-65535 or '*'" },
	{ "example.com:65536:1.2.3.4", "PORT must be 1-65535 or '*'" },
	{ "example.com::1.2.3.4", "PORT must be 1-65535 or '*'" },
	{ "example.com:**:1.2.3.4", "PORT must be 1-65535 or '*'" },
	{ "example.com:x:1.2.3.4", "PORT must be 1-65535 or '*'" },
	{ "example.com:+1:1.2.3.4", "PORT must be 1-65535 or '*'" },
	{ "example.com:443:example.net", "ADDR must be an IP address" },
	{ "example.com:443:1.2.3.256", "not an IPv4 address" },
	{ "example.com:443:[::1", "not a host name or IP address" },
	{ "example.com:443:[fe80::1%eth0]", "percent-encoding" },
	{ "example.com:443:1.2.3.4:80", "not a host name or IP address" },
	{ "1.2.3.4:443:5.6.7.8", "HOST must be a name, not an address" },
	{ ":443:1.2.3.4", "empty host" },
	{ "user@example.com:443:1.2.3.4", "user information" },
	{ "-example.com:443", "removing entries is not supported" },
	{ "-example.com:443:1.2.3.4", "removing entries is not supported" },
	{ "++example.com:443:1.2.3.4", "not a host name or IP address" },
	{ "*:443:1.2.3.4", "not a host name or IP address" },
	{ "[::1]:443:1.2.3.4", "not a host name or IP address" },
};

static void
bad_pins_are_errors_naming_the_spec(void)
{
	struct policy	*p = policy_new();
	struct dest	 d;
	struct sockaddr_storage ss[4];
	char		 err[256], want[128];
	size_t		 i;

	for (i = 0; i < sizeof bad_pins / sizeof bad_pins[0]; i++) {
		err[0] = '\0';
		CHECK(policy_pin(p, bad_pins[i].spec, err, sizeof err) == -1,
		    "'%s' accepted", bad_pins[i].spec);
		CHECK(strstr(err, bad_pins[i].err) != NULL, "'%s': got '%s'",
		    bad_pins[i].spec, err);
		snprintf(want, sizeof want, "bad --resolve '%s': ",
		    bad_pins[i].spec);
		CHECK(strncmp(err, want, strlen(want)) == 0, "'%s'", err);
	}
	CHECK(policy_pin(p, NULL, err, sizeof err) == -1, "NULL spec");
	dest_of("example.com", &d);
	CHECK(policy_pinned(p, &d, ss, 4) == 0, "a refused pin was kept");
	policy_free(p);
}

static size_t
pinned(struct policy *p, const char *dest, char out[][INET6_ADDRSTRLEN],
    size_t max, uint16_t *port)
{
	struct sockaddr_storage	ss[8];
	struct sockaddr_in	sin;
	struct dest		d;
	size_t			n, i;

	dest_of(dest, &d);
	n = policy_pinned(p, &d, ss, max);
	for (i = 0; i < n; i++) {
		addr_ntop((struct sockaddr *)&ss[i], out[i], INET6_ADDRSTRLEN);
		/* sin_port and sin6_port sit at the same offset */
		memcpy(&sin, &ss[i], sizeof sin);
		*port = ntohs(sin.sin_port);
	}
	return n;
}

static void
pins_resolve_like_curl(void)
{
	struct policy	*p = policy_new();
	char		 a[8][INET6_ADDRSTRLEN], err[256];
	uint16_t	 port = 0;

	CHECK(policy_pin(p, "example.com:443:127.0.0.1", err, sizeof err) ==
	    0, "%s", err);
	CHECK(pinned(p, "example.com:443", a, 8, &port) == 1 &&
	    strcmp(a[0], "127.0.0.1") == 0 && port == 443, "one address");
	CHECK(pinned(p, "EXAMPLE.COM.:443", a, 8, &port) == 1,
	    "canonical dest");
	CHECK(pinned(p, "example.com:80", a, 8, &port) == 0, "other port");
	CHECK(pinned(p, "www.example.com:443", a, 8, &port) == 0,
	    "subdomain");
	CHECK(pinned(p, "127.0.0.1:443", a, 8, &port) == 0, "literal dest");

	CHECK(policy_pin(p, "+Dev.Test.:*:10.0.0.1,[::1],fd00::2,0x7f.1",
	    err, sizeof err) == 0, "%s", err);
	CHECK(pinned(p, "dev.test:8080", a, 8, &port) == 4 && port == 8080,
	    "four addresses, any port");
	CHECK_STR(a[0], "10.0.0.1");
	CHECK_STR(a[1], "::1");
	CHECK_STR(a[2], "fd00::2");
	CHECK_STR(a[3], "127.0.0.1");
	CHECK(pinned(p, "dev.test:1", a, 2, &port) == 2, "max respected");
	CHECK(pinned(p, "dev.test:1", a, 0, &port) == 0, "max 0");

	/* An exact port beats '*'; a later HOST:PORT replaces. */
	CHECK(policy_pin(p, "dev.test:443:192.0.2.1", err, sizeof err) == 0,
	    "%s", err);
	CHECK(pinned(p, "dev.test:443", a, 8, &port) == 1 &&
	    strcmp(a[0], "192.0.2.1") == 0, "exact port first");
	CHECK(pinned(p, "dev.test:80", a, 8, &port) == 4, "'*' otherwise");
	CHECK(policy_pin(p, "dev.test:443:192.0.2.2,192.0.2.3", err,
	    sizeof err) == 0, "%s", err);
	CHECK(pinned(p, "dev.test:443", a, 8, &port) == 2 &&
	    strcmp(a[0], "192.0.2.2") == 0, "replaced");
	CHECK(policy_pin(p, "dev.test:*:192.0.2.9", err, sizeof err) == 0,
	    "%s", err);
	CHECK(pinned(p, "dev.test:80", a, 8, &port) == 1 &&
	    strcmp(a[0], "192.0.2.9") == 0, "'*' replaced");
	policy_free(p);
}

static void
pins_do_not_change_the_destination_decision(void)
{
	struct policy	*p = mk("*.example.com", NULL);
	struct verdict	 v;
	struct dest	 d;

	CHECK(policy_pin(p, "evil.org:443:127.0.0.1", NULL, 0) == 0, "pin");
	dest_of("evil.org", &d);
	policy_check_dest(p, &d, &v);
	CHECK(!v.allow, "a pin granted a destination");
	policy_free(p);
}

static void
rule_pointers_survive_more_patterns(void)
{
	struct policy	*p = mk("a.example", NULL);
	struct verdict	 v;
	struct dest	 d;
	char		 buf[32];

	dest_of("a.example", &d);
	policy_check_dest(p, &d, &v);
	for (int i = 0; i < 200; i++) {
		snprintf(buf, sizeof buf, "h%d.example", i);
		CHECK(policy_allow(p, buf, NULL, 0) == 0, "%s", buf);
		CHECK(policy_deny(p, buf, NULL, 0) == 0, "%s", buf);
	}
	CHECK_STR(v.rule, "allow a.example");
	CHECK(policy_has_allow(p), "has allow");
	policy_free(p);
	policy_free(NULL);
}

static void
has_allow_counts_allow_patterns_only(void)
{
	struct policy	*p = mk(NULL, "*");

	CHECK(!policy_has_allow(p), "deny counted as allow");
	CHECK(policy_allow(p, "x", NULL, 0) == 0, "x");
	CHECK(policy_has_allow(p), "allow not counted");
	policy_free(p);
}

/* policy_names_dest: any pattern of either list, no verdict. */
static void
names_dest_matches_either_list(void)
{
	static const struct {
		const char	*allow, *deny, *dest;
		bool		 want;
	} cases[] = {
		{ "*.github.com", "", "api.github.com:443", true },
		{ "*.github.com", "", "github.com:443", true },
		{ "*.github.com", "", "evilgithub.com:443", false },
		{ "", "api.test:8443", "api.test:443", false },
		{ "", "api.test:8443", "api.test:8443", true },
		{ "", "10.0.0.0/8", "10.1.2.3:80", true },
		{ "", "", "a.test:443", false },
		{ "a.test", "b.test", "b.test:443", true },
	};
	struct dest	d;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct policy *p = mk(cases[i].allow, cases[i].deny);

		dest_of(cases[i].dest, &d);
		CHECK(policy_names_dest(p, &d) == cases[i].want, "case %zu: "
		    "%s", i, cases[i].dest);
		policy_free(p);
	}
}

int
main(void)
{
	RUN(bad_patterns_are_errors_naming_the_pattern);
	RUN(error_messages_are_bounded);
	RUN(rules_are_canonical_and_reparse);
	RUN(decision_table_matches);
	RUN(reasons_are_one_human_line);
	RUN(address_guard_table_matches);
	RUN(dial_check_refuses_other_families);
	RUN(own_listener_is_always_refused);
	RUN(own_addresses_are_guarded);
	RUN(bad_pins_are_errors_naming_the_spec);
	RUN(pins_resolve_like_curl);
	RUN(pins_do_not_change_the_destination_decision);
	RUN(rule_pointers_survive_more_patterns);
	RUN(has_allow_counts_allow_patterns_only);
	RUN(names_dest_matches_either_list);
	return test_done("test_policy");
}
