"""The node table under races between this mount's own results and its watch's events.

Each test is one of the bugs of the correctness issue, in the shape it was reported: a mount that
wrote under a wrong key, answered from a node that stood for another key, refused a rename with a
false ESTALE, or ignored O_TRUNC. Each checks etcd itself (python etcd3), not only the mount, and
runs in the three consistency modes: the watch is what races with the operations, and the modes
differ in how much the cache is trusted. docs/design-node-table.md says what the node table
promises; difftest.py and histcheck.py look for the same class of bug at random."""

import errno
import os
import subprocess
import threading
import time

import pytest

from etcd_fixtures import wait_for
from fs_tool_helpers import RENAME_EXCHANGE, get, mode_args, renameat2

pytestmark = pytest.mark.needs_etcdfs


def test_write_after_exchanging_a_file_and_a_directory_lands_under_the_new_name(
        etcd, kv, mount, mode):
    """mv R/e R/c, then RENAME_EXCHANGE of file R/d and directory R/c: a write to R/d/e must land
    at R/d/e. The moved nodes used to be renamed after the events of the moves had been replayed
    under their old names, so a third of the runs wrote R/c/e (c both a file and a directory)."""
    m = mount(etcd, extra_args=mode_args(mode))
    for i in range(25):
        root = m.path / f"R{i}"
        os.mkdir(root)
        os.mkdir(root / "e")
        (root / "e" / "e").write_bytes(b"OLD")
        os.rename(root / "e", root / "c")
        (root / "d").write_bytes(b"FILE-D")
        renameat2(root / "d", root / "c", RENAME_EXCHANGE)
        (root / "d" / "e").write_bytes(b"NEW")
        p = f"/R{i}/"
        assert get(kv, p + "d/e") == b"NEW", i
        assert get(kv, p + "c") == b"FILE-D", i
        assert get(kv, p + "c/e") is None, i
        assert (root / "d" / "e").read_bytes() == b"NEW"
        assert (root / "c").read_bytes() == b"FILE-D"


def test_rename_loop_never_reads_the_old_name(etcd, kv, mount, mode):
    """write a; rename a b; write b; read a (ENOENT), many times on one thread: reading a once
    returned b's new content, and rename once gave ENOENT right after a's close."""
    m = mount(etcd, extra_args=mode_args(mode))
    a, b = m.path / "a", m.path / "b"
    for i in range(400):
        a.write_bytes(b"A%d" % i)
        os.rename(a, b)
        b.write_bytes(b"B%d" % i)
        with pytest.raises(FileNotFoundError):
            a.read_bytes()
    assert get(kv, "/a") is None
    assert get(kv, "/b") == b"B399"


