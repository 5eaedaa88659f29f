#!/usr/bin/env bash
# Run every test, as CI does (.ci/run calls this). Installs what is missing
# (deps.sh), then, failing at the end if any part failed:
#
#   normal    build with -Werror, run the whole CTest suite (unit tests,
#             fuzz-corpus replays, integration tests)
#   asan      build everything with clang, ASan + UBSan (EGRESS_SANITIZE=ON)
#             and run the whole suite again; any sanitizer report from any
#             process fails the run (see "Sanitizer reports" below)
#   fuzz      build every libFuzzer target (tests/fuzz/run.sh) and run each
#             for FUZZ_SECONDS (default 10); a crash, leak or timeout fails
#   valgrind  run VALGRIND_TESTS (integration test files) with egress-run
#             under valgrind memcheck; any error or definite/indirect leak
#             in egress-run fails
#
#   scripts/test.sh [options] [-- CTEST_ARGS...]
#
#   --quick            the normal suite only (= --no-asan --no-fuzz
#                      --no-valgrind)
#   --no-asan, --no-fuzz, --no-valgrind
#                      skip that part
#   --only PART        run only PART (normal, asan, fuzz, valgrind);
#                      repeatable. The normal build is still built when
#                      valgrind needs its binary.
#   --asan             accepted for compatibility (asan runs by default)
#   --no-deps          skip deps.sh (nothing is installed)
#   --build-dir DIR    the normal build (default build-test; $BUILD_DIR)
#   --fuzz-seconds N   seconds per fuzz target (default 10; $FUZZ_SECONDS)
#   CTEST_ARGS         passed to ctest in the normal and asan parts,
#                      e.g. -L unit, -R bypass, -V
#
# Environment: ASAN_BUILD_DIR (default build-asan), FUZZ_BUILD_DIR
# (default build-fuzz), VALGRIND_TESTS (tests/integration/test_NAME.py
# names; default "bypass builtin_http builtin_malformed socks5 mitm_tls
# builtin_audit": every door, interception, errors; tests that look at
# egress-run's own argv or run it as another user cannot pass under
# valgrind, whose launcher keeps the argv), JOBS (build
# parallelism, default nproc), REPORT_DIR (where sanitizer and valgrind
# logs and fuzz crashes are kept, default build-reports).
#
# Sanitizer reports: ASAN_OPTIONS and UBSAN_OPTIONS are exported with
# log_path into a fresh directory and a distinctive exitcode, so every
# instrumented process -- unit tests, and every egress-run that any
# integration test starts, however it captures or ignores its stderr --
# writes its report to a file there. After CTest, any file there fails the
# run and is printed. (A report cannot hide in a log nobody reads, and a
# leak found at exit fails even when the test killed egress-run with
# SIGTERM and never looked at its status.)
#
# Valgrind: the harness runs $EGRESS_RUN_BIN, which CTest sets per test;
# this script runs the chosen test files directly with EGRESS_RUN_BIN
# naming a wrapper that execs valgrind on the normal build's egress-run
# (-q, --log-file per process, children not traced). Any error or leak in
# a log fails; valgrind's own warnings are shown.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build-test}
asan_dir=${ASAN_BUILD_DIR:-$root/build-asan}
fuzz_dir=${FUZZ_BUILD_DIR:-$root/build-fuzz}
report_dir=${REPORT_DIR:-$root/build-reports}
fuzz_seconds=${FUZZ_SECONDS:-10}
valgrind_tests=${VALGRIND_TESTS:-bypass builtin_http builtin_malformed \
    socks5 mitm_tls builtin_audit}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
deps=1
declare -A want=([normal]=1 [asan]=1 [fuzz]=1 [valgrind]=1)
only=()
ctest_args=()

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--quick) want=([normal]=1 [asan]=0 [fuzz]=0 [valgrind]=0) ;;
	--no-asan) want[asan]=0 ;;
	--no-fuzz) want[fuzz]=0 ;;
	--no-valgrind) want[valgrind]=0 ;;
	--only) only+=("$2"); shift ;;
	--only=*) only+=("${1#*=}") ;;
	--asan) ;;
	--no-deps) deps=0 ;;
	--build-dir) build_dir=$2; shift ;;
	--build-dir=*) build_dir=${1#*=} ;;
	--fuzz-seconds) fuzz_seconds=$2; shift ;;
	--fuzz-seconds=*) fuzz_seconds=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	--) shift; ctest_args=("$@"); break ;;
	*) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done
