#!/usr/bin/env bash
# keys_fault.sh - SQLite-style fault injection over the provisioning commands.
# For every verb that writes (valise init, valise-keys init/enroll/revoke/
# directory/relay-cert) and for N = 1, 2, ... until the command no longer reaches an N-th
# call: make the N-th allocation, the N-th write, or the N-th fsync fail.
# Each run must end with exit status 0, or with a non-zero status (no crash
# by signal), one line on stderr, and nothing changed on disk.
# usage: keys_fault.sh VALISE_KEYS VALISE FAULTINJECT_SO
set -u
KEYS=$1 VALISE=$2 FI=$3
T=$(mktemp -d /tmp/valise-fault.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
failures=0 runs=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

echo "minister passphrase 1" >pw && chmod 600 pw
echo "device passphrase 1" >dpw && chmod 600 dpw
# The template: an organisation with one enrolled, one pending device.
mkdir tpl
( cd tpl
  "$KEYS" init --dir org --org Ministry --passphrase-file ../pw >/dev/null
  "$VALISE" init --home a --name Anna --out a.req --passphrase-file ../dpw >/dev/null
  "$VALISE" init --home b --name Budi --out b.req --passphrase-file ../dpw >/dev/null
  "$KEYS" enroll --dir org --request a.req --post HQ --role duty --out a.cert --passphrase-file ../pw >/dev/null
  "$KEYS" directory --dir org --out dir.bin --passphrase-file ../pw >/dev/null &&
  # a relay handshake public key (any valid Ed25519 point: the root's own here)
  { printf 'VRHP\001'; tail -c 32 org/org.pub; } >relay.pub ) || { echo "template failed"; exit 1; }
A_ID=$("$KEYS" list --dir tpl/org | awk '/Anna/ {print $2}')

snapshot() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

# scenario NAME COMMAND...: runs in a fresh copy of the template (cwd = copy).
scenario() {
  local name=$1; shift
  local class var n rc before after counts seen
  for class in alloc write sync; do
    case $class in alloc) var=VALISE_FAIL_ALLOC ;; write) var=VALISE_FAIL_WRITE ;; sync) var=VALISE_FAIL_SYNC ;; esac
    n=1
    while :; do
      rm -rf run; cp -a tpl run
      before=$(snapshot run)
      ( cd run && env "$var=$n" VALISE_FAULT_REPORT="$T/report" LD_PRELOAD="$FI" "$@" >"$T/out" 2>"$T/err" )
      rc=$?
      runs=$((runs + 1))
      counts=$(tail -n 1 "$T/report"); rm -f "$T/report"
      seen=$(echo "$counts" | sed -n "s/.*$class=\([0-9]*\).*/\1/p")
      if [ "$rc" -ge 128 ]; then
        fail "$name: $class #$n: killed by signal $((rc - 128))"
      elif [ "$rc" -ne 0 ]; then
        after=$(snapshot run)
        [ "$(wc -l <"$T/err")" -eq 1 ] || fail "$name: $class #$n: stderr is not one line: $(head -c 300 "$T/err")"
        if [ "$before" != "$after" ]; then
          # The one allowed trace of a failed 'directory': the registry has
          # consumed the version number (a version is never issued twice).
          if [ "$name" = directory ] && [ ! -e run/dir2.bin ] &&
             [ "$(echo "$before" | grep -v registry)" = "$(echo "$after" | grep -v registry)" ]; then :
          else
            fail "$name: $class #$n failed (rc $rc: $(cat "$T/err")) but changed files:"
            diff <(echo "$before") <(echo "$after") | head -5 >&2
          fi
        fi
      fi
      # Stop once the command no longer reaches an N-th call of this class.
      [ -n "$seen" ] && [ "$n" -gt "$seen" ] && break
      [ "$n" -ge 400 ] && { fail "$name: $class: more than 400 calls"; break; }
      n=$((n + 1))
    done
  done
}

scenario valise-init "$VALISE" init --home c --name Chen --out c.req --passphrase-file ../pw
scenario init "$KEYS" init --dir org2 --org Other --passphrase-file ../pw
scenario enroll "$KEYS" enroll --dir org --request b.req --post JKT --role ambassador --out b.cert --passphrase-file ../pw
scenario revoke "$KEYS" revoke --dir org --device "$A_ID" --passphrase-file ../pw
scenario directory "$KEYS" directory --dir org --out dir2.bin --passphrase-file ../pw
scenario relay-cert "$KEYS" relay-cert --dir org --relay-id mfa-relay --pubkey relay.pub --out relay.cert --passphrase-file ../pw

echo "$runs fault-injected runs"
[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
