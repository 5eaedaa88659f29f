/*
 * Proxy URLs: any input parses or fails cleanly; what parses has a host, a
 * port and a display form that parses back to the same scheme, host, port
 * and user, with "***" where the password was.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "upstream/proxy_url.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define ASSERT(c) do { if (!(c)) abort(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *buf, size_t len)
{
	struct proxy_url	 u, v;
	int			 rv;

	rv = proxy_url_parse((const char *)buf, len, &u);
	ASSERT(proxy_url_strerror(rv) != NULL);
	if (rv != PROXY_URL_OK) {
		ASSERT(rv < 0 && rv >= PROXY_URL_E_PATH);
		ASSERT(u.user == NULL && u.password == NULL &&
		    u.display == NULL);
		return 0;
	}
	ASSERT(u.dest.host[0] != '\0' && u.dest.port != 0);
	ASSERT(u.display != NULL);
	ASSERT(u.password == NULL || u.user != NULL);
	if (u.scheme != PROXY_SCHEME_HTTP && u.user != NULL)
		ASSERT(strlen(u.user) >= 1 && strlen(u.user) <= 255 &&
		    (u.password == NULL || strlen(u.password) <= 255));

	rv = proxy_url_parse(u.display, strlen(u.display), &v);
	ASSERT(rv == PROXY_URL_OK);
	ASSERT(v.scheme == u.scheme && v.dest.port == u.dest.port &&
	    v.dest.kind == u.dest.kind &&
	    strcmp(v.dest.host, u.dest.host) == 0);
	ASSERT((u.user == NULL) == (v.user == NULL));
	ASSERT(u.user == NULL || strcmp(u.user, v.user) == 0);
	ASSERT((u.password == NULL) == (v.password == NULL));
	ASSERT(v.password == NULL || strcmp(v.password, "***") == 0);
	ASSERT(strcmp(u.display, v.display) == 0);
	proxy_url_clear(&v);
	proxy_url_clear(&u);
	return 0;
}
