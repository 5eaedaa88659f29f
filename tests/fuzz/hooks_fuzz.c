/*
 * Hook specs and event payloads (builtin/hooks.c). The first line of the
 * input is a --hook spec; the next ones fill an audit event (host, path,
 * method, reason, rule, model). Invariants: a refused spec gives one line
 * that never quotes a URL's query (run again with the query replaced by a
 * canary that must not show); an accepted webhook has a target starting
 * with '/', a display without the query that parses again to the same
 * destination, and a name of the allowed characters; every payload, at
 * every size tried, is one NUL-terminated JSON object whose url has no
 * '?' or '#' and which holds no canary from the path's query.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "builtin/audit.h"
#include "builtin/hooks.h"
#include "common/xmalloc.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)
#define NLINES	7
#define CANARY	"QCANARY"

static void
check_spec(const char *spec)
{
	struct hook_spec	 h, again;
	char			 err[256], *masked, *re;
	const char		*scheme, *q;

	memset(err, 0, sizeof err);
	if (hooks_spec_parse(spec, &h, err, sizeof err) != 0) {
		ASSERT(err[0] != '\0' && strchr(err, '\n') == NULL);
		/* Again with the URL's query a canary. */
		if ((scheme = strstr(spec, "://")) != NULL &&
		    (q = strchr(scheme, '?')) != NULL &&
		    strstr(spec, CANARY) == NULL) {
			masked = xprintf("%.*s?" CANARY, (int)(q - spec),
			    spec);
			if (hooks_spec_parse(masked, &h, err, sizeof err) != 0)
				ASSERT(strstr(err, CANARY) == NULL);
			else
				hooks_spec_clear(&h);
			free(masked);
		}
		return;
	}
	ASSERT((int)h.kind >= HOOK_REQUEST && (int)h.kind <= HOOK_LLM);
	for (const char *p = h.name; *p != '\0'; p++)
		ASSERT(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
		    "XYZ0123456789._-", *p) != NULL);
	ASSERT(h.display != NULL);
	if (!h.webhook) {
		ASSERT(h.path != NULL && h.path[0] != '\0');
		ASSERT(strncmp(h.display, "file:", 5) == 0 &&
		    strcmp(h.display + 5, h.path) == 0);
		hooks_spec_clear(&h);
		return;
	}
	ASSERT(strchr(h.display, '?') == NULL);
	ASSERT(h.target != NULL && h.target[0] == '/');
	ASSERT(h.dest.host[0] != '\0' && h.dest.port != 0);
	/* The display is a URL that parses to the same place. */
	re = xprintf("%s:%s", hooks_kind_name(h.kind), h.display);
	ASSERT(hooks_spec_parse(re, &again, err, sizeof err) == 0);
	ASSERT(strcmp(again.dest.host, h.dest.host) == 0 &&
	    again.dest.port == h.dest.port && again.tls == h.tls);
	ASSERT(strncmp(h.target, again.target, strlen(again.target)) == 0);
	hooks_spec_clear(&again);
	hooks_spec_clear(&h);
	free(re);
}

static void
check_payload(const struct audit_event *e, bool path_has_canary)
{
	static const size_t	 sizes[] = { 64, 100, 300, 1000,
	    HOOK_PAYLOAD_MAX };
	struct timeval		 now = { 1700000000, 999999 };
	char			*buf;
	cJSON			*j;
	const cJSON		*url;
	bool			 canary_in_fields;

	canary_in_fields = path_has_canary ||
	    (e->host && strstr(e->host, CANARY)) ||
	    (e->method && strstr(e->method, CANARY)) ||
	    (e->reason && strstr(e->reason, CANARY)) ||
	    (e->rule && strstr(e->rule, CANARY)) ||
	    (e->llm && e->llm->model && strstr(e->llm->model, CANARY));
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		for (int k = HOOK_REQUEST; k <= HOOK_LLM; k++) {
			size_t n;

			buf = xcalloc(1, sizes[i]);
			n = hooks_payload((enum hook_kind)k, e, k & 1, &now,
			    buf, sizes[i]);
			ASSERT(n < sizes[i] && buf[n] == '\0' &&
			    strlen(buf) == n);
			j = cJSON_ParseWithLength(buf, n);
			ASSERT(j != NULL && cJSON_IsObject(j));
			url = cJSON_GetObjectItemCaseSensitive(j, "url");
			if (cJSON_IsString(url))
				ASSERT(strpbrk(url->valuestring, "?#") == NULL);
			if (!canary_in_fields)
				ASSERT(strstr(buf, CANARY) == NULL);
			cJSON_Delete(j);
			free(buf);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char			*line[NLINES] = { NULL };
	struct audit_event	 e;
	struct audit_llm	 l;
	char			*path;
	size_t			 n = 0, from = 0;

	if (size > 8192)
		return 0;
	for (size_t i = 0; i <= size && n < NLINES; i++)
		if (i == size || data[i] == '\n') {
			line[n] = xcalloc(i - from + 1, 1);
			memcpy(line[n++], data + from, i - from);
			from = i + 1;
		}
	check_spec(line[0]);

	/* The path's query is a canary: it must never show. */
	path = xprintf("%s?" CANARY "=1#" CANARY, line[1] ? line[1] : "/");
	memset(&e, 0, sizeof e);
	memset(&l, 0, sizeof l);
	e.event = "request";
	e.door = "http";
	e.host = line[2];
	e.port = (unsigned)(size % 65536);
	e.path = path;
	e.pathlen = strlen(path);
	e.method = line[3];
	e.reason = line[4];
	e.rule = line[5];
	e.status = (int)(size % 600);
	e.ms = (long long)size;
	e.secret = size & 1 ? "BINDING" CANARY : NULL;
	if (line[6] != NULL) {
		l.provider = "openai";
		l.model = line[6];
		l.ttfb_ms = -1;
		e.llm = &l;
	}
	check_payload(&e, line[1] != NULL && strstr(line[1], CANARY));
	/* The path as it came: maybe none, maybe not starting with '/'. */
	e.path = line[1];
	e.pathlen = e.path ? strlen(e.path) : 0;
	check_payload(&e, line[1] != NULL && strstr(line[1], CANARY));
	free(path);
	for (size_t i = 0; i < n; i++)
		free(line[i]);
	return 0;
}
