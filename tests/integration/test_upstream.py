"""Chaining to a corporate upstream proxy (issue 5; SPEC §2, §6): a real
Squid that requires basic authentication, named by --upstream or by
egress-run's own HTTPS_PROXY/HTTP_PROXY (+ NO_PROXY); plain HTTP in
absolute form and CONNECT, as Squid's access log shows them with the user;
a wrong password, an upstream that is down (warning; --fail-closed: 125),
--no-upstream, policy before chaining; microsocks as a socks5h:// and
socks5:// upstream; and the password, which never appears anywhere.

Names: Squid resolves origin.test (and friends) from its own hosts file;
egress-run resolves them only where a --resolve pin says so.
"""

import base64
import os
import re
import sys
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SH_VIA_PROXY, EgressTestCase, clean_env,  # noqa
                     free_port, parse_env_dump)
from chain_fixtures import (AuthSquid, Microsocks, NamedCA,  # noqa
                            client_result, read_audit, sh_client)

USER = "alice"
PW = "Sq-s3cr3t-7f3a9"
# A password that must be percent-encoded in a URL.
ODD_PW = "p@ss:w/rd%Sq-0dd-41c"
NAMES = ("origin.test", "direct.test", "denied.test")


def encoded(pw):
    return urllib.parse.quote(pw, safe="")


def password_forms(user, pw):
    """Every spelling of a password that must never show up."""
    basic = base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()
    return {pw, encoded(pw), basic}


