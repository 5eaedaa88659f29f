"""The TLS side of interception (issue 6): who terminates TLS, and what is
refused.

  - an intercepted host is served a leaf minted by egress-run's CA (SAN =
    the CONNECT host, name or IP; P-256; short validity; ALPN http/1.1
    only); a host without a binding keeps its own certificate (the issuer
    the client sees is the TestCA's), checked with python's ssl and with
    openssl s_client -proxy;
  - a TLS server name that differs from the CONNECT host, or none, and a
    Host header naming another host inside the tunnel: nothing reaches the
    origin, and the answer is 421;
  - an origin whose certificate does not verify (self-signed, not in
    --upstream-ca): 502 saying certificate verification failed, audited;
  - chained through a corporate Squid (--upstream): intercepted requests
    are still injected, and Squid's log shows CONNECT api.test:PORT.
"""

import json
import os
import ssl
import subprocess
import unittest

import builtin_fixtures as bf
import harness as h
import mitm_fixtures as mf

# Bug A (conn.c, lead): an answer egress-run itself writes inside an
# intercepted tunnel (421, 502, ...; also any response to a client that
# asked for Connection: close) is lost: conn_finish()/client_write() call
# shutdown(fd, SHUT_WR) as soon as the TLS filter's output is empty, while
# the encrypted bytes still wait in the underlying bufferevent. The client
# sees EOF (curl: "Empty reply from server").
BUG_A = "bug A: answers inside an intercepted tunnel lost at close"


class TLSCase(mf.MitmCase):

    def setUp(self):
        super().setUp()
        self.value = mf.new_secret()
        self.n = self.echo_nginx(names=mf.NAMES + ("127.0.0.1",))
        self.S = self.n.https_port
        self.env = h.clean_env({"MYKEY": self.value})
        self.audit = self.audit_path()
        self.args = (["--upstream-ca", self.testca.cert, "--audit",
                      self.audit, "--secret", "MYKEY:api.test"] +
                     mf.pins(self.S))

    def start(self, extra=()):
        s = self.session(self.args + list(extra), env=self.env)
        return s, s.env["SSL_CERT_FILE"]

    def get(self, t, host_header):
        return mf.http_over(t, b"GET /echo HTTP/1.1\r\nHost: %s\r\n\r\n"
                            % host_header.encode())


