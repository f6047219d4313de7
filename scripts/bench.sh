#!/usr/bin/env bash
# Benchmarks sandboxd's Exec against a bare posix_spawn measured in the same run. Run as root (the
# daemon then drops to the nanobot-e2e user, as in the tests) or as a normal user.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --workspace --bins
cargo bench -p nanobot-e2e --bench exec
cargo bench -p nanobot-e2e --bench agent
