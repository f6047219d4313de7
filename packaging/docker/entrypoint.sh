#!/bin/sh
# Starts sandboxd (it drops root to nanobot-sandbox itself, before serving) and the gateway as
# nanobot with no capabilities, then waits: when either ends, the container stops.
set -eu
sandboxd serve --config /etc/nanobot/sandboxd.toml --socket-group nanobot &
sb=$!
for i in $(seq 100); do [ -S /run/nanobot/sandboxd.sock ] && break; sleep 0.1; done
[ -S /run/nanobot/sandboxd.sock ] || { echo "nanobot: sandboxd did not start" >&2; exit 1; }
if [ -f /var/lib/nanobot-agent/.nanobot/config.json ]; then
    setpriv --reuid=nanobot --regid=nanobot --init-groups --inh-caps=-all --bounding-set=-all \
        --no-new-privs env HOME=/var/lib/nanobot-agent nanobot gateway &
    gw=$!
else
    echo "nanobot: no /var/lib/nanobot-agent/.nanobot/config.json yet; only sandboxd runs" >&2
    gw=
fi
trap 'kill $sb $gw 2>/dev/null' TERM INT
wait $sb
