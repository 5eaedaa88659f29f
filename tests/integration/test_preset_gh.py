"""`--preset github[:HOST]` end to end (issue 8): the real `gh` CLI
(Debian's package, 2.23) inside egress-run, against a fake GitHub API.

The origin is a small python3 server (http.server + ssl, certificate from
a TestCA made at run time, trusted by egress-run through --upstream-ca)
that answers just enough REST and GraphQL for the commands below and logs
every request it receives (method, path, GraphQL operation, Host,
Authorization, body) before answering.

Two setups run the same tests:
  - GitHubCom: `--preset github`, gh's own github.com endpoints
    (https://api.github.com/ and /graphql), api.github.com pinned with
    --resolve to the origin on 127.0.0.1:443 (skipped when port 443
    cannot be had within a few seconds: another test may hold it);
  - Enterprise: `--preset github:ghe.test:PORT`, GH_HOST=ghe.test:PORT
    (gh's /api/v3 and /api/graphql), on a free port.

The token is bound with --secret (GH_TOKEN, or GH_ENTERPRISE_TOKEN for the
enterprise host): gh holds a placeholder, the origin must see the value.

Proven:
  - `gh pr list`, `gh pr view`, `gh pr create` and a plain ref update
    (`gh api -X PATCH .../git/refs/heads/main -F force=false`) work and
    reach the origin, carrying the real token;
  - `gh pr merge` (GraphQL mergePullRequest), `gh release create`,
    `gh repo delete --yes`, `gh api -X PUT .../branches/main/protection`
    and `gh api -X PATCH .../git/refs/heads/main -F force=true` fail:
    gh exits non-zero printing the 403 and egress-run's reason, the origin
    never receives the request (its log), and the audit file holds one
    deny event naming the preset rule;
  - the same commands without the preset all succeed against the same
    origin (so the refusals above are egress-run's doing);
  - the real token is never in COMMAND's environment, gh's output,
    egress-run's stderr or the audit file.

Everything binds 127.0.0.1, every wait is bounded, everything started is
stopped. Runs under Debian's /usr/bin/python3 (stdlib only).
"""

import json
import os
import shutil
import subprocess
import time
import unittest

import harness as h
import mitm_fixtures as mf

PY = h.PY
SHA = "2" * 40

# ------------------------------------------------------------ the origin

