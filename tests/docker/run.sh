#!/usr/bin/env bash
# Container test: build the image from packaging/docker/Dockerfile on a Debian bookworm base made
# from the boot test's debootstrap cache (no registry needed), run it, and check that sandboxd
# and the gateway run as their two non-root users and that a command runs confined.
# Root only; skips with a message where Docker is not available.
set -euo pipefail
cd "$(dirname "$0")/../.."
# In CI a skip would hide that the docs' `sh container` examples never ran: there it fails.
skip() { if [ -n "${CI:-}" ]; then echo "docker test FAILED (CI): $*"; exit 1; fi; echo "docker test SKIPPED: $*"; exit 0; }
[ "$(id -u)" = 0 ] || skip "needs root"
command -v docker >/dev/null || skip "docker missing (apt-get install docker.io)"
if ! docker info >/dev/null 2>&1; then
    command -v dockerd >/dev/null || skip "no docker daemon"
    (dockerd >/var/log/nanobot-dockerd.log 2>&1 &)
    for i in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
    docker info >/dev/null 2>&1 || skip "dockerd did not start: $(tail -3 /var/log/nanobot-dockerd.log)"
fi
cache=${NANOBOT_BOOT_CACHE:-/var/cache/nanobot-boot}
[ -d "$cache/rootfs" ] || skip "no Debian root in $cache (tests/boot/run.sh makes it)"
if ! docker image inspect nanobot-base:bookworm >/dev/null 2>&1; then
    tar -C "$cache/rootfs" -c . | docker import - nanobot-base:bookworm >/dev/null
fi
cargo build --release --workspace --bins
docker build -q -f packaging/docker/Dockerfile --build-arg BASE=nanobot-base:bookworm -t nanobot:test . >/dev/null
name=nanobot-test-$$
cleanup() { docker rm -f "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cfg=$(mktemp -d)
cat >"$cfg/config.json" <<'JSON'
{"agents": {"defaults": {"model": "m", "provider": "local", "workspace": "/var/lib/nanobot/workspaces/nanobot"}},
 "providers": {"local": {"apiKey": "k", "apiBase": "http://127.0.0.1:9/v1"}},
 "channels": {"telegram": {"enabled": true, "token": "1:x", "allowFrom": ["1"],
                           "apiBase": "http://127.0.0.1:9", "pollTimeout": 1}}}
JSON
docker create --name "$name" --network none \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined nanobot:test >/dev/null
docker cp "$cfg/config.json" "$name:/var/lib/nanobot-agent/.nanobot/config.json"
docker start "$name" >/dev/null
rm -rf "$cfg"
inside() { docker exec "$name" "$@"; }
inside chown nanobot:nanobot /var/lib/nanobot-agent/.nanobot/config.json
inside chmod 600 /var/lib/nanobot-agent/.nanobot/config.json
sleep 2
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }
users=$(inside sh -c 'for p in /proc/[0-9]*; do c=$(tr "\000" " " <$p/cmdline 2>/dev/null); [ -n "$c" ] && echo "$(stat -c %U $p) $c"; done')
echo "$users" | sed 's/^/     /'
check "sandboxd runs as nanobot-sandbox" 'echo "$users" | grep -q "^nanobot-sandbox .*sandboxd serve"'
check "the gateway runs as nanobot" 'echo "$users" | grep -q "^nanobot nanobot gateway"'
check "no sandboxd or gateway process is root" '! echo "$users" | grep -qE "^root .*(sandboxd serve|nanobot gateway)"'
out=$(inside runuser -u nanobot -- env HOME=/var/lib/nanobot-agent nanobot exec \
    --socket /run/nanobot/sandboxd.sock -w /var/lib/nanobot/workspaces/nanobot -- \
    'id -un; cat /etc/shadow 2>&1; echo ok > f && cat f' 2>&1 || true)
echo "$out" | sed 's/^/     /'
check "the agent's user runs a confined command" 'echo "$out" | grep -q "^nanobot-sandbox$" && echo "$out" | grep -q "^ok$"'
check "/etc/shadow stays unreadable" 'echo "$out" | grep -q "Permission denied"'
check "man pages and completions are in the image" 'inside sh -c "test -s /usr/share/man/man1/sandboxd-explain.1.gz && test -s /usr/share/man/man1/nanobot.1.gz && grep -q _sandboxd /usr/share/bash-completion/completions/sandboxd && test -s /usr/share/fish/vendor_completions.d/nanobot.fish"'
docker stop -t 10 "$name" >/dev/null
check "the container stops cleanly" '[ "$(docker inspect -f "{{.State.ExitCode}}" "$name")" -le 143 ]'
[ "$fail" = 0 ] || { docker logs "$name" 2>&1 | tail -20; exit 1; }

# The docs' `sh container` examples as written (tests/src/docs.rs), from the checkout. The
# Dockerfile's default base is Debian's image; with no registry here, the local Debian root stands
# in for it under that name.
base=$(sed -n 's/^ARG BASE=//p' packaging/docker/Dockerfile)
docker image inspect "$base" >/dev/null 2>&1 || docker tag nanobot-base:bookworm "$base"
examples=$(mktemp)
doc_cleanup() {
    docker rm -f nanobot >/dev/null 2>&1 || true
    docker volume rm nanobot-agent nanobot-ws >/dev/null 2>&1 || true
    rm -f agent.env "$examples"
}
doc_cleanup
cargo run -q -p nanobot-e2e --bin doc-examples -- container "$PWD" >"$examples"
if out=$(bash "$examples" 2>/dev/null); then
    printf '%s\n' "$out" | sed 's/^/     /'
    running=$(docker inspect -f '{{.State.Running}}' nanobot 2>/dev/null || echo false)
    check "the documented docker run leaves the container running" '[ "$running" = true ]'
else
    echo "FAIL the docs' container examples:"; printf '%s\n' "$out" | sed 's/^/     /'; fail=1
fi
doc_cleanup
[ "$fail" = 0 ] || exit 1
echo "docker test passed"
