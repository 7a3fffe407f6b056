#!/bin/sh
# run_lib_bench.sh - benchmark libetcdc against Python etcd3 and etcdctl on one private etcd.
#
#   bench/run_lib_bench.sh [--quick] [--build DIR] [--write]
#
#   --quick   few iterations (CI smoke run; numbers are not meaningful)
#   --build   cmake build directory holding bench/lib_bench (default: $ETCDFS_BUILD_DIR, else
#             <repo>/build)
#   --write   also write bench/RESULTS.md (machine description, command, table)
#
# Starts its own single-member etcd on free loopback ports with its data on /dev/shm (through
# tests/c/run_with_etcd.sh), then measures, one thread, 1 KiB values:
#   - libetcdc Put / Get p50 and p99, and client CPU per call (getrusage)
#   - a raw gRPC Range round trip on the library's own channel (no library code in the loop):
#     the floor the library's overhead is measured against
#   - Python etcd3 (/usr/bin/python3, one process, a timed loop)
#   - etcdctl, one process per call: process start is INCLUDED (etcdctl has no batch or
#     interactive mode that reads commands from stdin, so it cannot be excluded)
# and throughput with 1, 2, 4, 8, 16 threads sharing one libetcdc client.
# Not a pass/fail test: it prints a table (ratios are against the library in the same run).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")

if [ "${ETCDC_BENCH_INNER:-}" != 1 ]; then
    export ETCDC_BENCH_INNER=1
    exec "$repo/tests/c/run_with_etcd.sh" -- "$0" "$@"
fi

quick=0
write=0
build=${ETCDFS_BUILD_DIR:-$repo/build}
while [ $# -gt 0 ]; do
    case "$1" in
    --quick) quick=1; shift ;;
    --write) write=1; shift ;;
    --build) build=$2; shift 2 ;;
    *) echo "usage: $0 [--quick] [--build DIR] [--write]" >&2; exit 2 ;;
    esac
done
bench="$build/bench/lib_bench"
[ -x "$bench" ] || { echo "run_lib_bench.sh: $bench not built (make lib_bench)" >&2; exit 1; }

if [ "$quick" = 1 ]; then
    n=200; n_ctl=10; tput_s=0.5; threads="1 2 4"
else
    n=5000; n_ctl=200; tput_s=3; threads="1 2 4 8 16"
fi
size=1024
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "etcd at $ETCD_ENDPOINTS; $n calls per latency series, values of $size bytes" >&2
"$bench" latency "$n" "$size" >>"$out"
/usr/bin/python3 - "$ETCD_ENDPOINTS" "$n" "$n_ctl" "$size" >>"$out" <<'EOF'
import os, resource, subprocess, sys, time
endpoint, n, n_ctl, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
host, port = endpoint.split(",")[0].rsplit(":", 1)

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return (r.ru_utime + r.ru_stime) * 1e6

def report(name, lat, cpu_total):
    lat.sort()
    print(f"LAT {name} {len(lat)} {lat[len(lat)//2]:.1f} {lat[int(len(lat)*0.99)]:.1f} "
          f"{sum(lat)/len(lat):.1f} {cpu_total/len(lat):.1f}", flush=True)

