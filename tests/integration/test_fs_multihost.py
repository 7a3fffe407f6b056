"""Several etcdfs mounts of one etcd cluster, as on several hosts (issue 3: "two mounts of one
cluster see each other's changes"; close-to-open consistency).

Close-to-open: once a writer's close() has returned, an open() (or a listing) on any other
mount sees the write. So nothing here waits or retries after a close: every check runs at once.
Races (O_EXCL create, rmdir against create, writers in one directory) are run from threads
released together by a barrier, for many rounds."""

from __future__ import annotations

import errno
import os
import threading
import time

import pytest

from etcd_fixtures import wait_for
from fs_tool_helpers import dump, get, keys, mode_args, sh, try_errno

pytestmark = pytest.mark.needs_etcdfs


def listdir_or_errno(path):
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def seen(mode, fn, want):
    """What fn() returns, checked at once in close-to-open and strict mode. In watch mode a
    change from another host shows within the watch delay (docs/consistency.md): poll until
    fn() == want, up to a generous bound, and return the last value."""
    if mode != "watch":
        return fn()
    last = [None]

    def check():
        last[0] = fn()
        return last[0] == want

    try:
        wait_for(check, 10, "the watch to bring the change")
    except Exception:  # noqa: BLE001 - the caller's assertion reports the value
        pass
    return last[0]


@pytest.fixture
def two(mode, etcd, mount):
    """Two mounts (a, b) of the same single-member etcd."""
    return (mount(etcd, name="a", extra_args=mode_args(mode)),
            mount(etcd, name="b", extra_args=mode_args(mode)))