class WhoTerminatesTLS(TLSCase):

    def leaf_text(self, t):
        der = t.getpeercert(binary_form=True)
        return subprocess.run(["openssl", "x509", "-inform", "DER",
                               "-noout", "-text"], input=der,
                              capture_output=True).stdout.decode()

    def test_intercepted_host_gets_a_minted_leaf(self):
        s, ca = self.start(["--secret", "IPKEY=%s:127.0.0.1"
                            % mf.new_secret(), "--allow", "127.0.0.1",
                            "--allow", "*.test"])
        t = mf.tls_via_proxy(s.port, "api.test", self.S, ca)
        self.addCleanup(t.close)
        self.assertRegex(mf.peer_issuer_cn(t), r"^egress-run ephemeral CA")
        self.assertEqual(t.selected_alpn_protocol(), "http/1.1")
        text = self.leaf_text(t)
        self.assertRegex(text, r"DNS:api\.test\b")
        self.assertNotRegex(text, r"DNS:(?!api\.test)")
        self.assertRegex(text, r"prime256v1|P-256")
        self.assertRegex(text, r"CA:FALSE")
        nb, na = (t.getpeercert()["notBefore"], t.getpeercert()["notAfter"])
        life = ssl.cert_time_to_seconds(na) - ssl.cert_time_to_seconds(nb)
        self.assertLessEqual(life, 26 * 3600)
        st, _hd, body = self.get(t, "api.test:%d" % self.S)
        self.assertEqual(st, 200)
        self.assertIn(b"auth=[Bearer " + self.value.encode(), body)
        # An IP address: the leaf names it as an IP (no SNI is sent).
        t2 = mf.tls_via_proxy(s.port, "127.0.0.1", self.S, ca)
        self.addCleanup(t2.close)
        self.assertRegex(self.leaf_text(t2), r"IP Address:127\.0\.0\.1")
        st, _hd, body = self.get(t2, "127.0.0.1:%d" % self.S)
        self.assertEqual(st, 200, body)
        # h2 is never chosen, whatever the client offers first.
        ctx = mf.client_context(ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        t3 = ctx.wrap_socket(mf.proxy_connect(s.port, "api.test", self.S),
                             server_hostname="api.test")
        self.addCleanup(t3.close)
        self.assertEqual(t3.selected_alpn_protocol(), "http/1.1")
        # The leaf is minted once per host (cached), each with its own
        # random serial.
        self.assertEqual(t3.getpeercert(True), t.getpeercert(True))
        self.assertNotEqual(t2.getpeercert()["serialNumber"],
                            t.getpeercert()["serialNumber"])
        self.assertGreaterEqual(len(t.getpeercert()["serialNumber"]), 16)

    def test_client_hello_sent_with_the_connect_is_not_lost(self):
        s, ca = self.start()
        answer, got = mf.early_hello_request(
            s.port, "api.test", self.S, ca,
            b"GET /echo HTTP/1.1\r\nHost: api.test:%d\r\n\r\n" % self.S)
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer)
        self.assertTrue(got.startswith(b"HTTP/1.1 200"), got)
        self.assertIn(b"auth=[Bearer %s]" % self.value.encode(), got)

    def test_unbound_host_keeps_its_own_certificate(self):
        s, ca = self.start()
        t = mf.tls_via_proxy(s.port, "other.test", self.S, ca)
        self.addCleanup(t.close)
        self.assertEqual(mf.peer_issuer_cn(t), "egress-run mitm test CA")
        # The same through the openssl CLI, as a user would look.
        issuer, rc, text = mf.s_client_issuer(s.port, "other.test", self.S,
                                              ca)
        self.assertEqual(rc, 0, text)
        self.assertRegex(issuer or "", r"CN ?= ?egress-run mitm test CA")
        issuer, rc, text = mf.s_client_issuer(s.port, "api.test", self.S,
                                              ca)
        self.assertEqual(rc, 0, text)
        self.assertRegex(issuer or "", r"CN ?= ?egress-run ephemeral CA")
        st, _hd, body = self.get(t, "other.test:%d" % self.S)
        self.assertEqual(st, 200)
        self.assertIn(b"auth=[]", body)
        s.stop()
        conns = [(e["host"], e["mitm"]) for e in bf.read_audit(self.audit)
                 if e["event"] == "connect"]
        self.assertEqual(sorted(set(conns)), [("api.test", True),
                                              ("other.test", False)])


