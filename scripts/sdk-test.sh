#!/usr/bin/env bash
# The official client SDKs (easemob-websdk 4.21.1, agora-chat 1.4.0, from npm)
# against a real chatd, in Node: installs tests/sdk's pinned packages, builds
# the debug binary, runs the node:test suites (each starts its own chatd on a
# free port with a fresh data directory). Exits non-zero on any failure.
#
#   scripts/sdk-test.sh                      # every suite
#   scripts/sdk-test.sh test/login.test.js   # some suites (paths in tests/sdk)
#
# SDK_TEST_DEBUG=1 shows the SDK's own log; CHATD_TEST_LOG=debug the server's.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v node >/dev/null 2>&1; then
  echo "sdk-test: Node.js 20.14 or later is required" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 14) ? 0 : 1)'; then
  echo "sdk-test: Node.js 20.14 or later is required (found $(node --version))" >&2
  exit 1
fi

(cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
cargo build -p chatd
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export CHATD_BIN="$target_dir/debug/chatd"

cd tests/sdk
if [ "$#" -eq 0 ]; then
  set -- test/
fi
node --test --test-force-exit --test-concurrency=2 "$@"
