"""SOCKS5 on the built-in proxy's port (issue 4; SPEC §4, §5, §8): curl
--socks5 and --socks5-hostname through the port the bouquet names, the
policy by name (domain form) and by address (address form), IPv6, reply
codes 0x02/0x05/0x07/0x08 on the wire, partial and pipelined handshakes,
python3-socks and requests with socks5h://, and audit events with
door "socks5". Origins are nginx on loopback; clients are real.
"""

import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PY, SH_VIA_PROXY, EgressTestCase, free_port,  # noqa
                     wait_for, wait_port)
from chain_fixtures import (GREETING, client_result, ipv6_loopback,  # noqa
                            read_audit, sh_client, socks5_exchange,
                            socks5_request, split_socks5_answer)

HAVE_V6 = ipv6_loopback()

# curl 7.88 says "Can't complete SOCKS5 connection to X. (2)"; newer curl
# names the reply ("connection not allowed by ruleset").
CURL_NOT_ALLOWED = r"\(2\)|not allowed by ruleset"
CURL_REFUSED = r"\(5\)|[Cc]onnection refused"


# Inside COMMAND: the SOCKS5 address is the bouquet's ALL_PROXY host:port.
SOCKS_HP = 'hp=${ALL_PROXY#*://}; hp=${hp%/}; '