def test_exchange_after_truncating_an_open_file_then_rename_is_not_stale(
        etcd, kv, mount, mode):
    """A file truncated through a descriptor kept open, its directory exchanged with a file,
    then the file renamed: that rename failed with ESTALE every time (the exchange moved etcd's
    value, not the local one, and the node kept the revision of its old key)."""
    m = mount(etcd, extra_args=mode_args(mode))
    p = m.path
    os.mkdir(p / "d")
    fd = os.open(p / "d" / "a", os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        os.fsync(fd)
        (p / "e").write_bytes(b"x\n")
        os.rename(p / "e", p / "c")
        os.ftruncate(fd, 4060)
        renameat2(p / "d", p / "c", RENAME_EXCHANGE)
        os.rename(p / "c" / "a", p / "e")
    finally:
        os.close(fd)
    assert get(kv, "/e") == b"\0" * 4060
    assert get(kv, "/d") == b"x\n"
    assert get(kv, "/c/a") is None
    assert (p / "e").read_bytes() == b"\0" * 4060


def test_read_only_open_with_o_trunc_truncates(etcd, kv, mount, mode):
    """open(O_RDONLY | O_TRUNC) truncates, as on Linux's local filesystems."""
    m = mount(etcd, extra_args=mode_args(mode))
    f = m.path / "f"
    f.write_bytes(b"content")
    fd = os.open(f, os.O_RDONLY | os.O_TRUNC)
    try:
        assert os.read(fd, 100) == b""
    finally:
        os.close(fd)
    # stored at release, which the kernel sends just after close returns (docs/semantics.md)
    wait_for(lambda: get(kv, "/f") == b"", 10, "the truncation in etcd")
    assert f.stat().st_size == 0


def test_create_without_o_trunc_opens_what_another_client_wrote_meanwhile(
        etcd, kv, mount, mode):
    """A name this mount found absent is created with a guard decided by etcd: a value another
    client stored between the lookup and the create is opened, never overwritten."""
    m = mount(etcd, extra_args=mode_args(mode))
    for i in range(10):
        name = f"f{i}"
        with pytest.raises(FileNotFoundError):
            (m.path / name).stat()  # the mount looked: absent
        kv.put("/" + name, b"IMPORTANT DATA")
        fd = os.open(m.path / name, os.O_RDWR | os.O_CREAT)
        try:
            assert os.read(fd, 100) == b"IMPORTANT DATA"
        finally:
            os.close(fd)
        assert get(kv, "/" + name) == b"IMPORTANT DATA"


def test_unlink_of_a_file_created_here_but_known_to_etcd_deletes_it(etcd, kv, mount, mode):
    """O_CREAT|O_TRUNC on a name that another client created meanwhile, then unlink before the
    close: the key must go (the unlink used to skip etcd for a file it believed only local)."""
    m = mount(etcd, extra_args=mode_args(mode))
    with pytest.raises(FileNotFoundError):
        (m.path / "t").stat()
    kv.put("/t", b"theirs")
    fd = os.open(m.path / "t", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        os.unlink(m.path / "t")
        os.write(fd, b"mine")
    finally:
        os.close(fd)
    assert get(kv, "/t") is None
    assert errno.ENOENT == pytest.raises(OSError, (m.path / "t").stat).value.errno


def test_reader_racing_an_in_place_rewrite_on_the_same_mount_never_reads_nuls(
        etcd, kv, mount, mode):
    """A writer rewrites a file in place (O_TRUNC, one write, close) in a loop; a reader on the
    same mount opens, reads it whole and closes in a loop. Reads may be empty (between the
    O_TRUNC open and its write, as on tmpfs: this mount's own changes are seen at once), but
    never NUL bytes: before node.trunc_len, about 4% of the reads were all-NUL (the kernel
    fills a read cut short by the truncation with NULs). The versions hold no NUL, so any NUL
    byte is that bug. Bounded: 3 s of reading."""
    m = mount(etcd, extra_args=mode_args(mode))
    versions = [bytes([65 + i % 26]) * (100 + (i * 997) % 9000) for i in range(60)]
    f = m.path / "f"
    f.write_bytes(versions[0])
    stop = threading.Event()
    failures = []

    def writer():
        i = 0
        while not stop.is_set():
            try:
                with open(f, "wb") as out:
                    out.write(versions[i % len(versions)])
            except OSError as e:  # pragma: no cover - reported below
                failures.append(e)
                return
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    reads, bad = 0, []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            fd = os.open(f, os.O_RDONLY)
            try:
                data = os.read(fd, 1 << 20)
            finally:
                os.close(fd)
            reads += 1
            if b"\0" in data or not any(v.startswith(data) for v in versions):
                bad.append((len(data), data[:8], data.count(b"\0")))
    finally:
        stop.set()
        t.join()
    assert not failures
    assert bad == [], f"{len(bad)} of {reads} reads held NULs or no version: {bad[:5]}"
    assert get(kv, "/f") in versions


def test_listing_right_after_a_create_shows_the_new_file(etcd, kv, mount, mode):
    """open(O_CREAT), close, then list the directory: the new name is listed. A file only
    created is stored at release, which the kernel sends after close returned; a listing read
    while that store was in flight missed the name (a quarter of the runs in close-to-open and
    watch), because the pending files were looked for only after the listing was read, when
    the store had already cleared them (differential seed 554950582)."""
    m = mount(etcd, extra_args=mode_args(mode))
    missing = []
    for i in range(150):
        root = m.path / f"L{i}"
        os.mkdir(root)
        os.close(os.open(root / "a", os.O_RDWR | os.O_CREAT | os.O_TRUNC))
        if os.listdir(root) != ["a"]:
            missing.append(i)
    assert not missing, f"{len(missing)}/150 listings missed the file just created: {missing}"
    assert wait_for(lambda: all(get(kv, f"/L{i}/a") == b"" for i in range(150)), timeout=10)


def test_files_only_listed_keep_their_content_through_every_operation(etcd, kv, mount, mode):
    """ls -l, then work on the files without reading them first: rename, exchange, truncate,
    append, write in place, readlink, cat. In close-to-open and strict a listed file's node keeps
    size and revision but not the value (the listing holds it); whatever needs the bytes must read
    them first: a rename that stored "" or a truncate that kept zeros would lose data. Values
    written in one Txn share a mod_revision, so a value taken from the listing must match the key
    too. The value changed elsewhere after the listing must not be taken from it."""
    names = ("mv", "xa", "xb", "tr", "ap", "wr", "cat", "chg")
    values = {k: f"{k}-value-{k * 7}".encode() for k in names}
    kv.transaction(compare=[], failure=[],
                   success=[kv.transactions.put(f"/T/{k}", v) for k, v in values.items()])
    m = mount(etcd, extra_args=mode_args(mode))  # after the puts: no watch event fills a node
    d = m.path / "T"
    subprocess.run(["ls", "-l", str(d)], check=True, stdout=subprocess.DEVNULL)

    os.rename(d / "mv", d / "moved")
    renameat2(d / "xa", d / "xb", RENAME_EXCHANGE)
    os.truncate(d / "tr", 4)
    with open(d / "ap", "ab") as f:
        f.write(b"+")
    fd = os.open(d / "wr", os.O_WRONLY)
    os.pwrite(fd, b"W", 1)
    os.close(fd)
    kv.put("/T/chg", b"changed elsewhere")

    assert get(kv, "/T/moved") == values["mv"] and get(kv, "/T/mv") is None
    assert get(kv, "/T/xa") == values["xb"] and get(kv, "/T/xb") == values["xa"]
    assert get(kv, "/T/tr") == values["tr"][:4]
    assert get(kv, "/T/ap") == values["ap"] + b"+"
    assert get(kv, "/T/wr") == values["wr"][:1] + b"W" + values["wr"][2:]
    assert (d / "cat").read_bytes() == values["cat"]
    assert wait_for(lambda: (d / "chg").read_bytes() == b"changed elsewhere", timeout=10)
    for name, want in (("moved", values["mv"]), ("xa", values["xb"]), ("xb", values["xa"])):
        assert (d / name).read_bytes() == want, name

    # A symbolic link's target is its value: a listing keeps it (readlink opens nothing).
    os.symlink("cat", d / "ln")
    m2 = mount(etcd, extra_args=mode_args(mode))
    subprocess.run(["ls", "-l", str(m2.path / "T")], check=True, stdout=subprocess.DEVNULL)
    assert os.readlink(m2.path / "T" / "ln") == "cat"
