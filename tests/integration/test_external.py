"""External proxies (SPEC §2 --external/--external-addr, §3, §6): Squid and
mitmproxy run by egress-run, an already running Squid, the fail-open and
fail-closed paths, the bind timeout, early exits, and no process left over.
Each test shows from the proxy's own log that the traffic went through it.
"""

import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PY, SH_VIA_PROXY, EgressTestCase, clean_env,  # noqa
                     curl_via_proxy, free_port, listener_command,
                     parse_env_dump, processes_with,
                     wait_for)

REQUESTS_GET = ("%s -c \"import os, requests; print(requests.get("
                "os.environ['URL'], timeout=15).text, end='')\"" % PY)


class SquidAsExternal(EgressTestCase):

    def test_curl_goes_through_squid_started_by_egress_run(self):
        origin = self.nginx(files={"hello.txt": "hello from origin\n"})
        squid = self.squid(start=False)
        r = self.egress(["--external", squid.external_command()],
                        curl_via_proxy(origin.url("hello.txt")))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "hello from origin\n")
        # Squid's own log holds the request, so it went through Squid.
        self.assertRegex(squid.access_log(),
                         r"TCP_MISS/200 \d+ GET http://127\.0\.0\.1:%d/"
                         r"hello\.txt" % origin.port)
        self.assertIn('"GET /hello.txt HTTP/1.1" 200', origin.access_log())
        # Squid (its command line names its directory) is gone.
        self.assert_gone(squid.dir)
        self.assert_no_state_left()

    def test_https_goes_through_squid_as_a_connect_tunnel(self):
        ca = self.ca()
        origin = self.nginx(tls=ca, files={"s.txt": "over tls\n"})
        squid = self.squid(start=False)
        r = self.egress(["--external", squid.external_command()],
                        curl_via_proxy(origin.https_url("s.txt"),
                                       "--cacert", ca.cert))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "over tls\n")
        self.assertRegex(squid.access_log(),
                         r"TCP_TUNNEL/200 \d+ CONNECT 127\.0\.0\.1:%d"
                         % origin.https_port)

    def test_no_proxy_exempts_loopback_so_the_log_check_means_something(self):
        # The same curl without dropping NO_PROXY goes direct: Squid's log
        # has no line for it. The positive tests above are not vacuous.
        origin = self.nginx(files={"direct.txt": "direct\n"})
        squid = self.squid(start=False)
        r = self.egress(["--external", squid.external_command()],
                        ["curl", "-sS", "--fail", "--max-time", "15",
                         origin.url("direct.txt")])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "direct\n")
        self.assertNotIn("direct.txt", squid.access_log())
        self.assertIn("GET /direct.txt", origin.access_log())


