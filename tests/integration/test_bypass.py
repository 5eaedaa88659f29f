"""The bypass catalogue (issue 7): spellings that must not get a client
past the destination policy, each with the outcome it must have.

One nginx is the allowed origin (allowed.test, pinned to loopback with
--resolve); another nginx on loopback is the victim, which must never see
a request: after every row its access log is empty and its error log
names no client (nginx logs even a connection that sends nothing, at
info level). Every row goes through the real proxy as raw bytes (a raw
socket, raw SOCKS5, raw TLS), so that nothing normalises the spelling on
the way; curl is used where a real client is the point (the control rows
and userinfo, which curl itself would strip).

Sessions (all egress-run with its built-in proxy):

  strict  --allow allowed.test, a secret bound to allowed.test (so TLS to
          it is intercepted), victim.test pinned to the victim: only the
          allow list stands between a client and the victim.
  wild    --allow '*': only the address guard stands between a client and
          loopback (every address row runs here too).
  self    --listen on a known port, loopback explicitly allowed in every
          spelling (127.0.0.0/8, 0.0.0.0/0, [::]/0, localhost, pins to
          the proxy's port): only the loop check stands between a client
          and the proxy itself.

Rows are data (AUTHORITY, REQUESTS, SMUGGLING, PIPELINED, INNER, SOCKS,
CURL, SELF below); one test method is generated per row and door, named
after it, so a failing row names itself. A row that fails because of a
known bug is listed in KNOWN_BUGS with the bug's description; its test is
marked expectedFailure. OtherUser checks that another local account gets
nothing at any door; SecurityDoc that docs/SECURITY.md names only tests
that exist.

Outcome notation: an HTTP status (403 policy, 400 malformed, 421 another
host inside an intercepted tunnel, 502 unresolvable, 200 allowed), a
tuple of statuses for a connection's responses in order (() for none:
closed without an answer), or a SOCKS5 reply code (0x00 granted, 0x01
malformed request, 0x02 not allowed by ruleset, 0x04 host unreachable: a
name the host parser refuses).
"""

import ast
import json
import os
import re
import socket
import ssl
import subprocess
import time
import unittest

import builtin_fixtures as bf
import chain_fixtures as cf
import harness as h
import mitm_fixtures as mf

ALLOWED_BODY = "the allowed origin\n"
VICTIM_BODY = "the VICTIM was reached\n"
SECRET_VAR = "BYPASS_TEST_KEY"

# Filled in by setUpModule: ports of the origins and the sessions.
F = None


# --------------------------------------------------------------- fixtures

