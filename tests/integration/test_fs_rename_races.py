"""Directory rename racing with changes below the directory, from another client.

A subtree rename is one Txn guarded by the snapshot it moves. A key deleted by someone else
between the snapshot and the Txn must not come back at the destination: if the delete removed
the source key, the rename happened after it, so the destination must not hold that key."""

import os
import threading
import time

import pytest

pytestmark = pytest.mark.needs_etcdfs


def test_delete_racing_a_directory_rename_is_not_resurrected(etcd, kv, mount):
    m = mount(etcd)
    resurrected = []
    for rnd in range(80):
        src, dst = f"/src{rnd}/", f"/dst{rnd}/"
        for i in range(30):
            kv.put(f"{src}f{i:02d}", f"v{i}")
        victim = f"f{(rnd * 7) % 30:02d}"
        os.listdir(m.path / f"src{rnd}")  # the mount knows the directory
        go = threading.Barrier(2)
        outcome = {}

        def rename():
            go.wait()
            try:
                os.rename(m.path / f"src{rnd}", m.path / f"dst{rnd}")
                outcome["rename"] = "ok"
            except OSError as e:
                outcome["rename"] = e.errno

        t = threading.Thread(target=rename)
        t.start()
        go.wait()
        # Sweep the delete across the rename's snapshot -> Txn window (a few ms wide).
        time.sleep((rnd % 40) * 0.0001)
        deleted = kv.delete(f"{src}{victim}")
        t.join()
        assert outcome["rename"] == "ok", outcome
        at_dst = kv.get(f"{dst}{victim}")[0] is not None
        if deleted and at_dst:
            resurrected.append(rnd)
        # Whatever the order, nothing else is lost and the source is empty.
        moved = {m_.key.decode() for _, m_ in kv.get_prefix(dst)}
        others = {f"{dst}f{i:02d}" for i in range(30)} - {f"{dst}{victim}"}
        assert others <= moved
        assert list(kv.get_prefix(src)) == []
    assert resurrected == [], f"deleted keys brought back in rounds {resurrected}"


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_two_hosts_moving_the_last_entries_out_keep_the_directory(etcd, kv, mount, kind):
    """Host A moves d/a out while host B moves d/b out: each saw the other's entry, yet the
    directory must survive as an empty directory (its marker written by whichever Txn left it
    empty, decided by etcd, not by either host's cache)."""
    m1, m2 = mount(etcd, name="a"), mount(etcd, name="b")
    lost = []
    for rnd in range(25):
        d = f"d{rnd}"
        for name in ("a", "b"):
            kv.put(f"/{d}/{name}" + ("/inner" if kind == "dir" else ""), "v")
        kv.put(f"/out{rnd}/", "")
        for m in (m1, m2):
            assert sorted(os.listdir(m.path / d)) == ["a", "b"]  # both hosts cache both entries
        go = threading.Barrier(2)
        errors = []

        def move(m, name):
            go.wait()
            try:
                os.rename(m.path / d / name, m.path / f"out{rnd}" / name)
            except OSError as e:
                errors.append(e)

        threads = [threading.Thread(target=move, args=(m1, "a")),
                   threading.Thread(target=move, args=(m2, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        left = [m_.key.decode() for _, m_ in kv.get_prefix(f"/{d}/")]
        if left != [f"/{d}/"]:
            lost.append((rnd, left))
        moved = sorted(m_.key.decode() for _, m_ in kv.get_prefix(f"/out{rnd}/"))
        suffix = "/inner" if kind == "dir" else ""
        assert moved == [f"/out{rnd}/", f"/out{rnd}/a{suffix}", f"/out{rnd}/b{suffix}"]
    assert lost == [], f"directory not kept as an empty directory: {lost}"
    for m in (m1, m2):
        assert os.path.isdir(m.path / "d0") and os.listdir(m.path / "d0") == []


def test_rmdir_and_a_move_from_two_hosts_keep_the_parent(etcd, kv, mount):
    """Host A removes p/e (an empty directory) while host B moves p/f out: p stays."""
    m1, m2 = mount(etcd, name="a"), mount(etcd, name="b")
    for rnd in range(25):
        kv.put(f"/p{rnd}/e/", "")
        kv.put(f"/p{rnd}/f", "v")
        for m in (m1, m2):
            assert sorted(os.listdir(m.path / f"p{rnd}")) == ["e", "f"]
        go = threading.Barrier(2)

        def rmdir():
            go.wait()
            os.rmdir(m1.path / f"p{rnd}" / "e")

        t = threading.Thread(target=rmdir)
        t.start()
        go.wait()
        os.rename(m2.path / f"p{rnd}" / "f", m2.path / f"f{rnd}")
        t.join()
        assert [m_.key.decode() for _, m_ in kv.get_prefix(f"/p{rnd}/")] == [f"/p{rnd}/"]
