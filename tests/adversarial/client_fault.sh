#!/usr/bin/env bash
# client_fault.sh - issue 6, fault injection on the client's send -> sync ->
# receive path over the REAL relay (tests/fault/faultinject.c, the same
# LD_PRELOAD library as keys_fault.sh).
#
# Three scenarios, each run from a fresh copy of a template (client homes AND
# the relay's data directory, the relay restarted on the same port):
#   send     `valise send --home hq` (queues one message to ambassador@JKT)
#   sync-tx  `valise sync --home hq` with that message queued (sender side)
#   sync-rx  `valise sync --home jkt` with the envelope waiting on the relay
# For each, the N-th allocation, the N-th write or the N-th fsync fails.
# Invariants for every run:
#   - no death by signal, no hang (a 60 s time-out counts as a failure);
#   - on a non-zero exit, exactly one line on stderr;
#   - afterwards, clean syncs (hq, then jkt) succeed, both stores still
#     open (`valise inbox` / `valise outbox` exit 0), and the message is in
#     jkt's inbox exactly as many times as hq's outbox holds it (0 or 1;
#     1 in the sync scenarios): nothing lost, nothing duplicated.
# Default run (about 60 s): N = 1, the middle call and the last call
# of each class; VALISE_LONG=1 (scripts/test.sh --long): every N.
# usage: client_fault.sh VALISE_KEYS VALISE VALISE_RELAY FAULTINJECT_SO
set -u
KEYS=$1 VALISE=$2 RELAY=$3 FI=$4
T=$(mktemp -d /tmp/valise-cfault.XXXXXX)
RPID=
cleanup() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
failures=0 runs=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
echo "org passphrase 1" >opw
echo "device passphrase 1" >dpw && chmod 600 dpw

# start_relay DIR PORT: the relay on DIR's data, 127.0.0.1:PORT (0: any).
start_relay() {
  rm -f "$1/port"
  "$RELAY" --data "$1/data" --org-pub "$1/org/org.pub" --directory "$1/dir.bin" \
    --listen "127.0.0.1:$2" --port-file "$1/port" --relay-cert "$1/relay.cert" \
    --log-level warn 2>>"$T/relay.log" &
  RPID=$!
  for _ in $(seq 200); do [ -s "$1/port" ] && return 0; sleep 0.025; done
  fail "relay did not start: $(tail -3 "$T/relay.log")"
  exit 1
}
stop_relay() {
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null && wait "$RPID" 2>/dev/null
  RPID=
}
# V DIR ARGS...: valise in DIR, no fault.
V() { local d=$1; shift; (cd "$d" && "$VALISE" "$@" --passphrase-file ../dpw); }
must() { local what=$1; shift; "$@" >"$T/o" 2>"$T/e" || { fail "$what: $(cat "$T/e")"; return 1; }; }

# --- template t0: org, hq (duty@HQ) and jkt (ambassador@JKT), prekeys published ---
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
stop_relay
# t1: one message queued in hq's outbox (not yet sent).
cp -a t0 t1
must "send" V t1 send --home hq --to ambassador@JKT --subject F-msg --file ../opw || exit 1
# t2: the message is on the relay, waiting for jkt.
cp -a t1 t2
start_relay t2 "$PORT"
must "hq sends" V t2 sync --home hq --wait-ms 100 || exit 1
stop_relay

# check_after RUN EXPECT_OUTBOX(0|1|any): clean syncs, stores open, exactly-once.
check_after() {
  local d=$1 label=$2 inbox outbox
  for h in hq jkt; do
    must "$label: clean sync $h" V "$d" sync --home $h --wait-ms 200 || return
  done
  must "$label: hq outbox opens" V "$d" outbox --home hq || return
  outbox=$(grep -cE '^[0-9a-f]{32} ' "$T/o")
  must "$label: jkt inbox opens" V "$d" inbox --home jkt || return
  inbox=$(grep -c ' F-msg$' "$T/o")
  [ "$outbox" -le 1 ] || fail "$label: hq outbox holds the message $outbox times"
  [ "$inbox" = "$outbox" ] || fail "$label: jkt inbox holds the message $inbox times, hq outbox $outbox"
  [ "$3" = any ] || [ "$outbox" = "$3" ] || fail "$label: hq outbox holds $outbox messages, expected $3"
}

# scenario NAME TEMPLATE EXPECT HOME-DIR ARGS...: the faulted command runs in a copy.
scenario() {
  local name=$1 tpl=$2 expect=$3; shift 3
  local class var total n rc seen list
  # A dry run counts the calls of each class.
  rm -rf run; cp -a "$tpl" run; rm -f "$T/report"
  start_relay run "$PORT"
  (cd run && env VALISE_FAULT_REPORT="$T/report" LD_PRELOAD="$FI" "$VALISE" "$@" \
     --passphrase-file ../dpw) >/dev/null 2>&1
  stop_relay
  for class in alloc write sync; do
    case $class in alloc) var=VALISE_FAIL_ALLOC ;; write) var=VALISE_FAIL_WRITE ;; sync) var=VALISE_FAIL_SYNC ;; esac
    total=$(sed -n "s/.*$class=\([0-9]*\).*/\1/p" "$T/report" | tail -n 1)
    [ -n "$total" ] || { fail "$name: no fault report"; continue; }
    if [ "${VALISE_LONG:-0}" = 1 ] || [ "$total" -le 3 ]; then
      list=$(seq 1 "$total")
    else
      list="1 $((total / 2)) $total"
    fi
    for n in $list; do
      rm -rf run; cp -a "$tpl" run
      start_relay run "$PORT"
      (cd run && env "$var=$n" LD_PRELOAD="$FI" timeout -s KILL 60 "$VALISE" "$@" \
         --passphrase-file ../dpw) >"$T/fo" 2>"$T/fe"
      rc=$?
      runs=$((runs + 1))
      if [ "$rc" -ge 128 ]; then
        fail "$name: $class #$n/$total: killed by signal $((rc - 128)) $(head -c 200 "$T/fe")"
      elif [ "$rc" -ne 0 ] && [ "$(wc -l <"$T/fe")" -ne 1 ]; then
        fail "$name: $class #$n/$total: stderr is not one line: $(head -c 300 "$T/fe")"
      fi
      check_after run "$name: $class #$n/$total (rc $rc)" "$expect"
      stop_relay
    done
    echo "$name: $class: $total calls, sampled: $(echo $list | wc -w)"
  done
}

scenario send t0 any send --home hq --to ambassador@JKT --subject F-msg --file ../opw
scenario sync-tx t1 1 sync --home hq --wait-ms 100
scenario sync-rx t2 1 sync --home jkt --wait-ms 100

echo "$runs fault-injected runs"
[ $failures -eq 0 ] || { echo "$failures failure(s)" >&2; exit 1; }
echo "client fault injection: all checks passed"
