/* TEMPORARY: stands in for mitm.c until builtin/certs.c lands. */
#include <stdbool.h>
#include <stddef.h>
#include "builtin/mitm.h"
bool mitm_wanted(const struct server *s, const struct dest *d) { (void)s; (void)d; return false; }
void mitm_start(struct conn *c, const void *h, size_t n) { (void)c; (void)h; (void)n; }
void mitm_client_ready(struct conn *c) { (void)c; }
void mitm_client_failed(struct conn *c) { (void)c; }
struct bufferevent *mitm_origin(struct server *s, int fd, const struct dest *d) { (void)s; (void)fd; (void)d; return NULL; }
void mitm_origin_error(struct bufferevent *b, char *buf, size_t n) { (void)b; if (n) buf[0] = 0; }
