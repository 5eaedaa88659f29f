"""Daemon mode (issue 12): `egress-run serve` with sandboxes registered on
its control socket, told apart by source address (curl --interface and
sockets bound to 127.0.0.2, 127.0.0.3, ...: the whole of 127/8 is local)
or by proxy credentials; `--via` running a command through a daemon;
`--control` changing a single run's policy while it runs.

  - sources: each sandbox's own allow list, another's never applies; an
    unclaimed source 403 "unknown sandbox"; audit events name the sandbox;
    a sandbox's secret is injected for it and not for its neighbour (whose
    copy of the placeholder stays a placeholder); counters per sandbox.
  - tokens: right credentials pass (HTTP and SOCKS5), wrong 407, none 407.
  - live policy: PUT takes effect on the next request, an open tunnel
    keeps its decision; DELETE closes the sandbox's open tunnel; expiry
    403 "registration expired", PATCH renews.
  - the API: socket 0600, absent from the proxy's port, 400 naming the key
    of a bad registration, 409 for a taken id or source, a flood of idle
    clients does not lock anyone out.
  - --via: curl and git through the daemon, the registration gone after
    COMMAND exits; an unreachable daemon falls back (or 125 with
    --fail-closed).
  - --control in a single run: the child changes its own policy.
  - churn: thousands of register/request/delete cycles; the list, the
    descriptors and the memory come back to where they started.

Runs under Debian's /usr/bin/python3; binds 127.0.0.0/8 only.
"""

import json
import os
import re
import signal
import socket
import stat
import subprocess
import time
import unittest

import builtin_fixtures as bf
import fault_fixtures as ff
import harness as h
import mitm_fixtures as mf

PY = h.PY


# ------------------------------------------------------------ helpers

# An origin that says who it is, keep-alive (HTTP/1.1, Content-Length).
WHO_ORIGIN = r'''
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
addr, port, who = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(who)))
        self.end_headers()
        self.wfile.write(who)
ThreadingHTTPServer((addr, port), H).serve_forever()
'''


def api(path, method, target, body=None, timeout=10.0):
    """One exchange on the control socket: (status, JSON or None, raw)."""
    data = b"" if body is None else (body if isinstance(body, bytes) else
                                     json.dumps(body).encode())
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(path)
        try:
            s.sendall(b"%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n"
                      b"%s" % (method.encode(), target.encode(), len(data),
                               data))
        except (BrokenPipeError, ConnectionResetError):
            pass        # answered (and closed) before the body was read
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = s.recv(65536)
            except ConnectionResetError:
                break
            if not got:
                break
            buf += got
    finally:
        s.close()
    head, _, payload = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        doc = json.loads(payload) if payload else None
    except ValueError:
        doc = None
    return status, doc, buf


def fetch(proxy_port, src, url, headers=(), timeout=10.0, creds=None):
    """GET url through the proxy from source address src, by hand:
    (status, headers dict (lower-case), body)."""
    host = re.match(r"http://([^/]+)", url).group(1)
    req = ["GET %s HTTP/1.1" % url, "Host: " + host, "Connection: close"]
    if creds is not None:
        import base64
        req.append("Proxy-Authorization: Basic " +
                   base64.b64encode(creds.encode()).decode())
    req += list(headers)
    s = socket.socket()
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect(("127.0.0.1", proxy_port))
        s.sendall(("\r\n".join(req) + "\r\n\r\n").encode())
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = s.recv(65536)
            if not got:
                break
            buf += got
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode(errors="replace").split("\r\n")
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return int(lines[0].split(" ")[1]), hdrs, body


def tunnel(proxy_port, src, authority, timeout=10.0):
    """A CONNECT tunnel from src, established (the 200 read)."""
    host, port = authority.rsplit(":", 1)
    return mf.proxy_connect(proxy_port, host, int(port), timeout, source=src)


def http_in_tunnel(s, host, path="/hello.txt"):
    """One request over an open tunnel to the plain-HTTP origin (keep-alive):
    the body, or None once the tunnel is closed."""
    s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\n\r\n"
              % (path.encode(), host.encode()))
    buf = b""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            got = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return None
        if not got:
            return None
        buf += got
        head, sep, body = buf.partition(b"\r\n\r\n")
        if sep:
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if m and len(body) >= int(m.group(1)):
                return body[:int(m.group(1))]
    return None


def closed_within(s, seconds):
    """Whether the peer closes s (EOF or reset) within seconds."""
    s.settimeout(0.2)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if s.recv(4096) == b"":
                return True
        except socket.timeout:
            continue
        except OSError:
            return True
    return False


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def vm_rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


