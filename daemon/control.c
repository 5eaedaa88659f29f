/*
 * The control API's server: one small HTTP/1.1 exchange per connection
 * (Connection: close), heads through the proxy's own parser, bodies by
 * Content-Length up to 1 MiB, a bounded number of clients with a deadline
 * each, so a flood costs the daemon little and starves nobody for long.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "builtin/http_parse.h"
#include "builtin/llm.h"
#include "builtin/proxy.h"
#include "builtin/sandbox.h"
#include "builtin/secrets.h"
#include "builtin/server.h"
#include "common/log.h"
#include "common/xmalloc.h"
#include "daemon/control.h"
#include "daemon/registration.h"

#define CONTROL_MAX_CLIENTS	64
#define CONTROL_TIMEOUT		10	/* s: a whole exchange */
#define CONTROL_SWEEP		1	/* s: expired registrations */
#define CONTROL_EXPIRED_KEPT	60	/* s: "registration expired" */
#define TOKEN_BYTES		24


struct client {
	struct control		*ctl;
	struct bufferevent	*bev;
	struct event		*deadline;
	size_t			 need;		/* head + body, once the head
						   is known */
	bool			 answered;
	TAILQ_ENTRY(client)	 entry;
};

struct control {
	struct event_base	*base;
	struct server		*srv;
	char			*path;
	int			 fd;
	struct event		*ev;
	struct event		*sweep;
	unsigned		 nclients;
	TAILQ_HEAD(, client)	 clients;
	uint64_t		 next_id;
};

/* One answer: status, JSON (or none), Allow for a 405. */
struct answer {
	int		 status;
	cJSON		*json;
	const char	*allow;
};

static const char *
status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

static void
client_free(struct client *cl)
{
	struct control *ctl = cl->ctl;

	TAILQ_REMOVE(&ctl->clients, cl, entry);
	ctl->nclients--;
	/* A request may have carried secret values. */
	OPENSSL_cleanse(evbuffer_pullup(bufferevent_get_input(cl->bev), -1),
	    evbuffer_get_length(bufferevent_get_input(cl->bev)));
	bufferevent_free(cl->bev);
	event_free(cl->deadline);
	free(cl);
}

