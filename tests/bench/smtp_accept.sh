#!/usr/bin/env bash
# SMTP acceptance benchmark (not a test: prints figures, asserts nothing about
# time). In one run, with the same Postfix smtp-source load (20 sessions,
# 2 KiB messages, a new connection per message):
#   (a) Postfix's smtp-sink: the ceiling (accepts and forgets);
#   (b) a stock Postfix, queue on disk (private instance, postfix_lib.sh;
#       defer_transports = smtp: it accepts and keeps every message queued);
#   (c) a 3-node Ricochet cluster (250 only after quorum commit), the load
#       entering at the leader and, separately, at a follower.
# Targets alternate for ROUNDS rounds; medians are reported with the ratio
# Ricochet/Postfix. Then: p50/p99 from the final "." to the 250 reply (own
# client, smtp_accept_client.py: 20 pipelining sessions) for Postfix and
# Ricochet, and RSS per idle session: 5,000 sessions (after EHLO) held open
# on one ricochetd.
#
#   tests/bench/smtp_accept.sh [MESSAGES_PER_RUN (10000)] [ROUNDS (3)]
#
# Needs a build in build/ (or RICOCHET_BUILD). Binds 127.0.4.30-.43 only.
# Everything it starts is stopped by PID on exit.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${RICOCHET_BUILD:-$here/build}
export RICOCHET_BUILD=$build
msgs=${1:-10000}
rounds=${2:-3}
idle_sessions=${IDLE_SESSIONS:-5000}
lat_msgs=${LATENCY_MESSAGES:-4000}
NET=127.0.4
SINK=$NET.30:2525
PF=$NET.31:2525
client="$here/tests/bench/smtp_accept_client.py"
ctl="$build/ricochetctl"
# shellcheck source=tests/bench/postfix_lib.sh
. "$here/tests/bench/postfix_lib.sh"

# 5,000 idle sessions: client and server (inherited by ricochetd) need fds
ulimit -n 20000

scratch=$(mktemp -d /tmp/ricochet-bench-smtp-XXXXXX)
chmod 755 "$scratch" # the postfix user enters its queue below it
sink_pid=""
cleanup() {
  local rc=$?
  set +e
  bench_teardown "$rc" "$scratch" $sink_pid
}
trap cleanup EXIT

now() { date +%s.%N; }
# run_source HOST:PORT: messages/s in $rate (smtp-source must succeed)
run_source() {
  local t0 t1
  t0=$(now)
  smtp-source -s 20 -l 2048 -m "$msgs" -f load@example.org -t sink@example.com "$1" >/dev/null
  t1=$(now)
  rate=$(python3 -c "print(f'{$msgs / ($t1 - $t0):.0f}')")
}
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
messages_on() { "$ctl" -s "$1" --timeout 10 cluster --json | json 'd["messages"]'; }
wait_until() { # wait_until SECONDS CMD... (polls)
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    [ $SECONDS -lt $deadline ] || { echo "timed out: $*" >&2; return 1; }
    sleep 0.2
  done
}
pf_drained() { [ "$(pf_queued "$scratch/postfix" incoming active)" = 0 ]; }
converged() {
  local a b c
  a=$("$ctl" -s "$NET.41:8080" cluster --json | json 'd["applied_records"]')
  b=$("$ctl" -s "$NET.42:8080" cluster --json | json 'd["applied_records"]')
  c=$("$ctl" -s "$NET.43:8080" cluster --json | json 'd["applied_records"]')
  [ "$a" = "$b" ] && [ "$b" = "$c" ]
}
median() { python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.0f}')" "$@"; }

echo "== smtp_accept: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
echo "load: smtp-source -s 20 -l 2048 -m $msgs (a new connection per message), $rounds rounds"
echo "postfix $(postconf -d -h mail_version); scratch (queues, raft data) on $(df --output=fstype "$scratch" | tail -1) $(df --output=source "$scratch" | tail -1)"

smtp-sink -u postfix "$SINK" 1024 &
sink_pid=$!
# accepted mail stays queued (deferred); no retry run during the bench
pf_start "$scratch/postfix" "$PF" 'defer_transports = smtp' 'queue_run_delay = 1h' \
  'minimal_backoff_time = 1h' 'maximal_backoff_time = 2h'
