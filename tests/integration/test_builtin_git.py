"""git over plain http through the built-in proxy (issue 3): a bare
repository served by git http-backend behind nginx + fcgiwrap; git clone
and git push run inside COMMAND with nothing but the bouquet (http.proxy
comes from the environment), allowed and denied.

The server's name (git.test) exists only in the proxy's --resolve pin, so
a git that bypassed the proxy could not even resolve it.
"""

import os
import subprocess
import unittest

import builtin_fixtures as bf
from harness import EgressTestCase, wait_port

GIT_LOCATION = """
    location ~ ^/git(/.*)$ {
        client_max_body_size 0;
        fastcgi_pass unix:@@sock@@;
        fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
        fastcgi_param GIT_PROJECT_ROOT @@repos@@;
        fastcgi_param GIT_HTTP_EXPORT_ALL "";
        fastcgi_param REMOTE_USER tester;
        fastcgi_param PATH_INFO $1;
        fastcgi_param QUERY_STRING $query_string;
        fastcgi_param REQUEST_METHOD $request_method;
        fastcgi_param CONTENT_TYPE $content_type;
        fastcgi_param CONTENT_LENGTH $content_length;
        fastcgi_param SERVER_PROTOCOL $server_protocol;
        fastcgi_param GATEWAY_INTERFACE CGI/1.1;
        fastcgi_param REMOTE_ADDR $remote_addr;
    }
"""


class BuiltinGitTest(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.home = self.tmp.mkdir("home")
        self.genv = bf.h.clean_env({
            "HOME": self.home, "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example",
            "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example"})
        repos = self.tmp.mkdir("repos")
        work = self.tmp.mkdir("seed")
        self.git("init", "-q", "-b", "main", work)
        with open(os.path.join(work, "README"), "w") as f:
            f.write("seed\n")
        with open(os.path.join(work, "blob.bin"), "wb") as f:
            f.write(os.urandom(3 << 20))   # a pack of some size
        self.git("-C", work, "add", ".")
        self.git("-C", work, "commit", "-q", "-m", "seed")
        self.bare = os.path.join(repos, "project.git")
        self.git("clone", "-q", "--bare", work, self.bare)
        sock = self.tmp.join("fcgi.sock")
        fcgi = self.start_proc(["fcgiwrap", "-c", "2", "-s", "unix:" + sock],
                               "fcgiwrap", env=self.genv)
        bf.h.wait_for(lambda: os.path.exists(sock) or not fcgi.alive(), 10,
                      "fcgiwrap's socket")
        self.assertTrue(fcgi.alive(), fcgi.log_text())
        self.n = self.nginx(http_extra=bf.CONN_LOG_FORMAT,
                            server_extra=bf.CONN_LOG + GIT_LOCATION
                            .replace("@@sock@@", sock)
                            .replace("@@repos@@", repos))
        wait_port("127.0.0.1", self.n.port, 10)
        self.url = "http://git.test:%d/git/project.git" % self.n.port
        self.pin = ["--resolve", "git.test:%d:127.0.0.1" % self.n.port]

    def git(self, *args):
        r = subprocess.run(["git"] + list(args), capture_output=True,
                           text=True, env=self.genv, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def run_git(self, policy, script):
        return self.egress(policy + self.pin, ["sh", "-c", script],
                           env=self.genv, cwd=self.tmp.path,
                           timeout=60)

    def heads(self):
        return self.git("--git-dir", self.bare, "rev-list", "--count", "main")

    def test_clone_and_push_through_the_proxy(self):
        script = (
            "set -e\n"
            "test -z \"$(git config --get http.proxy)\"\n"
            "git clone -q %s clone\n"
            "cd clone\n"
            "head -c 2000000 /dev/urandom > pushed.bin\n"
            "echo change >> README\n"
            "git add . && git commit -q -m change\n"
            "git push -q origin main\n" % self.url)
        r = self.run_git(["--allow", "git.test"], script)
        self.assertEqual(r.rc, 0, r)
        with open(self.tmp.join("clone", "README")) as f:
            self.assertEqual(f.read(), "seed\nchange\n")
        self.assertEqual(self.heads().strip(), "2")
        reqs = [(h, req) for _c, _n, h, req, _s in bf.conn_log(self.n)]
        self.assertTrue(reqs)
        for h, _req in reqs:
            self.assertEqual(h, "git.test:%d" % self.n.port)
        joined = "\n".join(req for _h, req in reqs)
        self.assertIn("GET /git/project.git/info/refs?service="
                      "git-upload-pack", joined)
        self.assertIn("POST /git/project.git/git-upload-pack", joined)
        self.assertIn("POST /git/project.git/git-receive-pack", joined)

    def test_clone_and_push_denied(self):
        r = self.run_git(["--allow", "other.test"],
                         "git clone -q %s clone" % self.url)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("403", r.stderr)
        self.assertFalse(os.path.exists(self.tmp.join("clone", "README")))
        # A clone made without the proxy, pushed through it: refused.
        self.git("clone", "-q", self.bare, self.tmp.join("local"))
        script = ("cd local && git remote set-url origin %s && "
                  "echo x >> README && git commit -q -am x && "
                  "git push -q origin main" % self.url)
        r = self.run_git(["--deny", "git.test"], script)
        self.assertNotEqual(r.rc, 0, r)
        self.assertIn("403", r.stderr)
        self.assertEqual(self.heads().strip(), "1")
        self.assertEqual(bf.conn_log(self.n), [])


if __name__ == "__main__":
    unittest.main()
