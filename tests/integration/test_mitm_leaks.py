"""No secret value anywhere egress-run writes (issue 6, SPEC §7): one busy
run with every kind of binding (from the environment, inline, short,
custom header) doing every kind of request (intercepted, placeholders in
headers and bodies, plain HTTP in clear, an unbound host, an origin whose
certificate fails, a Host mismatch), at -vv, with an audit file and then
with the audit on stderr. The command itself copies everything in the state
directory while it runs (found through dirname $SSL_CERT_FILE) and
egress-run's /proc cmdline and status. A grep over all of it finds no
value, while the origins did receive each one (so the run did inject).

Then the same user as egress-run (nobody, not root): the agent cannot read
egress-run's environment or memory through /proc (egress-run is not
dumpable, so no core file either).
"""

import os
import subprocess
import unittest

import builtin_fixtures as bf
import harness as h
import mitm_fixtures as mf


class NoValueAnywhere(mf.MitmCase):

    def setUp(self):
        super().setUp()
        self.n = self.echo_nginx()
        self.sink_ = self.sink(names=("api.test", "short.test"))
        self.bad = self.sink(cert=self.self_signed("bad.test"))
        self.values = {
            "MYKEY": mf.new_secret(),
            "INLINE": mf.new_secret("il-"),
            "SHORT": "pw" + mf.new_secret("", 7),         # 9 bytes
            "HDRKEY": mf.new_secret("hk_"),
        }
        self.env = h.clean_env({
            "MYKEY": self.values["MYKEY"], "SHORT": self.values["SHORT"],
            "HDRKEY": self.values["HDRKEY"],
            "ALSO_MYKEY": "x:" + self.values["MYKEY"]})
        self.out = self.tmp.mkdir("out")
        S = self.n.https_port
        self.args = (
            ["-vv", "--upstream-ca", self.testca.cert,
             "--secret", "MYKEY:api.test",
             "--secret", "INLINE=%s:other.test" % self.values["INLINE"],
             "--secret", "SHORT:short.test",
             "--secret", "HDRKEY:api.test:X-Api-Key",
             "--resolve", "api.test:%d:127.0.0.1" % S,
             "--resolve", "other.test:%d:127.0.0.1" % S,
             "--resolve", "plain.test:%d:127.0.0.1" % S,
             "--resolve", "short.test:%d:127.0.0.1" % self.sink_.port,
             "--resolve", "bad.test:%d:127.0.0.1" % self.bad.port,
             "--resolve", "web.test:%d:127.0.0.1" % self.n.port,
             "--secret", "WEBKEY=%s:web.test" % mf.new_secret("wk-"),
             "--secret", "BADKEY=%s:bad.test" % mf.new_secret("bk-")])

    def script(self, tag):
        o = os.path.join(self.out, tag)
        os.makedirs(o, exist_ok=True)
        S, Q = self.n.https_port, self.sink_.port
        c = "curl -sS --max-time 15 "
        return h.SH_VIA_PROXY + "\n".join([
            'st="$(dirname "$SSL_CERT_FILE")"',
            'ls -la "$st" > %s/state.ls' % o,
            'cat /proc/$PPID/cmdline > %s/cmdline' % o,
            'cat /proc/$PPID/status > %s/status' % o,
            'env > %s/env' % o,
            # intercepted, placeholders in headers, both bindings
            c + '-H "X-Other: $MYKEY $HDRKEY" -H "Authorization: Bearer '
            '$MYKEY" https://api.test:%d/fixed' % S,
            # inline binding, and a placeholder of another binding
            c + '-H "X-Other: $MYKEY" https://other.test:%d/fixed' % S,
            # unbound, tunnelled untouched
            c + '-H "X-Other: $INLINE" https://plain.test:%d/fixed' % S,
            # a short value, in a re-framed body
            'printf "a%%sb%%sc" "$SHORT" "$SHORT" > %s/body' % o,
            c + '--data-binary @%s/body https://short.test:%d/up' % (o, Q),
            # plain HTTP: the secret goes in clear
            c + 'http://web.test:%d/fixed' % self.n.port,
            # certificate failure; a Host mismatch
            c + 'https://bad.test:%d/x' % self.bad.port,
            c + '-H "Host: other.test:%d" https://api.test:%d/fixed'
            % (S, S),
            # the state directory as it is now, every file in it
            'cp -r "$st" %s/state' % o,
            'echo done'])

    def gather(self, tag, r, audit=None):
        o = os.path.join(self.out, tag)
        texts = {"stdout": r.stdout, "stderr": r.stderr}
        if audit is not None:
            with open(audit) as f:
                texts["audit"] = f.read()
        return texts, [o]

    def check_run(self, tag, r, audit=None):
        self.assertEqual(r.rc, 0, r)
        self.assertIn("done", r.stdout)
        texts, paths = self.gather(tag, r, audit)
        o = os.path.join(self.out, tag)
        # The sweep saw what it should: the CA, the bundle, the cmdline.
        state = os.listdir(os.path.join(o, "state"))
        self.assertIn("egress-run-ca.pem", state)
        with open(os.path.join(o, "env")) as f:
            bundle = h.parse_env_dump(f.read())["SSL_CERT_FILE"]
        self.assertIn(os.path.basename(bundle), state)
        with open(os.path.join(o, "cmdline"), "rb") as f:
            self.assertIn(b"INLINE=", f.read())
        for name, v in self.values.items():
            self.assertEqual(mf.leaks(v, texts, paths), [],
                             "%s's value leaked" % name)
        # Nothing of the run is left behind.
        self.assert_no_state_left()

    def check_origins(self):
        log = mf.header_log(self.n, 4)
        by_host = {}
        for x in log:
            by_host.setdefault(x["host"], []).append(x)
        v = self.values
        api = by_host["api.test"][0]
        self.assertEqual((api["auth"], api["apikey"], api["other"]),
                         ("Bearer " + v["MYKEY"], v["HDRKEY"],
                          "%s %s" % (v["MYKEY"], v["HDRKEY"])))
        self.assertEqual(by_host["other.test"][0]["auth"],
                         "Bearer " + v["INLINE"])
        self.assertIn("EGRESSRUN", by_host["other.test"][0]["other"])
        self.assertIn("EGRESSRUN", by_host["plain.test"][0]["other"])
        self.assertEqual(len(by_host["api.test"]), 1, log)   # not the 421
        (up,) = [x for x in self.sink_.requests() if x["path"] == "/up"]
        self.assertEqual(up["body"], ("a%sb%sc" % (v["SHORT"], v["SHORT"]))
                         .encode())
        self.assertEqual(self.bad.requests(), [])

    def test_grep_every_output_for_values(self):
        audit = self.audit_path()
        r = self.egress(self.args + ["--audit", audit],
                        ["sh", "-c", self.script("file")], env=self.env)
        self.check_run("file", r, audit)
        self.check_origins()
        events = bf.read_audit(audit)
        self.assertTrue(any(e.get("secret") == "SHORT" for e in events))
        self.assertTrue(any(e.get("status") == 502 for e in events),
                        (r, events))
        self.assertTrue(any(e.get("status") == 421 for e in events))
        # and the audit on stderr
        r = self.egress(self.args + ["--audit", "-"],
                        ["sh", "-c", self.script("stderr")], env=self.env)
        self.check_run("stderr", r)
        self.assertIn('"secret":"MYKEY"', r.stderr)


