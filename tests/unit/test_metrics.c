/*
 * builtin/metrics.c: --metrics addresses (loopback only), counters fed
 * from audit events, and the exposition text: every family announced,
 * every sample well formed, label values escaped, label tables bounded,
 * LLM rows, hook counts and the daemon's sandboxes included.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/audit.h"
#include "builtin/hooks.h"
#include "builtin/llm.h"
#include "builtin/metrics.h"
#include "builtin/sandbox.h"
#include "launcher/config.h"
#include "test.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void
addresses_are_loopback_only(void)
{
	static const struct {
		const char	*spec;
		const char	*addr;		/* NULL: refused */
		unsigned	 port;
		const char	*err;
	} t[] = {
		{ "127.0.0.1:9464", "127.0.0.1", 9464, NULL },
		{ "127.1.2.3:1", "127.1.2.3", 1, NULL },
		{ "[::1]:9464", "::1", 9464, NULL },
		{ "localhost:80", "127.0.0.1", 80, NULL },
		{ "127.0.0.1:0", "127.0.0.1", 0, NULL },
		{ "0.0.0.0:9464", NULL, 0, "loopback only" },
		{ "10.0.0.1:9464", NULL, 0, "loopback only" },
		{ "[::]:9464", NULL, 0, "loopback only" },
		{ "[::ffff:10.0.0.1]:9464", NULL, 0, "loopback only" },
		{ "example.com:9464", NULL, 0, "not an IP address" },
		{ "127.0.0.1", NULL, 0, "ADDR:PORT" },
		{ ":9464", NULL, 0, "--metrics" },
		{ "127.0.0.1:70000", NULL, 0, "ADDR:PORT" },
		{ "127.0.0.1:x", NULL, 0, "ADDR:PORT" },
	};
	struct sockaddr_storage	ss;
	char			err[256], a[64];

	for (size_t i = 0; i < NELEM(t); i++) {
		int r;

		err[0] = '\0';
		r = metrics_parse_addr(t[i].spec, &ss, err, sizeof err);
		if (t[i].addr == NULL) {
			CHECK(r == -1, "case %zu (%s) accepted", i, t[i].spec);
			CHECK(strstr(err, t[i].err) != NULL && strstr(err,
			    t[i].spec) != NULL, "case %zu: '%s'", i, err);
			continue;
		}
		CHECK(r == 0, "case %zu (%s): %s", i, t[i].spec, err);
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *s = (struct sockaddr_in *)&ss;
			inet_ntop(AF_INET, &s->sin_addr, a, sizeof a);
			CHECK(ntohs(s->sin_port) == t[i].port, "case %zu", i);
		} else {
			struct sockaddr_in6 *s = (struct sockaddr_in6 *)&ss;
			inet_ntop(AF_INET6, &s->sin6_addr, a, sizeof a);
			CHECK(ntohs(s->sin6_port) == t[i].port, "case %zu", i);
		}
		CHECK_STR(a, t[i].addr);
	}
}

static void
event(struct metrics *m, const char *ev, const char *door,
    const char *decision, const char *rule)
{
	struct audit_event e;

	memset(&e, 0, sizeof e);
	e.event = ev;
	e.door = door;
	e.decision = decision;
	e.rule = rule;
	metrics_audit(m, &e);
}

/* The line that starts with prefix, or NULL. */
static const char *
line(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *p = text; p != NULL && *p != '\0';) {
		if (strncmp(p, prefix, n) == 0)
			return p;
		p = strchr(p, '\n');
		if (p != NULL)
			p++;
	}
	return NULL;
}

static bool
has_line(const char *text, const char *want)
{
	const char *l = line(text, want);

	return l != NULL && (l[strlen(want)] == '\n');
}

/* Labels at q ("{k=\"v\",...}"): names, quoted values with only \\, \"
 * and \n escaped. Returns what follows, or NULL. */