if [ ${#only[@]} -gt 0 ]; then
	want=([normal]=0 [asan]=0 [fuzz]=0 [valgrind]=0)
	for p in "${only[@]}"; do
		case $p in
		normal | asan | fuzz | valgrind) want[$p]=1 ;;
		*) echo "test.sh: --only: no part '$p'" >&2; exit 2 ;;
		esac
	done
fi
case $fuzz_seconds in
'' | *[!0-9]*) echo "test.sh: --fuzz-seconds: not a number" >&2; exit 2 ;;
esac
# Directories given relative to where we were started.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
build_dir=$(abs "$build_dir")
asan_dir=$(abs "$asan_dir")
fuzz_dir=$(abs "$fuzz_dir")
report_dir=$(abs "$report_dir")

if [ "$deps" = 1 ]; then
	"$root/scripts/deps.sh"
fi

# Each part records its outcome and time; the summary comes at the end.
failed=()
summary=()
t_all=$SECONDS

part() {
	local name=$1 t0=$SECONDS rc=0
	shift
	echo
	echo "=== $name"
	"$@" || rc=$?
	local t=$((SECONDS - t0))
	if [ "$rc" = 0 ]; then
		summary+=("$(printf '%-9s passed  %4d s' "$name" "$t")")
	else
		summary+=("$(printf '%-9s FAILED  %4d s' "$name" "$t")")
		failed+=("$name")
	fi
}

build() {
	local dir=$1
	shift
	echo "== build: $dir $*"
	# (Called where set -e does not apply: every step is checked.)
	cmake -S "$root" -B "$dir" -DEGRESS_WERROR=ON "$@" >/dev/null &&
		cmake --build "$dir" -j"$jobs"
}

run_ctest() {
	# Tests choose their own ports and temp dirs: two at a time is safe.
	ctest --test-dir "$1" --output-on-failure -j2 \
	    ${ctest_args[@]+"${ctest_args[@]}"}
}

normal() {
	build "$build_dir" && run_ctest "$build_dir"
}

