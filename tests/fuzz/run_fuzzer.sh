#!/usr/bin/env bash
# Runs a libFuzzer binary for a bounded time on a scratch copy of its seed
# corpus (the committed corpus is never written to). Fails on any crash.
set -euo pipefail
bin=$1; corpus=$2; seconds=${3:-20}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work/"
"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$work/" -print_final_stats=1 "$work" 2>&1 | tail -n 20
