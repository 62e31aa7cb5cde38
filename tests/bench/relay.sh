#!/usr/bin/env bash
# End-to-end relay benchmark (issue 4; not a test: prints figures, asserts
# nothing about time). In one run, with the same Postfix smtp-source load
# (20 sessions, 2 KiB messages, a new connection per message) and the same
# kind of destination (Postfix's smtp-sink):
#   (a) smtp-source -> stock Postfix (private instance, postfix_lib.sh,
#       relayhost = [smtp-sink]) -> smtp-sink A;
#   (b) smtp-source -> the leader of a 3-node Ricochet cluster -> smtp-sink B,
#       found as the MX of sink.test through a test DNS server (NSD).
# Rate = messages / (first submission .. the last message seen by the sink,
# counted in the sink's own dump file, polled every 10 ms). CPU per message =
# user+system time of every Postfix process (master, its live children and
# the reaped ones through the master's cutime/cstime) vs every ricochetd
# process, read from /proc before and after. A run is valid only when the
# sink received exactly the messages sent and nothing is left queued
# (Postfix: empty incoming/active/deferred; Ricochet: delivery queue and
# in-flight 0, delivered outcomes == sent). Targets alternate for RUNS runs;
# medians are reported with the ratio Ricochet/Postfix.
#
#   tests/bench/relay.sh [MESSAGES (5000)] [RUNS (3)]
#   RICOCHET_SETS="delivery.max_connections_per_domain=20 ..." adds --set
#   options to the cluster (default: the product's defaults).
#
# Needs root (private Postfix), a build in build/ (or RICOCHET_BUILD). Binds
# 127.0.8.x only; everything it starts is stopped by PID on exit.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${RICOCHET_BUILD:-$here/build}
export RICOCHET_BUILD=$build
msgs=${1:-5000}
runs=${2:-3}
sessions=${SESSIONS:-20}
NET=127.0.8
DNS_IP=$NET.53 DNS_PORT=5300
SINK_PF=$NET.10 SINK_RC=$NET.11 MX_PORT=2526
PF=$NET.12:2525
measure="/usr/bin/python3 $here/tests/bench/relay_measure.py"
ctl="$build/ricochetctl"
# shellcheck source=tests/bench/postfix_lib.sh
. "$here/tests/bench/postfix_lib.sh"
# shellcheck source=tests/lib/scratch.sh
. "$here/tests/lib/scratch.sh"

scratch=$(mktemp -d /tmp/ricochet-bench-relay-XXXXXX)
chmod 755 "$scratch" # the postfix user enters its queue below it, smtp-sink (nobody) writes its dumps
PIDS=()
cleanup() {
  local rc=$?
  set +e
  bench_teardown "$rc" "$scratch" "${PIDS[@]+"${PIDS[@]}"}"
}
trap cleanup EXIT

