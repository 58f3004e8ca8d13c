#!/usr/bin/env bash
# Builds chatd and chatd-bench (release) and runs the benchmark
# (docs/benchmarks.md). Arguments go to chatd-bench, e.g.
#   ./scripts/bench.sh --quick
#   ./scripts/bench.sh --scenario send --json > bench.json
#   ./scripts/bench.sh --plot docs/bench
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p chatd -p chatd-bench
exec ./target/release/chatd-bench --chatd ./target/release/chatd "$@"
