"""Fixtures for the --isolate integration tests (issue 10), on top of
harness.py, builtin_fixtures.py, mitm_fixtures.py and chain_fixtures.py
(owned by others: extend here, not there).

  - attempt() / run_attempts(): COMMAND is a small driver (Debian's
    python3) that runs a list of clients in turn inside the namespace,
    each bounded in time, and saves each one's exit status, wall time,
    stdout and stderr as JSON. One egress-run run checks many clients, and
    each client's time is its own (egress-run's start-up is not counted).
  - client programs: node https.get / fetch (Node 20 ignores every proxy
    variable in both), a raw python socket, UDP datagrams, getaddrinfo.
  - UdpSink: a UDP socket on the host's 127.0.0.1 that collects datagrams.
  - run_wrapped(): egress-run behind a prefix (setpriv to become nobody,
    unshare for a private user/mount namespace) -- harness.run_egress has
    no prefix.
  - Nobody: user nobody's directories (a TMPDIR it may write) and argv
    prefix; nobody_can_run() says whether it can reach the binary.
  - userns_ok(), userns_switched_off(tc): can this kernel make user +
    network namespaces; `sysctl user.max_user_namespaces=0` (root only)
    undone in a finally and again at cleanup.
  - GIT_LOCATION: git http-backend behind nginx through fcgiwrap.

Binds 127.0.0.1 only; everything started is stopped by the test's cleanup.
"""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import unittest

import builtin_fixtures as bf
import harness as h

PY = h.PY
NOBODY = 65534
SETPRIV_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY,
                  "--clear-groups"]
# A refusal inside the namespace takes less than this; a TCP connect
# that waits for an answer takes at least a second (the first SYN retry).
FAST = 1.0
# A whole client (start-up included) that fails fast ends within this,
# even on a loaded machine.
SLOW_START = 5.0
DROP_NO_PROXY = ("NO_PROXY", "no_proxy")

# ------------------------------------------------------------ the driver

DRIVER = r'''
import json, os, subprocess, sys, time
spec_path, out_path = sys.argv[1], sys.argv[2]
with open(spec_path) as f:
    spec = json.load(f)
results = {}
for a in spec:
    env = dict(os.environ)
    for k in a["unset"]:
        env.pop(k, None)
    env.update(a["env"])
    t0 = time.monotonic()
    try:
        p = subprocess.run(a["argv"], env=env, capture_output=True,
                           timeout=a["timeout"], stdin=subprocess.DEVNULL,
                           cwd=a["cwd"])
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        rc, out, err = "timeout", e.stdout or b"", e.stderr or b""
    except OSError as e:
        rc, out, err = "oserror", b"", str(e).encode()
    results[a["name"]] = {"rc": rc, "elapsed": time.monotonic() - t0,
                          "out": out.decode(errors="replace"),
                          "err": err.decode(errors="replace")}
with open(out_path + ".tmp", "w") as f:
    json.dump(results, f)
os.rename(out_path + ".tmp", out_path)
'''


def attempt(name, argv, env=None, timeout=10, keep_no_proxy=False,
            cwd=None):
    """One client for the driver. NO_PROXY is dropped by default (the
    bouquet exempts 127.0.0.1, where the test origins live): a client that
    honoured proxy variables would then use the proxy."""
    return {"name": name, "argv": list(argv), "env": dict(env or {}),
            "unset": [] if keep_no_proxy else list(DROP_NO_PROXY),
            "timeout": timeout, "cwd": cwd}


def run_wrapped(prefix, args, cmd, env=None, tmpdir=None, timeout=60,
                input=None):
    """PREFIX... egress-run ARGS -- CMD, as harness.run_egress does it
    (own process group, killed on timeout): a Result."""
    argv = list(prefix) + [h.egress_bin()] + list(args) + ["--"] + list(cmd)
    env = h.clean_env() if env is None else dict(env)
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
                         else subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        raise AssertionError("did not finish in %ss: %s\n--- stderr\n%s"
                             % (timeout, shlex.join(argv),
                                err.decode(errors="replace")))
    return h.Result(p.returncode, out.decode(errors="replace"),
                    err.decode(errors="replace"), time.monotonic() - t0)


