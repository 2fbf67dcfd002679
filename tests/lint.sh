#!/usr/bin/env bash
# lint.sh - STYLE.md habit 6 and the durability rule, enforced.
# Fails on any banned call (strcpy strcat sprintf vsprintf gets atoi atol
# strtok rand srand) and on any LMDB flag that weakens durability
# (MDB_NOSYNC, MDB_NOMETASYNC, MDB_MAPASYNC, and MDB_WRITEMAP used with them)
# in the project's C sources. It first proves it catches a planted violation.
# usage: lint.sh REPO_ROOT
set -u
root=$1
banned='(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|rand|srand)[[:space:]]*\('
weak='MDB_NOSYNC|MDB_NOMETASYNC|MDB_MAPASYNC'

scan() { # scan FILES...: prints offending lines
  grep -HnE "$banned" "$@" 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)'
  grep -HnE "$weak" "$@" 2>/dev/null | grep -vE '^[^:]+:[0-9]+:[[:space:]]*(/\*|\*)'
}

# Self-test: the lint must catch what it is for.
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
printf 'void f(char *d, const char *s) { strcpy(d, s); }\n' >"$t/a.c"
printf 'int g(void) { return mdb_env_open(e, p, MDB_NOSYNC, 0600); }\n' >"$t/b.c"
printf 'int h(char *b) { return snprintf(b, 4, "x") + my_atoi_checked(b); }\n' >"$t/c.c"
[ "$(scan "$t/a.c" | wc -l)" -eq 1 ] || { echo "lint self-test: strcpy not caught"; exit 1; }
[ "$(scan "$t/b.c" | wc -l)" -eq 1 ] || { echo "lint self-test: MDB_NOSYNC not caught"; exit 1; }
[ "$(scan "$t/c.c" | wc -l)" -eq 0 ] || { echo "lint self-test: false positive"; exit 1; }

mapfile -t files < <(cd "$root" && find . -path ./build\* -prune -o -path ./.git -prune -o \
  \( -name '*.c' -o -name '*.h' \) -print | grep -v '^./tests/lint' | sed "s|^\./|$root/|")
hits=$(scan "${files[@]}")
if [ -n "$hits" ]; then
  echo "banned call or weakened LMDB durability (shared/STYLE.md habit 6):"
  echo "$hits"
  exit 1
fi
echo "lint: ${#files[@]} C files clean"
