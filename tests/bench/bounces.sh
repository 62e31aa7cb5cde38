#!/usr/bin/env bash
# Benchmark (not a test): classify every mail of the bounce corpus with
# Ricochet (ricochet-classify, one process) and with Sisimai (Debian's
# libsisimai-perl, one process) in one run; print mails/s for both, the
# ratio, and how often the two agree on the reason per (file, recipient).
#   tests/bench/bounces.sh [BUILD_DIR] [CORPUS_DIR] [ROUNDS]
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
corpus=${2:-$src/../shared/corpus/bounces}
rounds=${3:-5}
classify=${CLASSIFY:-$build/ricochet-classify}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$corpus"
files=(*.eml)
n=${#files[@]}

t0=$(date +%s.%N)
for ((i = 0; i < rounds; i++)); do "$classify" "${files[@]}" >"$work/ricochet.tsv" || true; done
t1=$(date +%s.%N)

perl -MSisimai -e '
  for my $f (@ARGV) {
    my $v = Sisimai->make($f, delivered => 1, vacation => 1) || [];
    for my $e (@$v) { printf "%s\t%s\t%s\n", $f, lc($e->recipient->address // ""), $e->reason; }
  }' "${files[@]}" >"$work/sisimai.tsv" 2>/dev/null
t2=$(date +%s.%N)

python3 - "$work/ricochet.tsv" "$work/sisimai.tsv" "$n" "$rounds" "$t0" "$t1" "$t2" <<'PY'
import sys
rf, sf, n, rounds, t0, t1, t2 = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), *map(float, sys.argv[5:])
def load(p):
    d = {}
    for line in open(p):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 3:
            d.setdefault((f[0], f[1].lower()), f[2])
    return d
r, s = load(rf), load(sf)
rr = n * rounds / (t1 - t0)
sr = n / (t2 - t1)
common = [k for k in s if k in r]
agree = sum(1 for k in common if r[k] == s[k])
print("mails=%d ricochet=%.0f mails/s sisimai=%.0f mails/s ratio=%.1fx" % (n, rr, sr, rr / sr))
print("sisimai rows=%d matched by ricochet=%d reason agreement=%.3f" % (len(s), len(common), agree / max(1, len(common))))
PY
