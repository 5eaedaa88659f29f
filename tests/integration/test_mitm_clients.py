"""Real clients through TLS interception with the bouquet alone (issue 6):
curl, python3-requests, node's https (through a CONNECT agent of a few
lines: Node 20 ignores proxy variables in https), wget (GnuTLS: ignores
SSL_CERT_FILE), Java's HttpsURLConnection (when a JDK is installed) and
git over https (git http-backend behind nginx TLS, on a host bound to a
secret). None is given a CA option: each trusts egress-run's ephemeral CA
only through the variable the bouquet sets for it (SSL_CERT_FILE/
CURL_CA_BUNDLE, REQUESTS_CA_BUNDLE, NODE_EXTRA_CA_CERTS, GIT_SSL_CAINFO,
WGETRC's ca_certificate, JAVA_TOOL_OPTIONS' PKCS#12 trust store); the same
client with that variable removed fails, so the variable is what made it
work.
The origin (nginx, certificate from a TestCA made at run time) records
the headers it received; --upstream-ca makes egress-run trust it.

Also the interception CA itself: ephemeral (new each run, no key on disk)
or --ca-cert/--ca-key made with openssl at run time, and a key file that
others may read refused at start (125).
"""

import os
import shutil
import subprocess
import unittest

import harness as h
import mitm_fixtures as mf
from chain_fixtures import client_result, sh_client

NODE_CLIENT = r"""
// GET argv[2] through HTTPS_PROXY: CONNECT with http.request, then TLS
// over the tunnel with tls.connect({socket}). Trust: node's own roots +
// NODE_EXTRA_CA_CERTS (nothing else is passed).
const http = require('http'), https = require('https'), tls = require('tls');
const proxy = new URL(process.env.HTTPS_PROXY || process.env.https_proxy);
const agent = new https.Agent({keepAlive: process.env.NODE_KEEPALIVE !== '0'});
agent.createConnection = function (opts, cb) {
  const target = opts.host + ':' + opts.port;
  const req = http.request({host: proxy.hostname, port: proxy.port,
                            method: 'CONNECT', path: target,
                            headers: {host: target}});
  req.once('connect', (res, socket) => {
    if (res.statusCode !== 200) {
      socket.destroy();
      cb(new Error('proxy answered ' + res.statusCode));
      return;
    }
    cb(null, tls.connect({socket, servername: opts.servername || opts.host,
                          ALPNProtocols: ['http/1.1']}));
  });
  req.once('error', cb);
  req.end();
};
setTimeout(() => { console.error('node: timed out'); process.exit(3); },
           15000).unref();
https.get(process.argv[2], {agent, headers: {
  'Authorization': 'Bearer client-' + process.env.MYKEY,
  'X-Other': 'node-' + process.env.MYKEY}}, (res) => {
  let body = '';
  res.on('data', (d) => { body += d; });
  res.on('end', () => {
    process.stdout.write(res.statusCode + ' ' + body);
    process.exit(res.statusCode === 200 ? 0 : 1);
  });
}).on('error', (e) => {
  console.error('node: ' + e.message);
  process.exit(2);
});
"""

PY_CLIENT = r"""
import os, sys, requests
r = requests.get(sys.argv[1], timeout=15, headers={
    "Authorization": "Bearer client-" + os.environ["MYKEY"],
    "X-Other": "py-" + os.environ["MYKEY"]})
sys.stdout.write("%d %s" % (r.status_code, r.text))
sys.exit(0 if r.status_code == 200 else 1)
"""

# Java: GET argv[0]; proxy and trust only from JAVA_TOOL_OPTIONS.
JAVA_CLIENT = r"""
import java.net.HttpURLConnection;
import java.net.URL;

public class Get {
    public static void main(String[] a) throws Exception {
        HttpURLConnection c = (HttpURLConnection) new URL(a[0])
            .openConnection();
        c.setConnectTimeout(15000);
        c.setReadTimeout(15000);
        c.setRequestProperty("X-Other", "java-" + System.getenv("MYKEY"));
        int code = c.getResponseCode();
        String body = new String(c.getInputStream().readAllBytes());
        System.out.print(code + " " + body);
        System.exit(code == 200 ? 0 : 1);
    }
}
"""

