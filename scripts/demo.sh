#!/usr/bin/env bash
# demo.sh - the main job, end to end, on a fresh Debian 12 machine: installs
# what is missing, builds, and walks through Valise as its four users would.
#
#  1. IT staff create the ministry's root of trust and enrol an HQ device and
#     two devices of the ambassador in Jakarta; they publish the directory.
#  2. The relay operator starts the relay (plain ws:// on loopback for the
#     demo; production uses --tls-cert/--tls-key).
#  3. HQ sends a FLASH message to ambassador@JKT while Jakarta is offline.
#  4. Jakarta comes online, reads it with a verified sender; the relay's files
#     never held the plaintext.
#  5. A Jakarta device is reported lost: IT revoke it; the relay drops it.
#  6. The security officer verifies the relay's audit log and reads the report.
# Passphrases come from files so the walk-through runs unattended; at a
# terminal each command asks for them without echo.
#
# VALISE_BIN_DIR=/usr/bin scripts/demo.sh walks through the installed packages'
# programs instead (no install, no build: tests/packaging/packages.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VALISE_BIN_DIR:-}" ]; then
    bin=$VALISE_BIN_DIR
    KEYS=$bin/valise-keys
    VALISE=$bin/valise
    RELAY=$bin/valise-relay
    AUDIT=$bin/valise-audit
else
    scripts/deps.sh
    scripts/build.sh release
    bin=$PWD/build/release
    KEYS=$bin/keys/valise-keys
    VALISE=$bin/client/valise
    RELAY=$bin/relay/valise-relay
    AUDIT=$bin/audit/valise-audit
fi

demo=${VALISE_DEMO_DIR:-$(mktemp -d /tmp/valise-demo.XXXXXX)}
mkdir -p "$demo"
cd "$demo"
rpid=
cleanup() { [ -n "$rpid" ] && kill "$rpid" 2>/dev/null && wait "$rpid" 2>/dev/null; true; }
trap cleanup EXIT
rm -rf org hq jkt-laptop jkt-phone relay-data ./*.req ./*.cert relay.pub directory.bin officer.state
umask 077
printf 'ministry root passphrase, kept by IT\n' >it.pass
printf 'device passphrase of the HQ duty officer\n' >hq.pass
printf 'device passphrase of the ambassador\n' >jkt.pass

step() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "${*#$bin/*/}"; "$@"; }

step "1. IT staff create the organisation's root of trust (offline machine)"
run "$KEYS" init --dir org --org "Ministry of Foreign Affairs" --passphrase-file it.pass

step "Each device creates its keys and an enrolment request"
run "$VALISE" init --home hq --name "Anna Lindqvist" --out anna.req --passphrase-file hq.pass
run "$VALISE" init --home jkt-laptop --name "Budi Santoso" --out budi-laptop.req --passphrase-file jkt.pass
run "$VALISE" init --home jkt-phone --name "Budi Santoso" --out budi-phone.req --passphrase-file jkt.pass

step "IT staff check each self-signed request, issue certificates, publish the directory"
run "$KEYS" enroll --dir org --request anna.req --post HQ --role duty --out anna.cert --passphrase-file it.pass
run "$KEYS" enroll --dir org --request budi-laptop.req --post JKT --role ambassador --out budi-laptop.cert --passphrase-file it.pass
run "$KEYS" enroll --dir org --request budi-phone.req --post JKT --role ambassador --same-person-as 2 --out budi-phone.cert --passphrase-file it.pass
run "$KEYS" directory --dir org --out directory.bin --passphrase-file it.pass
run "$KEYS" list --dir org

step "2. The relay operator makes the relay's handshake key; IT certify it for relay id demo-relay"
run "$RELAY" --init-handshake-key --data relay-data --out relay.pub
run "$KEYS" relay-cert --dir org --relay-id demo-relay --pubkey relay.pub --out relay.cert --passphrase-file it.pass

