#!/usr/bin/env bash
# client_edges.sh - what the diplomat sees and types at the edges (issue 12),
# over the real relay and binaries:
#  - item 1: a body carrying terminal escapes (clear screen, a fake header,
#    OSC 52, a bidi override, invalid UTF-8) reaches `read` made visible,
#    checked byte by byte; a body that is not text is not shown, and
#    `read --out FILE` writes its exact bytes;
#  - item 12: the relay URL with its default port; ws:// to another host
#    refused for what it is;
#  - item 2: composing at a (pseudo-)terminal: a prompt, the first Ctrl-D
#    ends the message, a confirmation naming recipients, precedence and
#    label; what is typed after Ctrl-D is not sent; --yes for scripts;
#  - item 11: each error one line naming the file, flag or value; Ctrl-C at
#    the passphrase prompt restores echo; a passphrase file others can read
#    is warned about; empty messages refused.
# usage: client_edges.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-edges

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador" "cl Clerk JKT clerk"

# --- item 12: relay URLs, checked before the passphrase is asked ---
if "$VALISE" enroll --home hq --cert hq.cert --org-pub org/org.pub --relay ws://relay.mfa.example \
  --relay-id valise-relay </dev/null >out.txt 2>err.txt; then
  fail "enroll accepted ws:// to a host elsewhere"
fi
grep -q "^valise enroll: --relay ws://relay.mfa.example: plain ws:// is allowed only to this machine" err.txt ||
  fail "ws:// refusal does not name its cause: $(cat err.txt)"
grep -qi "certificate" err.txt && fail "ws:// refusal blamed on the certificate: $(cat err.txt)"
[ "$(wc -l <err.txt)" -eq 1 ] || fail "ws:// refusal is not one line: $(cat err.txt)"
if "$VALISE" enroll --home hq --cert hq.cert --org-pub org/org.pub --relay wss://relay.mfa.example:x \
  --relay-id valise-relay </dev/null >out.txt 2>err.txt; then
  fail "enroll accepted a bad port"
fi
grep -q "not a relay URL" err.txt || fail "bad URL message: $(cat err.txt)"
# README's own example, no port: accepted (443), and nothing to connect to is needed to enrol.
mkdir readme
run "init readme" V init --home readme/h --name "Readme" --out readme/h.req
run "enroll readme cert" "$KEYS" enroll --dir org --request readme/h.req --post HQ --role clerk \
  --out readme/h.cert --passphrase-file opw
run "enroll with README's URL" V enroll --home readme/h --cert readme/h.cert --org-pub org/org.pub \
  --relay wss://relay.mfa.example --relay-id mfa-relay
grep -q "relay wss://relay.mfa.example " out.txt || fail "README URL: $(cat out.txt)"

relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq jkt cl

# --- item 1: a hostile body, byte by byte ---
# ESC[2J ESC[H clears the screen and homes the cursor, then a fake header;
# OSC 52 writes the clipboard; U+202E reverses; \xff is not UTF-8; CR returns.
printf 'Hello\n\033[2J\033[HFrom: Minister\tSignature: verified\r\n\033]52;c;cm0gLXJmIH4=\a\n\xe2\x80\xaeexe.txt\n\xc2\x9b31m\n' >evil.txt
run "hq sends escapes" V send --home hq --to ambassador@JKT --subject "Escapes" --file evil.txt
ID=$(awk '{print $2}' out.txt)
run "hq sync" V sync --home hq --wait-ms 200
run "jkt sync" V sync --home jkt --wait-ms 500
run "jkt read" V read --home jkt "$ID"
# The body follows the blank line after the header.
sed '1,/^$/d' out.txt >body.txt
printf 'Hello\n\\x1b[2J\\x1b[HFrom: Minister\tSignature: verified\\x0d\n\\x1b]52;c;cm0gLXJmIH4=\\x07\n\\u{202e}exe.txt\n\\u{009b}31m\n' >want.txt
cmp -s body.txt want.txt || fail "read body not escaped byte by byte: $(od -c body.txt | head -20)"
LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' out.txt && fail "a control byte reached the terminal: $(od -c out.txt)"
grep -q $'\xe2\x80\xae' out.txt && fail "a bidi override reached the terminal"
grep -q "^Signature:  verified" out.txt || fail "real header missing: $(cat out.txt)"