class ChainCase(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.out = self.tmp.mkdir("out")
        self.audit = self.tmp.join("audit.jsonl")
        ca = self.ca()
        self.cacert = ca.cert
        self.origin = self.nginx(
            tls=NamedCA(ca, NAMES),
            files={"hello.txt": "hello via upstream\n",
                   "a.txt": "a\n", "b.txt": "b\n"})
        self.P, self.S = self.origin.port, self.origin.https_port

    def start_squid(self, password=PW, hosts=None):
        hosts = hosts or {n: "127.0.0.1" for n in NAMES}
        sq = AuthSquid(self.tmp.mkdir("squid"), USER, password, hosts)
        self.addCleanup(sq.stop)
        self.corp = sq.start()
        return sq

    def upstream(self, password=PW, scheme="http", port=None):
        return "%s://%s:%s@127.0.0.1:%d" % (scheme, USER, encoded(password),
                                            port or self.corp.port)

    def display(self, scheme="http", port=None, user=USER):
        return "%s://%s:***@127.0.0.1:%d" % (scheme, user,
                                             port or self.corp.port)

    # clients inside COMMAND
    def plain(self, name, host="origin.test", path="hello.txt", opts=""):
        return sh_client(name, self.out, "curl -sS --max-time 15 %s "
                         "http://%s:%d/%s" % (opts, host, self.P, path))

    def tls(self, name, host="origin.test", path="hello.txt", opts=""):
        return sh_client(name, self.out, "curl -sS --max-time 15 %s "
                         "--cacert %s https://%s:%d/%s"
                         % (opts, self.cacert, host, self.S, path))

    def result(self, name):
        return client_result(self.out, name)

    def run_clients(self, args, script, env=None, rc=0):
        r = self.egress(args + ["--audit", self.audit],
                        ["/bin/sh", "-c", SH_VIA_PROXY + script], env=env)
        if rc is not None:
            self.assertEqual(r.rc, rc, r)
        return r

    def assert_ok(self, name, body="hello via upstream\n"):
        self.assertEqual(self.result(name), (0, body, ""), name)

    def squid_saw(self, method, url, n=1):
        """Wait for n of Squid's log lines for this request (it logs when
        a transaction ends); the users they name."""
        hits = self.corp.wait_logged(lambda r: r[1] == method and
                                      r[2] == url, n=n)
        return [u for u, _m, _url in hits]

    def assert_never_shown(self, text, pw=PW, where=""):
        for form in password_forms(USER, pw):
            self.assertNotIn(form, text, "password (%r) in %s"
                             % (form, where))

    def events(self):
        return read_audit(self.audit)


class ChainedThroughSquid(ChainCase):

    def setUp(self):
        super().setUp()
        self.start_squid()

    def check_chained(self):
        self.assert_ok("plain")
        self.assert_ok("tls")
        self.assertEqual(self.squid_saw(
            "GET", "http://origin.test:%d/hello.txt" % self.P), [USER])
        self.assertEqual(self.squid_saw("CONNECT", "origin.test:%d"
                                        % self.S), [USER])
        # ...and both reached the origin.
        log = self.origin.access_log()
        self.assertEqual(log.count("GET /hello.txt "), 2, log)
        ev = {e["door"]: e for e in self.events()}
        self.assertEqual(set(ev), {"http", "connect"})
        for e in ev.values():
            self.assertEqual(e["upstream"], self.display())
            self.assertEqual(e["decision"], "allow")
        self.assertEqual(ev["http"]["status"], 200)

    def test_upstream_flag_chains_plain_http_and_connect(self):
        self.run_clients(["--upstream", self.upstream(), "--allow",
                          "origin.test"],
                         self.plain("plain") + self.tls("tls"))
        self.check_chained()

    def test_proxy_variables_in_egress_runs_environment_chain(self):
        up = self.upstream()
        self.run_clients(["--allow", "origin.test"],
                         self.plain("plain") + self.tls("tls"),
                         env=clean_env({"HTTPS_PROXY": up,
                                        "HTTP_PROXY": up}))
        self.check_chained()

    def test_socks5_door_goes_through_the_upstream_too(self):
        self.run_clients(
            ["--upstream", self.upstream(), "--allow", "origin.test"],
            'hp=${ALL_PROXY#*://}; hp=${hp%/}; ' +
            self.plain("socks", opts='--socks5-hostname "$hp"'))
        self.assert_ok("socks")
        self.assertEqual(self.squid_saw("CONNECT", "origin.test:%d"
                                        % self.P), [USER])
        (ev,) = self.events()
        self.assertEqual((ev["door"], ev["upstream"]),
                         ("socks5", self.display()))

    def test_origin_connections_through_the_upstream_are_reused(self):
        # Two client connections, one after the other: the second request
        # rides the pooled connection to Squid (same client port there).
        self.run_clients(["--upstream", self.upstream(), "--allow",
                          "origin.test"],
                         self.plain("a", path="a.txt") +
                         self.plain("b", path="b.txt"))
        self.assert_ok("a", "a\n")
        self.assert_ok("b", "b\n")
        self.squid_saw("GET", "http://origin.test:%d/b.txt" % self.P)
        a, b = (self.corp.client_ports(x) for x in ("/a.txt", "/b.txt"))
        self.assertEqual((len(a), len(b)), (1, 1))
        self.assertEqual(a, b)

    def test_policy_is_applied_before_chaining(self):
        self.run_clients(["--upstream", self.upstream(), "--allow",
                          "origin.test"],
                         self.plain("np", host="denied.test",
                                    opts="--fail") +
                         self.tls("nt", host="denied.test") +
                         self.plain("ok"))
        self.assertEqual(self.result("np")[0], 22)       # HTTP 403
        rc, _out, err = self.result("nt")
        self.assertEqual(rc, 56, err)
        self.assertIn("403", err)
        self.assert_ok("ok")
        # Squid logged the last request, and never heard of denied.test.
        self.squid_saw("GET", "http://origin.test:%d/hello.txt" % self.P)
        self.assertNotIn("denied.test", self.corp.access_log())
        deny = [e for e in self.events() if e["event"] == "deny"]
        self.assertEqual(sorted(e["door"] for e in deny),
                         ["connect", "http"])

    def test_no_proxy_in_egress_runs_environment_goes_direct(self):
        up = self.upstream()
        self.run_clients(
            ["--allow", "origin.test", "--allow", "direct.test",
             "--resolve", "direct.test:%d:127.0.0.1" % self.P,
             "--resolve", "direct.test:%d:127.0.0.1" % self.S],
            self.plain("dp", host="direct.test") +
            self.tls("dt", host="direct.test") + self.plain("plain") +
            self.tls("tls"),
            env=clean_env({"HTTPS_PROXY": up, "HTTP_PROXY": up,
                           "NO_PROXY": "localhost,direct.test"}))
        for name in ("dp", "dt", "plain", "tls"):
            self.assert_ok(name)
        self.squid_saw("CONNECT", "origin.test:%d" % self.S)
        self.assertNotIn("direct.test", self.corp.access_log())
        self.assertEqual(self.origin.access_log().count("GET /hello.txt "),
                         4)
        ups = {(e["host"], e["door"]): e["upstream"] for e in self.events()}
        self.assertEqual(ups, {("direct.test", "http"): None,
                               ("direct.test", "connect"): None,
                               ("origin.test", "http"): self.display(),
                               ("origin.test", "connect"): self.display()})

    def test_no_upstream_ignores_the_environment(self):
        up = self.upstream()
        pins = ["--resolve", "origin.test:%d:127.0.0.1" % self.P,
                "--resolve", "origin.test:%d:127.0.0.1" % self.S]
        env = clean_env({"HTTPS_PROXY": up, "HTTP_PROXY": up,
                         "ALL_PROXY": up})
        self.run_clients(["--no-upstream", "--allow", "origin.test"] + pins,
                         self.plain("plain") + self.tls("tls"), env=env)
        self.assert_ok("plain")
        self.assert_ok("tls")
        self.assertEqual(self.corp.requests(), [])
        self.assertEqual([e["upstream"] for e in self.events()],
                         [None, None])


class UpstreamFailures(ChainCase):

    def test_wrong_password_on_connect_is_502_naming_upstream_auth(self):
        self.start_squid()
        r = self.run_clients(
            ["--upstream", self.upstream("not-" + PW), "--allow",
             "origin.test"],
            self.tls("t1", opts="-v") + self.tls("t2"))
        rc, _out, err = self.result("t1")
        self.assertEqual(rc, 56, err)
        self.assertIn("< HTTP/1.1 502", err)
        reason = re.search(r"< X-Egress-Run-Reason: (.*)", err)
        self.assertIsNotNone(reason, err)
        self.assertIn("407", reason.group(1))
        self.assertIn("authentication", reason.group(1))
        self.assertIn(self.display(), reason.group(1))
        self.assert_never_shown(err, "not-" + PW, "the 502")
        self.assertEqual(self.result("t2")[0], 56)
        # One line on egress-run's stderr, for two refusals, no password.
        self.assert_only_diagnostics(r.stderr)
        lines = [l for l in r.stderr.splitlines() if "407" in l]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn(self.display(), lines[0])
        self.assert_never_shown(r.stderr, "not-" + PW, "stderr")
        self.assertEqual(self.squid_saw("CONNECT", "origin.test:%d"
                                        % self.S, n=2), [USER, USER])
        self.assertEqual(self.origin.access_log(), "")
        for e in self.events():
            self.assertEqual((e["event"], e["status"]), ("error", 502))

    def test_wrong_password_on_plain_http_is_502_naming_upstream_auth(self):
        self.start_squid()
        r = self.run_clients(
            ["--upstream", self.upstream("not-" + PW), "--allow",
             "origin.test"], self.plain("p", opts="-i"))
        rc, out, _err = self.result("p")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("HTTP/1.1 502 "), out[:200])
        self.assertRegex(out, r"X-Egress-Run-Reason: .*authentication.*407")
        self.assertNotIn("Proxy-Authenticate", out)
        lines = [l for l in r.stderr.splitlines() if "407" in l]
        self.assertEqual(len(lines), 1, r.stderr)

    def test_upstream_down_at_start_warns_and_runs_the_command(self):
        dead = free_port()
        up = "http://%s:%s@127.0.0.1:%d" % (USER, PW, dead)
        r = self.run_clients(["--upstream", up, "--allow", "origin.test"],
                             self.plain("p", opts="-i"))
        self.assert_only_diagnostics(r.stderr)
        warn = [l for l in r.stderr.splitlines()
                if self.display(port=dead) in l]
        self.assertEqual(len(warn), 1, r.stderr)
        self.assertIn("does not accept connections", warn[0])
        self.assert_never_shown(r.stderr, where="stderr")
        # The command ran; its request is told which upstream failed.
        rc, out, _ = self.result("p")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("HTTP/1.1 502 "), out[:200])
        self.assertRegex(out, r"X-Egress-Run-Reason: .*upstream proxy "
                         + re.escape(self.display(port=dead)))
        self.assert_never_shown(out, where="the 502")

    def test_upstream_down_with_fail_closed_is_125_before_the_command(self):
        dead = free_port()
        up = "http://%s:%s@127.0.0.1:%d" % (USER, PW, dead)
        ran = self.tmp.join("ran")
        r = self.egress(["--upstream", up, "--fail-closed"],
                        ["/bin/sh", "-c", "touch " + ran])
        self.assertEqual(r.rc, 125, r)
        self.assertFalse(os.path.exists(ran), "COMMAND ran")
        self.assert_only_diagnostics(r.stderr)
        self.assertIn(self.display(port=dead), r.stderr)
        self.assert_never_shown(r.stderr, where="stderr")
        self.assert_no_state_left()

    def test_pinned_name_is_sent_as_the_pinned_address_on_connect(self):
        # Squid would resolve origin.test to 127.0.0.9, where nothing
        # listens; the pin decides what egress-run asks for.
        self.start_squid(hosts={"origin.test": "127.0.0.9"})
        self.run_clients(["--upstream", self.upstream(), "--allow",
                          "origin.test", "--resolve",
                          "origin.test:%d:127.0.0.1" % self.S],
                         self.tls("tls"))
        self.assert_ok("tls")
        self.assertEqual(self.squid_saw("CONNECT", "127.0.0.1:%d"
                                        % self.S), [USER])

    def test_pinned_name_is_sent_as_the_pinned_address_on_plain_http(self):
        self.start_squid(hosts={"origin.test": "127.0.0.9"})
        self.run_clients(["--upstream", self.upstream(), "--allow",
                          "origin.test", "--resolve",
                          "origin.test:%d:127.0.0.1" % self.P],
                         self.plain("plain", opts="--fail"))
        self.assert_ok("plain")


