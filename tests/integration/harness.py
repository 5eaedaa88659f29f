"""Shared integration-test harness: real servers and proxies on loopback.

Every integration test imports this module. It gives:

  - free_port(), wait_port(), TempDir, Proc (own process group, always
    killed), processes_with(marker) / wait_gone(marker)
  - run_egress(args, cmd) -> Result (rc, stdout, stderr) + .elapsed
  - via_proxy(...) / curl_via_proxy(...) / SH_VIA_PROXY: clients that drop
    NO_PROXY (the bouquet always exempts 127.0.0.1, where our origins live)
  - fixtures: TestCA (openssl CLI), Nginx (origin; TLS, extra config),
    Squid (as --external or standalone), Mitmproxy (same), Tmux
  - EgressTestCase: a unittest.TestCase whose helpers start fixtures and
    register their cleanup, so a test is a few lines.

Runs under Debian's /usr/bin/python3 (stdlib only). Binds 127.0.0.1 only.
"""

import collections
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))

# Variables of egress-run's own environment that would change what it does
# (an upstream proxy, a different trust store): tests start without them.
_SCRUB = re.compile(r"^(https?|all|no|ftp|grpc|socks)_proxy$|^SSL_CERT_|"
                    r"^CURL_CA_BUNDLE$|^REQUESTS_CA_BUNDLE$|^WGETRC$|"
                    r"^EGRESS_", re.I)


def egress_bin():
    """The egress-run binary under test: $EGRESS_RUN_BIN (set by CTest)."""
    path = os.environ.get("EGRESS_RUN_BIN")
    if not path:
        for guess in ("build-test", "build", "build-found"):
            cand = os.path.join(HERE, "..", "..", guess, "egress-run")
            if os.access(cand, os.X_OK):
                return os.path.abspath(cand)
        raise RuntimeError("set EGRESS_RUN_BIN to the egress-run binary "
                           "(ctest does this)")
    return path


# ---------------------------------------------------------------- basics

