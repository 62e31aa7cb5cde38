#!/bin/bash
# The DSNs that we send, read by a real peer: Sisimai (Debian's
# libsisimai-perl) parses each DSN written by dsn_write (smtp/dsn.h) and must
# find every recipient with the action, reason and status we meant. Our own
# analyser (ricochet-classify) must read the same reason. Cases: failed
# (user unknown, mailbox full, host unknown, spam), expired after 4xx
# replies, delayed, relayed, several recipients in one DSN, RET=FULL/HDRS,
# and a diagnostic that tries to inject header lines.
set -u
BUILD=${RICOCHET_BUILD:?}
WRITE=$BUILD/tests/dsn_write
CLASSIFY=$BUILD/ricochet-classify
. "$(dirname "$0")/../lib/scratch.sh"
scratch_dir dsn-sisimai
FAIL=0
perl -MSisimai -e 1 || { echo "FAIL Sisimai missing (apt-get install libsisimai-perl)"; exit 1; }

# case NAME RET [RCPT ACTION STATUS SMTP|OWN DIAG REMOTE]... -- EXPECT...
# EXPECT: "rcpt action reason status" per recipient, in order.
case_() {
    local name=$1; shift
    local args=() want=()
    while [ "$1" != "--" ]; do args+=("$1"); shift; done
    shift
    want=("$@")
    local eml=$DIR/$name.eml
    if ! "$WRITE" "$eml" "${args[@]}"; then
        echo "FAIL $name: dsn_write failed"; FAIL=1; return
    fi
    perl -MSisimai -e '
        my $v = Sisimai->make($ARGV[0], delivered => 1) || [];
        for my $e (@$v) {
            printf "%s %s %s %s\n", lc($e->recipient->address), $e->action, $e->reason, $e->deliverystatus;
        }' "$eml" > "$DIR/$name.sisimai" 2> "$DIR/$name.err"
    printf '%s\n' "${want[@]}" > "$DIR/$name.want"
    if ! diff -u "$DIR/$name.want" "$DIR/$name.sisimai" > "$DIR/$name.diff"; then
        echo "FAIL $name: Sisimai read otherwise:"; sed 's/^/    /' "$DIR/$name.diff" "$DIR/$name.err"; FAIL=1; return
    fi
    # ricochet-classify: FILE RCPT REASON HARD CODE STATUS; the reason must agree
    if [ -x "$CLASSIFY" ]; then
        "$CLASSIFY" "$eml" | awk -F'\t' '{print $2, $3}' > "$DIR/$name.ours"
        awk '{print $1, $3}' "$DIR/$name.want" > "$DIR/$name.ours.want"
        if ! diff -u "$DIR/$name.ours.want" "$DIR/$name.ours" > "$DIR/$name.ours.diff"; then
            echo "FAIL $name: ricochet-classify read otherwise:"; sed 's/^/    /' "$DIR/$name.ours.diff"; FAIL=1; return
        fi
    fi
    echo "ok   $name"
}

case_ userunknown - \
    bob@example.net failed 5.1.1 SMTP \
    "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in virtual mailbox table" mx1.example.net \
    -- "bob@example.net failed userunknown 5.1.1"
case_ mailboxfull FULL \
    full@example.net failed 5.2.2 SMTP "552 5.2.2 Mailbox full" mx.example.net \
    -- "full@example.net failed mailboxfull 5.2.2"
case_ hostunknown HDRS \
    gone@example.invalid failed 5.4.4 OWN "no MX or address record for example.invalid" - \
    -- "gone@example.invalid failed hostunknown 5.4.4"
case_ spam - \
    eve@example.org failed 5.7.1 SMTP "550 5.7.1 Message rejected as spam by Content Filtering" mx.example.org \
    -- "eve@example.org failed spamdetected 5.7.1"
case_ expired - \
    slow@example.org failed 4.4.7 SMTP "421 4.4.2 mx.example.org: connection timed out" mx.example.org \
    -- "slow@example.org failed expired 4.4.2"
case_ expired_own - \
    slow@example.org failed 4.4.7 OWN "delivery time expired after 5 days; last reply: 451 4.3.0 Temporary lookup failure" - \
    -- "slow@example.org failed expired 4.4.7"
case_ delayed - \
    wait@example.org delayed 4.4.1 OWN "connect to mx.example.org[192.0.2.7]:25: Connection timed out" - \
    -- "wait@example.org delayed expired 4.4.1"
case_ relayed - \
    ok@example.com relayed - SMTP "250 2.0.0 Ok: queued as 4XyZ" mx.example.com \
    -- "ok@example.com relayed delivered 2.0.0"
case_ several HDRS \
    bob@example.net failed 5.1.1 SMTP "550 5.1.1 <bob@example.net>: user unknown" mx1.example.net \
    full@example.net failed 5.2.2 SMTP "552 5.2.2 Mailbox full" mx.example.net \
    -- "bob@example.net failed userunknown 5.1.1" "full@example.net failed mailboxfull 5.2.2"
case_ injection - \
    bob@example.net failed 5.1.1 SMTP $'550 5.1.1 user unknown\r\nX-Injected: 1\r\n\r\nFinal-Recipient: rfc822; evil@example.com' \
    $'mx.example.net\r\nX-Injected: 2' \
    -- "bob@example.net failed userunknown 5.1.1"
if grep -l '^X-Injected' "$DIR"/injection.eml; then
    echo "FAIL injection: an injected line reached the DSN"; FAIL=1
fi
exit $FAIL
