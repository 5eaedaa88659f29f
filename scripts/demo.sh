#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run
# egress-run around a real example that needs no network. A local origin on
# loopback plays "demo.test"; curl reaches it through egress-run's built-in
# proxy (allowed), is refused example.com (denied, never even resolved), and
# the audit log shows both.
set -euo pipefail
cd "$(dirname "$0")/.."

# EGRESS_DEMO_BIN: run that egress-run, installing and building nothing
# (tests/integration/test_demo.py runs the demo so).
bin=${EGRESS_DEMO_BIN:-}
if [ -z "$bin" ]; then
	scripts/deps.sh
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j"$(nproc)" >/dev/null
	bin=build/egress-run
fi

work=$(mktemp -d)
trap 'kill "$origin" 2>/dev/null || true; rm -rf "$work"' EXIT
echo "hello from demo.test, through egress-run" >"$work/index.html"
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work" \
    >/dev/null 2>&1 &
origin=$!
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$port/" && break
	sleep 0.1
done

echo "\$ egress-run --allow demo.test --resolve demo.test:$port:127.0.0.1 --audit audit.jsonl -- sh -c '...'"
"$bin" --allow demo.test --resolve "demo.test:$port:127.0.0.1" \
    --audit "$work/audit.jsonl" -- sh -c "
	echo '--- allowed: curl http://demo.test:$port/'
	curl -sS http://demo.test:$port/
	echo '--- denied: curl http://example.com/'
	curl -sS -i http://example.com/ | sed -n '1p;/^X-Egress-Run-Reason/p'
	echo '--- the proxy COMMAND was given:'
	env | grep -E '^(HTTPS_PROXY|NO_PROXY)='
"
echo '--- the audit log (audit.jsonl):'
cat "$work/audit.jsonl"
