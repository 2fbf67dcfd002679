#!/usr/bin/env bash
# harden.sh - every program that holds keys runs with core dumps off and not
# dumpable (lib/harden.h): valise-keys and valise while they wait for a
# passphrase (a FIFO), valise-relay while it serves. Observed from outside:
# /proc/PID/limits "Max core file size 0 0", and /proc/PID/environ owned by root
# although the program runs as another user (proc(5): a non-dumpable
# process's /proc files belong to root).
# usage: harden.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1 VALISE=$2 RELAY=$3
T=$(mktemp -d /tmp/valise-harden.XXXXXX)
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
chmod 0777 "$T"
cd "$T"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

# Run the programs as a user other than root, so root ownership of /proc/PID
# can only come from PR_SET_DUMPABLE 0.
if [ "$(id -u)" -eq 0 ]; then
  AS=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  UID_RUN=65534
else
  AS=()
  UID_RUN=$(id -u)
fi

# check_hardened NAME PID
check_hardened() {
  local name=$1 pid=$2 core owner
  for _ in $(seq 200); do
    core=$(awk '/^Max core file size/ {print $5 " " $6}' "/proc/$pid/limits" 2>/dev/null)
    [ "$core" = "0 0" ] && break
    sleep 0.025
  done
  [ -d "/proc/$pid" ] || { fail "$name: exited before it could be observed"; return; }
  [ "$core" = "0 0" ] || fail "$name: core file size limit is '$core', expected '0 0'"
  owner=$(stat -c %u "/proc/$pid/environ")
  [ "$owner" = 0 ] || fail "$name: /proc/$pid/environ owned by uid $owner, expected 0 (not dumpable)"
  echo "$name: core limit '$core', /proc/$pid/environ owner $owner (runs as $UID_RUN)"
}

echo "minister passphrase 1" >opw
echo "device passphrase 1" >dpw && chmod 600 dpw
"${AS[@]}" "$KEYS" init --dir org --org Ministry --passphrase-file opw >/dev/null 2>err.txt ||
  { fail "valise-keys init: $(cat err.txt)"; exit 1; }
"${AS[@]}" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw >/dev/null 2>err.txt ||
  { fail "valise-keys directory: $(cat err.txt)"; exit 1; }

# valise-keys blocks opening the FIFO until a passphrase is written.
mkfifo kfifo && chmod 0666 kfifo
"${AS[@]}" "$KEYS" directory --dir org --out dir2.bin --passphrase-file kfifo >/dev/null 2>&1 &
KPID=$!; PIDS+=("$KPID")
check_hardened valise-keys "$KPID"
kill "$KPID" 2>/dev/null; wait "$KPID" 2>/dev/null

mkfifo vfifo && chmod 0666 vfifo
"${AS[@]}" "$VALISE" init --home dev --name "Anna Lindqvist" --out dev.req \
  --passphrase-file vfifo >/dev/null 2>&1 &
VPID=$!; PIDS+=("$VPID")
check_hardened valise "$VPID"
kill "$VPID" 2>/dev/null; wait "$VPID" 2>/dev/null

"${AS[@]}" "$RELAY" --init-handshake-key --data data --out hs.pub >/dev/null 2>err.txt ||
  { fail "valise-relay --init-handshake-key: $(cat err.txt)"; exit 1; }
"${AS[@]}" "$KEYS" relay-cert --dir org --relay-id harden-test --pubkey hs.pub --out relay.cert \
  --passphrase-file opw >/dev/null 2>err.txt || { fail "valise-keys relay-cert: $(cat err.txt)"; exit 1; }
"${AS[@]}" "$RELAY" --data data --org-pub org/org.pub --directory dir.bin --relay-cert relay.cert \
  --listen 127.0.0.1:0 --port-file port --relay-id harden-test --log-level warn 2>relay.log &
RPID=$!; PIDS+=("$RPID")
for _ in $(seq 200); do [ -s port ] && break; sleep 0.025; done
[ -s port ] || fail "relay did not start: $(tail -3 relay.log)"
check_hardened valise-relay "$RPID"

if [ "$failures" -ne 0 ]; then
  echo "$failures failure(s)" >&2
  exit 1
fi
echo "all hardening checks passed"
