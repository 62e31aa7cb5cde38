#!/bin/bash
# MX resolution and delivery through a real DNS server: NSD on loopback
# serves the test zones; dns_resolver (through egress_send) must find MX
# hosts in preference order, fall back to A without MX, refuse null MX and
# NXDOMAIN permanently, treat SERVFAIL and an unanswered resolver as
# temporary, and fall back to TCP when the UDP answer is truncated. A
# delivery through the resolved MX list reaches Postfix's smtp-sink after the
# first hosts refuse connections.
set -u
BUILD=${RICOCHET_BUILD:?}
SEND=$BUILD/tests/egress_send
IP=127.0.0.61
DNSPORT=12553
SMTPPORT=12526
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir egress-mx
FAIL=0
check() { # check NAME FILE PATTERN...
    local name=$1 file=$2; shift 2
    for pat in "$@"; do
        if ! grep -qE -- "$pat" "$file"; then
            echo "FAIL $name: no line matching /$pat/ in:"; sed 's/^/    /' "$file"; FAIL=1; return
        fi
    done
    echo "ok   $name"
}

{
cat <<ZONE
\$ORIGIN egress.test.
\$TTL 300
@        IN SOA ns.egress.test. hostmaster.egress.test. 1 3600 600 86400 60
@        IN NS  ns
ns       IN A   $IP
mx       IN MX  10 mx1.mx
mx       IN MX  10 mx2.mx
mx       IN MX  20 mx3.mx
mx1.mx   IN A   127.0.0.62
mx2.mx   IN A   127.0.0.63
mx3.mx   IN A   $IP
amx      IN A   127.0.0.64
nullmx   IN MX  0 .
noaddr   IN MX  10 nothing.egress.test.
ZONE
for i in $(seq 1 90); do echo "big      IN MX  $i host-with-a-long-name-$i.big"; done
for i in $(seq 1 90); do echo "host-with-a-long-name-$i.big IN A 127.0.0.65"; done
} > "$DIR/egress.test.zone"
printf 'broken.test. IN SOA this is not a zone\n' > "$DIR/broken.test.zone"
nsd_start "$DIR" "$DIR" $IP $DNSPORT "verbosity: 1" egress.test broken.test
for i in $(seq 1 100); do
    dig +short +time=1 +tries=1 -p $DNSPORT @$IP ns.egress.test A 2>/dev/null | grep -q "$IP" && break
    sleep 0.1
done
dig +short -p $DNSPORT @$IP ns.egress.test A | grep -q "$IP" || { echo "nsd did not start"; cat "$DIR/nsd.out" "$DIR/nsd.log"; exit 1; }

/usr/sbin/smtp-sink -u nobody -c 127.0.0.62:$SMTPPORT 10 > "$DIR/sink.out" 2>&1 &
PIDS+=($!)
/usr/sbin/smtp-sink -u nobody -c $IP:$SMTPPORT 10 > "$DIR/sink3.out" 2>&1 &
PIDS+=($!)
for i in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.62/$SMTPPORT) 2>/dev/null && (exec 3<>/dev/tcp/$IP/$SMTPPORT) 2>/dev/null && break
    sleep 0.1
done

R="--resolver $IP:$DNSPORT --dns-timeout 500"
# egress_send must exit 0 (under ASan, a leak or an error report makes it fail)
SEND_BIN=$SEND
SEND=send_checked
send_checked() {
    "$SEND_BIN" "$@"
    local rc=$?
    if [ $rc != 0 ]; then echo "FAIL egress_send exit $rc ($*)" >&2; echo "EXIT $rc" >> "$DIR/failures"; fi
    return 0
}

# MX in preference order; the pref-10 pair is shuffled, pref 20 last
$SEND $R --domain mx.egress.test > "$DIR/mx.out" 2>"$DIR/mx.err"
check mx_order "$DIR/mx.out" '^mx status=ok err=ok implicit=0 n=3$' \
    '^target host=mx3.mx.egress.test addr=127.0.0.61:25 pref=20$'
[ "$(sed -n 4p "$DIR/mx.out")" = "target host=mx3.mx.egress.test addr=127.0.0.61:25 pref=20" ] \
    || { echo "FAIL mx_order: pref 20 not last"; FAIL=1; }
# shuffling among equal preferences: both pref-10 hosts come first in some run
FIRSTS=""
for i in $(seq 1 40); do
    FIRSTS="$FIRSTS $($SEND $R --domain mx.egress.test 2>/dev/null | sed -n 2p | awk '{print $2}')"
done
echo "$FIRSTS" | grep -q mx1.mx && echo "$FIRSTS" | grep -q mx2.mx && echo "ok   mx_shuffle" \
    || { echo "FAIL mx_shuffle: first hosts were$FIRSTS"; FAIL=1; }

$SEND $R --domain amx.egress.test > "$DIR/amx.out" 2>&1
check implicit_mx "$DIR/amx.out" '^mx status=ok err=ok implicit=1 n=1$' \
    '^target host=amx.egress.test addr=127.0.0.64:25 pref=0$'
$SEND $R --domain nullmx.egress.test > "$DIR/null.out" 2>&1
check null_mx "$DIR/null.out" '^mx status=permfail err=nullmx implicit=0 n=0$'
$SEND $R --domain nope.egress.test > "$DIR/nx.out" 2>&1
check nxdomain "$DIR/nx.out" '^mx status=permfail err=nxdomain implicit=0 n=0$'
$SEND $R --domain noaddr.egress.test > "$DIR/noaddr.out" 2>&1
check no_address "$DIR/noaddr.out" '^mx status=permfail err=noaddr implicit=0 n=0$'
$SEND $R --domain mail.broken.test > "$DIR/sf.out" 2>&1
check servfail "$DIR/sf.out" '^mx status=tempfail err=servfail implicit=0 n=0$'
$SEND --resolver 127.0.0.69:12599 --dns-timeout 200 --domain mx.egress.test > "$DIR/to.out" 2>&1
check dns_timeout "$DIR/to.out" '^mx status=tempfail err=timeout implicit=0 n=0$'
# 90 MX records do not fit in a UDP answer: TC, then TCP
dig -p $DNSPORT @$IP +bufsize=1232 +ignore big.egress.test MX | grep -q 'flags:.* tc' \
    && echo "ok   big_is_truncated_over_udp" || { echo "FAIL big answer not truncated"; FAIL=1; }
RICOCHET_LOG_LEVEL=debug $SEND $R --domain big.egress.test > "$DIR/big.out" 2>&1
check tcp_fallback "$DIR/big.out" '^mx status=ok err=ok implicit=0 n=10$' \
    '^target host=host-with-a-long-name-1.big.egress.test addr=127.0.0.65:25 pref=1$' \
    'event=tcp_fallback name=big.egress.test type=15'

# delivery through the MX list: 127.0.0.63 refuses, smtp-sink on .62 (or on .61
# after both pref-10 hosts) accepts
$SEND $R --domain mx.egress.test --port $SMTPPORT --rcpt a@mx.egress.test --rcpt b@mx.egress.test \
    > "$DIR/deliver.out" 2>&1
check deliver_via_mx "$DIR/deliver.out" \
    '^rcpt=a@mx.egress.test outcome=delivered code=250 enhanced=2.0.0 internal=none\(0\) host=mx1.mx.egress.test addr=127.0.0.62:12526' \
    '^rcpt=b@mx.egress.test outcome=delivered code=250'
[ -s "$DIR/failures" ] && { echo "FAIL egress_send exited non-zero:"; cat "$DIR/failures"; FAIL=1; }
exit $FAIL
