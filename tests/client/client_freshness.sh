#!/usr/bin/env bash
# client_freshness.sh - a coerced relay keeps serving an old directory that
# still lists a revoked (seized) device (issue 11, item 4; PROTOCOL.md part 4
# "Directory freshness"). Over the real relay and binaries, with the device's
# wall clock moved by the test-only LD_PRELOAD shim tests/support/fakeclock.c:
#  - near the directory's end every command warns on stderr;
#  - past it, HQ encrypts to no device (the seized one included) and accepts
#    nothing (the seized device's message and a colleague's stay on the relay,
#    not acknowledged), and send says the message waits for a fresh directory;
#  - once IT publish a newer directory, the same sync unblocks: the colleague's
#    held message is delivered, the seized device's is refused, the queued
#    message goes to the colleague only;
#  - the relay exports the expiry (valise_directory_expires_seconds) and warns
#    at SIGHUP when given an expired directory.
# usage: client_freshness.sh VALISE_KEYS VALISE VALISE_RELAY FAKECLOCK_SO
set -u
KEYS=$1
VALISE=$2
RELAY=$3
FAKECLOCK=$4
. "$(dirname "$0")/../harness.sh"
harness_init client-freshness
DAY=86400
# at OFFSET CMD...: CMD with the wall clock moved OFFSET seconds (functions too).
at() { local off=$1; shift; LD_PRELOAD="$FAKECLOCK" VALISE_FAKE_TIME_OFFSET="$off" "$@"; }

# The shim itself: time moves in a child, and only by the offset asked for.
t0=$(date +%s)
t1=$(at $((3 * DAY)) date +%s)
[ $((t1 - t0 - 3 * DAY)) -ge 0 ] && [ $((t1 - t0 - 3 * DAY)) -le 5 ] ||
  fail "fakeclock did not move the clock by 3 days: $t0 -> $t1"

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador" "seized Clerk JKT clerk"
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq jkt seized

# --- the seized device and a colleague write to HQ; HQ has not synced yet ---
echo "from the seized phone" >seized.txt
run "seized sends" V send --home seized --to duty@HQ --subject "Seized" --file seized.txt
run "seized sync" V sync --home seized --wait-ms 200
echo "from Budi" >budi.txt
run "budi sends" V send --home jkt --to duty@HQ --subject "Colleague" --file budi.txt
run "budi sync" V sync --home jkt --wait-ms 200

# --- IT revoke the seized device, but the coerced relay never gets the new directory ---
SEIZED_ID=$(device_id Clerk)
run "revoke seized" "$KEYS" revoke --dir org --device "$SEIZED_ID" --reason seized --passphrase-file opw
run "directory v2 (withheld)" "$KEYS" directory --dir org --out dir-withheld.bin --passphrase-file opw

# --- fresh: no warning ---
run "inbox now" V inbox --home hq
[ -s err.txt ] && fail "a fresh directory warned: $(cat err.txt)"

# --- within 48 h of the end (default validity 7 days): every command warns ---
for cmd in inbox outbox "fingerprint --device ambassador@JKT"; do
  run "$cmd at day 6" at $((6 * DAY)) V $cmd --home hq
  grep -q "the directory expires at .*: IT must publish a new one; sync to fetch it" err.txt ||
    fail "no expiry warning from $cmd at day 6: $(cat err.txt)"
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "$cmd warning is not one line: $(cat err.txt)"
done

# --- past the end: HQ sends to neither, accepts from neither ---
LATE=$((8 * DAY))
echo "Circular to the embassy" >circ.txt
run "send at day 8" at $LATE V send --home hq --to "*@JKT" --subject "Circular" --file circ.txt
grep -q "^queued " out.txt || fail "send at day 8 did not queue: $(cat out.txt)"
grep -q "the directory expired at .*queued and goes out once a fresh directory arrives" err.txt ||
  fail "send with an expired directory does not say it waits: $(cat err.txt)"
