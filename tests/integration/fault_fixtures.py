"""Fixtures for the fault and load tests (issue 7), on top of harness.py and
builtin_fixtures.py (extend here, not there).

  - FaultOrigin: a TCP origin whose misbehaviour is chosen per request:
    HTTP paths (/rst-body, /stall-body, /early-answer, /upload, /big...)
    and, through tunnels, raw commands (ECHO, BANNER-SHUT, RST-AFTER). It
    logs what happened to each connection, e.g. when the proxy let go of
    it, so a test can prove nothing was left dangling.
  - FakeDns: a UDP resolver on 127.0.0.1 that answers NXDOMAIN for every
    name, or drops every query (a resolver that never answers).
  - wrapped_session(): a ProxySession whose egress-run runs under a
    prefix command, e.g. unshare_resolv_prefix(): a private mount
    namespace in which /etc/resolv.conf is a file of the test's (the
    host's /etc is never touched).
  - Tmpfs: a tiny tmpfs mounted in the test's directory (root only),
    unmounted at cleanup.
  - fd_count(), fd_targets(), cpu_seconds(), set_nofile(), sanitized():
    what a process holds and uses, its descriptor limit, and whether the
    binary under test is an ASan build.
  - BigNginx: nginx with room for thousands of connections.

Binds 127.0.0.1 only; everything started is stopped by the test's cleanup.
"""

import os
import socket
import struct
import subprocess
import time
import unittest

import builtin_fixtures as bf
import harness as h

PY = h.PY


# ------------------------------------------------------------ processes

def fd_targets(pid):
    """What each open descriptor of pid points at (socket:[..], pipe:[..],
    a path)."""
    out = []
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            out.append(os.readlink(os.path.join(d, n)))
        except OSError:
            pass
    return out


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def set_nofile(pid, n):
    """Set pid's descriptor limit (soft and hard) to n."""
    subprocess.run(["prlimit", "--pid", str(pid), "--nofile=%d:%d" % (n, n)],
                   check=True, capture_output=True)


def wait_fds(pid, want, timeout=10.0):
    """Wait until pid holds at most want descriptors; returns the count
    (which the caller asserts on)."""
    deadline = time.monotonic() + timeout
    while True:
        n = fd_count(pid)
        if n <= want or time.monotonic() >= deadline:
            return n
        time.sleep(0.05)


_sanitized = None


def sanitized():
    """Is the egress-run under test an ASan build? (Its memory and speed
    are not comparable with a normal build's.)"""
    global _sanitized
    if _sanitized is None:
        with open(h.egress_bin(), "rb") as f:
            _sanitized = b"__asan_init" in f.read()
    return _sanitized


