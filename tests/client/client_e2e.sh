#!/usr/bin/env bash
# client_e2e.sh - the diplomat's story over the REAL relay and the real
# binaries (issue 4): IT enrols HQ and two JKT ambassador devices (and one
# that is then revoked); HQ sends a FLASH message to ambassador@JKT while JKT
# is offline; the relay restarts; JKT syncs and reads it with a verified
# sender; the second JKT device gets it too; the revoked device does not;
# a message sent while the relay is down queues and is delivered exactly
# once; the relay's files never hold the plaintext.
# usage: client_e2e.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-e2e
start_relay() { # start_relay [EXTRA RELAY FLAGS...]
  relay_start 0 data dir.bin "$@"
  PORT=$(cat port)
}
stop_relay() { relay_stop; }

# --- IT staff enrol four devices ---
run "org init" "$KEYS" init --dir org --org "Ministry of Foreign Affairs" --passphrase-file opw || exit 1
for h in hq jkt1 jkt2 jkt3; do
  run "valise init $h" V init --home $h --name "Person $h" --out $h.req || exit 1
done
# jkt1 and jkt2 are the same person (the ambassador's laptop and phone)
rm -rf jkt2 jkt2.req
run "valise init jkt2" V init --home jkt2 --name "Person jkt1" --out jkt2.req
run "enroll hq" "$KEYS" enroll --dir org --request hq.req --post HQ --role duty --out hq.cert --passphrase-file opw
for h in jkt1 jkt2 jkt3; do
  same=()
  [ $h = jkt2 ] && same=(--same-person-as 2) # IT: the same person as jkt1 (serial 2)
  run "enroll $h" "$KEYS" enroll --dir org --request $h.req --post JKT --role ambassador "${same[@]}" --out $h.cert --passphrase-file opw
done
run "directory v1" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw
cp dir.bin dir1.bin
# --otk-low 99: the relay asks for more one-time prekeys as soon as one is taken.
start_relay --otk-low 99
URL="ws://127.0.0.1:$PORT"
for h in hq jkt1 jkt2 jkt3; do
  run "valise enroll $h" V enroll --home $h --cert $h.cert --org-pub org/org.pub --relay "$URL" --relay-id valise-relay
done
# Someone else's certificate is refused.
if V enroll --home hq --cert jkt1.cert --org-pub org/org.pub --relay "$URL" --relay-id valise-relay >out.txt 2>err.txt; then
  fail "enroll accepted another device's certificate"
fi
grep -q "not for this device" err.txt || fail "wrong-cert message: $(cat err.txt)"

# Every device but jkt2 publishes its prekeys (jkt2 has not been switched on yet).
for h in hq jkt1 jkt3; do run "first sync $h" V sync --home $h --wait-ms 200; done

# --- jkt3 is revoked, the relay gets directory v2 ---
JKT3_ID=$(awk '/Person jkt3/ {print $2}' <("$KEYS" list --dir org))
run "revoke jkt3" "$KEYS" revoke --dir org --device "$JKT3_ID" --reason "lost" --passphrase-file opw
run "directory v2" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw
kill -HUP "$RPID"
sleep 0.3

# --- HQ sends FLASH to ambassador@JKT while JKT is offline ---
MARKER="MARKER-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf 'Instructions for the ambassador. %s\n' "$MARKER" >msg.txt
run "send" V send --home hq --to ambassador@JKT --precedence FLASH --label SECRET \
  --subject "Demarche today" --file msg.txt
