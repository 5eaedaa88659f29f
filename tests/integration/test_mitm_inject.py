"""Secret injection (issue 6, SPEC §7, §8) seen from both ends: what the
origin received (nginx over TLS records the headers in a JSON access log;
a strict python sink keeps bodies) and what the child holds (its
environment, /proc/self/environ, egress-run's /proc/PID/cmdline read while
the command runs).

  - KEY:host sets "Authorization: Bearer <value>", replacing the client's;
    KEY:host:X-Api-Key sets that header with the bare value; KEY=value:host
    (inline) works and leaves no value in egress-run's cmdline; the config
    file's "secrets" key too.
  - the child's KEY and every other variable that held the value hold the
    placeholder; placeholders in other header values are replaced for the
    bound host only.
  - other hosts (tunnelled untouched, or intercepted for another binding)
    get placeholders byte for byte; a redirect to another host carries
    nothing; --no-mitm keeps the origin's certificate and injects only into
    plain HTTP, which gets the header with an audit note that it went in
    clear.
  - audit events of intercepted requests: mitm true, secret = the name.
  - bad specs are refused naming the spec, never the value.
"""

import json
import os
import unittest

import builtin_fixtures as bf
import harness as h
import mitm_fixtures as mf
from chain_fixtures import client_result, sh_client


