#!/usr/bin/env bash
# attach_crash.sh - attachment housekeeping survives a crash at any point
# (issue 13 item 2; PROTOCOL.md part 4 "What stays on the device"). HQ
# sends JKT a message with three attachments: two uploaded (2 chunks and
# 1 chunk), one whose sealed copy HQ lost (the relay never has it). For
# N = 1, 2, ... JKT's `valise sync` is killed (SIGKILL, tests/fault
# VALISE_CRASH_STEP) before its N-th fsync, rename or unlink, that is
# between any two durable steps: chunk written, record committed, file
# renamed, partial file deleted. Then plain syncs (at most three) must
# leave the state a run without a crash leaves: both attachments complete
# and saved intact, the
# third one waiting for its sender (the relay never heard of it and the
# message's time to live is ahead: PROTOCOL.md part 4 section 9), no partial
# bytes in `valise status` (no .part with a byte in it), and a further sync
# that fetches nothing more and has nothing to clean up (no record left
# dangling). The same for HQ's upload: crashed at its N-th step, then
# synced, the relay holds both attachments and `outbox` says uploaded.
# usage: attach_crash.sh VALISE_KEYS VALISE VALISE_RELAY FAULTINJECT_SO
set -u
KEYS=$1
VALISE=$2
RELAY=$3
FI=$4
. "$(dirname "$0")/../harness.sh"
harness_init attach-crash
RELAY_ID=valise-relay

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador"
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq jkt

head -c 20000 /dev/urandom >two-chunks.pdf
head -c 5000 /dev/urandom >one-chunk.txt
head -c 3000 /dev/urandom >lost.bin
run "send with three attachments" V send --home hq --to ambassador@JKT --subject "Crash" \
  --attach two-chunks.pdf --attach one-chunk.txt --attach lost.bin </dev/null
ID=$(awk '{print $2}' out.txt)
[ ${#ID} -eq 32 ] || { fail "no message id: $(cat out.txt)"; harness_done "attach crash"; }
# the third attachment's sealed copy (3,000 bytes + one tag) is lost before the upload:
# the relay never has it
for f in hq/attach/*.ct; do [ "$(stat -c %s "$f")" -eq 3016 ] && rm -f "$f"; done
[ "$(ls hq/attach/*.ct | wc -l)" -eq 2 ] || fail "the lost copy was not found: $(ls -l hq/attach)"
relay_stop

# tpl-up: before HQ's sync; tpl-down: after it, before JKT's
mkdir tpl-up && cp -a hq jkt data data.rcert tpl-up/
relay_start "$PORT" data dir.bin
run "hq sync" V sync --home hq
grep -q "attachments: 2 uploaded" out.txt || fail "hq did not upload 2: $(cat out.txt)"
relay_stop
mkdir tpl-down && cp -a hq jkt data data.rcert tpl-down/
rm -rf hq jkt data

# fresh TEMPLATE: its copy in the current directory and the relay started on it
fresh() {
  rm -rf hq jkt data data.rcert
  cp -a "$1"/hq "$1"/jkt "$1"/data "$1"/data.rcert .
  relay_start "$PORT" data dir.bin
}

# crashed HOME N: VALISE_CRASH_STEP=N over `valise sync --home HOME`; 0 if it was killed
crashed() {
  local rc
  env VALISE_CRASH_STEP="$2" LD_PRELOAD="$FI" "$VALISE" sync --home "$1" --passphrase-file dpw \
    >crash-out.txt 2>crash-err.txt
  rc=$?
  [ $rc -eq 137 ] && return 0
  [ $rc -ge 128 ] && fail "$1 sync #$2: died by signal $((rc - 128))"
  return 1
}

# synced HOME: plain syncs until one exits 0 (at most three)
synced() {
  local i
  for i in 1 2 3; do
    V sync --home "$1" >out.txt 2>err.txt && return 0
  done
  fail "$1: three syncs after the crash at #$2 failed: $(cat out.txt err.txt)"
  return 1
}

check_down() {
  local n=$1
  synced jkt "$n" || return
  V read --home jkt "$ID" >read.txt 2>&1 || { fail "#$n: read: $(cat read.txt)"; return; }
  grep -q "1  two-chunks.pdf .* complete$" read.txt || fail "#$n: attachment 1 not complete: $(cat read.txt)"
  grep -q "2  one-chunk.txt .* complete$" read.txt || fail "#$n: attachment 2 not complete: $(cat read.txt)"
  grep -q "3  lost.bin .*0 of 1 chunks (valise sync fetches the rest)" read.txt ||
    fail "#$n: attachment 3 not waiting for its sender: $(cat read.txt)"
  rm -f s1 s2
  V save --home jkt --out s1 "$ID" 1 >/dev/null 2>&1 && cmp -s s1 two-chunks.pdf ||
    fail "#$n: attachment 1 does not save intact"
  V save --home jkt --out s2 "$ID" 2 >/dev/null 2>&1 && cmp -s s2 one-chunk.txt ||
    fail "#$n: attachment 2 does not save intact"
  [ -n "$(find jkt/attach -name '*.part' -size +0c)" ] && fail "#$n: a .part with bytes is left: $(ls -l jkt/attach)"
  V status --home jkt >st.txt 2>&1
  grep -q "^  partial:  0 bytes" st.txt || fail "#$n: partial bytes left: $(cat st.txt)"
  grep -q "^  received: .* in 2 files" st.txt || fail "#$n: received files: $(cat st.txt)"
  V sync --home jkt >out.txt 2>err.txt || fail "#$n: a further sync failed: $(cat err.txt)"
  grep -q "attachments: 0 uploaded, 0 fetched; 1 still being uploaded by their sender" out.txt ||
    fail "#$n: a further sync said something else of attachments: $(cat out.txt)"
  grep -Eq "removed|deleted|no longer" out.txt && fail "#$n: a further sync still cleaned up: $(cat out.txt)"
}

check_up() {
  local n=$1
  synced hq "$n" || return
  V outbox --home hq >ob.txt 2>&1
  [ "$(grep -c 'attachment [12] .*: uploaded$' ob.txt)" -eq 2 ] ||
    fail "#$n: outbox does not say both uploaded: $(cat ob.txt)"
  grep -q "attachment 3 lost.bin .*: lost" ob.txt || fail "#$n: outbox does not say 3 lost: $(cat ob.txt)"
  V sync --home hq >out.txt 2>err.txt || fail "#$n: a further hq sync failed: $(cat err.txt)"
  grep -q "attachments:" out.txt && fail "#$n: a further hq sync still moved attachments: $(cat out.txt)"
  synced jkt "$n" || return
  grep -q "attachments: 0 uploaded, 2 fetched" out.txt || fail "#$n: jkt did not fetch 2: $(cat out.txt)"
}

runs=0
for side in down up; do
  n=1
  while :; do
    if [ $side = down ]; then fresh tpl-down; else fresh tpl-up; fi
    if [ $side = down ]; then home=jkt; else home=hq; fi
    if ! crashed $home $n; then
      relay_stop
      break # the sync ended before an N-th step: every point was tried
    fi
    runs=$((runs + 1))
    if [ $side = down ]; then check_down $n; else check_up $n; fi
    relay_stop
    n=$((n + 1))
  done
  [ $n -gt 5 ] || fail "$side: only $((n - 1)) crash points: the loop proves little"
done
echo "attach crash: $runs crashes tried"
harness_done "attach crash"
