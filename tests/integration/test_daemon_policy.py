"""Daemon mode (issue 12), "one sandbox's policy, secrets, budget and
counters never apply to another", end to end through TLS interception.
test_daemon.py (whose helpers this reuses) covers attribution, tokens,
PUT/DELETE/expiry, the API, --via and churn over plain HTTP; here every
sandbox's policy is one that needs the daemon to terminate TLS.

  - secrets: alpha (127.0.0.2) has a secret for api.test (an nginx origin
    over TLS, its certificate from a TestCA the daemon trusts through
    --upstream-ca): its curl, trusting the CA of the registration's
    answer, sends the placeholder and the origin gets the key. beta
    (127.0.0.3) has no secret: its tunnel to api.test is not intercepted
    (the origin's own certificate: the daemon CA alone does not verify
    it), and what it sends - alpha's placeholder included - reaches the
    origin byte for byte.
  - LLM budget: alpha's llm_budget is crossed by its first call (fake LLM
    origin, llm_fixtures.py) and its next calls get 429, while beta (no
    budget) goes on; each GET shows its own tokens only. A PUT with the
    same budget keeps alpha refused (what it spent carries over), one
    with a bigger budget lets it go on, its tokens counted on from where
    they were.
  - rules: alpha denies POST api.test /x/.*, beta denies GET api.test
    /y/.*: each gets its own 403 (its rule's reason) and the other's
    request passes to the origin.
  - hooks: each sandbox's deny and request hooks (files) get its own
    events only.
  - git guard: alpha's registration has "git": {repos, push_prefix}; a
    push outside the prefix through alpha is rejected and leaves the
    server's refs alone, the same push through beta (no guard) lands.
    Both identified by token (git cannot pick a source address).

Runs under Debian's /usr/bin/python3; binds 127.0.0.0/8 only; every wait
is bounded and everything started is stopped at cleanup.
"""

import json
import os
import subprocess
import time
import unittest

import builtin_fixtures as bf
import harness as h
import llm_fixtures as lf
import mitm_fixtures as mf
import test_daemon as td

A_SRC, B_SRC = "127.0.0.2", "127.0.0.3"
MSG = [{"role": "user", "content": "Say hello"}]


def curl(port, src, url, cafile, *extra, creds=None, timeout=20):
    """curl through the daemon from source src: (rc, headers (lower-case
    dict), body, stderr)."""
    proxy = ("http://%s@127.0.0.1:%d" % (creds, port) if creds else
             "http://127.0.0.1:%d" % port)
    args = ["curl", "-sS", "--max-time", "10", "--interface", src, "-x",
            proxy, "--cacert", cafile, "-D", "-"] + list(extra) + [url]
    r = subprocess.run(args, capture_output=True, timeout=timeout,
                       env=h.clean_env())
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    # CONNECT's own "200 Connection established" comes first.
    while head.startswith(b"HTTP/1.1 200 Connection") or \
            head.startswith(b"HTTP/1.0 200 Connection"):
        head, _, body = body.partition(b"\r\n\r\n")
    hdrs = {}
    lines = head.decode(errors="replace").split("\r\n")
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    if lines and lines[0].startswith("HTTP/"):
        hdrs[":status"] = int(lines[0].split(" ")[1])
    return r.returncode, hdrs, body, r.stderr.decode(errors="replace")


def issuer_via(port, src, host, oport, cafile):
    """The issuer CN of the certificate a tunnel from src to host:oport
    shows (verified against cafile)."""
    s = td.tunnel(port, src, "%s:%d" % (host, oport))
    try:
        t = mf.client_context(cafile).wrap_socket(s, server_hostname=host)
    except BaseException:
        s.close()
        raise
    try:
        return mf.peer_issuer_cn(t)
    finally:
        t.close()


class PolicyCase(mf.MitmCase):
    """A daemon trusting the TestCA (--upstream-ca); its CA saved, and a
    bundle of both for clients that meet a tunnel left alone."""

    def daemon(self, *extra):
        d = td.Daemon(self, "--upstream-ca", self.testca.cert, *extra)
        # td.Daemon waits for the socket file, which bind() makes before
        # listen(): until then a connect is refused. Wait for an answer.

        def answers():
            try:
                return d.api("GET", "/v1/sandboxes")[0] == 200
            except (OSError, IndexError, ValueError):
                return False
        h.wait_for(answers, 5, "the control API answering", interval=0.02)
        return d

    def save_ca(self, doc):
        pem = doc["ca"]
        self.assertTrue(pem.startswith("-----BEGIN CERTIFICATE-----"), doc)
        self.dca = self.tmp.write("daemon-ca.pem", pem)
        with open(self.testca.cert) as f:
            self.bundle = self.tmp.write("bundle.pem", pem + f.read())


