#!/usr/bin/env bash
# client_attach.sh - attachments over the REAL relay and the real binaries
# (issue 13 item 2): HQ sends a message with two attachments to
# ambassador@JKT (an empty body); the file changed after `send` does not
# matter; JKT syncs, `read` lists both as complete, `save` writes them with
# the signed hash checked; the relay's files never hold a plaintext byte of
# them; a ciphertext damaged on the device is refused by `save` (nothing
# written); an incomplete one is refused with a clear line; empty,
# missing and unreadable files are refused at send, naming the file; the
# relay deletes an attachment once its recipient is done. Housekeeping:
# `outbox` and `read` of a sent message show each upload's state (waiting,
# uploaded, lost); the sender saves its own sent attachment from its sealed
# copy; `status` splits HOME/attach into sent, received and partial bytes; a
# leftover .part is swept by the next sync.
# usage: client_attach.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-attach

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador"
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq jkt

# --- a scanned note verbale (300 KiB, not a multiple of the chunk) and a small text ---
head -c 307213 /dev/urandom >note-verbale.pdf
MARKER="ATTACHMENT-MARKER-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
{ printf '%s\n' "$MARKER"; head -c 40000 /dev/zero | tr '\0' 'x'; printf '%s\n' "$MARKER"; } >minutes.txt
cp note-verbale.pdf sent-note.pdf
cp minutes.txt sent-minutes.txt
: >empty.bin
run "send with two attachments and an empty body" V send --home hq --to ambassador@JKT \
  --precedence IMMEDIATE --subject "Note verbale" --attach note-verbale.pdf --attach minutes.txt </dev/null
