"""`egress-run connect HOST PORT` for ssh (issue 4; SPEC §2, §4): a real
ssh, through ProxyCommand, to a key-only sshd the test starts on a
loopback port; allowed and denied; and git clone over ssh with the
bouquet's GIT_SSH_COMMAND keeping the user's own options. The ssh host
name (sshhost.test) resolves nowhere but in egress-run's --resolve pin,
so a session that works went through the proxy.
"""

import hashlib
import os
import shlex
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (EgressTestCase, clean_env, egress_bin,  # noqa
                     free_port)
from chain_fixtures import (AuthSquid, Sshd, connect_wrapper,  # noqa
                            ipv6_loopback, read_audit)

HOST = "sshhost.test"


class SshCase(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.sshd = Sshd(self.tmp.mkdir("sshd"))
        self.addCleanup(self.sshd.stop)
        self.sshd.known_host(HOST)
        self.sshd.known_host("127.0.0.1")
        self.sshd.start()
        self.audit = self.tmp.join("audit.jsonl")
        self.err = self.tmp.join("connect.err")
        self.rcfile = self.tmp.join("connect.rc")
        self.wrapper = connect_wrapper(self.tmp.join("proxycommand.sh"),
                                       self.err, self.rcfile)
        self.pin = "%s:%d:127.0.0.1" % (HOST, self.sshd.port)

    def ssh(self, args, host=HOST, remote="echo remote-$((6*7))"):
        """egress-run ARGS -- ssh (ProxyCommand: our wrapper) host."""
        return self.egress(
            args + ["--audit", self.audit],
            ["ssh"] + self.sshd.ssh_options() +
            ["-o", "ProxyCommand=%s %%h %%p" % self.wrapper,
             "-p", str(self.sshd.port), "%s@%s" % (self.sshd.user, host),
             remote])

    def logins(self):
        return self.sshd.log_text().count("Accepted publickey for ")


class SshThroughConnect(SshCase):

    def test_allowed_name_runs_a_remote_command(self):
        r = self.ssh(["--allow", HOST, "--resolve", self.pin])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "remote-42\n")
        self.assertEqual(self.tmp.read("connect.err"), "")
        self.assertEqual(self.logins(), 1)
        (ev,) = read_audit(self.audit)
        self.assertEqual((ev["event"], ev["door"], ev["host"], ev["port"],
                          ev["decision"]),
                         ("connect", "connect", HOST, self.sshd.port,
                          "allow"))
        self.assertGreater(ev["bytes_up"], 0)
        self.assertGreater(ev["bytes_down"], 0)
        self.assert_no_state_left()

    def test_allowed_address_runs_a_remote_command(self):
        r = self.ssh(["--allow", "127.0.0.1"], host="127.0.0.1",
                     remote="cat /proc/sys/kernel/hostname")
        self.assertEqual(r.rc, 0, r)
        with open("/proc/sys/kernel/hostname") as f:
            self.assertEqual(r.stdout, f.read())
        self.assertEqual(self.logins(), 1)
        self.assertEqual([e["host"] for e in read_audit(self.audit)],
                         ["127.0.0.1"])

    def test_denied_ssh_fails_with_one_line_and_the_proxys_reason(self):
        r = self.ssh(["--allow", "other.test", "--resolve", self.pin])
        self.assertEqual(r.rc, 255, r)     # ssh's own failure status
        self.assertNotIn("remote-42", r.stdout)
        self.assertEqual(self.logins(), 0)
        (ev,) = read_audit(self.audit)
        self.assertEqual((ev["event"], ev["status"]), ("deny", 403))
        lines = self.tmp.read("connect.err").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertTrue(lines[0].startswith("egress-run: "), lines)
        self.assertIn("%s:%d" % (HOST, self.sshd.port), lines[0])
        # The reason is the proxy's (its X-Egress-Run-Reason, as audited).
        self.assertIn("403 " + ev["reason"], lines[0])
        self.assertNotEqual(self.tmp.read("connect.rc").strip(), "0")

    def test_unreachable_port_is_one_line_naming_the_502(self):
        dead = free_port()
        r = self.egress(["--allow", "127.0.0.1"],
                        [self.wrapper, "127.0.0.1", str(dead)])
        self.assertEqual(r.rc, 0, r)       # the wrapper's own status
        lines = self.tmp.read("connect.err").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^egress-run: .*127\.0\.0\.1:%d.* 50[24]"
                         % dead)
        self.assertNotEqual(self.tmp.read("connect.rc").strip(), "0")

    @unittest.skipUnless(ipv6_loopback(), "no ::1 here")
    def test_bulk_both_ways_with_the_proxy_on_ipv6(self):
        # The bouquet names http://[::1]:PORT; connect relays megabytes
        # each way, half-closes included (sha256sum ends on stdin's EOF).
        data = os.urandom(4 << 20)
        path = self.tmp.write("bulk.bin", data)
        ssh = " ".join(shlex.quote(a) for a in
                       ["ssh"] + self.sshd.ssh_options() +
                       ["-o", "ProxyCommand=%s %%h %%p" % self.wrapper,
                        "-p", str(self.sshd.port),
                        "%s@127.0.0.1" % self.sshd.user])
        script = ('echo "$HTTPS_PROXY"; %s cat %s | sha256sum; '
                  'head -c 3000000 %s | %s sha256sum' % (ssh, path, path,
                                                         ssh))
        r = self.egress(["--listen", "[::1]:0", "--allow", "127.0.0.1"],
                        ["/bin/sh", "-c", script])
        self.assertEqual(r.rc, 0, r)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^http://\[::1\]:\d+$")
        self.assertEqual([l.split()[0] for l in lines[1:]],
                         [hashlib.sha256(data).hexdigest(),
                          hashlib.sha256(data[:3000000]).hexdigest()])
        self.assertEqual(self.logins(), 2)
        self.assertEqual(self.tmp.read("connect.err"), "")

    @unittest.skipUnless(ipv6_loopback(), "no ::1 here")
    def test_ipv6_literal_target(self):
        self.sshd.known_host("::1")
        r = self.ssh(["--allow", "[::1]"], host="::1")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "remote-42\n")
        self.assertEqual([(e["host"], e["port"]) for e in
                          read_audit(self.audit)], [("::1", self.sshd.port)])
        r = self.ssh(["--allow", "127.0.0.1"], host="::1")
        self.assertEqual(r.rc, 255, r)
        self.assertRegex(self.tmp.read("connect.err"),
                         r"^egress-run: connect: \[::1\]:%d refused: 403 "
                         % self.sshd.port)
        self.assertEqual(self.logins(), 1)

    def test_connect_outside_a_session_says_what_to_do(self):
        r = subprocess.run([egress_bin(), "connect", HOST, "22"],
                           capture_output=True, text=True, timeout=10,
                           env=clean_env(), stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 125)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("HTTPS_PROXY", r.stderr)


