#!/bin/sh
# check_install.sh BUILD_DIR SOURCE_DIR - install the build into a temporary prefix and build an
# example against the installed copy with pkg-config only (no path into the source or build
# tree), then run it. Run by ctest under run_with_etcd.sh (it needs ETCD_ENDPOINTS).
set -eu
build=$1
src=$2
prefix=$(mktemp -d "${TMPDIR:-/tmp}/etcdc-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
pcdir=$(dirname "$(find "$prefix" -name etcdc.pc | head -1)")
export PKG_CONFIG_PATH="$pcdir"
cflags=$(pkg-config --cflags etcdc)
libs=$(pkg-config --libs etcdc)
echo "pkg-config --cflags --libs etcdc: $cflags $libs"
case "$cflags $libs" in
*"$prefix"*) ;;
*) echo "FAIL: pkg-config flags do not point into the install prefix $prefix" >&2; exit 1 ;;
esac
libdir=$(pkg-config --variable=libdir etcdc)
# The shared library exports its API and nothing else (no protobuf-c or gRPC helper symbols).
foreign=$(nm -D --defined-only "$libdir/libetcdc.so" | awk '{print $3}' | grep -v '^etcdc_' || true)
if [ -n "$foreign" ]; then
    echo "FAIL: libetcdc.so exports symbols outside etcdc_*:" >&2
    echo "$foreign" | head -20 >&2
    exit 1
fi
echo "libetcdc.so exports $(nm -D --defined-only "$libdir/libetcdc.so" | grep -c ' T etcdc_') functions, all etcdc_*"
# shellcheck disable=SC2086
cc -std=c11 -Wall -Wextra -Werror -o "$prefix/crud_example" "$src/examples/crud_example.c" \
    $cflags $libs -Wl,-rpath,"$libdir"
# The program must load the installed library, not the build tree's.
ldd "$prefix/crud_example" | grep -q "$prefix" || {
    echo "FAIL: crud_example does not load libetcdc from $prefix" >&2
    ldd "$prefix/crud_example" >&2
    exit 1
}
"$prefix/crud_example"
