"""API gateways (issue 11): COMMAND gets ANTHROPIC_BASE_URL &c. pointing at
http://127.0.0.1:PORT/gw/NAME and speaks plain HTTP to egress-run, which
goes on over verified TLS to the origin with the key injected. Real
clients (curl, python3-requests, node's fetch and http, the official npm
SDKs; the Python SDKs when they can be installed) against the fake LLM
origin of llm_fixtures (a fake because the real APIs cannot be reached
from here), trusted with --upstream-ca.

  - the exported variables alone configure the clients (run under env -i:
    no proxy variable, no trust variable); the origin gets the real key
    (x-api-key, Authorization, x-goog-api-key), its own Host and SNI; the
    child holds placeholders; audit events say door gateway; tokens are
    counted as for intercepted traffic (audit, summary); the key is in no
    log, hook, summary or stderr.
  - SSE through a gateway is byte-identical to a direct request (and for
    an OpenAI stream that did not ask for usage, the origin's bytes minus
    the usage chunk); the first event arrives while the origin waits.
  - the npm SDKs: JSON and streams, then budget 429s surfacing as
    RateLimitError, not retried.
  - an origin whose certificate does not verify: 502 with the reason;
    unknown NAME: 404; other origin-form: 400.
  - the presets on the real port 443 (skipped when it cannot be bound),
    --isolate (skipped without user namespaces), a Squid upstream.
"""

import json
import os
import socket
import subprocess
import unittest

import harness as h
import isolate_fixtures as iso
import llm_fixtures as lf
import mitm_fixtures as mf
import test_llm as tl
from llm_fixtures import ANTHROPIC, GOOGLE, OPENAI

PY = h.PY
MSG = tl.MSG
jdump = tl.jdump

KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY")
VARS = ("ANTHROPIC_BASE_URL", "OPENAI_BASE_URL", "GOOGLE_GEMINI_BASE_URL")


def only_vars(*extra):
    """A shell prefix running a client with nothing but PATH, HOME, the
    gateway variables and the keys (placeholders): no proxy, no trust
    variable."""
    keep = ("PATH", "HOME", "NODE_PATH", "PYTHONPATH") + VARS + KEYS + extra
    return "env -i " + " ".join('%s="${%s}"' % (k, k) for k in keep) + " "


class GatewayCase(tl.LLMBase):

    def setUp(self):
        super().setUp()
        self.keys = {"ANTHROPIC_API_KEY": mf.new_secret("sk-ant-api03-"),
                     "OPENAI_API_KEY": mf.new_secret("sk-proj-"),
                     "GEMINI_API_KEY": mf.new_secret("AIza")}
        self.env = h.clean_env(self.keys)

    def gateways(self, port=None):
        O = port or self.O
        return ["--gateway",
                "anthropic=https://%s:%d,ANTHROPIC_BASE_URL" % (ANTHROPIC, O),
                "--gateway",
                "openai=https://%s:%d/v1,OPENAI_BASE_URL" % (OPENAI, O),
                "--gateway",
                "gemini=https://%s:%d,GOOGLE_GEMINI_BASE_URL" % (GOOGLE, O),
                "--secret", "ANTHROPIC_API_KEY:%s:x-api-key" % ANTHROPIC,
                "--secret", "OPENAI_API_KEY:%s" % OPENAI,
                "--secret", "GEMINI_API_KEY:%s:x-goog-api-key" % GOOGLE]

    def run_gw(self, args, script, env=None, timeout=60):
        """egress-run ARGS -- sh -c SCRIPT, NO_PROXY kept (the gateway is
        on 127.0.0.1, which it exempts)."""
        return self.run_cmd(args, ["sh", "-c", script],
                            env=self.env if env is None else env,
                            timeout=timeout)

    def assert_no_key_leaks(self, r, *paths):
        for v in self.keys.values():
            self.assertEqual(mf.leaks(v, {"stderr": r.stderr,
                                          "stdout": r.stdout},
                                      [self.audit] + list(paths)), [])