_ORIGIN = r'''
import json, os, re, ssl, sys, threading
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

port, cert, key, logpath, ready = (int(sys.argv[1]), sys.argv[2],
                                   sys.argv[3], sys.argv[4], sys.argv[5])
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
lock = threading.Lock()
OP = re.compile(r"\b(query|mutation)\s+([A-Za-z_][A-Za-z0-9_]*)")
TYPE = re.compile(r"(\w+)\s*:\s*__type\(")

PR = {"id": "PR_1", "number": 1, "title": "Add widget", "state": "OPEN",
      "url": "https://github.com/o/r/pull/1", "body": "widget body",
      "headRefName": "feature", "baseRefName": "main",
      "headRefOid": "1" * 40,
      "headRepositoryOwner": {"id": "U_1", "login": "o", "name": "O"},
      "headRepository": {"id": "R_1", "name": "r"},
      "isCrossRepository": False, "isDraft": False, "closed": False,
      "merged": False, "mergeable": "MERGEABLE",
      "mergeStateStatus": "CLEAN", "createdAt": "2023-01-01T00:00:00Z",
      "author": {"id": "U_1", "login": "o", "name": "O", "is_bot": False}}
REPO = {"id": "R_1", "name": "r", "owner": {"id": "U_1", "login": "o"},
        "nameWithOwner": "o/r", "url": "https://github.com/o/r",
        "defaultBranchRef": {"name": "main"}, "isPrivate": False,
        "viewerPermission": "ADMIN", "viewerCanAdminister": True,
        "hasIssuesEnabled": True, "mergeCommitAllowed": True,
        "rebaseMergeAllowed": True, "squashMergeAllowed": True,
        "parent": None}


def graphql(doc, op):
    types = TYPE.findall(doc.get("query", ""))
    if types:       # gh's feature detection (introspection)
        return 200, {"data": {t: {"fields": [{"name": "id"}]}
                              for t in types}}
    if op == "PullRequestList":
        return 200, {"data": {"repository": {"pullRequests": {
            "totalCount": 1, "nodes": [PR],
            "pageInfo": {"hasNextPage": False, "endCursor": None}}}}}
    if op == "PullRequestByNumber":
        return 200, {"data": {"repository": {"pullRequest": PR}}}
    if op == "RepositoryInfo":
        return 200, {"data": {"repository": REPO}}
    if op == "PullRequestForBranch":
        return 200, {"data": {"repository": {"pullRequests": {
            "nodes": []}}}}
    if op == "PullRequestCreate":
        return 200, {"data": {"createPullRequest": {"pullRequest": dict(
            PR, id="PR_2", number=2,
            url="https://github.com/o/r/pull/2")}}}
    if op == "PullRequestMerge":
        return 200, {"data": {"mergePullRequest": {
            "clientMutationId": None}}}
    return 200, {"errors": [{"message": "fake origin: unknown operation "
                             "%s" % op}]}


def rest(method, path):
    if method == "POST" and path == "/repos/o/r/releases":
        return 201, {"id": 7, "tag_name": "v1", "draft": False,
                     "html_url": "https://github.com/o/r/releases/tag/v1",
                     "upload_url": "https://uploads.github.com/repos/o/r/"
                                   "releases/7/assets{?name,label}"}
    if method == "DELETE" and path == "/repos/o/r":
        return 204, None
    if method == "PUT" and path == "/repos/o/r/branches/main/protection":
        return 200, {"url": "protection"}
    if method == "PATCH" and path == "/repos/o/r/git/refs/heads/main":
        return 200, {"ref": "refs/heads/main",
                     "object": {"sha": "2" * 40, "type": "commit"}}
    return 404, {"message": "Not Found"}


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request.settimeout(30)
        self.request = ctx.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, fmt, *a):
        sys.stdout.write("%s\n" % (fmt % a))
        sys.stdout.flush()

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode(errors="replace") if n else ""
        path = self.path.split("?")[0]
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            doc = None
        rec = {"method": self.command, "path": path,
               "host": self.headers.get("Host"),
               "auth": self.headers.get("Authorization"), "body": body,
               "op": None}
        if path in ("/graphql", "/api/graphql") and isinstance(doc, dict):
            m = OP.search(doc.get("query", ""))
            rec["op"] = m.group(2) if m else None
        with lock:       # logged before the answer leaves
            with open(logpath, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if rec["op"] is not None or path in ("/graphql", "/api/graphql"):
            status, obj = graphql(doc if isinstance(doc, dict) else {},
                                  rec["op"])
        else:
            status, obj = rest(self.command,
                               re.sub(r"^/api/v3(?=/)", "", path))
        out = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        if obj is not None:
            self.send_header("Content-Type",
                             "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class S(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


srv = S(("127.0.0.1", port), H)
open(ready, "w").close()
srv.serve_forever(poll_interval=0.1)
'''


class FakeGitHub:
    """The fake API origin on 127.0.0.1:port. records() is its log: one
    dict per request received, in order."""

    def __init__(self, tmp, cert, key, port, wait=0.0):
        """Start on port; if the port is taken, retry for wait seconds,
        then raise OSError."""
        self.port = port
        self.log = tmp.join("origin-%d.jsonl" % port)
        script = tmp.write("origin.py", _ORIGIN)
        deadline = time.monotonic() + wait
        for attempt in range(1000):
            ready = tmp.join("origin-%d-%d.ready" % (port, attempt))
            self.proc = h.Proc([PY, script, str(port), cert, key, self.log,
                                ready], tmp.join("origin-%d.out" % port),
                               name="fake-github")
            try:
                h.wait_for(lambda: os.path.exists(ready) or
                           not self.proc.alive(), 10,
                           "the fake GitHub origin to listen")
            except AssertionError:
                self.proc.stop()
                raise
            if os.path.exists(ready):
                return
            self.proc.stop()
            if time.monotonic() >= deadline:
                raise OSError("cannot listen on 127.0.0.1:%d: %s"
                              % (port, self.proc.log_tail(3)))
            time.sleep(0.5)

    def records(self):
        try:
            with open(self.log) as f:
                return [json.loads(ln) for ln in f if ln.endswith("\n")]
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.stop()


# ------------------------------------------------------------ gh

_gh_checked = None