def session_env(extra=None):
    """The scrubbed environment; under ASan, freed memory is not kept in
    a quarantine (it would count as growth)."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    env = h.clean_env({"ASAN_OPTIONS": (opts + ":" if opts else "") +
                       "quarantine_size_mb=0"})
    env.update(extra or {})
    return env


# ------------------------------------------------------------ audit

def read_audit(path, timeout=5.0, want=None):
    """builtin_fixtures.read_audit() of a proxy still writing."""
    return bf.read_audit(path, timeout, want, writing=True)


# ------------------------------------------------------------ sessions

class _PrefixedCase:
    """A test case as ProxySession sees it, but egress-run runs under
    prefix (a command that execs its arguments, keeping the pid)."""

    def __init__(self, tc, prefix):
        self._tc = tc
        self._prefix = list(prefix)

    def __getattr__(self, name):
        return getattr(self._tc, name)

    def start_egress(self, args, cmd, env=None):
        env = h.clean_env() if env is None else env
        env = dict(env, TMPDIR=str(self._tc.state_tmp))
        argv = self._prefix + [h.egress_bin()] + list(args) + ["--"] + \
            list(cmd)
        p = h.Proc(argv, self._tc.tmp.join("egress-%d.log"
                                           % time.monotonic_ns()),
                   env=env, name="egress-run")
        self._tc.addCleanup(p.stop)
        return p


def wrapped_session(tc, args, prefix, **kw):
    """bf.session() with egress-run started under prefix."""
    return bf.session(_PrefixedCase(tc, prefix), args, **kw)


def unshare_resolv_prefix(resolv_conf):
    """A prefix that runs egress-run in a private mount namespace where
    /etc/resolv.conf is the file resolv_conf. Root only."""
    script = 'mount --bind "$0" /etc/resolv.conf && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--",
            "/bin/sh", "-c", script, resolv_conf]


def can_unshare_mount():
    if os.geteuid() != 0:
        return False
    r = subprocess.run(["unshare", "--mount", "--", "true"],
                       capture_output=True)
    return r.returncode == 0


# ------------------------------------------------------------ tmpfs

class Tmpfs:
    """tmpfs of size bytes mounted at a fresh directory; umount() at
    cleanup (lazily if something still holds it)."""

    def __init__(self, tc, size):
        self.path = tc.tmp.mkdir("tmpfs-%d" % time.monotonic_ns())
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % size,
                        "egress-it-tmpfs", self.path], check=True,
                       capture_output=True)
        tc.addCleanup(self.umount)

    def join(self, name):
        return os.path.join(self.path, name)

    def fill(self, name="filler", leave=0):
        """Write a file that fills the filesystem up to leave bytes."""
        p = self.join(name)
        st = os.statvfs(self.path)
        free = st.f_bavail * st.f_frsize
        with open(p, "wb") as f:
            try:
                f.write(b"\0" * max(0, free - leave))
                f.flush()
            except OSError:
                pass
        return p

    def umount(self):
        r = subprocess.run(["umount", self.path], capture_output=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", self.path], capture_output=True)


def can_mount_tmpfs():
    if os.geteuid() != 0:
        return False
    d = h.TempDir("egress-it-tmpfs-probe.")
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k",
                            "egress-it-probe", d.path], capture_output=True)
        if r.returncode != 0:
            return False
        subprocess.run(["umount", d.path], capture_output=True)
        return True
    finally:
        d.cleanup()


# ------------------------------------------------------------ origin

_FAULT_ORIGIN = r'''
import socket, struct, sys, threading, time

def log(*a):
    sys.stdout.write(" ".join(str(x) for x in a) + "\n")
    sys.stdout.flush()

def pattern(n):
    block = bytes((i * 7 + 3) % 251 for i in range(65536))
    out = bytearray()
    while len(out) < n:
        out += block
    return bytes(out[:n])

def rst(c):
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()

def until_eof(c, timeout=60):
    """Read until the peer lets go; bytes read and how it ended."""
    c.settimeout(timeout)
    n = 0
    try:
        while True:
            b = c.recv(65536)
            if not b:
                return n, "eof"
            n += len(b)
    except socket.timeout:
        return n, "timeout"
    except OSError as e:
        return n, "error " + e.__class__.__name__

def read_head(c, buf):
    while b"\r\n\r\n" not in buf:
        b = c.recv(65536)
        if not b:
            return None, buf
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head.decode("latin-1"), rest

def http(c, buf, tag):
    while True:
        head, rest = read_head(c, buf)
        if head is None:
            log(tag, "closed-idle")
            return
        line = head.split("\r\n")[0]
        path = line.split(" ")[1]
        hdrs = {}
        for l in head.split("\r\n")[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        log(tag, "request", path)
        if path.startswith("/rst-body"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
                      + pattern(20000))
            time.sleep(0.2)
            rst(c)
            log(tag, "reset")
            return
        if path.startswith("/fin-body"):
            # Part of a body, then a plain close (FIN after the data).
            n = int(path.split("=")[1]) if "=" in path else 20000
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n"
                      b"\r\n" + pattern(n))
            c.close()
            log(tag, "cut", n)
            return
        if path.startswith("/rst-full"):
            # As much body as the way to the client holds, then a reset:
            # the proxy is then holding bytes for the client.
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n"
                      b"\r\n")
            c.setblocking(False)
            sent, idle = 0, time.monotonic()
            block = pattern(65536)
            while time.monotonic() - idle < 0.5:
                try:
                    sent += c.send(block)
                    idle = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.01)
            rst(c)
            log(tag, "reset-after", sent)
            return
        if path.startswith("/rst-head"):
            rst(c)
            log(tag, "reset")
            return
        if path.startswith("/stall-body"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n"
                      + pattern(20000))
            n, how = until_eof(c, 120)
            log(tag, "released", how)
            c.close()
            return
        if path.startswith("/stall-head"):
            n, how = until_eof(c, 120)
            log(tag, "released", how)
            c.close()
            return
        if path.startswith("/early-answer"):
            # Answer at once, half-close, then see how much of the body
            # still arrives.
            c.sendall(b"HTTP/1.1 413 Payload Too Large\r\n"
                      b"Content-Length: 5\r\nConnection: close\r\n\r\nnope\n")
            c.shutdown(socket.SHUT_WR)
            n, how = until_eof(c, 30)
            log(tag, "after-answer", len(rest) + n, how)
            c.close()
            return
        if path.startswith("/upload"):
            want = int(hdrs.get("content-length", "0"))
            got = len(rest)
            c.settimeout(60)
            try:
                while got < want:
                    b = c.recv(65536)
                    if not b:
                        break
                    got += len(b)
            except OSError:
                pass
            if got < want:
                log(tag, "upload-cut", got)
                c.close()
                return
            log(tag, "upload-done", got)
            body = b"%d\n" % got
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
            return
        if path.startswith("/big"):
            n = int(path.split("=")[1]) if "=" in path else 1 << 20
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % n)
            try:
                c.sendall(pattern(n))
            except OSError as e:
                log(tag, "send-failed", e.__class__.__name__)
            return
        if path.startswith("/trickle"):
            # A large body a little at a time, until the proxy lets go.
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n"
                      b"\r\n")
            sent = 0
            try:
                while True:
                    c.sendall(pattern(4096))
                    sent += 4096
                    time.sleep(0.02)
            except OSError as e:
                log(tag, "released", "send", e.__class__.__name__)
            c.close()
            return
        # Keep-alive answers only when asked (/ka...): an idle pooled
        # connection would count as a descriptor held.
        body = b"ok\n"
        ka = path.startswith("/ka")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n"
                  % (len(body), b"" if ka else b"Connection: close\r\n")
                  + body)
        if not ka:
            return
        buf = rest

def raw(c, buf, tag):
    line, _, rest = buf.partition(b"\n")
    cmd = line.decode("latin-1").strip()
    log(tag, "raw", cmd)
    if cmd == "ECHO":
        c.sendall(rest)
        c.settimeout(120)
        try:
            while True:
                b = c.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError as e:
            log(tag, "echo-error", e.__class__.__name__)
        log(tag, "released", "eof")
        c.close()
        return
    if cmd == "BANNER-SHUT":
        # Say something, close our sending side, keep reading: report
        # how many bytes arrived after the half-close.
        c.sendall(b"banner\n")
        c.shutdown(socket.SHUT_WR)
        n, how = until_eof(c, 30)
        log(tag, "after-shut", len(rest) + n, how)
        c.close()
        return
    if cmd.startswith("RST-AFTER"):
        n = int(cmd.split()[1])
        c.sendall(pattern(n))
        time.sleep(0.2)
        rst(c)
        log(tag, "reset")
        return
    if cmd == "HOLD":
        c.sendall(b"held\n")
        n, how = until_eof(c, 120)
        log(tag, "released", how)
        c.close()
        return
    log(tag, "unknown", cmd)
    c.close()

def serve(c, tag):
    try:
        c.settimeout(60)
        buf = b""
        while b"\n" not in buf:
            b = c.recv(65536)
            if not b:
                log(tag, "closed-idle")
                return
            buf += b
        if buf[:1].isupper() and b" HTTP/1." in buf.split(b"\n")[0]:
            http(c, buf, tag)
        else:
            raw(c, buf, tag)
    except Exception as e:
        log(tag, "exception", e.__class__.__name__, e)
    finally:
        try:
            c.close()
        except OSError:
            pass

s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(256)
n = 0
while True:
    c, a = s.accept()
    n += 1
    log("c%d" % n, "accepted", a[1])
    threading.Thread(target=serve, args=(c, "c%d" % n), daemon=True).start()
'''


class FaultOrigin:
    """The misbehaving origin on 127.0.0.1:self.port. Its log has one line
    per event: 'cN accepted PORT', 'cN request PATH', 'cN released eof',
    'cN upload-cut BYTES', 'cN after-shut BYTES eof', ..."""

    def __init__(self, tc):
        self.port = h.free_port()
        script = tc.tmp.write("fault-origin-%d.py" % time.monotonic_ns(),
                              _FAULT_ORIGIN)
        self.proc = tc.start_proc([PY, script, str(self.port)],
                                  "faultorigin")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)

    def log(self):
        return self.proc.log_text()

    def lines(self, word):
        """Log lines whose second field is word, split."""
        return [ln.split() for ln in self.log().splitlines()
                if len(ln.split()) > 1 and ln.split()[1] == word]

    def wait(self, word, n=1, timeout=10.0):
        """Wait for n lines with word; returns them."""
        h.wait_for(lambda: len(self.lines(word)) >= n, timeout,
                   "%d %r line(s) in the origin's log:\n%s"
                   % (n, word, self.log()[-2000:]))
        return self.lines(word)


def blackhole_listener(tc):
    """A port on 127.0.0.1 that never completes another connection: its
    accept queue (backlog 0) is full, so SYNs are dropped and a connect()
    hangs as it would towards a firewalled host. Returns the port."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(0)
    port = s.getsockname()[1]
    tc.addCleanup(s.close)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(f)
        tc.addCleanup(f.close)
    time.sleep(0.2)
    probe = socket.socket()
    probe.settimeout(0.5)
    try:
        probe.connect(("127.0.0.1", port))
        ok = False
    except OSError:
        ok = True
    finally:
        probe.close()
    if not ok:
        raise unittest.SkipTest("a full accept queue does not drop SYNs "
                                "here: no blackhole on loopback")
    return port