class ByTheVariables(GatewayCase):

    def test_curl_and_requests_with_keys_injected_and_tokens_counted(self):
        hook = self.tmp.join("hook.jsonl")
        gem = ("$GOOGLE_GEMINI_BASE_URL/v1beta/models/gemini-test:"
               "streamGenerateContent?alt=sse")
        spec = self.tmp.write("spec.json", json.dumps([
            {"url": gem, "headers": {"x-goog-api-key": "$GEMINI_API_KEY"},
             "body": {"contents": [{"parts": [{"text": "hi"}]}]}},
            {"url": "$OPENAI_BASE_URL/chat/completions",
             "headers": {"Authorization": "Bearer $OPENAI_API_KEY"},
             "body": {"model": "gpt-test", "messages": MSG,
                      "stream": True}}]))
        client = self.tmp.write("client.py", tl.REQUESTS_CLIENT)
        o = self.out
        r = self.run_gw(self.base_args(
            "--llm-summary", "--hook", "llm:file:" + hook, "--hook",
            "response:file:" + hook, *self.gateways()), (
            'env >%(o)s/env; '
            + self.sh_client("a", only_vars() +
                             'curl -sS --fail --max-time 15 '
                             '-H "x-api-key: $ANTHROPIC_API_KEY" '
                             '-H "anthropic-version: 2023-06-01" '
                             '-H "Host: evil.test" '
                             '-H "content-type: application/json" '
                             "-d '%s' \"$ANTHROPIC_BASE_URL/v1/messages\""
                             % jdump({"model": "claude-test",
                                      "max_tokens": 8, "messages": MSG}))
            + self.sh_client("py", only_vars() + "%s %s %s %s" % (
                PY, client, spec, o))) % {"o": o})
        self.assertEqual(r.rc, 0, r)
        env = h.parse_env_dump(lf.slurp(os.path.join(o, "env")))
        port = int(env["HTTP_PROXY"].rsplit(":", 1)[1])
        self.assertEqual(
            {k: env.get(k) for k in VARS},
            {"ANTHROPIC_BASE_URL": "http://127.0.0.1:%d/gw/anthropic" % port,
             "OPENAI_BASE_URL": "http://127.0.0.1:%d/gw/openai" % port,
             "GOOGLE_GEMINI_BASE_URL": "http://127.0.0.1:%d/gw/gemini"
             % port})
        for k, v in self.keys.items():
            self.assertNotEqual(env[k], v)
            self.assertNotIn(v, lf.slurp(os.path.join(o, "env")))
        rc, out, err = self.result("a")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["content"][0]["text"],
                         "Hello, world!")
        self.assertEqual(self.result("py")[0], 0, self.result("py"))
        res = [lf.load_json(os.path.join(o, "res-%d.json" % i))
               for i in range(2)]
        bodies = [lf.slurp(os.path.join(o, "body-%d" % i), True)
                  for i in range(2)]
        self.assertEqual([x["status"] for x in res], [200, 200], res)

        recs = self.origin.wait(3)
        by_path = {rec["path"].split("?")[0]: rec for rec in recs}
        a = by_path["/v1/messages"]
        g = by_path["/v1beta/models/gemini-test:streamGenerateContent"]
        c = by_path["/v1/chat/completions"]
        self.assertEqual(g["path"], "/v1beta/models/gemini-test:"
                         "streamGenerateContent?alt=sse")
        for rec, host, hdr, val in (
                (a, ANTHROPIC, "x-api-key", self.keys["ANTHROPIC_API_KEY"]),
                (c, OPENAI, "authorization",
                 "Bearer " + self.keys["OPENAI_API_KEY"]),
                (g, GOOGLE, "x-goog-api-key", self.keys["GEMINI_API_KEY"])):
            self.assertEqual(lf.header(rec, hdr), [val])
            self.assertEqual(lf.header(rec, "host"),
                             ["%s:%d" % (host, self.O)])
            self.assertEqual(rec["sni"], host)
            self.assertEqual(lf.header(rec, "accept-encoding"),
                             ["identity"])
        # The OpenAI stream asked for usage on the client's behalf; the
        # client got everything else, byte for byte.
        self.assertTrue(c["body"].startswith(
            '{"stream_options":{"include_usage":true},'), c["body"])
        self.assertEqual(bodies[1], lf.without_usage_chunk(c["out"]))
        self.assertEqual(bodies[0], g["out"])

        ev = self.events()
        reqs = [e for e in ev if e["event"] == "request"]
        self.assertEqual(len(reqs), 3, ev)
        for e in reqs:
            self.assertEqual((e["door"], e["mitm"], e["status"]),
                             ("gateway", False, 200), e)
            self.assertIn(e["secret"], KEYS)
        llm = {e["provider"]: e for e in ev if e["event"] == "llm"}
        self.assertEqual(set(llm), {"anthropic", "openai", "google"}, ev)
        self.assert_llm_event(llm["anthropic"], "anthropic", "claude-test",
                              False)
        self.assert_llm_event(llm["openai"], "openai", "gpt-test", True)
        self.assert_llm_event(llm["google"], "google", "gemini-test", True)
        for e in llm.values():
            self.assertEqual(e["door"], "gateway")
        rows = lf.summary_rows(r.stderr)
        self.assertEqual(rows[("total", "")]["requests"], 3, r.stderr)
        hooked = lf.jsonl(hook)
        self.assertTrue(any(x["event"] == "llm" for x in hooked))
        for x in hooked:
            if x.get("url"):
                self.assertTrue(x["url"].startswith("https://"), x)
                self.assertNotIn("?", x["url"])
        self.assert_no_key_leaks(r, hook, self.out)

    def test_streams_byte_identical_to_direct_and_not_held(self):
        # Direct: curl to the origin itself (it trusts the test CA).
        def direct(host, path, body):
            r = subprocess.run(
                ["curl", "-sS", "-N", "--fail", "--max-time", "15",
                 "--cacert", self.testca.cert, "--resolve",
                 "%s:%d:127.0.0.1" % (host, self.O), "-H",
                 "content-type: application/json", "-d", jdump(body),
                 self.url(host, path)], capture_output=True, timeout=20,
                env=h.clean_env())
            self.assertEqual(r.returncode, 0, r.stderr)
            return r.stdout
        calls = [
            ("ANTHROPIC_BASE_URL", ANTHROPIC, "/v1/messages",
             {"model": "claude-test", "max_tokens": 8, "messages": MSG,
              "stream": True}),
            ("OPENAI_BASE_URL", OPENAI, "/chat/completions",
             {"model": "gpt-test", "messages": MSG, "stream": True,
              "stream_options": {"include_usage": True}}),
            ("OPENAI_BASE_URL", OPENAI, "/responses",
             {"model": "gpt-test", "input": "hi", "stream": True}),
            ("GOOGLE_GEMINI_BASE_URL", GOOGLE,
             "/v1beta/models/gemini-test:streamGenerateContent?alt=sse",
             {"contents": [{"parts": [{"text": "hi"}]}]}),
        ]
        script = ""
        for i, (var, _host, path, body) in enumerate(calls):
            script += self.sh_client("s%d" % i, (
                "curl -sS -N --fail --max-time 15 -H "
                "'content-type: application/json' -d '%s' \"$%s%s\""
                % (jdump(body), var, path)))
        r = self.run_gw(self.base_args(*self.gateways()), script)
        self.assertEqual(r.rc, 0, r)
        for i, (var, host, path, body) in enumerate(calls):
            rc, out, err = self.result("s%d" % i)
            self.assertEqual(rc, 0, err)
            full = ("/v1" if var == "OPENAI_BASE_URL" else "") + path
            self.assertEqual(out.encode(), direct(host, full, body), path)

        # Not held: the first event arrives while the origin waits for the
        # client to have seen it.
        rel = self.origin.release
        for c in ({"url": "$ANTHROPIC_BASE_URL/v1/messages",
                   "body": {"model": "claude-wait", "max_tokens": 8,
                            "messages": MSG, "stream": True}},
                  {"url": "$OPENAI_BASE_URL/chat/completions",
                   "body": {"model": "gpt-wait", "messages": MSG,
                            "stream": True}}):
            if os.path.exists(rel):
                os.unlink(rel)
            n = len(self.origin.records())
            spec = self.tmp.write("spec-%d.json" % n, json.dumps(
                [dict(c, release=rel)]))
            client = self.tmp.write("client.py", tl.REQUESTS_CLIENT)
            outdir = self.tmp.mkdir("wait-%d" % n)
            r = self.run_gw(self.base_args(*self.gateways()),
                            "%s %s %s %s" % (PY, client, spec, outdir))
            self.assertEqual(r.rc, 0, r)
            res = lf.load_json(os.path.join(outdir, "res-0.json"))
            self.assertEqual((res["status"], res["released"]), (200, True),
                             res)
            rec = self.origin.wait(n + 1)[n]
            self.assertIs(rec["done"]["released"], True, c)
            self.assertLess(res["total"], lf.WAIT_MAX / 2, res)