step "The relay operator starts the relay with its relay certificate"
"$RELAY" --data relay-data --org-pub org/org.pub --directory directory.bin --relay-cert relay.cert \
  --listen 127.0.0.1:0 --port-file relay.port --relay-id demo-relay --log-level warn 2>relay.log &
rpid=$!
for _ in $(seq 100); do [ -s relay.port ] && break; sleep 0.05; done
[ -s relay.port ] || { echo "demo: the relay did not start: $(cat relay.log)" >&2; exit 1; }
url="ws://127.0.0.1:$(cat relay.port)"
echo "relay listening on $url (healthz: $(curl -s "http://127.0.0.1:$(cat relay.port)/healthz"))"

step "Each device installs its certificate and the relay id IT gave; the devices publish their prekeys"
run "$VALISE" enroll --home hq --cert anna.cert --org-pub org/org.pub --relay "$url" --relay-id demo-relay --passphrase-file hq.pass
run "$VALISE" enroll --home jkt-laptop --cert budi-laptop.cert --org-pub org/org.pub --relay "$url" --relay-id demo-relay --passphrase-file jkt.pass
run "$VALISE" enroll --home jkt-phone --cert budi-phone.cert --org-pub org/org.pub --relay "$url" --relay-id demo-relay --passphrase-file jkt.pass
run "$VALISE" sync --home hq --passphrase-file hq.pass
run "$VALISE" sync --home jkt-laptop --passphrase-file jkt.pass
run "$VALISE" sync --home jkt-phone --passphrase-file jkt.pass

step "3. HQ sends a FLASH message to ambassador@JKT; Jakarta is offline"
marker="Deliver the note verbale to the foreign minister today. (demo $(date +%s%N))"
printf '%s\n' "$marker" >message.txt
run "$VALISE" send --home hq --to ambassador@JKT --precedence FLASH --label SECRET \
  --subject "Demarche" --file message.txt --passphrase-file hq.pass
id=$("$VALISE" outbox --home hq --passphrase-file hq.pass | awk 'NR==1 {print $1}')
run "$VALISE" sync --home hq --passphrase-file hq.pass
run "$VALISE" outbox --home hq --passphrase-file hq.pass

step "4. Jakarta comes online and reads it"
run "$VALISE" sync --home jkt-laptop --passphrase-file jkt.pass
run "$VALISE" inbox --home jkt-laptop --passphrase-file jkt.pass
run "$VALISE" read --home jkt-laptop "$id" --passphrase-file jkt.pass
run "$VALISE" sync --home jkt-phone --passphrase-file jkt.pass
run "$VALISE" inbox --home jkt-phone --passphrase-file jkt.pass
if grep -rqaF "$marker" relay-data; then
  echo "demo: the relay's files hold the plaintext" >&2; exit 1
fi
echo "checked: the relay's LMDB files do not contain the message text"
run "$VALISE" sync --home hq --passphrase-file hq.pass
run "$VALISE" outbox --home hq --passphrase-file hq.pass

step "5. The ambassador's phone is reported lost: IT revoke it, the relay reloads the directory"
phone_id=$("$KEYS" list --dir org | awk '/Budi Santoso/ {id=$2} END {print id}')
run "$KEYS" revoke --dir org --device "$phone_id" --reason "reported lost" --passphrase-file it.pass
run "$KEYS" directory --dir org --out directory.bin --passphrase-file it.pass
kill -HUP "$rpid"; sleep 0.5
if "$VALISE" sync --home jkt-phone --passphrase-file jkt.pass; then
  echo "demo: the revoked phone could still sync" >&2; exit 1
fi
echo "checked: the revoked phone is refused"

step "6. The relay operator stops the relay; the security officer verifies its audit log"
kill "$rpid"; wait "$rpid" 2>/dev/null || true; rpid=
key=$("$RELAY" --print-audit-key --data relay-data --relay-id demo-relay)
echo "audit verifier key (published by the relay operator): $key"
run "$AUDIT" verify --data relay-data --key "$key" --state officer.state
run "$AUDIT" report --data relay-data --key "$key" --org-pub org/org.pub

printf '\nDemo finished in %s\n' "$demo"
