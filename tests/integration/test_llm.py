"""LLM accounting through TLS interception (issue 9), end to end with real
clients (curl, Debian's python3-requests, node and the official SDKs) and
a fake LLM origin over TLS (llm_fixtures: the real APIs cannot be reached
from here) answering as api.anthropic.com, api.openai.com and
generativelanguage.googleapis.com, pinned with --resolve and trusted with
--upstream-ca.

  - tokens: JSON and streaming responses of the three formats (Anthropic
    messages, OpenAI chat/completions and responses, Gemini generateContent
    and streamGenerateContent as SSE and as a JSON array) are counted
    exactly: the llm audit events, the llm hook file, the --llm-summary
    table and the Prometheus counters say the same; an origin error is
    counted as an error; every byte the origin sent reaches curl; a
    stream without usage is estimated from bytes; a chunked request body
    is read like a Content-Length one (bounded by 1 MiB: past it, 413).
  - the registry: --llm-host adds a host in its format; --no-mitm wins
    (a plain tunnel, bytes only).
  - OpenAI streams: include_usage is added to a body without
    stream_options (nothing else in it changes), and the extra usage chunk
    is not shown: what the client reads is the origin's bytes minus that
    chunk, also when events straddle reads; a client's own stream_options
    is never touched; accounted calls ask for identity encoding.
  - streams are not buffered: the client sees the first event while the
    origin waits for the client to say so (a file), for each format.
  - budgets: the call that crosses --llm-budget gets through, the next
    ones get 429 in each provider's own error shape with x-should-retry:
    false and a message naming egress-run, one stderr line and a budget
    audit event; a refused call is a request event (decision deny) and an
    llm event naming provider and model; other requests to the host still
    pass; --llm-max-requests likewise.
  - --no-llm: nothing intercepted, counted or rewritten.
  - secrets: the child holds a placeholder, the origin gets the key, and
    the key is in no audit event, hook file, summary, metrics or stderr.
  - node: fetch (undici's ProxyAgent) and https (CONNECT by hand), and the
    official npm SDKs through the proxy, the 429 surfacing as the SDK's
    RateLimitError; the Python SDKs when they can be installed.
"""

import json
import os
import subprocess
import time
import unittest

import builtin_fixtures as bf
import harness as h
import llm_fixtures as lf
from llm_fixtures import ANTHROPIC, GOOGLE, OPENAI

PY = h.PY

MSG = [{"role": "user", "content": "Say hello"}]

# Inside COMMAND: python3-requests POSTs each call of a JSON spec
# (url, body, headers; "$VAR" expanded from the environment), reads the
# response as it arrives, and saves status, headers, the body (decoded, as
# requests gives it) and when it saw each piece. "release": create that
# file once the body holds "Hello" (the first text event).
REQUESTS_CLIENT = r'''
import json, os, sys, time, requests
spec, outdir = json.load(open(sys.argv[1])), sys.argv[2]
for i, c in enumerate(spec):
    hdrs = {k: os.path.expandvars(v) for k, v in c.get("headers",
                                                        {}).items()}
    body = c["body"] if isinstance(c["body"], str) else json.dumps(
        c["body"])
    t0 = time.monotonic()
    res = {"url": c["url"]}
    try:
        r = requests.post(os.path.expandvars(c["url"]),
                          data=os.path.expandvars(body).encode(),
                          headers=hdrs, stream=True, timeout=20)
        got, first, released = b"", None, False
        for b in r.iter_content(chunk_size=None):
            got += b
            if first is None and b"Hello" in got:
                first = time.monotonic() - t0
                if c.get("release"):
                    open(c["release"], "w").close()
                    released = True
        res.update(status=r.status_code, headers=dict(r.headers),
                   first=first, released=released,
                   total=time.monotonic() - t0)
        with open(os.path.join(outdir, "body-%d" % i), "wb") as f:
            f.write(got)
    except Exception as e:
        res["exception"] = "%s: %s" % (type(e).__name__, e)
    with open(os.path.join(outdir, "res-%d.json" % i), "w") as f:
        json.dump(res, f)
'''


def jdump(o):
    return json.dumps(o, separators=(",", ":"))


class LLMBase(lf.LLMCase):

    def requests_calls(self, args, calls, env=None, timeout=60):
        """Run REQUESTS_CLIENT inside egress-run for calls; returns the
        egress-run Result and [(res dict, body bytes)]."""
        spec = self.tmp.write("spec-%d.json" % time.monotonic_ns(),
                              json.dumps(calls))
        client = self.tmp.write("client.py", REQUESTS_CLIENT)
        outdir = self.tmp.mkdir("req-out-%d" % time.monotonic_ns())
        r = self.run_sh(args, "%s %s %s %s" % (PY, client, spec, outdir),
                        env=env, timeout=timeout)
        got = []
        for i in range(len(calls)):
            try:
                with open(os.path.join(outdir, "res-%d.json" % i)) as f:
                    res = json.load(f)
            except FileNotFoundError:
                self.fail("call %d did not finish: %r" % (i, r))
            body = b""
            p = os.path.join(outdir, "body-%d" % i)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    body = f.read()
            got.append((res, body))
        return r, got

    def llm_events(self, n, timeout=5.0):
        ev = bf.read_audit(self.audit, timeout, want=lambda ev: len(
            [e for e in ev if e["event"] == "llm"]) >= n)
        return [e for e in ev if e["event"] == "llm"]