# the product's default election timeout (scripts/cluster sets 300 ms for
# tests); limits raised for the 5,000 idle sessions from one address
up=$("$here/scripts/cluster" up --net "$NET" --base 40 --dir "$scratch/cluster" \
  --set raft.election_timeout=1s --set smtp.max_connections=20000 --set smtp.max_connections_per_ip=20000 \
  --set smtp.relay_networks=127.0.0.0/8 --set delivery.resolver=127.0.0.1:9)
leader=$("$ctl" -s "$NET.41:8080" cluster --json | json 'd["leader"]')
follower=$(( leader % 3 + 1 ))
L=$NET.$((40 + leader)):2525 F=$NET.$((40 + follower)):2525
lpid=$(awk -v id="$leader" '$1 == id { for (i = 1; i <= NF; i++) if ($i ~ /^pid=/) print substr($i, 5) }' <<<"$up")
echo "ricochet: leader node $leader ($L), follower node $follower ($F)"

# --- idle sessions first, on a fresh leader (RSS growth is then all theirs)
idle=$(python3 "$client" idle "$L" "$idle_sessions" "$lpid")

# --- throughput, targets alternating
wait_until 5 bash -c "exec 3<>/dev/tcp/${SINK%:*}/${SINK#*:}" # sink listening
smtp-source -s 20 -l 2048 -m 1000 -f w@example.org -t w@example.com "$L" >/dev/null # warm-up
wait_until 120 converged
base_msgs=$(messages_on "$NET.41:8080")
sink=() pf=() rl=() rf=()
for r in $(seq "$rounds"); do
  run_source "$SINK"; sink+=("$rate")
  run_source "$PF"; pf+=("$rate")
  wait_until 600 pf_drained
  run_source "$L"; rl+=("$rate")
  wait_until 300 converged
  run_source "$F"; rf+=("$rate")
  wait_until 300 converged
  echo "round $r: smtp-sink ${sink[-1]}/s, postfix ${pf[-1]}/s, ricochet via leader ${rl[-1]}/s, via follower ${rf[-1]}/s"
done
pf_n=$(pf_queued "$scratch/postfix")
rc_n=$(( $(messages_on "$NET.41:8080") - base_msgs ))
[ "$pf_n" = $((rounds * msgs)) ] || echo "WARNING: postfix queued $pf_n messages, expected $((rounds * msgs))"
[ "$rc_n" = $((2 * rounds * msgs)) ] || echo "WARNING: ricochet holds $rc_n new messages, expected $((2 * rounds * msgs))"

# --- latency from the final dot to 250, own pipelining client
lat_pf=$(python3 "$client" latency "$PF" "$lat_msgs" 20 2048)
wait_until 600 pf_drained
lat_rl=$(python3 "$client" latency "$L" "$lat_msgs" 20 2048)
wait_until 300 converged
lat_rf=$(python3 "$client" latency "$F" "$lat_msgs" 20 2048)

m_sink=$(median "${sink[@]}") m_pf=$(median "${pf[@]}") m_rl=$(median "${rl[@]}") m_rf=$(median "${rf[@]}")
lat() { json '"p50 %.1f ms, p99 %.1f ms, max %.1f ms (%d accepted, %d errors, %.0f/s)" % (d["p50_ms"], d["p99_ms"], d["max_ms"], d["accepted"], d["errors"], d["per_second"])' <<<"$1"; }
echo
echo "== results (medians of $rounds rounds of $msgs messages; every message queued: postfix $pf_n, ricochet $rc_n)"
echo "accepted messages/s: smtp-sink $m_sink, postfix $m_pf, ricochet via leader $m_rl, via follower $m_rf"
python3 -c "print(f'ratio ricochet/postfix: via leader {$m_rl / $m_pf:.2f}x, via follower {$m_rf / $m_pf:.2f}x (target >= 2x); smtp-sink/postfix {$m_sink / $m_pf:.1f}x')"
echo "final dot -> 250, 20 sessions, $lat_msgs messages:"
echo "  postfix:            $(lat "$lat_pf")"
echo "  ricochet, leader:   $(lat "$lat_rl")"
echo "  ricochet, follower: $(lat "$lat_rf")"
json '"idle sessions on one ricochetd (after EHLO): %d open (%d answered NOOP afterwards, %d refused), RSS %.1f MiB -> %.1f MiB: %.0f bytes per session; total %.1f MiB (target < 100 MiB)" % (d["sessions"], d["alive_after"], d["refused"], d["rss_before_kib"] / 1024, d["rss_after_kib"] / 1024, d["per_session_bytes"], d["rss_after_kib"] / 1024)' <<<"$idle"
