#!/usr/bin/env bash
# Installs every Debian package that Ricochet needs to build, run and test.
# Safe to re-run: it installs only what is missing.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config git
  libraft-dev libuv1-dev libldns-dev libssl-dev
  libprotobuf-c-dev protobuf-c-compiler
  libh2o-dev libgmime-3.0-dev libinih-dev libjansson-dev libcurl4-openssl-dev
  libmimalloc-dev libgumbo-dev
)
TEST_PKGS=(
  libcmocka-dev clang-14 libclang-rt-14-dev
  swaks libnet-ssleay-perl postfix bind9-dnsutils knot-dnsutils nsd unbound dnsperf
  libsisimai-perl python3 python3-aiosmtpd
  iproute2 nftables socat procps ansible ansible-lint logrotate
)

want=("${BUILD_PKGS[@]}")
[ "${1:-}" = "--with-tests" ] && want+=("${TEST_PKGS[@]}")

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deps: installing ${missing[*]}" >&2
# Postfix asks how to configure itself; the tests write their own main.cf.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
