#!/usr/bin/env bash
# store_rollback.sh - issue 6: a client store rolled back to an older copy
# (an attacker, or a backup restore, puts back jkt's store/ from before).
# What is checked (docs/adversarial.md "Keystore and local store at rest"):
#   - the rolled-back store is then detected at the next sync through the
#     relay's rollback marks (PROTOCOL.md part 4 section 6), past an
#     acknowledged message and past a submitted one: one-line error, nothing
#     sent or received, the store byte for byte unchanged, `valise run` exits;
#   - the current store keeps working; a relay without marks refuses no one.
# usage: store_rollback.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1 VALISE=$2 RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init rollback
start_relay() { relay_start "$1" "$3" "$2"; } # start_relay PORT DIRECTORY DATA
stop_relay() { relay_stop; }
count() { V "$1" --home "$2" >out.txt 2>err.txt || fail "$1 $2: $(cat err.txt)"; grep -c " $3\$" out.txt; }

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador"
mv dir.bin dir1.bin
start_relay 0 dir1.bin data
PORT=$(cat port)
join_relay hq jkt
echo one | V send --home hq --to ambassador@JKT --subject B-1 >/dev/null || fail "send B-1"
run "hq sync" V sync --home hq --wait-ms 200
run "jkt sync" V sync --home jkt --wait-ms 500
[ "$(count inbox jkt B-1)" -eq 1 ] || fail "B-1 not received"
cp -a jkt jkt.old # the copy an attacker (or a backup) will put back

# Directory v2 (a new device enrolled); B-2 arrives after the copy was taken.
run "init gva" V init --home gva --name Carla --out gva.req
run "enroll gva" "$KEYS" enroll --dir org --request gva.req --post GVA --role consul --out gva.cert --passphrase-file opw
run "directory v2" "$KEYS" directory --dir org --out dir2.bin --passphrase-file opw
stop_relay
start_relay "$PORT" dir2.bin data
echo two | V send --home hq --to ambassador@JKT --subject B-2 >/dev/null || fail "send B-2"
run "hq sync B-2" V sync --home hq --wait-ms 200
run "jkt sync B-2" V sync --home jkt --wait-ms 500
[ "$(count inbox jkt B-2)" -eq 1 ] || fail "B-2 not received"

# --- the rollback, past an acknowledged message ---
# jkt acknowledged B-2 after the copy was taken: the relay's mark-acked for
# jkt is higher than the copy's, so the copy is refused before anything moves.
settle() { for _ in 1 2; do V sync --home hq --wait-ms 200 >/dev/null 2>&1; V sync --home jkt --wait-ms 200 >/dev/null 2>&1; done; }
echo three | V send --home hq --to ambassador@JKT --subject B-3 >/dev/null || fail "send B-3"
run "hq sync B-3" V sync --home hq --wait-ms 200
rm -rf jkt.new; mv jkt jkt.new; mv jkt.old jkt
refused() { # refused WHO: sync must fail with the rollback line and change nothing
  cp -a "$1" "$1.before"
  if V sync --home "$1" --wait-ms 300 >out.txt 2>err.txt; then fail "$1: rolled-back store synced"; fi
  grep -q "store is older than the relay's record" err.txt || fail "$1: rollback message: $(cat err.txt)"
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "$1: not a one-line error: $(cat err.txt)"
  [ -s out.txt ] && fail "$1: output on refusal: $(cat out.txt)"
  cmp -s "$1/store/data.mdb" "$1.before/store/data.mdb" || fail "$1: the refused sync changed the store"
  rm -rf "$1.before"
}
refused jkt
[ "$(count inbox jkt B-3)" -eq 0 ] || fail "the rolled-back store received B-3"
[ "$(count inbox jkt B-1)" -eq 1 ] || fail "the rolled-back store lost B-1 (it is local)"
# `valise run` stops on it too (instead of reconnecting for ever).
timeout 20 "$VALISE" run --home jkt --passphrase-file dpw >out.txt 2>err.txt; rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "valise run on a rolled-back store: exit $rc"
grep -q "store is older than the relay's record" err.txt || fail "run: $(cat err.txt)"
# The current store is unaffected and still gets B-3, once.
rm -rf jkt.old; mv jkt jkt.old; mv jkt.new jkt
run "current jkt sync" V sync --home jkt --wait-ms 500
[ "$(count inbox jkt B-3)" -eq 1 ] || fail "the current store did not get B-3 exactly once"
settle

# --- the rollback, past a submitted message only ---
# hq's copy is taken when everything is settled; then hq only sends (nothing
# arrives for it), so only mark-sent tells the copy from the present.
cp -a hq hq.old
echo four | V send --home hq --to ambassador@JKT --subject B-4 >/dev/null || fail "send B-4"
run "hq sync B-4" V sync --home hq --wait-ms 200
grep -q "received 0 new, 0 receipts" out.txt || fail "hq received something after the copy: $(cat out.txt)"
rm -rf hq.new; mv hq hq.new; mv hq.old hq
refused hq
rm -rf hq; mv hq.new hq
run "current hq sync" V sync --home hq --wait-ms 200
run "jkt sync B-4" V sync --home jkt --wait-ms 500
[ "$(count inbox jkt B-4)" -eq 1 ] || fail "B-4 not received exactly once"

# A store never rolled back but moved to a relay that has no marks (a fresh
# relay) still works: no mark is not a higher mark.
stop_relay
start_relay "$PORT" dir2.bin data-new
run "jkt on a relay without marks" V sync --home jkt --wait-ms 200

harness_done "store rollback"
