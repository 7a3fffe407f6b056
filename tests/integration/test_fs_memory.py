"""The daemon's memory (docs/consistency.md, "Memory"):

1. --cache-size bounds what the daemon caches, file values, nodes and directory listings
   together: a mount with a small cap walks a tree far larger than the cap (ls -lR, find, cat)
   with the right answers, stays under the cap, and its RSS stays well below an uncapped
   mount's after the same walk;
2. memory goes back to the system once a large tree is gone (deleted by another host);
3. churn (files created and removed through the mount, cycle after cycle) leaks nothing: the
   daemon's accounting returns to where it started and its RSS levels off.

Figures (RSS, cache sizes, what was trimmed) are printed: run with -s. Under a sanitizer,
whose shadow memory and quarantine multiply RSS, only the first runs (without its RSS bound)."""

import os
import re
import subprocess
import time

import pytest

from etcd_fixtures import wait_for
from fs_tool_helpers import sanitized

pytestmark = [pytest.mark.needs_etcdfs, pytest.mark.slow]

DIRS, PER_DIR = 20, 1000
N = DIRS * PER_DIR
MIB = 1 << 20


def value_of(i: int, size: int = 40) -> bytes:
    return f"value {i}".encode().ljust(size, b".")


def put_tree(kv, prefix: str, dirs: int = DIRS, size: int = 40):
    """dirs * PER_DIR keys prefix/dNN/fNNNN (values of size bytes) in Txns of 120 puts."""
    n = dirs * PER_DIR
    items = [(f"{prefix}/d{i // PER_DIR:02d}/f{i % PER_DIR:04d}", value_of(i, size))
             for i in range(n)]
    for at in range(0, n, 120):
        kv.transaction(compare=[], failure=[],
                       success=[kv.transactions.put(k, v) for k, v in items[at:at + 120]])


def stats(m) -> dict:
    out = {}
    for line in (m.path / ".etcdfs" / "stats").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and re.fullmatch(r"-?\d+", parts[1]):
            out[parts[0]] = int(parts[1])
    return out


def cached(s: dict) -> int:
    return s["cache_value_bytes"] + s["cache_meta_bytes"]


def trims_settled(m):
    """Waits until the keeper has handed back what was freed: no trim for two seconds (what the
    last frees of a bulk leave is trimmed a second after the trim before)."""
    deadline = time.monotonic() + 30
    trims = stats(m)["mem_trims"]
    while time.monotonic() < deadline:
        time.sleep(2)
        now = stats(m)["mem_trims"]
        if now == trims:
            return
        trims = now
    raise AssertionError("the keeper never stopped trimming")


