#!/usr/bin/env bash
# bench.sh [--full] [--no-mosquitto] [--no-profile] [--no-floor] [--overhead-only]
#          [-- extra valise-bench flags]
#
# Builds valise-relay and valise-bench (Release), runs the floor (a bare
# libwebsockets + LMDB relay, ../shared/tools/lwsfloor or $LWSFLOOR_DIR: its
# `tuned | lmdb durable+delete | 100 pairs` case, copied to a temporary folder
# and built there), runs every scenario against the relay (100 sender/recipient
# pairs, as the floor) and, side by side, against Eclipse Mosquitto (QoS 1,
# persistent sessions, persistence on), profiles the relay under load with
# perf, and rewrites the generated part of BENCHMARKS.md (between the
# bench:begin and bench:end markers; the analysis around it is kept).
#
# The default sizes keep the whole run under about 5 minutes on 2 cores
# (backlog 200,000); --full uses the DESIGN.md sizes (backlog 1,000,000).
# Build directory: $BENCH_BUILD_DIR (default build/release).
# Every run also measures the bytes on a post's link per message, receipt
# and sync (tests/client/bench_overhead.c through the link emulator, about
# a minute) and rewrites the part of BENCHMARKS.md between the
# overhead:begin and overhead:end markers; --overhead-only does only that.
# Not a test: nothing here passes or fails on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
cmdline="scripts/bench.sh${*:+ $*}"
build=${BENCH_BUILD_DIR:-build/release}
full=0 mosq=1 profile=1 floor=1 overhead_only=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --full) full=1 ;;
    --no-mosquitto) mosq=0 ;;
    --no-profile) profile=0 ;;
    --no-floor) floor=0 ;;
    --overhead-only) overhead_only=1 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# The code measured: a commit id, "-dirty" when relay/, lib/ or bench/ differ from it.
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD -- relay lib bench 2>/dev/null || commit="$commit-dirty"
else
  commit=${BENCH_COMMIT:-unknown}
fi

# Bytes on a post's link (issue 13 item 3): a table between the overhead markers.
overhead() {
  local oc table
  if oc=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD -- relay lib client tests/client/bench_overhead.c 2>/dev/null || oc="$oc-dirty"
  else
    oc=${BENCH_COMMIT:-unknown}
  fi
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$(nproc)" --target valise-relay client_bench_overhead >/dev/null
  echo "bench.sh: measuring bytes on a post's link (about a minute)" >&2
  table=$(mktemp /tmp/valise-overhead.XXXXXX)
  "$root/$build/tests/client_bench_overhead" >"$table"
  python3 - "$root/BENCHMARKS.md" "$table" "$oc" "$(date -u +%Y-%m-%dT%H:%MZ)" <<'PY'
import sys
path, table, commit, date = sys.argv[1:5]
doc = open(path).read()
begin, end = "<!-- overhead:begin", "<!-- overhead:end -->"
i, j = doc.index(begin), doc.index(end)
head = doc[i:doc.index("\n", i) + 1]
body = ("\nMeasured by `scripts/bench.sh` (`tests/client/bench_overhead.c`) at %s, %s.\n\n"
        % (commit, date)) + open(table).read() + "\n"
open(path, "w").write(doc[:i] + head + body + doc[j:])
PY
  rm -f "$table"
  echo "bench.sh: wrote the overhead table into BENCHMARKS.md" >&2
}
if [ $overhead_only -eq 1 ]; then
  overhead
  exit 0
fi

scripts/deps.sh --bench
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target valise-relay valise-bench >/dev/null
relay=$root/$build/relay/valise-relay
bench=$root/$build/bench/valise-bench

backend=both
if [ $mosq -eq 1 ] && ! command -v mosquitto >/dev/null && [ ! -x /usr/sbin/mosquitto ]; then
  echo "bench.sh: mosquitto is not installed (apt-get install mosquitto libmosquitto-dev);" \
       "running Valise alone" >&2
  mosq=0
