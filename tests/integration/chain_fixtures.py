"""Fixtures for the SOCKS5, ssh and upstream-chaining integration tests
(issues 4 and 5), on top of harness.py: a key-only sshd, a Squid that
requires basic authentication, microsocks as a SOCKS5 upstream, raw SOCKS5
bytes, and audit-log reading.

Everything binds 127.0.0.1 (or ::1) and is stopped by the test's cleanup.
Runs under /usr/bin/python3, stdlib only.
"""

import json
import os
import pwd
import shlex
import socket
import struct
import subprocess
import time

from harness import (Proc, Squid, egress_bin, free_port, wait_port)


# ------------------------------------------------------------------ misc

def read_audit(path):
    """The audit log's complete events (JSON Lines), [] if there is none
    yet. A last line without its newline is still being written."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1]
            if line.strip()]


def ipv6_loopback():
    """Can we listen on ::1?"""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def proxy_hostport(url):
    """'http://127.0.0.1:8080' (a bouquet value) -> ('127.0.0.1', 8080)."""
    hp = url.split("://", 1)[-1].rstrip("/")
    host, port = hp.rsplit(":", 1)
    return host.strip("[]"), int(port)


def sh_client(name, outdir, cmd):
    """A shell fragment running cmd with its stdout, stderr and status
    saved as outdir/name.{out,err,rc}."""
    p = os.path.join(outdir, name)
    return '%s >%s.out 2>%s.err; echo $? >%s.rc; ' % (cmd, p, p, p)


def client_result(outdir, name):
    """(rc, stdout, stderr) of a client run by sh_client."""
    def read(ext):
        with open(os.path.join(outdir, "%s.%s" % (name, ext)),
                  errors="replace") as f:
            return f.read()
    return int(read("rc").strip()), read("out"), read("err")


class NamedCA:
    """A TestCA whose server certificates carry the given names, for
    Nginx(tls=...), which asks for localhost/127.0.0.1 only."""

    def __init__(self, ca, names):
        self.ca = ca
        self.cert = ca.cert
        self.names = tuple(names)

    def server_cert(self, names=(), stem="server"):
        return self.ca.server_cert(names=self.names + tuple(names),
                                   stem=stem)


# ------------------------------------------------------------ raw SOCKS5

def socks5_request(cmd, atyp, addr, port):
    """The bytes of a SOCKS5 request. addr: an IP string for atyp 1/4, a
    name for 3, raw bytes for anything else."""
    if atyp == 1:
        a = socket.inet_pton(socket.AF_INET, addr)
    elif atyp == 4:
        a = socket.inet_pton(socket.AF_INET6, addr)
    elif atyp == 3:
        a = bytes([len(addr)]) + addr.encode()
    else:
        a = addr
    return bytes([5, cmd, 0, atyp]) + a + struct.pack(">H", port)


GREETING = b"\x05\x01\x00"          # one method: no authentication


def socks5_exchange(port, data, host="127.0.0.1", chunk=None, pause=0.0,
                    timeout=5.0, limit=1 << 20):
    """Connect to host:port, send data (whole, or chunk bytes at a time
    with pause seconds between), and read until the peer closes, time runs
    out or limit bytes came. Returns everything read."""
    out = b""
    with socket.create_connection((host, port), timeout=timeout) as s:
        if chunk is None:
            s.sendall(data)
        else:
            for i in range(0, len(data), chunk):
                s.sendall(data[i:i + chunk])
                if pause:
                    time.sleep(pause)
        deadline = time.monotonic() + timeout
        while len(out) < limit and time.monotonic() < deadline:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not d:
                break
            out += d
    return out


def split_socks5_answer(raw):
    """(method reply, request reply, rest) from what a no-auth client
    read. The request reply's length follows its ATYP. Raises ValueError
    on a short or malformed answer."""
    if len(raw) < 2:
        raise ValueError("no method reply: %r" % raw)
    method, rest = raw[:2], raw[2:]
    if len(rest) < 5:
        raise ValueError("short request reply: %r" % rest)
    atyp = rest[3]
    alen = {1: 4, 4: 16}.get(atyp)
    if alen is None and atyp == 3:
        alen = 1 + rest[4]
    if alen is None:
        raise ValueError("bad ATYP in reply: %r" % rest)
    n = 4 + alen + 2
    if len(rest) < n:
        raise ValueError("short request reply: %r" % rest)
    return method, rest[:n], rest[n:]


# ------------------------------------------------------------------ sshd

class Sshd:
    """A key-only sshd on 127.0.0.1:port with its own host key, client
    key, authorized_keys and known_hosts (for the names given to
    known_host()). Runs in the foreground (-D -e) as the current user."""

    def __init__(self, dirpath):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.port = free_port()
        self.host_key = os.path.join(dirpath, "host_ed25519")
        self.client_key = os.path.join(dirpath, "client_ed25519")
        self.authorized = os.path.join(dirpath, "authorized_keys")
        self.known_hosts = os.path.join(dirpath, "known_hosts")
        self.config = os.path.join(dirpath, "sshd_config")
        self.log = os.path.join(dirpath, "sshd.log")
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        for key in (self.host_key, self.client_key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "",
                            "-C", "egress-it", "-f", key], check=True,
                           stdin=subprocess.DEVNULL, capture_output=True)
        with open(self.client_key + ".pub") as f:
            pub = f.read()
        with open(self.authorized, "w") as f:
            f.write(pub)
        with open(self.host_key + ".pub") as f:
            self.host_pub = " ".join(f.read().split()[:2])
        open(self.known_hosts, "w").close()
        with open(self.config, "w") as f:
            f.write("""\
