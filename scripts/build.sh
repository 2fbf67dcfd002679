#!/usr/bin/env bash
# build.sh [release|asan|fuzz] - configures and builds into build/<kind>.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release); cc=${CC:-cc} ;;
  asan)    flags=(-DVALISE_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug); cc=${CC:-cc} ;;
  fuzz)    flags=(-DVALISE_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug); cc=clang ;;
  *) echo "usage: scripts/build.sh [release|asan|fuzz]" >&2; exit 2 ;;
esac
CC=$cc cmake -S . -B "build/$kind" "${flags[@]}" >/dev/null
cmake --build "build/$kind" -j"$(nproc)" >/dev/null