NODE_PLAIN = r'''
// Node's own fetch and http module, configured by ANTHROPIC_BASE_URL only.
const http = require("http"), fs = require("fs");
const out = process.argv[2];
const base = process.env.ANTHROPIC_BASE_URL;
const body = JSON.stringify({ model: "claude-test", max_tokens: 8,
  messages: [{ role: "user", content: "hi" }], stream: true });
const headers = { "content-type": "application/json",
                  "x-api-key": process.env.ANTHROPIC_API_KEY };
(async () => {
  const r = await fetch(base + "/v1/messages", { method: "POST", body,
                                                  headers });
  const a = { status: r.status, text: await r.text() };
  const b = await new Promise((resolve, reject) => {
    const u = new URL(base + "/v1/messages");
    const req = http.request({ host: u.hostname, port: u.port,
      path: u.pathname, method: "POST", headers }, (res) => {
        let text = "";
        res.on("data", (d) => text += d);
        res.on("end", () => resolve({ status: res.statusCode, text }));
      });
    req.on("error", reject);
    req.end(body);
  });
  fs.writeFileSync(out, JSON.stringify({ fetch: a, http: b }));
})().catch((e) => { console.error(String(e)); process.exit(1); });
'''

NODE_SDKS = r'''
// The official SDKs, configured by the environment alone: base URLs and
// keys (placeholders) from ANTHROPIC_* and OPENAI_*; default retries.
const fs = require("fs");
const Anthropic = require("@anthropic-ai/sdk").default;
const OpenAI = require("openai").default;
const out = process.argv[2];
const msgs = [{ role: "user", content: "hi" }];
(async () => {
  const res = {};
  const a = new Anthropic();
  const m = await a.messages.create({ model: "claude-test", max_tokens: 8,
                                      messages: msgs });
  res.a_json = { text: m.content[0].text, usage: m.usage };
  const st = a.messages.stream({ model: "claude-test", max_tokens: 8,
                                 messages: msgs });
  let deltas = 0;
  st.on("text", () => deltas++);
  const fm = await st.finalMessage();
  res.a_stream = { text: fm.content[0].text, usage: fm.usage, deltas };
  const o = new OpenAI();
  const s = await o.chat.completions.create({ model: "gpt-test",
    stream: true, messages: msgs });
  let text = "", usageChunks = 0;
  for await (const c of s) {
    if (c.choices.length === 0) usageChunks++;
    else text += c.choices[0].delta.content || "";
  }
  res.o_stream = { text, usageChunks };
  const rr = await o.responses.create({ model: "gpt-test", input: "hi" });
  res.o_resp = { text: rr.output_text, usage: rr.usage };
  res.limited = [];
  for (const call of [
      () => a.messages.create({ model: "claude-test", max_tokens: 8,
                                messages: msgs }),
      () => o.chat.completions.create({ model: "gpt-test",
                                        messages: msgs })]) {
    try {
      await call();
      res.limited.push("not refused");
    } catch (e) {
      res.limited.push({ name: e.constructor.name, status: e.status,
        rateLimit: e instanceof Anthropic.RateLimitError ||
                   e instanceof OpenAI.RateLimitError,
        message: e.message });
    }
  }
  fs.writeFileSync(out, JSON.stringify(res));
})().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
'''