for round in 1 2; do
  run "hq sync at day 8 ($round)" at $LATE V sync --home hq --wait-ms 400
  grep -q "received 0 new" out.txt || fail "accepted a message with an expired directory: $(cat out.txt)"
  grep -q "sent 0 messages," out.txt || fail "sent with an expired directory: $(cat out.txt)"
  # Both messages were pushed, held and not acknowledged: they come again each time.
  grep -q "2 held on the relay (directory expired)" out.txt ||
    fail "round $round: the two messages were not held on the relay: $(cat out.txt)"
  grep -q "the directory expired at .*nothing was encrypted to or accepted from any device" err.txt ||
    fail "sync with an expired directory did not warn: $(cat err.txt)"
done
run "hq inbox at day 8" at $LATE V inbox --home hq
grep -q "inbox empty" out.txt || fail "an expired directory let a message in: $(cat out.txt)"
run "hq outbox at day 8" at $LATE V outbox --home hq
grep -q "accepted by relay" out.txt && fail "encrypted with an expired directory: $(cat out.txt)"
grep -q "Clerk" out.txt && fail "the seized device is a recipient: $(cat out.txt)"

# --- IT publish a newer directory (signed at day 8); the same sync unblocks ---
run "directory v3" at $LATE "$KEYS" directory --dir org --out dir.bin --passphrase-file opw
kill -HUP "$RPID"
sleep 0.5
run "hq sync with a fresh directory" at $LATE V sync --home hq --wait-ms 400
grep -q "^directory v3;" out.txt || fail "the fresh directory was not fetched: $(cat out.txt)"
grep -q "received 1 new" out.txt || fail "the held colleague's message was not delivered: $(cat out.txt)"
grep -q "1 refused" out.txt || fail "the seized device's message was not refused: $(cat out.txt)"
grep -q "held" out.txt && fail "still holding with a fresh directory: $(cat out.txt)"
[ -s err.txt ] && fail "a fresh directory still warned: $(cat err.txt)"
run "hq inbox after" at $LATE V inbox --home hq
grep -q "Colleague" out.txt || fail "colleague's message missing: $(cat out.txt)"
grep -q "Seized" out.txt && fail "the seized device's message was accepted: $(cat out.txt)"
run "hq outbox after" at $LATE V outbox --home hq
[ "$(grep -c 'Budi (ambassador@JKT): accepted by relay' out.txt)" -eq 1 ] ||
  fail "the circular did not go to Budi: $(cat out.txt)"
grep -q "Clerk" out.txt && fail "the seized device got the circular: $(cat out.txt)"
run "budi sync at day 8" at $LATE V sync --home jkt --wait-ms 400
grep -q "received 1 new" out.txt || fail "Budi did not get the circular: $(cat out.txt)"

# --- the relay: the expiry gauge, and a warning at SIGHUP for an expired directory ---
EXP3=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^valise_directory_expires_seconds / {print $2}')
[ -n "$EXP3" ] && [ "$EXP3" -gt $((t0 + 14 * DAY)) ] ||
  fail "valise_directory_expires_seconds does not show directory v3's expiry: '$EXP3'"
run "directory v4 (signed 30 days ago, 1 day)" at $((-30 * DAY)) "$KEYS" directory --dir org \
  --out dir.bin --valid-days 1 --passphrase-file opw
kill -HUP "$RPID"
sleep 0.5
grep -q "expired at .*IT must sign and publish a new one" relay.log ||
  fail "the relay did not warn about an expired directory: $(tail -3 relay.log)"
EXP4=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^valise_directory_expires_seconds / {print $2}')
[ -n "$EXP4" ] && [ "$EXP4" -lt "$t0" ] || fail "gauge not the expired directory's: '$EXP4'"

# --- valise-keys directory --valid-days bounds ---
for bad in 0 91 x; do
  if "$KEYS" directory --dir org --out bad.bin --valid-days $bad --passphrase-file opw >out.txt 2>err.txt; then
    fail "--valid-days $bad accepted"
  fi
  grep -q "valid-days '$bad' must be a whole number from 1 to 90" err.txt || fail "--valid-days $bad: $(cat err.txt)"
  [ -e bad.bin ] && fail "--valid-days $bad wrote a file"
done

harness_done "client freshness"