def run_attempts(tc, args, attempts, env=None, prefix=(), tmpdir=None,
                 outdir=None, timeout=90):
    """egress-run ARGS -- (the driver running attempts). Returns the
    Result and {name: {rc, elapsed, out, err}} ({} if the driver never
    finished: the Result says why)."""
    n = time.monotonic_ns()
    outdir = outdir or tc.tmp.path
    spec = tc.tmp.write("attempts-%d.json" % n, json.dumps(attempts))
    driver = tc.tmp.write("driver-%d.py" % n, DRIVER)
    out = os.path.join(outdir, "results-%d.json" % n)
    tmpdir = tmpdir or tc.state_tmp
    r = run_wrapped(prefix, args, [PY, driver, spec, out], env=env,
                    tmpdir=tmpdir, timeout=timeout)
    try:
        with open(out) as f:
            return r, json.load(f)
    except FileNotFoundError:
        return r, {}


def describe(res):
    """A result, shortened for an assertion message."""
    return "rc=%r %.3fs\n--- out\n%s\n--- err\n%s" % (
        res["rc"], res["elapsed"], res["out"][-800:], res["err"][-800:])


# ------------------------------------------------------------ clients

# Node 20: https and fetch ignore HTTPS_PROXY, NO_PROXY and the rest. On
# failure they print the request's own time (ms=N): node's start-up, which
# a loaded machine can stretch, is not what --isolate answers for.
NODE_HTTPS_GET = r"""
const https = require('https'), fs = require('fs');
const [url, ca] = process.argv.slice(1);
const opts = {ca: fs.readFileSync(ca), timeout: 10000}, t0 = Date.now();
https.get(url, opts, r => {
  let b = '';
  r.on('data', d => b += d);
  r.on('end', () => {
    console.log(r.statusCode + ' ' + b.trim());
    process.exit(r.statusCode === 200 ? 0 : 1);
  });
}).on('error', e => {
  console.error('ERR ' + e.code + ' ms=' + (Date.now() - t0));
  process.exit(3);
});
"""

NODE_FETCH = r"""
const [url] = process.argv.slice(1), t0 = Date.now();
fetch(url).then(async r => {
  console.log(r.status + ' ' + (await r.text()).trim());
  process.exit(r.status === 200 ? 0 : 1);
}).catch(e => {
  console.error('ERR ' + ((e.cause && e.cause.code) || e) + ' ms=' +
                (Date.now() - t0));
  process.exit(3);
});
"""

# A raw socket: no library, no proxy variable, nothing to honour.
PY_SOCKET = r"""
import socket, sys
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.create_connection((host, port), timeout=10)
s.sendall(b"GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path.encode())
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
sys.stdout.write(data.decode(errors="replace"))
"""

UDP_SEND = r"""
import socket, sys
host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_DGRAM)
for i in range(3):
    s.sendto(token.encode(), (host, port))
print("sent 3")
"""

GETADDRINFO = r"""
import socket, sys
print(socket.getaddrinfo(sys.argv[1], 80, type=socket.SOCK_STREAM))
"""

# Descriptors COMMAND holds, as (fd, target): the namespace's listeners
# and the socketpair must not be among them.
OPEN_SOCKETS = r"""
import os
fds = []
for fd in os.listdir("/proc/self/fd"):
    try:
        t = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        continue
    if t.startswith("socket:"):
        fds.append((fd, t))
print(fds)
"""


def py(code, *args):
    return [PY, "-c", code] + [str(a) for a in args]


def node(code, *args):
    return ["node", "-e", code] + [str(a) for a in args]


