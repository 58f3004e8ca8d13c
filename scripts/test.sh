#!/usr/bin/env bash
# Runs every test of the project:
#  1. the Rust tests: unit tests, and integration tests that start the real
#     server on free ports and talk to it over real sockets (the server's
#     suites twice: on the default journal engine, then on sqlite);
#  2. the web page's end-to-end tests in headless Chromium (scripts/web-test.sh
#     installs Chromium and playwright-core when they are missing);
#  3. the official client SDKs (easemob-websdk, agora-chat) against a real
#     chatd over msync (scripts/sdk-test.sh installs them from npm).
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --all-targets "$@"
# The server's own suites again on the other embedded engine (storage_engine
# = "sqlite"; the storage crate's tests already cover both engines).
CHATD_TEST_STORAGE_ENGINE=sqlite cargo test -p chatd --test api --test delivery --test files "$@"
./scripts/web-test.sh
./scripts/sdk-test.sh
