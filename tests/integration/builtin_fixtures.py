"""Fixtures for the built-in proxy's integration tests (issue 3), on top
of harness.py (which another engineer owns: extend here, not there).

  - ProxySession: egress-run with its built-in proxy and a child that only
    sleeps, so that a test can drive the proxy with raw sockets, curl -x
    and python from outside, read its log and audit file, and watch its
    memory. stop() ends it the ordinary way (SIGTERM, forwarded to the
    child) and returns egress-run's output.
  - PyOrigin: a small HTTP/1.1 origin (Debian's python3 http.server) for
    what nginx cannot be asked to do: chunked bodies on demand, hanging,
    closing mid-body, a checksumming upload sink, a slow reader, canned
    (malformed or unusual) response heads; EofOrigin answers only after
    the client's half-close.
  - raw_exchange() / Response: one request over a raw socket, the answer
    read to EOF (bounded in time), to assert exact status lines and that
    the proxy closed the connection.
  - nginx configuration snippets: a connection-numbering access log, a
    WebDAV PUT sink, gzip (chunked) responses, git http-backend through
    fcgiwrap.
  - read_audit(), vm_rss_kib(pid), sha256 of files, a named-certificate
    adapter for TestCA.

Binds 127.0.0.1 only; everything started is stopped by the test's cleanup.
"""

import hashlib
import json
import os
import re
import socket
import subprocess
import time

import harness as h

PY = h.PY


# ------------------------------------------------------------ sessions

_SLEEPER = ("import json,os,sys,time\n"
            "e=json.dumps(dict(os.environ))\n"
            "open(sys.argv[1]+'.tmp','w').write(e)\n"
            "os.rename(sys.argv[1]+'.tmp',sys.argv[1])\n"
            "time.sleep(float(sys.argv[2]))\n")


class ProxySession:
    """egress-run ARGS -- (a sleeping child). .port is the built-in proxy's
    port as the bouquet names it; .env the child's environment."""

    def __init__(self, tc, args, env=None, lifetime=120.0):
        self.tc = tc
        self.envfile = tc.tmp.join("child-env-%d.json" % time.monotonic_ns())
        self.marker = tc.marker("session")
        self.proc = tc.start_egress(
            list(args), [PY, "-c", _SLEEPER, self.envfile, str(lifetime),
                         self.marker], env=env)
        h.wait_for(lambda: os.path.exists(self.envfile) or
                   not self.proc.alive(), 15, "egress-run to start its child")
        if not os.path.exists(self.envfile):
            raise AssertionError("egress-run exited early (%s):\n%s"
                                 % (self.proc.returncode,
                                    self.proc.log_text()))
        with open(self.envfile) as f:
            self.env = json.load(f)
        url = self.env.get("HTTP_PROXY", "")
        if not url.startswith("http://127.0.0.1:"):
            raise AssertionError("no built-in proxy in the bouquet: %r\n%s"
                                 % (url, self.proc.log_text()))
        self.port = int(url.rsplit(":", 1)[1].strip("/"))
        self.proxy = "http://127.0.0.1:%d" % self.port
        self.pid = self.proc.pid
        self.stopped = None

    def log(self):
        """Everything egress-run (and the child) wrote so far."""
        return self.proc.log_text()

    def alive(self):
        return self.proc.alive()

    def stop(self):
        """End the session as a user would (SIGTERM); return its output."""
        if self.stopped is None:
            self.proc.stop(grace=5.0)
            self.stopped = self.proc.log_text()
        return self.stopped

    def curl_opts(self):
        """Options that send curl through this proxy (repeat them after
        each --next)."""
        return ["-x", self.proxy, "--noproxy", ""]

    def curl(self, *args, timeout=20):
        """curl ARGS (URLs included, in order) through this proxy, from
        outside; (rc, stdout, stderr)."""
        argv = (["curl", "-sS", "--max-time", str(timeout - 5)] +
                self.curl_opts() + list(args))
        r = subprocess.run(argv, capture_output=True, timeout=timeout,
                           env=h.clean_env())
        return (r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace"))

    def request(self, data, timeout=10.0, **kw):
        return raw_exchange(self.port, data, timeout=timeout, **kw)


SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|"
                              r"runtime error: |AddressSanitizer:")


def session(tc, args, **kw):
    """Start a ProxySession; at cleanup stop it and fail the test if a
    sanitizer (an ASan build) reported anything."""
    s = ProxySession(tc, args, **kw)

    def stop_and_check():
        out = s.stop()
        m = SANITIZER_REPORT.search(out)
        if m:
            raise AssertionError("egress-run: sanitizer report:\n%s"
                                 % out[max(0, m.start() - 200):][:4000])
    tc.addCleanup(stop_and_check)
    return s


