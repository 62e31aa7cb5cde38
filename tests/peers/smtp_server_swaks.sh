#!/bin/bash
# The SMTP server library against real clients (swaks, Postfix's
# smtp-source) through smtp_testd: plain, relay policy, STARTTLS, AUTH
# PLAIN/LOGIN over STARTTLS only, pipelining, oversize 552, connection
# limits, refusal at connect, 20 concurrent smtp-source sessions, graceful
# shutdown with a message in flight. The TLS certificate is generated here.
set -u
BUILD=${RICOCHET_BUILD:?}
TESTD=$BUILD/tests/smtp_testd
CTL=$BUILD/ricochetctl
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir smtp-server-swaks
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
check_not() { # check_not NAME FILE PATTERN
    if grep -qE -- "$3" "$2"; then echo "FAIL $1: /$3/ found in:"; sed 's/^/    /' "$2"; FAIL=1; return; fi
    echo "ok   $1"
}
wait_ready() { # wait_ready FILE
    for i in $(seq 1 400); do grep -q ready "$1" 2>/dev/null && return 0; sleep 0.05; done
    echo "smtp_testd did not start:"; cat "$1"; exit 1
}
spool_id() { grep -oE 'queued as T[0-9]+' "$1" | tail -1 | awk '{print $3}'; }

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$DIR/key.pem" -out "$DIR/cert.pem" -days 2 \
    -subj /CN=testd.ricochet.test >/dev/null 2>&1 || { echo "openssl req failed"; exit 1; }
# Users: one line from the project's generator, one computed independently
# (PBKDF2-HMAC-SHA256 in Python) to pin the file format.
echo 'alice secret' | "$CTL" passwd alice > "$DIR/users" || { echo "ricochetctl passwd failed"; exit 1; }
/usr/bin/python3 - >> "$DIR/users" <<'PY'
import base64, hashlib, os
salt = os.urandom(16)
h = hashlib.pbkdf2_hmac("sha256", b"b0b-pass", salt, 1000, 32)
print("bob:pbkdf2-sha256:1000:%s:%s" % (base64.b64encode(salt).decode(), base64.b64encode(h).decode()))
PY

MX=127.0.0.21:12001; SUB=127.0.0.21:12002
mkdir -p "$DIR/spool" "$DIR/spool2" "$DIR/spool3" "$DIR/spool4"
MAINPID=
"$TESTD" --mx $MX --submission $SUB --spool "$DIR/spool" --cert "$DIR/cert.pem" --key "$DIR/key.pem" \
    --users "$DIR/users" --local-domain bounce.ricochet.test --local-domain fb.ricochet.test \
    --relay-networks "127.0.0.22/32, ::1/128" --max-size 100000 --max-rcpt 3 --delay-ms 20 \
    > "$DIR/testd.out" 2> "$DIR/testd.err" & MAINPID=$!; PIDS+=($MAINPID)
wait_ready "$DIR/testd.out"
SW="swaks --server 127.0.0.21 --port 12001 --helo client.test --from sender@example.org"

# 1. plain, local domain from anyone; the stored message has the Received: header
$SW --to dsn@bounce.ricochet.test > "$DIR/plain.out" 2>&1
check plain "$DIR/plain.out" '<- +250 2.0.0 Ok: queued as T[0-9]+'
ID=$(spool_id "$DIR/plain.out")
check plain_stored "$DIR/spool/$ID.eml" '^X-Env-From: <sender@example.org>' '^X-Env-Rcpt: <dsn@bounce.ricochet.test>' \
    '^Received: from client.test \(\[127.0.0.1\]\)' 'by testd.ricochet.test \(Ricochet\) with ESMTP id '"$ID" '^X-Env-Tls: 0'

