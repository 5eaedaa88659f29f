"""User-written request rules (issue 8) end to end: `--rule` and the
config file's `rules` array, with a real egress-run and real clients (curl,
python3-requests, and raw TLS where a client would tidy the request up)
against a TLS origin on loopback.

The origin is mitm_fixtures' strict upload sink (python ssl, certificate
from a TestCA made at run time, trusted by egress-run through
--upstream-ca, names pinned with --resolve): it saves every request it
receives (method, path, headers, body to the byte), so "never reached the
origin" and "reached it byte for byte" are read from its records. The
clients run with the environment egress-run gives its COMMAND (the
bouquet: HTTPS_PROXY, SSL_CERT_FILE, REQUESTS_CA_BUNDLE ...), so they
trust egress-run's CA exactly as an agent would.

Proven:
  - `deny POST api.test /repos/[^/]+/[^/]+/merges? no merging`: a POST to
    a matching path is 403 with X-Egress-Run-Reason carrying the reason
    and the JSON body {"message": ...}, an audit deny event names the
    rule, the origin never sees it; GET on that path, POST elsewhere, and
    the same path on another host pass;
  - the first matching rule wins (an allow before the deny makes an
    exception; the other order does not);
  - percent-encoding, dot-segments and repeated slashes are judged on the
    decoded, folded path (`/repos/a/b/%6Derges` is refused), while the
    origin still gets what the client sent when the rule lets it pass;
  - config-file rules with a `body` regex: a JSON body naming the
    forbidden word is refused, also when spelt with \\u escapes, and also
    when uploaded chunked; an innocent body (escapes, UTF-8 and all)
    reaches the origin byte for byte; a body over the 256 KiB bound on a
    rule-bearing endpoint is refused with that reason and never reaches
    the origin (Content-Length and chunked), one of exactly 256 KiB is
    judged and passes, and a larger one on another endpoint passes;
  - a rule whose host is also --no-mitm is a start-up error (125, one
    line naming the rule); a bad regex is an error naming the rule and
    PCRE2's column, for --rule and for the file's body regexes.

Everything binds 127.0.0.1, every wait is bounded, everything started is
stopped. Runs under Debian's /usr/bin/python3 (python3-requests).
"""

import json
import subprocess
import unittest

import builtin_fixtures as bf
import harness as h
import mitm_fixtures as mf

PY = h.PY
MERGE_SPEC = "deny POST api.test /repos/[^/]+/[^/]+/merges?"
MERGE_RULE = MERGE_SPEC + " no merging"
BOUND = 256 * 1024

# One request with python3-requests (the bouquet's proxy and CA bundle),
# the body from a file. Prints {status, headers, body}.
_REQUESTS = r'''
import json, sys, requests
method, url, bodyfile = sys.argv[1:4]
data = None if bodyfile == "-" else open(bodyfile, "rb").read()
hdrs = {"Content-Type": "application/json"} if data is not None else {}
try:
    r = requests.request(method, url, data=data, headers=hdrs, timeout=20)
except requests.exceptions.ConnectionError as e:
    print(json.dumps({"status": None, "error": str(e)}))
    sys.exit(0)
print(json.dumps({"status": r.status_code, "headers": dict(r.headers),
                  "body": r.text}))
'''


