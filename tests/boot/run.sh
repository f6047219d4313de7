#!/usr/bin/env bash
# Boot test: build the .deb, install it into a minimal Debian bookworm, boot that with
# systemd-nspawn, and let a probe unit inside check the socket, the service, the users, a
# confined exec by a member of the agent's group, a refusal for a non-member, and that stopping
# the service leaves no sandboxed process. Root only; skips with a message where it cannot run.
set -euo pipefail
cd "$(dirname "$0")/../.."
# In CI a skip would hide that the docs' `sh host`/`sh bare` examples never ran: there it fails.
skip() { if [ -n "${CI:-}" ]; then echo "boot test FAILED (CI): $*"; exit 1; fi; echo "boot test SKIPPED: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root (debootstrap, systemd-nspawn)"
command -v systemd-nspawn >/dev/null || skip "systemd-nspawn missing (apt-get install systemd-container)"
command -v debootstrap >/dev/null || skip "debootstrap missing (apt-get install debootstrap)"
command -v cargo-deb >/dev/null || skip "cargo-deb missing (cargo install --locked cargo-deb@3.8.0)"

cache=${NANOBOT_BOOT_CACHE:-/var/cache/nanobot-boot}
work=$(mktemp -d /var/tmp/nanobot-boot.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$cache"
# sudo, procps (ps): the docs' host examples are written as an operator types them.
include=systemd,systemd-sysv,dbus,passwd,adduser,sudo,procps
if [ ! -d "$cache/rootfs" ] || [ "$(cat "$cache/rootfs.include" 2>/dev/null)" != "$include" ]; then
    echo "== debootstrap bookworm into $cache/rootfs (cached for the next run)"
    rm -rf "$cache/rootfs.tmp" "$cache/rootfs"
    debootstrap --variant=minbase --include="$include" \
        bookworm "$cache/rootfs.tmp" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log"; exit 1; }
    mv "$cache/rootfs.tmp" "$cache/rootfs"
    echo "$include" >"$cache/rootfs.include"
fi

echo "== build the .deb (as operators do: scripts/package.sh)"
./scripts/package.sh
deb=$(ls -t target/debian/nanobot_*.deb | head -1)
echo "== the .deb's binaries carry no debug info (it is in the -dbgsym .ddeb): sizes"
mkdir "$work/deb"
dpkg-deb -x "$deb" "$work/deb"
ls -l "$deb" "$work/deb/usr/bin/sandboxd" "$work/deb/usr/bin/nanobot" target/debian/nanobot-dbgsym_*.ddeb
for b in sandboxd nanobot; do
    if readelf -S "$work/deb/usr/bin/$b" | grep -qE '\.debug_(info|line|str)'; then
        echo "FAIL /usr/bin/$b in the .deb still has debug sections"; exit 1
    fi
done

echo "== README's operator commands without the package, on a fresh root, in the order given"
hand="$work/hand"
cp -a "$cache/rootfs" "$hand"
mkdir -p "$hand/opt/src/target/release"
cp -a packaging "$hand/opt/src/"
cp target/release/sandboxd target/release/nanobot "$hand/opt/src/target/release/"
# The docs' `sh bare` examples (tests/src/docs.rs): the README's by-hand commands among them.
cargo run -q -p nanobot-e2e --bin doc-examples -- bare /opt/src >"$hand/opt/src/bare-examples.sh"
if out=$(systemd-nspawn -q --register=no --keep-unit -D "$hand" --chdir=/opt/src --pipe \
        --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self' \
        bash bare-examples.sh 2>&1); then
    printf '%s\n' "$out" | grep -E '^(ok|FAIL|examples)' | sed 's/^/     /'
    echo "ok   the docs' bare examples (README's by-hand commands) run as written"
else
    echo "FAIL the docs' bare examples:"; printf '%s\n' "$out" | sed 's/^/     /'; exit 1
fi
rm -rf "$hand"

root="$work/root"
cp -a "$cache/rootfs" "$root"
cp "$deb" "$root/opt/nanobot.deb"
# The host's name resolves inside (sudo looks it up).
echo "127.0.1.1 $(hostname)" >>"$root/etc/hosts"
# Where the docs' host examples find it: ./target/debian/ from root's home.
mkdir -p "$root/root/target/debian" && cp "$deb" "$root/root/target/debian/"
nspawn=(systemd-nspawn -q --register=no --keep-unit -D "$root")
echo "== install it"
"${nspawn[@]}" --pipe sh -c 'dpkg -i /opt/nanobot.deb && useradd -m -G nanobot alice && useradd -m mallory && useradd -m -G nanobot bob'
echo "== man pages and completions of both binaries are installed; the shipped config checks clean"
"${nspawn[@]}" --pipe sh -c '
    for b in nanobot sandboxd; do
        for f in /usr/share/man/man1/$b.1.gz /usr/share/man/man1/$b-doctor.1.gz \
                 /usr/share/bash-completion/completions/$b /usr/share/zsh/vendor-completions/_$b \
                 /usr/share/fish/vendor_completions.d/$b.fish; do
            [ -s "$f" ] || { echo "FAIL missing $f"; exit 1; }
        done
    done
    sandboxd check'
# The gateway's config: a Telegram channel and a model endpoint that do not answer (nothing may
# leave this test), so the service starts, connects to sandboxd and keeps polling.
cat >"$root/var/lib/nanobot-agent/.nanobot/config.json" <<'JSON'
{
  "agents": {"defaults": {"model": "m", "provider": "local",
                          "workspace": "/var/lib/nanobot/workspaces/nanobot"}},
  "providers": {"local": {"apiKey": "${NANOBOT_TEST_KEY}", "apiBase": "http://127.0.0.1:9/v1"}},
  "channels": {"telegram": {"enabled": true, "token": "${TELEGRAM_TOKEN}", "allowFrom": ["1"],
                            "apiBase": "http://127.0.0.1:9", "pollTimeout": 1}}
}
JSON
printf 'NANOBOT_TEST_KEY=k\nTELEGRAM_TOKEN=1:x\n' >"$root/etc/nanobot/agent.env"
chmod 600 "$root/etc/nanobot/agent.env" "$root/var/lib/nanobot-agent/.nanobot/config.json"
"${nspawn[@]}" --pipe chown -R nanobot:nanobot /var/lib/nanobot-agent/.nanobot
echo "== systemd-analyze verify and security (exposure must be <= 2.0)"
"${nspawn[@]}" --pipe sh -c '
    set -e
    out=$(systemd-analyze verify /lib/systemd/system/sandboxd.socket /lib/systemd/system/sandboxd.service /lib/systemd/system/nanobot.service 2>&1)
    if [ -n "$out" ]; then echo "$out"; exit 1; fi
    echo "verify: clean"
    for u in sandboxd.service nanobot.service nanobot-whatsapp-bridge.service; do
        systemd-analyze security --offline=yes --threshold=20 "/lib/systemd/system/$u" | tail -1
    done'
install -m 755 tests/boot/probe.sh "$root/usr/local/bin/nanobot-probe"
# The docs' `sh host` examples, run by the probe as written (tests/src/docs.rs).
cargo run -q -p nanobot-e2e --bin doc-examples -- host /root >"$root/usr/local/bin/nanobot-doc-examples"
chmod 755 "$root/usr/local/bin/nanobot-doc-examples"
install -m 644 tests/boot/probe.service "$root/etc/systemd/system/nanobot-probe.service"
ln -sf /etc/systemd/system/nanobot-probe.service "$root/etc/systemd/system/multi-user.target.wants/"

echo "== without --system-call-filter, nspawn blocks Landlock: sandboxd must refuse and say how to fix it"
"${nspawn[@]}" --pipe sh -c '
    mkdir -p /run/nanobot-t /var/lib/nanobot/workspaces/t
    chown nanobot-sandbox /run/nanobot-t /var/lib/nanobot/workspaces/t
    sandboxd serve --socket /run/nanobot-t/s.sock --workspace-root /var/lib/nanobot/workspaces \
        --user nanobot-sandbox --allow-uid 0 --grant root:/var/lib/nanobot/workspaces/t >/dev/null 2>&1 &
    for i in $(seq 50); do [ -S /run/nanobot-t/s.sock ] && break; sleep 0.1; done
    nanobot exec --socket /run/nanobot-t/s.sock --workspace /var/lib/nanobot/workspaces/t -- id
    echo "exit=$?"
    sandboxd doctor; echo "doctor=$?"' >"$work/filtered.txt" 2>&1 || true
for want in "exit=125" "landlock layer failed: the Landlock syscalls are blocked (EPERM)" "--system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self'" \
            "✗ Landlock: the Landlock syscalls are blocked (EPERM)" "doctor=1"; do
    if grep -qF -- "$want" "$work/filtered.txt"; then echo "ok   filtered Landlock: $want"; else
        echo "FAIL filtered Landlock: missing $want in:"; sed 's/^/     /' "$work/filtered.txt"; exit 1; fi
done

echo "== boot"
results="$work/results"
mkdir -p "$results"
# nspawn's own seccomp filter blocks the Landlock syscalls unless told otherwise.
timeout 300 "${nspawn[@]}" --boot --bind="$results:/results" \
    --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self' \
    >"$work/boot.log" 2>&1 || true

fail=0
expect() { # file, pattern, what
    if grep -qE -- "$2" "$results/$1" 2>/dev/null; then
        echo "ok   $3"
    else
        echo "FAIL $3: $1 does not match /$2/:"; sed 's/^/     /' "$results/$1" 2>/dev/null | head -20
        fail=1
    fi
}
expect finished '^done$' "the probe ran to the end"
expect socket_active '^active$' "sandboxd.socket is active"
expect socket_mode '^660 nanobot-sandbox nanobot$' "the socket is 0660, group nanobot"
expect service_active '^active$' "sandboxd.service was started by the first connection"
expect daemon_user '^nanobot-sandbox$' "sandboxd runs as nanobot-sandbox"
expect daemon_status '^CapEff:[[:space:]]+0+$' "sandboxd has no effective capabilities"
expect daemon_status '^CapBnd:[[:space:]]+0+$' "sandboxd's bounding set is empty"
expect alice_rc '^0$' "a member of group nanobot runs nanobot exec"
expect alice_out '^nanobot-sandbox$' "the command runs as nanobot-sandbox"
expect alice_out '^ok$' "the workspace is writable"
expect alice_err 'shadow: Permission denied' "/etc/shadow is not readable"
expect alice_err '/etc/x: (Read-only file system|Permission denied)' "/etc is not writable"
expect reload_out '^after-reload$' "systemctl reload keeps serving"
expect journal 'config reloaded' "the reload was applied"
expect gateway_active '^active$' "nanobot.service (the gateway) is active"
expect bridge_enabled '^disabled$' "the WhatsApp bridge unit is installed and disabled by default"
expect bridge_user '^nanobot-whatsapp$' "the WhatsApp bridge has its own user"
expect bridge_files 'src/server.js' "the WhatsApp bridge sources are installed"
expect gateway_user '^nanobot$' "the gateway runs as nanobot"
expect gateway_status '^CapEff:[[:space:]]+0+$' "the gateway has no capabilities"
expect gateway_journal 'nanobot gateway: channels telegram' "the gateway reached sandboxd and serves telegram"
expect doc_examples_rc '^0$' "the docs' host examples run as written (doc_examples)"
expect mallory_rc '^125$' "a user outside the group is refused"
expect mallory_err '([Pp]ermission denied|Access denied)' "and told why"
expect before_stop 'sleep 300' "a long command was running before the stop"
if [ -s "$results/after_stop" ]; then
    echo "FAIL processes of nanobot-sandbox survived systemctl stop:"; sed 's/^/     /' "$results/after_stop"; fail=1
else
    echo "ok   systemctl stop leaves no sandboxed process"
fi
if [ "$fail" != 0 ]; then
    echo "== docs' host examples"; cat "$results/doc_examples" 2>/dev/null || true
    echo "== probe log"; tail -40 "$results/probe.log" || true
    echo "== journal"; tail -40 "$results/journal" || true
    echo "== boot log"; tail -20 "$work/boot.log"
    exit 1
fi
echo "boot test passed"
