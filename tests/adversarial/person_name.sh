#!/usr/bin/env bash
# person_name.sh - issue 11 item 1: "a person is a free-text name". Over the
# real binaries and a loopback relay:
#   - IT enrol a clerk@GVA device whose request says "Anna Lindqvist" (also
#     in capitals): `valise-keys enroll` refuses it, names the holder (serial,
#     duty@HQ) and the flag to use, and changes nothing;
#   - IT enrol Anna's phone with --same-person-as: same person id;
#   - the clerk, enrolled under a name that tells them apart, gets nothing
#     when Anna (duty@HQ) sends a FLASH to ambassador@JKT; Anna's phone gets
#     its copy as her own device; Anna's outbox lists the ambassador and her
#     phone, never the clerk.
# The case IT cannot create any more (two persons, one name, in a directory)
# is unit/test_address test_namesake_is_not_the_sender.
# usage: person_name.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1 VALISE=$2 RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init personname
received() { # received HOME: the number of new messages a sync took
  run "$1 sync" V sync --home "$1" --wait-ms 500
  sed -n 's/.*received \([0-9]*\) new.*/\1/p' out.txt
}
state() { sha256sum org/org.key org/org.pub org/registry; }
enroll() { "$KEYS" enroll --dir org --passphrase-file opw "$@"; }

run "org init" "$KEYS" init --dir org --org Ministry --passphrase-file opw || exit 1
run "init hq" V init --home hq --name "Anna Lindqvist" --out hq.req || exit 1
run "init amb" V init --home amb --name "Budi Santoso" --out amb.req || exit 1
run "enroll hq" enroll --request hq.req --post HQ --role duty --out hq.cert || exit 1
run "enroll amb" enroll --request amb.req --post JKT --role ambassador --out amb.cert || exit 1

# P-1: the clerk's request says "Anna Lindqvist": refused, one line, nothing changed.
run "init clerk" V init --home clerk --name "Anna Lindqvist" --out clerk.req
run "init clerk2" V init --home clerk2 --name "anna LINDQVIST" --out clerk2.req
for req in clerk.req clerk2.req; do
  before=$(state)
  if enroll --request "$req" --post GVA --role clerk --out clerk.cert >out.txt 2>err.txt; then
    fail "P-1: enroll accepted $req, whose name another person holds"
  fi
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "P-1: not a one-line error: $(cat err.txt)"
  grep -q "already held by another person (serial 1, duty@HQ).*--same-person-as 1" err.txt ||
    fail "P-1: the error does not name the holder and the flag: $(cat err.txt)"
  [ "$before" = "$(state)" ] || fail "P-1: the refused enroll changed the org directory"
  [ ! -e clerk.cert ] || fail "P-1: a refused enroll wrote clerk.cert"
done

# P-2: Anna's phone, by IT's word, and the clerk under a name of their own.
run "init phone" V init --home phone --name "Anna Lindqvist" --out phone.req
run "enroll phone" enroll --request phone.req --post HQ --role duty --same-person-as 1 --out phone.cert
run "init clerk3" V init --home clerk3 --name "Anna Lindqvist-Berg" --out clerk3.req
run "enroll clerk3" enroll --request clerk3.req --post GVA --role clerk --out clerk3.cert
run "list" "$KEYS" list --dir org
pid() { awk -v s="$1" '$1 == s && length($2) == 32 {print $3}' out.txt; }
[ "$(pid 1)" = "$(pid 3)" ] || fail "P-2: Anna's phone is not her person: $(cat out.txt)"
[ "$(pid 1)" != "$(pid 4)" ] || fail "P-2: the clerk got Anna's person id"
run "directory" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw || exit 1
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq amb phone clerk3

# P-3: Anna's FLASH to ambassador@JKT reaches the ambassador and her phone, not the clerk.
echo "FLASH for the ambassador" | V send --home hq --to ambassador@JKT --precedence FLASH --label SECRET --subject P-3 >/dev/null || fail "send P-3"
run "hq sync P-3" V sync --home hq --wait-ms 200
run "hq outbox" V outbox --home hq
grep -q "(ambassador@JKT)" out.txt || fail "P-3: the ambassador is not a recipient: $(cat out.txt)"
grep -q "(duty@HQ)" out.txt || fail "P-3: Anna's phone is not a recipient: $(cat out.txt)"
grep -q "clerk@GVA" out.txt && fail "P-3: Anna's outbox lists the clerk's device: $(cat out.txt)"
[ "$(received clerk3)" = 0 ] || fail "P-3: the clerk received Anna's message: $(cat out.txt)"
[ "$(received amb)" = 1 ] || fail "P-3: the ambassador did not receive it: $(cat out.txt)"
# Her own copy is kept on her phone as sent by her, in its outbox (issue 12, item 10).
[ "$(received phone)" = 0 ] && grep -q "; 1 sent from your other devices (in the outbox)" out.txt ||
  fail "P-3: Anna's phone did not get her copy: $(cat out.txt)"

# P-4: person:NAME goes to Anna's devices only, by person id.
echo "to Anna" | V send --home amb --to "person:Anna Lindqvist" --subject P-4 >/dev/null || fail "send P-4"
run "amb sync P-4" V sync --home amb --wait-ms 200
[ "$(received hq)" = 1 ] || fail "P-4: Anna's first device did not receive person:Anna Lindqvist"
[ "$(received phone)" = 1 ] || fail "P-4: Anna's phone did not receive person:Anna Lindqvist"
[ "$(received clerk3)" = 0 ] || fail "P-4: the clerk received person:Anna Lindqvist"

harness_done "person identity"
