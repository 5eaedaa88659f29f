"""make-install-style installation (cmake --install) into a scratch prefix:
the binary and the man page land where they belong, the installed binary
runs, and man reads the page."""

import os
import subprocess
import unittest

import harness as h


class Install(h.EgressTestCase):

    def test_cmake_install_puts_the_binary_and_the_man_page(self):
        build = os.path.dirname(os.path.abspath(h.egress_bin()))
        if not os.path.exists(os.path.join(build, "cmake_install.cmake")):
            self.skipTest("EGRESS_RUN_BIN is not in a CMake build directory")
        prefix = self.tmp.join("prefix")
        r = subprocess.run(["cmake", "--install", build, "--prefix", prefix],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        exe = os.path.join(prefix, "bin", "egress-run")
        page = os.path.join(prefix, "share", "man", "man1", "egress-run.1")
        self.assertTrue(os.access(exe, os.X_OK), os.listdir(prefix))
        r = subprocess.run([exe, "--version"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"^egress-run \d+\.\d+\.\d+")
        r = subprocess.run(["man", "-l", page], capture_output=True,
                           text=True, timeout=30,
                           env=dict(os.environ, MANPAGER="cat", PAGER="cat",
                                    MANWIDTH="80"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("egress-run serve", r.stdout)
        self.assertIn("--isolate", r.stdout)


if __name__ == "__main__":
    unittest.main()