GIT_LOCATION = """
    location ~ ^/git(/.*)$ {
        if ($http_authorization != "Bearer @@value@@") { return 401; }
        client_max_body_size 0;
        fastcgi_pass unix:@@sock@@;
        fastcgi_param SCRIPT_FILENAME /usr/lib/git-core/git-http-backend;
        fastcgi_param GIT_PROJECT_ROOT @@repos@@;
        fastcgi_param GIT_HTTP_EXPORT_ALL "";
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

# Every trust variable of the bouquet: removed for the negative controls.
TRUST_VARS = ("SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE",
              "REQUESTS_CA_BUNDLE", "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO")


def without(*names):
    out = []
    for n in names:
        out += ["-u", n]
    return "env " + " ".join(out) + " "


class ClientsThroughInterception(mf.MitmCase):

    def setUp(self):
        super().setUp()
        self.value = mf.new_secret()
        self.n = self.echo_nginx()
        self.url = "https://api.test:%d/echo" % self.n.https_port
        self.out = self.tmp.mkdir("out")
        self.env = h.clean_env({"MYKEY": self.value})

    def args(self):
        return (["--upstream-ca", self.testca.cert, "--allow", "api.test",
                 "--secret", "MYKEY:api.test"] + mf.pins(self.n.https_port))

    def test_curl_requests_and_node_trust_the_bouquet_alone(self):
        node = self.tmp.write("client.js", NODE_CLIENT)
        py = self.tmp.write("client.py", PY_CLIENT)
        u = self.url
        curl = ('curl -sS --max-time 15 -H "Authorization: Bearer '
                'client-$MYKEY" -H "X-Other: curl-$MYKEY" ' + u)
        script = (h.SH_VIA_PROXY +
                  'echo "$MYKEY" > %s/placeholder; ' % self.out +
                  sh_client("curl", self.out, curl) +
                  sh_client("py", self.out, "%s %s %s" % (h.PY, py, u)) +
                  sh_client("node", self.out, without(
                      "SSL_CERT_FILE", "SSL_CERT_DIR") +
                      "/usr/bin/node %s %s" % (node, u)) +
                  # The same clients without their trust variable.
                  sh_client("curl_no", self.out, without(*TRUST_VARS) +
                            curl) +
                  sh_client("py_no", self.out, without(*TRUST_VARS) +
                            "%s %s %s" % (h.PY, py, u)) +
                  sh_client("node_no", self.out, without(*TRUST_VARS) +
                            "/usr/bin/node %s %s" % (node, u)))
        r = self.egress(self.args(), ["sh", "-c", script], env=self.env)
        self.assertEqual(r.rc, 0, r)
        with open(os.path.join(self.out, "placeholder")) as f:
            ph = f.read().strip()
        self.assertNotEqual(ph, self.value)
        self.assertIn("EGRESSRUN", ph)
        for name in ("curl", "py", "node"):
            rc, out, err = client_result(self.out, name)
            self.assertEqual(rc, 0, "%s failed: %s %s" % (name, out, err))
            self.assertIn("host=[api.test]", out, name)
            self.assertIn("auth=[Bearer %s]" % self.value, out, name)
        for name in ("curl_no", "py_no", "node_no"):
            rc, out, err = client_result(self.out, name)
            self.assertNotEqual(rc, 0, "%s trusted egress-run's CA without "
                                "its bouquet variable: %s" % (name, out))
            self.assertRegex(err.lower(), r"certificate|ssl|tls", name)
        # The origin got the value, injected over whatever the client
        # sent, and each client's own placeholder swapped in X-Other.
        log = mf.header_log(self.n, 3)
        self.assertEqual(len(log), 3, log)
        for rec, prefix in zip(log, ("curl", "py", "node")):
            self.assertEqual(rec["host"], "api.test")
            self.assertEqual(rec["auth"], "Bearer " + self.value)
            self.assertEqual(rec["other"], "%s-%s" % (prefix, self.value))
        self.assertNotIn(self.value, r.stderr)
        self.assert_no_state_left()

    def test_wget_and_java_trust_their_own_forms_of_the_bundle(self):
        # wget reads WGETRC's ca_certificate; Java the PKCS#12 trust
        # store that JAVA_TOOL_OPTIONS names (built from the system roots,
        # partly from a cache: a second run uses it).
        java = shutil.which("java")
        jsrc = self.tmp.write("Get.java", JAVA_CLIENT)
        u = self.url
        wget = ('wget -q -O- -t 1 -T 15 --header "X-Other: wget-$MYKEY" ' +
                u)
        no_trust = ('JAVA_TOOL_OPTIONS="$(echo "$JAVA_TOOL_OPTIONS" | '
                    'sed "s/-Djavax\\.net\\.ssl\\.[^ ]*//g")" ')
        script = (h.SH_VIA_PROXY +
                  sh_client("wget", self.out, without(*TRUST_VARS) + wget) +
                  sh_client("wget_no", self.out,
                            without("WGETRC", *TRUST_VARS) + wget))
        if java:
            script += (
                sh_client("java", self.out, without(*TRUST_VARS) +
                          "%s %s %s" % (java, jsrc, u)) +
                sh_client("java_no", self.out, without(*TRUST_VARS) +
                          no_trust + "%s %s %s" % (java, jsrc, u)))
        env = dict(self.env, XDG_CACHE_HOME=self.tmp.mkdir("cache"))
        names = ["wget"] + (["java"] if java else [])
        for run in range(2):
            r = self.egress(self.args(), ["sh", "-c", script], env=env)
            self.assertEqual(r.rc, 0, r)
            for name in names:
                rc, out, err = client_result(self.out, name)
                self.assertEqual(rc, 0, "run %d: %s failed: %s %s"
                                 % (run, name, out, err[-2000:]))
                self.assertIn("host=[api.test]", out, name)
                self.assertIn("auth=[Bearer %s]" % self.value, out, name)
            for name in [n + "_no" for n in names]:
                rc, out, err = client_result(self.out, name)
                self.assertNotEqual(rc, 0, "%s trusted egress-run's CA "
                                    "without its trust form: %s"
                                    % (name, out))
                if name == "java_no":
                    self.assertRegex(err, r"PKIX|SSLHandshake|certificat",
                                     name)
        # The roots' part of the Java store is cached, privately.
        cache = os.path.join(env["XDG_CACHE_HOME"], "egress-run")
        parts = [f for f in os.listdir(cache) if f.endswith(".p12part")]
        self.assertEqual(len(parts), 1, os.listdir(cache))
        self.assertEqual(os.stat(cache).st_mode & 0o777, 0o700)
        self.assertEqual(os.stat(os.path.join(cache, parts[0])).st_mode &
                         0o777, 0o600)
        if not java:
            self.skipTest("no java: only wget was checked")

    # Bug A (conn.c, lead): once a response is complete on a connection
    # that is not kept alive, conn_finish() shuts the socket down as soon
    # as the TLS filter's output is empty, before the encrypted bytes in
    # the underlying bufferevent are written: the client gets EOF instead
    # of its response ("socket hang up", "Empty reply from server").
    def test_clients_that_close_after_one_request_get_their_answer(self):
        node = self.tmp.write("client.js", NODE_CLIENT)
        u = self.url
        c = "curl -sS --max-time 15 "
        script = (h.SH_VIA_PROXY +
                  sh_client("close", self.out,
                            c + "-H 'Connection: close' " + u) +
                  sh_client("http10", self.out, c + "-0 " + u) +
                  sh_client("node", self.out, "NODE_KEEPALIVE=0 "
                            "/usr/bin/node %s %s" % (node, u)) +
                  sh_client("py", self.out, "%s -c \"import requests,sys;"
                            "r=requests.get(sys.argv[1],timeout=15,headers="
                            "{'Connection':'close'});print(r.text)\" %s"
                            % (h.PY, u)))
        r = self.egress(self.args(), ["sh", "-c", script], env=self.env)
        self.assertEqual(r.rc, 0, r)
        failed = {}
        for name in ("close", "http10", "node", "py"):
            rc, out, err = client_result(self.out, name)
            if rc != 0 or "auth=[Bearer %s]" % self.value not in out:
                failed[name] = err.strip()[-200:]
        self.assertEqual(failed, {})

    def test_git_clone_and_fetch_over_https_with_the_secret(self):
        genv = h.clean_env({
            "MYKEY": self.value, "HOME": self.tmp.mkdir("home"),
            "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
            "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example",
            "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example"})

        def git(*args):
            p = subprocess.run(["git"] + list(args), capture_output=True,
                               text=True, env=genv, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            return p.stdout

        repos = self.tmp.mkdir("repos")
        seed = self.tmp.mkdir("seed")
        git("init", "-q", "-b", "main", seed)
        with open(os.path.join(seed, "README"), "w") as f:
            f.write("seed\n")
        with open(os.path.join(seed, "blob.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
        git("-C", seed, "add", ".")
        git("-C", seed, "commit", "-q", "-m", "seed")
        bare = os.path.join(repos, "project.git")
        git("clone", "-q", "--bare", seed, bare)
        sock = self.tmp.join("fcgi.sock")
        fcgi = self.start_proc(["fcgiwrap", "-c", "2", "-s", "unix:" + sock],
                               "fcgiwrap", env=genv)
        h.wait_for(lambda: os.path.exists(sock) or not fcgi.alive(), 10,
                   "fcgiwrap's socket")
        self.assertTrue(fcgi.alive(), fcgi.log_text())
        g = self.echo_nginx(names=("git.test",), server_extra=GIT_LOCATION
                            .replace("@@value@@", self.value)
                            .replace("@@sock@@", sock)
                            .replace("@@repos@@", repos))
        url = "https://git.test:%d/git/project.git" % g.https_port
        args = (["--upstream-ca", self.testca.cert, "--allow", "git.test",
                 "--secret", "MYKEY:git.test"] +
                mf.pins(g.https_port, ("git.test",)))

        def run(script):
            return self.egress(args, ["sh", "-c", script], env=genv,
                               cwd=self.tmp.path, timeout=60)

        r = run("set -e; test -n \"$GIT_SSL_CAINFO\"; "
                "test -z \"$(git config --get http.sslCAInfo)\"; "
                "git clone -q %s clone" % url)
        self.assertEqual(r.rc, 0, r)
        with open(self.tmp.join("clone", "README")) as f:
            self.assertEqual(f.read(), "seed\n")
        # A new commit on the server, fetched through the interception.
        with open(os.path.join(seed, "README"), "a") as f:
            f.write("second\n")
        git("-C", seed, "commit", "-q", "-am", "second")
        git("-C", seed, "push", "-q", bare, "main")
        r = run("git -C clone fetch -q origin && "
                "git -C clone rev-list --count origin/main")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout.strip(), "2")
        # Without GIT_SSL_CAINFO (and the other trust variables) git does
        # not trust the interception.
        r = run(without(*TRUST_VARS) + "git -C clone fetch -q origin")
        self.assertNotEqual(r.rc, 0, r)
        self.assertRegex(r.stderr.lower(), r"certificate|ssl|tls")
        # Every request the origin answered carried the injected value
        # (nginx refuses anything else with 401).
        log = mf.header_log(g, 4)
        self.assertTrue(log)
        self.assertIn("info/refs?service=git-upload-pack",
                      " ".join(x["request"] for x in log))
        for rec in log:
            self.assertEqual((rec["auth"], rec["status"]),
                             ("Bearer " + self.value, 200), rec)
        self.assertNotIn(self.value, r.stderr)


class InterceptionCA(mf.MitmCase):

    def setUp(self):
        super().setUp()
        self.value = mf.new_secret()
        self.n = self.echo_nginx()
        self.env = h.clean_env({"MYKEY": self.value})
        self.base = (["--upstream-ca", self.testca.cert, "--allow",
                      "api.test", "--secret", "MYKEY:api.test"] +
                     mf.pins(self.n.https_port))
        self.url = "https://api.test:%d/echo" % self.n.https_port

    def user_ca(self, mode, kind=("ec", "-pkeyopt",
                                  "ec_paramgen_curve:P-256")):
        d = self.tmp.mkdir("userca-%o-%s" % (mode, kind[0].replace(":", "")))
        cert, key = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
        h._openssl("req", "-x509", "-newkey", *kind, "-nodes", "-days", "2",
                   "-subj", "/CN=Example Corp Interception CA",
                   "-keyout", key, "-out", cert,
                   "-addext", "basicConstraints=critical,CA:TRUE",
                   "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        os.chmod(key, mode)
        return cert, key

    def issuer_script(self, copy_to):
        """curl -v (the issuer it saw) plus a copy of the state dir's
        CA certificate and of its file names."""
        return (h.SH_VIA_PROXY +
                'cp "$(dirname "$SSL_CERT_FILE")/egress-run-ca.pem" %s.ca; '
                'ls "$(dirname "$SSL_CERT_FILE")" > %s.ls; '
                'cat "$(dirname "$SSL_CERT_FILE")"/* > %s.all; '
                'curl -sS -v --max-time 15 %s'
                % (copy_to, copy_to, copy_to, self.url))

    def test_ephemeral_ca_is_new_each_run_and_its_key_stays_in_memory(self):
        seen = []
        for i in range(2):
            p = self.tmp.join("run%d" % i)
            r = self.egress(self.base, ["sh", "-c", self.issuer_script(p)],
                            env=self.env)
            self.assertEqual(r.rc, 0, r)
            self.assertIn("auth=[Bearer %s]" % self.value, r.stdout)
            self.assertRegex(r.stderr, r"issuer: .*CN=egress-run ephemeral "
                             r"CA")
            with open(p + ".ca") as f:
                seen.append(f.read())
            with open(p + ".all", "rb") as f:
                allfiles = f.read()
            self.assertNotIn(b"PRIVATE KEY", allfiles)
            text = subprocess.run(["openssl", "x509", "-noout", "-text"],
                                  input=seen[-1], capture_output=True,
                                  text=True).stdout
            self.assertRegex(text, r"CA:TRUE")
            self.assertRegex(text, r"Certificate Sign")
        self.assertNotEqual(seen[0], seen[1], "the same CA twice")

    def test_user_ca_cert_and_key_made_with_openssl(self):
        for kind in (("ec", "-pkeyopt", "ec_paramgen_curve:P-256"),
                     ("rsa:2048",), ("ed25519",)):
            cert, key = self.user_ca(0o600, kind)
            p = self.tmp.join("user-" + kind[0].replace(":", ""))
            r = self.egress(self.base + ["--ca-cert", cert, "--ca-key", key],
                            ["sh", "-c", self.issuer_script(p)],
                            env=self.env)
            self.assertEqual(r.rc, 0, (kind, r))
            self.assertIn("auth=[Bearer %s]" % self.value, r.stdout)
            self.assertRegex(r.stderr, r"issuer: .*CN=Example Corp "
                             r"Interception CA")
            with open(p + ".ca") as f, open(cert) as g:
                self.assertEqual(f.read().strip(), g.read().strip())
            with open(p + ".all", "rb") as f:
                self.assertNotIn(b"PRIVATE KEY", f.read())

    def test_ca_key_readable_by_others_is_refused_at_start(self):
        for mode in (0o644, 0o640):
            cert, key = self.user_ca(mode)
            ran = self.tmp.join("ran-%o" % mode)
            r = self.egress(self.base + ["--ca-cert", cert, "--ca-key", key],
                            ["sh", "-c", "touch " + ran], env=self.env)
            self.assertEqual(r.rc, 125, r)
            self.assertFalse(os.path.exists(ran), "COMMAND ran")
            self.assertRegex(r.stderr, r"^egress-run: .*%s" % key)
            self.assertRegex(r.stderr, r"readable by others|chmod 600")
            self.assertNotIn("BEGIN", r.stderr)
            self.assertEqual(len(r.stderr.strip().splitlines()), 1, r)
            self.assert_no_state_left()


if __name__ == "__main__":
    unittest.main()
