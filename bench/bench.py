#!/usr/bin/python3
"""egress-run benchmarks (see ../shared/PERF.md and docs/PERFORMANCE.md).

Every figure is taken beside its peers in the same run, on the same machine,
and reported as a ratio: this machine is shared and noisy, so a lone
absolute number means little. Each measurement is repeated and the median
kept.

    bench/bench.py [--bin build/egress-run] [--runs 3] [--only P1,P2]
                   [--markdown]

Peers are started here, on loopback, from Debian's packages: nginx (the
origin, 1 worker, keep-alive), Squid 5 (caching off), and more as the
measurements that need them are added. Nothing here is a test: it never
fails on a slow result.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Procs:
    """Processes started in their own groups; all killed on exit."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        p = subprocess.Popen(argv, start_new_session=True,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        return p

    def stop(self, p):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs = []


def start_nginx(procs, tmp, big_mib):
    root = os.path.join(tmp, "nginx")
    www = os.path.join(root, "www")
    os.makedirs(os.path.join(root, "logs"))
    os.makedirs(www)
    with open(os.path.join(www, "small.bin"), "wb") as f:
        f.write(os.urandom(1024))
    with open(os.path.join(www, "big.bin"), "wb") as f:
        f.truncate(big_mib * 1024 * 1024)
    port = free_port()
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  server {{
    listen 127.0.0.1:{port};
    root {www};
    sendfile on;
  }}
}}
""")
    procs.start(["nginx", "-c", conf, "-p", root])
    wait_port(port)
    return port


def start_squid(procs, tmp):
    root = os.path.join(tmp, "squid")
    os.makedirs(root)
    os.chmod(root, 0o777)       # squid drops to user 'proxy'
    port = free_port()
    conf = os.path.join(root, "squid.conf")
    with open(conf, "w") as f:
        f.write(f"""http_port 127.0.0.1:{port}
http_access allow all
cache deny all
cache_mem 8 MB
access_log none
cache_log {root}/cache.log
pid_filename none
coredump_dir {root}
shutdown_lifetime 0 seconds
dns_v4_first on
""")
    procs.start(["squid", "-N", "-f", conf])
    wait_port(port, 20)
    return port


def start_egress(procs, binary, extra=()):
    port = free_port()
    procs.start([binary, "--listen", f"127.0.0.1:{port}",
                 "--allow", "127.0.0.1", *extra, "--", "sleep", "100000"])
    wait_port(port)
    return port


def wrk_rps(url, proxy_port=None, seconds=5):
    """P1: requests/s, wrk -t1 -c50, absolute URI when through a proxy."""
    if proxy_port is None:
        argv = ["wrk", "-t1", "-c50", f"-d{seconds}s", url]
    else:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f'wrk.method = "GET"\nwrk.path = "{url}"\n')
        script.close()
        argv = ["wrk", "-t1", "-c50", f"-d{seconds}s", "-s", script.name,
                f"http://127.0.0.1:{proxy_port}"]
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    if proxy_port is not None:
        os.unlink(script.name)
    rps = 0.0
    for line in out.splitlines():
        if line.startswith("Requests/sec:"):
            rps = float(line.split()[1])
        if "Non-2xx" in line or "Socket errors" in line:
            print(f"  warning: {line.strip()}", file=sys.stderr)
    return rps


def curl_speed(url, args=()):
    """P2/P3: one stream's bytes/s as curl reports it."""
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w",
                          "%{speed_download}", *args, url],
                         capture_output=True, text=True, timeout=300)
    return float(out.stdout or 0)


def median(f, runs):
    vals = [f() for _ in range(runs)]
    return statistics.median(vals), vals


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "build",
                                                  "egress-run"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--only", default="P1,P2")
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(","))
    for tool in ("nginx", "wrk", "curl", "squid"):
        if shutil.which(tool) is None and not os.path.exists(
                f"/usr/sbin/{tool}"):
            sys.exit(f"bench: {tool} is missing: run scripts/deps.sh")

    procs = Procs()
    tmp = tempfile.mkdtemp(prefix="egress-bench.")
    os.chmod(tmp, 0o755)       # nginx workers run as www-data
    rows = []
    try:
        origin = start_nginx(procs, tmp, args.big_mib)
        small = f"http://127.0.0.1:{origin}/small.bin"
        big = f"http://127.0.0.1:{origin}/big.bin"
        egress = start_egress(procs, args.bin)
        squid = start_squid(procs, tmp)
        peers = [("direct", None), ("egress-run", egress), ("squid", squid)]
        if "P1" in only:
            for name, port in peers:
                m, vals = median(lambda: wrk_rps(small, port, args.seconds),
                                 args.runs)
                rows.append(("P1 plain-HTTP req/s", name, m, vals))
        if "P2" in only:
            for name, port in peers:
                extra = () if port is None else ("-p", "-x",
                                                  f"127.0.0.1:{port}")
                m, vals = median(lambda: curl_speed(big, extra), args.runs)
                rows.append(("P2 CONNECT bytes/s", name, m, vals))
    finally:
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    report(rows, args.markdown)


def report(rows, markdown):
    base = {}
    for what, name, m, _ in rows:
        if name == "direct":
            base[what] = m
    if markdown:
        print("| measure | system | median | × direct |")
        print("|---|---|---|---|")
    for what, name, m, vals in rows:
        ratio = m / base[what] if base.get(what) else float("nan")
        shown = f"{m / 1e6:.0f} MB/s" if "bytes" in what else f"{m:.0f}"
        if markdown:
            print(f"| {what} | {name} | {shown} | {ratio:.2f} |")
        else:
            print(f"{what:24} {name:12} {shown:>12}  x{ratio:.2f}  "
                  f"runs={[round(v) for v in vals]}")


if __name__ == "__main__":
    main()
