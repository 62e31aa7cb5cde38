#!/bin/bash
# The authoritative responder against real clients: dig (bind9-dnsutils) and
# kdig (knot-dnsutils) over UDP and TCP against dns_testd serving a view
# file. MX/A/AAAA/NS/SOA answers with AA, REFUSED outside the zone, NXDOMAIN
# and NODATA with the SOA, case echoed, ANY minimal, TC then TCP retry,
# pipelined TCP (kdig +keepopen and raw pipelined writes), a changed view
# (SIGHUP) changing the answers, servfail mode, RRL slip, malformed packets,
# TCP idle timeout and connection limit. Every daemon must exit 0 on SIGTERM
# (under ASan: no error, no leak).
set -u
BUILD=${RICOCHET_BUILD:?}
TESTD=$BUILD/tests/dns_testd
PY=/usr/bin/python3
IP=127.0.0.39
PORT=12190     # main daemon, no RRL
PORT2=12191    # RRL and TCP limits
PORT3=12192    # big view (truncation)
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir dns-clients
FAIL=0
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; [ -n "${2:-}" ] && sed 's/^/    /' "$2"; FAIL=1; }
check() { # check NAME FILE PATTERN... (every pattern must match a line)
    local name=$1 file=$2; shift 2
    for pat in "$@"; do
        grep -qE -- "$pat" "$file" || { bad "$name: no line matching /$pat/" "$file"; return; }
    done
    ok "$name"
}

write_view() { # write_view FILE LEADER_SITE SERIAL N3_HEALTHY
    cat > "$1" <<VIEW
# test view
zone mx.test
relay relay
bounce bounce
ttl 30
serial $3
leader_site $2
node n1 site=a ipv4=127.0.0.31 ipv6=fd00::31
node n2 site=a ipv4=127.0.0.32
node n3 site=b ipv4=127.0.0.33 healthy=$4
node n4 site=b ipv4=127.0.0.34
node w1.witness site=c ipv6=fd00::35 smtp=0
extra @ TXT "v=spf1 ip4:127.0.0.0/8 -all"
VIEW
}
write_view "$DIR/view" a 7 0
{
    echo "zone mx.test"; echo "relay relay"; echo "serial 1"; echo "leader_site s1"
    for i in $(seq 1 40); do
        echo "node smtp-node-with-a-rather-long-name-$i site=s$((i % 2)) ipv4=127.0.1.$i dns=$((i < 3))"
    done
} > "$DIR/big.view"

start() { # start NAME PORT VIEW ARGS...
    local name=$1 port=$2 view=$3; shift 3
    RICOCHET_LOG_LEVEL=debug "$TESTD" --listen $IP:$port --view "$view" "$@" > "$DIR/$name.out" 2>&1 &
    local pid=$!
    PIDS+=($pid)
    eval "PID_$name=$pid"
    for i in $(seq 1 100); do
        grep -q '^ready' "$DIR/$name.out" && return 0
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    echo "dns_testd $name did not start:"; cat "$DIR/$name.out"; exit 1
}
start main $PORT "$DIR/view" --no-rrl
start lim $PORT2 "$DIR/view" --rrl-rate 1 --rrl-slip 1 --tcp-idle-ms 300 --tcp-max-clients 2
start big $PORT3 "$DIR/big.view" --no-rrl

D="dig -p $PORT @$IP +norecurse"
K="kdig -p $PORT @$IP"

