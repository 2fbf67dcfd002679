#!/usr/bin/env bash
# session.sh - issue 12 item 14: while `valise desk` runs, the other verbs
# of the same user on that home use its unlocked session (HOME/session.sock,
# mode 0600 in a 0700 home; SO_PEERCRED same uid) and never ask for the
# passphrase; another user's process gets nothing; a stopped desk leaves no
# socket and the verbs unlock by themselves again.
# usage: session.sh VALISE_KEYS VALISE VALISE_RELAY
set -u
KEYS=$1
VALISE=$2
RELAY=$3
. "$(dirname "$0")/../harness.sh"
harness_init desk-session
DPID=
session_cleanup() { [ -n "$DPID" ] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null; harness_cleanup; }
trap session_cleanup EXIT

org_setup "hq Anna HQ duty" "jkt Budi JKT ambassador"
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq jkt
printf 'Instructions.\n\xe2\x80\xaeevil\n' >msg.txt
head -c 20000 /dev/urandom >annex.pdf
run "jkt sends" V send --home jkt --to duty@HQ --precedence FLASH --subject "Demarche" --file msg.txt \
  --attach annex.pdf
run "jkt syncs" V sync --home jkt --wait-ms 300

# no passphrase file and no terminal: a verb can only succeed through the desk
P() { "$VALISE" "$@" </dev/null; }
if P inbox --home hq >out.txt 2>err.txt; then fail "inbox without a desk or a passphrase succeeded"; fi

"$VALISE" desk --home hq --passphrase-file dpw --idle-secs 600 >desk.out 2>desk.err &
DPID=$!
for _ in $(seq 400); do [ -S hq/session.sock ] && grep -q 'unlocked session' desk.out && break; sleep 0.05; done
[ -S hq/session.sock ] || { fail "no session socket: $(cat desk.err)"; harness_done "desk session"; }
[ "$(stat -c %a hq/session.sock)" = 600 ] || fail "socket mode $(stat -c %a hq/session.sock), not 600"
[ "$(stat -c %a hq)" = 700 ] || fail "home mode $(stat -c %a hq), not 700"

for _ in $(seq 100); do P inbox --home hq >out.txt 2>err.txt && grep -q Demarche out.txt && break; sleep 0.1; done
grep -q "FLASH.*Anna\|FLASH.*Budi" out.txt || fail "inbox through the desk: $(cat out.txt err.txt)"
grep -q "done by the desk" err.txt || fail "inbox did not say it used the desk: $(cat err.txt)"
ID=$(awk '/Demarche/ {print $2}' out.txt)
run "read through the desk" P read --home hq "${ID:0:8}"
grep -q "Signature:  verified" out.txt || fail "read through the desk: $(cat out.txt)"
grep -q '\[U+202E\]evil' out.txt || fail "bidi override not made visible: $(cat out.txt)"
# Its attachment, listed through the desk as valise read lists it (issue 13 item 2).
for _ in $(seq 100); do P read --home hq "${ID:0:8}" >out.txt 2>err.txt; grep -q 'annex.pdf.*complete' out.txt && break; sleep 0.2; done
grep -q "^  1  annex.pdf  19.5 KiB (20000 bytes)  application/pdf  complete$" out.txt ||
  fail "read through the desk does not list the attachment: $(cat out.txt)"
run "save beside the desk" V save --home hq --out saved.pdf "${ID:0:8}" 1
cmp -s saved.pdf annex.pdf || fail "the attachment saved beside the desk differs"
echo "Reply by the desk's session." >reply.txt
run "send through the desk" P send --home hq --to ambassador@JKT --subject Reply --file reply.txt
grep -q "^queued [0-9a-f]\{32\} to ambassador@JKT" out.txt || fail "send through the desk: $(cat out.txt)"
run "outbox through the desk" P outbox --home hq
grep -q "Reply" out.txt || fail "outbox lacks the message sent through the desk: $(cat out.txt)"
# The desk's syncing process sends it: jkt receives it.
for _ in $(seq 100); do V sync --home jkt --wait-ms 200 >/dev/null 2>&1; V inbox --home jkt >out.txt 2>&1; grep -q Reply out.txt && break; sleep 0.2; done
grep -q Reply out.txt || fail "the message sent through the desk never arrived"
# A malformed id is refused by the command itself, before any request (the desk's own
# refusals never echo a request: unit/test_desk).
if P read --home hq "<script>x" >out.txt 2>err.txt; then fail "bad id accepted"; fi
grep -q "give 8 to 32 hex digits" err.txt || fail "malformed id not refused with the rule: $(cat err.txt)"

# Another user: SO_PEERCRED refuses even when the files would let them in.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  chmod 755 hq "$T"; chmod 666 hq/session.sock
  ans=$(setpriv --reuid=65534 --regid=65534 --clear-groups /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"{\"verb\":\"inbox\"}")
try:
    s.shutdown(socket.SHUT_WR)
    print(len(s.recv(65536)))
except ConnectionResetError:
    print(0)  # closed unanswered' "$T/hq/session.sock" 2>&1)
  [ "$ans" = 0 ] || fail "another user got an answer: $ans"
  chmod 700 hq; chmod 600 hq/session.sock
fi

kill "$DPID"; wait "$DPID"; rc=$?; DPID=
[ $rc -eq 0 ] || fail "the desk exited with status $rc on SIGTERM: $(tail -3 desk.err)"
grep -q Sanitizer desk.err && fail "desk: $(grep -m3 Sanitizer desk.err)"
[ -e hq/session.sock ] && fail "the socket outlived the desk"
if P inbox --home hq >out.txt 2>err.txt; then fail "inbox succeeded without the desk and a passphrase"; fi
run "inbox unlocks by itself again" V inbox --home hq
harness_done "desk session"
