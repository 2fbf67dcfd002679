#!/usr/bin/env bash
# relay_fault.sh - issue 6, fault injection on the relay's authenticate ->
# store -> deliver path. valise-relay runs under tests/fault/faultinject.c
# armed only after start-up (VALISE_FAIL_AFTER_MS), so the N-th allocation,
# write or fsync that serving the traffic needs fails. The traffic is the
# real client: hq syncs (authenticate, fetch jkt's bundle, submit one
# envelope), then jkt syncs (authenticate, delivery, acknowledgement).
# Invariants for every N:
#   - the relay is not killed by a signal (the faulted process either keeps
#     serving or exits by itself with a status and a log line);
#   - after a clean restart on the same data, clean syncs deliver the message
#     to jkt exactly once, and hq's outbox shows it accepted (or delivered /
#     read): an acknowledged envelope is never lost, none is duplicated, and
#     the relay's LMDB still opens.
# Default run (about 60 s): N = 1, the middle and the last call of each class;
# VALISE_LONG=1 (scripts/test.sh --long): every N.
# usage: relay_fault.sh VALISE_KEYS VALISE VALISE_RELAY FAULTINJECT_SO
set -u
KEYS=$1 VALISE=$2 RELAY=$3 FI=$4
ARM_MS=1000 # start-up of the relay is over well before this
T=$(mktemp -d /tmp/valise-rfault.XXXXXX)
RPID=
cleanup() {
  [ -n "$RPID" ] && kill -KILL "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
failures=0 runs=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
echo "org passphrase 1" >opw
echo "device passphrase 1" >dpw && chmod 600 dpw

# start_relay DIR PORT [ENV...]: the relay on DIR's data (ENV: fault settings).
start_relay() {
  local d=$1 p=$2; shift 2
  rm -f "$d/port"
  env "$@" "$RELAY" --data "$d/data" --org-pub "$d/org/org.pub" --directory "$d/dir.bin" \
    --listen "127.0.0.1:$p" --port-file "$d/port" --relay-cert "$d/relay.cert" \
    --log-level warn 2>>"$T/relay.log" &
  RPID=$!
  for _ in $(seq 200); do [ -s "$d/port" ] && return 0; sleep 0.025; done
  fail "relay did not start: $(tail -3 "$T/relay.log")"
  exit 1
}
# stop_relay: SIGTERM; the relay's exit status (143 if killed by our SIGTERM).
stop_relay() {
  local rc=0
  if [ -n "$RPID" ]; then
    kill "$RPID" 2>/dev/null
    wait "$RPID"; rc=$?
  fi
  RPID=
  return $rc
}
V() { local d=$1; shift; (cd "$d" && "$VALISE" "$@" --passphrase-file ../dpw); }
must() { local what=$1; shift; "$@" >"$T/o" 2>"$T/e" || { fail "$what: $(cat "$T/e")"; return 1; }; }

# --- template: hq and jkt enrolled, jkt's prekeys published, one message queued at hq ---
mkdir t0
( cd t0
  "$KEYS" init --dir org --org Ministry --passphrase-file ../opw &&
  "$VALISE" init --home hq --name Anna --out hq.req --passphrase-file ../dpw &&
  "$VALISE" init --home jkt --name Budi --out jkt.req --passphrase-file ../dpw &&
  "$KEYS" enroll --dir org --request hq.req --post HQ --role duty --out hq.cert --passphrase-file ../opw &&
  "$KEYS" enroll --dir org --request jkt.req --post JKT --role ambassador --out jkt.cert --passphrase-file ../opw &&
  "$KEYS" directory --dir org --out dir.bin --passphrase-file ../opw &&
  "$RELAY" --init-handshake-key --data data --out relay.hspub &&
  "$KEYS" relay-cert --dir org --relay-id valise-relay --pubkey relay.hspub --out relay.cert \
    --passphrase-file ../opw ) >/dev/null || { echo "template failed"; exit 1; }
start_relay t0 0
PORT=$(cat t0/port)
URL="ws://127.0.0.1:$PORT"
must "enroll hq" V t0 enroll --home hq --cert hq.cert --org-pub org/org.pub --relay "$URL" --relay-id valise-relay || exit 1
must "enroll jkt" V t0 enroll --home jkt --cert jkt.cert --org-pub org/org.pub --relay "$URL" --relay-id valise-relay || exit 1
must "jkt prekeys" V t0 sync --home jkt --wait-ms 100 || exit 1
must "hq directory" V t0 sync --home hq --wait-ms 100 || exit 1
must "send" V t0 send --home hq --to ambassador@JKT --subject F-msg --file ../opw || exit 1
stop_relay

# drive DIR: the traffic the faulted relay serves (clients may fail: not checked here).
drive() {
  V "$1" sync --home hq --wait-ms 200 >/dev/null 2>&1
  V "$1" sync --home jkt --wait-ms 200 >/dev/null 2>&1
}
# wait_armed: the injector counts only after ARM_MS from the relay's first call.
wait_armed() { sleep $(awk "BEGIN { print $ARM_MS / 1000 + 0.1 }"); }

# Dry run: how many calls of each class serving the traffic takes.
rm -rf run; cp -a t0 run
start_relay run "$PORT" VALISE_FAULT_REPORT="$T/report" VALISE_FAIL_AFTER_MS=$ARM_MS LD_PRELOAD="$FI"
wait_armed
drive run
stop_relay
for class in alloc write sync; do
  case $class in alloc) var=VALISE_FAIL_ALLOC ;; write) var=VALISE_FAIL_WRITE ;; sync) var=VALISE_FAIL_SYNC ;; esac
  total=$(sed -n "s/.*$class=\([0-9]*\).*/\1/p" "$T/report" | tail -n 1)
  [ -n "$total" ] && [ "$total" -gt 0 ] || { fail "no $class calls counted: $(cat "$T/report")"; continue; }
  if [ "${VALISE_LONG:-0}" = 1 ] || [ "$total" -le 3 ]; then
    list=$(seq 1 "$total")
  else
    list="1 $((total / 2)) $total"
  fi
  for n in $list; do
    rm -rf run; cp -a t0 run
    : >"$T/relay.log"
    start_relay run "$PORT" "$var=$n" VALISE_FAIL_AFTER_MS=$ARM_MS LD_PRELOAD="$FI"
    wait_armed
    drive run
    runs=$((runs + 1))
    label="relay $class #$n/$total"
    if kill -0 "$RPID" 2>/dev/null; then
      stop_relay; rc=$?
      [ $rc -eq 0 ] || [ $rc -eq 143 ] || fail "$label: exit status $rc on SIGTERM"
    else
      wait "$RPID"; rc=$?; RPID=
      if [ $rc -ge 128 ]; then
        fail "$label: relay killed by signal $((rc - 128)): $(tail -2 "$T/relay.log")"
      else
        echo "$label: relay exited by itself (status $rc): $(tail -1 "$T/relay.log")"
      fi
    fi
    # A clean restart on the same data: nothing acknowledged is lost or doubled.
    start_relay run "$PORT"
    for h in hq jkt; do
      must "$label: clean sync $h" V run sync --home $h --wait-ms 200 || break
    done
    if must "$label: jkt inbox opens" V run inbox --home jkt; then
      c=$(grep -c ' F-msg$' "$T/o")
      [ "$c" -eq 1 ] || fail "$label: jkt inbox holds the message $c times (expected once)"
    fi
    if must "$label: hq outbox opens" V run outbox --home hq; then
      grep -qE 'accepted by relay|delivered|read' "$T/o" || fail "$label: not accepted after retry: $(cat "$T/o")"
    fi
    stop_relay
  done
  echo "relay $class: $total calls, sampled: $(echo $list | wc -w)"
done

echo "$runs fault-injected relay runs"
[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "relay fault injection: all checks passed"
