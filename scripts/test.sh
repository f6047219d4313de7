#!/usr/bin/env bash
# Runs every test: unit tests, and the end-to-end tests that start the real sandboxd and nanobot.
# As root it creates the unprivileged `nanobot-e2e` user the daemon drops to; sandboxed commands
# never run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# The e2e tests run the built binaries, so build them first.
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads="${TEST_THREADS:-2}"
