#!/bin/bash
# SMTP client against real servers: a scripted aiosmtpd server (4xx/5xx per
# recipient, 421 greeting, no EHLO, stalls, drop after DATA, SIZE, STARTTLS)
# and Postfix's smtp-sink (pipelining, connection reuse). egress_send prints
# one line per recipient; the server logs what it received.
set -u
BUILD=${RICOCHET_BUILD:?}
SRC=${RICOCHET_SRC:?}
SEND=$BUILD/tests/egress_send
SMTPD="/usr/bin/python3 $SRC/tests/peers/egress_smtpd.py"
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir egress-smtp
FAIL=0
check() { # check NAME FILE PATTERN...   (each pattern must match a line)
    local name=$1 file=$2; shift 2
    for pat in "$@"; do
        if ! grep -qE -- "$pat" "$file"; then
            echo "FAIL $name: no line matching /$pat/ in:"; sed 's/^/    /' "$file"; FAIL=1; return
        fi
    done
    echo "ok   $name"
}
wait_port() {
    for i in $(seq 1 200); do (exec 3<>/dev/tcp/$1/$2) 2>/dev/null && return 0; sleep 0.05; done
    echo "server $1:$2 did not start"; exit 1
}

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" -days 2 \
    -subj /CN=scripted.egress.test >/dev/null 2>&1

S_PIPE=127.0.0.62:12530;  $SMTPD --listen $S_PIPE --pipelining --log "$DIR/pipe.log" > "$DIR/s1.out" 2>&1 & PIDS+=($!)
S_SEQ=127.0.0.62:12531;   $SMTPD --listen $S_SEQ --size 2000 --log "$DIR/seq.log" > "$DIR/s2.out" 2>&1 & PIDS+=($!)
S_421=127.0.0.63:12532;   $SMTPD --listen $S_421 --mode greet421 --log "$DIR/421.log" > "$DIR/s3.out" 2>&1 & PIDS+=($!)
S_HELO=127.0.0.63:12533;  $SMTPD --listen $S_HELO --mode noehlo --log "$DIR/helo.log" > "$DIR/s4.out" 2>&1 & PIDS+=($!)
S_STALL=127.0.0.63:12534; $SMTPD --listen $S_STALL --mode greetstall --log "$DIR/stall.log" > "$DIR/s5.out" 2>&1 & PIDS+=($!)
S_M451=127.0.0.64:12535;  $SMTPD --listen $S_M451 --mode mail451 --log "$DIR/m451.log" > "$DIR/s6.out" 2>&1 & PIDS+=($!)
S_TLS=127.0.0.64:12536;   $SMTPD --listen $S_TLS --pipelining --tls-cert "$DIR/cert.pem" --tls-key "$DIR/key.pem" --log "$DIR/tls.log" > "$DIR/s7.out" 2>&1 & PIDS+=($!)
S_554=127.0.0.67:12540;   $SMTPD --listen $S_554 --mode greet554 --log "$DIR/554.log" > "$DIR/s8.out" 2>&1 & PIDS+=($!)
S_LONG=127.0.0.67:12541;  $SMTPD --listen $S_LONG --mode longline --log "$DIR/long.log" > "$DIR/s9.out" 2>&1 & PIDS+=($!)
S_MIXED=127.0.0.67:12542; $SMTPD --listen $S_MIXED --mode mixedcodes --log "$DIR/mixed.log" > "$DIR/s10.out" 2>&1 & PIDS+=($!)
S_SINK=127.0.0.65:12537;  /usr/sbin/smtp-sink -u nobody -c $S_SINK 20 > "$DIR/sinkd.out" 2>&1 & PIDS+=($!)
S_CLOSED=127.0.0.66:12538 # nothing listens here
S_FULL=127.0.0.66:12539   # listens with a full accept queue: SYNs are dropped
/usr/bin/python3 -c '
import socket, time
s = socket.socket(); s.bind(("127.0.0.66", 12539)); s.listen(0)
fill = []
for i in range(8):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(("127.0.0.66", 12539))
    except BlockingIOError: pass
    fill.append(c)
