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