class Refusals(TLSCase):

    def mismatches(self, s, ca):
        """(label, status or exception) for each way of naming another
        host inside a tunnel to api.test."""
        out = []
        S = self.S
        for label, sni, host in (
                ("sni other", "other.test", "api.test:%d" % S),
                ("no sni", None, "api.test:%d" % S),
                ("host other", "api.test", "other.test:%d" % S),
                ("host other port", "api.test", "api.test:%d" % (S + 1)),
                ("host ip", "api.test", "127.0.0.1:%d" % S)):
            sock = mf.proxy_connect(s.port, "api.test", S)
            ctx = mf.client_context(ca, check_hostname=False)
            try:
                t = ctx.wrap_socket(sock, server_hostname=sni)
            except ssl.SSLError as e:
                sock.close()
                out.append((label, e))
                continue
            try:
                out.append((label, self.get(t, host)))
            except (OSError, ValueError) as e:
                out.append((label, e))
            finally:
                t.close()
        return out

    def test_sni_or_host_mismatch_never_reaches_the_origin(self):
        s, ca = self.start()
        # A client checking names refuses a leaf for api.test under
        # another name: the mint follows the CONNECT host, not the SNI.
        with self.assertRaises(ssl.SSLCertVerificationError):
            mf.tls_via_proxy(s.port, "api.test", self.S, ca,
                             server_hostname="other.test").close()
        for label, res in self.mismatches(s, ca):
            if isinstance(res, tuple):
                self.assertNotEqual(res[0], 200, label)
                self.assertNotIn(self.value.encode(), res[2], label)
        self.assertEqual(mf.header_log(self.n), [])
        s.stop()
        errors = [e for e in bf.read_audit(self.audit)
                  if e["event"] == "error"]
        # The client that refused the leaf leaves a trace too (the
        # CONNECT's error event), then one 421 per mismatched request.
        failed = [e for e in errors if e["method"] == "CONNECT"]
        self.assertEqual(len(failed), 1, errors)
        self.assertIn("TLS handshake with the client failed",
                      failed[0]["reason"])
        refused = [e for e in errors if e["method"] != "CONNECT"]
        self.assertEqual(len(refused), 5, errors)
        for e in refused:
            self.assertEqual((e["status"], e["mitm"]), (421, True), e)

    def test_sni_or_host_mismatch_is_answered_421(self):
        s, ca = self.start()
        for label, res in self.mismatches(s, ca):
            self.assertIsInstance(res, tuple, "%s: %r" % (label, res))
            self.assertEqual(res[0], 421, label)

    def bad_origin(self):
        cert = self.self_signed("bad.test")
        bad = self.sink(cert=cert)
        s, ca = self.start(["--secret", "BADKEY=%s:bad.test"
                            % mf.new_secret()] +
                           mf.pins(bad.port, ("bad.test",)))
        return bad, s, ca

    def test_origin_certificate_that_does_not_verify_is_refused(self):
        bad, s, ca = self.bad_origin()
        rc, out, err = s.curl("https://bad.test:%d/x" % bad.port,
                              "--cacert", ca, "--fail")
        self.assertNotEqual(rc, 0)
        self.assertNotIn("sha256", out)
        s.stop()
        # The origin never got a request (its handshake was refused).
        self.assertEqual(bad.requests(), [])
        (e,) = [e for e in bf.read_audit(self.audit)
                if e["event"] == "error"]
        self.assertEqual((e["status"], e["host"], e["mitm"]),
                         (502, "bad.test", True))
        self.assertRegex(e["reason"], r"certificate.*(verif|self-signed)")

    def test_origin_certificate_that_does_not_verify_is_a_502(self):
        bad, s, ca = self.bad_origin()
        rc, out, err = s.curl("https://bad.test:%d/x" % bad.port,
                              "--cacert", ca, "-i")
        self.assertRegex(out, r"(?m)^HTTP/1.1 502")
        self.assertRegex(out, r"(?i)x-egress-run-reason: .*certificate.*"
                         r"(verif|self-signed)")


class ThroughSquid(TLSCase):

    def test_intercepted_requests_chain_through_squid(self):
        d = self.tmp.mkdir("squid")
        with open(os.path.join(d, "hosts"), "w") as f:
            for n in mf.NAMES:
                f.write("127.0.0.1 %s\n" % n)
        sq = h.Squid(d, extra="hosts_file %s/hosts\n" % d)
        self.addCleanup(sq.stop)
        sq.start()
        args = (["--upstream-ca", self.testca.cert, "--audit", self.audit,
                 "--secret", "MYKEY:api.test", "--upstream",
                 "http://127.0.0.1:%d" % sq.port])
        script = (h.SH_VIA_PROXY +
                  'curl -sS --fail --max-time 15 -H "X-Other: $MYKEY" '
                  'https://api.test:%(p)d/echo && '
                  'curl -sS --fail --max-time 15 -H "X-Other: $MYKEY" '
                  'https://other.test:%(p)d/echo' % {"p": self.S})
        r = self.egress(args, ["sh", "-c", script], env=self.env)
        self.assertEqual(r.rc, 0, r)
        log = mf.header_log(self.n, 2)
        self.assertEqual([x["host"] for x in log],
                         ["api.test", "other.test"])
        self.assertEqual((log[0]["auth"], log[0]["other"]),
                         ("Bearer " + self.value, self.value))
        self.assertNotIn(self.value, json.dumps(log[1]))
        squid_log = h.wait_for(lambda: sq.access_log().count("CONNECT")
                               >= 2 and sq.access_log(), 5,
                               "Squid's access log")
        self.assertRegex(squid_log, r"CONNECT api\.test:%d" % self.S)
        self.assertRegex(squid_log, r"CONNECT other\.test:%d" % self.S)
        self.assertNotIn(self.value, squid_log)
        reqs = [e for e in bf.read_audit(self.audit)
                if e["event"] == "request"]
        self.assertEqual([(e["host"], e["mitm"], e["secret"]) for e in reqs],
                         [("api.test", True, "MYKEY")])
        self.assertRegex(reqs[0].get("upstream") or "", r"127\.0\.0\.1")


if __name__ == "__main__":
    unittest.main()
