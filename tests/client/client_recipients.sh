#!/usr/bin/env bash
# client_recipients.sh - several recipients per message (issue 12, item 6),
# over the real relay and binaries:
#  - `send --to A --to B`: one message, one id, one outbox entry, every
#    device behind both addresses (a device behind both gets one copy), the
#    whole list shown by send, outbox, inbox and read;
#  - the same address twice, more than 16, and unknown addresses (each
#    named) are refused with nothing queued.
# usage: client_recipients.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-recipients

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador" "osl Ola OSL consul" "cl Clerk JKT clerk"
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq jkt osl cl

outbox_entries() { grep -c '^[0-9a-f]\{32\} ' out.txt; }

# --- two addresses: one message, one id ---
echo "Both of you, please." | V send --home hq --to ambassador@JKT --to consul@OSL \
  --precedence IMMEDIATE --subject "Joint demarche" >out.txt 2>err.txt || fail "send to two: $(cat err.txt)"
grep -q "^queued [0-9a-f]\{32\} to ambassador@JKT, consul@OSL (IMMEDIATE, UNCLASSIFIED)$" out.txt ||
  fail "send does not show both addresses: $(cat out.txt)"
ID=$(awk '{print $2}' out.txt)
run "hq outbox" V outbox --home hq
[ "$(outbox_entries)" -eq 1 ] || fail "two --to made more than one outbox entry: $(cat out.txt)"
grep -q "^$ID IMMEDIATE .* to ambassador@JKT, consul@OSL  Joint demarche$" out.txt ||
  fail "outbox does not show both addresses: $(cat out.txt)"
run "hq sync" V sync --home hq
grep -q "sent 2 messages" out.txt || fail "one envelope per device expected (2): $(cat out.txt)"
run "hq outbox after sync" V outbox --home hq
grep -q "^    $(device_id Budi) Budi (ambassador@JKT): accepted by relay" out.txt ||
  fail "the ambassador is not a recipient: $(cat out.txt)"
grep -q "^    $(device_id Ola) Ola (consul@OSL): accepted by relay" out.txt ||
  fail "the consul is not a recipient: $(cat out.txt)"
[ "$(grep -c '^    ' out.txt)" -eq 2 ] || fail "recipients other than the two: $(cat out.txt)"
for h in jkt osl; do
  run "$h sync" V sync --home $h
  grep -q "received 1 new" out.txt || fail "$h did not receive the message: $(cat out.txt)"
  run "$h inbox" V inbox --home $h
  grep -q "^\* $ID IMMEDIATE .* Anna (duty@HQ)  Joint demarche  \[to ambassador@JKT, consul@OSL\]$" out.txt ||
    fail "$h inbox does not show the message to both: $(cat out.txt)"
  run "$h read" V read --home $h "$ID"
  grep -q "^To:         ambassador@JKT, consul@OSL$" out.txt || fail "$h read: $(cat out.txt)"
  grep -q "^Signature:  verified" out.txt || fail "$h read: signature: $(cat out.txt)"
done
run "clerk sync" V sync --home cl
grep -q "received 0 new" out.txt || fail "the clerk got a message addressed to others: $(cat out.txt)"
# Delivery and read receipts come back from both devices.
for h in jkt osl; do run "$h sync (read receipt)" V sync --home $h; done
run "hq sync (receipts)" V sync --home hq
run "hq outbox (read)" V outbox --home hq
[ "$(grep -c '^    .*: read$' out.txt)" -eq 2 ] || fail "read receipts from both expected: $(cat out.txt)"

# --- overlapping addresses: a device behind both gets one copy ---
echo "Overlap" | V send --home hq --to '*@JKT' --to ambassador@JKT --subject Overlap >out.txt 2>err.txt ||
  fail "send overlapping: $(cat err.txt)"
ID2=$(awk '{print $2}' out.txt)
run "hq sync (overlap)" V sync --home hq
grep -q "sent 2 messages" out.txt || fail "overlap: the ambassador and the clerk, once each: $(cat out.txt)"
run "jkt sync (overlap)" V sync --home jkt
grep -q "received 1 new" out.txt || fail "overlap: jkt: $(cat out.txt)"

# --- refusals: nothing queued ---
run "outbox before refusals" V outbox --home hq
before=$(outbox_entries)
if echo x | V send --home hq --to consul@OSL --to consul@OSL >out.txt 2>err.txt; then
  fail "the same address twice accepted"
fi
grep -q "^valise send: --to consul@OSL: given twice; name each address once$" err.txt ||
  fail "duplicate --to: $(cat err.txt)"
args=()
for i in $(seq 17); do args+=(--to "duty@P$i"); done
if echo x | V send --home hq "${args[@]}" >out.txt 2>err.txt; then fail "17 addresses accepted"; fi
grep -q "^valise send: --to: at most 16 addresses per message" err.txt || fail "17 --to: $(cat err.txt)"
if echo x | V send --home hq --to nobody@NOWHERE --to consul@OSL --to ghost@JKT >out.txt 2>err.txt; then
  fail "unknown addresses accepted"
fi
grep -q "^valise send: --to nobody@NOWHERE: no other device in the newest directory has this address; nothing was queued" err.txt ||
  fail "first unknown address not named: $(cat err.txt)"
grep -q "^valise send: --to ghost@JKT: no other device in the newest directory has this address; nothing was queued" err.txt ||
  fail "second unknown address not named: $(cat err.txt)"
grep -q "consul@OSL" err.txt && fail "a known address named as unknown: $(cat err.txt)"
if echo x | V send --home hq --to consul@OSL --to 'Consul@osl' >out.txt 2>err.txt; then
  fail "a malformed second address accepted"
fi
grep -q "^valise send: --to Consul@osl: must be role@POST" err.txt || fail "malformed --to: $(cat err.txt)"
run "outbox after refusals" V outbox --home hq
[ "$(outbox_entries)" -eq "$before" ] || fail "a refused send queued something: $(cat out.txt)"

harness_done client_recipients