print("full", flush=True)
time.sleep(3600)' > "$DIR/full.out" 2>&1 & PIDS+=($!)
for s in $S_PIPE $S_SEQ $S_421 $S_HELO $S_STALL $S_M451 $S_TLS $S_554 $S_LONG $S_MIXED $S_SINK; do wait_port ${s%:*} ${s#*:}; done
for i in $(seq 1 200); do grep -q full "$DIR/full.out" && break; sleep 0.05; done

T="--connect-timeout 500 --greeting-timeout 500 --command-timeout 500 --final-timeout 500"
# egress_send must exit 0 (under ASan, a leak or an error report makes it fail)
run() {
    local out=$1; shift
    $SEND $T "$@" > "$DIR/$out" 2> "$DIR/$out.err"
    local rc=$?
    if [ $rc != 0 ]; then echo "FAIL egress_send exit $rc for $out:"; tail -30 "$DIR/$out.err"; FAIL=1; fi
}

MIX="--rcpt ok1@x.test --rcpt p550@x.test --rcpt p552@x.test --rcpt p554@x.test --rcpt t450@x.test --rcpt ok2@x.test"
for mode in pipe seq; do
    if [ $mode = pipe ]; then H=$S_PIPE; else H=$S_SEQ; fi
    run mix_$mode.out --host $H $MIX
    check per_rcpt_outcomes_$mode "$DIR/mix_$mode.out" \
        "^rcpt=ok1@x.test outcome=delivered code=250 enhanced=2.0.0 internal=none\(0\) host=$H addr=$H " \
        '^rcpt=p550@x.test outcome=failed code=550 enhanced=5.1.1 .*text="5.1.1 <p550@x.test>: Recipient address rejected: User unknown"$' \
        '^rcpt=p552@x.test outcome=failed code=552 enhanced=5.2.2 .*Mailbox full' \
        '^rcpt=p554@x.test outcome=failed code=554 enhanced=5.7.1 ' \
        '^rcpt=t450@x.test outcome=deferred code=450 enhanced=4.2.1 .*mailbox busy' \
        '^rcpt=ok2@x.test outcome=delivered code=250 '
done
# the server saw one message, for the two accepted recipients, with the body
# intact: CRLF everywhere and the dot-stuffing undone
/usr/bin/python3 - "$DIR/pipe.log" <<'PY' && echo "ok   body_crlf_and_dots" || { echo "FAIL body_crlf_and_dots"; FAIL=1; }
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
assert len(msgs) == 1, msgs
m = msgs[0]
assert m["rcpts"] == ["ok1@x.test", "ok2@x.test"], m
assert m["data"] == ("From: sender@example.net\r\nTo: rcpt@example.org\r\nSubject: test\r\n\r\n"
                     "Hello.\r\n.leading dot\r\n..two dots\r\n.\r\nlast line without newline\r\n"), m["data"]
PY

# 451 first, 250 on the retry, over the same connection (RSET, reuse)
run retry.out --host $S_PIPE --rcpt t451once@x.test --repeat 2
check temp_then_ok "$DIR/retry.out" \
    '^rcpt=t451once@x.test outcome=deferred code=451 enhanced=4.3.0 .* reused=0 reusable=1 ' \
    '^rcpt=t451once@x.test outcome=delivered code=250 .* reused=1 reusable=1 '

# SIZE: too big → permanent, nothing sent; small enough → SIZE= and BODY=8BITMIME sent
run big.out --host $S_SEQ --rcpt ok1@x.test --body-size 5000
check size_too_big "$DIR/big.out" \
    '^rcpt=ok1@x.test outcome=failed code=552 enhanced=5.3.4 internal=message_too_big\(166\) .*exceeds the limit 2000'
run small.out --host $S_SEQ --rcpt ok3@x.test --body-size 100 --8bit
check size_ok "$DIR/small.out" '^rcpt=ok3@x.test outcome=delivered code=250 '
/usr/bin/python3 - "$DIR/seq.log" <<'PY' && echo "ok   size_and_8bitmime_params" || { echo "FAIL size_and_8bitmime_params"; FAIL=1; }
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
assert all(len(m["data"]) < 2000 for m in msgs), "a message over SIZE was sent"
last = msgs[-1]
assert last["rcpts"] == ["ok3@x.test"], last
opts = last["mail_options"]
assert "BODY=8BITMIME" in opts and any(o.startswith("SIZE=") and int(o[5:]) == len(last["data"].encode("latin-1")) + 3 for o in opts), opts
PY

# a body with 8-bit bytes is declared BODY=8BITMIME and arrives byte for byte
printf 'Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve \xff\r\n' > "$DIR/8bit.eml"
run eight.out --host $S_PIPE --rcpt eight@x.test --body "$DIR/8bit.eml"
check eight_bit_delivered "$DIR/eight.out" '^rcpt=eight@x.test outcome=delivered code=250 '
/usr/bin/python3 - "$DIR/pipe.log" <<'PY' && echo "ok   eight_bit_body" || { echo "FAIL eight_bit_body"; FAIL=1; }
import json, sys
m = [json.loads(l) for l in open(sys.argv[1]) if '"eight@x.test"' in l][-1]
assert "BODY=8BITMIME" in m["mail_options"], m
assert m["data"].encode("latin-1") == b"Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve \xff\r\n", m["data"]
PY

# 421 greeting → next host; alone → deferred with the 421
run g421.out --host $S_421 --host $S_PIPE --rcpt ok4@x.test
check greet421_next_host "$DIR/g421.out" "^rcpt=ok4@x.test outcome=delivered code=250 .* addr=$S_PIPE "
run g421only.out --host $S_421 --rcpt ok4@x.test
check greet421_deferred "$DIR/g421only.out" \
    "^rcpt=ok4@x.test outcome=deferred code=421 enhanced=4.3.2 internal=none\(0\) host=$S_421 "
# 554 multiline greeting on the only host → permanent, with the whole text
run g554.out --host $S_554 --rcpt ok4@x.test
check greet554_failed "$DIR/g554.out" \
    '^rcpt=ok4@x.test outcome=failed code=554 enhanced=5.7.1 .*text="5.7.1 No SMTP service here 5.7.1 Go away"$'
# hostile replies: a line over the limit, mixed codes → protocol error, next host
run long.out --host $S_LONG --rcpt ok4@x.test
check overlong_reply "$DIR/long.out" '^rcpt=ok4@x.test outcome=deferred code=0 enhanced=- internal=protocol_error\(164\) .*too long'
run mixed.out --host $S_MIXED --host $S_PIPE --rcpt ok4@x.test
check mixed_codes_next_host "$DIR/mixed.out" "^rcpt=ok4@x.test outcome=delivered code=250 .* addr=$S_PIPE "
run mixed2.out --host $S_MIXED --rcpt ok4@x.test
check mixed_codes "$DIR/mixed2.out" '^rcpt=ok4@x.test outcome=deferred code=0 enhanced=- internal=protocol_error\(164\) .*different codes'
# EHLO refused → HELO
run helo.out --host $S_HELO --rcpt ok5@x.test
check helo_fallback "$DIR/helo.out" '^rcpt=ok5@x.test outcome=delivered code=250 '
# connection refused → next host; alone → connect_failed
run refused.out --host $S_CLOSED --host $S_PIPE --rcpt ok6@x.test
check refused_next_host "$DIR/refused.out" "^rcpt=ok6@x.test outcome=delivered .* addr=$S_PIPE "
run refusedonly.out --host $S_CLOSED --rcpt ok6@x.test
check connect_failed "$DIR/refusedonly.out" '^rcpt=ok6@x.test outcome=deferred code=0 enhanced=- internal=connect_failed\(162\) '
# the timeouts: connect (160), greeting/commands (146), after the final dot (147)
run cto.out --host $S_FULL --rcpt ok7@x.test
check connect_timeout "$DIR/cto.out" '^rcpt=ok7@x.test outcome=deferred code=0 enhanced=- internal=connect_timeout\(160\) '
run gto.out --host $S_STALL --rcpt ok7@x.test
check greeting_timeout "$DIR/gto.out" '^rcpt=ok7@x.test outcome=deferred code=0 enhanced=- internal=dialogue_timeout\(146\) '
run rto.out --host $S_PIPE --rcpt stallrcpt@x.test
check rcpt_timeout "$DIR/rto.out" '^rcpt=stallrcpt@x.test outcome=deferred code=0 enhanced=- internal=dialogue_timeout\(146\) '
run dto.out --host $S_PIPE --rcpt stalldata@x.test --rcpt ok8@x.test
check data_timeout "$DIR/dto.out" \
    '^rcpt=stalldata@x.test outcome=deferred code=0 enhanced=- internal=data_timeout\(147\) ' \
    '^rcpt=ok8@x.test outcome=deferred code=0 enhanced=- internal=data_timeout\(147\) '
run drop.out --host $S_PIPE --rcpt dropdata@x.test
check dropped_after_data "$DIR/drop.out" '^rcpt=dropdata@x.test outcome=deferred code=0 enhanced=- internal=dropped_after_data\(161\) '
# replies after DATA, and a refused MAIL
run d554.out --host $S_PIPE --rcpt d554@x.test --rcpt p550@x.test
check data_554 "$DIR/d554.out" '^rcpt=d554@x.test outcome=failed code=554 enhanced=5.7.1 ' \
    '^rcpt=p550@x.test outcome=failed code=550 '
run d451.out --host $S_SEQ --rcpt d451@x.test
check data_451 "$DIR/d451.out" '^rcpt=d451@x.test outcome=deferred code=451 enhanced=4.3.0 '
run m451.out --host $S_M451 --rcpt ok9@x.test --rcpt ok10@x.test
check mail_451 "$DIR/m451.out" '^rcpt=ok9@x.test outcome=deferred code=451 enhanced=4.3.0 ' \
    '^rcpt=ok10@x.test outcome=deferred code=451 '

# VERP: one transaction per recipient on one connection, return path decodes
run verp.out --host $S_PIPE --rcpt verp1@x.test --rcpt verp2@x.test --verp-secret 'a-bounce-secret-of-32-bytes-len!' \
    --verp-domain bounce.egress.test --msgid 01HZX3Q8Y2K5
check verp "$DIR/verp.out" '^verp from=b\+[a-z2-7]+@bounce.egress.test verp_ok=1 index=0$' \
    '^verp from=b\+[a-z2-7]+@bounce.egress.test verp_ok=1 index=1$' \
    '^rcpt=verp1@x.test outcome=delivered .* reused=0 ' '^rcpt=verp2@x.test outcome=delivered .* reused=1 '
grep -c '"mail_from": "b+' "$DIR/pipe.log" | grep -qx 2 && echo "ok   verp_return_path_seen_by_server" \
    || { echo "FAIL verp_return_path_seen_by_server"; FAIL=1; }

# Postfix smtp-sink: PIPELINING, several recipients, three transactions on one connection
run sink.out --host $S_SINK --rcpt a@sink.test --rcpt b@sink.test --rcpt c@sink.test --repeat 3
[ "$(grep -c '^rcpt=.* outcome=delivered code=250 ' "$DIR/sink.out")" = 9 ] && \
[ "$(grep -c ' reused=1 ' "$DIR/sink.out")" = 6 ] && echo "ok   smtp_sink_reuse" \
    || { echo "FAIL smtp_sink_reuse"; cat "$DIR/sink.out"; FAIL=1; }

# STARTTLS policy: required but not offered → tls_failed (next host first);
# none → plain text; opportunistic and required → TLS when offered, with
# EHLO again and pipelining inside TLS, and connection reuse under TLS
run tlsreq.out --host $S_PIPE --rcpt ok11@x.test --tls required
check tls_required_not_offered "$DIR/tlsreq.out" '^rcpt=ok11@x.test outcome=deferred code=0 enhanced=- internal=tls_failed\(165\) '
run tlsreq2.out --host $S_PIPE --host $S_TLS --rcpt ok11@x.test --tls required
check tls_required_next_host "$DIR/tlsreq2.out" "^rcpt=ok11@x.test outcome=delivered code=250 .* addr=$S_TLS tls=1 "
run tlsnone.out --host $S_TLS --rcpt ok12@x.test --tls none
check tls_none_plain "$DIR/tlsnone.out" '^rcpt=ok12@x.test outcome=delivered code=250 .* tls=0 '
run tlsopp.out --host $S_TLS --rcpt ok13@x.test --rcpt p550@x.test --rcpt ok14@x.test --repeat 2
check tls_opportunistic "$DIR/tlsopp.out" \
    '^rcpt=ok13@x.test outcome=delivered code=250 .* tls=1 reused=0 ' \
    '^rcpt=p550@x.test outcome=failed code=550 .* tls=1 ' \
    '^rcpt=ok14@x.test outcome=delivered code=250 .* tls=1 reused=1 '
run tlsopp2.out --host $S_PIPE --rcpt ok15@x.test
check tls_opportunistic_not_offered "$DIR/tlsopp2.out" '^rcpt=ok15@x.test outcome=delivered code=250 .* tls=0 '
/usr/bin/python3 - "$DIR/tls.log" <<'PY' && echo "ok   tls_seen_by_server" || { echo "FAIL tls_seen_by_server"; cat "$DIR/tls.log"; FAIL=1; }
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
by = {tuple(m["rcpts"]): m["tls"] for m in msgs}
assert by[("ok12@x.test",)] is False, by
assert by[("ok13@x.test", "ok14@x.test")] is True, by
assert by[("ok11@x.test",)] is True, by
assert sum(1 for m in msgs if m["rcpts"] == ["ok13@x.test", "ok14@x.test"]) == 2, by
PY
exit $FAIL
