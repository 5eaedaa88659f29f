"""Real git against builtin/pktline.c (issue 8).

git push talks smart HTTP to a tiny python server on loopback that records
each git-receive-pack request, parses it with pktline_step() (through
`test_pktline --parse`, in 5-byte pieces) and answers with the status
report pktline_report() builds (`test_pktline --report`), in the side-band
the client asked for. The checks: git prints the refusal the way it prints
a real server's (`! [remote rejected] main -> main (reason)`), and the
parser reads what real git sends -- updates, creations, deletions without
a pack, force pushes, atomic pushes, push options, SHA-256 repositories and
SSH-signed push certificates.
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
ZERO64 = "0" * 64
REASON = "egress-run: force-push blocked"

CAP_REPORT_STATUS = 0x001
CAP_REPORT_STATUS_V2 = 0x002
CAP_SIDE_BAND_64K = 0x008
CAP_ATOMIC = 0x010
CAP_PUSH_OPTIONS = 0x020
CAP_SHA256 = 0x100
CAP_PUSH_CERT = 0x200


def helper():
    """tests/unit/test_pktline next to the egress-run under test."""
    path = os.path.join(os.path.dirname(egress_bin()), "tests", "unit",
                        "test_pktline")
    if not os.access(path, os.X_OK):
        raise unittest.SkipTest("no test_pktline at " + path)
    return path


def pkt(data):
    if isinstance(data, str):
        data = data.encode()
    return b"%04x" % (len(data) + 4) + data


class Parsed:
    """What `test_pktline --parse` printed."""

    def __init__(self, text):
        self.commands, self.options, self.result = [], [], {}
        for line in text.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "command":
                parts = rest.split(" ")
                self.commands.append(parts)
            elif kind == "option":
                self.options.append(rest)
            elif kind == "result":
                words = rest.split(" ")
                self.result["status"] = words[0]
                for w in words[1:]:
                    k, _, v = w.partition("=")
                    self.result[k] = v
        self.caps = int(self.result.get("caps", "0"), 16)


class GitServer:
    """Smart HTTP, receive-pack only: advertises refs and caps, records
    requests, answers every command with `reason` ("" for ok)."""

    def __init__(self, tool):
        self.tool = tool
        self.refs = []                  # (oid, name)
        self.caps = ("report-status report-status-v2 delete-refs "
                     "side-band-64k quiet atomic ofs-delta push-options "
                     "agent=git/2.39.5")
        self.zero = ZERO
        self.reason = REASON
        self.message = ""
        self.bodies, self.parsed = [], []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                if "service=git-receive-pack" not in self.path:
                    self.send_error(403)
                    return
                adv = pkt("# service=git-receive-pack\n") + b"0000"
                refs = server.refs or [(server.zero, "capabilities^{}")]
                for i, (oid, name) in enumerate(refs):
                    line = "%s %s" % (oid, name)
                    if i == 0:
                        line += "\0" + server.caps
                    adv += pkt(line + "\n")
                adv += b"0000"
                self.reply(adv,
                           "application/x-git-receive-pack-advertisement")

            def do_POST(self):
                if not self.path.endswith("/git-receive-pack"):
                    self.send_error(403)
                    return
                body = self.read_body()
                server.bodies.append(body)
                parsed = server.parse(body)
                server.parsed.append(parsed)
                args = [server.tool, "--report", hex(parsed.caps),
                        server.message]
                for c in parsed.commands:
                    args += [c[2], server.reason]
                report = subprocess.run(args, capture_output=True,
                                        check=True).stdout
                self.reply(report, "application/x-git-receive-pack-result")

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
                n = int(self.headers.get("Content-Length", "0"))
                return self.rfile.read(n)

            def reply(self, data, ctype):
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.url = "http://127.0.0.1:%d/repo.git" % self.httpd.server_port
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def parse(self, body):
        out = subprocess.run([self.tool, "--parse"], input=body,
                             capture_output=True)
        return Parsed(out.stdout.decode())

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class PktlineGitTest(unittest.TestCase):

    def setUp(self):
        self.tool = helper()
        self.tmp = tempfile.mkdtemp(prefix="egress-pktline.")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.server = GitServer(self.tool)
        self.addCleanup(self.server.stop)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.tmp,
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0",
            "LC_ALL": "C",
        }
        self.repo = os.path.join(self.tmp, "work")

    def git(self, *args, check=True):
        r = subprocess.run(["git", "-c", "user.name=T", "-c",
                            "user.email=t@example.com", "-c",
                            "protocol.version=0"] + list(args),
                           cwd=self.repo, env=self.env, capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            self.fail("git %s: %s" % (" ".join(args), r.stderr))
        return r

    def init(self, *extra):
        os.makedirs(self.repo)
        self.git("init", "-q", "-b", "main", *extra)
        self.commit("one")
        self.git("remote", "add", "origin", self.server.url)

    def commit(self, msg):
        with open(os.path.join(self.repo, "f"), "a") as f:
            f.write(msg + "\n")
        self.git("add", "f")
        self.git("commit", "-q", "-m", msg)
        return self.git("rev-parse", "HEAD").stdout.strip()

    def head(self):
        return self.git("rev-parse", "HEAD").stdout.strip()

    def only_request(self):
        self.assertEqual(len(self.server.parsed), 1, self.server.parsed)
        p = self.server.parsed[0]
        self.assertEqual(p.result["status"], "ok", p.result)
        self.assertEqual(p.result["done"], "1")
        return p

    # ---------------------------------------------------------------- tests

    def test_refused_push_shows_remote_rejected_with_reason(self):
        self.init()
        r = self.git("push", "origin", "main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main -> main (%s)" % REASON,
                      r.stderr)
        self.assertNotIn("RPC failed", r.stderr)
        p = self.only_request()
        self.assertEqual(p.commands, [[ZERO, self.head(), "refs/heads/main"]])
        # git asks for report-status-v2 when offered; the v1 report
        # (ok/ng lines) is what v2 reads too
        self.assertTrue(p.caps & CAP_REPORT_STATUS_V2)
        self.assertTrue(p.caps & CAP_SIDE_BAND_64K)
        self.assertEqual(p.result["pack"], "1")
        self.assertEqual(p.result["rest"], "PACK")
        body = self.server.bodies[0]
        self.assertEqual(body[int(p.result["offset"]):][:4], b"PACK")

    def test_message_on_channel_two_is_printed_as_remote(self):
        self.init()
        self.server.message = "egress-run: the whole push was refused"
        r = self.git("push", "origin", "main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("remote: egress-run: the whole push was refused",
                      r.stderr)
        self.assertIn("[remote rejected] main -> main", r.stderr)

    def test_ok_report_is_a_successful_push(self):
        self.init()
        self.server.reason = ""
        r = self.git("push", "origin", "main", check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("* [new branch]      main -> main", r.stderr)

    def test_report_without_side_band(self):
        self.server.caps = "report-status delete-refs ofs-delta"
        self.init()
        r = self.git("push", "origin", "main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main -> main (%s)" % REASON,
                      r.stderr)
        p = self.only_request()
        self.assertTrue(p.caps & CAP_REPORT_STATUS)
        self.assertFalse(p.caps & CAP_SIDE_BAND_64K)

    def test_force_push_carries_the_old_oid(self):
        self.init()
        base = self.head()
        remote = self.commit("two")
        self.git("reset", "-q", "--hard", base)
        local = self.commit("rewritten")
        self.server.refs = [(remote, "refs/heads/main")]
        r = self.git("push", "--force", "origin", "main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main -> main (%s)" % REASON,
                      r.stderr)
        p = self.only_request()
        self.assertEqual(p.commands, [[remote, local, "refs/heads/main"]])

    def test_delete_sends_no_pack(self):
        self.init()
        self.server.refs = [(self.head(), "refs/heads/main")]
        self.server.reason = "egress-run: deleting branches is blocked"
        r = self.git("push", "origin", ":main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main (egress-run: deleting "
                      "branches is blocked)", r.stderr)
        p = self.only_request()
        self.assertEqual(p.commands, [[self.head(), ZERO, "refs/heads/main"]])
        self.assertEqual(p.result["pack"], "0")
        self.assertEqual(int(p.result["offset"]), len(self.server.bodies[0]))

    def test_atomic_push_of_two_refs(self):
        self.init()
        self.git("branch", "feature")
        r = self.git("push", "--atomic", "origin", "main", "feature",
                     check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main -> main (%s)" % REASON,
                      r.stderr)
        self.assertIn("! [remote rejected] feature -> feature (%s)" % REASON,
                      r.stderr)
        p = self.only_request()
        self.assertTrue(p.caps & CAP_ATOMIC)
        self.assertEqual(sorted(c[2] for c in p.commands),
                         ["refs/heads/feature", "refs/heads/main"])

    def test_push_options(self):
        self.init()
        r = self.git("push", "-o", "ci.skip", "-o", "topic=a b", "origin",
                     "main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        p = self.only_request()
        self.assertTrue(p.caps & CAP_PUSH_OPTIONS)
        self.assertEqual(p.options, ["ci.skip", "topic=a b"])
        self.assertEqual(p.result["rest"], "PACK")

    def test_sha256_repository(self):
        self.server.caps += " object-format=sha256"
        self.server.zero = ZERO64
        self.init("--object-format=sha256")
        r = self.git("push", "origin", "main", check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main -> main (%s)" % REASON,
                      r.stderr)
        p = self.only_request()
        self.assertEqual(p.result["oidlen"], "64")
        self.assertTrue(p.caps & CAP_SHA256)
        self.assertEqual(p.commands, [[ZERO64, self.head(),
                                       "refs/heads/main"]])

    def test_signed_push_certificate(self):
        if shutil.which("ssh-keygen") is None:
            self.skipTest("no ssh-keygen")
        key = os.path.join(self.tmp, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        key], check=True, env=self.env)
        self.server.caps += " push-cert=1700000000-abcdef"
        self.init()
        self.git("config", "gpg.format", "ssh")
        self.git("config", "user.signingkey", key)
        r = self.git("push", "--signed", "-o", "topic=x", "origin", "main",
                     check=False)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("! [remote rejected] main -> main (%s)" % REASON,
                      r.stderr)
        p = self.only_request()
        self.assertTrue(p.caps & CAP_PUSH_CERT)
        self.assertEqual(p.commands,
                         [[ZERO, self.head(), "refs/heads/main", "cert"]])
        self.assertEqual(p.options, ["topic=x"])
        self.assertIn(b"-----BEGIN SSH SIGNATURE-----", self.server.bodies[0])


if __name__ == "__main__":
    unittest.main()