class Daemon:
    """egress-run serve on 127.0.0.1 with its control socket and audit."""

    def __init__(self, tc, *extra, env=None):
        self.dir = tc.tmp.mkdir("daemon-%d" % time.monotonic_ns(),
                                mode=0o700)
        self.sock = os.path.join(self.dir, "control.sock")
        self.audit = os.path.join(self.dir, "audit.jsonl")
        self.port = h.free_port()
        # Its own TMPDIR (not the runs'); under ASan no quarantine.
        env = dict(ff.session_env(env), TMPDIR=self.dir)
        self.proc = h.Proc([h.egress_bin(), "serve", "--listen",
                            "127.0.0.1:%d" % self.port, "--control",
                            self.sock, "--audit", self.audit] + list(extra),
                           os.path.join(self.dir, "daemon.log"), env=env,
                           name="egress-run serve")
        tc.addCleanup(self.stop_and_check)
        # The proxy URL on stdout comes once the proxy and the control
        # socket both accept (the socket file alone may precede listen()).
        h.wait_for(lambda: "http://127.0.0.1:%d" % self.port in
                   self.proc.log_text() or not self.proc.alive(), 10,
                   "the daemon's proxy URL")
        if not self.proc.alive():
            raise AssertionError("egress-run serve exited:\n" +
                                 self.proc.log_tail())

    def stop_and_check(self):
        """Stop it; a clean exit, and no sanitizer report (ASan build)."""
        self.proc.stop()
        out = self.proc.log_text()
        m = bf.SANITIZER_REPORT.search(out)
        if m:
            raise AssertionError("egress-run serve: sanitizer report:\n%s"
                                 % out[max(0, m.start() - 200):][:4000])

    def api(self, method, target, body=None):
        return api(self.sock, method, target, body)

    def register(self, tc, body, want=201):
        st, doc, raw = self.api("POST", "/v1/sandboxes", body)
        tc.assertEqual(st, want, raw)
        return doc

    def events(self, want=None):
        return bf.read_audit(self.audit, want=want)


class DaemonCase(h.EgressTestCase):

    def setUp(self):
        super().setUp()
        self.origin = h.Nginx(self.tmp.mkdir("origin"), files={
            "hello.txt": "hello from the origin\n",
            "big.bin": os.urandom(1 << 20)})
        self.addCleanup(self.origin.stop)
        self.origin.start()
        self.oport = self.origin.port

    def url(self, host, path="/hello.txt"):
        return "http://%s:%d%s" % (host, self.oport, path)

    def policy(self, *names, **extra):
        """allow NAMES, each pinned to the origin on 127.0.0.1."""
        p = {"allow": list(names),
             "resolve": ["%s:%d:127.0.0.1" % (n, self.oport)
                         for n in names]}
        p.update(extra)
        return p


# ------------------------------------------------------------ tests

