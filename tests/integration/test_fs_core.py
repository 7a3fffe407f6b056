"""Core semantics of the etcdfs mount (issue 3), each checked against what etcd holds, in every
consistency mode (the `mode` fixture: each test runs once per mode, as sshfs runs its suite
under each cache option; a test about one mode's promise pins `mode` with parametrize).

Broad tool-level behaviour (cp -r, tar, find, editors, two hosts) lives in other files; these
tests pin down the single operations and the key mapping (docs/semantics.md,
docs/key-mapping.md)."""

import errno
import mmap
import os
import stat
import subprocess

import pytest

from etcd_fixtures import wait_for
from fs_tool_helpers import mode_args, revision

pytestmark = pytest.mark.needs_etcdfs


@pytest.fixture
def mount(mount, mode):
    """conftest's mount, every mount of this file in the consistency mode under test."""
    def in_mode(target, *args, extra_args=(), **kw):
        return mount(target, *args, extra_args=(*mode_args(mode), *extra_args), **kw)
    return in_mode


def get(kv, key):
    return kv.get(key)[0]


def keys(kv, prefix="/"):
    return sorted(m.key for _, m in kv.get_prefix(prefix))


def items(kv, prefix):
    return [(m.key, v) for v, m in kv.get_prefix(prefix)]


# -- files -------------------------------------------------------------------------------------

def test_file_is_key_and_content_is_value(etcd, kv, mount):
    kv.put("/a/b", b"bytes \x00\xff")
    m = mount(etcd)
    assert (m.path / "a" / "b").read_bytes() == b"bytes \x00\xff"
    (m.path / "a" / "c").write_bytes(b"\x01\x02")
    assert get(kv, "/a/c") == b"\x01\x02"
    st = os.stat(m.path / "a" / "b")
    assert st.st_size == 8 and oct(st.st_mode & 0o777) == "0o644"
    assert st.st_uid == os.getuid()


def test_prefix_mount(etcd, kv, mount):
    kv.put("/app/x", b"1")
    kv.put("/other/y", b"2")
    m = mount(etcd, prefix="/app")  # a '/' is appended
    assert os.listdir(m.path) == ["x"]
    (m.path / "new").write_text("n")
    assert get(kv, "/app/new") == b"n"


def test_append_write_past_eof_and_truncate(etcd, kv, mount):
    m = mount(etcd)
    p = m.path / "f"
    p.write_bytes(b"abc")
    with open(p, "ab") as f:
        f.write(b"def")
    assert get(kv, "/f") == b"abcdef"
    with open(p, "r+b") as f:
        f.seek(10)
        f.write(b"Z")
    assert get(kv, "/f") == b"abcdef\0\0\0\0Z"
    os.truncate(p, 2)
    assert get(kv, "/f") == b"ab"
    with open(p, "r+b") as f:
        f.truncate(5)
    assert get(kv, "/f") == b"ab\0\0\0"
    subprocess.run(["sh", "-c", f": > '{p}'"], check=True)  # shell truncation: at close
    assert get(kv, "/f") == b""
    kv.put("/f", b"again")
    with open(p, "w"):
        pass  # truncated, nothing written, one close: stored at release, just after close
    wait_for(lambda: get(kv, "/f") == b"", 5, "the truncation to reach etcd")