# --- answers over UDP and TCP, dig and kdig
for tr in "" "+tcp"; do
    t=${tr:-+notcp}
    $D $tr relay.mx.test MX > "$DIR/mx$t" 2>&1
    check "dig_mx$t" "$DIR/mx$t" 'status: NOERROR' 'flags: qr aa;' \
        '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+10 n1\.mx\.test\.$' \
        '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+10 n2\.mx\.test\.$' \
        '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+20 n4\.mx\.test\.$' \
        '^n1\.mx\.test\.\s+30\s+IN\s+AAAA\s+fd00::31$' 'ANSWER: 3,'
    $K $tr relay.mx.test MX > "$DIR/kmx$t" 2>&1
    check "kdig_mx$t" "$DIR/kmx$t" 'status: NOERROR' 'Flags: qr aa' \
        '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+10 n1\.mx\.test\.$' \
        '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+20 n4\.mx\.test\.$'
    $K $tr n1.mx.test A > "$DIR/ka$t" 2>&1
    check "kdig_a$t" "$DIR/ka$t" '^n1\.mx\.test\.\s+30\s+IN\s+A\s+127\.0\.0\.31$'
done
grep -q 'n3\.mx\.test' "$DIR/mx+notcp" && bad "unhealthy n3 listed" "$DIR/mx+notcp" || ok "unhealthy_node_not_in_mx"
$D n1.mx.test AAAA > "$DIR/aaaa" 2>&1
check dig_aaaa "$DIR/aaaa" '^n1\.mx\.test\.\s+30\s+IN\s+AAAA\s+fd00::31$' 'flags: qr aa;'
$D mx.test NS > "$DIR/ns" 2>&1
check dig_ns_with_glue "$DIR/ns" 'ANSWER: 4,' '^mx\.test\.\s+30\s+IN\s+NS\s+w1\.witness\.mx\.test\.$' \
    '^n2\.mx\.test\.\s+30\s+IN\s+A\s+127\.0\.0\.32$' '^w1\.witness\.mx\.test\.\s+30\s+IN\s+AAAA\s+fd00::35$'
$D mx.test SOA > "$DIR/soa" 2>&1
check dig_soa "$DIR/soa" '^mx\.test\.\s+30\s+IN\s+SOA\s+n1\.mx\.test\. hostmaster\.mx\.test\. 7 300 60 86400 30$'
$D mx.test TXT > "$DIR/txt" 2>&1
check dig_static_txt "$DIR/txt" 'v=spf1 ip4:127\.0\.0\.0/8 -all'

# --- negative answers
$D example.com A > "$DIR/ref" 2>&1
check refused_outside "$DIR/ref" 'status: REFUSED' 'flags: qr;' 'ANSWER: 0, AUTHORITY: 0'
dig -p $PORT @$IP example.com A > "$DIR/ref_rd" 2>&1   # RD asked: still no recursion, RA clear
check refused_rd_no_ra "$DIR/ref_rd" 'status: REFUSED' 'flags: qr rd;' 'recursion requested but not available'
$K +tcp . NS > "$DIR/kref" 2>&1
check kdig_refused_root_tcp "$DIR/kref" 'status: REFUSED'
$D nope.mx.test A > "$DIR/nx" 2>&1
check nxdomain "$DIR/nx" 'status: NXDOMAIN' 'flags: qr aa;' 'AUTHORITY: 1' '^mx\.test\.\s+30\s+IN\s+SOA\s'
$D relay.mx.test A > "$DIR/nodata" 2>&1
check nodata "$DIR/nodata" 'status: NOERROR' 'ANSWER: 0, AUTHORITY: 1' '^mx\.test\.\s+30\s+IN\s+SOA\s'
$K witness.mx.test A > "$DIR/ent" 2>&1
check nodata_empty_nonterminal "$DIR/ent" 'status: NOERROR' 'AUTHORITY: 1'

