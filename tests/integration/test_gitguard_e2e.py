"""The git push guard end to end (issue 8): real git through the real
egress-run binary, TLS intercepted, to a real smart-HTTP server.

The origin is nginx over TLS (certificate from a TestCA made at run time,
trusted by egress-run through --upstream-ca) in front of fcgiwrap and
`git http-backend`, answering for git.test (pinned with --resolve) with
every request required to carry the --secret value (so the binding is
live on the guarded host). Bare repositories are made by each test, with
pushes enabled (http.receivepack). egress-run names one of them with
--git-repo git.test:PORT/OWNER/project; its neighbour OWNER/other sits on
the same host.

Proven through the binary (test_gitguard_git.py covers the guard's
decisions alone):
  - clone, fetch and ls-remote of the named repository work; of the other
    one (and by dot-segment / percent-encoding / double-slash paths that
    nginx folds onto it) they are refused, git printing the reason;
    WebDAV methods are refused; the host's plain-HTTP port, which no
    --git-repo names, allows no repository at all;
  - a fast-forward push (small: Content-Length; big: chunked) lands; a
    --force push, a push to main, a deletion, a tag move and a mixed push
    are refused as `! [remote rejected] ... (egress-run: ...)` and the
    server's refs are unchanged; --git-allow-force, --git-allow-delete,
    --git-push-prefix and --git-protect behave;
  - the --secret placeholder committed in a push reaches the server's
    repository as the placeholder, not the value;
  - a 40 MiB push of random data works, and with `Expect: 100-continue`
    (git sends it for a chunked body over http.postBuffer) the go-ahead is
    not delayed (curl would wait 1 s for it);
  - a push whose Content-Length is over 256 MiB is refused at once, its
    commands read and answered "ng" in a status report;
  - inside COMMAND, git@HOST: and ssh://git@HOST/ remotes go over HTTPS
    (the GIT_CONFIG_* insteadOf entries), the user's own GIT_CONFIG_COUNT
    entries kept;
  - CONNECT and SOCKS5 to HOST:22 (and 9418) are refused (403 / 0x02),
    also `egress-run connect`, with rule "git-ssh" -- whether --git-repo
    names the HTTPS port or no port at all;
  - the audit file holds one deny event per refusal with the guard's rule.

Everything binds 127.0.0.1 and every wait is bounded. Runs under Debian's
/usr/bin/python3 (stdlib only).
"""

import json
import os
import re
import shlex
import subprocess
import time
import unittest

import builtin_fixtures as bf
import chain_fixtures as cf
import harness as h
import mitm_fixtures as mf

HOST = "git.test"

# Every request must carry the secret's value: the binding is live on the
# guarded host (a push body left alone is then the guard's doing).
GIT_LOCATION = """
    client_max_body_size 0;
    location / {
        if ($http_authorization != "Bearer @@value@@") { return 401; }
        fastcgi_pass unix:@@sock@@;
        fastcgi_read_timeout 60s;
        fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
        fastcgi_param GIT_PROJECT_ROOT @@repos@@;
        fastcgi_param GIT_HTTP_EXPORT_ALL "";
        fastcgi_param PATH_INFO $uri;
        fastcgi_param QUERY_STRING $query_string;
        fastcgi_param REQUEST_METHOD $request_method;
        fastcgi_param CONTENT_TYPE $content_type;
        fastcgi_param CONTENT_LENGTH $content_length;
        fastcgi_param GIT_PROTOCOL $http_git_protocol;
        fastcgi_param SERVER_PROTOCOL $server_protocol;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param REMOTE_ADDR $remote_addr;
    }
"""

# nginx logs method, path and the headers that matter for the timing test.
LOG_FORMAT = ("log_format git escape=json '{\"request\":\"$request\","
              "\"status\":$status,\"expect\":\"$http_expect\","
              "\"len\":\"$request_length\"}';")

GIT_ID = {"GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example",
          "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example"}


