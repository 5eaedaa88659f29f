"""Event hooks and metrics (issue 9), seen from the receiving end.

  - file hooks: each kind gets its own events as JSON Lines with the seeds'
    fields (timestamp, method, url without its query, host, status,
    secret_injected as a boolean, latency_ms); a bound secret's value, its
    binding's name, the query string and bodies appear nowhere; the config
    file's "hooks" objects work, and bad ones are refused naming the file.
  - webhooks: a POST of the event's JSON to a local http.server receiver
    (not held to the agent's policy), and to an https:// receiver verified
    with the harness TestCA through --upstream-ca; an untrusted one fails,
    counted and reported at exit.
  - a receiver that hangs: requests through the proxy keep their speed
    (timed against a run without hooks), the exit waits a bounded time,
    and the dropped events are counted and reported on stderr.
  - retries: a receiver that answers 503 twice, then 204, gets the same
    event three times (0.5 s, then 1 s apart) and it counts as delivered
    once; one that always fails gets each event three times, counted as
    failed, and a run that ends while an event is still being retried
    exits at once (no pause at exit), saying what was lost.
  - through the corporate upstream (--upstream, Squid): http:// and
    https:// webhooks are CONNECT tunnels through it (Squid's access log),
    pinned names going by address, and arrive.
  - --metrics: scraped with curl, parsed with python3-prometheus-client;
    the counters match what the test did (requests by door and decision,
    denials by rule, bytes, LLM requests and tokens, hook deliveries);
    404 elsewhere; loopback only.

Everything binds 127.0.0.1; everything started is stopped by cleanup.
"""

import json
import os
import subprocess
import time
import unittest

import builtin_fixtures as bf
import harness as h
import mitm_fixtures as mf

PY = h.PY

# A webhook receiver: "ok" records each request (method, path, headers,
# body, arrival time) as a JSON line and answers 204; "fail" records and
# answers 503; "flakyN" records and answers 503 to the first N requests,
# 204 after; "hang" accepts, reads, and never answers.
_RECEIVER = r'''
import json, socket, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

port, mode, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
served = [0]

if mode == "hang":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(512)
    held = []
    def hold(c):
        held.append(c)
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
    while True:
        c, _ = s.accept()
        with lock:
            with open(out, "a") as f:
                f.write("accepted\n")
        threading.Thread(target=hold, args=(c,), daemon=True).start()

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a):
        pass
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        rec = {"method": self.command, "path": self.path,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": body.decode("utf-8", "replace"), "t": time.time()}
        with lock:
            with open(out, "a") as f:
                f.write(json.dumps(rec) + "\n")
            served[0] += 1
            k = served[0]
        if mode.startswith("flaky"):
            code = 503 if k <= int(mode[5:]) else 204
        else:
            code = 204 if mode == "ok" else 503
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()
    do_GET = do_PUT = do_POST

class S(ThreadingHTTPServer):
    daemon_threads = True
S(("127.0.0.1", port), H).serve_forever(poll_interval=0.1)
'''

# Inside COMMAND: N GETs through the proxy on one keep-alive connection;
# prints the total and the slowest request's time.
_CLIENT = r'''
import http.client, os, sys, time, urllib.parse
n, url = int(sys.argv[1]), sys.argv[2]
p = urllib.parse.urlsplit(os.environ["HTTP_PROXY"])
c = http.client.HTTPConnection(p.hostname, p.port, timeout=30)
worst = 0.0
t0 = time.monotonic()
for i in range(n):
    t = time.monotonic()
    c.request("GET", url)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit("status %d" % r.status)
    worst = max(worst, time.monotonic() - t)
print("%.4f %.4f" % (time.monotonic() - t0, worst))
'''

LLM_LOCATION = """
    location = /v1/chat/completions {
        default_type application/json;
        return 200 '{"id":"c1","object":"chat.completion","model":"gpt-test","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}';
    }
"""


