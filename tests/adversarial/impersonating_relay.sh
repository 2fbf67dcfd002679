#!/usr/bin/env bash
# impersonating_relay.sh - issue 11 item 3: "the client authenticates to any
# relay". A device whose traffic is diverted to another relay process (a
# mis-issued TLS certificate or a hijacked name is enough) must not
# authenticate to it, so it cannot acknowledge and delete the device's queue
# or raise its rollback marks. Over the real binaries:
#   - a relay with its own key and a relay certificate of ANOTHER organisation;
#   - a relay certified by THIS organisation but for relay id "evil-relay";
#   - a relay with this organisation's certificate for "valise-relay" copied
#     from the real relay, but not its handshake key (it cannot start: the
#     certificate does not certify its key).
# Each time `valise sync` stops with one line ("the relay did not prove it is
# valise-relay of this organisation: ..."), the impostor saw no AUTH, the
# device's home is byte-for-byte unchanged, and the real relay still holds
# the message queued for it, which the device then receives from the real relay
# (LMDB's reader table lock.mdb aside).
# usage: impersonating_relay.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1 VALISE=$2 RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init imprelay

org_setup "hq Anna HQ duty" "amb Budi JKT ambassador"
relay_start 0 data dir.bin
PORT=$(cat port) REAL=$RPID
join_relay hq amb
echo "for the ambassador" | V send --home hq --to ambassador@JKT --precedence FLASH --subject I-1 >/dev/null ||
  fail "send I-1"
run "hq sync I-1" V sync --home hq --wait-ms 200

# evil_start DATA ORGPUB DIRECTORY CERT [FLAGS...]: an impostor relay, port in evil.port
evil_start() {
  local data=$1 orgpub=$2 dir=$3 cert=$4; shift 4
  rm -f evil.port
  "$RELAY" --data "$data" --org-pub "$orgpub" --directory "$dir" --relay-cert "$cert" \
    --listen 127.0.0.1:0 --port-file evil.port --log-level info "$@" 2>evil.log &
  EPID=$!
  for _ in $(seq 200); do [ -s evil.port ] && return 0; sleep 0.025; done
  return 1
}
evil_stop() { kill "$EPID" 2>/dev/null && wait "$EPID" 2>/dev/null; }

# refused_by_device WHAT WHY: amb, pointed at the impostor, refuses it
refused_by_device() {
  local what=$1 why=$2 rc
  run "amb enrolled towards $what" V enroll --home amb --cert amb.cert --org-pub org/org.pub \
    --relay "ws://127.0.0.1:$(cat evil.port)" --relay-id valise-relay
  rm -rf amb.before && cp -a amb amb.before
  V sync --home amb --wait-ms 300 >out.txt 2>err.txt
  rc=$?
  [ $rc -ne 0 ] || fail "$what: the device synced with it: $(cat out.txt)"
  [ $rc -lt 128 ] || fail "$what: sync died by signal $((rc - 128))"
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "$what: not one line: $(cat err.txt)"
  grep -q "the relay did not prove it is valise-relay of this organisation: $why" err.txt ||
    fail "$what: expected \"$why\", saw: $(cat err.txt)"
  diff -r -x lock.mdb amb.before amb >&2 || fail "$what: the device's home changed"
  sleep 0.2
  ! grep -q "authenticated\|auth failed" evil.log || fail "$what received an AUTH: $(cat evil.log)"
}

# 1. Another organisation's relay (its own root, its own relay certificate).
run "other org" "$KEYS" init --dir org2 --org Impostor --passphrase-file opw || exit 1
run "other org directory" "$KEYS" directory --dir org2 --out dir2.bin --passphrase-file opw
run "impostor key" "$RELAY" --init-handshake-key --data evil1 --out evil1.pub
run "impostor certificate" "$KEYS" relay-cert --dir org2 --relay-id valise-relay --pubkey evil1.pub \
  --out evil1.rcert --passphrase-file opw
evil_start evil1 org2/org.pub dir2.bin evil1.rcert || fail "impostor 1 did not start: $(cat evil.log)"
refused_by_device "a relay of another organisation" "its relay certificate is of another organisation"
evil_stop

# 2. This organisation's certificate, for another relay id.
relay_identity evil2 evil-relay evil2.rcert
evil_start evil2 org/org.pub dir.bin evil2.rcert --relay-id evil-relay ||
  fail "impostor 2 did not start: $(cat evil.log)"
refused_by_device "the relay \"evil-relay\"" "its relay certificate names another relay id"
evil_stop

# 3. The real relay's certificate on another key: the impostor cannot even start.
run "impostor 3 key" "$RELAY" --init-handshake-key --data evil3 --out evil3.pub
if evil_start evil3 org/org.pub dir.bin data.rcert; then
  fail "a relay started with a certificate for another relay's key"
  evil_stop
fi
grep -q "certifies another handshake key" evil.log || fail "impostor 3's refusal: $(cat evil.log)"

# The real relay still holds I-1 for the ambassador, who gets it there.
run "amb back to the real relay" V enroll --home amb --cert amb.cert --org-pub org/org.pub \
  --relay "ws://127.0.0.1:$PORT" --relay-id valise-relay
run "amb sync" V sync --home amb --wait-ms 300
grep -q "received 1 new" out.txt || fail "the real relay's queue lost I-1: $(cat out.txt)"
harness_done "impersonating relay"