static const char *
check_labels(const char *q, size_t nline)
{
	q++;
	while (*q != '}') {
		size_t kl = strspn(q, "abcdefghijklmnopqrstuvwxyz_");

		CHECK(kl > 0 && q[kl] == '=' && q[kl + 1] == '"',
		    "line %zu: label at '%s'", nline, q);
		if (kl == 0 || q[kl] != '=' || q[kl + 1] != '"')
			return NULL;
		for (q += kl + 2; *q != '"' && *q != '\0'; q++)
			if (*q == '\\') {
				CHECK(q[1] == '\\' || q[1] == '"' ||
				    q[1] == 'n', "line %zu: escape", nline);
				q++;
			}
		CHECK(*q == '"', "line %zu: unterminated", nline);
		if (*q++ != '"')
			return NULL;
		if (*q == ',')
			q++;
	}
	return q + 1;
}

/*
 * Every line is "# HELP name text", "# TYPE name counter|gauge", or a
 * sample "name[{k="v",...}] value" of a family announced before it.
 */
static void
check_format(const char *text)
{
	char	family[128] = "";
	size_t	nline = 0;

	for (const char *p = text; *p != '\0'; nline++) {
		const char	*nl = strchr(p, '\n'), *q;
		char		 l[4096], want[200];
		size_t		 n;

		CHECK(nl != NULL, "line %zu: no newline", nline);
		if (nl == NULL)
			return;
		n = (size_t)(nl - p);
		CHECK(n < sizeof l, "line %zu too long", nline);
		if (n >= sizeof l)
			n = sizeof l - 1;
		memcpy(l, p, n);
		l[n] = '\0';
		p = nl + 1;
		if (strncmp(l, "# HELP ", 7) == 0) {
			n = strcspn(l + 7, " ");
			snprintf(family, sizeof family, "%.*s", (int)n, l + 7);
			continue;
		}
		if (strncmp(l, "# TYPE ", 7) == 0) {
			snprintf(want, sizeof want, "# TYPE %s ", family);
			n = strlen(want);
			CHECK(strncmp(l, want, n) == 0 &&
			    (strcmp(l + n, "counter") == 0 ||
			    strcmp(l + n, "gauge") == 0),
			    "line %zu: '%s'", nline, l);
			continue;
		}
		n = strlen(family);
		CHECK(strncmp(l, family, n) == 0 && (l[n] == '{' ||
		    l[n] == ' '), "line %zu: sample '%s' outside family %s",
		    nline, l, family);
		q = l + n;
		if (*q == '{' && (q = check_labels(q, nline)) == NULL)
			continue;
		CHECK(*q == ' ' && q[1] != '\0' && strspn(q + 1,
		    "0123456789") == strlen(q + 1), "line %zu: value '%s'",
		    nline, q);
	}
}