# 2. relay policy: another domain from a stranger is refused, from relay_networks accepted
$SW --to victim@elsewhere.example > "$DIR/relay.out" 2>&1
check relay_denied "$DIR/relay.out" '<\*\* +550 5.7.1 <victim@elsewhere.example>: Relay access denied'
$SW --local-interface 127.0.0.22 --to friend@elsewhere.example > "$DIR/relaynet.out" 2>&1
check relay_network "$DIR/relaynet.out" '<- +250 2.0.0 Ok: queued as'
for trick in 'victim%elsewhere.example@bounce.ricochet.test' 'elsewhere.example!victim@bounce.ricochet.test' \
             '@bounce.ricochet.test:victim@elsewhere.example' '"victim@elsewhere.example"@bounce.ricochet.test' \
             'victim@bounce.ricochet.test.'; do
    $SW --to "$trick" > "$DIR/trick.out" 2>&1
    check "relay_trick $trick" "$DIR/trick.out" '<\*\* +55[03] 5\.[17]\.[13]'
done

# 3. STARTTLS; the Received: header names the TLS version and cipher
$SW --to dsn@bounce.ricochet.test --tls > "$DIR/tls.out" 2>&1
check starttls "$DIR/tls.out" '-> STARTTLS' '<- +220 2.0.0 Ready to start TLS' 'TLS started with cipher TLSv1\.[23]' \
    '<~ +250 2.0.0 Ok: queued as'
ID=$(spool_id "$DIR/tls.out")
check starttls_received "$DIR/spool/$ID.eml" 'using TLSv1\.[23] with cipher' 'with ESMTPS id' '^X-Env-Tls: 1'

# 4. AUTH only after STARTTLS; submission needs AUTH to relay
SWS="swaks --server 127.0.0.21 --port 12002 --helo client.test --from alice@example.org --to far@elsewhere.example"
$SWS > "$DIR/sub_noauth.out" 2>&1
check submission_needs_auth "$DIR/sub_noauth.out" '<\*\* +530 5.7.0 Authentication required'
$SWS --auth PLAIN --auth-user alice --auth-password 'alice secret' > "$DIR/auth_plain_notls.out" 2>&1
check_not auth_not_offered_in_clear "$DIR/auth_plain_notls.out" '235 2.7.0'
check auth_not_offered_in_clear_msg "$DIR/auth_plain_notls.out" 'not advertise|AUTH'
$SWS --tls --auth PLAIN --auth-user alice --auth-password 'alice secret' > "$DIR/auth_plain.out" 2>&1
check auth_plain_tls "$DIR/auth_plain.out" '<~ +250-AUTH PLAIN LOGIN' '<~ +235 2.7.0 Authentication successful' \
    '<~ +250 2.0.0 Ok: queued as'
ID=$(spool_id "$DIR/auth_plain.out")
check auth_recorded "$DIR/spool/$ID.eml" '^X-Env-Auth: alice' 'with ESMTPSA id'
$SWS --tls --auth LOGIN --auth-user bob --auth-password 'b0b-pass' > "$DIR/auth_login.out" 2>&1
check auth_login_tls "$DIR/auth_login.out" '<~ +235 2.7.0 Authentication successful' '<~ +250 2.0.0 Ok: queued as'
$SWS --tls --auth LOGIN --auth-user bob --auth-password 'wrong' > "$DIR/auth_bad.out" 2>&1
check auth_wrong_password "$DIR/auth_bad.out" '<~\* +535 5.7.8'