def race(*fns):
    """Run the functions in threads released together; return their results (an errno or
    None for each, via try_errno, or whatever they return)."""
    barrier = threading.Barrier(len(fns))
    results = [None] * len(fns)
    errors = []

    def run(i, fn):
        try:
            barrier.wait(timeout=60)
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(fns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "a racing operation hung"
    if errors:
        raise errors[0]
    return results


def write_file(path, data: bytes, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


# -- close-to-open between two mounts ----------------------------------------------------------

def test_changes_seen_by_other_mount_at_once(mode, two, kv):
    """At once in close-to-open and strict mode; within the watch delay in watch mode (seen)."""
    a, b = two

    def cat(m, name):
        return sh(f"cat {name}", m.path).stdout

    def ls(m, d):
        return sh(f"ls {d}", m.path).stdout.split()

    os.mkdir(a.path / "dir")
    assert os.listdir(b.path / "dir") == []  # b has looked (and cached) the empty listing
    assert not os.path.exists(b.path / "dir" / "f")  # ... and a negative lookup
    sh("echo x > dir/f", a.path)
    assert seen(mode, lambda: cat(b, "dir/f"), "x\n") == "x\n"
    assert seen(mode, lambda: ls(b, "dir"), ["f"]) == ["f"]
    # rewrites, longer and shorter: b never shows a stale size
    sh("echo 'a much longer line than before' > dir/f", a.path)
    longer = "a much longer line than before\n"
    assert seen(mode, lambda: cat(b, "dir/f"), longer) == longer
    assert os.stat(b.path / "dir" / "f").st_size == 31
    sh("echo y > dir/f", a.path)
    assert seen(mode, lambda: read_or_errno(b.path / "dir" / "f"), b"y\n") == b"y\n"
    # and the other way round
    sh("echo from-b >> dir/f", b.path)
    both = b"y\nfrom-b\n"
    assert seen(mode, lambda: read_or_errno(a.path / "dir" / "f"), both) == both
    # a rename
    sh("mv dir/f dir/g", a.path)
    assert seen(mode, lambda: ls(b, "dir"), ["g"]) == ["g"]
    assert (b.path / "dir" / "g").read_bytes() == both
    assert try_errno(open, b.path / "dir" / "f") == errno.ENOENT
    # a delete
    sh("rm dir/g", a.path)
    assert seen(mode, lambda: ls(b, "dir"), []) == []
    assert try_errno(open, b.path / "dir" / "g") == errno.ENOENT
    assert os.path.isdir(b.path / "dir")  # removing the last file kept the directory
    # a directory created, filled, renamed and removed on b is seen on a
    sh("mkdir -p x/y && echo z > x/y/z && mv x w", b.path)
    assert seen(mode, lambda: sorted(os.listdir(a.path)), ["dir", "w"]) == ["dir", "w"]
    assert (a.path / "w" / "y" / "z").read_bytes() == b"z\n"
    sh("rm -r w", b.path)
    assert seen(mode, lambda: sorted(os.listdir(a.path)), ["dir"]) == ["dir"]
    assert keys(kv, "/w") == []


def read_or_errno(path):
    """The content of path, or the name of the errno its open/read failed with."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return errno.errorcode.get(exc.errno, str(exc.errno))


def test_new_file_seen_after_listing_many_rounds(mode, two, kv):
    """b lists a directory (and so caches its entries); a creates a file in it and closes it;
    b's open of that name, and b's listing, show the file at once. Repeated: a cache that is
    only refreshed by the watch would be caught on some rounds."""
    a, b = two
    bad = []
    for i in range(100):
        d = f"c{i}"
        os.mkdir(a.path / d)
        assert seen(mode, lambda: listdir_or_errno(b.path / d), []) == []
        write_file(a.path / d / "f", b"x%d" % i)
        got = seen(mode, lambda: read_or_errno(b.path / d / "f"), b"x%d" % i)
        listed = seen(mode, lambda: os.listdir(b.path / d), ["f"])
        if got != b"x%d" % i or listed != ["f"]:
            bad.append((i, got, listed))
    assert not bad, (f"{len(bad)}/100 rounds: (round, b's read of the new file, b's listing) "
                     f"{bad[:8]}")


def test_delete_and_rename_seen_after_listing_many_rounds(mode, two, kv):
    """b has listed a directory holding f; a renames f to g, then removes g: b's listing and
    b's opens follow at once."""
    a, b = two
    bad = []
    for i in range(50):
        d = f"c{i}"
        os.mkdir(a.path / d)
        write_file(a.path / d / "f", b"x")
        assert os.listdir(b.path / d) == ["f"]
        assert (b.path / d / "f").read_bytes() == b"x"
        os.rename(a.path / d / "f", a.path / d / "g")
        after_rename = seen(mode, lambda: (os.listdir(b.path / d), read_or_errno(b.path / d / "f"),
                                           read_or_errno(b.path / d / "g")),
                            (["g"], "ENOENT", b"x"))
        os.unlink(a.path / d / "g")
        after_unlink = seen(mode, lambda: (os.listdir(b.path / d),
                                           read_or_errno(b.path / d / "g")), ([], "ENOENT"))
        if after_rename != (["g"], "ENOENT", b"x") or after_unlink != ([], "ENOENT"):
            bad.append((i, after_rename, after_unlink))
    assert not bad, (f"{len(bad)}/50 rounds: (round, b after the rename: listing, f, g; "
                     f"b after the unlink: listing, g) {bad[:6]}")


@pytest.mark.parametrize("mode", ["close-to-open"])
def test_old_name_never_opens_after_a_rename_elsewhere(mode, two, kv):
    """b has opened f; a renames f to g; from then on every open of f on b fails, also while
    b's watch replays the rename through b's own mount (notify_replay.h), which moves b's
    node to the key g while b's kernel may still lead the name f to it. Found by
    test_delete_and_rename_seen_after_listing_many_rounds under ASan (1 round in 50: b read f
    after a's rename had returned)."""
    a, b = two
    bad = []
    for i in range(30):
        d = f"r{i}"
        os.mkdir(a.path / d)
        write_file(a.path / d / "f", b"x")
        assert (b.path / d / "f").read_bytes() == b"x"
        os.rename(a.path / d / "f", a.path / d / "g")
        until = time.monotonic() + 0.3  # across b's watch event and the replayed rename
        while time.monotonic() < until:
            got = read_or_errno(b.path / d / "f")
            if got != "ENOENT":
                bad.append((i, got))
                break
        assert read_or_errno(b.path / d / "g") == b"x"
    assert not bad, f"{len(bad)}/30 rounds: b opened f after its rename: {bad[:5]}"


def test_open_file_on_one_mount_while_other_writes(mode, two, kv):
    """A reader that keeps its file open while another host writes, then reopens: the reopen
    shows the new content (the old descriptor may keep showing the old one)."""
    a, b = two
    (a.path / "f").write_bytes(b"version 1")
    with open(b.path / "f", "rb") as held:
        assert held.read() == b"version 1"
        (a.path / "f").write_bytes(b"version 2, longer")
        # watch mode: the reopen shows it within the watch's delay (docs/consistency.md)
        assert seen(mode, lambda: (b.path / "f").read_bytes(), b"version 2, longer") == \
            b"version 2, longer"
    assert (b.path / "f").read_bytes() == b"version 2, longer"
    assert get(kv, "/f") == b"version 2, longer"


def test_keys_written_directly_appear_in_both_mounts(mode, etcd, two, kv):
    a, b = two
    kv.put("/ext/seed", b"s")
    for m in (a, b):  # both have listed (and cached) the directory
        assert os.listdir(m.path / "ext") == ["seed"]
        assert not os.path.exists(m.path / "ext" / "by-ctl")
    etcd.ctl("put", "/ext/by-ctl", "from etcdctl")
    kv.put("/ext/by-etcd3", b"from etcd3 \x00\xff")
    kv.put("/ext/newdir/deep", b"d")
    for m in (a, b):
        assert sorted(os.listdir(m.path / "ext")) == ["by-ctl", "by-etcd3", "newdir", "seed"]
        assert (m.path / "ext" / "by-ctl").read_bytes() == b"from etcdctl"
        assert (m.path / "ext" / "by-etcd3").read_bytes() == b"from etcd3 \x00\xff"
        assert (m.path / "ext" / "newdir" / "deep").read_bytes() == b"d"
    etcd.ctl("put", "/ext/by-ctl", "changed")
    etcd.ctl("del", "/ext/by-etcd3")
    for m in (a, b):
        assert (m.path / "ext" / "by-ctl").read_bytes() == b"changed"
        assert os.stat(m.path / "ext" / "by-ctl").st_size == 7
        assert try_errno(open, m.path / "ext" / "by-etcd3") == errno.ENOENT
        assert sorted(os.listdir(m.path / "ext")) == ["by-ctl", "newdir", "seed"]
    etcd.ctl("del", "--prefix", "/ext/")
    for m in (a, b):
        assert os.listdir(m.path) == []  # a listing is an open: current at once
        # a lookup by name may be answered by the kernel's entry cache until the watch
        # event invalidates it (or cache_timeout passes): bounded wait, not close-to-open
        wait_for(lambda: not os.path.exists(m.path / "ext"), 10, "ext/ to vanish")


def test_editor_save_on_one_mount_read_on_other(mode, two, kv):
    """An editor-style save (temp file, fsync, rename over) on a is what b's next open reads,
    also when b had read (and cached) the old version, and sed -i on b is seen on a."""
    a, b = two
    kv.put("/cfg/app.conf", b"version=1\n")
    assert (b.path / "cfg" / "app.conf").read_bytes() == b"version=1\n"
    for i in range(2, 12):
        new = f"version={i}\n".encode() * i
        tmp = a.path / "cfg" / f".app.conf.{i}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, new)
        os.fsync(fd)
        os.close(fd)
        os.rename(tmp, a.path / "cfg" / "app.conf")
        got = seen(mode, lambda: read_or_errno(b.path / "cfg" / "app.conf"), new)
        assert got == new, f"save {i}"
    assert keys(kv, "/cfg/") == [b"/cfg/app.conf"]
    sh("sed -i 's/version=11/version=12/' cfg/app.conf", b.path)
    want = b"version=12\n" * 11
    assert seen(mode, lambda: (a.path / "cfg" / "app.conf").read_bytes(), want) == want
    assert get(kv, "/cfg/app.conf") == b"version=12\n" * 11


# -- races ---------------------------------------------------------------------------------------

def test_o_excl_create_race_one_winner(mode, two, kv):
    a, b = two
    rounds = 30
    for m in (a, b):
        os.listdir(m.path)
    for i in range(rounds):
        name = f"lock{i}"

        def grab(m, who):
            return try_errno(write_file, m.path / name, who.encode(),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL)

        ra, rb = race(lambda: grab(a, "a"), lambda: grab(b, "b"))
        outcome = sorted([ra, rb], key=lambda e: e or 0)
        assert outcome == [None, errno.EEXIST], \
            f"round {i}: a -> {ra}, b -> {rb} (want exactly one winner, the loser EEXIST)"
        winner = "a" if ra is None else "b"
        assert get(kv, f"/{name}") == winner.encode(), f"round {i}"
        for m, who in ((a, "a"), (b, "b")):  # open after the winner's close: current
            got = seen(mode, lambda: read_or_errno(m.path / name), winner.encode())
            assert got == winner.encode(), f"round {i}: winner {winner}, read on mount {who}"
    assert len(keys(kv)) == rounds


def test_concurrent_writers_different_files_one_dir(mode, two, kv):
    a, b = two
    os.mkdir(a.path / "shared")
    n = 15

    def writer(m, who):
        for i in range(n):
            write_file(m.path / "shared" / f"{who}-{i:02d}", f"{who} {i}".encode() * (i + 1))

    race(lambda: writer(a, "a1"), lambda: writer(a, "a2"), lambda: writer(b, "b1"),
         lambda: writer(b, "b2"))
    want = {f"/shared/{w}-{i:02d}".encode(): f"{w} {i}".encode() * (i + 1)
            for w in ("a1", "a2", "b1", "b2") for i in range(n)}
    held = {k: v for k, v in dump(kv).items() if not k.endswith(b"/")}
    assert held == want
    names = sorted(k.decode()[len("/shared/"):] for k in want)
    for m in (a, b):
        assert sorted(os.listdir(m.path / "shared")) == names
        assert sh("ls -l shared | wc -l", m.path).stdout.strip() == str(len(names) + 1)


def test_rmdir_races_create_inside(mode, two, kv):
    """rmdir on a against a file created inside on b: never both succeed (the file would be
    created in a removed directory), a created file is never lost, a removed directory leaves
    no key behind."""
    a, b = two
    rounds = 20
    for i in range(rounds):
        d = f"d{i}"
        os.mkdir(a.path / d)
        assert seen(mode, lambda: listdir_or_errno(b.path / d), []) == []  # b knows it (cached)

        def create():
            return try_errno(write_file, b.path / d / "file", b"data")

        r_rmdir, r_create = race(lambda: try_errno(os.rmdir, a.path / d), create)
        state = {k: v for k, v in dump(kv).items() if k.startswith(f"/{d}/".encode())}
        msg = f"round {i}: rmdir -> {r_rmdir}, create -> {r_create}, etcd {state}"
        if r_create is None:  # never lost, and reachable from both mounts
            assert state.get(f"/{d}/file".encode()) == b"data", msg
            for m in (a, b):
                assert seen(mode, lambda: listdir_or_errno(m.path / d), ["file"]) == ["file"], msg
        if r_rmdir is None and r_create is not None:  # removed: nothing left behind
            assert state == {}, msg
            for m in (a, b):
                assert seen(mode, lambda: d in os.listdir(m.path), False) is False, msg
        assert (r_rmdir is None) != (r_create is None), \
            "exactly one of rmdir and create succeeds; " + msg
        assert r_rmdir in (None, errno.ENOTEMPTY), msg
        assert r_create in (None, errno.ENOENT, errno.ESTALE), msg


def test_last_two_files_removed_on_two_mounts_leave_the_directory(mode, two, kv):
    """a and b remove the last two files of a directory at the same moment, each proving with
    the other's file (its witness) that the directory keeps a key. etcd orders the two Txns:
    the second finds its witness gone and compares the whole directory, so the directory keeps
    its marker and both mounts still show it, empty."""
    a, b = two
    for i in range(12):
        d = f"d{i}"
        kv.put(f"/{d}/x", b"x")
        kv.put(f"/{d}/y", b"y")
        for m in (a, b):
            assert seen(mode, lambda: listdir_or_errno(m.path / d), ["x", "y"]) == ["x", "y"]
        r = race(lambda: try_errno(os.unlink, a.path / d / "x"),
                 lambda: try_errno(os.unlink, b.path / d / "y"))
        assert r == [None, None], f"round {i}: {r}"
        assert keys(kv, f"/{d}/") == [f"/{d}/".encode()], f"round {i}: {keys(kv, '/')}"
        for m in (a, b):
            assert seen(mode, lambda: listdir_or_errno(m.path / d), []) == [], f"round {i}"


def test_create_in_directory_removed_by_other_mount(mode, two, kv):
    """b knows directory d; a removes it; b then creates d/file. On a local filesystem (and
    on NFS) the create fails (ENOENT/ESTALE): the directory is gone. Creating the file would
    silently bring back a directory that another host has just removed. Repeated, so that a
    check that only works once the watch has caught up is caught too."""
    a, b = two
    bad = []
    for i in range(20):
        d = f"d{i}"
        os.mkdir(a.path / d)
        assert seen(mode, lambda: listdir_or_errno(b.path / d), []) == []
        os.rmdir(a.path / d)
        assert keys(kv, f"/{d}") == []
        r = try_errno(write_file, b.path / d / "file", b"data")
        state = {k: v for k, v in dump(kv).items() if k.startswith(f"/{d}/".encode())}
        if r not in (errno.ENOENT, errno.ESTALE) or state:
            bad.append((i, errno.errorcode.get(r, r), state))
    assert not bad, (f"{len(bad)}/20 rounds: (round, create's errno, keys left in etcd) "
                     f"{bad[:6]}")


# -- a 3-member cluster, each mount on a different member ----------------------------------------

@pytest.fixture
def cluster_kv(etcd_cluster):
    c = etcd_cluster.client()
    yield c
    c.close()


@pytest.fixture
def two_on_cluster(mode, etcd_cluster, cluster_kv, mount):
    """Mount a on member 0 and mount b on member 2 of a 3-member cluster; the file /c/f
    exists before they mount."""
    cluster_kv.put("/c/f", b"initial")
    a = mount(etcd_cluster[0].endpoint, name="a", extra_args=mode_args(mode))
    b = mount(etcd_cluster[2].endpoint, name="b", extra_args=mode_args(mode))
    return a, b


def test_cluster_close_to_open_across_members(mode, etcd_cluster, cluster_kv, two_on_cluster):
    """Alternate writer and reader on two members: no open ever reads stale content (a read
    served by a lagging member would)."""
    a, b = two_on_cluster
    for m in (a, b):
        assert (m.path / "c" / "f").read_bytes() == b"initial"
    for i in range(30):
        w, r = (a, b) if i % 2 == 0 else (b, a)
        data = f"round {i} ".encode() * (i + 1)
        write_file(w.path / "c" / "f", data)
        got = seen(mode, lambda: read_or_errno(r.path / "c" / "f"), data)
        assert got == data, f"round {i}: read {got!r}, etcd has {get(cluster_kv, '/c/f')!r}"
    assert get(cluster_kv, "/c/f") == b"round 29 " * 30
    etcd_cluster.ctl("put", "/c/f", "via etcdctl")
    for m in (a, b):
        assert seen(mode, lambda: (m.path / "c" / "f").read_bytes(), b"via etcdctl") == \
            b"via etcdctl"
    for i in range(10):  # O_EXCL across members: one winner
        res = race(lambda: try_errno(write_file, a.path / "c" / f"x{i}", b"a",
                                     os.O_WRONLY | os.O_CREAT | os.O_EXCL),
                   lambda: try_errno(write_file, b.path / "c" / f"x{i}", b"b",
                                     os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        assert sorted(res, key=lambda e: e or 0) == [None, errno.EEXIST], f"round {i}: {res}"
        winner = b"a" if res[0] is None else b"b"
        assert get(cluster_kv, f"/c/x{i}") == winner


def test_cluster_new_names_across_members(mode, etcd_cluster, cluster_kv, two_on_cluster):
    """A file created through one member is seen by an open and a listing through another
    member's mount as soon as the creator's close returned."""
    a, b = two_on_cluster
    bad = []
    for i in range(40):
        w, r = (a, b) if i % 2 == 0 else (b, a)
        assert "new%d" % i not in os.listdir(r.path / "c")
        write_file(w.path / "c" / f"new{i}", b"n%d" % i)
        got = seen(mode, lambda: read_or_errno(r.path / "c" / f"new{i}"), b"n%d" % i)
        listed = seen(mode, lambda: f"new{i}" in os.listdir(r.path / "c"), True)
        if got != b"n%d" % i or not listed:
            bad.append((i, got, listed))
    assert not bad, f"{len(bad)}/40 rounds: (round, read of the new file, in listing) {bad[:8]}"


def test_create_where_another_host_removed_the_file_this_mount_wrote_last(etcd, two):
    """A create proves its directory exists by one key this mount wrote there (not by reading
    the whole directory). When another host removed that key but the directory lives on, the
    create still succeeds; when the whole directory is gone, it fails with ENOENT."""
    a, b = two
    os.mkdir(a.path / "d")
    (a.path / "d" / "first").write_bytes(b"1")  # the key a's creates in d rely on
    (b.path / "d" / "other").write_bytes(b"2")
    os.unlink(b.path / "d" / "first")
    fd = os.open(a.path / "d" / "second", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"3")
    os.close(fd)
    assert etcd.ctl("get", "--print-value-only", "/d/second") == "3\n"
    for name in ("other", "second"):
        os.unlink(b.path / "d" / name)
    etcd.ctl("del", "--prefix", "/d/")  # the marker too: the directory is gone
    with pytest.raises(FileNotFoundError):
        os.open(a.path / "d" / "third", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    assert etcd.ctl("get", "--prefix", "--keys-only", "/d/") == ""
