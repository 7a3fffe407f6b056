"""Past revisions as read-only directories (issue 18, docs/semantics.md "Past revisions"):
<mnt>/.etcdfs/at/<REV>/ is the mounted prefix as etcd held it at revision REV.

Every tree shown at a revision is compared with what etcdctl (an independent client) returns
for `get --prefix --rev=REV`; compaction, future revisions and every write path are checked."""

import base64
import errno
import fcntl
import json
import os
import queue
import random
import subprocess
import time

import pytest

from test_fs_inotify import Watcher

pytestmark = pytest.mark.needs_etcdfs

NAMES = ["a", "b", "c", "conf", "x.yaml"]
DIRS = ["", "d1/", "d2/", "d1/sub/", "d3/"]


def revision(etcd):
    return int(etcd.status()["header"]["revision"])


def etcd_tree(etcd, rev):
    """{relative path: bytes} of every key under "/" at rev, and the set of directories,
    from etcdctl (keys here are plain names, so the key mapping is the identity)."""
    out = json.loads(etcd.ctl("get", "/", "--prefix", f"--rev={rev}", "-w", "json"))
    files, dirs = {}, set()
    for kv in out.get("kvs") or []:
        key = base64.b64decode(kv["key"]).decode()[1:]
        value = base64.b64decode(kv.get("value", ""))
        parts = key.split("/")
        for i in range(1, len(parts)):
            dirs.add("/".join(parts[:i]))
        if key.endswith("/"):
            continue  # a directory marker: the directory exists, holding nothing more
        files[key] = value
    return files, dirs


def mount_tree(root):
    """The same view of a directory of the mount: files with contents, and directories."""
    files, dirs = {}, set()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            dirs.add(d if rel == "." else f"{rel}/{d}")
        for f in filenames:
            path = f if rel == "." else f"{rel}/{f}"
            with open(os.path.join(dirpath, f), "rb") as fh:
                files[path] = fh.read()
    return files, dirs


def random_history(m, etcd, kv, seed, steps):
    """Writes, renames and deletes through the mount and from another client."""
    rnd = random.Random(seed)
    for step in range(steps):
        op = rnd.choice(["write", "write", "put", "mkdir", "rename", "mvdir", "delete",
                         "rmtree"])
        d = rnd.choice(DIRS)
        path = m.path / (d + rnd.choice(NAMES))
        try:
            if op == "write":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(f"{step}:{seed}".encode() * rnd.randint(1, 50))
            elif op == "put":
                kv.put("/" + d + rnd.choice(NAMES), f"remote {step}")
            elif op == "mkdir":
                (m.path / (d + "new" + str(step % 3))).mkdir(parents=True, exist_ok=True)
            elif op == "rename":
                target = m.path / (rnd.choice(DIRS) + rnd.choice(NAMES))
                if path.is_file() and not target.is_dir():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    os.rename(path, target)
            elif op == "mvdir":  # one MoveKey Txn for the whole subtree
                src, dst = rnd.sample(["d1", "d2", "d3"], 2)
                if (m.path / src).is_dir() and not (m.path / dst).exists():
                    os.rename(m.path / src, m.path / dst)
            elif op == "delete":
                if path.is_file():
                    path.unlink()
            elif op == "rmtree":
                subprocess.run(["rm", "-rf", str(m.path / d)], check=True) if d else None
        except OSError as e:  # a name that is a directory and a file at once, etc.
            assert e.errno in (errno.EISDIR, errno.ENOTDIR, errno.ENOTEMPTY, errno.EEXIST), e


@pytest.mark.parametrize("seed", [1, 2])
def test_every_revision_shows_what_etcdctl_returns_for_it(etcd, kv, mount, seed):
    print(f"seed {seed}")
    m = mount(etcd)
    random_history(m, etcd, kv, seed, 40)
    for rev in range(1, revision(etcd) + 1):  # every revision, the intermediate ones too
        at = m.path / ".etcdfs" / "at" / str(rev)
        assert mount_tree(at) == etcd_tree(etcd, rev), f"seed {seed}, revision {rev}"


