"""Fixtures for the TLS interception and secret injection tests (issue 6),
on top of harness.py and builtin_fixtures.py (owned by others: extend here).

  - new_secret(): a fresh random value per test, so that a grep for it
    can only match what this run leaked.
  - MitmCase: an EgressTestCase with a TestCA made at run time, and
    helpers that start origins with certificates from it:
      * echo_nginx(): nginx over TLS answering for several pinned names
        (api.test, other.test, plain.test ...): /echo prints the headers a
        secret could land in, /fixed says "ok", /redirect sends the client
        to other.test, and an access log (JSON) records each request's
        host and those headers as the origin received them.
      * sink(): a strict HTTPS upload sink (python ssl over the TestCA's
        certificate): every request is saved (head as JSON, body as a
        file) after its framing was checked to the byte; it answers with
        lengths and checksums only, never the headers it got, so nothing
        it was sent flows back to the client.
  - raw TLS through the proxy: tls_via_proxy() (CONNECT, then ssl with a
    server name of our choosing), http_over() (one request, one response).
  - leak_scan(): every place a secret value must not be.

Everything binds 127.0.0.1; everything started is stopped by cleanup.
Runs under Debian's /usr/bin/python3, stdlib only.
"""

import json
import os
import random
import re
import socket
import ssl
import string
import subprocess
import time

import builtin_fixtures as bf
import harness as h

PY = h.PY
NAMES = ("api.test", "other.test", "plain.test", "git.test")


def new_secret(prefix="sk-test-", n=40):
    """A key-shaped value, random per call (>= 32 bytes: length-preserving
    placeholders)."""
    rnd = random.SystemRandom()
    return prefix + "".join(rnd.choice(string.ascii_letters + string.digits)
                            for _ in range(n))


def pins(port, names=NAMES):
    """--resolve NAME:PORT:127.0.0.1 for each name."""
    out = []
    for n in names:
        out += ["--resolve", "%s:%d:127.0.0.1" % (n, port)]
    return out


# ------------------------------------------------------------ nginx

ECHO_LOG_FORMAT = (
    "log_format hdrs escape=json '{\"host\":\"$host\",\"request\":"
    "\"$request\",\"auth\":\"$http_authorization\",\"apikey\":"
    "\"$http_x_api_key\",\"other\":\"$http_x_other\",\"status\":$status}';")

ECHO_LOCATIONS = """
    access_log @@dir@@/hdrs.log hdrs;
    location = /echo {
        default_type text/plain;
        return 200 "host=[$host] auth=[$http_authorization] apikey=[$http_x_api_key] other=[$http_x_other]\\n";
    }
    location = /fixed {
        default_type text/plain;
        return 200 "ok\\n";
    }
    location = /redirect {
        return 302 https://other.test:@@https_port@@/echo;
    }
"""


def header_log(nginx, want=0, timeout=5.0):
    """nginx's hdrs.log: one dict per request (host, request, auth, apikey,
    other, status). nginx logs a request after answering it: with want,
    wait until that many lines are there (the answer may be faster)."""
    def load():
        try:
            with open(os.path.join(nginx.dir, "hdrs.log")) as f:
                return [json.loads(ln) for ln in f if ln.endswith("\n")]
        except FileNotFoundError:
            return []
    if want:
        h.wait_for(lambda: len(load()) >= want, timeout,
                   "%d line(s) in nginx's header log" % want)
    return load()


# ------------------------------------------------------------ the sink

