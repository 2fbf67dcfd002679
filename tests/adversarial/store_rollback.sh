#!/usr/bin/env bash
# store_rollback.sh - issue 6: a client store rolled back to an older copy
# (an attacker, or a backup restore, puts back jkt's store/ from before).
# What is checked (docs/adversarial.md "Keystore and local store at rest"):
#   - the rolled-back store opens and syncs (no crash, one-line errors only);
#   - nothing already acknowledged comes back: the message received after
#     the copy was taken is not delivered again (the relay deleted it), and
#     nothing is duplicated;
#   - a relay serving a directory older than the one the device sees after
#     the rollback is refused (the rollback of the store does not reopen the
#     door to an old directory once the newer one is seen again);
#   - new genuine messages still arrive exactly once.
# Not detected (known gap, docs/adversarial.md): that the store itself was
# rolled back; replies sent from the rolled-back ratchet state are refused
# by the peer as replays (checked: no crash, no duplicate at the peer).
# usage: store_rollback.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1 VALISE=$2 RELAY=$3
T=$(mktemp -d /tmp/valise-rollback.XXXXXX)
RPID=
cleanup() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
run() {
  local d=$1; shift
  if ! "$@" >out.txt 2>err.txt; then fail "$d: exit $? ($(cat err.txt))"; return 1; fi
}
echo "org passphrase 1" >opw
echo "device passphrase 1" >dpw
V() { "$VALISE" "$@" --passphrase-file dpw; }
start_relay() { # start_relay PORT DIRECTORY DATA
  rm -f port
  "$RELAY" --data "$3" --org-pub org/org.pub --directory "$2" --listen "127.0.0.1:$1" \
    --port-file port --log-level warn 2>>relay.log &
  RPID=$!
  for _ in $(seq 200); do [ -s port ] && return 0; sleep 0.025; done
  fail "relay did not start: $(tail -3 relay.log)"; exit 1
}
stop_relay() { kill "$RPID" && wait "$RPID" 2>/dev/null; RPID=; }
count() { V "$1" --home "$2" >out.txt 2>err.txt || fail "$1 $2: $(cat err.txt)"; grep -c " $3\$" out.txt; }

run "org init" "$KEYS" init --dir org --org Ministry --passphrase-file opw || exit 1
for d in "hq Anna HQ duty" "jkt Budi JKT ambassador"; do
  set -- $d
  run "init $1" V init --home "$1" --name "$2" --out "$1.req" || exit 1
  run "enroll $1" "$KEYS" enroll --dir org --request "$1.req" --post "$3" --role "$4" --out "$1.cert" --passphrase-file opw || exit 1
done
run "directory v1" "$KEYS" directory --dir org --out dir1.bin --passphrase-file opw || exit 1
start_relay 0 dir1.bin data
PORT=$(cat port)
for h in hq jkt; do
  run "valise enroll $h" V enroll --home $h --cert $h.cert --org-pub org/org.pub --relay "ws://127.0.0.1:$PORT"
  run "$h prekeys" V sync --home $h --wait-ms 100
done
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

# --- the rollback ---
rm -rf jkt; mv jkt.old jkt
run "rolled-back store syncs" V sync --home jkt --wait-ms 500
grep -q "directory v2" out.txt || fail "rolled-back device did not take directory v2 again: $(cat out.txt)"
[ "$(count inbox jkt B-1)" -eq 1 ] || fail "B-1 not exactly once after the rollback"
[ "$(count inbox jkt B-2)" -eq 0 ] || fail "B-2, acknowledged after the copy, was delivered again"
# A genuine new message still arrives exactly once (ratchet skips ahead within MAX_SKIP).
echo three | V send --home hq --to ambassador@JKT --subject B-3 >/dev/null || fail "send B-3"
run "hq sync B-3" V sync --home hq --wait-ms 200
run "jkt sync B-3" V sync --home jkt --wait-ms 500
[ "$(count inbox jkt B-3)" -eq 1 ] || fail "B-3 not received exactly once by the rolled-back store"
# A reply from the rolled-back state: no crash on either side, never twice at hq.
echo reply | V send --home jkt --to duty@HQ --subject B-4 >/dev/null || fail "send B-4"
V sync --home jkt --wait-ms 200 >out.txt 2>err.txt; rc=$?
[ $rc -lt 128 ] || fail "jkt sync died by signal on the reply"
V sync --home hq --wait-ms 500 >out.txt 2>err.txt; rc=$?
[ $rc -lt 128 ] || fail "hq sync died by signal on a reply from a rolled-back peer"
n4=$(count inbox hq B-4)
[ "$n4" -le 1 ] || fail "hq holds the reply more than once"
echo "observed: the reply from the rolled-back state reached hq $n4 time(s)"
# Once v2 is seen again, a relay serving v1 is refused.
stop_relay
start_relay "$PORT" dir1.bin data-old
if V sync --home jkt --wait-ms 200 >out.txt 2>err.txt; then fail "the rolled-back device accepted directory v1 after seeing v2"; fi
grep -q "older than one already seen" err.txt || fail "rollback message: $(cat err.txt)"
[ "$(wc -l <err.txt)" -eq 1 ] || fail "not a one-line error: $(cat err.txt)"

[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "store rollback: all checks passed"