# ------------------------------------------------------------ secrets

class Secrets(PolicyCase):

    def test_secret_injected_for_its_sandbox_only_over_tls(self):
        n = self.echo_nginx()
        S = n.https_port
        key = mf.new_secret()
        d = self.daemon()
        pol = {"allow": ["api.test"],
               "resolve": ["api.test:%d:127.0.0.1" % S]}
        a = d.register(self, dict(pol, id="alpha", source=A_SRC,
                                  secrets=["KEY:api.test"],
                                  env={"KEY": key}))
        b = d.register(self, dict(pol, id="beta", source=B_SRC))
        self.save_ca(a)
        self.assertEqual(b["ca"], a["ca"], "one daemon, one CA")
        self.assertEqual(b["placeholders"], {})
        ph = a["placeholders"]["KEY"]
        self.assertNotEqual(ph, key)
        url = "https://api.test:%d/echo" % S

        # alpha: intercepted (the daemon's CA alone verifies), the
        # placeholder replaced by the key, on the origin's side only.
        rc, hd, body, err = curl(d.port, A_SRC, url, self.dca, "-H",
                                 "Authorization: Bearer " + ph)
        self.assertEqual((rc, hd.get(":status")), (0, 200), err)
        self.assertIn(b"auth=[Bearer %s]" % key.encode(), body)
        self.assertNotEqual(issuer_via(d.port, A_SRC, "api.test", S,
                                       self.dca), self.testca.name)

        # beta: the tunnel is left alone - the origin's own certificate,
        # which the daemon's CA does not vouch for...
        rc, _, _, err = curl(d.port, B_SRC, url, self.dca)
        self.assertEqual(rc, 60, "beta's tunnel intercepted? " + err)
        self.assertEqual(issuer_via(d.port, B_SRC, "api.test", S,
                                    self.bundle), self.testca.name)
        # ... and alpha's placeholder sent by beta stays a placeholder.
        rc, hd, body, err = curl(d.port, B_SRC, url, self.bundle, "-H",
                                 "Authorization: Bearer " + ph, "-H",
                                 "X-Other: " + ph)
        self.assertEqual((rc, hd.get(":status")), (0, 200), err)
        self.assertIn(b"auth=[Bearer %s]" % ph.encode(), body)
        self.assertNotIn(key.encode(), body)

        # What the origin got, request by request: the key only in
        # alpha's (the echo and nothing else from beta).
        log = mf.header_log(n, 2)
        got = [(r["auth"], r["other"]) for r in log
               if r["request"].startswith("GET /echo")]
        self.assertEqual(got, [("Bearer " + key, ""),
                               ("Bearer " + ph, ph)], log)

        # Audit: alpha's request intercepted with its secret, beta's
        # tunnel not intercepted; nothing of beta's names the secret.
        evs = d.events(want=lambda e: len([x for x in e if
                                           x.get("sandbox") == "beta"])
                       >= 3)
        mine = [e for e in evs if e.get("sandbox") == "alpha" and
                e["event"] == "request"]
        self.assertTrue(mine and all(e["mitm"] and e["secret"] == "KEY"
                                     for e in mine), evs)
        theirs = [e for e in evs if e.get("sandbox") == "beta"]
        self.assertTrue(theirs, evs)
        self.assertTrue(all(not e.get("mitm") and not e.get("secret")
                            for e in theirs), theirs)
        # The key is in no answer, log or file of the daemon's.
        _, _, raw = d.api("GET", "/v1/sandboxes")
        self.assertEqual(mf.leaks(key, texts={"list": raw,
                                              "log": d.proc.log_text()},
                                  paths=[d.dir]), [])


# ------------------------------------------------------------ LLM budget