def free_port(host="127.0.0.1"):
    """A TCP port that was free a moment ago on host."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_port(host, port, timeout=10.0, proc=None):
    """Wait until host:port accepts. Raises if proc dies or time runs out."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if port_open(host, port):
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("%s exited (%s) before listening on %s:%d\n%s"
                               % (proc.name, proc.returncode, host, port,
                                  proc.log_tail()))
        if time.monotonic() >= deadline:
            tail = proc.log_tail() if proc is not None else ""
            raise RuntimeError("nothing accepts on %s:%d after %.1f s\n%s"
                               % (host, port, timeout, tail))
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def wait_for(pred, timeout=10.0, what="condition", interval=0.05):
    """Poll pred() until true (returns its value) or raise after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1f s waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


class TempDir:
    """A fresh directory, removed by cleanup(). Mode 0755 so that daemons
    that drop privileges (squid runs as 'proxy' when started by root) can
    reach their own subdirectories inside it."""

    def __init__(self, prefix="egress-it."):
        self.path = tempfile.mkdtemp(prefix=prefix)
        os.chmod(self.path, 0o755)

    def join(self, *parts):
        return os.path.join(self.path, *parts)

    def mkdir(self, *parts, mode=0o755):
        p = self.join(*parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        return p

    def write(self, name, text, mode=0o644):
        p = self.join(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.chmod(p, mode)
        return p

    def read(self, name, default=None):
        try:
            with open(self.join(name), errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            if default is not None:
                return default
            raise

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()

    def __str__(self):
        return self.path


class Proc:
    """A process in its own session and process group. Its output goes to a
    log file (never the test's terminal). stop() signals the whole group:
    SIGTERM, then SIGKILL after a grace period."""

    def __init__(self, args, log, env=None, cwd=None, name=None,
                 shell=False, stdin=subprocess.DEVNULL):
        self.args = args
        self.name = name or (args if isinstance(args, str)
                             else os.path.basename(args[0]))
        self.logpath = log
        self._log = open(log, "ab")
        self.p = subprocess.Popen(args, stdin=stdin, stdout=self._log,
                                  stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                  start_new_session=True, shell=shell)
        self.pid = self.p.pid
        self.pgid = self.p.pid

    @property
    def returncode(self):
        return self.p.returncode

    def poll(self):
        return self.p.poll()

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout=None):
        return self.p.wait(timeout)

    def log_text(self):
        try:
            with open(self.logpath, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, n=15):
        return "\n".join(self.log_text().splitlines()[-n:])

    def signal(self, sig):
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, grace=2.0):
        """Stop the whole group; safe to call twice."""
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.p.wait(wait)
            except subprocess.TimeoutExpired:
                continue
            if sig == signal.SIGTERM:
                # The leader is gone; kill whatever it left in the group.
                try:
                    os.killpg(self.pgid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            break
        self._log.close()


# ------------------------------------------------------------- processes

def _proc_entries():
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                stat = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2:].split()
        yield int(d), rest[0], int(rest[2]), cmd.strip()


def processes_with(marker):
    """Live (non-zombie) processes whose command line contains marker, as
    (pid, cmdline)."""
    return [(pid, cmd) for pid, state, _pg, cmd in _proc_entries()
            if state != "Z" and marker in cmd]


def group_members(pgid):
    """Live processes of a process group."""
    return [(pid, cmd) for pid, state, pg, cmd in _proc_entries()
            if state != "Z" and pg == pgid]


def wait_gone(marker, timeout=3.0):
    """Wait until no process carries marker; returns the survivors ([] if
    none) so that a test can assert on them."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with(marker)
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


def unique_marker(tag="m"):
    return "egress-it-%s-%d-%d" % (tag, os.getpid(), time.monotonic_ns())


def kill_marked(marker):
    """SIGKILL every process carrying marker (cleanup after a failure)."""
    for pid, _cmd in processes_with(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


# ------------------------------------------------------------ egress-run

def clean_env(extra=None, drop=()):
    """os.environ without proxy/trust variables, plus extra."""
    env = {k: v for k, v in os.environ.items() if not _SCRUB.search(k)}
    for k in drop:
        env.pop(k, None)
    env.update(extra or {})
    return env


class Result(tuple):
    """(rc, stdout, stderr) of one run, with .elapsed in seconds."""

    def __new__(cls, rc, out, err, elapsed):
        self = super().__new__(cls, (rc, out, err))
        self.elapsed = elapsed
        return self

    rc = property(lambda self: self[0])
    stdout = property(lambda self: self[1])
    stderr = property(lambda self: self[2])

    def __repr__(self):
        return ("Result(rc=%r, %.2fs)\n--- stdout\n%s--- stderr\n%s"
                % (self[0], self.elapsed, self[1], self[2]))


def run_egress(args, cmd=None, env=None, timeout=60, input=None, cwd=None,
               tmpdir=None):
    """Run egress-run ARGS -- CMD and wait. env replaces the (scrubbed)
    environment when given; tmpdir sets its TMPDIR. On timeout the whole
    process group is killed and an AssertionError raised."""
    argv = [egress_bin()] + list(args)
    if cmd is not None:
        argv += ["--"] + list(cmd)
    if env is None:
        env = clean_env()
    if tmpdir is not None:
        env = dict(env, TMPDIR=str(tmpdir))
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None
                         else subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env, cwd=cwd,
                         start_new_session=True)
    try:
        out, err = p.communicate(input=input.encode() if isinstance(
            input, str) else input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        raise AssertionError("egress-run did not finish in %ss: %s\n"
                             "--- stdout\n%s--- stderr\n%s"
                             % (timeout, shlex.join(argv),
                                out.decode(errors="replace"),
                                err.decode(errors="replace")))
    return Result(p.returncode, out.decode(errors="replace"),
                  err.decode(errors="replace"), time.monotonic() - t0)


def start_egress(args, cmd, log, env=None, tmpdir=None):
    """egress-run in the background, as a Proc (its own process group)."""
    argv = [egress_bin()] + list(args) + ["--"] + list(cmd)
    env = clean_env() if env is None else env
    if tmpdir is not None:
        env = dict(env, TMPDIR=str(tmpdir))
    return Proc(argv, log, env=env, name="egress-run")


# Clients inside COMMAND: the bouquet's NO_PROXY always exempts 127.0.0.1,
# where test origins live, so they must drop it to use the proxy.
def via_proxy(*argv):
    return ["env", "-u", "NO_PROXY", "-u", "no_proxy"] + list(argv)


def curl_via_proxy(url, *opts):
    return via_proxy("curl", "-sS", "--fail", "--max-time", "15",
                     *opts, url)


SH_VIA_PROXY = "unset NO_PROXY no_proxy; "


def parse_env_dump(text):
    """NAME=value lines (env's output) to a dict; later lines win."""
    d = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            d[k] = v
    return d


PROXY_VARS = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
              "ALL_PROXY", "all_proxy", "GRPC_PROXY", "grpc_proxy",
              "npm_config_proxy", "npm_config_https_proxy")


_builtin = None


def builtin_available():
    """Does this build run its built-in proxy when no external one is
    given? The one place tests learn what a fail-open fallback looks like:
    proxy variables pointing at the built-in proxy, or none at all."""
    global _builtin
    if _builtin is None:
        with TempDir() as t:
            r = run_egress(["--print-env"], tmpdir=t.path, timeout=30)
        _builtin = r.rc == 0 and "HTTPS_PROXY=" in r.stdout
    return _builtin


# ------------------------------------------------------------- fixtures

def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), cwd=cwd,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args),
                                                        r.stderr))
    return r.stdout