# --- case echoed, ANY minimal, EDNS
$D ReLaY.mX.TeSt MX > "$DIR/case" 2>&1
check case_echoed "$DIR/case" '^;ReLaY\.mX\.TeSt\.\s+IN\s+MX$' 'ANSWER: 3,'
$D mx.test ANY > "$DIR/any" 2>&1
check any_minimal "$DIR/any" 'ANSWER: 1,' '^mx\.test\.\s+30\s+IN\s+SOA\s'
$D +bufsize=4096 mx.test SOA > "$DIR/edns" 2>&1
check edns_opt "$DIR/edns" 'EDNS: version: 0, flags:; udp: 1232'
$D +noedns mx.test SOA > "$DIR/noedns" 2>&1
check no_edns_no_opt "$DIR/noedns" 'ADDITIONAL: 0'
$D +edns=1 +noednsneg mx.test SOA > "$DIR/badvers" 2>&1
check edns_badvers "$DIR/badvers" 'status: BADVERS'

# --- truncation and TCP fallback (40 MX records)
DB="dig -p $PORT3 @$IP +norecurse"
$DB +ignore +noedns relay.mx.test MX > "$DIR/tc" 2>&1
check tc_over_udp_512 "$DIR/tc" 'flags: qr aa tc;' 'ANSWER: 0,' 'MSG SIZE  rcvd: [0-9]{2,3}$'
$DB +ignore +bufsize=1232 relay.mx.test MX > "$DIR/tc1232" 2>&1
check tc_over_udp_1232 "$DIR/tc1232" 'flags: qr aa tc;'
$DB relay.mx.test MX > "$DIR/retry" 2>&1
check tc_then_tcp_retry "$DIR/retry" 'Truncated, retrying in TCP mode' 'ANSWER: 40,' \
    '\(TCP\)' 'relay\.mx\.test\.\s+30\s+IN\s+MX\s+10 smtp-node-with-a-rather-long-name-9\.mx\.test\.'
kdig -p $PORT3 @$IP relay.mx.test MX > "$DIR/kretry" 2>&1
check kdig_tc_then_tcp "$DIR/kretry" 'ANSWER: 40;|ANSWER: 40,|ANSWER: 40 ' 'TCP'

# --- pipelined TCP: kdig on one kept-open connection, then raw pipelining
before=$(grep -c 'event=tcp_accept' "$DIR/main.out")
$K +tcp +keepopen relay.mx.test MX n1.mx.test A mx.test SOA nope.mx.test A > "$DIR/keep" 2>&1
after=$(grep -c 'event=tcp_accept' "$DIR/main.out")
check kdig_keepopen_answers "$DIR/keep" '10 n1\.mx\.test\.' '127\.0\.0\.31' 'hostmaster\.mx\.test\.' 'status: NXDOMAIN'
[ $((after - before)) = 1 ] && ok "kdig_keepopen_one_connection" \
    || bad "kdig +keepopen used $((after - before)) connections" "$DIR/main.out"
cat > "$DIR/dnsq.py" <<'PYEOF'
import socket, struct, sys
def name(s):
    return b''.join(bytes([len(l)]) + l.encode() for l in s.split('.') if l) + b'\0'
def query(qid, qn, qt, flags=0):
    return struct.pack('>HHHHHH', qid, flags, 1, 0, 0, 0) + name(qn) + struct.pack('>HH', qt, 1)
def recv_exact(s, n):
    b = b''
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b
def read_msg(s):
    h = recv_exact(s, 2)
    if h is None:
        return None
    return recv_exact(s, struct.unpack('>H', h)[0])
host, port, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if mode == 'pipeline':
    s = socket.create_connection((host, port), timeout=10)
    qs = [query(100 + i, n, t) for i, (n, t) in enumerate(
        [('relay.mx.test', 15), ('n1.mx.test', 1), ('mx.test', 6), ('nope.mx.test', 1), ('example.com', 1)])]
    s.sendall(b''.join(struct.pack('>H', len(q)) + q for q in qs))  # one write, five queries
    for i in range(len(qs)):
        m = read_msg(s)
        print('answer id=%d rcode=%d an=%d' % (struct.unpack('>H', m[:2])[0], m[3] & 15, struct.unpack('>H', m[6:8])[0]))
    s.close()