class Budget(PolicyCase):

    def setUp(self):
        super().setUp()
        cert, key = self.testca.server_cert(
            lf.NAMES, stem="llm-%d" % time.monotonic_ns())
        self.origin = lf.LLMOrigin(self, cert, key)

    def call(self, d, src):
        """One OpenAI chat call from src: (HTTP status, body)."""
        rc, hd, body, err = curl(
            d.port, src, self.origin.url(lf.OPENAI, "/v1/chat/completions"),
            self.dca, "-H", "Content-Type: application/json", "--data",
            json.dumps({"model": "gpt-test", "messages": MSG}))
        self.assertEqual(rc, 0, err)
        return hd.get(":status"), body

    def counters(self, d, sid):
        st, doc, raw = d.api("GET", "/v1/sandboxes/" + sid)
        self.assertEqual(st, 200, raw)
        return doc["counters"]

    def test_budget_is_per_sandbox_and_carries_over_a_put(self):
        u = lf.usage_of("gpt-test")
        per = u["in"] + u["out"]
        budget = per - 2                    # the first call crosses it
        d = self.daemon()
        pol = {"allow": [lf.OPENAI],
               "resolve": ["%s:%d:127.0.0.1" % (lf.OPENAI, self.origin.port)]}
        a = d.register(self, dict(pol, id="alpha", source=A_SRC,
                                  llm_budget=budget))
        d.register(self, dict(pol, id="beta", source=B_SRC))
        self.save_ca(a)

        self.assertEqual(self.call(d, A_SRC)[0], 200)    # crosses it
        st, body = self.call(d, A_SRC)
        self.assertEqual(st, 429, body)
        self.assertIn(b"budget", body)
        # beta, no budget, goes on past alpha's.
        for _ in range(3):
            self.assertEqual(self.call(d, B_SRC)[0], 200)
        self.assertEqual(len(self.origin.records()), 4,
                         "a refused call reached the origin")
        ca, cb = self.counters(d, "alpha"), self.counters(d, "beta")
        self.assertEqual((ca["llm_input_tokens"], ca["llm_output_tokens"],
                          ca["llm_tokens"]), (u["in"], u["out"], per), ca)
        self.assertEqual((cb["llm_input_tokens"], cb["llm_output_tokens"],
                          cb["llm_tokens"]),
                         (3 * u["in"], 3 * u["out"], 3 * per), cb)

        # A PUT changing something else, the same budget: what alpha spent
        # is still spent.
        st, _, raw = d.api("PUT", "/v1/sandboxes/alpha",
                           dict(pol, allow=[lf.OPENAI, "x.test"],
                                llm_budget=budget))
        self.assertEqual(st, 200, raw)
        st, body = self.call(d, A_SRC)
        self.assertEqual(st, 429, "budget spent forgotten by a PUT: %r"
                         % body)
        # A bigger one: alpha goes on, counted from where it was.
        st, _, raw = d.api("PUT", "/v1/sandboxes/alpha",
                           dict(pol, llm_budget=10 * per))
        self.assertEqual(st, 200, raw)
        self.assertEqual(self.call(d, A_SRC)[0], 200)
        ca = self.counters(d, "alpha")
        self.assertEqual((ca["llm_input_tokens"], ca["llm_tokens"]),
                         (2 * u["in"], 2 * per), ca)
        self.assertGreaterEqual(ca["requests"], 4, ca)
        self.assertEqual(self.counters(d, "beta")["llm_tokens"], 3 * per)
        # Budget events name alpha only.
        evs = d.events(want=lambda e: any(x["event"] == "budget"
                                          for x in e))
        self.assertEqual({e.get("sandbox") for e in evs
                          if e["event"] == "budget"}, {"alpha"}, evs)
        refused = [e for e in evs if e["event"] == "llm" and
                   e["status"] == 429]
        self.assertEqual({e.get("sandbox") for e in refused}, {"alpha"},
                         refused)


# ------------------------------------------------------------ rules, hooks

X_LOCATIONS = """
    location /x/ { default_type text/plain; return 200 "x ok\\n"; }
    location /y/ { default_type text/plain; return 200 "y ok\\n"; }
    location /api/ { default_type text/plain; return 200 "api ok\\n"; }
"""


