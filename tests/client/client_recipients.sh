#!/usr/bin/env bash
# client_recipients.sh - several recipients per message (issue 12, item 6),
# over the real relay and binaries:
#  - `send --to A --to B`: one message, one id, one outbox entry, every
#    device behind both addresses (a device behind both gets one copy), the
#    whole list shown by send, outbox, inbox and read;
#  - the same address twice, more than 16, and unknown addresses (each
#    named) are refused with nothing queued;
#  - the sender's other device (IT: the same person) gets the message as
#    sent by its person, and `read ID` opens it there (issue 12, item 10);
#  - an envelope the relay refuses for good: the sync line names why (item 9).
# usage: client_recipients.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-recipients

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador" "osl Ola OSL consul" "cl Clerk JKT clerk"
# Anna's second device: IT enrols it as the same person as hq (serial 1).
run "init hq2" V init --home hq2 --name "Anna" --out hq2.req
run "enroll hq2" "$KEYS" enroll --dir org --request hq2.req --post HQ --role duty --same-person-as 1 \
  --out hq2.cert --passphrase-file opw
run "directory" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq hq2 jkt osl cl
HQ2_ID=$("$KEYS" list --dir org | awk '$0 ~ /Anna/ {print $2}' | tail -1)

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
grep -q "sent 3 messages" out.txt || fail "one envelope per device expected (2 and Anna's other): $(cat out.txt)"
run "hq outbox after sync" V outbox --home hq
grep -q "^    $(device_id Budi) Budi (ambassador@JKT): accepted by relay" out.txt ||
  fail "the ambassador is not a recipient: $(cat out.txt)"
grep -q "^    $(device_id Ola) Ola (consul@OSL): accepted by relay" out.txt ||
  fail "the consul is not a recipient: $(cat out.txt)"
grep -q "^    $HQ2_ID Anna (duty@HQ): accepted by relay" out.txt ||
  fail "Anna's other device is not a recipient: $(cat out.txt)"
[ "$(grep -c '^    ' out.txt)" -eq 3 ] || fail "recipients other than the two and Anna's other: $(cat out.txt)"
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
# Anna's other device keeps it as sent by her, and opens it with read (item 10).
run "hq2 sync" V sync --home hq2
grep -q "1 sent from your other devices (in the outbox)" out.txt || fail "hq2 sync: $(cat out.txt)"
run "hq2 read (sent from hq)" V read --home hq2 "$ID"
grep -q "^To:         ambassador@JKT, consul@OSL$" out.txt || fail "hq2 read: To: $(cat out.txt)"
grep -q "^Sent:       by you, from your other device$" out.txt || fail "hq2 read: not shown as sent: $(cat out.txt)"
grep -q "^Signature:  verified" out.txt || fail "hq2 read: signature: $(cat out.txt)"
grep -q "^Both of you, please.$" out.txt || fail "hq2 read: body: $(cat out.txt)"
run "hq read (its own)" V read --home hq "${ID:0:8}"
grep -q "^Sent:       by you, from this device$" out.txt || fail "hq read of its own: $(cat out.txt)"

# Delivery and read receipts come back from both devices.
for h in jkt osl; do run "$h sync (read receipt)" V sync --home $h; done
run "hq sync (receipts)" V sync --home hq
run "hq outbox (read)" V outbox --home hq
[ "$(grep -c '^    .*: read$' out.txt)" -eq 2 ] || fail "read receipts from both expected: $(cat out.txt)"
grep -q "^    $HQ2_ID Anna (duty@HQ): delivered$" out.txt || fail "hq2 sent no delivery receipt: $(cat out.txt)"

# --- overlapping addresses: a device behind both gets one copy ---
echo "Overlap" | V send --home hq --to '*@JKT' --to ambassador@JKT --subject Overlap >out.txt 2>err.txt ||
  fail "send overlapping: $(cat err.txt)"
ID2=$(awk '{print $2}' out.txt)
run "hq sync (overlap)" V sync --home hq
grep -q "sent 3 messages" out.txt || fail "overlap: the ambassador, the clerk and hq2, once each: $(cat out.txt)"
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

# --- an envelope the relay refuses for good: the sync line names why (item 9) ---
relay_stop
relay_start "$PORT" data dir.bin --max-envelope 2000
head -c 5000 /dev/zero | tr '\0' 'x' >big.txt
run "send a message larger than the relay takes" V send --home hq --to consul@OSL --file big.txt
run "hq sync (refused)" V sync --home hq
grep -q "; 2 refused by the relay" out.txt || fail "sync does not count the relay's refusals: $(cat out.txt)"
grep -q "^the relay refused 2 of this device's envelopes: envelope_too_large (valise outbox shows which)$" out.txt ||
  fail "sync does not name why the relay refused: $(cat out.txt)"
run "hq outbox (refused)" V outbox --home hq
grep -q "^    $(device_id Ola) Ola (consul@OSL): rejected by relay (envelope_too_large)$" out.txt ||
  fail "outbox does not name the refusal: $(cat out.txt)"

harness_done client_recipients
