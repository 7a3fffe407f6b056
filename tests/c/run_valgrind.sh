#!/usr/bin/env bash
# Run the C client tests (ctest label "library": c_kv, c_streams, ...) under valgrind memcheck.
#
#   bash tests/c/run_valgrind.sh [--build DIR] [--tests REGEX] [--logs DIR] [--junit FILE]
#
#   --build DIR    a normal (not sanitizer) build with the tests built (default build/;
#                  relative paths are taken from the repository root)
#   --tests REGEX  ctest -R filter (default: every c_* test but c_install, which only
#                  builds and installs, and c_auth_token_ttl*, which mostly wait for tokens
#                  to expire and runs under ASan+LSan in the sanitizer stage; a REGEX
#                  given here may select it)
#   --logs DIR     keep valgrind's logs there (default: a temporary dir, removed on success)
#   --junit FILE   ctest's JUnit report (for scripts/test.sh's totals)
#
# Each test program (not etcd, not the shell around it) runs as
#   valgrind --error-exitcode=1 --leak-check=full --suppressions=tests/valgrind.supp ...
# through run_with_etcd.sh's ETCDC_TEST_WRAP hook. Any memcheck error or definite/indirect/
# possible leak that tests/valgrind.supp does not cover (it covers third-party library
# internals only: gRPC, abseil, OpenSSL global state) fails the test; the logs of failed
# runs are printed. Takes a minute or two: valgrind is ~20-50x slower, and the tests wait
# on real etcd processes (four run at a time, each with its own etcd: most of their time is
# waiting, 63 s of CPU in 147 s one at a time).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=build
TESTS='^c_'
EXCLUDE='^(c_install|c_auth_token_ttl.*|c_watch_fragments)$'
LOGS=""
JUNIT=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --tests) TESTS=$2; EXCLUDE='^c_install$'; shift 2 ;;
    --logs) LOGS=$2; shift 2 ;;
    --junit) JUNIT=(--output-junit "$2"); shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "run_valgrind.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
command -v valgrind >/dev/null || { echo "run_valgrind.sh: valgrind not installed (scripts/install-deps.sh)" >&2; exit 1; }
if grep -q 'fsanitize' "$BUILD/CMakeCache.txt" 2>/dev/null; then
  echo "run_valgrind.sh: $BUILD is a sanitizer build; valgrind needs a plain one" >&2
  exit 2
fi
keep_logs=1
if [[ -z $LOGS ]]; then
  LOGS=$(mktemp -d "${TMPDIR:-/tmp}/etcdfs-valgrind.XXXXXX")
  keep_logs=0
fi
mkdir -p "$LOGS"
rm -f "$LOGS"/vg.*.log

# --log-file with %p: one log per process; a test program that runs several processes (none
# does today) still gets each one checked. --child-silent-after-fork: gRPC forks nothing, but
# a library that does must not mix output.
export ETCDC_TEST_WRAP="valgrind --error-exitcode=99 --leak-check=full \
--errors-for-leak-kinds=definite,indirect,possible --show-leak-kinds=definite,indirect,possible \
--suppressions=$ROOT/tests/valgrind.supp --num-callers=40 --child-silent-after-fork=yes \
--log-file=$LOGS/vg.%p.log"
# Four programs at a time: under valgrind too they mostly wait on etcd (44 s on 2 cores,
# against 68 s two at a time); ETCDFS_VALGRIND_JOBS=N to change it.
JOBS=${ETCDFS_VALGRIND_JOBS:-4}
rc=0
ctest --test-dir "$BUILD" -R "$TESTS" -E "$EXCLUDE" --output-on-failure --timeout 900 --parallel "$JOBS" \
  "${JUNIT[@]}" || rc=$?

# ctest shows failures; add the valgrind reports that have errors (also of tests that passed
# in spite of them, which cannot happen with --error-exitcode, but say so if it does).
bad=0
for f in "$LOGS"/vg.*.log; do
  [[ -f $f ]] || continue
  if ! grep -q 'ERROR SUMMARY: 0 errors' "$f"; then
    bad=1
    echo "==== valgrind report with errors: $f" >&2
    cat "$f" >&2
  fi
done
checked=$(find "$LOGS" -name 'vg.*.log' | wc -l)
if [[ $rc -ne 0 || $bad -ne 0 ]]; then
  echo "valgrind: FAILED; $checked process(es) checked, logs kept in $LOGS" >&2
  exit 1
fi
if [[ $keep_logs == 1 ]]; then
  echo "valgrind: clean; $checked process(es) checked, logs in $LOGS" >&2
else
  echo "valgrind: clean; $checked process(es) checked" >&2
  rm -rf "$LOGS"
fi