fi
[ $mosq -eq 1 ] || backend=valise
mosq_bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)

if [ $full -eq 1 ]; then
  sizes=(--backlog 1000000 --conns 10000 --duration 10 --warmup 2 --pairs 100)
  floor_secs=10
else
  sizes=(--backlog 200000 --conns 10000 --duration 5 --warmup 1 --pairs 100)
  floor_secs=5
fi

out=$(mktemp -d /tmp/valise-benchrun.XXXXXX)
floor_pid=""
cleanup() {
  [ -n "$floor_pid" ] && kill "$floor_pid" 2>/dev/null && wait "$floor_pid" 2>/dev/null
  rm -rf "$out"
}
trap cleanup EXIT
started=$(date -u +%Y-%m-%dT%H:%MZ)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

# The floor, in the same run (DESIGN.md: Valise >= 0.5 x this figure). Its
# folder is read-only where the tests run: copied to $out and built there.
# Whatever goes wrong, the run goes on and the report says why.
# ../shared from the repository root; ../../shared from a worktree under wt/.
floor_dir=${LWSFLOOR_DIR:-$root/../shared/tools/lwsfloor}
if [ -z "${LWSFLOOR_DIR:-}" ] && [ ! -d "$floor_dir" ] && [ -d "$root/../../shared/tools/lwsfloor" ]; then
  floor_dir=$root/../../shared/tools/lwsfloor
fi
: >"$out/floor.txt"
if [ $floor -eq 0 ]; then
  echo "FLOOR-SKIPPED not run (--no-floor)" >"$out/floor.txt"
elif [ ! -f "$floor_dir/floor-relay.c" ] || [ ! -f "$floor_dir/floor-load.c" ]; then
  echo "bench.sh: the floor is missing ($floor_dir): running without it" >&2
  echo "FLOOR-SKIPPED the floor folder is missing ($floor_dir; set LWSFLOOR_DIR)" >"$out/floor.txt"
