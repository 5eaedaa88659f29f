/*
 * The client side of the control API (daemon/control.h), for --via: short
 * blocking exchanges on the daemon's Unix socket, each bounded in time.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "builtin/http_parse.h"
#include "common/log.h"
#include "common/strlist.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "daemon/registration.h"
#include "launcher/config.h"
#include "launcher/via.h"

#define VIA_TIMEOUT_MS	5000
#define VIA_ANSWER_MAX	(256 * 1024)

struct via {
	char		*path;
	char		*id;
	char		*token;
	char		*userinfo;	/* ID:TOKEN */
	char		*host;
	unsigned	 port;
	char		*ca_file;
	struct strlist	 names;		/* secret KEY ... */
	struct strlist	 placeholders;	/* ... the daemon's placeholder */
	char		*json;		/* the registration, until sent */
};

/* One exchange: the request out, the whole answer (Connection: close)
 * in. Returns the status (body in *body, NUL-terminated), or -1. */
static int
exchange(const char *path, const char *method, const char *target,
    const char *json, char **body, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct http_response	 resp;
	struct pollfd		 pfd;
	char			*req, *buf = NULL;
	size_t			 len = 0, cap = 0, off = 0, reqlen;
	long long		 deadline;
	struct timespec		 ts;
	int			 fd, n, status = -1;

	*body = NULL;
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "--via '%s': path too long", path);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
	    0)) == -1 || connect(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		snprintf(err, errlen, "cannot reach the daemon at %s: %s", path,
		    strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	req = xprintf("%s %s HTTP/1.1\r\nHost: egress-run\r\nConnection: "
	    "close\r\nContent-Type: application/json\r\nContent-Length: %zu"
	    "\r\n\r\n%s", method, target, json ? strlen(json) : 0,
	    json ? json : "");
	reqlen = strlen(req);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	deadline = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000 + VIA_TIMEOUT_MS;
	pfd.fd = fd;
	for (;;) {
		long long now;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
		if (now >= deadline) {
			snprintf(err, errlen, "the daemon at %s did not answer "
			    "within %d s", path, VIA_TIMEOUT_MS / 1000);
			goto out;
		}
		pfd.events = off < reqlen ? POLLOUT : POLLIN;
		if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
			continue;
		if (off < reqlen) {
			ssize_t w = write(fd, req + off, reqlen - off);

			if (w > 0)
				off += (size_t)w;
			else if (w == -1 && errno != EAGAIN && errno != EINTR) {
				snprintf(err, errlen, "cannot write to the "
				    "daemon at %s: %s", path, strerror(errno));
				goto out;
			}
			continue;
		}
		if (len + 4096 > cap) {
			if (cap >= VIA_ANSWER_MAX) {
				snprintf(err, errlen, "the daemon's answer is "
				    "too long");
				goto out;
			}
			cap = cap ? cap * 2 : 8192;
			buf = xreallocarray(buf, 1, cap + 1);
		}
		ssize_t r = read(fd, buf + len, cap - len);
		if (r > 0) {
			len += (size_t)r;
			continue;
		}
		if (r == -1 && (errno == EAGAIN || errno == EINTR))
			continue;
		break;			/* EOF: the whole answer is here */
	}
	if (buf == NULL || (n = http_parse_response((uint8_t *)buf, len,
	    false, false, &resp)) <= 0) {
		snprintf(err, errlen, "the daemon at %s sent no HTTP answer",
		    path);
		goto out;
	}
	buf[len] = '\0';
	*body = xstrdup(buf + n);
	status = resp.status;
out:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, len);	/* a token, placeholders */
		free(buf);
	}
	OPENSSL_cleanse(req, reqlen);		/* secret values */
	free(req);
	close(fd);
	return status;
}

static void
add_list(cJSON *o, const char *key, const struct strlist *l)
{
	cJSON *a;

	if (l->n == 0)
		return;
	a = cJSON_AddArrayToObject(o, key);
	for (size_t i = 0; i < l->n; i++)
		cJSON_AddItemToArray(a, cJSON_CreateString(l->v[i]));
}

static const char *
env_get(char *const *env, const char *name, size_t len)
{
	for (size_t i = 0; env != NULL && env[i] != NULL; i++)
		if (strncmp(env[i], name, len) == 0 && env[i][len] == '=')
			return env[i] + len + 1;
	return NULL;
}

