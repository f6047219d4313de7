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
# The WhatsApp bridge's own tests (auth, timeouts, caps) with Node's test runner, from the
# locked dependencies; without node/npm they fail in CI and are skipped with a reason elsewhere.
bridge_rc=0
if command -v node >/dev/null && command -v npm >/dev/null; then
  (cd packaging/whatsapp-bridge && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && node --test test/*.test.js) || bridge_rc=$?
elif [ -n "${CI:-}" ]; then
  echo "test.sh: node and npm are required for the WhatsApp bridge tests" >&2
  bridge_rc=1
else
  echo "test.sh: skipping the WhatsApp bridge tests: node/npm not installed" >&2
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
[ "$bridge_rc" = 0 ] || echo "test.sh: the WhatsApp bridge tests failed (exit $bridge_rc)" >&2
[ "$rc" = 0 ] && rc=$bridge_rc
exit "$rc"
