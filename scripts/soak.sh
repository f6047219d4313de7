#!/usr/bin/env bash
# Soak run for sandboxd (issue #14 §5; not part of the tests): starts its own daemon on a temporary
# socket and workspace, runs many sequential and concurrent execs (every output checked) and, by
# default, two fault rounds (SIGHUPs under load, clients killed mid-exec), while sampling the
# daemon's and the launcher's open fds, threads and RSS. At the end it waits for the daemon to go
# idle and fails (exit 1) when any of them grew beyond the baseline taken after a warm-up, when any
# exec failed or printed the wrong output, or when a killed client's sandbox outlived it.
#
# As root the daemon drops to the user nanobot-e2e (created if missing, as the e2e tests do);
# otherwise it runs as the calling user (the launcher's fds are then unreadable: not dumpable).
#
# Environment (defaults in brackets):
#   SOAK_SEQ [2000]          sequential execs (a new connection every SOAK_RECONNECT [10] execs)
#   SOAK_CLIENTS [16]        concurrent clients, each on its own connection ...
#   SOAK_PER_CLIENT [100]    ... running this many execs in turn
#   SOAK_FD_SLACK [4]        allowed growth of open fds (daemon and launcher)
#   SOAK_THREAD_SLACK [2]    allowed growth of threads
#   SOAK_RSS_SLACK_KB [2048] allowed growth of RSS in KiB
#   SOAK_SAMPLE_SECS [1]     sampling interval
#   SOAK_SETTLE_SECS [30]    how long to wait for the daemon to go idle at the end
#   SOAK_FAULTS [1]          0 skips the fault rounds
#   SOAK_HUPS [80]           SIGHUPs sent during the SIGHUP round
#   SOAK_KILL_ROUNDS [5]     rounds of SOAK_CLIENTS clients killed (-9) mid-exec
#   SOAK_KEEP [0]            1 keeps the temporary directory (daemon log, samples) even on success
#   SOAK_NO_BUILD [0]        1 skips `cargo build --release --workspace --bins`
set -euo pipefail
cd "$(dirname "$0")/.."

SEQ=${SOAK_SEQ:-2000}
CLIENTS=${SOAK_CLIENTS:-16}
PER=${SOAK_PER_CLIENT:-100}
RECONNECT=${SOAK_RECONNECT:-10}
FD_SLACK=${SOAK_FD_SLACK:-4}
THREAD_SLACK=${SOAK_THREAD_SLACK:-2}
RSS_SLACK=${SOAK_RSS_SLACK_KB:-2048}
SAMPLE=${SOAK_SAMPLE_SECS:-1}
SETTLE=${SOAK_SETTLE_SECS:-30}
FAULTS=${SOAK_FAULTS:-1}
HUPS=${SOAK_HUPS:-80}
KILLS=${SOAK_KILL_ROUNDS:-5}
SBX_USER=nanobot-e2e

if [ "${SOAK_NO_BUILD:-0}" != 1 ]; then
  cargo build --release --workspace --bins
fi
bin=$PWD/target/release
drv=$bin/soak-driver
for b in sandboxd soak-driver; do
  [ -x "$bin/$b" ] || { echo "soak: $bin/$b is missing: run cargo build --release --workspace --bins" >&2; exit 2; }
done

root_mode=0
[ "$(id -u)" = 0 ] && root_mode=1

# Under /var/tmp, not /tmp: the sandbox's private /tmp would hide the workspace.
dir=$(mktemp -d /var/tmp/nanobot-soak.XXXXXX)
ws=$dir/root/ws
sock=$dir/sandboxd.sock
log=$dir/sandboxd.log
cfg=$dir/sandboxd.toml
samples=$dir/samples
mkdir -p "$ws"
chmod 755 "$dir" "$dir/root" "$ws"
: >"$cfg" # all defaults; the SIGHUP round makes the daemon read it again each time
: >"$samples"
echo warmup >"$dir/phase"

args=(serve --socket "$sock" --workspace-root "$dir/root" --config "$cfg")
if [ "$root_mode" = 1 ]; then
  if ! id -u "$SBX_USER" >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$SBX_USER"
  fi
  chown -R "$SBX_USER:" "$dir"
  args+=(--user "$SBX_USER" --allow-uid 0 --allow-uid "$(id -u "$SBX_USER")"
    --grant "root:$ws" --grant "$SBX_USER:$ws")