class RulesAndHooks(PolicyCase):

    def test_each_sandbox_has_its_own_rules(self):
        n = self.echo_nginx(server_extra=X_LOCATIONS)
        S = n.https_port
        d = self.daemon()
        pol = {"allow": ["api.test"],
               "resolve": ["api.test:%d:127.0.0.1" % S]}
        a = d.register(self, dict(pol, id="alpha", source=A_SRC, rules=[
            {"action": "deny", "methods": ["POST"], "host": "api.test",
             "path": "/x/.*", "reason": "alpha may not post to x"}]))
        d.register(self, dict(pol, id="beta", source=B_SRC, rules=[
            {"action": "deny", "methods": ["GET"], "host": "api.test",
             "path": "/y/.*", "reason": "beta may not read y"}]))
        self.save_ca(a)
        x, y = ("https://api.test:%d/x/1" % S, "https://api.test:%d/y/1" % S)

        def req(src, url, *extra):
            rc, hd, body, err = curl(d.port, src, url, self.dca, *extra)
            self.assertEqual(rc, 0, err)
            return hd.get(":status"), hd.get("x-egress-run-reason"), body

        st, why, body = req(A_SRC, x, "--data", "a=1")
        self.assertEqual(st, 403, body)
        self.assertIn("alpha may not post to x", why or body.decode())
        st, why, body = req(B_SRC, x, "--data", "a=1")
        self.assertEqual((st, body), (200, b"x ok\n"), why)
        st, why, body = req(B_SRC, y)
        self.assertEqual(st, 403, body)
        self.assertIn("beta may not read y", why or body.decode())
        st, why, body = req(A_SRC, y)
        self.assertEqual((st, body), (200, b"y ok\n"), why)
        # The origin saw exactly the two allowed requests.
        log = mf.header_log(n, 2)
        self.assertEqual(sorted(r["request"].split(" ")[:2] for r in log),
                         [["GET", "/y/1"], ["POST", "/x/1"]], log)
        evs = d.events(want=lambda e: len([x for x in e
                                           if x.get("status") == 403]) >= 2)
        denied = {(e.get("sandbox"), e.get("path")) for e in evs
                  if e.get("status") == 403}
        self.assertEqual(denied, {("alpha", "/x/1"), ("beta", "/y/1")},
                         evs)

    def test_a_preset_is_its_sandboxes_only(self):
        n = self.echo_nginx(server_extra=X_LOCATIONS)
        S = n.https_port
        d = self.daemon()
        pol = {"allow": ["api.test"],
               "resolve": ["api.test:%d:127.0.0.1" % S]}
        a = d.register(self, dict(pol, id="alpha", source=A_SRC,
                                  preset=["github:api.test"]))
        d.register(self, dict(pol, id="beta", source=B_SRC))
        self.save_ca(a)
        url = "https://api.test:%d/api/v3/repos/o/r" % S
        rc, hd, body, err = curl(d.port, A_SRC, url, self.dca,
                                 "-X", "DELETE")
        self.assertEqual((rc, hd.get(":status")), (0, 403), err)
        self.assertIn("deleting repositories is blocked by egress-run "
                      "(preset github:api.test)",
                      hd.get("x-egress-run-reason") or body.decode())
        # beta has no rule for api.test: its tunnel is left alone (the
        # bundle trusts the origin) and the DELETE reaches the origin.
        rc, hd, body, err = curl(d.port, B_SRC, url, self.bundle,
                                 "-X", "DELETE")
        self.assertEqual((rc, hd.get(":status"), body), (0, 200,
                                                         b"api ok\n"), err)
        log = mf.header_log(n, 1)
        self.assertEqual([r["request"].split(" ")[:2] for r in log],
                         [["DELETE", "/api/v3/repos/o/r"]], log)

    def hooks_case(self, kinds):
        """alpha and beta, each with a file hook per kind, each asking
        for its own host (allowed) and its neighbour's (denied), twice
        over: {sandbox: {kind: path}}."""
        o = bf.PyOrigin(self)
        d = self.daemon()
        files = {s: {k: self.tmp.join("%s-%s.jsonl" % (s, k))
                     for k in kinds}
                 for s in ("alpha", "beta")}
        for sid, src in (("alpha", A_SRC), ("beta", B_SRC)):
            host = sid + ".test"
            d.register(self, {
                "id": sid, "source": src, "allow": [host],
                "resolve": ["%s:%d:127.0.0.1" % (host, o.port)],
                "hooks": ["%s:file:%s" % (k, files[sid][k])
                          for k in kinds]})
        for _ in range(2):
            for sid, src, other in (("alpha", A_SRC, "beta"),
                                    ("beta", B_SRC, "alpha")):
                st, _, _ = td.fetch(d.port, src, "http://%s.test:%d/echo"
                                    % (sid, o.port))
                self.assertEqual(st, 200)
                st, _, _ = td.fetch(d.port, src, "http://%s.test:%d/echo"
                                    % (other, o.port))
                self.assertEqual(st, 403)
        return files

    def assert_hook_lines(self, files, kind, whose):
        """Each sandbox's KIND file holds two events, for the host
        whose(sid, other) names, and nothing else arrives late."""
        for sid, other in (("alpha", "beta"), ("beta", "alpha")):
            path = files[sid][kind]
            h.wait_for(lambda: len(lf.jsonl(path)) >= 2, 5,
                       "2 %s event(s) in %s" % (kind, path))
            time.sleep(0.2)
            got = lf.jsonl(path)
            self.assertEqual([e["host"] for e in got],
                             [whose(sid, other) + ".test"] * 2,
                             "%s's %s hook: %r" % (sid, kind, got))

    def test_each_sandbox_has_its_own_deny_and_response_hooks(self):
        files = self.hooks_case(("deny", "response"))
        self.assert_hook_lines(files, "deny", lambda me, other: other)
        self.assert_hook_lines(files, "response", lambda me, other: me)

    # A registration's "request" hooks once never fired: the "request is
    # forwarded" event went to the daemon's own hooks only.
    def test_each_sandbox_has_its_own_request_hooks(self):
        files = self.hooks_case(("request",))
        self.assert_hook_lines(files, "request", lambda me, other: me)