PY_SDKS = r'''
import json, sys
import anthropic, openai
out = sys.argv[1]
res = {}
a = anthropic.Anthropic()           # ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY
m = a.messages.create(model="claude-test", max_tokens=8,
                      messages=[{"role": "user", "content": "hi"}])
res["a"] = [m.content[0].text, m.usage.input_tokens]
with a.messages.stream(model="claude-test", max_tokens=8,
                       messages=[{"role": "user", "content": "hi"}]) as s:
    res["a_stream"] = "".join(s.text_stream)
o = openai.OpenAI()                 # OPENAI_BASE_URL, OPENAI_API_KEY
text, n = "", 0
for c in o.chat.completions.create(model="gpt-test", stream=True,
        messages=[{"role": "user", "content": "hi"}]):
    if not c.choices:
        n += 1
    else:
        text += c.choices[0].delta.content or ""
res["o_stream"] = [text, n]
try:
    o.chat.completions.create(model="gpt-test",
                              messages=[{"role": "user", "content": "hi"}])
    res["limited"] = "not refused"
except openai.RateLimitError as e:
    res["limited"] = [e.status_code, str(e)]
json.dump(res, open(out, "w"))
'''


class Clients(GatewayCase):

    def test_node_fetch_and_http(self):
        script = self.tmp.write("plain.js", NODE_PLAIN)
        out = self.tmp.join("node.json")
        r = self.run_gw(self.base_args(*self.gateways()),
                        only_vars() + "node %s %s" % (script, out))
        self.assertEqual(r.rc, 0, r)
        res = lf.load_json(out)
        recs = self.origin.wait(2)
        for k, rec in zip(("fetch", "http"), recs):
            self.assertEqual(res[k]["status"], 200, res)
            self.assertEqual(res[k]["text"].encode(), rec["out"])
            self.assertEqual(lf.header(rec, "x-api-key"),
                             [self.keys["ANTHROPIC_API_KEY"]])
        ev = self.llm_events(2)
        for e in ev:
            self.assert_llm_event(e, "anthropic", "claude-test", True)
            self.assertEqual(e["door"], "gateway")

    def test_node_sdks_and_their_rate_limit_errors(self):
        d = lf.node_sdks()
        script = self.tmp.write("sdks.js", NODE_SDKS)
        out = self.tmp.join("sdks.json")
        a, o = lf.usage_of("claude-test"), lf.usage_of("gpt-test")
        total = 2 * (a["in"] + a["out"]) + 2 * (o["in"] + o["out"])
        env = dict(self.env, NODE_PATH=os.path.join(d, "node_modules"))
        r = self.run_gw(self.base_args(
            "--llm-budget", str(total - 10), "--llm-summary",
            *self.gateways()), only_vars() + "node %s %s" % (script, out),
            env=env)
        self.assertEqual(r.rc, 0, r)
        res = lf.load_json(out)
        self.assertEqual(res["a_json"]["text"], "Hello, world!")
        self.assertEqual((res["a_json"]["usage"]["input_tokens"],
                          res["a_json"]["usage"]["output_tokens"]),
                         (a["in"], a["out"]))
        self.assertEqual((res["a_stream"]["text"],
                          res["a_stream"]["usage"]["output_tokens"],
                          res["a_stream"]["deltas"]),
                         ("Hello, world!", a["out"], len(lf.TEXT)))
        self.assertEqual(res["o_stream"], {"text": "Hello, world!",
                                           "usageChunks": 0})
        self.assertEqual(res["o_resp"]["text"], "Hello, world!")
        for lim, name in zip(res["limited"], ("anthropic", "openai")):
            self.assertIsInstance(lim, dict, res)
            self.assertEqual((lim["status"], lim["rateLimit"],
                              lim["name"]), (429, True, "RateLimitError"),
                             (name, lim))
            self.assertIn("egress-run: LLM token budget exhausted",
                          lim["message"])
        # Four calls reached the origin; the two refused were not retried
        # (x-should-retry: false), although the SDKs retry 429s by default.
        self.assertEqual(len(self.origin.records()), 4)
        refused = [e for e in self.events("llm") if e["status"] == 429]
        self.assertEqual(len(refused), 2, self.events("llm"))
        recs = self.origin.records()
        self.assertEqual(lf.header(recs[0], "x-api-key"),
                         [self.keys["ANTHROPIC_API_KEY"]])
        self.assertEqual(lf.header(recs[2], "authorization"),
                         ["Bearer " + self.keys["OPENAI_API_KEY"]])
        rows = lf.summary_rows(r.stderr)
        self.assertEqual((rows[("anthropic", "claude-test")]["input"],
                          rows[("openai", "gpt-test")]["output"]),
                         (2 * a["in"], 2 * o["out"]), r.stderr)
        self.assertIn("2 LLM requests refused", r.stderr)
        self.assert_no_key_leaks(r)

    def test_python_sdks(self):
        path = lf.python_sdks()
        script = self.tmp.write("sdks.py", PY_SDKS)
        out = self.tmp.join("sdks.json")
        o = lf.usage_of("gpt-test")
        a = lf.usage_of("claude-test")
        env = dict(self.env, PYTHONPATH=path)
        r = self.run_gw(self.base_args(
            "--llm-budget", str(2 * (a["in"] + a["out"]) + o["in"]),
            *self.gateways()), only_vars() + "%s %s %s" % (PY, script, out),
            env=env)
        self.assertEqual(r.rc, 0, r)
        res = lf.load_json(out)
        self.assertEqual(res["a"], ["Hello, world!", a["in"]])
        self.assertEqual(res["a_stream"], "Hello, world!")
        self.assertEqual(res["o_stream"], ["Hello, world!", 0])
        self.assertEqual(res["limited"][0], 429, res)
        self.assertIn("egress-run", res["limited"][1])


