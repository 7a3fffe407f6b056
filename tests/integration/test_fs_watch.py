"""The watch keeps caches coherent through outages: an etcd member restarted under a mount's
watch (no change missed), and a compaction past the watch's position while it was away (a
full resync, then a new watch; no stale entry left). Run in --consistency=watch, where open,
stat and readdir trust the watch-coherent cache without asking etcd: a missed change would
stay visible for good, so every check below converges or fails."""

import os

import pytest

from etcd_fixtures import wait_for

pytestmark = pytest.mark.needs_etcdfs

WATCH = ("--consistency=watch", "--command-timeout=2s")


def read_or_errno(path):
    try:
        return path.read_bytes()
    except OSError as exc:
        return exc.errno


def settles(fn, want, what):
    wait_for(lambda: fn() == want, 60, what)


def outage(cluster, mount, compact):
    """Mount through member 0 only, cache a tree, stop member 0, change the tree through
    member 1 (and compact), start member 0 again. Returns the mount."""
    c1 = cluster[1].client()
    c1.put("/w/changed", b"old")
    c1.put("/w/deleted", b"doomed")
    m = mount(cluster[0].endpoint, extra_args=WATCH)
    assert (m.path / "w" / "changed").read_bytes() == b"old"
    assert sorted(os.listdir(m.path / "w")) == ["changed", "deleted"]
    assert (m.path / "w" / "deleted").read_bytes() == b"doomed"
    cluster[0].stop()
    c1.put("/w/changed", b"new")
    c1.delete("/w/deleted")
    c1.put("/w/created", b"born")
    for i in range(20):
        c1.put("/other/churn", str(i))  # revisions the compaction removes
    if compact:
        rev = c1.get_response(b"/").header.revision
        c1.compact(rev, physical=True)
    cluster[0].start()
    c1.close()
    return m


@pytest.mark.parametrize("compact", [False, True], ids=["restart", "compaction"])
def test_outage_of_the_watched_member_misses_no_change(etcd_cluster, mount, compact):
    m = outage(etcd_cluster, mount, compact)
    d = m.path / "w"
    # The watch is back first (watch_active is 0 while its stream is being resumed, and reads
    # then ask etcd): the checks below read the watch-coherent cache.
    if compact:
        wait_for(lambda: "watch re-established" in m.log_text(), 30, "the resync")
    wait_for(lambda: m.stats().get("watch_active") == 1, 30, "the watch to be back")
    settles(lambda: read_or_errno(d / "changed"), b"new", "the changed value")
    settles(lambda: sorted(os.listdir(d)), ["changed", "created"], "the listing")
    assert read_or_errno(d / "created") == b"born"
    assert read_or_errno(d / "deleted") == 2  # ENOENT: no stale entry left
    if compact:
        text = m.log_text()
        assert "compacted" in text and "watch re-established" in text, text[-2000:]
    # and the new (or resumed) watch keeps working
    c = etcd_cluster[1].client()
    c.put("/w/changed", b"after")
    c.close()
    settles(lambda: read_or_errno(d / "changed"), b"after", "a change after the outage")
    assert m.stats()["watch_active"] == 1


@pytest.mark.parametrize("mode", ["close-to-open", "watch"])
def test_cache_size_caps_values_and_evicted_files_read_again(etcd, kv, mount, mode):
    for i in range(100):
        kv.put(f"/v/f{i:03d}", bytes([65 + i % 26]) * 4096)
    m = mount(etcd, extra_args=("--cache-size=64k", f"--consistency={mode}"))
    keep = open(m.path / "v" / "f000", "rb")  # open: never evicted
    try:
        for i in range(100):
            assert (m.path / "v" / f"f{i:03d}").read_bytes() == bytes([65 + i % 26]) * 4096
        s = m.stats()
        assert s["cache_evictions"] > 0
        # under the cap (plus the one value being read when the cap was checked)
        assert s["cache_value_bytes"] <= 64 * 1024 + 2 * 4096, s["cache_value_bytes"]
        # evicted files come back from etcd, current
        kv.put("/v/f001", b"changed")
        wait_for(lambda: (m.path / "v" / "f001").read_bytes() == b"changed", 30, "f001")
        for i in range(2, 100, 7):
            assert (m.path / "v" / f"f{i:03d}").read_bytes() == bytes([65 + i % 26]) * 4096
        assert keep.read() == b"A" * 4096
    finally:
        keep.close()