elif mode == 'many':  # 3000 pipelined queries, answers left unread at first
    s = socket.create_connection((host, port), timeout=30)
    q = query(1, 'relay.mx.test', 15)
    s.sendall((struct.pack('>H', len(q)) + q) * 3000)
    n = 0
    while read_msg(s) is not None:
        n += 1
    print('many answers=%d then closed' % n)
elif mode == 'split':  # one query delivered byte by byte
    s = socket.create_connection((host, port), timeout=10)
    q = query(7, 'n2.mx.test', 1)
    for b in struct.pack('>H', len(q)) + q:
        s.send(bytes([b]))
    m = read_msg(s)
    print('split id=%d rcode=%d an=%d' % (struct.unpack('>H', m[:2])[0], m[3] & 15, struct.unpack('>H', m[6:8])[0]))
elif mode == 'garbage':
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    import random
    rnd = random.Random(5)
    for i in range(300):
        u.sendto(bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300))), (host, port))
    # header-valid but malformed: qdcount 2 → FORMERR
    u.sendto(struct.pack('>HHHHHH', 0xABCD, 0, 2, 0, 0, 0) + name('mx.test') + b'\0\1\0\1', (host, port))
    while True:
        d, _ = u.recvfrom(65535)
        if d[:2] == b'\xab\xcd':
            print('formerr rcode=%d' % (d[3] & 15))
            break
elif mode == 'rrl':
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    for i in range(20):
        u.sendto(query(i, 'n1.mx.test', 1), (host, port))
    tc = full = 0
    try:
        for i in range(20):
            d, _ = u.recvfrom(65535)
            if d[2] & 2:
                tc += 1
            else:
                full += 1
    except socket.timeout:
        pass
    print('rrl full=%d tc=%d' % (full, tc))
elif mode == 'idle':  # the server closes an idle connection
    s = socket.create_connection((host, port), timeout=30)
    print('idle closed=%s' % (s.recv(10) == b''))
elif mode == 'limit':  # tcp_max_clients=2: the third connection is closed at once
    a = socket.create_connection((host, port), timeout=10)
    b = socket.create_connection((host, port), timeout=10)
    q = query(9, 'n1.mx.test', 1)
    a.sendall(struct.pack('>H', len(q)) + q)
    print('first answered=%s' % (read_msg(a) is not None))
    c = socket.create_connection((host, port), timeout=10)
    try:
        c.sendall(struct.pack('>H', len(q)) + q)
        r = read_msg(c)
    except (ConnectionResetError, BrokenPipeError):
        r = None
    print('third answered=%s' % (r is not None))
    b.sendall(struct.pack('>H', len(q)) + q)
    print('second answered=%s' % (read_msg(b) is not None))
PYEOF
$PY "$DIR/dnsq.py" $IP $PORT pipeline > "$DIR/pipe" 2>&1
check tcp_pipelined_in_order "$DIR/pipe" '^answer id=100 rcode=0 an=3$' '^answer id=101 rcode=0 an=1$' \
    '^answer id=102 rcode=0 an=1$' '^answer id=103 rcode=3 an=0$' '^answer id=104 rcode=5 an=0$'
[ "$(head -1 "$DIR/pipe")" = "answer id=100 rcode=0 an=3" ] || bad "pipelined answers out of order" "$DIR/pipe"
# more unread answers than tcp_max_pending (reading pauses, then resumes),
# and tcp_max_queries (default 1000) ends the connection after its answers
$PY "$DIR/dnsq.py" $IP $PORT many > "$DIR/many" 2>&1
check tcp_backpressure_and_max_queries "$DIR/many" '^many answers=1000 then closed$'
$PY "$DIR/dnsq.py" $IP $PORT split > "$DIR/split" 2>&1
check tcp_byte_by_byte "$DIR/split" '^split id=7 rcode=0 an=1$'

