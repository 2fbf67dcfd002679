#!/usr/bin/env bash
# demo.sh - the main job, end to end, on a fresh Debian 12 machine: installs
# what is missing, builds, and walks through Valise as its users would.
#
# Today: IT staff create the ministry's root of trust, enrol an HQ device and
# a mission device, publish the signed directory, revoke the mission device
# (reported lost) and publish again. Passphrases come from files here so the
# walk-through runs unattended; at a terminal each command asks without echo.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
scripts/build.sh release
bin=$PWD/build/release
KEYS=$bin/keys/valise-keys
VALISE=$bin/client/valise

demo=${VALISE_DEMO_DIR:-$(mktemp -d /tmp/valise-demo.XXXXXX)}
mkdir -p "$demo"
cd "$demo"
rm -rf org hq jkt ./*.req ./*.cert directory.bin
umask 077
printf 'ministry root passphrase, kept by IT\n' >it.pass
printf 'anna device passphrase\n' >anna.pass
printf 'budi device passphrase\n' >budi.pass

step() { printf '\n== %s\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "IT staff create the organisation's root of trust (offline machine)"
run "$KEYS" init --dir org --org "Ministry of Foreign Affairs" --passphrase-file it.pass

step "A diplomat at HQ and the ambassador in Jakarta each create their device keys"
run "$VALISE" init --home hq --name "Anna Lindqvist" --out anna.req --passphrase-file anna.pass
run "$VALISE" init --home jkt --name "Budi Santoso" --out budi.req --passphrase-file budi.pass

step "IT staff check each self-signed request and issue certificates"
run "$KEYS" enroll --dir org --request anna.req --post HQ --role duty --out anna.cert --passphrase-file it.pass
run "$KEYS" enroll --dir org --request budi.req --post JKT --role ambassador --valid-days 180 --out budi.cert --passphrase-file it.pass

step "IT staff publish the signed directory"
run "$KEYS" directory --dir org --out directory.bin --passphrase-file it.pass
run "$KEYS" list --dir org

step "The Jakarta device is reported lost: IT staff revoke it and publish again"
budi_id=$("$KEYS" list --dir org | awk '/Budi Santoso/ {print $2}')
run "$KEYS" revoke --dir org --device "$budi_id" --reason "reported lost in transit" --passphrase-file it.pass
run "$KEYS" directory --dir org --out directory.bin --passphrase-file it.pass
run "$KEYS" list --dir org

step "Bad input is refused with one clear line and changes nothing"
printf '\x01' | dd of=anna.req bs=1 seek=40 conv=notrunc status=none
if "$KEYS" enroll --dir org --request anna.req --post HQ --role duty --out x.cert --passphrase-file it.pass; then
  echo "demo: a corrupted request was accepted" >&2; exit 1
fi

printf '\nDemo finished in %s\n' "$demo"
