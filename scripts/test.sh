#!/usr/bin/env bash
# Install what is missing (deps.sh), build with -Werror and run the whole
# test suite with CTest: unit tests, fuzz-corpus replays, integration tests.
# Exits non-zero on any failure. .ci/run calls this.
#
#   scripts/test.sh [--asan] [--no-deps] [--build-dir DIR] [-- CTEST_ARGS...]
#
#   --asan        also build everything with ASan + UBSan (EGRESS_SANITIZE=ON)
#                 in $ASAN_BUILD_DIR (default build-asan) and run the suite
#                 there; same as EGRESS_TEST_ASAN=1
#   --no-deps     skip deps.sh (nothing is installed)
#   --build-dir   the build directory (default build-test; or $BUILD_DIR)
#   CTEST_ARGS    passed to ctest, e.g. -L unit, -R external, -V
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${BUILD_DIR:-$root/build-test}
asan_dir=${ASAN_BUILD_DIR:-$root/build-asan}
asan=${EGRESS_TEST_ASAN:-0}
deps=1
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}
ctest_args=()

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
	case $1 in
	--asan) asan=1 ;;
	--no-deps) deps=0 ;;
	--build-dir) build_dir=$2; shift ;;
	--build-dir=*) build_dir=${1#*=} ;;
	-h | --help) usage; exit 0 ;;
	--) shift; ctest_args=("$@"); break ;;
	*) echo "test.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
	esac
	shift
done

if [ "$deps" = 1 ]; then
	"$root/scripts/deps.sh"
fi

# Configure, build and test one build directory; extra args go to cmake.
suite() {
	local dir=$1
	shift
	echo "== build: $dir $*"
	cmake -S "$root" -B "$dir" -DEGRESS_WERROR=ON "$@"
	cmake --build "$dir" -j"$jobs"
	echo "== test: $dir"
	# Tests choose their own ports and temp dirs: two at a time is safe.
	ctest --test-dir "$dir" --output-on-failure -j2 "${ctest_args[@]}"
}

suite "$build_dir"

if [ "$asan" = 1 ]; then
	# The sanitizer build: every module, unit and integration test under
	# ASan + UBSan. Leaks fail the run; UBSan stops at the first error.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	suite "$asan_dir" -DEGRESS_SANITIZE=ON
fi
echo "== all tests passed"