# 5. pipelining (swaks), DSN parameters recorded (Python's smtplib: this
# swaks has no DSN options)
$SW --to a@bounce.ricochet.test --pipeline > "$DIR/pipe.out" 2>&1
check pipelining "$DIR/pipe.out" '<- +250-PIPELINING' '<- +250 2.0.0 Ok: queued as'
/usr/bin/python3 - > "$DIR/dsn.out" 2>&1 <<'PY'
import smtplib
s = smtplib.SMTP("127.0.0.21", 12001, local_hostname="client.test")
r = s.sendmail("a@example.org", ["b@bounce.ricochet.test"], b"Subject: dsn\r\n\r\nbody\r\n",
               mail_options=["RET=HDRS", "ENVID=env+2Did"],
               rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig+2Bx@example.org"])
print("sent", r)
s.quit()
PY
check dsn_sent "$DIR/dsn.out" '^sent \{\}'
F=$(grep -l '^X-Env-Rcpt: <b@bounce.ricochet.test>' "$DIR"/spool/*.eml | head -1)
check dsn_recorded "${F:-/dev/null}" '^X-Env-Rcpt: <b@bounce.ricochet.test> notify=SUCCESS,FAILURE orcpt=rfc822;orig\+x@example.org' \
    '^X-Env-Ret: HDRS' '^X-Env-Envid: env-id'

# 6. too many recipients
$SW --to r1@bounce.ricochet.test,r2@bounce.ricochet.test,r3@bounce.ricochet.test,r4@bounce.ricochet.test \
    > "$DIR/rcpts.out" 2>&1
check too_many_rcpts "$DIR/rcpts.out" '<\*\* +452 4.5.3 Too many recipients'

# 7. oversize: 552 after DATA (the data is read and dropped), and at MAIL with SIZE=
head -c 300000 /dev/zero | tr '\0' 'x' | fold -w 76 > "$DIR/big.txt"
$SW --to big@bounce.ricochet.test --body "$DIR/big.txt" > "$DIR/big.out" 2>&1
check oversize_data "$DIR/big.out" '<\*\* +552 5.3.4'
/usr/bin/python3 - > "$DIR/size.out" 2>&1 <<'PY'
import smtplib
s = smtplib.SMTP("127.0.0.21", 12001, local_hostname="client.test")
s.ehlo()
print(s.mail("a@example.org", ["SIZE=200000"]))
s.quit()
PY
check oversize_mail_size "$DIR/size.out" "552, b'5.3.4"

# 7b. hostile input over a real socket: smuggling, NUL, overlong line,
# unknown command, then too many errors closes the session
/usr/bin/python3 - > "$DIR/hostile.out" 2>&1 <<'PY'
import socket
s = socket.create_connection(("127.0.0.21", 12001)); s.settimeout(120)
f = s.makefile("rb")
def line():
    return f.readline().decode(errors="replace").strip()
def final():  # last line of a (possibly multiline) reply
    l = line()
    while len(l) > 3 and l[3] == "-":
        l = line()
    return l
print("greet", final())
s.sendall(b"EHLO c\r\n"); print("ehlo", final())
s.sendall(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<x@bounce.ricochet.test>\r\nDATA\r\n")
print("mail", final()); print("rcpt", final()); print("data", final())
s.sendall(b"Subject: s\r\n\r\nx\n.\r\nMAIL FROM:<evil@example.org>\r\nRCPT TO:<y@bounce.ricochet.test>\r\nDATA\r\nevil\r\n.\r\n")
print("smuggle", final())
s.sendall(b"NO\x00OP\r\n"); print("nul", final())
s.sendall(b"NOOP " + b"x" * 3000 + b"\r\n"); print("long", final())
s.sendall(b"XYZZY\r\n"); print("unknown", final())
for i in range(12):
    s.sendall(b"XYZZY\r\n")
    l = final()
    if not l.startswith("502"):
        print("errors", l); break
print("eof", f.readline() == b"")
PY
check hostile_wire "$DIR/hostile.out" '^data 354 ' '^smuggle 550 5.6.0' '^nul 500 5.5.2' '^long 500 5.5.2 Line too long' \
    '^unknown 502 5.5.2' '^errors 421 4.7.0' '^eof True'
check_not hostile_no_smuggled_mail "$DIR/hostile.out" '250 2.1.0.*evil|^smuggle 250'

# 8. smtp-source: 20 sessions, 200 messages of 2 KiB, all accepted
before=$(ls "$DIR/spool" | wc -l)
smtp-source -c -s 20 -m 200 -l 2048 -f src@example.org -t sink@bounce.ricochet.test 127.0.0.21:12001 \
    > "$DIR/source.out" 2>&1
after=$(ls "$DIR/spool" | wc -l)
echo "smtp-source stored $((after - before)) messages" > "$DIR/source.count"
check smtp_source_20_sessions "$DIR/source.count" '^smtp-source stored 200 messages$'
check_not smtp_source_no_errors "$DIR/source.out" 'error|fatal|warning'

# 9. refusal at connect (the node's admission hook), connection limits
M2=127.0.0.23:12003
"$TESTD" --mx $M2 --spool "$DIR/spool2" --refuse-connect > "$DIR/testd2.out" 2>&1 & PIDS+=($!)
M3=127.0.0.24:12004
"$TESTD" --mx $M3 --spool "$DIR/spool3" --max-conn-ip 2 --max-conn 3 > "$DIR/testd3.out" 2>&1 & PIDS+=($!)
wait_ready "$DIR/testd2.out"; wait_ready "$DIR/testd3.out"
swaks --server 127.0.0.23 --port 12003 --to a@b.example > "$DIR/refuse.out" 2>&1
check refused_at_connect "$DIR/refuse.out" '<\*\* +421 4.3.2 No cluster leader, try another MX'
/usr/bin/python3 - > "$DIR/limits.out" 2>&1 <<'PY'
import socket
def conn(src):
    s = socket.socket(); s.bind((src, 0)); s.connect(("127.0.0.24", 12004))
    return s, s.recv(200).decode().strip()
held = []
for src in ("127.0.0.25", "127.0.0.25"):
    s, g = conn(src); held.append(s); print("first", g)
s, g = conn("127.0.0.25"); print("per_ip", g)
s2, g = conn("127.0.0.26"); held.append(s2); print("other_ip", g)
s3, g = conn("127.0.0.27"); print("total", g)
PY
check conn_limits "$DIR/limits.out" '^first 220 ' '^per_ip 421 4.7.0 Too many connections' '^other_ip 220 ' \
    '^total 421 4.7.0 Too many connections'

# 10. command timeout: an idle client is told 421 4.4.2 and disconnected
M5=127.0.0.29:12006
"$TESTD" --mx $M5 --spool "$DIR/spool3" --command-timeout-ms 300 > "$DIR/testd5.out" 2>&1 & PIDS+=($!)
wait_ready "$DIR/testd5.out"
/usr/bin/python3 - > "$DIR/timeout.out" 2>&1 <<'PY'
import socket
s = socket.create_connection(("127.0.0.29", 12006))
s.settimeout(120)  # only against a hang; the server speaks first
f = s.makefile("rb")
print("greeting", f.readline().decode().strip())
print("idle", f.readline().decode().strip())
print("eof", f.readline() == b"")
PY
check command_timeout "$DIR/timeout.out" '^greeting 220 ' '^idle 421 4.4.2 ' '^eof True'

# 11. graceful shutdown: SIGTERM while a message waits for its reply
M4=127.0.0.28:12005
"$TESTD" --mx $M4 --spool "$DIR/spool4" --delay-ms 1500 --local-domain bounce.ricochet.test > "$DIR/testd4.out" 2>&1 & TPID=$!; PIDS+=($TPID)
wait_ready "$DIR/testd4.out"
swaks --server 127.0.0.28 --port 12005 --to a@bounce.ricochet.test > "$DIR/drain.out" 2>&1 & SPID=$!; PIDS+=($SPID)
for i in $(seq 1 400); do [ -n "$(ls "$DIR/spool4")" ] && break; sleep 0.05; done
kill -TERM $TPID
wait $SPID
wait $TPID; echo "testd exit $?" >> "$DIR/testd4.out"
check drain_pending_gets_250 "$DIR/drain.out" '<- +250 2.0.0 Ok: queued as'
check drain_stopped "$DIR/testd4.out" '^stopped$' '^testd exit 0$'

check_not no_tls_errors "$DIR/testd.err" 'tls_failed'
# the main server (TLS, AUTH, 200+ sessions behind it) stops cleanly; under
# ASan this is where leaks would show
kill -TERM $MAINPID; wait $MAINPID; echo "exit $?" >> "$DIR/testd.out"
check main_stopped "$DIR/testd.out" '^stopped$' '^exit 0$'
check_not main_no_sanitizer_report "$DIR/testd.err" 'Sanitizer|runtime error'
exit $FAIL