# ------------------------------------------------------------ git guard

class GitGuard(PolicyCase):

    def setUp(self):
        super().setUp()
        import test_gitguard_e2e as ge
        self.ge = ge
        self.value = mf.new_secret()
        self.origin = ge.GitOrigin(self.tmp, self.testca, self.value)
        self.addCleanup(self.origin.stop)
        self.genv = h.clean_env(dict(
            ge.GIT_ID, HOME=self.tmp.mkdir("home"), GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0"))

    def git(self, *args, env=None, check=True):
        p = subprocess.run(["git"] + list(args), capture_output=True,
                           text=True, env=env or self.genv, timeout=60)
        if check:
            self.assertEqual(p.returncode, 0, "git %s:\n%s"
                             % (" ".join(args), p.stderr))
        return p

    def refs(self, bare):
        out = self.git("-C", bare, "for-each-ref",
                       "--format=%(refname) %(objectname)").stdout
        return dict(ln.split(" ") for ln in out.splitlines())

    def test_a_sandboxes_git_guard_is_its_own(self):
        seed = self.tmp.join("seed")
        self.git("init", "-q", "-b", "main", seed)
        with open(os.path.join(seed, "README"), "w") as f:
            f.write("seed\n")
        self.git("-C", seed, "add", ".")
        self.git("-C", seed, "commit", "-q", "-m", "seed")
        bare = os.path.join(self.origin.repos, "o", "project.git")
        self.git("clone", "-q", "--bare", seed, bare)
        self.git("-C", bare, "config", "http.receivepack", "true")
        url = self.origin.url("o/project.git")
        P = self.origin.port

        d = self.daemon()
        pol = {"allow": [self.ge.HOST],
               "resolve": ["%s:%d:127.0.0.1" % (self.ge.HOST, P)],
               "secrets": ["MYKEY:" + self.ge.HOST],
               "env": {"MYKEY": self.value}, "token": True}
        a = d.register(self, dict(pol, id="alpha", git={
            "repos": ["%s:%d/o/project" % (self.ge.HOST, P)],
            "push_prefix": ["sandbox/*"]}))
        b = d.register(self, dict(pol, id="beta"))
        self.save_ca(a)

        def push(doc, ref):
            env = dict(self.genv, GIT_SSL_CAINFO=self.dca,
                       HTTPS_PROXY="http://%s:%s@127.0.0.1:%d"
                       % (doc["id"], doc["token"], d.port))
            return self.git("-C", seed, "push", url, "HEAD:" + ref,
                            env=env, check=False)

        with open(os.path.join(seed, "README"), "a") as f:
            f.write("more\n")
        self.git("-C", seed, "commit", "-qam", "more")
        tip = self.git("-C", seed, "rev-parse", "HEAD").stdout.strip()
        before = self.refs(bare)
        r = push(a, "feature")
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("--git-push-prefix", r.stderr)
        self.assertEqual(self.refs(bare), before)
        r = push(a, "sandbox/one")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.refs(bare)["refs/heads/sandbox/one"], tip)
        # beta, no guard: the same push lands.
        r = push(b, "feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.refs(bare)["refs/heads/feature"], tip)
        evs = d.events(want=lambda e: any(x["event"] == "deny"
                                          for x in e))
        self.assertEqual({(e.get("sandbox"), e.get("rule")) for e in evs
                          if e["event"] == "deny"},
                         {("alpha", "git-push-prefix")}, evs)


if __name__ == "__main__":
    unittest.main()