class RulesCase(mf.MitmCase):

    def start(self, args, names=("api.test", "other.test")):
        """The sink for names, and an egress-run session whose proxy
        reaches it (the sink is self.origin); (session, audit path)."""
        self.origin = self.sink(names=names)
        audit = self.audit_path()
        s = self.session(["--upstream-ca", self.testca.cert, "--audit",
                          audit] + mf.pins(self.origin.port, names) + args)
        self.url = lambda path, host="api.test": "https://%s:%d%s" % (
            host, self.origin.port, path)
        return s, audit

    def curl(self, s, method, path, *opts, host="api.test"):
        """curl (with COMMAND's environment) -> (status, headers, body):
        the last response head curl saw (not the proxy's CONNECT 200)."""
        hfile, bfile = self.tmp.join("curl.head"), self.tmp.join("curl.body")
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "20", "-X", method, "-D", hfile,
             "-o", bfile, "--path-as-is"] + list(opts) +
            [self.url(path, host)],
            capture_output=True, env=s.env, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(hfile, "rb") as f:
            head = f.read().decode("latin-1")
        with open(bfile, "rb") as f:
            body = f.read().decode(errors="replace")
        lines = head.strip().split("\r\n\r\n")[-1].split("\r\n")
        hdrs = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        return int(lines[0].split()[1]), hdrs, body

    def curl_chunked(self, s, path, body):
        """POST body (bytes) with curl, Transfer-Encoding: chunked.
        (python3-requests 2.28 cannot send chunked through a proxy.)"""
        f = self.tmp.join("chunked.bin")
        with open(f, "wb") as fh:
            fh.write(body)
        return self.curl(s, "POST", path, "-H", "Transfer-Encoding: chunked",
                         "-H", "Content-Type: application/json",
                         "--data-binary", "@" + f)

    def requests(self, s, method, path, body=None):
        """python3-requests (COMMAND's environment) -> dict."""
        bodyfile = "-"
        if body is not None:
            bodyfile = self.tmp.join("body.bin")
            with open(bodyfile, "wb") as f:
                f.write(body)
        script = self.tmp.write("req.py", _REQUESTS)
        r = subprocess.run([PY, script, method, self.url(path), bodyfile],
                           capture_output=True, env=s.env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def reached(self):
        """(method, path) of each request the origin received."""
        return [(q["method"], q["path"]) for q in self.origin.requests()]

    def assert_refused(self, status, hdrs, body, reason):
        self.assertEqual(status, 403, (hdrs, body))
        self.assertEqual(hdrs.get("x-egress-run-reason"), reason, hdrs)
        self.assertEqual(json.loads(body)["message"],
                         "egress-run: " + reason, body)

    def denies(self, audit, n):
        return [e for e in bf.read_audit(
            audit, want=lambda ev: len([x for x in ev
                                        if x.get("decision") == "deny"]) >= n)
                if e.get("decision") == "deny"]


class PathRules(RulesCase):

    def test_deny_post_to_merge_paths_only(self):
        s, audit = self.start(["--rule", MERGE_RULE])
        for path in ("/repos/o/r/merge", "/repos/o/r/merges"):
            self.assert_refused(*self.curl(s, "POST", path, "-d", "{}"),
                                "no merging")
        got = self.requests(s, "POST", "/repos/acme/widget/merges",
                            b'{"base":"main"}')
        self.assertEqual(got["status"], 403, got)
        self.assertEqual(got["headers"]["X-Egress-Run-Reason"], "no merging")
        self.assertEqual(json.loads(got["body"]),
                         {"message": "egress-run: no merging"})

        # Not this rule's business: another method, another path, another
        # host; each reaches the origin.
        passing = [("GET", "/repos/o/r/merge", "api.test"),
                   ("POST", "/repos/o/r/pulls", "api.test"),
                   ("POST", "/repos/o/r/x/merge", "api.test"),
                   ("POST", "/repos/o/r/merged", "api.test"),
                   ("POST", "/repos/o/r/merge", "other.test")]
        for method, path, host in passing:
            status, _, body = self.curl(s, method, path, "-d", "{}",
                                        host=host) if method == "POST" \
                else self.curl(s, method, path, host=host)
            self.assertEqual(status, 200, (method, path, host, body))
        got = self.requests(s, "GET", "/repos/acme/widget/merges")
        self.assertEqual(got["status"], 200, got)
        self.assertEqual(self.reached(),
                         [(m, p) for m, p, _ in passing] +
                         [("GET", "/repos/acme/widget/merges")])

        ev = self.denies(audit, 3)
        self.assertEqual(len(ev), 3, ev)
        for e, path in zip(ev, ("/repos/o/r/merge", "/repos/o/r/merges",
                                "/repos/acme/widget/merges")):
            self.assertEqual(e["rule"], MERGE_SPEC, e)
            self.assertEqual(e["reason"], "no merging", e)
            self.assertEqual((e["method"], e["path"], e["host"],
                              e["status"]), ("POST", path, "api.test", 403))

    def test_first_matching_rule_wins(self):
        allow = "allow POST api.test /repos/o/sandbox/merge"
        s, _ = self.start(["--rule", allow, "--rule", MERGE_RULE])
        self.assertEqual(self.curl(s, "POST", "/repos/o/sandbox/merge",
                                   "-d", "{}")[0], 200)
        self.assert_refused(*self.curl(s, "POST", "/repos/o/r/merge",
                                       "-d", "{}"), "no merging")
        self.assertEqual(self.reached(), [("POST", "/repos/o/sandbox/merge")])
        s.stop()

        # The other way round the deny comes first: no exception.
        s, audit = self.start(["--rule", MERGE_RULE, "--rule", allow])
        self.assert_refused(*self.curl(s, "POST", "/repos/o/sandbox/merge",
                                       "-d", "{}"), "no merging")
        self.assertEqual(self.reached(), [])
        (e,) = self.denies(audit, 1)
        self.assertEqual(e["rule"], MERGE_SPEC)

    def test_encoded_paths_are_judged_decoded(self):
        s, audit = self.start(["--rule", MERGE_RULE])
        tricks = ["/repos/a/b/%6Derges", "/repos/a/b/%6derge",
                  "/repos/a/b/merg%65", "/repos/%61/b/merge",
                  "/repos//a/b/merge", "/repos/a/b//merge",
                  "/repos/a/b/./merge", "/repos/a/x/../b/merge",
                  "/repos/a/x/%2e%2e/b/merge", "/repos/a/b/merge?x=1"]
        for path in tricks:
            self.assert_refused(*self.curl(s, "POST", path, "-d", "{}"),
                                "no merging")
        # The same bytes over raw TLS: no client in between to tidy up.
        t = mf.tls_via_proxy(s.port, "api.test", self.origin.port,
                             s.env["SSL_CERT_FILE"])
        try:
            st, hd, body = mf.http_over(
                t, b"POST /repos/a/b/%6Derges HTTP/1.1\r\nHost: api.test\r\n"
                b"Content-Length: 2\r\n\r\n{}")
        finally:
            t.close()
        self.assert_refused(st, hd, body, "no merging")
        self.assertEqual(self.reached(), [])
        self.assertEqual(len(self.denies(audit, len(tricks) + 1)),
                         len(tricks) + 1)

        # Allowed requests keep their spelling on the way to the origin.
        for path in ("/repos/a/b/%6Derge/x", "/repos/a/b/%6Dergers"):
            self.assertEqual(self.curl(s, "POST", path, "-d", "{}")[0], 200)
        self.assertEqual(self.reached(),
                         [("POST", "/repos/a/b/%6Derge/x"),
                          ("POST", "/repos/a/b/%6Dergers")])


BODY_RULE = {"action": "deny", "methods": ["POST"], "host": "api.test",
             "path": "/api/.*", "body": "(?i)\\bmerge\\b",
             "reason": "no merging by API"}


class BodyRules(RulesCase):

    def start_cfg(self, rules, extra=()):
        cfg = self.tmp.write("rules.json", json.dumps({"rules": rules}))
        return self.start(["--config", cfg] + list(extra))

    def test_body_regex_sees_decoded_json(self):
        s, audit = self.start_cfg([BODY_RULE])
        bad = [b'{"action": "merge", "pr": 1}',
               b'{"action": "\\u006derge", "pr": 1}',
               b'{"action": "\\u006D\\u0065\\u0072\\u0067\\u0065"}',
               b'[{"ops": ["list", {"do": "MERGE"}]}]',
               b'{"mer\\u0067e": true}']
        for body in bad:
            got = self.requests(s, "POST", "/api/do", body)
            self.assertEqual(got["status"], 403, (body, got))
            self.assertEqual(got["headers"]["X-Egress-Run-Reason"],
                             "no merging by API")
        # Chunked, the word split across the chunks.
        self.assert_refused(*self.curl_chunked(
            s, "/api/do", b'{"pad": "' + b"x" * 65530 + b'", "a": "merge"}'),
            "no merging by API")
        # Raw curl, too.
        self.assert_refused(*self.curl(
            s, "POST", "/api/do", "-H", "Content-Type: application/json",
            "--data-binary", r'{"a":"\u006Derge"}'), "no merging by API")
        self.assertEqual(self.reached(), [])
        ev = self.denies(audit, len(bad) + 2)
        self.assertTrue(all(e["reason"] == "no merging by API" and
                            e["rule"] for e in ev), ev)

        # Innocent bodies: through, byte for byte (escapes not decoded on
        # the wire), whatever the framing.
        good = [b'{"action": "list", "note": "emerged \\u00e9t\\u00e9",'
                b' "utf8": "caf\xc3\xa9"}\n',
                b'{"merger": "not the word", "n": [1, 2.5, null]}']
        for body in good:
            got = self.requests(s, "POST", "/api/do", body)
            self.assertEqual(got["status"], 200, got)
        big = b'{"pad": "' + b"y" * 200000 + b'"}'
        self.assertEqual(self.curl_chunked(s, "/api/do", big)[0], 200)
        recs = self.origin.requests()
        self.assertEqual([r.get("body") for r in recs], good + [big])
        self.assertEqual([r["error"] for r in recs], [None] * 3)

    def test_malformed_json_is_refused_where_a_body_rule_applies(self):
        s, _ = self.start_cfg([BODY_RULE])
        got = self.requests(s, "POST", "/api/do", b'{"a": "merge",}')
        self.assertEqual(got["status"], 403, got)
        self.assertIn("cannot be decoded",
                      got["headers"]["X-Egress-Run-Reason"])
        self.assertEqual(self.reached(), [])

    def test_body_over_the_bound_is_refused(self):
        s, audit = self.start_cfg([BODY_RULE])
        over = b'{"pad": "' + b"z" * (BOUND - 10) + b'"}'
        self.assertEqual(len(over), BOUND + 1)
        got = self.requests(s, "POST", "/api/do", over)
        self.assertEqual(got["status"], 403, got)
        reasons = [got["headers"]["X-Egress-Run-Reason"]]
        st, hd, body = self.curl_chunked(s, "/api/do", over)
        self.assertEqual(st, 403, body)
        reasons.append(hd.get("x-egress-run-reason"))
        st, hd, body = self.curl(
            s, "POST", "/api/upload", "--data-binary", "@" +
            self.tmp.write("over.json", over.decode()))
        self.assertEqual(st, 403, body)
        reasons.append(hd.get("x-egress-run-reason"))
        for r in reasons:
            self.assertRegex(r, r"^[^\r\n]*over 256 KiB[^\r\n]*request "
                             r"rule", reasons)
        self.assertEqual(self.reached(), [])
        ev = self.denies(audit, 3)
        self.assertEqual([e["reason"] for e in ev], reasons)
        # Each refusal names the rule that wanted the body.
        self.assertEqual([e["rule"] for e in ev], [ev[0]["rule"]] * 3, ev)
        self.assertIn("api.test", ev[0]["rule"])

        # At the bound: judged, and innocent.
        at = over[:7] + over[8:]          # one space less
        self.assertEqual(len(at), BOUND)
        got = self.requests(s, "POST", "/api/do", at)
        self.assertEqual(got["status"], 200, got)
        # No rule on this path: no bound either.
        got = self.requests(s, "POST", "/elsewhere", over * 2)
        self.assertEqual(got["status"], 200, got)
        recs = self.origin.requests()
        self.assertEqual([(r["path"], r.get("body")) for r in recs],
                         [("/api/do", at), ("/elsewhere", over * 2)])


class StartupErrors(RulesCase):

    def one_line_125(self, args, *want):
        r = self.egress(args, ["true"])
        self.assertEqual(r.rc, 125, r)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        for w in want:
            self.assertIn(w, lines[0])
        return lines[0]

    def test_rule_on_a_no_mitm_host_is_an_error(self):
        self.one_line_125(["--rule", MERGE_RULE, "--no-mitm", "api.test"],
                          "rule '%s'" % MERGE_SPEC, "--no-mitm")
        self.one_line_125(["--rule", MERGE_RULE, "--no-mitm", "*.test"],
                          "rule '%s'" % MERGE_SPEC, "--no-mitm")
        cfg = self.tmp.write("nomitm.json", json.dumps(
            {"rules": [BODY_RULE], "no_mitm": ["api.test"]}))
        self.one_line_125(["--config", cfg], "api.test", "--no-mitm")
        # Without the clash the same rule starts.
        r = self.egress(["--rule", MERGE_RULE, "--no-mitm", "other.test"],
                        ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assert_no_state_left()

    def test_bad_regex_names_the_rule_and_the_column(self):
        bad = "deny POST api.test /repos/[a-z+/merge"
        line = self.one_line_125(["--rule", MERGE_RULE, "--rule", bad],
                                 "'%s'" % bad, "path regex")
        self.assertRegex(line, r"at column \d+")
        self.assertNotIn(MERGE_SPEC, line)
        bad = "deny * api.test /a/(?z)b"
        self.one_line_125(["--rule", bad], "'%s'" % bad, "column 6")
        cfg = self.tmp.write("badbody.json", json.dumps(
            {"rules": [BODY_RULE, dict(BODY_RULE, body="merge(",
                                       reason="second")]}))
        line = self.one_line_125(["--config", cfg], "body regex",
                                 "column 7")
        self.assertRegex(line, r"rule 2|second|merge\(", line)
        self.assert_no_state_left()


if __name__ == "__main__":
    unittest.main()