static void
error_answer(struct answer *a, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
error_answer(struct answer *a, int status, const char *fmt, ...)
{
	char	msg[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	a->status = status;
	cJSON_Delete(a->json);
	a->json = cJSON_CreateObject();
	cJSON_AddStringToObject(a->json, "error", msg);
}

static void
send_answer(struct client *cl, struct answer *a)
{
	struct evbuffer	*out = bufferevent_get_output(cl->bev);
	char		*body = NULL;
	size_t		 len = 0;

	if (a->json != NULL) {
		body = cJSON_PrintUnformatted(a->json);
		len = strlen(body);
	}
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n%s%s%s"
	    "Content-Length: %zu\r\nConnection: close\r\n\r\n", a->status,
	    status_text(a->status), a->json != NULL ? "Content-Type: "
	    "application/json\r\n" : "", a->allow != NULL ? "Allow: " : "",
	    a->allow != NULL ? a->allow : "", len + (len > 0));
	if (body != NULL) {
		evbuffer_add(out, body, len);
		evbuffer_add(out, "\n", 1);
		/* A registration's answer holds its token. */
		OPENSSL_cleanse(body, len);
		free(body);
	}
	cJSON_Delete(a->json);
	a->json = NULL;
	cl->answered = true;
	bufferevent_disable(cl->bev, EV_READ);
}

/* ------------------------------------------------------------ views */

static void
add_counters(cJSON *o, const struct sandbox *sb)
{
	cJSON *c = cJSON_AddObjectToObject(o, "counters");

	cJSON_AddNumberToObject(c, "connections", (double)sb->n->conns);
	cJSON_AddNumberToObject(c, "requests", (double)sb->n->requests);
	cJSON_AddNumberToObject(c, "denials", (double)sb->n->denials);
	cJSON_AddNumberToObject(c, "bytes_up", (double)sb->n->bytes_up);
	cJSON_AddNumberToObject(c, "bytes_down", (double)sb->n->bytes_down);
	cJSON_AddNumberToObject(c, "llm_input_tokens",
	    (double)sb->n->llm_input);
	cJSON_AddNumberToObject(c, "llm_output_tokens",
	    (double)sb->n->llm_output);
	cJSON_AddNumberToObject(c, "llm_tokens",
	    (double)llm_stats_tokens(sb->llm));
}

static cJSON *
view(const struct sandbox *sb)
{
	cJSON	*o = cJSON_CreateObject(), *src;
	char	 t[32];

	cJSON_AddStringToObject(o, "id", sb->id);
	src = cJSON_AddArrayToObject(o, "source");
	for (size_t i = 0; i < sb->source_list.n; i++)
		cJSON_AddItemToArray(src,
		    cJSON_CreateString(sb->source_list.v[i]));
	cJSON_AddBoolToObject(o, "token", sb->token != NULL);
	if (sb->expires != 0) {
		registration_format_time(sb->expires, t, sizeof t);
		cJSON_AddStringToObject(o, "expires_at", t);
	} else
		cJSON_AddNullToObject(o, "expires_at");
	cJSON_AddBoolToObject(o, "expired", sandbox_expired(sb, time(NULL)));
	add_counters(o, sb);
	return o;
}

static char *
read_ca(const struct server *srv)
{
	const char	*path = server_ca_file(srv);
	FILE		*f;
	char		*pem;
	long		 n;

	if (path == NULL || (f = fopen(path, "re")) == NULL)
		return NULL;
	if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) <= 0 || n > 65536 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fclose(f);
		return NULL;
	}
	pem = xcalloc(1, (size_t)n + 1);
	if (fread(pem, 1, (size_t)n, f) != (size_t)n) {
		free(pem);
		pem = NULL;
	}
	fclose(f);
	return pem;
}

/* A registration's answer: the view, and what its user needs. */
static cJSON *
created(const struct control *ctl, const struct sandbox *sb)
{
	cJSON	*o = view(sb), *ph;
	char	*url, *pem;

	if (sb->token != NULL)
		cJSON_ReplaceItemInObject(o, "token",
		    cJSON_CreateString(sb->token));
	url = xprintf(strchr(server_host(ctl->srv), ':') ? "http://[%s]:%u" :
	    "http://%s:%u", server_host(ctl->srv), server_port(ctl->srv));
	cJSON_AddStringToObject(o, "proxy", url);
	free(url);
	ph = cJSON_AddObjectToObject(o, "placeholders");
	for (size_t i = 0; i < secrets_count(sb->secrets); i++)
		cJSON_AddStringToObject(ph, secrets_name(sb->secrets, i),
		    secrets_placeholder(sb->secrets, i));
	if ((pem = read_ca(ctl->srv)) != NULL) {
		cJSON_AddStringToObject(o, "ca", pem);
		free(pem);
	} else
		cJSON_AddNullToObject(o, "ca");
	return o;
}

/* ------------------------------------------------------------ actions */

static char *
new_token(void)
{
	unsigned char	b[TOKEN_BYTES];
	char		*t = xcalloc(1, 2 * TOKEN_BYTES + 1);

	if (RAND_bytes(b, sizeof b) != 1)
		abort();	/* no randomness: no tokens */
	for (size_t i = 0; i < sizeof b; i++)
		snprintf(t + 2 * i, 3, "%02x", b[i]);
	OPENSSL_cleanse(b, sizeof b);
	return t;
}

/* Another sandbox with the same source would make attribution a guess. */
static const struct sandbox *
source_taken(const struct control *ctl, const struct registration *r,
    const char *except, const char **which)
{
	struct sandbox *sb;

	TAILQ_FOREACH(sb, ctl->srv->sandboxes, entry) {
		if (except != NULL && strcmp(sb->id, except) == 0)
			continue;
		for (size_t i = 0; i < r->sources.n; i++)
			for (size_t k = 0; k < sb->source_list.n; k++)
				if (strcmp(r->sources.v[i],
				    sb->source_list.v[k]) == 0) {
					*which = r->sources.v[i];
					return sb;
				}
	}
	return NULL;
}