class _Fixtures:
    """Everything the rows use, started once for the module. A holder
    EgressTestCase gives the harness helpers their temp dir and cleanup
    list; close() runs the cleanups (sanitizer checks included) and
    raises if any failed."""

    def __init__(self):
        self.tc = h.EgressTestCase("run")
        self.tc.setUp()

    def start(self):
        tc = self.tc
        self.testca = tc.ca("egress-run bypass test CA")
        names = ("allowed.test", "victim.test", "localhost", "127.0.0.1")
        self.v6 = cf.ipv6_loopback()
        # An origin that echoes the head it received (builtin_fixtures'
        # PyOrigin): what the proxy forwards, field by field.
        self.echo = bf.PyOrigin(tc)
        self.allowed = tc.nginx(
            files={"hello.txt": ALLOWED_BODY},
            tls=bf.NamedCA(self.testca, names),
            http_extra=bf.CONN_LOG_FORMAT, server_extra=bf.CONN_LOG)
        # The victim: every port it has, v4 and v6 loopback, http and
        # https; it serves VICTIM_BODY for any path.
        victim = h.Nginx(tc.tmp.mkdir("victim"),
                         tls=bf.NamedCA(self.testca, names),
                         files={"index.html": VICTIM_BODY,
                                "hello.txt": VICTIM_BODY})
        extra = "location / { try_files $uri /index.html; }\n"
        if self.v6:
            extra += ("listen [::1]:%d;\n" % victim.port +
                      "listen [::1]:%d ssl;\n" % victim.https_port)
        victim.server_extra = extra
        tc.addCleanup(victim.stop)
        self.victim = victim.start()
        if self.v6:
            h.wait_port("::1", victim.port, 10, victim.proc)
        time.sleep(0.2)     # nginx logs the probes' closes
        self.victim_mark()
        self.P = self.allowed.port            # allowed, http
        self.AT = self.allowed.https_port     # allowed, https
        self.V = victim.port                  # victim, http
        self.VT = victim.https_port           # victim, https
        self.secret = mf.new_secret()
        self.strict = bf.session(tc, [
            "--allow", "allowed.test", "--allow", "plain.test",
            "--allow", "echo.test",
            "--resolve", "echo.test:%d:127.0.0.1" % self.echo.port,
            "--resolve", "allowed.test:%d:127.0.0.1" % self.P,
            "--resolve", "plain.test:%d:127.0.0.1" % self.P,
            "--resolve", "allowed.test:%d:127.0.0.1" % self.AT,
            "--resolve", "victim.test:%d:127.0.0.1" % self.V,
            "--resolve", "victim.test:%d:127.0.0.1" % self.VT,
            "--secret", "%s:allowed.test" % SECRET_VAR,
            "--upstream-ca", self.testca.cert],
            env=h.clean_env({SECRET_VAR: self.secret}))
        self.cafile = self.strict.env["SSL_CERT_FILE"]
        self.wild = bf.session(tc, ["--allow", "*"])
        self.L = h.free_port()
        self.self_ = bf.session(tc, [
            "--listen", "127.0.0.1:%d" % self.L,
            "--allow", "127.0.0.0/8", "--allow", "0.0.0.0/0",
            "--allow", "[::]/0", "--allow", "localhost",
            "--allow", "*.self.test",
            "--resolve", "self.self.test:%d:127.0.0.1" % self.L,
            "--resolve", "zero.self.test:%d:0.0.0.0" % self.L,
            "--resolve", "mapped.self.test:%d:[::ffff:127.0.0.1]" % self.L])
        assert self.self_.port == self.L
        self.sessions = {"strict": self.strict, "wild": self.wild,
                         "self": self.self_}

    def _victim_error_log(self):
        try:
            with open(os.path.join(self.victim.dir, "error.log"), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return b""

    # The victim's logs: any line since the last mark is a contact. (Its
    # error log names the probes that waited for it to listen: the first
    # mark is set after them.)
    def victim_contacts(self):
        err = self._victim_error_log()[self.victim_err_start:]
        lines = [ln for ln in err.decode(errors="replace").splitlines(True)
                 if "client:" in ln]
        return self.victim.access_log()[self.victim_acc_start:] + \
            "".join(lines)

    def victim_mark(self):
        """Forget the contacts so far (one failing row, not all after
        it)."""
        self.victim_err_start = len(self._victim_error_log())
        self.victim_acc_start = len(self.victim.access_log())

    def close(self):
        errors = []
        while self.tc._cleanups:
            fn, args, kw = self.tc._cleanups.pop()
            try:
                fn(*args, **kw)
            except Exception as e:     # noqa: BLE001 - reported below
                errors.append(e)
        if errors:
            raise AssertionError("cleanup failed: %s" % "; ".join(
                str(e) for e in errors))


def setUpModule():
    global F
    f = _Fixtures()
    try:
        f.start()
    except BaseException:
        f.close()       # tearDownModule does not run after a failure
        raise
    F = f


def tearDownModule():
    global F
    f, F = F, None
    if f is not None:
        f.close()


# --------------------------------------------------------------- helpers

def split_responses(raw):
    """Every HTTP/1.1 response in raw (a pipelined answer read to EOF),
    as (status, headers, body) in order. Bodies are delimited by
    Content-Length (chunked is not expected here); without one the rest
    is the body."""
    out = []
    while raw:
        head, sep, rest = raw.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        m = re.match(r"HTTP/1\.[01] (\d{3})", lines[0])
        if not m:
            break
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs.setdefault(k.strip().lower(), v.strip())
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            body, raw = rest[:n], rest[n:]
        else:
            body, raw = rest, b""
        out.append((int(m.group(1)), hdrs, body))
    return out


def read_all(sock, timeout):
    """Read sock until EOF or timeout: (bytes, closed)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return buf, False
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return buf, False
        except (ConnectionResetError, ssl.SSLError):
            return buf, True
        if not b:
            return buf, True
        buf += b


def get_bytes(authority, path="/hello.txt", host=None):
    """GET http://AUTHORITY/path, Host: host (default: the authority)."""
    a = authority.encode()
    return (b"GET http://%s%s HTTP/1.1\r\nHost: %s\r\n"
            b"Connection: close\r\n\r\n"
            % (a, path.encode(), (host or authority).encode()))


def connect_bytes(authority):
    a = authority.encode()
    return b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (a, a)


def socks_bytes(atyp, addr, port):
    """Greeting and CONNECT request. atyp 3: addr is a name (str, or raw
    bytes sent as they are)."""
    if atyp == 3 and isinstance(addr, bytes):
        req = (bytes([5, 1, 0, 3, len(addr)]) + addr +
               port.to_bytes(2, "big"))
    else:
        req = cf.socks5_request(1, atyp, addr, port)
    return cf.GREETING + req


def socks_reply(session, data, timeout=10.0):
    """Send a SOCKS5 greeting and request; the reply code. Reads exactly
    the method reply and the request reply (a granted tunnel stays open:
    it is closed here)."""
    with socket.create_connection(("127.0.0.1", session.port),
                                  timeout=timeout) as s:
        s.sendall(data)
        buf = b""
        need = 2 + 5
        while len(buf) < need:
            b = s.recv(need - len(buf))
            if not b:
                raise AssertionError("SOCKS5: the proxy closed after %r"
                                     % buf)
            buf += b
            if len(buf) >= 7 and need == 7:
                atyp = buf[5]
                need = 2 + 4 + {1: 4, 4: 16}.get(atyp, 1 + buf[6]) + 2
        _method, reply, _rest = cf.split_socks5_answer(buf)
        return reply[1]


def fill(text):
    """Substitute the fixture ports: {P} {AT} {V} {VT} {L}."""
    return text.format(P=F.P, AT=F.AT, V=F.V, VT=F.VT, L=F.L)


# --------------------------------------------------------------- the rows

# Authority rows: (label, host spelling, port key, status, sessions).
# Each is sent three ways: GET absolute-form (http), CONNECT (connect),
# and SOCKS5 in domain form (socks: 403 -> 0x02, 400 -> 0x04). 'strict'
# rows run in the strict session; 'wild' ones (addresses) also with
# --allow '*', where the guard alone must refuse them.
S, W = ("strict",), ("strict", "wild")
AUTHORITY = [
    # control: the allowed host itself, as it may be spelled
    ("allowed host", "allowed.test", "P", 200, S),
    ("allowed host upper case", "ALLOWED.TEST", "P", 200, S),
    ("allowed host trailing dot", "allowed.test.", "P", 200, S),
    # the victim by name
    ("victim name", "victim.test", "V", 403, S),
    ("victim name upper case", "VICTIM.Test", "V", 403, S),
    ("victim name trailing dot", "victim.test.", "V", 403, S),
    ("victim name two trailing dots", "victim.test..", "V", 400, S),
    ("allowed as a suffix", "victim.allowed.test", "V", 403, S),
    ("allowed as a prefix", "allowed.test.victim.test", "V", 403, S),
    ("allowed name with a dash", "allowed-test", "V", 403, S),
    ("localhost", "localhost", "V", 403, W),
    ("localhost upper case trailing dot", "LOCALHOST.", "V", 403, W),
    # numeric IPv4 spellings of 127.0.0.1 (inet_aton's rules)
    ("dotted quad", "127.0.0.1", "V", 403, W),
    ("decimal", "2130706433", "V", 403, W),
    ("octal", "017700000001", "V", 403, W),
    ("hex", "0x7f000001", "V", 403, W),
    ("hex upper case", "0X7F000001", "V", 403, W),
    ("short a.b", "127.1", "V", 403, W),
    ("short a.b.c", "127.0.1", "V", 403, W),
    ("octal quad", "0177.0.0.01", "V", 403, W),
    ("hex quad", "0x7f.0x0.0x0.0x1", "V", 403, W),
    ("mixed hex and octal", "0x7f.0.0.01", "V", 403, W),
    ("mixed hex short", "0x7f.1", "V", 403, W),
    ("mixed octal short", "0177.1", "V", 403, W),
    ("leading zeros", "127.000.000.001", "V", 403, W),
    ("long hex", "0x00000000007f000001", "V", 403, W),
    ("other loopback", "127.255.255.254", "V", 403, W),
    ("zero (this host)", "0", "V", 403, W),
    ("unspecified", "0.0.0.0", "V", 403, W),
    ("link-local metadata", "169.254.169.254", "V", 403, W),
    ("metadata decimal", "2852039166", "V", 403, W),
    # numbers that are no address: never read as 127.0.0.1 after a wrap
    ("decimal over 2^32", "4294967423", "V", 400, W),
    ("hex over 32 bits", "0x17f000001", "V", 400, W),
    ("quad part over 255", "127.0.0.257", "V", 400, W),
    ("short part over 24 bits", "127.16777217", "V", 400, W),
    ("five parts", "127.0.0.0.1", "V", 400, W),
    ("bad octal digit", "0178.0.0.1", "V", 400, W),
    ("empty part", "127..0.1", "V", 400, W),
    ("trailing dot on an address", "127.0.0.1.", "V", 403, W),
    # IPv6, and IPv6 embedding 127.0.0.1
    ("v6 loopback", "[::1]", "V", 403, W),
    ("v6 loopback long", "[0:0:0:0:0:0:0:1]", "V", 403, W),
    ("v6 loopback leading zeros", "[0000::0001]", "V", 403, W),
    ("v6 unspecified", "[::]", "V", 403, W),
    ("v4-mapped dotted", "[::ffff:127.0.0.1]", "V", 403, W),
    ("v4-mapped hex", "[::ffff:7f00:1]", "V", 403, W),
    ("v4-mapped upper case", "[::FFFF:7F00:1]", "V", 403, W),
    ("v4-mapped long", "[0:0:0:0:0:ffff:7f00:1]", "V", 403, W),
    ("v4-translated ::ffff:0:", "[::ffff:0:7f00:1]", "V", 403, W),
    ("v4-compatible", "[::127.0.0.1]", "V", 403, W),
    ("NAT64 64:ff9b::", "[64:ff9b::7f00:1]", "V", 403, W),
    ("NAT64 dotted", "[64:ff9b::127.0.0.1]", "V", 403, W),
    ("6to4 2002::", "[2002:7f00:1::]", "V", 403, W),
    ("Teredo (client 127.0.0.1)", "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
     "V", 403, W),
    ("v4-mapped metadata", "[::ffff:169.254.169.254]", "V", 403, W),
    ("v6 link-local", "[fe80::1]", "V", 403, W),
    ("v6 zone id", "[fe80::1%25lo]", "V", 400, W),
    # (SOCKS5's domain field may carry a bare IPv6 address)
    ("v6 without brackets", "::1", "V", 400, W, {"socks": 0x02}),
    ("v6 unclosed bracket", "[::1", "V", 400, W),
    ("v4-mapped octal", "[::ffff:0177.0.0.1]", "V", 400, W),
    ("v4-mapped short", "[::ffff:127.1]", "V", 400, W),
    # userinfo and percent-encoding
    ("userinfo allowed@victim", "allowed.test@victim.test", "V", 400, S),
    ("userinfo with port", "allowed.test:{P}@victim.test", "V", 400, S),
    ("userinfo victim@allowed", "victim.test@allowed.test", "P", 400, S),
    ("encoded @", "allowed.test%40victim.test", "V", 400, S),
    ("encoded dot", "victim%2etest", "V", 400, S),
    ("encoded letter", "%76ictim.test", "V", 400, S),
    ("encoded allowed name", "allowed%2etest", "P", 400, S),
    ("encoded v4", "127%2e0%2e0%2e1", "V", 400, W),
    ("encoded NUL after allowed", "allowed.test%00.victim.test", "V", 400,
     S),
    ("backslash", "allowed.test\\@victim.test", "V", 400, S),
    ("comma", "allowed.test,victim.test", "V", 400, S),
    ("semicolon", "allowed.test;victim.test", "V", 400, S),
    ("underscore name", "victim_test", "V", 403, S),
    ("ideographic full stop", "victim\u3002test", "V", 400, S),
    ("fullwidth digits", "\uff11\uff12\uff17.0.0.1", "V", 400, W),
    ("over-long label", "a" * 64 + ".test", "V", 400, S),
    ("over-long name", ("a" * 60 + ".") * 5 + "test", "V", 400, S),
    # the allowed name on the victim's port: allowed by name, but its pin
    # is for other ports and nothing resolves it: never the victim. (A
    # tunnel to an intercepted host is granted at once and dialled when
    # the first request arrives.)
    ("allowed name, victim's port", "allowed.test", "V", 502, S,
     {"connect": 200, "socks": 0x00}),
]

# The ports rows may name.
PORTS = {"P": lambda: F.P, "V": lambda: F.V, "L": lambda: F.L}

# SOCKS5 is judged by the same parser, but its error for a malformed name
# is a host-unreachable reply; a status this table cannot map is skipped.
SOCKS_OF = {200: 0x00, 403: 0x02, 400: 0x04, 502: 0x04}

# The URI is the destination: raw request-lines, (label, bytes, status,
# extra check). {P} etc. are filled in.
REQUESTS = [
    ("absolute-form to victim, Host allowed",
     b"GET http://victim.test:{V}/ HTTP/1.1\r\nHost: allowed.test:{P}\r\n"
     b"Connection: close\r\n\r\n", 403, None),
    ("absolute-form to allowed, Host victim",
     b"GET http://allowed.test:{P}/hello.txt HTTP/1.1\r\n"
     b"Host: victim.test:{V}\r\nConnection: close\r\n\r\n", 200,
     "host_rewritten"),
    ("absolute-form to allowed, two Hosts",
     b"GET http://allowed.test:{P}/hello.txt HTTP/1.1\r\n"
     b"Host: allowed.test:{P}\r\nHost: victim.test:{V}\r\n\r\n", 400, None),
    ("origin-form, Host victim",
     b"GET /hello.txt HTTP/1.1\r\nHost: victim.test:{V}\r\n\r\n", 400, None),
    ("origin-form, Host allowed",
     b"GET /hello.txt HTTP/1.1\r\nHost: allowed.test:{P}\r\n\r\n", 400,
     None),
    ("origin-form that looks absolute",
     b"GET //victim.test:{V}/ HTTP/1.1\r\nHost: allowed.test:{P}\r\n\r\n",
     400, None),
    ("origin-form with the URL in the path",
     b"GET /http://victim.test:{V}/ HTTP/1.1\r\nHost: victim.test:{V}\r\n"
     b"\r\n", 400, None),
    ("scheme-less authority in GET",
     b"GET victim.test:{V}/ HTTP/1.1\r\nHost: victim.test:{V}\r\n\r\n", 400,
     None),
    ("scheme upper case",
     b"GET HTTP://VICTIM.TEST:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 403, None),
    ("https scheme to the proxy",
     b"GET https://allowed.test:{P}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     None),
    ("one slash after the scheme",
     b"GET http:/victim.test:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
    ("two ports",
     b"GET http://allowed.test:{P}:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     None),
    ("fragment before an allowed name",
     b"GET http://victim.test:{V}#@allowed.test:{P}/ HTTP/1.1\r\nHost: x"
     b"\r\n\r\n", 400, None),
    ("query before an allowed name",
     b"GET http://victim.test:{V}?@allowed.test:{P}/ HTTP/1.1\r\nHost: x"
     b"\r\n\r\n", 400, None),
    ("name in brackets",
     b"GET http://[victim.test]:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     None),
    ("empty host", b"GET http://:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     None),
    ("empty authority", b"GET http:///victim.test:{V}/ HTTP/1.1\r\n"
     b"Host: victim.test:{V}\r\n\r\n", 400, None),
    ("two spaces after the method",
     b"GET  http://victim.test:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     None),
    ("absolute-form to victim, empty Host",
     b"GET http://victim.test:{V}/ HTTP/1.1\r\nHost:\r\n\r\n", 403,
     None),
    ("tab in the target",
     b"GET http://allowed.test:{P}/\thttp://victim.test:{V}/ HTTP/1.1\r\n"
     b"Host: x\r\n\r\n", 400, None),
    ("space in the target",
     b"GET http://allowed.test:{P}/ http://victim.test:{V}/ HTTP/1.1\r\n"
     b"Host: x\r\n\r\n", 400, None),
    ("UTF-8 fullwidth digits",
     "GET http://\uff11\uff12\uff17.0.0.1:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n"
     .encode(), 400, None),
    ("HTTP/1.0 without Host to victim",
     b"GET http://victim.test:{V}/ HTTP/1.0\r\n\r\n", 403, None),
    ("HTTP/1.0 without Host to allowed",
     b"GET http://allowed.test:{P}/hello.txt HTTP/1.0\r\n\r\n", 200, None),
    ("HTTP/1.0 origin-form without Host",
     b"GET / HTTP/1.0\r\n\r\n", 400, None),
    ("HTTP/1.1 without Host to victim",
     b"GET http://victim.test:{V}/ HTTP/1.1\r\n\r\n", 400, None),
    ("HTTP/0.9 to victim",
     b"GET http://victim.test:{V}/\r\n\r\n", 400, None),
    ("HTTP/2 prior knowledge",
     b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, None),
    ("OPTIONS * with Host victim",
     b"OPTIONS * HTTP/1.1\r\nHost: victim.test:{V}\r\n\r\n", 400, None),
    ("OPTIONS * with Host allowed",
     b"OPTIONS * HTTP/1.1\r\nHost: allowed.test:{P}\r\n\r\n", 400, None),
    ("OPTIONS * HTTP/1.0",
     b"OPTIONS * HTTP/1.0\r\n\r\n", 400, None),
    ("OPTIONS absolute-form to victim",
     b"OPTIONS http://victim.test:{V} HTTP/1.1\r\nHost: x\r\n\r\n", 403,
     None),
    ("CONNECT with a path",
     b"CONNECT victim.test:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
    ("CONNECT absolute-form",
     b"CONNECT http://victim.test:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
     None),
    ("CONNECT to victim, Host allowed",
     b"CONNECT victim.test:{V} HTTP/1.1\r\nHost: allowed.test:{P}\r\n\r\n",
     403, None),
    ("CONNECT HTTP/1.0 to victim",
     b"CONNECT victim.test:{V} HTTP/1.0\r\n\r\n", 403, None),
    ("lower-case connect",
     b"connect victim.test:{V} HTTP/1.1\r\nHost: x\r\n\r\n", 400, None),
    ("lower-case get to victim",
     b"get http://victim.test:{V}/ HTTP/1.1\r\nHost: x\r\n\r\n", 403, None),
    # ports that wrap to the victim's in 16 bits
    ("GET port + 65536", lambda: b"GET http://victim.test:%d/ HTTP/1.1\r\n"
     b"Host: x\r\n\r\n" % (F.V + 65536), 400, None),
    ("CONNECT port + 65536", lambda: b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n"
     b"Host: x\r\n\r\n" % (F.V + 65536), 400, None),
    ("allowed name, port + 65536", lambda: b"GET http://allowed.test:%d/ "
     b"HTTP/1.1\r\nHost: x\r\n\r\n" % (F.P + 65536), 400, None),
    ("signed port", b"CONNECT victim.test:+{V} HTTP/1.1\r\nHost: x\r\n\r\n",
     400, None),
    ("port zero", b"CONNECT allowed.test:0 HTTP/1.1\r\nHost: x\r\n\r\n",
     400, None),
    ("CONNECT without a host", b"CONNECT :{V} HTTP/1.1\r\nHost: x\r\n\r\n",
     400, None),
    # other protocols on the proxy's port are not side doors
    ("SOCKS4a to victim", b"\x04\x01" + b"\x00\x50" + b"\x00\x00\x00\x01"
     b"user\x00victim.test\x00", 400, None),
    ("TLS straight to the proxy", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1"
     b"\x03\x03" + b"\x00" * 32, 400, None),
]

# Smuggling: (label, bytes, statuses in order). The hidden request names
# the victim; the first one is to the allowed origin. None: no response
# at all, the connection closed.
HIDDEN = (b"GET http://victim.test:{V}/ HTTP/1.1\r\nHost: victim.test:{V}"
          b"\r\n\r\n")
POST = b"POST http://allowed.test:{P}/hello.txt HTTP/1.1\r\n" \
       b"Host: allowed.test:{P}\r\n"
GET_ALLOWED = b"GET http://allowed.test:{P}/hello.txt HTTP/1.1\r\n" \
              b"Host: allowed.test:{P}\r\n"


def fill_b(data):
    """fill() for bytes."""
    return fill(data.decode("latin-1")).encode("latin-1")


def payload(data):
    """A row's bytes: data with the ports filled in, or data() for rows
    whose lengths depend on the ports."""
    return data() if callable(data) else fill_b(data)


def hidden():
    return fill_b(HIDDEN)


SMUGGLING = [
    ("CL+TE", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n" + HIDDEN, (400,)),
    ("TE+CL", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"
     b"\r\n0\r\n\r\n" + HIDDEN, (400,)),
    ("duplicate CL, different", POST + b"Content-Length: 0\r\n"
     b"Content-Length: 50\r\n\r\n" + HIDDEN, (400,)),
    ("duplicate CL, same", POST + b"Content-Length: 0\r\n"
     b"Content-Length: 0\r\n\r\n" + HIDDEN, (400,)),
    ("CL list", POST + b"Content-Length: 0, 0\r\n\r\n" + HIDDEN, (400,)),
    ("CL signed", POST + b"Content-Length: +0\r\n\r\n" + HIDDEN, (400,)),
    ("CL hex", POST + b"Content-Length: 0x0\r\n\r\n" + HIDDEN, (400,)),
    ("CL over 2^64", POST + b"Content-Length: 18446744073709551616\r\n\r\n"
     + HIDDEN, (400,)),
    ("CL over 2^62", POST + b"Content-Length: 4611686018427387905\r\n\r\n"
     + HIDDEN, (400,)),
    ("obs-fold TE", POST + b"Content-Length: 0\r\nX-A: a\r\n"
     b" Transfer-Encoding: chunked\r\n\r\n" + HIDDEN, (400,)),
    ("obs-fold CL value", POST + b"Content-Length:\r\n 0\r\n\r\n" + HIDDEN,
     (400,)),
    ("space before colon", POST + b"Transfer-Encoding : chunked\r\n\r\n"
     b"0\r\n\r\n" + HIDDEN, (400,)),
    ("tab before colon", POST + b"Content-Length\t: 0\r\n\r\n" + HIDDEN,
     (400,)),
    ("TE not chunked", POST + b"Transfer-Encoding: identity\r\n\r\n" +
     HIDDEN, (400,)),
    ("TE chunked then identity", POST + b"Transfer-Encoding: chunked, "
     b"identity\r\n\r\n0\r\n\r\n" + HIDDEN, (400,)),
    ("TE twice chunked", POST + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN, (400,)),
    ("TE xchunked", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
     + HIDDEN, (400,)),
    ("TE quoted", POST + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"
     + HIDDEN, (400,)),
    ("TE in HTTP/1.0", b"POST http://allowed.test:{P}/hello.txt HTTP/1.0\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN, (400,)),
    ("bare LF in a header", POST + b"Content-Length: 0\nX-A: 1\r\n\r\n" +
     HIDDEN, (400,)),
    ("bare CR in a header", POST + b"Content-Length: 0\rX-A: 1\r\n\r\n" +
     HIDDEN, (400,)),
    ("NUL in a header", POST + b"X-A: a\0b\r\nContent-Length: 0\r\n\r\n" +
     HIDDEN, (400,)),
    ("vertical tab in TE", POST + b"Transfer-Encoding: \x0bchunked\r\n\r\n"
     b"0\r\n\r\n" + HIDDEN, (400,)),
    ("CL with a trailing letter", POST + b"Content-Length: 0x\r\n\r\n" +
     HIDDEN, (400,)),
    # Lookalikes are ordinary fields: the proxy frames by the real
    # Content-Length (none: no body), so the hidden request is a request
    # of its own, judged (and refused) by itself.
    ("Content_Length underscore", lambda: fill_b(GET_ALLOWED) +
     b"Content_Length: %d\r\n\r\n" % len(hidden()) + hidden(), (200, 403)),
    ("Transfer_Encoding underscore", GET_ALLOWED +
     b"Transfer_Encoding: chunked\r\n\r\n" + HIDDEN, (200, 403)),
    # A request inside a body is data for the allowed origin, never a
    # request of the proxy's (nginx answers the POST to a file with 405).
    ("request inside a CL body", lambda: fill_b(POST) +
     b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(hidden()) +
     hidden(), (405,)),
    ("request inside a chunked body", lambda: fill_b(
        POST + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n") +
     b"%x\r\n" % len(hidden()) + hidden() + b"\r\n0\r\n\r\n", (405,)),
    # Chunk framing the parser must refuse rather than misread: the body
    # is cut there, the connection closed without an answer (the head
    # may already be on its way to the origin), and what follows is
    # never read as a request.
    ("chunk size over 64 bits", POST + b"Transfer-Encoding: chunked\r\n\r\n"
     b"10000000000000000\r\n" + HIDDEN + b"\r\n0\r\n\r\n", ()),
    ("chunk size with 17 leading zeros", POST + b"Transfer-Encoding: "
     b"chunked\r\n\r\n00000000000000000\r\n\r\n" + HIDDEN, ()),
    ("chunk size negative", POST + b"Transfer-Encoding: chunked\r\n\r\n"
     b"-1\r\n" + HIDDEN, ()),
    ("chunk size 0x prefix", POST + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0x0\r\n\r\n" + HIDDEN, ()),
    ("chunk size trailing space", POST + b"Transfer-Encoding: chunked\r\n"
     b"\r\n0 \r\n\r\n" + HIDDEN, ()),
    ("chunk size bare LF", POST + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0\n\n" + HIDDEN, ()),
    # The largest size there is: what follows is chunk data, forwarded
    # to the allowed origin until the client gives up -- or until nginx
    # answers the POST to a file (405) without waiting for the body:
    # either way, never a request of the proxy's own.
    ("chunk size 2^64-1", POST + b"Transfer-Encoding: chunked\r\n\r\n"
     b"ffffffffffffffff\r\n" + HIDDEN, {(), (405,)}),
]

# Pipelining: every request on a connection is judged by itself.
PIPELINED = [
    ("allowed then victim", GET_ALLOWED + b"\r\n" + HIDDEN, (200, 403)),
    ("allowed then victim by address", GET_ALLOWED + b"\r\n" +
     b"GET http://127.0.0.1:{V}/ HTTP/1.1\r\nHost: allowed.test:{P}\r\n\r\n",
     (200, 403)),
    ("allowed then CONNECT victim", GET_ALLOWED + b"\r\n" +
     b"CONNECT victim.test:{V} HTTP/1.1\r\nHost: allowed.test:{P}\r\n\r\n",
     (200, 403)),
    ("allowed twice then victim", GET_ALLOWED + b"\r\n" + GET_ALLOWED +
     b"\r\n" + HIDDEN, (200, 200, 403)),
    ("upgrade refused, then victim", GET_ALLOWED +
     b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n" + HIDDEN,
     (200, 403)),
    ("h2c upgrade, then victim", GET_ALLOWED +
     b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
     b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n" + HIDDEN,
     (200, 403)),
    ("HTTP/1.0 keep-alive then victim",
     b"GET http://allowed.test:{P}/hello.txt HTTP/1.0\r\n"
     b"Connection: keep-alive\r\n\r\n" + HIDDEN, (200, 403)),
]

# Inside a tunnel to allowed.test (intercepted: a secret is bound to it):
# (label, SNI or None, request bytes, statuses in order). {AT} is the
# allowed origin's https port, {VT} the victim's.
GOOD_INNER = b"GET /hello.txt HTTP/1.1\r\nHost: allowed.test:{AT}\r\n\r\n"
INNER = [
    ("control", "allowed.test", GOOD_INNER[:-2] +
     b"Connection: close\r\n\r\n", (200,)),
    ("Host upper case, trailing dot", "allowed.test",
     b"GET /hello.txt HTTP/1.1\r\nHost: ALLOWED.TEST.:{AT}\r\n"
     b"Connection: close\r\n\r\n", (200,)),
    ("Host victim", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: victim.test:{VT}\r\n\r\n", (421,)),
    ("Host victim without port", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: victim.test\r\n\r\n", (421,)),
    ("Host allowed on the victim's port", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: allowed.test:{VT}\r\n\r\n", (421,)),
    ("Host the allowed origin's address", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: 127.0.0.1:{AT}\r\n\r\n", (421,)),
    ("Host with userinfo", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: victim.test@allowed.test:{AT}\r\n\r\n",
     (421,)),
    ("two Hosts", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: allowed.test:{AT}\r\n"
     b"Host: victim.test:{VT}\r\n\r\n", (400,)),
    ("absolute-form victim, Host allowed", "allowed.test",
     b"GET https://victim.test:{VT}/ HTTP/1.1\r\nHost: allowed.test:{AT}"
     b"\r\n\r\n", (421,)),
    ("absolute-form http victim, Host allowed", "allowed.test",
     b"GET http://victim.test:{V}/ HTTP/1.1\r\nHost: allowed.test:{AT}"
     b"\r\n\r\n", (421,)),
    ("absolute-form allowed, Host victim", "allowed.test",
     b"GET https://allowed.test:{AT}/ HTTP/1.1\r\nHost: victim.test:{VT}"
     b"\r\n\r\n", (421,)),
    ("Host without a port (the tunnel's)", "allowed.test",
     b"GET /hello.txt HTTP/1.1\r\nHost: allowed.test\r\n"
     b"Connection: close\r\n\r\n", (200,)),
    ("Host with the default https port", "allowed.test",
     b"GET / HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n", (421,)),
    ("absolute-form allowed (control)", "allowed.test",
     b"GET https://allowed.test:{AT}/hello.txt HTTP/1.1\r\n"
     b"Host: allowed.test:{AT}\r\nConnection: close\r\n\r\n", (200,)),
    ("HTTP/1.0 without Host", "allowed.test",
     b"GET /hello.txt HTTP/1.0\r\n\r\n", (421,)),
    ("SNI upper case", "ALLOWED.TEST", GOOD_INNER[:-2] +
     b"Connection: close\r\n\r\n", (200,)),
    ("SNI victim", "victim.test", GOOD_INNER, (421,)),
    ("SNI allowed as a suffix", "allowed.test.victim.test", GOOD_INNER,
     (421,)),
    ("no SNI", None, GOOD_INNER, (421,)),
    ("CONNECT inside", "allowed.test",
     b"CONNECT victim.test:{VT} HTTP/1.1\r\nHost: victim.test:{VT}\r\n\r\n",
     (400,)),
    ("OPTIONS * inside", "allowed.test",
     b"OPTIONS * HTTP/1.1\r\nHost: allowed.test:{AT}\r\n\r\n", (400,)),
    ("pipelined: allowed then victim", "allowed.test",
     GOOD_INNER + b"GET / HTTP/1.1\r\nHost: victim.test:{VT}\r\n\r\n",
     (200, 421)),
    ("CL+TE inside", "allowed.test",
     b"POST /hello.txt HTTP/1.1\r\nHost: allowed.test:{AT}\r\n"
     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     b"GET / HTTP/1.1\r\nHost: victim.test:{VT}\r\n\r\n", (400,)),
]

# SOCKS5 rows beyond the authority table: (label, atyp, address, port key,
# reply). atyp 1/4 are address forms; 3 a name (str, or raw bytes).
SOCKS = [
    ("allowed name", 3, "allowed.test", "P", 0x00),
    ("allowed name's address", 1, "127.0.0.1", "P", 0x02),
    ("allowed name's address, v4-mapped", 4, "::ffff:127.0.0.1", "P", 0x02),
    ("victim address", 1, "127.0.0.1", "V", 0x02),
    ("victim v6 loopback", 4, "::1", "V", 0x02),
    ("victim v4-mapped", 4, "::ffff:127.0.0.1", "V", 0x02),
    ("victim v4-compatible", 4, "::127.0.0.1", "V", 0x02),
    ("victim NAT64", 4, "64:ff9b::7f00:1", "V", 0x02),
    ("unspecified", 1, "0.0.0.0", "V", 0x02),
    # (0x01: the SOCKS5 parser refuses the name; 0x04: the host parser)
    ("name with NUL", 3, b"allowed.test\0.victim.test", "V", 0x01),
    ("name with a port", 3, b"allowed.test:1", "V", 0x04),
    ("name with a space", 3, b"allowed.test victim.test", "V", 0x01),
    ("empty name", 3, b"", "V", 0x01),
    ("name in brackets", 3, b"[victim.test]", "V", 0x04),
]

# The proxy's own port, in every spelling, in the self session where every
# loopback spelling is otherwise allowed explicitly: (label, authority).
# GET, CONNECT and SOCKS5 must all be refused (403, 0x02).
SELF = [
    ("dotted quad", "127.0.0.1"),
    ("localhost", "localhost"),
    ("short", "127.1"),
    ("decimal", "2130706433"),
    ("hex", "0x7f000001"),
    ("mixed", "0x7f.0.0.01"),
    ("zero", "0"),
    ("unspecified", "0.0.0.0"),
    ("v4-mapped", "[::ffff:127.0.0.1]"),
    ("v4-mapped hex", "[::ffff:7f00:1]"),
    ("v4-mapped unspecified", "[::ffff:0.0.0.0]"),
    ("v6 unspecified", "[::]"),
    ("a name pinned to it", "self.self.test"),
    ("a name pinned to it, upper case", "SELF.Self.Test."),
    ("a name pinned to 0.0.0.0", "zero.self.test"),
    ("a name pinned to it v4-mapped", "mapped.self.test"),
]


# Rows that fail because of a known bug: test name -> the bug. Their tests
# are marked expectedFailure until the bug is fixed.
BUG_FD = ("bug B1 (conn.c conn_close): when the TLS handshake with the "
          "client fails while mitm_start() installs the filter (the bytes "
          "after CONNECT, or after the SOCKS5 request, arrived in the same "
          "read and are not TLS), conn_close() closes the descriptor while "
          "the plain bufferevent still has it in epoll (it is finalised "
          "only when the outer read callback returns): libevent logs "
          "'Epoll MOD ... Bad file descriptor', and the 200 / SOCKS5 reply "
          "queued for the client is lost. Fix: disable both bufferevents "
          "(filter and underlying) before bufferevent_free() and close(), "
          "see /tmp/bypass-fix-fd-close.diff")
KNOWN_BUGS = {}


# --------------------------------------------------------------- checks

class BypassCase(unittest.TestCase):
    """Assertions shared by every generated row."""

    maxDiff = None

    def setUp(self):
        seen = F.victim_contacts()
        F.victim_mark()
        self.assertEqual(seen, "", "the victim was reached between rows "
                         "(by the one before this, late)")

    def tearDown(self):
        for name, s in F.sessions.items():
            self.assertTrue(s.alive(), "the %s session died:\n%s"
                            % (name, s.log()[-3000:]))

    def assert_victim_untouched(self, what):
        # nginx writes its access log after answering; a 403 comes back
        # at once, so give a request that did get through time to show.
        time.sleep(0.02)
        seen = F.victim_contacts()
        F.victim_mark()
        self.assertEqual(seen, "", "%s: the victim saw it" % what)

    def assert_status(self, resp, status, what, session):
        self.assertEqual(resp.status, status, "%s: %r" % (what, resp))
        if status in (400, 403, 421, 502, 505):
            why = resp.header("x-egress-run-reason")
            self.assertTrue(why, "%s: no reason given: %r" % (what, resp))
            self.assertTrue(resp.closed, "%s: connection left open" % what)
            self.assertNotIn(VICTIM_BODY.encode(), resp.raw, what)
            if status == 403 and session == "wild":
                self.assertRegex(why, "loopback|unspecified|link-local|"
                                 "metadata|own", what)
        if status == 200:
            self.assertIn(ALLOWED_BODY.encode(), resp.body, what)

    def assert_statuses(self, raw, closed, statuses, what):
        """statuses: the tuple the responses must have, or a set of
        tuples any of which will do."""
        got = split_responses(raw)
        seen = tuple(st for st, _h, _b in got)
        if isinstance(statuses, (set, frozenset)):
            self.assertIn(seen, statuses, "%s: %r" % (what, raw[:1500]))
            statuses = seen
        self.assertEqual(seen, tuple(statuses), "%s: %r"
                         % (what, raw[:1500]))
        for st, hdrs, body in got:
            self.assertNotIn(VICTIM_BODY.encode(), body, what)
            if st == 200:
                self.assertEqual(body, ALLOWED_BODY.encode(), what)
            if st >= 400 and st != 405:
                self.assertTrue(hdrs.get("x-egress-run-reason"),
                                "%s: %d without a reason" % (what, st))
        if not statuses or (statuses[-1] >= 400 and statuses[-1] != 405):
            self.assertTrue(closed, "%s: connection left open" % what)


def _slug(text):
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _add(cls, name, fn, doc):
    name = "test_" + name
    assert not hasattr(cls, name), "duplicate row name " + name
    fn.__name__ = name
    fn.__doc__ = doc
    if name in KNOWN_BUGS:
        fn = unittest.expectedFailure(fn)
    setattr(cls, name, fn)


# --------------------------------------------------------------- authority

class AuthoritySpellings(BypassCase):
    """AUTHORITY rows through GET, CONNECT and SOCKS5, per session."""


def _authority_tests():
    for row in AUTHORITY:
        label, host, pk, status, sessions = row[:5]
        override = row[5] if len(row) > 5 else {}
        for sname in sessions:
            def http(self, host=host, pk=pk, status=status, sname=sname,
                     label=label):
                s = F.sessions[sname]
                auth = "%s:%d" % (fill(host), PORTS[pk]())
                r = s.request(get_bytes(auth), timeout=10)
                self.assert_status(r, status, "GET " + auth, sname)
                self.assert_victim_untouched(label)

            def connect(self, host=host, pk=pk, sname=sname, label=label,
                        status=override.get("connect", status)):
                s = F.sessions[sname]
                auth = "%s:%d" % (fill(host), PORTS[pk]())
                r = s.request(connect_bytes(auth), timeout=10,
                              until=bf.head_complete if status == 200
                              else None)
                if status == 200:
                    self.assertTrue(r.raw.startswith(
                        b"HTTP/1.1 200 Connection established\r\n"), r)
                else:
                    self.assert_status(r, status, "CONNECT " + auth, sname)
                self.assert_victim_untouched(label)

            def socks(self, host=host, pk=pk, sname=sname, label=label,
                      rep=override.get("socks", SOCKS_OF[status])):
                s = F.sessions[sname]
                name = fill(host)
                if name.startswith("[") and name.endswith("]"):
                    name = name[1:-1]
                got = socks_reply(s, socks_bytes(3, name.encode(),
                                                 PORTS[pk]()))
                self.assertEqual(got, rep, "SOCKS5 %r: reply 0x%02x"
                                 % (name, got))
                self.assert_victim_untouched(label)

            base = "%s_%s" % (sname, _slug(label))
            doc = "%s %r -> %s (%s)" % (label, host, status, sname)
            _add(AuthoritySpellings, "http_" + base, http, doc)
            _add(AuthoritySpellings, "connect_" + base, connect, doc)
            if len(fill_free(host)) <= 255:
                _add(AuthoritySpellings, "socks_" + base, socks, doc)


def fill_free(host):
    """The host spelling before the ports are known (for its length)."""
    return host.replace("{P}", "00000")


_authority_tests()


# --------------------------------------------------------------- requests

class RequestForms(BypassCase):
    """REQUESTS rows: request-lines whose URI and Host disagree, forms
    that do not belong to a proxy, HTTP/1.0 and OPTIONS *."""

    def check_host_rewritten(self, before):
        # The allowed origin got the URI's authority as Host, never the
        # client's Host naming the victim.
        log = h.wait_for(lambda: len(bf.conn_log(F.allowed)) > before and
                         bf.conn_log(F.allowed), 5, "the allowed origin's "
                         "log")
        self.assertEqual([hh for _c, _n, hh, _r, _s in log[before:]],
                         ["allowed.test:%d" % F.P])


def _request_tests():
    for label, data, status, check in REQUESTS:
        def t(self, data=data, status=status, check=check, label=label):
            before = len(bf.conn_log(F.allowed))
            r = F.strict.request(payload(data), timeout=10)
            self.assert_status(r, status, label, "strict")
            if check:
                getattr(self, "check_" + check)(before)
            self.assert_victim_untouched(label)
        _add(RequestForms, _slug(label), t, "%s -> %s" % (label, status))


_request_tests()


# --------------------------------------------------------------- smuggling

class Smuggling(BypassCase):
    """SMUGGLING and PIPELINED rows: a second request hidden behind (or
    pipelined after) one to the allowed origin names the victim."""

    def test_lookalike_fields_never_reach_the_origin(self):
        # Fields that CGI-style origins read as framing or routing
        # (Content_Length is their Content-Length) are not forwarded: no
        # second opinion on where a message ends, or where it goes.
        e = F.echo.port
        r = F.strict.request(
            b"GET http://echo.test:%d/echo HTTP/1.1\r\nHost: echo.test:%d"
            b"\r\nContent_Length: 40\r\nTransfer_encoding: chunked\r\n"
            b"X_Other: kept\r\nConnection: close\r\n\r\n" % (e, e),
            timeout=10)
        self.assertEqual(r.status, 200, r)
        names = [k.lower() for k, _v in
                 json.loads(r.body)["headers"]]
        for bad in ("content_length", "transfer_encoding"):
            self.assertNotIn(bad, names, r.body)
        self.assertIn("x_other", names)     # other underscores pass
        self.assertEqual(names.count("host"), 1)
        self.assert_victim_untouched("lookalike fields")


def _stream_tests(rows, prefix):
    for label, data, statuses in rows:
        def t(self, data=data, statuses=statuses, label=label):
            # A client expecting one answer (or none) half-closes after
            # its bytes: whatever the proxy makes of them, it must answer
            # or close at once. (After a half-close the proxy answers the
            # request in progress and closes: pipelined rows keep their
            # side open.)
            r = F.strict.request(payload(data), timeout=8,
                                 half_close=max(map(len, statuses)) <= 1
                                 if isinstance(statuses, set)
                                 else len(statuses) <= 1)
            self.assert_statuses(r.raw, r.closed, statuses, label)
            self.assert_victim_untouched(label)
        _add(Smuggling, prefix + _slug(label), t, "%s -> %s"
             % (label, statuses))


_stream_tests(SMUGGLING, "smuggle_")
_stream_tests(PIPELINED, "pipelined_")


# --------------------------------------------------------------- tunnels

class InterceptedTunnel(BypassCase):
    """INNER rows: CONNECT allowed.test (intercepted, since a secret is
    bound to it), then TLS with a chosen SNI, then requests that name
    another host. Plus: CONNECT target vs SNI, and a plain tunnel's
    contents stay with the tunnel's host."""

    def test_connect_victim_with_sni_allowed_is_403(self):
        r = F.strict.request(connect_bytes("victim.test:%d" % F.VT),
                             timeout=10)
        self.assert_status(r, 403, "CONNECT victim", "strict")
        self.assert_victim_untouched("CONNECT victim")

    def test_plain_tunnel_contents_stay_with_the_tunnels_host(self):
        # CONNECT to the allowed origin (as plain.test: no secret, not
        # intercepted), then a request naming the victim: it is bytes to
        # the allowed origin, which answers it itself.
        s = socket.create_connection(("127.0.0.1", F.strict.port),
                                     timeout=10)
        with s:
            s.sendall(connect_bytes("plain.test:%d" % F.P))
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = s.recv(4096)
                self.assertTrue(b, buf)
                buf += b
            self.assertTrue(buf.startswith(b"HTTP/1.1 200"), buf)
            s.sendall(fill(HIDDEN.decode()).replace(
                "victim.test:%d/" % F.V, "victim.test:%d/hello.txt" % F.V)
                .encode()[:-2] + b"Connection: close\r\n\r\n")
            raw, _closed = read_all(s, 10)
        got = split_responses(buf.partition(b"\r\n\r\n")[2] + raw)
        self.assertEqual([st for st, _h, _b in got], [200], raw)
        self.assertEqual(got[0][2], ALLOWED_BODY.encode())
        self.assert_victim_untouched("plain tunnel")


def _garbage_after_grant(self, first):
    """first (a CONNECT or SOCKS5 request for the intercepted host) and
    bytes that are not TLS, in one write: the connection is closed, the
    victim untouched, and egress-run's descriptors stay its own (no
    libevent complaint about a closed one)."""
    before = len(F.strict.log())
    r = F.strict.request(first + b"GET / HTTP/1.1\r\nHost: victim.test:%d"
                         b"\r\n\r\n" % F.V, timeout=5)
    self.assertTrue(r.closed, r)
    self.assertNotIn(b"HTTP/1.1 200 OK", r.raw)
    time.sleep(0.1)
    self.assertNotIn("libevent:", F.strict.log()[before:])
    self.assert_victim_untouched("garbage after the grant")


def _add_garbage_tests():
    def connect(self):
        _garbage_after_grant(self, connect_bytes("allowed.test:%d" % F.AT))

    def socks(self):
        _garbage_after_grant(self, socks_bytes(3, "allowed.test", F.AT))
    _add(InterceptedTunnel, "connect_and_non_tls_bytes_in_one_write",
         connect, _garbage_after_grant.__doc__)
    _add(InterceptedTunnel, "socks5_request_and_non_tls_bytes_in_one_write",
         socks, _garbage_after_grant.__doc__)


_add_garbage_tests()


def _inner_tests():
    for label, sni, data, statuses in INNER:
        def t(self, sni=sni, data=data, statuses=statuses, label=label):
            sock = mf.proxy_connect(F.strict.port, "allowed.test", F.AT)
            ctx = mf.client_context(F.cafile, check_hostname=False)
            tls = ctx.wrap_socket(sock, server_hostname=sni)
            with tls:
                tls.sendall(fill(data.decode()).encode())
                raw, closed = read_all(tls, 10)
            self.assert_statuses(raw, closed, statuses, label)
            self.assert_victim_untouched(label)
        _add(InterceptedTunnel, "inner_" + _slug(label), t, "%s -> %s"
             % (label, statuses))


_inner_tests()


# --------------------------------------------------------------- SOCKS5

class Socks5(BypassCase):
    """SOCKS rows: address form vs name form, odd names."""

    def test_allowed_name_tunnel_reaches_the_allowed_origin(self):
        raw = cf.socks5_exchange(
            F.strict.port, socks_bytes(3, "plain.test", F.P) +
            b"GET /hello.txt HTTP/1.1\r\nHost: plain.test\r\n"
            b"Connection: close\r\n\r\n", timeout=10)
        _m, reply, rest = cf.split_socks5_answer(raw)
        self.assertEqual(reply[1], 0)
        self.assertIn(ALLOWED_BODY.encode(), rest)
        self.assert_victim_untouched("SOCKS5 allowed")


def _socks_tests():
    for label, atyp, addr, pk, rep in SOCKS:
        for sname in (("strict", "wild") if atyp in (1, 4) else
                      ("strict",)):
            def t(self, atyp=atyp, addr=addr, pk=pk, rep=rep, sname=sname):
                got = socks_reply(F.sessions[sname],
                                  socks_bytes(atyp, addr, PORTS[pk]()))
                self.assertEqual(got, rep, "reply 0x%02x" % got)
                self.assert_victim_untouched(label)
            _add(Socks5, "%s_%s" % (sname, _slug(label)), t,
                 "%s -> 0x%02x (%s)" % (label, rep, sname))


_socks_tests()


# --------------------------------------------------------------- users

# A client run as another local account (nobody): raw bytes from a python
# one-liner, its answer printed as a Python literal.
_AS_OTHER = r"""
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(bytes.fromhex(sys.argv[2]))
buf = b""
try:
    while True:
        b = s.recv(65536)
        if not b:
            break
        buf += b
except OSError:
    pass
print(repr(buf))
"""


class OtherUser(BypassCase):
    """The loopback proxy serves only the account that started it (and
    root): another local user borrows neither its policy exceptions nor
    its secrets, at any door."""

    def as_nobody(self, data):
        if os.geteuid() != 0:
            self.skipTest("needs root to run a client as another user")
        r = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             "--", h.PY, "-c", _AS_OTHER, str(F.strict.port), data.hex()],
            capture_output=True, text=True, timeout=20, env=h.clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        return ast.literal_eval(r.stdout.strip())

    def check(self, data, what):
        before = len(bf.conn_log(F.allowed))
        raw = self.as_nobody(data)
        self.assertRegex(raw, rb"^HTTP/1.1 403 ", what)
        self.assertIn(b"serves only the user who started it", raw, what)
        self.assertNotIn(ALLOWED_BODY.encode(), raw, what)
        time.sleep(0.05)
        self.assertEqual(len(bf.conn_log(F.allowed)), before,
                         "%s: the allowed origin saw it" % what)
        self.assert_victim_untouched(what)

    def test_http_as_another_user_is_403(self):
        self.check(get_bytes("allowed.test:%d" % F.P), "GET")

    def test_connect_as_another_user_is_403(self):
        self.check(connect_bytes("plain.test:%d" % F.P) +
                   b"GET /hello.txt HTTP/1.1\r\nHost: plain.test\r\n\r\n",
                   "CONNECT")

    def test_socks5_as_another_user_gets_no_tunnel(self):
        self.check(socks_bytes(3, "plain.test", F.P) +
                   b"GET /hello.txt HTTP/1.1\r\nHost: plain.test\r\n\r\n",
                   "SOCKS5")


# --------------------------------------------------------------- curl

# A real client where it is natural: (label, curl arguments, the code
# curl reports: "%{http_code} %{http_connect}", and its exit status).
# curl normalises some spellings itself (it strips userinfo into an
# Authorization header, rewrites 0x7f.1): the proxy must refuse what it
# gets all the same.
CURL = [
    ("control", ["http://plain.test:{P}/hello.txt"], "200 000", 0),
    ("userinfo allowed@victim", ["http://allowed.test@victim.test:{V}/"],
     "403 000", 0),
    ("userinfo with the allowed port",
     ["http://allowed.test:{P}@victim.test:{V}/"], "403 000", 0),
    ("Host header naming the allowed host",
     ["-H", "Host: allowed.test:{P}", "http://victim.test:{V}/"],
     "403 000", 0),
    ("request-target to victim, URL allowed",
     ["--request-target", "http://victim.test:{V}/",
      "http://allowed.test:{P}/hello.txt"], "403 000", 0),
    ("OPTIONS *", ["-X", "OPTIONS", "--request-target", "*",
                   "http://allowed.test:{P}/"], "400 000", 0),
    ("hex-dotted host", ["http://0x7f.1:{V}/"], "403 000", 0),
    ("v4-mapped host", ["http://[::ffff:127.0.0.1]:{V}/"], "403 000", 0),
    ("HTTP/1.0", ["--http1.0", "http://victim.test:{V}/"], "403 000", 0),
    ("proxytunnel to victim", ["-p", "http://victim.test:{V}/"],
     "000 403", 56),
    ("https to victim", ["-k", "https://victim.test:{VT}/"], "000 403", 56),
    ("socks5-hostname victim",
     ["--socks5-hostname", "127.0.0.1:{PROXY}", "http://victim.test:{V}/"],
     "000 000", 97),
    ("socks5 local resolution",
     ["--socks5", "127.0.0.1:{PROXY}", "--resolve",
      "victim.test:{V}:127.0.0.1", "http://victim.test:{V}/"],
     "000 000", 97),
    ("socks5-hostname control",
     ["--socks5-hostname", "127.0.0.1:{PROXY}",
      "http://plain.test:{P}/hello.txt"], "200 000", 0),
]


class CurlClient(BypassCase):
    """CURL rows: curl through the strict session's proxy."""


def _curl_tests():
    for label, args, code, rc in CURL:
        def t(self, args=args, code=code, rc=rc, label=label):
            a = [x.replace("{PROXY}", str(F.strict.port)) for x in args]
            a = [fill(x) for x in a]
            # (--socks5* after the session's -x replaces it.)
            r_rc, out, err = F.strict.curl("-o", "/dev/null", "-w",
                                           "%{http_code} %{http_connect}",
                                           *a)
            self.assertEqual((out, r_rc), (code, rc), "%s: %s" % (label,
                                                                  err))
            self.assert_victim_untouched(label)
        _add(CurlClient, _slug(label), t, "curl %s -> %s" % (label, code))


_curl_tests()


# --------------------------------------------------------------- self

class OwnPort(BypassCase):
    """SELF rows: the proxy's own port in every spelling, while loopback
    is explicitly allowed: GET, CONNECT and SOCKS5 are all refused, and
    the proxy keeps serving."""

    def test_self_session_reaches_the_allowed_origin_by_address(self):
        # The self session really does allow loopback: the refusals
        # below are the loop check's, not the guard's.
        r = F.self_.request(get_bytes("127.0.0.1:%d" % F.P), timeout=10)
        self.assertEqual(r.status, 200, r)


def _self_tests():
    for label, auth in SELF:
        def http(self, auth=auth):
            a = "%s:%d" % (auth, F.L)
            r = F.self_.request(get_bytes(a, path="/"), timeout=10)
            self.assert_status(r, 403, "GET " + a, "self")
            self.assertRegex(r.header("x-egress-run-reason"),
                             "own proxy|unspecified")

        def connect(self, auth=auth):
            a = "%s:%d" % (auth, F.L)
            r = F.self_.request(connect_bytes(a), timeout=10)
            self.assert_status(r, 403, "CONNECT " + a, "self")
            self.assertRegex(r.header("x-egress-run-reason"),
                             "own proxy|unspecified")

        def socks(self, auth=auth):
            name = auth[1:-1] if auth.startswith("[") else auth
            rep = socks_reply(F.self_, socks_bytes(3, name.encode(), F.L))
            self.assertEqual(rep, 0x02, "reply 0x%02x" % rep)

        _add(OwnPort, "http_" + _slug(label), http, "GET own port: " + label)
        _add(OwnPort, "connect_" + _slug(label), connect,
             "CONNECT own port: " + label)
        _add(OwnPort, "socks_" + _slug(label), socks,
             "SOCKS5 own port: " + label)


_self_tests()


# --------------------------------------------------------------- the doc

ROOT = os.path.abspath(os.path.join(h.HERE, "..", ".."))
DOC_REF = re.compile(r"`((?:tests|scripts)/[\w./-]+)(?:::([\w.]+))?`")


class SecurityDoc(unittest.TestCase):
    """docs/SECURITY.md names, for each promise, the tests that show it:
    every file and test it names exists (a renamed test must take its
    row along)."""

    def test_every_test_named_in_security_md_exists(self):
        with open(os.path.join(ROOT, "docs", "SECURITY.md")) as f:
            doc = f.read()
        refs = DOC_REF.findall(doc)
        self.assertGreater(len(refs), 30, "the table names too few tests")
        missing = []
        for path, name in refs:
            full = os.path.join(ROOT, path)
            if not os.path.isfile(full):
                missing.append(path)
                continue
            if not name:
                continue
            with open(full, errors="replace") as f:
                text = f.read()
            for part in name.split("."):
                pat = (r"^\s*(?:def|class)\s+%s\b" if path.endswith(".py")
                       else r"^%s\(void\)") % re.escape(part)
                if not re.search(pat, text, re.M):
                    missing.append("%s::%s" % (path, part))
        self.assertEqual(missing, [], "docs/SECURITY.md names tests that "
                         "do not exist")

    def test_every_catalogue_class_has_rows(self):
        for cls in (AuthoritySpellings, RequestForms, Smuggling,
                    InterceptedTunnel, Socks5, OwnPort, CurlClient):
            n = len([m for m in dir(cls) if m.startswith("test_")])
            self.assertGreater(n, 2, cls.__name__)


if __name__ == "__main__":
    unittest.main()
