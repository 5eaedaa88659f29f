"""Fixtures for the LLM accounting and gateway tests (issues 9 and 11), on
top of harness.py, builtin_fixtures.py and mitm_fixtures.py (owned by
others: extend here, not there).

  - LLMOrigin: a FAKE LLM API origin over TLS on 127.0.0.1. It is a fake
    because the real providers (api.anthropic.com, api.openai.com,
    generativelanguage.googleapis.com) cannot be reached from this machine
    or from CI; everything else in these tests is real: egress-run, curl,
    Debian's python3-requests, node's fetch and https, the official SDKs.
    It answers in the providers' wire formats, JSON and Server-Sent
    Events:
      * Anthropic  POST .../v1/messages (message_start / content_block_* /
        message_delta usage / message_stop)
      * OpenAI     POST .../chat/completions (chunks; with
        stream_options.include_usage, "usage":null on each chunk and the
        final "choices":[] usage chunk, as OpenAI does) and
        POST .../responses (response.created ... response.completed)
      * Gemini     POST .../models/M:generateContent and
        :streamGenerateContent (?alt=sse: SSE; without: a JSON array)
    Token counts come from a table (USAGE, per model, DEFAULT_USAGE
    otherwise), so a test knows exactly what the accounting must say.
    Model names steer the origin:
      * "...-wait..."   stream: after the first text event, wait (up to
        WAIT_MAX s) until the file self.release exists, then finish; the
        record says whether it was released (the client saw the first
        event while the origin was still working: nothing buffered it) or
        timed out
      * "...-gzip..."   compress the response whatever the client asked
      * "...-split..."  stream: write each event in two pieces with a
        pause between them (events straddle reads)
      * "...-nousage..." stream: no usage at all (tokens then estimated)
      * "...-err500..."  500 with the provider's error JSON
      * "...-midstreamerr..." Anthropic stream: an error event after the
        first text (as when the API is overloaded mid-answer)
      * "...-cl..." / "...-eof..."  stream framed by Content-Length /
        ended by closing the connection (instead of chunked)
    Every request is recorded before it is answered (req-NNNN.json:
    method, path, headers, body, SNI) and the response body it sent is
    kept byte for byte (req-NNNN.out, unchunked) with req-NNNN.done
    ({"released": bool|null, "status": N}).
  - sdk helpers: node_modules with the official npm SDKs
    (@anthropic-ai/sdk, openai) installed on first use into a cache
    directory outside the repository (~/.cache/egress-run-tests), never
    vendored; tests skip, saying why, when they cannot be installed
    (offline CI). The same for the Python `anthropic` / `openai`
    packages, which only pip from PyPI provides (no Debian package).
  - LLMCase: a MitmCase with an LLMOrigin, --resolve pins, audit/hook
    readers, the --llm-summary table parser, metrics parsing.

Everything binds 127.0.0.1; everything started is stopped by cleanup.
Runs under Debian's /usr/bin/python3, stdlib only (prometheus_client,
Debian's python3-prometheus-client, only where metrics are parsed).
"""

import fcntl
import json
import os
import re
import subprocess
import sys
import time
import unittest

import builtin_fixtures as bf
import harness as h
import mitm_fixtures as mf

PY = h.PY

# The providers' real names, pinned to the origin with --resolve: the
# built-in registry knows them (no --llm-host needed).
ANTHROPIC = "api.anthropic.com"
OPENAI = "api.openai.com"
GOOGLE = "generativelanguage.googleapis.com"
OTHER = "llm.test"          # an extra name (--llm-host, gateways)
NAMES = (ANTHROPIC, OPENAI, GOOGLE, OTHER, "bad.test")

WAIT_MAX = 8.0

DEFAULT_USAGE = {"in": 21, "out": 13, "cr": 0, "cw": 0}
USAGE = {
    "claude-test": {"in": 25, "out": 17, "cr": 5, "cw": 3},
    "gpt-test": {"in": 31, "out": 11, "cr": 4, "cw": 0},
    "gemini-test": {"in": 40, "out": 9, "cr": 6, "cw": 0},
    "big": {"in": 600, "out": 500, "cr": 0, "cw": 0},
}
TEXT = ["Hello", ", ", "world", "!"]