# ------------------------------------------------------------ DNS

_FAKE_DNS = r'''
import socket, struct, sys
mode = sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
sys.stdout.write("ready\n"); sys.stdout.flush()
while True:
    q, a = s.recvfrom(4096)
    if len(q) < 12:
        continue
    # The question name, for the log.
    i, labels = 12, []
    while i < len(q) and q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode("latin-1"))
        i += 1 + q[i]
    sys.stdout.write("query %s %s\n" % (".".join(labels), mode))
    sys.stdout.flush()
    if mode == "drop":
        continue
    qid, flags = struct.unpack(">HH", q[:4])
    # Response, opcode kept, RD copied, RA set, rcode 3 (NXDOMAIN).
    rflags = 0x8000 | (flags & 0x7900) | 0x0080 | 3
    s.sendto(struct.pack(">HHHHHH", qid, rflags, 1, 0, 0, 0) + q[12:i + 5],
             a)
'''


class FakeDns:
    """A resolver on 127.0.0.1:self.port (UDP): mode 'nxdomain' answers
    that no name exists; 'drop' never answers. resolv_conf is a file
    naming it (evdns accepts ADDR:PORT there)."""

    def __init__(self, tc, mode):
        self.port = _free_udp_port()
        script = tc.tmp.write("fake-dns-%d.py" % time.monotonic_ns(),
                              _FAKE_DNS)
        self.proc = tc.start_proc([PY, script, str(self.port), mode],
                                  "fakedns")
        h.wait_for(lambda: "ready" in self.proc.log_text() or
                   not self.proc.alive(), 10, "the fake resolver")
        self.resolv_conf = tc.tmp.write(
            "resolv-%d.conf" % time.monotonic_ns(),
            "nameserver 127.0.0.1:%d\noptions timeout:1 attempts:1\n"
            % self.port)

    def queries(self):
        return [ln.split()[1] for ln in self.proc.log_text().splitlines()
                if ln.startswith("query ")]


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------ sockets