def soon(fn, want, what):
    """Within the watch's delay, generously bounded, but well inside the 60 s a listing is
    trusted for while the watch runs: a listing that outlived a change fails here."""
    wait_for(lambda: fn() == want, 10, what)


def load_tree(kv, children=4, subdirs=10, files=15):
    """/t/c<i>/d<j>/f<k> = b"<i>.<j>.<k>", with a file beside one subdirectory (a directory's
    own value) and a marker; returns {path below /t: value} as the mount must show it."""
    want = {}
    for i in range(children):
        for j in range(subdirs):
            for k in range(files):
                key, value = f"c{i}/d{j}/f{k}", f"{i}.{j}.{k}".encode()
                kv.put("/t/" + key, value)
                want[key] = value
    kv.put("/t/c1/d2", b"own value")  # shown inside d2 as %value
    want["c1/d2/%value"] = b"own value"
    kv.put("/t/c3/empty/", b"")  # an empty directory's marker
    return want


def tree(root):
    got, dirs = {}, set()
    for d, subdirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel != ".":
            dirs.add(rel)
        for f in files:
            p = os.path.join(d, f)
            got[os.path.relpath(p, root)] = open(p, "rb").read()
    return got, dirs


def test_a_tree_walk_reads_subtrees_ahead_in_a_few_pages(etcd, kv, mount):
    """find over 4 x 10 directories: the second child listed of a parent makes the mount read
    the parent's whole subtree in large pages; the walk then costs a few round trips, not one
    per directory, and shows exactly what etcd holds."""
    want = load_tree(kv)
    m = mount(etcd, extra_args=WATCH)
    s0 = m.stats()
    got, dirs = tree(m.path / "t")
    s1 = m.stats()
    assert got == want
    assert "c3/empty" in dirs and len(dirs) == 4 + 40 + 1
    rts = s1["rt_total"] - s0["rt_total"]
    # without reading ahead: one request per directory (45) plus the lookups on the way
    assert rts <= 15, rts


def test_listings_read_ahead_follow_every_later_change(etcd, kv, mount):
    """Listings read ahead and not yet used by an opendir must not outlive a change: another
    host's (through the watch) or this mount's own (at once)."""
    load_tree(kv, children=2, subdirs=6, files=3)
    m = mount(etcd, extra_args=WATCH)
    t = m.path / "t"
    os.listdir(t / "c0")
    os.listdir(t / "c0" / "d0")
    os.listdir(t / "c0" / "d1")  # a walk: c0's whole subtree is read ahead
    # this mount's own changes, in directories whose listings wait unused
    (t / "c0" / "d2" / "mine").write_bytes(b"1")
    os.unlink(t / "c0" / "d3" / "f0")
    os.mkdir(t / "c0" / "d4" / "sub")
    assert sorted(os.listdir(t / "c0" / "d2")) == ["f0", "f1", "f2", "mine"]
    assert sorted(os.listdir(t / "c0" / "d3")) == ["f1", "f2"]
    assert sorted(os.listdir(t / "c0" / "d4")) == ["f0", "f1", "f2", "sub"]
    # another host's changes, seen once the watch brought them
    kv.put("/t/c0/d5/theirs", b"2")
    kv.delete("/t/c0/d5/f1")
    soon(lambda: sorted(os.listdir(t / "c0" / "d5")), ["f0", "f2", "theirs"],
            "the watch to bring the other host's changes")
    # a rename of a directory moves every key: nothing read ahead for the old place is used
    os.listdir(t / "c1" / "d0")
    os.listdir(t / "c1" / "d1")
    os.rename(t / "c1", t / "moved")
    assert sorted(os.listdir(t / "moved" / "d3")) == ["f0", "f1", "f2"]
    assert not (t / "c1").exists()


