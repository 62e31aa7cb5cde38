#!/usr/bin/env bash
# Configures and builds one flavour of the tree.
#   scripts/build.sh            -> build/        (RelWithDebInfo)
#   scripts/build.sh asan       -> build-asan/   (AddressSanitizer + UBSan)
#   scripts/build.sh fuzz       -> build-fuzz/   (clang, libFuzzer targets)
set -euo pipefail
cd "$(dirname "$0")/.."
flavour=${1:-default}
jobs=$(nproc)
case "$flavour" in
  default) dir=build; args=() ;;
  asan)    dir=build-asan; args=(-DRICOCHET_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug) ;;
  fuzz)    dir=build-fuzz; args=(-DRICOCHET_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 -DCMAKE_BUILD_TYPE=Debug) ;;
  *) echo "usage: $0 [default|asan|fuzz]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" "${args[@]}" >/dev/null
cmake --build "$dir" -j "$jobs"