/*
 * A sandbox from a registration; prev is the one it replaces (PUT), or
 * NULL. Identity not given in a PUT stays as it was.
 */
static struct sandbox *
build(struct control *ctl, struct registration *r, const char *id,
    struct sandbox *prev, struct answer *a)
{
	struct sandbox	*sb;
	const char	*which;
	char		 err[512];

	if (r->sources.n > 0 && source_taken(ctl, r, id, &which) != NULL) {
		error_answer(a, 409, "source %s is already another sandbox's",
		    which);
		return NULL;
	}
	if (prev != NULL && prev == ctl->srv->sb && r->cfg.secrets.n > 0) {
		error_answer(a, 400, "registration: a run's secrets are fixed "
		    "when it starts (its COMMAND holds their placeholders): "
		    "leave 'secrets' out");
		return NULL;
	}
	/* Values for KEY:host secrets: the registration's "env" only. The
	 * daemon's own environment is not for whoever can register to send
	 * to a host of their choosing. */
	if ((sb = sandbox_new(ctl->srv, id, &r->cfg, prev == ctl->srv->sb &&
	    prev != NULL && prev->secrets_owner == NULL && !prev->own_secrets ?
	    prev->secrets : NULL, strlist_array(&r->env), prev, err,
	    sizeof err)) == NULL) {
		error_answer(a, 400, "registration: %s", err);
		return NULL;
	}
	if (r->sources.n > 0 || (prev != NULL && prev->source_list.n > 0))
		if (sandbox_set_sources(sb, r->sources.n > 0 ?
		    (const char *const *)r->sources.v :
		    (const char *const *)prev->source_list.v, r->sources.n > 0 ?
		    r->sources.n : prev->source_list.n, err, sizeof err) != 0) {
			sandbox_unref(sb);
			error_answer(a, 400, "registration: 'source': %s", err);
			return NULL;
		}
	if (r->has_token ? r->token : prev != NULL && prev->token != NULL)
		sb->token = prev != NULL && prev->token != NULL ?
		    xstrdup(prev->token) : new_token();
	sb->expires = r->has_expires ? r->expires : prev != NULL ?
	    prev->expires : 0;
	if (ctl->srv->sb == NULL && sb->sources == NULL && sb->token == NULL) {
		sandbox_unref(sb);
		error_answer(a, 400, "registration: give a 'source' (address "
		    "or CIDR), or 'token': true, or both: how else would its "
		    "traffic be known?");
		return NULL;
	}
	if (sb->expires != 0 && sandbox_expired(sb, time(NULL))) {
		sandbox_unref(sb);
		error_answer(a, 400, "registration: 'expires_at' is in the "
		    "past");
		return NULL;
	}
	return sb;
}

static int
parse_body(struct registration *r, const char *body, size_t len,
    struct answer *a)
{
	char err[512];

	if (registration_parse(body, len, r, err, sizeof err) != 0) {
		error_answer(a, 400, "%s", err);
		return -1;
	}
	return 0;
}

static void
do_post(struct control *ctl, const char *body, size_t len, struct answer *a)
{
	struct registration	 r;
	struct sandbox		*sb;
	char			 id[32];

	if (ctl->srv->sb != NULL) {
		error_answer(a, 405, "this run has one sandbox, 'default': "
		    "PUT /v1/sandboxes/default changes its policy");
		a->allow = "GET\r\n";
		return;
	}
	if (parse_body(&r, body, len, a) != 0)
		goto out;
	if (r.id == NULL) {
		do
			snprintf(id, sizeof id, "sb-%llu",
			    (unsigned long long)++ctl->next_id);
		while (sandbox_find(ctl->srv, id) != NULL);
	}
	if (r.id != NULL && sandbox_find(ctl->srv, r.id) != NULL) {
		error_answer(a, 409, "sandbox '%s' exists: PUT "
		    "/v1/sandboxes/%s replaces its policy", r.id, r.id);
		goto out;
	}
	if ((sb = build(ctl, &r, r.id != NULL ? r.id : id, NULL, a)) == NULL)
		goto out;
	sandbox_register(ctl->srv, sb);
	log_info("sandbox %s registered", sb->id);
	a->status = 201;
	a->json = created(ctl, sb);
out:
	registration_free(&r);
}

