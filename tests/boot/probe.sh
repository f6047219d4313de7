#!/bin/sh
# Runs inside the booted container as a oneshot unit; writes findings to /results, then powers
# off. Each finding is one file: the host script asserts on them.
R=/results
exec >"$R/probe.log" 2>&1
set -x
sock=/run/nanobot/sandboxd.sock
ws=/var/lib/nanobot/workspaces/alice
mkdir -p "$ws" && chown nanobot-sandbox:nanobot-sandbox "$ws"

systemctl is-active sandboxd.socket >"$R/socket_active"
stat -c '%a %U %G' "$sock" >"$R/socket_mode"
# A member of the agent's group runs a command: the first connection starts sandboxd.
runuser -u alice -- env HOME=/home/alice nanobot exec --socket "$sock" --workspace "$ws" -- \
  'id -un; cat /etc/shadow; echo x > /etc/x; echo ok > note.txt && cat note.txt' \
  >"$R/alice_out" 2>"$R/alice_err"
echo $? >"$R/alice_rc"
systemctl is-active sandboxd.service >"$R/service_active"
pid=$(systemctl show -p MainPID --value sandboxd.service)
grep -E '^(Uid|CapEff|CapPrm|CapBnd|NoNewPrivs):' "/proc/$pid/status" >"$R/daemon_status"
stat -c %U "/proc/$pid" >"$R/daemon_user"
# The gateway: started at boot (its config exists), as nanobot, connected to sandboxd.
for i in $(seq 50); do systemctl is-active --quiet nanobot.service && break; sleep 0.2; done
sleep 1
systemctl is-active nanobot.service >"$R/gateway_active"
gpid=$(systemctl show -p MainPID --value nanobot.service)
grep -E '^(Uid|CapEff|NoNewPrivs):' "/proc/$gpid/status" >"$R/gateway_status"
stat -c %U "/proc/$gpid" >"$R/gateway_user"
journalctl -u nanobot --no-pager >"$R/gateway_journal" 2>&1
# The WhatsApp bridge: shipped, with its own user, but off until the operator enables it.
systemctl is-enabled nanobot-whatsapp-bridge.service >"$R/bridge_enabled" 2>&1
id -un nanobot-whatsapp >"$R/bridge_user" 2>&1
(cd /usr/lib/nanobot/whatsapp-bridge && ls src/*.js package-lock.json) >"$R/bridge_files" 2>&1
# A reload (SIGHUP) keeps serving.
systemctl reload sandboxd.service; sleep 1
runuser -u alice -- env HOME=/home/alice nanobot exec --socket "$sock" --workspace "$ws" -- 'echo after-reload' \
  >"$R/reload_out" 2>&1
# Someone outside the group is refused.
runuser -u mallory -- env HOME=/home/mallory nanobot exec --socket "$sock" --workspace "$ws" -- id \
  >"$R/mallory_out" 2>"$R/mallory_err"
echo $? >"$R/mallory_rc"
# sandboxd explains itself and the host passes its doctor (inside this container).
sandboxd doctor >"$R/doctor" 2>&1; echo $? >"$R/doctor_rc"
# The docs' host examples, as an operator types them on a fresh install (so without this test's
# gateway config); then the config and the services as they were.
cfg=/var/lib/nanobot-agent/.nanobot/config.json
mv "$cfg" "$cfg.probe"; cp -p /etc/nanobot/agent.env /etc/nanobot/agent.env.probe
(cd /root && /usr/local/bin/nanobot-doc-examples) >"$R/doc_examples" 2>"$R/doc_examples.err"
echo $? >"$R/doc_examples_rc"
mv -f "$cfg.probe" "$cfg"; mv -f /etc/nanobot/agent.env.probe /etc/nanobot/agent.env
systemctl start sandboxd.socket; systemctl restart nanobot.service
sleep 1
# A long command is running when the service stops: nothing of it may survive.
runuser -u alice -- env HOME=/home/alice nanobot exec --socket "$sock" --workspace "$ws" -- \
  'sleep 300; echo never' >"$R/long_out" 2>&1 &
sleep 2
sandbox_procs() {
  for p in /proc/[0-9]*; do
    [ "$(stat -c %U "$p" 2>/dev/null)" = nanobot-sandbox ] && tr '\0' ' ' <"$p/cmdline" && echo
  done
}
sandbox_procs >"$R/before_stop"
systemctl stop nanobot.service sandboxd.service sandboxd.socket
sleep 1
sandbox_procs >"$R/after_stop"
journalctl -u sandboxd --no-pager >"$R/journal" 2>&1
echo done >"$R/finished"
systemctl poweroff --no-block