_SINK = r'''
import hashlib, itertools, json, os, re, socket, ssl, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

port, cert, key, outdir = int(sys.argv[1]), sys.argv[2], sys.argv[3], \
    sys.argv[4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
def on_sni(sock, name, c):
    sock.sni_seen = name
ctx.sni_callback = on_sni
counter = itertools.count(1)
lock = threading.Lock()
CHUNK_LINE = re.compile(rb"^([0-9a-fA-F]{1,16})\r\n$")

class Bad(Exception):
    pass

def save(n, rec, body):
    p = os.path.join(outdir, "req-%04d" % n)
    if body is not None:
        with open(p + ".body", "wb") as f:
            f.write(body)
    with open(p + ".tmp", "w") as f:
        json.dump(rec, f)
    os.rename(p + ".tmp", p + ".json")

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request.settimeout(30)
        self.request = ctx.wrap_socket(self.request, server_side=True)
        self.sni = getattr(self.request, "sni_seen", None)
        super().setup()

    def log_message(self, fmt, *a):
        sys.stdout.write("%s\n" % (fmt % a))
        sys.stdout.flush()

    def exact(self, n):
        b = self.rfile.read(n)
        if len(b) != n:
            raise Bad("body cut short: %d of %d bytes" % (len(b), n))
        return b

    def body(self):
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        if te and cl:
            raise Bad("both Transfer-Encoding and Content-Length")
        if te:
            if [v.strip().lower() for v in te] != ["chunked"]:
                raise Bad("Transfer-Encoding %r" % te)
            sizes, parts = [], []
            while True:
                line = self.rfile.readline(64)
                m = CHUNK_LINE.match(line)
                if not m:
                    raise Bad("bad chunk-size line %r" % line[:40])
                size = int(m.group(1), 16)
                sizes.append(size)
                if size == 0:
                    if self.rfile.readline(64) != b"\r\n":
                        raise Bad("trailer after the last chunk")
                    return "chunked", sizes, b"".join(parts)
                parts.append(self.exact(size))
                if self.exact(2) != b"\r\n":
                    raise Bad("chunk data not followed by CRLF")
        if cl:
            if len(cl) != 1 or not re.fullmatch(r"[0-9]{1,12}", cl[0]):
                raise Bad("Content-Length %r" % cl)
            return "length", None, self.exact(int(cl[0]))
        return "none", None, b""

    def handle_any(self):
        n = next(counter)
        rec = {"n": n, "method": self.command, "path": self.path,
               "headers": [[k, v] for k, v in self.headers.items()],
               "sni": self.sni, "error": None}
        body = None
        try:
            framing, sizes, body = self.body()
            rec.update(framing=framing, chunks=sizes, len=len(body),
                       sha256=hashlib.sha256(body).hexdigest())
        except (Bad, ValueError, OSError) as e:
            rec["error"] = str(e)
        save(n, rec, body)
        if rec["error"]:
            out = json.dumps({"n": n, "error": rec["error"]}).encode()
            self.send_response(400)
            self.send_header("Connection", "close")
            self.close_connection = True
        else:
            out = json.dumps({"n": n, "len": rec["len"],
                              "sha256": rec["sha256"],
                              "framing": rec["framing"]}).encode()
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = handle_any

class S(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        pass    # TLS failures are the clients' business

srv = S(("127.0.0.1", port), H)
srv.serve_forever(poll_interval=0.1)
'''


class Sink:
    """The strict HTTPS upload sink; requests() reads what it saved."""

    def __init__(self, tc, cert, key):
        self.dir = tc.tmp.mkdir("sink-%d" % time.monotonic_ns())
        self.port = h.free_port()
        script = tc.tmp.write("sink-%d.py" % time.monotonic_ns(), _SINK)
        self.proc = tc.start_proc([PY, script, str(self.port), cert, key,
                                   self.dir], "sink")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)

    def requests(self):
        """Every saved request (dict), in order; rec['body'] holds the
        body's bytes."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not name.endswith(".json"):
                continue
            with open(os.path.join(self.dir, name)) as f:
                rec = json.load(f)
            bp = os.path.join(self.dir, name[:-5] + ".body")
            if os.path.exists(bp):
                with open(bp, "rb") as f:
                    rec["body"] = f.read()
            out.append(rec)
        return out

    def wait(self, n, timeout=10.0):
        h.wait_for(lambda: len(self.requests()) >= n, timeout,
                   "%d request(s) at the sink" % n)
        return self.requests()


def header(rec, name):
    """All values of a header in a sink record (case-insensitive)."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


# ------------------------------------------------------------ test case

class MitmCase(h.EgressTestCase):
    """A TestCA per test (made with openssl at run time), plus origins."""

    def setUp(self):
        super().setUp()
        self.testca = self.ca("egress-run mitm test CA")

    def echo_nginx(self, names=NAMES, server_extra="", http_extra=""):
        n = h.Nginx(self.tmp.mkdir("nginx-%d" % time.monotonic_ns()),
                    tls=bf.NamedCA(self.testca, names),
                    http_extra=ECHO_LOG_FORMAT + http_extra)
        n.server_extra = (ECHO_LOCATIONS.replace(
            "@@https_port@@", str(n.https_port)) + server_extra)
        self.addCleanup(n.stop)
        return n.start()

    def sink(self, names=NAMES, cert=None):
        """The upload sink, its certificate from the TestCA (or cert, a
        (cert, key) pair)."""
        if cert is None:
            cert = self.testca.server_cert(
                names, stem="sink-%d" % time.monotonic_ns())
        return Sink(self, *cert)

    def self_signed(self, name):
        """A self-signed certificate for name (no CA anyone trusts)."""
        d = self.tmp.mkdir("selfsigned-%d" % time.monotonic_ns())
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        h._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                   "-subj", "/CN=" + name, "-keyout", key, "-out", cert,
                   "-addext", "subjectAltName=DNS:" + name)
        return cert, key

    def session(self, args, env=None):
        """egress-run with a sleeping child (builtin_fixtures), for driving
        the proxy from outside with the child's bouquet."""
        return bf.session(self, args, env=env)

    def audit_path(self):
        return self.tmp.join("audit-%d.jsonl" % time.monotonic_ns())


# ------------------------------------------------------------ raw TLS

def proxy_connect(proxy_port, host, port, timeout=10.0, source=None):
    """A socket to the proxy (from address source, if given) after CONNECT
    host:port succeeded; raises with the proxy's answer otherwise."""
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout,
                                 source_address=(source, 0) if source
                                 else None)
    s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
              % (host.encode(), port, host.encode(), port))
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(4096)
        if not b:
            break
        buf += b
    if not buf.startswith(b"HTTP/1.1 200"):
        s.close()
        raise ConnectionError("CONNECT %s:%d: %r" % (host, port, buf[:200]))
    return s


