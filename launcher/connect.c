/*
 * The ssh ProxyCommand relay: a blocking CONNECT handshake, then poll(2)
 * between stdin/stdout and the tunnel, with half-closes passed through.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "builtin/http_parse.h"
#include "common/log.h"
#include "common/util.h"
#include "common/xmalloc.h"
#include "launcher/connect.h"

/* The proxy from the bouquet: "http://[USER:PASS@]HOST:PORT[/]". */
static int
proxy_from_env(char **host, unsigned *port, char **userinfo)
{
	static const char *vars[] = { "https_proxy", "HTTPS_PROXY",
	    "http_proxy", "HTTP_PROXY" };
	const char	*url = NULL, *at;
	char		*hp;
	size_t		 len;
	int		 r;

	*userinfo = NULL;
	for (size_t i = 0; i < 4 && url == NULL; i++)
		if ((url = getenv(vars[i])) != NULL && *url == '\0')
			url = NULL;
	if (url == NULL || strncmp(url, "http://", 7) != 0)
		return -1;
	url += 7;
	len = strcspn(url, "/");
	if ((at = memchr(url, '@', len)) != NULL) {
		/* A daemon's sandbox credentials (--via). */
		*userinfo = xstrndup(url, (size_t)(at - url));
		len -= (size_t)(at + 1 - url);
		url = at + 1;
	}
	hp = xstrndup(url, len);
	r = util_hostport(hp, host, port, false);
	free(hp);
	return r;
}

static int
dial(const char *host, unsigned port)
{
	struct addrinfo	 hints, *res, *ai;
	char		 portstr[8];
	int		 fd = -1;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof portstr, "%u", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -1;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd == -1)
			continue;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read the proxy's answer up to the end of its head, through the one HTTP
 * response parser. Bytes after the head already belong to the tunnel and go
 * to stdout.
 */
static int
handshake(int fd, char *reason, size_t reasonlen)
{
	struct http_response		 resp;
	const struct http_header	*h;
	uint8_t				 buf[HTTP_HEAD_MAX];
	size_t				 got = 0;
	ssize_t				 n;
	int				 r;

	for (;;) {
		if (got == sizeof buf) {
			snprintf(reason, reasonlen, "the proxy's answer is too "
			    "large");
			return -1;
		}
		n = read(fd, buf + got, sizeof buf - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(reason, reasonlen, "the proxy closed the "
			    "connection");
			return -1;
		}
		got += (size_t)n;
		r = http_parse_response(buf, got, false, true, &resp);
		if (r == HTTP_NEED_MORE)
			continue;
		if (r < 0) {
			snprintf(reason, reasonlen, "bad answer from the proxy: "
			    "%s", http_parse_strerror(r));
			return -1;
		}
		break;
	}
	if (resp.status / 100 != 2) {
		h = http_header_find(resp.headers, resp.nheaders,
		    "X-Egress-Run-Reason");
		if (h != NULL)
			snprintf(reason, reasonlen, "%d %.*s", resp.status,
			    (int)h->value.len, h->value.p);
		else
			snprintf(reason, reasonlen, "%d %.*s", resp.status,
			    (int)resp.reason.len, resp.reason.p);
		return -1;
	}
	return write_all(STDOUT_FILENO, (const char *)buf + r, got - (size_t)r);
}

static int
relay(int sock)
{
	struct pollfd	pfd[2];
	char		buf[65536];
	bool		in_open = true, sock_open = true;

	while (sock_open) {
		pfd[0].fd = in_open ? STDIN_FILENO : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = sock;
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (pfd[0].revents != 0) {
			ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
			if (n > 0) {
				if (write_all(sock, buf, (size_t)n) != 0)
					return 1;
			} else if (n == 0 || errno != EINTR) {
				in_open = false;
				shutdown(sock, SHUT_WR);
			}
		}
		if (pfd[1].revents != 0) {
			ssize_t n = read(sock, buf, sizeof buf);
			if (n > 0) {
				if (write_all(STDOUT_FILENO, buf, (size_t)n)
				    != 0)
					return 1;
			} else if (n == 0 || errno != EINTR)
				sock_open = false;
		}
	}
	return 0;
}

int
connect_main(int argc, char **argv)
{
	char		*phost = NULL, *target = NULL, *req = NULL;
	char		*userinfo = NULL, *auth = NULL;
	char		 reason[512];
	unsigned	 pport;
	long long	 port;
	int		 fd = -1, r = 1;

	if (argc != 3 || util_strtonum(argv[2], 1, 65535, &port) != 0) {
		log_error("usage: egress-run connect HOST PORT");
		return 125;
	}
	if (proxy_from_env(&phost, &pport, &userinfo) != 0) {
		log_error("connect: no proxy in the environment (HTTPS_PROXY); "
		    "run this under egress-run");
		return 125;
	}
	target = util_join_hostport(argv[1], (unsigned)port);
	if ((fd = dial(phost, pport)) == -1) {
		log_error("connect: cannot reach the proxy at %s:%u: %s",
		    phost, pport, strerror(errno));
		goto out;
	}
	if (userinfo != NULL) {
		size_t		n = strlen(userinfo);
		unsigned char	*b64 = xcalloc(1, 4 * ((n + 2) / 3) + 1);

		EVP_EncodeBlock(b64, (unsigned char *)userinfo, (int)n);
		auth = xprintf("Proxy-Authorization: Basic %s\r\n", b64);
		freezero_str((char *)b64);
	}
	req = xprintf("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target,
	    target, auth != NULL ? auth : "");
	if (write_all(fd, req, strlen(req)) != 0) {
		log_error("connect: cannot write to the proxy: %s",
		    strerror(errno));
		goto out;
	}
	if (handshake(fd, reason, sizeof reason) != 0) {
		log_error("connect: %s refused: %s", target, reason);
		goto out;
	}
	r = relay(fd);
out:
	if (fd != -1)
		close(fd);
	freezero_str(req);
	freezero_str(auth);
	freezero_str(userinfo);
	free(target);
	free(phost);
	return r;
}
