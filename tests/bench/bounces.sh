#!/usr/bin/env bash
# Benchmark (not a test): classify every mail of the bounce corpus with
# Ricochet (ricochet-classify with worker threads on every CPU, and again
# with -j 1) and with Sisimai (Debian's libsisimai-perl: one process, and one
# process per CPU) in one run; print mails/s for each, the ratios, and how
# often the two agree on the reason per (file, recipient).
#   tests/bench/bounces.sh [BUILD_DIR] [CORPUS_DIR] [ROUNDS]
# Each tool runs as one process that goes ROUNDS times (default 5) over the
# whole corpus, so that the figure is throughput, not process start-up; the
# single pass (one process, one round) is printed as well. PAIRS=N adds N
# alternating runs of ricochet -j 1 and one Sisimai process and prints the
# per-CPU ratio's median and range.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
corpus=$(cd "${2:-$src/../shared/corpus/bounces}" && pwd)
rounds=${3:-5}
classify=${CLASSIFY:-$build/ricochet-classify}
[ -x "$classify" ] || { echo "no $classify (build first)" >&2; exit 2; }
perl -MSisimai -e 1 2>/dev/null || { echo "Sisimai missing: apt-get install libsisimai-perl" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$corpus"
files=(*.eml)
n=${#files[@]}
now() { date +%s.%N; }

many=()
for ((i = 0; i < rounds; i++)); do many+=("${files[@]}"); done
t0=$(now)
"$classify" "${many[@]}" >"$work/ricochet.tsv" || true
t1=$(now)
"$classify" -j 1 "${many[@]}" >/dev/null || true
t2=$(now)
ROUNDS=$rounds perl -MSisimai -e '
  for my $r (1 .. $ENV{ROUNDS}) {
    for my $f (@ARGV) {
      my $v = Sisimai->make($f, delivered => 1, vacation => 1) || [];
      next if $r > 1;
      for my $e (@$v) { printf "%s\t%s\t%s\n", $f, lc($e->recipient->address // ""), $e->reason; }
    }
  }' "${files[@]}" >"$work/sisimai.tsv" 2>/dev/null
t3=$(now)
"$classify" "${files[@]}" >/dev/null || true
t4=$(now)
perl -MSisimai -e 'for my $f (@ARGV) { Sisimai->make($f, delivered => 1, vacation => 1) }' "${files[@]}" 2>/dev/null
t5=$(now)
# Sisimai on every CPU too (one process per CPU, each a share of the files,
# ROUNDS passes): the same hardware as ricochet -j CPUS.
cpus=$(nproc)
pids=()
for ((c = 0; c < cpus; c++)); do
  part=()
  for ((i = c; i < n; i += cpus)); do part+=("${files[$i]}"); done
  ROUNDS=$rounds perl -MSisimai -e '
    for my $r (1 .. $ENV{ROUNDS}) { Sisimai->make($_, delivered => 1, vacation => 1) for @ARGV }' \
    "${part[@]}" 2>/dev/null &
  pids+=($!)
done
wait "${pids[@]}"
t6=$(now)
# PAIRS=N: N more alternating runs of ricochet -j 1 and one Sisimai process
# (ROUNDS passes each), so that the per-CPU ratio comes with a median and a
# range instead of one draw of a shared machine's load.
pairs=()
for ((p = 0; p < ${PAIRS:-0}; p++)); do
  a=$(now)
  "$classify" -j 1 "${many[@]}" >/dev/null || true
  b=$(now)
  ROUNDS=$rounds perl -MSisimai -e '
    for my $r (1 .. $ENV{ROUNDS}) { Sisimai->make($_, delivered => 1, vacation => 1) for @ARGV }' \
    "${files[@]}" 2>/dev/null
  c=$(now)
  pairs+=("$a:$b:$c")
done

python3 - "$work/ricochet.tsv" "$work/sisimai.tsv" "$n" "$rounds" "$t0" "$t1" "$t2" "$t3" "$t4" "$t5" "$t6" "$cpus" "${pairs[*]:-}" <<'PY'
import statistics, sys
rf, sf, n, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
t0, t1, t2, t3, t4, t5, t6 = map(float, sys.argv[5:12])
cpus = sys.argv[12]
def load(p):
    d = {}
    for line in open(p):
        f = line.rstrip("\n").split("\t")
        if len(f) >= 3:
            d.setdefault((f[0], f[1].lower()), f[2])
    return d
r, s = load(rf), load(sf)
rr = n * rounds / (t1 - t0)
r1 = n * rounds / (t2 - t1)
sr = n * rounds / (t3 - t2)
rp = n / (t4 - t3)
sp = n / (t5 - t4)
common = [k for k in s if k in r]
agree = sum(1 for k in common if r[k] == s[k])
sn = n * rounds / (t6 - t5)
print("mails=%d rounds=%d cpus=%s" % (n, rounds, cpus))
print("%-24s %9s %16s %16s" % ("", "mails/s", "vs sisimai x1", "vs sisimai x" + cpus))
print("%-24s %9.0f %15.1fx %15.1fx" % ("ricochet -j " + cpus, rr, rr / sr, rr / sn))
print("%-24s %9.0f %15.1fx" % ("ricochet -j 1", r1, r1 / sr))
print("%-24s %9.0f" % ("sisimai, %s processes" % cpus, sn))
print("%-24s %9.0f" % ("sisimai, 1 process", sr))
print("per CPU (ricochet -j 1 / sisimai, 1 process): %.1fx" % (r1 / sr))
print("single pass (one process, one round): ricochet %.0f mails/s, sisimai %.0f mails/s, ratio %.1fx" % (rp, sp, rp / sp))
print("sisimai rows=%d matched by ricochet=%d reason agreement=%.3f" % (len(s), len(common), agree / max(1, len(common))))
if sys.argv[13].strip():
    ratios, ours, theirs = [], [], []
    for pr in sys.argv[13].split():
        a, b, c = map(float, pr.split(":"))
        ours.append(n * rounds / (b - a))
        theirs.append(n * rounds / (c - b))
        ratios.append(ours[-1] / theirs[-1])
    print("per CPU over %d alternating pairs: median %.1fx (min %.1fx, max %.1fx); ricochet -j 1 median %.0f mails/s, sisimai median %.0f mails/s"
          % (len(ratios), statistics.median(ratios), min(ratios), max(ratios), statistics.median(ours), statistics.median(theirs)))
PY