class SshThroughAnUpstream(SshCase):
    """issue 4 meets issue 5: ssh -> egress-run connect -> the built-in
    proxy -> a corporate Squid with basic auth -> sshd. The server speaks
    first, so its banner may come with Squid's 200."""

    def setUp(self):
        super().setUp()
        self.squid = AuthSquid(self.tmp.mkdir("squid"), "alice", "Ssh-pw-9",
                               hosts={HOST: "127.0.0.1"})
        self.addCleanup(self.squid.stop)
        self.squid.start()

    def upstream(self, pw):
        return "http://alice:%s@127.0.0.1:%d" % (pw, self.squid.port)

    def test_ssh_through_a_chained_squid(self):
        r = self.ssh(["--upstream", self.upstream("Ssh-pw-9"), "--allow",
                      HOST])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "remote-42\n")
        self.assertEqual(self.logins(), 1)
        hits = self.squid.wait_logged(
            lambda x: x[1:] == ("CONNECT", "%s:%d" % (HOST, self.sshd.port)))
        self.assertEqual([u for u, _m, _url in hits], ["alice"])
        (ev,) = read_audit(self.audit)
        self.assertEqual(ev["upstream"], "http://alice:***@127.0.0.1:%d"
                         % self.squid.port)

    def test_wrong_upstream_password_is_one_line_naming_it(self):
        r = self.ssh(["--upstream", self.upstream("wrong-pw-1"), "--allow",
                      HOST])
        self.assertEqual(r.rc, 255, r)
        self.assertEqual(self.logins(), 0)
        lines = self.tmp.read("connect.err").splitlines()
        self.assertEqual(len(lines), 1, lines)
        self.assertRegex(lines[0], r"^egress-run: connect: .* 502 upstream "
                         r"proxy http://alice:\*\*\*@.*authentication.*407")
        self.assertNotIn("wrong-pw-1", r.stderr + lines[0])