class Sources(DaemonCase):

    def test_each_source_gets_its_own_policy_and_nobody_elses(self):
        mport = h.free_port()
        hook = self.tmp.join("deny-hook.jsonl")
        d = Daemon(self, "--metrics", "127.0.0.1:%d" % mport, "--hook",
                   "deny:file:" + hook)
        d.register(self, dict(self.policy("a.test"), id="alpha",
                              source="127.0.0.2"))
        d.register(self, dict(self.policy("b.test"), id="beta",
                              source="127.0.0.3/32"))
        st, _, body = fetch(d.port, "127.0.0.2", self.url("a.test"))
        self.assertEqual((st, body), (200, b"hello from the origin\n"))
        st, hd, _ = fetch(d.port, "127.0.0.2", self.url("b.test"))
        self.assertEqual(st, 403, "beta's allowance leaked to alpha")
        st, _, _ = fetch(d.port, "127.0.0.3", self.url("b.test"))
        self.assertEqual(st, 200)
        st, _, _ = fetch(d.port, "127.0.0.3", self.url("a.test"))
        self.assertEqual(st, 403, "alpha's allowance leaked to beta")
        st, hd, _ = fetch(d.port, "127.0.0.4", self.url("a.test"))
        self.assertEqual(st, 403)
        self.assertEqual(hd.get("x-egress-run-reason"), "unknown sandbox")
        # CONNECT and SOCKS5 doors attribute the same way.
        tunnel(d.port, "127.0.0.2", "a.test:%d" % self.oport).close()
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-o",
                            "/dev/null", "-w", "%{http_code}",
                            "--interface", "127.0.0.4", "--socks5-hostname",
                            "127.0.0.1:%d" % d.port, self.url("a.test")],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0, "an unknown source got through"
                            " the SOCKS5 door: %s" % r.stdout)
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "--interface", "127.0.0.3", "--socks5-hostname",
                            "127.0.0.1:%d" % d.port, self.url("b.test")],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.stdout, "hello from the origin\n", r.stderr)

        # Audit events name the sandbox; the unknown one names none.
        evs = d.events(want=lambda e: len(e) >= 7)
        by = {}
        for e in evs:
            by.setdefault(e.get("sandbox"), []).append(e)
        self.assertTrue(all(e["host"] == "a.test" or e["decision"] == "deny"
                            for e in by["alpha"]), by["alpha"])
        self.assertTrue(any(e["host"] == "b.test" and
                            e["decision"] == "allow" for e in by["beta"]))
        self.assertTrue(any(e.get("reason") == "unknown sandbox"
                            for e in by.get(None, [])), evs)

        # Counters, per sandbox.
        st, doc, _ = d.api("GET", "/v1/sandboxes/alpha")
        self.assertEqual(st, 200)
        n = doc["counters"]
        self.assertEqual(n["denials"], 1, doc)
        self.assertGreaterEqual(n["connections"], 3, doc)
        self.assertGreater(n["bytes_down"], 20, doc)
        st, doc, _ = d.api("GET", "/v1/sandboxes")
        self.assertEqual(sorted(s["id"] for s in doc["sandboxes"]),
                         ["alpha", "beta"])
        # The daemon's own hooks say whose each event was.
        with open(hook) as f:
            whose = sorted(str(json.loads(ln).get("sandbox")) for ln in f)
        self.assertEqual(whose[:2], ["None", "None"], whose)   # unknown
        self.assertIn("alpha", whose)
        self.assertIn("beta", whose)
        # The same, per sandbox, in the Prometheus text.
        r = subprocess.run(["curl", "-sS", "--max-time", "10",
                            "http://127.0.0.1:%d/metrics" % mport],
                           capture_output=True, text=True, timeout=20)
        lines = set(r.stdout.splitlines())
        self.assertIn('egress_run_sandbox_denials_total{sandbox="alpha"} 1',
                      lines, r.stdout)
        self.assertIn('egress_run_sandbox_denials_total{sandbox="beta"} 1',
                      lines)
        self.assertIn('egress_run_sandbox_connections_total{sandbox='
                      '"alpha"} %d' % n["connections"], lines)

    def test_pooled_origin_connections_are_not_shared(self):
        # alpha and beta both allow a.test:P, pinned to two different
        # origins (127.0.0.1:P and 127.0.0.5:P). A connection alpha left
        # idle in the pool must not carry beta's request to alpha's.
        port = h.free_port()
        names = {}
        for addr, who in (("127.0.0.1", "one"), ("127.0.0.5", "five")):
            script = self.tmp.write("who-%s.py" % who, WHO_ORIGIN)
            p = h.Proc([PY, script, addr, str(port), who],
                       self.tmp.join("who-%s.log" % who), name=who)
            self.addCleanup(p.stop)
            h.wait_port(addr, port, 10, p)
            names[addr] = who
        d = Daemon(self)
        for sid, src, addr in (("alpha", "127.0.0.2", "127.0.0.1"),
                               ("beta", "127.0.0.3", "127.0.0.5")):
            d.register(self, {"id": sid, "source": src,
                              "allow": ["a.test", addr],
                              "resolve": ["a.test:%d:%s" % (port, addr)]})
        url = "http://a.test:%d/" % port
        for _ in range(2):
            self.assertEqual(fetch(d.port, "127.0.0.2", url)[2], b"one")
            self.assertEqual(fetch(d.port, "127.0.0.3", url)[2], b"five")

    def test_a_sandboxes_secret_is_its_own(self):
        d = Daemon(self)
        key = mf.new_secret()
        o = bf.PyOrigin(self)
        pol = {"allow": ["api.test"],
               "resolve": ["api.test:%d:127.0.0.1" % o.port]}
        a = d.register(self, dict(pol, id="alpha", source="127.0.0.2",
                                  secrets=["TOK:api.test"],
                                  env={"TOK": key}))
        d.register(self, dict(pol, id="beta", source="127.0.0.3"))
        ph = a["placeholders"]["TOK"]
        self.assertNotEqual(ph, key)
        self.assertTrue(a["ca"].startswith("-----BEGIN CERTIFICATE-----"))
        url = "http://api.test:%d/echo" % o.port
        st, _, body = fetch(d.port, "127.0.0.2", url)
        self.assertEqual(st, 200, body)
        got = dict(json.loads(body)["headers"])
        self.assertEqual(got.get("Authorization"), "Bearer " + key)
        # The neighbour holding alpha's placeholder gets nothing for it.
        st, _, body = fetch(d.port, "127.0.0.3", url,
                            headers=["Authorization: Bearer " + ph])
        self.assertEqual(st, 200, body)
        got = dict(json.loads(body)["headers"])
        self.assertEqual(got.get("Authorization"), "Bearer " + ph)
        # The value is in no answer, event or log.
        _, _, raw = d.api("GET", "/v1/sandboxes")
        _, _, raw1 = d.api("GET", "/v1/sandboxes/alpha")
        self.assertEqual(mf.leaks(key, texts={"list": raw, "one": raw1,
                                              "log": d.proc.log_text()},
                                  paths=[d.dir, self.state_tmp]), [])


