#!/usr/bin/env bash
# Runs every test of the project: unit tests, and integration tests that
# start the real server on free ports and talk to it over real sockets.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
