#!/usr/bin/env bash
# deps.sh [--bench] - installs the Debian 12 packages Valise needs, if any
# are missing; --bench adds what scripts/bench.sh needs.
# Every dependency and why: README.md, "Dependencies".
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libsodium-dev libwebsockets-dev liblmdb-dev libargon2-dev libcmocka-dev
      lmdb-utils python3 procps openssl curl)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(mosquitto libmosquitto-dev linux-perf)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
