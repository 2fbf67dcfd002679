#!/usr/bin/env bash
# relay_rewrite.sh - issue 6: a malicious relay operator rewrites the sender
# or the recipient id of a queued envelope (direct edit of the stopped
# relay's LMDB with lmdb_rewrite, then a restart on the same data). Over the
# real binaries:
#   - sender rewritten (hq's envelope now claims to come from hq2, another
#     enrolled device): jkt refuses it (no plaintext in its inbox), its
#     session with hq is unchanged (the next genuine message reads), and the
#     genuine earlier message is still there exactly once;
#   - recipient rewritten (an envelope for jkt moved into jkt2's queue): jkt2
#     cannot read it, and still reads a genuine message afterwards;
#   - substituted prekey bundle (jkt's signed prekey replaced by jkt2's, or
#     by an unsigned key): hq2 encrypts nothing to it (the message waits);
#     with the genuine bundle restored it goes through exactly once.
# The mitigations: the ratchet AD binds both device ids and identity keys,
# and the inner message is signed by the sender for one recipient
# (docs/adversarial.md). Also message-type confusion: the end-to-end type
# byte swapped (ratchet <-> prekey message) is refused, the session goes on.
# usage: relay_rewrite.sh VALISE_KEYS VALISE VALISE_RELAY LMDB_REWRITE
set -u
KEYS=$1 VALISE=$2 RELAY=$3 REWRITE=$4
. "$(dirname "$0")/../harness.sh"
harness_init rewrite
start_relay() { relay_start "$1" data dir.bin; }
stop_relay() { relay_stop; }
inbox_count() { V inbox --home "$1" >out.txt 2>err.txt || fail "$1 inbox: $(cat err.txt)"; grep -c " $2\$" out.txt; }