def read_audit(path, timeout=5.0, want=None, writing=False):
    """The audit file as a list of parsed objects (every line must be one
    JSON object). With want (a predicate over the list), wait for it.
    writing: the proxy may be between two writes (it flushes 64 KiB at a
    time), so a last line without its newline is left for the next read."""
    def load():
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1] if writing else text.splitlines()
        out = []
        for ln in lines:
            obj = json.loads(ln)   # raises on anything but JSON
            if not isinstance(obj, dict):
                raise AssertionError("audit line is not an object: %r" % ln)
            out.append(obj)
        return out
    if want is None:
        return load()
    h.wait_for(lambda: want(load()), timeout, "audit events")
    return load()


# ------------------------------------------------------------ raw HTTP

class Response:
    """A parsed response read from a raw socket."""

    def __init__(self, data, closed, elapsed):
        self.raw = data
        self.closed = closed     # the peer closed (EOF) within the timeout
        self.elapsed = elapsed
        head, sep, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_line = lines[0] if lines else ""
        parts = self.status_line.split(" ", 2)
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.status = None
        self.headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                self.headers.setdefault(k.strip().lower(), v.strip())

    def header(self, name):
        return self.headers.get(name.lower())

    def __repr__(self):
        return "Response(%r, closed=%s, %.2fs)" % (self.raw[:600],
                                                   self.closed,
                                                   self.elapsed)


def raw_exchange(port, data, timeout=10.0, host="127.0.0.1", chunks=None,
                 half_close=False, until=None):
    """Send data (or the list chunks, with short pauses) to host:port and
    read until EOF, until(data_so_far) is true, or timeout."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    t0 = time.monotonic()
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    buf = b""
    closed = False
    try:
        s.connect((host, port))
        for i, piece in enumerate(chunks or [data]):
            if i:
                time.sleep(0.05)
            s.sendall(piece)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not b:
                closed = True
                break
            buf += b
            if until is not None and until(buf):
                break
    finally:
        s.close()
    return Response(buf, closed, time.monotonic() - t0)


def head_complete(buf):
    return b"\r\n\r\n" in buf


# ------------------------------------------------------------ origins

_ORIGIN = r'''
import hashlib, json, socket, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

STOP = threading.Event()

def pattern(n):
    """n deterministic bytes."""
    block = bytes((i * 7 + 3) % 251 for i in range(65536))
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])

# Response heads an origin must not get away with (the proxy answers 502).
RAW = {
    "cl_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "dup_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
              b"Content-Length: 6\r\n\r\nhello!",
    "fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n"
            b"\r\nok",
    "nul": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n"
           b"\r\nok",
    "bare_cr": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n"
               b"\r\nok",
    "huge": b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 70000 +
            b"\r\nContent-Length: 2\r\n\r\nok",
    "not_http": b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
    # Well-formed, and unusual: served by /rawka/ (the connection stays
    # open afterwards, so a proxy that waits for a body it should not
    # expect hangs).
    "not_modified": b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n"
                    b"Content-Length: 100\r\n\r\n",
    "no_content": b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
    "early_hints": b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
                   b"HTTP/1.1 100 Continue\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    # Served by /raw/ (closed after): the close ends the body.
    "eof_body": b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"
                b"until the end",
    "http10": b"HTTP/1.0 200 OK\r\n\r\nold school",
}

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        sys.stdout.write("%s %s\n" % (self.client_address[1], fmt % a))
        sys.stdout.flush()

    def body_iter(self, rate=None):
        te = self.headers.get("Transfer-Encoding", "")
        if te.lower() == "chunked":
            while True:
                line = self.rfile.readline(1024)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b""):
                        pass
                    return
                left = size
                while left:
                    b = self.rfile.read(min(left, 65536))
                    if not b:
                        raise EOFError
                    left -= len(b)
                    yield b
                    if rate:
                        time.sleep(len(b) / rate)
                self.rfile.readline(16)
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                b = self.rfile.read(min(left, 65536))
                if not b:
                    raise EOFError
                left -= len(b)
                yield b
                if rate:
                    time.sleep(len(b) / rate)

    def send_json(self, obj, status=200):
        b = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)

    def sink(self, rate=None):
        d = hashlib.sha256()
        n = 0
        for b in self.body_iter(rate):
            d.update(b)
            n += len(b)
        self.send_json({"len": n, "sha256": d.hexdigest(),
                        "headers": [[k, v] for k, v in self.headers.items()],
                        "requestline": self.requestline})

    def do_PUT(self):
        if self.path.startswith("/slowsink"):
            return self.sink(rate=int(self.path.split("=")[1]))
        return self.sink()

    do_POST = do_PUT

    def do_HEAD(self):
        self.do_GET(head=True)

    def do_GET(self, head=False):
        p = self.path
        sys.stdout.write("got %s %s\n" % (self.command, p))
        sys.stdout.flush()
        if p.startswith("/echo"):
            return self.send_json({
                "headers": [[k, v] for k, v in self.headers.items()],
                "requestline": self.requestline,
                "peer": self.client_address[1]})
        if p.startswith("/chunked"):
            n = int(p.split("=")[1]) if "=" in p else 50
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if head:
                return
            for i in range(n):
                piece = (b"chunk %d " % i) * (i % 7 + 1) + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if p.startswith("/hang"):
            STOP.wait(60)
            self.close_connection = True
            return
        if p.startswith("/rawka/"):
            self.wfile.write(RAW[p[7:]])
            self.wfile.flush()
            self.connection.settimeout(30)
            try:
                self.connection.recv(1)   # until the proxy lets go
            except OSError:
                pass
            self.close_connection = True
            return
        if p.startswith("/raw/"):
            self.wfile.write(RAW[p[5:]])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if p.startswith("/cutchunk"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"5\r\nhello\r\n3e8\r\n" + pattern(10))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if p.startswith("/cut"):
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            self.wfile.write(pattern(10000))
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_json({"error": "no such path"}, 404)

class Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6 if ":" in sys.argv[2] else \
        socket.AF_INET

srv = Server((sys.argv[2], int(sys.argv[1])), H)
srv.daemon_threads = True
try:
    srv.serve_forever(poll_interval=0.1)
finally:
    STOP.set()
'''


def expected_chunked_body(n=50):
    """What the PyOrigin's /chunked?n=N serves, de-chunked."""
    return b"".join((b"chunk %d " % i) * (i % 7 + 1) + b"\n"
                    for i in range(n))