class MitmproxyAsExternal(EgressTestCase):

    def run_clients(self, mitm, url, with_ca=True):
        args = ["--external", mitm.external_command(), "--bind-timeout",
                "30"]
        if with_ca:
            args += ["--external-ca", mitm.ca_cert]
        # No --cacert, no verify=: trust comes from the bouquet alone.
        script = (SH_VIA_PROXY +
                  'curl -sS --max-time 15 "$URL"; echo "curl=$?"; ' +
                  REQUESTS_GET + '; echo "requests=$?"; '
                  'echo "bundle=$SSL_CERT_FILE"')
        return self.egress(args, ["/bin/sh", "-c", script],
                           env=clean_env({"URL": url}), timeout=90)

    def test_curl_and_requests_trust_mitmproxy_through_the_bouquet(self):
        ca = self.ca()
        origin = self.nginx(tls=ca, files={"hello.txt": "tls hello\n"})
        mitm = self.mitmproxy(upstream_ca=ca.cert)
        url = origin.https_url("hello.txt")
        r = self.run_clients(mitm, url)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("tls hello\ncurl=0\n", r.stdout)
        self.assertIn("tls hello\nrequests=0\n", r.stdout)
        # The bundle lived in the private state directory...
        bundle = re.search(r"bundle=(.*)", r.stdout).group(1)
        self.assertTrue(bundle.startswith(self.state_tmp + "/"), bundle)
        # ... which is gone now.
        self.assertFalse(os.path.exists(bundle))
        self.assert_no_state_left()
        # mitmproxy saw (and so decrypted) both requests.
        flows = re.findall(r"GET %s\n\s*<< 200" % re.escape(url),
                           mitm.output())
        self.assertEqual(len(flows), 2, mitm.output())
        self.assertIn("curl/", origin.access_log())
        self.assertIn("python-requests/", origin.access_log())
        self.assert_gone(mitm.confdir)

    def test_without_external_ca_the_clients_refuse_mitmproxy(self):
        # The control: the same run without --external-ca fails in both
        # clients, so the success above is the bouquet's doing.
        ca = self.ca()
        origin = self.nginx(tls=ca, files={"hello.txt": "tls hello\n"})
        mitm = self.mitmproxy(upstream_ca=ca.cert)
        r = self.run_clients(mitm, origin.https_url("hello.txt"),
                             with_ca=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("curl=60", r.stdout)
        self.assertRegex(r.stdout, r"requests=[1-9]")
        self.assertIn("SSLError", r.stderr)
        self.assertNotIn("tls hello", r.stdout)


class ExternalAddr(EgressTestCase):

    def test_an_already_running_proxy_is_used_and_left_running(self):
        origin = self.nginx(files={"a.txt": "via running squid\n"})
        squid = self.squid()
        r = self.egress(["--external-addr", "127.0.0.1:%d" % squid.port],
                        ["/bin/sh", "-c", SH_VIA_PROXY +
                         'echo "$HTTPS_PROXY"; curl -sS --fail '
                         '--max-time 15 "$URL"'],
                        env=clean_env({"URL": origin.url("a.txt")}))
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "http://127.0.0.1:%d\nvia running "
                         "squid\n" % squid.port)
        self.assertRegex(squid.access_log(), r"GET http://127\.0\.0\.1:%d/"
                         r"a\.txt" % origin.port)
        # egress-run did not start it, so it does not stop it.
        self.assertTrue(squid.proc.alive())
        self.assert_no_state_left()

    def test_an_address_that_never_accepts_fails_open_after_the_timeout(self):
        port = free_port()
        r = self.egress(["--external-addr", "127.0.0.1:%d" % port,
                         "--bind-timeout", "0.5"], ["env"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("--bind-timeout", r.stderr)
        self.assertIn("127.0.0.1:%d" % port, r.stderr)
        self.assertLess(r.elapsed, 5, r)
        self.assert_fallback_env(parse_env_dump(r.stdout), port)


class FailOpenAndClosed(EgressTestCase):

    def test_early_exit_warns_with_cause_and_log_tail_then_runs_command(self):
        cmd = ("echo 'FATAL: cannot open port: out of cheese' >&2; "
               "echo proxy-last-line; exit 3 # {port}")
        r = self.egress(["--external", cmd, "--bind-timeout", "30"],
                        ["/bin/sh", "-c", "env; exit 4"])
        self.assertEqual(r.rc, 4, r)     # COMMAND ran, its status returned
        self.assertIn("exited with status 3", r.stderr)
        self.assertIn("out of cheese", r.stderr)      # last lines of its log
        self.assertIn("proxy-last-line", r.stderr)
        self.assertNotIn("out of cheese", r.stdout)
        self.assert_only_diagnostics(r.stderr)
        # Noticed at once, not after the 30 s bind timeout.
        self.assertLess(r.elapsed, 5, r)
        env = parse_env_dump(r.stdout)
        self.assertEqual(env.get("EGRESS_RUN"), "1")
        self.assert_fallback_env(env)
        self.assert_no_state_left()

    def test_fail_closed_exits_125_and_never_runs_command(self):
        marker = self.tmp.join("command-ran")
        for name, args in (
                ("early exit", ["--external", "exit 1 # {port}"]),
                ("bind timeout", ["--bind-timeout", "0.3", "--external",
                                  "sleep 30 # {port}"]),
                ("no listener", ["--bind-timeout", "0.3", "--external-addr",
                                 "127.0.0.1:%d" % free_port()])):
            with self.subTest(name):
                r = self.egress(["--fail-closed"] + args,
                                ["touch", marker])
                self.assertEqual(r.rc, 125, r)
                self.assertFalse(os.path.exists(marker), "COMMAND ran")
                self.assertIn("--fail-closed", r.stderr)
                self.assertEqual(r.stdout, "")
                self.assertLess(r.elapsed, 5, r)
                self.assert_no_state_left()

    def test_fail_open_runs_the_command_in_the_same_cases(self):
        # The control for the test above: without --fail-closed the same
        # set-up failures let COMMAND run.
        marker = self.tmp.join("command-ran")
        r = self.egress(["--external", "exit 1 # {port}"], ["touch", marker])
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(os.path.exists(marker))

    def test_bind_timeout_is_honoured_and_the_proxy_killed(self):
        for name, prefix in (("plain", ""),
                             ("ignores SIGTERM", "trap '' TERM; ")):
            with self.subTest(name):
                marker = self.marker("never-binds")
                # The marker is in the command line of sh and python both.
                cmd = ("%strue; %s -c 'import signal, time; "
                       "signal.signal(signal.SIGTERM, signal.SIG_IGN) "
                       "if %r else None; time.sleep(60)' %s # {port}"
                       % (prefix, PY, bool(prefix), marker))
                t0 = time.time()
                r = self.egress(["--bind-timeout", "0.5", "--external", cmd],
                                ["/bin/sh", "-c", "date +%s.%N"])
                self.assertEqual(r.rc, 0, r)
                started = float(r.stdout.strip()) - t0
                # COMMAND started about 0.5 s in: the wait was bounded by
                # --bind-timeout (plus teardown and process start-up).
                self.assertGreaterEqual(started, 0.45, r)
                self.assertLess(started, 3.0, r)
                self.assertIn("0.5 s (--bind-timeout)", r.stderr)
                self.assert_gone(marker)
                self.assert_no_state_left()

    def test_early_exit_is_noticed_long_before_the_bind_timeout(self):
        r = self.egress(["--bind-timeout", "60", "--external",
                         "sleep 0.3; exit 5 # {port}"], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("exited with status 5", r.stderr)
        self.assertLess(r.elapsed, 4, r)

    def test_proxy_killed_by_a_signal_is_reported_as_such(self):
        r = self.egress(["--bind-timeout", "30", "--external",
                         "kill -KILL $$ # {port}"], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("killed by signal 9", r.stderr)

    def test_proxy_that_dies_while_command_runs_is_reported(self):
        marker = self.marker("dies")
        ready = self.tmp.join("proxy-up")
        port_file = self.tmp.join("port")
        # Listens, then dies once COMMAND says so.
        cmd = ("echo {port} > %s; %s & pid=$!; "
               "while [ ! -e %s ]; do sleep 0.05; done; kill $pid; "
               "echo proxy-goodbye; exit 9"
               % (port_file, listener_command(marker), ready))
        r = self.egress(["--external", cmd],
                        ["/bin/sh", "-c", "touch %s; sleep 1.5; echo done"
                         % ready])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "done\n")
        self.assertIn("exited with status 9", r.stderr)
        self.assertIn("proxy-goodbye", r.stderr)
        self.assert_gone(marker)


class NoLeftovers(EgressTestCase):

    def test_the_whole_proxy_group_is_stopped_after_the_run(self):
        marker = self.marker("group")
        # A helper the proxy forked in the background must go too.
        cmd = ("%s -c 'import time; time.sleep(60)' %s-helper & %s"
               % (PY, marker, listener_command(marker)))
        r = self.egress(["--external", cmd], ["/bin/sh", "-c", "sleep 0.2"])
        self.assertEqual(r.rc, 0, r)
        self.assert_gone(marker)
        self.assert_no_state_left()

    def test_the_proxy_dies_when_egress_run_is_killed_outright(self):
        ready = self.tmp.join("command-started")
        for name, prefix in (("simple command", ""),
                             ("compound command", "true; "),
                             ("exec", "exec ")):
            with self.subTest(name):
                marker = self.marker("orphan")
                cmd = prefix + listener_command(marker)
                p = self.start_egress(
                    ["--external", cmd],
                    ["/bin/sh", "-c", "touch %s; exec %s -c 'import time; "
                     "time.sleep(60)' %s-command" % (ready, PY, marker)])
                wait_for(lambda: os.path.exists(ready), 15,
                         "COMMAND to start")
                # The proxy runs (egress-run's own argv holds the marker
                # too, so look for the python listener itself).
                wait_for(lambda: any(c.startswith(PY) for _p, c in
                                     processes_with(marker)), 10,
                         "the proxy to run")
                os.kill(p.pid, signal.SIGKILL)
                p.wait(5)
                # Neither the proxy nor COMMAND outlives egress-run.
                self.assert_gone(marker, timeout=5)
                if os.path.exists(ready):
                    os.unlink(ready)


if __name__ == "__main__":
    import unittest
    unittest.main()