class Refusals(GatewayCase):

    def test_unverified_origin_502_unknown_name_404_other_400(self):
        bad = self.sink(names=("bad.test",),
                        cert=self.self_signed("bad.test"))
        # api.anthropic.com's certificate comes from the test CA, which
        # this run does not trust (no --upstream-ca): 502 as well.
        args = ["--audit", self.audit, "--resolve",
                "bad.test:%d:127.0.0.1" % bad.port,
                "--gateway", "bad=https://bad.test:%d,BAD_URL" % bad.port,
                "--gateway", "anthropic=https://%s:%d,ANTHROPIC_BASE_URL"
                % (ANTHROPIC, self.O)] + self.pins()
        P = '"http://127.0.0.1:${HTTP_PROXY##*:}'
        w = " -o /dev/null -D - --max-time 15 "
        r = self.run_gw(args, (
            self.sh_client("bad", "curl -sS" + w + '"$BAD_URL/v1/x"')
            + self.sh_client("untrusted", "curl -sS" + w +
                             '-d "{}" "$ANTHROPIC_BASE_URL/v1/messages"')
            + self.sh_client("unknown", "curl -sS" + w + P +
                             '/gw/nope/v1/messages"')
            + self.sh_client("prefix", "curl -sS" + w + P +
                             '/gw/anthropicx/v1/messages"')
            + self.sh_client("other", "curl -sS" + w + P + '/v1/messages"')))
        self.assertEqual(r.rc, 0, r)

        def head(name):
            rc, out, err = self.result(name)
            self.assertEqual(rc, 0, err)
            lines = out.split("\r\n")
            hdrs = {k.lower(): v.strip() for k, _, v in
                    (ln.partition(":") for ln in lines[1:] if ":" in ln)}
            return int(lines[0].split()[1]), hdrs

        for name in ("bad", "untrusted"):
            status, hdrs = head(name)
            self.assertEqual(status, 502, hdrs)
            self.assertRegex(hdrs["x-egress-run-reason"],
                             r"certificate did not verify", hdrs)
        self.assertIn("self-signed", head("bad")[1]["x-egress-run-reason"])
        for name in ("unknown", "prefix"):
            status, hdrs = head(name)
            self.assertEqual(status, 404, hdrs)
            self.assertIn("no gateway has that name",
                          hdrs["x-egress-run-reason"])
        status, hdrs = head("other")
        self.assertEqual(status, 400, hdrs)
        self.assertEqual(bad.requests(), [])
        self.assertEqual(self.origin.records(), [])
        ev = self.events()
        errs = [(e["door"], e["status"]) for e in ev
                if e["event"] == "error"]
        self.assertEqual(sorted(errs), sorted([
            ("gateway", 502), ("gateway", 502), ("gateway", 404),
            ("gateway", 404), ("http", 400)]), ev)
        # The accounted call that never got an answer is an error.
        llm = [e for e in ev if e["event"] == "llm"]
        self.assertEqual([(e["provider"], e["status"]) for e in llm],
                         [("anthropic", 502)], ev)

    def test_max_requests_through_a_gateway_with_curl(self):
        body = jdump({"model": "claude-test", "max_tokens": 8,
                      "messages": MSG})
        c = ("curl -sS --max-time 15 -w '\\n%%{http_code}' -d '%s' "
             '"$ANTHROPIC_BASE_URL/v1/messages"' % body)
        r = self.run_gw(self.base_args("--llm-max-requests", "1",
                                       *self.gateways()),
                        self.sh_client("one", c) + self.sh_client("two", c))
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(self.result("one")[1].endswith("\n200"))
        out = self.result("two")[1]
        body2, code = out.rsplit("\n", 1)
        self.assertEqual(code, "429")
        self.assertEqual(json.loads(body2)["error"]["type"],
                         "rate_limit_error")
        self.assertEqual(len(self.origin.records()), 1)


