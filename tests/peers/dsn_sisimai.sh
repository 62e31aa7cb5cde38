#!/usr/bin/env bash
# Our DSNs read by a real, independent bounce parser: Sisimai (Debian's
# libsisimai-perl) must find the same recipient and reason in each.
#   dsn_sisimai.sh PATH/TO/dsn_write
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
source "$here/tests/lib/scratch.sh"
writer=$1
perl -MSisimai -e 1 2>/dev/null || { echo "Sisimai missing: apt-get install libsisimai-perl" >&2; exit 1; }
scratch_dir dsn-sisimai
fails=0
check() {
    local rcpt=$1 action=$2 status=$3 diag=$4 want=$5
    "$writer" "$rcpt" "$action" "$status" "$diag" > "$DIR/m.eml"
    got=$(perl -MSisimai -e '
        my $v = Sisimai->make($ARGV[0]) || [];
        for my $e (@$v) { printf "%s %s %s\n", $e->recipient->address, $e->reason, $e->deliverystatus }
    ' "$DIR/m.eml")
    if [ "$got" = "$rcpt $want $status" ]; then
        echo "ok   $rcpt: $got"
    else
        echo "FAIL $rcpt: Sisimai says '$got', expected '$rcpt $want $status'"
        fails=$((fails + 1))
    fi
}
check bob@example.net failed 5.1.1 "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown in local recipient table" userunknown
check full@example.net failed 5.2.2 "552 5.2.2 <full@example.net>: Mailbox full" mailboxfull
check slow@example.net failed 4.4.7 "451 4.3.0 try again later" expired
check nohost@nowhere.example failed 5.1.2 "nowhere.example: domain does not exist (NXDOMAIN)" hostunknown
[ "$fails" -eq 0 ] && echo "all DSNs read back by Sisimai" || exit 1