class NotDumpable(mf.MitmCase):
    """egress-run as an ordinary user: what its agent (the same user) can
    see of it through /proc."""

    def test_same_user_agent_cannot_read_egress_run_memory(self):
        n = self.echo_nginx()
        value = mf.new_secret()
        for d in (self.tmp.path, self.state_tmp):
            os.chown(d, 65534, 65534)
        out = self.tmp.mkdir("out", mode=0o777)
        ca = self.tmp.join("testca.pem")
        with open(self.testca.cert) as f, open(ca, "w") as g:
            g.write(f.read())
        os.chmod(ca, 0o644)
        script = (h.SH_VIA_PROXY +
                  'cat /proc/$PPID/environ > %(o)s/environ 2>%(o)s/e.err;'
                  ' echo $? > %(o)s/e.rc; '
                  'head -c 1 /proc/$PPID/mem > /dev/null 2>%(o)s/m.err; '
                  'echo $? > %(o)s/m.rc; '
                  'stat -c %%U /proc/$PPID/environ > %(o)s/owner; '
                  'cat /proc/$PPID/status /proc/$PPID/cmdline > '
                  '%(o)s/status; id -u > %(o)s/uid; '
                  'curl -sS --max-time 15 -o /dev/null '
                  'https://api.test:%(p)d/fixed' % {"o": out,
                                                     "p": n.https_port})
        env = h.clean_env({"MYKEY": value, "TMPDIR": self.state_tmp,
                           "HOME": self.tmp.path})
        argv = (["setpriv", "--reuid=65534", "--regid=65534",
                 "--clear-groups", "--", h.egress_bin(),
                 "--upstream-ca", ca, "--secret", "MYKEY:api.test"] +
                mf.pins(n.https_port) + ["--", "sh", "-c", script])
        p = subprocess.run(argv, env=env, capture_output=True, timeout=60,
                           cwd=self.tmp.path)
        self.assertEqual(p.returncode, 0, p)

        def read(name):
            with open(os.path.join(out, name), errors="replace") as f:
                return f.read().strip()
        self.assertEqual(read("uid"), "65534")
        self.assertNotEqual(read("e.rc"), "0", "environ was readable")
        self.assertIn("Permission denied", read("e.err"))
        self.assertNotEqual(read("m.rc"), "0", "mem was readable")
        self.assertEqual(read("owner"), "root")      # not dumpable
        self.assertNotIn(value, read("environ"))
        self.assertNotIn(value, read("status"))
        (rec,) = mf.header_log(n, 1)
        self.assertEqual(rec["auth"], "Bearer " + value)
        self.assertNotIn(value, p.stderr.decode() + p.stdout.decode())


if __name__ == "__main__":
    unittest.main()