def client_context(cafile, check_hostname=True):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = check_hostname
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tls_via_proxy(proxy_port, host, port, cafile, server_hostname=None,
                  check_hostname=True, timeout=10.0):
    """CONNECT host:port, then TLS with server_hostname (default: host),
    verifying the chain against cafile."""
    s = proxy_connect(proxy_port, host, port, timeout)
    ctx = client_context(cafile, check_hostname)
    try:
        return ctx.wrap_socket(s, server_hostname=server_hostname or host)
    except BaseException:
        s.close()
        raise


def read_response(s, timeout=10.0):
    """One HTTP/1.1 response from s: (status, {lower name: value}, body).
    Handles Content-Length, chunked, and read-to-close."""
    s.settimeout(timeout)
    f = s.makefile("rb")
    try:
        line = f.readline(8192)
        if not line:
            raise ConnectionError("no response")
        status = int(line.split()[1])
        hdrs = {}
        while True:
            ln = f.readline(65536)
            if ln in (b"\r\n", b"\n", b""):
                break
            k, _, v = ln.decode("latin-1").partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if hdrs.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(f.readline(64).split(b";")[0], 16)
                if size == 0:
                    f.readline(64)
                    break
                body += f.read(size)
                f.read(2)
        elif "content-length" in hdrs:
            body = f.read(int(hdrs["content-length"]))
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = f.read()
        return status, hdrs, body
    finally:
        f.close()


def http_over(s, head, body_parts=(), pause=0.0, timeout=10.0):
    """Send head (bytes) then each of body_parts (with pause seconds
    between, so they travel as separate TLS records and reads), and read
    the response."""
    s.sendall(head)
    for part in body_parts:
        if pause:
            time.sleep(pause)
        s.sendall(part)
    return read_response(s, timeout)


def early_hello_request(proxy_port, host, port, cafile, request,
                        timeout=10.0):
    """CONNECT and the TLS ClientHello in one write (not waiting for the
    proxy's 200, as some clients do), then request (bytes) over the TLS;
    returns (proxy answer, the response: read until its Content-Length
    is complete or time runs out)."""
    ctx = client_context(cafile)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_hostname=host)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    s = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout)
    try:
        s.sendall(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                  % (host.encode(), port, host.encode(), port) + out.read())
        answer = b""
        while b"\r\n\r\n" not in answer:
            b = s.recv(1)
            if not b:
                raise ConnectionError("proxy closed: %r" % answer)
            answer += b
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                if out.pending:
                    s.sendall(out.read())
                b = s.recv(65536)
                if not b:
                    raise ConnectionError("closed during the handshake")
                inc.write(b)
        tls.write(request)
        s.sendall(out.read())
        got = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got += tls.read(65536)
                head, sep, body = got.partition(b"\r\n\r\n")
                m = re.search(rb"(?im)^content-length: *(\d+)", head)
                if sep and m and len(body) >= int(m.group(1)):
                    break
            except ssl.SSLWantReadError:
                b = s.recv(65536)
                if not b:
                    break
                inc.write(b)
        return answer, got
    finally:
        s.close()


def peer_issuer_cn(sock):
    """The issuer CN of the certificate the TLS peer showed."""
    cert = sock.getpeercert()
    for rdn in cert.get("issuer", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def s_client_issuer(proxy_port, host, port, cafile):
    """openssl s_client -proxy (the real CLI, as a user would check): the
    issuer it prints, its exit status (0: verified), and its output."""
    r = subprocess.run(
        ["openssl", "s_client", "-proxy", "127.0.0.1:%d" % proxy_port,
         "-connect", "%s:%d" % (host, port), "-servername", host,
         "-CAfile", cafile, "-verify_return_error"],
        input=b"", capture_output=True, timeout=20)
    text = (r.stdout + r.stderr).decode(errors="replace")
    m = re.search(r"^issuer=(.*)$", text, re.M)
    return (m.group(1).strip() if m else None), r.returncode, text


# ------------------------------------------------------------ leaks

def files_under(path):
    """(path, bytes) of every regular file below path."""
    out = []
    for root, _dirs, files in os.walk(path):
        for n in files:
            p = os.path.join(root, n)
            try:
                with open(p, "rb") as f:
                    out.append((p, f.read()))
            except OSError:
                pass
    return out


def leaks(value, texts=(), paths=()):
    """Where value (str) appears: names of the texts ({name: str|bytes})
    and files below paths that hold it. [] means no leak."""
    v = value.encode()
    found = []
    for name, t in dict(texts).items():
        b = t.encode(errors="replace") if isinstance(t, str) else t
        if v in b:
            found.append(name)
    for p in paths:
        for fp, data in files_under(p):
            if v in data:
                found.append(fp)
    return found