class SocksCase(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.out = self.tmp.mkdir("out")
        self.audit = self.tmp.join("audit.jsonl")
        extra = "listen [::1]:@@port@@;" if HAVE_V6 else ""
        self.origin = self.nginx(files={"hello.txt": "hello over socks\n"},
                                 server_extra=extra)
        self.P = self.origin.port

    def result(self, name):
        return client_result(self.out, name)

    def run_script(self, args, script):
        r = self.egress(args + ["--audit", self.audit],
                        ["/bin/sh", "-c", SH_VIA_PROXY + SOCKS_HP + script])
        self.assertEqual(r.rc, 0, r)
        return r

    def events(self, door="socks5"):
        return [e for e in read_audit(self.audit) if e.get("door") == door]

    def origin_hits(self, path="/hello.txt"):
        return self.origin.access_log().count("GET %s " % path)

    def curl(self, name, mode, url, *opts):
        return sh_client(name, self.out, 'curl -sS --max-time 10 %s "$hp" '
                         '%s %s' % (mode, " ".join(opts), url))


class CurlThroughTheBouquetPort(SocksCase):

    def test_all_proxy_and_https_proxy_name_one_port_serving_both(self):
        url = "http://origin.test:%d/hello.txt" % self.P
        r = self.run_script(
            ["--allow", "origin.test", "--resolve",
             "origin.test:%d:127.0.0.1" % self.P],
            'echo "all=$ALL_PROXY https=$HTTPS_PROXY"; ' +
            self.curl("socks", "--socks5-hostname", url) +
            sh_client("http", self.out, 'curl -sS --max-time 10 ' + url))
        m = re.search(r"all=(\S+) https=(\S+)", r.stdout)
        self.assertIsNotNone(m, r)
        hostport = lambda u: u.split("://", 1)[-1].rstrip("/")  # noqa
        self.assertEqual(hostport(m.group(1)), hostport(m.group(2)))
        self.assertEqual(self.result("socks"),
                         (0, "hello over socks\n", ""))
        self.assertEqual(self.result("http"), (0, "hello over socks\n", ""))
        doors = sorted(e["door"] for e in read_audit(self.audit))
        self.assertEqual(doors, ["http", "socks5"])
        self.assertEqual(self.origin_hits(), 2)

    def test_domain_form_is_judged_by_name(self):
        r = self.run_script(
            ["--allow", "origin.test", "--resolve",
             "origin.test:%d:127.0.0.1" % self.P, "--resolve",
             "denied.test:%d:127.0.0.1" % self.P],
            self.curl("ok", "--socks5-hostname",
                      "http://origin.test:%d/hello.txt" % self.P) +
            self.curl("no", "--socks5-hostname",
                      "http://denied.test:%d/hello.txt" % self.P))
        self.assertEqual(self.result("ok"), (0, "hello over socks\n", ""), r)
        rc, out, err = self.result("no")
        self.assertEqual(rc, 97, err)      # CURLE_PROXY
        self.assertRegex(err, CURL_NOT_ALLOWED)
        self.assertEqual(out, "")
        self.assertEqual(self.origin_hits(), 1)
        ev = {e["host"]: e for e in self.events()}
        self.assertEqual(set(ev), {"origin.test", "denied.test"})
        ok, no = ev["origin.test"], ev["denied.test"]
        self.assertEqual((ok["event"], ok["decision"], ok["status"],
                          ok["port"], ok["method"]),
                         ("connect", "allow", 200, self.P, "CONNECT"))
        self.assertEqual(ok["rule"], "allow origin.test")
        self.assertGreater(ok["bytes_up"], 0)
        self.assertGreater(ok["bytes_down"], 0)
        self.assertEqual((no["event"], no["decision"], no["status"]),
                         ("deny", "deny", 403))
        self.assertIn("denied.test", no["reason"])

    def test_address_form_is_judged_by_address(self):
        self.run_script(
            ["--allow", "127.0.0.1"],
            self.curl("ok", "--socks5",
                      "http://127.0.0.1:%d/hello.txt" % self.P))
        self.assertEqual(self.result("ok"), (0, "hello over socks\n", ""))
        (ev,) = self.events()
        self.assertEqual((ev["event"], ev["host"], ev["port"]),
                         ("connect", "127.0.0.1", self.P))

    def test_address_of_an_allowed_name_is_refused_in_address_form(self):
        # curl resolves origin.test itself (--resolve) and asks for
        # 127.0.0.1: only the name is allowed, so the address is not.
        pin = "origin.test:%d:127.0.0.1" % self.P
        url = "http://origin.test:%d/hello.txt" % self.P
        self.run_script(
            ["--allow", "origin.test", "--resolve", pin],
            self.curl("addr", "--socks5", url, "--resolve", pin) +
            self.curl("name", "--socks5-hostname", url))
        rc, out, err = self.result("addr")
        self.assertEqual(rc, 97, err)
        self.assertRegex(err, CURL_NOT_ALLOWED)
        self.assertEqual(self.result("name"), (0, "hello over socks\n", ""))
        self.assertEqual(self.origin_hits(), 1)
        deny = [e for e in self.events() if e["event"] == "deny"]
        self.assertEqual([(e["host"], e["status"]) for e in deny],
                         [("127.0.0.1", 403)])

    @unittest.skipUnless(HAVE_V6, "no ::1 here")
    def test_ipv6_address_form(self):
        url = "http://[::1]:%d/hello.txt" % self.P
        self.run_script(["--allow", "[::1]"],
                        self.curl("v6", "--socks5", url))
        self.assertEqual(self.result("v6"), (0, "hello over socks\n", ""))
        self.run_script(["--allow", "127.0.0.1"],
                        self.curl("v6no", "--socks5", url))
        rc, _out, err = self.result("v6no")
        self.assertEqual(rc, 97, err)
        self.assertRegex(err, CURL_NOT_ALLOWED)
        hosts = [(e["event"], e["host"]) for e in self.events()]
        self.assertEqual(hosts, [("connect", "::1"), ("deny", "::1")])
        self.assertEqual(self.origin_hits(), 1)

    def test_refused_port_is_reply_0x05(self):
        dead = free_port()
        self.run_script(["--allow", "127.0.0.1"],
                        self.curl("dead", "--socks5",
                                  "http://127.0.0.1:%d/" % dead))
        rc, _out, err = self.result("dead")
        self.assertEqual(rc, 97, err)
        self.assertRegex(err, CURL_REFUSED)
        (ev,) = self.events()
        self.assertEqual((ev["event"], ev["port"], ev["decision"]),
                         ("error", dead, "allow"))


class RawBase(SocksCase):
    """A session on a known port, driven from a plain socket."""

    def policy(self):
        return ["--allow", "127.0.0.1"]

    def setUp(self):
        super().setUp()
        self.lp = free_port()
        self.proxy = self.start_egress(
            ["--listen", "127.0.0.1:%d" % self.lp, "--audit", self.audit] +
            self.policy(), ["sleep", "60"])
        wait_port("127.0.0.1", self.lp, 10, self.proxy)

    def exchange(self, data, **kw):
        return socks5_exchange(self.lp, data, **kw)

    def events(self, n=1, door=None):
        """The audit events once at least n are there (the log is
        flushed on a 200 ms timer while the proxy runs)."""
        wait_for(lambda: len(read_audit(self.audit)) >= n, 5,
                 "%d audit events" % n)
        time.sleep(0.3)     # and no more than n
        return [e for e in read_audit(self.audit)
                if door is None or e["door"] == door]

    def connect_request(self, port=None):
        return socks5_request(1, 1, "127.0.0.1", port or self.P)

    HTTP_GET = (b"GET /hello.txt HTTP/1.1\r\nHost: origin\r\n"
                b"Connection: close\r\n\r\n")

    def assert_reply(self, raw, rep):
        method, reply, rest = split_socks5_answer(raw)
        self.assertEqual(method, b"\x05\x00")
        self.assertEqual(reply[:3], bytes([5, rep, 0]), raw)
        return rest


class RawSocks5(RawBase):
    """The wire: reply codes, split and pipelined handshakes."""

    def test_bind_and_udp_associate_are_0x07(self):
        for cmd in (2, 3):
            raw = self.exchange(GREETING + socks5_request(cmd, 1, "127.0.0.1",
                                                          self.P))
            self.assertEqual(self.assert_reply(raw, 0x07), b"", cmd)
        self.assertEqual(self.origin_hits(), 0)
        reasons = [e["reason"] for e in self.events(2)]
        self.assertEqual(len(reasons), 2, reasons)
        self.assertIn("BIND", reasons[0])
        self.assertIn("UDP", reasons[1])

    def test_unknown_address_type_is_0x08(self):
        raw = self.exchange(GREETING + socks5_request(1, 9, b"\x7f\0\0\1",
                                                      self.P))
        self.assert_reply(raw, 0x08)
        self.assertEqual(self.origin_hits(), 0)

    def test_refused_port_is_0x05_and_policy_is_0x02(self):
        raw = self.exchange(GREETING + self.connect_request(free_port()))
        self.assert_reply(raw, 0x05)
        raw = self.exchange(GREETING + socks5_request(1, 3, "other.test",
                                                      self.P))
        self.assert_reply(raw, 0x02)
        # The proxy's own port is never a destination (no loops).
        raw = self.exchange(GREETING + self.connect_request(self.lp))
        self.assert_reply(raw, 0x02)
        self.assertEqual([(e["event"], e["door"]) for e in self.events(3)],
                         [("error", "socks5"), ("deny", "socks5"),
                          ("deny", "socks5")])

    def test_greeting_request_and_http_in_one_write(self):
        raw = self.exchange(GREETING + self.connect_request() +
                            self.HTTP_GET)
        rest = self.assert_reply(raw, 0x00)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), rest[:80])
        self.assertTrue(rest.endswith(b"\r\n\r\nhello over socks\n"), rest)

    def test_byte_by_byte_with_pauses(self):
        data = GREETING + self.connect_request() + self.HTTP_GET
        raw = self.exchange(data, chunk=1, pause=0.003, timeout=10)
        rest = self.assert_reply(raw, 0x00)
        self.assertTrue(rest.startswith(b"HTTP/1.1 200 "), rest[:80])
        self.assertTrue(rest.endswith(b"hello over socks\n"), rest)
        # The domain form, split at every boundary of its fields.
        name = socks5_request(1, 3, "localhost", self.P)
        raw = self.exchange(GREETING[:1], timeout=0.3)
        self.assertEqual(raw, b"", "answered an unfinished greeting")
        with socket.create_connection(("127.0.0.1", self.lp), 5) as s:
            for part in (GREETING[:2], GREETING[2:], name[:4], name[4:5],
                         name[5:9], name[9:-1], name[-1:]):
                s.sendall(part)
                time.sleep(0.02)
            s.settimeout(5)
            got = s.recv(64)
            while len(got) < 12:
                more = s.recv(64)
                if not more:
                    break
                got += more
        # localhost is not allowed (only 127.0.0.1 is): a whole, parsed
        # request was judged by name.
        self.assert_reply(got, 0x02)
        # (The unfinished greeting left an error event without a host.)
        self.assertEqual([(e["event"], e["host"]) for e in self.events(3)],
                         [("connect", "127.0.0.1"), ("error", None),
                          ("deny", "localhost")])

    def test_a_cut_handshake_leaves_the_proxy_serving(self):
        for cut in (GREETING[:2], GREETING + self.connect_request()[:6]):
            with socket.create_connection(("127.0.0.1", self.lp), 5) as s:
                s.sendall(cut)
        raw = self.exchange(GREETING + self.connect_request() +
                            self.HTTP_GET)
        self.assertIn(b"hello over socks\n", self.assert_reply(raw, 0))

    def test_a_non_socks_first_byte_is_served_as_http(self):
        req = ("GET http://127.0.0.1:%d/hello.txt HTTP/1.1\r\n"
               "Host: 127.0.0.1:%d\r\nConnection: close\r\n\r\n"
               % (self.P, self.P)).encode()
        raw = self.exchange(req)
        self.assertTrue(raw.startswith(b"HTTP/1.1 200 "), raw[:80])
        self.assertTrue(raw.endswith(b"hello over socks\n"))
        self.assertEqual([e["door"] for e in self.events(1)], ["http"])


