#!/usr/bin/env bash
# Runs a libFuzzer binary for a bounded time on a scratch copy of its seed
# corpus (the committed corpus is never written to). Fails on any crash.
set -euo pipefail
bin=$1; corpus=$2; seconds=${3:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work/"
out=$(mktemp)
rc=0
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$work/" -print_final_stats=1 "$work" >"$out" 2>&1 || rc=$?
if [ $rc -ne 0 ]; then
  # keep the crashing input where CI logs can show it
  grep -v '^#[0-9]' "$out" | head -n 60
  for f in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-*; do
    [ -f "$f" ] && { echo "artifact $(basename "$f") (base64):"; base64 -w0 "$f"; echo; }
  done
else
  tail -n 8 "$out"
fi
rm -f "$out"
exit $rc
