/*
 * API gateways (--gateway NAME=URL[,VAR]): COMMAND is told
 * VAR=http://127.0.0.1:PORT/gw/NAME and speaks plain HTTP to the proxy's
 * own port; requests under /gw/NAME/ go on to URL over HTTPS with secrets
 * injected, with no CA to trust. Presets name the SDKs' variables.
 */
#ifndef BUILTIN_GATEWAY_H
#define BUILTIN_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>

#include "builtin/addr.h"

struct gateways;
struct strlist;

struct gateway {
	char		*name;		/* NAME: [a-z0-9_-], the /gw/NAME/ */
	char		*var;		/* the child's variable, or NULL */
	struct dest	 dest;		/* URL's host and port */
	bool		 tls;		/* https:// (else http://) */
	char		*base;		/* URL's path without its trailing
					   '/': "" or "/v1" */
};

/*
 * Parse --gateway specs: NAME=URL[,VAR] or a preset name (anthropic,
 * openai, gemini, groq, together, ...). NULL with a one-line error naming
 * the spec. No specs: an empty set.
 */
struct gateways	*gateways_new(char *const *, size_t, char *, size_t);
void		 gateways_free(struct gateways *);
size_t		 gateways_count(const struct gateways *);

/*
 * The gateway an origin-form target ("/gw/NAME/rest?query") names. On a
 * match *rest is the offset of "/rest?query" (or of the end, for
 * "/gw/NAME"). NULL when the target is not under /gw/ or names no
 * gateway; *unknown tells which (a /gw/ path with an unknown NAME).
 */
const struct gateway *gateways_match(const struct gateways *, const char *,
		    size_t, size_t *rest, bool *unknown);

/* VAR=http://HOST:PORT/gw/NAME for every gateway with a variable. */
void		 gateways_child_env(const struct gateways *, const char *host,
		    unsigned port, struct strlist *);

#endif
