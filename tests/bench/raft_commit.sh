#!/usr/bin/env bash
# Benchmark of the replicated core (see raft_commit.py). Prints figures only.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
export RICOCHET_SRC=$here RICOCHET_BUILD=${RICOCHET_BUILD:-$here/build}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(date -u +%Y-%m-%dT%H:%MZ)"
exec /usr/bin/python3 "$here/tests/bench/raft_commit.py" "$@"
