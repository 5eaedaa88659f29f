/*
 * Gateway specs and the /gw/NAME/ prefix. The URL's authority goes through
 * the one host parser; the forwarding itself is ordinary plain-HTTP
 * forwarding to a TLS origin (conn.c, http_fwd.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin/gateway.h"
#include "common/strlist.h"
#include "common/xmalloc.h"

#define GW_PREFIX	"/gw/"
#define GW_PREFIX_LEN	4

/* The SDKs' own variables and the base each expects. */
static const struct preset {
	const char	*name;
	const char	*url;
	const char	*var;
} presets[] = {
	{ "anthropic", "https://api.anthropic.com", "ANTHROPIC_BASE_URL" },
	{ "openai", "https://api.openai.com/v1", "OPENAI_BASE_URL" },
	{ "gemini", "https://generativelanguage.googleapis.com",
	  "GOOGLE_GEMINI_BASE_URL" },
	{ "groq", "https://api.groq.com", "GROQ_BASE_URL" },
	{ "together", "https://api.together.xyz/v1", "TOGETHER_BASE_URL" },
};
/*
 * The other OpenAI-format providers (DeepSeek, xAI, OpenRouter, Mistral,
 * Fireworks) are used through the openai SDK, whose variable is taken:
 * --gateway deepseek=https://api.deepseek.com,OPENAI_BASE_URL.
 */

struct gateways {
	struct gateway	*g;
	size_t		 n;
};

static bool
name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9') || s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

static bool
var_ok(const char *s)
{
	if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
	    *s == '_'))
		return false;
	for (; *s != '\0'; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		    (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

/* "https://host[:port][/base]" into g. 0, or -1 with why. */
static int
parse_url(struct gateway *g, const char *url, const char **why)
{
	const char	*auth, *slash;
	size_t		 alen;
	int		 r;

	if (strncmp(url, "https://", 8) == 0) {
		g->tls = true;
		auth = url + 8;
	} else if (strncmp(url, "http://", 7) == 0) {
		auth = url + 7;
	} else {
		*why = "the URL must start with https:// (or http://)";
		return -1;
	}
	slash = strchr(auth, '/');
	alen = slash ? (size_t)(slash - auth) : strlen(auth);
	if (memchr(auth, '@', alen) != NULL) {
		*why = "credentials do not belong in the URL: bind them with "
		    "--secret";
		return -1;
	}
	if ((r = addr_parse_authority(auth, alen, g->tls ? 443 : 80,
	    &g->dest)) != ADDR_OK) {
		*why = addr_strerror(r);
		return -1;
	}
	if (slash != NULL && strpbrk(slash, "?#") != NULL) {
		*why = "the URL may have a path, not a query or fragment";
		return -1;
	}
	g->base = xstrdup(slash ? slash : "");
	/* "/v1/" and "/v1" are the same base. */
	for (size_t n = strlen(g->base); n > 0 && g->base[n - 1] == '/'; n--)
		g->base[n - 1] = '\0';
	return 0;
}

static int
parse_spec(struct gateway *g, const char *spec, char *err, size_t errlen)
{
	const char	*eq = strchr(spec, '='), *comma, *why = NULL;
	char		*url = NULL;
	int		 r = -1;

	memset(g, 0, sizeof *g);
	if (eq == NULL) {
		for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++)
			if (strcmp(spec, presets[i].name) == 0) {
				g->name = xstrdup(presets[i].name);
				g->var = xstrdup(presets[i].var);
				return parse_url(g, presets[i].url, &why);
			}
		snprintf(err, errlen, "--gateway '%s': not NAME=URL[,VAR] nor "
		    "a preset (anthropic, openai, gemini, groq, together)",
		    spec);
		return -1;
	}
	if (!name_ok(spec, (size_t)(eq - spec))) {
		snprintf(err, errlen, "--gateway '%s': NAME must be 1-64 of "
		    "a-z, 0-9, '-', '_'", spec);
		return -1;
	}
	g->name = xstrndup(spec, (size_t)(eq - spec));
	if ((comma = strrchr(eq + 1, ',')) != NULL) {
		if (!var_ok(comma + 1)) {
			snprintf(err, errlen, "--gateway '%s': '%s' is not an "
			    "environment variable name", spec, comma + 1);
			goto out;
		}
		g->var = xstrdup(comma + 1);
		url = xstrndup(eq + 1, (size_t)(comma - eq - 1));
	} else
		url = xstrdup(eq + 1);
	if (parse_url(g, url, &why) != 0) {
		snprintf(err, errlen, "--gateway '%s': %s", spec, why);
		goto out;
	}
	r = 0;
out:
	free(url);
	return r;
}

static void
gateway_clear(struct gateway *g)
{
	free(g->name);
	free(g->var);
	free(g->base);
}

struct gateways *
gateways_new(char *const *specs, size_t n, char *err, size_t errlen)
{
	struct gateways *gs = xcalloc(1, sizeof *gs);

	gs->g = xcalloc(n ? n : 1, sizeof *gs->g);
	for (size_t i = 0; i < n; i++) {
		if (parse_spec(&gs->g[gs->n], specs[i], err, errlen) != 0) {
			gateway_clear(&gs->g[gs->n]);
			gateways_free(gs);
			return NULL;
		}
		for (size_t j = 0; j < gs->n; j++)
			if (strcmp(gs->g[j].name, gs->g[gs->n].name) == 0) {
				snprintf(err, errlen, "--gateway '%s': the name "
				    "'%s' is given twice", specs[i],
				    gs->g[j].name);
				gateway_clear(&gs->g[gs->n]);
				gateways_free(gs);
				return NULL;
			}
		gs->n++;
	}
	return gs;
}

void
gateways_free(struct gateways *gs)
{
	if (gs == NULL)
		return;
	for (size_t i = 0; i < gs->n; i++)
		gateway_clear(&gs->g[i]);
	free(gs->g);
	free(gs);
}

size_t
gateways_count(const struct gateways *gs)
{
	return gs != NULL ? gs->n : 0;
}

const struct gateway *
gateways_match(const struct gateways *gs, const char *t, size_t len,
    size_t *rest, bool *unknown)
{
	size_t nlen;

	*unknown = false;
	if (len < GW_PREFIX_LEN || memcmp(t, GW_PREFIX, GW_PREFIX_LEN) != 0)
		return NULL;
	t += GW_PREFIX_LEN;
	len -= GW_PREFIX_LEN;
	for (nlen = 0; nlen < len && t[nlen] != '/' && t[nlen] != '?'; nlen++)
		;
	for (size_t i = 0; gs != NULL && i < gs->n; i++)
		if (strlen(gs->g[i].name) == nlen &&
		    memcmp(gs->g[i].name, t, nlen) == 0) {
			*rest = GW_PREFIX_LEN + nlen;
			return &gs->g[i];
		}
	*unknown = true;
	return NULL;
}

void
gateways_child_env(const struct gateways *gs, const char *host,
    unsigned port, struct strlist *out)
{
	for (size_t i = 0; gs != NULL && i < gs->n; i++)
		if (gs->g[i].var != NULL)
			strlist_add_owned(out, xprintf(strchr(host, ':') ?
			    "%s=http://[%s]:%u/gw/%s" :
			    "%s=http://%s:%u/gw/%s", gs->g[i].var, host, port,
			    gs->g[i].name));
}
