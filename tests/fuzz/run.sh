#!/usr/bin/env bash
# Build every libFuzzer target (clang, -DEGRESS_FUZZ=ON) and run each for a
# bounded time on a scratch copy of its seed corpus. Fails on the first
# crash, leak or timeout; the input that did it is left in the build dir
# (crash-*): add it to tests/fuzz/corpus/<target>/ as a regression seed.
#
#   tests/fuzz/run.sh [SECONDS-PER-TARGET] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-30}
shift || true
build=${FUZZ_BUILD_DIR:-build-fuzz}

cmake -S . -B "$build" -DEGRESS_FUZZ=ON -DCMAKE_C_COMPILER=clang \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	for f in tests/fuzz/*_fuzz.c; do
		t=$(basename "$f" _fuzz.c)
		targets+=("$t")
	done
fi

src=$(pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
	bin="$src/$build/tests/fuzz/fuzz_$t"
	[ -x "$bin" ] || { echo "fuzz: no target $t" >&2; exit 1; }
	mkdir -p "$scratch/$t"
	dict=()
	[ -f "tests/fuzz/$t.dict" ] && dict=(-dict="$src/tests/fuzz/$t.dict")
	echo "fuzz: $t for ${secs}s"
	# Crash inputs land in the build dir (the working directory).
	(cd "$build" && "$bin" -max_total_time="$secs" -timeout=10 \
	    -rss_limit_mb=2048 -print_final_stats=1 "${dict[@]}" \
	    "$scratch/$t" "$src/tests/fuzz/corpus/$t" 2>&1 | tail -n 6)
done
