#!/usr/bin/env bash
# One command from a fresh Debian machine to every test passing:
# installs build and test dependencies, builds the normal, sanitizer and
# fuzzing flavours, and runs the whole suite (unit, integration, real peers,
# fuzz corpus replay) on the normal and the sanitizer build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --with-tests
jobs=$(nproc)

echo "== build (default)"
scripts/build.sh default
echo "== build (asan+ubsan)"
scripts/build.sh asan
echo "== build (libFuzzer)"
scripts/build.sh fuzz

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

echo "== tests (default)"
(cd build && ctest --output-on-failure -j "$jobs" --timeout 600)
echo "== tests (asan+ubsan)"
(cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 900)
echo "== fuzz smoke (libFuzzer, short runs)"
(cd build-fuzz && ctest --output-on-failure -L fuzz-run --timeout 300)
