#!/usr/bin/env bash
# test.sh [--long] - the whole suite: installs what is missing, builds, runs
# every test through ctest in a release build and again under ASan+UBSan,
# then runs every libFuzzer harness for a bounded time on its committed corpus.
# The ctest runs include the desk in a real browser (desk/browser: Playwright
# and Debian's chromium, installed by scripts/deps.sh).
# --long: the slow rounds (longer fuzzing; more crash-recovery rounds; the tests
# labelled "long"; the "slow" ones under ASan too).
set -euo pipefail
cd "$(dirname "$0")/.."
long=0
[ "${1:-}" = "--long" ] && long=1
export VALISE_LONG=$long

scripts/deps.sh

# Tests labelled "long" (a 9,600 bit/s directory download) run only with --long.
skip_long=(-LE long)
[ $long -eq 1 ] && skip_long=()

echo "== release build and tests"
scripts/build.sh release
# Tests labelled "link" go through the link emulator: minutes of an emulated
# 9,600 bit/s or 256 kbit/s link, little CPU. They run beside the others
# (their own ctest, in the background) rather than holding a slot each.
link_log=build/release/link-tests.log
link_only=(-L link)
[ $long -eq 1 ] || link_only+=(-LE long)
ctest --test-dir build/release --output-on-failure -j6 --timeout 5400 "${link_only[@]}" \
  >"$link_log" 2>&1 &
link_pid=$!
trap 'kill "$link_pid" 2>/dev/null || true' EXIT
not_link=(-LE '^(link|long)$')
[ $long -eq 1 ] && not_link=(-LE '^link$')
ctest --test-dir build/release --output-on-failure -j2 --timeout 600 "${not_link[@]}"
if ! wait "$link_pid"; then
  cat "$link_log"
  echo "== link-emulated tests failed (above)"
  exit 1
fi
grep -E "tests passed|Total Test time" "$link_log"

echo "== ASan + UBSan build and tests"
scripts/build.sh asan
# Tests labelled "slow" (the bad-link emulation, the browser) ran in the release pass;
# under ASan only with --long, to keep the default run within its time budget.
skip_slow=(-LE slow)
[ $long -eq 1 ] && skip_slow=()
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j2 --timeout 900 "${skip_slow[@]}"

echo "== fuzzing (libFuzzer, ASan+UBSan)"
scripts/build.sh fuzz
secs=${FUZZ_SECONDS:-10}
[ $long -eq 1 ] && secs=${FUZZ_SECONDS:-300}
for f in build/fuzz/fuzz/fuzz_*; do
  [ -x "$f" ] || continue
  name=$(basename "$f"); name=${name#fuzz_}
  corpus=fuzz/corpus/$name
  work=$(mktemp -d)
  [ -d "$corpus" ] && cp -r "$corpus"/. "$work"/
  echo "fuzz_$name: ${secs}s"
  "$f" -max_total_time="$secs" -print_final_stats=0 -artifact_prefix="build/fuzz/crash-$name-" \
       "$work" >"build/fuzz/$name.log" 2>&1 || { tail -40 "build/fuzz/$name.log"; exit 1; }
  rm -rf "$work"
done
echo "== all tests passed"
