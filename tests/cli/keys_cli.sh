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
echo "wrong passphrase" >badpw
echo "device passphrase 1" >dpw

# --- provisioning walk-through ---
expect_ok "help" "$KEYS" --help
grep -q "enroll" out.txt || fail "--help does not list enroll"
for v in init enroll revoke list directory; do
  expect_ok "$v --help" "$KEYS" "$v" --help
  grep -q "usage: valise-keys $v" out.txt || fail "$v --help has no usage line"
done
expect_ok "init" "$KEYS" init --dir org --org "Ministry of Foreign Affairs" --passphrase-file pw
[ "$(stat -c %a org/org.key)" = 600 ] || fail "org.key is not mode 0600"
[ "$(stat -c %a org)" = 700 ] || fail "org dir is not mode 0700"
expect_fail "init twice" "already exists" "$KEYS" init --dir org --org Other --passphrase-file pw
expect_fail "short passphrase" "passphrase" "$KEYS" init --dir org2 --org X --passphrase-file <(echo short)
[ ! -e org2/org.key ] || fail "a refused init left org2/org.key"

expect_ok "valise init hq" "$VALISE" init --home hq --name "Anna Lindqvist" --out hq.req --passphrase-file dpw
expect_ok "valise init jkt" "$VALISE" init --home jkt --name "Budi Santoso" --out jkt.req --passphrase-file dpw
[ "$(stat -c %a hq/device.key)" = 600 ] || fail "device.key is not mode 0600"
expect_fail "valise init twice" "already exists" "$VALISE" init --home hq --name X --out x.req --passphrase-file dpw
grep -qa "device passphrase" hq/device.key && fail "passphrase visible in device.key"

expect_ok "enroll hq" "$KEYS" enroll --dir org --request hq.req --post HQ --role duty --out hq.cert --passphrase-file pw
expect_ok "enroll jkt" "$KEYS" enroll --dir org --request jkt.req --post JKT --role ambassador --valid-days 30 --out jkt.cert --passphrase-file pw
expect_ok "list" "$KEYS" list --dir org
grep -q "Anna Lindqvist.*HQ.*duty.*active" out.txt || fail "list lacks the HQ device: $(cat out.txt)"
grep -q "Budi Santoso.*JKT.*ambassador.*active" out.txt || fail "list lacks the JKT device"
JKT_ID=$(awk '/Budi Santoso/ {print $2}' out.txt)

expect_ok "directory v1" "$KEYS" directory --dir org --out dir.bin --passphrase-file pw
grep -q "version 1 " out.txt || fail "first directory is not version 1: $(cat out.txt)"

# --- bad input changes nothing ---
expect_ok "valise init chen" "$VALISE" init --home chen --name "Chen Wei" --out chen.req --passphrase-file dpw
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
expect_ok "list after revoke" "$KEYS" list --dir org
grep -q "Budi Santoso.*revoked: device lost" out.txt || fail "list does not show the revocation"
expect_ok "directory v2" "$KEYS" directory --dir org --out dir.bin --passphrase-file pw
grep -q "version 2 .*1 certificate(s), 1 revoked" out.txt || fail "second directory: $(cat out.txt)"

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
