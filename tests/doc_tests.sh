#!/usr/bin/env bash
# doc_tests.sh SOURCE_DIR BUILD_DIR - issue 6: "every mitigation links to a
# test that exists". Every ctest name (`area/name`) cited in THREAT_MODEL.md
# and docs/adversarial.md must be registered in this build, and every test
# function cited (`test_...`) must be defined in a file under tests/.
set -u
SRC=$1 BUILD=$2
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
registered=$(ctest --test-dir "$BUILD" -N | sed -n 's/.*Test *#[0-9]*: //p')
[ -n "$registered" ] || { echo "FAIL: no tests registered in $BUILD" >&2; exit 1; }
docs="$SRC/THREAT_MODEL.md $SRC/docs/adversarial.md"
# `area/name` in backticks, areas as in tests/*.cmake; fuzz_replay_<name> cited as a pattern.
names=$(grep -ohE '`(unit|relay|client|audit|adversarial|fault|cli|lint|bench|desk)/[a-z0-9_<>]+`' $docs | tr -d '`' | sort -u)
n=0
for t in $names; do
  n=$((n + 1))
  case $t in *'<'*) pat=${t%%<*}; echo "$registered" | grep -q "^$pat" || fail "no test matching $t" ;;
  *) echo "$registered" | grep -qx "$t" || fail "cited test $t is not registered" ;;
  esac
done
f=0
for fn in $(grep -ohE '\btest_[a-z0-9_]+\b' $docs | sort -u); do
  f=$((f + 1))
  # a ctest binary name (unit/test_x) or a function defined in a test source
  echo "$registered" | grep -q "/$fn\$" && continue
  grep -rqE "^(static )?void $fn\(" "$SRC/tests" || fail "cited test function $fn is defined nowhere under tests/"
done
echo "$n test names and $f test functions cited; $failures missing"
[ $failures -eq 0 ]