class Receiver:
    def __init__(self, tc, mode="ok"):
        self.port = h.free_port()
        self.out = tc.tmp.join("recv-%d.jsonl" % time.monotonic_ns())
        script = tc.tmp.write("recv-%d.py" % time.monotonic_ns(), _RECEIVER)
        self.proc = tc.start_proc([PY, script, str(self.port), mode,
                                   self.out], "receiver")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)
        if mode == "hang":      # the probe above was one connection
            h.wait_for(lambda: os.path.exists(self.out), 5, "the probe")
            os.unlink(self.out)

    def url(self, path="/hook"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def lines(self):
        try:
            with open(self.out) as f:
                return [ln for ln in f.read().splitlines() if ln]
        except FileNotFoundError:
            return []

    def requests(self, want=0, timeout=10.0):
        if want:
            h.wait_for(lambda: len(self.lines()) >= want, timeout,
                       "%d webhook request(s)" % want)
        return [json.loads(ln) for ln in self.lines()]


def jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(ln) for ln in f.read().splitlines()]
    except FileNotFoundError:
        return []


def metrics(port):
    """Scrape with curl; {(sample name, frozenset(labels)): value}, and the
    families' names, through prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    r = subprocess.run(["curl", "-sS", "--fail", "--max-time", "10",
                        "--noproxy", "*",
                        "http://127.0.0.1:%d/metrics" % port],
                       capture_output=True, text=True, env=h.clean_env())
    if r.returncode != 0:
        raise AssertionError("curl /metrics: %s" % r.stderr)
    out, fams = {}, set()
    for fam in text_string_to_metric_families(r.stdout):
        fams.add(fam.name)
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out, fams, r.stdout


def value(m, name, **labels):
    return m.get((name, frozenset(labels.items())))


class HooksMetrics(mf.MitmCase):

    def setUp(self):
        super().setUp()
        self.value = mf.new_secret()
        self.env = h.clean_env({"MYKEY": self.value})

    def run_sh(self, args, script, env=None, timeout=60):
        r = self.egress(args, ["sh", "-c", h.SH_VIA_PROXY + script],
                        env=self.env if env is None else env,
                        timeout=timeout)
        self.assertIsNone(bf.SANITIZER_REPORT.search(r.stderr), r.stderr)
        return r

    def no_leaks(self, *paths, texts=None):
        """Neither the secret's value, nor its binding's name, nor the
        query string's marker is in these hook files; the value is in none
        of the texts either."""
        self.assertEqual(mf.leaks(self.value, texts or {}, []), [])
        for needle in (self.value, "MYKEY", "QMARK"):
            for p in paths:
                with open(p, "rb") as f:
                    self.assertNotIn(needle.encode(), f.read(),
                                     "%s in %s" % (needle, p))

    # ------------------------------------------------------------ files

    def test_file_hooks_get_their_kinds_with_the_seeds_fields(self):
        n = self.echo_nginx()
        S = n.https_port
        req, resp, deny = (self.tmp.join(x) for x in
                           ("req.jsonl", "resp.jsonl", "deny.jsonl"))
        # From the config file: objects, named or not, and a spec string
        # (flags would replace the file's list).
        cfg = self.tmp.write("cfg.json", json.dumps({
            "hooks": [{"name": "denials", "event": "deny",
                       "target": "file:" + deny},
                      {"event": "request", "target": "file:" + req},
                      "response:file:" + resp]}))
        args = (["--upstream-ca", self.testca.cert, "--secret",
                 "MYKEY:api.test", "--deny", "other.test", "--config",
                 cfg] + mf.pins(S))
        r = self.run_sh(args, (
            'curl -sS --max-time 15 -o /dev/null '
            '"https://api.test:%(S)d/echo?token=QMARK-$MYKEY"; '
            'curl -sS --max-time 15 -o /dev/null -d "body=$MYKEY" '
            '"https://api.test:%(S)d/fixed?x=QMARK"; '
            'curl -sS --max-time 15 https://other.test:%(S)d/ || true'
            % {"S": S}))
        self.assertEqual(r.rc, 0, r)

        reqs = jsonl(req)
        self.assertEqual(len(reqs), 2, reqs)
        for e, (method, path) in zip(reqs, (("GET", "/echo"),
                                            ("POST", "/fixed"))):
            self.assertEqual(e["event"], "request")
            self.assertEqual(e["method"], method)
            self.assertEqual(e["url"], "https://api.test:%d%s" % (S, path))
            self.assertEqual(e["host"], "api.test")
            self.assertIs(e["secret_injected"], True)
            self.assertIsNone(e["status"])
            self.assertRegex(e["timestamp"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

        resps = jsonl(resp)
        done = [e for e in resps if e["audit_event"] == "request"]
        self.assertEqual(len(done), 2, resps)
        for e in done:
            self.assertEqual(e["event"], "response")
            self.assertEqual(e["status"], 200)
            self.assertIs(e["secret_injected"], True)
            self.assertIsInstance(e["latency_ms"], int)
            self.assertNotIn("?", e["url"])
        # The intercepted tunnels' own events are responses too.
        self.assertTrue(any(e["audit_event"] == "connect" and
                            e["url"] is None for e in resps), resps)
        self.assertFalse(any(e["host"] == "other.test" for e in resps))

        (d,) = jsonl(deny)
        self.assertEqual((d["event"], d["host"], d["status"], d["port"]),
                         ("deny", "other.test", 403, S))
        self.assertIn("other.test", d["rule"])
        self.assertIs(d["secret_injected"], False)
        self.no_leaks(req, resp, deny, texts={"stderr": r.stderr})
        # The origin did get the secret and the query: only hooks lack it.
        self.assertEqual(mf.header_log(n, 2)[0]["auth"],
                         "Bearer " + self.value)

    def test_bad_hooks_are_refused_naming_them(self):
        cases = [
            (["--hook", "nope:file:/tmp/x"], "unknown event 'nope'"),
            (["--hook", "deny:ftp://h.test/"], "--hook"),
            (["--hook", "deny:file:%s/no/such/dir/x"
              % self.tmp.path], "cannot open"),
        ]
        cfg = self.tmp.write("bad.json", json.dumps(
            {"hooks": [{"event": "deny", "target": "file:/dev/null"},
                       {"event": "deny", "target": "https://u:p@h.test/"}]}))
        cases.append((["--config", cfg], "hook 2"))
        for args, want in cases:
            r = self.egress(args, ["true"])
            self.assertEqual(r.rc, 125, r)
            self.assertIn(want, r.stderr)
            if "--config" in args:
                self.assertIn(cfg, r.stderr)
                self.assertIn("'hooks'", r.stderr)
            self.assertNotIn(":p@", r.stderr)
        self.assert_no_state_left()

    # ------------------------------------------------------------ webhooks

    def test_webhook_gets_a_post_of_each_event_outside_the_policy(self):
        n = self.nginx(files={"a.txt": "a\n"})
        rec = Receiver(self)
        # The policy allows only nginx's port: the receiver (loopback,
        # another port) is reached anyway, as egress-run's own traffic.
        args = ["--allow", "127.0.0.1:%d" % n.port,
                "--hook", "response:" + rec.url("/in?key=k1"),
                "--hook", "deny:" + rec.url("/deny")]
        r = self.run_sh(args, (
            'curl -sS --max-time 15 -o /dev/null "%s?q=QMARK"; '
            'curl -sS --max-time 15 -o /dev/null %s; '
            'curl -sS --max-time 15 -o /dev/null %s || true'
            % (n.url("a.txt"), n.url("a.txt"), rec.url("/sneak"))))
        self.assertEqual(r.rc, 0, r)
        got = rec.requests(3)
        self.assertEqual(len(got), 3, got)
        resp = [g for g in got if g["path"] == "/in?key=k1"]
        deny = [g for g in got if g["path"] == "/deny"]
        self.assertEqual((len(resp), len(deny)), (2, 1), got)
        for g in got:
            self.assertEqual(g["method"], "POST")
            self.assertEqual(g["headers"]["content-type"],
                             "application/json")
            self.assertTrue(g["headers"]["user-agent"].startswith(
                "egress-run/"))
        for g in resp:
            e = json.loads(g["body"])
            self.assertEqual(g["headers"]["x-egress-run-event"], "response")
            self.assertEqual((e["event"], e["method"], e["url"], e["host"],
                              e["status"], e["door"]),
                             ("response", "GET", n.url("a.txt"),
                              "127.0.0.1", 200, "http"))
            self.assertIs(e["secret_injected"], False)
        e = json.loads(deny[0]["body"])
        self.assertEqual((e["event"], e["url"], e["status"]),
                         ("deny", rec.url("/sneak"), 403))
        self.no_leaks(rec.out, texts={"stderr": r.stderr})
        self.assertNotIn("k1", r.stderr)

    def test_https_webhook_verified_with_the_upstream_ca(self):
        n = self.nginx(files={"a.txt": "a\n"})
        sink = self.sink(names=("hooks.test",))
        bad = self.sink(names=("bad.test",), cert=self.self_signed("bad.test"))
        args = (["--allow", "127.0.0.1", "--upstream-ca", self.testca.cert,
                 "--resolve", "hooks.test:%d:127.0.0.1" % sink.port,
                 "--resolve", "bad.test:%d:127.0.0.1" % bad.port,
                 "--hook", "good=response:https://hooks.test:%d/in?key=k1"
                 % sink.port,
                 "--hook", "bad=response:https://bad.test:%d/in" % bad.port])
        r = self.run_sh(args, "curl -sS --max-time 15 -o /dev/null %s"
                        % n.url("a.txt"))
        self.assertEqual(r.rc, 0, r)
        (got,) = sink.wait(1)
        self.assertEqual((got["method"], got["path"], got["sni"],
                          got["error"]), ("POST", "/in?key=k1", "hooks.test",
                                          None))
        e = json.loads(got["body"])
        self.assertEqual((e["event"], e["url"], e["status"]),
                         ("response", n.url("a.txt"), 200))
        self.assertEqual(bad.requests(), [])
        # The untrusted receiver: tried, given up, said so at exit.
        self.assertRegex(r.stderr, r"hook 'bad' .*1 of 1 events not "
                         r"delivered .*1 failed; last error: .*certificate")
        self.assertNotIn("hook 'good'", r.stderr)

    def test_hanging_receiver_does_not_slow_the_proxy(self):
        n = self.nginx(files={"a.txt": "a\n"})
        hang = Receiver(self, "hang")
        client = self.tmp.write("client.py", _CLIENT)
        N = 600         # more than a webhook's queue holds

        def run(extra):
            r = self.run_sh(["--allow", "127.0.0.1:%d" % n.port] + extra,
                            "%s %s %d %s" % (PY, client, N, n.url("a.txt")),
                            timeout=90)
            self.assertEqual(r.rc, 0, r)
            total, worst = (float(x) for x in r.stdout.split())
            return r, total, worst

        base = min(run([])[1] for _ in range(2))
        hooked = []
        for _ in range(2):
            r, total, worst = run(["--hook", "response:" + hang.url()])
            hooked.append(total)
            # No request waited for a webhook (5 s timeouts there).
            self.assertLess(worst, 1.0, r)
            # The exit waited a bounded time for the queue, no more.
            self.assertLess(r.elapsed - total, 2.0 + 3.0, r)
            self.assertRegex(
                r.stderr, r"hook response:%s: %d of %d events not "
                r"delivered \((\d+) dropped with the queue full, (\d+) "
                r"unsent at exit, 0 failed" % (hang.url(), N, N))
        self.assertLess(min(hooked), base * 2 + 0.5,
                        "with a hanging webhook: %s s, without: %.3f s"
                        % (hooked, base))
        # The receiver saw connections: deliveries were tried, a few at a
        # time.
        self.assertGreater(len(hang.lines()), 0)
        self.assertLessEqual(len(hang.lines()), 2 * 4 * 3)

    # ------------------------------------------------------------ retries

    def deliveries(self, mport, hook):
        m, _, text = metrics(mport)
        return (value(m, "egress_run_hook_deliveries_total", hook=hook,
                      result="delivered"),
                value(m, "egress_run_hook_deliveries_total", hook=hook,
                      result="failed"), text)

    def test_webhook_retried_after_5xx_until_delivered(self):
        rec = Receiver(self, "flaky2")
        mport = h.free_port()
        s = self.session(["--deny", "evil.test", "--metrics",
                          "127.0.0.1:%d" % mport,
                          "--hook", "siem=deny:" + rec.url()])
        h.wait_port("127.0.0.1", mport, 10)
        s.curl("-o", "/dev/null", "http://evil.test/x?q=QMARK")
        got = rec.requests(3, timeout=10)
        self.assertEqual(len(got), 3, got)
        # The same event each time, and tries spaced by the backoff.
        self.assertEqual(len({g["body"] for g in got}), 1, got)
        e = json.loads(got[0]["body"])
        self.assertEqual((e["event"], e["host"], e["url"]),
                         ("deny", "evil.test", "http://evil.test/x"))
        gaps = [b["t"] - a["t"] for a, b in zip(got, got[1:])]
        self.assertGreater(gaps[0], 0.4, gaps)
        self.assertGreater(gaps[1], 0.9, gaps)
        h.wait_for(lambda: self.deliveries(mport, "siem")[0] == 1, 5,
                   "the delivery to be counted")
        delivered, failed, text = self.deliveries(mport, "siem")
        self.assertEqual((delivered, failed), (1, 0), text)
        # Delivered once is delivered: no fourth try.
        time.sleep(1.5)
        self.assertEqual(len(rec.lines()), 3)
        out = s.stop()
        self.assertNotIn("not delivered", out)
        self.assertNotIn("could not be delivered", out)

    def test_webhook_failing_every_time_counted_and_exit_is_prompt(self):
        rec = Receiver(self, "fail")
        mport = h.free_port()
        s = self.session(["--deny", "evil.test", "--metrics",
                          "127.0.0.1:%d" % mport,
                          "--hook", "siem=deny:" + rec.url()])
        h.wait_port("127.0.0.1", mport, 10)
        for _ in range(2):
            s.curl("-o", "/dev/null", "http://evil.test/")
        rec.requests(6, timeout=10)
        h.wait_for(lambda: self.deliveries(mport, "siem")[1] == 2, 5,
                   "the failures to be counted")
        delivered, failed, text = self.deliveries(mport, "siem")
        self.assertEqual((delivered, failed), (0, 2), text)
        time.sleep(1.5)
        self.assertEqual(len(rec.lines()), 6)     # 3 tries each, no more
        self.assertRegex(s.log(), r"hook 'siem' .*: an event could not be "
                         r"delivered after 3 tries: the webhook answered 503")
        t0 = time.monotonic()
        out = s.stop()
        self.assertLess(time.monotonic() - t0, 3.0)
        self.assertRegex(out, r"hook 'siem' .*2 of 2 events not delivered "
                         r".*2 failed; last error: the webhook answered 503")

        # A run that ends with an event between tries: the pause is cut
        # short, the last tries go at once, and the exit does not wait
        # for a receiver that will never say yes.
        rec2 = Receiver(self, "fail")
        r = self.run_sh(["--deny", "evil.test", "--hook",
                         "late=deny:" + rec2.url()],
                        "curl -sS --max-time 5 -o /dev/null "
                        "http://evil.test/; exit 7")
        self.assertEqual(r.rc, 7, r)
        self.assertLess(r.elapsed, 4.0, r)
        got = rec2.requests(3, timeout=5)
        self.assertEqual(len(got), 3, got)
        self.assertLess(got[2]["t"] - got[1]["t"], 0.45, got)
        self.assertRegex(r.stderr, r"hook 'late' .*1 of 1 events not "
                         r"delivered .*1 failed; last error: the webhook "
                         r"answered 503")

    # ------------------------------------------------------------ upstream

    def test_webhooks_go_through_the_corporate_upstream(self):
        squid = self.squid()
        n = self.nginx(files={"a.txt": "a\n"})
        rec = Receiver(self)
        sink = self.sink(names=("hooks.test",))
        args = ["--upstream", "http://127.0.0.1:%d" % squid.port,
                "--upstream-ca", self.testca.cert,
                "--allow", "127.0.0.1:%d" % n.port,
                "--resolve", "hooks.test:%d:127.0.0.1" % sink.port,
                "--hook", "tls=response:https://hooks.test:%d/in"
                % sink.port,
                "--hook", "plain=response:" + rec.url("/in")]
        r = self.run_sh(args, "curl -sS --max-time 15 -o /dev/null --fail "
                        "%s" % n.url("a.txt"))
        self.assertEqual(r.rc, 0, r)
        (got,) = sink.wait(1)
        self.assertEqual((got["method"], got["path"], got["sni"],
                          got["error"]), ("POST", "/in", "hooks.test", None))
        e = json.loads(got["body"])
        self.assertEqual((e["event"], e["url"], e["status"]),
                         ("response", n.url("a.txt"), 200))
        (plain,) = rec.requests(1)
        self.assertEqual(json.loads(plain["body"])["url"], n.url("a.txt"))
        self.assertNotIn("not delivered", r.stderr)

        # Squid logs a transaction when it ends: the tunnels are closed
        # once the answers are read.
        def logged():
            log = squid.access_log()
            return (("CONNECT 127.0.0.1:%d " % sink.port in log or
                     "CONNECT hooks.test:%d " % sink.port in log) and
                    "CONNECT 127.0.0.1:%d " % rec.port in log)
        try:
            h.wait_for(logged, 10, "Squid to log the webhooks' CONNECTs")
        except AssertionError:
            raise AssertionError("Squid's access log:\n" +
                                 squid.access_log())
        # The agent's own request went that way too (plain HTTP: absolute
        # form), so the log is the one egress-run used.
        self.assertIn("GET %s " % n.url("a.txt"), squid.access_log())

    # ------------------------------------------------------------ metrics

    def test_metrics_count_what_happened(self):
        n = self.echo_nginx(server_extra=LLM_LOCATION)
        S = n.https_port
        rec = Receiver(self)
        llm = self.tmp.join("llm.jsonl")
        mport = h.free_port()
        s = self.session(["--allow", "127.0.0.1", "--allow", "api.test",
                          "--upstream-ca", self.testca.cert,
                          "--llm-host", "api.test:openai",
                          "--deny", "other.test", "--deny", "evil.test",
                          "--metrics", "127.0.0.1:%d" % mport,
                          "--hook", "siem=response:" + rec.url(),
                          "--hook", "llm:file:" + llm] + mf.pins(S))
        h.wait_port("127.0.0.1", mport, 10)
        m, fams, _ = metrics(mport)
        self.assertEqual(value(m, "egress_run_connections_open"), 0)
        for f in ("egress_run_connections", "egress_run_requests",
                  "egress_run_denials", "egress_run_bytes",
                  "egress_run_llm_tokens", "egress_run_hook_deliveries",
                  "egress_run_hook_drops"):
            self.assertIn(f, fams)

        plain = h.Nginx(self.tmp.mkdir("plain"), files={"a.txt": "a\n"})
        self.addCleanup(plain.stop)
        plain.start()
        ca = ["--cacert", s.env["SSL_CERT_FILE"]]
        for _ in range(3):
            rc, _, err = s.curl("-o", "/dev/null", "--fail",
                                plain.url("a.txt"))
            self.assertEqual(rc, 0, err)
        rc, _, err = s.curl("-o", "/dev/null", "http://evil.test/")
        rc, _, err = s.curl(*ca, "https://other.test:%d/" % S)
        self.assertNotEqual(rc, 0)
        rc, out, err = s.curl(*ca, "--fail", "-H",
                              "Content-Type: application/json", "-d",
                              '{"model":"gpt-test","messages":[{"role":'
                              '"user","content":"hi"}]}',
                              "https://api.test:%d/v1/chat/completions" % S)
        self.assertEqual(rc, 0, err)
        self.assertIn("gpt-test", out)
        # 3 plain + 1 intercepted request, 1 tunnel: 5 responses.
        rec.requests(5)

        m, fams, text = metrics(mport)
        v = lambda name, **kw: value(m, name, **kw)      # noqa: E731
        self.assertEqual(v("egress_run_requests_total", door="http",
                           decision="allow"), 3, text)
        self.assertEqual(v("egress_run_requests_total", door="http",
                           decision="deny"), 1, text)
        self.assertEqual(v("egress_run_requests_total", door="connect",
                           decision="deny"), 1, text)
        # The LLM tunnel and the call inside it.
        self.assertEqual(v("egress_run_requests_total", door="connect",
                           decision="allow"), 2, text)
        self.assertEqual(v("egress_run_denials_total",
                           rule="deny evil.test"), 1, text)
        self.assertEqual(v("egress_run_denials_total",
                           rule="deny other.test"), 1, text)
        self.assertGreaterEqual(v("egress_run_connections_total"), 6)
        self.assertGreater(v("egress_run_bytes_total", direction="down"), 0)
        rows = {dict(k[1])["model"]: val for k, val in m.items()
                if k[0] == "egress_run_llm_requests_total"}
        self.assertEqual(rows, {"gpt-test": 1}, text)
        tok = {dict(k[1])["type"]: val for k, val in m.items()
               if k[0] == "egress_run_llm_tokens_total"}
        self.assertEqual((tok["input"], tok["output"]), (11, 7), text)
        self.assertEqual(v("egress_run_hook_deliveries_total", hook="siem",
                           result="delivered"), 5, text)
        self.assertEqual(v("egress_run_hook_drops_total", hook="siem"), 0)
        self.assertEqual(v("egress_run_hook_deliveries_total",
                           hook="llm:file:" + llm, result="delivered"), 1)
        (e,) = jsonl(llm)
        self.assertEqual((e["event"], e["model"], e["input_tokens"],
                          e["output_tokens"], e["status"], e["url"]),
                         ("llm", "gpt-test", 11, 7, 200,
                          "https://api.test:%d/v1/chat/completions" % S))

        # Elsewhere: 404; not GET: 405.
        r = bf.raw_exchange(mport, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(r.status, 404, r)
        r = bf.raw_exchange(mport, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                            b"Content-Length: 0\r\n\r\n")
        self.assertEqual(r.status, 405, r)
        r = bf.raw_exchange(mport, b"GET /metrics HTTP/1.1\r\n\r\n")
        self.assertEqual(r.status, 400, r)     # no Host
        self.assertTrue(r.closed)

    def test_metrics_only_on_loopback(self):
        for spec in ("0.0.0.0:%d" % h.free_port(), "10.1.2.3:9464",
                     "example.com:9464"):
            r = self.egress(["--metrics", spec], ["true"])
            self.assertEqual(r.rc, 125, r)
            self.assertIn("--metrics '%s'" % spec, r.stderr)
        # A port in use: a warning, and the run goes on.
        port, _ = self.listener()
        r = self.egress(["--metrics", "127.0.0.1:%d" % port], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("running without --metrics", r.stderr)
        r = self.egress(["--fail-closed", "--metrics", "127.0.0.1:%d" % port],
                        ["true"])
        self.assertEqual(r.rc, 125, r)
        self.assert_no_state_left()


if __name__ == "__main__":
    unittest.main()