class Injection(mf.MitmCase):

    def setUp(self):
        super().setUp()
        self.value = mf.new_secret()
        self.n = self.echo_nginx()
        self.S = self.n.https_port
        self.out = self.tmp.mkdir("out")
        self.env = h.clean_env({"MYKEY": self.value})

    def base(self, *secrets):
        a = ["--upstream-ca", self.testca.cert] + mf.pins(self.S)
        for s in secrets:
            a += ["--secret", s]
        return a

    def url(self, path="/echo", host="api.test"):
        return "https://%s:%d%s" % (host, self.S, path)

    def run_sh(self, args, script, env=None):
        return self.egress(args, ["sh", "-c", h.SH_VIA_PROXY + script],
                           env=self.env if env is None else env)

    def test_default_header_replaces_the_clients_and_header_placeholders(
            self):
        audit = self.audit_path()
        r = self.run_sh(self.base("MYKEY:api.test") + ["--audit", audit],
                        'curl -sS --max-time 15 -H "Authorization: Bearer '
                        'mine" -H "X-Other: prefix-$MYKEY-suffix" %s; '
                        'echo; '
                        'curl -sS --max-time 15 -H "authorization: token '
                        '$MYKEY" %s' % (self.url(), self.url()))
        self.assertEqual(r.rc, 0, r)
        log = mf.header_log(self.n, 2)
        self.assertEqual(len(log), 2, log)
        for rec in log:
            self.assertEqual(rec["auth"], "Bearer " + self.value)
        self.assertEqual(log[0]["other"], "prefix-%s-suffix" % self.value)
        events = bf.read_audit(audit)
        reqs = [e for e in events if e["event"] == "request"]
        self.assertEqual(len(reqs), 2, events)
        for e in reqs:
            self.assertEqual((e["host"], e["mitm"], e["secret"], e["door"],
                              e["status"], e["path"]),
                             ("api.test", True, "MYKEY", "connect", 200,
                              "/echo"))
        conns = [e for e in events if e["event"] == "connect"]
        self.assertTrue(conns and all(e["mitm"] for e in conns), events)
        with open(audit) as f:
            self.assertNotIn(self.value, f.read())
        self.assertNotIn(self.value, r.stderr)

    def test_two_placeholders_in_one_header_value(self):
        r = self.run_sh(self.base("MYKEY:api.test"),
                        'curl -sS --max-time 15 -H "X-Other: $MYKEY,'
                        '$MYKEY" %s' % self.url())
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(mf.header_log(self.n, 1)[0]["other"],
                         "%s,%s" % (self.value, self.value))

    def test_custom_header_form(self):
        r = self.run_sh(self.base("MYKEY:api.test:X-Api-Key"),
                        'curl -sS --max-time 15 -H "X-Api-Key: junk" '
                        '-H "Authorization: token $MYKEY" %s' % self.url())
        self.assertEqual(r.rc, 0, r)
        (rec,) = mf.header_log(self.n, 1)
        self.assertEqual(rec["apikey"], self.value)     # bare, replaced
        self.assertEqual(rec["auth"], "token " + self.value)

    def test_inline_form_value_leaves_argv_and_env(self):
        env = h.clean_env({"ALSO": "x" + self.value + "y"})
        script = ('tr "\\0" "\\n" < /proc/$PPID/cmdline > %(o)s/cmdline; '
                  'env > %(o)s/env; '
                  'tr "\\0" "\\n" < /proc/self/environ > %(o)s/environ; '
                  'curl -sS --max-time 15 -o /dev/null %(u)s; '
                  'sleep 0.2' % {"o": self.out, "u": self.url()})
        r = self.run_sh(self.base("MYKEY=%s:api.test" % self.value),
                        script, env=env)
        self.assertEqual(r.rc, 0, r)
        with open(os.path.join(self.out, "cmdline")) as f:
            cmdline = f.read()
        self.assertIn("--secret", cmdline)
        self.assertIn("MYKEY=", cmdline)
        self.assertNotIn(self.value, cmdline)
        self.assertNotIn(self.value[8:20], cmdline)
        for name in ("env", "environ"):
            with open(os.path.join(self.out, name)) as f:
                text = f.read()
            self.assertNotIn(self.value, text, name)
            d = h.parse_env_dump(text)
            self.assertIn("EGRESSRUN", d["MYKEY"])
            self.assertEqual(d["ALSO"], "x" + d["MYKEY"] + "y")
        (rec,) = mf.header_log(self.n, 1)
        self.assertEqual(rec["auth"], "Bearer " + self.value)

    def test_child_environment_holds_placeholders_only(self):
        env = h.clean_env({
            "MYKEY": self.value,
            "DATABASE_URL": "https://user:%s@db.example/x" % self.value,
            "COPY": self.value,
            "UNRELATED": "plain"})
        r = self.run_sh(self.base("MYKEY:api.test"),
                        'env > %(o)s/env; tr "\\0" "\\n" < /proc/self/environ'
                        ' > %(o)s/environ; sh -c env > %(o)s/grandchild'
                        % {"o": self.out}, env=env)
        self.assertEqual(r.rc, 0, r)
        for name in ("env", "environ", "grandchild"):
            with open(os.path.join(self.out, name)) as f:
                text = f.read()
            self.assertNotIn(self.value, text, name)
            d = h.parse_env_dump(text)
            ph = d["MYKEY"]
            self.assertNotEqual(ph, self.value)
            self.assertEqual(len(ph), len(self.value))
            self.assertTrue(ph.startswith("sk-test-EGRESSRUN"), ph)
            self.assertEqual(d["COPY"], ph)
            self.assertEqual(d["DATABASE_URL"],
                             "https://user:%s@db.example/x" % ph)
            self.assertEqual(d["UNRELATED"], "plain")

    def test_config_file_secrets(self):
        cfg = self.tmp.write("cfg.json", json.dumps({
            "secrets": ["MYKEY=%s:api.test" % self.value,
                        "K2:api.test:X-Api-Key"]}), mode=0o600)
        env = h.clean_env({"K2": "k2-" + mf.new_secret()})
        r = self.run_sh(["--config", cfg] + self.base(),
                        'echo "$MYKEY $K2"; curl -sS --max-time 15 -o '
                        '/dev/null %s' % self.url(), env=env)
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn(self.value, r.stdout)
        self.assertNotIn(env["K2"], r.stdout)
        (rec,) = mf.header_log(self.n, 1)
        self.assertEqual((rec["auth"], rec["apikey"]),
                         ("Bearer " + self.value, env["K2"]))

    def test_placeholder_to_unbound_hosts_stays_a_placeholder(self):
        other = mf.new_secret("ot-")
        env = dict(self.env, OTHERKEY=other)
        # plain.test is intercepted (OTHERKEY), other.test is not.
        args = self.base("MYKEY:api.test", "OTHERKEY:plain.test")
        script = "".join(
            sh_client(name, self.out, cmd) for name, cmd in (
                ("o_get", 'curl -sS --max-time 15 -H "X-Other: $MYKEY" '
                 '-H "Authorization: Bearer $MYKEY" %s'
                 % self.url(host="other.test")),
                ("p_get", 'curl -sS --max-time 15 -H "X-Other: $MYKEY" '
                 '-H "Authorization: Bearer $MYKEY" %s'
                 % self.url(host="plain.test")),
                ("echo", 'echo "$MYKEY"')))
        r = self.run_sh(args, script, env=env)
        self.assertEqual(r.rc, 0, r)
        ph = client_result(self.out, "echo")[1].strip()
        log = {x["host"]: x for x in mf.header_log(self.n, 2)}
        self.assertEqual(set(log), {"other.test", "plain.test"}, log)
        self.assertEqual(log["other.test"]["other"], ph)
        self.assertEqual(log["other.test"]["auth"], "Bearer " + ph)
        self.assertEqual(log["plain.test"]["other"], ph)
        # plain.test's own binding sets its header, nothing of MYKEY's.
        self.assertEqual(log["plain.test"]["auth"], "Bearer " + other)
        for rec in log.values():
            self.assertNotIn(self.value, json.dumps(rec))

    def test_placeholder_in_bodies_to_unbound_hosts_is_untouched(self):
        sink = self.sink(names=("other.test", "plain.test"))
        other = mf.new_secret("ot-")
        env = dict(self.env, OTHERKEY=other)
        args = (["--upstream-ca", self.testca.cert] +
                mf.pins(sink.port, ("api.test", "other.test", "plain.test"))
                + ["--secret", "MYKEY:api.test",
                   "--secret", "OTHERKEY:plain.test"])
        script = ('printf "a %%s b %%s c" "$MYKEY" "$MYKEY" > %(o)s/body; '
                  'for host in other.test plain.test; do '
                  'curl -sS --max-time 15 --data-binary @%(o)s/body '
                  'https://$host:%(p)d/up || exit 1; done'
                  % {"o": self.out, "p": sink.port})
        r = self.run_sh(args, script, env=env)
        self.assertEqual(r.rc, 0, r)
        with open(os.path.join(self.out, "body"), "rb") as f:
            sent = f.read()
        self.assertIn(b"EGRESSRUN", sent)
        recs = sink.wait(2)
        self.assertEqual([x["sni"] for x in recs],
                         ["other.test", "plain.test"])
        for rec in recs:
            self.assertIsNone(rec["error"])
            self.assertEqual(rec["body"], sent)         # byte for byte
            self.assertEqual(rec["framing"], "length")
        self.assertEqual(mf.header(recs[1], "authorization"),
                         ["Bearer " + other])
        self.assertEqual(mf.header(recs[0], "authorization"), [])

    def test_redirect_to_another_host_carries_nothing(self):
        r = self.run_sh(self.base("MYKEY:api.test"),
                        'curl -sS -L --max-time 15 -H "X-Other: $MYKEY" %s'
                        % self.url("/redirect"))
        self.assertEqual(r.rc, 0, r)
        log = mf.header_log(self.n, 2)
        self.assertEqual([(x["host"], x["status"]) for x in log],
                         [("api.test", 302), ("other.test", 200)], log)
        self.assertEqual(log[0]["auth"], "Bearer " + self.value)
        self.assertNotIn(self.value, json.dumps(log[1]))
        self.assertIn("EGRESSRUN", log[1]["other"])
        self.assertIn("host=[other.test]", r.stdout)

    def test_plain_http_to_a_bound_host_is_injected_and_audited_in_clear(
            self):
        audit = self.audit_path()
        r = self.run_sh(self.base("MYKEY:api.test") + ["--audit", audit] +
                        ["--resolve", "api.test:%d:127.0.0.1" % self.n.port],
                        'curl -sS --max-time 15 -H "X-Other: $MYKEY" '
                        'http://api.test:%d/echo' % self.n.port)
        self.assertEqual(r.rc, 0, r)
        (rec,) = mf.header_log(self.n, 1)
        self.assertEqual((rec["auth"], rec["other"]),
                         ("Bearer " + self.value, self.value))
        (e,) = [e for e in bf.read_audit(audit) if e["event"] == "request"]
        self.assertEqual((e["door"], e["mitm"], e["secret"]),
                         ("http", False, "MYKEY"))
        self.assertRegex(e["reason"] or "", r"clear")
        with open(audit) as f:
            self.assertNotIn(self.value, f.read())

    def test_no_mitm_keeps_the_origins_certificate(self):
        audit = self.audit_path()
        args = (self.base("MYKEY:api.test") +
                ["--no-mitm", "api.test", "--audit", audit,
                 "--resolve", "api.test:%d:127.0.0.1" % self.n.port])
        r = self.run_sh(args,
                        # Trusts the TestCA through --upstream-ca in the
                        # bundle: no egress-run certificate in the way.
                        'curl -sS -v --max-time 15 -H "Authorization: Bearer'
                        ' $MYKEY" %s 2>%s/tls.err; '
                        'curl -sS --max-time 15 http://api.test:%d/echo'
                        % (self.url(), self.out, self.n.port))
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stderr, r"egress-run: .*MYKEY.*no-mitm.*plain")
        with open(os.path.join(self.out, "tls.err")) as f:
            tls = f.read()
        self.assertRegex(tls, r"issuer: CN=egress-run mitm test CA")
        self.assertNotIn("ephemeral", tls)
        log = mf.header_log(self.n, 2)
        self.assertEqual(len(log), 2, log)
        self.assertIn("EGRESSRUN", log[0]["auth"])      # untouched
        self.assertNotIn(self.value, log[0]["auth"])
        self.assertEqual(log[1]["auth"], "Bearer " + self.value)
        events = bf.read_audit(audit)
        tunnels = [e for e in events if e["event"] == "connect"]
        self.assertEqual([e["mitm"] for e in tunnels], [False], events)

    def test_bad_specs_name_the_spec_never_the_value(self):
        v = self.value
        for spec, why in (("MYKEY=%s:" % v, r"host"),
                          ("MYKEY=%s" % v, r"host"),
                          ("MYKEY=%s:*" % v, r"every host"),
                          ("MYKEY=%s:api.test:443" % v, r"port|number"),
                          ("1KEY=%s:api.test" % v, r"KEY"),
                          ("MYKEY:api.test:Content-Length", r"hop|framing"),
                          ("NOTSET:api.test", r"NOTSET.*not set")):
            r = self.egress(["--secret", spec], ["true"], env=self.env)
            self.assertEqual(r.rc, 125, (spec, r))
            self.assertRegex(r.stderr, r"^egress-run: bad --secret")
            self.assertRegex(r.stderr, why)
            self.assertNotIn(v, r.stderr)
            self.assertNotIn(v[8:16], r.stderr)
            self.assertEqual(r.stdout, "")


if __name__ == "__main__":
    unittest.main()
