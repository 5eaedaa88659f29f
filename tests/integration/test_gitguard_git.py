"""Real git against the git push guard (builtin/gitguard.c, issue 8).

A small smart-HTTP server on loopback asks the guard about every request
(through `test_gitguard --judge`, which runs gitguard_request() and, for
a push, gitguard_push() on the whole body) and then either answers with the
guard's refusal -- a receive-pack status report, or a text/plain 403 -- or
hands the request to a real `git http-backend`, so that what the guard
lets through really lands in a bare repository and what it refuses
leaves that repository as it was. Pushes are made by real git: fast
forwards (linear, merges, deltified commits in OFS_DELTA and REF_DELTA
packs, SHA-256), rewritten history with --force, deletions, protected
branches, the push prefix, tags, whole-push refusals, pushes of commits
the remote already has; fetches of repositories no --git-repo names; and
ssh remotes rewritten to https by the guard's GIT_CONFIG_* variables.
"""

import http.server
import os
import shutil
import subprocess
import tempfile
import threading
import unittest

from harness import egress_bin

ZERO = "0" * 40
REPORT = "application/x-git-receive-pack-result"


def helper():
    """tests/unit/test_gitguard next to the egress-run under test."""
    path = os.path.join(os.path.dirname(egress_bin()), "tests", "unit",
                        "test_gitguard")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("no test_gitguard at " + path)
    return path


def pkt(data):
    return b"%04x" % (len(data) + 4) + data


def pkt_split(data):
    """[(payload or None for a flush)], rest"""
    out, o = [], 0
    while o + 4 <= len(data):
        n = int(data[o:o + 4], 16)
        if n == 0:
            out.append(None)
            o += 4
            continue
        out.append(data[o + 4:o + n])
        o += n
    return out, data[o:]


class Verdict:
    def __init__(self, out):
        head, reason, rule, rest = out.split(b"\n", 3)
        action, status, length, ctype = head.decode().split(" ")
        self.action = int(action)       # 0 none 1 allow 3 refuse
        self.status = int(status)
        self.ctype = ctype
        self.reason = reason.decode()
        self.rule = rule.decode()
        self.body = rest[:int(length)]


