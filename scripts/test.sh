#!/usr/bin/env bash
# Runs every test: unit tests, and the end-to-end tests that start the real sandboxd and nanobot.
# As root it creates the unprivileged `nanobot-e2e` user the daemon drops to; sandboxed commands
# never run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
# The off-the-shelf gRPC client test (tests/tests/grpc_clients.rs) runs Python grpcio from PyPI
# in its own venv; if it cannot be installed here, that test fails and says why.
py=target/grpcio-venv
if ! "$py/bin/python" -c 'import grpc, grpc_tools, grpc_health' 2>/dev/null; then
  { python3 -m venv "$py" &&
    "$py/bin/pip" install -q grpcio==1.85.3 grpcio-tools==1.85.1 grpcio-health-checking==1.85.1; } ||
    echo "test.sh: could not install grpcio into $py; the grpcio client test will fail" >&2
fi
# The e2e tests run the built binaries, so build them first.
cargo build --workspace --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace -- --test-threads="${TEST_THREADS:-2}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One total over every test binary, so the last line speaks for the whole run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$rc"