org_setup "hq Anna HQ duty" "hq2 Carla HQ consul" "jkt Budi JKT ambassador" "jkt2 Dewi JKT deputy"
HQ=$(device_id Anna) HQ2=$(device_id Carla) JKT=$(device_id Budi) JKT2=$(device_id Dewi)
[ ${#HQ} -eq 32 ] && [ ${#JKT2} -eq 32 ] || { fail "device ids: '$HQ' '$JKT2'"; exit 1; }
start_relay 0
PORT=$(cat port)
join_relay hq hq2 jkt jkt2

# R-1: a genuine message establishes hq -> jkt.
echo "first" | V send --home hq --to ambassador@JKT --subject R-1 >/dev/null || fail "send R-1"
run "hq sync R-1" V sync --home hq --wait-ms 200
run "jkt sync R-1" V sync --home jkt --wait-ms 500
[ "$(inbox_count jkt R-1)" -eq 1 ] || fail "R-1 not received once"

# R-2: the relay rewrites its sender id to hq2.
echo "forged sender" | V send --home hq --to ambassador@JKT --subject R-2 >/dev/null || fail "send R-2"
run "hq sync R-2" V sync --home hq --wait-ms 200
stop_relay
n=$("$REWRITE" data sender "$HQ" "$HQ2") || fail "rewrite sender: $n"
start_relay "$PORT"
sync_refuses jkt "an envelope whose sender id was rewritten"
[ "$(inbox_count jkt R-2)" -eq 0 ] || fail "jkt accepted a message whose sender id the relay rewrote"
grep -q "forged sender" jkt/store/* 2>/dev/null && fail "jkt's store holds the forged message's plaintext"

# R-3: jkt's session with hq is unchanged: the next genuine message reads.
ID3=$(echo "third" | V send --home hq --to ambassador@JKT --subject R-3 | awk '{print $2}') || fail "send R-3"
run "hq sync R-3" V sync --home hq --wait-ms 200
run "jkt sync R-3" V sync --home jkt --wait-ms 500
[ "$(inbox_count jkt R-3)" -eq 1 ] || fail "after the forged envelope, the genuine R-3 is not received once (session damaged?)"
[ "$(inbox_count jkt R-1)" -eq 1 ] || fail "R-1 no longer in the inbox exactly once"
V read --home jkt "$ID3" >out.txt 2>err.txt || fail "read R-3: $(cat err.txt)"
grep -q "From:       Anna, duty@HQ" out.txt || fail "R-3 sender: $(cat out.txt)"
grep -q "Signature:  verified" out.txt || fail "R-3 signature not verified: $(cat out.txt)"

# R-4: the relay moves an envelope for jkt into jkt2's queue.
echo "misrouted" | V send --home hq --to ambassador@JKT --subject R-4 >/dev/null || fail "send R-4"
run "hq sync R-4" V sync --home hq --wait-ms 200
stop_relay
n=$("$REWRITE" data recipient "$JKT" "$JKT2") || fail "rewrite recipient: $n"
start_relay "$PORT"
sync_refuses jkt2 "an envelope re-addressed from jkt"
[ "$(inbox_count jkt2 R-4)" -eq 0 ] || fail "jkt2 read an envelope addressed to jkt"
grep -q "misrouted" jkt2/store/* 2>/dev/null && fail "jkt2's store holds the misrouted plaintext"
# jkt2 still works: a genuine message to it reads.
echo "for the deputy" | V send --home hq --to deputy@JKT --subject R-5 >/dev/null || fail "send R-5"
run "hq sync R-5" V sync --home hq --wait-ms 200
run "jkt2 sync R-5" V sync --home jkt2 --wait-ms 500
[ "$(inbox_count jkt2 R-5)" -eq 1 ] || fail "jkt2 did not receive the genuine R-5 once"

# R-6: the relay substitutes jkt's signed prekey, first with jkt2's (validly
# signed, by another device), then with an unsigned random key: hq2, which
# has no session with jkt yet, must refuse the bundle and encrypt nothing.
echo "to a substituted bundle" | V send --home hq2 --to ambassador@JKT --subject R-6 >/dev/null || fail "send R-6"
stop_relay
cp -a data data-genuine
for mode in spk spk-zero; do
  [ -n "$RPID" ] && stop_relay
  n=$("$REWRITE" data $mode "$JKT" "$JKT2") || fail "rewrite $mode: $n"
  start_relay "$PORT"
  V sync --home hq2 --wait-ms 200 >out.txt 2>err.txt
  rc=$?
  [ $rc -lt 128 ] || fail "hq2 sync died by signal $((rc - 128)) on a substituted bundle ($mode)"
  grep -qE "accepted [1-9]" out.txt && fail "hq2 sent to a substituted prekey ($mode): $(cat out.txt)"
  V outbox --home hq2 >out.txt 2>err.txt || fail "hq2 outbox: $(cat err.txt)"
  grep -qE "accepted by relay|delivered" out.txt && fail "hq2's envelope to a substituted bundle accepted ($mode): $(cat out.txt)"
  grep -q "waiting for prekeys" out.txt || fail "hq2's envelope not held back ($mode): $(cat out.txt)"
done
V sync --home jkt --wait-ms 300 >/dev/null 2>&1
[ "$(inbox_count jkt R-6)" -eq 0 ] || fail "jkt received a message encrypted to a substituted prekey"
# Control: with the genuine bundle back, the same message goes through once.
stop_relay
rm -rf data; mv data-genuine data
start_relay "$PORT"
run "hq2 sync, genuine bundle" V sync --home hq2 --wait-ms 200
run "jkt sync R-6" V sync --home jkt --wait-ms 500
[ "$(inbox_count jkt R-6)" -eq 1 ] || fail "with the genuine bundle, R-6 not received once"

# Message-type confusion: the relay swaps the end-to-end type byte, so a
# ratchet message arrives as a prekey message (hq -> jkt, R-7) and a prekey
# message as a ratchet message (hq2 -> jkt2, first message of a new session,
# R-9). Each is refused, and the next genuine message (R-8, R-10) reads.
swap_check() { # swap_check SENDER_HOME SENDER_ID TO RECIPIENT_HOME BAD GOOD NEW_TYPE
  echo "confused" | V send --home "$1" --to "$3" --subject "$5" >/dev/null || fail "send $5"
  run "$1 sync $5" V sync --home "$1" --wait-ms 200
  stop_relay
  n=$("$REWRITE" data swap-type "$2" "$2") || fail "swap-type for $5: $n"
  [ "$n" = "$7" ] || fail "$5: expected it to arrive as a $7 message, the swap gave '$n'"
  start_relay "$PORT"
  sync_refuses "$4" "the type-swapped $5"
  [ "$(inbox_count "$4" "$5")" -eq 0 ] || fail "$4 accepted the type-swapped $5"
  echo "genuine" | V send --home "$1" --to "$3" --subject "$6" >/dev/null || fail "send $6"
  run "$1 sync $6" V sync --home "$1" --wait-ms 200
  run "$4 sync $6" V sync --home "$4" --wait-ms 500
  [ "$(inbox_count "$4" "$6")" -eq 1 ] || fail "after the type-swapped $5, the genuine $6 is not received once"
}
swap_check hq "$HQ" ambassador@JKT jkt R-7 R-8 prekey
swap_check hq2 "$HQ2" deputy@JKT jkt2 R-9 R-10 ratchet

harness_done "relay rewrite"