fi

dpid=''
sampler=''
verdict_ok=0
cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true; fi
  if [ -n "$dpid" ] && kill -0 "$dpid" 2>/dev/null; then
    kill -TERM "$dpid"
    for _ in $(seq 100); do kill -0 "$dpid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$dpid" 2>/dev/null || true
    wait "$dpid" 2>/dev/null || true
  fi
  if [ "$verdict_ok" = 1 ] && [ "${SOAK_KEEP:-0}" != 1 ]; then
    rm -rf "$dir"
  else
    echo "soak: daemon log and samples kept in $dir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

env -i PATH=/usr/bin:/bin "$bin/sandboxd" "${args[@]}" >"$log" 2>&1 &
dpid=$!
for _ in $(seq 200); do
  grep -q 'sandboxd serving' "$log" 2>/dev/null && break
  kill -0 "$dpid" 2>/dev/null || break
  sleep 0.05
done
if ! grep -q 'sandboxd serving' "$log"; then
  echo "soak: sandboxd did not start:" >&2
  cat "$log" >&2
  exit 1
fi

# --- metrics -------------------------------------------------------------------------------------
status_field() { awk -v f="$2:" '$1 == f { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
nfds() { # "-" when unreadable (a non-dumpable process of another user)
  local n
  if n=$(ls "/proc/$1/fd" 2>/dev/null | wc -l) && [ -r "/proc/$1/fd" ]; then echo "$n"; else echo -; fi
}
launcher_pid() {
  local p
  for p in $(ps -o pid= --ppid "$dpid" 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q __launcher; then echo "$p"; return; fi
  done
}
# "INITS CMDS": the launcher's children (prepared or running sandbox inits) and everything below
# them (the commands).
tree_counts() {
  ps -e -o pid=,ppid= | awk -v l="$1" '
    { parent[$1] = $2 }
    END {
      inits = 0; cmds = 0
      for (p in parent) {
        if (parent[p] == l) { inits++; continue }
        q = parent[p]; n = 0
        while (q in parent && q != l && q > 1 && n++ < 64) { if (parent[q] == l) { cmds++; break } q = parent[q] }
      }
      print inits, cmds
    }'
}
# Processes of the sandbox user that nothing owns any more (parent pid 1) and that are not a daemon
# of their own: a sandbox that escaped its tree. Root only (otherwise the user is the caller).
strays() {
  ps -u "$SBX_USER" -o ppid=,comm= 2>/dev/null | awk '$1 == 1 && $2 !~ /^sandboxd/' | wc -l
}
# One line: time phase dfd dthreads drss lpid lfd lthreads lrss inits cmds
sample() {
  local l; l=$(launcher_pid)
  local lf=- lt=- lr=- tc="- -"
  if [ -n "$l" ]; then
    lf=$(nfds "$l"); lt=$(status_field "$l" Threads); lr=$(status_field "$l" VmRSS); tc=$(tree_counts "$l")
  fi
  echo "$(date +%H:%M:%S) $(cat "$dir/phase") $(nfds "$dpid") $(status_field "$dpid" Threads)" \
    "$(status_field "$dpid" VmRSS) ${l:--} $lf ${lt:--} ${lr:--} $tc"
}
sampler_loop() {
  while kill -0 "$dpid" 2>/dev/null; do
    sample >>"$samples"
    sleep "$SAMPLE"
  done
}

fail=()
execs=0
count_ok() { sed -n 's/.*: \([0-9][0-9]*\) execs ok.*/\1/p' | awk '{ n += $1 } END { print n + 0 }'; }
# run_driver PHASE ARGS...: runs the driver, prints its summary, counts the execs.
run_driver() {
  local phase=$1 out rc=0
  shift
  echo "$phase" >"$dir/phase"
  out=$("$drv" "$sock" "$ws" "$@") || rc=$?
  echo "  $out"
  execs=$((execs + $(count_ok <<<"$out")))
  if [ "$rc" != 0 ]; then fail+=("$phase: execs failed (driver exit $rc)"); fi
}

user_desc="as $(id -un)"
[ "$root_mode" = 1 ] && user_desc="as root, dropping to $SBX_USER"
echo "soak: sandboxd pid $dpid ($user_desc), socket $sock"
echo "soak: SOAK_SEQ=$SEQ SOAK_CLIENTS=$CLIENTS SOAK_PER_CLIENT=$PER, slack fds +$FD_SLACK threads +$THREAD_SLACK RSS +$RSS_SLACK KiB"

# --- warm-up and baseline ------------------------------------------------------------------------
echo "soak: warm-up"
run_driver warmup seq 50 "$RECONNECT"
run_driver warmup conc "$CLIENTS" 5
[ ${#fail[@]} = 0 ] || { printf 'soak: FAIL — %s\n' "${fail[@]}"; exit 1; }
sleep 2 # let the launcher refill its prepared sandboxes
echo baseline >"$dir/phase"
base=$(sample)
read -r _ _ b_dfd b_dthr b_drss b_lpid b_lfd b_lthr b_lrss _ _ <<<"$base"
echo "$base" >>"$samples"
strays0=0
[ "$root_mode" = 1 ] && strays0=$(strays)
sampler_loop &
sampler=$!

# --- load ----------------------------------------------------------------------------------------
echo "soak: $SEQ sequential execs"
run_driver sequential seq "$SEQ" "$RECONNECT"
echo "soak: $CLIENTS concurrent clients x $PER execs"
run_driver concurrent conc "$CLIENTS" "$PER"

# --- fault rounds --------------------------------------------------------------------------------
if [ "$FAULTS" = 1 ]; then
  echo "soak: fault round: $HUPS SIGHUPs (config reloads), one per 50 ms, under $CLIENTS concurrent clients"
  reloads0=$(grep -c 'config reloaded' "$log" || true)
  (for _ in $(seq "$HUPS"); do kill -HUP "$dpid"; sleep 0.05; done) &
  hups=$!
  # Load for as long as the signals keep coming: rounds of short concurrent runs.
  rounds=0
  before=${#fail[@]}
  hexecs=$execs
  while kill -0 "$hups" 2>/dev/null; do
    run_driver sighup conc "$CLIENTS" $((PER / 4 + 1)) >/dev/null
    rounds=$((rounds + 1))
  done
  wait "$hups" || true
  echo "  $rounds concurrent rounds, $((execs - hexecs)) execs ok, $((${#fail[@]} - before)) round(s) with failures"
  kill -0 "$dpid" 2>/dev/null || fail+=("sighup: the daemon died")
  sleep 0.5
  reloads=$(($(grep -c 'config reloaded' "$log" || true) - reloads0))
  rejected=$(grep -c 'config reload rejected' "$log" || true)
  echo "  $HUPS SIGHUPs sent, $reloads reloads logged, $rejected rejected"
  [ "$reloads" -gt 0 ] || fail+=("sighup: no reload logged")
  [ "$rejected" = 0 ] || fail+=("sighup: $rejected reloads rejected")

  echo "soak: fault round: $KILLS x $CLIENTS clients killed (-9) while their command runs"
  echo killclients >"$dir/phase"
  worst=0
  for r in $(seq "$KILLS"); do
    kout=$dir/hold.$r
    : >"$kout"
    "$drv" "$sock" "$ws" hold "$CLIENTS" 30 >"$kout" &
    kpid=$!
    for _ in $(seq 600); do
      grep -q held "$kout" && break
      kill -0 "$kpid" 2>/dev/null || break
      sleep 0.05
    done
    if ! grep -q held "$kout"; then
      fail+=("killclients round $r: the $CLIENTS execs did not all start")
      kill -KILL "$kpid" 2>/dev/null || true
      wait "$kpid" 2>/dev/null || true
      continue
    fi
    l=$(launcher_pid)
    running=$(tree_counts "$l" | awk '{ print $2 }')
    t0=$(date +%s%N)
    kill -KILL "$kpid"
    wait "$kpid" 2>/dev/null || true
    left=-1
    for _ in $(seq 500); do
      left=$(tree_counts "$(launcher_pid)" | awk '{ print $2 }')
      [ "$left" = 0 ] && break
      sleep 0.01
    done
    took=$((($(date +%s%N) - t0) / 1000000))
    [ "$took" -gt "$worst" ] && worst=$took
    if [ "$left" != 0 ]; then
      fail+=("killclients round $r: $left sandboxed processes still running 5 s after their clients were killed")
    fi
    [ "$r" = 1 ] && echo "  round 1: $running sandboxed processes running when the clients were killed"
  done
  echo "  every killed client's sandboxes gone within $worst ms (worst of $KILLS rounds)"
  run_driver after-faults seq 20 "$RECONNECT"
else
  echo "soak: fault rounds skipped (SOAK_FAULTS=0)"
fi

# --- settle and compare --------------------------------------------------------------------------
echo "soak: waiting up to $SETTLE s for the daemon to go idle"
echo settle >"$dir/phase"
within() { [ "$1" = - ] || [ "$2" = - ] || [ "$1" -le $(($2 + $3)) ]; }
deadline=$(($(date +%s) + SETTLE))
while :; do
  final=$(sample)
  read -r _ _ f_dfd f_dthr f_drss f_lpid f_lfd f_lthr f_lrss f_inits f_cmds <<<"$final"
  if within "$f_dfd" "$b_dfd" "$FD_SLACK" && within "$f_dthr" "$b_dthr" "$THREAD_SLACK" &&
    within "$f_drss" "$b_drss" "$RSS_SLACK" && within "$f_lfd" "$b_lfd" "$FD_SLACK" &&
    within "$f_lrss" "$b_lrss" "$RSS_SLACK" && [ "$f_cmds" = 0 ]; then
    break
  fi
  [ "$(date +%s)" -ge "$deadline" ] && break
  sleep 1
done
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=''
echo final >"$dir/phase"
final=$(sample)
echo "$final" >>"$samples"
read -r _ _ f_dfd f_dthr f_drss f_lpid f_lfd f_lthr f_lrss f_inits f_cmds <<<"$final"

echo
awk 'BEGIN { printf "%-8s %-12s %6s %7s %9s | %7s %6s %7s %9s | %5s %4s\n",
               "time", "phase", "d.fds", "d.thr", "d.rss_kB", "l.pid", "l.fds", "l.thr", "l.rss_kB", "inits", "cmds" }
     { printf "%-8s %-12s %6s %7s %9s | %7s %6s %7s %9s | %5s %4s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 }' "$samples"
awk 'NR > 1 && $5 > p { p = $5 } NR > 1 && $9 > q { q = $9 }
     END { printf "peak RSS under load: daemon %d KiB, launcher %d KiB\n", p, q }' "$samples"
echo

grew() { # NAME BASE FINAL SLACK
  if [ "$2" = - ] || [ "$3" = - ]; then
    return
  fi
  if [ "$3" -gt $(($2 + $4)) ]; then fail+=("$1 grew $2 -> $3 (allowed +$4)"); fi
}
kill -0 "$dpid" 2>/dev/null || fail+=("the daemon is gone")
grew "daemon fds" "$b_dfd" "$f_dfd" "$FD_SLACK"
grew "daemon threads" "$b_dthr" "$f_dthr" "$THREAD_SLACK"
grew "daemon RSS (KiB)" "$b_drss" "$f_drss" "$RSS_SLACK"
if [ "$f_lpid" != "$b_lpid" ]; then
  fail+=("the launcher changed ($b_lpid -> $f_lpid): it died during the run")
else
  grew "launcher fds" "$b_lfd" "$f_lfd" "$FD_SLACK"
  grew "launcher threads" "$b_lthr" "$f_lthr" "$THREAD_SLACK"
  grew "launcher RSS (KiB)" "$b_lrss" "$f_lrss" "$RSS_SLACK"
fi
[ "$f_cmds" = 0 ] || fail+=("$f_cmds sandboxed processes still running when idle")
if [ "$root_mode" = 1 ]; then
  s=$(strays)
  [ "$s" -le "$strays0" ] || fail+=("$((s - strays0)) new orphaned processes of $SBX_USER")
fi
[ "$b_lfd" = - ] && echo "soak: note: the launcher's fds are not readable as $(id -un) (it is not dumpable); not compared"

lfds="fds $b_lfd->$f_lfd"
[ "$b_lfd" = - ] && lfds="fds unreadable"
summary="$execs execs checked; daemon fds $b_dfd->$f_dfd, threads $b_dthr->$f_dthr, RSS $b_drss->$f_drss KiB; launcher $lfds, RSS $b_lrss->$f_lrss KiB"
if [ ${#fail[@]} = 0 ]; then
  verdict_ok=1
  echo "soak: PASS — $summary"
else
  for f in "${fail[@]}"; do echo "soak: $f"; done
  echo "soak: FAIL — ${#fail[@]} problem(s); $summary"
  exit 1
fi
