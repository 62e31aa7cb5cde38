#!/bin/bash
# Contract test for the ricochetctl CLI: runs it against http_fake_node, a
# fake node's HTTP API (node/http_api.c) serving canned JSON in the shapes
# docs/CLI.md specifies, and checks what the CLI sends (the fake logs every
# request), prints, and exits with. It does not test the node itself.
#
# Addresses: 127.0.0.41-44, ports 12301-12399 (this helper's range).
set -u
FAKE=${1:?usage: ctl_contract.sh PATH/TO/http_fake_node}
CTL=${RICOCHET_BUILD:?}/ricochetctl
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/ctl_contract.XXXXXX)
LEADER=127.0.0.41:12301
FOLLOWER=127.0.0.42:12302
GARBAGE=127.0.0.43:12303
NOBODY=127.0.0.44:12399
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$WORK"
}
trap cleanup EXIT

FAILS=0
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
ok() { echo "ok: $*"; }

start_fake() { # name addr args...
    local name=$1 addr=$2
    shift 2
    "$FAKE" --listen "$addr" --log "$WORK/$name.log" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    eval "PID_$name=$!"
    for _ in $(seq 1 500); do
        grep -q listening "$WORK/$name.out" 2>/dev/null && return 0
        sleep 0.02
    done
    echo "fake $name did not start:"; cat "$WORK/$name.err"; exit 1
}

# run EXPECTED_RC ARGS...: runs ricochetctl, keeps stdout/stderr in OUT/ERR
run() {
    local want=$1
    shift
    "$CTL" "$@" >"$WORK/out" 2>"$WORK/err"
    RC=$?
    OUT=$(cat "$WORK/out")
    ERR=$(cat "$WORK/err")
    if [ "$RC" != "$want" ]; then
        fail "ricochetctl $* exited $RC, expected $want; stdout: $OUT; stderr: $ERR"
        return 1
    fi
    return 0
}
has() { # WHAT TEXT NEEDLE
    if printf '%s' "$2" | grep -qF -- "$3"; then ok "$1"; else fail "$1: no \"$3\" in: $2"; fi
}
logged() { # WHAT LOGFILE LINE (exact line)
    if grep -qxF -- "$3" "$2"; then ok "$1"; else fail "$1: no line \"$3\" in $(cat "$2")"; fi
}

start_fake leader "$LEADER"
start_fake follower "$FOLLOWER" --follower 2 --leader-http "$LEADER"
start_fake garbage "$GARBAGE" --garbage

# ---------------------------------------------------------------- cluster
run 0 -s "$LEADER" cluster && {
    has "cluster: summary line" "$OUT" "leader: 2  term: 7  commit: 1234  applied: 1230"
    has "cluster: table header" "$OUT" "ID  SITE  ROLE"
    echo "$OUT" | grep -Eq '^5 +w +voter/witness +unknown +ok +127\.0\.0\.5:2525 +127\.0\.0\.5:5353 +127\.0\.0\.5:8080 +127\.0\.0\.5:7001$' \
        && ok "cluster: witness row" || fail "cluster: witness row in: $OUT"
    echo "$OUT" | grep -Eq '^4 +b +standby +follower +DOWN ' && ok "cluster: unhealthy standby" || fail "cluster: standby row: $OUT"
}
curl -s "http://$LEADER/v1/cluster" >"$WORK/served.json"
for form in "-s $LEADER --json cluster" "-s $LEADER cluster --json" "cluster -s $LEADER --json" "--json cluster --server=$LEADER"; do
    # shellcheck disable=SC2086
    run 0 $form && {
        [ "$(printf '%s\n' "$OUT")" = "$(cat "$WORK/served.json")" ] \
            && ok "cluster --json ($form) prints the node's JSON as is" \
            || fail "cluster --json ($form): $OUT vs $(cat "$WORK/served.json")"
    }
done
run 0 --json -s "$LEADER" cluster && printf '%s' "$OUT" | $PY -c '
import json, sys
c = json.load(sys.stdin)
assert c["leader"] == 2 and c["term"] == 7 and c["commit_index"] == 1234, c
assert [n["id"] for n in c["nodes"]] == [1, 2, 3, 4, 5]
for n in c["nodes"]:
    for k in ("id", "site", "role", "healthy", "smtp", "dns", "http", "raft", "state"):
        assert k in n, (k, n)
' && ok "cluster --json: contract keys" || fail "cluster --json keys"
RICOCHET_SERVER=$LEADER run 0 cluster && has "RICOCHET_SERVER is the default" "$OUT" "leader: 2"
logged "cluster: GET /v1/cluster" "$WORK/leader.log" "GET /v1/cluster "