# --- malformed input: answered or dropped, the server lives on
$PY "$DIR/dnsq.py" $IP $PORT garbage > "$DIR/garbage" 2>&1
check malformed_formerr "$DIR/garbage" '^formerr rcode=1$'
kill -0 $PID_main 2>/dev/null && $D n1.mx.test A > "$DIR/alive" 2>&1
check alive_after_garbage "$DIR/alive" 'status: NOERROR'

# --- a changed view changes the answers (SIGHUP swaps the zone)
write_view "$DIR/view" b 8 1
kill -HUP $PID_main
for i in $(seq 1 50); do
    $D +short mx.test SOA 2>/dev/null | grep -q ' 8 300 ' && break
    sleep 0.1
done
$D relay.mx.test MX > "$DIR/mx2" 2>&1
check view_change_mx "$DIR/mx2" '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+10 n3\.mx\.test\.$' \
    '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+10 n4\.mx\.test\.$' '^relay\.mx\.test\.\s+30\s+IN\s+MX\s+20 n1\.mx\.test\.$' 'ANSWER: 4,'
$K +tcp mx.test SOA > "$DIR/soa2" 2>&1
check view_change_serial "$DIR/soa2" 'hostmaster\.mx\.test\. 8 300 60 86400 30'
echo "zone bad zone" > "$DIR/view.bad"; cp "$DIR/view.bad" "$DIR/view"
kill -HUP $PID_main
for i in $(seq 1 50); do grep -q 'event=reload_failed' "$DIR/main.out" && break; sleep 0.1; done
$D mx.test SOA > "$DIR/soa3" 2>&1
check bad_view_keeps_old_zone "$DIR/soa3" 'hostmaster\.mx\.test\. 8 300'

# --- servfail mode (lease lost), and back
kill -USR1 $PID_main
for i in $(seq 1 50); do grep -q 'event=servfail_mode on=1' "$DIR/main.out" && break; sleep 0.1; done
$D relay.mx.test MX > "$DIR/sf" 2>&1
check servfail_mode "$DIR/sf" 'status: SERVFAIL'
$D example.com A > "$DIR/sfref" 2>&1
check servfail_mode_outside_refused "$DIR/sfref" 'status: REFUSED'
kill -USR2 $PID_main
for i in $(seq 1 50); do grep -q 'event=servfail_mode on=0' "$DIR/main.out" && break; sleep 0.1; done
$K +tcp relay.mx.test MX > "$DIR/sfback" 2>&1
check servfail_mode_off "$DIR/sfback" 'status: NOERROR'

# --- RRL (1/s, slip 1: limited answers come back truncated), TCP limits
$PY "$DIR/dnsq.py" $IP $PORT2 rrl > "$DIR/rrl" 2>&1
if grep -qE '^rrl full=([1-9]|1[0-9]) tc=([1-9]|1[0-9])$' "$DIR/rrl"; then ok rrl_slip_truncates; else bad rrl_slip_truncates "$DIR/rrl"; fi
dig -p $PORT2 @$IP n1.mx.test A > "$DIR/rrltcp" 2>&1   # TC → dig retries on TCP, not limited
check rrl_tcp_still_answers "$DIR/rrltcp" 'status: NOERROR' '127\.0\.0\.31'
$PY "$DIR/dnsq.py" $IP $PORT2 idle > "$DIR/idle" 2>&1
check tcp_idle_timeout "$DIR/idle" '^idle closed=True$'
$PY "$DIR/dnsq.py" $IP $PORT2 limit > "$DIR/limit" 2>&1
check tcp_connection_limit "$DIR/limit" '^first answered=True$' '^third answered=False$' '^second answered=True$'

# --- clean exit (ASan: no leaks, no errors)
for name in main lim big; do
    eval "pid=\$PID_$name"
    kill -TERM $pid; wait $pid; rc=$?
    [ $rc = 0 ] && ok "exit_clean_$name" || bad "dns_testd $name exit $rc" "$DIR/$name.out"
done
PIDS=()
exit $FAIL