/* This run's policy as a registration; secret values noted in v. */
static char *
registration(struct via *v, const struct config *cfg, char *const *env)
{
	cJSON	*o = cJSON_CreateObject(), *rules, *envo;
	char	 t[32], *json;

	cJSON_AddBoolToObject(o, "token", true);
	registration_format_time(time(NULL) + VIA_LEASE, t, sizeof t);
	cJSON_AddStringToObject(o, "expires_at", t);
	add_list(o, "allow", &cfg->allow);
	add_list(o, "deny", &cfg->deny);
	add_list(o, "resolve", &cfg->resolve);
	add_list(o, "secrets", &cfg->secrets);
	envo = cJSON_AddObjectToObject(o, "env");
	for (size_t i = 0; i < cfg->secrets.n; i++) {
		const char *s = cfg->secrets.v[i];
		size_t eq = strcspn(s, "="), colon = strcspn(s, ":");
		const char *val;

		if (eq < colon) {	/* KEY=value:host: the value is in it */
			strlist_add_owned(&v->names, xstrndup(s, eq));
			continue;
		}
		strlist_add_owned(&v->names, xstrndup(s, colon));
		if ((val = env_get(env, s, colon)) != NULL) {
			char *k = xstrndup(s, colon);

			cJSON_AddStringToObject(envo, k, val);
			free(k);
		}
	}
	if (cfg->rules.n > 0) {
		rules = cJSON_AddArrayToObject(o, "rules");
		for (size_t i = 0; i < cfg->rules.n; i++)
			cJSON_AddItemToArray(rules, cfg->rules.v[i][0] == '{' ?
			    cJSON_Parse(cfg->rules.v[i]) :
			    cJSON_CreateString(cfg->rules.v[i]));
	}
	add_list(o, "preset", &cfg->presets);
	add_list(o, "git_repos", &cfg->git_repos);
	add_list(o, "git_protect", &cfg->git_protect);
	add_list(o, "git_push_prefix", &cfg->git_push_prefix);
	if (cfg->git_allow_delete)
		cJSON_AddBoolToObject(o, "git_allow_delete", true);
	if (cfg->git_allow_force)
		cJSON_AddBoolToObject(o, "git_allow_force", true);
	if (cfg->llm_budget)
		cJSON_AddNumberToObject(o, "llm_budget", cfg->llm_budget);
	if (cfg->llm_max_requests)
		cJSON_AddNumberToObject(o, "llm_max_requests",
		    cfg->llm_max_requests);
	add_list(o, "hooks", &cfg->hooks);
	json = cJSON_PrintUnformatted(o);
	/* The values in the tree are copies: wipe them too. */
	for (cJSON *e = envo->child; e != NULL; e = e->next)
		OPENSSL_cleanse(e->valuestring, strlen(e->valuestring));
	cJSON_Delete(o);
	return json;
}

static int
take_answer(struct via *v, const char *body, const char *dir, char *err,
    size_t errlen)
{
	cJSON		*j = cJSON_Parse(body), *e;
	const char	*proxy;
	char		*hp = NULL;
	int		 r = -1;

	if (j == NULL || !cJSON_IsString(e = cJSON_GetObjectItem(j, "id")))
		goto bad;
	v->id = xstrdup(e->valuestring);
	if (!cJSON_IsString(e = cJSON_GetObjectItem(j, "token")))
		goto bad;
	v->token = xstrdup(e->valuestring);
	if (!cJSON_IsString(e = cJSON_GetObjectItem(j, "proxy")) ||
	    strncmp(e->valuestring, "http://", 7) != 0)
		goto bad;
	proxy = e->valuestring + 7;
	hp = xstrndup(proxy, strcspn(proxy, "/"));
	if (util_hostport(hp, &v->host, &v->port, false) != 0)
		goto bad;
	v->userinfo = xprintf("%s:%s", v->id, v->token);
	for (size_t i = 0; i < v->names.n; i++) {
		cJSON *ph = cJSON_GetObjectItem(cJSON_GetObjectItem(j,
		    "placeholders"), v->names.v[i]);

		strlist_add(&v->placeholders, cJSON_IsString(ph) ?
		    ph->valuestring : "");
	}
	if (cJSON_IsString(e = cJSON_GetObjectItem(j, "ca"))) {
		FILE *f;

		v->ca_file = xprintf("%s/daemon-ca.pem", dir);
		if ((f = fopen(v->ca_file, "we")) == NULL ||
		    fputs(e->valuestring, f) == EOF || fclose(f) != 0) {
			snprintf(err, errlen, "cannot write the daemon's CA "
			    "to %s: %s", v->ca_file, strerror(errno));
			goto out;
		}
	}
	r = 0;
	goto out;
bad:
	snprintf(err, errlen, "the daemon at %s sent an answer without "
	    "its id, token and proxy", v->path);
out:
	free(hp);
	if (j != NULL) {
		e = cJSON_GetObjectItem(j, "token");
		if (cJSON_IsString(e))
			OPENSSL_cleanse(e->valuestring, strlen(e->valuestring));
	}
	cJSON_Delete(j);
	return r;
}

