#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each one for a bounded time on its seed corpus.
#
#   bash tests/fuzz/run_fuzzers.sh [--seconds N] [--build DIR] [--junit FILE] [TARGET...]
#
#   --seconds N   fuzzing time per target (default 20)
#   --build DIR   clang build dir (default build-fuzz/ in the repository; relative paths are
#                 taken from the repository root)
#   --junit FILE  also write one JUnit test case per target (for scripts/test.sh's totals)
#   TARGET        fuzz_names fuzz_attrs fuzz_crypt fuzz_response fuzz_watch (default: all)
#
# Targets run as many at a time as there are cores (ETCDFS_FUZZ_JOBS=N to change that).
#
# The committed corpus (tests/fuzz/corpus/<target>/) is read, never written: new inputs go to
# a temporary directory that is removed afterwards. A crash, leak, sanitizer report, timeout or
# violated property makes the script exit 1; the reproducer is kept in DIR/fuzz-artifacts/
# and printed (base64) so that a CI log is enough to reproduce it:
#   base64 -d >crash <<<'...'; DIR/tests/fuzz/<target> crash
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SECONDS_PER=20
BUILD=build-fuzz
JUNIT=""
TARGETS=()
while [[ $# -gt 0 ]]; do
  case $1 in
    --seconds) SECONDS_PER=$2; shift 2 ;;
    --build) BUILD=$2; shift 2 ;;
    --junit) JUNIT=$2; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    -*) echo "run_fuzzers.sh: unknown option $1" >&2; exit 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(fuzz_names fuzz_attrs fuzz_crypt fuzz_response fuzz_watch)
[[ $BUILD = /* ]] || BUILD=$ROOT/$BUILD
CC_BIN=${ETCDFS_FUZZ_CC:-clang}
command -v "$CC_BIN" >/dev/null || { echo "run_fuzzers.sh: $CC_BIN not found (scripts/install-deps.sh installs clang)" >&2; exit 1; }

echo "fuzz: configuring $BUILD (clang, -DETCDFS_FUZZ=ON)" >&2
CC=$CC_BIN cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DETCDFS_FUZZ=ON >/dev/null
echo "fuzz: building ${TARGETS[*]}" >&2
cmake --build "$BUILD" -j"${ETCDFS_BUILD_JOBS:-$(nproc)}" --target "${TARGETS[@]}"

ARTIFACTS=$BUILD/fuzz-artifacts
mkdir -p "$ARTIFACTS"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/etcdfs-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Leak checking is on (libFuzzer's default); halt on the first UBSan report.
export ASAN_OPTIONS=${ETCDFS_FUZZ_ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# One target: its log, summary line and JUnit case go to $WORK/<target>.*; the exit status
# says whether it failed. Runs in the background, so it prints nothing but its failure.
run_target() {
  local t=$1 rc=0
  local bin=$BUILD/tests/fuzz/$t corpus=$ROOT/tests/fuzz/corpus/$t new=$WORK/$t log=$WORK/$t.log
  mkdir -p "$new"
  "$bin" -max_total_time="$SECONDS_PER" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$ARTIFACTS/$t-" "$new" "$corpus" >"$log" 2>&1 || rc=$?
  local execs rate cov status case
  execs=$(awk '/stat::number_of_executed_units/ {print $NF}' "$log")
  rate=$(awk '/stat::average_exec_per_sec/ {print $NF}' "$log")
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n1 || true)
  if [[ $rc -eq 0 ]]; then
    status=ok
    case="<testcase classname=\"fuzz\" name=\"$t\" time=\"$SECONDS_PER\"/>"
  else
    status="FAILED (exit $rc)"
    case="<testcase classname=\"fuzz\" name=\"$t\" time=\"$SECONDS_PER\"><failure message=\"fuzzer exit $rc\"/></testcase>"
    {
      echo "fuzz: $t FAILED; the end of its log:"
      grep -v '^#[0-9]' "$log" | tail -n 60 || true
      for a in "$ARTIFACTS/$t"-*; do
        [[ -f $a ]] || continue
        echo "fuzz: reproducer $a (base64): $(base64 -w0 "$a")"
      done
    } >"$WORK/$t.failure"
  fi
  printf '  %-14s %-18s %10s execs %8s exec/s  %s\n' "$t" "$status" "${execs:-?}" "${rate:-?}" \
    "$cov" >"$WORK/$t.summary"
  echo "$case" >"$WORK/$t.junit"
  return $rc
}

# As many targets at once as there are cores: each fuzzer is one busy thread, and nothing else
# runs beside this stage.
JOBS=${ETCDFS_FUZZ_JOBS:-$(nproc)}
for t in "${TARGETS[@]}"; do
  while [[ $(jobs -rp | wc -l) -ge $JOBS ]]; do wait -n || true; done
  echo "fuzz: $t for ${SECONDS_PER}s (seeds: $(find "$ROOT/tests/fuzz/corpus/$t" -type f | wc -l))" >&2
  run_target "$t" &
done
wait || true
# Whether a target failed is read from its files (wait -n already took some exit statuses).
failed=0
summary=()
junit_cases=()
for t in "${TARGETS[@]}"; do
  if [[ -f $WORK/$t.failure ]]; then
    cat "$WORK/$t.failure" >&2
    failed=1
  fi
  if [[ ! -f $WORK/$t.summary || ! -f $WORK/$t.junit ]]; then
    echo "fuzz: $t left no result" >&2
    failed=1
    continue
  fi
  summary+=("$(cat "$WORK/$t.summary")")
  junit_cases+=("$(cat "$WORK/$t.junit")")
done

echo "fuzz summary (${SECONDS_PER}s per target):"
printf '%s\n' "${summary[@]}"
if [[ -n $JUNIT ]]; then
  {
    echo '<?xml version="1.0" encoding="UTF-8"?>'
    echo "<testsuite name=\"fuzz\" tests=\"${#TARGETS[@]}\">"
    printf '%s\n' "${junit_cases[@]}"
    echo '</testsuite>'
  } >"$JUNIT"
fi
exit $failed