class UdpSink:
    """A UDP socket on the host's 127.0.0.1: what arrived, by token."""

    def __init__(self, tc):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind(("127.0.0.1", 0))
        self.s.setblocking(False)
        self.port = self.s.getsockname()[1]
        tc.addCleanup(self.s.close)
        self.got = []

    def received(self, token, settle=0.3):
        """Datagrams carrying token (waits settle seconds for stragglers)."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            try:
                self.got.append(self.s.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                time.sleep(0.02)
        return [g for g in self.got if g == token]


# ------------------------------------------------------------ users

def userns_ok():
    """Can this kernel give an unprivileged process a user + network
    namespace (util-linux unshare as the judge, not egress-run)?"""
    try:
        r = subprocess.run(["unshare", "--user", "--net", "true"],
                           capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


_nobody = None


def nobody_can_run():
    """Can user nobody reach and run the binary (and setpriv exist)?"""
    global _nobody
    if _nobody is None:
        try:
            r = subprocess.run(SETPRIV_NOBODY + [h.egress_bin(),
                                                 "--version"],
                               capture_output=True, timeout=10,
                               env=h.clean_env())
            _nobody = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            _nobody = False
    return _nobody


class Nobody:
    """Directories nobody (or another unprivileged uid, which need not
    exist in /etc/passwd) may write -- its TMPDIR, an output directory --
    and the argv prefix that runs egress-run as that user."""

    def __init__(self, tc, uid=NOBODY):
        if os.geteuid() != 0:
            raise unittest.SkipTest("becoming nobody needs root")
        if not nobody_can_run():
            raise unittest.SkipTest("user nobody cannot run %s"
                                    % h.egress_bin())
        self.uid = uid
        self.tmpdir = tc.tmp.mkdir("u%d-tmp" % uid, mode=0o700)
        self.out = tc.tmp.mkdir("u%d-out" % uid, mode=0o700)
        for d in (self.tmpdir, self.out):
            os.chown(d, uid, uid)
        self.prefix = ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                       "--clear-groups"]

    def assert_no_state_left(self, tc):
        tc.assertEqual(os.listdir(self.tmpdir), [],
                       "egress-run (as nobody) left state behind")


# ------------------------------------------------------------ sysctl

USERNS_SYSCTL = "/proc/sys/user/max_user_namespaces"


def _write_sysctl(value):
    with open(USERNS_SYSCTL, "w") as f:
        f.write("%s\n" % value)


class userns_switched_off:
    """with userns_switched_off(tc): user.max_user_namespaces is 0 for the
    body (root only; skips otherwise, saying why). The old value comes
    back in a finally, and again at the test's cleanup should anything
    between have failed. Keep the body short: the sysctl is the whole
    host's."""

    def __init__(self, tc):
        if os.geteuid() != 0:
            msg = ("switching user namespaces off takes root (sysctl "
                   "user.max_user_namespaces=0); running as uid %d"
                   % os.geteuid())
            sys.stderr.write("skipped: %s\n" % msg)
            raise unittest.SkipTest(msg)
        with open(USERNS_SYSCTL) as f:
            self.old = f.read().strip()
        if self.old == "0":
            raise unittest.SkipTest("user namespaces already switched off")
        # Root may still lack CAP_SYS_RESOURCE (a container): writing the
        # value it already has tells, and changes nothing.
        try:
            _write_sysctl(self.old)
        except OSError as e:
            msg = ("cannot change user.max_user_namespaces (%s): root "
                   "without CAP_SYS_RESOURCE?" % e.strerror)
            sys.stderr.write("skipped: %s\n" % msg)
            raise unittest.SkipTest(msg)
        tc.addCleanup(self.restore)

    def restore(self):
        with open(USERNS_SYSCTL) as f:
            if f.read().strip() != self.old:
                _write_sysctl(self.old)

    def __enter__(self):
        try:
            subprocess.run(["sysctl", "-q", "-w",
                            "user.max_user_namespaces=0"], check=True,
                           capture_output=True, timeout=10)
        except (OSError, subprocess.CalledProcessError):
            _write_sysctl(0)
        with open(USERNS_SYSCTL) as f:
            if f.read().strip() != "0":
                raise AssertionError("user.max_user_namespaces is not 0")
        return self

    def __exit__(self, *exc):
        self.restore()
        return False


