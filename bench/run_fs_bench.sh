#!/bin/sh
# run_fs_bench.sh - the etcdfs filesystem benchmark on a private etcd.
#
#   bench/run_fs_bench.sh [--quick] [--build DIR] [--write] [--mem-keys N,N|none] [--only W,W]
#
#   --quick     small sizes, one round (CI smoke run, < 60 s; figures are not meaningful)
#   --build     cmake build directory holding src/fs/etcdfs, bench/fs_load and bench/memfs_ll
#               (default: $ETCDFS_BUILD_DIR, else <repo>/build)
#   --write     also write bench/RESULTS-fs.md (machine, command, tables)
#   --mem-keys  key counts for the memory workload (full default 100000,1000000; quick: none)
#   --only      run only these workloads: small_write, warm_read, listings, past, copy, flock,
#               notify, remote, scaling, memory
#
# Starts its own single-member etcd on free loopback ports with its data on /dev/shm (through
# tests/c/run_with_etcd.sh), mounts etcdfs and the in-memory reference filesystem memfs_ll, and
# runs bench/fs_bench.py: every workload against its references (libetcdc, etcdctl, Python
# etcd3, the FUSE limit) in the same run. Mounts are always unmounted and etcd stopped on exit.
# Not a pass/fail test: the exit status is non-zero only when the harness itself breaks.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
if [ "${ETCDFS_BENCH_INNER:-}" != 1 ]; then
    export ETCDFS_BENCH_INNER=1
    export ETCDFS_BENCH_COMMAND="bench/run_fs_bench.sh $*"
    exec "$repo/tests/c/run_with_etcd.sh" -- "$0" "$@"
fi

build=${ETCDFS_BUILD_DIR:-$repo/build}
set -- "$@" --end
args=""
write=""
while [ "$1" != --end ]; do
    case "$1" in
    --quick) args="$args --quick"; shift ;;
    --write) write="$here/RESULTS-fs.md"; shift ;;
    --build) build=$2; shift 2 ;;
    --mem-keys | --only) args="$args $1 $2"; shift 2 ;;
    *) echo "usage: $0 [--quick] [--build DIR] [--write] [--mem-keys N,N|none] [--only W,W]" >&2
       exit 2 ;;
    esac
done
for bin in src/fs/etcdfs bench/fs_load bench/memfs_ll; do
    [ -x "$build/$bin" ] || { echo "run_fs_bench.sh: $build/$bin not built" >&2; exit 1; }
done
# shellcheck disable=SC2086
exec /usr/bin/python3 "$here/fs_bench.py" --build "$build" ${write:+--write "$write"} \
    --command "$ETCDFS_BENCH_COMMAND" $args