static void
do_put(struct control *ctl, struct sandbox *prev, const char *body,
    size_t len, struct answer *a)
{
	struct registration	 r;
	struct sandbox		*sb;

	if (parse_body(&r, body, len, a) != 0)
		goto out;
	if (r.id != NULL && strcmp(r.id, prev->id) != 0) {
		error_answer(a, 400, "registration: 'id' is '%s', the path "
		    "says '%s'", r.id, prev->id);
		goto out;
	}
	if ((sb = build(ctl, &r, prev->id, prev, a)) == NULL)
		goto out;
	sandbox_register(ctl->srv, sb);
	log_info("sandbox %s: policy replaced", sb->id);
	a->status = 200;
	a->json = created(ctl, sb);
out:
	registration_free(&r);
}

/* Renewal: "expires_at" only (what egress-run --via sends). */
static void
do_patch(struct sandbox *sb, const char *body, size_t len, struct answer *a)
{
	cJSON		*j = cJSON_ParseWithLength(body, len), *e;
	time_t		 t = 0;

	if (!cJSON_IsObject(j) || cJSON_GetArraySize(j) != 1 ||
	    (e = cJSON_GetObjectItemCaseSensitive(j, "expires_at")) == NULL ||
	    !(cJSON_IsNull(e) || (cJSON_IsString(e) &&
	    registration_time(e->valuestring, &t) == 0))) {
		error_answer(a, 400, "PATCH takes {\"expires_at\": RFC 3339 "
		    "time or null} and nothing else");
		cJSON_Delete(j);
		return;
	}
	cJSON_Delete(j);
	sb->expires = t;
	a->status = 200;
	a->json = view(sb);
}

static void
route(struct control *ctl, const struct http_request *req, const char *body,
    size_t len, struct answer *a)
{
	static const char	 base[] = "/v1/sandboxes";
	const char		*p = req->path.p;
	size_t			 plen = req->path.len;
	struct sandbox		*sb;
	char			 id[REGISTRATION_ID_MAX + 1];
	const char		*q;

	if ((q = memchr(p, '?', plen)) != NULL)
		plen = (size_t)(q - p);
	if (plen == sizeof base - 1 && memcmp(p, base, plen) == 0) {
		if (http_slice_eq(req->method, "GET")) {
			cJSON *list;

			a->status = 200;
			a->json = cJSON_CreateObject();
			list = cJSON_AddArrayToObject(a->json, "sandboxes");
			TAILQ_FOREACH(sb, ctl->srv->sandboxes, entry)
				cJSON_AddItemToArray(list, view(sb));
		} else if (http_slice_eq(req->method, "POST"))
			do_post(ctl, body, len, a);
		else {
			error_answer(a, 405, "use GET or POST");
			a->allow = "GET, POST\r\n";
		}
		return;
	}
	if (plen <= sizeof base || memcmp(p, base, sizeof base - 1) != 0 ||
	    p[sizeof base - 1] != '/' || plen - sizeof base >
	    REGISTRATION_ID_MAX) {
		error_answer(a, 404, "no such resource (the API is under "
		    "/v1/sandboxes)");
		return;
	}
	memcpy(id, p + sizeof base, plen - sizeof base);
	id[plen - sizeof base] = '\0';
	if ((sb = sandbox_find(ctl->srv, id)) == NULL) {
		error_answer(a, 404, "no sandbox '%s'", id);
		return;
	}
	if (http_slice_eq(req->method, "GET")) {
		a->status = 200;
		a->json = view(sb);
	} else if (http_slice_eq(req->method, "PUT"))
		do_put(ctl, sb, body, len, a);
	else if (http_slice_eq(req->method, "PATCH"))
		do_patch(sb, body, len, a);
	else if (http_slice_eq(req->method, "DELETE") &&
	    ctl->srv->sb == NULL) {
		log_info("sandbox %s deleted", sb->id);
		sandbox_drop(ctl->srv, sb, "its sandbox was deleted");
		a->status = 204;
	} else {
		error_answer(a, 405, "use GET, PUT%s", ctl->srv->sb == NULL ?
		    ", PATCH or DELETE" : " or PATCH (a run's one sandbox "
		    "cannot be deleted)");
		a->allow = ctl->srv->sb == NULL ? "GET, PUT, PATCH, DELETE\r\n" :
		    "GET, PUT, PATCH\r\n";
	}
}