class GitOrigin:
    """nginx (TLS for git.test) + fcgiwrap + git http-backend over a root
    of bare repositories; shared by a test class."""

    def __init__(self, tmp, ca, value):
        self.tmp = tmp
        self.value = value
        self.repos = tmp.mkdir("repos")
        self.env = h.clean_env(dict(GIT_ID, HOME=tmp.mkdir("home"),
                                    GIT_CONFIG_NOSYSTEM="1"))
        self.sock = tmp.join("fcgi.sock")
        self.fcgi = h.Proc(["fcgiwrap", "-c", "4", "-s", "unix:" + self.sock],
                           tmp.join("fcgiwrap.log"), env=self.env,
                           name="fcgiwrap")
        self.nginx = None
        try:
            h.wait_for(lambda: os.path.exists(self.sock) or
                       not self.fcgi.alive(), 10, "fcgiwrap's socket")
            if not self.fcgi.alive():
                raise RuntimeError(self.fcgi.log_text())
            self.nginx = h.Nginx(tmp.mkdir("nginx"),
                                 tls=bf.NamedCA(ca, (HOST,)),
                                 http_extra=LOG_FORMAT)
            self.nginx.server_extra = (
                "access_log @@dir@@/git.log git;\n" +
                GIT_LOCATION.replace("@@value@@", value)
                .replace("@@sock@@", self.sock)
                .replace("@@repos@@", self.repos))
            self.nginx.start()
        except BaseException:
            self.stop()
            raise
        self.port = self.nginx.https_port

    def url(self, path):
        return "https://%s:%d/%s" % (HOST, self.port, path.lstrip("/"))

    def log(self):
        try:
            with open(os.path.join(self.nginx.dir, "git.log")) as f:
                return [json.loads(ln) for ln in f if ln.endswith("\n")]
        except FileNotFoundError:
            return []

    def stop(self):
        if self.nginx is not None:
            self.nginx.stop()
        self.fcgi.stop()


