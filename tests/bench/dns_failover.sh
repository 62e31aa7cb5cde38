#!/usr/bin/env bash
# MX failover time, measured (not asserted): a 2+2+1 cluster on 127.0.2.x with
# a 300 ms election timeout; kill -9 of every node of the leader's site at
# once; then dig (UDP, no retries) asks a node of the other site for the relay
# MX every ~20 ms until only the other site's nodes are listed. Prints one
# line per run and the median/max. Repeated RUNS times, once with the default
# health settings and once with fast ones (health.interval=100ms,
# health.fail_after=2).
#   tests/bench/dns_failover.sh [RUNS]   (default 5 per setting)
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export RICOCHET_BUILD=${RICOCHET_BUILD:-$here/build}
RUNS=${1:-5}
NET=127.0.2
BASE=60
DIR=$(mktemp -d /tmp/dns-failover.XXXXXX)
cluster() { "$here/scripts/cluster" "$@" --dir "$DIR/c"; }
cleanup() {
    cluster down >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap cleanup EXIT

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
mx_of() { # mx_of NODE_ID -> sorted "pref host" lines, empty on no answer
    dig +short +time=1 +tries=1 -p 5353 "@$NET.$((BASE + $1))" relay.mx.ricochet.test MX 2>/dev/null | sort
}
site_of() { case $1 in 1|2) echo a ;; 3|4) echo b ;; *) echo w ;; esac; }

one_run() { # one_run SET... -> prints milliseconds
    local sets=()
    for s in "$@"; do sets+=(--set "$s"); done
    cluster up --layout 2+2+1 --net $NET --base $BASE --set delivery.resolver=127.0.0.1:9 "${sets[@]}" > /dev/null
    local leader="" i
    # a settled cluster: a site node leads and all four SMTP nodes are listed
    for i in $(seq 1 300); do
        leader=$("$RICOCHET_BUILD/ricochetctl" -s "$NET.$((BASE + 1)):8080" --timeout 2 cluster --json 2>/dev/null |
                 python3 -c 'import json,sys; print(json.load(sys.stdin).get("leader") or "")' 2>/dev/null || true)
        if [ -n "$leader" ] && [ "$leader" != 5 ] && [ "$(mx_of 1 | wc -l)" = 4 ] && [ "$(mx_of 3 | wc -l)" = 4 ]; then break; fi
        sleep 0.1
    done
    local lsite dead other
    lsite=$(site_of "$leader")
    if [ "$lsite" = a ]; then dead="1 2"; other=3; else dead="3 4"; other=1; fi
    local want
    if [ $other = 1 ]; then want=$(printf '10 n1.mx.ricochet.test.\n10 n2.mx.ricochet.test.'); else want=$(printf '10 n3.mx.ricochet.test.\n10 n4.mx.ricochet.test.'); fi
    local pids=()
    for n in $dead; do pids+=("$(cat "$DIR/c/n$n/pid")"); done
    local t0
    t0=$(now_ms)
    kill -9 "${pids[@]}"
    local got="" t1=0
    for i in $(seq 1 3000); do
        got=$(mx_of $other)
        if [ "$got" = "$want" ]; then t1=$(now_ms); break; fi
        sleep 0.02
    done
    cluster down > /dev/null 2>&1 || true
    if [ "$t1" = 0 ]; then echo "timeout"; else echo $((t1 - t0)); fi
}

summary() { # summary NAME values...
    local name=$1; shift
    printf '%s\n' "$@" | grep -v timeout | sort -n | awk -v name="$name" '{a[NR]=$1} END {
        if (NR == 0) { print name " no successful run"; exit }
        printf "%s runs=%d median_ms=%d max_ms=%d min_ms=%d\n", name, NR, a[int((NR + 1) / 2)], a[NR], a[1] }'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ), runs=$RUNS"
for setting in default fast; do
    sets=(raft.election_timeout=300ms dns.rrl=false)
    [ $setting = fast ] && sets+=(health.interval=100ms health.fail_after=2 health.ok_after=2)
    vals=()
    for r in $(seq 1 "$RUNS"); do
        v=$(one_run "${sets[@]}")
        echo "$setting run=$r failover_ms=$v (${sets[*]})"
        vals+=("$v")
    done
    summary "$setting" "${vals[@]}"
done
