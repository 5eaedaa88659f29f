"""The launcher as a user meets it (SPEC §2, §3): exit statuses, usage and
config errors, stdout that belongs to COMMAND alone, --print-env, and the
private state directory.
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PROXY_VARS, EgressTestCase, clean_env,  # noqa: E402
                     egress_bin, listener_command, parse_env_dump)


class ExitStatus(EgressTestCase):

    def test_commands_status_is_egress_runs(self):
        cases = [
            (["true"], 0),
            (["false"], 1),
            (["/bin/sh", "-c", "exit 3"], 3),
            (["/bin/sh", "-c", "exit 255"], 255),
            # Killed by a signal: 128 + N, as a shell reports it.
            (["/bin/sh", "-c", "kill -TERM $$"], 143),
            (["/bin/sh", "-c", "kill -KILL $$"], 137),
            (["/bin/sh", "-c", "kill -SEGV $$"], 139),
        ]
        for cmd, want in cases:
            with self.subTest(cmd=cmd):
                r = self.egress([], cmd)
                self.assertEqual(r.rc, want, r)
        self.assert_no_state_left()

    def test_not_executable_is_126_and_not_found_is_127(self):
        script = self.tmp.write("script.sh", "#!/bin/sh\necho ran\n",
                                mode=0o644)
        cases = [
            ([script], 126, "Permission denied"),
            ([self.tmp.path], 126, "Permission denied"),
            (["egress-run-no-such-command-xyzzy"], 127, "not found"),
            ([self.tmp.join("missing")], 127, "not found"),
        ]
        for cmd, want, why in cases:
            with self.subTest(cmd=cmd[0]):
                r = self.egress([], cmd)
                self.assertEqual(r.rc, want, r)
                self.assertIn(why, r.stderr)
                self.assertIn(cmd[0], r.stderr)
                self.assertEqual(r.stdout, "")
        self.assert_no_state_left()

    def test_bad_usage_and_bad_config_are_125_and_command_never_runs(self):
        marker = self.tmp.join("ran")
        bad_json = self.tmp.write("bad.json", '{\n  "external": "x {port}",'
                                  '\n  "allow": [1]\n}\n')
        syntax = self.tmp.write("syntax.json", '{\n  "fail_closed": tru\n}')
        unknown = self.tmp.write("unknown.json", '{"no_such_key": 1}')
        cases = [
            (["--no-such-option"], "--no-such-option"),
            (["--bind-timeout", "soon"], "soon"),
            (["--max-conns", "0"], "--max-conns"),
            (["--fail-closed=yes"], "--fail-closed"),
            (["--external", "squid without a port"], "{port}"),
            (["--ca-cert", "x.pem"], "--ca-key"),
            (["--config", self.tmp.join("missing.json")], "missing.json"),
            (["--config", bad_json], "'allow'"),
            (["--config", syntax], "line 2"),
            (["--config", unknown], "'no_such_key'"),
        ]
        for args, mention in cases:
            with self.subTest(args=args):
                r = self.egress(args, ["touch", marker])
                self.assertEqual(r.rc, 125, r)
                self.assertIn(mention, r.stderr)
                self.assertTrue(r.stderr.startswith("egress-run: "), r)
                self.assertEqual(len(r.stderr.splitlines()), 1, r)
                self.assertEqual(r.stdout, "")
                self.assertFalse(os.path.exists(marker))
        # No COMMAND at all.
        r = self.egress([])
        self.assertEqual(r.rc, 125, r)
        self.assertIn("COMMAND", r.stderr)
        self.assert_no_state_left()

    def test_help_and_version(self):
        r = self.egress(["--help"])
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(r.stdout.startswith("usage: egress-run"), r)
        self.assertLessEqual(len(r.stdout.splitlines()), 40)
        self.assertEqual(r.stderr, "")
        r = self.egress(["--version"])
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.stdout, r"^egress-run \d+\.\d+\.\d+\n$")

    def test_config_file_applies_and_flags_override_it(self):
        port_file = self.tmp.join("port")
        cfg = self.tmp.write("c.json", '{"external": %s, "bind_timeout": 5}'
                             % _json_str("echo {port} > %s; %s"
                                         % (port_file, listener_command(
                                             self.marker("cfg")))))
        r = self.egress(["--config", cfg], ["env"])
        self.assertEqual(r.rc, 0, r)
        with open(port_file) as f:
            port = f.read().strip()
        self.assertEqual(parse_env_dump(r.stdout)["HTTPS_PROXY"],
                         "http://127.0.0.1:%s" % port)
        # A flag beats the file: here, a proxy that never binds and a
        # short timeout instead of the file's listener.
        r = self.egress(["--config", cfg, "--external", "sleep 5 # {port}",
                         "--bind-timeout", "0.3"], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("0.3 s (--bind-timeout)", r.stderr)


def _json_str(s):
    import json
    return json.dumps(s)


class Output(EgressTestCase):

    def test_stdout_is_commands_alone(self):
        # The proxy prints PROXY-42-OUT/-ERR; "-v" shows its command line,
        # which holds "$((6*7))", never "42".
        noise = ("echo PROXY-$((6*7))-OUT; echo PROXY-$((6*7))-ERR >&2; "
                 "exec " + listener_command(self.marker("noisy")))
        for verbosity in ([], ["-v"], ["-vv"]):
            with self.subTest(verbosity=verbosity):
                r = self.egress(verbosity + ["--external", noise],
                                ["printf", "exact\\noutput"])
                self.assertEqual(r.rc, 0, r)
                self.assertEqual(r.stdout, "exact\noutput")
                # The proxy's output goes to its log, not the terminal.
                self.assertNotIn("PROXY-42", r.stderr)
                self.assert_only_diagnostics(r.stderr)
                if verbosity:
                    self.assertIn("accepts", r.stderr)
        self.assert_no_state_left()

    def test_quiet_silences_warnings_but_not_errors(self):
        r = self.egress(["-q", "--external", "exit 2 # {port}"], ["true"])
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stderr, "")
        r = self.egress(["-q"], ["egress-run-no-such-command-xyzzy"])
        self.assertEqual(r.rc, 127)
        self.assertIn("not found", r.stderr)

    def test_stdin_is_commands(self):
        r = self.egress([], ["cat"], input="piped input\n")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "piped input\n")


class PrintEnv(EgressTestCase):

    def test_print_env_evals_in_sh_and_points_at_the_proxy(self):
        port, _ = self.listener()
        ca = self.ca()
        r = self.egress(["--print-env", "--external-addr",
                         "127.0.0.1:%d" % port, "--external-ca", ca.cert,
                         "--no-proxy", "internal.test"])
        self.assertEqual(r.rc, 0, r)
        for line in r.stdout.splitlines():
            self.assertRegex(line, r"^[A-Za-z_][A-Za-z0-9_]*='")
        envfile = self.tmp.write("env.sh", r.stdout)
        names = ["HTTPS_PROXY", "http_proxy", "ALL_PROXY", "NO_PROXY",
                 "EGRESS_RUN", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE",
                 "NODE_USE_ENV_PROXY", "GIT_SSH_COMMAND"]
        script = 'eval "$(cat "$1")"; ' + "; ".join(
            'printf "%%s\\n" "$%s"' % n for n in names)
        out = subprocess.run(["/bin/sh", "-c", script, "sh", envfile],
                             capture_output=True, text=True, check=True,
                             env={"PATH": "/usr/bin:/bin"}).stdout
        got = dict(zip(names, out.splitlines()))
        url = "http://127.0.0.1:%d" % port
        self.assertEqual(got["HTTPS_PROXY"], url)
        self.assertEqual(got["http_proxy"], url)
        self.assertEqual(got["ALL_PROXY"], url)
        self.assertEqual(got["NO_PROXY"],
                         "localhost,127.0.0.1,::1,internal.test")
        self.assertEqual(got["EGRESS_RUN"], "1")
        self.assertEqual(got["NODE_USE_ENV_PROXY"], "1")
        self.assertEqual(got["SSL_CERT_FILE"], got["REQUESTS_CA_BUNDLE"])
        self.assertTrue(got["SSL_CERT_FILE"].endswith(".pem"))
        self.assertIn(egress_bin(), got["GIT_SSH_COMMAND"])
        self.assertIn("connect %h %p", got["GIT_SSH_COMMAND"])
        # Only the variables egress-run set are printed.
        self.assertNotIn("\nPATH=", "\n" + r.stdout)
        self.assert_no_state_left()

    def test_print_env_needs_no_command(self):
        port, _ = self.listener()
        r = self.egress(["--print-env", "--external-addr",
                         "127.0.0.1:%d" % port])
        self.assertEqual(r.rc, 0, r)
        self.assertIn("HTTPS_PROXY='http://127.0.0.1:%d'" % port, r.stdout)


class CommandEnvironment(EgressTestCase):

    def test_command_gets_the_bouquet_and_keeps_the_rest(self):
        port, _ = self.listener()
        ca = self.ca()
        r = self.egress(["--external-addr", "127.0.0.1:%d" % port,
                         "--external-ca", ca.cert], ["env"],
                        env=clean_env({"MY_OWN_VAR": "kept value",
                                       "HTTPS_PROXY": "http://corp:3128",
                                       "JAVA_TOOL_OPTIONS": "-Xmx1g"}))
        self.assertEqual(r.rc, 0, r)
        env = parse_env_dump(r.stdout)
        self.assertEqual(env["MY_OWN_VAR"], "kept value")
        for v in PROXY_VARS:
            self.assertEqual(env[v], "http://127.0.0.1:%d" % port, v)
        self.assertEqual(r.stdout.count("\nHTTPS_PROXY="), 1)
        self.assertTrue(env["JAVA_TOOL_OPTIONS"].startswith("-Xmx1g "))
        self.assertIn("-Dhttps.proxyPort=%d" % port,
                      env["JAVA_TOOL_OPTIONS"])
        self.assertIn("-Djavax.net.ssl.trustStore=", env["JAVA_TOOL_OPTIONS"])
        self.assertEqual(env["EGRESS_RUN"], "1")
        for v in ("SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE",
                  "NODE_EXTRA_CA_CERTS", "GIT_SSL_CAINFO", "PIP_CERT"):
            self.assertEqual(env[v], env["SSL_CERT_FILE"], v)
        self.assertIn("WGETRC", env)


class StateDirectory(EgressTestCase):

    def test_state_dir_is_private_during_the_run_and_gone_after(self):
        port, _ = self.listener()
        ca = self.ca()
        script = ('d=$(dirname "$SSL_CERT_FILE"); echo "$d"; '
                  'stat -c %a "$d"; ls "$d"; '
                  'grep -c "BEGIN CERTIFICATE" "$SSL_CERT_FILE"; '
                  'grep -F -q "$(sed -n 2p "$CA")" "$SSL_CERT_FILE" && '
                  'echo has-ca')
        r = self.egress(["--external-addr", "127.0.0.1:%d" % port,
                         "--external-ca", ca.cert],
                        ["/bin/sh", "-c", script],
                        env=clean_env({"CA": ca.cert}))
        self.assertEqual(r.rc, 0, r)
        lines = r.stdout.splitlines()
        state = lines[0]
        self.assertTrue(state.startswith(self.state_tmp + "/egress-run."),
                        state)
        self.assertEqual(lines[1], "700")
        self.assertIn("ca-bundle.pem", lines)
        self.assertIn("wgetrc", lines)
        self.assertIn("truststore.p12", lines)
        # System roots plus the extra CA.
        count = int([x for x in lines if re.fullmatch(r"\d+", x)][-1])
        self.assertGreater(count, 10)
        self.assertEqual(lines[-1], "has-ca")
        self.assertFalse(os.path.exists(state))
        self.assert_no_state_left()

    def test_state_dir_is_gone_after_a_failure_too(self):
        r = self.egress(["--fail-closed", "--bind-timeout", "0.2",
                         "--external", "sleep 3 # {port}"], ["true"])
        self.assertEqual(r.rc, 125, r)
        self.assert_no_state_left()
        r = self.egress([], ["/bin/sh", "-c", "kill -KILL $$"])
        self.assertEqual(r.rc, 137, r)
        self.assert_no_state_left()

    def test_a_bad_external_ca_fails_open_or_closed(self):
        port, _ = self.listener()
        notcert = self.tmp.write("not-a-cert.pem", "hello\n")
        r = self.egress(["--external-addr", "127.0.0.1:%d" % port,
                         "--external-ca", notcert], ["env"])
        self.assertEqual(r.rc, 0, r)
        self.assertIn(notcert, r.stderr)
        self.assertNotIn("SSL_CERT_FILE=" + self.state_tmp, r.stdout)
        r = self.egress(["--fail-closed", "--external-addr",
                         "127.0.0.1:%d" % port, "--external-ca", notcert],
                        ["true"])
        self.assertEqual(r.rc, 125, r)
        self.assertIn(notcert, r.stderr)
        self.assert_no_state_left()


if __name__ == "__main__":
    import unittest
    unittest.main()