static void
counters_from_audit_events(void)
{
	struct metrics		*m = metrics_new();
	struct metrics_snapshot	 snap = { 7, 2, 1000, 50000, NULL, NULL,
	    NULL };
	size_t			 len;
	char			*text;

	event(m, "request", "http", "allow", "*");
	event(m, "request", "http", "allow", "*");
	event(m, "connect", "connect", "allow", "*.test");
	event(m, "deny", "http", "deny", "evil.test");
	event(m, "deny", "socks5", "deny", "evil.test");
	event(m, "deny", "connect", "deny", NULL);
	event(m, "error", "http", NULL, NULL);
	event(m, "error", "connect", "allow", "*");
	event(m, "llm", "connect", "allow", "*");	/* not a request */
	event(m, "budget", "connect", "allow", "*");
	event(m, NULL, NULL, NULL, NULL);
	metrics_audit(NULL, NULL);
	text = metrics_format(m, &snap, &len);
	CHECK(strlen(text) == len, "length");
	check_format(text);
	CHECK(has_line(text, "egress_run_connections_total 7"), "conns");
	CHECK(has_line(text, "egress_run_connections_open 2"), "open");
	CHECK(has_line(text, "egress_run_requests_total{door=\"http\","
	    "decision=\"allow\"} 2"), "http allow");
	CHECK(has_line(text, "egress_run_requests_total{door=\"connect\","
	    "decision=\"allow\"} 2"), "connect allow");
	CHECK(has_line(text, "egress_run_requests_total{door=\"http\","
	    "decision=\"deny\"} 1"), "http deny");
	CHECK(has_line(text, "egress_run_requests_total{door=\"socks5\","
	    "decision=\"deny\"} 1"), "socks5 deny");
	CHECK(has_line(text, "egress_run_requests_total{door=\"http\","
	    "decision=\"none\"} 1"), "http none");
	CHECK(has_line(text, "egress_run_errors_total{door=\"http\"} 1"),
	    "errors http");
	CHECK(has_line(text, "egress_run_errors_total{door=\"connect\"} 1"),
	    "errors connect");
	CHECK(has_line(text, "egress_run_denials_total{rule=\"evil.test\"} 2"),
	    "denials");
	CHECK(has_line(text, "egress_run_denials_total{rule=\"(none)\"} 1"),
	    "denials without a rule");
	CHECK(has_line(text, "egress_run_bytes_total{direction=\"up\"} 1000"),
	    "up");
	CHECK(has_line(text, "egress_run_bytes_total{direction=\"down\"} "
	    "50000"), "down");
	/* Families with no samples are still announced. */
	CHECK(has_line(text, "# TYPE egress_run_llm_tokens_total counter"),
	    "llm family");
	CHECK(has_line(text, "# TYPE egress_run_hook_drops_total counter"),
	    "hook family");
	CHECK(has_line(text, "# TYPE egress_run_hook_queued gauge"), "gauge");
	free(text);
	metrics_free(m);
	metrics_free(NULL);
}

static void
label_values_are_escaped_and_bounded(void)
{
	struct metrics		*m = metrics_new();
	struct metrics_snapshot	 snap;
	char			 rule[32], *text;
	size_t			 len, n = 0;

	memset(&snap, 0, sizeof snap);
	event(m, "deny", "http", "deny", "a\"b\\c\nd");
	for (int i = 0; i < METRICS_SERIES_MAX + 50; i++) {
		snprintf(rule, sizeof rule, "rule-%d", i);
		event(m, "deny", "http", "deny", rule);
	}
	text = metrics_format(m, &snap, &len);
	check_format(text);
	CHECK(has_line(text, "egress_run_denials_total{rule="
	    "\"a\\\"b\\\\c\\nd\"} 1"), "escaped");
	for (const char *p = text; (p = strstr(p, "egress_run_denials_total{"))
	    != NULL; p++)
		n++;
	CHECK(n == METRICS_SERIES_MAX + 1, "%zu series", n);
	CHECK(has_line(text, "egress_run_denials_total{rule=\"(other)\"} 51"),
	    "the rest share (other)");
	free(text);
	metrics_free(m);
}