class PyOrigin:
    """The python origin on host (127.0.0.1 or ::1), self.port."""

    def __init__(self, tc, host="127.0.0.1"):
        self.host = host
        self.port = h.free_port(host)
        script = tc.tmp.write("origin-%d.py" % time.monotonic_ns(), _ORIGIN)
        self.proc = tc.start_proc([PY, script, str(self.port), host],
                                  "pyorigin")
        h.wait_port(host, self.port, 10, self.proc)

    def log(self):
        return self.proc.log_text()


_EOF_ORIGIN = r'''
import socket, sys, threading
def serve(c):
    n = 0
    c.settimeout(30)
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            n += len(b)
        c.sendall(b"received %d bytes\n" % n)
    finally:
        c.close()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(16)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
'''


class EofOrigin:
    """A TCP origin that reads until the client's EOF (half-close), then
    answers "received N bytes" and closes: it tells whether a half-close
    made it through."""

    def __init__(self, tc):
        self.port = h.free_port()
        script = tc.tmp.write("eof-origin-%d.py" % time.monotonic_ns(),
                              _EOF_ORIGIN)
        self.proc = tc.start_proc([PY, script, str(self.port)], "eoforigin")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)


# ------------------------------------------------------------ nginx

# $connection numbers nginx's client connections (the proxy's upstream
# ones); $connection_requests counts requests on each.
CONN_LOG_FORMAT = ("log_format conn '$connection $connection_requests "
                   "\"$http_host\" \"$request\" $status $body_bytes_sent "
                   "$request_length';")
CONN_LOG = "access_log @@dir@@/conn.log conn;"

DAV_PUT = """
    location /upload/ {
        dav_methods PUT;
        create_full_put_path on;
        client_max_body_size 0;
        client_body_buffer_size 1m;
    }
"""

GZIP_LOCATION = """
    location /gz/ {
        gzip on;
        gzip_types text/plain;
        gzip_min_length 0;
        chunked_transfer_encoding on;
    }
"""


def conn_log(nginx):
    """nginx's conn.log as (connection, requests, host, request, status)
    tuples."""
    try:
        with open(os.path.join(nginx.dir, "conn.log")) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    out = []
    for ln in text.splitlines():
        a = ln.split('"')
        nums = a[0].split()
        out.append((int(nums[0]), int(nums[1]), a[1], a[3],
                    a[4].split()[0]))
    return out


class NamedCA:
    """TestCA as Nginx's tls= argument, issuing its server certificate for
    names of our choosing (Nginx asks for the default ones)."""

    def __init__(self, ca, names):
        self.ca = ca
        self.names = tuple(names)
        self.cert = ca.cert
        self.name = ca.name

    def server_cert(self, names=None, stem="server"):
        return self.ca.server_cert(self.names, stem)


# ------------------------------------------------------------ misc

def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


def sha256_file(path):
    d = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                return d.hexdigest()
            d.update(b)


def write_pattern_file(path, size, seed=1):
    """A file of size bytes, a pseudo-random 1 MiB block repeated with a
    per-MiB counter (so a dropped or repeated MiB changes the checksum)."""
    import random
    rnd = random.Random(seed)
    block = bytearray(rnd.randbytes(1 << 20))
    with open(path, "wb") as f:
        left = size
        i = 0
        while left > 0:
            block[0:8] = i.to_bytes(8, "big")
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            i += 1
    return sha256_file(path)