else
  echo "bench.sh: the floor (tuned, lmdb durable+delete, 100 pairs, ${floor_secs} s)" >&2
  mkdir -p "$out/floor" "$out/floor-db"
  cp "$floor_dir"/*.c "$floor_dir"/*.h "$floor_dir"/Makefile "$out/floor/"
  if ! make -s -C "$out/floor" floor-relay floor-load \
       CFLAGS="-O2 -g -Wall -Wextra -Wno-unused-parameter -std=gnu11" >"$out/floor-build.log" 2>&1; then
    echo "bench.sh: the floor did not build (see below): running without it" >&2
    tail -5 "$out/floor-build.log" >&2
    echo "FLOOR-SKIPPED the floor did not build ($(tail -1 "$out/floor-build.log"))" >"$out/floor.txt"
  else
    floor_port=""
    for _ in $(seq 20); do # a free loopback port: other engineers may run the floor too
      p=$((20000 + RANDOM % 20000))
      if ! (exec 3<>/dev/tcp/127.0.0.1/"$p") 2>/dev/null; then floor_port=$p; break; fi
    done
    ( ulimit -n "$(ulimit -Hn)" 2>/dev/null
      exec "$out/floor/floor-relay" --port "${floor_port:-17681}" --rxbuf 65536 --write coalesce \
        --lmdb "$out/floor-db" --lmdb-delete ) 2>"$out/floor-relay.log" &
    floor_pid=$!
    for _ in $(seq 50); do
      (exec 3<>/dev/tcp/127.0.0.1/"${floor_port:-17681}") 2>/dev/null && break
      sleep 0.1
    done
    res=$(timeout $((floor_secs + 60)) "$out/floor/floor-load" --port "${floor_port:-17681}" \
            --relay-pid "$floor_pid" --pairs 100 --window 64 --secs "$floor_secs" --warm 1 \
            2>>"$out/floor-load.err" | grep '^RESULT' || true)
    sleep 0.2
    kill "$floor_pid" 2>/dev/null; wait "$floor_pid" 2>/dev/null || true
    floor_pid=""
    if [ -n "$res" ]; then
      echo "FLOOR $res" >"$out/floor.txt"
      grep RELAY-WINDOW "$out/floor-relay.log" | tail -1 | sed 's/^/FLOOR-RELAY /' >>"$out/floor.txt" || true
      echo "  floor: $(echo "$res" | tr ' ' '\n' | grep '^msgs_per_s=') (tuned, lmdb durable+delete, 100 pairs)"
    else
      echo "FLOOR-SKIPPED the floor's load generator printed no result ($(tail -1 "$out/floor-load.err" 2>/dev/null))" >"$out/floor.txt"
    fi
  fi
fi

echo "bench.sh: running (log: $out/bench.log)" >&2
"$bench" --backend "$backend" --relay "$relay" --mosquitto "$mosq_bin" "${sizes[@]}" \
  ${extra[@]+"${extra[@]}"} | tee "$out/bench.log"

# Profile: the relay at maximum rate, sampled by perf (cpu-clock works in VMs
# without hardware counters); callgrind is the fallback where perf cannot attach.
: >"$out/profile.txt"
if [ $profile -eq 1 ] && command -v perf >/dev/null &&
   perf record -e cpu-clock -o "$out/probe.data" true >/dev/null 2>&1; then
  echo "bench.sh: profiling the relay under load (perf, 8 s)" >&2
  "$bench" --backend valise --relay "$relay" --scenarios max --warmup 3 --duration 10 \
    --conns 256 >"$out/profile-run.log" 2>&1 &
  bpid=$!
  rpid=""
  for _ in $(seq 100); do
    rpid=$(pgrep -P "$bpid" -x valise-relay || true)
    [ -n "$rpid" ] && break
    sleep 0.1
  done
  if [ -n "$rpid" ]; then
    set +e +o pipefail # a report with fewer lines than asked for is no failure
    sleep 3
    perf record -e cpu-clock -F 1999 -g -p "$rpid" -o "$out/perf.data" -- sleep 8 >/dev/null 2>&1 || true
    {
      echo "perf record -e cpu-clock -F 1999 -g -p <relay> -- sleep 8, during the max scenario"
      echo
      echo "By shared object (self time):"
      perf report -i "$out/perf.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | head -8
      echo
      echo "Top functions (self time; hex addresses are static functions of stripped libraries):"
      perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -25
      echo
      echo "Where the time goes (inclusive, named frames only):"
      perf report -i "$out/perf.data" --children --sort symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | grep -vE '\] (0x|0000)' |
        sed -E 's/[[:space:]]+-[[:space:]]+-[[:space:]]*$//' | head -30
    } >"$out/profile.txt"
    set -e -o pipefail
  fi
  wait "$bpid" || true
  grep RESULT "$out/profile-run.log" | sed 's/^/  /' >>"$out/profile.txt" || true
elif [ $profile -eq 1 ]; then
  echo "(perf is not usable here: run the relay under valgrind --tool=callgrind on a short run)" \
    >"$out/profile.txt"
fi

machine_cpu=$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
python3 "$root/bench/report.py" \
  --log "$out/bench.log" --profile "$out/profile.txt" --floor "$out/floor.txt" --out "$root/BENCHMARKS.md" \
  --command "$cmdline" --commit "$commit" --date "$started" --nproc "$(nproc)" --cpu "$machine_cpu" \
  --kernel "$(uname -sr)" --load "$load_before / $load_after" --lmdb "$(pkg-config --modversion lmdb 2>/dev/null || echo '?')" \
  --lws "$(pkg-config --modversion libwebsockets 2>/dev/null || echo '?')" \
  --mosquitto "$(if [ $mosq -eq 1 ]; then { "$mosq_bin" -h 2>/dev/null || true; } | head -1 |
                 sed 's/mosquitto version //'; else echo 'not run'; fi)"
echo "bench.sh: wrote BENCHMARKS.md" >&2
overhead
