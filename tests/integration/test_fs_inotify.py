"""inotify on a mount reports changes made elsewhere (etcdctl, another mount): IN_CREATE,
IN_MODIFY/IN_CLOSE_WRITE and IN_DELETE in a watched directory (docs/consistency.md, "inotify").
The events come from the daemon replaying the change through its own mount; a replay never
writes to etcd (the store revision does not move)."""

import os
import queue
import stat
import subprocess
import threading
import time

import pytest

from fs_tool_helpers import revision

pytestmark = pytest.mark.needs_etcdfs

DEADLINE_S = 20.0  # generous: the events normally arrive within milliseconds


class Watcher:
    """`inotifywait -m` on a directory; events as (set of event names, file name)."""

    def __init__(self, path):
        self.proc = subprocess.Popen(
            ["inotifywait", "-m", "--format", "%e %f", "-e",
             "create,modify,close_write,delete,moved_from,moved_to,attrib", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:  # "Setting up watches." then "Watches established."
            if "established" in line:
                break
        else:
            raise AssertionError("inotifywait did not start")
        self.events = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            kinds, _, name = line.rstrip("\n").partition(" ")
            self.events.put((set(kinds.split(",")), name))

    def wait_for(self, kind, name, times=1):
        """Waits until `times` events of this kind for this name were seen; returns every event
        seen so far."""
        until = time.monotonic() + DEADLINE_S
        while self.count(kind, name) < times:
            left = until - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} for {name!r}; saw {self.seen}")
            try:
                self.seen.append(self.events.get(timeout=left))
            except queue.Empty:
                pass
        return self.seen

    def count(self, kind, name):
        return sum(1 for k, n in self.seen if kind in k and n == name)

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def watch():
    watchers = []

    def start(path):
        w = Watcher(path)
        watchers.append(w)
        return w

    yield start
    for w in watchers:
        w.close()


@pytest.mark.parametrize("mode", ["close-to-open", "watch", "strict"])
def test_etcdctl_create_change_delete_give_events(etcd, kv, mount, watch, mode):
    kv.put("/d/seed", b"x")
    m = mount(etcd, extra_args=(f"--consistency={mode}",))
    assert (m / "d" / "seed").read_bytes() == b"x"
    w = watch(m / "d")

    etcd.ctl("put", "/d/new", "one")
    rev = revision(kv)
    w.wait_for("CREATE", "new")
    w.wait_for("CLOSE_WRITE", "new")  # the end of the replay
    assert (m / "d" / "new").read_bytes() == b"one"

    etcd.ctl("put", "/d/new", "changed")
    rev = revision(kv)
    w.wait_for("MODIFY", "new")
    w.wait_for("CLOSE_WRITE", "new")
    assert (m / "d" / "new").read_bytes() == b"changed"
    assert revision(kv) == rev  # the replay wrote nothing

    etcd.ctl("put", "/d/seed", "y")  # a key the kernel knew before the watch started
    w.wait_for("MODIFY", "seed")

    etcd.ctl("del", "/d/new")
    rev = revision(kv)
    w.wait_for("DELETE", "new")
    assert not (m / "d" / "new").exists()
    assert kv.get("/d/new")[0] is None
    assert revision(kv) == rev


def test_changes_on_another_mount_give_events(etcd, kv, mount, watch):
    kv.put("/d/seed", b"x")
    a, b = mount(etcd, name="a"), mount(etcd, name="b")
    assert (b / "d" / "seed").read_bytes() == b"x"
    w = watch(b / "d")

    (a / "d" / "f").write_bytes(b"1")
    w.wait_for("CREATE", "f")
    w.wait_for("CLOSE_WRITE", "f")
    (a / "d" / "f").write_bytes(b"22")
    w.wait_for("MODIFY", "f")
    rev = revision(kv)
    (a / "d" / "f").unlink()
    w.wait_for("DELETE", "f")
    assert revision(kv) == rev + 1  # the delete itself, nothing more
    assert sorted(p.name for p in (b / "d").iterdir()) == ["seed"]


def test_chmod_on_another_mount_gives_attrib(etcd, kv, mount, watch):
    """An attribute record changed elsewhere (docs/design-attributes.md): IN_ATTRIB."""
    kv.put("/d/f", b"x")
    a, b = mount(etcd, name="a"), mount(etcd, name="b")
    assert (b / "d" / "f").read_bytes() == b"x"
    w = watch(b / "d")
    rev = revision(kv)
    os.chmod(a / "d" / "f", 0o700)
    w.wait_for("ATTRIB", "f")
    assert stat.S_IMODE(os.stat(b / "d" / "f").st_mode) == 0o700
    os.utime(a / "d" / "f", (1, 1))
    w.wait_for("ATTRIB", "f")
    assert revision(kv) == rev + 2  # the two records written, the replays wrote nothing
    assert os.stat(b / "d" / "f").st_mtime == 1


def test_rename_on_another_mount_gives_moved_events(etcd, kv, mount, watch):
    kv.put("/d/old", b"content")
    a, b = mount(etcd, name="a"), mount(etcd, name="b")
    assert (b / "d" / "old").read_bytes() == b"content"
    w = watch(b / "d")
    rev = revision(kv)
    os.rename(a / "d" / "old", a / "d" / "new")
    w.wait_for("MOVED_TO", "new")
    assert w.count("MOVED_FROM", "old") == 1
    assert (b / "d" / "new").read_bytes() == b"content"
    assert not (b / "d" / "old").exists()
    assert revision(kv) == rev + 1  # the rename itself, nothing more
    # the moved inode is current: a later change elsewhere shows through it
    etcd.ctl("put", "/d/new", "changed")
    w.wait_for("MODIFY", "new")
    assert (b / "d" / "new").read_bytes() == b"changed"


@pytest.mark.parametrize("mode", ["close-to-open", "watch"])
def test_replays_of_creates_and_changes_read_nothing(etcd, kv, mount, watch, mode):
    """A replayed create is answered from the node the event filled in (the kernel's attribute
    request of the replay's open included; the old build read each new key once), and a
    replayed change from the node table, which the watch keeps current."""
    kv.put("/d/seed", b"x")
    m = mount(etcd, extra_args=(f"--consistency={mode}",))
    assert sorted(os.listdir(m / "d")) == ["seed"]
    w = watch(m / "d")
    s0 = m.stats()
    for i in range(10):
        kv.put(f"/d/n{i}", b"1")
    for i in range(10):
        w.wait_for("CLOSE_WRITE", f"n{i}")
    s1 = m.stats()
    for i in range(10):
        kv.put(f"/d/n{i}", b"22")
    for i in range(10):
        w.wait_for("CLOSE_WRITE", f"n{i}", times=2)
    s2 = m.stats()
    assert s1["rt_total"] - s0["rt_total"] == 0
    assert s2["rt_total"] - s1["rt_total"] == 0
    assert (m / "d" / "n3").read_bytes() == b"22"
    assert os.stat(m / "d" / "n4").st_size == 2


@pytest.mark.parametrize("mode", ["close-to-open", "watch"])
def test_changes_in_directories_never_looked_at_are_not_replayed(etcd, kv, mount, watch, mode):
    """A watch holds an inode, and the kernel holds none of a directory this mount never looked
    up: changes made elsewhere in such a directory are not replayed. Before, each one cost
    every watching mount a lookup, and every key created anywhere stayed in its node table and
    the kernel (1,000 creates elsewhere: 1,000 nodes, 243 KB). Once the directory is known (here
    by a listing of its parent), changes of files this mount never looked up are replayed, each
    answered from the event (the old build read each such file once)."""
    for i in range(20):
        kv.put(f"/old/f{i}", b"x")
    a = mount(etcd, name="a")
    b = mount(etcd, name="b", extra_args=(f"--consistency={mode}",))
    s0 = b.stats()  # nothing below the root looked up
    (a / "new" / "deep").mkdir(parents=True)
    for i in range(200):
        (a / "new" / "deep" / f"n{i}").write_bytes(b"n")
    for i in range(10):
        (a / "old" / f"f{i}").write_bytes(b"rewritten")
        os.chmod(a / "old" / f"f{i}", 0o600)
    for i in range(5):
        os.unlink(a / "old" / f"f{i}")
    time.sleep(2)  # the events arrived long since (ms), and any replay has run
    s1 = b.stats()
    assert s1["rt_total"] - s0["rt_total"] == 0
    assert s1["cache_files"] == s0["cache_files"]
    assert sorted(os.listdir(b.path)) == ["new", "old"]  # "old" is known now, its files not
    w = watch(b / "old")
    s2 = b.stats()
    for i in range(10, 20):
        (a / "old" / f"f{i}").write_bytes(b"again")
    for i in range(10, 20):
        w.wait_for("CLOSE_WRITE", f"f{i}")
    assert b.stats()["rt_total"] - s2["rt_total"] == 0
    assert (b / "old" / "f17").read_bytes() == b"again"


@pytest.mark.parametrize("mode", ["close-to-open", "watch", "strict"])
def test_replays_deep_in_the_tree_cost_no_round_trip(etcd, kv, mount, watch, mode):
    """The replay walks the path from the mount root; a directory on the way whose kernel entry
    expired (strict mode keeps none) is answered from the node table, with timeout 0. Before,
    each replay in strict mode looked up every directory on its path in etcd (10 creates two
    levels down: 10 round trips; 10 renames: 20)."""
    for i in range(10):
        kv.put(f"/d/e/old{i}", b"x")
    a = mount(etcd, name="a")
    b = mount(etcd, name="b", options=("cache_timeout=0.2",),
              extra_args=(f"--consistency={mode}",))
    assert sorted(os.listdir(b / "d" / "e")) == [f"old{i}" for i in range(10)]
    for i in range(10):
        assert (b / "d" / "e" / f"old{i}").read_bytes() == b"x"
    w = watch(b / "d" / "e")
    time.sleep(0.5)  # every entry the kernel holds has expired
    s0 = b.stats()
    for i in range(10):
        (a / "d" / "e" / f"new{i}").write_bytes(b"n")
    for i in range(10):
        w.wait_for("CLOSE_WRITE", f"new{i}")
    for i in range(10):
        (a / "d" / "e" / f"old{i}").write_bytes(b"changed")
    for i in range(10):
        w.wait_for("CLOSE_WRITE", f"old{i}")
    for i in range(10):
        os.rename(a / "d" / "e" / f"new{i}", a / "d" / "e" / f"moved{i}")
    for i in range(10):
        w.wait_for("MOVED_TO", f"moved{i}")
    for i in range(10):
        os.chmod(a / "d" / "e" / f"old{i}", 0o600)
    for i in range(10):
        w.wait_for("ATTRIB", f"old{i}")
    for i in range(10):
        os.unlink(a / "d" / "e" / f"old{i}")
    for i in range(10):
        w.wait_for("DELETE", f"old{i}")
    s1 = b.stats()
    assert s1["rt_total"] - s0["rt_total"] == 0
    assert sorted(os.listdir(b / "d" / "e")) == [f"moved{i}" for i in range(10)]


@pytest.mark.parametrize("mode", ["close-to-open", "watch"])
def test_replays_of_expired_names_cost_no_round_trip(etcd, kv, mount, watch, mode):
    """Once the kernel's entries expired, a replay's path walk looks each name up again: the
    name whose change it replays is answered from what the watch told the node table (present,
    or absent after a delete), and the event of a record deleted with its file is not replayed
    at all. (The files sit at the root: a directory on the way, its entry expired too, would
    cost the lookup the watch gives no answer for.)"""
    for i in range(5):
        kv.put(f"/f{i}", b"x")
    a = mount(etcd, name="a")
    b = mount(etcd, name="b", options=("cache_timeout=0.2",),
              extra_args=(f"--consistency={mode}",))
    for i in range(5):
        assert (b / f"f{i}").read_bytes() == b"x"
    w = watch(b.path)
    time.sleep(0.5)  # every entry the kernel holds has expired
    s0 = b.stats()
    for i in range(5):
        kv.put(f"/f{i}", b"changed")
    for i in range(5):
        w.wait_for("CLOSE_WRITE", f"f{i}")
    for i in range(5):
        os.chmod(a / f"f{i}", 0o600)
    for i in range(5):
        w.wait_for("ATTRIB", f"f{i}")
    for i in range(5):
        os.unlink(a / f"f{i}")
    for i in range(5):
        w.wait_for("DELETE", f"f{i}")
    s1 = b.stats()
    assert s1["rt_total"] - s0["rt_total"] == 0


def test_own_changes_are_not_replayed(etcd, kv, mount, watch):
    kv.put("/d/seed", b"x")
    m = mount(etcd)
    w = watch(m / "d")
    (m / "d" / "mine").write_bytes(b"1")
    w.wait_for("CLOSE_WRITE", "mine")
    (m / "d" / "mine").write_bytes(b"2")
    # A remote change after ours: once its event arrived, any replay of ours would have too
    # (the watch delivers in revision order and the replay queue is first in, first out).
    etcd.ctl("put", "/d/marker", "m")
    w.wait_for("CLOSE_WRITE", "marker")
    assert w.count("CREATE", "mine") == 1
    assert w.count("CLOSE_WRITE", "mine") == 2  # the two writes, no replayed close
    assert kv.get("/d/mine")[0] == b"2"


def fuse_fd_holders(pid):
    """Thread ids of the process, and whether each one's descriptor table holds /dev/fuse."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        fd_dir = f"/proc/{pid}/task/{tid}/fd"
        links = []
        for fd in os.listdir(fd_dir):
            try:
                links.append(os.readlink(f"{fd_dir}/{fd}"))
            except FileNotFoundError:
                pass
        out[tid] = "/dev/fuse" in links
    return out


def test_replay_thread_holds_no_fuse_descriptor(etcd, kv, mount, watch):
    """kill -9 of the daemon during a replay must not hang: the replay thread waits for its own
    request, so its descriptor table must not keep the FUSE device (and the connection) alive."""
    kv.put("/d/seed", b"x")
    m = mount(etcd)
    w = watch(m / "d")
    etcd.ctl("put", "/d/new", "1")
    w.wait_for("CLOSE_WRITE", "new")
    holders = fuse_fd_holders(m.proc.pid)
    assert holders[str(m.proc.pid)]  # the session itself
    assert not all(holders.values()), holders  # one thread (the replay) without it
