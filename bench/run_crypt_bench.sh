#!/bin/sh
# run_crypt_bench.sh - cost of value encryption against the etcd round trip, on a private etcd.
#
#   bench/run_crypt_bench.sh [--quick] [--build DIR]
#
# Starts its own single-member etcd (data on /dev/shm) through tests/c/run_with_etcd.sh and runs
# crypt_bench: seal/open CPU time per value and Put/Get medians with encryption off and on, for
# 64 B to 1 MB values, all in the same run. Not a pass/fail test.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ "${ETCDC_BENCH_INNER:-}" != 1 ]; then
    export ETCDC_BENCH_INNER=1
    exec "$repo/tests/c/run_with_etcd.sh" -- "$0" "$@"
fi
n=300
build=${ETCDFS_BUILD_DIR:-$repo/build}
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) n=20; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--quick] [--build DIR]" >&2; exit 2 ;;
    esac
done
exec "$build/bench/crypt_bench" "$n"
