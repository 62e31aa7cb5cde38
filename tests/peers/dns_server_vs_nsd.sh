#!/bin/bash
# Differential test against a reference authoritative server: NSD serves the
# zone dns_testd computes from a view (dns_testd --dump, minimal responses),
# and for the same queries dig must see the same status, the same AA flag
# and the same answer and authority sections (sorted) from both, over UDP
# and TCP, whatever the case of the name asked.
set -u
BUILD=${RICOCHET_BUILD:?}
TESTD=$BUILD/tests/dns_testd
IP=127.0.0.37
PORT_R=12170
PORT_N=12171
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir dns-vs-nsd
FAIL=0

cat > "$DIR/view" <<VIEW
zone mx.diff
relay relay
bounce bounce.mx.diff.
ttl 60
soa_minimum 20
serial 2026112201
leader_site b
node n1 site=a ipv4=127.0.0.31 ipv6=fd00::31
node n2 site=a ipv4=127.0.0.32 drained=1
node n3.site-b site=b ipv4=127.0.0.33
node n4.site-b site=b ipv4=127.0.0.34 ipv6=fd00::34 healthy=0
node w1 site=c ipv6=fd00::35 smtp=0
extra @ TXT "v=spf1 ip4:127.0.0.0/8 -all"
extra _dmarc TXT "v=DMARC1; p=reject"
extra relay TXT "relay"
VIEW
"$TESTD" --view "$DIR/view" --dump > "$DIR/mx.diff.zone" || { echo "dump failed"; exit 1; }
nsd_start "$DIR" "$DIR" $IP $PORT_N "minimal-responses: yes
rrl-ratelimit: 0
verbosity: 1" mx.diff
"$TESTD" --listen $IP:$PORT_R --view "$DIR/view" --no-rrl > "$DIR/testd.out" 2>&1 &
PID_R=$!
PIDS+=($PID_R)
for port in $PORT_N $PORT_R; do
    for i in $(seq 1 100); do
        dig +short +time=1 +tries=1 -p $port @$IP mx.diff SOA 2>/dev/null | grep -q hostmaster && break
        sleep 0.1
    done
    dig +short -p $port @$IP mx.diff SOA | grep -q hostmaster \
        || { echo "server on port $port did not start"; cat "$DIR"/*.out "$DIR/nsd.log" 2>/dev/null; exit 1; }
done

# the status line's rcode and flags, then the answer and authority sections, sorted
summary() { # summary PORT ARGS...
    local port=$1; shift
    local out
    out=$(dig -p "$port" @$IP +norecurse "$@" 2>&1)
    echo "$out" | sed -n 's/.*status: \([A-Z]*\),.*/status \1/p'
    echo "$out" | sed -n 's/^;; flags: \([a-z ]*\);.*/flags \1/p'
    dig -p "$port" @$IP +norecurse +noall +answer +authority "$@" 2>&1 | tr -s ' \t' ' ' | sort
}
N=0
compare() { # compare ARGS...
    N=$((N + 1))
    summary $PORT_N "$@" > "$DIR/nsd.$N"
    summary $PORT_R "$@" > "$DIR/ric.$N"
    if [ ! -s "$DIR/nsd.$N" ] || ! grep -q '^status' "$DIR/nsd.$N"; then
        echo "FAIL no answer from NSD for: $*"; FAIL=1; return
    fi
    if diff -u "$DIR/nsd.$N" "$DIR/ric.$N" > "$DIR/diff.$N"; then
        echo "ok   same_as_nsd: $*"
    else
        echo "FAIL differs from NSD: $*"; sed 's/^/    /' "$DIR/diff.$N"; FAIL=1
    fi
}
for tr in +notcp +tcp; do
    for q in "relay.mx.diff MX" "bounce.mx.diff MX" "RELAY.Mx.Diff MX" "n1.mx.diff A" "n1.mx.diff AAAA" \
             "n3.site-b.mx.diff A" "w1.mx.diff AAAA" "mx.diff NS" "mx.diff SOA" "mx.diff TXT" \
             "_dmarc.mx.diff TXT" "relay.mx.diff TXT" "nope.mx.diff A" "deep.nope.mx.diff MX" \
             "relay.mx.diff A" "site-b.mx.diff A" "Site-B.MX.diff MX" "n1.mx.diff MX" "mx.diff A" \
             "example.com A" "diff NS" ; do
        compare $tr $q
    done
done
# the published MX set itself, for the record: leader site b first
dig -p $PORT_R @$IP +short relay.mx.diff MX | sort > "$DIR/mxset"
if [ "$(cat "$DIR/mxset")" = "10 n3.site-b.mx.diff.
20 n1.mx.diff." ]; then echo "ok   mx_set_leader_site_first"; else echo "FAIL mx set:"; cat "$DIR/mxset"; FAIL=1; fi

kill -TERM $PID_R; wait $PID_R; rc=$?
[ $rc = 0 ] && echo "ok   exit_clean" || { echo "FAIL dns_testd exit $rc"; cat "$DIR/testd.out"; FAIL=1; }
exit $FAIL
