"""etcdfs errno contract (issue 3): every failing operation returns the errno POSIX (and Linux's
local filesystems) give, and a failed operation leaves etcd exactly as it was: same keys, same
values, same store revision (no write at all).

RENAME_NOREPLACE / RENAME_EXCHANGE go through the raw renameat2 syscall."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

import pytest

from fs_tool_helpers import (RENAME_EXCHANGE, RENAME_NOREPLACE, dump, ename, errno_of, get,
                             mode_args, renameat2, revision, try_errno)

pytestmark = pytest.mark.needs_etcdfs

# The tree every case starts from.
TREE = {
    b"/f": b"F-content",
    b"/g": b"G-content, longer",
    b"/d/x": b"X",
    b"/d/sub/y": b"Y",
    b"/e/": b"",  # an empty directory
    b"/e2/": b"",
    b"/d2/z": b"Z",
}


@pytest.fixture
def fs(mode, etcd, kv, mount):
    for k, v in TREE.items():
        kv.put(k, v)
    m = mount(etcd, extra_args=mode_args(mode))
    os.listdir(m.path)  # as an interactive shell would have
    return m


@contextlib.contextmanager
def etcd_unchanged(kv):
    before, rev = dump(kv), revision(kv)
    yield
    after = dump(kv)
    assert after == before, (f"etcd changed by a failed operation: added "
                             f"{sorted(set(after) - set(before))}, removed "
                             f"{sorted(set(before) - set(after))}, changed "
                             f"{sorted(k for k in before if k in after and after[k] != before[k])}")
    assert revision(kv) == rev, "a failed operation wrote to etcd"


def _open(path, flags):
    fd = os.open(path, flags, 0o644)
    os.close(fd)


def _truncate(path, n):
    os.truncate(path, n)


# (id, function(p) where p(name) is the path in the mount, expected errno(s))
CASES = [
    ("open-missing-read", lambda p: _open(p("nope"), os.O_RDONLY), errno.ENOENT),
    ("open-missing-write", lambda p: _open(p("nope"), os.O_WRONLY), errno.ENOENT),
    ("open-missing-trunc", lambda p: _open(p("nope"), os.O_WRONLY | os.O_TRUNC), errno.ENOENT),
    ("create-in-missing-dir", lambda p: _open(p("nodir/new"), os.O_WRONLY | os.O_CREAT),
     errno.ENOENT),
    ("create-below-a-file", lambda p: _open(p("f/new"), os.O_WRONLY | os.O_CREAT),
     errno.ENOTDIR),
    ("open-excl-existing", lambda p: _open(p("f"), os.O_WRONLY | os.O_CREAT | os.O_EXCL),
     errno.EEXIST),
    ("open-excl-existing-dir", lambda p: _open(p("d"), os.O_WRONLY | os.O_CREAT | os.O_EXCL),
     errno.EEXIST),
    ("open-dir-for-write", lambda p: _open(p("d"), os.O_WRONLY), errno.EISDIR),
    ("open-dir-rdwr", lambda p: _open(p("e"), os.O_RDWR), errno.EISDIR),
    ("open-o-directory-on-file", lambda p: _open(p("f"), os.O_RDONLY | os.O_DIRECTORY),
     errno.ENOTDIR),
    ("listdir-of-file", lambda p: os.listdir(p("f")), errno.ENOTDIR),
    ("truncate-dir", lambda p: _truncate(p("d"), 0), errno.EISDIR),
    ("truncate-missing", lambda p: _truncate(p("nope"), 0), errno.ENOENT),
    ("mkdir-existing-dir", lambda p: os.mkdir(p("d")), errno.EEXIST),
    ("mkdir-existing-empty-dir", lambda p: os.mkdir(p("e")), errno.EEXIST),
    ("mkdir-existing-file", lambda p: os.mkdir(p("f")), errno.EEXIST),
    ("mkdir-missing-parent", lambda p: os.mkdir(p("nodir/sub")), errno.ENOENT),
    ("rmdir-file", lambda p: os.rmdir(p("f")), errno.ENOTDIR),
    ("rmdir-missing", lambda p: os.rmdir(p("nope")), errno.ENOENT),
    ("rmdir-non-empty", lambda p: os.rmdir(p("d")), errno.ENOTEMPTY),
    ("rmdir-non-empty-nested", lambda p: os.rmdir(p("d/sub")), errno.ENOTEMPTY),
    ("unlink-dir", lambda p: os.unlink(p("d")), errno.EISDIR),
    ("unlink-empty-dir", lambda p: os.unlink(p("e")), errno.EISDIR),
    ("unlink-missing", lambda p: os.unlink(p("nope")), errno.ENOENT),
    ("rename-missing", lambda p: os.rename(p("nope"), p("other")), errno.ENOENT),
    ("rename-into-missing-dir", lambda p: os.rename(p("f"), p("nodir/f")), errno.ENOENT),
    ("rename-dir-over-non-empty-dir", lambda p: os.rename(p("e"), p("d2")),
     {errno.ENOTEMPTY, errno.EEXIST}),
    ("rename-non-empty-dir-over-non-empty-dir", lambda p: os.rename(p("d"), p("d2")),
     {errno.ENOTEMPTY, errno.EEXIST}),
    ("rename-file-over-dir", lambda p: os.rename(p("f"), p("e")), errno.EISDIR),
    ("rename-file-over-non-empty-dir", lambda p: os.rename(p("f"), p("d")), errno.EISDIR),
    ("rename-dir-over-file", lambda p: os.rename(p("d"), p("f")), errno.ENOTDIR),
    ("rename-dir-into-itself", lambda p: os.rename(p("d"), p("d/sub/inner")), errno.EINVAL),
    ("noreplace-file-onto-file", lambda p: renameat2(p("f"), p("g"), RENAME_NOREPLACE),
     errno.EEXIST),
    ("noreplace-file-onto-dir", lambda p: renameat2(p("f"), p("e"), RENAME_NOREPLACE),
     errno.EEXIST),
    ("noreplace-dir-onto-dir", lambda p: renameat2(p("e"), p("e2"), RENAME_NOREPLACE),
     errno.EEXIST),
    ("exchange-with-missing", lambda p: renameat2(p("f"), p("nope"), RENAME_EXCHANGE),
     errno.ENOENT),
    ("noreplace-and-exchange", lambda p: renameat2(p("f"), p("g"),
                                                   RENAME_NOREPLACE | RENAME_EXCHANGE),
     errno.EINVAL),
    ("link", lambda p: os.link(p("f"), p("hard")), {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP}),
    ("symlink-onto-existing", lambda p: os.symlink("x", p("f")), errno.EEXIST),
    ("symlink-onto-dir", lambda p: os.symlink("x", p("e")), errno.EEXIST),
    ("mkfifo-onto-existing", lambda p: os.mkfifo(p("g")), errno.EEXIST),
    ("mknod-char-device", lambda p: os.mknod(p("chr"), stat.S_IFCHR | 0o644, os.makedev(1, 3)),
     {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP}),
]


@pytest.mark.parametrize("case,fn,expected", CASES, ids=[c[0] for c in CASES])
def test_errno(mode, fs, kv, case, fn, expected):
    want = expected if isinstance(expected, set) else {expected}

    def p(name):
        return fs.path / name

    with etcd_unchanged(kv):
        got = errno_of(fn, p)
        assert got in want, f"{case}: errno {ename(got)}, expected {ename(want)}"
    # what the mount shows is unchanged too
    assert sorted(os.listdir(fs.path)) == ["d", "d2", "e", "e2", "f", "g"]
    assert (fs.path / "f").read_bytes() == TREE[b"/f"]
    assert sorted(os.listdir(fs.path / "d")) == ["sub", "x"]


def test_rename_noreplace_onto_existing_changes_nothing(mode, fs, kv):
    with etcd_unchanged(kv):
        with pytest.raises(FileExistsError):
            renameat2(fs.path / "f", fs.path / "g", RENAME_NOREPLACE)
    assert (fs.path / "f").read_bytes() == TREE[b"/f"]
    assert (fs.path / "g").read_bytes() == TREE[b"/g"]
    # and onto a free name it renames
    renameat2(fs.path / "f", fs.path / "h", RENAME_NOREPLACE)
    assert get(kv, "/f") is None and get(kv, "/h") == TREE[b"/f"]
    assert not os.path.exists(fs.path / "f")


def test_rename_exchange_files_swaps_atomically(mode, fs, kv):
    rev = revision(kv)
    renameat2(fs.path / "f", fs.path / "g", RENAME_EXCHANGE)
    assert revision(kv) == rev + 1, "the exchange is one etcd transaction"
    assert get(kv, "/f") == TREE[b"/g"] and get(kv, "/g") == TREE[b"/f"]
    assert (fs.path / "f").read_bytes() == TREE[b"/g"]
    assert (fs.path / "g").read_bytes() == TREE[b"/f"]
    assert os.stat(fs.path / "f").st_size == len(TREE[b"/g"])
    assert os.stat(fs.path / "g").st_size == len(TREE[b"/f"])
    # across directories
    renameat2(fs.path / "f", fs.path / "d" / "x", RENAME_EXCHANGE)
    assert get(kv, "/f") == b"X" and get(kv, "/d/x") == TREE[b"/g"]
    assert (fs.path / "d" / "x").read_bytes() == TREE[b"/g"]
    others = {k: v for k, v in TREE.items() if k not in (b"/f", b"/g", b"/d/x")}
    assert {k: v for k, v in dump(kv).items() if k in others} == others


def test_rename_exchange_directories(mode, fs, kv):
    """Exchanging two directories swaps their subtrees, or fails leaving both untouched."""
    before = dump(kv)
    try:
        renameat2(fs.path / "d", fs.path / "d2", RENAME_EXCHANGE)
    except OSError as exc:
        assert exc.errno in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP), ename(exc.errno)
        assert dump(kv) == before
        return
    assert get(kv, "/d/z") == b"Z" and get(kv, "/d2/x") == b"X" and get(kv, "/d2/sub/y") == b"Y"
    assert get(kv, "/d/x") is None and get(kv, "/d2/z") is None
    assert sorted(os.listdir(fs.path / "d")) == ["z"]
    assert sorted(os.listdir(fs.path / "d2")) == ["sub", "x"]


def test_rename_exchange_file_and_directory(mode, fs, kv):
    before = dump(kv)
    try:
        renameat2(fs.path / "f", fs.path / "e", RENAME_EXCHANGE)
    except OSError as exc:
        assert exc.errno in (errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP), ename(exc.errno)
        assert dump(kv) == before
        return
    assert get(kv, "/e") == TREE[b"/f"] and get(kv, "/f/") == b""
    assert os.path.isdir(fs.path / "f") and os.path.isfile(fs.path / "e")


def test_failed_write_leaves_old_value(mode, etcd, kv, mount):
    """EFBIG in the middle of rewriting an existing file: etcd keeps the old value (or holds
    what was written before the failing write), never a value cut off at the limit."""
    kv.put("/v", b"old value")
    m = mount(etcd, options=("max_file_size=100",), extra_args=mode_args(mode))
    fd = os.open(m.path / "v", os.O_RDWR)
    try:
        os.write(fd, b"n" * 100)
        assert errno_of(os.write, fd, b"n") == errno.EFBIG
    finally:
        # close may report that the open's changes were dropped (EFBIG): that is honest
        close_errno = try_errno(os.close, fd)
    assert close_errno in (None, errno.EFBIG)
    assert get(kv, "/v") in (b"old value", b"n" * 100)
    rev = revision(kv)
    fd = os.open(m.path / "v", os.O_RDWR)
    try:
        os.lseek(fd, 200, os.SEEK_SET)
        assert errno_of(os.write, fd, b"x") == errno.EFBIG
        assert errno_of(os.ftruncate, fd, 101) == errno.EFBIG
    finally:
        os.close(fd)  # nothing was written: nothing to report
    assert revision(kv) == rev