def usage_of(model):
    return USAGE.get(model, DEFAULT_USAGE)


# ------------------------------------------------------------ the origin

_ORIGIN = r'''
import gzip, itertools, json, os, re, socket, ssl, sys, threading, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

port, cert, key, outdir, cfgpath = (int(sys.argv[1]), sys.argv[2],
                                    sys.argv[3], sys.argv[4], sys.argv[5])
with open(cfgpath) as f:
    CFG = json.load(f)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
ctx.set_alpn_protocols(["http/1.1"])
def on_sni(sock, name, c):
    sock.sni_seen = name
ctx.sni_callback = on_sni
counter = itertools.count(1)
lock = threading.Lock()
RELEASE = os.path.join(outdir, "release")
TEXT = CFG["text"]

def usage_of(model):
    return CFG["usage"].get(model, CFG["default_usage"])

def write_json(path, obj):
    with open(path + ".tmp", "w") as f:
        json.dump(obj, f)
    os.rename(path + ".tmp", path)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        self.request.settimeout(30)
        self.request = ctx.wrap_socket(self.request, server_side=True)
        self.sni = getattr(self.request, "sni_seen", None)
        super().setup()

    def log_message(self, fmt, *a):
        sys.stdout.write("%s\n" % (fmt % a))
        sys.stdout.flush()

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int(self.rfile.readline(64).split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline(8)
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

    # -- sending
    def start(self, status, ctype, chunked, length=None, gz=False):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("request-id", "req_fake_%d" % self.n)
        if gz:
            self.send_header("Content-Encoding", "gzip")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        self.wfile.flush()
        self.chunked = chunked

    def piece(self, b):
        self.sent.append(b)
        if self.chunked:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(b), b))
        else:
            self.wfile.write(b)
        self.wfile.flush()

    def finish_body(self):
        if self.chunked:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()

    def whole(self, status, obj):
        b = json.dumps(obj).encode()
        gz = "gzip" in self.model
        if gz:
            self.sent.append(b)     # what the client gets, decoded
            b = gzip.compress(b)
            self.start(status, "application/json", False, len(b), gz=True)
            self.wfile.write(b)
            self.wfile.flush()
            return
        self.start(status, "application/json", False, len(b))
        self.piece(b)

    def stream(self, events, ctype="text/event-stream"):
        """events: bytes each (a whole SSE event, or a JSON array piece);
        a None marks where "-wait" models wait for the release file."""
        if "-cl" in self.model:         # framed by Content-Length
            b = b"".join(e for e in events if e is not None)
            self.start(200, ctype, False, len(b))
            self.piece(b)
            return
        if "-eof" in self.model:        # delimited by the close
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Connection", "close")
            self.end_headers()
            self.chunked = False
            self.close_connection = True
            for ev in events:
                if ev is not None:
                    self.piece(ev)
                    time.sleep(0.01)
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            return
        self.start(200, ctype, True)
        for ev in events:
            if ev is None:
                if "wait" in self.model:
                    deadline = time.monotonic() + CFG["wait_max"]
                    while (not os.path.exists(RELEASE) and
                           time.monotonic() < deadline):
                        time.sleep(0.01)
                    self.released = os.path.exists(RELEASE)
                continue
            if "split" in self.model and len(ev) > 8:
                half = len(ev) // 2
                self.piece(ev[:half])
                time.sleep(0.05)
                self.piece(ev[half:])
            else:
                self.piece(ev)
        self.finish_body()

    # -- requests
    def do_POST(self):
        self.n = next(counter)
        self.sent = []
        self.released = None
        self.status = 200
        body = self.read_body()
        rec = {"n": self.n, "method": self.command, "path": self.path,
               "headers": [[k, v] for k, v in self.headers.items()],
               "body": body.decode("utf-8", "replace"), "sni": self.sni,
               "t": time.time()}
        base = os.path.join(outdir, "req-%04d" % self.n)
        write_json(base + ".json", rec)
        try:
            self.req = json.loads(body or b"{}")
        except ValueError:
            self.req = {}
        path = self.path.split("?")[0]
        self.model = str(self.req.get("model", ""))
        m = re.search(r"/models/([^/:]+):(generateContent|"
                      r"streamGenerateContent)$", path)
        try:
            if m:
                self.model = m.group(1)
                self.google(m.group(2) == "streamGenerateContent",
                            "alt=sse" in self.path)
            elif path.endswith("/v1/messages"):
                self.anthropic()
            elif path.endswith("/chat/completions"):
                self.chat()
            elif path.endswith("/responses"):
                self.oa_responses()
            else:
                self.status = 404
                self.whole(404, {"error": {"message": "no such path " + path,
                                           "type": "not_found"}})
        finally:
            with open(base + ".out", "wb") as f:
                f.write(b"".join(self.sent))
            write_json(base + ".done", {"released": self.released,
                                        "status": self.status})

    do_PUT = do_POST

    def do_GET(self):
        self.do_POST()

    def err500(self, shape):
        self.status = 500
        self.whole(500, shape)

    # Anthropic
    def anthropic(self):
        u = usage_of(self.model)
        if "err500" in self.model:
            return self.err500({"type": "error", "error": {
                "type": "api_error", "message": "fake internal error"}})
        text = "".join(TEXT)
        if not self.req.get("stream"):
            return self.whole(200, {
                "id": "msg_fake", "type": "message", "role": "assistant",
                "model": self.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": u["in"],
                          "cache_creation_input_tokens": u["cw"],
                          "cache_read_input_tokens": u["cr"],
                          "output_tokens": u["out"]}})
        def ev(name, obj):
            return b"event: %s\ndata: %s\n\n" % (name.encode(),
                                                  json.dumps(obj).encode())
        nousage = "nousage" in self.model
        start_usage = {"input_tokens": u["in"],
                       "cache_creation_input_tokens": u["cw"],
                       "cache_read_input_tokens": u["cr"], "output_tokens": 1}
        msg = {"id": "msg_fake", "type": "message", "role": "assistant",
               "model": self.model, "content": [], "stop_reason": None,
               "stop_sequence": None}
        if not nousage:
            msg["usage"] = start_usage
        evs = [ev("message_start", {"type": "message_start",
                                    "message": msg}),
               ev("content_block_start", {"type": "content_block_start",
                                          "index": 0, "content_block": {
                                              "type": "text", "text": ""}}),
               ev("ping", {"type": "ping"})]
        for i, t in enumerate(TEXT):
            evs.append(ev("content_block_delta", {
                "type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": t}}))
            if i == 0:
                evs.append(None)
        if "midstreamerr" in self.model:
            evs = [e for e in evs if e is not None] + [ev("error", {
                "type": "error", "error": {"type": "overloaded_error",
                                           "message": "Overloaded"}})]
            return self.stream(evs)
        delta = {"type": "message_delta", "delta": {
            "stop_reason": "end_turn", "stop_sequence": None}}
        if not nousage:
            delta["usage"] = {"output_tokens": u["out"]}
        evs += [ev("content_block_stop", {"type": "content_block_stop",
                                          "index": 0}),
                ev("message_delta", delta),
                ev("message_stop", {"type": "message_stop"})]
        self.stream(evs)

    # OpenAI chat completions
    def chat(self):
        u = usage_of(self.model)
        if "err500" in self.model:
            return self.err500({"error": {"message": "fake internal error",
                                          "type": "server_error",
                                          "param": None, "code": None}})
        usage = {"prompt_tokens": u["in"], "completion_tokens": u["out"],
                 "total_tokens": u["in"] + u["out"],
                 "prompt_tokens_details": {"cached_tokens": u["cr"]}}
        base = {"id": "chatcmpl-fake", "created": 1700000000,
                "model": self.model, "system_fingerprint": "fp_fake"}
        if not self.req.get("stream"):
            return self.whole(200, dict(base, object="chat.completion",
                choices=[{"index": 0, "message": {
                    "role": "assistant", "content": "".join(TEXT),
                    "refusal": None}, "logprobs": None,
                    "finish_reason": "stop"}], usage=usage))
        so = self.req.get("stream_options") or {}
        inc = bool(so.get("include_usage")) and "nousage" not in self.model
        def chunk(delta, finish=None):
            c = dict(base, object="chat.completion.chunk", choices=[{
                "index": 0, "delta": delta, "logprobs": None,
                "finish_reason": finish}])
            if inc:
                c["usage"] = None
            return b"data: %s\n\n" % json.dumps(c).encode()
        evs = [chunk({"role": "assistant", "content": "", "refusal": None})]
        for i, t in enumerate(TEXT):
            evs.append(chunk({"content": t}))
            if i == 0:
                evs.append(None)
        evs.append(chunk({}, "stop"))
        if inc:
            evs.append(b"data: %s\n\n" % json.dumps(dict(
                base, object="chat.completion.chunk", choices=[],
                usage=usage)).encode())
        evs.append(b"data: [DONE]\n\n")
        self.stream(evs)

    # OpenAI responses
    def oa_responses(self):
        u = usage_of(self.model)
        usage = {"input_tokens": u["in"],
                 "input_tokens_details": {"cached_tokens": u["cr"]},
                 "output_tokens": u["out"],
                 "output_tokens_details": {"reasoning_tokens": 0},
                 "total_tokens": u["in"] + u["out"]}
        text = "".join(TEXT)
        item = {"id": "msg_fake", "type": "message", "status": "completed",
                "role": "assistant", "content": [{
                    "type": "output_text", "text": text,
                    "annotations": []}]}
        resp = {"id": "resp_fake", "object": "response",
                "created_at": 1700000000, "status": "completed",
                "model": self.model, "output": [item], "usage": usage,
                "error": None, "incomplete_details": None}
        if not self.req.get("stream"):
            return self.whole(200, resp)
        seq = itertools.count(0)
        def ev(name, obj):
            obj = dict(obj, type=name, sequence_number=next(seq))
            return b"event: %s\ndata: %s\n\n" % (name.encode(),
                                                  json.dumps(obj).encode())
        pending = dict(resp, status="in_progress", output=[], usage=None)
        evs = [ev("response.created", {"response": pending}),
               ev("response.in_progress", {"response": pending})]
        for i, t in enumerate(TEXT):
            evs.append(ev("response.output_text.delta", {
                "item_id": "msg_fake", "output_index": 0,
                "content_index": 0, "delta": t}))
            if i == 0:
                evs.append(None)
        evs += [ev("response.output_text.done", {
                    "item_id": "msg_fake", "output_index": 0,
                    "content_index": 0, "text": text}),
                ev("response.completed", {"response": resp})]
        self.stream(evs)

    # Gemini
    def google(self, streaming, sse):
        u = usage_of(self.model)
        if "err500" in self.model:
            return self.err500({"error": {"code": 500, "message":
                                          "fake internal error",
                                          "status": "INTERNAL"}})
        def cand(t, last):
            c = {"content": {"role": "model", "parts": [{"text": t}]},
                 "index": 0}
            if last:
                c["finishReason"] = "STOP"
            return c
        def meta(out):
            m = {"promptTokenCount": u["in"], "candidatesTokenCount": out,
                 "totalTokenCount": u["in"] + out}
            if u["cr"]:
                m["cachedContentTokenCount"] = u["cr"]
            return m
        if not streaming:
            return self.whole(200, {"candidates": [cand("".join(TEXT),
                                                        True)],
                                    "usageMetadata": meta(u["out"]),
                                    "modelVersion": self.model})
        objs = []
        for i, t in enumerate(TEXT):
            last = i == len(TEXT) - 1
            o = {"candidates": [cand(t, last)], "modelVersion": self.model}
            if "nousage" not in self.model:
                o["usageMetadata"] = meta(u["out"] if last else i + 1)
            objs.append(o)
        if sse:
            evs = []
            for i, o in enumerate(objs):
                evs.append(b"data: %s\r\n\r\n" % json.dumps(o).encode())
                if i == 0:
                    evs.append(None)
            return self.stream(evs)
        evs = []
        for i, o in enumerate(objs):
            evs.append((b"[" if i == 0 else b",\r\n") +
                       json.dumps(o).encode())
            if i == 0:
                evs.append(None)
        evs.append(b"]")
        self.stream(evs, "application/json; charset=UTF-8")

class S(ThreadingHTTPServer):
    daemon_threads = True
    def handle_error(self, request, client_address):
        # TLS failures are the clients' business; bugs here are ours.
        import traceback
        e = sys.exc_info()[1]
        if not isinstance(e, (ssl.SSLError, ConnectionError, TimeoutError)):
            traceback.print_exc(file=sys.stdout)
            sys.stdout.flush()

S(("127.0.0.1", port), H).serve_forever(poll_interval=0.1)
'''