class PasswordNeverAppears(ChainCase):
    """ODD_PW needs percent-encoding in the URL: Squid accepting it shows
    it was decoded; no spelling of it may appear anywhere."""

    def child_dump(self):
        return ("env >%s; cat /proc/self/environ >%s; "
                % (self.tmp.join("env.txt"), self.tmp.join("environ")))

    def check_child_env(self):
        envtext = self.tmp.read("env.txt")
        self.assertIn("HTTPS_PROXY=", envtext)   # the dump is real
        env = parse_env_dump(envtext)
        self.assertNotIn("MY_PROXY_URL", env)
        self.assertNotIn("MY_PROXY_URL_DECODED", env)
        self.assertEqual(env.get("MY_OTHER"), "kept")
        self.assert_never_shown(envtext, ODD_PW, "the child's env")
        with open(self.tmp.join("environ"), "rb") as f:
            environ = f.read().decode(errors="replace")
        self.assertIn("EGRESS_RUN=1", environ)
        self.assert_never_shown(environ, ODD_PW, "/proc/self/environ")
        # The bouquet does not even name the upstream.
        self.assertNotIn(":%d" % self.corp.port, envtext)

    def test_not_in_stderr_audit_or_child_env_with_upstream_flag(self):
        self.start_squid(ODD_PW)
        up = self.upstream(ODD_PW)
        env = clean_env({"MY_PROXY_URL": up,
                         "MY_PROXY_URL_DECODED": "x " + ODD_PW + " x",
                         "MY_OTHER": "kept"})
        r = self.run_clients(["--upstream", up, "--allow", "origin.test",
                              "-vv"],
                             self.child_dump() + self.plain("plain") +
                             self.tls("tls"), env=env)
        self.assert_ok("plain")
        self.assert_ok("tls")
        self.assertEqual(self.squid_saw(
            "GET", "http://origin.test:%d/hello.txt" % self.P), [USER])
        self.assertIn(self.display(), r.stderr)     # -vv did talk
        self.assert_never_shown(r.stderr, ODD_PW, "stderr at -vv")
        with open(self.audit) as f:
            audit = f.read()
        self.assertIn(self.display(), audit)
        self.assert_never_shown(audit, ODD_PW, "the audit log")
        self.check_child_env()

    def test_not_in_child_env_or_print_env_from_the_environment(self):
        self.start_squid(ODD_PW)
        up = self.upstream(ODD_PW)
        env = clean_env({"HTTPS_PROXY": up, "http_proxy": up,
                         "MY_PROXY_URL": up,
                         "MY_PROXY_URL_DECODED": ODD_PW,
                         "MY_OTHER": "kept"})
        r = self.run_clients(["--allow", "origin.test", "-vv"],
                             self.child_dump() + self.plain("plain") +
                             self.tls("tls"), env=env)
        self.assert_ok("plain")
        self.assert_ok("tls")
        self.assert_never_shown(r.stderr, ODD_PW, "stderr at -vv")
        self.check_child_env()
        p = self.egress(["--print-env", "-vv"], env=env)
        self.assertEqual(p.rc, 0, p)
        self.assertIn("HTTPS_PROXY=", p.stdout)
        self.assertNotIn("MY_PROXY_URL", p.stdout)
        self.assertNotIn(":%d" % self.corp.port, p.stdout)
        self.assert_never_shown(p.stdout + p.stderr, ODD_PW, "--print-env")

    def test_not_in_egress_runs_own_command_line(self):
        self.start_squid(ODD_PW)
        self.run_clients(["--upstream", self.upstream(ODD_PW)],
                         "tr '\\0' ' ' </proc/$PPID/cmdline >%s; "
                         % self.tmp.join("cmdline"))
        cmdline = self.tmp.read("cmdline")
        self.assertIn("--upstream", cmdline)
        self.assert_never_shown(cmdline, ODD_PW, "egress-run's argv")