Port %(port)d
ListenAddress 127.0.0.1
%(v6)sHostKey %(hk)s
PidFile %(dir)s/sshd.pid
AuthorizedKeysFile %(ak)s
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowUsers %(user)s
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 50
LogLevel VERBOSE
""" % {"port": self.port, "hk": self.host_key, "dir": dirpath,
                "v6": "ListenAddress ::1\n" if ipv6_loopback() else "",
                "ak": self.authorized, "user": self.user})
        self.proc = None

    def known_host(self, name):
        """Trust the host key for name at our port (as ssh writes it)."""
        with open(self.known_hosts, "a") as f:
            f.write("[%s]:%d %s\n" % (name, self.port, self.host_pub))

    def start(self):
        # sshd started by root insists on its privilege separation
        # directory (Debian's init script creates it; we start sshd alone).
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.proc = Proc(["/usr/sbin/sshd", "-D", "-e", "-f", self.config],
                         self.log, name="sshd")
        wait_port("127.0.0.1", self.port, 10, self.proc)
        return self

    def ssh_options(self):
        """ssh options for a key-only, non-interactive login (no user
        config, our known_hosts only, strict checking)."""
        return ["-F", "/dev/null", "-i", self.client_key,
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
                "-o", "UserKnownHostsFile=" + self.known_hosts,
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"]

    def log_text(self):
        return self.proc.log_text() if self.proc else ""

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


# ----------------------------------------------------- Squid with auth

class AuthSquid(Squid):
    """Squid that requires basic authentication (htpasswd file checked by
    basic_ncsa_auth) and resolves names from its own hosts file, so that
    test names (origin.test) reach loopback origins. Its access log shows
    the user and the request (absolute-form GET, CONNECT host:port)."""

    NCSA = "/usr/lib/squid/basic_ncsa_auth"

    CONF = """\
http_port 127.0.0.1:@@port@@
pid_filename @@dir@@/squid-@@port@@.pid
logformat egress %ts.%03tu %6tr %>a:%>p %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt
access_log stdio:@@dir@@/access.log egress
cache_log @@dir@@/cache.log
cache_store_log none
cache deny all
cache_mem 1 MB
coredump_dir @@dir@@
shutdown_lifetime 0 seconds
pinger_enable off
netdb_filename none
dns_nameservers 127.0.0.1
hosts_file @@dir@@/hosts
udp_incoming_address 127.0.0.1
visible_hostname egress-test
max_filedescriptors 1024
auth_param basic program @@ncsa@@ @@dir@@/passwd
auth_param basic children 2 startup=1 idle=1
auth_param basic realm egress-test
auth_param basic credentialsttl 1 minute
acl authed proxy_auth REQUIRED
http_access deny !localhost
http_access allow authed
http_access deny all
"""

    def __init__(self, dirpath, user, password, hosts=None):
        os.makedirs(dirpath, exist_ok=True)
        subprocess.run(["htpasswd", "-b", "-c", "-B",
                        os.path.join(dirpath, "passwd"), user, password],
                       check=True, capture_output=True)
        with open(os.path.join(dirpath, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            for name, addr in (hosts or {}).items():
                f.write("%s %s\n" % (addr, name))
        self.CONF = self.CONF.replace("@@ncsa@@", self.NCSA)
        super().__init__(dirpath)

    def requests(self):
        """Access-log lines as (user, method, url) triples ("-" for no
        user), leaving out probes that sent nothing (method "-")."""
        return [(f[7], f[5], f[6]) for f in self._lines() if f[5] != "-"]

    def client_ports(self, url_part):
        """The client port of each logged request whose URL contains
        url_part: equal ports mean one reused connection."""
        return [f[2].rsplit(":", 1)[1] for f in self._lines()
                if f[5] != "-" and url_part in f[6]]

    def _lines(self):
        return [f for f in (line.split() for line in
                            self.access_log().splitlines()) if len(f) >= 8]

    def stop(self):
        # Squid takes ~1.7 s to exit on SIGTERM; nothing of it needs to
        # survive (its access log is written line by line): be quick.
        if self.proc is not None:
            self.proc.stop(grace=0.1)

    def wait_logged(self, pred, n=1, timeout=5.0):
        """Squid writes its access log after the transaction: wait for n
        lines that satisfy pred((user, method, url)); returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            hits = [r for r in self.requests() if pred(r)]
            if len(hits) >= n or time.monotonic() >= deadline:
                return hits
            time.sleep(0.05)


# ------------------------------------------------------------ microsocks

class Microsocks:
    """microsocks on 127.0.0.1:port, with user/password when given. Its
    outgoing connections come from bind_addr (127.0.0.2 by default), so an
    origin's access log tells traffic that went through it."""

    def __init__(self, dirpath, user=None, password=None,
                 bind_addr="127.0.0.2"):
        self.dir = dirpath
        os.makedirs(dirpath, exist_ok=True)
        self.port = free_port()
        self.args = ["microsocks", "-i", "127.0.0.1", "-p", str(self.port),
                     "-b", bind_addr]
        if user is not None:
            self.args += ["-u", user, "-P", password]
        self.proc = None

    def start(self):
        self.proc = Proc(self.args, os.path.join(self.dir, "microsocks.log"),
                         name="microsocks")
        wait_port("127.0.0.1", self.port, 10, self.proc)
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.stop()


# --------------------------------------------------------------- egress

def connect_wrapper(path, errfile, rcfile):
    """A ProxyCommand script that runs `egress-run connect HOST PORT`,
    saving its stderr and exit status (ssh mixes both into its own)."""
    with open(path, "w") as f:
        f.write("#!/bin/sh\n%s connect \"$1\" \"$2\" 2>%s\necho $? >%s\n"
                % (shlex.quote(egress_bin()), shlex.quote(errfile),
                   shlex.quote(rcfile)))
    os.chmod(path, 0o755)
    return path