class Presets(GatewayCase):
    """--gateway anthropic / openai as they are, on the real port 443 of
    the providers' names pinned to loopback."""

    def test_presets_reach_port_443(self):
        try:
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", 443))
        except OSError as e:
            self.skipTest("cannot listen on 127.0.0.1:443 here: %s" % e)
        cert, key = self.testca.server_cert(lf.NAMES, stem="llm443")
        o443 = lf.LLMOrigin(self, cert, key, port=443)
        args = ["--audit", self.audit, "--upstream-ca", self.testca.cert,
                "--resolve", "%s:443:127.0.0.1" % ANTHROPIC,
                "--resolve", "%s:443:127.0.0.1" % OPENAI,
                "--gateway", "anthropic", "--gateway", "openai",
                "--secret", "ANTHROPIC_API_KEY:%s:x-api-key" % ANTHROPIC,
                "--secret", "OPENAI_API_KEY:%s" % OPENAI]
        r = self.run_gw(args, (
            'env >%s/env; ' % self.out
            + self.sh_client("a", only_vars() + (
                "curl -sS --fail --max-time 15 -H 'x-api-key: '"
                '"$ANTHROPIC_API_KEY" -d \'%s\' '
                '"$ANTHROPIC_BASE_URL/v1/messages"'
                % jdump({"model": "claude-test", "max_tokens": 8,
                         "messages": MSG})))
            + self.sh_client("o", only_vars() + (
                "curl -sS --fail --max-time 15 -d '%s' "
                '"$OPENAI_BASE_URL/chat/completions"'
                % jdump({"model": "gpt-test", "messages": MSG})))))
        self.assertEqual(r.rc, 0, r)
        env = h.parse_env_dump(lf.slurp(os.path.join(self.out, "env")))
        self.assertTrue(env["ANTHROPIC_BASE_URL"].endswith("/gw/anthropic"))
        self.assertTrue(env["OPENAI_BASE_URL"].endswith("/gw/openai"))
        for name in ("a", "o"):
            self.assertEqual(self.result(name)[0], 0, self.result(name))
        recs = o443.wait(2)
        self.assertEqual([x["path"] for x in recs],
                         ["/v1/messages", "/v1/chat/completions"])
        self.assertEqual(lf.header(recs[0], "host"), [ANTHROPIC])
        self.assertEqual(lf.header(recs[0], "x-api-key"),
                         [self.keys["ANTHROPIC_API_KEY"]])
        self.assertEqual(lf.header(recs[1], "authorization"),
                         ["Bearer " + self.keys["OPENAI_API_KEY"]])
        ev = self.llm_events(2)
        self.assertEqual([(e["provider"], e["port"], e["door"])
                          for e in ev],
                         [("anthropic", 443, "gateway"),
                          ("openai", 443, "gateway")])