def test_mmap_read_and_shared_write(etcd, kv, mount):
    kv.put("/m", b"hello world")
    m = mount(etcd)
    with open(m.path / "m", "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
        assert mm[:5] == b"hello"
        mm[0:5] = b"HELLO"
        mm.flush()
        mm.close()
    assert get(kv, "/m") == b"HELLO world"


def test_o_excl_create_is_atomic(etcd, kv, mount):
    kv.put("/taken", b"x")
    m = mount(etcd)
    fd = os.open(m.path / "lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    assert get(kv, "/lock") == b""  # exists in etcd as soon as open returns
    os.write(fd, b"pid 1")
    os.close(fd)
    assert get(kv, "/lock") == b"pid 1"
    with pytest.raises(FileExistsError):
        os.open(m.path / "lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    # created elsewhere after this mount looked: still refused
    kv.put("/late", b"x")
    with pytest.raises(FileExistsError):
        os.open(m.path / "late", os.O_CREAT | os.O_EXCL | os.O_WRONLY)


def test_size_limit_efbig(etcd, kv, mount):
    m = mount(etcd, options=("max_file_size=1000",))
    p = m.path / "big"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT)
    os.write(fd, b"x" * 1000)
    with pytest.raises(OSError) as e:
        os.write(fd, b"y")
    assert e.value.errno == errno.EFBIG  # at write time
    with pytest.raises(OSError) as e:
        os.close(fd)  # close reports that nothing was stored
    assert e.value.errno == errno.EFBIG
    # the changes of that open are dropped, not stored cut off; the file its open created
    # (O_CREAT without O_TRUNC is created in etcd at open, as on a local filesystem) stays empty
    assert get(kv, "/big") == b""
    p.write_bytes(b"x" * 1000)
    assert get(kv, "/big") == b"x" * 1000
    with pytest.raises(OSError) as e:
        os.truncate(p, 1001)
    assert e.value.errno == errno.EFBIG


def test_default_size_limit_fits_etcd(etcd, kv, mount):
    m = mount(etcd)
    data = os.urandom(1400 * 1024)
    (m.path / "large").write_bytes(data)
    assert get(kv, "/large") == data
    with pytest.raises(OSError) as e:
        (m.path / "too-large").write_bytes(b"x" * (1536 * 1024))
    assert e.value.errno == errno.EFBIG
    assert get(kv, "/too-large") is None  # never stored cut off


def test_name_too_long(etcd, mount):
    m = mount(etcd)
    with pytest.raises(OSError) as e:
        open(m.path / ("n" * 256), "w")
    assert e.value.errno == errno.ENAMETOOLONG
    (m.path / ("n" * 255)).write_text("ok")


def test_chmod_chown_are_stored(etcd, kv, mount):
    """Attribute records (docs/design-attributes.md; more in test_fs_attrs.py)."""
    kv.put("/f", b"1")
    m = mount(etcd)
    os.chmod(m.path / "f", 0o600)
    os.chown(m.path / "f", 12345, -1)
    st = os.stat(m.path / "f")
    assert (oct(st.st_mode & 0o777), st.st_uid) == ("0o600", 12345)
    assert get(kv, "/f") == b"1"
    assert get(kv, b"/f\x00attrs").startswith(b"etcdfs-attrs 1 mode=100600 uid=12345 ")


def test_chmod_chown_eperm_unless_quiet_without_records(etcd, kv, mount):
    kv.put("/f", b"1")
    m = mount(etcd, extra_args=["--attrs=none"])
    with pytest.raises(PermissionError):
        os.chmod(m.path / "f", 0o600)
    with pytest.raises(PermissionError):
        os.chown(m.path / "f", 12345, -1)
    os.chmod(m.path / "f", 0o644)  # what it already is: fine (cp -p, tar)
    os.utime(m.path / "f", (1, 1))  # accepted (kept in memory only)
    q = mount(etcd, options=("quiet",), extra_args=["--attrs=none"])
    os.chmod(q.path / "f", 0o600)
    os.chown(q.path / "f", 12345, -1)
    assert oct(os.stat(q.path / "f").st_mode & 0o777) == "0o644"
    assert get(kv, "/f") == b"1"


def test_mode_options(etcd, kv, mount):
    kv.put("/d/f", b"1")
    m = mount(etcd, options=("uid=1234", "gid=4321", "umask=027"))
    st = os.stat(m.path / "d" / "f")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (1234, 4321, 0o640)
    assert os.stat(m.path / "d").st_mode & 0o777 == 0o750


def test_read_only_mount(etcd, kv, mount):
    kv.put("/f", b"1")
    m = mount(etcd, options=("ro",))
    assert (m.path / "f").read_text() == "1"
    with pytest.raises(OSError) as e:
        (m.path / "f").write_text("2")
    assert e.value.errno == errno.EROFS
    with pytest.raises(OSError):
        os.mkdir(m.path / "d")
    assert get(kv, "/f") == b"1"


def test_statfs_reports_etcd(etcd, mount):
    m = mount(etcd)
    st = os.statvfs(m.path)
    assert st.f_bsize == 4096 and st.f_namemax == 255
    assert st.f_blocks * st.f_frsize == 2 << 30
    assert 0 < st.f_bfree < st.f_blocks  # the database has a size


def test_unlink_and_enoent(etcd, kv, mount):
    kv.put("/x", b"1")
    m = mount(etcd)
    os.unlink(m.path / "x")
    assert get(kv, "/x") is None
    with pytest.raises(FileNotFoundError):
        os.unlink(m.path / "x")
    with pytest.raises(FileNotFoundError):
        open(m.path / "nothing")


def test_create_then_unlink_before_close_writes_nothing(etcd, kv, mount):
    m = mount(etcd)
    rev0 = int(etcd.status()["header"]["revision"])
    f = open(m.path / "tmp", "w")
    f.write("data")
    os.unlink(m.path / "tmp")
    f.close()
    assert get(kv, "/tmp") is None
    assert int(etcd.status()["header"]["revision"]) == rev0


# -- directories -------------------------------------------------------------------------------

def test_mkdir_rmdir_markers(etcd, kv, mount):
    m = mount(etcd)
    os.mkdir(m.path / "d")
    assert keys(kv) == [b"/d/"]
    with pytest.raises(FileExistsError):
        os.mkdir(m.path / "d")
    os.rmdir(m.path / "d")
    assert keys(kv) == []
    os.makedirs(m.path / "p" / "q")
    assert os.path.isdir(m.path / "p" / "q")


def test_rmdir_non_empty_is_enotempty(etcd, kv, mount):
    kv.put("/d/deep/file", b"1")
    m = mount(etcd)
    with pytest.raises(OSError) as e:
        os.rmdir(m.path / "d")
    assert e.value.errno == errno.ENOTEMPTY
    assert get(kv, "/d/deep/file") == b"1"
    # a key that appears elsewhere after the listing still blocks rmdir (checked in the Txn)
    os.mkdir(m.path / "e")
    os.listdir(m.path / "e")
    kv.put("/e/late", b"x")
    with pytest.raises(OSError) as e:
        os.rmdir(m.path / "e")
    assert e.value.errno == errno.ENOTEMPTY
    assert get(kv, "/e/late") == b"x"


def test_last_file_removed_keeps_directory(etcd, kv, mount):
    kv.put("/d/only", b"1")
    m = mount(etcd)
    os.unlink(m.path / "d" / "only")
    assert keys(kv) == [b"/d/"]  # marker written in the same Txn as the delete
    assert os.path.isdir(m.path / "d") and os.listdir(m.path / "d") == []
    kv.put("/e/a", b"1")
    kv.put("/e/b", b"2")
    os.unlink(m.path / "e" / "a")
    assert keys(kv, "/e/") == [b"/e/b"]  # not the last one: no marker needed


# -- rename ------------------------------------------------------------------------------------

def renameat2(src, dst, flags):
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    r = libc.renameat2(-100, os.fsencode(src), -100, os.fsencode(dst), flags)
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2


def test_rename_file(etcd, kv, mount):
    kv.put("/a", b"A")
    kv.put("/b", b"B")
    kv.put("/dir/x", b"X")
    m = mount(etcd)
    os.rename(m.path / "a", m.path / "c")
    assert get(kv, "/a") is None and get(kv, "/c") == b"A"
    os.rename(m.path / "c", m.path / "b")  # replaces
    assert get(kv, "/b") == b"A" and get(kv, "/c") is None
    os.rename(m.path / "dir" / "x", m.path / "x")  # last file of dir: dir stays
    assert get(kv, "/x") == b"X" and keys(kv, "/dir") == [b"/dir/"]


def test_rename_noreplace_and_exchange(etcd, kv, mount):
    kv.put("/a", b"A")
    kv.put("/b", b"B")
    m = mount(etcd)
    with pytest.raises(FileExistsError):
        renameat2(m.path / "a", m.path / "b", RENAME_NOREPLACE)
    assert get(kv, "/a") == b"A" and get(kv, "/b") == b"B"
    renameat2(m.path / "a", m.path / "b", RENAME_EXCHANGE)
    assert get(kv, "/a") == b"B" and get(kv, "/b") == b"A"
    assert (m.path / "a").read_bytes() == b"B"
    renameat2(m.path / "a", m.path / "c", RENAME_NOREPLACE)
    assert get(kv, "/c") == b"B" and get(kv, "/a") is None


def test_rename_exchange_directories(etcd, kv, mount):
    """Two directories trade places in one Txn: every key, the empty-dir marker and nested
    directories included; keys both sides share are overwritten, the others moved."""
    kv.put("/a/x", b"ax")
    kv.put("/a/sub/deep", b"a-deep")
    kv.put("/a/only-a", b"1")
    kv.put("/b/x", b"bx")
    kv.put("/b/", b"")  # b also has its marker
    kv.put("/b/only-b", b"2")
    m = mount(etcd)
    a_ino, b_ino = os.stat(m.path / "a").st_ino, os.stat(m.path / "b").st_ino
    assert (m.path / "a" / "x").read_bytes() == b"ax"  # cached before the exchange
    before = revision(kv)
    renameat2(m.path / "a", m.path / "b", RENAME_EXCHANGE)
    assert revision(kv) == before + 1  # one Txn
    assert dict(items(kv, "/a/")) == {b"/a/": b"", b"/a/x": b"bx", b"/a/only-b": b"2"}
    assert dict(items(kv, "/b/")) == {b"/b/x": b"ax", b"/b/sub/deep": b"a-deep",
                                      b"/b/only-a": b"1"}
    # The inodes moved with their names, and the mount shows the new contents.
    assert os.stat(m.path / "b").st_ino == a_ino and os.stat(m.path / "a").st_ino == b_ino
    assert (m.path / "a" / "x").read_bytes() == b"bx"
    assert (m.path / "b" / "x").read_bytes() == b"ax"
    assert sorted(os.listdir(m.path / "b")) == ["only-a", "sub", "x"]
    assert (m.path / "b" / "sub" / "deep").read_bytes() == b"a-deep"


def test_rename_exchange_file_and_directory(etcd, kv, mount):
    kv.put("/f", b"file")
    kv.put("/d/k", b"K")
    m = mount(etcd)
    renameat2(m.path / "f", m.path / "d", RENAME_EXCHANGE)
    assert get(kv, "/d") == b"file" and get(kv, "/f") is None
    assert dict(items(kv, "/f/")) == {b"/f/k": b"K"} and keys(kv, "/d/") == []
    assert (m.path / "d").read_bytes() == b"file"
    assert (m.path / "f" / "k").read_bytes() == b"K"


def test_rename_exchange_too_big_is_exdev_and_changes_nothing(etcd, kv, mount):
    for i in range(70):
        kv.put(f"/big/k{i:02d}", b"v")
    kv.put("/small/k", b"s")
    m = mount(etcd)
    before = revision(kv)
    with pytest.raises(OSError) as e:
        renameat2(m.path / "big", m.path / "small", RENAME_EXCHANGE)
    assert e.value.errno == errno.EXDEV
    assert revision(kv) == before and len(keys(kv, "/big/")) == 70


def test_rename_guarded_against_concurrent_change(etcd, kv, mount):
    kv.put("/src", b"old")
    m = mount(etcd, options=("cache_timeout=60",))
    assert (m.path / "src").read_bytes() == b"old"
    kv.put("/src", b"new")  # changed elsewhere after we cached it
    os.rename(m.path / "src", m.path / "dst")
    assert get(kv, "/dst") == b"new"  # never the stale content
    assert get(kv, "/src") is None


def test_rename_directory_moves_subtree_atomically(etcd, kv, mount):
    for i in range(20):
        kv.put(f"/tree/sub/k{i}", f"v{i}".encode())
    kv.put("/tree/sub/", b"")
    m = mount(etcd)
    os.rename(m.path / "tree", m.path / "moved")
    assert keys(kv, "/tree") == []
    assert len(keys(kv, "/moved/")) == 21
    assert get(kv, "/moved/sub/k7") == b"v7"
    assert (m.path / "moved" / "sub" / "k7").read_text() == "v7"


def test_rename_directory_too_big_is_exdev_and_mv_copies(etcd, kv, mount):
    for i in range(200):  # more than one Txn can hold (128 operations)
        kv.put(f"/huge/k{i:03d}", b"v")
    m = mount(etcd)
    with pytest.raises(OSError) as e:
        os.rename(m.path / "huge", m.path / "moved")
    assert e.value.errno == errno.EXDEV
    assert len(keys(kv, "/huge/")) == 200  # nothing lost or half-moved
    subprocess.run(["mv", str(m.path / "huge"), str(m.path / "moved")], check=True)
    assert keys(kv, "/huge") == []
    moved = [k for k in keys(kv, "/moved/") if k != b"/moved/"]
    # mv's copy keeps the times: each file has its attribute record
    assert len([k for k in moved if not k.endswith(b"\x00attrs")]) == 200


def test_rename_dir_onto_non_empty_dir(etcd, kv, mount):
    kv.put("/a/x", b"1")
    kv.put("/b/y", b"2")
    kv.put("/c/", b"")
    m = mount(etcd)
    with pytest.raises(OSError) as e:
        os.rename(m.path / "a", m.path / "b")
    assert e.value.errno == errno.ENOTEMPTY
    os.rename(m.path / "a", m.path / "c")  # onto an empty directory
    assert get(kv, "/c/x") == b"1" and get(kv, "/a/x") is None


# -- key mapping -------------------------------------------------------------------------------

ODD = {
    b"/odd/a//b": b"empty component",
    b"/odd/./dot": b"dot",
    b"/odd/../dotdot": b"dotdot",
    b"/odd/nul\x00byte": b"nul",
    b"/odd/" + b"L" * 300: b"long",
    b"/odd/%percent": b"percent",
    b"/odd/50%": b"plain percent",
    b"/odd/both": b"value and prefix",
    b"/odd/both/child": b"child",
    b"/odd/marker/": b"marker with data",
    b"/odd/marker/f": b"f",
}


def test_odd_keys_are_reachable(etcd, kv, mount):
    for k, v in ODD.items():
        kv.put(k, v)
    m = mount(etcd)
    d = m.path / "odd"
    names = sorted(os.listdir(d))
    long_name = [n for n in names if n.startswith("%LLL")]
    assert len(long_name) == 1 and len(long_name[0]) <= 255 and "%~" in long_name[0]
    assert sorted(n for n in names if n != long_name[0]) == sorted(
        ["a", "%.", "%..", "%nul%00byte", "%%25percent", "50%", "both", "marker"])
    assert (d / "a" / "%" / "b").read_bytes() == b"empty component"
    assert (d / "%." / "dot").read_bytes() == b"dot"
    assert (d / "%.." / "dotdot").read_bytes() == b"dotdot"
    assert (d / "%nul%00byte").read_bytes() == b"nul"
    assert (d / long_name[0]).read_bytes() == b"long"
    assert (d / "%%25percent").read_bytes() == b"percent"
    assert (d / "50%").read_bytes() == b"plain percent"
    assert sorted(os.listdir(d / "both")) == ["%value", "child"]
    assert (d / "both" / "%value").read_bytes() == b"value and prefix"
    assert sorted(os.listdir(d / "marker")) == ["%", "f"]
    assert (d / "marker" / "%").read_bytes() == b"marker with data"
    # writes go to the same keys
    (d / "%nul%00byte").write_bytes(b"NUL")
    (d / "both" / "%value").write_bytes(b"VALUE")
    (d / long_name[0]).write_bytes(b"LONG")
    assert get(kv, b"/odd/nul\x00byte") == b"NUL"
    assert get(kv, b"/odd/both") == b"VALUE"
    assert get(kv, b"/odd/" + b"L" * 300) == b"LONG"
    # creating through an escape reaches the odd key
    (d / "a" / "%" / "new").write_bytes(b"n")
    assert get(kv, b"/odd/a//new") == b"n"
    # a non-canonical spelling names nothing and cannot be created
    assert not os.path.exists(d / "%abc")
    with pytest.raises(OSError) as e:
        open(d / "%abc", "w")
    assert e.value.errno == errno.EINVAL


def test_odd_keys_survive_fs_operations(etcd, kv, mount):
    for k, v in ODD.items():
        kv.put(k, v)
    m = mount(etcd)
    d = m.path / "odd"
    # rm -r of everything else; rmdir of a directory that holds a value is refused
    with pytest.raises(OSError) as e:
        os.rmdir(d / "both" if not os.unlink(d / "both" / "child") else None)
    assert e.value.errno == errno.ENOTEMPTY  # %value still there
    assert get(kv, b"/odd/both") == b"value and prefix"
    os.unlink(d / "marker" / "f")
    with pytest.raises(OSError) as e:
        os.rmdir(d / "marker")
    assert e.value.errno == errno.ENOTEMPTY  # the marker holds data: shown as "%"
    assert get(kv, b"/odd/marker/") == b"marker with data"
    # renaming the directory carries the odd keys (and the directory's own value) along
    os.rename(d, m.path / "renamed")
    for k, v in ODD.items():
        if k in (b"/odd/both/child", b"/odd/marker/f"):
            continue
        assert get(kv, b"/renamed/" + k[len(b"/odd/"):]) == v, k
    assert keys(kv, "/odd") == []
    # removing the value of "both" keeps the directory
    os.unlink(m.path / "renamed" / "both" / "%value")
    assert get(kv, b"/renamed/both") is None
    assert os.path.isdir(m.path / "renamed" / "both")


def test_etcdfs_key_at_root_is_escaped(etcd, kv, mount):
    kv.put("/.etcdfs/real", b"r")
    m = mount(etcd)
    assert "%.etcdfs" in os.listdir(m.path)
    assert (m.path / "%.etcdfs" / "real").read_bytes() == b"r"
    assert (m.path / ".etcdfs" / "stats").read_text().startswith("rt_")


def test_whole_keyspace_with_empty_prefix(etcd, kv, mount):
    kv.put("noslash", b"1")
    kv.put("/slash", b"2")
    m = mount(etcd, prefix="")
    assert sorted(os.listdir(m.path)) == ["%", "noslash"]
    assert (m.path / "%" / "slash").read_bytes() == b"2"  # was EINVAL in strict mode (a Get of
    # the empty key "%" would have at the root)
    assert os.path.isdir(m.path / "%")


# -- consistency -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["close-to-open"])
def test_two_mounts_close_to_open(etcd, kv, mount):
    a = mount(etcd, name="a")
    b = mount(etcd, name="b")
    (a.path / "shared").write_text("one")
    assert (b.path / "shared").read_text() == "one"
    (b.path / "shared").write_text("two, and longer")
    assert (a.path / "shared").read_text() == "two, and longer"
    os.unlink(a.path / "shared")
    assert get(kv, "/shared") is None


def test_sigterm_flushes_open_files(etcd, kv, mount):
    m = mount(etcd)
    f = open(m.path / "pending", "w")
    f.write("written before SIGTERM")
    f.flush()  # reaches the daemon's buffer, not etcd (one Put at close)
    assert get(kv, "/pending") is None
    m.proc.send_signal(15)
    m.proc.wait(timeout=20)
    m.expected_returncodes = {0}
    try:
        f.close()
    except OSError:
        pass
    assert get(kv, "/pending") == b"written before SIGTERM"
    assert m.proc.returncode == 0


def test_remote_changes_reach_cached_listings(etcd, kv, mount):
    """With long cache timeouts, the watch on the prefix still brings changes made elsewhere
    (another mount, etcdctl) into listings, attributes and contents."""
    a = mount(etcd, name="a", options=("cache_timeout=60",))
    b = mount(etcd, name="b", options=("cache_timeout=60",))
    os.mkdir(a.path / "d")
    assert os.listdir(b.path / "d") == []  # b caches the empty listing and negative entries
    assert not os.path.exists(b.path / "d" / "new")
    (a.path / "d" / "new").write_text("from a")
    wait_for(lambda: os.listdir(b.path / "d") == ["new"], 10, "b to list a's new file")
    assert (b.path / "d" / "new").read_text() == "from a"
    kv.put("/d/new", b"from etcdctl, longer")
    wait_for(lambda: os.stat(b.path / "d" / "new").st_size == 20, 10, "b to see the new size")
    assert (b.path / "d" / "new").read_text() == "from etcdctl, longer"
    kv.delete("/d/new")
    wait_for(lambda: not os.path.exists(b.path / "d" / "new"), 10, "b to see the delete")
    assert os.path.isdir(a.path / "d")


@pytest.mark.parametrize("mode", ["close-to-open", "watch"])  # strict revalidates: more trips
def test_create_guard_witness_deleted_elsewhere_falls_back(etcd, kv, mount, mode):
    """A new file's Txn proves its directory exists with one key this mount saw created there
    (O(1) for etcd instead of reading the whole directory). When that key was deleted elsewhere
    while the directory lives on, the create still succeeds; when the directory is gone, it
    fails and nothing is written. The watch's delete event makes the mount forget the witness;
    a create racing that event has its witnessed Txn fail and asks again over the directory's
    whole range (the history checker's races exercise that)."""
    m = mount(etcd)
    os.mkdir(m.path / "w")
    (m.path / "w" / "a").write_bytes(b"A")  # the witness of /w/ is now /w/a
    kv.delete("/w/a")  # gone, but the directory stays (its marker /w/)
    rev = int(etcd.status()["header"]["revision"])
    wait_for(lambda: m.stats()["watch_revision"] >= rev, 30, "the delete to arrive")
    s0 = m.stats()
    (m.path / "w" / "c").write_bytes(b"C")
    assert get(kv, "/w/c") == b"C"
    # close-to-open looks the new name up (watch mode: the listing proves it absent), then the
    # Txn guarded by the directory's whole range, the witness being forgotten
    assert m.stats()["rt_txn"] - s0["rt_txn"] == {"close-to-open": 2, "watch": 1}[mode]
    kv.delete_prefix("/w/")  # the directory itself is removed elsewhere
    with pytest.raises(OSError) as e:
        with open(m.path / "w" / "d", "wb") as f:
            f.write(b"D")
    assert e.value.errno == errno.ENOENT
    assert keys(kv, "/w/") == []  # not brought back


@pytest.mark.parametrize("mode", ["strict"])  # every stat is a lookup there
def test_directory_lookup_witness_deleted_elsewhere_falls_back(etcd, kv, mount):
    """A lookup proves a directory exists with one key seen below it (etcd reads one key, not
    the whole directory, whose range it would walk to the end even with limit 1). That key
    deleted elsewhere sends the same Txn over the whole range: still one round trip, and a
    directory emptied or turned into a file elsewhere shows as such."""
    kv.put("/w/a", b"A")
    kv.put("/w/b", b"B")
    kv.put("/deep/sub/x", b"X")  # only a grandchild: no witness of /deep/, the range answers
    m = mount(etcd)

    def stat_trips(path):
        s0 = m.stats()
        st = os.stat(path)
        assert m.stats()["rt_txn"] - s0["rt_txn"] == 1
        return st

    assert stat.S_ISDIR(stat_trips(m.path / "w").st_mode)  # the range; /w/a is its witness now
    assert stat.S_ISDIR(stat_trips(m.path / "w").st_mode)  # the witness
    kv.delete("/w/a")
    assert stat.S_ISDIR(stat_trips(m.path / "w").st_mode)  # witness gone: the range, /w/b
    assert stat.S_ISDIR(stat_trips(m.path / "deep").st_mode)
    kv.delete_prefix("/w/")
    kv.put("/w", b"now a file")
    assert stat.S_ISREG(os.stat(m.path / "w").st_mode)  # (the kernel looks a new type up twice)
    assert (m.path / "w").read_bytes() == b"now a file"
    kv.delete("/w")
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / "w")
    assert keys(kv, "/") == [b"/deep/sub/x"]


def test_unlink_witness_deleted_elsewhere_falls_back(etcd, kv, mount):
    """An unlink proves its directory keeps a key with one other key of it (the last file of
    its listing). When that key was deleted elsewhere, the same Txn compares the whole
    directory instead: the last file's delete then leaves the directory's marker, and the
    directory stays."""
    for name in ("a", "b", "c"):
        kv.put(f"/u/{name}", name.encode())
    m = mount(etcd)
    assert sorted(os.listdir(m.path / "u")) == ["a", "b", "c"]
    os.unlink(m.path / "u" / "a")  # proved by /u/c
    assert keys(kv, "/u/") == [b"/u/b", b"/u/c"]
    kv.delete("/u/c")  # the witness, gone behind the mount's back
    os.unlink(m.path / "u" / "b")
    assert keys(kv, "/u/") == [b"/u/"]  # the marker keeps the emptied directory
    assert os.path.isdir(m.path / "u") and os.listdir(m.path / "u") == []
    kv.put("/u/new", b"n")  # elsewhere, after the listing (watch mode: within its delay)
    wait_for(lambda: os.path.exists(m.path / "u" / "new"), 10, "the mount to see u/new")
    assert (m.path / "u" / "new").read_bytes() == b"n"
    os.unlink(m.path / "u" / "new")
    assert keys(kv, "/u/") == [b"/u/"]
    os.rmdir(m.path / "u")
    assert keys(kv, "/u") == []


def test_rename_out_and_rmdir_witness_deleted_elsewhere_fall_back(etcd, kv, mount):
    """A rename out of a directory and a rmdir in it prove that the directory keeps a key the
    same way as an unlink (one other key of it); with that key deleted elsewhere they compare
    the whole directory and leave its marker when they take its last entry."""
    for key in ("/v/a", "/v/b", "/v/c", "/w/", "/x/f", "/x/s1/", "/x/s2/"):
        kv.put(key, key.encode() if not key.endswith("/") else b"")
    m = mount(etcd)
    assert sorted(os.listdir(m.path / "v")) == ["a", "b", "c"]
    os.rename(m.path / "v" / "a", m.path / "w" / "a")  # proved by /v/c
    kv.delete("/v/c")
    os.rename(m.path / "v" / "b", m.path / "w" / "b")  # /v/c gone: the whole range
    assert keys(kv, "/v/") == [b"/v/"] and os.listdir(m.path / "v") == []
    assert keys(kv, "/w/") == [b"/w/", b"/w/a", b"/w/b"]
    assert sorted(os.listdir(m.path / "x")) == ["f", "s1", "s2"]
    os.rmdir(m.path / "x" / "s1")  # proved by /x/f
    kv.delete("/x/f")
    os.rmdir(m.path / "x" / "s2")
    assert keys(kv, "/x/") == [b"/x/"] and os.listdir(m.path / "x") == []