/* ------------------------------------------------------------ I/O */

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct client		*cl = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct http_request	 req;
	struct answer		 a = { 0, NULL, NULL };
	size_t			 len = evbuffer_get_length(in);
	const uint8_t		*data;
	int			 n;

	if (cl->answered || (cl->need > 0 && len < cl->need))
		return;		/* the body is still coming */
	data = evbuffer_pullup(in, -1);
	n = http_parse_request(data, len, &req);
	if (n == HTTP_NEED_MORE)
		return;
	if (n < 0) {
		error_answer(&a, n == HTTP_E_TOO_LARGE ? 431 : 400, "%s",
		    http_parse_strerror(n));
		send_answer(cl, &a);
		return;
	}
	if (req.body == HTTP_BODY_CHUNKED) {
		error_answer(&a, 411, "send the body with a Content-Length");
		send_answer(cl, &a);
		return;
	}
	if (req.content_length > REGISTRATION_MAX) {
		error_answer(&a, 413, "a registration is at most 1 MiB");
		send_answer(cl, &a);
		return;
	}
	cl->need = (size_t)n + (size_t)req.content_length;
	if (len < cl->need)
		return;
	if (req.form != HTTP_FORM_ORIGIN)
		error_answer(&a, 400, "send origin-form requests "
		    "(POST /v1/sandboxes)");
	else
		route(cl->ctl, &req, (const char *)data + n,
		    (size_t)req.content_length, &a);
	send_answer(cl, &a);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct client *cl = arg;

	if (cl->answered &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		client_free(cl);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	client_free(arg);
}

/* The whole exchange has a deadline: a client that dribbles is cut. */
static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct client	*cl = arg;
	struct answer	 a = { 0, NULL, NULL };
	struct timeval	 tv = { 1, 0 };

	(void)fd;
	(void)what;
	if (cl->answered) {		/* it does not read its answer */
		client_free(cl);
		return;
	}
	error_answer(&a, 408, "the request was not complete within %d s",
	    CONTROL_TIMEOUT);
	send_answer(cl, &a);
	evtimer_add(cl->deadline, &tv);
}

/* Only this user (and root) may change policy. */
static bool
peer_allowed(int fd)
{
	struct ucred	uc;
	socklen_t	len = sizeof uc;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0)
		return false;
	return uc.uid == geteuid() || uc.uid == 0;
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct control	*ctl = arg;
	struct timeval	 tv = { CONTROL_TIMEOUT, 0 };
	struct client	*cl;
	int		 fd;

	(void)what;
	for (;;) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		if (!peer_allowed(fd)) {
			close(fd);
			continue;
		}
		/* Full: the oldest goes, so a burst of clients that never
		 * finish their requests locks nobody out for long. */
		if (ctl->nclients >= CONTROL_MAX_CLIENTS)
			client_free(TAILQ_FIRST(&ctl->clients));
		cl = xcalloc(1, sizeof *cl);
		cl->ctl = ctl;
		cl->bev = bufferevent_socket_new(ctl->base, fd,
		    BEV_OPT_CLOSE_ON_FREE);
		bufferevent_setcb(cl->bev, on_read, on_write, on_event, cl);
		cl->deadline = evtimer_new(ctl->base, on_deadline, cl);
		evtimer_add(cl->deadline, &tv);
		bufferevent_setwatermark(cl->bev, EV_READ, 0,
		    REGISTRATION_MAX + HTTP_HEAD_MAX);
		bufferevent_enable(cl->bev, EV_READ | EV_WRITE);
		TAILQ_INSERT_TAIL(&ctl->clients, cl, entry);
		ctl->nclients++;
	}
}