# Print every sanitizer report left in $1; false if there is one.
check_reports() {
	local dir=$1 f n=0
	for f in "$dir"/*; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		echo "---- sanitizer report: $f"
		head -n 200 "$f"
	done
	if [ "$n" -gt 0 ]; then
		echo "== $n sanitizer report(s) in $dir" >&2
		return 1
	fi
	echo "== no sanitizer reports"
}

asan() {
	local san=$report_dir/sanitizer rc=0
	rm -rf "$san"
	mkdir -p "$san"
	# clang: its sanitizer runtimes are the ones deps.sh installs, and
	# the fuzz build uses the same compiler.
	# A directory configured with another compiler (older scripts used
	# gcc) is configured afresh rather than half-converted.
	if [ -f "$asan_dir/CMakeCache.txt" ] &&
	    ! grep -q '^CMAKE_C_COMPILER:[A-Z]*=.*clang' \
	    "$asan_dir/CMakeCache.txt"; then
		rm -rf "$asan_dir/CMakeCache.txt" "$asan_dir/CMakeFiles"
	fi
	build "$asan_dir" -DEGRESS_SANITIZE=ON -DCMAKE_C_COMPILER=clang ||
		return 1
	# log_path: every instrumented process writes its report to a file
	# here (named after its pid), whatever the test does with stderr.
	# exitcode: a distinctive status besides. Leaks fail; UBSan stops at
	# the first error (the build has -fno-sanitize-recover).
	# Options already in the environment come last, and win.
	local a=detect_leaks=1:abort_on_error=0:exitcode=86:log_path=$san/asan
	local u=print_stacktrace=1:halt_on_error=1:exitcode=86
	u=$u:log_path=$san/ubsan
	(
		export ASAN_OPTIONS="$a${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
		export UBSAN_OPTIONS="$u${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
		export LSAN_OPTIONS="exitcode=86${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
		run_ctest "$asan_dir"
	) || rc=1
	check_reports "$san" || rc=1
	return $rc
}

fuzz() {
	local crashes=$report_dir/fuzz rc=0 rel
	mkdir -p "$crashes"
	# run.sh works from the source root and wants the build dir relative
	# to it.
	case $fuzz_dir in
	"$root"/*) rel=${fuzz_dir#"$root"/} ;;
	*) echo "test.sh: FUZZ_BUILD_DIR must be inside $root" >&2
	    return 1 ;;
	esac
	FUZZ_BUILD_DIR=$rel "$root/tests/fuzz/run.sh" "$fuzz_seconds" || rc=1
	# run.sh leaves crash-*, leak-*, timeout-* inputs in the build dir.
	local f
	for f in "$fuzz_dir"/crash-* "$fuzz_dir"/leak-* "$fuzz_dir"/timeout-* \
	    "$fuzz_dir"/oom-*; do
		[ -e "$f" ] || continue
		echo "== fuzz: input kept: $crashes/$(basename "$f")" >&2
		mv "$f" "$crashes/"
		rc=1
	done
	return $rc
}

valgrind_part() {
	local vg=$report_dir/valgrind wrapper t rc=0 n=0 f
	if ! command -v valgrind >/dev/null; then
		echo "test.sh: valgrind is not installed" >&2
		return 1
	fi
	# The binary the normal part tested (built here for --only valgrind).
	[ -x "$build_dir/egress-run" ] || build "$build_dir" || return 1
	rm -rf "$vg"
	mkdir -p "$vg"
	wrapper=$vg/egress-run
	# The harness runs $EGRESS_RUN_BIN: this wrapper. Memcheck errors and
	# definite or indirect leaks are errors; egress-run's children (the
	# COMMAND, forks before exec) run untraced and silent.
	cat >"$wrapper" <<-EOF
		#!/bin/sh
		exec valgrind -q --tool=memcheck --leak-check=full \\
		    --show-leak-kinds=definite,indirect \\
		    --errors-for-leak-kinds=definite,indirect \\
		    --error-exitcode=87 --child-silent-after-fork=yes \\
		    --trace-children=no --log-file="$vg/vg.%p.log" \\
		    "$build_dir/egress-run" "\$@"
	EOF
	chmod +x "$wrapper"
	for t in $valgrind_tests; do
		echo "== valgrind: test_$t.py"
		(cd "$root" && EGRESS_RUN_BIN=$wrapper \
		    PYTHONPATH=$root/tests/integration PYTHONDONTWRITEBYTECODE=1 \
		    timeout 1200 /usr/bin/python3 -m unittest \
		    "tests/integration/test_$t.py" 2>&1 | tail -n 25) || rc=1
	done
	# Errors and leaks are "==PID==" lines; "--PID--" lines are
	# valgrind's own warnings (valgrind 3.19 does not know pidfd_open,
	# which egress-run then does without): shown, not failed.
	for f in "$vg"/vg.*.log; do
		[ -s "$f" ] || continue
		if grep -q '^==[0-9]*==' "$f"; then
			n=$((n + 1))
			echo "---- valgrind report: $f"
			head -n 200 "$f"
		else
			echo "---- valgrind warning: $f: $(head -n 1 "$f")"
		fi
	done
	if [ "$n" -gt 0 ]; then
		echo "== valgrind: $n report(s) in $vg" >&2
		rc=1
	else
		echo "== valgrind: no reports"
	fi
	return $rc
}

[ "${want[normal]}" = 1 ] && part normal normal
[ "${want[asan]}" = 1 ] && part asan asan
[ "${want[fuzz]}" = 1 ] && part fuzz fuzz
[ "${want[valgrind]}" = 1 ] && part valgrind valgrind_part

echo
echo "=== summary ($((SECONDS - t_all)) s)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "== FAILED: ${failed[*]}" >&2
	exit 1
fi
echo "== all tests passed"
