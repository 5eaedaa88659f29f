"""Signals and the terminal (SPEC §3): signals sent to egress-run reach
COMMAND, keys typed at a real terminal (tmux) reach it exactly once and do
not kill egress-run, and a full-screen program works under egress-run.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PY, EgressTestCase, clean_env, egress_bin,  # noqa: E402
                     listener_command, wait_for)

# COMMAND: records each signal it gets in a file, says when it is ready,
# and exits with a chosen code shortly after the ROUNDS-th signal (the pause
# lets a duplicate signal arrive and be counted). Then it checks that the
# proxy in HTTP_PROXY still accepts.
TRAPPER = r"""
import os, signal, socket, sys, time
log, ready, code = sys.argv[1], sys.argv[2], int(sys.argv[3])
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 1
got = []
def on(sig, frame):
    got.append(signal.Signals(sig).name)
    with open(log, "a") as f:
        f.write(signal.Signals(sig).name + "\n")
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, on)
open(ready, "w").close()
deadline = time.monotonic() + 30
while len(got) < rounds and time.monotonic() < deadline:
    time.sleep(0.02)
time.sleep(0.5)
proxy = os.environ.get("HTTP_PROXY", "")
if proxy:
    host, port = proxy.rsplit("/", 1)[1].rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        state = "proxy-alive"
    except OSError:
        state = "proxy-dead"
    with open(log, "a") as f:
        f.write(state + "\n")
sys.exit(code)
"""

# A full-screen (curses) program: draws its size, echoes a key, quits on q.
TUI = r"""
import curses, sys
def main(w):
    curses.curs_set(0)
    h, wd = w.getmaxyx()
    w.addstr(3, 5, "TUI-READY rows=%d cols=%d" % (h, wd))
    w.refresh()
    while True:
        k = w.getkey()
        if k == "q":
            return
        w.addstr(5, 5, "GOT-KEY:%s " % k)
        w.refresh()
curses.wrapper(main)
print("tui-exited-cleanly")
"""


class ForwardedSignals(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.trapper = self.tmp.write("trapper.py", TRAPPER)

    def run_trapped(self, sig, code):
        log, ready = self.tmp.join("sig-%d.log" % sig), \
            self.tmp.join("ready-%d" % sig)
        p = self.start_egress([], [PY, self.trapper, log, ready, str(code)])
        wait_for(lambda: os.path.exists(ready), 15, "COMMAND to start")
        os.kill(p.pid, sig)        # to egress-run, not to COMMAND
        rc = p.wait(15)
        with open(log) as f:
            return rc, f.read(), p

    def test_term_hup_int_sent_to_egress_run_reach_command_once(self):
        for sig, code in ((signal.SIGTERM, 21), (signal.SIGHUP, 22),
                          (signal.SIGINT, 23), (signal.SIGQUIT, 24)):
            with self.subTest(signal=sig.name):
                rc, got, p = self.run_trapped(sig, code)
                # egress-run survived the signal and exits as COMMAND did.
                self.assertEqual(rc, code, p.log_text())
                self.assertEqual(got.splitlines()[0], sig.name)
                self.assertEqual(got.count(sig.name), 1, got)
        self.assert_no_state_left()

    def test_a_command_killed_by_the_forwarded_signal_gives_128_plus_n(self):
        for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            with self.subTest(signal=sig.name):
                ready = self.tmp.join("ready-plain-%d" % sig)
                p = self.start_egress([], ["/bin/sh", "-c",
                                           "touch %s; exec sleep 30" % ready])
                wait_for(lambda: os.path.exists(ready), 15,
                         "COMMAND to start")
                t0 = time.monotonic()
                os.kill(p.pid, sig)
                self.assertEqual(p.wait(15), 128 + sig)
                self.assertLess(time.monotonic() - t0, 5)

    def test_a_signal_during_the_bind_wait_stops_the_run(self):
        marker = self.marker("bindwait")
        ran = self.tmp.join("ran")
        up = self.tmp.join("proxy-up")
        # (egress-run's own command line holds the marker too: readiness
        # is the file the proxy writes, not the marker.)
        p = self.start_egress(["--bind-timeout", "30", "--external",
                               "touch %s; exec %s -c 'import time; "
                               "time.sleep(60)' %s # {port}"
                               % (up, PY, marker)],
                              ["touch", ran])
        wait_for(lambda: os.path.exists(up), 15, "the proxy to start")
        t0 = time.monotonic()
        os.kill(p.pid, signal.SIGTERM)
        rc = p.wait(15)
        self.assertEqual(rc, 128 + signal.SIGTERM, p.log_text())
        self.assertLess(time.monotonic() - t0, 5)
        self.assertFalse(os.path.exists(ran), "COMMAND ran")
        self.assert_gone(marker)
        self.assert_no_state_left()


def _count(path, word):
    try:
        with open(path) as f:
            return f.read().split().count(word)
    except FileNotFoundError:
        return 0


class Terminal(EgressTestCase):

    def setUp(self):
        super().setUp()
        self.trapper = self.tmp.write("trapper.py", TRAPPER)

    def test_keys_typed_at_the_terminal_reach_command_exactly_once(self):
        # A duplicate (the terminal's signal plus a forwarded copy) can
        # merge with the original when both arrive before COMMAND runs, so
        # one key press may not show it: three presses nearly always do.
        rounds = 3
        for key, name, code in (("C-c", "SIGINT", 7), ("C-\\", "SIGQUIT", 8)):
            with self.subTest(key=key):
                log = self.tmp.join("tty-%s.log" % name)
                ready = self.tmp.join("tty-%s.ready" % name)
                marker = self.marker("tty")
                t = self.tmux()
                t.new_session([egress_bin(), "--external",
                               listener_command(marker), "--",
                               PY, self.trapper, log, ready, str(code),
                               str(rounds)],
                              env=dict(TMPDIR=self.state_tmp))
                wait_for(lambda: os.path.exists(ready), 15,
                         "COMMAND to start")
                for n in range(1, rounds + 1):
                    t.send_keys(key)
                    wait_for(lambda: _count(log, name) >= n, 10,
                             "signal %d to arrive" % n)
                    time.sleep(0.3)
                # egress-run did not die of it: it exits with COMMAND's code.
                self.assertEqual(t.wait_dead(15), code, t.capture())
                with open(log) as f:
                    lines = f.read().splitlines()
                # One signal per key, not two (the terminal's and a
                # forwarded one).
                self.assertEqual(lines.count(name), rounds, lines)
                # The external proxy has its own process group: the keys
                # did not reach it.
                self.assertIn("proxy-alive", lines)
                t.stop()
                self.assert_gone(marker)
        self.assert_no_state_left()

    def test_a_full_screen_program_works_under_egress_run(self):
        tui = self.tmp.write("tui.py", TUI)
        t = self.tmux(width=90, height=27)
        t.new_session([egress_bin(), "--", PY, tui],
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
        # curses restored the normal screen on exit.
        self.assertNotIn("TUI-READY", screen)
        self.assert_no_state_left()


if __name__ == "__main__":
    import unittest
    unittest.main()