class LLMOrigin:
    """The fake LLM API origin (see the module's docstring: a fake only
    because the real APIs cannot be reached here)."""

    def __init__(self, tc, cert, key, usage=None, port=None):
        self.dir = tc.tmp.mkdir("llm-origin-%d" % time.monotonic_ns())
        self.port = port or h.free_port()
        self.release = os.path.join(self.dir, "release")
        cfg = tc.tmp.write("llm-origin-%d.json" % time.monotonic_ns(),
                           json.dumps({"usage": dict(USAGE, **(usage or {})),
                                       "default_usage": DEFAULT_USAGE,
                                       "text": TEXT,
                                       "wait_max": WAIT_MAX}))
        script = tc.tmp.write("llm-origin-%d.py" % time.monotonic_ns(),
                              _ORIGIN)
        self.proc = tc.start_proc([PY, script, str(self.port), cert, key,
                                   self.dir, cfg], "llm-origin")
        h.wait_port("127.0.0.1", self.port, 10, self.proc)

    def url(self, host, path):
        return "https://%s:%d%s" % (host, self.port, path)

    def records(self, done=False):
        """Every request received, in order: dicts with method, path,
        headers, body (str), sni, and once answered, out (bytes sent,
        unchunked) and done ({released, status})."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if not (name.startswith("req-") and name.endswith(".json")):
                continue
            base = os.path.join(self.dir, name[:-5])
            with open(base + ".json") as f:
                rec = json.load(f)
            if os.path.exists(base + ".done"):
                with open(base + ".done") as f:
                    rec["done"] = json.load(f)
                with open(base + ".out", "rb") as f:
                    rec["out"] = f.read()
            elif done:
                continue
            out.append(rec)
        return out

    def wait(self, n, timeout=10.0):
        """The first n requests, once each was answered in full."""
        h.wait_for(lambda: len(self.records(done=True)) >= n, timeout,
                   "%d answered request(s) at the LLM origin" % n)
        return self.records()


def header(rec, name):
    """All values of a header in an origin record (case-insensitive)."""
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


def sse_events(data):
    """bytes of an event stream -> list of whole events (bytes, with their
    terminating blank line), splitting as an SSE parser would."""
    out = []
    for m in re.finditer(rb"(.*?)(\r\n\r\n|\n\n|\r\r)", data, re.S):
        out.append(m.group(0))
    return out


def without_usage_chunk(data):
    """An OpenAI event stream minus its "choices":[] usage chunk."""
    keep = []
    for ev in sse_events(data):
        line = ev.strip()
        if line.startswith(b"data: {"):
            obj = json.loads(line[6:])
            if obj.get("choices") == [] and isinstance(obj.get("usage"),
                                                       dict):
                continue
        keep.append(ev)
    return b"".join(keep)


# ------------------------------------------------------------ the SDKs

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "egress-run-tests")
NPM_DIR = os.path.join(CACHE, "npm")
PY_DIR = os.path.join(CACHE, "python")
# Node 20 is what Debian and this machine have: openai 7 wants Node 22.
NPM_PACKAGES = ("@anthropic-ai/sdk@1", "openai@6", "undici@6")
NPM_NEEDED = ("@anthropic-ai/sdk", "openai", "undici")
PY_PACKAGES = ("anthropic", "openai")

_npm_state = None
_py_state = None


def _locked(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


def _node_has(d):
    return all(os.path.exists(os.path.join(d, "node_modules", p,
                                           "package.json"))
               for p in NPM_NEEDED)


def node_sdks():
    """The directory whose node_modules holds the official SDKs, installed
    on first use with `npm install --prefix` into ~/.cache (outside the
    repository; never vendored). Raises SkipTest, saying why, when npm
    cannot install them (no registry: CI may be offline)."""
    global _npm_state
    if _npm_state is None:
        if _node_has(NPM_DIR):
            _npm_state = (True, NPM_DIR)
        else:
            lock = _locked(os.path.join(CACHE, "npm.lock"))
            try:
                why, tried = "?", False
                stamp = os.path.join(CACHE, "npm.failed")
                # One try an hour: an offline npm fails the same way, and
                # slowly (a test file must stay under its CTest timeout).
                if _node_has(NPM_DIR):
                    pass
                elif (os.path.exists(stamp) and
                        time.time() - os.path.getmtime(stamp) < 3600):
                    with open(stamp) as f:
                        why = f.read().strip()
                else:
                    os.makedirs(NPM_DIR, exist_ok=True)
                    tried = True
                    try:
                        r = subprocess.run(
                            ["npm", "install", "--prefix", NPM_DIR,
                             "--no-audit", "--no-fund", "--no-save",
                             "--prefer-offline", "--fetch-timeout=20000",
                             "--fetch-retries=1"] + list(NPM_PACKAGES),
                            capture_output=True, text=True, timeout=90,
                            env=h.clean_env())
                        why = (r.stderr.strip().splitlines() or ["?"])[-1]
                    except (OSError, subprocess.TimeoutExpired) as e:
                        why = str(e)
                if _node_has(NPM_DIR):
                    _npm_state = (True, NPM_DIR)
                else:
                    if tried:
                        with open(stamp, "w") as f:
                            f.write(why[:300])
                    _npm_state = (False, "the npm SDKs (%s) are not in %s "
                                  "and npm could not install them: %s"
                                  % (", ".join(NPM_PACKAGES), NPM_DIR,
                                     why[:300]))
            finally:
                lock.close()
    if not _npm_state[0]:
        raise unittest.SkipTest(_npm_state[1])
    return _npm_state[1]


def python_sdks():
    """A directory to put on PYTHONPATH for /usr/bin/python3 to import the
    official `anthropic` and `openai` packages ('' when Debian's python
    already has them). They exist only on PyPI (no Debian package): pip
    installs them into ~/.cache/egress-run-tests/python on first use.
    Raises SkipTest, saying why, when they cannot be had (no PyPI here)."""
    global _py_state

    def have(path):
        env = dict(h.clean_env(), PYTHONPATH=path)
        r = subprocess.run([PY, "-c", "import anthropic, openai"],
                           capture_output=True, env=env, timeout=60)
        return r.returncode == 0

    if _py_state is None:
        if have(""):
            _py_state = (True, "")
        elif os.path.isdir(PY_DIR) and have(PY_DIR):
            _py_state = (True, PY_DIR)
        else:
            lock = _locked(os.path.join(CACHE, "python.lock"))
            try:
                why = "?"
                stamp = os.path.join(CACHE, "python.failed")
                # One try an hour: an offline pip fails the same way.
                if (os.path.exists(stamp) and
                        time.time() - os.path.getmtime(stamp) < 3600):
                    with open(stamp) as f:
                        why = f.read().strip()
                else:
                    try:
                        r = subprocess.run(
                            [PY, "-m", "pip", "install", "--quiet",
                             "--disable-pip-version-check", "--timeout",
                             "10", "--retries", "1", "--target",
                             PY_DIR] + list(PY_PACKAGES),
                            capture_output=True, text=True, timeout=60,
                            env=h.clean_env())
                        why = (r.stderr.strip().splitlines() or ["?"])[-1]
                    except (OSError, subprocess.TimeoutExpired) as e:
                        why = str(e)
                if have(PY_DIR):
                    _py_state = (True, PY_DIR)
                else:
                    with open(stamp, "w") as f:
                        f.write(why[:300])
                    _py_state = (False, "the Python SDKs (anthropic, "
                                 "openai) are not importable and pip could "
                                 "not install them into %s (PyPI is not "
                                 "reachable from this machine): %s"
                                 % (PY_DIR, why[:300]))
            finally:
                lock.close()
    if not _py_state[0]:
        raise unittest.SkipTest(_py_state[1])
    return _py_state[1]


# ------------------------------------------------------------ summary

def summary_rows(stderr):
    """The --llm-summary table on egress-run's stderr: {(provider, model):
    {requests, errors, input, output, cache-read, cache-write}} plus the
    total row under ("total", "")."""
    lines = [ln[len("egress-run: "):] if ln.startswith("egress-run: ")
             else ln for ln in stderr.splitlines()]
    try:
        i = next(k for k, ln in enumerate(lines)
                 if ln.split()[:3] == ["provider", "model", "requests"])
    except StopIteration:
        return {}
    head = lines[i].split()
    rows = {}
    for ln in lines[i + 1:]:
        cells = ln.split()
        if not cells:
            break
        if cells[0] == "total" and len(cells) == len(head) - 1:
            cells.insert(1, "")
        if len(cells) != len(head):
            break
        row = dict(zip(head, cells))
        for k in ("requests", "errors", "input", "output", "cache-read",
                  "cache-write"):
            row[k] = int(row[k])
        rows[(row["provider"], row["model"])] = row
        if cells[0] == "total":
            break
    return rows


def metrics_text(text):
    """Prometheus text -> {(name, frozenset(labels)): value}, through
    python3-prometheus-client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def slurp(path, binary=False):
    with open(path, "rb" if binary else "r") as f:
        return f.read()