class Tokens(DaemonCase):

    def test_credentials_identify_a_sandbox(self):
        d = Daemon(self)
        doc = d.register(self, dict(self.policy("a.test"), id="tok",
                                    token=True))
        token = doc["token"]
        self.assertGreaterEqual(len(token), 32)
        st, _, _ = fetch(d.port, "127.0.0.1", self.url("a.test"),
                         creds="tok:" + token)
        self.assertEqual(st, 200)
        st, hd, _ = fetch(d.port, "127.0.0.1", self.url("a.test"),
                          creds="tok:" + token[:-1] + "x")
        self.assertEqual(st, 407)
        self.assertIn("proxy-authenticate", hd)
        st, hd, _ = fetch(d.port, "127.0.0.1", self.url("a.test"))
        self.assertEqual(st, 407, "no credentials")
        # The token is shown once: the listing says only that there is one.
        st, doc, raw = d.api("GET", "/v1/sandboxes/tok")
        self.assertIs(doc["token"], True)
        self.assertNotIn(token.encode(), raw)
        # curl with the credentials in its proxy URL, HTTP and SOCKS5.
        for proxy in ("http://tok:%s@127.0.0.1:%d" % (token, d.port),
                      "socks5h://tok:%s@127.0.0.1:%d" % (token, d.port)):
            r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x",
                                proxy, self.url("a.test")],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.stdout, "hello from the origin\n",
                             proxy.split(":")[0] + ": " + r.stderr)
        r = subprocess.run(["curl", "-sS", "--max-time", "10", "-x",
                            "socks5h://tok:wrong@127.0.0.1:%d" % d.port,
                            self.url("a.test")],
                           capture_output=True, text=True, timeout=20)
        self.assertNotEqual(r.returncode, 0, "SOCKS5 with a wrong token")


class Live(DaemonCase):

    def test_put_applies_to_the_next_request_and_open_tunnels_keep_theirs(
            self):
        d = Daemon(self)
        d.register(self, dict(self.policy("a.test"), id="s",
                              source="127.0.0.2"))
        t = tunnel(d.port, "127.0.0.2", "a.test:%d" % self.oport)
        self.addCleanup(t.close)
        self.assertEqual(fetch(d.port, "127.0.0.2", self.url("b.test"))[0],
                         403)
        st, doc, raw = d.api("PUT", "/v1/sandboxes/s",
                             dict(self.policy("b.test"),
                                  source="127.0.0.2"))
        self.assertEqual(st, 200, raw)
        self.assertEqual(fetch(d.port, "127.0.0.2", self.url("b.test"))[0],
                         200)
        self.assertEqual(fetch(d.port, "127.0.0.2", self.url("a.test"))[0],
                         403)
        # The tunnel decided before the PUT still carries data.
        self.assertEqual(http_in_tunnel(t, "a.test"),
                         b"hello from the origin\n")
        # Counters went on from where they were, and what the tunnel
        # decided before the PUT carried is counted in them too.
        st, doc, _ = d.api("GET", "/v1/sandboxes/s")
        self.assertGreaterEqual(doc["counters"]["denials"], 2, doc)
        before = doc["counters"]["bytes_down"]
        t.close()
        h.wait_for(lambda: d.api("GET", "/v1/sandboxes/s")[1]["counters"]
                   ["bytes_down"] >= before + 200, 5,
                   "the old tunnel's bytes in the new counters")
        self.assertTrue(d.proc.alive())

    def test_delete_closes_open_tunnels(self):
        d = Daemon(self)
        d.register(self, dict(self.policy("a.test"), id="s",
                              source="127.0.0.2"))
        d.register(self, dict(self.policy("a.test"), id="other",
                              source="127.0.0.3"))
        t = tunnel(d.port, "127.0.0.2", "a.test:%d" % self.oport)
        self.addCleanup(t.close)
        keep = tunnel(d.port, "127.0.0.3", "a.test:%d" % self.oport)
        self.addCleanup(keep.close)
        self.assertEqual(http_in_tunnel(t, "a.test"),
                         b"hello from the origin\n")
        st, _, raw = d.api("DELETE", "/v1/sandboxes/s")
        self.assertEqual(st, 204, raw)
        self.assertTrue(closed_within(t, 3), "tunnel open after DELETE")
        st, hd, _ = fetch(d.port, "127.0.0.2", self.url("a.test"))
        self.assertEqual((st, hd.get("x-egress-run-reason")),
                         (403, "unknown sandbox"))
        self.assertEqual(d.api("GET", "/v1/sandboxes/s")[0], 404)
        # The other sandbox's tunnel is untouched.
        keep.settimeout(10)
        self.assertEqual(http_in_tunnel(keep, "a.test"),
                         b"hello from the origin\n")

    def test_expiry_refuses_and_patch_renews(self):
        d = Daemon(self)
        soon = time.time() + 2
        d.register(self, dict(self.policy("a.test"), id="lease",
                              source="127.0.0.2",
                              expires_at=rfc3339(soon + 1)))
        d.register(self, dict(self.policy("a.test"), id="short",
                              source="127.0.0.3",
                              expires_at=rfc3339(soon)))
        t = tunnel(d.port, "127.0.0.3", "a.test:%d" % self.oport)
        self.addCleanup(t.close)
        self.assertEqual(fetch(d.port, "127.0.0.3", self.url("a.test"))[0],
                         200)
        st, doc, raw = d.api("PATCH", "/v1/sandboxes/lease",
                             {"expires_at": rfc3339(time.time() + 60)})
        self.assertEqual(st, 200, raw)
        h.wait_for(lambda: time.time() > soon + 1.2, 5, "expiry")
        # The expired sandbox's tunnel is closed by the sweep.
        self.assertTrue(closed_within(t, 3), "tunnel open after expiry")
        st, hd, _ = fetch(d.port, "127.0.0.3", self.url("a.test"))
        self.assertEqual(st, 403)
        self.assertIn(hd.get("x-egress-run-reason"),
                      ("registration expired", "unknown sandbox"))
        # The renewed one goes on.
        self.assertEqual(fetch(d.port, "127.0.0.2", self.url("a.test"))[0],
                         200)
        st, _, raw = d.api("PATCH", "/v1/sandboxes/lease",
                           {"expires_at": "tomorrow"})
        self.assertEqual(st, 400, raw)

    def test_first_request_after_expiry_says_so(self):
        d = Daemon(self)
        d.register(self, dict(self.policy("a.test"), id="e",
                              source="127.0.0.2",
                              expires_at=rfc3339(time.time() + 1)))
        # Sweep or first request, whichever comes first, ends it; a
        # request at once after the deadline is answered by the latter.
        deadline = int(time.time()) + 1
        h.wait_for(lambda: time.time() >= deadline + 0.05, 5, "expiry")
        st, hd, _ = fetch(d.port, "127.0.0.2", self.url("a.test"))
        self.assertEqual(st, 403)
        self.assertIn(hd.get("x-egress-run-reason"),
                      ("registration expired", "unknown sandbox"))
        evs = d.events(want=lambda e: any(x.get("status") == 403
                                          for x in e))
        self.assertTrue(any(e.get("reason") in ("registration expired",
                                                "unknown sandbox")
                            for e in evs), evs)


