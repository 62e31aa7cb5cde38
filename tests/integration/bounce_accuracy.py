#!/usr/bin/python3
"""Corpus accuracy of the bounce classifier (issue 6).

Runs the classify command over every mail of ../shared/corpus/bounces and
compares, per labelled (file, recipient) row, the reason and the hard/soft
flag with labels.tsv; a row listed in alt_labels.tsv also counts as right
when it matches the alternative label. Prints the per-reason confusion and
fails below 0.95 (reason) or 0.98 (hard/soft).

usage: bounce_accuracy.py [CLASSIFY_CMD...]   (default: $RICOCHET_BUILD/ricochet-classify)
"""
import collections
import csv
import os
import subprocess
import sys
import tempfile

REASON_MIN = 0.95
HARD_MIN = 0.98


def main():
    src = os.environ.get("RICOCHET_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))
    build = os.environ.get("RICOCHET_BUILD", os.path.join(src, "build"))
    corpus = os.path.join(src, "..", "shared", "corpus", "bounces")
    if not os.path.isfile(os.path.join(corpus, "labels.tsv")):
        print("corpus not found at", corpus)
        return 1
    cmd = sys.argv[1:] or [os.path.join(build, "ricochet-classify")]
    files = sorted(f for f in os.listdir(corpus) if f.endswith(".eml"))
    out = subprocess.run(cmd + files, cwd=corpus, capture_output=True, text=True, check=False)
    if out.returncode not in (0, 1):
        print(out.stderr)
        return 1
    got = {}
    for line in out.stdout.splitlines():
        f = line.split("\t")
        if len(f) != 6:
            print("bad output line:", line)
            return 1
        got.setdefault((f[0], f[1].lower()), (f[2], f[3], f[4], f[5]))
    alt = {}
    with open(os.path.join(corpus, "alt_labels.tsv")) as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            alt[(row["file"], row["recipient"].lower())] = (row["alt_reason"], row["alt_hardbounce"])
    rows = 0
    ok_reason = ok_hard = 0
    confusion = collections.defaultdict(collections.Counter)
    misses = []
    with open(os.path.join(corpus, "labels.tsv")) as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            rows += 1
            key = (row["file"], row["recipient"].lower())
            g = got.get(key)
            if g is None and row["recipient"] == "":
                # a report naming no recipient: the mail's single line
                cands = [v for k, v in got.items() if k[0] == row["file"]]
                g = cands[0] if len(cands) == 1 else None
            reason, hard = (g[0], g[1]) if g else ("<missing>", "?")
            want = {(row["reason"], row["hardbounce"])}
            if key in alt:
                want.add(alt[key])
            if reason in {w[0] for w in want}:
                ok_reason += 1
            else:
                misses.append((row["file"], row["recipient"], row["reason"], reason, row["source"]))
            if hard in {w[1] for w in want}:
                ok_hard += 1
            confusion[row["reason"]][reason] += 1
    print("per-reason confusion (expected: got=count ...)")
    for exp in sorted(confusion):
        c = confusion[exp]
        total = sum(c.values())
        print("  %-16s %3d/%-3d  %s" % (exp, c[exp], total,
              " ".join("%s=%d" % (k, v) for k, v in c.most_common() if k != exp)))
    for m in misses:
        print("  miss", *m)
    ra, ha = ok_reason / rows, ok_hard / rows
    print("rows=%d reason_accuracy=%.4f hard_accuracy=%.4f" % (rows, ra, ha))
    if ra < REASON_MIN or ha < HARD_MIN:
        print("FAIL: need reason >= %.2f and hard/soft >= %.2f" % (REASON_MIN, HARD_MIN))
        return 1
    if not same_with_threads(cmd, corpus, files):
        return 1
    if not same_line_endings(cmd, corpus, files, out.stdout):
        return 1
    if not same_from_stdin(cmd, corpus, files[0], out.stdout):
        return 1
    print("PASS")
    return 0


def same_with_threads(cmd, corpus, files):
    """Worker threads print in file order: the corpus three times over (more
    files than the printing ring holds) with a missing file in the middle
    gives the same lines, the same error and the same exit status with one
    thread and with four, and the lines follow the order of the files."""
    many = files * 3
    many.insert(len(many) // 2, "no-such-file.eml")
    runs = [subprocess.run(cmd + ["-j", j] + many, cwd=corpus, capture_output=True, text=True, check=False)
            for j in ("1", "4")]
    one, four = runs
    if (one.stdout, one.stderr, one.returncode) != (four.stdout, four.stderr, four.returncode):
        print("FAIL: -j 4 prints differently from -j 1")
        return False
    if one.returncode != 1 or "no-such-file.eml" not in one.stderr:
        print("FAIL: a missing file is not reported:", one.returncode, one.stderr)
        return False
    seen = [line.split("\t")[0] for line in one.stdout.splitlines()]
    order = [f for i, f in enumerate(seen) if i == 0 or seen[i - 1] != f]
    if order != [f for f in many if f != "no-such-file.eml"]:
        print("FAIL: lines are not in the order of the files")
        return False
    print("threads: %d files, -j 1 and -j 4 print the same lines in file order" % len(many))
    return True


def same_from_stdin(cmd, corpus, name, file_out):
    """A mail piped to `classify -` reads as the file does ("-" in the file column)."""
    with open(os.path.join(corpus, name), "rb") as fh:
        got = subprocess.run(cmd + ["-"], stdin=fh, capture_output=True, check=False).stdout.decode()
    want = "".join("-" + line[len(name):] + "\n" for line in file_out.splitlines() if line.startswith(name + "\t"))
    if not want or got != want:
        print("FAIL: classify - read %r, the file gives %r" % (got, want))
        return False
    print("stdin: classify - reads %s as the file" % name)
    return True


def same_line_endings(cmd, corpus, files, lf_out):
    """The same mails with CRLF line ends (as SMTP carries them) and with
    bare CRs (classic Mac OS mail files) are read exactly as with LF."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, sep in (("crlf", b"\r\n"), ("cr", b"\r")):
            d = os.path.join(tmp, name)
            os.mkdir(d)
            for f in files:
                with open(os.path.join(corpus, f), "rb") as src, open(os.path.join(d, f), "wb") as dst:
                    dst.write(src.read().replace(b"\r\n", b"\n").replace(b"\n", sep))
            got = subprocess.run(cmd + files, cwd=d, capture_output=True, text=True, check=False).stdout
            if got != lf_out:
                diff = [(a, b) for a, b in zip(lf_out.splitlines(), got.splitlines()) if a != b]
                print("FAIL: %s line ends read differently, e.g. %s" % (name, diff[:3]))
                return False
    print("line ends: %d mails with CRLF and with bare CR give the LF lines" % len(files))
    return True


if __name__ == "__main__":
    sys.exit(main())