now() { date +%s.%N; }
json() { /usr/bin/python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
calc() { /usr/bin/python3 -c "print($1)"; }
median() { /usr/bin/python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.$1f}')" "${@:2}"; }
wait_until() { # wait_until SECONDS CMD... (polls)
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out: $*" >&2; return 1; }
    sleep 0.2
  done
}
cpu_total() { $measure cpu "$@" | awk '{printf "%.2f %.2f\n", $1, $2}'; }

echo "== relay: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load: smtp-source -s $sessions -l 2048 -m $msgs (a new connection per message), $runs runs, targets alternating"
echo "postfix $(postconf -d -h mail_version); scratch (queues, raft data) on $(df --output=fstype "$scratch" | tail -1)"

# --- DNS: sink.test MX -> smtp-sink B
mkdir -p "$scratch/nsd"
cat > "$scratch/nsd/test.zone" <<ZONE
\$ORIGIN test.
\$TTL 3600
@        IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60
@        IN NS  ns.test.
ns       IN A   $DNS_IP
sink     IN MX  10 mx.sink
mx.sink  IN A   $SINK_RC
ZONE
nsd_start "$scratch/nsd" "$scratch/nsd" "$DNS_IP" "$DNS_PORT" "" test
wait_until 60 bash -c "[ \"\$(dig +short +time=1 +tries=1 -p $DNS_PORT @$DNS_IP mx.sink.test A)\" = $SINK_RC ]" ||
  { echo "NSD does not answer:"; cat "$scratch/nsd/nsd.out" "$scratch/nsd/nsd.log"; exit 1; }

# --- two smtp-sinks (one per system), each dumping every transaction
mkdir -p "$scratch/sink" && chmod 777 "$scratch/sink"
smtp-sink -u nobody -D "$scratch/sink/pf" "$SINK_PF:$MX_PORT" 1024 & PIDS+=($!)
smtp-sink -u nobody -D "$scratch/sink/rc" "$SINK_RC:$MX_PORT" 1024 & PIDS+=($!)
wait_until 10 bash -c "exec 3<>/dev/tcp/$SINK_PF/$MX_PORT && exec 4<>/dev/tcp/$SINK_RC/$MX_PORT" 2>/dev/null

# --- stock Postfix relaying everything to smtp-sink A
pf_start "$scratch/postfix" "$PF" "relayhost = [$SINK_PF]:$MX_PORT"
pf_master=$(tr -d ' \n' < "$scratch/postfix/queue/pid/master.pid")

# --- Ricochet: 3 nodes on 127.0.8.1-3, the product's election timeout
extra_sets=()
for s in ${RICOCHET_SETS:-}; do extra_sets+=(--set "$s"); done
up=$("$here/scripts/cluster" up --net "$NET" --base 0 --dir "$scratch/cluster" \
  --set raft.election_timeout=1s --set smtp.relay_networks=127.0.0.0/8 \
  --set "delivery.resolver=$DNS_IP:$DNS_PORT" --set "delivery.port=$MX_PORT" "${extra_sets[@]+"${extra_sets[@]}"}")
leader=$("$ctl" -s "$NET.1:8080" cluster --json | json 'd["leader"]')
L=$NET.$leader:2525 LH=$NET.$leader:8080
rc_pids=$(awk '{ for (i = 1; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5) }' <<<"$up" | tr '\n' ' ')
echo "ricochet: leader node $leader ($L), pids $rc_pids; settings: product defaults (delivery.max_connections_per_domain 10, max_rcpts 50, idle_timeout 10s)${RICOCHET_SETS:+ except $RICOCHET_SETS}"
echo "postfix: master $pf_master, relayhost [$SINK_PF]:$MX_PORT, stock concurrency (default_destination_concurrency_limit $(postconf -c "$scratch/postfix/etc" -h default_destination_concurrency_limit))"

metric() { $measure metric "$LH" "$1"; }
rc_idle() { [ "$(metric ricochet_delivery_queue)" = 0 ] && [ "$(metric ricochet_delivery_inflight)" = 0 ]; }
pf_empty() { [ "$(pf_queued "$scratch/postfix")" = 0 ]; }

# run NAME TARGET DUMP CPU_PIDS...: one measured run; sets rate, cpu_ms, usr_ms, sys_ms
run() {
  local name=$1 target=$2 dump=$3; shift 3
  local before expect t0 t1 c0 c1
  before=$($measure count "$dump")
  expect=$((before + msgs))
  c0=$(cpu_total "$@")
  t0=$(now)
  smtp-source -s "$sessions" -l 2048 -m "$msgs" -f load@bench.test -t rcpt@sink.test "$target" >/dev/null
  if ! t1=$($measure wait "$dump" "$expect" 600); then
    echo "$name: the sink saw only $((t1 - before)) of $msgs messages after 600 s" >&2
    return 1
  fi
  c1=$(cpu_total "$@")
  read -r u0 s0 <<<"$c0"
  read -r u1 s1 <<<"$c1"
  rate=$(calc "f'{$msgs / ($t1 - $t0):.0f}'")
  usr_ms=$(calc "f'{($u1 - $u0) * 1000 / $msgs:.2f}'")
  sys_ms=$(calc "f'{($s1 - $s0) * 1000 / $msgs:.2f}'")
  cpu_ms=$(calc "f'{($u1 - $u0 + $s1 - $s0) * 1000 / $msgs:.2f}'")
  secs=$(calc "f'{$t1 - $t0:.2f}'")
}

warm=$((msgs / 10 > 0 ? msgs / 10 : 1))
smtp-source -s "$sessions" -l 2048 -m "$warm" -f w@bench.test -t w@sink.test "$PF" >/dev/null
smtp-source -s "$sessions" -l 2048 -m "$warm" -f w@bench.test -t w@sink.test "$L" >/dev/null
$measure wait "$scratch/sink/pf" "$warm" 300 >/dev/null
$measure wait "$scratch/sink/rc" "$warm" 300 >/dev/null
wait_until 300 rc_idle
wait_until 300 pf_empty

pf=() rc=() pfc=() rcc=()
rc_delivered0=$(metric 'ricochet_delivery_outcomes_total{status="delivered"}')
for r in $(seq "$runs"); do
  run postfix "$PF" "$scratch/sink/pf" "$pf_master"
  wait_until 300 pf_empty
  pf+=("$rate") pfc+=("$cpu_ms")
  line="run $r: postfix $rate/s (${secs}s, cpu $cpu_ms ms/msg: user $usr_ms sys $sys_ms)"
  # shellcheck disable=SC2086
  run ricochet "$L" "$scratch/sink/rc" $rc_pids
  wait_until 300 rc_idle
  rc+=("$rate") rcc+=("$cpu_ms")
  echo "$line; ricochet $rate/s (${secs}s, cpu $cpu_ms ms/msg: user $usr_ms sys $sys_ms)"
done

# --- nothing lost, nothing stuck, nothing twice
sent=$((warm + runs * msgs))
pf_seen=$($measure count "$scratch/sink/pf") rc_seen=$($measure count "$scratch/sink/rc")
pf_left=$(pf_queued "$scratch/postfix")
rc_delivered=$(calc "int($(metric 'ricochet_delivery_outcomes_total{status="delivered"}') - $rc_delivered0)")
rc_deferred=$(metric 'ricochet_delivery_outcomes_total{status="deferred"}')
rc_queue=$(metric ricochet_delivery_queue)
ok=1
if ! { [ "$pf_seen" = "$sent" ] && [ "$pf_left" = 0 ]; }; then
  echo "POSTFIX LOST OR STUCK: sink saw $pf_seen of $sent, $pf_left queued"; ok=0
fi
if ! { [ "$rc_seen" = "$sent" ] && [ "$rc_queue" = 0 ] && [ "$rc_delivered" = $((runs * msgs)) ]; }; then
  echo "RICOCHET LOST OR STUCK: sink saw $rc_seen of $sent, queue $rc_queue, delivered outcomes $rc_delivered of $((runs * msgs)) measured"; ok=0
fi

m_pf=$(median 0 "${pf[@]}") m_rc=$(median 0 "${rc[@]}") c_pf=$(median 2 "${pfc[@]}") c_rc=$(median 2 "${rcc[@]}")
echo
echo "== results (medians of $runs runs of $msgs messages, $sessions sessions, 2 KiB)"
echo "checks: postfix sink $pf_seen/$sent, queue left $pf_left; ricochet sink $rc_seen/$sent, delivery queue $rc_queue, deferred outcomes $rc_deferred"
echo "delivered messages/s end to end: postfix $m_pf, ricochet $m_rc"
calc "f'ratio ricochet/postfix: {$m_rc / $m_pf:.2f}x (target >= 2x)'"
echo "cpu per relayed message: postfix $c_pf ms, ricochet (3 nodes together) $c_rc ms; ratio $(calc "f'{$c_rc / $c_pf:.2f}'")"
[ "$ok" = 1 ]