class ControlApi(DaemonCase):

    def test_socket_is_private_and_absent_from_the_proxy_port(self):
        d = Daemon(self)
        mode = stat.S_IMODE(os.stat(d.sock).st_mode)
        self.assertEqual(mode, 0o600, oct(mode))
        d.register(self, dict(self.policy("a.test"), id="s",
                              source="127.0.0.1"))
        # A sandbox on 127.0.0.1 asking the proxy port for the API gets
        # the proxy's answer, not the list.
        for target in ("/v1/sandboxes", "http://127.0.0.1:%d/v1/sandboxes"
                       % d.port):
            r = bf.raw_exchange(d.port, b"GET %s HTTP/1.1\r\nHost: "
                                b"127.0.0.1:%d\r\nConnection: close\r\n\r\n"
                                % (target.encode(), d.port))
            self.assertNotIn(b'"sandboxes"', r.raw, target)
            self.assertIn(r.status, (400, 403, 404), r)

    def test_bad_registrations_are_400_naming_the_key(self):
        d = Daemon(self)
        cases = [
            (b"{", "JSON"),
            ({"allow": "a.test"}, "allow"),
            ({"source": "300.1.2.3"}, "source"),
            ({"expires_at": "soon"}, "expires_at"),
            ({"id": "../x"}, "id"),
            ({"token": "yes"}, "token"),
            ({"listen": "127.0.0.1:1"}, "listen"),
            ({"colour": "red"}, "colour"),
            ({"rules": [{"action": "deny", "methods": ["GET"],
                         "host": "a.test", "path": "(("}]}, "rule"),
            ({"secrets": ["NOPE"]}, "NOPE"),
        ]
        for body, word in cases:
            st, doc, raw = d.api("POST", "/v1/sandboxes", body)
            self.assertEqual(st, 400, raw)
            self.assertIn(word.lower(), doc["error"].lower(), body)
        self.assertEqual(d.api("GET", "/v1/sandboxes")[1]["sandboxes"], [])
        # Taken id, taken source.
        d.register(self, {"id": "one", "source": "127.0.0.2"})
        st, doc, _ = d.api("POST", "/v1/sandboxes", {"id": "one"})
        self.assertEqual(st, 409, doc)
        st, doc, _ = d.api("POST", "/v1/sandboxes",
                           {"id": "two", "source": "127.0.0.2"})
        self.assertEqual(st, 409, doc)
        self.assertEqual(d.api("DELETE", "/v1/sandboxes/nope")[0], 404)
        self.assertEqual(d.api("DELETE", "/v1/sandboxes")[0], 405)
        self.assertEqual(d.api("GET", "/v2/whatever")[0], 404)
        # A body over the bound is refused, and the daemon lives on.
        st, _, _ = d.api("POST", "/v1/sandboxes",
                         b'{"allow": ["' + b"a" * (2 << 20) + b'"]}')
        self.assertEqual(st, 413)
        self.assertTrue(d.proc.alive())

    def test_secret_values_come_from_the_registration_only(self):
        # Whoever may register must not be able to send the daemon's own
        # environment to a host of their choosing.
        key = mf.new_secret()
        d = Daemon(self, env={"DAEMON_KEY": key})
        st, doc, raw = d.api("POST", "/v1/sandboxes",
                             {"id": "x", "source": "127.0.0.2",
                              "allow": ["evil.test"],
                              "secrets": ["DAEMON_KEY:evil.test"]})
        self.assertEqual(st, 400, raw)
        self.assertIn("DAEMON_KEY", doc["error"])
        self.assertNotIn(key.encode(), raw)
        d.register(self, {"id": "x", "source": "127.0.0.2",
                          "allow": ["evil.test"],
                          "secrets": ["DAEMON_KEY:evil.test"],
                          "env": {"DAEMON_KEY": "its-own-value-000000000"}})

    def test_a_flood_of_idle_clients_locks_nobody_out(self):
        d = Daemon(self)
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            try:
                s.connect(d.sock)
            except OSError:
                s.close()
                continue
            s.sendall(b"GET /v1/sandb")		# and never more
            idle.append(s)
        # Within the exchange deadline the API answers again.
        ok = []

        def answered():
            try:
                st = api(d.sock, "GET", "/v1/sandboxes", timeout=2)[0]
            except (OSError, IndexError, ValueError):
                return False
            ok.append(st)
            return st == 200
        h.wait_for(answered, 15, "the API answering during a flood",
                   interval=0.5)
        self.assertTrue(d.proc.alive())

    def test_serve_refuses_policy_and_commands(self):
        for extra, word in ((["--allow", "a.test"], "--allow"),
                            (["--", "true"], "COMMAND"),
                            ([], "--control")):
            args = ["serve"] + (["--control", self.tmp.join("c.sock")]
                                if word != "--control" else []) + extra
            r = self.egress(args, timeout=20)
            self.assertEqual(r.rc, 125, r)
            self.assertIn(word, r.stderr)
        # A live socket is not taken over.
        d = Daemon(self)
        r = self.egress(["serve", "--control", d.sock], timeout=20)
        self.assertEqual(r.rc, 125, r)
        self.assertTrue(d.proc.alive())
        self.assertEqual(d.api("GET", "/v1/sandboxes")[0], 200)