grep -q "with 2 attachments" out.txt || fail "send did not say it queued 2 attachments: $(cat out.txt)"
ID=$(awk '{print $2}' out.txt)
[ ${#ID} -eq 32 ] || fail "send did not print a message id: $(cat out.txt)"
ls hq/attach/*.ct >/dev/null 2>&1 || fail "no sealed copy in HOME/attach"
[ "$(ls hq/attach/*.ct | wc -l)" -eq 2 ] || fail "expected 2 sealed files: $(ls hq/attach)"
grep -qa "$MARKER" hq/attach/* && fail "the sealed copy holds plaintext"
# sealed at send time: a later change of the file does not travel
head -c 1000 /dev/urandom >>note-verbale.pdf

# --- refusals at send time: one line naming the file, nothing queued ---
before=$(ls hq/attach | wc -l)
if V send --home hq --to ambassador@JKT --attach empty.bin </dev/null >out.txt 2>err.txt; then
  fail "an empty attachment was accepted"
fi
grep -q -- "--attach empty.bin: the file is empty" err.txt || fail "empty file message: $(cat err.txt)"
if V send --home hq --to ambassador@JKT --attach no-such-file </dev/null >out.txt 2>err.txt; then
  fail "a missing attachment was accepted"
fi
grep -q -- "--attach no-such-file: no such file" err.txt || fail "missing file message: $(cat err.txt)"
if [ "$(id -u)" != 0 ]; then
  cp minutes.txt secret.txt && chmod 000 secret.txt
  if V send --home hq --to ambassador@JKT --attach secret.txt </dev/null >out.txt 2>err.txt; then
    fail "an unreadable attachment was accepted"
  fi
  grep -q -- "--attach secret.txt: cannot be read" err.txt || fail "unreadable file message: $(cat err.txt)"
fi
if V send --home hq --to ambassador@JKT --attach hq </dev/null >out.txt 2>err.txt; then
  fail "a directory was accepted as an attachment"
fi
grep -q -- "--attach hq: not a regular file" err.txt || fail "directory message: $(cat err.txt)"
[ "$(ls hq/attach | wc -l)" -eq "$before" ] || fail "a refused send left files in HOME/attach"
run "outbox after refusals" V outbox --home hq
[ "$(grep -c 'Note verbale' out.txt)" -eq 1 ] || fail "a refused send queued a message: $(cat out.txt)"

# --- before the sync: each attachment waits, said by outbox ---
run "outbox before the sync" V outbox --home hq
grep -q "attachment 1 note-verbale.pdf (300.0 KiB): waiting (nothing stored on the relay yet" out.txt ||
  fail "outbox does not show the first attachment waiting: $(cat out.txt)"
grep -q "attachment 2 minutes.txt (.*): waiting" out.txt || fail "outbox: second attachment: $(cat out.txt)"
run "status before the sync" V status --home hq
grep -q "^  sent:     $(cat hq/attach/*.ct | wc -c) bytes (.*) in 2 files" out.txt ||
  fail "status does not count the 2 sealed copies: $(cat out.txt)"
grep -q "^  received: 0 bytes (0 bytes) in 0 files" out.txt || fail "status received: $(cat out.txt)"
if V status --home no-such-home >out.txt 2>err.txt; then fail "status took a missing home"; fi
[ "$(wc -l <err.txt)" -eq 1 ] && grep -q -- "--home no-such-home: no such directory" err.txt ||
  fail "status of a missing home: $(cat err.txt)"

# --- HQ syncs: the message goes first, then both attachments ---
run "hq sync" V sync --home hq
grep -q "attachments: 2 uploaded" out.txt || fail "hq sync did not upload 2 attachments: $(cat out.txt)"
stored=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^valise_relay_attachments_stored / {print $2}')
[ "$stored" = 2 ] || fail "the relay does not say it stores 2 attachments: '$stored'"
grep -qa "$MARKER" data/* && fail "the relay's files hold attachment plaintext"
run "hq sync again (nothing left)" V sync --home hq
grep -q "attachments:" out.txt && fail "a second sync moved attachments again: $(cat out.txt)"
run "outbox after the upload" V outbox --home hq
[ "$(grep -c "attachment [12] .*: uploaded$" out.txt)" -eq 2 ] ||
  fail "outbox does not show both attachments uploaded: $(cat out.txt)"
run "hq reads its own sent message" V read --home hq "$ID"
grep -q "1  note-verbale.pdf  300.0 KiB (307213 bytes)  application/pdf  uploaded" out.txt ||
  fail "read of a sent message does not show the upload state: $(cat out.txt)"
# the sender keeps its sealed copy: it saves what it sent, hash checked
run "hq saves its own sent attachment" V save --home hq --out hq-saved.pdf "$ID" 1
grep -q "SHA-256 verified" out.txt || fail "hq save did not verify: $(cat out.txt)"
cmp -s hq-saved.pdf sent-note.pdf || fail "hq's saved copy differs from what it sent"

# --- JKT syncs, reads and saves ---
run "jkt sync" V sync --home jkt
grep -q "received 1 new" out.txt || fail "jkt did not receive the message: $(cat out.txt)"
grep -q "attachments: 0 uploaded, 2 fetched" out.txt || fail "jkt did not fetch 2: $(cat out.txt)"
run "jkt read" V read --home jkt "$ID"
grep -q "1  note-verbale.pdf  300.0 KiB (307213 bytes)  application/pdf  complete" out.txt ||
  fail "read does not list the pdf as complete: $(cat out.txt)"
grep -q "2  minutes.txt  .* ($(stat -c %s sent-minutes.txt) bytes)  text/plain  complete" out.txt ||
  fail "read does not list the text as complete: $(cat out.txt)"
run "save 1" V save --home jkt --out saved.pdf "$ID" 1
grep -q "SHA-256 verified" out.txt || fail "save did not say it verified: $(cat out.txt)"
cmp -s saved.pdf sent-note.pdf || fail "the saved pdf differs from what was sent"
[ "$(stat -c %a saved.pdf)" = 600 ] || fail "saved file mode $(stat -c %a saved.pdf)"
run "save 2" V save --home jkt --out saved.txt "${ID:0:8}" 2
cmp -s saved.txt sent-minutes.txt || fail "the saved text differs from what was sent"
if V save --home jkt --out saved.txt "$ID" 2 >out.txt 2>err.txt; then fail "save overwrote a file"; fi
grep -q -- "--out saved.txt: the file exists" err.txt || fail "existing-file message: $(cat err.txt)"
if V save --home jkt --out x.bin "$ID" 3 >out.txt 2>err.txt; then fail "save took attachment 3 of 2"; fi
grep -q "has 2 attachments; N must be 1 to 2" err.txt || fail "bad N message: $(cat err.txt)"

run "jkt status" V status --home jkt
grep -q "^  received: $(cat jkt/attach/*.ct | wc -c) bytes (.*) in 2 files" out.txt ||
  fail "jkt status does not count the 2 received attachments: $(cat out.txt)"
grep -q "^  sent:     0 bytes (0 bytes) in 0 files" out.txt || fail "jkt status sent: $(cat out.txt)"
grep -q "^  partial:  0 bytes (0 bytes) in 0 files" out.txt || fail "jkt status partial: $(cat out.txt)"

# --- the relay deleted both once JKT, their one recipient, was done ---
stored=$(curl -s "http://127.0.0.1:$PORT/metrics" | awk '/^valise_relay_attachments_stored / {print $2}')
[ "$stored" = 0 ] || fail "the relay still stores attachments after DONE: '$stored'"

# --- damaged on the device: save refuses and writes nothing ---
ct=$(ls jkt/attach/*.ct | head -1)
cp "$ct" ct.bak
printf '\x01' | dd of="$ct" bs=1 seek=20000 conv=notrunc status=none
for n in 1 2; do
  V save --home jkt --out damaged-$n.bin "$ID" $n >out.txt 2>err.txt && continue
  grep -q "does not match the hash its sender signed" err.txt || fail "damaged message: $(cat err.txt)"
  [ -e damaged-$n.bin ] && fail "a damaged attachment left an output file"
  ls damaged-$n.bin.tmp.* >/dev/null 2>&1 && fail "a damaged attachment left a temporary file"
done
cp ct.bak "$ct"
# --- incomplete: the last chunk missing ---
truncate -s -10 "$ct"
mv "$ct" "${ct%.ct}.part"
swept_part="${ct%.ct}.part"
n=0
for k in 1 2; do
  if ! V save --home jkt --out part-$k.bin "$ID" $k >out.txt 2>err.txt; then
    grep -q "is incomplete (.* of .* chunks); run valise sync to fetch the rest; nothing was written" err.txt &&
      n=$((n + 1))
  fi
done
[ $n -eq 1 ] || fail "an incomplete attachment was not refused clearly: $(cat err.txt)"
run "jkt read lists the incomplete one" V read --home jkt "$ID"
grep -q "of .* chunks" out.txt || fail "read does not show a partial attachment: $(cat out.txt)"
run "jkt status with a partial file" V status --home jkt
grep -q "^  partial:  $(cat jkt/attach/*.part | wc -c) bytes (.*) in 1 file:" out.txt ||
  fail "status does not count the partial file: $(cat out.txt)"

# --- the sender's sealed copy deleted before the upload: said once, never sent ---
head -c 5000 /dev/urandom >later.bin
run "send a later attachment" V send --home hq --to ambassador@JKT --subject "Later" --attach later.bin </dev/null
LID=$(awk '{print $2}' out.txt)
rm -f hq/attach/*.ct
run "outbox without the sealed copy" V outbox --home hq
grep -q "attachment 1 later.bin (4.9 KiB): lost: its encrypted copy in HOME/attach was deleted before the upload" out.txt ||
  fail "outbox does not show the lost upload: $(cat out.txt)"
grep -q "attachment 1 note-verbale.pdf (300.0 KiB): uploaded (its encrypted copy on this device was deleted since)" out.txt ||
  fail "outbox does not say the uploaded copy was deleted: $(cat out.txt)"
if V save --home hq --out hq-gone.pdf "$ID" 1 >out.txt 2>err.txt; then fail "save opened a deleted sealed copy"; fi
grep -q "attachment 1: its encrypted copy in HOME/attach was deleted; nothing was written" err.txt ||
  fail "save of a deleted sealed copy: $(cat err.txt)"
run "hq sync without the sealed copy" V sync --home hq
grep -q "1 not sent: the encrypted copy in HOME/attach was deleted (send the file again)" out.txt ||
  fail "a deleted sealed copy was not reported: $(cat out.txt) $(cat err.txt)"
run "hq sync again" V sync --home hq
grep -q "not sent" out.txt && fail "the lost upload was reported twice: $(cat out.txt)"
run "jkt sync (the later message)" V sync --home jkt
# the .part made above from a finished download (no record names it): swept, said once
grep -q "1 leftover file of an interrupted run removed from HOME/attach" out.txt ||
  fail "the leftover .part was not swept: $(cat out.txt)"
[ -e "$swept_part" ] && fail "the leftover .part is still there: $(ls jkt/attach)"
grep -q "1 still being uploaded by their sender" out.txt ||
  fail "the never-uploaded attachment is not said to wait for its sender: $(cat out.txt)"
run "jkt read the later message" V read --home jkt "$LID"
# The relay has never heard of it; within the message's time to live that is what an
# upload not yet opened looks like too (the message goes first), so it is not given up.
grep -q "1  later.bin  .*0 of 1 chunks (valise sync fetches the rest)" out.txt ||
  fail "the never-uploaded attachment is not shown as not yet fetched: $(cat out.txt)"

harness_done "client attachments"
