#!/usr/bin/env bash
# End-to-end relay benchmark (issue 4), in one run on this machine:
#   smtp-source → stock Postfix (relayhost = smtp-sink)      → smtp-sink
#   smtp-source → 3-node Ricochet (MX found through NSD)      → smtp-sink
# Prints delivered messages/s end to end (first submission to the last
# message counted by smtp-sink), the ratio Ricochet/Postfix, and CPU time per
# message of each system (Postfix: master and every child it ran; Ricochet:
# the three ricochetd processes). Checks that every message arrived (none
# lost or stuck). Everything binds 127.0.8.x and is stopped by PID.
#
#   tests/bench/relay.sh [MESSAGES] [RUNS] [SESSIONS]     (default 5000 3 20)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-5000} RUNS=${2:-3} SESSIONS=${3:-20}
NET=127.0.8 PORT=2626
build=${RICOCHET_BUILD:-$here/build}
source "$here/tests/lib/scratch.sh"
source "$here/tests/bench/postfix_lib.sh"
for t in /usr/sbin/smtp-source /usr/sbin/smtp-sink /usr/sbin/nsd /usr/sbin/postfix "$build/ricochetd"; do
  [ -x "$t" ] || { echo "missing $t (scripts/deps.sh, scripts/build.sh)" >&2; exit 2; }
done

scratch_dir relay-bench
chmod 755 "$DIR"
cleanup() {
  pf_stop "$DIR/pf" 2>/dev/null || true
  "$here/scripts/cluster" down --dir "$DIR/cluster" >/dev/null 2>&1 || true
  scratch_cleanup
}
trap cleanup EXIT

mkdir -p "$DIR/zones"
cat > "$DIR/zones/sink.test.zone" <<ZONE
\$TTL 3600
@ SOA ns.sink.test. hostmaster.sink.test. 1 3600 600 86400 3600
@ NS ns.sink.test.
ns A $NET.53
@ MX 10 mx.sink.test.
mx A $NET.51
ZONE
nsd_start "$DIR/nsd" "$DIR/zones" "$NET.53" 5300 "" sink.test

# smtp-sink -c prints "sess=S quit=Q mesg=M" after each event (CR-separated)
sink_start() { # NAME IP
  /usr/sbin/smtp-sink -u nobody -c "$2:$PORT" 512 > "$DIR/$1.count" 2>&1 &
  PIDS+=($!)
}
sink_count() { tail -c 200 "$DIR/$1.count" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1; }
wait_count() { # NAME WANT TIMEOUT_S
  local end=$((SECONDS + $3)) c
  while :; do
    c=$(sink_count "$1"); c=${c:-0}
    [ "$c" -ge "$2" ] && return 0
    [ $SECONDS -ge $end ] && { echo "only $c of $2 messages arrived at $1" >&2; return 1; }
    sleep 0.05
  done
}
now() { date +%s.%N; }
# utime+stime (+ reaped children) in clock ticks
ticks_self() { awk '{print $14+$15}' "/proc/$1/stat"; }
ticks_tree() { # PID: the process, its reaped children and its live descendants
  local root=$1 total
  total=$(awk '{print $14+$15+$16+$17}' "/proc/$root/stat")
  for p in /proc/[0-9]*; do
    [ "$(awk '{print $4}' "$p/stat" 2>/dev/null)" = "$root" ] || continue
    total=$((total + $(awk '{print $14+$15+$16+$17}' "$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
HZ=$(getconf CLK_TCK)
ms_per_msg() { echo "scale=3; ($2 - $1) * 1000 / $HZ / $N" | bc; }

sink_start pfsink "$NET.50"
sink_start rcsink "$NET.51"

echo "relay bench: $N messages, $SESSIONS sessions, $RUNS runs ($(nproc) cores, $(date -u +%FT%TZ))"
printf '%-5s %12s %12s %8s %14s %14s\n' run postfix/s ricochet/s ratio pf_cpu_ms/msg rc_cpu_ms/msg
for run in $(seq "$RUNS"); do
  # ---- Postfix: stock, relayhost = smtp-sink
  rm -rf "$DIR/pf"
  pf_start "$DIR/pf" "$NET.20:2525" "relayhost = [$NET.50]:$PORT" > /dev/null
  master=$(tr -d ' \n' < "$DIR/pf/queue/pid/master.pid")
  base=$(sink_count pfsink); base=${base:-0}
  c0=$(ticks_tree "$master"); t0=$(now)
  /usr/sbin/smtp-source -s "$SESSIONS" -m "$N" -f bench@source.test -t u@sink.test "$NET.20:2525"
  wait_count pfsink $((base + N)) 600
  t1=$(now); c1=$(ticks_tree "$master")
  pf_rate=$(echo "scale=1; $N / ($t1 - $t0)" | bc)
  pf_cpu=$(ms_per_msg "$c0" "$c1")
  stuck=$(pf_queued "$DIR/pf")
  pf_stop "$DIR/pf"
  [ "$stuck" -eq 0 ] || echo "postfix: $stuck messages still queued" >&2

  # ---- Ricochet: 3 nodes, MX through NSD, same smtp-sink
  "$here/scripts/cluster" down --dir "$DIR/cluster" >/dev/null 2>&1 || true
  rm -rf "$DIR/cluster"
  RICOCHET_BUILD=$build "$here/scripts/cluster" up --net "$NET" --base 10 --dir "$DIR/cluster" \
    --set raft.election_timeout=1s --set smtp.relay_networks=127.0.0.0/8 \
    --set delivery.resolver="$NET.53:5300" --set delivery.port=$PORT \
    --set delivery.max_connections_per_domain=$SESSIONS > "$DIR/up.out"
  leader=$("$build/ricochetctl" -s "$NET.11:8080" cluster --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["leader"])')
  pids=$(awk '{for (i = 1; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5)}' "$DIR/up.out")
  rc_ticks() { local s=0 p; for p in $pids; do s=$((s + $(ticks_self "$p"))); done; echo $s; }
  base=$(sink_count rcsink); base=${base:-0}
  c0=$(rc_ticks); t0=$(now)
  /usr/sbin/smtp-source -s "$SESSIONS" -m "$N" -f bench@source.test -t u@sink.test "$NET.$((10 + leader)):2525"
  wait_count rcsink $((base + N)) 600
  t1=$(now); c1=$(rc_ticks)
  rc_rate=$(echo "scale=1; $N / ($t1 - $t0)" | bc)
  rc_cpu=$(ms_per_msg "$c0" "$c1")
  delivered=$(curl -s "$NET.$((10 + leader)):8080/metrics" | awk '/^ricochet_delivery_outcomes_total\{status="delivered"\}/{print $2}')
  [ "${delivered%.*}" -eq "$N" ] || echo "ricochet: $delivered of $N recipients delivered" >&2
  "$here/scripts/cluster" down --dir "$DIR/cluster" >/dev/null 2>&1 || true

  printf '%-5s %12s %12s %8s %14s %14s\n' "$run" "$pf_rate" "$rc_rate" \
    "$(echo "scale=2; $rc_rate / $pf_rate" | bc)x" "$pf_cpu" "$rc_cpu"
done
