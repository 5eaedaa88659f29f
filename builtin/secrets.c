/*
 * Secret bindings (SPEC §7). The launcher hands the --secret specs to
 * secrets_new() and the child gets placeholders; the proxy (conn.c, mitm.c)
 * asks which bindings apply to a destination, sets their headers and swaps
 * placeholders for values in header values and bodies. Host matching is
 * policy.c's, one single-pattern policy per binding. Values never reach a
 * message: errors show an inline spec as KEY=***:host.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "builtin/addr.h"
#include "builtin/policy.h"
#include "builtin/secrets.h"
#include "common/log.h"
#include "common/strlist.h"
#include "common/xmalloc.h"

#define SHOW_MAX	64	/* bytes of a spec part shown in an error */
#define KEY_MAX		128
#define HEADER_MAX	128
#define PREFIX_SCAN	16	/* a kept prefix ends within these bytes */
#define PREFIX_REST	20	/* and leaves at least these hidden */
#define ENV_SHORT	8	/* shorter values are swapped in the child's
				   environment only when whole */
#define PH_TRIES	64
#define NONE		SIZE_MAX

#define MARKER_LEN	(sizeof(SECRETS_MARKER) - 1)

struct binding {
	char		*name;		/* KEY */
	char		*host;		/* canonical pattern */
	char		*header;	/* NULL: Authorization: Bearer */
	char		*value;		/* wiped before free */
	size_t		 vlen;
	char		*ph;		/* placeholder */
	size_t		 phlen;
	struct policy	*policy;	/* "allow <host>": the matcher */
	struct dest	 apex;		/* a destination the host covers */
};

struct secrets {
	struct binding	*b;
	size_t		 n;
	struct strlist	 extra;		/* other variables, values swapped */
};

/* A spec, as slices into its text. */
struct spec {
	const char	*key;
	size_t		 keylen;
	const char	*value;		/* inline value, or NULL */
	size_t		 valuelen;
	const char	*host;
	size_t		 hostlen;
	const char	*header;	/* or NULL */
	size_t		 headerlen;
	bool		 domain;	/* *.domain */
	struct dest	 dest;		/* the host, or the domain's apex */
};

struct subst {
	const struct binding	**b;	/* the destination's bindings */
	size_t			  nb;
	size_t			 *next;	/* per binding: next match or NONE */
	size_t			  maxph;
	uint8_t			 *hold;	/* maxph - 1 undecided bytes */
	size_t			  nhold;
	uint8_t			 *join;	/* hold + the next input's head */
	int64_t			  delta;
	size_t			  count;
	bool			  preserving;
};

/* Emits into a buffer of known size, or only counts (buf NULL). */
struct sink {
	char	*buf;
	size_t	 cap;
	size_t	 off;
};

static const char *const hop_headers[] = {
	"Connection", "Content-Length", "Expect", "Host", "Keep-Alive",
	"Proxy-Authenticate", "Proxy-Authorization", "Proxy-Connection",
	"TE", "Trailer", "Transfer-Encoding", "Upgrade",
};

