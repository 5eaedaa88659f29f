"""--isolate without privileges, and without user namespaces (issue 10).

  - As user nobody (setpriv): the proxy works from inside, bypasses fail
    at once, --host-port forwards, DNS fails fast, COMMAND keeps uid and
    gid 65534 (not root) and files it makes belong to nobody on the host;
    nothing is left behind.
  - User namespaces switched off (sysctl user.max_user_namespaces=0, root
    only, restored even on failure; or the same limit inside a private
    user namespace, which needs no root and touches nothing else):
    egress-run warns naming the sysctl and runs COMMAND with proxy
    variables only (the bypass then works); with --fail-closed it exits
    125 and COMMAND never runs.
"""

import os
import re
import unittest

import builtin_fixtures as bf
import harness as h
import isolate_fixtures as iso

from isolate_fixtures import attempt, py

HELLO = "hello from the host\n"
# Directories nobody may search (root's PATH may hold ones it may not,
# which turns "not found" into "permission denied", 126, as env(1) does).
NOBODY_PATH = "/usr/local/bin:/usr/bin:/bin"
REFUSED = r"Connection refused|Couldn't connect|ConnectionRefusedError"


class AsNobody(iso.IsolateCase):

    def setUp(self):
        super().setUp()
        self.nobody = iso.Nobody(self)
        self.n = self.nginx(files={"hello.txt": HELLO})
        self.audit = self.nobody.out + "/audit.jsonl"

    def test_core_checks_as_nobody(self):
        N = self.n.port
        made = self.nobody.out + "/made-inside"
        r, res = self.attempts(
            ["--isolate", "--fail-closed", "--audit", self.audit,
             "--allow", "origin.test", "--resolve",
             "origin.test:%d:127.0.0.1" % N, "--host-port", "7777:%d" % N],
            [attempt("via_proxy", ["curl", "-sS", "--fail", "--max-time",
                                   "10", "http://origin.test:%d/hello.txt"
                                   % N]),
             attempt("noproxy", ["curl", "-sS", "--max-time", "10",
                                 "--noproxy", "*",
                                 "http://127.0.0.1:%d/hello.txt" % N]),
             attempt("socket", py(iso.PY_SOCKET, "127.0.0.1", N,
                                  "/hello.txt")),
             attempt("forward", ["curl", "-sS", "--fail", "--max-time", "10",
                                 "--noproxy", "*",
                                 "http://127.0.0.1:7777/hello.txt"]),
             attempt("dns", ["getent", "hosts", "example.com"]),
             attempt("id", ["sh", "-c", "id -u; id -g; id -G; "
                            "cat /proc/self/uid_map /proc/self/gid_map; "
                            "touch " + made])],
            prefix=self.nobody.prefix, tmpdir=self.nobody.tmpdir,
            outdir=self.nobody.out)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("cannot isolate", r.stderr)
        self.assert_works(res, "via_proxy", HELLO.strip())
        self.assert_fails_fast(res, "noproxy", REFUSED)
        self.assert_fails_fast(res, "socket", REFUSED)
        self.assert_works(res, "forward", HELLO.strip())
        self.assert_fails_fast(res, "dns")
        self.assert_works(res, "id")
        lines = res["id"]["out"].split("\n")
        self.assertEqual(lines[:3], ["65534", "65534", "65534"],
                         res["id"])
        self.assertEqual(lines[3].split(), ["65534", "65534", "1"])
        self.assertEqual(lines[4].split(), ["65534", "65534", "1"])
        st = os.stat(made)
        self.assertEqual((st.st_uid, st.st_gid), (iso.NOBODY, iso.NOBODY))
        ev = [(e["door"], e["host"]) for e in bf.read_audit(self.audit)]
        self.assertEqual(sorted(ev), [("forward", "127.0.0.1"),
                                      ("http", "origin.test")])
        self.assertEqual(self.n.access_log().count("GET /hello.txt"), 2)
        self.nobody.assert_no_state_left(self)

    def test_another_uid_maps_to_itself_and_root_is_not_in_there(self):
        # nobody's 65534 is also the kernel's overflow id: a uid that is
        # not tells "mapped to itself" from "not mapped". Root's files
        # show as the overflow id: COMMAND has no root inside.
        other = iso.Nobody(self, uid=4242)
        made = other.out + "/made"
        r = iso.run_wrapped(other.prefix, ["--isolate", "--fail-closed"],
                            ["sh", "-c", "id -u; id -g; stat -c %%u:%%g "
                             "/etc/passwd; touch %s" % made],
                            tmpdir=other.tmpdir,
                            env=h.clean_env({"PATH": NOBODY_PATH}))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout.split(), ["4242", "4242", "65534:65534"])
        st = os.stat(made)
        self.assertEqual((st.st_uid, st.st_gid), (4242, 4242))
        other.assert_no_state_left(self)

    def test_nobody_gets_the_same_exit_statuses(self):
        for cmd, want in ((["sh", "-c", "exit 42"], 42),
                          (["sh", "-c", "kill -TERM $$"], 143),
                          (["egress-it-no-such-command"], 127)):
            with self.subTest(cmd=cmd):
                r = iso.run_wrapped(self.nobody.prefix, ["--isolate",
                                                         "--fail-closed"],
                                    cmd, tmpdir=self.nobody.tmpdir,
                                    env=h.clean_env({"PATH": NOBODY_PATH}))
                self.assertEqual(r.rc, want, r)
        self.nobody.assert_no_state_left(self)