# ---------------------------------------------------------------- message
run 0 -s "$LEADER" message M1 && {
    has "message: header" "$OUT" "message M1 from <sender@example.com> received 2026-11-18T"
    has "message: recipient status" "$OUT" "alice@example.net  delivered"
    has "message: bounced recipient" "$OUT" "bob@example.org  bounced"
    echo "$OUT" | grep -Eq 'deferred +451 +4\.7\.1 +- +Greylisted, try later' && ok "message: history row" || fail "history row: $OUT"
    echo "$OUT" | grep -Eq 'bounced +550 +5\.1\.1 +userunknown +No such user' && ok "message: bounce reason" || fail "bounce row: $OUT"
}
run 0 -s "$LEADER" message M1 --json && printf '%s' "$OUT" | $PY -c '
import json, sys
m = json.load(sys.stdin)
assert m["id"] == "M1" and m["recipients"][0]["address"] == "alice@example.net"
assert m["recipients"][1]["history"][1]["reason"] == "userunknown"
' && ok "message --json" || fail "message --json: $OUT"
run 1 -s "$LEADER" message NOPE && has "message: 404 is a clear error" "$ERR" "ricochetctl: message: no such message (HTTP 404 from $LEADER)"
run 1 -s "$LEADER" --json message NOPE && has "message --json: error object on stdout" "$OUT" '"error":"no such message"'
run 0 -s "$LEADER" message --consistent M1 && logged "message --consistent asks for a barrier read" "$WORK/leader.log" "GET /v1/messages/M1 "
run 2 -s "$LEADER" message
run 2 -s "$LEADER" message A B

# --------------------------------------------------------------- transfer
run 0 -s "$LEADER" transfer --to 3 && has "transfer --to 3" "$OUT" "leadership transferred: leader is now node 3"
logged "transfer body" "$WORK/leader.log" 'POST /v1/cluster/transfer {"to":3}'
run 0 -s "$LEADER" transfer && logged "transfer without --to asks for any voter" "$WORK/leader.log" 'POST /v1/cluster/transfer {"to":0}'
run 0 -s "$LEADER" --json transfer --to=4 && has "transfer --json" "$OUT" '{"ok":true,"leader":4}'
run 1 -s "$LEADER" transfer --to 99 && has "transfer refused" "$ERR" "transfer: no such voter (HTTP 400"
run 2 -s "$LEADER" transfer --to abc && has "transfer --to abc" "$ERR" "is not a number"
run 2 -s "$LEADER" transfer --to
: >"$WORK/leader.log"
run 0 -s "$FOLLOWER" transfer --to 5 && has "transfer via a follower reaches the leader" "$OUT" "leader is now node 5"
has "transfer via a follower says so" "$ERR" "asking the leader at $LEADER"
logged "follower was asked first" "$WORK/follower.log" 'POST /v1/cluster/transfer {"to":5}'
logged "leader looked up on the follower" "$WORK/follower.log" "GET /v1/cluster "
logged "then the leader was asked" "$WORK/leader.log" 'POST /v1/cluster/transfer {"to":5}'

# ----------------------------------------------------------- suppressions
run 0 -s "$LEADER" suppressions list && {
    echo "$OUT" | grep -Eq '^old@example\.com +2026-11-0[0-9]T[0-9:]+Z +bounce +userunknown$' && ok "suppressions list row" || fail "list: $OUT"
    has "suppressions list count" "$OUT" "1 suppressed address(es)"
}
run 0 -s "$LEADER" suppressions add new@example.com --reason "asked by the recipient" \
    && has "suppressions add" "$OUT" "new@example.com is suppressed"
logged "suppressions add body" "$WORK/leader.log" 'POST /v1/suppressions {"address":"new@example.com","reason":"asked by the recipient"}'
run 0 -s "$LEADER" suppressions add plain@example.com && logged "suppressions add without reason" "$WORK/leader.log" 'POST /v1/suppressions {"address":"plain@example.com"}'
run 0 -s "$LEADER" --json suppressions list && printf '%s' "$OUT" | $PY -c '
import json, sys
s = json.load(sys.stdin)["suppressions"]
assert [x["address"] for x in s] == ["old@example.com", "new@example.com", "plain@example.com"], s
' && ok "suppressions list --json" || fail "suppressions --json: $OUT"
run 0 -s "$LEADER" suppressions remove new@example.com && has "suppressions remove" "$OUT" "new@example.com is no longer suppressed"
logged "suppressions remove path" "$WORK/leader.log" "DELETE /v1/suppressions/new@example.com "
run 1 -s "$LEADER" suppressions remove new@example.com && has "remove twice" "$ERR" "not suppressed (HTTP 404"
run 1 -s "$LEADER" suppressions remove "we ird/x@example.com"
logged "remove escapes the address" "$WORK/leader.log" "DELETE /v1/suppressions/we ird/x@example.com "
run 1 -s "$LEADER" suppressions add nobody && has "add refused" "$ERR" "an address (local@domain) is required (HTTP 400"
run 2 -s "$LEADER" suppressions
run 2 -s "$LEADER" suppressions frobnicate x@y
run 2 -s "$LEADER" suppressions add a@b --because x

