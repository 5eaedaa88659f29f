"""Destination policy and the address guard, end to end (SPEC §5, issue 3):
which requests the built-in proxy forwards, which it refuses with 403 and
a reason, and that a refused request never reaches the origin. Plain HTTP
and CONNECT (curl -p, and https whose certificate is the origin's own: the
tunnel is opaque).

Spellings the client would normalise (curl rewrites 2130706433) are sent
with raw sockets so the proxy sees them as written.
"""

import os
import unittest

import builtin_fixtures as bf
from harness import EgressTestCase, PY, free_port

HELLO = "hello from the origin\n"


def get(s, authority, path="/hello.txt"):
    """GET http://AUTHORITY/path through session s, raw."""
    a = authority.encode()
    return s.request(b"GET http://%s%s HTTP/1.1\r\nHost: %s\r\n"
                     b"Connection: close\r\n\r\n" % (a, path.encode(), a))


def connect(s, authority):
    a = authority.encode()
    return s.request(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (a, a),
                     timeout=5)


class BuiltinPolicyTest(EgressTestCase):

    def origin(self, tls=None):
        return self.nginx(files={"hello.txt": HELLO}, tls=tls,
                          http_extra=bf.CONN_LOG_FORMAT,
                          server_extra=bf.CONN_LOG)

    def assert_allowed(self, resp, what):
        self.assertEqual(resp.status, 200, "%s: %r" % (what, resp))
        self.assertEqual(resp.body.decode(), HELLO, what)

    def assert_refused(self, resp, what, reason=None, status=403):
        self.assertEqual(resp.status, status, "%s: %r" % (what, resp))
        why = resp.header("x-egress-run-reason")
        self.assertTrue(why, "%s: no X-Egress-Run-Reason" % what)
        self.assertEqual(resp.body.decode(), "egress-run: %s\n" % why, what)
        if reason:
            self.assertRegex(why, reason, what)
        self.assertTrue(resp.closed, what)

    def assert_origin_saw(self, n, hosts):
        seen = sorted(set(h for _c, _n, h, _r, _s in bf.conn_log(n)))
        self.assertEqual(seen, sorted(set(hosts)))

    # ---------------------------------------------------------- patterns

    def test_exact_wildcard_port_and_deny_wins(self):
        n = self.origin()
        other = bf.PyOrigin(self)
        P, Q = n.port, other.port
        names = ("origin.test", "example.test", "a.example.test",
                 "deep.a.example.test", "evil-example.test",
                 "evilexample.test", "example.test.evil.test",
                 "bad.example.test", "ported.test")
        args = ["--allow", "origin.test", "--allow", "*.example.test",
                "--allow", "ported.test:%d" % P,
                "--deny", "bad.example.test"]
        for name in names:
            args += ["--resolve", "%s:%d:127.0.0.1" % (name, P),
                     "--resolve", "%s:%d:127.0.0.1" % (name, Q)]
        s = bf.session(self, args)
        allowed = ("origin.test", "example.test", "a.example.test",
                   "deep.a.example.test", "ported.test")
        for name in allowed:
            self.assert_allowed(get(s, "%s:%d" % (name, P)), name)
        # Case and one trailing dot do not matter.
        self.assert_allowed(get(s, "ORIGIN.Test.:%d" % P), "ORIGIN.Test.")
        for name in ("evil-example.test", "evilexample.test",
                     "example.test.evil.test"):
            self.assert_refused(get(s, "%s:%d" % (name, P)), name,
                                "not in the allow list")
        self.assert_refused(get(s, "bad.example.test:%d" % P), "deny",
                            r"is denied \(deny bad\.example\.test\)")
        self.assert_refused(get(s, "ported.test:%d" % Q, "/echo"),
                            "other port", "not in the allow list")
        self.assert_origin_saw(n, ["%s:%d" % (h, P) for h in allowed] +
                               ["origin.test:%d" % P])
        self.assertNotIn("GET", other.log(), "refused request reached it")

    def test_no_allow_pattern_allows_all_but_the_guard_still_holds(self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--deny", "bad.test", "--resolve",
                              "any.test:%d:127.0.0.1" % P, "--resolve",
                              "bad.test:%d:127.0.0.1" % P])
        self.assertRegex(s.log(), r"egress-run: .*no --allow pattern")
        self.assert_allowed(get(s, "any.test:%d" % P), "any.test")
        self.assert_refused(get(s, "bad.test:%d" % P), "bad.test",
                            "is denied")
        # The allow-all default never grants loopback.
        self.assert_refused(get(s, "127.0.0.1:%d" % P), "127.0.0.1",
                            "loopback")
        self.assert_refused(get(s, "localhost:%d" % P), "localhost",
                            "loopback")
        self.assert_origin_saw(n, ["any.test:%d" % P])
        r = self.egress(["--allow", "x.test"], ["true"])
        self.assertNotIn("no --allow pattern", r.stderr)

    def test_the_address_of_an_allowed_name_is_not_allowed(self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--allow", "origin.test", "--resolve",
                              "origin.test:%d:127.0.0.1" % P])
        self.assert_allowed(get(s, "origin.test:%d" % P), "by name")
        self.assert_refused(get(s, "127.0.0.1:%d" % P), "by address",
                            "127.0.0.1:%d is not in the allow list" % P)
        self.assert_refused(connect(s, "127.0.0.1:%d" % P), "CONNECT",
                            "not in the allow list")

    def test_ipv6_literal_origin_and_multi_address_pins(self):
        n = self.origin()
        o6 = bf.PyOrigin(self, host="::1")
        P = n.port
        s = bf.session(self, ["--allow", "[::1]:%d" % o6.port,
                              "--allow", "multi.test",
                              # The first address refuses: the next is
                              # tried, and it is the one checked.
                              "--resolve", "multi.test:%d:127.0.0.2,[::1],"
                              "127.0.0.1" % P])
        r = s.request(b"GET http://[::1]:%d/echo HTTP/1.1\r\nHost: x\r\n"
                      b"Connection: close\r\n\r\n" % o6.port)
        self.assertEqual(r.status, 200, r)
        self.assertIn(b'"Host", "[::1]:%d"' % o6.port, r.body)
        self.assert_refused(get(s, "[::1]:%d" % P), "other port of ::1")
        self.assert_allowed(get(s, "multi.test:%d" % P), "multi.test")

    # ---------------------------------------------------------- guard

    def test_wildcard_never_grants_loopback_in_any_spelling(self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--allow", "*"])
        for auth in ("localhost:%d", "127.0.0.1:%d", "2130706433:%d",
                     "0x7f.1:%d", "127.1:%d", "0177.0.0.1:%d",
                     "[::1]:%d", "[::ffff:127.0.0.1]:%d",
                     "[::ffff:7f00:1]:%d", "0.0.0.0:%d"):
            auth = auth % P
            self.assert_refused(get(s, auth), auth,
                                "loopback|unspecified|own")
        why = get(s, "localhost:%d" % P).header("x-egress-run-reason")
        self.assertIn("--allow localhost", why)
        why = get(s, "2130706433:%d" % P).header("x-egress-run-reason")
        self.assertIn("127.0.0.1", why)   # read as the address it is
        self.assert_refused(connect(s, "localhost:%d" % P), "CONNECT",
                            "loopback")
        self.assert_origin_saw(n, [])

    def test_localhost_and_loopback_only_when_allowed_explicitly(self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--allow", "localhost"])
        self.assert_allowed(get(s, "localhost:%d" % P), "localhost")
        self.assert_refused(get(s, "127.0.0.1:%d" % P), "127.0.0.1")
        s.stop()
        s = bf.session(self, ["--allow", "127.0.0.1"])
        for auth in ("127.0.0.1:%d", "2130706433:%d", "0x7f.1:%d",
                     "127.1:%d"):
            self.assert_allowed(get(s, auth % P), auth)
        self.assert_refused(get(s, "localhost:%d" % P), "localhost by name")
        s.stop()
        # A wildcard lets the name through, the explicit address the
        # address it resolves to.
        s = bf.session(self, ["--allow", "*", "--allow", "127.0.0.1"])
        self.assert_allowed(get(s, "localhost:%d" % P), "localhost")
        # Canonical Host upstream: the address, whatever the spelling.
        self.assertIn("127.0.0.1:%d" % P,
                      [h for _c, _n, h, _r, _s in bf.conn_log(n)])

    def test_numeric_spellings_refused_when_an_unrelated_host_is_allowed(
            self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--allow", "unrelated.test"])
        for auth in ("2130706433:%d", "0x7f.1:%d", "[::ffff:127.0.0.1]:%d",
                     "017700000001:%d", "0x7f000001:%d"):
            self.assert_refused(get(s, auth % P), auth)
        self.assert_origin_saw(n, [])

    def test_the_proxys_own_port_is_refused_even_when_allowed(self):
        lp = free_port()
        s = bf.session(self, ["--listen", "127.0.0.1:%d" % lp, "--allow",
                              "*", "--allow", "127.0.0.0/8", "--allow",
                              "loop.test", "--resolve",
                              "loop.test:%d:127.0.0.1" % lp])
        self.assertEqual(s.port, lp)
        for auth in ("127.0.0.1:%d", "loop.test:%d", "0.0.0.0:%d",
                     "[::ffff:127.0.0.1]:%d"):
            self.assert_refused(get(s, auth % lp, "/"), auth,
                                "own proxy|loop|unspecified")
            self.assert_refused(connect(s, auth % lp), "CONNECT " + auth,
                                "own proxy|loop|unspecified")
        self.assertIn("own proxy", get(s, "127.0.0.1:%d" % lp)
                      .header("x-egress-run-reason"))
        self.assertTrue(s.alive())

    def test_percent_encoding_and_userinfo_in_the_authority_refused(self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--allow", "origin.test", "--resolve",
                              "origin.test:%d:127.0.0.1" % P])
        for auth in ("origin%%2etest:%d", "%%6Frigin.test:%d",
                     "user:pw@origin.test:%d", "user@origin.test:%d",
                     "evil.test@origin.test:%d"):
            auth = auth % P
            r = get(s, auth)
            self.assertIn(r.status, (400, 403), "%s: %r" % (auth, r))
            self.assert_refused(r, auth, status=r.status)
            r = connect(s, auth)
            self.assertIn(r.status, (400, 403), "CONNECT %s: %r" % (auth, r))
        self.assert_origin_saw(n, [])

    # ---------------------------------------------------------- CONNECT

    def test_connect_tunnels_allowed_and_refused(self):
        n = self.origin()
        P = n.port
        s = bf.session(self, ["--allow", "origin.test", "--resolve",
                              "origin.test:%d:127.0.0.1" % P, "--resolve",
                              "denied.test:%d:127.0.0.1" % P])
        rc, out, err = s.curl("-v", "-p", "http://origin.test:%d/hello.txt"
                              % P)
        self.assertEqual((rc, out), (0, HELLO), err)
        self.assertIn("CONNECT origin.test:%d HTTP/1.1" % P, err)
        self.assertRegex(err, r"< HTTP/1.1 200 Connection established")
        rc, out, err = s.curl("-v", "-p", "http://denied.test:%d/hello.txt"
                              % P)
        self.assertEqual(rc, 56, err)
        self.assertIn("CONNECT tunnel failed, response 403", err)
        self.assertRegex(err, r"(?i)< X-Egress-Run-Reason: denied\.test:%d "
                         r"is not in the allow list" % P)
        self.assert_refused(connect(s, "denied.test:%d" % P), "raw CONNECT")
        # The tunnel carried the request unchanged (origin form, its own
        # Host); the refused one never arrived.
        self.assertEqual([(h, r) for _c, _n, h, r, _s in bf.conn_log(n)],
                         [("origin.test:%d" % P, "GET /hello.txt HTTP/1.1")])

    def test_https_through_connect_is_opaque(self):
        ca = self.ca()
        n = self.origin(tls=bf.NamedCA(ca, ("origin.test", "denied.test")))
        T = n.https_port
        out = self.tmp.mkdir("out")
        script = (
            "curl -sS --fail --max-time 15 -v --cacert %(ca)s "
            "-o %(o)s/curl https://origin.test:%(p)d/hello.txt "
            "2>%(o)s/curl.err\n"
            "%(py)s -c 'import sys,requests; r=requests.get(sys.argv[1], "
            "verify=sys.argv[2], timeout=15); r.raise_for_status(); "
            "open(sys.argv[3],\"w\").write(r.text)' "
            "https://origin.test:%(p)d/hello.txt %(ca)s %(o)s/requests\n"
            "curl -sS --max-time 15 --cacert %(ca)s "
            "https://denied.test:%(p)d/hello.txt 2>%(o)s/denied.err\n"
            "echo denied=$?\n" % {"ca": ca.cert, "o": out, "p": T,
                                  "py": PY})
        r = self.egress(["--allow", "origin.test", "--resolve",
                         "origin.test:%d:127.0.0.1" % T, "--resolve",
                         "denied.test:%d:127.0.0.1" % T],
                        ["sh", "-c", script])
        self.assertEqual(r.rc, 0, r)
        with open(os.path.join(out, "curl")) as f:
            self.assertEqual(f.read(), HELLO)
        with open(os.path.join(out, "requests")) as f:
            self.assertEqual(f.read(), HELLO)
        with open(os.path.join(out, "curl.err")) as f:
            err = f.read()
        # The certificate the client checked is nginx's, from TestCA.
        self.assertIn("issuer: CN=%s" % ca.name, err)
        self.assertIn("CONNECT origin.test:%d" % T, err)
        self.assertIn("denied=56", r.stdout)
        with open(os.path.join(out, "denied.err")) as f:
            self.assertIn("403", f.read())
        hosts = [h for _c, _n, h, _r, _s in bf.conn_log(n)]
        self.assertEqual(hosts, ["origin.test:%d" % T] * 2)


if __name__ == "__main__":
    unittest.main()
