#!/usr/bin/env bash
# client_restore.sh - issue 15 item 4, the client's half: a relay restored
# from a backup has lost what it acknowledged after the backup; the sender's
# client, whose relay marks (AUTH_OK hi_submitted) are now below its own
# mark-sent, resubmits what it holds as accepted above them, with the same ids
# and bytes, so the recipient gets everything exactly once
# (PROTOCOL.md part 2 "Backup and restore"). Receipts are envelopes too:
# carla's delivery receipt, accepted after the backup, goes again the same way.
# A control run without the resubmission fails (budi never gets M-2).
# usage: client_restore.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1 VALISE=$2 RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init restore
count() { V inbox --home "$1" >out.txt 2>err.txt || fail "inbox $1: $(cat err.txt)"; grep -c " $2\$" out.txt; }

org_setup "anna Anna HQ duty" "budi Budi JKT ambassador" "carla Carla GVA consul"
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay anna budi carla

echo one | V send --home anna --to ambassador@JKT --subject M-1 >/dev/null || fail "send M-1"
echo cee | V send --home anna --to consul@GVA --subject C-1 >/dev/null || fail "send C-1"
run "anna sync M-1" V sync --home anna --wait-ms 200
grep -q "accepted 2 messages;" out.txt || fail "M-1, C-1 not accepted: $(cat out.txt)"
# The operator's hot backup, the relay running.
run "relay backup" "$RELAY" backup --data data --out relay-backup.mdb
[ -s relay-backup.mdb ] || fail "no backup written"
echo two | V send --home anna --to ambassador@JKT --subject M-2 >/dev/null || fail "send M-2"
run "anna sync M-2" V sync --home anna --wait-ms 200
grep -q "accepted 1 message;" out.txt || fail "M-2 not accepted: $(cat out.txt)"
grep -q resubmitted out.txt && fail "resubmitted before any restore: $(cat out.txt)"
# carla takes C-1 after the backup: her delivery receipt is accepted after it.
run "carla sync C-1" V sync --home carla --wait-ms 300
[ "$(count carla C-1)" -eq 1 ] || fail "carla did not get C-1"

# The disk dies: only the keys kept on offline media survive.
relay_stop
mkdir keys
for k in handshake.key audit.key relay-id; do
  [ -f "data/$k" ] || { fail "the relay keeps no data/$k"; continue; }
  cp -p "data/$k" keys/
done
rm -rf data
mkdir -m 700 data
cp -p keys/* data/
run "relay restore" "$RELAY" restore --data data --from relay-backup.mdb
relay_start "$PORT" data dir.bin
[ "$(cat port)" = "$PORT" ] || fail "relay came back on another port"

# anna's relay marks are the backup's: M-2 (accepted after it) goes again.
run "anna sync after restore" V sync --home anna --wait-ms 200
grep -q "^1 resubmitted: the relay had lost them (restored from a backup)$" out.txt ||
  fail "anna did not resubmit M-2: $(cat out.txt)"
grep -q "accepted 1 message;" out.txt || fail "the resubmission was not accepted: $(cat out.txt)"
run "anna sync again" V sync --home anna --wait-ms 200
grep -q resubmitted out.txt && fail "resubmitted twice: $(cat out.txt)"

# carla's receipt goes again; C-1, still queued in the backup, comes back to
# her and is acknowledged as a copy she already has.
run "carla sync after restore" V sync --home carla --wait-ms 300
grep -q "^1 resubmitted: the relay had lost them (restored from a backup)$" out.txt ||
  fail "carla did not resubmit her receipt: $(cat out.txt)"
run "carla sync again" V sync --home carla --wait-ms 300
[ "$(count carla C-1)" -eq 1 ] || fail "carla does not hold C-1 exactly once"

run "budi sync" V sync --home budi --wait-ms 500
run "budi sync again" V sync --home budi --wait-ms 300
[ "$(count budi M-1)" -eq 1 ] || fail "budi does not hold M-1 exactly once: $(cat out.txt)"
[ "$(count budi M-2)" -eq 1 ] || fail "budi does not hold M-2 exactly once: $(cat out.txt)"
# Budi's delivery receipts reach anna: both messages show as delivered.
run "anna sync receipts" V sync --home anna --wait-ms 300
run "anna outbox" V outbox --home anna
[ "$(grep -c delivered out.txt)" -eq 3 ] || fail "anna's outbox (M-1, M-2, C-1 delivered): $(cat out.txt)"

harness_done "client restore"
