"""Tunnel pipes (builtin/tunnel.c): an idle tunnel holds its two sockets
and no pipe, and a bulk stream still gets a full-size (1 MiB) pipe when
many tunnels that have carried data are open, also for a user without
CAP_SYS_RESOURCE, whose pipe pages count against
fs.pipe-user-pages-soft (64 MiB by default).

Once a bug: every tunnel kept two 1 MiB pipes for its whole life (6
descriptors per tunnel), so as user nobody past ~32 busy tunnels
F_SETPIPE_SZ failed and every new stream ran through 2-page pipes at
about half speed.

And with no descriptor left for a pipe mid-stream, a direction copies
through user space instead: the stream goes on whole.

egress-run runs as nobody (setpriv, root only). The pipes are looked at
from outside: /proc/PID/fd, and each pipe opened through /proc for
F_GETPIPE_SZ and FIONREAD (what it can hold, what it holds now).
"""

import array
import fcntl
import os
import socket
import termios
import threading
import time
import unittest

import builtin_fixtures as bf
import fault_fixtures as ff
import harness as h
import isolate_fixtures as iso
from harness import EgressTestCase, wait_for

NAME = "origin.test"
F_GETPIPE_SZ = 1032
IDLE = 100
BIG = 1 << 20
POOL_MAX = 16           # builtin/tunnel.c: free pipes kept for reuse


def pipes(pid):
    """{fd number: pipe inode} of pid's pipe descriptors."""
    out = {}
    d = "/proc/%d/fd" % pid
    for n in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, n))
        except OSError:
            continue
        if t.startswith("pipe:"):
            out[int(n)] = t
    return out


def non_pipes(pid):
    return ff.fd_count(pid) - len(pipes(pid))


def pipe_state(pid, fd):
    """(capacity, bytes queued) of pid's pipe descriptor fd, or None."""
    try:
        mine = os.open("/proc/%d/fd/%d" % (pid, fd),
                       os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        cap = fcntl.fcntl(mine, F_GETPIPE_SZ)
        n = array.array("i", [0])
        fcntl.ioctl(mine, termios.FIONREAD, n)
        return cap, n[0]
    except OSError:
        return None
    finally:
        os.close(mine)


class TunnelPipesUnprivileged(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.nobody = iso.Nobody(self)
        self.o = ff.FaultOrigin(self)
        prefix = self.nobody.prefix + [
            "env", "HOME=%s" % self.nobody.tmpdir,
            "TMPDIR=%s" % self.nobody.tmpdir]
        self.port = h.free_port()
        self.proc = self.start_proc(
            prefix + [h.egress_bin(), "-q", "--no-upstream", "--listen",
                      "127.0.0.1:%d" % self.port, "--resolve",
                      "%s:%d:127.0.0.1" % (NAME, self.o.port), "--allow",
                      NAME, "--max-conns", "1000", "--", "sleep", "300"],
            "egress-run-nobody")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)
        self.pid = self.proc.pid
        self.held = []
        self.addCleanup(self.release)

    def release(self):
        for c in self.held:
            c.close()
        self.held = []

    def busy_idle_tunnels(self, n):
        """n tunnels that each carried bytes both ways, then went idle."""
        for i in range(n):
            c, extra = ff.open_tunnel(self.port,
                                      "%s:%d" % (NAME, self.o.port))
            self.held.append(c)
            msg = b"tunnel %d says hello\n" % i
            c.sendall(b"ECHO\n" + msg)
            data, _ = ff.recv_until(c, lambda b: msg in extra + b, 10)
            self.assertIn(msg, extra + data)

    def test_idle_tunnels_hold_no_pipe_and_a_new_stream_gets_a_big_one(self):
        pid = self.pid
        own = set(pipes(pid).values())      # the process's own (signals)
        # Idle: two sockets per tunnel, no pipe of their own (at most the
        # pool's few free ones). Counted between 50 and 100 tunnels, past
        # whatever the first accept opened.
        self.busy_idle_tunnels(IDLE // 2)
        time.sleep(0.3)
        half = ff.fd_count(pid)
        self.busy_idle_tunnels(IDLE - IDLE // 2)
        time.sleep(0.3)
        self.assertEqual(ff.fd_count(pid) - half, 2 * (IDLE - IDLE // 2),
                         "descriptors per idle tunnel: %s"
                         % ff.fd_targets(pid))
        held = [p for p in pipes(pid).values() if p not in own]
        self.assertLessEqual(len(held), 2 * POOL_MAX,
                             "idle tunnels hold pipes: %d pipe "
                             "descriptors for %d tunnels"
                             % (len(held), IDLE))
        # One bulk stream, read by nobody for now: its pipe fills and
        # should grow to 1 MiB, whatever the idle tunnels did before.
        c, extra = ff.open_tunnel(self.port, "%s:%d" % (NAME, self.o.port))
        self.held.append(c)
        c.sendall(b"GET /big=%d HTTP/1.1\r\nHost: x\r\n\r\n" % (64 << 20))
        seen = []

        def full_pipe():
            seen.clear()
            for fd in pipes(pid):
                st = pipe_state(pid, fd)
                if st is not None and st[1] > 0:
                    seen.append(st)
            return any(cap >= BIG for cap, _ in seen)
        deadline = time.monotonic() + 10
        while not full_pipe() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(any(cap >= BIG for cap, _ in seen),
                        "the bulk stream's pipes (capacity, queued): %r"
                        % seen)
        # The stream still arrives whole once read.
        got = len(extra)
        c.settimeout(30)
        while True:
            b = c.recv(1 << 20)
            if not b:
                break
            got += len(b)
        self.assertGreater(got, 64 << 20)      # head + body, then EOF
        # Everything closed: the proxy at rest holds no pipe at all.
        self.release()
        wait_for(lambda: set(pipes(pid).values()) <= own, 10,
                 "the proxy to let go of its pipes")


class TunnelWithoutPipes(EgressTestCase):
    """Out of descriptors mid-stream: a direction that cannot get a pipe
    copies through user space; the stream goes on whole."""

    def test_no_pipe_mid_stream_copies_instead_of_failing(self):
        o = ff.FaultOrigin(self)
        s = bf.session(self, ["-vv", "--resolve",
                              "%s:%d:127.0.0.1" % (NAME, o.port),
                              "--allow", NAME])
        c, extra = ff.open_tunnel(s.port, "%s:%d" % (NAME, o.port))
        self.addCleanup(c.close)
        c.sendall(b"ECHO\nready\n")
        data, _ = ff.recv_until(c, lambda b: b"ready\n" in extra + b, 10)
        # No descriptor left: the pool's one pipe is all there is, and
        # both directions want one at once.
        ff.set_nofile(s.pid, ff.fd_count(s.pid))
        blob = os.urandom(1 << 16) * 256            # 16 MiB
        got = bytearray()
        c.settimeout(30)

        def reader():
            while len(got) < len(blob):
                b = c.recv(1 << 20)
                if not b:
                    break
                got.extend(b)
        t = threading.Thread(target=reader)
        t.start()
        c.sendall(blob)
        t.join(40)
        self.assertEqual(len(got), len(blob))
        self.assertTrue(bytes(got) == blob, "the echo differs")
        self.assertIn("no pipe for the tunnel", s.log())


if __name__ == "__main__":
    unittest.main()
