"""Signals, exit statuses and the terminal under --isolate (issue 10):
they behave exactly as without it (SPEC §2 exit statuses, §3). The
foundation's launcher tests (test_signals.py, whose COMMAND programs are
reused here) repeated with COMMAND in its own user + network namespace;
the trapper also checks, after the signals, that the proxy the bouquet
names still accepts from inside.
"""

import os
import signal
import time
import unittest

import harness as h
import isolate_fixtures as iso
import test_signals as ts

ISO = ["--isolate", "--fail-closed"]


def _state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


class ExitStatus(iso.IsolateCase):

    def test_exit_statuses_pass_through(self):
        notexec = self.tmp.write("notexec.sh", "#!/bin/sh\nexit 0\n",
                                 mode=0o644)
        for cmd, want in (
                (["true"], 0),
                (["sh", "-c", "exit 3"], 3),
                (["sh", "-c", "exit 42"], 42),
                (["sh", "-c", "exit 255"], 255),
                (["sh", "-c", "kill -TERM $$"], 128 + signal.SIGTERM),
                (["sh", "-c", "kill -KILL $$"], 128 + signal.SIGKILL),
                (["sh", "-c", "kill -SEGV $$"], 128 + signal.SIGSEGV),
                (["egress-it-no-such-command"], 127),
                ([notexec], 126)):
            with self.subTest(cmd=cmd):
                r = self.egress(ISO, cmd)
                self.assertEqual(r.rc, want, r)
                self.assertNotIn("cannot isolate", r.stderr)
        self.assert_no_state_left()

    def test_stdin_and_stdout_are_commands_own(self):
        r = self.egress(ISO, ["sh", "-c", "tr a-z A-Z; echo done"],
                        input="through the namespace\n")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.stdout, "THROUGH THE NAMESPACE\ndone\n")


class ForwardedSignals(iso.IsolateCase):

    def setUp(self):
        super().setUp()
        self.trapper = self.tmp.write("trapper.py", ts.TRAPPER)

    def test_term_hup_int_sent_to_egress_run_reach_command_once(self):
        for sig, code in ((signal.SIGTERM, 21), (signal.SIGHUP, 22),
                          (signal.SIGINT, 23), (signal.SIGQUIT, 24)):
            with self.subTest(signal=sig.name):
                log = self.tmp.join("sig-%d.log" % sig)
                ready = self.tmp.join("ready-%d" % sig)
                p = self.start_egress(ISO, [h.PY, self.trapper, log, ready,
                                            str(code)])
                h.wait_for(lambda: os.path.exists(ready) or not p.alive(),
                           15, "COMMAND to start")
                os.kill(p.pid, sig)        # to egress-run, not to COMMAND
                self.assertEqual(p.wait(15), code, p.log_text())
                with open(log) as f:
                    got = f.read().splitlines()
                self.assertEqual(got[0], sig.name)
                self.assertEqual(got.count(sig.name), 1, got)
                # The proxy still serves the namespace's loopback.
                self.assertEqual(got[-1], "proxy-alive", got)
        self.assert_no_state_left()

    def test_a_command_killed_by_the_forwarded_signal_gives_128_plus_n(self):
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            with self.subTest(signal=sig.name):
                ready = self.tmp.join("ready-plain-%d" % sig)
                marker = self.marker("killed")
                p = self.start_egress(ISO, [
                    "/bin/sh", "-c", "touch %s; exec sleep 30 # %s"
                    % (ready, marker)])
                h.wait_for(lambda: os.path.exists(ready) or not p.alive(),
                           15, "COMMAND to start")
                t0 = time.monotonic()
                os.kill(p.pid, sig)
                self.assertEqual(p.wait(15), 128 + sig, p.log_text())
                self.assertLess(time.monotonic() - t0, 5)
                self.assert_gone(marker)
        self.assert_no_state_left()


