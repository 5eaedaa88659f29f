/* Gateway specs, presets, the /gw/NAME/ prefix and the child's variables. */
#include <stdlib.h>
#include <string.h>

#include "builtin/gateway.h"
#include "common/strlist.h"
#include "test.h"

static struct gateways *
one(const char *spec, char *err, size_t errlen)
{
	char *specs[] = { (char *)spec };

	return gateways_new(specs, 1, err, errlen);
}

static void
specs_parse_or_name_the_mistake(void)
{
	static const struct {
		const char	*spec;
		const char	*host;		/* NULL: an error */
		unsigned	 port;
		const char	*base;
		int		 tls;
		const char	*var;
		const char	*err;		/* in the message */
	} t[] = {
		{ "anthropic", "api.anthropic.com", 443, "", 1,
		  "ANTHROPIC_BASE_URL", NULL },
		{ "openai", "api.openai.com", 443, "/v1", 1, "OPENAI_BASE_URL",
		  NULL },
		{ "api=https://API.Example.com:8443/v2/,MY_URL",
		  "api.example.com", 8443, "/v2", 1, "MY_URL", NULL },
		{ "local=http://127.0.0.1:9000", "127.0.0.1", 9000, "", 0,
		  NULL, NULL },
		{ "ds=https://api.deepseek.com,OPENAI_BASE_URL",
		  "api.deepseek.com", 443, "", 1, "OPENAI_BASE_URL", NULL },
		{ "nope", NULL, 0, NULL, 0, NULL, "preset" },
		{ "Bad=https://x.test", NULL, 0, NULL, 0, NULL, "NAME" },
		{ "=https://x.test", NULL, 0, NULL, 0, NULL, "NAME" },
		{ "a=ftp://x.test", NULL, 0, NULL, 0, NULL, "https://" },
		{ "a=https://u:p@x.test", NULL, 0, NULL, 0, NULL, "--secret" },
		{ "a=https://x.test/v1?k=1", NULL, 0, NULL, 0, NULL, "query" },
		{ "a=https://x.test,1BAD", NULL, 0, NULL, 0, NULL, "variable" },
		{ "a=https://", NULL, 0, NULL, 0, NULL, "a=https://" },
		{ "a=https://x.test:0", NULL, 0, NULL, 0, NULL, "port" },
	};
	char err[256];

	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct gateways *gs;
		const struct gateway *g;
		size_t rest;
		bool unknown;
		char path[128];

		err[0] = '\0';
		gs = one(t[i].spec, err, sizeof err);
		if (t[i].host == NULL) {
			CHECK(gs == NULL && strstr(err, t[i].err) != NULL,
			    "%s: error '%s'", t[i].spec, err);
			gateways_free(gs);
			continue;
		}
		CHECK(gs != NULL, "%s: %s", t[i].spec, err);
		if (gs == NULL)
			continue;
		snprintf(path, sizeof path, "/gw/%.*s/x",
		    (int)strcspn(t[i].spec, "="), t[i].spec);
		g = gateways_match(gs, path, strlen(path), &rest, &unknown);
		CHECK(g != NULL && strcmp(g->dest.host, t[i].host) == 0 &&
		    g->dest.port == t[i].port && strcmp(g->base, t[i].base) ==
		    0 && g->tls == (t[i].tls != 0), "%s: parsed wrong",
		    t[i].spec);
		CHECK(g != NULL && ((g->var == NULL && t[i].var == NULL) ||
		    (g->var && t[i].var && strcmp(g->var, t[i].var) == 0)),
		    "%s: variable", t[i].spec);
		gateways_free(gs);
	}
}

static void
paths_under_gw_name_the_gateway(void)
{
	char			*specs[] = { "api=https://a.test/v1,A",
				    "b=https://b.test" };
	char			 err[128];
	struct gateways		*gs = gateways_new(specs, 2, err, sizeof err);
	const struct gateway	*g;
	size_t			 rest;
	bool			 unknown;
	static const struct {
		const char	*path;
		const char	*name;	/* NULL: no match */
		int		 unknown;
		const char	*rest;
	} t[] = {
		{ "/gw/api/chat?x=1", "api", 0, "/chat?x=1" },
		{ "/gw/api", "api", 0, "" },
		{ "/gw/api?q", "api", 0, "?q" },
		{ "/gw/b/", "b", 0, "/" },
		{ "/gw/apix/chat", NULL, 1, NULL },
		{ "/gw/ap/chat", NULL, 1, NULL },
		{ "/gw//chat", NULL, 1, NULL },
		{ "/gwapi/chat", NULL, 0, NULL },
		{ "/other", NULL, 0, NULL },
		{ "/g", NULL, 0, NULL },
	};

	CHECK(gs != NULL, "%s", err);
	for (size_t i = 0; gs && i < sizeof t / sizeof t[0]; i++) {
		g = gateways_match(gs, t[i].path, strlen(t[i].path), &rest,
		    &unknown);
		if (t[i].name == NULL) {
			CHECK(g == NULL && unknown == (t[i].unknown != 0),
			    "%s: matched or wrong unknown", t[i].path);
			continue;
		}
		CHECK(g != NULL && strcmp(g->name, t[i].name) == 0 &&
		    strcmp(t[i].path + rest, t[i].rest) == 0, "%s", t[i].path);
	}
	gateways_free(gs);
}

static void
duplicate_names_are_refused_and_env_names_each(void)
{
	char		*dup[] = { "a=https://x.test", "a=https://y.test" };
	char		*two[] = { "a=https://x.test,AV", "b=https://y.test",
			    "openai" };
	char		 err[256];
	struct gateways	*gs;
	struct strlist	 env;

	memset(&env, 0, sizeof env);
	CHECK(gateways_new(dup, 2, err, sizeof err) == NULL &&
	    strstr(err, "twice") != NULL, "'%s'", err);
	gs = gateways_new(two, 3, err, sizeof err);
	CHECK(gs != NULL && gateways_count(gs) == 3, "%s", err);
	gateways_child_env(gs, "127.0.0.1", 4242, &env);
	CHECK(env.n == 2, "%zu variables", env.n);
	CHECK(env.n == 2 && strcmp(env.v[0],
	    "AV=http://127.0.0.1:4242/gw/a") == 0, "%s", env.v[0]);
	CHECK(env.n == 2 && strcmp(env.v[1],
	    "OPENAI_BASE_URL=http://127.0.0.1:4242/gw/openai") == 0, "%s",
	    env.v[1]);
	strlist_clear(&env);
	gateways_child_env(gs, "::1", 4242, &env);
	CHECK(env.n == 2 && strcmp(env.v[0], "AV=http://[::1]:4242/gw/a") ==
	    0, "%s", env.n ? env.v[0] : "");
	strlist_clear(&env);
	gateways_free(gs);
}

int
main(void)
{
	RUN(specs_parse_or_name_the_mistake);
	RUN(paths_under_gw_name_the_gateway);
	RUN(duplicate_names_are_refused_and_env_names_each);
	return test_done("gateway");
}