struct via *
via_new(const struct config *cfg, char *const *env)
{
	struct via *v = xcalloc(1, sizeof *v);

	v->path = xstrdup(cfg->via);
	v->json = registration(v, cfg, env);
	return v;
}

int
via_register(struct via *v, const char *dir, char *err, size_t errlen,
    int *refused)
{
	char	*body = NULL;
	int	 status;

	*refused = 0;
	status = exchange(v->path, "POST", "/v1/sandboxes", v->json, &body,
	    err, errlen);
	freezero_str(v->json);		/* secret values */
	v->json = NULL;
	if (status == 201 && take_answer(v, body, dir, err, errlen) == 0) {
		freezero_str(body);
		log_info("registered with the daemon at %s as sandbox %s",
		    v->path, v->id);
		return 0;
	}
	if (status > 0 && status != 201) {
		cJSON *j = cJSON_Parse(body), *e;

		e = cJSON_GetObjectItem(j, "error");
		snprintf(err, errlen, "the daemon at %s refused the "
		    "registration (%d): %s", v->path, status,
		    cJSON_IsString(e) ? e->valuestring : "no reason given");
		cJSON_Delete(j);
		for (char *p = err; *p != '\0'; p++)	/* one line */
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
		*refused = status >= 400 && status < 500;
	}
	freezero_str(body);
	free(v->id);		/* nothing registered to delete */
	v->id = NULL;
	return -1;
}

const char *
via_host(const struct via *v)
{
	return v->host;
}

unsigned
via_port(const struct via *v)
{
	return v->port;
}

const char *
via_userinfo(const struct via *v)
{
	return v->userinfo;
}

const char *
via_ca_file(const struct via *v)
{
	return v->ca_file;
}

void
via_placeholders(const struct via *v, const char *const **names,
    const char *const **phs, size_t *n)
{
	*names = (const char *const *)v->names.v;
	*phs = (const char *const *)v->placeholders.v;
	*n = v->placeholders.n;
}

int
via_renew(struct via *v)
{
	char	 err[512], t[32], *json, *body = NULL, *target;
	int	 status;

	registration_format_time(time(NULL) + VIA_LEASE, t, sizeof t);
	json = xprintf("{\"expires_at\":\"%s\"}", t);
	target = xprintf("/v1/sandboxes/%s", v->id);
	status = exchange(v->path, "PATCH", target, json, &body, err,
	    sizeof err);
	free(json);
	free(target);
	free(body);
	if (status == 200)
		return 0;
	if (status > 0)
		snprintf(err, sizeof err, "the daemon answered %d", status);
	log_warn("cannot renew sandbox %s with the daemon: %s", v->id, err);
	return -1;
}

void
via_free(struct via *v)
{
	char	 err[512], *body = NULL, *target;

	if (v == NULL)
		return;
	if (v->id != NULL) {
		int status;

		target = xprintf("/v1/sandboxes/%s", v->id);
		status = exchange(v->path, "DELETE", target, NULL, &body, err,
		    sizeof err);
		if (status > 0 && status != 204)
			snprintf(err, sizeof err, "the daemon answered %d",
			    status);
		if (status != 204)
			log_warn("sandbox %s not deleted: %s (it expires "
			    "within %d s)", v->id, err, VIA_LEASE);
		free(target);
		free(body);
	}
	strlist_clear(&v->names);
	strlist_clear(&v->placeholders);
	freezero_str(v->json);
	freezero_str(v->token);
	freezero_str(v->userinfo);
	free(v->id);
	free(v->host);
	free(v->ca_file);
	free(v->path);
	free(v);
}
