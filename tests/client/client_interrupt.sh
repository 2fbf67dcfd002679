#!/usr/bin/env bash
# client_interrupt.sh - issue 4: "interrupting sync at any point loses nothing
# and duplicates nothing". Over the REAL relay, HQ queues messages and both
# sides run `valise sync` killed with SIGKILL at a spread of moments (during
# the passphrase KDF, authentication, bundle fetch, encryption, submission,
# download, acknowledgement), then sync cleanly; every message must be in
# the recipient's inbox exactly once. Then random rounds under load (issue 6:
# "kill -9 at random points, hundreds of rounds"): both clients and, every
# third round, the relay killed with SIGKILL at random moments while new
# telegrams keep being queued; 10 rounds by default, 200 with VALISE_LONG=1.
# Afterwards every telegram is in the inbox exactly once and accepted in the
# outbox, and no sync took a store for a rolled-back one (a crash between a
# commit and its acknowledgement must never leave the relay's marks ahead).
# usage: client_interrupt.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-int
org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador"
start_relay() { relay_start "$1" data dir.bin; }
start_relay 0
PORT=$(cat port)
URL="ws://127.0.0.1:$PORT"
run "valise enroll hq" V enroll --home hq --cert hq.cert --org-pub org/org.pub --relay "$URL" --relay-id valise-relay
run "valise enroll jkt" V enroll --home jkt --cert jkt.cert --org-pub org/org.pub --relay "$URL" --relay-id valise-relay
run "jkt publishes prekeys" V sync --home jkt --wait-ms 100

N=30
for i in $(seq -w 1 $N); do
  echo "telegram $i" | V send --home hq --to ambassador@JKT --subject "T-$i" >/dev/null 2>err.txt ||
    fail "send $i: $(cat err.txt)"
done
# Killed syncs, alternating sides, at moments spread over the whole run.
for ms in 150 250 300 350 400 450 500 550 600 700 800 1000; do
  s=$(awk "BEGIN { print $ms / 1000 }")
  (timeout -s KILL "$s" "$VALISE" sync --home hq --wait-ms 300 --passphrase-file dpw) >/dev/null 2>&1
  (timeout -s KILL "$s" "$VALISE" sync --home jkt --wait-ms 300 --passphrase-file dpw) >/dev/null 2>&1
done
# Random rounds under load: both sides killed at a random moment, the relay
# killed with SIGKILL too in every third round (restarted on the same data),
# a new telegram queued every other round. 10 rounds by default, 200 with
# VALISE_LONG=1 (scripts/test.sh --long).
ROUNDS=10
[ "${VALISE_LONG:-0}" = 1 ] && ROUNDS=200
for r in $(seq 1 $ROUNDS); do
  if [ $((r % 2)) -eq 0 ]; then
    N=$((N + 1)); i=$(printf '%02d' $N)
    echo "telegram $i" | V send --home hq --to ambassador@JKT --subject "T-$i" >/dev/null 2>err.txt ||
      fail "send $i: $(cat err.txt)"
  fi
  ms=$((100 + RANDOM % 1400))
  s=$(awk "BEGIN { print $ms / 1000 }")
  if [ $((r % 3)) -eq 0 ]; then
    rk=$(awk "BEGIN { print (50 + $RANDOM % 900) / 1000 }")
    (sleep "$rk"; kill -KILL "$RPID" 2>/dev/null) &
    killer=$!
  fi
  (timeout -s KILL "$s" "$VALISE" sync --home hq --wait-ms 300 --passphrase-file dpw) >/dev/null 2>&1 &
  hqpid=$!
  (timeout -s KILL "$s" "$VALISE" sync --home jkt --wait-ms 300 --passphrase-file dpw) >/dev/null 2>&1
  wait "$hqpid" 2>/dev/null
  if [ $((r % 3)) -eq 0 ]; then
    wait "$killer" 2>/dev/null
    wait "$RPID" 2>/dev/null
    start_relay "$PORT"
  fi
done
echo "random rounds: $ROUNDS, telegrams: $N"
for _ in 1 2; do
  run "hq clean sync" V sync --home hq --wait-ms 1000
  run "jkt clean sync" V sync --home jkt --wait-ms 1000
done
run "jkt inbox" V inbox --home jkt
for n in $(seq 1 $N); do
  i=$(printf '%02d' "$n")
  c=$(grep -c " T-$i\$" out.txt)
  [ "$c" -eq 1 ] || fail "T-$i is in the inbox $c times (expected once)"
done
[ "$(grep -c ' T-' out.txt)" -eq "$N" ] || fail "inbox holds $(grep -c ' T-' out.txt) messages, expected $N"
run "hq outbox" V outbox --home hq
bad=$(grep -cvE "accepted by relay|delivered|read|^[0-9a-f]{32} " out.txt)
[ "$bad" -eq 0 ] || fail "envelopes not accepted: $(grep -vE 'accepted by relay|delivered|read|^[0-9a-f]{32} ' out.txt | head -3)"

harness_done "client interrupt"
