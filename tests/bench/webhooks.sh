#!/usr/bin/env bash
# Benchmark (not a test): how many webhook events a leader delivers per
# second to a receiver on loopback (tests/lib/webhook_receiver.py, which
# checks every signature), for a few batch sizes. Postfix's smtp-source
# submits MESSAGES messages of RCPTS recipients each to a one-node cluster;
# the figure is `queued` events received / time from the first submission
# to the last of them at the receiver (submission included). No peer does
# this job, so there is no ratio: the point is sizing (docs/WEBHOOKS.md).
#   tests/bench/webhooks.sh [BUILD_DIR] [MESSAGES] [RCPTS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
messages=${2:-2000}
rcpts=${3:-5}
command -v smtp-source >/dev/null || PATH=$PATH:/usr/sbin
command -v smtp-source >/dev/null || { echo "smtp-source missing: apt-get install postfix" >&2; exit 2; }
net=127.0.4
recv=$net.200:8099
work=$(mktemp -d)
rpid=""
stop_all() {
  RICOCHET_BUILD=$build "$src/scripts/cluster" down --dir "$work/c" >/dev/null 2>&1 || true
  if [ -n "$rpid" ]; then kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rpid=""; fi
}
trap 'stop_all; rm -rf "$work"' EXIT
# queued events received, and POSTs accepted or refused
state() {
  curl -s "http://$recv/_state" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
print(sum(1 for e in d["events"] if e["status"] == "queued"), d["posts"], d["bad_signature"])'
}

want=$((messages * rcpts))
echo "$messages messages x $rcpts recipients = $want queued events per round; $(nproc) CPUs"
printf '%-10s %10s %10s %8s %12s\n' batch_max events seconds posts events/s
for batch in 1 10 100 1000; do
  /usr/bin/python3 "$src/tests/lib/webhook_receiver.py" --listen "$recv" --secret bench-secret-0123 \
    > "$work/recv.out" 2>&1 &
  rpid=$!
  for _ in $(seq 100); do grep -q listening "$work/recv.out" 2>/dev/null && break; sleep 0.05; done
  rm -rf "$work/c"
  RICOCHET_BUILD=$build "$src/scripts/cluster" up --layout 1 --net $net --base 100 --dir "$work/c" \
    --set "webhooks.url=http://$recv/hook" --set webhooks.secret=bench-secret-0123 \
    --set "webhooks.batch_max=$batch" --set delivery.resolver=127.0.0.1:9 >/dev/null
  t0=$(date +%s.%N)
  smtp-source -c -s 20 -m "$messages" -r "$rcpts" -f bench@example.org -t rcpt@example.org "$net.101:2525" \
    >/dev/null
  while :; do
    read -r got posts bad < <(state)
    [ "$got" -ge "$want" ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  [ "$bad" = 0 ] || { echo "bad signatures: $bad" >&2; exit 1; }
  /usr/bin/python3 -c "import sys; b, e, t, p = sys.argv[1:]; t = float(t); print('%-10s %10s %10.2f %8s %12.0f' % (b, e, t, p, int(e) / t))" \
    "$batch" "$got" "$(/usr/bin/python3 -c "print($t1 - $t0)")" "$posts"
  stop_all
done