def rss_mib(m) -> float:
    with open(f"/proc/{m.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def walk(m) -> int:
    """ls -lR and find over the mount; the number of files find saw."""
    subprocess.run(f"ls -lR '{m.path}' > /dev/null", shell=True, check=True)
    out = subprocess.run(["find", str(m.path), "-type", "f", "-not", "-path", "*/.etcdfs/*"],
                         capture_output=True, text=True, check=True).stdout
    return len(out.splitlines())


def test_cache_size_bounds_values_nodes_and_listings_together(etcd, kv, mount, build_dir):
    # Twice the default tree (about 8 MiB cached more than the cap). A capped walk's RSS is not
    # its cache: its churn leaves pages partly used (malloc cannot move a live node) and it may
    # grow more worker threads, each with its stack and arena. With 40,000 keys the capped
    # daemon ended at 20.9-24.7 MiB (13.6 fresh, 2.4 cached) against 26.9-28.4 uncapped; with
    # 60,000 at 27.3-30.2 against 32.2-32.5, so a larger tree does not widen the gap. The
    # bound below (a sixth of what the cap saves in cache) still fails a cap that saves nothing.
    n = 2 * N
    put_tree(kv, "/mem", dirs=2 * DIRS)
    big = mount(etcd, prefix="/mem", name="big")
    t0 = time.monotonic()
    assert walk(big) == n
    t_big = time.monotonic() - t0
    b = stats(big)
    # A cap a quarter of what the walk holds uncapped: the tree is much larger than the cap
    # however small the daemon's per-key memory becomes.
    cap = cached(b) // 4
    small = mount(etcd, prefix="/mem", name="small", extra_args=(f"--cache-size={cap}",))
    t0 = time.monotonic()
    assert walk(small) == n
    t_small = time.monotonic() - t0
    # every value right, read through the small cap (most were dropped on the way)
    for i in range(0, n, 997):
        path = small.path / f"d{i // PER_DIR:02d}" / f"f{i % PER_DIR:04d}"
        assert path.read_bytes() == value_of(i), path
    wait_for(lambda: cached(stats(small)) <= cap, 30, "the keeper to bring the cache under the cap")
    trims_settled(small)
    s = stats(small)
    print(f"\nwalk of {n} keys: cap {cap // 1024} KiB: {t_small:.1f} s, cached {cached(s) // 1024} "
          f"KiB (values {s['cache_value_bytes'] // 1024}, nodes and listings "
          f"{s['cache_meta_bytes'] // 1024}), RSS {rss_mib(small):.1f} MiB; {s['cache_evictions']} "
          f"values evicted, {s['cache_listings_dropped']} listings dropped, "
          f"{s['cache_names_forgotten']} names forgotten, {s['mem_trims']} trims. Default cap: "
          f"{t_big:.1f} s, cached {cached(b) // 1024} KiB, RSS {rss_mib(big):.1f} MiB")
    assert s["cache_names_forgotten"] > 0 and s["cache_listings_dropped"] > 0
    assert s["cache_limit_bytes"] == cap
    assert 0 < s["mem_rss_bytes"] <= rss_mib(small) * MIB * 2
    if not sanitized(build_dir):
        assert rss_mib(small) < rss_mib(big) - (cached(b) - cap) / MIB / 6, \
            "the capped daemon holds as much memory as an uncapped one"


def skip_when_sanitized(build_dir):
    if sanitized(build_dir):
        pytest.skip("RSS figures mean nothing under a sanitizer (the keeper itself is exercised "
                    "by the cache-size test)")


def test_memory_goes_back_once_a_large_tree_is_gone(etcd, kv, mount, build_dir):
    """Twice: a tree is written by another client, walked through the mount, deleted. The first
    round also grows the daemon's pool of FUSE worker threads (each with its buffer and malloc
    arena, which stay); after the second, RSS is back where the first left it. Values of 300
    bytes make the tree's memory (about 11 MiB cached) stand well above what a worker thread
    more or less keeps; the end of a bulk free, less than the keeper's usual trim threshold,
    must come back too (the forgets arrive over seconds)."""
    skip_when_sanitized(build_dir)
    m = mount(etcd, prefix="/mem")
    rounds = []
    for _ in range(2):
        put_tree(kv, "/mem", size=300)
        assert walk(m) == N
        peak, s1 = rss_mib(m), stats(m)
        kv.delete_prefix("/mem/")
        # the watch drops the names, the kernel forgets them, the nodes go
        wait_for(lambda: stats(m)["cache_files"] == 0, 120, "every file node to go")
        wait_for(lambda: stats(m)["mem_trims"] > s1["mem_trims"], 30, "memory handed back")
        trims_settled(m)
        rounds.append((peak, rss_mib(m), cached(s1), cached(stats(m))))
    print("\n" + "; ".join(f"RSS {p:.1f} MiB with {N} keys walked (cached {c1 // 1024} KiB), "
                           f"{a:.1f} MiB once they are deleted (cached {c2 // 1024} KiB)"
                           for p, a, c1, c2 in rounds))
    (_, after0, _, _), (peak1, after1, c1, c2) = rounds
    assert c2 < c1 / 20
    # Most of what the second walk took must come back. Not all of it: the second round may
    # still add a worker thread or two (their arenas stay), 4.1 of 14.2 MiB once in CI;
    # memory not handed back at all leaves RSS near the peak.
    assert after1 - after0 < (peak1 - after0) / 2, "memory was not given back"


def test_churn_of_files_leaks_nothing(etcd, kv, mount, build_dir):
    skip_when_sanitized(build_dir)
    m = mount(etcd, prefix="/churn")
    d = m.path / "d"
    d.mkdir()
    files = 800
    after = []
    for cycle in range(4):
        for i in range(files):
            with open(d / f"f{i}", "wb") as f:
                f.write(value_of(i))
        assert len(os.listdir(d)) == files
        for i in range(files):
            os.unlink(d / f"f{i}")
        assert os.listdir(d) == []
        wait_for(lambda: stats(m)["cache_files"] == 0, 60, "the removed files' nodes to go")
        s = stats(m)
        after.append((rss_mib(m), s["cache_meta_bytes"], s["cache_value_bytes"]))
    print("\nafter each cycle of " + str(files) + " files created and removed: " +
          "; ".join(f"RSS {r:.1f} MiB, cached {(mb + vb) // 1024} KiB" for r, mb, vb in after))
    assert list(kv.get_prefix("/churn/d/f")) == []
    # the accounting returns to the same point every time: nothing stays behind per file
    assert all(mb == after[0][1] and vb == after[0][2] for _, mb, vb in after), after
    assert after[3][0] - after[1][0] < 2, "RSS grows with every cycle"