# ------------------------------------------------------------------ drain
run 0 -s "$LEADER" drain 4 && has "drain node" "$OUT" "drained node(s) [4]"
logged "drain body (node)" "$WORK/leader.log" 'POST /v1/cluster/drain {"node":4}'
run 0 -s "$LEADER" undrain a && has "undrain site" "$OUT" "undrained node(s) [1,2]"
logged "undrain body (site)" "$WORK/leader.log" 'POST /v1/cluster/undrain {"site":"a"}'
run 1 -s "$LEADER" drain zz && has "drain unknown site" "$ERR" "no such node or site (HTTP 404"
run 0 -s "$LEADER" drain a --json && has "drain --json" "$OUT" '{"ok":true,"nodes":[1,2],"drained":true}'
run 2 -s "$LEADER" drain
run 2 -s "$LEADER" drain 4 5

# ------------------------------------------------------------------ probe
run 0 -s "$LEADER" probe --count 100 --size 2048 --inflight 8 \
    && has "probe" "$OUT" "committed 100 of 100 (failed 0) in 0.500 s: 200/s, p50 1.250 ms, p99 4.500 ms"
logged "probe body" "$WORK/leader.log" 'POST /v1/admin/probe {"count":100,"size":2048,"inflight":8}'
run 0 -s "$LEADER" probe --count 10 --size 64 --inflight 1 --rate 500 \
    && logged "probe --rate" "$WORK/leader.log" 'POST /v1/admin/probe {"count":10,"size":64,"inflight":1,"rate":500}'
run 0 -s "$LEADER" --json probe --count 5 --size 1 --inflight 1 && printf '%s' "$OUT" | $PY -c '
import json, sys
p = json.load(sys.stdin)
for k in ("committed", "failed", "seconds", "per_second", "p50_ms", "p99_ms"):
    assert k in p, k
' && ok "probe --json keys" || fail "probe --json: $OUT"
run 1 -s "$LEADER" probe --count 13 --size 1 --inflight 1 && has "probe with failures exits 1" "$ERR" "1 record(s) failed to commit"
run 2 -s "$LEADER" probe --count 0
run 2 -s "$LEADER" probe --size
run 2 -s "$LEADER" probe --bogus 3

# ------------------------------------------------------ reachability, usage
run 3 -s "$NOBODY" cluster && has "unreachable node" "$ERR" "ricochetctl: cannot reach $NOBODY: connection refused"
run 3 -s "$GARBAGE" cluster && has "not a node's API" "$ERR" "body that is not JSON"
run 3 -s "$LEADER" --timeout 1 message HANG && has "timeout" "$ERR" "cannot reach $LEADER: no answer within 1 s"
run 2
run 2 bogus && has "unknown command" "$ERR" 'unknown command "bogus"'
run 2 --bogus cluster
run 2 -s nocolon cluster && has "bad -s" "$ERR" "is not HOST:PORT"
run 2 -s 127.0.0.1:0 cluster
run 2 --timeout 0 -s "$LEADER" cluster
run 2 --timeout
run 2 -s "$LEADER" cluster extra
run 0 --help && has "--help lists commands" "$OUT" "Commands:"
run 0 -s "$LEADER" message --help && has "per-command help" "$OUT" "usage: ricochetctl [-s HOST:PORT] [--json] [--timeout SECONDS] message ID"
run 0 help transfer && has "help COMMAND" "$OUT" "POST /v1/cluster/transfer"
run 2 help nothing

# ------------------------------------------ graceful stop of the fake node
# (the HANG request of the timeout check above is still pending, its client
# gone: the stop answers it too, into a closed connection)
BEFORE=$(grep -c "GET /v1/messages/HANG" "$WORK/leader.log")
"$CTL" -s "$LEADER" --timeout 60 message HANG >"$WORK/hang.out" 2>"$WORK/hang.err" &
HANG_PID=$!
PIDS+=($HANG_PID)
for _ in $(seq 1 500); do
    [ "$(grep -c "GET /v1/messages/HANG" "$WORK/leader.log")" -gt "$BEFORE" ] && break
    sleep 0.02
done
kill -TERM "$PID_leader"
wait "$HANG_PID"; HRC=$?
[ "$HRC" = 1 ] && ok "pending request answered 503 on stop (exit 1)" || fail "hanging request exit $HRC: $(cat "$WORK/hang.err")"
has "pending request error" "$(cat "$WORK/hang.err")" "node is stopping (HTTP 503"
wait "$PID_leader"; LRC=$?
[ "$LRC" = 0 ] && ok "fake node stopped gracefully" || fail "fake node exit $LRC: $(cat "$WORK/leader.err")"
logged "fake node's loop returned and closed cleanly" "$WORK/leader.log" "EXIT 0"

echo
if [ "$FAILS" != 0 ]; then
    echo "$FAILS check(s) failed"
    exit 1
fi
echo "all checks passed"