class GitOverSsh(SshCase):

    def setUp(self):
        super().setUp()
        self.home = self.tmp.mkdir("home")
        self.git_env = {"HOME": self.home, "GIT_CONFIG_NOSYSTEM": "1",
                        "GIT_TERMINAL_PROMPT": "0"}
        env = clean_env(self.git_env)
        work = self.tmp.mkdir("work")
        self.repo = self.tmp.join("srv", "repo.git")
        for cmd in (["git", "init", "-q", "-b", "main", work],
                    ["git", "-C", work, "-c", "user.name=t", "-c",
                     "user.email=t@example.invalid", "commit", "-q",
                     "--allow-empty", "-m", "first commit over ssh"],
                    ["git", "clone", "-q", "--bare", work, self.repo]):
            subprocess.run(cmd, check=True, env=env, capture_output=True,
                           timeout=30)
        # The user's own GIT_SSH_COMMAND: key, known hosts, no config.
        self.user_ssh = "ssh " + " ".join(self.sshd.ssh_options())
        self.url = "ssh://%s@%s:%d%s" % (self.sshd.user, HOST,
                                        self.sshd.port, self.repo)

    def git_clone(self, args, url=None, user_ssh=None):
        dest = self.tmp.join("clone")
        script = ('printf "%%s\\n" "$GIT_SSH_COMMAND" >%s; '
                  'git clone -q "$URL" %s && git -C %s log -1 --format=%%s'
                  % (self.tmp.join("gsc"), dest, dest))
        return self.egress(
            args + ["--audit", self.audit], ["/bin/sh", "-c", script],
            env=clean_env(dict(self.git_env,
                               GIT_SSH_COMMAND=user_ssh or self.user_ssh,
                               URL=url or self.url)))

    def test_git_clone_over_ssh_through_the_bouquets_proxycommand(self):
        r = self.git_clone(["--allow", HOST, "--resolve", self.pin])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "first commit over ssh\n")
        # The user's options survive, after our ProxyCommand.
        gsc = self.tmp.read("gsc").strip()
        self.assertIn("ProxyCommand=", gsc)
        self.assertIn(" connect %h %p", gsc)
        self.assertIn("-i " + self.sshd.client_key, gsc)
        self.assertIn("UserKnownHostsFile=" + self.sshd.known_hosts, gsc)
        self.assertLess(gsc.index("ProxyCommand="), gsc.index("-i "))
        self.assertEqual(self.logins(), 1)
        (ev,) = read_audit(self.audit)
        self.assertEqual((ev["event"], ev["door"], ev["host"], ev["port"]),
                         ("connect", "connect", HOST, self.sshd.port))
        self.assertTrue(os.path.isdir(self.tmp.join("clone", ".git")))

    def test_scp_style_url_with_the_port_in_the_users_ssh_options(self):
        # user@host:path has no port: the user's -o Port=... must reach
        # the ProxyCommand's %p.
        r = self.git_clone(
            ["--allow", HOST, "--resolve", self.pin],
            url="%s@%s:%s" % (self.sshd.user, HOST, self.repo),
            user_ssh=self.user_ssh + " -o Port=%d" % self.sshd.port)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "first commit over ssh\n")
        self.assertEqual([(e["host"], e["port"]) for e in
                          read_audit(self.audit)], [(HOST, self.sshd.port)])

    def test_denied_git_clone_shows_the_proxys_reason(self):
        r = self.git_clone(["--allow", "other.test", "--resolve", self.pin])
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(self.logins(), 0)
        refusals = [l for l in r.stderr.splitlines()
                    if l.startswith("egress-run: connect:")]
        self.assertEqual(len(refusals), 1, r.stderr)
        (ev,) = read_audit(self.audit)
        self.assertEqual(ev["event"], "deny")
        self.assertIn("403 " + ev["reason"], refusals[0])
        self.assertFalse(os.path.exists(self.tmp.join("clone", ".git")))


if __name__ == "__main__":
    unittest.main()