class NamesAndVolume(RawBase):
    """A session that allows one pinned name: what a domain-form request
    may spell, and a large body through the tunnel."""

    def policy(self):
        return ["--allow", "origin.test", "--resolve",
                "origin.test:%d:127.0.0.1" % self.P]

    def setUp(self):
        super().setUp()
        self.big = os.urandom(8 << 20)
        self.origin.add_file("big.bin", self.big)

    def by_name(self, name, extra=b""):
        return self.exchange(GREETING + socks5_request(1, 3, name, self.P) +
                             extra, timeout=5)

    def test_case_and_trailing_dot_are_the_same_name(self):
        for name in ("ORIGIN.TEST", "origin.test."):
            rest = self.assert_reply(self.by_name(name, self.HTTP_GET), 0)
            self.assertTrue(rest.endswith(b"hello over socks\n"), name)

    def test_an_address_spelled_as_a_name_is_judged_as_an_address(self):
        # Only the name is allowed: its address, however spelled in the
        # domain field, is not.
        for name in ("127.0.0.1", "2130706433", "0x7f.1",
                     "::ffff:127.0.0.1"):
            self.assert_reply(self.by_name(name, self.HTTP_GET), 0x02)
        self.assertEqual(self.origin_hits(), 0)
        self.assertEqual({e["event"] for e in self.events(4)}, {"deny"})

    def test_bad_names_are_refused_without_a_tunnel(self):
        for name in ("", "origin.test\x00.evil", "origin%2etest",
                     "[127.0.0.1]"):
            method, reply, rest = split_socks5_answer(self.by_name(name))
            self.assertNotEqual(reply[1], 0, name)
            self.assertEqual(rest, b"", name)
        self.assertEqual(self.origin_hits(), 0)

    def test_only_username_password_offered_is_refused_with_0xff(self):
        self.assertEqual(self.exchange(b"\x05\x01\x02"), b"\x05\xff")

    def test_eight_megabytes_arrive_intact(self):
        raw = self.exchange(
            GREETING + socks5_request(1, 3, "origin.test", self.P) +
            b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close"
            b"\r\n\r\n", timeout=30, limit=1 << 30)
        rest = self.assert_reply(raw, 0)
        head, _, body = rest.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
        self.assertEqual(len(body), len(self.big))
        self.assertTrue(body == self.big, "the body changed on the way")
        (ev,) = self.events(1)
        self.assertGreater(ev["bytes_down"], len(self.big))


