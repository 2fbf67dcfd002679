#!/usr/bin/env bash
# wrong_post.sh - issue 6: "a certificate for the wrong post or role used to
# read that post's traffic". Insiders with valid certificates: deputy@JKT
# (right post, wrong role) and consul@GVA (wrong post). Over the real binaries:
#   - HQ writes to ambassador@JKT: the relay hands the deputy and the consul
#     nothing, HQ encrypted for the ambassador's device only;
#   - HQ writes to *@JKT: the deputy gets it (it is for the whole post), the
#     consul still nothing;
#   - a relay operator who moves the ambassador's envelope into the consul's
#     queue gives the consul nothing readable (refused, not in its inbox);
#   - a certificate edited to claim JKT is refused by `valise enroll` (and by
#     the relay: relay/test_auth test_edited_post_or_role).
# usage: wrong_post.sh VALISE_KEYS VALISE VALISE_RELAY LMDB_REWRITE
set -u
KEYS=$1 VALISE=$2 RELAY=$3 REWRITE=$4
. "$(dirname "$0")/../harness.sh"
harness_init wrongpost
start_relay() { relay_start "$1" data dir.bin; }
stop_relay() { relay_stop; }
inbox_count() { V inbox --home "$1" >out.txt 2>err.txt || fail "$1 inbox: $(cat err.txt)"; grep -c " $2\$" out.txt; }
received() { # received HOME: the number of new messages a sync took
  run "$1 sync" V sync --home "$1" --wait-ms 500
  sed -n 's/.*received \([0-9]*\) new.*/\1/p' out.txt
}

org_setup "hq Anna HQ duty" "amb Budi JKT ambassador" "dep Dewi JKT deputy" "gva Carla GVA consul"
AMB=$(device_id Budi) GVA=$(device_id Carla)
[ ${#AMB} -eq 32 ] && [ ${#GVA} -eq 32 ] || { fail "device ids: '$AMB' '$GVA'"; exit 1; }
start_relay 0
PORT=$(cat port)
join_relay hq amb dep gva

# W-1: to the ambassador only.
echo "for the ambassador" | V send --home hq --to ambassador@JKT --precedence FLASH --subject W-1 >/dev/null || fail "send W-1"
run "hq sync W-1" V sync --home hq --wait-ms 200
run "hq outbox" V outbox --home hq
grep -q "$AMB" out.txt || grep -q "Budi" out.txt || fail "W-1 not addressed to the ambassador's device: $(cat out.txt)"
grep -q "Dewi\|Carla" out.txt && fail "W-1 encrypted for a device outside ambassador@JKT: $(cat out.txt)"
[ "$(received dep)" = 0 ] || fail "the deputy received something for the ambassador: $(cat out.txt)"
[ "$(received gva)" = 0 ] || fail "the consul received something for the ambassador: $(cat out.txt)"
[ "$(inbox_count dep W-1)" -eq 0 ] || fail "W-1 in the deputy's inbox"
[ "$(inbox_count gva W-1)" -eq 0 ] || fail "W-1 in the consul's inbox"
[ "$(received amb)" = 1 ] || fail "the ambassador did not receive W-1: $(cat out.txt)"

# W-2: to the whole post: the deputy is in it, the consul is not.
echo "for all of JKT" | V send --home hq --to '*@JKT' --subject W-2 >/dev/null || fail "send W-2"
run "hq sync W-2" V sync --home hq --wait-ms 200
[ "$(received dep)" = 1 ] || fail "the deputy did not receive the post-wide W-2: $(cat out.txt)"
[ "$(received gva)" = 0 ] || fail "the consul received the post-wide W-2 for JKT: $(cat out.txt)"
[ "$(inbox_count gva W-2)" -eq 0 ] || fail "W-2 in the consul's inbox"

# W-3: the operator moves the ambassador's envelope into the consul's queue.
echo "misrouted to GVA" | V send --home hq --to ambassador@JKT --subject W-3 >/dev/null || fail "send W-3"
run "hq sync W-3" V sync --home hq --wait-ms 200
stop_relay
n=$("$REWRITE" data recipient "$AMB" "$GVA") || fail "rewrite recipient: $n"
start_relay "$PORT"
sync_refuses gva "the ambassador's envelope moved into its queue"
[ "$(inbox_count gva W-3)" -eq 0 ] || fail "the consul read the ambassador's W-3"

# W-4: a certificate edited to claim JKT instead of GVA (same length) is refused.
python3 - gva.cert forged.cert <<'PY' || fail "could not edit the certificate"
import sys
b = open(sys.argv[1], 'rb').read()
if b.count(b'\x03GVA') != 1:
    sys.exit(1)
open(sys.argv[2], 'wb').write(b.replace(b'\x03GVA', b'\x03JKT'))
PY
run "init gva2" V init --home gva2 --name Carla --out gva2.req
if V enroll --home gva2 --cert forged.cert --org-pub org/org.pub --relay "ws://127.0.0.1:$PORT" --relay-id valise-relay >out.txt 2>err.txt; then
  fail "valise enroll accepted a certificate edited to another post"
fi
[ "$(wc -l <err.txt)" -eq 1 ] || fail "edited certificate: not a one-line error: $(cat err.txt)"

harness_done "wrong post or role"
