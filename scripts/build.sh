#!/usr/bin/env bash
# Configure and build etcdfs and libetcdc with CMake.
#
#   bash scripts/build.sh [BUILD_DIR] [extra cmake args...]
#
# BUILD_DIR defaults to build/ (relative paths are taken from the repository root).
# Examples:
#   bash scripts/build.sh                                   # build/
#   bash scripts/build.sh build-asan -DETCDFS_SANITIZE=ON   # ASan + UBSan build
#   bash scripts/build.sh build-dbg -DCMAKE_BUILD_TYPE=Debug
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_DIR=${1:-build}
[[ $# -gt 0 ]] && shift
[[ $BUILD_DIR = /* ]] || BUILD_DIR=$ROOT/$BUILD_DIR
JOBS=${ETCDFS_BUILD_JOBS:-$(nproc)}

echo "build: configuring $BUILD_DIR $*" >&2
cmake -S "$ROOT" -B "$BUILD_DIR" "$@"
echo "build: building $BUILD_DIR with -j$JOBS" >&2
cmake --build "$BUILD_DIR" -j"$JOBS"