static void
llm_rows_and_hooks_are_included(void)
{
	struct metrics		*m = metrics_new();
	struct llm_stats	*st = llm_stats_new(0, 0);
	struct llm_usage	 u = { 100, 20, 5, 7 };
	struct metrics_snapshot	 snap;
	struct config		 cfg;
	struct hooks		*hs;
	struct audit_event	 e;
	char			 err[256], *text;
	size_t			 len;

	(void)llm_stats_admit(st, "anthropic", "claude-\"x\"");
	llm_stats_done(st, "anthropic", "claude-\"x\"", &u, false, false, 10);
	(void)llm_stats_admit(st, "anthropic", "claude-\"x\"");
	llm_stats_done(st, "anthropic", "claude-\"x\"", &u, true, false, 10);
	(void)llm_stats_admit(st, "openai", "-");
	llm_stats_done(st, "openai", "-", NULL, true, false, 10);
	config_init(&cfg);
	strlist_add(&cfg.hooks, "audit=deny:file:/dev/null");
	strlist_add(&cfg.hooks, "llm:file:/dev/null");
	hs = hooks_new(&cfg, NULL, NULL, err, sizeof err);
	CHECK(hs != NULL, "%s", err);
	memset(&e, 0, sizeof e);
	e.event = "deny";
	hooks_emit(hs, &e, false);
	memset(&snap, 0, sizeof snap);
	snap.llm = st;
	snap.hooks = hs;
	text = metrics_format(m, &snap, &len);
	check_format(text);
	CHECK(has_line(text, "egress_run_llm_requests_total{provider="
	    "\"anthropic\",model=\"claude-\\\"x\\\"\"} 2"), "llm requests");
	CHECK(has_line(text, "egress_run_llm_errors_total{provider="
	    "\"anthropic\",model=\"claude-\\\"x\\\"\"} 1"), "llm errors");
	CHECK(has_line(text, "egress_run_llm_errors_total{provider="
	    "\"openai\",model=\"-\"} 1"), "openai errors");
	CHECK(has_line(text, "egress_run_llm_tokens_total{provider="
	    "\"anthropic\",model=\"claude-\\\"x\\\"\",type=\"input\"} 200"),
	    "input tokens");
	CHECK(has_line(text, "egress_run_llm_tokens_total{provider="
	    "\"anthropic\",model=\"claude-\\\"x\\\"\",type=\"cache_write\"} "
	    "14"), "cache write tokens");
	CHECK(has_line(text, "egress_run_hook_deliveries_total{hook=\"audit\","
	    "result=\"delivered\"} 1"), "hook delivered");
	CHECK(has_line(text, "egress_run_hook_deliveries_total{hook="
	    "\"llm:file:/dev/null\",result=\"failed\"} 0"), "unnamed hook");
	CHECK(has_line(text, "egress_run_hook_drops_total{hook=\"audit\"} 0"),
	    "drops");
	free(text);
	hooks_free(hs);
	config_free(&cfg);
	llm_stats_free(st);
	metrics_free(m);
}

static void
sandboxes_are_labelled(void)
{
	struct metrics		*m = metrics_new();
	struct sandbox_counters	 na = { 3, 5, 1, 100, 2000, 40, 9 }, nb;
	struct sandbox		 a, b;
	struct sandbox_list	 l;
	struct metrics_snapshot	 snap;
	char			*text;
	size_t			 len;

	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	memset(&nb, 0, sizeof nb);
	a.id = "job-1";
	a.n = &na;
	b.id = "odd\"id";
	b.n = &nb;
	TAILQ_INIT(&l);
	TAILQ_INSERT_TAIL(&l, &a, entry);
	TAILQ_INSERT_TAIL(&l, &b, entry);
	memset(&snap, 0, sizeof snap);
	text = metrics_format(m, &snap, &len);
	CHECK(strstr(text, "egress_run_sandbox_") == NULL, "no registry, "
	    "no sandbox series");
	free(text);
	snap.sandboxes = &l;
	text = metrics_format(m, &snap, &len);
	check_format(text);
	CHECK(has_line(text, "egress_run_sandbox_connections_total{sandbox="
	    "\"job-1\"} 3"), "connections");
	CHECK(has_line(text, "egress_run_sandbox_requests_total{sandbox="
	    "\"job-1\"} 5"), "requests");
	CHECK(has_line(text, "egress_run_sandbox_denials_total{sandbox="
	    "\"job-1\"} 1"), "denials");
	CHECK(has_line(text, "egress_run_sandbox_bytes_total{sandbox="
	    "\"job-1\",direction=\"down\"} 2000"), "bytes down");
	CHECK(has_line(text, "egress_run_sandbox_llm_tokens_total{sandbox="
	    "\"job-1\",type=\"output\"} 9"), "output tokens");
	CHECK(has_line(text, "egress_run_sandbox_denials_total{sandbox="
	    "\"odd\\\"id\"} 0"), "escaped id");
	free(text);
	metrics_free(m);
}

int
main(void)
{
	RUN(addresses_are_loopback_only);
	RUN(counters_from_audit_events);
	RUN(label_values_are_escaped_and_bounded);
	RUN(llm_rows_and_hooks_are_included);
	RUN(sandboxes_are_labelled);
	return test_done("test_metrics");
}