class Isolated(GatewayCase):

    def test_gateways_under_isolate(self):
        if not iso.userns_ok():
            self.skipTest("this kernel (or container) does not allow user "
                          "+ network namespaces")
        client = self.tmp.write("client.py", tl.REQUESTS_CLIENT)
        spec = self.tmp.write("spec.json", json.dumps([
            {"url": "$OPENAI_BASE_URL/chat/completions",
             "headers": {"Authorization": "Bearer $OPENAI_API_KEY"},
             "body": {"model": "gpt-test", "messages": MSG,
                      "stream": True}}]))
        r = self.run_gw(self.base_args(
            "--isolate", "--fail-closed", *self.gateways()), (
            'env >%(o)s/env; ' % {"o": self.out}
            + self.sh_client("a", only_vars() + (
                "curl -sS --fail --max-time 15 -H 'x-api-key: '"
                '"$ANTHROPIC_API_KEY" -d \'%s\' '
                '"$ANTHROPIC_BASE_URL/v1/messages"'
                % jdump({"model": "claude-test", "max_tokens": 8,
                         "messages": MSG})))
            + self.sh_client("py", only_vars() + "%s %s %s %s" % (
                PY, client, spec, self.out))
            # And nothing else gets out: the origin itself is unreachable.
            + self.sh_client("direct", "curl -sS --max-time 5 --noproxy "
                             "'*' -k https://127.0.0.1:%d/" % self.O)))
        self.assertEqual(r.rc, 0, r)
        env = h.parse_env_dump(lf.slurp(os.path.join(self.out, "env")))
        self.assertRegex(env["ANTHROPIC_BASE_URL"],
                         r"^http://127\.0\.0\.1:\d+/gw/anthropic$")
        self.assertEqual(self.result("a")[0], 0, self.result("a"))
        self.assertEqual(self.result("py")[0], 0, self.result("py"))
        self.assertNotEqual(self.result("direct")[0], 0)
        recs = self.origin.wait(2)
        self.assertEqual(lf.header(recs[0], "x-api-key"),
                         [self.keys["ANTHROPIC_API_KEY"]])
        body = lf.slurp(os.path.join(self.out, "body-0"), True)
        self.assertEqual(body, lf.without_usage_chunk(recs[1]["out"]))
        ev = self.llm_events(2)
        self.assert_llm_event(ev[0], "anthropic", "claude-test", False)
        self.assert_llm_event(ev[1], "openai", "gpt-test", True)