PYSOCKS = r"""
import json, os, socket, sys
import socks, requests
host, port = os.environ["ALL_PROXY"].split("://", 1)[1].rstrip("/").rsplit(
    ":", 1)
port = int(port)
P = int(sys.argv[1])
out = {}

def raw_get(dest, rdns):
    s = socks.socksocket()
    s.set_proxy(socks.SOCKS5, host, port, rdns=rdns)
    s.settimeout(10)
    try:
        s.connect((dest, P))
        s.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n"
                  b"Connection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        return "ok " + data.decode().split("\r\n\r\n", 1)[1]
    except Exception as e:
        return "error %s: %s" % (type(e).__name__, e)
    finally:
        s.close()

out["rdns_name"] = raw_get("localhost", True)
out["local_name"] = raw_get("localhost", False)
proxies = {"http": "socks5h://%s:%d" % (host, port),
           "https": "socks5h://%s:%d" % (host, port)}
try:
    r = requests.get("http://origin.test:%d/hello.txt" % P, proxies=proxies,
                     timeout=10)
    out["requests"] = "%d %s" % (r.status_code, r.text)
except Exception as e:
    out["requests"] = "error %s" % type(e).__name__
try:
    requests.get("http://denied.test:%d/hello.txt" % P, proxies=proxies,
                 timeout=10)
    out["requests_denied"] = "reached"
except Exception as e:
    out["requests_denied"] = "error %s: %s" % (type(e).__name__, e)
print(json.dumps(out))
"""


class PythonClients(SocksCase):

    def test_pysocks_and_requests_socks5h(self):
        # localhost is allowed by name only: rdns=True sends the name
        # (allowed), rdns=False the address the client found (refused,
        # 0x02).
        script = self.tmp.write("pysocks.py", PYSOCKS)
        r = self.egress(
            ["--allow", "localhost", "--allow", "origin.test", "--resolve", "origin.test:%d:127.0.0.1"
             % self.P, "--audit", self.audit],
            ["env", "-u", "NO_PROXY", "-u", "no_proxy", PY, script,
             str(self.P)])
        self.assertEqual(r.rc, 0, r)
        out = json.loads(r.stdout)
        self.assertEqual(out["rdns_name"], "ok hello over socks\n")
        self.assertRegex(out["local_name"],
                         r"^error .*0x02.*not allowed by ruleset")
        self.assertEqual(out["requests"], "200 hello over socks\n")
        self.assertRegex(out["requests_denied"], r"^error .*0x02")
        ev = [(e["event"], e["host"]) for e in self.events()]
        self.assertIn(("connect", "localhost"), ev)
        self.assertIn(("connect", "origin.test"), ev)
        self.assertIn(("deny", "denied.test"), ev)
        denied_local = [h for k, h in ev if k == "deny" and h != "denied.test"]
        self.assertEqual(len(denied_local), 1, ev)
        self.assertIn(denied_local[0], ("127.0.0.1", "::1"))
        self.assertEqual(self.origin_hits(), 2)


if __name__ == "__main__":
    unittest.main()
