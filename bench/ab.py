#!/usr/bin/env python3
"""Interleaved start-up A/B: run each command in turn, RUNS rounds, and
print the median wall time of each and its difference from the first.

    bench/ab.py [--runs N] [--warmup N] COMMAND [COMMAND ...]

Each COMMAND is one shell-like word list (split on spaces, no shell);
leading NAME=VALUE words set environment variables for it. Running the
commands in turn, not one after the other as hyperfine does, keeps a
machine whose speed drifts (a shared VM) from favouring one of them; the
median drops the outliers that a mean keeps. Output goes to /dev/null.

Example (the first command is the baseline):

    bench/ab.py --runs 200 true 'build-rel/egress-run -- true' \\
        'build-rel/egress-run --isolate -- true'
"""

import argparse
import os
import statistics
import subprocess
import time


def parse(command):
    env, words = dict(os.environ), command.split()
    while words and "=" in words[0] and not words[0].startswith("/"):
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    if not words:
        raise SystemExit(f"ab.py: no program in {command!r}")
    return words, env


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("commands", nargs="+")
    args = ap.parse_args()
    cmds = [parse(c) for c in args.commands]
    times = [[] for _ in cmds]
    with open(os.devnull, "w") as null:
        def once(words, env):
            t = time.perf_counter()
            subprocess.run(words, env=env, stdout=null, stderr=null,
                           check=False)
            return (time.perf_counter() - t) * 1000
        for words, env in cmds:
            for _ in range(args.warmup):
                once(words, env)
        for _ in range(args.runs):
            for i, (words, env) in enumerate(cmds):
                times[i].append(once(words, env))
    base = statistics.median(times[0])
    print(f"{'median':>9} {'p25':>7} {'p75':>7} {'+first':>8}  command")
    for command, t in zip(args.commands, times):
        q = statistics.quantiles(t, n=4)
        med = statistics.median(t)
        print(f"{med:7.2f}ms {q[0]:7.2f} {q[2]:7.2f} {med - base:+8.2f}  "
              f"{command}")


if __name__ == "__main__":
    main()