class ThroughSquid(GatewayCase):

    def test_gateway_goes_through_the_corporate_upstream(self):
        sq = self.squid()
        r = self.run_gw(self.base_args(
            "--upstream", "http://127.0.0.1:%d" % sq.port, "--llm-summary",
            *self.gateways()),
            self.sh_client("a", only_vars() + (
                "curl -sS -N --fail --max-time 15 -H 'x-api-key: '"
                '"$ANTHROPIC_API_KEY" -d \'%s\' '
                '"$ANTHROPIC_BASE_URL/v1/messages"'
                % jdump({"model": "claude-test", "max_tokens": 8,
                         "messages": MSG, "stream": True}))))
        self.assertEqual(r.rc, 0, r)
        rc, out, err = self.result("a")
        self.assertEqual(rc, 0, err)
        (rec,) = self.origin.wait(1)
        self.assertEqual(out.encode(), rec["out"])
        self.assertEqual(lf.header(rec, "x-api-key"),
                         [self.keys["ANTHROPIC_API_KEY"]])
        # Squid saw a tunnel to the pinned address, never the key.
        h.wait_for(lambda: "CONNECT" in sq.access_log(), 10,
                   "Squid's access log")
        self.assertIn("CONNECT 127.0.0.1:%d" % self.O, sq.access_log())
        ev = self.events()
        (req,) = [e for e in ev if e["event"] == "request"]
        self.assertEqual((req["door"], req["upstream"]),
                         ("gateway", "http://127.0.0.1:%d" % sq.port), req)
        (e,) = [e for e in ev if e["event"] == "llm"]
        self.assert_llm_event(e, "anthropic", "claude-test", True)
        self.assert_no_key_leaks(r, sq.dir)


if __name__ == "__main__":
    unittest.main()
