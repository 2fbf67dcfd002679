# harness.sh - sourced by the shell tests that drive the real binaries: a
# temporary working directory removed at exit (the relay stopped first),
# failure counting, and starting / stopping valise-relay on loopback.
#   harness_init NAME          mktemp /tmp/valise-NAME.XXXXXX, cd there, trap
#   fail MSG...                count a failure, print it on stderr
#   run DESC CMD...            CMD must succeed (stdout out.txt, stderr err.txt)
#   V ARGS...                  $VALISE with the device passphrase file dpw
#   relay_start PORT DATA DIRECTORY [FLAGS...]
#                              valise-relay ($RELAY) with org/org.pub, waits for
#                              its port file; PORT 0: any (read it from `port`).
#                              Unless FLAGS hold --relay-cert, DATA gets a
#                              handshake key and IT sign DATA.rcert for relay id
#                              $RELAY_ID (relay_identity)
#   relay_identity DATA ID CERT  the relay operator's and IT's steps: handshake
#                              key in DATA, relay certificate for ID in CERT
#   relay_stop                 SIGTERM and wait
#   org_setup "HOME NAME POST ROLE"...
#                              an organisation in org/ ($KEYS), each device's
#                              home initialised and enrolled, directory dir.bin
#   device_id NAME             the device id IT's registry lists for NAME
#   join_relay HOME...         enrol each home with the relay on $PORT and
#                              publish its prekeys
#   sync_refuses HOME WHAT     a sync on HOME must take an envelope and refuse
#                              it (no signal, "N refused" with N > 0)
#   harness_done WHAT          the verdict: exit 1 if anything failed
# Writes opw (organisation passphrase) and dpw (device passphrase).
set -u
failures=0
RPID=
RELAY_ID=valise-relay
harness_cleanup() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  rm -rf "$T"
}
harness_init() {
  T=$(mktemp -d "/tmp/valise-$1.XXXXXX")
  trap harness_cleanup EXIT
  cd "$T" || exit 1
  echo "org passphrase 1" >opw
  echo "device passphrase 1" >dpw
  chmod 600 opw dpw # valise warns about a passphrase file others can read
}
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
run() {
  local d=$1; shift
  if ! "$@" >out.txt 2>err.txt; then fail "$d: exit $? ($(cat err.txt))"; return 1; fi
}
V() { "$VALISE" "$@" --passphrase-file dpw; }
relay_identity() {
  local data=$1 id=$2 cert=$3
  [ -f "$data/handshake.key" ] ||
    run "relay handshake key" "$RELAY" --init-handshake-key --data "$data" --out "$data.hspub" || exit 1
  rm -f "$cert"
  run "relay certificate for $id" "$KEYS" relay-cert --dir org --relay-id "$id" \
    --pubkey "$data.hspub" --out "$cert" --passphrase-file opw || exit 1
}
relay_start() {
  local port=$1 data=$2 dir=$3 a; shift 3
  rm -f port
  for a in "$@"; do [ "$a" = --relay-cert ] && break; done
  if [ "${a:-}" != --relay-cert ]; then
    [ -f "$data.rcert" ] || relay_identity "$data" "$RELAY_ID" "$data.rcert"
    set -- --relay-cert "$data.rcert" "$@"
  fi
  "$RELAY" --data "$data" --org-pub org/org.pub --directory "$dir" --listen "127.0.0.1:$port" \
    --port-file port --log-level warn "$@" 2>>relay.log &
  RPID=$!
  for _ in $(seq 200); do [ -s port ] && return 0; sleep 0.025; done
  fail "relay did not start: $(tail -3 relay.log)"; exit 1
}
relay_stop() { kill "$RPID" && wait "$RPID" 2>/dev/null; RPID=; }
org_setup() {
  run "org init" "$KEYS" init --dir org --org Ministry --passphrase-file opw || exit 1
  local d
  for d in "$@"; do
    set -- $d
    run "init $1" V init --home "$1" --name "$2" --out "$1.req" || exit 1
    run "enroll $1" "$KEYS" enroll --dir org --request "$1.req" --post "$3" --role "$4" \
      --out "$1.cert" --passphrase-file opw || exit 1
  done
  run "directory" "$KEYS" directory --dir org --out dir.bin --passphrase-file opw || exit 1
}
device_id() { "$KEYS" list --dir org | awk -v n="$1" '$0 ~ n {print $2}'; }
join_relay() {
  local h
  for h in "$@"; do
    run "valise enroll $h" V enroll --home "$h" --cert "$h.cert" --org-pub org/org.pub \
      --relay "ws://127.0.0.1:$PORT" --relay-id "$RELAY_ID"
    run "$h publishes prekeys" V sync --home "$h" --wait-ms 100
  done
}
sync_refuses() {
  local rc
  V sync --home "$1" --wait-ms 500 >out.txt 2>err.txt
  rc=$?
  [ $rc -lt 128 ] || fail "$1 sync died by signal $((rc - 128)) on $2"
  # It must have been delivered and refused, not just lost on the way.
  grep -qE "[1-9][0-9]* refused" out.txt || fail "$1 did not report $2 refused: $(cat out.txt err.txt)"
}
harness_done() {
  [ "$failures" -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
  echo "$1: all checks passed"
}
