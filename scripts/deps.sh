#!/usr/bin/env bash
# deps.sh [--bench] - installs the Debian 12 packages Valise needs, if any
# are missing, and the desk's browser-test package (npm ci in tests/desk);
# --bench adds what scripts/bench.sh needs.
# Every dependency and why: README.md, "Dependencies".
set -euo pipefail
pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
      libsodium-dev libwebsockets-dev libssl-dev liblmdb-dev libargon2-dev libcmocka-dev
      lmdb-utils python3 procps openssl curl libjson-c-dev chromium util-linux)
# The desk's browser tests: Node.js and npm from Debian unless a node is already there.
command -v node >/dev/null || pkgs+=(nodejs)
command -v npm >/dev/null || pkgs+=(npm)
if [ "${1:-}" = "--bench" ]; then
  pkgs+=(mosquitto libmosquitto-dev linux-perf)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Playwright drives Debian's chromium (executablePath): no browser is downloaded.
desk_tests="$(dirname "$0")/../tests/desk"
if [ ! -d "$desk_tests/node_modules/playwright-core" ]; then
  echo "deps: npm ci in tests/desk (playwright-core, pinned by package-lock.json)" >&2
  (cd "$desk_tests" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund >/dev/null)
fi
