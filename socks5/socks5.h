/*
 * The SOCKS5 door of the built-in proxy: a connection whose first byte is
 * 0x05 is served here — greeting, optional RFC 1929 authentication, one
 * CONNECT — through the same policy, address guard, dialer, tunnel and
 * audit events as the HTTP doors (door "socks5").
 */
#ifndef SOCKS5_SOCKS5_H
#define SOCKS5_SOCKS5_H

struct conn;

/* Take over a connection whose input starts with 0x05. */
void	socks5_start(struct conn *);
/* More input arrived while the handshake is under way. */
void	socks5_read(struct conn *);

#endif
