#!/usr/bin/env bash
# Benchmark of the authoritative responder: dnsperf against NSD serving an
# equivalent static zone (the zone dns_testd computes, dumped) and against
# dns_testd serving the view, in one run, same query mix (MX, A, NS, SOA,
# NXDOMAIN). Prints queries/s, p99 latency (from dnsperf -v per-query
# latencies), the server's CPU time and queries per CPU second (dnsperf shares
# the 2 cores with the server) and the ratio. Figures only, nothing asserted.
#   tests/bench/dns.sh [SECONDS]   (default 10 per server)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${RICOCHET_BUILD:-$here/build}
SECS=${1:-10}
IP=127.0.0.38
PORT_R=12180
PORT_N=12181
DIR=$(mktemp -d /tmp/dns-bench.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$DIR"
}
trap cleanup EXIT

cat > "$DIR/view" <<VIEW
zone mx.bench
relay relay
bounce bounce
ttl 30
serial 1
leader_site a
node n1 site=a ipv4=127.0.0.31 ipv6=fd00::31
node n2 site=a ipv4=127.0.0.32
node n3 site=b ipv4=127.0.0.33
node n4 site=b ipv4=127.0.0.34
node w1 site=c ipv4=127.0.0.35 smtp=0
extra @ TXT "v=spf1 ip4:127.0.0.0/8 -all"
VIEW
"$BUILD/tests/dns_testd" --view "$DIR/view" --dump > "$DIR/mx.bench.zone"
cat > "$DIR/nsd.conf" <<CONF
server:
  ip-address: $IP@$PORT_N
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: "$DIR"
  database: ""
  pidfile: "$DIR/nsd.pid"
  xfrdfile: "$DIR/xfrd.state"
  zonelistfile: "$DIR/zone.list"
  logfile: "$DIR/nsd.log"
  server-count: 1
  minimal-responses: yes
  refuse-any: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: mx.bench
  zonefile: mx.bench.zone
CONF
/usr/sbin/nsd -d -c "$DIR/nsd.conf" > "$DIR/nsd.out" 2>&1 &
PIDS+=($!)
PID_nsd=$!
"$BUILD/tests/dns_testd" --listen $IP:$PORT_R --view "$DIR/view" --no-rrl > "$DIR/testd.out" 2>&1 &
PIDS+=($!)
PID_ricochet=$!
for port in $PORT_N $PORT_R; do
    for i in $(seq 1 100); do
        dig +short +time=1 +tries=1 -p $port @$IP mx.bench SOA 2>/dev/null | grep -q hostmaster && break
        sleep 0.1
    done
done
printf '%s\n' "relay.mx.bench MX" "n1.mx.bench A" "mx.bench NS" "mx.bench SOA" "nope.mx.bench A" > "$DIR/queries"

descendants() { local c; for c in $(pgrep -P "$1" || true); do echo "$c"; descendants "$c"; done; }
cpu_ticks() { # user+system ticks of a process and its descendants (NSD forks main and server processes)
    local t=0 p
    for p in $1 $(descendants "$1"); do
        # fields after the command name, which may contain spaces ("nsd: server 1")
        t=$((t + $(sed 's/.*) //' /proc/$p/stat | awk '{print $12 + $13}')))
    done
    echo $t
}
run() { # run NAME PORT
    local pid
    eval "pid=\$PID_$1"
    local c0
    c0=$(cpu_ticks $pid)
    dnsperf -s $IP -p $2 -d "$DIR/queries" -l "$SECS" -c 4 -q 64 -v > "$DIR/$1.perf" 2>&1
    local qps p99
    qps=$(awk '/Queries per second:/ {print $4}' "$DIR/$1.perf")
    p99=$(awk '$1 == ">" {print $NF}' "$DIR/$1.perf" | sort -g | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.3f", a[i]*1000}')
    local lost
    lost=$(awk '/Queries lost:/ {print $3}' "$DIR/$1.perf")
    local c1 cpu
    c1=$(cpu_ticks $pid)
    cpu=$(awk -v t=$((c1 - c0)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}')
    local completed
    completed=$(awk '/Queries completed:/ {print $3}' "$DIR/$1.perf")
    echo "$1 qps=$qps p99_ms=$p99 lost=$lost server_cpu_s=$cpu queries_per_cpu_s=$(awk -v q="$completed" -v c="$cpu" 'BEGIN {printf "%.0f", (c > 0 ? q / c : 0)}')"
    eval "QPS_$1=$qps"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ), ${SECS}s per server"
run nsd $PORT_N
run ricochet $PORT_R
awk -v r="$QPS_ricochet" -v n="$QPS_nsd" 'BEGIN {printf "ratio ricochet/nsd=%.2f\n", r / n}'
