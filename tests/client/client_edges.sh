#!/usr/bin/env bash
# client_edges.sh - what the diplomat sees and types at the edges (issue 12),
# over the real relay and binaries:
#  - item 1: a body carrying terminal escapes (clear screen, a fake header,
#    OSC 52, a bidi override, invalid UTF-8) reaches `read` made visible,
#    checked byte by byte; a body that is not text is not shown, and
#    `read --out FILE` writes its exact bytes;
#  - item 12: the relay URL with its default port; ws:// to another host
#    refused for what it is.
# usage: client_edges.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init client-edges

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador"

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
join_relay hq jkt

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

harness_done client_edges
