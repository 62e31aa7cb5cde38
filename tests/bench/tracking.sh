#!/usr/bin/env bash
# Benchmark (not a test): what open and click tracking costs per recipient.
# Builds a newsletter with Python's email package (text and quoted-printable
# HTML alternatives, LINKS links, ~40 KB), then makes COPIES tracked copies
# of it with the library the node uses (smtp/track.h), on one core.
#   tests/bench/tracking.sh [BUILD_DIR] [COPIES] [LINKS]
# No other program rewrites mail for tracking, so there is no peer to run
# side by side; the figure is the cost the delivering node adds per copy.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
copies=${2:-500}
links=${3:-100}
lib=$build/smtp/libricochet_track.a
[ -f "$lib" ] || { echo "no $lib (build first)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc -O2 -I"$src" "$src/tests/bench/track_copy.c" "$lib" $(pkg-config --libs gmime-3.0 gumbo openssl) -o "$work/track_copy"
python3 - "$work/news.eml" "$links" <<'PY'
import email.policy, sys
from email.message import EmailMessage
path, links = sys.argv[1], int(sys.argv[2])
m = EmailMessage()
m["From"], m["To"], m["Subject"] = "news@shop.example.com", "reader@example.org", "This week"
m["X-Ricochet-Track"] = "opens, clicks"
m.set_content("\n".join(f"Item {i}: https://shop.example.com/item/{i}?utm_source=mail" for i in range(links)))
rows = "".join(f'<tr><td style="padding:8px;font-family:Arial"><a href="https://shop.example.com/item/{i}'
               f'?utm_source=mail&amp;utm_medium=email">Item {i}</a> - a description of the item, with enough '
               f'words to look like a real newsletter row.</td><td><img src="https://cdn.example.com/{i}.jpg" '
               f'width="120"></td></tr>\n' for i in range(links))
m.add_alternative(f"<!DOCTYPE html><html><head><meta charset=utf-8></head><body><table>{rows}</table></body></html>",
                  subtype="html", cte="quoted-printable")
open(path, "wb").write(m.as_bytes(policy=email.policy.SMTP))
PY
echo "$(date -u +%FT%TZ) $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
"$work/track_copy" "$work/news.eml" "$copies"