ID=$(awk '{print $2}' out.txt)
[ ${#ID} -eq 32 ] || fail "send did not print a message id: $(cat out.txt)"
run "outbox before sync" V outbox --home hq
grep -q "waiting for directory" out.txt || fail "unsent message not shown waiting: $(cat out.txt)"
run "hq sync" V sync --home hq --wait-ms 200
run "outbox after sync" V outbox --home hq
[ "$(grep -c 'accepted by relay' out.txt)" -eq 1 ] || fail "expected jkt1's envelope accepted: $(cat out.txt)"
grep -q "waiting for prekeys" out.txt || fail "jkt2 (no prekeys yet) not shown waiting: $(cat out.txt)"
grep -q "Person jkt3" out.txt && fail "the revoked device got an envelope: $(cat out.txt)"
# jkt2 is switched on once (publishes prekeys), then goes offline again; HQ retries.
run "jkt2 first sync" V sync --home jkt2 --wait-ms 200
run "hq sync (retry jkt2)" V sync --home hq --wait-ms 200
run "outbox after retry" V outbox --home hq
[ "$(grep -c 'accepted by relay' out.txt)" -eq 2 ] || fail "expected 2 accepted envelopes (jkt1, jkt2): $(cat out.txt)"

# --- relay restart, JKT comes online ---
stop_relay
start_relay --otk-low 99
URL2="ws://127.0.0.1:$PORT"
if [ "$URL2" != "$URL" ]; then
  for h in hq jkt1 jkt2 jkt3; do
    run "re-enroll $h with new port" V enroll --home $h --cert $h.cert --org-pub org/org.pub --relay "$URL2" --relay-id valise-relay
  done
fi
grep -qa "$MARKER" data/* && fail "the relay's files hold the plaintext"
run "jkt1 sync" V sync --home jkt1 --wait-ms 1000
# HQ took one of jkt1's one-time prekeys: the relay's PREKEY_LOW makes jkt1 replenish.
grep -q "uploaded 100 one-time prekeys" out.txt || fail "no replenishment on PREKEY_LOW: $(cat out.txt)"
run "jkt1 inbox" V inbox --home jkt1
grep -q "$ID" out.txt || fail "jkt1 inbox lacks the message: $(cat out.txt)"
grep -q "FLASH" out.txt || fail "jkt1 inbox lacks FLASH"
run "jkt1 read" V read --home jkt1 "$ID"
grep -q "From:       Person hq, duty@HQ" out.txt || fail "read: sender: $(cat out.txt)"
grep -q "Signature:  verified" out.txt || fail "read: signature not verified: $(cat out.txt)"
grep -q "Certificate: verified" out.txt || fail "read: certificate not verified"
grep -q "Label:      SECRET" out.txt || fail "read: label"
grep -q "$MARKER" out.txt || fail "read: content"
grep -qa "$MARKER" jkt1/store/* && fail "the client store holds the plaintext"
run "jkt2 sync" V sync --home jkt2 --wait-ms 1000
run "jkt2 inbox" V inbox --home jkt2
grep -q "$ID" out.txt || fail "the second JKT device did not get it: $(cat out.txt)"
if V sync --home jkt3 --wait-ms 300 >out.txt 2>err.txt; then fail "revoked device could sync"; fi
grep -q "revoked" err.txt || fail "revoked sync message: $(cat err.txt)"
run "jkt3 inbox" V inbox --home jkt3
grep -q "$ID" out.txt && fail "the revoked device got the message"

# receipts: delivered (jkt2) and read (jkt1) come back end to end
run "jkt1 sync (read receipt)" V sync --home jkt1 --wait-ms 200
run "hq sync (receipts)" V sync --home hq --wait-ms 1000
run "hq outbox" V outbox --home hq
grep -q "Person jkt1.*: read" out.txt || fail "read receipt not shown: $(cat out.txt)"
grep -q ": delivered" out.txt || fail "delivery receipt not shown: $(cat out.txt)"

# --- the sender's own other devices get a copy (jkt1 and jkt2 are one person) ---
echo "reply from the ambassador" >reply.txt
run "jkt1 replies" V send --home jkt1 --to duty@HQ --subject "Reply" --file reply.txt
IDR=$(awk '{print $2}' out.txt)
run "jkt1 sync (reply)" V sync --home jkt1 --wait-ms 200
run "hq sync (reply)" V sync --home hq --wait-ms 1000
run "hq inbox (reply)" V inbox --home hq
grep -q "$IDR" out.txt || fail "HQ did not get the reply: $(cat out.txt)"
run "jkt2 sync (own copy)" V sync --home jkt2 --wait-ms 1000
grep -q "; 1 sent from your other devices (in the outbox)" out.txt ||
  fail "the sender's other device did not get its copy: $(cat out.txt)"
# issue 12, item 10: on the person's other device it is sent by him, not an unread incoming message.
run "jkt2 inbox (own copy)" V inbox --home jkt2
grep -q "$IDR" out.txt && fail "the own copy shows as an incoming message: $(cat out.txt)"
run "jkt2 outbox (own copy)" V outbox --home jkt2
grep -q "^$IDR .* to duty@HQ  Reply$" out.txt || fail "the own copy is not in the outbox: $(cat out.txt)"
grep -q "^    sent by you from your other device $(awk '/Person jkt1/ {print $2; exit}' <("$KEYS" list --dir org)); read$" out.txt ||
  fail "the own copy is not shown as sent from the other device, read: $(cat out.txt)"

# --- relay down: send queues, later delivered exactly once ---
stop_relay
echo "while the relay is down" >m2.txt
run "send offline" V send --home hq --to ambassador@JKT --subject "Offline" --file m2.txt
ID2=$(awk '{print $2}' out.txt)
if V sync --home hq --wait-ms 200 >out.txt 2>err.txt; then fail "sync with the relay down succeeded"; fi
grep -q "unreachable" err.txt || fail "relay down message: $(cat err.txt)"
start_relay
URL3="ws://127.0.0.1:$PORT"
for h in hq jkt1; do
  run "re-enroll $h" V enroll --home $h --cert $h.cert --org-pub org/org.pub --relay "$URL3" --relay-id valise-relay
done
run "hq sync after outage" V sync --home hq --wait-ms 200
run "hq sync again (no duplicate)" V sync --home hq --wait-ms 200
run "jkt1 sync" V sync --home jkt1 --wait-ms 1000
run "jkt1 sync again" V sync --home jkt1 --wait-ms 1000
run "jkt1 inbox" V inbox --home jkt1
[ "$(grep -c "$ID2" out.txt)" -eq 1 ] || fail "offline message not delivered exactly once: $(cat out.txt)"
[ "$(grep -c "$ID" out.txt)" -eq 1 ] || fail "first message duplicated: $(cat out.txt)"

# --- inbox order: FLASH first whatever the arrival order ---
echo "routine" >r.txt
run "send ROUTINE" V send --home hq --to ambassador@JKT --precedence ROUTINE --subject "Routine-1" --file r.txt
run "send IMMEDIATE" V send --home hq --to ambassador@JKT --precedence IMMEDIATE --subject "Immediate-1" --file r.txt
run "send FLASH" V send --home hq --to ambassador@JKT --precedence FLASH --subject "Flash-2" --file r.txt
run "hq sync (precedences)" V sync --home hq --wait-ms 200
run "jkt1 sync (precedences)" V sync --home jkt1 --wait-ms 1000
run "jkt1 inbox (order)" V inbox --home jkt1
lf=$(grep -n "Flash-2" out.txt | cut -d: -f1)
li=$(grep -n "Immediate-1" out.txt | cut -d: -f1)
lr=$(grep -n "Routine-1" out.txt | cut -d: -f1)
lo=$(grep -n "$ID2" out.txt | cut -d: -f1)
[ -n "$lf" ] && [ -n "$li" ] && [ -n "$lr" ] && [ "$lf" -lt "$li" ] && [ "$li" -lt "$lr" ] &&
  [ "$lo" -lt "$lr" ] || fail "inbox not FLASH first, then by precedence and arrival: $(cat out.txt)"

# --- a post that has nobody yet: send refuses it (issue 12 item 7); once IT enrol a device there, it goes ---
echo "for Geneva" >g.txt
if V send --home hq --to "*@GVA" --subject "Geneva-1" --file g.txt >out.txt 2>err.txt; then
  fail "send to a post nobody holds was queued: $(cat out.txt)"
fi
grep -q "^valise send: --to \*@GVA: no other device in the newest directory has this address" err.txt ||
  fail "send to an empty post: $(cat err.txt)"
run "valise init gva" V init --home gva --name "Person gva" --out gva.req
run "enroll gva" "$KEYS" enroll --dir org --request gva.req --post GVA --role consul --out gva.cert --passphrase-file opw
run "directory v3" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw
kill -HUP "$RPID"
sleep 0.3
run "valise enroll gva" V enroll --home gva --cert gva.cert --org-pub org/org.pub --relay "$URL3" --relay-id valise-relay
run "gva first sync" V sync --home gva --wait-ms 200
run "hq sync (GVA known now)" V sync --home hq --wait-ms 200
run "send to GVA" V send --home hq --to "*@GVA" --subject "Geneva-1" --file g.txt
IDG=$(awk '{print $2}' out.txt)
run "hq sync (to GVA)" V sync --home hq --wait-ms 200
run "gva sync" V sync --home gva --wait-ms 1000
run "gva inbox" V inbox --home gva
grep -q "$IDG" out.txt || fail "the new GVA device did not get the message: $(cat out.txt)"

# --- `run` stays connected and delivers what `send` queues meanwhile ---
# Started directly (not through V): the signal must reach valise itself.
"$VALISE" run --home jkt1 --passphrase-file dpw >run.out 2>run.err &
RUNPID=$!
sleep 1
echo "for the running client" >m3.txt
run "send to running jkt1" V send --home hq --to ambassador@JKT --subject "Live" --file m3.txt
ID3=$(awk '{print $2}' out.txt)
run "hq sync (live)" V sync --home hq --wait-ms 200
got=0
for _ in $(seq 50); do
  V inbox --home jkt1 >out.txt 2>/dev/null && grep -q "$ID3" out.txt && { got=1; break; }
  sleep 0.2
done
[ $got -eq 1 ] || fail "valise run did not receive the live message: $(cat run.err)"
# The relay goes away and comes back on the same port: run reconnects by itself.
RUNPORT=$PORT
stop_relay
rm -f port
"$RELAY" --data data --org-pub org/org.pub --directory dir.bin --listen "127.0.0.1:$RUNPORT" \
  --relay-cert data.rcert --port-file port --log-level warn --otk-low 99 2>>relay.log &
RPID=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
echo "after the outage" >m4.txt
run "send after relay restart" V send --home hq --to ambassador@JKT --subject "Back" --file m4.txt
ID4=$(awk '{print $2}' out.txt)
run "hq sync (after restart)" V sync --home hq --wait-ms 200
got=0
for _ in $(seq 60); do
  V inbox --home jkt1 >out.txt 2>/dev/null && grep -q "$ID4" out.txt && { got=1; break; }
  sleep 0.25
done
[ $got -eq 1 ] || fail "valise run did not reconnect and receive: $(cat run.err)"
grep -q "reconnecting in" run.err || fail "valise run did not report its reconnection: $(cat run.err)"
kill -TERM $RUNPID
wait $RUNPID || fail "valise run did not exit cleanly on SIGTERM: $(cat run.err)"

# --- expiry: the relay's non-delivery notice shows as expired undelivered ---
stop_relay
start_relay --ttl-routine 1
URL4="ws://127.0.0.1:$PORT"
run "re-enroll hq" V enroll --home hq --cert hq.cert --org-pub org/org.pub --relay "$URL4" --relay-id valise-relay
JKT2_ID=$(awk '/Person jkt1/ {print $2}' <("$KEYS" list --dir org) | tail -1)
run "send to be expired" V send --home hq --to "device:$JKT2_ID" --subject "Too late" --file m2.txt
run "hq sync (submit short-lived)" V sync --home hq --wait-ms 200
expired=0
for _ in $(seq 20); do
  sleep 0.5
  run "hq sync (expiry)" V sync --home hq --wait-ms 300
  V outbox --home hq >out.txt 2>/dev/null
  grep -q "expired undelivered" out.txt && { expired=1; break; }
done
[ $expired -eq 1 ] || fail "no expired-undelivered status after the TTL: $(cat out.txt)"

# --- safety numbers agree on both sides ---
HQ_ID=$(awk '/Person hq/ {print $2}' <("$KEYS" list --dir org))
JKT1_ID=$(awk '/Person jkt1/ {print $2; exit}' <("$KEYS" list --dir org))
run "fingerprint hq->jkt1" V fingerprint --home hq --device "$JKT1_ID"
A=$(grep -A1 "safety number" out.txt | tr -dc '0-9' | tail -c 60)
run "fingerprint jkt1->hq" V fingerprint --home jkt1 --device "$HQ_ID"
B=$(grep -A1 "safety number" out.txt | tr -dc '0-9' | tail -c 60)
[ -n "$A" ] && [ "$A" = "$B" ] || fail "safety numbers differ: '$A' vs '$B'"

# --- rollback: a relay serving an older directory than HQ has seen is refused ---
stop_relay
relay_identity data-old valise-relay data-old.rcert
rm -f port
"$RELAY" --data data-old --org-pub org/org.pub --directory dir1.bin --listen 127.0.0.1:0 \
  --relay-cert data-old.rcert --port-file port --log-level warn 2>>relay.log &
RPID=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
run "enroll with the rolled-back relay" V enroll --home hq --cert hq.cert --org-pub org/org.pub \
  --relay "ws://127.0.0.1:$(cat port)" --relay-id valise-relay
if V sync --home hq --wait-ms 200 >out.txt 2>err.txt; then fail "sync accepted an older directory"; fi
grep -q "older than one already seen" err.txt || fail "rollback message: $(cat err.txt)"

# --- TLS: wss:// to a relay whose certificate the --ca file vouches for ---
stop_relay
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout tls.key -out tls.crt >/dev/null 2>&1 || fail "openssl could not make a test certificate"
rm -f port
"$RELAY" --data data --org-pub org/org.pub --directory dir.bin --listen 127.0.0.1:0 \
  --relay-cert data.rcert --port-file port --log-level warn --tls-cert tls.crt --tls-key tls.key 2>>relay.log &
RPID=$!
for _ in $(seq 100); do [ -s port ] && break; sleep 0.05; done
[ -s port ] || fail "TLS relay did not start: $(tail -3 relay.log)"
run "enroll wss with --ca" V enroll --home hq --cert hq.cert --org-pub org/org.pub \
  --relay "wss://127.0.0.1:$(cat port)" --relay-id valise-relay --ca tls.crt
run "sync over TLS" V sync --home hq --wait-ms 200
run "enroll wss without --ca" V enroll --home hq --cert hq.cert --org-pub org/org.pub \
  --relay "wss://127.0.0.1:$(cat port)" --relay-id valise-relay
if V sync --home hq --wait-ms 200 >out.txt 2>err.txt; then
  fail "sync trusted a relay certificate no CA vouches for"
fi
if V enroll --home hq --cert hq.cert --org-pub org/org.pub --relay "ws://192.0.2.1:80" --relay-id valise-relay >out.txt 2>err.txt; then
  fail "plain ws:// to a non-loopback relay accepted"
fi

# --- one-line errors ---
if V read --home jkt1 ffffffffffff >out.txt 2>err.txt; then fail "read of unknown id succeeded"; fi
[ "$(wc -l <err.txt)" -eq 1 ] || fail "read error not one line: $(cat err.txt)"
if V send --home hq --to "nobody" --file m2.txt >out.txt 2>err.txt; then fail "bad address accepted"; fi
[ "$(wc -l <err.txt)" -eq 1 ] || fail "send error not one line: $(cat err.txt)"
for v in enroll send sync run inbox read outbox fingerprint; do
  "$VALISE" $v --help >out.txt 2>&1 || fail "$v --help"
  grep -q "usage: valise $v" out.txt || fail "$v --help has no usage line"
done

if [ $failures -ne 0 ]; then
  echo "$failures failure(s); relay log:" >&2
  tail -20 relay.log >&2
  exit 1
fi
echo "client e2e: all checks passed"