# --- item 1: a body that is not text ---
head -c 3000 /dev/urandom >bin.dat
printf '\0\033[2J' >>bin.dat
run "hq sends binary" V send --home hq --to ambassador@JKT --subject "Scan" --file bin.dat
IDB=$(awk '{print $2}' out.txt)
run "hq sync (binary)" V sync --home hq --wait-ms 200
run "jkt sync (binary)" V sync --home jkt --wait-ms 500
run "jkt read (binary)" V read --home jkt "$IDB"
grep -q "the body is $(stat -c %s bin.dat) bytes that are not text; to save them unchanged: valise read --home HOME --out FILE $IDB" out.txt ||
  fail "binary body: no hint: $(head -c 2000 out.txt | od -c | head)"
[ "$(sed '1,/^$/d' out.txt | wc -l)" -eq 1 ] || fail "binary body dumped: $(sed '1,/^$/d' out.txt | od -c | head)"
run "jkt read --out" V read --home jkt --out body.bin "$IDB"
cmp -s body.bin bin.dat || fail "read --out did not write the exact bytes"
[ "$(stat -c %a body.bin)" = 600 ] || fail "read --out file mode $(stat -c %a body.bin)"
grep -q "written unchanged to body.bin" out.txt || fail "read --out did not say so: $(cat out.txt)"
if V read --home jkt --out body.bin "$IDB" >out.txt 2>err.txt; then fail "read --out overwrote a file"; fi
grep -q "^valise read: --out body.bin: the file exists" err.txt || fail "--out exists: $(cat err.txt)"
cmp -s body.bin bin.dat || fail "read --out changed an existing file"

# --- item 2: composing at a terminal (tests/client/tty_drive.py) ---
TTY="python3 $(dirname "$0")/tty_drive.py"
VB="$VALISE"
$TTY 'expect:Type the message; end it with Ctrl-D' 'send:Typed at the terminal\n' 'send:\x04' \
  'expect:Sign and queue it? [y/N]' 'send:y\n' -- \
  "$VB" send --home hq --to ambassador@JKT --precedence IMMEDIATE --label SECRET --subject Typed \
  --passphrase-file dpw >tty.txt 2>&1 || fail "compose at a terminal: $(cat tty.txt)"