class Terminal(iso.IsolateCase):

    def setUp(self):
        super().setUp()
        self.trapper = self.tmp.write("trapper.py", ts.TRAPPER)

    def test_keys_typed_at_the_terminal_reach_command_exactly_once(self):
        # Three presses: a duplicate (the terminal's signal plus a
        # forwarded copy) may merge with the first one, not with all.
        rounds = 3
        for key, name, code in (("C-c", "SIGINT", 7), ("C-\\", "SIGQUIT", 8)):
            with self.subTest(key=key):
                log = self.tmp.join("tty-%s.log" % name)
                ready = self.tmp.join("tty-%s.ready" % name)
                marker = self.marker("tty")     # killed at cleanup
                t = self.tmux()
                t.new_session([h.egress_bin()] + ISO + [
                    "--", h.PY, self.trapper, log, ready, str(code),
                    str(rounds), marker], env=dict(TMPDIR=self.state_tmp))
                h.wait_for(lambda: os.path.exists(ready), 15,
                           "COMMAND to start")
                for n in range(1, rounds + 1):
                    t.send_keys(key)
                    h.wait_for(lambda: ts._count(log, name) >= n, 10,
                               "signal %d to arrive" % n)
                    time.sleep(0.3)
                # egress-run did not die of it: it exits with COMMAND's.
                self.assertEqual(t.wait_dead(15), code, t.capture())
                with open(log) as f:
                    lines = f.read().splitlines()
                self.assertEqual(lines.count(name), rounds, lines)
                # The proxy (egress-run itself) lived through the keys.
                self.assertIn("proxy-alive", lines)
                t.stop()
                self.assert_gone(marker)
        self.assert_no_state_left()

    def test_a_full_screen_program_works_isolated(self):
        tui = self.tmp.write("tui.py", ts.TUI)
        t = self.tmux(width=90, height=27)
        t.new_session([h.egress_bin()] + ISO + ["--", h.PY, tui,
                                                self.marker("tui")],
                      env=dict(TMPDIR=self.state_tmp))
        # It owns the terminal: it sees its real size and draws.
        t.wait_text("TUI-READY rows=27 cols=90", 15)
        t.send_keys("x")
        t.wait_text("GOT-KEY:x", 10)
        t.send_keys("z")
        t.wait_text("GOT-KEY:z", 10)
        t.send_keys("q")
        self.assertEqual(t.wait_dead(10), 0, t.capture())
        screen = t.capture()
        self.assertIn("tui-exited-cleanly", screen)
        self.assertNotIn("TUI-READY", screen)
        self.assert_no_state_left()

    def test_job_control_stop_and_resume_from_a_shell(self):
        # An interactive bash runs egress-run --isolate as a job: Ctrl-Z
        # stops it (COMMAND too), fg resumes it, Ctrl-C ends it: 130.
        ticks = self.tmp.join("ticks")
        marker = self.marker("job")
        ticker = self.tmp.write("ticker.py", (
            "import sys, time\n"
            "for i in range(600):\n"
            "    open(sys.argv[1], 'a').write('%d\\n' % i)\n"
            "    time.sleep(0.05)\n"))
        t = self.tmux()
        t.new_session(["bash", "--norc", "--noprofile", "-i"],
                      env=dict(TMPDIR=self.state_tmp, PS1="sh-prompt> "))
        t.wait_text("sh-prompt>", 10)
        t.send_keys(" ".join([h.egress_bin(), "-q"] + ISO + [
            "--", h.PY, ticker, ticks, marker]), "Enter")

        def count():
            try:
                with open(ticks) as f:
                    return len(f.read().splitlines())
            except FileNotFoundError:
                return 0
        h.wait_for(lambda: count() >= 3, 15, "COMMAND to tick")
        t.send_keys("C-z")
        t.wait_text("Stopped", 10)
        n = count()
        time.sleep(0.5)
        self.assertLessEqual(count() - n, 1, "COMMAND kept running")
        # egress-run and COMMAND (both carry the marker) are stopped.
        states = [_state(pid) for pid, _ in h.processes_with(marker)]
        self.assertEqual(sorted(states), ["T", "T"], states)
        t.send_keys("fg", "Enter")
        h.wait_for(lambda: count() >= n + 5, 10, "COMMAND to resume")
        t.send_keys("C-c")
        t.send_keys("echo rc=$?", "Enter")
        t.wait_text("rc=130", 10)
        t.send_keys("exit", "Enter")
        self.assertEqual(t.wait_dead(10), 0, t.capture())
        self.assert_gone(marker)
        self.assert_no_state_left()

    def test_command_is_the_terminals_foreground_group(self):
        out = self.tmp.join("pgrp")
        t = self.tmux()
        t.new_session([h.egress_bin()] + ISO + [
            "--", h.PY, "-c",
            "import os; fd = os.open('/dev/tty', os.O_RDWR); "
            "open(%r, 'w').write('%%d %%d' %% (os.tcgetpgrp(fd), "
            "os.getpgrp()))" % out, self.marker("fg")],
            env=dict(TMPDIR=self.state_tmp))
        self.assertEqual(t.wait_dead(15), 0, t.capture())
        with open(out) as f:
            fg, own = f.read().split()
        self.assertEqual(fg, own)


if __name__ == "__main__":
    unittest.main()