class Fallback(iso.IsolateCase):
    """User namespaces unavailable: warn and run env-only, or stop."""

    needs_userns = False
    SYSCTL = re.compile(r"^egress-run: .*cannot isolate: .*"
                        r"user\.max_user_namespaces=0.*$", re.M)

    def setUp(self):
        super().setUp()
        self.n = self.nginx(files={"hello.txt": HELLO})

    def bypass_cmd(self):
        # Prints the proxy the bouquet names, then bypasses it.
        return ["sh", "-c", 'echo "proxy=$HTTP_PROXY"; exec curl -sS '
                '--max-time 10 --noproxy "*" http://127.0.0.1:%d/hello.txt'
                % self.n.port]

    def check(self, fallback, closed, marker):
        # Warned, naming the sysctl; ran env-only: the bypass works and
        # the bouquet still names the proxy.
        self.assertEqual(fallback.rc, 0, fallback)
        self.assertRegex(fallback.stderr, self.SYSCTL)
        self.assertIn("HELLO".lower(), fallback.stdout.lower())
        self.assertRegex(fallback.stdout, r"proxy=http://127\.0\.0\.1:\d+")
        self.assert_only_diagnostics(fallback.stderr)
        # --fail-closed: 125, the same cause, COMMAND never ran.
        self.assertEqual(closed.rc, 125, closed)
        self.assertRegex(closed.stderr, self.SYSCTL)
        self.assertFalse(os.path.exists(marker), "COMMAND ran")

    def test_sysctl_switched_off_warns_and_falls_back_or_exits_125(self):
        marker = self.tmp.join("ran")
        off = iso.userns_switched_off(self)   # skips unless root
        # Both runs inside the window, nothing else: the sysctl is the
        # whole host's.
        with off:
            fallback = self.egress(["--isolate"], self.bypass_cmd())
            closed = self.egress(["--isolate", "--fail-closed"],
                                 ["touch", marker])
        with open(iso.USERNS_SYSCTL) as f:
            self.assertEqual(f.read().strip(), off.old)
        self.check(fallback, closed, marker)
        self.assert_no_state_left()

    def test_the_same_limit_in_a_private_user_namespace(self):
        # An equivalent that needs no root and that no other process
        # sees: the per-namespace limit, set to 0 in a namespace of its
        # own, in which egress-run runs.
        if not iso.userns_ok():
            self.skipTest("no user namespaces here at all")
        marker = self.tmp.join("ran")
        prefix = iso.nested_userns_off_prefix()
        fallback = iso.run_wrapped(prefix, ["--isolate"], self.bypass_cmd(),
                                   tmpdir=self.state_tmp)
        closed = iso.run_wrapped(prefix, ["--isolate", "--fail-closed"],
                                 ["touch", marker], tmpdir=self.state_tmp)
        self.check(fallback, closed, marker)
        self.assert_no_state_left()

    # Bug (launcher/session.c, plan_isolation): when COMMAND ends up not
    # isolated, --host-port is dropped without a word -- and COMMAND's
    # 127.0.0.1:7777 is then the host's port 7777, not the one the user
    # named. Proposed fix: /tmp/isolate-session-diagnostics.diff (warn,
    # naming --host-port).
    def test_a_fallback_says_that_host_port_is_not_forwarded(self):
        if not iso.userns_ok():
            self.skipTest("no user namespaces here at all")
        r = iso.run_wrapped(iso.nested_userns_off_prefix(),
                            ["--isolate", "--host-port",
                             "7777:%d" % self.n.port], ["true"],
                            tmpdir=self.state_tmp)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stderr, self.SYSCTL)
        self.assertRegex(r.stderr, r"(?m)^egress-run: .*--host-port")

    # Same bug, without --isolate at all (its help says "under --isolate").
    def test_host_port_without_isolate_is_not_silently_ignored(self):
        r = self.egress(["--host-port", "7777:%d" % self.n.port], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stderr, r"(?m)^egress-run: .*--host-port")

    def test_isolate_with_an_external_proxy_is_not_isolation(self):
        # --isolate serves the built-in proxy's listener only: with an
        # external proxy it says so (and stops with --fail-closed).
        marker = self.tmp.join("ran")
        port, _p = self.listener()
        r = self.egress(["--isolate", "--external-addr",
                         "127.0.0.1:%d" % port], self.bypass_cmd())
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stderr, r"egress-run: .*--isolate.*built-in")
        closed = self.egress(["--isolate", "--fail-closed",
                              "--external-addr", "127.0.0.1:%d" % port],
                             ["touch", marker])
        self.assertEqual(closed.rc, 125, closed)
        self.assertFalse(os.path.exists(marker))


if __name__ == "__main__":
    unittest.main()