grep -q "^To:         ambassador@JKT" tty.txt || fail "confirmation lacks the recipient: $(cat tty.txt)"
grep -q "^Precedence: IMMEDIATE" tty.txt || fail "confirmation lacks the precedence: $(cat tty.txt)"
grep -q "^Label:      SECRET" tty.txt || fail "confirmation lacks the label: $(cat tty.txt)"
IDT=$(awk '/^queued/ {print $2}' tty.txt)
[ ${#IDT} -eq 32 ] || fail "compose did not queue: $(cat tty.txt)"
# What is typed after the first Ctrl-D (here: a passphrase) is not the message, and "no" sends nothing.
run "outbox before" V outbox --home hq
before=$(grep -c "^[0-9a-f]\{32\} " out.txt)
$TTY 'expect:Type the message' 'send:first part\n' 'send:\x04' 'expect:[y/N]' \
  'send:device passphrase 1\n' -- \
  "$VB" send --home hq --to ambassador@JKT --subject NotSent --passphrase-file dpw >tty.txt 2>&1 &&
  fail "send queued without a yes: $(cat tty.txt)"
grep -q "not sent; nothing was queued" tty.txt || fail "refusal not said: $(cat tty.txt)"
run "outbox after no" V outbox --home hq
[ "$(grep -c "^[0-9a-f]\{32\} " out.txt)" -eq "$before" ] || fail "a refused message was queued: $(cat out.txt)"
# --yes: no question at the terminal.
$TTY 'expect:Type the message' 'send:scripted\n' 'send:\x04' -- \
  "$VB" send --home hq --to ambassador@JKT --subject Yes --yes --passphrase-file dpw >tty.txt 2>&1 ||
  fail "send --yes at a terminal: $(cat tty.txt)"
grep -q "y/N" tty.txt && fail "--yes still asked: $(cat tty.txt)"
grep -q "^queued" tty.txt || fail "--yes did not queue: $(cat tty.txt)"
run "hq sync (typed)" V sync --home hq --wait-ms 200
run "jkt sync (typed)" V sync --home jkt --wait-ms 500
run "jkt read (typed)" V read --home jkt "$IDT"
sed '1,/^$/d' out.txt >body.txt
printf 'Typed at the terminal\n' | cmp -s - body.txt || fail "typed body: $(od -c body.txt)"

# --- item 7: an address that resolves to nobody is refused at send, with close matches ---
refused_to() { # refused_to ADDRESS PATTERN
  if echo "to nobody" | V send --home hq --to "$1" --subject Nobody >out.txt 2>err.txt; then
    fail "send to $1 queued: $(cat out.txt)"
  fi
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "refusal of $1 not one line: $(cat err.txt)"
  grep -q -- "$2" err.txt || fail "refusal of $1: expected '$2': $(cat err.txt)"
}
run "outbox before unknown" V outbox --home hq
before=$(grep -c "^[0-9a-f]\{32\} " out.txt)
refused_to nobody@NOWHERE "^valise send: --to nobody@NOWHERE: no other device in the newest directory has this address; nothing was queued"
refused_to ambassadr@JKT "did you mean ambassador@JKT?"
refused_to "person:Nobody" "^valise send: --to person:Nobody: no other device"
refused_to "person:budi" "did you mean person:Budi?"
refused_to "*@JKTT" "did you mean \*@JKT?"
refused_to duty@HQ "^valise send: --to duty@HQ: no other device" # a role only this device holds
run "outbox after unknown" V outbox --home hq
[ "$(grep -c "^[0-9a-f]\{32\} " out.txt)" -eq "$before" ] || fail "a refused address was queued: $(cat out.txt)"
echo "to Budi" | V send --home hq --to person:Budi --subject Known >out.txt 2>err.txt || fail "person:Budi refused: $(cat err.txt)"

# --- item 11: errors, one line each, naming what to fix ---
one_line() { # one_line DESC PATTERN: err.txt is one line matching PATTERN
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "$1: not one line: $(cat err.txt)"
  grep -q -- "$2" err.txt || fail "$1: expected '$2': $(cat err.txt)"
}
printf '' >empty.txt
if V send --home hq --to ambassador@JKT --file empty.txt >out.txt 2>err.txt; then fail "empty message queued"; fi
one_line "empty --file" "^valise send: the message is empty"
if printf '\n \n' | V send --home hq --to ambassador@JKT >out.txt 2>err.txt; then fail "blank message queued"; fi
one_line "blank stdin" "^valise send: the message is empty"
head -c 204801 /dev/zero | tr '\0' a >big.txt
if V send --home hq --to ambassador@JKT --file big.txt >out.txt 2>err.txt; then fail "oversized message queued"; fi
one_line "oversized --file" "^valise send: --file big.txt: larger than 200 KiB (204800 bytes)"
"$VALISE" send --help | grep -q "200 KiB" || fail "send --help does not give the size limit"
# A subject with a newline: refused before any passphrase is asked (no terminal, no file here).
if echo x | "$VALISE" send --home hq --to ambassador@JKT --subject $'two\nlines' >out.txt 2>err.txt </dev/null; then
  fail "subject with a newline accepted"
fi
one_line "subject newline" "^valise send: --subject must be UTF-8 text without control"
# A 7-digit id is a malformed id, not an ambiguous one.
if V read --home jkt "${ID:0:7}" >out.txt 2>err.txt; then fail "7-digit id accepted"; fi
one_line "short id" "^valise read: message id '${ID:0:7}': give 8 to 32 hex digits"
# Missing passphrase file, wrong passphrase, --ca: the file is named, the cause said once.
if "$VALISE" inbox --home hq --passphrase-file nosuch.pw >out.txt 2>err.txt; then fail "missing passphrase file"; fi
one_line "missing passphrase file" "^valise inbox: --passphrase-file nosuch.pw: no such file$"
echo "not the passphrase" >wrong.pw
chmod 600 wrong.pw
if "$VALISE" inbox --home hq --passphrase-file wrong.pw >out.txt 2>err.txt; then fail "wrong passphrase"; fi
one_line "wrong passphrase" "^valise inbox: wrong passphrase for hq/device.key (or the file is damaged); try again$"
if V enroll --home hq --cert hq.cert --org-pub org/org.pub --relay "ws://127.0.0.1:$PORT" \
  --relay-id valise-relay --ca nosuch.pem >out.txt 2>err.txt; then fail "missing --ca accepted"; fi
one_line "missing --ca" "^valise enroll: --ca nosuch.pem: no such file"
# init --out in a directory that does not exist: named, and no home left behind.
if V init --home newhome --name "New" --out /nonexistent/x.req >out.txt 2>err.txt; then fail "init --out /nonexistent"; fi
one_line "init --out" "^valise init: --out /nonexistent/x.req: no such directory /nonexistent"
[ -e newhome ] && fail "init left a home behind"
if V init --home hq --name "Again" --out again.req >out.txt 2>err.txt; then fail "second init in one home"; fi
one_line "init twice" "^valise init: --home hq: a device already exists here"
# A passphrase file others can read: used, with a warning naming it (as ssh warns for keys).
cp dpw open.pw
chmod 644 open.pw
run "inbox with an exposed passphrase file" "$VALISE" inbox --home hq --passphrase-file open.pw
grep -q "^valise inbox: WARNING: --passphrase-file open.pw is readable by others (mode 0644).*chmod 600 open.pw" err.txt ||
  fail "no warning for a passphrase file others can read: $(cat err.txt)"
run "inbox with a private passphrase file" V inbox --home hq
[ -s err.txt ] && fail "warning for a private passphrase file: $(cat err.txt)"
# Ctrl-C at the passphrase prompt: the terminal's echo is back.
$TTY 'expect:Device passphrase:' 'send:half typ' 'send:\x03' -- "$VB" inbox --home hq >tty.txt 2>&1
[ "$(tail -1 tty.txt)" = "echo:on" ] || fail "Ctrl-C at the passphrase prompt left echo off: $(cat tty.txt)"
# A passphrase mismatch at init says so.
$TTY 'expect:New device passphrase' 'send:first passphrase\n' 'expect:Repeat passphrase' \
  'send:second passphrase\n' -- "$VB" init --home mism --name Mism --out mism.req >tty.txt 2>&1 &&
  fail "init accepted two different passphrases"
grep -q "valise init: passphrase: the two entries differ" tty.txt || fail "mismatch message: $(cat tty.txt)"
[ -e mism ] && fail "init left a home behind after a mismatch"

# --- item 9: a recipient revoked after the message went out shows as revoked, not "? (?@?)" ---
echo "circular" | V send --home hq --to '*@JKT' --subject Circular >out.txt 2>err.txt || fail "circular: $(cat err.txt)"
run "hq sync (circular)" V sync --home hq --wait-ms 200
# jkt and the clerk receive it; each sends a delivery receipt back, counted apart from messages.
run "jkt sync (circular)" V sync --home jkt --wait-ms 500
grep -q "; sent 0 messages, [1-9][0-9]* receipts\?; accepted 0 messages; received [1-9][0-9]* new," out.txt ||
  fail "sync counts a receipt as a message sent: $(cat out.txt)"
run "clerk sync (circular)" V sync --home cl --wait-ms 500
run "revoke the clerk" "$KEYS" revoke --dir org --device "$(device_id Clerk)" --reason lost --passphrase-file opw
run "directory v2" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw
kill -HUP "$RPID"
sleep 0.5
run "hq sync (directory v2)" V sync --home hq --wait-ms 200
# The clerk's receipt, from a device revoked since, is refused, and sync says by whom and why.
grep -q "; 1 refused;" out.txt || fail "hq did not refuse the revoked clerk's receipt: $(cat out.txt)"
grep -q "^refused 1 from $(device_id Clerk) (a device IT revoked at 20[^)]*): the sender's device is revoked; left on the relay until it expires$" out.txt ||
  fail "sync does not name what it refused and why: $(cat out.txt)"
run "hq outbox (revoked)" V outbox --home hq
grep -q "? (?@?)" out.txt && fail "a revoked recipient shown as ? (?@?): $(cat out.txt)"
CL_ID=$(device_id Clerk)
# Named from the certificate it had when the circular went to it (no longer listed).
grep -q "^    $CL_ID Clerk (clerk@JKT): .*(device revoked by IT at 20" out.txt ||
  fail "revoked recipient not named and shown as revoked: $(cat out.txt)"

# --- item 8: run with the relay down says it retries by itself ---
relay_stop
"$VALISE" run --home hq --passphrase-file dpw >run.out 2>run.err &
RUNPID=$!
sleep 3
kill -TERM $RUNPID
for _ in $(seq 100); do kill -0 $RUNPID 2>/dev/null || break; sleep 0.1; done
kill -KILL $RUNPID 2>/dev/null && fail "run did not stop on SIGTERM"
wait $RUNPID 2>/dev/null
grep -q "reconnecting in [0-9]* ms, by itself" run.err || fail "run with the relay down: $(cat run.err)"
grep -q "try again later" run.err && fail "run says 'try again later' while it retries: $(cat run.err)"

# --- item 8: run says when it is connected, each new message (FLASH stands out), the drop and the return ---
wait_for() { # FILE PATTERN WHAT: up to 60 s (a shared machine)
  for _ in $(seq 600); do grep -q "$2" "$1" && return 0; sleep 0.1; done
  fail "run: $3: $(cat run2.out run2.err)"
  return 1
}
"$VALISE" run --home jkt --passphrase-file dpw >run2.out 2>run2.err &
RUNPID=$!
sleep 1
relay_start "$PORT" data dir.bin
wait_for run2.out "^connected to the relay $RELAY_ID (directory v2); new messages show here" "no line when connected"
printf 'fire drill at noon\n' | V send --home hq --to ambassador@JKT --precedence FLASH \
  --subject 'Fire drill' >out.txt 2>err.txt || fail "send FLASH: $(cat err.txt)"
printf 'minutes\n' | V send --home hq --to ambassador@JKT --subject Minutes >out.txt 2>err.txt ||
  fail "send ROUTINE: $(cat err.txt)"
run "hq sync (for run)" V sync --home hq --wait-ms 200
wait_for run2.out "^new ROUTINE message from Anna (duty@HQ): Minutes  \[valise read [0-9a-f]\{8\}\]$" \
  "no line for a ROUTINE message"
grep -q '^!!! new FLASH message from Anna (duty@HQ): Fire drill  \[valise read [0-9a-f]\{8\}\]$' run2.out ||
  fail "the FLASH does not stand out: $(cat run2.out)"
relay_stop
wait_for run2.err "the link to the relay dropped; the outbox is kept; reconnecting in [0-9]* ms, by itself" \
  "no line when the link drops"
relay_start "$PORT" data dir.bin
wait_for run2.out "^connected again to the relay $RELAY_ID" "no line when the link is back"
kill -TERM $RUNPID
wait $RUNPID 2>/dev/null
[ "$(grep -c "message from Anna (duty@HQ): \(Fire drill\|Minutes\) " run2.out)" -eq 2 ] || fail "run showed messages more than once: $(cat run2.out)"

harness_done client_edges
