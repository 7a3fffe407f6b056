#!/usr/bin/env bash
# Everything CI checks, in one command (run as root on Debian 12):
#
#   bash scripts/test.sh      (as root; or with sudo)
#
# Stages: install deps; fetch etcd 3.5 (scripts/fetch-etcd.sh); build build/ and, with
# -DETCDFS_SANITIZE=ON, build-asan/; ctest in both; the pytest integration suite against
# build/, then again against build-asan/ (there only the tests that use something from the
# build: the others ran already and would learn nothing new). Two etcd versions: the build/
# runs (and valgrind) use Debian 12's etcd 3.4, the build-asan/ runs etcd 3.5 from Debian 13,
# so every C test and every integration test that uses the build runs against both; the benchmark harness in quick mode (bench/run_fs_bench.sh --quick, about a minute);
# the libFuzzer targets for 20 s each (tests/fuzz/run_fuzzers.sh, build-fuzz/, clang); the C
# client tests under valgrind (tests/c/run_valgrind.sh).
# Exits non-zero if any stage fails; later test stages still run after a failed
# test stage, so one run shows every failure.
#
# Environment:
#   ETCDFS_TEST_QUICK=1    skip the sanitizer build, its test runs, the fuzzers and valgrind
#                          (quick local runs; CI runs the full thing)
#   ETCDFS_PYTEST_ARGS     extra pytest arguments, e.g. "-k mount -x" (word-split)
#   ETCDFS_CTEST_ARGS      extra ctest arguments, e.g. "-R unit_" (word-split)
#   ETCDFS_CMAKE_ARGS      extra cmake arguments for both builds (word-split), e.g.
#                          "-DCMAKE_BUILD_TYPE=Debug"; by default both builds are
#                          RelWithDebInfo, as in CI, whatever a build dir was configured with
#   ETCDFS_SKIP_INSTALL=1  do not run scripts/install-deps.sh
#   ETCDFS_ETCD_35=PATH    the etcd 3.5 binary for the build-asan/ runs (default: fetched by
#                          scripts/fetch-etcd.sh into .cache/); with ETCDFS_TEST_QUICK=1 not used
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=/usr/bin/python3  # Debian's: it has pytest and etcd3 (the python3 on PATH may not)
QUICK=${ETCDFS_TEST_QUICK:-0}
read -r -a PYTEST_EXTRA <<<"${ETCDFS_PYTEST_ARGS:-}"
read -r -a CTEST_EXTRA <<<"${ETCDFS_CTEST_ARGS:-}"
read -r -a CMAKE_EXTRA <<<"${ETCDFS_CMAKE_ARGS:-}"
# Pin the build type: a build dir configured earlier with another one (say Debug, whose -O0
# hides -O2-only warnings that -Werror turns into errors) must not make this run differ from
# CI's fresh clone. ETCDFS_CMAKE_ARGS can still override it.
CMAKE_EXTRA=("-DCMAKE_BUILD_TYPE=RelWithDebInfo" "${CMAKE_EXTRA[@]}")
RESULTS=$(mktemp -d "${TMPDIR:-/tmp}/etcdfs-test-results.XXXXXX")
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the repo
export CI=${CI:-}

SANITIZER_ENV=(
  "ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
  "UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
)
# Leaks inside libraries' global state (gRPC) that are not ours to fix go in tests/lsan.supp.
if [[ -z ${LSAN_OPTIONS:-} && -f $ROOT/tests/lsan.supp ]]; then
  SANITIZER_ENV+=("LSAN_OPTIONS=suppressions=$ROOT/tests/lsan.supp:print_suppressions=0")
elif [[ -n ${LSAN_OPTIONS:-} ]]; then
  SANITIZER_ENV+=("LSAN_OPTIONS=$LSAN_OPTIONS")
fi

STAGES=()   # "name|status|seconds"
FAILED=0
T_ALL=$(date +%s.%N)