class TestCA:
    """A throw-away CA and server certificates, made with the openssl CLI
    at run time (nothing committed)."""

    __test__ = False  # not a unittest class

    def __init__(self, dirpath, name="egress-run test CA"):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.cert = os.path.join(dirpath, "ca.pem")
        self.key = os.path.join(dirpath, "ca.key")
        self.name = name
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", "/CN=" + name, "-keyout", self.key,
                 "-out", self.cert,
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def server_cert(self, names=("localhost", "127.0.0.1"), stem="server"):
        """(cert, key) paths for a server certificate valid for names
        (DNS names and IP literals)."""
        cert = os.path.join(self.dir, stem + ".pem")
        key = os.path.join(self.dir, stem + ".key")
        csr = os.path.join(self.dir, stem + ".csr")
        ext = os.path.join(self.dir, stem + ".ext")
        sans = ",".join(("IP:" if re.fullmatch(r"[0-9.]+|.*:.*", n)
                         else "DNS:") + n for n in names)
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectKeyIdentifier=hash\n"
                    "authorityKeyIdentifier=keyid\n" % sans)
        _openssl("req", "-new", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:P-256", "-nodes", "-subj",
                 "/CN=" + names[0], "-keyout", key, "-out", csr)
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey",
                 self.key, "-CAcreateserial", "-days", "2", "-out", cert,
                 "-extfile", ext)
        os.chmod(key, 0o644)  # read by daemons that dropped privileges
        return cert, key


class Nginx:
    """An origin server: nginx in the foreground, one worker, on
    127.0.0.1:port (and https_port with tls=TestCA), serving docroot.
    Extend with server_extra / http_extra (nginx directives), e.g. a
    location for fcgiwrap + git http-backend; @@dir@@ and @@docroot@@ are
    substituted in them too."""

    CONF = """\
daemon off;
master_process on;
worker_processes 1;
@@user@@
pid @@dir@@/nginx.pid;
error_log @@dir@@/error.log info;
events { worker_connections 256; }
http {
    access_log @@dir@@/access.log;
    client_body_temp_path @@dir@@/tmp/body;
    proxy_temp_path @@dir@@/tmp/proxy;
    fastcgi_temp_path @@dir@@/tmp/fastcgi;
    uwsgi_temp_path @@dir@@/tmp/uwsgi;
    scgi_temp_path @@dir@@/tmp/scgi;
    types { text/plain txt; text/html html; application/json json; }
    default_type application/octet-stream;
    @@http_extra@@
    server {
        listen 127.0.0.1:@@port@@;
        @@tls@@
        server_name localhost;
        root @@docroot@@;
        @@server_extra@@
    }
}
"""

    def __init__(self, dirpath, tls=None, server_extra="", http_extra="",
                 files=None):
        self.dir = dirpath
        self.docroot = os.path.join(dirpath, "docroot")
        os.makedirs(os.path.join(dirpath, "tmp"), exist_ok=True)
        os.makedirs(self.docroot, exist_ok=True)
        self.port = free_port()
        self.https_port = free_port() if tls else None
        self.tls = tls
        self.server_extra = server_extra
        self.http_extra = http_extra
        self.proc = None
        for name, text in (files or {}).items():
            self.add_file(name, text)

    def add_file(self, name, text):
        p = os.path.join(self.docroot, name.lstrip("/"))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        return p

    def config(self):
        tls = ""
        if self.tls is not None:
            cert, key = self.tls.server_cert(stem="nginx")
            tls = ("listen 127.0.0.1:%d ssl;\n        ssl_certificate %s;\n"
                   "        ssl_certificate_key %s;"
                   % (self.https_port, cert, key))
        text = self.CONF
        for k, v in (("server_extra", self.server_extra),
                     ("http_extra", self.http_extra), ("tls", tls),
                     ("user", "user root root;" if os.geteuid() == 0
                      else ""),
                     ("port", str(self.port)), ("dir", self.dir),
                     ("docroot", self.docroot)):
            text = text.replace("@@%s@@" % k, v)
        return text

    def start(self):
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(self.config())
        self.proc = Proc(["nginx", "-p", self.dir, "-c", conf, "-e",
                          os.path.join(self.dir, "error.log")],
                         os.path.join(self.dir, "nginx.out"), name="nginx")
        wait_port("127.0.0.1", self.port, 10, self.proc)
        if self.https_port:
            wait_port("127.0.0.1", self.https_port, 10, self.proc)
        return self

    def url(self, path="/"):
        return "http://127.0.0.1:%d/%s" % (self.port, path.lstrip("/"))

    def https_url(self, path="/", host="127.0.0.1"):
        return "https://%s:%d/%s" % (host, self.https_port, path.lstrip("/"))

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