class GuardedGitServer:
    """Smart HTTP in front of `git http-backend`, the guard deciding."""

    def __init__(self, tool, root):
        self.tool = tool
        self.root = root
        self.opts = []
        self.no_ofs_delta = False
        self.verdicts = []              # (method, path, Verdict)
        self.bodies = []                # receive-pack bodies
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.handle(self, b"")

            def do_POST(self):
                server.handle(self, self.read_body())

            def read_body(self):
                if self.headers.get("Transfer-Encoding", "") == "chunked":
                    out = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            return out
                        out += self.rfile.read(size)
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get(
                    "Content-Length", "0")))

            def reply(self, status, headers, data):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.port = self.httpd.server_port
        self.authority = "127.0.0.1:%d" % self.port
        self.url = "http://%s/" % self.authority
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def judge(self, method, target, body):
        out = subprocess.run([self.tool, "--judge"] + self.opts +
                             ["--", method, self.authority, target],
                             input=body, capture_output=True, check=True,
                             timeout=60).stdout
        return Verdict(out)

    def handle(self, h, body):
        if h.path.endswith("/git-receive-pack"):
            self.bodies.append(body)
        v = self.judge(h.command, h.path, body)
        self.verdicts.append((h.command, h.path, v))
        if v.action == 3:
            h.reply(v.status, [("Content-Type", v.ctype),
                               ("X-Egress-Run-Reason", v.reason)], v.body)
            return
        if v.action == 0:
            h.reply(404, [("Content-Type", "text/plain")], b"not git\n")
            return
        self.backend(h, body)

    def backend(self, h, body):
        path, _, query = h.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": self.root,
            "GIT_HTTP_EXPORT_ALL": "1",
            "REQUEST_METHOD": h.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": h.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_ADDR": "127.0.0.1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": self.root,
        }
        if h.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = h.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env,
                             capture_output=True, timeout=60).stdout
        head, _, data = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.strip().split(" ")[0])
            elif k:
                headers.append((k, v.strip()))
        if (self.no_ofs_delta and
                query == "service=git-receive-pack" and status == 200):
            data = self.strip_ofs_delta(data)
        h.reply(status, headers, data)

    @staticmethod
    def strip_ofs_delta(adv):
        """The advertisement without ofs-delta: the client then sends
        REF_DELTA objects."""
        pkts, rest = pkt_split(adv)
        out, first = b"", True
        for p in pkts:
            if p is None:
                out += b"0000"
                continue
            if first and b"\0" in p and not p.startswith(b"#"):
                name, _, caps = p.partition(b"\0")
                caps = b" ".join(c for c in caps.rstrip(b"\n").split(b" ")
                                 if c != b"ofs-delta") + b"\n"
                p = name + b"\0" + caps
                first = False
            out += pkt(p)
        return out + rest

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class GitGuardTest(unittest.TestCase):

    def setUp(self):
        self.tool = helper()
        self.tmp = tempfile.mkdtemp(prefix="egress-gitguard.")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.root = os.path.join(self.tmp, "srv")
        os.makedirs(self.root)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.tmp,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        self.server = GuardedGitServer(self.tool, self.root)
        self.addCleanup(self.server.stop)
        self.server.opts = ["--git-repo", "127.0.0.1/acme/*"]
        self.work = os.path.join(self.tmp, "work")
        self.n = 0

    # ------------------------------------------------------------ helpers

    def run_git(self, args, cwd, check=True, env=None):
        r = subprocess.run(["git", "-c", "user.name=T", "-c",
                            "user.email=t@example.com", "-c",
                            "protocol.version=2"] + list(args),
                           cwd=cwd, env=env or self.env, capture_output=True,
                           text=True, timeout=120)
        if check and r.returncode != 0:
            self.fail("git %s: %s" % (" ".join(args), r.stderr))
        return r

    def git(self, *args, check=True):
        return self.run_git(args, self.work, check)

    def bare(self, name, *extra):
        path = os.path.join(self.root, name)
        self.run_git(["init", "-q", "--bare", "-b", "main"] + list(extra) +
                     [path], self.tmp)
        self.run_git(["config", "http.receivepack", "true"], path)
        return path

    def srv_ref(self, bare, ref):
        r = self.run_git(["rev-parse", "-q", "--verify", ref], bare,
                         check=False)
        return r.stdout.strip() or None

    def commit(self, msg=None, path="f"):
        self.n += 1
        with open(os.path.join(self.work, path), "a") as f:
            f.write("%s\n" % (msg or "line %d" % self.n))
        self.git("add", path)
        self.git("commit", "-q", "-m", msg or "commit %d" % self.n)
        return self.head()

    def head(self):
        return self.git("rev-parse", "HEAD").stdout.strip()

    def start(self, *init_extra):
        """A server repo acme/widget.git with main and feature at the
        first commit, and a clone of it."""
        bare = self.bare("acme/widget.git", *init_extra)
        os.makedirs(self.work)
        self.git("init", "-q", "-b", "main", *init_extra)
        self.commit()
        self.git("remote", "add", "origin", self.server.url +
                 "acme/widget.git")
        # seeded directly, not through the guard (main is protected)
        self.git("push", "-q", bare, "main", "main:feature")
        return bare

    def push(self, *args):
        return self.git("push", "origin", *args, check=False)

    def assert_rejected(self, r, ref, reason):
        self.assertNotEqual(r.returncode, 0, r.stderr)
        self.assertIn("! [remote rejected] %s (%s" % (ref, reason), r.stderr)
        self.assertNotIn("RPC failed", r.stderr)

    def last_push(self):
        pushes = [v for m, p, v in self.server.verdicts
                  if p.endswith("/git-receive-pack")]
        return pushes[-1]

    def pack_stats(self, body):
        out = subprocess.run([self.tool, "--pack-stats"], input=body,
                             capture_output=True, timeout=60).stdout
        return dict(kv.split("=") for kv in out.decode().split())

    # -------------------------------------------------------------- tests

    def test_fast_forward_push_lands(self):
        bare = self.start()
        self.git("checkout", "-q", "-b", "feature")
        for _ in range(3):
            tip = self.commit()
        r = self.push("feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"), tip)
        self.assertEqual(self.last_push().action, 1)

    def test_fast_forward_with_merges(self):
        bare = self.start()
        self.git("checkout", "-q", "-b", "feature")
        self.commit()
        self.git("checkout", "-q", "-b", "side", "HEAD~1")
        self.commit(path="g")
        self.commit(path="g")
        self.git("checkout", "-q", "feature")
        self.git("merge", "-q", "--no-ff", "-m", "merge side", "side")
        self.commit()
        self.git("merge", "-q", "--no-ff", "-m", "merge again", "side")
        tip = self.head()
        r = self.push("feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"), tip)

    def deltified(self, no_ofs_delta):
        bare = self.start()
        self.server.no_ofs_delta = no_ofs_delta
        self.git("checkout", "-q", "-b", "feature")
        long = ("A long commit message that stays the same from commit to "
                "commit so that git stores commits as deltas. " * 30)
        for i in range(60):
            self.commit(msg="%s\n\nnumber %d" % (long, i))
        self.git("repack", "-adfq", "--window=250", "--depth=50")
        tip = self.head()
        r = self.push("feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"), tip)
        stats = self.pack_stats(self.server.bodies[-1])
        self.assertEqual(stats["rc"], "0", stats)
        self.assertGreaterEqual(int(stats["commits"]), 60, stats)
        self.assertGreater(int(stats["delta_commits"]), 0, stats)

    def test_fast_forward_of_deltified_commits_ofs_delta(self):
        self.deltified(False)

    def test_fast_forward_of_deltified_commits_ref_delta(self):
        self.deltified(True)

    def test_force_push_refused_and_remote_unchanged(self):
        bare = self.start()
        self.git("checkout", "-q", "-b", "feature")
        base = self.head()
        remote = self.commit()
        self.assertEqual(self.push("feature").returncode, 0)
        self.git("reset", "-q", "--hard", base)
        self.commit("rewritten")
        r = self.push("--force", "feature")
        self.assert_rejected(r, "feature -> feature",
                             "egress-run: force-push blocked")
        self.assertIn("cannot prove fast-forward", r.stderr)
        self.assertIn("remote: egress-run: push refused, nothing was updated",
                      r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"), remote)
        v = self.last_push()
        self.assertEqual((v.status, v.ctype, v.rule), (200, REPORT,
                                                       "git-force"))
        # and with --git-allow-force it goes through
        self.server.opts.append("--git-allow-force")
        r = self.push("--force", "feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"),
                         self.head())

    def test_rewind_to_a_commit_the_remote_has_is_refused(self):
        bare = self.start()
        self.git("checkout", "-q", "-b", "feature")
        old = self.head()
        tip = self.commit()
        self.assertEqual(self.push("feature").returncode, 0)
        # feature back to its parent: no pack objects at all
        r = self.push("--force", "%s:feature" % old)
        self.assert_rejected(r, "%s -> feature" % old,
                             "egress-run: force-push blocked")
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"), tip)

    def test_existing_commit_cannot_be_proven(self):
        # a fast-forward to a commit the remote already has: the pack
        # holds nothing to walk, so the guard cannot prove it (issue 8:
        # asking the origin is not done)
        bare = self.start()
        self.git("checkout", "-q", "-b", "other")
        tip = self.commit()
        self.assertEqual(self.push("other").returncode, 0)
        r = self.push("other:feature")
        self.assert_rejected(r, "other -> feature",
                             "egress-run: force-push blocked: cannot prove")
        self.assertIn("is not in the pushed pack", r.stderr)
        self.assertNotEqual(self.srv_ref(bare, "refs/heads/feature"), tip)

    def test_protected_branch(self):
        bare = self.start()
        before = self.srv_ref(bare, "refs/heads/main")
        self.commit()
        r = self.push("main")
        self.assert_rejected(r, "main -> main", "egress-run: protected "
                             "branch (--git-protect main)")
        self.assertEqual(self.srv_ref(bare, "refs/heads/main"), before)
        self.assertEqual(self.last_push().rule, "git-protect main")

    def test_deletion(self):
        bare = self.start()
        r = self.push("--delete", "feature")
        self.assert_rejected(r, "feature", "egress-run: deleting a branch "
                             "is blocked (--git-allow-delete)")
        self.assertIsNotNone(self.srv_ref(bare, "refs/heads/feature"))
        self.server.opts.append("--git-allow-delete")
        r = self.push("--delete", "feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(self.srv_ref(bare, "refs/heads/feature"))
        r = self.push("--delete", "main")
        self.assert_rejected(r, "main", "egress-run: protected branch")

    def test_push_prefix(self):
        bare = self.start()
        self.server.opts += ["--git-push-prefix", "sandbox/*"]
        self.git("checkout", "-q", "-b", "sandbox/agent/1")
        tip = self.commit()
        r = self.push("sandbox/agent/1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/sandbox/agent/1"),
                         tip)
        r = self.push("HEAD:feature")
        self.assert_rejected(r, "HEAD -> feature", "egress-run: only refs "
                             "matching --git-push-prefix may be pushed "
                             "(sandbox/*)")

    def test_whole_push_refused(self):
        bare = self.start()
        self.git("checkout", "-q", "-b", "feature")
        self.commit()
        self.git("checkout", "-q", "main")
        self.git("merge", "-q", "feature")
        r = self.push("feature", "main")
        self.assert_rejected(r, "main -> main", "egress-run: protected")
        self.assert_rejected(r, "feature -> feature", "egress-run: refused "
                             "with the rest of the push (atomic)")
        self.assertNotEqual(self.srv_ref(bare, "refs/heads/feature"),
                            self.head())

    def test_tags(self):
        bare = self.start()
        self.git("tag", "-a", "-m", "v1", "v1")
        r = self.push("v1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNotNone(self.srv_ref(bare, "refs/tags/v1"))
        self.commit()
        self.git("tag", "-f", "-a", "-m", "v1 again", "v1")
        r = self.push("--force", "v1")
        self.assert_rejected(r, "v1 -> v1", "egress-run: moving a tag is "
                             "blocked")
        r = self.push("--delete", "v1")
        self.assert_rejected(r, "v1", "egress-run: deleting a tag")

    def test_unauthorized_repository(self):
        self.start()
        evil = self.bare("evil/other.git")
        self.run_git(["push", "-q", evil, "main"], self.work)
        r = self.run_git(["clone", self.server.url + "evil/other.git",
                          os.path.join(self.tmp, "c")], self.tmp,
                         check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("remote: egress-run: git access to 127.0.0.1/evil/"
                      "other.git is not allowed (not named by --git-repo)",
                      r.stderr)
        self.git("remote", "add", "evil", self.server.url + "evil/other.git")
        self.commit()
        r = self.git("push", "evil", "main:feature", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("is not allowed", r.stderr)
        self.assertIsNone(self.srv_ref(evil, "refs/heads/feature"))
        # the named one clones fine, with or without .git
        for url in ("acme/widget.git", "acme/widget"):
            dest = os.path.join(self.tmp, "ok-" + url.replace("/", "-"))
            r = self.run_git(["clone", "-q", self.server.url + url, dest],
                             self.tmp, check=False)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_sha256_repository(self):
        bare = self.start("--object-format=sha256")
        self.git("checkout", "-q", "-b", "feature")
        tip = self.commit()
        r = self.push("feature")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.srv_ref(bare, "refs/heads/feature"), tip)
        self.assertEqual(len(tip), 64)
        self.git("reset", "-q", "--hard", "HEAD~1")
        self.commit("rewritten")
        r = self.push("--force", "feature")
        self.assert_rejected(r, "feature -> feature",
                             "egress-run: force-push blocked")

    def test_ssh_remote_rewritten(self):
        out = subprocess.run([self.tool, "--git-env", "--git-repo",
                              "127.0.0.1/acme/*", "--", "GIT_CONFIG_COUNT=1",
                              "GIT_CONFIG_KEY_0=egress.mark",
                              "GIT_CONFIG_VALUE_0=kept"],
                             capture_output=True, text=True, check=True)
        env = dict(self.env)
        env.update({"GIT_CONFIG_COUNT": "1",
                    "GIT_CONFIG_KEY_0": "egress.mark",
                    "GIT_CONFIG_VALUE_0": "kept"})
        for line in out.stdout.splitlines():
            k, _, v = line.partition("=")
            env[k] = v
        for remote in ("git@127.0.0.1:acme/widget.git",
                       "ssh://git@127.0.0.1/acme/widget.git",
                       "ssh://127.0.0.1/acme/widget.git"):
            r = self.run_git(["ls-remote", "--get-url", remote], self.tmp,
                             env=env)
            self.assertEqual(r.stdout.strip(),
                             "https://127.0.0.1/acme/widget.git")
        # the user's own entry is kept
        r = self.run_git(["config", "egress.mark"], self.tmp, env=env)
        self.assertEqual(r.stdout.strip(), "kept")


if __name__ == "__main__":
    unittest.main()
