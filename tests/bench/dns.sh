#!/usr/bin/env bash
# Benchmark of the authoritative responder, in one run, same query mix (MX,
# A, NS, SOA, NXDOMAIN), dnsperf against:
#   nsd       NSD serving the zone dns_testd computes from a 5-node view, dumped
#   ricochet  dns_testd (the dns/ library alone) serving that view
#   nsd1      NSD serving the zone of a one-node Ricochet cluster, dumped
#   ricochetd a real one-node ricochetd (raft, SMTP, HTTP running) serving it
# Prints queries/s, p99 latency (from dnsperf -v per-query latencies), the
# server's CPU time and queries per CPU second (dnsperf shares the 2 cores
# with the server) and the ratios. Figures only, nothing asserted.
#   tests/bench/dns.sh [SECONDS]   (default 10 per server)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${RICOCHET_BUILD:-$here/build}
SECS=${1:-10}
IP=127.0.2.38
IP_D=127.0.2.41   # ricochetd (raft, peer, smtp, http ports on this address)
PORT_R=12180
PORT_N=12181
PORT_N1=12182
PORT_D=12183
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir dns-bench

cat > "$DIR/view" <<VIEW
zone mx.bench
relay relay
bounce bounce
ttl 30
serial 1
leader_site a
node n1 site=a ipv4=127.0.2.31 ipv6=fd00::31
node n2 site=a ipv4=127.0.2.32
node n3 site=b ipv4=127.0.2.33
node n4 site=b ipv4=127.0.2.34
node w1 site=c ipv4=127.0.2.35 smtp=0
extra @ TXT "v=spf1 ip4:127.0.0.0/8 -all"
VIEW
"$BUILD/tests/dns_testd" --view "$DIR/view" --dump > "$DIR/mx.bench.zone"
# The zone ricochetd publishes for a one-node cluster (node 1 is "n1").
cat > "$DIR/view1" <<VIEW
zone mx.bench
relay relay
bounce bounce
ttl 30
serial 2
leader_site a
node n1 site=a ipv4=$IP_D
extra @ TXT "v=spf1 ip4:127.0.0.0/8 -all"
VIEW
mkdir -p "$DIR/z1"
"$BUILD/tests/dns_testd" --view "$DIR/view1" --dump > "$DIR/z1/mx.bench.zone"

NSD_OPTIONS="minimal-responses: yes
refuse-any: yes
rrl-ratelimit: 0
rrl-whitelist-ratelimit: 0
verbosity: 0"
nsd_start "$DIR/nsd-$PORT_N" "$DIR" $IP $PORT_N "$NSD_OPTIONS" mx.bench
PID_nsd=$NSD_PID
nsd_start "$DIR/nsd-$PORT_N1" "$DIR/z1" $IP $PORT_N1 "$NSD_OPTIONS" mx.bench
PID_nsd1=$NSD_PID

# A one-node ricochetd with DNS on $IP_D:$PORT_D (RRL off, as NSD's).
mkdir -p "$DIR/rd/data"
cat > "$DIR/rd/ricochet.conf" <<CONF
[node]
id = 1
data_dir = $DIR/rd/data
log_level = warn
[cluster]
secret = bench-secret-0123456789
raft_port = 12190
peer_port = 12191
smtp_port = 12192
submission_port = 0
http_port = 12193
[raft]
election_timeout = 300ms
min_free_disk = 16M
[dns]
listen = $IP_D:$PORT_D
zone = mx.bench
rrl = false
extra = @ TXT "v=spf1 ip4:127.0.0.0/8 -all"
[member.1]
site = a
address = $IP_D
CONF
"$BUILD/ricochetd" -c "$DIR/rd/ricochet.conf" > "$DIR/rd/out" 2>&1 &
PIDS+=($!)
PID_ricochetd=$!
"$BUILD/tests/dns_testd" --listen $IP:$PORT_R --view "$DIR/view" --no-rrl > "$DIR/testd.out" 2>&1 &
PIDS+=($!)
PID_ricochet=$!
for ep in $IP:$PORT_N $IP:$PORT_R $IP:$PORT_N1 $IP_D:$PORT_D; do
    ok=0
    for i in $(seq 1 150); do
        if dig +short +time=1 +tries=1 -p "${ep##*:}" "@${ep%:*}" relay.mx.bench MX 2>/dev/null | grep -q n1; then ok=1; break; fi
        sleep 0.1
    done
    [ $ok = 1 ] || { echo "dns.sh: $ep does not answer" >&2; cat "$DIR/rd/out" >&2; exit 1; }
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
run() { # run NAME PORT [IP]
    local pid
    eval "pid=\$PID_$1"
    local c0
    c0=$(cpu_ticks $pid)
    dnsperf -s "${3:-$IP}" -p $2 -d "$DIR/queries" -l "$SECS" -c 4 -q 64 -v > "$DIR/$1.perf" 2>&1
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
run nsd1 $PORT_N1
run ricochetd $PORT_D $IP_D
awk -v r="$QPS_ricochet" -v n="$QPS_nsd" 'BEGIN {printf "ratio ricochet/nsd=%.2f (dns_testd, 5-node view)\n", r / n}'
awk -v r="$QPS_ricochetd" -v n="$QPS_nsd1" 'BEGIN {printf "ratio ricochetd/nsd=%.2f (ricochetd, one-node cluster zone)\n", r / n}'