# A private user + mount namespace whose own user.max_user_namespaces is 0
# (a per-namespace limit since Linux 4.9): the same refusal, seen by
# nothing but this one command, and possible without root.
def nested_userns_off_prefix():
    return ["unshare", "--user", "--map-root-user", "/bin/sh", "-c",
            "echo 0 > %s && exec \"$@\"" % USERNS_SYSCTL, "sh"]


# A private user + mount namespace in which /etc/resolv.conf is another
# file (bind mount): a resolver configuration of the test's choosing,
# without touching the host's.
def resolv_conf_prefix(path):
    return ["unshare", "--user", "--map-root-user", "--mount", "/bin/sh",
            "-c", "mount --bind %s /etc/resolv.conf && exec \"$@\""
            % shlex.quote(path), "sh"]


# ------------------------------------------------------------ git

GIT_LOCATION = """
    location ~ ^/git(/.*)$ {
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


def git_env(home):
    return {"HOME": home, "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": "T",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "T",
            "GIT_COMMITTER_EMAIL": "t@example.invalid"}


def make_bare_repo(tc, env, message="isolated commit"):
    """A bare repository with one commit; returns its parent directory
    (the git-http-backend project root) and its path."""
    repos = tc.tmp.mkdir("repos-%d" % time.monotonic_ns())
    work = tc.tmp.mkdir("seed-%d" % time.monotonic_ns())
    bare = os.path.join(repos, "project.git")
    for cmd in (["git", "init", "-q", "-b", "main", work],
                ["git", "-C", work, "commit", "-q", "--allow-empty", "-m",
                 message],
                ["git", "clone", "-q", "--bare", work, bare]):
        subprocess.run(cmd, check=True, env=h.clean_env(env),
                       capture_output=True, timeout=30)
    return repos, bare


def children_of(pid):
    """Live children of pid, as (pid, cmdline)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        if rest[0] != "Z" and int(rest[1]) == pid:
            out.append((int(d), cmd.strip()))
    return out


class IsolateCase(h.EgressTestCase):
    """Skips when this kernel cannot make user namespaces at all (the
    fallback tests switch them off themselves)."""

    needs_userns = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.needs_userns and not userns_ok():
            raise unittest.SkipTest("this kernel (or container) does not "
                                    "allow user + network namespaces")

    def attempts(self, args, attempts, **kw):
        r, res = run_attempts(self, args, attempts, **kw)
        self.assert_no_sanitizer_report(r)
        return r, res

    def assert_no_sanitizer_report(self, r):
        """An ASan/UBSan build reports on egress-run's stderr."""
        m = bf.SANITIZER_REPORT.search(r.stderr)
        if m:
            self.fail("egress-run: sanitizer report:\n%s"
                      % r.stderr[max(0, m.start() - 200):][:4000])

    def assert_fails_fast(self, res, name, why=None):
        """The attempt failed, and in well under a second: its own time
        when it reports one (ms=N), else the whole client's."""
        self.assertIn(name, res, "attempt %s did not run" % name)
        a = res[name]
        self.assertNotEqual(a["rc"], 0, "%s got through:\n%s"
                            % (name, describe(a)))
        self.assertNotEqual(a["rc"], "timeout", describe(a))
        m = re.search(r"\bms=(\d+)", a["err"])
        took = int(m.group(1)) / 1000.0 if m else a["elapsed"]
        self.assertLess(took, FAST, "%s failed slowly:\n%s"
                        % (name, describe(a)))
        self.assertLess(a["elapsed"], SLOW_START, describe(a))
        if why is not None:
            self.assertRegex(a["out"] + a["err"], why, describe(a))

    def assert_works(self, res, name, want=None):
        self.assertIn(name, res, "attempt %s did not run" % name)
        a = res[name]
        self.assertEqual(a["rc"], 0, "%s failed:\n%s" % (name, describe(a)))
        if want is not None:
            self.assertIn(want, a["out"], describe(a))