class Squid:
    """Squid with caching off, quick shutdown, logs in its own directory.
    Use start() for a standalone proxy on self.port, or external_command()
    for egress-run --external (it fills in {port})."""

    CONF = """\
http_port 127.0.0.1:@@port@@
pid_filename @@dir@@/squid-@@port@@.pid
access_log stdio:@@dir@@/access.log
cache_log @@dir@@/cache.log
cache_store_log none
cache deny all
cache_mem 1 MB
coredump_dir @@dir@@
shutdown_lifetime 0 seconds
pinger_enable off
netdb_filename none
dns_nameservers 127.0.0.1
udp_incoming_address 127.0.0.1
visible_hostname egress-test
max_filedescriptors 1024
http_access allow localhost
http_access deny all
"""

    def __init__(self, dirpath, extra=""):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        os.chmod(dirpath, 0o755)
        self.port = None
        self.proc = None
        self.template = os.path.join(dirpath, "squid.conf.in")
        with open(self.template, "w") as f:
            f.write(self.CONF.replace("@@dir@@", dirpath) + extra)
        if os.geteuid() == 0:
            # Started as root, squid works as user 'proxy'.
            pw = pwd.getpwnam("proxy")
            for root, dirs, files in os.walk(dirpath):
                for n in [root] + [os.path.join(root, x) for x in files]:
                    os.chown(n, pw.pw_uid, pw.pw_gid)

    def external_command(self):
        """A /bin/sh command for --external: {port} is egress-run's."""
        conf = os.path.join(self.dir, "squid-{port}.conf")
        return ("sed 's/@@port@@/{port}/g' %s > %s && exec squid -N -f %s"
                % (shlex.quote(self.template), conf, conf))

    def start(self, port=None):
        self.port = port or free_port()
        conf = os.path.join(self.dir, "squid-%d.conf" % self.port)
        with open(self.template) as f:
            text = f.read().replace("@@port@@", str(self.port))
        with open(conf, "w") as f:
            f.write(text)
        self.proc = Proc(["squid", "-N", "-f", conf],
                         os.path.join(self.dir, "squid.out"), name="squid")
        wait_port("127.0.0.1", self.port, 15, self.proc)
        return self

    def access_log(self):
        try:
            with open(os.path.join(self.dir, "access.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


class Mitmproxy:
    """mitmdump with its own confdir (its CA appears there as ca_cert on
    first start). Trusts upstream_ca (a PEM) for TLS origins, or with
    insecure=True verifies nothing upstream. Flows are printed to
    self.out (a file), which outlives egress-run's state directory."""

    def __init__(self, dirpath, upstream_ca=None, insecure=False,
                 extra_args=()):
        self.dir = dirpath
        self.confdir = os.path.join(dirpath, "conf")
        os.makedirs(self.confdir, exist_ok=True)
        self.ca_cert = os.path.join(self.confdir, "mitmproxy-ca-cert.pem")
        self.out = os.path.join(dirpath, "mitmdump.out")
        self.upstream_ca = upstream_ca
        self.insecure = insecure
        self.extra_args = list(extra_args)
        self.port = None
        self.proc = None

    def args(self, port):
        a = ["mitmdump", "--listen-host", "127.0.0.1", "--listen-port",
             str(port), "--set", "confdir=" + self.confdir]
        if self.insecure:
            a.append("--ssl-insecure")
        if self.upstream_ca:
            a += ["--set", "ssl_verify_upstream_trusted_ca=" +
                  self.upstream_ca]
        return a + self.extra_args

    def external_command(self):
        argv = [shlex.quote(x) for x in self.args(0)]
        argv[4] = "{port}"
        return ("exec env PYTHONUNBUFFERED=1 %s >>%s 2>&1"
                % (" ".join(argv), shlex.quote(self.out)))

    def start(self, port=None):
        self.port = port or free_port()
        self.proc = Proc(self.args(self.port), self.out, name="mitmdump",
                         env=dict(clean_env(), PYTHONUNBUFFERED="1"))
        wait_port("127.0.0.1", self.port, 30, self.proc)
        return self

    def output(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


def listener_command(marker, port="{port}"):
    """A /bin/sh command that just listens on 127.0.0.1:port (a stand-in
    proxy) and carries marker in its command line."""
    code = ("import socket,sys,time\n"
            "s=socket.socket()\n"
            "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            "s.bind(('127.0.0.1',int(sys.argv[1])))\n"
            "s.listen(64)\n"
            "while True:\n"
            "    c,_=s.accept(); c.close()\n")
    return "%s -c %s %s %s" % (PY, shlex.quote(code), port, marker)


# The pane's first process under Tmux: runs argv in the terminal's
# foreground process group and writes its exit status (128 + N for signal N)
# to a file. tmux's own #{pane_dead_status} is not reliable here: tmux 3.3a
# sometimes leaves the pane's process a zombie, status unknown. No-op
# handlers (reset by exec in the child, unlike SIG_IGN) keep the recorder
# alive when the terminal signals the group.
_RECORDER = r"""
import os, signal, subprocess, sys
for s in (signal.SIGINT, signal.SIGQUIT, signal.SIGTSTP):
    signal.signal(s, lambda *a: None)
p = subprocess.Popen(sys.argv[2:])
while True:
    try:
        rc = p.wait()
        break
    except InterruptedError:
        pass
rc = 128 - rc if rc < 0 else rc
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write("%d\n" % rc)
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
sys.exit(rc)
"""


class Tmux:
    """A private tmux server (its own socket), for a real terminal. The
    pane runs argv under a small recorder that saves its exit status."""

    def __init__(self, dirpath, width=100, height=30):
        n = time.monotonic_ns()
        self.sock = os.path.join(dirpath, "tmux-%d.sock" % n)
        self.conf = os.path.join(dirpath, "tmux-%d.conf" % n)
        self.status_file = os.path.join(dirpath, "tmux-%d.status" % n)
        self.recorder = os.path.join(dirpath, "tmux-%d-recorder.py" % n)
        with open(self.conf, "w") as f:
            f.write("set -g remain-on-exit on\nset -g history-limit 1000\n"
                    "set -g default-terminal screen\n")
        with open(self.recorder, "w") as f:
            f.write(_RECORDER)
        self.width, self.height = width, height
        self.started = False

    def tmux(self, *args, check=True):
        # The server (started by the first command) and so every pane get
        # the scrubbed environment.
        env = clean_env()
        env.setdefault("TERM", "xterm")
        r = subprocess.run(["tmux", "-S", self.sock, "-f", self.conf] +
                           list(args), capture_output=True, text=True,
                           timeout=10, env=env)
        if check and r.returncode != 0:
            raise RuntimeError("tmux %s: %s" % (" ".join(args), r.stderr))
        return r.stdout

    def new_session(self, argv, env=None, name="t"):
        """Run argv (no shell) in a terminal of width x height."""
        self.name = name
        envargs = []
        for k, v in (env or {}).items():
            envargs += ["-e", "%s=%s" % (k, v)]
        self.tmux("new-session", "-d", "-s", name, "-x", str(self.width),
                  "-y", str(self.height), *envargs, "--", PY,
                  self.recorder, self.status_file, *argv)
        self.started = True

    def send_keys(self, *keys):
        self.tmux("send-keys", "-t", self.name, *keys)

    def capture(self):
        return self.tmux("capture-pane", "-p", "-t", self.name)

    def pane(self, fmt):
        return self.tmux("display-message", "-p", "-t", self.name,
                         fmt).strip()

    def wait_dead(self, timeout=10):
        """Wait for argv to exit; its exit status, or 128 + N if signal N
        killed it (as a shell would say)."""
        wait_for(lambda: os.path.exists(self.status_file), timeout,
                 "the program in the terminal to exit")
        with open(self.status_file) as f:
            return int(f.read())

    def wait_text(self, text, timeout=10):
        return wait_for(lambda: text in self.capture(), timeout,
                        "%r on the screen" % text)

    def stop(self):
        if self.started:
            self.tmux("kill-server", check=False)
            self.started = False


# ------------------------------------------------------------ test case

class EgressTestCase(unittest.TestCase):
    """setUp gives self.tmp (a fresh TempDir) and self.state_tmp (the
    TMPDIR egress-run runs with, checked empty by assert_no_state_left).
    Fixture helpers start things and register their cleanup."""

    maxDiff = None

    def setUp(self):
        self.tmp = TempDir()
        self.addCleanup(self.tmp.cleanup)
        self.state_tmp = self.tmp.mkdir("tmpdir", mode=0o700)

    # egress-run
    def egress(self, args, cmd=None, **kw):
        kw.setdefault("tmpdir", self.state_tmp)
        return run_egress(args, cmd, **kw)

    def start_egress(self, args, cmd, **kw):
        kw.setdefault("tmpdir", self.state_tmp)
        p = start_egress(args, cmd, self.tmp.join("egress-%d.log"
                                                  % time.monotonic_ns()),
                         **kw)
        self.addCleanup(p.stop)
        return p

    def assert_no_state_left(self):
        left = os.listdir(self.state_tmp)
        self.assertEqual(left, [], "egress-run left state behind in TMPDIR")

    def marker(self, tag="m"):
        """A unique string to put in a command line; whatever carries it
        is killed at cleanup, also when the test fails."""
        m = unique_marker(tag)
        self.addCleanup(kill_marked, m)
        return m

    def assert_gone(self, marker, timeout=3.0):
        left = wait_gone(marker, timeout)
        self.assertEqual(left, [], "processes outlived egress-run")

    def assert_only_diagnostics(self, stderr):
        """Every line egress-run wrote is one of its own diagnostics."""
        for line in stderr.splitlines():
            self.assertTrue(line.startswith("egress-run:"),
                            "stray line on stderr: %r" % line)

    def assert_fallback_env(self, env, failed_port=None):
        """After a fail-open, COMMAND has either no proxy variables (no
        built-in proxy in this build) or the built-in proxy's."""
        if builtin_available():
            self.assertIn("HTTPS_PROXY", env, "no fallback proxy")
            if failed_port is not None:
                self.assertNotIn(":%d" % failed_port, env["HTTPS_PROXY"])
        else:
            for v in PROXY_VARS:
                self.assertNotIn(v, env)

    # fixtures
    def start_proc(self, args, name="proc", **kw):
        p = Proc(args, self.tmp.join("%s-%d.log" % (name,
                                                    time.monotonic_ns())),
                 name=name, **kw)
        self.addCleanup(p.stop)
        return p

    def ca(self, name="egress-run test CA"):
        return TestCA(self.tmp.mkdir("ca-%d" % time.monotonic_ns()), name)

    def nginx(self, **kw):
        n = Nginx(self.tmp.mkdir("nginx-%d" % time.monotonic_ns()), **kw)
        self.addCleanup(n.stop)
        return n.start()

    def squid(self, start=True, **kw):
        s = Squid(self.tmp.mkdir("squid-%d" % time.monotonic_ns()), **kw)
        self.addCleanup(s.stop)
        return s.start() if start else s

    def mitmproxy(self, start=False, **kw):
        m = Mitmproxy(self.tmp.mkdir("mitm-%d" % time.monotonic_ns()), **kw)
        self.addCleanup(m.stop)
        return m.start() if start else m

    def tmux(self, **kw):
        t = Tmux(self.tmp.path, **kw)
        self.addCleanup(t.stop)
        return t

    def listener(self, marker=None):
        """A stand-in proxy already listening: returns (port, Proc)."""
        port = free_port()
        p = self.start_proc(["/bin/sh", "-c", listener_command(
            marker or unique_marker("listener"), str(port))], "listener")
        wait_port("127.0.0.1", port, 10, p)
        return port, p
