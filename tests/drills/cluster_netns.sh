#!/usr/bin/env bash
# scripts/cluster --netns, as an SRE uses it for a drill by hand: up (2+2+1,
# every node in its own namespace, production ports), the MX set seen from
# the client namespace, kill/start of a node, a cut between the sites and
# its heal, `ricochetctl drill` run from the client namespace, and `down`,
# after which no namespace, guard route or ricochetd of the cluster is left.
# Every probe runs inside a namespace (scripts/cluster exec).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
export RICOCHET_BUILD=${RICOCHET_BUILD:-$src/build}
. "$src/tests/lib/scratch.sh"
scratch_dir ricochet-netns
C=("$src/scripts/cluster")
S=(--dir "$DIR/c")
CTL=$RICOCHET_BUILD/ricochetctl
down() { "${C[@]}" down "${S[@]}" >/dev/null 2>&1 || true; }
trap 'down; scratch_cleanup' EXIT
fail() { echo "FAIL: $*" >&2; "${C[@]}" status "${S[@]}" >&2 || true; tail -n 20 "$DIR"/c/n*/ricochetd.log >&2 || true; exit 1; }
# poll CMD... until it succeeds (60 s)
until_ok() { local what=$1; shift; for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; fail "$what"; }

out=$("${C[@]}" up --netns --layout 2+2+1 "${S[@]}" --set dns.lease=1s --set health.interval=200ms --set health.fail_after=2)
echo "$out"
[ "$(grep -c ' netns=' <<<"$out")" = 5 ] || fail "up did not print five nodes with their namespace"
grep -q '^1 site=a smtp=10.77.1.10:25 dns=10.77.1.10:53 ' <<<"$out" || fail "node 1 is not on 10.77.1.10 with ports 25/53"
prefix=$(sed -n 's/^1 .* netns=\(.*\)-n1$/\1/p' <<<"$out")

mx_count() { # mx_count NODE_ADDR N: exactly N MX records from that name server
  [ "$("${C[@]}" exec client "${S[@]}" -- dig +short +time=1 +tries=1 "@$1" relay.mx.ricochet.test MX | grep -c mx.ricochet.test)" = "$2" ]
}
until_ok "four mail nodes in MX, asked from the client namespace" mx_count 10.77.3.10 4
echo "ok: MX lists the four mail nodes"

"${C[@]}" kill 3 "${S[@]}"
until_ok "node 3 out of MX after kill -9" mx_count 10.77.1.10 3
started=$("${C[@]}" start 3 "${S[@]}")
grep -q "^3 site=b .* netns=" <<<"$started" || fail "start did not print node 3"
until_ok "node 3 back in MX" mx_count 10.77.1.10 4
echo "ok: kill -9 and start of node 3 seen in MX"

servfail_somewhere() {
  for a in 10.77.1.10 10.77.2.10; do
    local answer
    answer=$("${C[@]}" exec client "${S[@]}" -- dig +time=1 +tries=1 "@$a" relay.mx.ricochet.test MX || true)
    grep -q 'status: SERVFAIL' <<<"$answer" && return 0
  done
  return 1
}
"${C[@]}" cut a b "${S[@]}"
until_ok "the site cut off from the leader answers SERVFAIL" servfail_somewhere
"${C[@]}" heal "${S[@]}"
until_ok "both sites in MX after the heal" mx_count 10.77.1.10 4
until_ok "both sites in MX after the heal (site b)" mx_count 10.77.2.10 4
echo "ok: cut a|b gives SERVFAIL on the cut-off site, heal brings it back"

until_ok "a planned drill of site a passes" "${C[@]}" exec client "${S[@]}" -- "$CTL" -s 10.77.3.10:8080 drill --site a
echo "ok: ricochetctl drill --site a from the client namespace"

metric=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["route_metric"])' "$DIR/c/lab.json")
# (grep -q on a pipe under pipefail: the writer may die of SIGPIPE; read it all first)
routes=$(ip route show)
grep -q "blackhole 10.77.0.0/16.* metric $metric\b" <<<"$routes" || fail "no guard route while the cluster is up"
"${C[@]}" down "${S[@]}"
left=$(ip netns list)
[ "$(grep -c "^$prefix-" <<<"$left" || true)" = 0 ] || fail "namespaces left: $(grep "^$prefix-" <<<"$left")"
routes=$(ip route show)
grep -q "blackhole 10.77.0.0/16.* metric $metric\b" <<<"$routes" && fail "guard route left"
pgrep -f "ricochetd -c $DIR/c/" >/dev/null && fail "ricochetd left running"
echo "ok: down removed the namespaces, the route and the daemons"