/* Registrations past their time: connections closed at once, the entry
 * kept a while so that a late request hears why. */
static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct control	*ctl = arg;
	struct sandbox	*sb, *next;
	time_t		 now = time(NULL);
	struct conn	*c, *cn;

	(void)fd;
	(void)what;
	for (sb = TAILQ_FIRST(ctl->srv->sandboxes); sb != NULL; sb = next) {
		next = TAILQ_NEXT(sb, entry);
		if (!sandbox_expired(sb, now))
			continue;
		if (now >= sb->expires + CONTROL_EXPIRED_KEPT) {
			log_info("sandbox %s: registration expired", sb->id);
			sandbox_drop(ctl->srv, sb, "registration expired");
			continue;
		}
		for (c = TAILQ_FIRST(&ctl->srv->conns); c != NULL; c = cn) {
			cn = TAILQ_NEXT(c, entry);
			if (c->sb == sb)
				conn_close(c, "registration expired");
		}
	}
}

/* A socket file at path: in use (-1, EADDRINUSE), or stale (removed). */
static int
clear_stale(const char *path, const struct sockaddr_un *sun)
{
	struct stat	st;
	int		fd;

	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd != -1 && connect(fd, (const struct sockaddr *)sun,
	    sizeof *sun) == 0) {
		close(fd);
		errno = EADDRINUSE;
		return -1;
	}
	if (fd != -1)
		close(fd);
	return unlink(path);
}

struct control *
control_start(struct event_base *base, struct server *srv, const char *path,
    char *err, size_t errlen)
{
	struct control		*ctl;
	struct sockaddr_un	 sun;
	struct timeval		 tv = { CONTROL_SWEEP, 0 };
	mode_t			 old;
	int			 fd;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "--control '%s': a socket path is at "
		    "most %zu bytes", path, sizeof sun.sun_path - 1);
		return NULL;
	}
	memcpy(sun.sun_path, path, strlen(path));
	if (clear_stale(path, &sun) != 0) {
		snprintf(err, errlen, "--control '%s': %s", path,
		    errno == EADDRINUSE ? "another egress-run serves there" :
		    errno == EEXIST ? "exists and is not a socket" :
		    strerror(errno));
		return NULL;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "--control: socket: %s", strerror(errno));
		return NULL;
	}
	/* Born 0600: no moment when another user could connect. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0) {
		umask(old);
		snprintf(err, errlen, "--control '%s': %s", path,
		    strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	if (listen(fd, 64) != 0 || chmod(path, 0600) != 0) {
		snprintf(err, errlen, "--control '%s': %s", path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	ctl = xcalloc(1, sizeof *ctl);
	ctl->base = base;
	ctl->srv = srv;
	ctl->fd = fd;
	ctl->path = xstrdup(path);
	TAILQ_INIT(&ctl->clients);
	ctl->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_accept, ctl);
	event_add(ctl->ev, NULL);
	ctl->sweep = event_new(base, -1, EV_PERSIST, on_sweep, ctl);
	event_add(ctl->sweep, &tv);
	log_info("control API on %s", path);
	return ctl;
}

void
control_stop(struct control *ctl)
{
	struct client *cl;

	if (ctl == NULL)
		return;
	while ((cl = TAILQ_FIRST(&ctl->clients)) != NULL)
		client_free(cl);
	event_free(ctl->ev);
	event_free(ctl->sweep);
	close(ctl->fd);
	unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}
