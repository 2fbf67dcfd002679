#!/usr/bin/env bash
# keys_cli.sh - the IT staff workflow through the real commands: valise init,
# valise-keys init/enroll/revoke/list/directory, and every bad input giving
# one line on stderr, a non-zero exit, and no change to the org directory.
# usage: keys_cli.sh VALISE_KEYS VALISE
set -u
KEYS=$1
VALISE=$2
T=$(mktemp -d /tmp/valise-keys-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
failures=0

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
state() { (cd org 2>/dev/null && sha256sum org.key org.pub registry 2>/dev/null); }

# expect_ok DESCRIPTION CMD...
expect_ok() {
  local d=$1; shift
  if ! "$@" >out.txt 2>err.txt; then fail "$d: exit $? ($(cat err.txt))"; fi
}

# expect_fail DESCRIPTION PATTERN CMD...: non-zero exit, one stderr line
# matching PATTERN, org directory unchanged.
expect_fail() {
  local d=$1 pat=$2; shift 2
  local before after rc
  before=$(state)
  "$@" >out.txt 2>err.txt
  rc=$?
  after=$(state)
  [ $rc -ne 0 ] || fail "$d: expected failure, got exit 0"
  [ "$(wc -l <err.txt)" -eq 1 ] || fail "$d: expected one line on stderr, got: $(cat err.txt)"
  grep -qE "$pat" err.txt || fail "$d: stderr '$(cat err.txt)' does not match '$pat'"
  [ "$before" = "$after" ] || fail "$d: the org directory changed"
}

echo "minister passphrase 1" >pw
echo "wrong passphrase" >badpw && chmod 600 badpw
echo "device passphrase 1" >dpw && chmod 600 dpw

# --- provisioning walk-through ---
expect_ok "help" "$KEYS" --help
grep -q "enroll" out.txt || fail "--help does not list enroll"
for v in init enroll revoke list directory; do
  expect_ok "$v --help" "$KEYS" "$v" --help
  grep -q "usage: valise-keys $v" out.txt || fail "$v --help has no usage line"
done
expect_ok "init" "$KEYS" init --dir org --org "Ministry of Foreign Affairs" --passphrase-file pw
INIT_ORG_ID=$(sed -n 's/^org id //p' out.txt)
[ "$(stat -c %a org/org.key)" = 600 ] || fail "org.key is not mode 0600"
[ "$(stat -c %a org)" = 700 ] || fail "org dir is not mode 0700"
expect_fail "init twice" "already exists" "$KEYS" init --dir org --org Other --passphrase-file pw
expect_fail "short passphrase" "passphrase" "$KEYS" init --dir org2 --org X --passphrase-file <(echo short)
[ ! -e org2/org.key ] || fail "a refused init left org2/org.key"
# The root key needs 16 characters (a device key 8): 15 is refused, naming the rule.
expect_fail "15-character root passphrase" "at least 16 characters.*--generate-passphrase" \
  "$KEYS" init --dir org2 --org X --passphrase-file <(echo "fifteen chars!!")
[ ! -e org2 ] || fail "a refused init left org2 behind"
expect_fail "generate and file" "not both" "$KEYS" init --dir org2 --org X --generate-passphrase --passphrase-file pw
# A generated passphrase: printed once (6 groups of 4 base32 characters), and it opens org.key.
expect_ok "init --generate-passphrase" "$KEYS" init --dir orgg --org Generated --generate-passphrase
GEN=$(sed -n 's/^organisation passphrase (shown once.*): \(.*\)$/\1/p' out.txt)
echo "$GEN" | grep -qE '^[a-z2-7]{4}(-[a-z2-7]{4}){5}$' || fail "generated passphrase '$GEN' is not 6 groups of 4 base32"
[ "$(grep -c "$GEN" out.txt)" -eq 1 ] || fail "the generated passphrase is not shown exactly once"
grep -qa "$GEN" orgg/org.key orgg/org.pub orgg/registry && fail "the generated passphrase is stored in the org directory"
echo "$GEN" >genpw
expect_ok "generated passphrase opens org.key" "$KEYS" directory --dir orgg --out gen-dir.bin --passphrase-file genpw
expect_fail "another passphrase does not" "wrong passphrase" "$KEYS" directory --dir orgg --out gen-dir.bin --passphrase-file pw
# The org id: 128 bits, shown for reading aloud as 8 groups of 4 hex digits.
expect_ok "init org3" "$KEYS" init --dir org3 --org Third --passphrase-file pw
grep -qE '^org id [0-9a-f]{4}( [0-9a-f]{4}){7}$' out.txt || fail "init does not print a 128-bit org id: $(cat out.txt)"

expect_ok "valise init hq" "$VALISE" init --home hq --name "Anna Lindqvist" --out hq.req --passphrase-file dpw
expect_ok "valise init jkt" "$VALISE" init --home jkt --name "Budi Santoso" --out jkt.req --passphrase-file dpw
[ "$(stat -c %a hq/device.key)" = 600 ] || fail "device.key is not mode 0600"
expect_fail "valise init twice" "already exists" "$VALISE" init --home hq --name X --out x.req --passphrase-file dpw
expect_ok "valise init chen" "$VALISE" init --home chen --name "Chen Wei" --out chen.req --passphrase-file dpw
grep -qa "device passphrase" hq/device.key && fail "passphrase visible in device.key"

expect_ok "enroll hq" "$KEYS" enroll --dir org --request hq.req --post HQ --role duty --out hq.cert --passphrase-file pw
expect_ok "enroll jkt" "$KEYS" enroll --dir org --request jkt.req --post JKT --role ambassador --valid-days 30 --out jkt.cert --passphrase-file pw
expect_ok "list" "$KEYS" list --dir org
grep -q "Anna Lindqvist.*HQ.*duty.*active" out.txt || fail "list lacks the HQ device: $(cat out.txt)"
grep -q "Budi Santoso.*JKT.*ambassador.*active" out.txt || fail "list lacks the JKT device"
JKT_ID=$(awk '/Budi Santoso/ {print $2}' out.txt)

# The post reads the org id at `valise enroll` and compares it with what IT read out.
expect_ok "valise enroll hq" "$VALISE" enroll --home hq --cert hq.cert --org-pub org/org.pub --relay ws://127.0.0.1:9 --relay-id valise-relay --passphrase-file dpw
[ -n "$INIT_ORG_ID" ] && grep -qx "org id $INIT_ORG_ID" out.txt || fail "valise enroll does not show init's org id '$INIT_ORG_ID': $(cat out.txt)"

# --- person identity (issue 11 item 1) ---
# A second request in Anna's name: refused (also in another case) unless IT say it is her device.
expect_ok "valise init hq2" "$VALISE" init --home hq2 --name "Anna Lindqvist" --out hq2.req --passphrase-file dpw
expect_ok "valise init hq3" "$VALISE" init --home hq3 --name "ANNA LINDQVIST" --out hq3.req --passphrase-file dpw
expect_fail "namesake" "name 'Anna Lindqvist' is already held by another person \(serial 1, duty@HQ\).*--same-person-as 1" \
  "$KEYS" enroll --dir org --request hq2.req --post GVA --role clerk --out x.cert --passphrase-file pw
expect_fail "namesake in capitals" "already held by another person \(serial 1, duty@HQ\)" \
  "$KEYS" enroll --dir org --request hq3.req --post GVA --role clerk --out x.cert --passphrase-file pw
expect_fail "same person, other name" "one person has one name" \
  "$KEYS" enroll --dir org --request hq3.req --post HQ --role duty --same-person-as 1 --out x.cert --passphrase-file pw
expect_fail "same person as nobody" "no certificate with this serial" \
  "$KEYS" enroll --dir org --request hq2.req --post HQ --role duty --same-person-as 99 --out x.cert --passphrase-file pw
expect_fail "same person bad serial" "same-person-as must be" \
  "$KEYS" enroll --dir org --request hq2.req --post HQ --role duty --same-person-as x --out x.cert --passphrase-file pw
expect_ok "enroll Anna's second device" "$KEYS" enroll --dir org --request hq2.req --post HQ --role duty --same-person-as 1 --out hq2.cert --passphrase-file pw
grep -q "same person" out.txt || fail "enroll does not say it is the same person: $(cat out.txt)"
expect_ok "list persons" "$KEYS" list --dir org
person_of() { awk -v s="$1" '$1 == s && length($2) == 32 {print $3}' out.txt; }
A1=$(person_of 1) A2=$(person_of 3) B1=$(person_of 2)
[ ${#A1} -eq 8 ] && [ "$A1" = "$A2" ] || fail "list: Anna's devices do not share a person id ('$A1' '$A2'): $(cat out.txt)"
[ "$A1" != "$B1" ] || fail "list: Anna and Budi have the same person id"
# Posts and roles are real names; names carry no control or bidirectional characters.
for p in - -X X- A--B; do
  expect_fail "post '$p'" "post must be" "$KEYS" enroll --dir org --request chen.req --post "$p" --role duty --out x.cert --passphrase-file pw
done
for r in - -x x- a--b; do
  expect_fail "role '$r'" "role must be" "$KEYS" enroll --dir org --request chen.req --post HQ --role "$r" --out x.cert --passphrase-file pw
done
for n in $'Anna\u202eX' $'Anna\u2066X' $'Anna\u200fX' $'Anna\u061cX' $'Anna\xc2\x85X' $'Anna\x1bX' $'Anna\xc0\xa0X' $'Anna\xed\xa0\x80X'; do
  expect_fail "valise init name $(printf %q "$n")" "name must be" "$VALISE" init --home bad --name "$n" --out bad.req --passphrase-file dpw
  [ ! -e bad ] || { fail "a refused valise init left its home"; rm -rf bad; }
done

expect_ok "directory v1" "$KEYS" directory --dir org --out dir.bin --passphrase-file pw
grep -q "version 1 " out.txt || fail "first directory is not version 1: $(cat out.txt)"

# --- bad input changes nothing ---
expect_fail "wrong passphrase" "wrong passphrase" "$KEYS" enroll --dir org --request chen.req --post HQ --role duty --out x.cert --passphrase-file badpw
expect_fail "enroll twice" "already enrolled" "$KEYS" enroll --dir org --request hq.req --post HQ --role duty --out x2.cert --passphrase-file pw
head -c 100 jkt.req >trunc.req
expect_fail "truncated request" "request rejected: truncated" "$KEYS" enroll --dir org --request trunc.req --post JKT --role duty --out x.cert --passphrase-file pw
cp jkt.req flip.req
printf '\x01' | dd of=flip.req bs=1 seek=60 conv=notrunc status=none
expect_fail "flipped request" "request rejected" "$KEYS" enroll --dir org --request flip.req --post JKT --role duty --out x.cert --passphrase-file pw
cat jkt.req <(printf 'X') >trail.req
expect_fail "trailing bytes" "request rejected: unexpected trailing" "$KEYS" enroll --dir org --request trail.req --post JKT --role duty --out x.cert --passphrase-file pw
cp jkt.req ver.req
printf '\x02' | dd of=ver.req bs=1 seek=4 conv=notrunc status=none
expect_fail "request version" "unsupported format version" "$KEYS" enroll --dir org --request ver.req --post JKT --role duty --out x.cert --passphrase-file pw
expect_fail "bad post" "post" "$KEYS" enroll --dir org --request jkt.req --post jkt --role duty --out x.cert --passphrase-file pw
expect_fail "bad days" "valid-days" "$KEYS" enroll --dir org --request jkt.req --post JKT --role duty --valid-days 0 --out x.cert --passphrase-file pw
expect_fail "revoke unknown" "no device" "$KEYS" revoke --dir org --device 00112233445566778899aabbccddeeff --passphrase-file pw
expect_fail "revoke bad id" "32 hex" "$KEYS" revoke --dir org --device xyz --passphrase-file pw
expect_fail "unknown option" "unknown" "$KEYS" list --dir org --frobnicate
expect_fail "no org" "org.pub" "$KEYS" list --dir nowhere
[ ! -e x.cert ] || fail "a refused enroll left x.cert"

# a tampered registry or keystore is refused
cp -a org org-t
printf '\x01' | dd of=org-t/registry bs=1 seek=40 conv=notrunc status=none
expect_fail "tampered registry" "registry: signature" "$KEYS" list --dir org-t
rm -rf org-t; cp -a org org-t
printf '\x00\x00\x80\x00' | dd of=org-t/org.key bs=1 seek=7 conv=notrunc status=none
expect_fail "lowered Argon2 memory" "below the minimum" "$KEYS" directory --dir org-t --out d.bin --passphrase-file pw
rm -rf org-t

# --- revocation and a growing directory version ---
expect_ok "revoke" "$KEYS" revoke --dir org --device "$JKT_ID" --reason "device lost" --passphrase-file pw
expect_fail "revoke twice" "already revoked" "$KEYS" revoke --dir org --device "$JKT_ID" --passphrase-file pw
expect_ok "valise init jkt2" "$VALISE" init --home jkt2 --name "Budi Santoso" --out jkt2.req --passphrase-file dpw
expect_fail "same person as a revoked device" "revoked or expired" \
  "$KEYS" enroll --dir org --request jkt2.req --post JKT --role ambassador --same-person-as 2 --out x.cert --passphrase-file pw
expect_ok "list after revoke" "$KEYS" list --dir org
grep -q "Budi Santoso.*revoked: device lost" out.txt || fail "list does not show the revocation"
expect_ok "directory v2" "$KEYS" directory --dir org --out dir.bin --passphrase-file pw
grep -q "version 2 .*2 certificate(s), 1 revoked" out.txt || fail "second directory: $(cat out.txt)"

# --- relay certificate: IT certify a relay's handshake key for its relay id ---
{ printf 'VRHP\001'; tail -c 32 org/org.pub; } >relay.pub # any valid Ed25519 point
expect_ok "relay-cert" "$KEYS" relay-cert --dir org --relay-id mfa-relay --pubkey relay.pub --valid-days 30 --out relay.cert --passphrase-file pw
[ "$(head -c 4 relay.cert)" = VRLC ] || fail "relay.cert does not start with VRLC"
grep -q "relay certificate for mfa-relay written to relay.cert, valid 30 days" out.txt || fail "relay-cert output: $(cat out.txt)"
expect_fail "relay-cert over an existing file" "exists" "$KEYS" relay-cert --dir org --relay-id mfa-relay --pubkey relay.pub --out relay.cert --passphrase-file pw
expect_fail "relay-cert bad relay id" "relay-id" "$KEYS" relay-cert --dir org --relay-id "evil relay" --pubkey relay.pub --out r2.cert --passphrase-file pw
head -c 20 relay.pub >short.pub
expect_fail "relay-cert truncated key" "pubkey" "$KEYS" relay-cert --dir org --relay-id mfa-relay --pubkey short.pub --out r2.cert --passphrase-file pw
expect_fail "relay-cert wrong passphrase" "wrong passphrase" "$KEYS" relay-cert --dir org --relay-id mfa-relay --pubkey relay.pub --out r2.cert --passphrase-file badpw
expect_fail "relay-cert without --relay-id" "required" "$KEYS" relay-cert --dir org --pubkey relay.pub --out r2.cert --passphrase-file pw
[ ! -e r2.cert ] || fail "a refused relay-cert left r2.cert"

if [ $failures -ne 0 ]; then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "keys CLI: all checks passed"