class GitGuardE2E(h.EgressTestCase):

    @classmethod
    def setUpClass(cls):
        cls.ctmp = h.TempDir("egress-gg-e2e.")
        cls.addClassCleanup(cls.ctmp.cleanup)
        cls.ca = h.TestCA(cls.ctmp.mkdir("ca"), "egress-run gitguard e2e CA")
        cls.value = mf.new_secret()
        cls.origin = GitOrigin(cls.ctmp, cls.ca, cls.value)
        cls.addClassCleanup(cls.origin.stop)
        cls.counter = 0

    def setUp(self):
        super().setUp()
        type(self).counter += 1
        self.owner = "t%d-%d" % (os.getpid(), self.counter)
        self.genv = h.clean_env(dict(
            GIT_ID, MYKEY=self.value, HOME=self.tmp.mkdir("home"),
            GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0"))
        self.audit = self.tmp.join("audit.jsonl")
        self.project = self.bare("project")
        self.other = self.bare("other")
        self.url = self.origin.url("%s/project.git" % self.owner)
        self.other_url = self.origin.url("%s/other.git" % self.owner)
        # A working copy made without the proxy, its origin the https URL.
        self.work = self.tmp.join("work")
        self.git("clone", "-q", self.project, self.work)
        self.git("-C", self.work, "remote", "set-url", "origin", self.url)

    # ---------------------------------------------------------- helpers

    def git(self, *args, check=True, cwd=None):
        p = subprocess.run(["git"] + list(args), capture_output=True,
                           text=True, env=self.genv, timeout=60, cwd=cwd)
        if check:
            self.assertEqual(p.returncode, 0, "git %s:\n%s"
                             % (" ".join(args), p.stderr))
        return p.stdout

    def bare(self, name):
        """OWNER/NAME.git on the server: main (2 commits), feature, tag v1;
        pushes enabled."""
        seed = self.tmp.join("seed-" + name)
        self.git("init", "-q", "-b", "main", seed)
        for i in range(2):
            with open(os.path.join(seed, "README"), "a") as f:
                f.write("%s %d\n" % (name, i))
            self.git("-C", seed, "add", ".")
            self.git("-C", seed, "commit", "-q", "-m", "seed %d" % i)
        self.git("-C", seed, "branch", "feature")
        self.git("-C", seed, "tag", "-a", "-m", "v1", "v1")
        path = os.path.join(self.origin.repos, self.owner, name + ".git")
        self.git("clone", "-q", "--bare", seed, path)
        self.git("-C", path, "config", "http.receivepack", "true")
        return path

    def refs(self, bare):
        """{ref: sha} of a bare repository, read by git on the server."""
        out = self.git("-C", bare, "for-each-ref",
                       "--format=%(refname) %(objectname)")
        return dict(ln.split(" ") for ln in out.splitlines())

    def commit(self, path="file", text=None, msg="change"):
        with open(os.path.join(self.work, path), "a") as f:
            f.write(text if text is not None else "%f\n" % time.time())
        self.git("-C", self.work, "add", path)
        self.git("-C", self.work, "commit", "-q", "-m", msg)
        return self.git("-C", self.work, "rev-parse", "HEAD").strip()

    def args(self, *extra, repo=None):
        return (["--upstream-ca", self.ca.cert, "--allow", HOST,
                 "--secret", "MYKEY:" + HOST, "--audit", self.audit,
                 "--git-repo", repo or "%s:%d/%s/project"
                 % (HOST, self.origin.port, self.owner)] +
                mf.pins(self.origin.port, (HOST,)) + list(extra))

    def erun(self, script, *extra, timeout=60, env=None, repo=None):
        """sh -c SCRIPT as egress-run's COMMAND, in the working copy."""
        return self.egress(self.args(*extra, repo=repo),
                           ["sh", "-c", script], env=env or self.genv,
                           cwd=self.work, timeout=timeout)

    def push(self, *refspecs, extra=(), opts=""):
        return self.erun("git push %s origin %s" % (
            opts, " ".join(shlex.quote(r) for r in refspecs)), *extra)

    def assert_rejected(self, r, what, reason):
        self.assertNotEqual(r.rc, 0, r)
        pat = (r"! \[remote rejected\] +%s \(%s" % (re.escape(what),
                                                   re.escape(reason)))
        self.assertRegex(r.stderr, pat, r)

    def served(self, what="", status=None):
        """What the origin answered for this test's repositories."""
        return [x for x in self.origin.log()
                if "/%s/" % self.owner in x["request"] and
                what in x["request"] and
                (status is None or x["status"] == status)]

    def denies(self, want=1):
        ev = bf.read_audit(self.audit, want=lambda e: len(
            [x for x in e if x.get("event") == "deny"]) >= want)
        return [x for x in ev if x.get("event") == "deny"]

    def assert_one_deny(self, rule, reason_part=None):
        d = self.denies()
        self.assertEqual(len(d), 1, d)
        self.assertEqual(d[0]["rule"], rule, d)
        self.assertEqual(d[0]["decision"], "deny", d)
        self.assertEqual(d[0]["host"], HOST, d)
        if reason_part is not None:
            self.assertIn(reason_part, d[0].get("reason") or "", d)
        return d[0]

    # ---------------------------------------------------------- fetch side

    def test_clone_fetch_of_the_named_repo_and_refusal_of_its_neighbour(self):
        r = self.erun("git clone -q %s %s && git ls-remote %s"
                     % (self.url, self.tmp.join("c1"), self.url))
        self.assertEqual(r.rc, 0, r)
        self.assertIn("refs/heads/main", r.stdout)
        with open(self.tmp.join("c1", "README")) as f:
            self.assertEqual(f.read(), "project 0\nproject 1\n")
        # A new commit on the server, fetched (also without .git).
        seed = self.tmp.join("seed-project")
        with open(os.path.join(seed, "README"), "a") as f:
            f.write("more\n")
        self.git("-C", seed, "commit", "-q", "-am", "more")
        self.git("-C", seed, "push", "-q", self.project, "main")
        r = self.erun("git -C %s fetch -q %s main && git -C %s rev-parse "
                     "FETCH_HEAD" % (self.tmp.join("c1"), self.url[:-4],
                                     self.tmp.join("c1")))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout.strip(),
                         self.refs(self.project)["refs/heads/main"])
        self.assertEqual(self.denies(0), [])
        # The neighbour: clone and ls-remote refused, git shows why.
        where = "%s/%s/other.git" % (HOST, self.owner)
        for script in ("git clone -q %s %s" % (self.other_url,
                                               self.tmp.join("c2")),
                       "git ls-remote %s" % self.other_url):
            r = self.erun(script)
            self.assertNotEqual(r.rc, 0, r)
            self.assertIn("remote: egress-run: git access to %s" % HOST,
                          r.stderr)
            self.assertIn("other.git is not allowed (not named by "
                          "--git-repo)", r.stderr)
            self.assertIn("403", r.stderr)
        self.assertFalse(os.path.exists(self.tmp.join("c2", "README")))
        d = self.denies(2)
        self.assertEqual([x["rule"] for x in d], ["git-repo", "git-repo"])
        self.assertTrue(all(x["status"] == 403 for x in d), d)
        self.assertIn(where.split("/", 1)[1], d[0]["reason"])
        self.assertEqual(self.served("/other.git/"), [])

    def test_push_to_the_neighbour_is_refused(self):
        before = self.refs(self.other)
        self.git("-C", self.work, "remote", "add", "other", self.other_url)
        self.git("-C", self.work, "checkout", "-q", "feature")
        self.commit()
        r = self.erun("git push other feature")
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("is not allowed (not named by --git-repo)", r.stderr)
        self.assertEqual(self.refs(self.other), before)
        self.assert_one_deny("git-repo")

    def test_path_tricks_onto_the_neighbour_are_refused(self):
        # nginx folds these onto OWNER/other.git; the guard must judge the
        # same repository (curl --path-as-is sends them as written).
        base = "https://%s:%d" % (HOST, self.origin.port)
        o = self.owner
        paths = ["/%s/project.git/../other.git" % o,
                 "/%s/project.git/%%2e%%2e/other.git" % o,
                 "/%s//other.git" % o,
                 "/%s/%%6fther.git" % o,
                 "/%s/./other.git" % o,
                 "/%s/project.git%%2f..%%2fother.git" % o]
        script = "; ".join(
            "curl -s --path-as-is --max-time 10 -o /dev/null -w "
            "'%%{http_code}\\n' '%s%s/info/refs?service=git-upload-pack'"
            % (base, p) for p in paths)
        r = self.erun(script)
        codes = r.stdout.split()
        self.assertEqual(len(codes), len(paths), r)
        for p, code in zip(paths, codes):
            self.assertEqual(code, "403", "%s: %s\n%r" % (p, code, r))
        self.assertEqual(self.served(status=200), [])
        d = self.denies(len(paths))
        self.assertEqual({x["rule"] for x in d}, {"git-repo"})

    def test_webdav_refused(self):
        r = self.erun(
            "for m in PROPFIND MKCOL LOCK; do curl -s --max-time 10 -o "
            "/dev/null -w '%%{http_code}\\n' -X $m %s/; done; "
            "curl -s --max-time 10 -o /dev/null -w '%%{http_code}\\n' -T "
            "README %s/refs/heads/x" % (self.url, self.url))
        self.assertEqual(r.stdout.split(), ["403"] * 4, r)
        d = self.denies(4)
        self.assertEqual({x["rule"] for x in d}, {"git-webdav"})

    def test_plain_http_port_of_the_host_is_no_way_round(self):
        # --git-repo names the HTTPS port; the same host's plain-HTTP port
        # (nginx serves the same repositories there) allows no repository:
        # fetch and push by http:// are refused, the neighbour's too.
        plain = self.origin.nginx.port
        before = self.refs(self.other)
        base = "http://%s:%d/%s" % (HOST, plain, self.owner)
        self.git("-C", self.work, "checkout", "-q", "feature")
        self.commit()
        r = self.erun("git ls-remote {b}/project.git; echo rc=$?; "
                      "git ls-remote {b}/other.git; echo rc=$?; "
                      "git push {b}/other.git feature; echo rc=$?"
                      .format(b=base), *mf.pins(plain, (HOST,)))
        self.assertEqual(re.findall(r"^rc=(\d+)$", r.stdout, re.M),
                         ["128", "128", "128"], r)
        self.assertNotIn("refs/heads/", r.stdout)
        for repo in ("project.git", "other.git"):
            self.assertIn("git access to %s/%s/%s is not allowed"
                          % (HOST, self.owner, repo), r.stderr)
        self.assertEqual(self.refs(self.other), before)
        d = self.denies(3)
        self.assertEqual([(x["rule"], x["port"]) for x in d],
                         [("git-repo", plain)] * 3, d)
        self.assertEqual(self.served(), [])

    # ---------------------------------------------------------- pushes

    def test_fast_forward_push_and_branch_creation_land(self):
        self.git("-C", self.work, "checkout", "-q", "feature")
        tip = self.commit()
        self.git("-C", self.work, "checkout", "-q", "-b", "topic/new")
        tip2 = self.commit()
        r = self.push("feature", "topic/new")
        self.assertEqual(r.rc, 0, r)
        refs = self.refs(self.project)
        self.assertEqual(refs["refs/heads/feature"], tip)
        self.assertEqual(refs["refs/heads/topic/new"], tip2)
        self.assertEqual(self.denies(0), [])
        # The push was a POST .../git-receive-pack that reached the server.
        log = self.served("/git-receive-pack HTTP")
        self.assertEqual([x["status"] for x in log], [200], log)

    def test_refusals_leave_the_server_unchanged(self):
        before = self.refs(self.project)
        w = self.work
        cases = []
        # --force of rewritten history on a plain branch
        self.git("-C", w, "checkout", "-q", "feature")
        self.git("-C", w, "reset", "-q", "--hard", "HEAD~1")
        self.commit(msg="rewritten")
        cases.append((("feature",), "--force", "feature -> feature (forced "
                      "update)", "egress-run: force-push blocked",
                      "git-force"))
        # main is protected by default, even a fast-forward
        self.git("-C", w, "checkout", "-q", "main")
        self.commit()
        cases.append((("main",), "", "main -> main",
                      "egress-run: protected branch (--git-protect main)",
                      "git-protect main"))
        # deleting a branch
        cases.append(((":feature",), "", "feature",
                      "egress-run: deleting a branch is blocked",
                      "git-delete"))
        # moving a tag
        self.git("-C", w, "tag", "-f", "-a", "-m", "moved", "v1")
        cases.append((("v1",), "--force", "v1 -> v1 (forced update)",
                      "egress-run: moving a tag is blocked", "git-force"))
        for refspecs, opts, what, reason, rule in cases:
            with self.subTest(what=what):
                if os.path.exists(self.audit):
                    os.unlink(self.audit)
                r = self.push(*refspecs, opts=opts)
                self.assert_rejected(r, what.split(" (")[0], reason)
                self.assertIn("remote: egress-run: push refused, nothing "
                              "was updated", r.stderr)
                self.assertNotIn("RPC failed", r.stderr)
                self.assertEqual(self.refs(self.project), before)
                self.assert_one_deny(rule, reason[len("egress-run: "):])
        # No refused push reached the server.
        self.assertEqual(self.served("/git-receive-pack HTTP"), [])

    def test_mixed_push_is_refused_whole(self):
        before = self.refs(self.project)
        self.git("-C", self.work, "checkout", "-q", "feature")
        self.commit()
        self.git("-C", self.work, "checkout", "-q", "main")
        self.git("-C", self.work, "merge", "-q", "feature")
        r = self.push("feature", "main")
        self.assert_rejected(r, "main -> main", "egress-run: protected")
        self.assert_rejected(r, "feature -> feature", "egress-run: refused "
                             "with the rest of the push (atomic)")
        self.assertEqual(self.refs(self.project), before)
        self.assert_one_deny("git-protect main")

    def test_allow_force_and_allow_delete(self):
        self.git("-C", self.work, "checkout", "-q", "feature")
        self.git("-C", self.work, "reset", "-q", "--hard", "HEAD~1")
        tip = self.commit(msg="rewritten")
        r = self.push("feature", opts="--force", extra=("--git-allow-force",))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.refs(self.project)["refs/heads/feature"], tip)
        # still refused: main (protected), deletion (not allowed)
        before = self.refs(self.project)
        r = self.push("HEAD:main", opts="--force",
                      extra=("--git-allow-force",))
        self.assert_rejected(r, "HEAD -> main", "egress-run: protected")
        r = self.push(":feature", extra=("--git-allow-force",))
        self.assert_rejected(r, "feature", "egress-run: deleting a branch")
        self.assertEqual(self.refs(self.project), before)
        # --git-allow-delete: a branch goes, a protected one does not
        r = self.push(":feature", extra=("--git-allow-delete",))
        self.assertEqual(r.rc, 0, r)
        self.assertNotIn("refs/heads/feature", self.refs(self.project))
        r = self.push(":main", extra=("--git-allow-delete",))
        self.assert_rejected(r, "main", "egress-run: protected")
        self.assertIn("refs/heads/main", self.refs(self.project))

    def test_push_prefix_and_protect(self):
        pre = ("--git-push-prefix", "sandbox/*")
        self.git("-C", self.work, "checkout", "-q", "-b", "sandbox/agent/1")
        tip = self.commit()
        r = self.push("sandbox/agent/1", extra=pre)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(
            self.refs(self.project)["refs/heads/sandbox/agent/1"], tip)
        before = self.refs(self.project)
        r = self.push("HEAD:feature", extra=pre)
        self.assert_rejected(r, "HEAD -> feature", "egress-run: only refs "
                             "matching --git-push-prefix may be pushed "
                             "(sandbox/*)")
        self.assertEqual(self.refs(self.project), before)
        self.assert_one_deny("git-push-prefix")
        # --git-protect replaces the default list: main may be pushed,
        # release/* may not
        prot = ("--git-protect", "release/*")
        self.git("-C", self.work, "checkout", "-q", "main")
        tip = self.commit()
        r = self.push("HEAD:main", extra=prot)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.refs(self.project)["refs/heads/main"], tip)
        r = self.push("HEAD:release/1", extra=prot)
        self.assert_rejected(r, "HEAD -> release/1",
                             "egress-run: protected branch (--git-protect "
                             "release/*)")
        self.assertNotIn("refs/heads/release/1", self.refs(self.project))

    def test_placeholder_in_a_push_is_not_the_secret(self):
        # COMMAND's $MYKEY is the placeholder; committed and pushed, the
        # server's repository must hold the placeholder, never the value
        # (nginx saw the value in Authorization, so the binding was live).
        self.git("-C", self.work, "checkout", "-q", "feature")
        r = self.erun('printf "key=%s\\n" "$MYKEY" > secret.txt && '
                     'git add secret.txt && git commit -q -m "key $MYKEY" '
                     '&& git push -q origin feature && '
                     'printf "%s" "$MYKEY"')
        self.assertEqual(r.rc, 0, r)
        placeholder = r.stdout
        self.assertTrue(placeholder)
        self.assertNotEqual(placeholder, self.value)
        got = self.git("-C", self.project, "show", "feature:secret.txt")
        self.assertEqual(got, "key=%s\n" % placeholder)
        msg = self.git("-C", self.project, "log", "-1", "--format=%B",
                       "feature")
        self.assertIn(placeholder, msg)
        self.assertEqual(mf.leaks(self.value, paths=[self.project]), [])

    def test_big_push_and_expect_100_continue(self):
        self.git("-C", self.work, "checkout", "-q", "feature")
        with open(os.path.join(self.work, "big.bin"), "wb") as f:
            f.write(os.urandom(40 << 20))
        tip = self.commit(path="big.bin", text="")
        t0 = time.monotonic()
        r = self.erun("GIT_TRACE_CURL=$PWD/../curl.trace "
                     "GIT_TRACE_CURL_NO_DATA=1 git -c http.postBuffer=65536 "
                     "-c 'http.extraHeader=Expect: 100-continue' "
                     "push -q origin feature", timeout=90)
        took = time.monotonic() - t0
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.refs(self.project)["refs/heads/feature"], tip)
        self.assertEqual(self.git("-C", self.project, "cat-file", "-s",
                                  "feature:big.bin").strip(),
                         str(40 << 20))
        # git asked for the go-ahead, and got it at once.
        trace = self.tmp.read("curl.trace")
        lines = trace.splitlines()
        sent = [i for i, ln in enumerate(lines)
                if "Expect: 100-continue" in ln]
        self.assertTrue(sent, "git sent no Expect: 100-continue")
        got = [i for i, ln in enumerate(lines)
               if "HTTP/1.1 100 Continue" in ln and i > sent[0]]
        self.assertTrue(got, "no 100 Continue came back")

        def stamp(ln):
            hh, mm, ss = ln.split(" ", 1)[0].split(":")
            return int(hh) * 3600 + int(mm) * 60 + float(ss)
        wait = stamp(lines[got[0]]) - stamp(lines[sent[0]])
        self.assertLess(wait, 0.5, "the 100 Continue took %.2f s" % wait)
        self.assertLess(took, 60)
        # the server saw the push without Expect, framed by our length
        # (git first probes with a 4-byte "0000" POST, which passes)
        log = self.served("/git-receive-pack HTTP")
        self.assertEqual(len(log), 2, log)
        self.assertLess(int(log[0]["len"]), 1024, log)
        self.assertGreater(int(log[1]["len"]), 40 << 20, log)
        self.assertEqual([x["expect"] for x in log], ["", ""], log)

    def over_256_mib(self):
        """A push announcing a Content-Length over the bound, its commands
        sent, the rest not: (status, headers, body, seconds)."""
        s = bf.session(self, env=self.genv, args=self.args())
        old = self.refs(self.project)["refs/heads/feature"]
        cmd = ("%s %s refs/heads/feature\0report-status side-band-64k "
               "agent=t\n" % (old, "1" * 40)).encode()
        body_start = b"%04x" % (len(cmd) + 4) + cmd + b"0000PACK"
        t = mf.tls_via_proxy(s.port, HOST, self.origin.port,
                             s.env["SSL_CERT_FILE"])
        try:
            head = ("POST /%s/project.git/git-receive-pack HTTP/1.1\r\n"
                    "Host: %s:%d\r\nContent-Type: application/x-git-"
                    "receive-pack-request\r\nContent-Length: %d\r\n\r\n"
                    % (self.owner, HOST, self.origin.port, (300 << 20))
                    ).encode()
            t0 = time.monotonic()
            status, hdrs, body = mf.http_over(t, head, [body_start],
                                              timeout=10)
            took = time.monotonic() - t0
        finally:
            t.close()
        self.assertEqual(self.refs(self.project)["refs/heads/feature"], old)
        self.assertEqual(self.served("/git-receive-pack"), [])
        self.assert_one_deny("git-push", "push too large to inspect")
        return status, hdrs, body, took

    def test_push_over_256_mib_refused_at_once_as_a_status_report(self):
        # Only the commands are read (no 300 MiB buffered, no waiting for
        # them), the server untouched, and the answer is git's status
        # report, so git prints "! [remote rejected] ... (egress-run: push
        # too large ...)" rather than "RPC failed".
        status, hdrs, body, took = self.over_256_mib()
        self.assertLess(took, 5)
        self.assertEqual((status, hdrs.get("content-type")),
                         (200, "application/x-git-receive-pack-result"),
                         body)
        self.assertIn(b"unpack ok", body)
        self.assertIn(b"ng refs/heads/feature egress-run: push too large "
                      b"to inspect (over 256 MiB)", body)

    # ---------------------------------------------------------- ssh

    def test_ssh_remotes_go_over_https_and_user_config_is_kept(self):
        env = dict(self.genv, GIT_CONFIG_COUNT="2",
                   GIT_CONFIG_KEY_0="user.name",
                   GIT_CONFIG_VALUE_0="Kept Name",
                   GIT_CONFIG_KEY_1="egress.mark",
                   GIT_CONFIG_VALUE_1="kept")
        main = self.refs(self.project)["refs/heads/main"]
        script = ("set -e; git config user.name; git config egress.mark; "
                  "git ls-remote git@{h}:{o}/project.git refs/heads/main; "
                  "git ls-remote ssh://git@{h}/{o}/project.git "
                  "refs/heads/main; "
                  "git clone -q git@{h}:{o}/project.git ../c3; "
                  "git -C ../c3 config remote.origin.url; "
                  "git ls-remote --get-url git@{h}:{o}/project.git"
                  ).format(h=HOST, o=self.owner)
        r = self.erun(script, env=env)
        self.assertEqual(r.rc, 0, r)
        out = r.stdout.splitlines()
        self.assertEqual(out[0:2], ["Kept Name", "kept"])
        self.assertEqual(out[2:4], ["%s\trefs/heads/main" % main] * 2)
        self.assertEqual(out[4], "git@%s:%s/project.git" % (HOST, self.owner))
        self.assertEqual(out[5], self.url)
        self.assertTrue(os.path.exists(self.tmp.join("c3", "README")))
        # and it really went through the proxy to the server
        self.assertGreaterEqual(len(self.served("/project.git/info/refs")),
                                3)
        # ...which never saw an ssh attempt (GIT_SSH_COMMAND unused)
        self.assertEqual(self.denies(0), [])

    def socks(self, port, host, dport):
        raw = cf.socks5_exchange(port, cf.GREETING + cf.socks5_request(
            1, 3, host, dport), timeout=5)
        _m, reply, _rest = cf.split_socks5_answer(raw)
        return reply[1]

    def assert_ssh_refused(self, s, repo=None):
        """CONNECT and SOCKS5 to the host's ssh and git:// ports are
        refused by session s with rule "git-ssh", and so is `egress-run
        connect` (ssh's ProxyCommand) inside COMMAND (with --git-repo
        repo when given): five deny events."""
        for port in (22, 9418):
            with self.subTest(port=port):
                r = s.request(b"CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n"
                              b"\r\n" % (HOST.encode(), port,
                                         HOST.encode(), port),
                              until=bf.head_complete)
                self.assertEqual(r.status, 403, r)
                self.assertEqual(self.socks(s.port, HOST, port), 2)
        r = self.erun("%s connect %s 22 </dev/null; echo rc=$?"
                      % (shlex.quote(h.egress_bin()), HOST), repo=repo)
        self.assertIn("rc=", r.stdout, r)
        self.assertNotIn("rc=0", r.stdout, r)
        d = self.denies(5)
        self.assertEqual(sorted((x["door"], x["port"], x["rule"])
                                for x in d),
                         [("connect", 22, "git-ssh")] * 2 +
                         [("connect", 9418, "git-ssh"),
                          ("socks5", 22, "git-ssh"),
                          ("socks5", 9418, "git-ssh")])

    def test_ssh_and_other_ports_of_the_host_refused(self):
        s = bf.session(self, env=self.genv, args=self.args())
        self.assert_ssh_refused(s)
        # the intercepted port still works
        r = s.curl("--cacert", s.env["SSL_CERT_FILE"], "-o", "/dev/null",
                   "-w", "%{http_code}",
                   self.url + "/info/refs?service=git-upload-pack")
        self.assertEqual(r[1], "200", r)

    def test_ssh_refused_when_the_repo_names_no_port(self):
        # --git-repo HOST/OWNER/REPO without a port (the usual
        # github.com/acme/widget) guards the HTTP(S) ports, not ssh's or
        # git://'s: CONNECT and SOCKS5 there are refused with "git-ssh",
        # not intercepted (ssh would only fail on the TLS); so is
        # `egress-run connect` inside COMMAND.
        repo = "%s/%s/project" % (HOST, self.owner)
        s = bf.session(self, env=self.genv, args=self.args(repo=repo))
        self.assert_ssh_refused(s, repo=repo)
        # ...while the HTTPS port, unnamed, is intercepted and guarded
        r = self.erun("git ls-remote %s refs/heads/main; git ls-remote %s"
                      % (self.url, self.other_url), repo=repo)
        self.assertIn("refs/heads/main", r.stdout, r)
        self.assertIn("other.git is not allowed (not named by --git-repo)",
                      r.stderr)

if __name__ == "__main__":
    unittest.main()