def load_json(path):
    with open(path) as f:
        return json.load(f)


def jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(ln) for ln in f.read().splitlines() if ln]
    except FileNotFoundError:
        return []


# ------------------------------------------------------------ test case

class LLMCase(mf.MitmCase):
    """A TestCA, and the fake LLM origin with a certificate from it for
    NAMES. Tests pass --upstream-ca with the TestCA so that egress-run
    trusts the origin (the docs' way to trust extra roots)."""

    def setUp(self):
        super().setUp()
        cert, key = self.testca.server_cert(
            NAMES, stem="llm-%d" % time.monotonic_ns())
        self.origin = LLMOrigin(self, cert, key)
        self.O = self.origin.port
        self.out = self.tmp.mkdir("out")
        self.audit = self.audit_path()

    def pins(self, names=NAMES):
        return mf.pins(self.O, names)

    def base_args(self, *extra):
        return (["--upstream-ca", self.testca.cert, "--audit", self.audit]
                + self.pins() + list(extra))

    def url(self, host, path):
        return self.origin.url(host, path)

    def run_sh(self, args, script, env=None, timeout=60):
        """egress-run ARGS -- sh -c SCRIPT (NO_PROXY dropped); fails the
        test on a sanitizer report."""
        r = self.egress(args, ["sh", "-c", h.SH_VIA_PROXY + script],
                        env=env, timeout=timeout)
        self.assert_clean(r)
        return r

    def run_cmd(self, args, cmd, env=None, timeout=60):
        r = self.egress(args, cmd, env=env, timeout=timeout)
        self.assert_clean(r)
        return r

    def assert_clean(self, r):
        m = bf.SANITIZER_REPORT.search(r.stderr)
        if m:
            self.fail("egress-run: sanitizer report:\n%s"
                      % r.stderr[max(0, m.start() - 200):][:4000])

    def events(self, kind=None):
        ev = bf.read_audit(self.audit)
        return [e for e in ev if kind is None or e["event"] == kind]

    def result(self, name):
        """(rc, stdout, stderr) of a client run with sh_client(); stdout
        as str, read as bytes (no newline translation: streams are
        compared byte for byte)."""
        def read(ext):
            with open(os.path.join(self.out, "%s.%s" % (name, ext)),
                      "rb") as f:
                return f.read().decode(errors="replace")
        return int(read("rc").strip()), read("out"), read("err")

    def sh_client(self, name, cmd):
        from chain_fixtures import sh_client
        return sh_client(name, self.out, cmd)

    def assert_llm_event(self, e, provider, model, stream, usage=None,
                         estimated=False, status=200):
        u = usage_of(model) if usage is None else usage
        self.assertEqual(e["event"], "llm", e)
        self.assertEqual((e["provider"], e["model"], e["stream"],
                          e["estimated"], e["status"]),
                         (provider, model, stream, estimated, status), e)
        if not estimated:
            want_in = u["in"]
            self.assertEqual((e["input_tokens"], e["output_tokens"],
                              e["cache_read_tokens"],
                              e["cache_write_tokens"]),
                             (want_in, u["out"], u["cr"],
                              u["cw"] if provider == "anthropic" else 0), e)
        self.assertIsInstance(e["ttfb_ms"], int, e)
        self.assertGreaterEqual(e["ttfb_ms"], 0, e)


if __name__ == "__main__":
    sys.exit("a fixture module: run the test_*.py files")