class Via(DaemonCase):

    def git_repo(self):
        """A bare repository served by the origin (git's dumb HTTP)."""
        work = self.tmp.mkdir("work")
        env = dict(h.clean_env(), GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t",
                   GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t")
        subprocess.run(["git", "init", "-q", "-b", "main", work], check=True,
                       env=env)
        with open(os.path.join(work, "README"), "w") as f:
            f.write("through the daemon\n")
        subprocess.run(["git", "-C", work, "add", "README"], check=True,
                       env=env)
        subprocess.run(["git", "-C", work, "commit", "-qm", "one"],
                       check=True, env=env)
        bare = os.path.join(self.origin.docroot, "repo.git")
        subprocess.run(["git", "clone", "-q", "--bare", work, bare],
                       check=True, env=env)
        subprocess.run(["git", "-C", bare, "update-server-info"],
                       check=True, env=env)

    def test_curl_and_git_through_the_daemon(self):
        d = Daemon(self)
        self.git_repo()
        clone = self.tmp.join("clone")
        script = (h.SH_VIA_PROXY +
                  "curl -sS --fail --max-time 10 %s > %s || exit 3; "
                  "curl -s --max-time 10 -o /dev/null -w '%%{http_code}' "
                  "%s > %s; "
                  "git clone -q %s %s || exit 4; "
                  "curl -s --unix-socket %s http://x/v1/sandboxes > %s"
                  % (self.url("a.test"), self.tmp.join("out"),
                     self.url("b.test"), self.tmp.join("denied"),
                     self.url("a.test", "/repo.git"), clone, d.sock,
                     self.tmp.join("list")))
        r = self.egress(["--via", d.sock, "--allow", "a.test", "--resolve",
                         "a.test:%d:127.0.0.1" % self.oport],
                        ["sh", "-c", script], timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.tmp.read("out"), "hello from the origin\n")
        self.assertEqual(self.tmp.read("denied"), "403")
        with open(os.path.join(clone, "README")) as f:
            self.assertEqual(f.read(), "through the daemon\n")
        # While COMMAND ran, it was a sandbox with a token and a lease.
        during = json.loads(self.tmp.read("list"))["sandboxes"]
        self.assertEqual(len(during), 1, during)
        self.assertIs(during[0]["token"], True)
        self.assertIsNotNone(during[0]["expires_at"])
        self.assertGreaterEqual(during[0]["counters"]["requests"], 3)
        # Afterwards it is gone, and the daemon served it (its audit).
        self.assertEqual(d.api("GET", "/v1/sandboxes")[1]["sandboxes"], [])
        evs = d.events(want=lambda e: len(e) >= 3)
        self.assertTrue(any(e.get("host") == "a.test" and
                            e.get("sandbox") == during[0]["id"]
                            for e in evs), evs)
        self.assert_no_state_left()

    def test_secret_values_travel_to_the_daemon_not_the_child(self):
        d = Daemon(self)
        key = mf.new_secret()
        o = bf.PyOrigin(self)
        out = self.tmp.join("echo")
        # COMMAND's TOK, and COPY that held the value too, are the
        # daemon's placeholder: sent in other headers, the daemon turns
        # them into the key (a placeholder of our own it would not know).
        script = (h.SH_VIA_PROXY + "echo \"$TOK $COPY\" > %s.env; "
                  "curl -sS --fail --max-time 10 -H \"X-Tok: $TOK\" "
                  "-H \"X-Copy: $COPY\" http://api.test:%d/echo > %s"
                  % (out, o.port, out))
        r = self.egress(["--via", d.sock, "--allow", "api.test",
                         "--resolve", "api.test:%d:127.0.0.1" % o.port,
                         "--secret", "TOK:api.test"], ["sh", "-c", script],
                        env=dict(h.clean_env(), TOK=key, COPY="k=" + key),
                        timeout=60)
        self.assertEqual(r.rc, 0, r)
        got = dict(json.loads(self.tmp.read("echo"))["headers"])
        self.assertEqual(got.get("Authorization"), "Bearer " + key)
        self.assertEqual(got.get("X-Tok"), key)
        self.assertEqual(got.get("X-Copy"), "k=" + key)
        self.assertNotIn(key, self.tmp.read("echo.env"))
        self.assertEqual(mf.leaks(key, texts={"stdout": r.stdout,
                                              "stderr": r.stderr,
                                              "log": d.proc.log_text()},
                                  paths=[d.dir, self.state_tmp]), [])

    def test_the_lease_is_renewed_while_command_runs(self):
        # A 60 s lease renewed every 20 s: 21 s in, expires_at has moved on
        # and requests still pass.
        d = Daemon(self)
        lst = "curl -s --unix-socket %s http://x/v1/sandboxes > %s; "
        script = (h.SH_VIA_PROXY + lst % (d.sock, self.tmp.join("t0")) +
                  "sleep 21; " + lst % (d.sock, self.tmp.join("t1")) +
                  "curl -sS --fail --max-time 10 %s" % self.url("a.test"))
        r = self.egress(["--via", d.sock, "--allow", "a.test", "--resolve",
                         "a.test:%d:127.0.0.1" % self.oport],
                        ["sh", "-c", script], timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "hello from the origin\n")
        (t0,) = json.loads(self.tmp.read("t0"))["sandboxes"]
        (t1,) = json.loads(self.tmp.read("t1"))["sandboxes"]
        self.assertEqual(t0["id"], t1["id"])
        self.assertGreater(t1["expires_at"], t0["expires_at"])
        self.assertEqual(d.api("GET", "/v1/sandboxes")[1]["sandboxes"], [])

    def test_unreachable_daemon_falls_back_or_fails_closed(self):
        nowhere = self.tmp.join("no-daemon.sock")
        r = self.egress(["--via", nowhere, "--allow", "a.test", "--resolve",
                         "a.test:%d:127.0.0.1" % self.oport],
                        ["sh", "-c", h.SH_VIA_PROXY + "curl -sS --fail "
                         "--max-time 10 " + self.url("a.test")], timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "hello from the origin\n")
        self.assertIn("daemon", r.stderr)
        r = self.egress(["--via", nowhere, "--fail-closed"], ["true"],
                        timeout=30)
        self.assertEqual(r.rc, 125, r)

    def test_refused_registration_is_an_error(self):
        d = Daemon(self)
        d.register(self, {"id": "x", "source": "127.0.0.1"})
        # A policy the daemon refuses (400) is a mistake no fall-back to
        # the built-in proxy would mend: 125, the daemon's reason, and
        # nothing registered.
        r = self.egress(["--via", d.sock, "--allow", "*.*.bad["], ["true"],
                        timeout=30)
        self.assertEqual(r.rc, 125, r)
        self.assertIn("refused the registration (400)", r.stderr)
        self.assertIn("'*.*.bad['", r.stderr)
        self.assertNotIn("falling back", r.stderr)
        self.assertEqual(len(d.api("GET", "/v1/sandboxes")[1]["sandboxes"]),
                         1)


class SingleRun(DaemonCase):

    def test_the_child_changes_its_own_policy(self):
        sock = self.tmp.join("run.sock")
        put = json.dumps(self.policy("a.test", "b.test"))
        code = "curl -s --max-time 10 -o /dev/null -w '%%{http_code} ' %s; "
        script = (h.SH_VIA_PROXY + code % self.url("a.test") +
                  code % self.url("b.test") +
                  "curl -s --unix-socket %s -X PUT -d '%s' "
                  "http://x/v1/sandboxes/default -o /dev/null "
                  "-w '%%{http_code} '; " % (sock, put) +
                  code % self.url("b.test") +
                  "curl -s --unix-socket %s -X DELETE -o /dev/null "
                  "-w '%%{http_code}' http://x/v1/sandboxes/default"
                  % sock)
        r = self.egress(["--control", sock, "--allow", "a.test", "--resolve",
                         "a.test:%d:127.0.0.1" % self.oport],
                        ["sh", "-c", script], timeout=60)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "200 403 200 200 405", r)
        self.assertFalse(os.path.exists(sock), "control socket left behind")


    def test_sighup_stays_the_childs(self):
        # egress-run passes SIGHUP to COMMAND; the API is not reloaded or
        # stopped by it.
        sock = self.tmp.join("hup.sock")
        got, ready = self.tmp.join("got-hup"), self.tmp.join("ready")
        script = ("trap 'echo hup > %s' HUP; echo > %s; i=0; "
                  "while [ ! -s %s ] && [ $i -lt 200 ]; do sleep 0.05; "
                  "i=$((i+1)); done; sleep 2" % (got, ready, got))
        p = self.start_egress(["--control", sock, "--allow", "a.test"],
                              ["sh", "-c", script])
        h.wait_for(lambda: os.path.exists(ready) and os.path.exists(sock),
                   10, "COMMAND and the control socket")
        p.signal(signal.SIGHUP)
        h.wait_for(lambda: os.path.exists(got), 5, "COMMAND's SIGHUP")
        st, doc, raw = api(sock, "GET", "/v1/sandboxes/default")
        self.assertEqual(st, 200, raw)
        self.assertEqual(p.wait(10), 0, p.log_text())