def gh_path():
    """gh, installed from Debian if missing (as root); (path, why not)."""
    global _gh_checked
    if _gh_checked is None:
        why = None
        if shutil.which("gh") is None:
            if os.geteuid() != 0 or shutil.which("apt-get") is None:
                why = "gh is not installed (apt-get install gh, as root)"
            else:
                env = dict(h.clean_env(), DEBIAN_FRONTEND="noninteractive")
                try:
                    r = subprocess.run(["apt-get", "install", "-y", "-q",
                                        "--no-install-recommends", "gh"],
                                       capture_output=True, text=True,
                                       timeout=60, env=env,
                                       stdin=subprocess.DEVNULL)
                    if r.returncode != 0:
                        why = ("apt-get install gh failed: %s"
                               % r.stderr.strip()[-300:])
                except subprocess.TimeoutExpired:
                    why = "apt-get install gh took over 60 s"
                if why is None and shutil.which("gh") is None:
                    why = "gh still missing after apt-get install gh"
        _gh_checked = (shutil.which("gh"), why)
    return _gh_checked


def setUpModule():
    path, why = gh_path()
    if path is None:
        raise unittest.SkipTest(why)


def slurp(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Run:
    """One `egress-run ... -- gh ARGS`: result, COMMAND's environment,
    the audit events and what reached the origin during the run."""

    def __init__(self, result, env, env_text, audit_text, events, reached):
        self.result = result
        self.env = env
        self.env_text = env_text
        self.audit_text = audit_text
        self.events = events
        self.reached = reached

    @property
    def out(self):
        return self.result.stdout + self.result.stderr

    def denies(self):
        return [e for e in self.events if e.get("event") == "deny"]


class PresetMixin:
    """The tests; subclasses set up the origin and the names."""

    PRESET = None       # --preset value
    HOST = None         # the API host as gh and the preset name it
    TOKEN_VAR = None    # GH_TOKEN / GH_ENTERPRISE_TOKEN
    API = None          # REST path prefix at the origin ("" or /api/v3)
    GRAPHQL = None      # GraphQL path at the origin

    @classmethod
    def start_origin(cls):
        raise NotImplementedError

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.ctmp = h.TempDir("egress-it-gh.")
        cls.addClassCleanup(cls.ctmp.cleanup)
        cls.testca = h.TestCA(cls.ctmp.mkdir("ca"), "egress-run gh test CA")
        cls.cert, cls.key = cls.testca.server_cert(
            ("api.github.com", "uploads.github.com", "ghe.test"), stem="gh")
        cls.origin = cls.start_origin()
        cls.addClassCleanup(cls.origin.stop)

    def setUp(self):
        super().setUp()
        self.token = mf.new_secret("ghp_", 36)
        self.home = self.tmp.mkdir("home", mode=0o700)

    def rule(self, text):
        return "preset %s: %s" % (self.PRESET, text)

    def reason(self, text):
        return "%s (preset %s)" % (text, self.PRESET)

    def gh(self, *args, preset=True):
        """gh ARGS inside egress-run (with the preset unless preset=False);
        asserts the token stayed out of everything but the wire."""
        n = time.monotonic_ns()
        audit = self.tmp.join("audit-%d.jsonl" % n)
        envfile = self.tmp.join("child-env-%d" % n)
        env = {k: v for k, v in h.clean_env().items()
               if not k.startswith(("GH_", "GITHUB_"))}
        env.update(HOME=self.home,
                   XDG_CONFIG_HOME=os.path.join(self.home, ".config"),
                   GH_PROMPT_DISABLED="1", GH_NO_UPDATE_NOTIFIER="1",
                   NO_COLOR="1", GH_PAGER="cat", PAGER="cat",
                   **{self.TOKEN_VAR: self.token})
        if self.HOST != "api.github.com":
            env["GH_HOST"] = self.HOST
        name = self.HOST.split(":")[0]
        args_e = ["--audit", audit, "--upstream-ca", self.testca.cert,
                  "--resolve", "%s:%d:127.0.0.1" % (name, self.origin.port),
                  "--allow", name,
                  "--secret", "%s:%s" % (self.TOKEN_VAR, name)]
        if preset:
            args_e += ["--preset", self.PRESET]
        before = len(self.origin.records())
        r = self.egress(args_e, ["sh", "-c", 'env >"$0"; exec gh "$@"',
                                 envfile] + list(args), env=env, timeout=45)
        reached = self.origin.records()[before:]
        env_text = slurp(envfile)
        child = h.parse_env_dump(env_text)
        audit_text = slurp(audit)
        events = [json.loads(ln) for ln in audit_text.splitlines()]
        run = Run(r, child, env_text, audit_text, events, reached)
        # the child holds a placeholder, never the token
        self.assertIn(self.TOKEN_VAR, child, r)
        placeholder = child[self.TOKEN_VAR]
        self.assertNotEqual(placeholder, self.token)
        self.assertEqual(mf.leaks(self.token, {
            "child env": env_text, "stdout": r.stdout, "stderr": r.stderr,
            "audit": audit_text}), [], "the token leaked")
        # whatever reached the origin carried the token, not the placeholder
        for rec in reached:
            self.assertIn(rec["auth"], ("Bearer " + self.token,
                                        "token " + self.token), rec)
            self.assertNotIn(placeholder, json.dumps(rec))
            self.assertEqual(rec["host"], self.HOST, rec)
        return run

    def ops(self, run):
        return [x["op"] for x in run.reached if x["op"] is not None]

    def rest_calls(self, run):
        return [(x["method"], x["path"]) for x in run.reached
                if x["op"] is None]

    def assert_refused(self, run, rule, reason, what=""):
        """gh failed showing the 403 and egress-run's reason (after what,
        e.g. the GraphQL mutation); one deny event for rule with that
        reason."""
        self.assertNotEqual(run.result.rc, 0, run.result)
        self.assertIn("403", run.out, run.result)
        shown = "egress-run: " + what + self.reason(reason)
        self.assertIn(shown, run.out, run.result)
        d = run.denies()
        self.assertEqual(len(d), 1, run.audit_text)
        self.assertEqual(d[0]["rule"], self.rule(rule), d)
        self.assertEqual(d[0]["decision"], "deny", d)
        self.assertEqual(d[0]["status"], 403, d)
        self.assertEqual(d[0]["host"], self.HOST.split(":")[0], d)
        self.assertEqual(d[0]["reason"], what + self.reason(reason), d)
        return d[0]

    def assert_no_denies(self, run):
        self.assertEqual(run.denies(), [], run.audit_text)

    # allowed

    def test_pr_list_and_view_reach_the_origin(self):
        run = self.gh("pr", "list", "-R", "o/r")
        self.assertEqual(run.result.rc, 0, run.result)
        self.assertIn("Add widget", run.result.stdout)
        self.assertEqual(self.ops(run), ["PullRequestList"])
        self.assertEqual(run.reached[0]["path"], self.GRAPHQL)
        self.assert_no_denies(run)
        self.assertTrue(run.env[self.TOKEN_VAR])

        run = self.gh("pr", "view", "1", "-R", "o/r")
        self.assertEqual(run.result.rc, 0, run.result)
        self.assertIn("Add widget", run.result.stdout)
        self.assertIn("widget body", run.result.stdout)
        self.assertEqual(self.ops(run), ["PullRequestByNumber"])
        self.assert_no_denies(run)

    def test_pr_create_is_allowed(self):
        run = self.gh("pr", "create", "-R", "o/r", "--head", "feature",
                      "--base", "main", "--title", "Agent PR", "--body",
                      "made by the agent")
        self.assertEqual(run.result.rc, 0, run.result)
        self.assertIn("https://github.com/o/r/pull/2", run.result.stdout)
        self.assertIn("PullRequestCreate", self.ops(run))
        create = [x for x in run.reached if x["op"] == "PullRequestCreate"]
        inp = json.loads(create[0]["body"])["variables"]["input"]
        self.assertEqual((inp["title"], inp["headRefName"],
                          inp["baseRefName"]),
                         ("Agent PR", "feature", "main"))
        self.assert_no_denies(run)

    def test_plain_ref_update_is_allowed(self):
        run = self.gh("api", "-X", "PATCH", "repos/o/r/git/refs/heads/main",
                      "-f", "sha=" + SHA, "-F", "force=false")
        self.assertEqual(run.result.rc, 0, run.result)
        self.assertEqual(self.rest_calls(run),
                         [("PATCH",
                           self.API + "/repos/o/r/git/refs/heads/main")])
        self.assertEqual(json.loads(run.reached[0]["body"]),
                         {"sha": SHA, "force": False})
        self.assert_no_denies(run)

    # refused

    def test_pr_merge_is_refused(self):
        run = self.gh("pr", "merge", "1", "-R", "o/r", "--merge")
        self.assert_refused(run, "GraphQL merge mutations",
                            "merging is blocked by egress-run",
                            what="GraphQL mergePullRequest: ")
        # gh got as far as looking the pull request up; the mutation
        # never reached the origin
        self.assertIn("PullRequestByNumber", self.ops(run))
        self.assertNotIn("PullRequestMerge", self.ops(run))
        self.assertFalse([x for x in run.reached
                          if "mergePullRequest" in x["body"]], run.reached)

    def test_release_create_is_refused(self):
        run = self.gh("release", "create", "v1", "-R", "o/r", "--notes",
                      "notes")
        d = self.assert_refused(run, "POST /repos/{owner}/{repo}/releases",
                                "creating releases is blocked by "
                                "egress-run")
        self.assertEqual((d["method"], d["path"]),
                         ("POST", self.API + "/repos/o/r/releases"))
        self.assertEqual(self.rest_calls(run), [])

    def test_repo_delete_is_refused(self):
        run = self.gh("repo", "delete", "o/r", "--yes")
        d = self.assert_refused(run, "DELETE /repos/{owner}/{repo}",
                                "deleting repositories is blocked by "
                                "egress-run")
        self.assertEqual((d["method"], d["path"]),
                         ("DELETE", self.API + "/repos/o/r"))
        self.assertEqual(self.rest_calls(run), [])

    def test_branch_protection_change_is_refused(self):
        run = self.gh("api", "-X", "PUT",
                      "repos/o/r/branches/main/protection")
        d = self.assert_refused(
            run, "PUT|POST|PATCH|DELETE /repos/{owner}/{repo}/branches/"
            "{branch}/protection...",
            "changing branch protection is blocked by egress-run")
        self.assertEqual(d["method"], "PUT")
        self.assertEqual(run.reached, [])

    def test_forced_ref_update_is_refused(self):
        run = self.gh("api", "-X", "PATCH", "repos/o/r/git/refs/heads/main",
                      "-f", "sha=" + SHA, "-F", "force=true")
        d = self.assert_refused(
            run, "PATCH /repos/{owner}/{repo}/git/refs/{ref} with force",
            "force-updating branches is blocked by egress-run")
        self.assertEqual(d["method"], "PATCH")
        self.assertEqual(run.reached, [])

    # the control: the same commands without the preset reach the origin

    def test_without_the_preset_the_origin_accepts_them_all(self):
        cases = (
            (("pr", "merge", "1", "-R", "o/r", "--merge"),
             ("op", "PullRequestMerge")),
            (("release", "create", "v1", "-R", "o/r", "--notes", "notes"),
             ("POST", self.API + "/repos/o/r/releases")),
            (("repo", "delete", "o/r", "--yes"),
             ("DELETE", self.API + "/repos/o/r")),
            (("api", "-X", "PUT", "repos/o/r/branches/main/protection"),
             ("PUT", self.API + "/repos/o/r/branches/main/protection")),
            (("api", "-X", "PATCH", "repos/o/r/git/refs/heads/main", "-f",
              "sha=" + SHA, "-F", "force=true"),
             ("PATCH", self.API + "/repos/o/r/git/refs/heads/main")),
        )
        for args, want in cases:
            with self.subTest(gh=" ".join(args)):
                run = self.gh(*args, preset=False)
                self.assertEqual(run.result.rc, 0, run.result)
                got = [("op", x["op"]) if x["op"] else
                       (x["method"], x["path"]) for x in run.reached]
                self.assertIn(want, got)
                self.assert_no_denies(run)


class GitHubCom(PresetMixin, h.EgressTestCase):
    """--preset github: api.github.com on the real port 443, pinned."""

    PRESET = "github"
    HOST = "api.github.com"
    TOKEN_VAR = "GH_TOKEN"
    API = ""
    GRAPHQL = "/graphql"

    @classmethod
    def start_origin(cls):
        try:
            return FakeGitHub(cls.ctmp, cls.cert, cls.key, 443, wait=8.0)
        except OSError as e:
            raise unittest.SkipTest(str(e))


class Enterprise(PresetMixin, h.EgressTestCase):
    """--preset github:ghe.test:PORT, GH_HOST=ghe.test:PORT."""

    TOKEN_VAR = "GH_ENTERPRISE_TOKEN"
    API = "/api/v3"
    GRAPHQL = "/api/graphql"

    @classmethod
    def start_origin(cls):
        origin = FakeGitHub(cls.ctmp, cls.cert, cls.key, h.free_port(),
                            wait=3.0)
        cls.HOST = "ghe.test:%d" % origin.port
        cls.PRESET = "github:" + cls.HOST
        return origin


if __name__ == "__main__":
    unittest.main()