class Tokens(LLMBase):

    CALLS = [
        # host, path, body, stream
        (ANTHROPIC, "/v1/messages",
         {"model": "claude-test", "max_tokens": 16, "messages": MSG}, False),
        (ANTHROPIC, "/v1/messages",
         {"model": "claude-test", "max_tokens": 16, "messages": MSG,
          "stream": True}, True),
        (OPENAI, "/v1/chat/completions",
         {"model": "gpt-test", "messages": MSG}, False),
        (OPENAI, "/v1/chat/completions",
         {"model": "gpt-test", "messages": MSG, "stream": True,
          "stream_options": {"include_usage": True}}, True),
        (OPENAI, "/v1/responses", {"model": "gpt-test", "input": "hi"},
         False),
        (OPENAI, "/v1/responses",
         {"model": "gpt-test", "input": "hi", "stream": True}, True),
        (GOOGLE, "/v1beta/models/gemini-test:generateContent",
         {"contents": [{"parts": [{"text": "hi"}]}]}, False),
        (GOOGLE, "/v1beta/models/gemini-test:streamGenerateContent?alt=sse",
         {"contents": [{"parts": [{"text": "hi"}]}]}, True),
        (GOOGLE, "/v1beta/models/gemini-test:streamGenerateContent",
         {"contents": [{"parts": [{"text": "hi"}]}]}, True),
        (ANTHROPIC, "/v1/messages",
         {"model": "claude-err500", "max_tokens": 16, "messages": MSG},
         False),
    ]

    def test_json_and_streams_counted_in_audit_hooks_summary_metrics(self):
        hook = self.tmp.join("llm-hook.jsonl")
        mport = h.free_port()
        s = self.session(self.base_args(
            "--llm-summary", "--hook", "llm:file:" + hook,
            "--metrics", "127.0.0.1:%d" % mport))
        ca = ["--cacert", s.env["SSL_CERT_FILE"]]
        outs = []
        for host, path, body, _stream in self.CALLS:
            rc, out, err = s.curl(*ca, "-N", "-H",
                                  "Content-Type: application/json",
                                  "-d", jdump(body), self.url(host, path))
            self.assertEqual(rc, 0, err)
            outs.append(out)
        recs = self.origin.wait(len(self.CALLS))
        self.assertEqual(len(recs), len(self.CALLS))
        for (host, path, body, _s), rec, out in zip(self.CALLS, recs, outs):
            self.assertEqual((rec["path"], rec["sni"]), (path, host))
            # Nothing to rewrite in these: the body went as sent, and
            # every byte of the answer reached curl.
            self.assertEqual(json.loads(rec["body"]), body)
            self.assertEqual(out.encode(), rec["out"], path)
            self.assertEqual(lf.header(rec, "accept-encoding"),
                             ["identity"])

        events = self.llm_events(len(self.CALLS))
        self.assertEqual(len(events), len(self.CALLS), events)
        provider = {ANTHROPIC: "anthropic", OPENAI: "openai",
                    GOOGLE: "google"}
        for (host, path, body, stream), e in zip(self.CALLS, events):
            model = body.get("model", "gemini-test")
            self.assertEqual((e["host"], e["path"], e["door"], e["mitm"]),
                             (host, path.split("?")[0], "connect", True))
            if "err500" in model:
                self.assertEqual((e["status"], e["model"], e["estimated"],
                                  e["input_tokens"], e["output_tokens"]),
                                 (500, model, False, 0, 0), e)
                continue
            self.assert_llm_event(e, provider[host], model, stream)

        # The llm hook file: the same calls, the same numbers.
        hooked = h.wait_for(lambda: len(lf.jsonl(hook)) >= len(self.CALLS)
                            and lf.jsonl(hook), 5, "the llm hook file")
        self.assertEqual(
            [(x["provider"], x["model"], x["stream"], x["input_tokens"],
              x["output_tokens"], x["cache_read_tokens"],
              x["cache_write_tokens"], x["status"]) for x in hooked],
            [(e["provider"], e["model"], e["stream"], e["input_tokens"],
              e["output_tokens"], e["cache_read_tokens"],
              e["cache_write_tokens"], e["status"]) for e in events])
        for x in hooked:
            self.assertEqual(x["event"], "llm")
            self.assertTrue(x["url"].startswith("https://"), x)
            self.assertNotIn("?", x["url"])

        # Metrics, parsed by prometheus_client.
        a, g, o = usage = (lf.usage_of("claude-test"),
                           lf.usage_of("gemini-test"),
                           lf.usage_of("gpt-test"))
        del usage
        want = {
            ("anthropic", "claude-test"): (2, 0, a["in"] * 2, a["out"] * 2,
                                           a["cr"] * 2, a["cw"] * 2),
            ("anthropic", "claude-err500"): (1, 1, 0, 0, 0, 0),
            ("openai", "gpt-test"): (4, 0, o["in"] * 4, o["out"] * 4,
                                     o["cr"] * 4, 0),
            ("google", "gemini-test"): (3, 0, g["in"] * 3, g["out"] * 3,
                                        g["cr"] * 3, 0),
        }
        r = subprocess.run(["curl", "-sS", "--fail", "--max-time", "10",
                            "--noproxy", "*",
                            "http://127.0.0.1:%d/metrics" % mport],
                           capture_output=True, text=True, timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        m = lf.metrics_text(r.stdout)
        for (p, model), (n, errs, i, out, cr, cw) in want.items():
            lab = {"provider": p, "model": model}
            def v(name, **kw):
                return m.get((name, frozenset(dict(lab, **kw).items())))
            self.assertEqual(v("egress_run_llm_requests_total"), n, r.stdout)
            self.assertEqual(v("egress_run_llm_errors_total"), errs)
            self.assertEqual(v("egress_run_llm_refused_total"), 0)
            self.assertEqual((v("egress_run_llm_tokens_total", type="input"),
                              v("egress_run_llm_tokens_total",
                                type="output"),
                              v("egress_run_llm_tokens_total",
                                type="cache_read"),
                              v("egress_run_llm_tokens_total",
                                type="cache_write")), (i, out, cr, cw),
                             (p, model, r.stdout))

        # The summary at exit.
        text = s.stop()
        rows = lf.summary_rows(text)
        for (p, model), (n, errs, i, out, cr, cw) in want.items():
            row = rows.get((p, model))
            self.assertIsNotNone(row, text)
            self.assertEqual((row["requests"], row["errors"], row["input"],
                              row["output"], row["cache-read"],
                              row["cache-write"]), (n, errs, i, out, cr, cw),
                             text)
        total = rows[("total", "")]
        self.assertEqual((total["requests"], total["errors"]), (10, 1), text)
        self.assertEqual(total["input"], sum(x[2] for x in want.values()))
        self.assertNotIn("estimated", text)

    def test_compressed_answer_is_estimated_and_still_valid(self):
        # An origin that compresses although asked for identity: the body
        # reaches the client intact (curl decodes it) and the call is
        # counted as estimated.
        calls = [{"url": self.url(ANTHROPIC, "/v1/messages"),
                  "headers": {"Accept-Encoding": "gzip, br, zstd"},
                  "body": {"model": "claude-gzip", "max_tokens": 8,
                           "messages": MSG}}]
        r, got = self.requests_calls(self.base_args("--llm-summary"), calls)
        self.assertEqual(r.rc, 0, r)
        res, body = got[0]
        self.assertEqual(res["status"], 200, res)
        self.assertEqual(json.loads(body)["content"][0]["text"],
                         "Hello, world!")
        (rec,) = self.origin.wait(1)
        self.assertEqual(lf.header(rec, "accept-encoding"), ["identity"])
        (e,) = self.llm_events(1)
        self.assertEqual((e["model"], e["estimated"], e["status"]),
                         ("claude-gzip", True, 200), e)
        self.assertIn("reported no usage: tokens estimated", r.stderr)

    def test_streams_without_usage_are_estimated_from_bytes(self):
        # No usage in the stream at all: the call is counted as estimated,
        # input from the request bytes and output from the text bytes
        # (a quarter each, rounded up), and the summary says so.
        calls = [
            (ANTHROPIC, "/v1/messages",
             {"model": "claude-nousage", "max_tokens": 8, "messages": MSG,
              "stream": True}),
            (GOOGLE, "/v1beta/models/gemini-nousage:streamGenerateContent"
             "?alt=sse", {"contents": [{"parts": [{"text": "hi"}]}]}),
        ]
        script = ""
        for i, (host, path, body) in enumerate(calls):
            script += self.sh_client("n%d" % i, (
                "curl -sS -N --fail --max-time 15 -H 'content-type: "
                "application/json' -d '%s' '%s'"
                % (jdump(body), self.url(host, path))))
        r = self.run_sh(self.base_args("--llm-summary"), script)
        self.assertEqual(r.rc, 0, r)
        recs = self.origin.wait(2)
        text = len("".join(lf.TEXT).encode())
        for i, ((host, path, body), rec, e) in enumerate(zip(
                calls, recs, self.llm_events(2))):
            rc, out, err = self.result("n%d" % i)
            self.assertEqual(rc, 0, err)
            self.assertEqual(out.encode(), rec["out"])
            sent = len(rec["body"].encode())
            self.assertEqual(sent, len(jdump(body)))
            self.assertEqual((e["estimated"], e["input_tokens"],
                              e["output_tokens"], e["status"]),
                             (True, -(-sent // 4), -(-text // 4), 200), e)
        self.assertEqual([e["model"] for e in self.llm_events(2)],
                         ["claude-nousage", "gemini-nousage"])
        self.assertIn("2 responses reported no usage: tokens estimated "
                      "from bytes", r.stderr)

    def test_chunked_request_body_is_read_for_model_and_usage(self):
        # A chunked request body (node streams, requests with a generator,
        # curl -H 'Transfer-Encoding: chunked') is gathered and decoded
        # like a Content-Length one: model and stream known,
        # stream_options added, the body sent with a Content-Length of its
        # own, tokens exact. (It once went by unread: model null, stream
        # false, tokens estimated.)
        body = jdump({"model": "gpt-test", "messages": MSG, "stream": True})
        f = self.tmp.write("body.json", body)
        r = self.run_sh(self.base_args(), (
            'curl -sS -N --max-time 15 -H "Transfer-Encoding: chunked" '
            '-H "Content-Type: application/json" --data-binary @%s %s '
            '>%s/out' % (f, self.url(OPENAI, "/v1/chat/completions"),
                         self.out)))
        self.assertEqual(r.rc, 0, r)
        (rec,) = self.origin.wait(1)
        (e,) = self.llm_events(1)
        self.assertEqual((e["model"], e["stream"]), ("gpt-test", True), e)
        self.assertEqual(rec["body"], '{"stream_options":{"include_usage"'
                         ':true},' + body[1:])
        self.assertEqual(lf.header(rec, "transfer-encoding"), [])
        self.assertEqual(lf.header(rec, "content-length"),
                         [str(len(rec["body"]))])
        self.assertEqual(lf.slurp(os.path.join(self.out, "out"), True),
                         lf.without_usage_chunk(rec["out"]))
        self.assert_llm_event(e, "openai", "gpt-test", True)

    def test_chunked_request_bodies_past_the_rules_bound_and_past_1_mib(self):
        # Gathered for accounting alone, a chunked body is bounded by the
        # accounting's 1 MiB, not by the request rules' 256 KiB: 400 KiB
        # goes through, counted; past 1 MiB it is refused with 413 and a
        # reason (its size is known only at its end), the origin unasked.
        def body(n):
            return jdump({"model": "claude-test", "max_tokens": 8,
                          "messages": [{"role": "user",
                                        "content": "x" * n}]})
        mid = self.tmp.write("mid.json", body(400 * 1024))
        big = self.tmp.write("big.json", body(1100 * 1024))
        c = ("curl -sS --max-time 15 -H 'Transfer-Encoding: chunked' "
             "-H 'Content-Type: application/json' -o %s/%%s.body -D "
             "%s/%%s.head -w '%%%%{http_code}' --data-binary @%%s %s"
             % (self.out, self.out, self.url(ANTHROPIC, "/v1/messages")))
        r = self.run_sh(self.base_args(), self.sh_client(
            "mid", c % ("mid", "mid", mid)) + self.sh_client(
            "big", c % ("big", "big", big)))
        self.assertEqual(r.rc, 0, r)
        rc, out, err = self.result("mid")
        self.assertEqual((rc, out), (0, "200"), err)
        _rc, out, err = self.result("big")
        self.assertEqual(out, "413", err)
        head = lf.slurp(os.path.join(self.out, "big.head"))
        self.assertIn("X-Egress-Run-Reason: a chunked LLM request body "
                      "over 1 MiB cannot be accounted", head)
        recs = self.origin.wait(1)
        self.assertEqual(len(recs), 1, "the refused body reached the origin")
        self.assertEqual(recs[0]["body"], lf.slurp(mid))
        ev = self.events()
        (e,) = [e for e in ev if e["event"] == "llm"
                and e["status"] == 200]
        self.assert_llm_event(e, "anthropic", "claude-test", False)
        self.assertEqual([x["status"] for x in ev if x["event"] == "error"],
                         [413], ev)


class OpenAIStreams(LLMBase):

    def test_include_usage_added_and_the_extra_chunk_hidden(self):
        url = self.url(OPENAI, "/v1/chat/completions")
        # Odd spacing, key order and a big integer: the rewrite inserts,
        # it does not re-encode.
        raw = ('{ "model" : "gpt-test","messages":[{"role":"user",'
               '"content":"hi \\u00e9"}],"seed":123456789012345678901,'
               '"temperature":1.0e0,"stream":true}')
        calls = [
            {"url": url, "body": raw,
             "headers": {"Content-Type": "application/json"}},
            # Events written in two pieces each: the filter holds only
            # the event under way.
            {"url": url, "body": {"model": "gpt-split", "messages": MSG,
                                  "stream": True}},
            # The client asked itself: untouched, the chunk is its own.
            {"url": url, "body": {"model": "gpt-test", "messages": MSG,
                                  "stream": True, "stream_options": {
                                      "include_usage": True}}},
            # The client said no: untouched, no usage, estimated.
            {"url": url, "body": {"model": "gpt-test", "messages": MSG,
                                  "stream": True, "stream_options": {
                                      "include_usage": False}}},
        ]
        r, got = self.requests_calls(self.base_args("--llm-summary"), calls)
        self.assertEqual(r.rc, 0, r)
        recs = self.origin.wait(4)
        sent = [c["body"] if isinstance(c["body"], str) else
                json.dumps(c["body"]) for c in calls]

        # 1: stream_options inserted after the brace, every other byte
        # as the client wrote it; the client gets all but the usage chunk.
        self.assertEqual(recs[0]["body"],
                         '{"stream_options":{"include_usage":true},' +
                         sent[0][1:])
        self.assertEqual(len(lf.header(recs[0], "content-length")), 1)
        self.assertEqual(int(lf.header(recs[0], "content-length")[0]),
                         len(recs[0]["body"].encode()))
        self.assertIn(b'"choices": [], "usage": {', recs[0]["out"])
        self.assertEqual(got[0][1], lf.without_usage_chunk(recs[0]["out"]))
        self.assertNotIn(b'"choices": []', got[0][1])
        self.assertTrue(got[0][1].endswith(b"data: [DONE]\n\n"))
        # 2: the same with events split across reads.
        self.assertTrue(recs[1]["body"].startswith(
            '{"stream_options":{"include_usage":true},'))
        self.assertEqual(got[1][1], lf.without_usage_chunk(recs[1]["out"]))
        # 3, 4: untouched, and everything the origin sent arrives.
        for i in (2, 3):
            self.assertEqual(recs[i]["body"], sent[i])
            self.assertEqual(got[i][1], recs[i]["out"])
        self.assertIn(b'"choices": [], "usage": {', got[2][1])

        ev = self.llm_events(4)
        self.assert_llm_event(ev[0], "openai", "gpt-test", True)
        self.assert_llm_event(ev[1], "openai", "gpt-split", True)
        self.assert_llm_event(ev[2], "openai", "gpt-test", True)
        self.assertEqual((ev[3]["model"], ev[3]["estimated"]),
                         ("gpt-test", True), ev[3])
        # Estimates: input ~ request bytes / 4, output ~ text bytes / 4.
        self.assertGreater(ev[3]["input_tokens"], 0, ev[3])
        for rec in recs:
            self.assertEqual(lf.header(rec, "accept-encoding"),
                             ["identity"])
        self.assertIn("1 response reported no usage", r.stderr)


    def test_framings_and_http10_clients_see_all_but_the_usage_chunk(self):
        # The origin frames its stream by chunks, by Content-Length or by
        # closing; the client speaks HTTP/1.1 or 1.0: whatever the
        # framing, the client reads the origin's bytes minus the usage
        # chunk, and the tokens are exact.
        url = self.url(OPENAI, "/v1/chat/completions")
        cases = [("chunked-11", "gpt-test", ""), ("cl-11", "gpt-cl", ""),
                 ("eof-11", "gpt-eof", ""), ("chunked-10", "gpt-test", "-0"),
                 ("cl-10", "gpt-cl", "-0"), ("eof-10", "gpt-eof", "-0")]
        script = ""
        for name, model, opt in cases:
            script += self.sh_client(name, (
                "curl -sS -N --fail --max-time 15 %s -d '%s' %s"
                % (opt, jdump({"model": model, "messages": MSG,
                               "stream": True}), url)))
        r = self.run_sh(self.base_args(), script)
        self.assertEqual(r.rc, 0, r)
        recs = self.origin.wait(len(cases))
        for (name, model, _opt), rec in zip(cases, recs):
            rc, out, err = self.result(name)
            self.assertEqual(rc, 0, (name, err))
            self.assertTrue(rec["body"].startswith(
                '{"stream_options":{"include_usage":true},'), name)
            self.assertEqual(out.encode(), lf.without_usage_chunk(
                rec["out"]), name)
        for e, (name, model, _o) in zip(self.llm_events(len(cases)), cases):
            self.assert_llm_event(e, "openai", model, True)

    def test_expect_100_continue_adds_no_wait(self):
        # curl sends Expect: 100-continue; the body is gathered for
        # accounting before the origin hears of the call, so the go-ahead
        # must come from egress-run at once (curl would wait 1 s).
        body = self.tmp.write("body.json", jdump(
            {"model": "claude-test", "max_tokens": 8,
             "messages": [{"role": "user", "content": "x" * 4000}]}))
        # curl waits 8 s for the go-ahead before sending anyway: a
        # threshold far from both a prompt answer and that wait.
        r = self.run_sh(self.base_args(), self.sh_client("e", (
            "curl -sS --fail --max-time 20 --expect100-timeout 8 -o "
            "/dev/null -H 'Expect: 100-continue' -w '%%{time_total}' "
            "--data-binary @%s %s"
            % (body, self.url(ANTHROPIC, "/v1/messages")))), timeout=60)
        self.assertEqual(r.rc, 0, r)
        rc, out, err = self.result("e")
        self.assertEqual(rc, 0, err)
        self.assertLess(float(out), 4.0, "curl waited for 100 Continue")
        (rec,) = self.origin.wait(1)
        self.assertEqual(lf.header(rec, "expect"), [])
        (e,) = self.llm_events(1)
        self.assert_llm_event(e, "anthropic", "claude-test", False)

    def test_error_event_mid_stream_counts_as_an_error(self):
        r, got = self.requests_calls(self.base_args("--llm-summary"), [
            {"url": self.url(ANTHROPIC, "/v1/messages"),
             "body": {"model": "claude-midstreamerr", "max_tokens": 8,
                      "messages": MSG, "stream": True}}])
        self.assertEqual(r.rc, 0, r)
        (rec,) = self.origin.wait(1)
        self.assertEqual(got[0][1], rec["out"])
        (e,) = self.llm_events(1)
        self.assertEqual((e["status"], e["estimated"]), (200, True), e)
        row = lf.summary_rows(r.stderr)[("anthropic", "claude-midstreamerr")]
        self.assertEqual((row["requests"], row["errors"]), (1, 1), r.stderr)


class NotBuffered(LLMBase):
    """The origin sends its first text event, then waits until the client
    has seen it (the client creates the release file); a proxy that held
    the stream back would leave the origin waiting WAIT_MAX seconds."""

    def test_first_event_reaches_the_client_while_the_origin_waits(self):
        rel = self.origin.release
        gbody = {"contents": [{"parts": [{"text": "hi"}]}]}
        calls = [
            {"url": self.url(ANTHROPIC, "/v1/messages"),
             "body": {"model": "claude-wait", "max_tokens": 8,
                      "messages": MSG, "stream": True}},
            # include_usage added: the filtered path.
            {"url": self.url(OPENAI, "/v1/chat/completions"),
             "body": {"model": "gpt-wait", "messages": MSG,
                      "stream": True}},
            {"url": self.url(OPENAI, "/v1/responses"),
             "body": {"model": "gpt-wait", "input": "hi", "stream": True}},
            {"url": self.url(
                GOOGLE, "/v1beta/models/gemini-wait:streamGenerateContent"
                "?alt=sse"), "body": gbody},
        ]
        for i, c in enumerate(calls):
            if os.path.exists(rel):
                os.unlink(rel)
            c = dict(c, release=rel)
            r, got = self.requests_calls(self.base_args(), [c])
            self.assertEqual(r.rc, 0, r)
            res, body = got[0]
            self.assertEqual(res["status"], 200, res)
            self.assertTrue(res["released"], res)
            rec = self.origin.wait(i + 1)[i]
            self.assertIs(rec["done"]["released"], True,
                          "the origin waited in vain: the first event "
                          "never reached the client (%s)" % c["url"])
            # Well under the origin's WAIT_MAX.
            self.assertLess(res["total"], lf.WAIT_MAX / 2, res)
        ev = self.llm_events(4)
        self.assertEqual([e["estimated"] for e in ev], [False] * 4, ev)


# Inside COMMAND: two streaming POSTs at once (threads), each held in the
# origin after its first text event until the release file exists, which
# is made only once BOTH clients saw their first text: both calls are in
# flight together whatever the scheduling. Then a third call once both
# are done.
TWO_AT_ONCE = r'''
import json, os, sys, threading, requests
url, rel, outdir = sys.argv[1:4]
body = os.environ["BODY"]
statuses, bodies = [None, None, None], [None, None, None]
seen, lock = set(), threading.Lock()
def call(i):
    r = requests.post(url, data=body, stream=True, timeout=20)
    got = b""
    for b in r.iter_content(chunk_size=None):
        got += b
        if b"Hello" in got and i not in seen:
            with lock:
                seen.add(i)
                if seen >= {0, 1} and not os.path.exists(rel):
                    open(rel, "w").close()
    statuses[i], bodies[i] = r.status_code, got.decode()
ts = [threading.Thread(target=call, args=(i,)) for i in (0, 1)]
for t in ts:
    t.start()
for t in ts:
    t.join(30)
call(2)
json.dump({"statuses": statuses, "bodies": bodies},
          open(os.path.join(outdir, "two.json"), "w"))
'''


class Budgets(LLMBase):

    def test_crossing_call_passes_then_429_in_each_providers_shape(self):
        a = lf.usage_of("claude-test")
        budget = a["in"] + a["out"] - 2     # the first call crosses it
        gbody = {"contents": [{"parts": [{"text": "hi"}]}]}
        calls = [
            {"url": self.url(ANTHROPIC, "/v1/messages"),
             "body": {"model": "claude-test", "max_tokens": 8,
                      "messages": MSG, "stream": True}},
            {"url": self.url(ANTHROPIC, "/v1/messages"),
             "body": {"model": "claude-test", "max_tokens": 8,
                      "messages": MSG}},
            {"url": self.url(OPENAI, "/v1/chat/completions"),
             "body": {"model": "gpt-test", "messages": MSG}},
            {"url": self.url(
                GOOGLE, "/v1beta/models/gemini-test:generateContent"),
             "body": gbody},
        ]
        r, got = self.requests_calls(self.base_args(
            "--llm-budget", str(budget), "--llm-summary"), calls)
        self.assertEqual(r.rc, 0, r)
        # The crossing stream finished whole.
        self.assertEqual(got[0][0]["status"], 200)
        self.assertIn(b"event: message_stop", got[0][1])
        recs = self.origin.records()
        self.assertEqual(len(recs), 1, "refused calls reached the origin")
        shapes = []
        for res, body in got[1:]:
            self.assertEqual(res["status"], 429, res)
            hdrs = {k.lower(): v for k, v in res["headers"].items()}
            self.assertEqual(hdrs.get("x-should-retry"), "false", hdrs)
            self.assertTrue(hdrs["content-type"].startswith(
                "application/json"), hdrs)
            shapes.append(json.loads(body))
        msg = ("egress-run: LLM token budget exhausted: %d tokens used of "
               "--llm-budget %d; new LLM requests are refused"
               % (a["in"] + a["out"], budget))
        self.assertEqual(shapes[0], {"type": "error", "error": {
            "type": "rate_limit_error", "message": msg}})
        self.assertEqual(shapes[1], {"error": {
            "message": msg, "type": "insufficient_quota", "param": None,
            "code": "insufficient_quota"}})
        self.assertEqual(shapes[2], {"error": {
            "code": 429, "message": msg, "status": "RESOURCE_EXHAUSTED"}})
        # One stderr line when it trips, and a budget audit event.
        self.assertEqual(r.stderr.count("LLM token budget exhausted"), 1,
                         r.stderr)
        budget_ev = self.events("budget")
        self.assertEqual(len(budget_ev), 1, self.events())
        self.assertIn("--llm-budget %d" % budget, budget_ev[0]["reason"])
        refused = [e for e in self.events("llm") if e["status"] == 429]
        self.assertEqual(len(refused), 3, self.events())
        self.assertIn("3 LLM requests refused", r.stderr)

    def test_refused_call_event_names_provider_and_model(self):
        # The llm event of a refused call (and the llm hook's) says which
        # call it was: provider, model, stream, no tokens, no ttfb. (It
        # once had none of those fields.)
        hook = self.tmp.join("hook.jsonl")
        calls = [{"url": self.url(OPENAI, "/v1/chat/completions"),
                  "body": {"model": "gpt-test", "messages": MSG}},
                 {"url": self.url(ANTHROPIC, "/v1/messages"),
                  "body": {"model": "claude-test", "max_tokens": 8,
                           "messages": MSG, "stream": True}}]
        r, got = self.requests_calls(self.base_args(
            "--llm-budget", "1", "--hook", "llm:file:" + hook), calls)
        self.assertEqual([g[0]["status"] for g in got], [200, 429])
        (e,) = [e for e in self.events("llm") if e["status"] == 429]
        self.assertEqual((e.get("provider"), e.get("model"),
                          e.get("stream"), e.get("input_tokens"),
                          e.get("output_tokens"), e.get("ttfb_ms")),
                         ("anthropic", "claude-test", True, 0, 0, None), e)
        self.assertIn("LLM token budget exhausted", e["reason"])
        self.assertEqual(e["decision"], "deny", e)
        self.assertTrue(all(x["decision"] == "allow" for x in
                            self.events("llm") if x["status"] == 200))
        (x,) = [x for x in lf.jsonl(hook) if x["status"] == 429]
        self.assertEqual((x.get("provider"), x.get("model"),
                          x.get("stream")),
                         ("anthropic", "claude-test", True), x)

    def test_refused_call_is_a_response_and_a_request(self):
        # The 429 of a refused call is egress-run's own answer to a
        # request: a "request" audit event (decision deny) is written for
        # it, so response hooks ("the origin's answer or egress-run's
        # own, errors included", egress-run(1)) hear of it and
        # egress_run_requests_total counts it. (Once neither did.)
        hook = self.tmp.join("resp.jsonl")
        mport = h.free_port()
        mout = self.tmp.join("metrics.txt")
        url = self.url(OPENAI, "/v1/chat/completions")
        spec = self.tmp.write("spec.json", json.dumps(
            [{"url": url, "body": {"model": "gpt-test",
                                   "messages": MSG}}] * 2))
        client = self.tmp.write("client.py", REQUESTS_CLIENT)
        r = self.run_sh(self.base_args(
            "--llm-max-requests", "1", "--hook", "response:file:" + hook,
            "--metrics", "127.0.0.1:%d" % mport),
            "%s %s %s %s; curl -sS --noproxy '*' "
            "http://127.0.0.1:%d/metrics >%s"
            % (PY, client, spec, self.out, mport, mout))
        self.assertEqual(r.rc, 0, r)
        done = [x for x in lf.jsonl(hook) if x["audit_event"] != "connect"]
        self.assertEqual(sorted(x["status"] for x in done), [200, 429],
                         done)
        (req,) = [e for e in self.events("request") if e["status"] == 429]
        self.assertEqual((req["decision"], req["host"], req["path"],
                          req["mitm"]),
                         ("deny", OPENAI, "/v1/chat/completions", True), req)
        self.assertIn("LLM request limit reached", req["reason"])
        m = lf.metrics_text(lf.slurp(mout))
        inner = sum(v for (name, lab), v in m.items()
                    if name == "egress_run_requests_total" and
                    dict(lab)["door"] == "connect")
        # Two tunnels and two calls inside them, one refused.
        self.assertEqual(inner, 4, lf.slurp(mout))
        self.assertEqual(m.get(("egress_run_requests_total", frozenset({
            "door": "connect", "decision": "deny"}.items()))), 1,
            lf.slurp(mout))

    def test_calls_in_flight_finish_past_the_budget(self):
        # Two streams admitted while nothing was spent; both cross the
        # budget together and both finish whole; the next call is refused.
        rel = self.origin.release
        body = {"model": "claude-wait", "max_tokens": 8, "messages": MSG,
                "stream": True}
        script = self.tmp.write("two.py", TWO_AT_ONCE)
        r = self.run_sh(self.base_args("--llm-budget", "1"), "%s %s %s %s %s"
                        % (PY, script, self.url(ANTHROPIC, "/v1/messages"),
                           rel, self.out), env=h.clean_env(
                               {"BODY": json.dumps(body)}))
        self.assertEqual(r.rc, 0, r)
        res = lf.load_json(os.path.join(self.out, "two.json"))
        self.assertEqual(res["statuses"], [200, 200, 429], res)
        for b in res["bodies"][:2]:
            self.assertIn("event: message_stop", b)
        recs = self.origin.wait(2)
        self.assertEqual(len(recs), 2)
        # Both were held until both clients had their first text: they
        # were in flight together.
        self.assertEqual([x["done"]["released"] for x in recs],
                         [True, True], recs)
        ev = self.llm_events(3)
        self.assertEqual(sorted(e["status"] for e in ev), [200, 200, 429])
        self.assertEqual(r.stderr.count("LLM token budget exhausted"), 1)

    def test_other_requests_to_the_host_still_pass(self):
        # The budget refuses LLM calls, not the host: a GET of the model
        # list (not an accounted call) goes on.
        calls = [{"url": self.url(OPENAI, "/v1/chat/completions"),
                  "body": {"model": "gpt-test", "messages": MSG}},
                 {"url": self.url(OPENAI, "/v1/chat/completions"),
                  "body": {"model": "gpt-test", "messages": MSG}}]
        args = self.base_args("--llm-budget", "1")
        r, got = self.requests_calls(args, calls)
        self.assertEqual([g[0]["status"] for g in got], [200, 429])
        r = self.run_sh(args, "curl -sS --max-time 15 -o /dev/null -w "
                        "'%%{http_code}' %s"
                        % self.url(OPENAI, "/v1/models"))
        self.assertEqual(r.stdout, "404", r)    # the fake's own answer
        self.assertEqual(self.origin.records()[-1]["path"], "/v1/models")

    def test_max_requests(self):
        url = self.url(OPENAI, "/v1/chat/completions")
        calls = [{"url": url, "body": {"model": "gpt-test",
                                       "messages": MSG}}] * 3
        r, got = self.requests_calls(self.base_args(
            "--llm-max-requests", "2"), calls)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual([g[0]["status"] for g in got], [200, 200, 429])
        err = json.loads(got[2][1])["error"]
        self.assertEqual((err["type"], err["code"]),
                         ("rate_limit_exceeded", "rate_limit_exceeded"))
        self.assertIn("egress-run: LLM request limit reached: 2 requests "
                      "made of --llm-max-requests 2", err["message"])
        self.assertEqual(len(self.origin.records()), 2)
        self.assertEqual(r.stderr.count("LLM request limit reached"), 1,
                         r.stderr)


class NoLLM(LLMBase):

    def test_no_llm_turns_it_all_off(self):
        calls = [{"url": self.url(OPENAI, "/v1/chat/completions"),
                  "headers": {"Accept-Encoding": "gzip"},
                  "body": {"model": "gpt-test", "messages": MSG,
                           "stream": True}}]
        hook = self.tmp.join("hook.jsonl")
        r, got = self.requests_calls(self.base_args(
            "--no-llm", "--llm-summary", "-v", "--hook",
            "llm:file:" + hook), calls)
        self.assertEqual(r.rc, 0, r)
        (rec,) = self.origin.wait(1)
        self.assertEqual(json.loads(rec["body"]), calls[0]["body"])
        self.assertEqual(lf.header(rec, "accept-encoding"), ["gzip"])
        self.assertEqual(got[0][1], rec["out"])
        ev = self.events()
        self.assertEqual([e for e in ev if e["event"] == "llm"], [])
        conns = [e for e in ev if e["event"] == "connect"]
        self.assertTrue(conns, ev)
        self.assertFalse(any(e["mitm"] for e in conns), ev)
        self.assertNotIn("LLM usage", r.stderr)
        self.assertEqual(lf.jsonl(hook), [])
        # A budget cannot be held without accounting.
        r = self.egress(["--no-llm", "--llm-budget", "10"], ["true"])
        self.assertEqual(r.rc, 125, r)
        self.assertIn("--no-llm", r.stderr)


class Registry(LLMBase):

    BODY = jdump({"model": "claude-test", "max_tokens": 8, "messages": MSG})

    def curl(self, host, name, *opts):
        return self.sh_client(name, (
            "curl -sS --fail --max-time 15 %s -d '%s' %s"
            % (" ".join(opts), self.BODY, self.url(host, "/v1/messages"))))

    def test_llm_host_adds_a_host_in_its_format(self):
        # --llm-host HOST:anthropic: intercepted and counted in that
        # format, under the host's name; without it the same host is a
        # plain tunnel, neither intercepted nor counted.
        u = lf.usage_of("claude-test")
        r = self.run_sh(self.base_args("--llm-host", lf.OTHER + ":anthropic",
                                       "--llm-summary"),
                        self.curl(lf.OTHER, "a"))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.result("a")[0], 0, self.result("a"))
        (e,) = self.llm_events(1)
        self.assertEqual((e["provider"], e["host"], e["model"], e["mitm"],
                          e["estimated"], e["input_tokens"],
                          e["output_tokens"], e["cache_read_tokens"],
                          e["cache_write_tokens"]),
                         (lf.OTHER, lf.OTHER, "claude-test", True, False,
                          u["in"], u["out"], u["cr"], u["cw"]), e)
        self.assertEqual(lf.summary_rows(r.stderr)[
            (lf.OTHER, "claude-test")]["input"], u["in"], r.stderr)

        os.unlink(self.audit)
        r = self.run_sh(self.base_args("--llm-summary"), self.curl(
            lf.OTHER, "b", "--cacert", self.testca.cert))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.result("b")[0], 0, self.result("b"))
        self.assertEqual(len(self.origin.wait(2)), 2)
        ev = self.events()
        self.assertEqual([e for e in ev if e["event"] == "llm"], [], ev)
        (c,) = [e for e in ev if e["event"] == "connect"]
        self.assertFalse(c["mitm"], c)
        self.assertNotIn("LLM usage", r.stderr)

    def test_no_mitm_wins_and_the_host_is_bytes_only(self):
        # --no-mitm for a registry host: its TLS goes through untouched
        # (the client verifies the origin's own certificate), no llm
        # event, the tunnel's bytes counted.
        r = self.run_sh(self.base_args("--no-mitm", ANTHROPIC,
                                       "--llm-summary"),
                        self.curl(ANTHROPIC, "a", "--cacert",
                                  self.testca.cert))
        self.assertEqual(r.rc, 0, r)
        rc, out, err = self.result("a")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["usage"]["input_tokens"],
                         lf.usage_of("claude-test")["in"])
        (rec,) = self.origin.wait(1)
        # Not rewritten: curl's own Accept-Encoding (none) went through.
        self.assertEqual(lf.header(rec, "accept-encoding"), [])
        ev = self.events()
        self.assertEqual([e for e in ev if e["event"] == "llm"], [], ev)
        (c,) = [e for e in ev if e["event"] == "connect"]
        self.assertEqual((c["host"], c["mitm"]), (ANTHROPIC, False), c)
        self.assertGreater(c["bytes_up"], len(self.BODY), c)
        self.assertGreater(c["bytes_down"], len(rec["out"]), c)
        self.assertNotIn("LLM usage", r.stderr)


class Secrets(LLMBase):

    def test_key_reaches_the_origin_and_nothing_else(self):
        key = lf.mf.new_secret("sk-ant-api03-")
        okey = lf.mf.new_secret("sk-proj-")
        hook = self.tmp.join("hook.jsonl")
        mport = h.free_port()
        env = h.clean_env({"ANTHROPIC_API_KEY": key, "OPENAI_API_KEY": okey})
        calls = [
            {"url": self.url(ANTHROPIC, "/v1/messages"),
             "headers": {"x-api-key": "$ANTHROPIC_API_KEY",
                         "anthropic-version": "2023-06-01"},
             "body": {"model": "claude-test", "max_tokens": 8,
                      "messages": MSG, "stream": True}},
            # A placeholder in the body is replaced too.
            {"url": self.url(OPENAI, "/v1/chat/completions"),
             "headers": {"Authorization": "Bearer $OPENAI_API_KEY"},
             "body": '{"model":"gpt-test","messages":[],"user":'
                     '"$OPENAI_API_KEY"}'},
        ]
        spec = self.tmp.write("spec.json", json.dumps(calls))
        client = self.tmp.write("client.py", REQUESTS_CLIENT)
        outdir = self.tmp.mkdir("res")
        metrics_out = self.tmp.join("metrics.txt")
        r = self.run_sh(self.base_args(
            "--secret", "ANTHROPIC_API_KEY:%s:x-api-key" % ANTHROPIC,
            "--secret", "OPENAI_API_KEY:%s" % OPENAI,
            "--llm-summary", "-v", "--hook", "llm:file:" + hook,
            "--hook", "response:file:" + hook,
            "--metrics", "127.0.0.1:%d" % mport), (
            'echo "$ANTHROPIC_API_KEY $OPENAI_API_KEY" >%(o)s/child-keys; '
            '%(py)s %(c)s %(s)s %(o)s; '
            'curl -sS --noproxy "*" http://127.0.0.1:%(m)d/metrics >%(mo)s'
            % {"o": outdir, "py": PY, "c": client, "s": spec, "m": mport,
               "mo": metrics_out}), env=env)
        self.assertEqual(r.rc, 0, r)
        recs = self.origin.wait(2)
        self.assertEqual(lf.header(recs[0], "x-api-key"), [key])
        self.assertEqual(lf.header(recs[1], "authorization"),
                         ["Bearer " + okey])
        self.assertEqual(json.loads(recs[1]["body"])["user"], okey)
        with open(os.path.join(outdir, "child-keys")) as f:
            child = f.read().split()
        self.assertEqual(len(child), 2)
        self.assertNotIn(key, child)
        self.assertNotIn(okey, child)
        ev = self.llm_events(2)
        self.assertEqual([e["secret"] for e in ev],
                         ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"])
        self.assert_llm_event(ev[0], "anthropic", "claude-test", True)
        with open(metrics_out) as f:
            mtext = f.read()
        self.assertIn("egress_run_llm_requests_total", mtext)
        self.assertIn("LLM usage", r.stderr)
        for v in (key, okey):
            self.assertEqual(lf.mf.leaks(v, {
                "stderr": r.stderr, "stdout": r.stdout, "metrics": mtext},
                [self.audit, hook, outdir]), [], v)
            # Not even a recognisable piece of it.
            self.assertNotIn(v[-16:], r.stderr)
        self.assertTrue(lf.jsonl(hook))
        self.assert_no_state_left()


# ------------------------------------------------------------ node

NODE_FETCH_HTTPS = r'''
// Node 20 ignores proxy variables in fetch and https: fetch goes through
// undici's ProxyAgent, https through a CONNECT made by hand. Both trust
// the bouquet's NODE_EXTRA_CA_CERTS.
const http = require("http"), https = require("https"), fs = require("fs");
const { fetch, ProxyAgent } = require("undici");
const [url, body, out] = process.argv.slice(2);
const proxy = new URL(process.env.HTTPS_PROXY);
async function viaFetch() {
  const r = await fetch(url, { method: "POST", body,
    headers: { "content-type": "application/json" },
    dispatcher: new ProxyAgent(process.env.HTTPS_PROXY) });
  let text = "";
  for await (const c of r.body) text += Buffer.from(c).toString();
  return { status: r.status, text };
}
function viaHttps() {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: proxy.hostname, port: proxy.port,
      method: "CONNECT", path: u.host, headers: { host: u.host } });
    req.on("connect", (res, socket) => {
      if (res.statusCode !== 200) return reject(new Error("CONNECT " +
        res.statusCode));
      const r2 = https.request({ socket, servername: u.hostname,
        host: u.hostname, port: u.port, path: u.pathname, method: "POST",
        agent: false, headers: { "content-type": "application/json",
                                 "content-length": Buffer.byteLength(body) }
      }, (res2) => {
        let text = "";
        res2.on("data", (d) => text += d);
        res2.on("end", () => { socket.destroy();
                               resolve({ status: res2.statusCode, text }); });
      });
      r2.on("error", reject);
      r2.end(body);
    });
    req.on("error", reject);
    req.end();
  });
}
(async () => {
  const a = await viaFetch();
  const b = await viaHttps();
  fs.writeFileSync(out, JSON.stringify({ fetch: a, https: b }));
})().catch((e) => { console.error(String(e)); process.exit(1); });
'''

NODE_SDKS_MITM = r'''
// The official SDKs through the intercepting proxy: undici's fetch with a
// ProxyAgent (Node 20's own fetch ignores proxy variables).
const fs = require("fs");
const { fetch, ProxyAgent } = require("undici");
const Anthropic = require("@anthropic-ai/sdk").default;
const OpenAI = require("openai").default;
const [aBase, oBase, out] = process.argv.slice(2);
const dispatcher = new ProxyAgent(process.env.HTTPS_PROXY);
const opts = { fetch, fetchOptions: { dispatcher }, maxRetries: 0 };
(async () => {
  const res = {};
  const a = new Anthropic({ ...opts, baseURL: aBase, apiKey: "sk-none" });
  const m = await a.messages.create({ model: "claude-test",
    max_tokens: 8, messages: [{ role: "user", content: "hi" }] });
  res.anthropic = { text: m.content[0].text, usage: m.usage };
  const o = new OpenAI({ ...opts, baseURL: oBase, apiKey: "sk-none" });
  const s = await o.chat.completions.create({ model: "gpt-test",
    stream: true, messages: [{ role: "user", content: "hi" }] });
  let text = "", chunks = 0, usage = "absent";
  for await (const c of s) {
    chunks++;
    if (c.choices.length === 0) usage = c.usage;
    else text += c.choices[0].delta.content || "";
  }
  res.openai = { text, chunks, usage };
  try {
    await a.messages.create({ model: "claude-test", max_tokens: 8,
      messages: [{ role: "user", content: "hi" }] });
    res.limited = "not refused";
  } catch (e) {
    res.limited = { name: e.constructor.name, status: e.status,
      rateLimit: e instanceof Anthropic.RateLimitError,
      message: e.message };
  }
  fs.writeFileSync(out, JSON.stringify(res));
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
'''


class NodeClients(LLMBase):

    def test_node_fetch_and_https_are_counted(self):
        d = lf.node_sdks()          # undici (skips, saying why, if absent)
        script = self.tmp.write("node-mitm.js", NODE_FETCH_HTTPS)
        body = jdump({"model": "claude-test", "max_tokens": 8,
                      "messages": MSG})
        out = self.tmp.join("node.json")
        env = h.clean_env({"NODE_PATH": os.path.join(d, "node_modules")})
        r = self.run_sh(self.base_args(), "node %s %s '%s' %s" % (
            script, self.url(ANTHROPIC, "/v1/messages"), body, out),
            env=env)
        self.assertEqual(r.rc, 0, r)
        with open(out) as f:
            res = json.load(f)
        for k in ("fetch", "https"):
            self.assertEqual(res[k]["status"], 200, res)
            self.assertEqual(json.loads(res[k]["text"])["content"][0]
                             ["text"], "Hello, world!")
        ev = self.llm_events(2)
        for e in ev:
            self.assert_llm_event(e, "anthropic", "claude-test", False)
            self.assertTrue(e["mitm"])

    def test_node_sdks_through_the_proxy_and_rate_limit_error(self):
        d = lf.node_sdks()
        script = self.tmp.write("node-sdk.js", NODE_SDKS_MITM)
        out = self.tmp.join("sdk.json")
        env = h.clean_env({"NODE_PATH": os.path.join(d, "node_modules")})
        a = lf.usage_of("claude-test")
        o = lf.usage_of("gpt-test")
        budget = a["in"] + a["out"] + o["in"] + o["out"]
        r = self.run_sh(self.base_args("--llm-budget", str(budget)),
                        "node %s %s %s %s" % (
                            script, self.url(ANTHROPIC, ""),
                            self.url(OPENAI, "/v1"), out), env=env)
        self.assertEqual(r.rc, 0, r)
        with open(out) as f:
            res = json.load(f)
        self.assertEqual(res["anthropic"]["text"], "Hello, world!")
        self.assertEqual(res["anthropic"]["usage"]["input_tokens"], a["in"])
        # The SDK never saw the usage chunk it did not ask for.
        self.assertEqual(res["openai"]["text"], "Hello, world!")
        self.assertEqual(res["openai"]["usage"], "absent")
        self.assertEqual(res["openai"]["chunks"], len(lf.TEXT) + 2)
        lim = res["limited"]
        self.assertIsInstance(lim, dict, res)
        self.assertEqual((lim["status"], lim["rateLimit"]), (429, True), lim)
        self.assertIn("egress-run: LLM token budget exhausted", lim["message"])
        self.assertEqual(len(self.origin.records()), 2)
        ev = self.llm_events(3)
        self.assert_llm_event(ev[0], "anthropic", "claude-test", False)
        self.assert_llm_event(ev[1], "openai", "gpt-test", True)


PY_SDKS_MITM = r'''
import json, os, sys
import anthropic, httpx, openai
a_base, o_base, out = sys.argv[1:4]
res = {}
# httpx honours HTTPS_PROXY and SSL_CERT_FILE from the bouquet.
a = anthropic.Anthropic(base_url=a_base, api_key="sk-none", max_retries=0)
m = a.messages.create(model="claude-test", max_tokens=8,
                      messages=[{"role": "user", "content": "hi"}])
res["anthropic"] = m.content[0].text
o = openai.OpenAI(base_url=o_base, api_key="sk-none", max_retries=0)
text, usage = "", "absent"
for c in o.chat.completions.create(model="gpt-test", stream=True,
        messages=[{"role": "user", "content": "hi"}]):
    if not c.choices:
        usage = c.usage
    else:
        text += c.choices[0].delta.content or ""
res["openai"], res["usage"] = text, str(usage)
try:
    a.messages.create(model="claude-test", max_tokens=8,
                      messages=[{"role": "user", "content": "hi"}])
    res["limited"] = "not refused"
except anthropic.RateLimitError as e:
    res["limited"] = {"status": e.status_code, "message": str(e)}
json.dump(res, open(out, "w"))
'''


class PythonSDKs(LLMBase):

    def test_python_sdks_through_the_proxy(self):
        path = lf.python_sdks()
        script = self.tmp.write("py-sdk.py", PY_SDKS_MITM)
        out = self.tmp.join("sdk.json")
        env = h.clean_env({"PYTHONPATH": path} if path else {})
        a = lf.usage_of("claude-test")
        o = lf.usage_of("gpt-test")
        r = self.run_sh(self.base_args(
            "--llm-budget", str(a["in"] + a["out"] + o["in"] + o["out"])),
            "%s %s %s %s %s" % (PY, script, self.url(ANTHROPIC, ""),
                                self.url(OPENAI, "/v1"), out), env=env)
        self.assertEqual(r.rc, 0, r)
        with open(out) as f:
            res = json.load(f)
        self.assertEqual((res["anthropic"], res["openai"], res["usage"]),
                         ("Hello, world!", "Hello, world!", "absent"))
        self.assertEqual(res["limited"]["status"], 429, res)
        self.assertIn("egress-run", res["limited"]["message"])


if __name__ == "__main__":
    unittest.main()