import etcd3
c = etcd3.client(host=host, port=int(port))
value = b"p" * size
for i in range(n // 10 + 10):
    c.put(f"bench/py/{i % n:06d}", value)
for op in ("put", "get"):
    lat = []
    c0 = cpu()
    for i in range(n):
        t0 = time.perf_counter()
        if op == "put":
            c.put(f"bench/py/{i:06d}", value)
        else:
            v, _ = c.get(f"bench/py/{i:06d}")
            assert v is not None and len(v) == size
        lat.append((time.perf_counter() - t0) * 1e6)
    report(f"py_etcd3_{op}", lat, cpu() - c0)
c.delete_prefix("bench/py/")

# etcdctl: one process per call, process start included (no batch mode exists).
sval = "c" * size
for op in ("put", "get"):
    lat = []
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    for i in range(n_ctl):
        args = ["etcdctl", "--endpoints", endpoint]
        args += ["put", f"bench/ctl/{i:06d}", sval] if op == "put" else ["get", f"bench/ctl/{i:06d}"]
        t0 = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
        lat.append((time.perf_counter() - t0) * 1e6)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    report(f"etcdctl_{op}", lat, ((c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)) * 1e6)
subprocess.run(["etcdctl", "--endpoints", endpoint, "del", "--prefix", "bench/ctl/"],
               check=True, stdout=subprocess.DEVNULL)
EOF
# shellcheck disable=SC2086
"$bench" throughput "$tput_s" "$size" $threads >>"$out"

table=$(awk '
/^LAT/ { name=$2; cnt[name]=$3; p50[name]=$4; p99[name]=$5; cpu[name]=$7; order[++k]=name }
/^TPUT/ { tp[$2 " " $3]=$4; err[$2 " " $3]=$5; if (!seen[$3]++) th[++m]=$3 }
END {
  printf "Latency, one thread, 1 KiB values (microseconds; ratio = p50 / libetcdc p50 of the same op)\n\n"
  printf "| client | op | calls | p50 us | p99 us | ratio | client CPU us/call |\n"
  printf "|---|---|---:|---:|---:|---:|---:|\n"
  for (i = 1; i <= k; i++) {
    n = order[i]; op = (n ~ /put$/) ? "put" : "get"; base = p50["lib_" op]
    client = n; sub(/_(put|get)$/, "", client)
    if (client == "lib") client = "libetcdc"
    if (client == "py_etcd3") client = "Python etcd3"
    if (client == "etcdctl") client = "etcdctl (process start included)"
    if (client == "raw_grpc") client = "raw gRPC round trip (floor)"
    printf "| %s | %s | %d | %.0f | %.0f | %.2fx | %.0f |\n", client, op, cnt[n], p50[n], p99[n], p50[n] / base, cpu[n]
  }
  printf "\nlibetcdc overhead over a raw gRPC round trip (Get): p50 %+.0f us (%.0f%% of the call)\n", \
    p50["lib_get"] - p50["raw_grpc_get"], 100 * (p50["lib_get"] - p50["raw_grpc_get"]) / p50["lib_get"]
  printf "libetcdc client CPU per Get: %.0f us (raw gRPC: %.0f us), per Put: %.0f us\n", \
    cpu["lib_get"], cpu["raw_grpc_get"], cpu["lib_put"]
  printf "\nThroughput, threads sharing one libetcdc client (ops/s; errors in parentheses)\n\n"
  printf "| threads | put ops/s | get ops/s | put vs 1 thread | get vs 1 thread |\n|---:|---:|---:|---:|---:|\n"
  for (i = 1; i <= m; i++) {
    t = th[i]
    printf "| %d | %.0f (%d) | %.0f (%d) | %.2fx | %.2fx |\n", t, tp["put " t], err["put " t], \
      tp["get " t], err["get " t], tp["put " t] / tp["put " th[1]], tp["get " t] / tp["get " th[1]]
  }
}' "$out")
echo "$table"

if [ "$write" = 1 ]; then
    {
        echo "# libetcdc benchmark results"
        echo
        echo "Produced by \`bench/run_lib_bench.sh$([ "$quick" = 1 ] && echo " --quick") --write\` on $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "(build: \`$build\`, $(grep -m1 CMAKE_BUILD_TYPE: "$build/CMakeCache.txt" 2>/dev/null | cut -d= -f2) build)."
        echo "etcd $(etcd --version | head -1 | awk '{print $3}') single member on loopback, data on /dev/shm,"
        echo "started by the script; Python etcd3 $(/usr/bin/python3 -c 'import etcd3; print(etcd3.__version__)')"
        echo "(one process, a timed loop); etcdctl $(etcdctl version | head -1 | awk '{print $3}') one process per call."
        echo
        echo "## Machine"
        echo
        echo '```'
        echo "nproc: $(nproc)"
        lscpu | head -15
        echo "kernel: $(uname -srm)"
        echo '```'
        echo
        echo "The machine is shared (other builds and tests may run at the same time): p99 values"
        echo "in particular are noisy. Ratios compare numbers taken in the same run."
        echo
        echo "## Results"
        echo
        echo "$table"
        echo
        echo "## Notes"
        echo
        echo "- etcdctl has no batch/interactive mode reading commands from stdin, so its numbers"
        echo "  include starting a Go process and dialling etcd for every call."
        echo "- \"raw gRPC round trip\" sends a hand-packed RangeRequest on the library's own channel"
        echo "  with gRPC core directly (no protobuf-c, no result copies, no retry logic): the"
        echo "  difference to libetcdc Get is the library's own overhead."
        echo "- Client CPU is getrusage(RUSAGE_SELF) user+system of the benchmark process divided by"
        echo "  the calls (gRPC's internal threads included); for etcdctl it is the children's CPU."
    } >"$here/RESULTS.md"
    echo "wrote $here/RESULTS.md" >&2
fi
