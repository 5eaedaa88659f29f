"""The built-in proxy's own timers fire (issue 7): a destination that never
completes the TCP handshake is a 504 after PROXY_CONNECT_TIMEOUT (10 s) at
every door; a client that sends half a request head gets 408 after
PROXY_HEAD_TIMEOUT (30 s), and a half SOCKS5 greeting or a silent
connection is closed then, while everyone else is served meanwhile.

Slow by nature (about 45 s, nearly all of it waiting with no CPU used):
these are the only tests of those two timers. The response timeout
(600 s) is too long to wait for anywhere; see the report of issue 7 for a
proposed hidden knob that would shorten all of them in tests.

A blackhole on loopback: a listener with backlog 0 whose queue is full
drops further SYNs, so connect() hangs as it would towards a firewalled
host (fault_fixtures.blackhole_listener).
"""

import socket
import threading
import time
import unittest

import builtin_fixtures as bf
import fault_fixtures as ff
from harness import EgressTestCase, wait_for

CONNECT_TIMEOUT = 10        # builtin/proxy.h PROXY_CONNECT_TIMEOUT
HEAD_TIMEOUT = 30           # builtin/proxy.h PROXY_HEAD_TIMEOUT


def pin(port, name):
    return ["--resolve", "%s:%d:127.0.0.1" % (name, port), "--allow", name]