class WithAnExternalProxy(ChainCase):
    """--external: the external proxy owns its own upstream; egress-run
    does not chain (issue 5)."""

    def test_external_proxy_is_used_and_the_upstream_is_not(self):
        self.start_squid()
        ext = self.squid(start=False)       # harness Squid, no auth
        up = self.upstream()
        r = self.run_clients(["--external", ext.external_command()],
                             self.plain("p", host="127.0.0.1"),
                             env=clean_env({"HTTPS_PROXY": up,
                                            "HTTP_PROXY": up}))
        self.assert_ok("p")
        self.assertIn("GET http://127.0.0.1:%d/hello.txt" % self.P,
                      ext.access_log())
        self.assertEqual(self.corp.requests(), [])
        self.assert_never_shown(r.stderr)

    def test_external_says_at_v_that_it_does_not_chain(self):
        self.start_squid()
        ext = self.squid(start=False)
        r = self.egress(["--external", ext.external_command(), "--upstream",
                         self.upstream(), "-v"], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assert_never_shown(r.stderr)
        self.assertRegex(r.stderr, r"(?im)^egress-run: .*not chaining.*"
                         r"upstream")

    def test_external_still_keeps_the_password_from_the_child(self):
        self.start_squid()
        ext = self.squid(start=False)
        up = self.upstream()
        self.run_clients(["--external", ext.external_command()],
                         "env >%s; " % self.tmp.join("env.txt"),
                         env=clean_env({"HTTPS_PROXY": up,
                                        "MY_PROXY_URL": up}))
        envtext = self.tmp.read("env.txt")
        self.assertIn("EGRESS_RUN=1", envtext)
        self.assert_never_shown(envtext, where="the child's env")


class SocksUpstream(ChainCase):
    """microsocks with a user and password; its outgoing connections come
    from 127.0.0.2, so nginx's log tells what went through it."""

    MS_USER = "bob"
    MS_PW = "Ms-s3cr3t-5e1d"

    def setUp(self):
        super().setUp()
        self.ms = Microsocks(self.tmp.mkdir("ms"), self.MS_USER, self.MS_PW)
        self.addCleanup(self.ms.stop)
        self.ms.start()

    def socks_upstream(self, scheme, pw=None):
        return "%s://%s:%s@127.0.0.1:%d" % (scheme, self.MS_USER,
                                            pw or self.MS_PW, self.ms.port)

    def via_ms(self):
        return [l for l in self.origin.access_log().splitlines()
                if l.startswith("127.0.0.2 ")]

    def test_socks5h_upstream_carries_plain_connect_and_socks(self):
        r = self.run_clients(
            ["--upstream", self.socks_upstream("socks5h"), "--allow",
             "localhost", "-vv"],
            'hp=${ALL_PROXY#*://}; hp=${hp%/}; ' +
            self.plain("plain", host="localhost") +
            self.plain("tunnel", host="localhost", opts="-p") +
            self.plain("socks", host="localhost",
                       opts='--socks5-hostname "$hp"'))
        for name in ("plain", "tunnel", "socks"):
            self.assert_ok(name)
        self.assertEqual(len(self.via_ms()), 3, self.origin.access_log())
        disp = self.display("socks5h", self.ms.port, self.MS_USER)
        self.assertEqual(sorted((e["door"], e["upstream"])
                                for e in self.events()),
                         [("connect", disp), ("http", disp),
                          ("socks5", disp)])
        for text in (r.stderr, self.tmp.read("audit.jsonl")):
            self.assertNotIn(self.MS_PW, text)

    def test_wrong_socks_password_is_502_naming_the_upstream(self):
        self.run_clients(
            ["--upstream", self.socks_upstream("socks5h", "nope-x"),
             "--allow", "localhost"],
            self.plain("plain", host="localhost", opts="-i"))
        rc, out, _ = self.result("plain")
        self.assertEqual(rc, 0)
        self.assertTrue(out.startswith("HTTP/1.1 502 "), out[:200])
        self.assertRegex(out, r"X-Egress-Run-Reason: upstream proxy "
                         + re.escape(self.display("socks5h", self.ms.port,
                                                  self.MS_USER)))
        self.assertNotIn("nope-x", out)
        self.assertEqual(self.via_ms(), [])

    def test_socks5h_resolves_there_socks5_resolves_here_and_guards(self):
        # No --allow: the default never grants loopback. socks5h: the
        # upstream resolves localhost (our guard is for direct
        # connections); socks5: egress-run resolves, and the guard refuses.
        self.run_clients(["--upstream", self.socks_upstream("socks5h")],
                         self.plain("h", host="localhost"))
        self.assert_ok("h")
        self.run_clients(["--upstream", self.socks_upstream("socks5")],
                         self.plain("s", host="localhost", opts="--fail"))
        self.assertEqual(self.result("s")[0], 22)
        self.assertEqual(len(self.via_ms()), 1)
        h, s = self.events()
        self.assertEqual((h["event"], h["upstream"]),
                         ("request", self.display("socks5h", self.ms.port,
                                                  self.MS_USER)))
        self.assertEqual((s["event"], s["status"]), ("deny", 403))
        self.assertIn("loopback", s["reason"])
        # With localhost allowed, socks5 works (by the address we found).
        self.run_clients(["--upstream", self.socks_upstream("socks5"),
                          "--allow", "localhost"],
                         self.plain("s2", host="localhost"))
        self.assert_ok("s2")
        self.assertEqual(len(self.via_ms()), 2)

    def test_a_pin_decides_what_is_sent_to_a_socks5h_upstream(self):
        # microsocks cannot resolve origin.test: only the pinned address,
        # sent in its place, gets there.
        up = self.socks_upstream("socks5h")
        self.run_clients(["--upstream", up, "--allow", "origin.test"],
                         self.plain("nopin", opts="--fail"))
        self.assertNotEqual(self.result("nopin")[0], 0)
        self.run_clients(["--upstream", up, "--allow", "origin.test",
                          "--resolve", "origin.test:%d:127.0.0.1" % self.P,
                          "--resolve", "origin.test:%d:127.0.0.1" % self.S],
                         self.plain("pin") + self.tls("tls"))
        self.assert_ok("pin")
        self.assert_ok("tls")
        self.assertEqual(len(self.via_ms()), 2)


if __name__ == "__main__":
    unittest.main()
