"""The README's first command, scripts/demo.sh, run with the egress-run
under test (EGRESS_DEMO_BIN: nothing installed or built): the allowed
request reaches the local origin, example.com is refused with a reason
without leaving the machine, COMMAND was given the proxy, and the audit log
it prints holds one allow and one deny event."""

import json
import os
import subprocess
import unittest

import harness as h

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class Demo(h.EgressTestCase):

    def test_the_readme_demo_shows_allowed_denied_and_the_audit(self):
        env = dict(h.clean_env(), EGRESS_DEMO_BIN=h.egress_bin(),
                   TMPDIR=self.state_tmp)
        r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "demo.sh")],
                           capture_output=True, text=True, timeout=60,
                           env=env, start_new_session=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        out = r.stdout
        self.assertIn("hello from demo.test, through egress-run", out)
        self.assertIn("HTTP/1.1 403", out)
        self.assertIn("X-Egress-Run-Reason: example.com:80 is not in the "
                      "allow list", out)
        self.assertRegex(out, r"(?m)^HTTPS_PROXY=http://127\.0\.0\.1:\d+$")
        audit = out.split("--- the audit log (audit.jsonl):\n", 1)[1]
        events = [json.loads(ln) for ln in audit.splitlines() if ln]
        self.assertEqual(sorted((e["host"], e["decision"]) for e in events),
                         [("demo.test", "allow"), ("example.com", "deny")])
        self.assert_no_state_left()


if __name__ == "__main__":
    unittest.main()
