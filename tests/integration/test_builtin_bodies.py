"""Large bodies through the built-in proxy, both ways, streamed (issue 3):
64 MiB uploads with Content-Length and chunked (curl -T, python requests
with a generator) to nginx's WebDAV PUT, 256 MiB downloads, over plain
HTTP and through CONNECT, checked by SHA-256; and egress-run's resident
memory stays far below the body size while a reader (or an origin) is
slow, so it streams instead of buffering.
"""

import hashlib
import os
import socket
import subprocess
import threading
import time
import unittest

import builtin_fixtures as bf
from harness import EgressTestCase, clean_env

MiB = 1 << 20
UP = 64 * MiB
DOWN = 256 * MiB
# Far below either body, far above what a streaming relay needs (its
# watermarks are a few hundred KiB per connection).
RSS_GROWTH_LIMIT_KIB = 40 * 1024


def cpu_seconds(pid):
    """User + system CPU time a process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        st = f.read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def session_env():
    """Under ASan (scripts/test.sh --asan) freed memory sits in a
    quarantine that would count as growth: keep none."""
    opts = os.environ.get("ASAN_OPTIONS", "")
    return clean_env({"ASAN_OPTIONS": (opts + ":" if opts else "") +
                      "quarantine_size_mb=0"})


class BuiltinBodiesTest(EgressTestCase):

    @classmethod
    def setUpClass(cls):
        cls.files = bf.h.TempDir("egress-it-bodies.")
        cls.up = cls.files.join("up.bin")
        cls.up_sha = bf.write_pattern_file(cls.up, UP, seed=3)
        cls.big = cls.files.join("big.bin")
        cls.big_sha = bf.write_pattern_file(cls.big, DOWN, seed=5)

    @classmethod
    def tearDownClass(cls):
        cls.files.cleanup()

    def setUp(self):
        super().setUp()
        self.n = self.nginx(server_extra=bf.DAV_PUT)
        self.P = self.n.port
        self.audit = self.tmp.join("audit.jsonl")
        self.s = bf.session(self, ["--allow", "origin.test", "--resolve",
                                   "origin.test:%d:127.0.0.1" % self.P,
                                   "--audit", self.audit],
                            env=session_env())
        self.base = "http://origin.test:%d" % self.P

    def uploaded(self, name):
        path = os.path.join(self.n.docroot, "upload", name)
        self.assertTrue(os.path.exists(path), "nothing arrived as " + name)
        self.assertEqual(os.path.getsize(path), UP, name)
        sha = bf.sha256_file(path)
        os.unlink(path)
        return sha

    def curl_sha(self, *args, timeout=60):
        """curl through the proxy, hashing its output as it streams."""
        argv = ["curl", "-sS", "--fail", "--max-time", str(timeout - 5)] + \
            self.s.curl_opts() + list(args)
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=clean_env())
        d = hashlib.sha256()
        n = 0
        while True:
            b = p.stdout.read(MiB)
            if not b:
                break
            d.update(b)
            n += len(b)
        err = p.stderr.read().decode(errors="replace")
        rc = p.wait(timeout)
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(rc, 0, err)
        return n, d.hexdigest(), err

    def test_upload_64mib_with_content_length_plain_and_tunnelled(self):
        _n, _sha, err = self.curl_sha("-v", "-T", self.up,
                                      self.base + "/upload/plain.bin")
        self.assertRegex(err, r"> Content-Length: %d" % UP)
        self.assertIn("< HTTP/1.1 100 Continue", err)   # curl asks for it
        self.assertEqual(self.uploaded("plain.bin"), self.up_sha)
        self.curl_sha("-p", "-T", self.up, self.base + "/upload/tunnel.bin")
        self.assertEqual(self.uploaded("tunnel.bin"), self.up_sha)

    def test_upload_64mib_chunked_with_curl_and_requests(self):
        _n, _sha, err = self.curl_sha(
            "-v", "-T", self.up, "-H", "Transfer-Encoding: chunked",
            self.base + "/upload/curl-chunked.bin")
        self.assertRegex(err, r"(?i)> Transfer-Encoding: chunked")
        self.assertEqual(self.uploaded("curl-chunked.bin"), self.up_sha)
        script = (
            "import sys, requests\n"
            "def gen():\n"
            "    with open(sys.argv[1], 'rb') as f:\n"
            "        while True:\n"
            "            b = f.read(1000003)\n"   # odd sizes on purpose
            "            if not b: return\n"
            "            yield b\n"
            "r = requests.put(sys.argv[2], data=gen(), timeout=60,\n"
            "                 proxies={'http': sys.argv[3]})\n"
            "r.raise_for_status()\n")
        r = subprocess.run([bf.PY, "-c", script, self.up,
                            self.base + "/upload/requests.bin",
                            self.s.proxy], capture_output=True, text=True,
                           timeout=60, env=clean_env())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.uploaded("requests.bin"), self.up_sha)

    def big_file(self):
        os.symlink(self.big, os.path.join(self.n.docroot, "big.bin"))
        return self.big_sha

    def test_download_256mib_plain_and_tunnelled(self):
        sha = self.big_file()
        n, got, _err = self.curl_sha(self.base + "/big.bin")
        self.assertEqual((n, got), (DOWN, sha))
        n, got, _err = self.curl_sha("-p", self.base + "/big.bin")
        self.assertEqual((n, got), (DOWN, sha))

    def slow_read(self, request, read_total=24 * MiB, seconds=3.0):
        """Send request, then read read_total bytes over about seconds;
        return egress-run's peak RSS growth in KiB (and the bytes read)."""
        base = bf.vm_rss_kib(self.s.pid)
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.settimeout(10)
        c.connect(("127.0.0.1", self.s.port))
        self.addCleanup(c.close)
        c.sendall(request)
        peak = base
        got = 0
        step = 256 * 1024
        pause = seconds / (read_total / step)
        deadline = time.monotonic() + seconds + 10
        while got < read_total and time.monotonic() < deadline:
            b = c.recv(min(step, read_total - got))
            if not b:
                break
            got += len(b)
            time.sleep(pause)
            peak = max(peak, bf.vm_rss_kib(self.s.pid))
        c.close()
        return peak - base, got

    def test_slow_reader_keeps_memory_bounded_plain_and_tunnelled(self):
        self.big_file()
        growth, got = self.slow_read(
            b"GET %s/big.bin HTTP/1.1\r\nHost: origin.test\r\n\r\n"
            % self.base.encode())
        self.assertGreater(got, 20 * MiB)
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB,
                        "egress-run grew by %d KiB behind a slow reader"
                        % growth)
        # The same through a tunnel (the request inside it, after the
        # proxy's 200).
        growth, got = self.slow_read(
            b"CONNECT origin.test:%d HTTP/1.1\r\nHost: origin.test\r\n\r\n"
            b"GET /big.bin HTTP/1.1\r\nHost: origin.test\r\n\r\n" % self.P)
        self.assertGreater(got, 20 * MiB)
        self.assertLess(growth, RSS_GROWTH_LIMIT_KIB,
                        "egress-run grew by %d KiB in a tunnel" % growth)
        self.assertTrue(self.s.alive())

    def test_slow_origin_reader_keeps_upload_memory_bounded(self):
        o = bf.PyOrigin(self)
        audit = self.tmp.join("audit-slow.jsonl")
        s = bf.session(self, ["--allow", "py.test", "--resolve",
                              "py.test:%d:127.0.0.1" % o.port, "--audit",
                              audit], env=session_env())
        base = bf.vm_rss_kib(s.pid)
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        c.connect(("127.0.0.1", s.port))
        self.addCleanup(c.close)
        c.sendall(b"PUT http://py.test:%d/slowsink?rate=4000000 HTTP/1.1\r\n"
                  b"Host: py.test\r\nContent-Length: %d\r\n\r\n"
                  % (o.port, UP))
        sent = [0]
        stop = threading.Event()

        def push():
            block = b"u" * MiB
            c.settimeout(0.2)
            while sent[0] < UP and not stop.is_set():
                try:
                    sent[0] += c.send(block)
                except socket.timeout:
                    continue
                except OSError:
                    return
        t = threading.Thread(target=push, daemon=True)
        t.start()
        peak = base
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            peak = max(peak, bf.vm_rss_kib(s.pid))
            time.sleep(0.05)
        stop.set()
        c.shutdown(socket.SHUT_RDWR)
        t.join(10)
        # The sink reads ~4 MB/s: the client got only a little further.
        self.assertLess(sent[0], 40 * MiB, "nothing held the client back")
        self.assertGreater(sent[0], 4 * MiB)
        self.assertLess(peak - base, RSS_GROWTH_LIMIT_KIB,
                        "egress-run grew by %d KiB behind a slow origin"
                        % (peak - base))
        # The proxy notices the client left once it reads again.
        bf.read_audit(audit, timeout=15, want=lambda ev: any(
            e["event"] == "error" for e in ev))

    def stall(self, s, audit, request, push=False):
        """Start a transfer on a raw socket and stop reading (or, with
        push, keep sending while the origin reads slowly) for 2 s; return
        the CPU seconds egress-run used meanwhile. The connection is
        closed, and its end audited, before this returns."""
        c = socket.socket()
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.connect(("127.0.0.1", s.port))
        c.sendall(request)
        c.settimeout(0.2)
        t0 = time.monotonic()
        time.sleep(0.5)                    # let the buffers fill
        c0 = cpu_seconds(s.pid)
        while time.monotonic() - t0 < 2.5:
            if push:
                try:
                    c.send(b"u" * MiB)
                except socket.timeout:
                    pass
            else:
                time.sleep(0.05)
        used = cpu_seconds(s.pid) - c0
        before = len(bf.read_audit(audit))
        c.close()
        bf.read_audit(audit, timeout=15, want=lambda ev: len(ev) > before)
        return used

    def test_stalled_tunnel_does_not_spin(self):
        self.big_file()
        used = self.stall(self.s, self.audit,
                          b"CONNECT origin.test:%d HTTP/1.1\r\nHost: x\r\n"
                          b"\r\nGET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                          % self.P)
        self.assertLess(used, 0.4, "egress-run used %.2f s of CPU in 2 s "
                        "while a tunnel's reader stalled" % used)

    # Bug (http_fwd.c, with libevent 2.1.12): when a pump stops because the
    # peer's output is full it leaves the source's input at the read high
    # watermark with EV_READ enabled; libevent 2.1.12 then re-runs the
    # read callback (deferred) on every loop turn (bufferevent_inbuf_wm_
    # check), so egress-run spins a core for as long as a plain-HTTP reader
    # or an origin is slow. The pending deferred callback also holds a
    # reference that leaks the bufferevent if egress-run exits meanwhile.
    def test_stalled_plain_http_transfers_do_not_spin(self):
        self.big_file()
        down = self.stall(self.s, self.audit,
                          b"GET %s/big.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                          % self.base.encode())
        o = bf.PyOrigin(self)
        audit = self.tmp.join("audit-up.jsonl")
        s = bf.session(self, ["--allow", "py.test", "--resolve",
                              "py.test:%d:127.0.0.1" % o.port, "--audit",
                              audit])
        up = self.stall(s, audit,
                        b"PUT http://py.test:%d/slowsink?rate=1000000 "
                        b"HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n"
                        % (o.port, UP), push=True)
        self.assertLess(max(down, up), 0.4, "egress-run used %.2f s "
                        "(slow reader) and %.2f s (slow origin) of CPU in "
                        "2 s" % (down, up))