def test_a_past_tree_does_not_follow_later_changes(etcd, kv, mount):
    m = mount(etcd)
    (m.path / "app").mkdir()
    (m.path / "app" / "config").write_text("v1\n")
    rev1 = revision(etcd)
    at = m.path / ".etcdfs" / "at" / str(rev1)
    assert (at / "app" / "config").read_text() == "v1\n"  # read (and cached) now
    (m.path / "app" / "config").write_text("v2 longer\n")
    kv.put("/app/new", "n")
    os.rename(m.path / "app" / "config", m.path / "app" / "moved")
    assert (at / "app" / "config").read_text() == "v1\n"
    assert sorted(os.listdir(at / "app")) == ["config"]
    rev2 = revision(etcd)
    at2 = m.path / ".etcdfs" / "at" / str(rev2)
    assert sorted(os.listdir(at2 / "app")) == ["moved", "new"]
    assert (at2 / "app" / "moved").read_text() == "v2 longer\n"
    r = subprocess.run(["diff", "-r", str(at / "app"), str(m.path / "app")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Only in" in r.stdout, r


def test_at_lists_the_current_revision_and_stays_hidden(etcd, kv, mount):
    m = mount(etcd)
    kv.put("/k", "v")
    assert ".etcdfs" not in os.listdir(m.path)
    assert sorted(os.listdir(m.path / ".etcdfs")) == ["at", "metrics", "stats"]
    rev = revision(etcd)
    # the oldest revision etcd has (1: nothing compacted yet) and the current one
    assert sorted(os.listdir(m.path / ".etcdfs" / "at"), key=int) == ["1", str(rev)]
    kv.put("/k", "v2")
    kv.put("/k", "v3")
    etcd.ctl("compact", str(rev + 1))
    now = revision(etcd)
    assert sorted(os.listdir(m.path / ".etcdfs" / "at"), key=int) == [str(rev + 1), str(now)]
    etcd.ctl("compact", str(now))
    assert os.listdir(m.path / ".etcdfs" / "at") == [str(now)]
    # a past root has no .etcdfs of its own
    assert os.listdir(m.path / ".etcdfs" / "at" / str(now)) == ["k"]
    assert not (m.path / ".etcdfs" / "at" / str(now) / ".etcdfs").exists()
    # names that are not revisions name nothing
    for name in ["0", "-1", "01", "abc", "1x", "99999999999999999999"]:
        assert not (m.path / ".etcdfs" / "at" / name).exists(), name


def test_compacted_and_future_revisions_are_enoent_with_one_line_each(etcd, kv, mount):
    m = mount(etcd)
    kv.put("/k", "old")
    old = revision(etcd)
    kv.put("/k", "new")
    at = m.path / ".etcdfs" / "at"
    assert (at / str(old) / "k").read_text() == "old"
    future = revision(etcd) + 1000
    with pytest.raises(FileNotFoundError):
        os.stat(at / str(future))
    etcd.ctl("compact", str(revision(etcd)))
    # a revision not yet looked up: gone cleanly
    with pytest.raises(FileNotFoundError):
        os.listdir(at / str(old - 1))
    log = m.log_text()
    assert f".etcdfs/at/{future}: revision not reached yet" in log, log
    assert f".etcdfs/at/{old - 1}: revision compacted" in log, log


def test_every_change_below_at_is_erofs(etcd, kv, mount):
    m = mount(etcd)
    (m.path / "d").mkdir()
    (m.path / "d" / "f").write_text("content")
    past = m.path / ".etcdfs" / "at" / str(revision(etcd))
    f, d = past / "d" / "f", past / "d"
    assert f.read_text() == "content"

    def erofs(fn, *args):
        with pytest.raises(OSError) as e:
            fn(*args)
        assert e.value.errno == errno.EROFS, (fn, args, e.value)

    erofs(open, f, "w")
    erofs(open, f, "a")
    erofs(os.open, f, os.O_RDONLY | os.O_TRUNC)
    erofs(os.truncate, f, 0)
    erofs(open, d / "new", "w")
    erofs(os.mkdir, d / "sub")
    erofs(os.rmdir, d)
    erofs(os.unlink, f)
    erofs(os.rename, f, d / "g")
    erofs(os.rename, f, m.path / "g")
    erofs(os.rename, m.path / "d" / "f", d / "g")
    erofs(os.symlink, "f", d / "link")
    erofs(os.mkfifo, d / "fifo")
    erofs(os.setxattr, f, "user.etcd.ttl", b"60")
    erofs(os.utime, f, None)
    erofs(os.chmod, f, 0o600)
    with open(f, "rb") as fh:
        erofs(fcntl.flock, fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert os.stat(f).st_mode & 0o222 == 0 and os.stat(d).st_mode & 0o222 == 0
    # nothing changed in etcd
    assert kv.get("/d/f")[0] == b"content"
    assert [k.key for _, k in kv.get_prefix("/")] == [b"/d/", b"/d/f"] or \
        sorted(k.key for _, k in kv.get_prefix("/")) == [b"/d/", b"/d/f"]


def test_a_cat_at_a_revision_costs_one_round_trip_and_then_none(etcd, kv, mount):
    m = mount(etcd)
    kv.put("/app/config", "c")
    rev = revision(etcd)
    at = m.path / ".etcdfs" / "at" / str(rev)
    os.stat(at)  # the revision's root: one Range, once
    s0 = m.stats()
    assert (at / "app" / "config").read_text() == "c"
    s1 = m.stats()
    # two names looked up, one read-only Txn each (the second brings the value); no read
    assert s1["rt_total"] - s0["rt_total"] == 2, (s0, s1)
    assert s1["rt_txn"] - s0["rt_txn"] == 2
    for _ in range(3):
        assert (at / "app" / "config").read_text() == "c"
    os.listdir(at / "app")
    s2 = m.stats()
    # a listing, once; the value is never read again
    assert s2["rt_total"] - s1["rt_total"] == 1, (s1, s2)
    os.listdir(at / "app")
    assert os.stat(at / "app" / "config").st_size == 1
    assert m.stats()["rt_total"] == s2["rt_total"]


def test_two_mounts_show_the_same_past(etcd, kv, mount):
    a, b = mount(etcd), mount(etcd)
    (a.path / "x").write_text("1")
    (b.path / "y").write_text("2")
    rev = revision(etcd)
    (a.path / "x").write_text("changed")
    ta = mount_tree(a.path / ".etcdfs" / "at" / str(rev))
    tb = mount_tree(b.path / ".etcdfs" / "at" / str(rev))
    assert ta == tb == ({"x": b"1", "y": b"2"}, set())


def test_encrypted_values_open_at_their_revision_with_the_key_that_sealed_them(
        etcd, kv, mount, tmp_path):
    """Versions sealed by key 1, then by key 2: the past version opens with key 1 while the key
    file still holds it; with key 1 gone from the key file it is EIO with a log line."""
    line1, line2 = f"1 {os.urandom(32).hex()}\n", f"2 {os.urandom(32).hex()}\n"
    k1, k12, k2 = tmp_path / "k1", tmp_path / "k12", tmp_path / "k2"
    for path, text in ((k1, line1), (k12, line1 + line2), (k2, line2)):
        path.write_text(text)
        path.chmod(0o600)
    a = mount(etcd, extra_args=[f"--key-file={k1}"])
    (a.path / "secret").write_text("version 1")
    rev1 = revision(etcd)
    a.unmount()
    b = mount(etcd, extra_args=[f"--key-file={k12}"])
    (b.path / "secret").write_text("version 2")
    assert kv.get("/secret")[0][3] == 2
    assert (b.path / ".etcdfs" / "at" / str(rev1) / "secret").read_text() == "version 1"
    b.unmount()
    c = mount(etcd, extra_args=[f"--key-file={k2}"])
    assert (c.path / "secret").read_text() == "version 2"
    with pytest.raises(OSError) as e:
        (c.path / ".etcdfs" / "at" / str(rev1) / "secret").read_text()
    assert e.value.errno == errno.EIO


def test_history_lists_every_version_since_creation_and_each_reads_at_its_revision(
        etcd, kv, mount):
    m = mount(etcd)
    kv.put("/app/other", "keeps the directory")
    kv.put("/app/config", "before the delete")
    kv.delete("/app/config")
    f = m.path / "app" / "config"
    revs = []
    for i in range(6):
        if i % 2:
            kv.put("/app/config", f"remote {i}")
        else:
            f.write_text(f"local {i}")
        revs.append(revision(etcd))
        kv.put("/app/other", str(i))  # revisions of other keys are not versions of this one
    history = [int(r) for r in os.getxattr(f, "user.etcd.history").decode().split()]
    assert history == revs[::-1]  # newest first, this lifetime only
    assert "user.etcd.history" not in os.listxattr(f)  # costly: read on request only
    for i, rev in enumerate(revs):
        past = m.path / ".etcdfs" / "at" / str(rev) / "app" / "config"
        want = json.loads(etcd.ctl("get", "/app/config", f"--rev={rev}", "-w", "json"))
        value = base64.b64decode(want["kvs"][0]["value"])
        assert past.read_bytes() == value == (f"remote {i}" if i % 2 else f"local {i}").encode()
        assert os.getxattr(past, "user.etcd.revision").decode() == str(rev)
    # compaction cuts the list at the compaction point
    etcd.ctl("compact", str(revs[3]))
    history = [int(r) for r in os.getxattr(f, "user.etcd.history").decode().split()]
    assert history == revs[3:][::-1]


def test_a_live_rename_never_moves_a_past_node(etcd, kv, mount):
    """Past nodes have keys "<rev>:<key>"; with the whole key space mounted, a live directory
    named "<rev>:d" has keys with the same bytes. Renaming it must not carry the past nodes
    along (the node table's prefix moves once did, for every node type)."""
    m = mount(etcd, prefix="")
    kv.put("d/f", "past content")
    rev = revision(etcd)
    past_d = m.path / ".etcdfs" / "at" / str(rev) / "d"
    os.stat(past_d)  # a node, not yet listed
    live = m.path / f"{rev}:d"
    live.mkdir()
    (live / "f").write_text("live content")
    (live / "g").write_text("live")
    os.rename(live, m.path / "e")
    assert os.listdir(past_d) == ["f"]
    assert (past_d / "f").read_text() == "past content"
    assert sorted(os.listdir(m.path / "e")) == ["f", "g"]


def test_the_past_view_gets_no_inotify_event_and_keeps_its_content(etcd, kv, mount):
    kv.put("/d/seed", "x")
    m = mount(etcd)
    past = m.path / ".etcdfs" / "at" / str(revision(etcd)) / "d"
    assert (past / "seed").read_text() == "x"
    in_past, live = Watcher(past), Watcher(m.path / "d")
    try:
        etcd.ctl("put", "/d/seed", "changed")
        etcd.ctl("put", "/d/new", "n")
        etcd.ctl("del", "/d/seed")
        live.wait_for("DELETE", "seed")  # the live view has been told of all three
        time.sleep(0.5)  # room for a stray event to arrive (none may)
        with pytest.raises(queue.Empty):
            in_past.events.get_nowait()
    finally:
        in_past.close()
        live.close()
    assert os.listdir(past) == ["seed"] and (past / "seed").read_text() == "x"


def test_unix_tools_read_a_past_tree(etcd, kv, mount, tmp_path):
    m = mount(etcd)
    for key, value in (("/app/config/port", "8080\n"), ("/app/config/host", "db1\n"),
                       ("/app/README", "hello\n"), ("/other/x", "x\n")):
        kv.put(key, value)
    rev = revision(etcd)
    kv.put("/app/config/host", "db2\n")
    kv.delete("/app/README")
    at = m.path / ".etcdfs" / "at" / str(rev)
    found = subprocess.run(["find", "."], cwd=at, capture_output=True, text=True, check=True)
    assert sorted(found.stdout.split()) == sorted(
        [".", "./app", "./app/config", "./app/config/port", "./app/config/host", "./app/README",
         "./other", "./other/x"])
    grep = subprocess.run(["grep", "-r", "db", "."], cwd=at, capture_output=True, text=True)
    assert grep.stdout == "./app/config/host:db1\n"
    subprocess.run(["cp", "-r", str(at / "app"), str(tmp_path / "copy")], check=True)
    assert (tmp_path / "copy" / "config" / "host").read_text() == "db1\n"
    assert (tmp_path / "copy" / "README").read_text() == "hello\n"
    ls = subprocess.run(["ls", "-l", str(at / "app" / "config")], capture_output=True, text=True,
                        check=True).stdout
    assert "-r--r--r--" in ls and "host" in ls and "port" in ls
