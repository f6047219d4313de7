#!/usr/bin/env bash
# Builds the .deb: the release binaries, their man pages and shell completions (generated from
# the clap definitions by the binaries themselves: `man DIR`, `completions SHELL`), then
# `cargo deb`. The binaries are stripped into the package; their debug info goes to a separate
# nanobot-dbgsym_*.ddeb beside it (install it only to debug). Extra arguments go to cargo deb.
# Needs cargo-deb: cargo install --locked cargo-deb@3.8.0
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null || {
    echo "package.sh: cargo-deb is missing: cargo install --locked cargo-deb@3.8.0" >&2
    exit 1
}
command -v objcopy >/dev/null || {
    echo "package.sh: objcopy is missing (it splits off the debug symbols): apt-get install binutils" >&2
    exit 1
}
cargo build --release --workspace --bins
release=${CARGO_TARGET_DIR:-target}/release
out=$release/generated
rm -rf "$out"
mkdir -p "$out/man" "$out/bash" "$out/zsh" "$out/fish"
for bin in nanobot sandboxd; do
    "$release/$bin" man "$out/man"
    "$release/$bin" completions bash >"$out/bash/$bin"
    "$release/$bin" completions zsh >"$out/zsh/_$bin"
    "$release/$bin" completions fish >"$out/fish/$bin.fish"
done
gzip -9n "$out"/man/*.1
cargo deb -p nanobot --no-build "$@"
