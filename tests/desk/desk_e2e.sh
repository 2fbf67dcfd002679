#!/usr/bin/env bash
# desk_e2e.sh - `valise desk` in a real browser (issue 14): an organisation
# with HQ (duty@HQ), two JKT devices (ambassador@JKT, consul@JKT) and a
# revoked one; the real relay on loopback; two desks (HQ and the
# ambassador); then tests/desk/desk.test.mjs drives Debian's chromium through
# Playwright against both. Also checks, with curl, what a browser would not
# let us try: another local user, a wrong Host (DNS rebinding), a missing or
# wrong Origin, a used token, form posts.
# usage: desk_e2e.sh VALISE_KEYS VALISE VALISE_RELAY [SCREENSHOT_DIR]
set -u
KEYS=$1
VALISE=$2
RELAY=$3
SHOTS=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../harness.sh"
[ -d "$HERE/node_modules/playwright-core" ] || { echo "desk_e2e: run scripts/deps.sh (npm ci in tests/desk)" >&2; exit 1; }
[ -x /usr/bin/chromium ] || { echo "desk_e2e: /usr/bin/chromium missing: run scripts/deps.sh" >&2; exit 1; }
harness_init desk-e2e
DESKS=()
desk_cleanup() {
  local p
  for p in "${DESKS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  harness_cleanup
}
trap desk_cleanup EXIT

# IT enrol four devices (names with spaces, as colleagues see them); the old laptop is revoked.
run "org init" "$KEYS" init --dir org --org Ministry --passphrase-file opw || exit 1
for dev in "hq:Siti Rahma:HQ:duty" "amb:Budi Santoso:JKT:ambassador" "con:Dewi Lestari:JKT:consul" \
           "old:Old Laptop:JKT:ambassador"; do
  IFS=: read -r h name post role <<<"$dev"
  run "init $h" V init --home "$h" --name "$name" --out "$h.req" || exit 1
  run "enroll $h" "$KEYS" enroll --dir org --request "$h.req" --post "$post" --role "$role" \
    --out "$h.cert" --passphrase-file opw || exit 1
done
run "revoke the old laptop" "$KEYS" revoke --dir org --device "$(device_id 'Old Laptop')" --reason lost \
  --passphrase-file opw || exit 1
run "directory" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw || exit 1
relay_start 0 data dir.bin
PORT=$(cat port)
join_relay hq amb con