banner() { printf '\n\033[1m==== %s\033[0m\n' "$*"; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# run_stage NAME CMD...: run, time and record one stage; never exits the script.
run_stage() {
  local name=$1; shift
  banner "$name"
  local t0 rc=0
  t0=$(date +%s.%N)
  "$@" || rc=$?
  local secs status
  secs=$(elapsed "$t0")
  if [[ $rc -eq 0 ]]; then status=ok; else status="FAILED (exit $rc)"; FAILED=1; fi
  STAGES+=("$name|$status|$secs")
  printf '==== %s: %s in %ss\n' "$name" "$status" "$secs"
  return $rc
}

skip_stage() {
  STAGES+=("$1|skipped: $2|0")
  printf '\n==== %s: skipped (%s)\n' "$1" "$2"
}

run_ctest() {  # run_ctest BUILD_DIR JUNIT [env...]
  local dir=$1 junit=$2; shift 2
  # Four at a time on two cores: each test has its own etcd on its own ports, and most of the
  # time is spent waiting on etcd, token expiries, timeouts and sleeps rather than on a CPU
  # (about 40 s a stage, against 80 s two at a time).
  env "$@" ctest --test-dir "$dir" --output-on-failure --timeout 600 --parallel 4 \
    --output-junit "$junit" "${CTEST_EXTRA[@]}"
}

run_pytest() {  # run_pytest BUILD_DIR JUNIT [env...]
  local dir=$1 junit=$2; shift 2
  local rc=0
  env ETCDFS_BUILD_DIR="$dir" "$@" "$PY" -m pytest tests/integration -q -p no:cacheprovider \
    --durations=10 --junitxml="$junit" "${PYTEST_EXTRA[@]}" || rc=$?
  if [[ $rc -eq 5 ]]; then
    # 5 = no test collected. The suite always holds tests (test_fixtures.py at least), so
    # this means it is broken, unless the caller's own -k/-m/path filter matched nothing.
    if [[ ${#PYTEST_EXTRA[@]} -gt 0 ]]; then
      echo "pytest collected no tests with ETCDFS_PYTEST_ARGS='${ETCDFS_PYTEST_ARGS}': not a failure" >&2
      return 0
    fi
    echo "pytest collected no tests at all: the suite is broken" >&2
  fi
  return $rc
}

echo "etcdfs tests: $(date -u +%FT%TZ), $(nproc) cores, quick=$QUICK, results in $RESULTS"

if [[ ${ETCDFS_SKIP_INSTALL:-0} == 1 ]]; then
  skip_stage "install deps" "ETCDFS_SKIP_INSTALL=1"
else
  run_stage "install deps" bash scripts/install-deps.sh || {
    echo "cannot continue without dependencies" >&2; exit 1; }
fi

run_stage "clang-format" bash scripts/check-format.sh || true

# etcd 3.5 for the sanitizer runs. Without it those runs would silently test 3.4 twice, so a
# failed fetch fails the run (and the runs use 3.4 rather than not running at all).
ETCD_35=""
# No "| head" here: under pipefail, etcd writing its later version lines into a pipe head has
# already closed dies of SIGPIPE, and the stage failed (exit 141) with etcd 3.5 in hand.
fetch_etcd_35() {
  local version
  ETCD_35=${ETCDFS_ETCD_35:-$(bash scripts/fetch-etcd.sh)} || return
  version=$("$ETCD_35" --version) || return
  echo "${version%%$'\n'*}"
}
if [[ $QUICK == 1 ]]; then
  skip_stage "fetch etcd 3.5" "ETCDFS_TEST_QUICK=1"
else
  run_stage "fetch etcd 3.5" fetch_etcd_35 || ETCD_35=""
fi
ETCD_35_ENV=()
SECOND_ETCD="etcd 3.5"
if [[ -n $ETCD_35 ]]; then ETCD_35_ENV=("ETCDFS_ETCD=$ETCD_35"); else SECOND_ETCD="etcd 3.4, no 3.5"; fi

build_ok=1
run_stage "build build/" bash scripts/build.sh build "${CMAKE_EXTRA[@]}" || build_ok=0
asan_ok=0
if [[ $QUICK == 1 ]]; then
  skip_stage "build build-asan/" "ETCDFS_TEST_QUICK=1"
else
  asan_ok=1
  run_stage "build build-asan/ (ASan+UBSan)" \
    bash scripts/build.sh build-asan -DETCDFS_SANITIZE=ON "${CMAKE_EXTRA[@]}" || asan_ok=0
fi

if [[ $build_ok == 1 ]]; then
  run_stage "ctest build/" run_ctest "$ROOT/build" "$RESULTS/ctest-build.xml" || true
else
  skip_stage "ctest build/" "build failed"
fi
if [[ $asan_ok == 1 ]]; then
  run_stage "ctest build-asan/ ($SECOND_ETCD)" run_ctest "$ROOT/build-asan" \
    "$RESULTS/ctest-build-asan.xml" "${SANITIZER_ENV[@]}" "${ETCD_35_ENV[@]}" || true
elif [[ $QUICK != 1 ]]; then
  skip_stage "ctest build-asan/" "sanitizer build failed"
fi

if [[ $build_ok == 1 ]]; then
  run_stage "pytest build/" run_pytest "$ROOT/build" "$RESULTS/pytest-build.xml" || true
else
  skip_stage "pytest build/" "build failed"
fi
# The benchmark harness in its quick mode, so that it never rots: fails only when the harness
# breaks, never on slow figures (bench/RESULTS-fs.md has the real run).
if [[ $build_ok == 1 ]]; then
  run_stage "bench (quick)" bash bench/run_fs_bench.sh --quick --build "$ROOT/build" || true
else
  skip_stage "bench (quick)" "build failed"
fi
if [[ $asan_ok == 1 ]]; then
  run_stage "pytest build-asan/ ($SECOND_ETCD)" run_pytest "$ROOT/build-asan" \
    "$RESULTS/pytest-build-asan.xml" ETCDFS_BUILD_TESTS_ONLY=1 ETCDFS_SECOND_PASS=1 \
    "${SANITIZER_ENV[@]}" \
    "${ETCD_35_ENV[@]}" || true
elif [[ $QUICK != 1 ]]; then
  skip_stage "pytest build-asan/" "sanitizer build failed"
fi
# libFuzzer targets (clang, build-fuzz/): 10 s each on the committed seed corpora
# (tests/fuzz/run_fuzzers.sh, docs/testing.md).
if [[ $QUICK == 1 ]]; then
  skip_stage "fuzz" "ETCDFS_TEST_QUICK=1"
else
  run_stage "fuzz" bash tests/fuzz/run_fuzzers.sh --seconds 10 --build "$ROOT/build-fuzz" \
    --junit "$RESULTS/fuzz.xml" || true
fi
# The C client tests under valgrind memcheck, against build/ (about 2.5 minutes).
if [[ $QUICK == 1 ]]; then
  skip_stage "valgrind c_*" "ETCDFS_TEST_QUICK=1"
elif [[ $build_ok == 1 ]]; then
  run_stage "valgrind c_*" bash tests/c/run_valgrind.sh --build "$ROOT/build" \
    --junit "$RESULTS/valgrind.xml" || true
else
  skip_stage "valgrind c_*" "build failed"
fi

banner "summary"
for s in "${STAGES[@]}"; do
  IFS='|' read -r name status secs <<<"$s"
  printf '  %-34s %-28s %7ss\n' "$name" "$status" "$secs"
done
printf '  %-34s %-28s %7ss\n' "total" "" "$(elapsed "$T_ALL")"
# One closing line with the totals over every runner (JUnit files of ctest and pytest).
"$PY" - "$RESULTS" "$FAILED" <<'EOF'
import glob, sys, xml.etree.ElementTree as ET
passed = failed = skipped = 0
names = []
for path in sorted(glob.glob(sys.argv[1] + "/*.xml")):
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        failed += 1
        continue
    for case in root.iter("testcase"):
        tags = {c.tag for c in case}
        status = case.get("status", "")
        if tags & {"failure", "error"} or status == "fail":
            failed += 1
            where = case.get("classname", "")
            names.append(f"{path.rsplit('/', 1)[-1]}: {where + '::' if where else ''}{case.get('name')}")
        elif "skipped" in tags or status in ("notrun", "disabled", "skipped"):
            skipped += 1
        else:
            passed += 1
if failed == 0 and sys.argv[2] != "0":
    print("note: a stage failed outside any test (build, install, or a runner crash)")
for name in names:
    print(f"failed: {name}")
print(f"summary: {passed} passed, {failed} failed, {skipped} skipped")
EOF
rm -rf "$RESULTS"
exit $FAILED