def rst_close(s):
    """Close s with a reset (SO_LINGER 0), as a crashed client would."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def recv_until(s, pred, timeout=10.0):
    """Read from s until pred(data) or EOF or timeout; (data, eof)."""
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            b = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            return buf, True
        if not b:
            return buf, True
        buf += b
        if pred(buf):
            break
    return buf, False


def open_tunnel(port, target, timeout=10.0):
    """A socket through CONNECT target (HOST:PORT) on the proxy at port,
    after its 200."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n"
              % (target.encode(), target.encode()))
    head, _ = recv_until(s, bf.head_complete, timeout)
    if not head.startswith(b"HTTP/1.1 200"):
        s.close()
        raise AssertionError("CONNECT %s: %r" % (target, head[:300]))
    extra = head.partition(b"\r\n\r\n")[2]
    return s, extra


def socks5_connect_name(port, name, dport, timeout=10.0):
    """A SOCKS5 CONNECT by name: (socket, reply code)."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(b"\x05\x01\x00" + bytes([5, 1, 0, 3, len(name)]) +
              name.encode() + struct.pack(">H", dport))
    data, _ = recv_until(s, lambda b: len(b) >= 12, timeout)
    if len(data) < 4:
        return s, None
    return s, data[3]


# ------------------------------------------------------------ nginx

class BigNginx(h.Nginx):
    """nginx with room for thousands of client connections."""

    CONF = h.Nginx.CONF.replace("worker_connections 256;",
                                "worker_connections 8192; multi_accept on;")


def big_nginx(tc, **kw):
    n = BigNginx(tc.tmp.mkdir("nginx-%d" % time.monotonic_ns()), **kw)
    tc.addCleanup(n.stop)
    return n.start()


# ------------------------------------------------------------ class-wide

class ClassFixture:
    """EgressTestCase's fixture helpers outside a test, so that a slow
    scenario can run once in setUpClass and several tests assert on what
    it saw. close() (in tearDownClass) runs the cleanups, last first, and
    raises the first error (a sanitizer report, say): unittest's own
    doCleanups() would swallow it outside a running test."""

    def __init__(self):
        self._cleanups = []
        self.tmp = h.TempDir()
        self.addCleanup(self.tmp.cleanup)
        self.state_tmp = self.tmp.mkdir("tmpdir", mode=0o700)

    def addCleanup(self, fn, *args, **kw):
        self._cleanups.append((fn, args, kw))

    start_egress = h.EgressTestCase.start_egress
    start_proc = h.EgressTestCase.start_proc
    marker = h.EgressTestCase.marker
    nginx = h.EgressTestCase.nginx

    def close(self):
        first = None
        while self._cleanups:
            fn, args, kw = self._cleanups.pop()
            try:
                fn(*args, **kw)
            except Exception as e:      # noqa: keep cleaning up
                first = first or e
        if first is not None:
            raise first


# ------------------------------------------------------------ load

_ECHO_ORIGIN = r'''
import asyncio, resource, sys

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
live = 0
total = 0

async def echo(r, w):
    global live, total
    live += 1
    total += 1
    try:
        while True:
            b = await r.read(65536)
            if not b:
                break
            w.write(b)
            await w.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        live -= 1
        w.close()

async def report():
    while True:
        await asyncio.sleep(0.5)
        sys.stdout.write("live %d total %d\n" % (live, total))
        sys.stdout.flush()

async def main():
    srv = await asyncio.start_server(echo, "127.0.0.1", int(sys.argv[1]),
                                     backlog=4096)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    asyncio.ensure_future(report())
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
'''


class EchoOrigin:
    """An asyncio echo server for thousands of connections; its log says
    'live N total M' twice a second."""

    def __init__(self, tc):
        self.port = h.free_port()
        script = tc.tmp.write("echo-origin-%d.py" % time.monotonic_ns(),
                              _ECHO_ORIGIN)
        self.proc = tc.start_proc([PY, script, str(self.port)], "echo")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)

    def counts(self):
        """(live, total) connections, as last reported."""
        for ln in reversed(self.proc.log_text().splitlines()):
            if ln.startswith("live "):
                f = ln.split()
                return int(f[1]), int(f[3])
        return 0, 0


def raise_nofile():
    """This process's soft descriptor limit up to its hard one; returns
    it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard
