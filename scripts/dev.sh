#!/usr/bin/env bash
# One command from a fresh Debian machine to a running one-node cluster:
# installs what is missing, builds, and runs `ricochetd --dev` in the foreground.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh >/dev/null
exec build/ricochetd --dev "$@"
