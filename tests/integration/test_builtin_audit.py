"""The audit log (SPEC §8, issue 3): --audit FILE holds one JSON object per
line, one per allowed request, tunnel, denial and error, with the SPEC's
fields and values that match what happened; --audit - writes the same to
stderr; -v adds a one-line summary at exit.
"""

import datetime
import json
import os
import re
import socket
import unittest

import builtin_fixtures as bf
from harness import EgressTestCase

FIELDS = ("ts", "event", "door", "host", "port", "method", "path",
          "decision", "rule", "status", "bytes_up", "bytes_down", "ms",
          "mitm", "secret", "reason")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?"
                     r"(Z|[+-]\d\d:\d\d)$")


class BuiltinAuditTest(EgressTestCase):

    def check_shape(self, events):
        for e in events:
            for k in FIELDS:
                self.assertIn(k, e, "audit event without %r: %s" % (k, e))
            self.assertRegex(e["ts"], RFC3339)
            datetime.datetime.fromisoformat(e["ts"].replace("Z", "+00:00"))
            self.assertIn(e["event"], ("connect", "request", "deny",
                                       "error"))
            self.assertIsInstance(e["mitm"], bool)
            self.assertIsNone(e["secret"])
            self.assertIsInstance(e["ms"], int)
            self.assertGreaterEqual(e["ms"], 0)

    def test_audit_file_records_requests_tunnels_denials_and_errors(self):
        body = os.urandom(200000)
        n = self.nginx(files={"blob.bin": body, "hello.txt": "hi\n"})
        P = n.port
        with socket.socket() as held:
            held.bind(("127.0.0.1", 0))
            dead = held.getsockname()[1]
            audit = self.tmp.join("audit.jsonl")
            script = (
                "curl -sS -o /dev/null 'http://origin.test:%(p)d/blob.bin"
                "?token=SECRETQUERY'\n"
                "curl -sS -o /dev/null -p "
                "'http://origin.test:%(p)d/blob.bin?token=SECRETQUERY'\n"
                "curl -sS -o /dev/null http://denied.test:%(p)d/x\n"
                "curl -sS -o /dev/null http://down.test:%(d)d/y\n"
                % {"p": P, "d": dead})
            r = self.egress(["--audit", audit, "--allow", "origin.test",
                             "--allow", "down.test",
                             "--resolve", "origin.test:%d:127.0.0.1" % P,
                             "--resolve", "denied.test:%d:127.0.0.1" % P,
                             "--resolve", "down.test:%d:127.0.0.1" % dead],
                            ["sh", "-c", script])
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("{", r.stderr)     # the file, not stderr
        with open(audit) as f:
            text = f.read()
        self.assertNotIn("SECRETQUERY", text)
        events = [json.loads(ln) for ln in text.splitlines()]
        self.check_shape(events)
        kinds = [(e["event"], e["door"]) for e in events]
        self.assertEqual(kinds, [("request", "http"), ("connect", "connect"),
                                 ("deny", "http"), ("error", "http")],
                         events)
        req, tun, deny, err = events

        self.assertEqual((req["host"], req["port"], req["method"],
                          req["path"], req["decision"], req["rule"],
                          req["status"], req["mitm"]),
                         ("origin.test", P, "GET", "/blob.bin", "allow",
                          "allow origin.test", 200, False))
        self.assertGreaterEqual(req["bytes_down"], len(body))
        self.assertLess(req["bytes_down"], len(body) + 2000)
        self.assertGreater(req["bytes_up"], 0)
        self.assertLess(req["bytes_up"], 2000)

        self.assertEqual((tun["host"], tun["port"], tun["method"],
                          tun["decision"], tun["rule"], tun["status"]),
                         ("origin.test", P, "CONNECT", "allow",
                          "allow origin.test", 200))
        self.assertIsNone(tun["path"])
        # Opaque bytes: the whole response one way, the request the other.
        self.assertGreaterEqual(tun["bytes_down"], len(body))
        self.assertLess(tun["bytes_down"], len(body) + 2000)
        self.assertGreater(tun["bytes_up"], 40)
        self.assertLess(tun["bytes_up"], 2000)

        self.assertEqual((deny["host"], deny["port"], deny["method"],
                          deny["path"], deny["decision"], deny["rule"],
                          deny["status"]),
                         ("denied.test", P, "GET", "/x", "deny", "default",
                          403))
        self.assertIn("not in the allow list", deny["reason"])
        self.assertEqual((deny["bytes_up"], deny["bytes_down"]), (0, 0))

        self.assertEqual((err["host"], err["port"], err["path"],
                          err["status"]), ("down.test", dead, "/y", 502))
        self.assertRegex(err["reason"], "(?i)refused")

    def test_malformed_and_guard_refusals_are_audited(self):
        audit = self.tmp.join("audit.jsonl")
        s = bf.session(self, ["--audit", audit, "--allow", "*"])
        r = s.request(b"GET http://a.test/ HTTP/1.1\r\nHost: a\r\n"
                      b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(r.status, 400)
        r = s.request(b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 403)
        events = bf.read_audit(audit, want=lambda ev: len(ev) >= 2)
        self.check_shape(events)
        bad, guard = events
        self.assertEqual((bad["event"], bad["status"]), ("error", 400))
        self.assertIn("framing", bad["reason"])
        self.assertEqual((guard["event"], guard["door"], guard["host"],
                          guard["port"], guard["decision"], guard["rule"],
                          guard["status"]),
                         ("deny", "connect", "127.0.0.1", 22, "deny",
                          "guard", 403))
        self.assertIn("loopback", guard["reason"])

    def test_tunnel_bytes_count_what_came_with_the_connect(self):
        n = self.nginx(files={"hello.txt": "hi\n"})
        P = n.port
        audit = self.tmp.join("audit.jsonl")
        s = bf.session(self, ["--audit", audit, "--allow", "origin.test",
                              "--resolve", "origin.test:%d:127.0.0.1" % P])
        inner = (b"GET /hello.txt HTTP/1.1\r\nHost: origin.test\r\n"
                 b"Connection: close\r\n\r\n")
        # The request rides in the same segment as the CONNECT (clients
        # that do not wait for the 200 do this).
        r = s.request(b"CONNECT origin.test:%d HTTP/1.1\r\nHost: x\r\n\r\n"
                      % P + inner)
        head, _, answer = r.raw.partition(b"\r\n\r\n")
        self.assertEqual(head, b"HTTP/1.1 200 Connection established")
        self.assertTrue(answer.endswith(b"\r\n\r\nhi\n"), r)
        ev = bf.read_audit(audit, want=lambda ev: len(ev) >= 1)
        self.assertEqual(len(ev), 1, ev)
        self.assertEqual((ev[0]["event"], ev[0]["bytes_up"],
                          ev[0]["bytes_down"]),
                         ("connect", len(inner), len(answer)))

    def test_requests_in_flight_at_exit_are_audited(self):
        o = bf.PyOrigin(self)
        audit = self.tmp.join("audit.jsonl")
        s = bf.session(self, ["--audit", audit, "--allow", "py.test",
                              "--resolve", "py.test:%d:127.0.0.1" % o.port])
        held = socket.create_connection(("127.0.0.1", s.port), 5)
        self.addCleanup(held.close)
        held.sendall(b"GET http://py.test:%d/hang?x=1 HTTP/1.1\r\n"
                     b"Host: x\r\n\r\n" % o.port)
        bf.h.wait_for(lambda: "/hang" in o.log(), 5, "the origin to see it")
        s.stop()
        ev = bf.read_audit(audit)
        self.check_shape(ev)
        self.assertEqual([(e["event"], e["path"], e["host"]) for e in ev],
                         [("error", "/hang", "py.test")])
        self.assertIn("shutting down", ev[0]["reason"])

    def test_audit_dash_is_stderr_and_verbose_adds_a_summary(self):
        n = self.nginx(files={"hello.txt": "hi\n"})
        P = n.port
        args = ["--allow", "origin.test", "--resolve",
                "origin.test:%d:127.0.0.1" % P]
        script = ("curl -sS http://origin.test:%d/hello.txt; "
                  "curl -sS -o /dev/null http://no.test:%d/" % (P, P))
        r = self.egress(["--audit", "-", "-v"] + args, ["sh", "-c", script])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "hi\n")
        lines = [ln for ln in r.stderr.splitlines() if ln.startswith("{")]
        events = [json.loads(ln) for ln in lines]
        self.check_shape(events)
        self.assertEqual([e["event"] for e in events], ["request", "deny"])
        summary = [ln for ln in r.stderr.splitlines()
                   if re.search(r"\d+ connections", ln)]
        self.assertEqual(len(summary), 1, r.stderr)
        self.assertRegex(summary[0], r"^egress-run: .*2 requests.*"
                         r"1 denied")
        # Without -v, no summary (and no audit on stderr without --audit).
        r = self.egress(args, ["sh", "-c", script])
        self.assertEqual(r.rc, 0, r)
        self.assertNotRegex(r.stderr, r"\d+ connections")
        self.assertNotIn("{", r.stderr)


if __name__ == "__main__":
    unittest.main()