class Churn(DaemonCase):

    def test_thousands_of_sandboxes_come_and_go(self):
        d = Daemon(self)
        many = ["h%d.example.test" % i for i in range(40)]

        def cycle(i):
            body = dict(self.policy("a.test"), id="c%d" % i,
                        source="127.0.%d.%d" % (1 + i % 200, 2 + i % 250))
            body["allow"] = body["allow"] + many
            body["rules"] = [{"action": "deny", "methods": ["POST"],
                              "host": "a.test", "path": "/x/.*"}]
            st, _, raw = d.api("POST", "/v1/sandboxes", body)
            self.assertEqual(st, 201, raw)
            if i % 4 == 0:
                st, _, _ = fetch(d.port, body["source"], self.url("a.test"))
                self.assertEqual(st, 200, i)
            st, _, raw = d.api("DELETE", "/v1/sandboxes/c%d" % i)
            self.assertEqual(st, 204, raw)

        fds = lambda: len(os.listdir("/proc/%d/fd" % d.proc.pid))
        deadline = time.monotonic() + 90
        for i in range(300):
            cycle(i)
        rss0, fd0 = vm_rss_kib(d.proc.pid), fds()
        n = 300
        while n < 3300 and time.monotonic() < deadline:
            cycle(n)
            n += 1
        self.assertGreaterEqual(n, 2000, "too slow: %d cycles" % n)
        h.wait_for(lambda: fds() <= fd0, 5, "descriptors back to %d" % fd0)
        grown = vm_rss_kib(d.proc.pid) - rss0
        self.assertLess(grown, 1024 * (4 if ff.sanitized() else 1),
                        "RSS grew %d KiB over %d cycles"
                        % (grown, n - 300))
        self.assertEqual(d.api("GET", "/v1/sandboxes")[1]["sandboxes"], [])


if __name__ == "__main__":
    unittest.main()