start_desk() { # start_desk HOME IDLE: the desk's link in HOME.url
  "$VALISE" desk --home "$1" --passphrase-file dpw --idle-secs "$2" >"$1.out" 2>"$1.err" &
  DESKS+=($!)
  for _ in $(seq 400); do
    grep -q 'login?token=' "$1.out" 2>/dev/null && break
    sleep 0.05
  done
  grep -o 'http://127.0.0.1:[0-9]*/login?token=[0-9a-f]*' "$1.out" >"$1.url" ||
    { fail "desk $1 did not start: $(cat "$1.err")"; exit 1; }
}
start_desk hq 600
start_desk amb 600
start_desk con 4 # locks after 4 s without use
HQ_URL=$(cat hq.url)
AMB_URL=$(cat amb.url)
HQ_BASE=${HQ_URL%%/login*}
HQ_PORT=${HQ_BASE##*:}

# --- what curl can try and a browser would not let a page do ---
code() { curl -s -o body.txt -w '%{http_code}' "$@"; }
[ "$(code "$HQ_BASE/api/inbox")" = 403 ] || fail "no cookie: not refused"
[ "$(code -H "Host: evil.example:$HQ_PORT" "$HQ_URL")" = 421 ] || fail "DNS rebinding (Host evil.example) not refused"
grep -q evil body.txt && fail "the refusal echoes the Host header"
[ "$(code "$HQ_BASE/login?token=0000000000000000000000000000000000000000000000000000000000000000")" = 403 ] ||
  fail "a wrong token was accepted"
# Another local user (nobody) cannot even get an answer.
if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  out=$(setpriv --reuid=65534 --regid=65534 --clear-groups curl -s -o /dev/null -w '%{http_code}' "$HQ_URL" 2>&1)
  [ "$out" = 000 ] || fail "another local user got an answer ($out)"
fi
# The browser test logs in with a second, fresh desk token: log in here with curl first
# to test the cookie (the token works once).
[ "$(code -c jar -H 'Accept: text/html' "$HQ_URL")" = 303 ] || fail "token login: not 303"
grep -qi 'HttpOnly' jar || fail "the cookie is not HttpOnly"
[ "$(code "$HQ_URL")" = 403 ] || fail "the token worked twice"
[ "$(code -b jar "$HQ_BASE/api/state")" = 200 ] || fail "the cookie does not open the API"
[ "$(code -b jar -X POST -H 'Content-Type: application/json' -d '{}' "$HQ_BASE/api/lock")" = 403 ] ||
  fail "POST without Origin accepted"
[ "$(code -b jar -X POST -H 'Origin: http://evil.example' -H 'Content-Type: application/json' -d '{}' "$HQ_BASE/api/lock")" = 403 ] ||
  fail "POST from another origin accepted"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/x-www-form-urlencoded' -d 'a=b' "$HQ_BASE/api/lock")" = 415 ] ||
  fail "form post accepted"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/json' -d '{"id":"<script>alert(1)</script>"}' "$HQ_BASE/api/read")" = 400 ] ||
  fail "bad id not refused"
grep -q script body.txt && fail "the API reflected its input: $(cat body.txt)"
# Attachments (issue 13 item 2): raw bytes only, from this page only; nothing left behind.
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/x-www-form-urlencoded' -H 'X-Valise-Name: a.txt' -d 'a=b' "$HQ_BASE/api/attach")" = 415 ] ||
  fail "attach: a form post accepted"
[ "$(code -b jar -X POST -H 'Content-Type: application/octet-stream' -H 'X-Valise-Name: a.txt' -d 'abc' "$HQ_BASE/api/attach")" = 403 ] ||
  fail "attach: no Origin accepted"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/octet-stream' -H 'X-Valise-Name: ..' -d 'abc' "$HQ_BASE/api/attach")" = 400 ] ||
  fail "attach: the name '..' accepted"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/octet-stream' -H 'X-Valise-Name: a%2Fb' -d 'abc' "$HQ_BASE/api/attach")" = 400 ] ||
  fail "attach: a name with / accepted"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/octet-stream' -H 'X-Valise-Name: a%E2%80%AEtxt.exe' -d 'abc' "$HQ_BASE/api/attach")" = 400 ] ||
  fail "attach: a name with a bidi override accepted"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/octet-stream' -H 'X-Valise-Name: note.txt' -d 'hello' "$HQ_BASE/api/attach")" = 200 ] ||
  fail "attach: a good upload refused: $(cat body.txt)"
grep -Eq '^\{"handle":"[0-9a-f]{32}","name":"note.txt","size":5,"type":"text\\/plain"\}$' body.txt || fail "attach: answer $(cat body.txt)"
ls hq/attach/upload-* >/dev/null 2>&1 && fail "attach: a plaintext upload copy was left in hq/attach"
[ "$(find hq/attach -name '*.ct' | wc -l)" = 1 ] || fail "attach: not one sealed copy: $(ls hq/attach)"
grep -qa hello hq/attach/*.ct && fail "attach: the sealed copy holds the plaintext"
h=$(sed 's/.*"handle":"\([0-9a-f]*\)".*/\1/' body.txt)
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/json' -d "{\"handle\":\"$h\"}" "$HQ_BASE/api/attach_drop")" = 200 ] ||
  fail "attach: drop refused"
[ "$(find hq/attach -name '*.ct' | wc -l)" = 0 ] || fail "attach: a dropped attachment left its sealed copy"
[ "$(code -b jar -X POST -H "Origin: $HQ_BASE" -H 'Content-Type: application/json' -d "{\"to\":[\"ambassador@JKT\"],\"precedence\":\"ROUTINE\",\"label\":\"X\",\"subject\":\"s\",\"body\":\"b\",\"attachments\":[\"$h\"]}" "$HQ_BASE/api/send")" = 410 ] ||
  fail "send: a dropped handle accepted"
hdrs=$(curl -s -D - -o /dev/null -b jar "$HQ_BASE/")
echo "$hdrs" | grep -qi "content-security-policy: default-src 'none'; script-src 'self'" || fail "no strict CSP: $hdrs"
echo "$hdrs" | grep -qi "frame-ancestors 'none'" || fail "no frame-ancestors 'none'"
echo "$hdrs" | grep -qi "cache-control: no-store" || fail "pages may be cached"
grep -q '<script>' "$(dirname "$VALISE")/../share/valise/desk/index.html" && fail "inline script in index.html"
# A new desk for HQ: the browser needs an unused token.
kill "${DESKS[0]}"; wait "${DESKS[0]}" 2>/dev/null
start_desk hq 600
HQ_URL=$(cat hq.url)

# The injection attempt is sent from a terminal, as an insider could.
printf '<img src=x onerror="document.title=1"><script>window.pwned=1</script>\n\xe2\x80\xaeevil\x1b[2J\n' >inj.txt
run "consul sends the injection attempt" V send --home con --to ambassador@JKT --precedence ROUTINE \
  --subject '<b>bold</b> <script>x()</script>' --file inj.txt
# An attachment whose sender-chosen name is HTML (issue 13 item 2): shown as text only.
printf 'strange\n' >'<img src=x onerror=window.pwned=2>%1B[2J.txt'
run "consul sends an attachment with an HTML name" V send --home con --to ambassador@JKT \
  --subject 'Annex with a strange name' --attach '<img src=x onerror=window.pwned=2>%1B[2J.txt' </dev/null
run "consul syncs" V sync --home con --wait-ms 300

CON_URL=$(cat con.url)
export HQ_URL AMB_URL CON_URL SHOTS
cd "$HERE" && timeout 240 node desk.test.mjs "$T" || fail "browser test"
cd "$T" || exit 1
grep -qa "Demarche" data/* && fail "the relay's files hold the plaintext subject"
# Each desk stops cleanly on SIGTERM (under ASan: no leak, no error report).
for i in "${!DESKS[@]}"; do
  kill "${DESKS[$i]}" 2>/dev/null; wait "${DESKS[$i]}"; rc=$?
  [ $rc -eq 0 ] || [ $rc -eq 143 ] || fail "a desk exited with status $rc"
done
DESKS=()
for h in hq amb con; do
  grep -q "Sanitizer" "$h.err" && fail "$h desk: $(grep -m3 Sanitizer "$h.err")"
done
harness_done "desk e2e"