def test_a_key_created_deep_below_keeps_the_listings_above(etcd, kv, mount):
    """A key created elsewhere below a directory that a listing already holds changes nothing
    that listing names: the listings above the new key's own directory stay, and listing those
    directories again costs no round trip. A new directory, or a delete, still drops them."""
    kv.put("/t/a/b/f", b"1")
    kv.put("/t/x", b"1")
    m = mount(etcd, extra_args=WATCH)
    t = m.path / "t"
    assert sorted(os.listdir(t)) == ["a", "x"]
    assert os.listdir(t / "a") == ["b"]
    assert os.listdir(t / "a" / "b") == ["f"]
    kv.put("/t/a/b/new", b"2")
    soon(lambda: sorted(os.listdir(t / "a" / "b")), ["f", "new"], "the watch to bring the key")
    s0 = m.stats()
    assert sorted(os.listdir(t)) == ["a", "x"]
    assert os.listdir(t / "a") == ["b"]
    assert m.stats()["rt_total"] - s0["rt_total"] == 0
    kv.put("/t/a/c/g", b"3")  # a new directory in a: a's listing goes, t's stays
    soon(lambda: sorted(os.listdir(t / "a")), ["b", "c"], "the watch to bring the directory")
    assert sorted(os.listdir(t)) == ["a", "x"]
    kv.delete("/t/a/c/g")  # c goes with its only key
    soon(lambda: sorted(os.listdir(t / "a")), ["b"], "the watch to bring the delete")
    kv.delete("/t/a/b/f")
    kv.delete("/t/a/b/new")  # a goes with b's last key
    soon(lambda: sorted(os.listdir(t)), ["x"], "the watch to bring the last delete")


def etcd_tree(kv, prefix=b"/t/"):
    """What a mount must show of the keys under prefix: {file path: value} and directories."""
    files, dirs = {}, set()
    for value, meta in kv.get_prefix(prefix):
        rel = meta.key[len(prefix):].decode()
        parts = rel.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
        if parts[-1]:
            files[rel] = value
    # a key that is also a directory shows as that directory's %value
    return {(f + "/%value" if f in dirs else f): v for f, v in files.items()}, dirs


def test_walks_that_read_ahead_converge_under_random_changes(etcd, kv, mount):
    """Seeded: mount a walks and lists sibling directories (reading subtrees ahead) while
    another mount, a plain etcd client and a itself create and remove files all over the tree.
    a's own changes show in its listings at once; everything shows once the watch delivered
    it (never a listing read ahead that outlives a change)."""
    import random
    import time
    seed = int(os.environ.get("ETCDFS_WALK_SEED", time.time_ns() % 10**6))
    print(f"walk seed {seed} (ETCDFS_WALK_SEED={seed} replays it)")
    rng = random.Random(seed)
    load_tree(kv, children=3, subdirs=6, files=4)
    a = mount(etcd, name="a", extra_args=WATCH)
    b = mount(etcd, name="b", extra_args=WATCH)
    subdir = lambda: f"c{rng.randrange(3)}/d{rng.randrange(6)}"  # noqa: E731
    for rnd in range(25):
        parent = f"c{rng.randrange(3)}"
        for j in rng.sample(range(6), 3):  # siblings: a walk, as far as a can tell
            try:
                os.listdir(a.path / "t" / parent / f"d{j}")
            except FileNotFoundError:
                pass  # emptied by an outside client: the directory is gone
        for _ in range(rng.randrange(1, 5)):
            who, d = rng.choice(("etcd", "b", "a")), subdir()
            name = f"n{rnd}_{rng.randrange(1000)}"
            if rng.random() < 0.6:
                if who == "etcd":
                    kv.put(f"/t/{d}/{name}", name.encode())
                else:
                    m = a if who == "a" else b
                    os.makedirs(m.path / "t" / d, exist_ok=True)
                    (m.path / "t" / d / name).write_bytes(name.encode())
                    if who == "a":  # its own change: at once, in its own listing
                        assert name in os.listdir(a.path / "t" / d), (seed, rnd, d, name)
            else:
                files, _ = etcd_tree(kv)
                victims = [f for f in files if f.startswith(d + "/") and "%" not in f]
                if victims:
                    victim = rng.choice(victims)
                    if who == "etcd":
                        kv.delete(f"/t/{victim}")
                    else:
                        m = a if who == "a" else b
                        try:
                            os.unlink(m.path / "t" / victim)
                        except FileNotFoundError:
                            continue  # b's watch had not shown it yet
                        if who == "a":
                            assert victim.rsplit("/", 1)[1] not in os.listdir(
                                a.path / "t" / d), (seed, rnd, victim)
        if rnd % 5 == 4 or rnd == 24:
            want_files, want_dirs = etcd_tree(kv)
            soon(lambda: tree(a.path / "t"), (want_files, want_dirs),
                    f"mount a's walk to show etcd's tree (seed {seed}, round {rnd})")