class ConnectTimeout(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.hole = ff.blackhole_listener(self)
        self.o = ff.FaultOrigin(self)
        self.audit = self.tmp.join("audit.jsonl")
        self.s = bf.session(self, pin(self.hole, "hole.test") +
                            pin(self.o.port, "origin.test") +
                            ["--audit", self.audit])
        self.idle = ff.fd_count(self.s.pid)

    def test_unanswered_connect_is_504_at_every_door(self):
        results = {}

        def http():
            results["http"] = self.s.request(
                b"GET http://hole.test:%d/x HTTP/1.1\r\nHost: x\r\n\r\n"
                % self.hole, timeout=CONNECT_TIMEOUT + 10)

        def connect():
            results["connect"] = self.s.request(
                b"CONNECT hole.test:%d HTTP/1.1\r\nHost: x\r\n\r\n"
                % self.hole, timeout=CONNECT_TIMEOUT + 10)

        def socks():
            t0 = time.monotonic()
            c, rep = ff.socks5_connect_name(self.s.port, "hole.test",
                                            self.hole,
                                            timeout=CONNECT_TIMEOUT + 10)
            c.close()
            results["socks5"] = (rep, time.monotonic() - t0)

        threads = [threading.Thread(target=f) for f in (http, connect,
                                                        socks)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        # Meanwhile the proxy serves everyone else at once.
        time.sleep(1)
        r = self.s.request(b"GET http://origin.test:%d/ok HTTP/1.1\r\n"
                           b"Host: x\r\nConnection: close\r\n\r\n"
                           % self.o.port, timeout=5)
        self.assertEqual(r.status, 200, r)
        self.assertLess(time.monotonic() - t0, 3)
        for t in threads:
            t.join(CONNECT_TIMEOUT + 15)
        for door in ("http", "connect"):
            r = results[door]
            self.assertEqual(r.status, 504, (door, r))
            self.assertIn("timed out after %d s" % CONNECT_TIMEOUT,
                          r.header("x-egress-run-reason") or "", door)
            self.assertGreater(r.elapsed, CONNECT_TIMEOUT - 1, door)
            self.assertLess(r.elapsed, CONNECT_TIMEOUT + 5, door)
            self.assertTrue(r.closed, door)
        rep, took = results["socks5"]
        self.assertEqual(rep, 0x04, "SOCKS5 reply for a timed-out connect")
        self.assertGreater(took, CONNECT_TIMEOUT - 1)
        ev = ff.read_audit(self.audit, want=lambda ev: len(
            [e for e in ev if e["host"] == "hole.test"]) >= 3)
        ev = [e for e in ev if e["host"] == "hole.test"]
        self.assertEqual(sorted((e["door"], e["event"], e["status"])
                                for e in ev),
                         [("connect", "error", 504), ("http", "error", 504),
                          ("socks5", "error", 504)])
        for e in ev:
            self.assertIn("timed out", e["reason"])
        n = ff.wait_fds(self.s.pid, self.idle)
        self.assertEqual(n, self.idle, ff.fd_targets(self.s.pid))

    def dial_and_vanish(self):
        for verb in (b"GET http://hole.test:%d/ HTTP/1.1\r\nHost: x\r\n\r\n",
                     b"CONNECT hole.test:%d HTTP/1.1\r\nHost: x\r\n\r\n"):
            time.sleep(0.3)     # the last one's release (if any) is done
            before = ff.fd_count(self.s.pid)
            c = socket.create_connection(("127.0.0.1", self.s.port), 5)
            c.sendall(verb % self.hole)
            # Client socket and the socket being connected.
            wait_for(lambda: ff.fd_count(self.s.pid) >= before + 2, 5,
                     "the proxy to start connecting")
            ff.rst_close(c)
        return time.monotonic()

    def test_client_leaving_mid_dial_is_cleaned_up_by_the_dial_end(self):
        self.dial_and_vanish()
        n = ff.wait_fds(self.s.pid, self.idle, CONNECT_TIMEOUT + 5)
        self.assertEqual(n, self.idle, ff.fd_targets(self.s.pid))
        ev = ff.read_audit(self.audit, want=lambda ev: len(ev) >= 2)
        self.assertEqual(sorted((e["event"], e["door"], e["host"])
                                for e in ev),
                         [("error", "connect", "hole.test"),
                          ("error", "http", "hole.test")])
        self.assertTrue(self.s.alive())

    # Once a bug (builtin/conn.c start_connect, http_fwd.c acquire, socks5.c
    # handle_request): reading from the client is disabled while its
    # destination is dialled, so a client that resets (or closes) then is
    # not noticed until the dial ends -- up to the 10 s connect timeout,
    # the resolver's timeouts, or the upstream's 30 s handshake -- and the
    # audit then blames the destination ("timed out") for a client that
    # left.
    def test_client_reset_mid_dial_is_noticed_at_once(self):
        t0 = self.dial_and_vanish()
        n = ff.wait_fds(self.s.pid, self.idle, 3)
        self.assertEqual(n, self.idle, "the dials outlived their clients "
                         "(%.1f s)" % (time.monotonic() - t0))


class HeadTimeout(unittest.TestCase):
    """One 30 s scenario (setUpClass), several observations of it."""

    @classmethod
    def setUpClass(cls):
        cls.tc = tc = ff.ClassFixture()
        try:
            cls.scenario(tc)
        except BaseException:
            tc.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.tc.close()

    @classmethod
    def scenario(cls, tc):
        seen = cls.seen = {}
        o = ff.FaultOrigin(tc)
        audit = tc.tmp.join("audit.jsonl")
        s = cls.s = bf.session(tc, pin(o.port, "origin.test") +
                               ["--audit", audit])
        ok = (b"GET http://origin.test:%d/ok HTTP/1.1\r\nHost: x\r\n"
              b"Connection: close\r\n\r\n" % o.port)
        idle = seen["idle_fds"] = ff.fd_count(s.pid)
        t0 = time.monotonic()

        def client():
            c = socket.create_connection(("127.0.0.1", s.port), 5)
            tc.addCleanup(c.close)
            return c
        half = client()
        half.sendall(ok[:ok.index(b"Connection")])
        socks = client()
        socks.sendall(b"\x05\x02")          # two methods promised, none
        silent = client()
        # A slow client that trickles a whole head in time is served.
        slow = client()
        for i in range(0, len(ok), 4):
            slow.sendall(ok[i:i + 4])
            time.sleep(0.1)
        seen["slow"] = ff.recv_until(slow, lambda b: False, 5)
        slow.close()
        # Others are served while the three wait.
        seen["others"] = [s.request(ok, timeout=5) for _ in range(3)]
        # Not closed before the time allowed.
        time.sleep(max(0, HEAD_TIMEOUT - 5 - (time.monotonic() - t0)))
        seen["early"] = [ff.recv_until(c, lambda b: True, 0.1)
                         for c in (half, socks, silent)]
        seen["early_fds"] = ff.fd_count(s.pid)
        # Then each goes.
        data, eof = ff.recv_until(half, lambda b: False, 15)
        seen["half"] = bf.Response(data, eof, time.monotonic() - t0)
        seen["socks"] = ff.recv_until(socks, lambda b: False, 10)
        seen["silent"] = ff.recv_until(silent, lambda b: False, 10)
        seen["all_closed_after"] = time.monotonic() - t0
        seen["fds"] = ff.wait_fds(s.pid, idle)
        seen["fd_targets"] = ff.fd_targets(s.pid)
        seen["audit"] = ff.read_audit(audit, want=lambda ev: len(
            [e for e in ev if e["event"] == "error"]) >= 2)
        seen["alive"] = s.alive()

    def test_a_slow_but_complete_head_is_served(self):
        data, eof = self.seen["slow"]
        self.assertTrue(data.startswith(b"HTTP/1.1 200") and eof, data)

    def test_others_are_served_meanwhile(self):
        for r in self.seen["others"]:
            self.assertEqual(r.status, 200, r)
        self.assertTrue(self.seen["alive"])

    def test_nothing_is_closed_before_the_time_allowed(self):
        for what, (d, eof) in zip(("half head", "SOCKS5", "silent"),
                                  self.seen["early"]):
            self.assertEqual((d, eof), (b"", False),
                             "%s closed before %d s" % (what, HEAD_TIMEOUT))
        self.assertEqual(self.seen["early_fds"], self.seen["idle_fds"] + 3)

    def test_half_a_head_is_408_with_a_reason_then_closed(self):
        r = self.seen["half"]
        self.assertEqual(r.status, 408, r)
        self.assertIn("not complete", r.header("x-egress-run-reason") or "")
        self.assertTrue(r.closed)
        self.assertGreater(r.elapsed, HEAD_TIMEOUT - 1)
        self.assertLess(r.elapsed, HEAD_TIMEOUT + 5)

    def test_idle_handshakes_are_closed_without_a_word(self):
        for what in ("socks", "silent"):
            d, eof = self.seen[what]
            self.assertEqual((d, eof), (b"", True), what)
        self.assertLess(self.seen["all_closed_after"], HEAD_TIMEOUT + 8)

    def test_descriptors_are_released(self):
        self.assertEqual(self.seen["fds"], self.seen["idle_fds"],
                         self.seen["fd_targets"])

    def test_timeouts_are_audited(self):
        ev = [e for e in self.seen["audit"] if e["event"] == "error"]
        self.assertEqual(sorted(e["status"] or 0 for e in ev), [0, 408], ev)
        for e in ev:
            self.assertIn("not complete within", e["reason"])
        (socks,) = [e for e in ev if e["status"] is None]
        self.assertEqual(socks["door"], "socks5")

    # Once a bug (builtin/conn.c on_timer, CONN_HEAD): the 408 is audited with
    # "door": null (and "ms": 0), where every other head error (400, 431)
    # says "http".
    def test_the_408_event_names_the_http_door(self):
        (e,) = [e for e in self.seen["audit"] if e["status"] == 408]
        self.assertEqual(e["door"], "http")


if __name__ == "__main__":
    unittest.main()
