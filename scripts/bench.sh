#!/usr/bin/env bash
# Benchmarks sandboxd's Exec and the nanobot CLI against a bare posix_spawn (and bwrap, when it can
# be installed) measured in the same run, then prints issue 17's targets with PASS or FAIL. Run as
# root (the daemon then drops to the nanobot-e2e user, as in the tests; the CLI runs as that user)
# or as a normal user. The exit code is 0 when the benchmarks ran, whatever the verdicts: the
# verdicts are figures to read, not a gate.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v bwrap >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "bench: installing bubblewrap for the bwrap comparison row"
        apt-get install -y -qq bubblewrap >/dev/null || echo "bench: could not install bubblewrap; its row is skipped"
    else
        echo "bench: bwrap is not installed (apt-get install bubblewrap as root); its row is skipped"
    fi
fi
cargo build --release --workspace --bins
out=$(mktemp)
trap 'rm -f "$out"' EXIT
cargo bench -p nanobot-e2e --bench exec | tee "$out"
cargo bench -p nanobot-e2e --bench agent | tee -a "$out"
echo
echo "targets (issue 17), measured in this run on $(nproc) CPUs, $(uname -r):"
grep '^TARGET ' "$out" | sed 's/^TARGET /  /'