/* Appends s, printable ASCII only, at most max bytes then "...". */
static void
show_add(char *out, size_t outlen, size_t *o, const char *s, size_t len,
    size_t max)
{
	size_t	i, n = len > max ? max : len;

	for (i = 0; i < n && *o + 1 < outlen; i++)
		out[(*o)++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	for (i = 0; n < len && i < 3 && *o + 1 < outlen; i++)
		out[(*o)++] = '.';
	out[*o] = '\0';
}

/*
 * The spec as an error shows it. Whatever could be an inline value, from
 * the first '=' to the last ':' after it (or to the end), becomes "***".
 */
static void
spec_show(const char *s, size_t len, char *out, size_t outlen)
{
	const char	*eq, *colon;
	size_t		 o = 0;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if ((eq = memchr(s, '=', len)) == NULL) {
		show_add(out, outlen, &o, s, len, 3 * SHOW_MAX);
		return;
	}
	show_add(out, outlen, &o, s, (size_t)(eq - s), SHOW_MAX);
	show_add(out, outlen, &o, "=***", 4, 4);
	colon = memrchr(eq + 1, ':', (size_t)(s + len - eq - 1));
	if (colon != NULL)
		show_add(out, outlen, &o, colon, (size_t)(s + len - colon),
		    2 * SHOW_MAX);
}

static int __attribute__((format(printf, 5, 6)))
spec_fail(char *err, size_t errlen, const char *s, size_t len,
    const char *fmt, ...)
{
	char	show[4 * SHOW_MAX + 16], why[512];
	va_list	ap;

	if (err == NULL || errlen == 0)
		return -1;
	spec_show(s, len, show, sizeof show);
	va_start(ap, fmt);
	vsnprintf(why, sizeof why, fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "bad --secret '%s': %s", show, why);
	return -1;
}

static bool
is_tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool
all_digits(const char *s, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return len > 0;
}

static const char *
key_problem(const char *k, size_t len)
{
	size_t	i;

	if (len == 0)
		return "empty KEY: write KEY:host";
	if (len > KEY_MAX)
		return "KEY is too long";
	for (i = 0; i < len; i++) {
		if ((k[i] >= 'A' && k[i] <= 'Z') || (k[i] >= 'a' &&
		    k[i] <= 'z') || k[i] == '_' || (i > 0 && k[i] >= '0' &&
		    k[i] <= '9'))
			continue;
		return "KEY must be an environment variable name "
		    "([A-Za-z_][A-Za-z0-9_]*)";
	}
	return NULL;
}

static const char *
host_problem(const char *h, size_t len, struct spec *sp)
{
	int	r;

	if (len == 0)
		return "empty host: write KEY:host";
	if (len == 1 && h[0] == '*')
		return "'*' would send the secret to every host: name the "
		    "host or *.domain";
	if (memchr(h, '/', len) != NULL)
		return "a secret binds to a host name, *.domain or an IPv4 "
		    "address, not an address range";
	if (len >= 2 && h[0] == '*' && h[1] == '.') {
		sp->domain = true;
		h += 2;
		len -= 2;
		if (len == 0)
			return "'*.' needs a domain after it";
	}
	if (memchr(h, '*', len) != NULL)
		return "'*' may only lead as '*.' (*.example.com)";
	if (all_digits(h, len))
		return "a number is not a host (a port? --secret takes a host "
		    "without a port)";
	if ((r = addr_parse_host(h, len, &sp->dest)) != ADDR_OK)
		return addr_strerror(r);
	if (sp->dest.kind != ADDR_NAME && sp->domain)
		return "'*.' needs a domain name, not an address";
	if (sp->dest.kind == ADDR_IPV6)
		return "IPv6 addresses cannot be bound";
	if (sp->dest.kind == ADDR_IPV4 && (strlen(sp->dest.host) != len ||
	    memcmp(sp->dest.host, h, len) != 0))
		return "write the IPv4 address as a dotted quad (a.b.c.d)";
	return NULL;
}

static const char *
header_problem(const char *h, size_t len)
{
	size_t	i;

	if (len == 0)
		return "empty header name: write KEY:host:Header-Name";
	if (len > HEADER_MAX)
		return "the header name is too long";
	for (i = 0; i < len; i++)
		if (!is_tchar((unsigned char)h[i]))
			return "the header name must be an HTTP token "
			    "(letters, digits, '-' and the like)";
	if (all_digits(h, len))
		return "a number is not a header name (a port? --secret "
		    "takes a host without a port)";
	for (i = 0; i < sizeof hop_headers / sizeof hop_headers[0]; i++)
		if (strlen(hop_headers[i]) == len &&
		    strncasecmp(hop_headers[i], h, len) == 0)
			return "that is a hop-by-hop or framing header, "
			    "egress-run cannot inject it";
	return NULL;
}

/*
 * One spec, pure: KEY=value:host (the host after the last ':'), KEY:host,
 * KEY:host:header. A '=' before any ':' makes the inline form.
 */
static int
spec_parse(const char *s, size_t len, struct spec *sp, char *err,
    size_t errlen)
{
	const char	*end = s + len, *eq, *c1, *c2, *why;

	memset(sp, 0, sizeof *sp);
#define BAD(...)	spec_fail(err, errlen, s, len, __VA_ARGS__)
	if (len == 0)
		return BAD("empty spec: write KEY:host, KEY:host:header or "
		    "KEY=value:host");
	eq = memchr(s, '=', len);
	c1 = memchr(s, ':', len);
	sp->key = s;
	if (eq != NULL && (c1 == NULL || eq < c1)) {
		sp->keylen = (size_t)(eq - s);
		if ((why = key_problem(sp->key, sp->keylen)) != NULL)
			return BAD("%s", why);
		if ((c2 = memrchr(eq + 1, ':', (size_t)(end - eq - 1))) ==
		    NULL)
			return BAD("missing host: write KEY=value:host");
		sp->value = eq + 1;
		sp->valuelen = (size_t)(c2 - sp->value);
		if (sp->valuelen == 0)
			return BAD("empty value: write KEY=value:host, or "
			    "KEY:host to take KEY from egress-run's "
			    "environment");
		sp->host = c2 + 1;
		sp->hostlen = (size_t)(end - sp->host);
	} else {
		if (c1 == NULL)
			return BAD("missing host: write KEY:host or "
			    "KEY:host:header");
		sp->keylen = (size_t)(c1 - s);
		if ((why = key_problem(sp->key, sp->keylen)) != NULL)
			return BAD("%s", why);
		sp->host = c1 + 1;
		c2 = memchr(sp->host, ':', (size_t)(end - sp->host));
		sp->hostlen = (size_t)((c2 != NULL ? c2 : end) - sp->host);
		if (c2 != NULL) {
			sp->header = c2 + 1;
			sp->headerlen = (size_t)(end - sp->header);
			if (memchr(sp->header, ':', sp->headerlen) != NULL)
				return BAD("too many ':' fields: write "
				    "KEY:host or KEY:host:header");
		}
	}
	if ((why = host_problem(sp->host, sp->hostlen, sp)) != NULL)
		return BAD("%s", why);
	if (sp->header != NULL &&
	    (why = header_problem(sp->header, sp->headerlen)) != NULL)
		return BAD("%s", why);
	return 0;
#undef BAD
}

static const char *
header_of(const struct binding *b)
{
	return b->header != NULL ? b->header : SECRETS_DEFAULT_HEADER;
}

static bool
applies(const struct binding *b, const struct dest *d)
{
	struct verdict	v;

	if (d == NULL)
		return false;
	/* The policy holds one allow pattern and no deny: allowed means
	 * matched, never the allow-all default. */
	policy_check_dest(b->policy, d, &v);
	return v.allow;
}

static const char *
env_lookup(char *const *env, const char *name, size_t len)
{
	size_t	i;

	for (i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

/* A field value may hold SP, HTAB, VCHAR and obs-text: no other control. */
static bool
value_ok(const char *v, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (((unsigned char)v[i] < 0x20 && v[i] != '\t') ||
		    v[i] == 0x7f)
			return false;
	return true;
}

static int
binding_add(struct secrets *s, const char *text, char *const *env,
    char *err, size_t errlen)
{
	struct binding	*b, *o;
	struct spec	 sp;
	const char	*v;
	char		 msg[256];
	size_t		 len = strlen(text), i;

#define BAD(...)	spec_fail(err, errlen, text, len, __VA_ARGS__)
	if (spec_parse(text, len, &sp, err, errlen) != 0)
		return -1;
	for (i = 0; i < s->n; i++)
		if (strlen(s->b[i].name) == sp.keylen &&
		    memcmp(s->b[i].name, sp.key, sp.keylen) == 0)
			return BAD("%s is already bound by an earlier "
			    "--secret", s->b[i].name);

	b = &s->b[s->n++];
	memset(b, 0, sizeof *b);
	b->name = xstrndup(sp.key, sp.keylen);
	if (sp.header != NULL)
		b->header = xstrndup(sp.header, sp.headerlen);
	b->host = xprintf("%s%s", sp.domain ? "*." : "", sp.dest.host);
	b->apex = sp.dest;
	b->policy = policy_new();
	if (policy_allow(b->policy, b->host, msg, sizeof msg) != 0)
		return BAD("%s", msg);

	/* Two bindings setting one header on one request: which wins? */
	for (i = 0; i + 1 < s->n; i++) {
		o = &s->b[i];
		if (strcasecmp(header_of(o), header_of(b)) == 0 &&
		    (applies(o, &b->apex) || applies(b, &o->apex)))
			return BAD("%s already sets %s for %s: give each "
			    "binding its own header or host", o->name,
			    header_of(b), o->host);
	}

	if (sp.value != NULL) {
		b->vlen = sp.valuelen;
		b->value = xstrndup(sp.value, sp.valuelen);
	} else {
		if ((v = env_lookup(env, b->name, sp.keylen)) == NULL ||
		    v[0] == '\0')
			return BAD("%s is not set in egress-run's environment: "
			    "export it before running egress-run", b->name);
		b->vlen = strlen(v);
		b->value = xstrdup(v);
	}
	if (b->vlen > SECRETS_VALUE_MAX)
		return BAD("the value of %s is longer than %d bytes", b->name,
		    SECRETS_VALUE_MAX);
	if (!value_ok(b->value, b->vlen))
		return BAD("the value of %s holds a control character (a line "
		    "break?): it cannot go into a header", b->name);
	return 0;
#undef BAD
}

/*
 * The value's lead up to its last '-' or '_' in the first PREFIX_SCAN bytes
 * (sk-ant-api03-, ghp_, xoxb-), so that clients checking a key's shape
 * accept the placeholder; kept only when it looks like a fixed prefix
 * ([A-Za-z0-9_-]) and leaves PREFIX_REST bytes of the value unseen: a short
 * value (a password) gives nothing away.
 */
static size_t
prefix_len(const char *v, size_t len)
{
	size_t	i, n = 0;

	for (i = 0; i < len && i < PREFIX_SCAN; i++)
		if (v[i] == '-' || v[i] == '_')
			n = i + 1;
	for (i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') ||
		    (v[i] >= 'A' && v[i] <= 'Z') ||
		    (v[i] >= '0' && v[i] <= '9') || v[i] == '-' ||
		    v[i] == '_'))
			return 0;
	if (len < n + PREFIX_REST)
		return 0;
	return n;
}

static int
random_alnum(char *out, size_t n)
{
	static const char	set[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789";
	unsigned char		rnd[64];
	size_t			i, o = 0;

	while (o < n) {
		if (RAND_bytes(rnd, sizeof rnd) != 1)
			return -1;
		/* 248 = 4 * 62: no modulo bias. */
		for (i = 0; i < sizeof rnd && o < n; i++)
			if (rnd[i] < 248)
				out[o++] = set[rnd[i] % 62];
	}
	return 0;
}

/* Placeholder i: unique, no substring of another, holding no value. */
static bool
placeholder_ok(const struct secrets *s, size_t i, const char *ph,
    size_t len)
{
	const struct binding	*o;
	size_t			 j;

	for (j = 0; j < s->n; j++) {
		o = &s->b[j];
		if (memmem(ph, len, o->value, o->vlen) != NULL)
			return false;
		if (j >= i)
			continue;
		if (memmem(ph, len, o->ph, o->phlen) != NULL ||
		    memmem(o->ph, o->phlen, ph, len) != NULL)
			return false;
	}
	return true;
}

static int
placeholders_make(struct secrets *s, char *err, size_t errlen)
{
	struct binding	*b;
	size_t		 i, pfx, len, try;
	char		*ph;

	for (i = 0; i < s->n; i++) {
		b = &s->b[i];
		pfx = prefix_len(b->value, b->vlen);
		len = b->vlen > SECRETS_PH_MIN ? b->vlen : SECRETS_PH_MIN;
		ph = xcalloc(len + 1, 1);
		memcpy(ph, b->value, pfx);
		memcpy(ph + pfx, SECRETS_MARKER, MARKER_LEN);
		for (try = 0; try < PH_TRIES; try++) {
			if (random_alnum(ph + pfx + MARKER_LEN,
			    len - pfx - MARKER_LEN) != 0) {
				freezero(ph, len);
				snprintf(err, errlen, "cannot make "
				    "placeholders for --secret: OpenSSL's "
				    "RAND_bytes failed");
				return -1;
			}
			if (placeholder_ok(s, i, ph, len))
				break;
		}
		if (try == PH_TRIES) {
			freezero(ph, len);
			snprintf(err, errlen, "cannot make a placeholder for "
			    "%s that does not give its value away: is the "
			    "value only a few characters long?", b->name);
			return -1;
		}
		b->ph = ph;
		b->phlen = len;
	}
	return 0;
}

static bool
is_bound(const struct secrets *s, const char *name, size_t len)
{
	size_t	i;

	for (i = 0; i < s->n; i++)
		if (strlen(s->b[i].name) == len &&
		    memcmp(s->b[i].name, name, len) == 0)
			return true;
	return false;
}

/* The longest value starting at v[i] that the environment swaps. */
static const struct binding *
env_value_at(const struct secrets *s, const char *v, size_t len, size_t i)
{
	const struct binding	*b, *best = NULL;
	size_t			 j;

	for (j = 0; j < s->n; j++) {
		b = &s->b[j];
		if (b->vlen < ENV_SHORT && !(i == 0 && b->vlen == len))
			continue;
		if (b->vlen <= len - i && memcmp(v + i, b->value,
		    b->vlen) == 0 && (best == NULL || b->vlen > best->vlen))
			best = b;
	}
	return best;
}

/* v with values swapped for placeholders into out (NULL: measure only). */
static size_t
env_swap(const struct secrets *s, const char *v, size_t len, char *out)
{
	const struct binding	*b;
	size_t			 i = 0, o = 0;

	while (i < len) {
		if ((b = env_value_at(s, v, len, i)) != NULL) {
			if (out != NULL)
				memcpy(out + o, b->ph, b->phlen);
			o += b->phlen;
			i += b->vlen;
		} else {
			if (out != NULL)
				out[o] = v[i];
			o++;
			i++;
		}
	}
	return o;
}

static bool
env_holds_value(const struct secrets *s, const char *v, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++)
		if (env_value_at(s, v, len, i) != NULL)
			return true;
	return false;
}

/* Is env[i] the first definition of its name (the one getenv sees)? */
static bool
env_first(char *const *env, size_t i, size_t namelen)
{
	size_t	j;

	for (j = 0; j < i; j++)
		if (strncmp(env[j], env[i], namelen + 1) == 0)
			return false;
	return true;
}

/* Variables other than the KEYs that held a bound value (SPEC §4). */
static void
env_rewrite(struct secrets *s, char *const *env)
{
	const char	*e, *eq, *v;
	char		*out;
	size_t		 i, len, olen;

	for (i = 0; env != NULL && env[i] != NULL; i++) {
		e = env[i];
		if ((eq = strchr(e, '=')) == NULL ||
		    is_bound(s, e, (size_t)(eq - e)))
			continue;
		v = eq + 1;
		len = strlen(v);
		if (!env_holds_value(s, v, len) ||
		    !env_first(env, i, (size_t)(eq - e)))
			continue;
		olen = env_swap(s, v, len, NULL);
		out = xcalloc(olen + 1, 1);
		env_swap(s, v, len, out);
		/* Pieces may join into a short value: then blank it. */
		if (env_holds_value(s, out, olen))
			strlist_add_owned(&s->extra, xprintf("%.*s=",
			    (int)(eq - e), e));
		else
			strlist_add_owned(&s->extra, xprintf("%.*s=%s",
			    (int)(eq - e), e, out));
		freezero(out, olen);
	}
}

void
secrets_take_placeholders(struct secrets *s, const char *const *names,
    const char *const *phs, size_t n, char *const *env)
{
	for (size_t i = 0; i < s->n; i++)
		for (size_t k = 0; k < n; k++) {
			struct binding *b = &s->b[i];

			if (strcmp(b->name, names[k]) != 0 || *phs[k] == '\0')
				continue;
			freezero(b->ph, b->phlen);
			b->ph = xstrdup(phs[k]);
			b->phlen = strlen(b->ph);
			break;
		}
	strlist_clear(&s->extra);
	env_rewrite(s, env);
}

struct secrets *
secrets_new(char *const *specs, size_t n, char *const *env, char *err,
    size_t errlen)
{
	struct secrets	*s;
	size_t		 i;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	s = xcalloc(1, sizeof *s);
	s->b = xcalloc(n, sizeof *s->b);
	for (i = 0; i < n; i++) {
		if (specs[i] == NULL) {
			snprintf(err, errlen, "bad --secret: no spec");
			goto out;
		}
		if (binding_add(s, specs[i], env, err, errlen) != 0)
			goto out;
	}
	if (placeholders_make(s, err, errlen) != 0)
		goto out;
	env_rewrite(s, env);
	return s;
out:
	secrets_free(s);
	return NULL;
}

void
secrets_wipe(struct secrets *s)
{
	size_t	i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		if (s->b[i].value != NULL)
			OPENSSL_cleanse(s->b[i].value, s->b[i].vlen);
}

void
secrets_free(struct secrets *s)
{
	struct binding	*b;
	size_t		 i;

	if (s == NULL)
		return;
	secrets_wipe(s);
	for (i = 0; i < s->n; i++) {
		b = &s->b[i];
		free(b->name);
		free(b->host);
		free(b->header);
		free(b->value);		/* wiped above */
		freezero(b->ph, b->phlen);
		policy_free(b->policy);
	}
	free(s->b);
	strlist_clear(&s->extra);
	free(s);
}

size_t
secrets_count(const struct secrets *s)
{
	return s != NULL ? s->n : 0;
}

static const struct binding *
binding(const struct secrets *s, size_t i)
{
	return (s != NULL && i < s->n) ? &s->b[i] : NULL;
}

const char *
secrets_name(const struct secrets *s, size_t i)
{
	const struct binding	*b = binding(s, i);

	return b != NULL ? b->name : NULL;
}

const char *
secrets_host(const struct secrets *s, size_t i)
{
	const struct binding	*b = binding(s, i);

	return b != NULL ? b->host : NULL;
}

const char *
secrets_header(const struct secrets *s, size_t i)
{
	const struct binding	*b = binding(s, i);

	return b != NULL ? b->header : NULL;
}

const char *
secrets_header_name(const struct secrets *s, size_t i)
{
	const struct binding	*b = binding(s, i);

	return b != NULL ? header_of(b) : NULL;
}

const char *
secrets_placeholder(const struct secrets *s, size_t i)
{
	const struct binding	*b = binding(s, i);

	return b != NULL ? b->ph : NULL;
}

void
secrets_child_env(const struct secrets *s, struct strlist *out)
{
	size_t	i;

	if (s == NULL)
		return;
	for (i = 0; i < s->n; i++)
		strlist_add_owned(out, xprintf("%s=%s", s->b[i].name,
		    s->b[i].ph));
	for (i = 0; i < s->extra.n; i++)
		strlist_add(out, s->extra.v[i]);
}

bool
secrets_applies(const struct secrets *s, size_t i, const struct dest *d)
{
	const struct binding	*b = binding(s, i);

	return b != NULL && applies(b, d);
}

size_t
secrets_next(const struct secrets *s, const struct dest *d, size_t from)
{
	size_t	i;

	for (i = from; i < secrets_count(s); i++)
		if (applies(&s->b[i], d))
			return i;
	return secrets_count(s);
}

bool
secrets_for_host(const struct secrets *s, const struct dest *d)
{
	return secrets_next(s, d, 0) < secrets_count(s);
}

/* Built with memcpy into an exact buffer: no stdio copy of the value. */
char *
secrets_header_line(const struct secrets *s, size_t i, size_t *len)
{
	const struct binding	*b = binding(s, i);
	const char		*name, *sep;
	size_t			 nl, sl, n;
	char			*p;

	*len = 0;
	if (b == NULL)
		return NULL;
	name = header_of(b);
	sep = b->header != NULL ? ": " : ": Bearer ";
	nl = strlen(name);
	sl = strlen(sep);
	n = nl + sl + b->vlen + 2;
	p = xcalloc(n + 1, 1);
	memcpy(p, name, nl);
	memcpy(p + nl, sep, sl);
	memcpy(p + nl + sl, b->value, b->vlen);
	memcpy(p + nl + sl + b->vlen, "\r\n", 2);
	*len = n;
	return p;
}

static void
sink_emit(void *arg, const void *p, size_t n)
{
	struct sink	*k = arg;

	if (k->buf != NULL) {
		if (n > k->cap - k->off)
			fatal("secrets: substitution outgrew its buffer");
		memcpy(k->buf + k->off, p, n);
	}
	k->off += n;
}

static void
subst_reset(struct subst *sb)
{
	sb->nhold = 0;
	sb->count = 0;
	sb->delta = 0;
}

size_t
secrets_replace(const struct secrets *s, const struct dest *d,
    const char *in, size_t len, char **out, size_t *outlen)
{
	struct subst	*sb;
	struct sink	 k;
	size_t		 n;

	*out = NULL;
	*outlen = 0;
	/* Every placeholder holds the marker: most values end here. */
	if (secrets_count(s) == 0 ||
	    memmem(in, len, SECRETS_MARKER, MARKER_LEN) == NULL)
		return 0;
	sb = secrets_subst_new(s, d);
	memset(&k, 0, sizeof k);
	secrets_subst_feed(sb, in, len, sink_emit, &k);
	secrets_subst_finish(sb, sink_emit, &k);
	if ((n = sb->count) == 0)
		goto out;
	k.cap = k.off;
	k.off = 0;
	k.buf = xcalloc(k.cap + 1, 1);
	subst_reset(sb);
	secrets_subst_feed(sb, in, len, sink_emit, &k);
	secrets_subst_finish(sb, sink_emit, &k);
	*out = k.buf;
	*outlen = k.off;
out:
	secrets_subst_free(sb);
	return n;
}

struct subst *
secrets_subst_new(const struct secrets *s, const struct dest *d)
{
	struct subst		*sb = xcalloc(1, sizeof *sb);
	const struct binding	*b;
	size_t			 i;

	sb->preserving = true;
	sb->b = xcalloc(secrets_count(s), sizeof *sb->b);
	sb->next = xcalloc(secrets_count(s), sizeof *sb->next);
	for (i = secrets_next(s, d, 0); i < secrets_count(s);
	    i = secrets_next(s, d, i + 1)) {
		b = &s->b[i];
		sb->b[sb->nb++] = b;
		if (b->phlen > sb->maxph)
			sb->maxph = b->phlen;
		if (b->phlen != b->vlen)
			sb->preserving = false;
	}
	sb->hold = xcalloc(sb->maxph + 1, 1);
	sb->join = xcalloc(2 * sb->maxph + 1, 1);
	return sb;
}

void
secrets_subst_free(struct subst *sb)
{
	if (sb == NULL)
		return;
	free(sb->b);
	free(sb->next);
	free(sb->hold);
	free(sb->join);
	free(sb);
}

static void
put(void (*emit)(void *, const void *, size_t), void *arg, const void *p,
    size_t n)
{
	if (n > 0)
		emit(arg, p, n);
}

static size_t
find(const uint8_t *buf, size_t n, size_t p, const struct binding *b)
{
	const uint8_t	*m;

	if (p >= n)
		return NONE;
	if ((m = memmem(buf + p, n - p, b->ph, b->phlen)) == NULL)
		return NONE;
	return (size_t)(m - buf);
}

/*
 * The first position in [p, end) where buf[t..n) is a proper prefix of a
 * placeholder: undecided until more input comes. Only the last maxph - 1
 * positions can be.
 */
static size_t
partial(const struct subst *sb, const uint8_t *buf, size_t n, size_t p,
    size_t end)
{
	const struct binding	*b;
	size_t			 t, j;

	t = n >= sb->maxph ? n - sb->maxph + 1 : 0;
	for (t = t > p ? t : p; t < end; t++) {
		for (j = 0; j < sb->nb; j++) {
			b = sb->b[j];
			if (n - t < b->phlen && (uint8_t)b->ph[0] == buf[t] &&
			    memcmp(buf + t, b->ph, n - t) == 0)
				return t;
		}
	}
	return NONE;
}

/*
 * Decide positions p..lim-1 of buf[0..n), n being all the input seen so
 * far: emit plain bytes and values, leftmost match first. Returns the first
 * undecided position: lim or past it (a match ran on), or a position
 * before lim where a placeholder may begin but the input ends first.
 */
static size_t
scan(struct subst *sb, const uint8_t *buf, size_t n, size_t p, size_t lim,
    void (*emit)(void *, const void *, size_t), void *arg)
{
	const struct binding	*b;
	size_t			 j, q, qj = 0, t;

	for (j = 0; j < sb->nb; j++)
		sb->next[j] = find(buf, n, p, sb->b[j]);
	while (p < lim) {
		q = NONE;
		for (j = 0; j < sb->nb; j++) {
			if (sb->next[j] < p)
				sb->next[j] = find(buf, n, p, sb->b[j]);
			if (sb->next[j] < q) {
				q = sb->next[j];
				qj = j;
			}
		}
		if ((t = partial(sb, buf, n, p, q < lim ? q : lim)) != NONE) {
			put(emit, arg, buf + p, t - p);
			return t;
		}
		if (q >= lim) {
			put(emit, arg, buf + p, lim - p);
			return lim;
		}
		b = sb->b[qj];
		put(emit, arg, buf + p, q - p);
		put(emit, arg, b->value, b->vlen);
		sb->count++;
		sb->delta += (int64_t)b->vlen - (int64_t)b->phlen;
		p = q + b->phlen;
	}
	return p;
}

void
secrets_subst_feed(struct subst *sb, const void *in, size_t len,
    void (*emit)(void *, const void *, size_t), void *arg)
{
	const uint8_t	*buf = in;
	size_t		 h = sb->nhold, k, p, off = 0;

	if (len == 0)
		return;
	if (sb->nb == 0) {
		emit(arg, in, len);
		return;
	}
	if (h > 0) {
		/*
		 * A match starting in the held bytes ends within the next
		 * maxph - 1 input bytes: decide those starts on a small
		 * joined copy, then go on in the input itself.
		 */
		k = len < sb->maxph - 1 ? len : sb->maxph - 1;
		memcpy(sb->join, sb->hold, h);
		memcpy(sb->join + h, buf, k);
		p = scan(sb, sb->join, h + k, 0, h, emit, arg);
		if (p < h) {
			/* Still undecided, so the input was all used. */
			if (k != len)
				fatal("secrets: undecided bytes mid-input");
			sb->nhold = h + k - p;
			memmove(sb->hold, sb->join + p, sb->nhold);
			return;
		}
		off = p - h;
		sb->nhold = 0;
	}
	p = scan(sb, buf, len, off, len, emit, arg);
	sb->nhold = len - p;
	memcpy(sb->hold, buf + p, sb->nhold);
}

void
secrets_subst_finish(struct subst *sb,
    void (*emit)(void *, const void *, size_t), void *arg)
{
	put(emit, arg, sb->hold, sb->nhold);
	sb->nhold = 0;
}

int64_t
secrets_subst_delta(const struct subst *sb)
{
	return sb->delta;
}

size_t
secrets_subst_count(const struct subst *sb)
{
	return sb->count;
}

bool
secrets_subst_preserving(const struct subst *sb)
{
	return sb->preserving;
}

bool
secrets_subst_active(const struct subst *sb)
{
	return sb->nb > 0;
}

void
secrets_scrub(const struct secrets *s, char *str)
{
	char *p;

	for (size_t i = 0; s != NULL && i < s->n; i++)
		while (s->b[i].vlen > 0 &&
		    (p = strstr(str, s->b[i].value)) != NULL)
			memset(p, '*', s->b[i].vlen);
}
