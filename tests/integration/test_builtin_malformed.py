"""Malformed requests (and responses) against the built-in proxy (issue
3): sent as raw bytes, each must get its status line (400, 431, 505) with
a reason, the connection must be closed after it, and nothing may reach
the origin, not even a request pipelined behind the bad one. Origins that
answer with a malformed head get their client a 502.
"""

import unittest

import builtin_fixtures as bf
from harness import EgressTestCase

NAME = b"origin.test"


class BuiltinMalformedTest(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.n = self.nginx(files={"hello.txt": "hello\n"},
                            http_extra="large_client_header_buffers 16 8k;")
        self.origin_may_see = False
        self.P = self.n.port
        self.s = bf.session(self, ["--allow", "origin.test", "--resolve",
                                   "origin.test:%d:127.0.0.1" % self.P])
        self.url = b"http://origin.test:%d/hello.txt" % self.P

    def refused(self, data, status, what, reason=None):
        # Pipelined behind the bad request: a good one, never to be served.
        good = b"GET %s HTTP/1.1\r\nHost: origin.test\r\n\r\n" % self.url
        r = self.s.request(data + good, timeout=10)
        self.assertEqual(r.status, status, "%s: %r" % (what, r))
        self.assertTrue(r.status_line.startswith("HTTP/1.1 %d " % status),
                        r.status_line)
        why = r.header("x-egress-run-reason")
        self.assertTrue(why, "%s: no reason" % what)
        if reason:
            self.assertRegex(why, reason, what)
        self.assertTrue(r.closed, "%s: connection left open" % what)
        self.assertEqual(r.raw.count(b"HTTP/1.1 "), 1, "%s: %r" % (what, r))
        self.assertLess(r.elapsed, 5, what)
        return r

    def tearDown(self):
        if not self.origin_may_see:
            self.assertEqual(self.n.access_log(), "", "the origin saw a "
                             "malformed request")

    def line(self, method=b"GET", target=None, version=b"HTTP/1.1"):
        return b"%s %s %s\r\n" % (method, target or self.url, version)

    def test_obs_fold_is_400(self):
        self.refused(self.line() + b"Host: origin.test\r\nX-A: a\r\n"
                     b"  folded\r\n\r\n", 400, "obs-fold")

    def test_content_length_with_transfer_encoding_is_400(self):
        self.refused(self.line(b"POST") + b"Host: origin.test\r\n"
                     b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n0\r\n\r\n", 400, "CL+TE", "framing")

    def test_duplicate_or_conflicting_content_length_is_400(self):
        self.refused(self.line(b"POST") + b"Host: origin.test\r\n"
                     b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n"
                     b"hello!", 400, "conflicting CL", "framing")
        self.refused(self.line(b"POST") + b"Host: origin.test\r\n"
                     b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
                     b"hello", 400, "duplicate CL", "framing")
        self.refused(self.line(b"POST") + b"Host: origin.test\r\n"
                     b"Content-Length: +5\r\n\r\nhello", 400, "signed CL")

    def test_bare_lf_bare_cr_and_nul_are_400(self):
        self.refused(self.line() + b"Host: origin.test\nX-A: b\r\n\r\n", 400,
                     "bare LF")
        self.refused(self.line() + b"Host: origin.test\r\nX-A: a\rb\r\n\r\n",
                     400, "bare CR")
        self.refused(self.line() + b"Host: origin.test\r\nX-A: a\0b\r\n\r\n",
                     400, "NUL")

    # Bug (conn.c parse_head): a head whose lines all end in a bare LF has
    # no CRLFCRLF, so the proxy keeps waiting for one and answers 408
    # after the 30 s head timeout instead of 400 at once.
    def test_request_with_only_bare_lf_is_400_at_once(self):
        r = self.s.request(b"GET %s HTTP/1.1\nHost: origin.test\n\n"
                           % self.url, timeout=3)
        self.assertEqual(r.status, 400, r)

    def test_invalid_tokens_are_400(self):
        self.refused(self.line() + b"Host: origin.test\r\nX Bad: 1\r\n\r\n",
                     400, "space in a field name")
        self.refused(self.line() + b"Host : origin.test\r\n\r\n", 400,
                     "space before the colon")
        self.refused(self.line(b"G(T") + b"Host: origin.test\r\n\r\n", 400,
                     "bad method token")
        self.refused(self.line() + b"\r\n", 400, "HTTP/1.1 without Host",
                     "Host")

    def test_header_section_over_64k_is_431(self):
        pad = b"X-Pad: " + b"p" * 1000 + b"\r\n"
        # Complete (just over the limit, its end arriving with the bytes
        # that cross it, so the parser judges it), and still arriving:
        # both are refused.
        head = self.line() + b"Host: origin.test\r\n" + pad * 65 + b"\r\n"
        self.assertGreater(len(head), 64 * 1024)
        self.assertLess(len(head), 64 * 1024 + 1000)
        r = self.s.request(b"", chunks=[head[:65000], head[65000:]])
        self.assertEqual(r.status, 431, r)
        self.assertTrue(r.closed)
        self.assertTrue(r.header("x-egress-run-reason"))
        r = self.s.request(self.line() + b"Host: origin.test\r\n" +
                           pad * 70, timeout=10)
        self.assertEqual(r.status, 431, r)
        self.assertTrue(r.closed)

    def test_header_section_just_under_64k_is_forwarded(self):
        self.origin_may_see = True
        pad = b"X-Pad: " + b"p" * 1000 + b"\r\n"
        head = (self.line() + b"Host: origin.test\r\nConnection: close\r\n"
                + pad * 60 + b"\r\n")
        self.assertGreater(len(head), 60000)
        self.assertLess(len(head), 64 * 1024)
        r = self.s.request(head)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"hello\n")

    def test_target_form_must_fit_the_method(self):
        self.refused(self.line(b"GET", b"origin.test:%d" % self.P) +
                     b"Host: origin.test\r\n\r\n", 400, "GET authority-form")
        self.refused(self.line(b"CONNECT", b"/") + b"Host: x\r\n\r\n", 400,
                     "CONNECT origin-form")
        self.refused(self.line(b"CONNECT", self.url) + b"Host: x\r\n\r\n",
                     400, "CONNECT absolute-form")
        self.refused(self.line(b"CONNECT", b"origin.test") +
                     b"Host: x\r\n\r\n", 400, "CONNECT without a port")
        self.refused(self.line(b"GET", b"*") + b"Host: x\r\n\r\n", 400,
                     "GET *")

    def test_origin_form_to_the_proxy_is_400(self):
        self.refused(self.line(b"GET", b"/hello.txt") +
                     b"Host: origin.test:%d\r\n\r\n" % self.P, 400,
                     "origin-form", "proxy")
        self.refused(self.line(b"OPTIONS", b"*") +
                     b"Host: origin.test:%d\r\n\r\n" % self.P, 400,
                     "asterisk-form")

    def test_unsupported_version_is_505(self):
        self.refused(self.line(version=b"HTTP/2.0") +
                     b"Host: origin.test\r\n\r\n", 505, "HTTP/2.0")

    def test_not_http_at_all_is_400(self):
        r = self.s.request(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
                           timeout=5)
        self.assertEqual(r.status, 400, r)
        self.assertTrue(r.closed)

    def test_malformed_response_heads_are_502(self):
        o = bf.PyOrigin(self)
        s = bf.session(self, ["--allow", "py.test", "--resolve",
                              "py.test:%d:127.0.0.1" % o.port])
        for kind in ("cl_te", "dup_cl", "fold", "nul", "bare_cr", "huge",
                     "not_http"):
            r = s.request(b"GET http://py.test:%d/raw/%s HTTP/1.1\r\n"
                          b"Host: py.test\r\n\r\n" % (o.port, kind.encode()))
            self.assertEqual(r.status, 502, "%s: %r" % (kind, r))
            self.assertTrue(r.header("x-egress-run-reason"), kind)
            self.assertTrue(r.closed, kind)
            self.assertNotIn(b"X-Pad", r.raw, kind)


if __name__ == "__main__":
    unittest.main()
