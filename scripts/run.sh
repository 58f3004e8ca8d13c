#!/usr/bin/env bash
# Builds chatd (release) and starts it on its embedded default storage.
# Extra arguments go to `chatd serve`; configuration: docs/configuration.md.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p chatd
exec ./target/release/chatd serve "$@"
