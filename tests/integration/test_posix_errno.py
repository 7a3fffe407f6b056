"""POSIX errno conformance, differential: every case (one syscall with its arguments) runs
against a reference local filesystem (a tmpfs this test mounts) holding the same tree, and
against etcdfs. The errno on etcdfs must be the reference's, except for the few documented
differences in DOCUMENTED (each with the docs/ page that says so). A failing call on etcdfs
must leave etcd exactly as it was (same keys, values and store revision).

test_fs_errors.py holds the fixed errno table of the common error paths; the cases here
complement it (path resolution, '.'/'..', trailing slashes, name length, fd-based calls,
xattrs, locks, lseek, fallocate, utimensat, -o ro).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import mmap
import os
import platform
import shutil
import stat
import struct
import subprocess
import sys
import termios
import time

import pytest

from fs_tool_helpers import (RENAME_EXCHANGE, RENAME_NOREPLACE, dump, ename, mode_args, renameat2,
                             revision)

pytestmark = pytest.mark.needs_etcdfs

RENAME_WHITEOUT = 4
LONG = "n" * 256  # one byte over NAME_MAX
MAX_FILE_SIZE = 1 << 20  # the etcdfs mount's -o max_file_size (the reference has no limit)

# The tree both filesystems start from (like test_fs_errors.py), and the user.etcd.*
# attributes etcdfs shows on files, given to the reference's files too so that xattr cases
# meet an existing attribute on both sides.
TREE = {
    "f": b"F-content",
    "g": b"G-content, longer",
    "d/x": b"X",
    "d/sub/y": b"Y",
    "e/": None,
    "e2/": None,
    "d2/z": b"Z",
}
REF_XATTRS = {b"user.etcd.revision": b"2", b"user.etcd.create_revision": b"2",
              b"user.etcd.version": b"1", b"user.etcd.lease": b"0", b"user.etcd.ttl": b"-1"}

# case id -> (errno etcdfs answers, why; the docs page that says so). The reference gives
# something else (usually success). Kept short: anything not here must match the reference.
DOCUMENTED = {
    "link-new": (errno.EPERM, "no hard links (semantics.md 'Not supported')"),
    "mknod-chr": (errno.EPERM, "mknod of anything but a regular file (semantics.md)"),
    "truncate-over-max-file-size": (errno.EFBIG, "max_file_size (semantics.md Size limit)"),
    "setxattr-user-other": (errno.ENOTSUP, "only user.etcd.* attributes (xattrs.md)"),
    "setxattr-trusted": (errno.ENOTSUP, "names outside user. (xattrs.md)"),
    "setxattr-security": (errno.ENOTSUP, "names outside user. (xattrs.md)"),
    "setxattr-user-etcd-revision": (errno.EPERM, "read-only attribute (xattrs.md)"),
    "fcntl-byte-range": (errno.ENOLCK, "byte-range fcntl locks (locks.md)"),
    "ofd-byte-range": (errno.ENOLCK, "byte-range fcntl locks (locks.md)"),
    "creat-noncanonical-percent": (errno.EINVAL, "a name starting with % that is not the "
                                   "canonical escape (key-mapping.md)"),
    "mkdir-noncanonical-percent": (errno.EINVAL, "a name starting with % that is not the "
                                   "canonical escape (key-mapping.md)"),
    # Unsupported features answering the errno their man page gives for a filesystem without
    # them (not yet listed in semantics.md 'Not supported').
    "open-o-tmpfile": (errno.EOPNOTSUPP, "an unnamed file has no etcd key; FUSE lowlevel has "
                       "no tmpfile op (open(2): EOPNOTSUPP)"),
    "whiteout": (errno.EINVAL, "a whiteout is a 0/0 device node (rename(2): EINVAL for an "
                 "unsupported flag)"),
    "fallocate-extend": (errno.EOPNOTSUPP, "no fallocate op (fallocate(2): EOPNOTSUPP); "
                         "posix_fallocate(3) falls back to writing"),
    "fallocate-keep-size": (errno.EOPNOTSUPP, "no fallocate op (fallocate(2): EOPNOTSUPP)"),
    "ioctl-getflags": (errno.ENOTTY, "no ioctl op, no inode flags (lsattr): ioctl(2) ENOTTY"),
}

# Failing calls that still write to etcd, by design: a lock try that finds the lock held
# creates its waiter key and deletes it again (locks.md). etcd's keys are unchanged; its store
# revision moves.
LOCK_TRIES = {"flock-held-by-other-ofd", "flock-shared-held-exclusive-wanted",
              "fcntl-held-by-other-process", "fcntl-read-held-by-other-process",
              "ofd-held-by-other-ofd"}

# -- raw syscalls (errno preserved) --------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.getxattr.restype = ctypes.c_ssize_t
_libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
_libc.listxattr.restype = ctypes.c_ssize_t
_libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
_SYS_GETDENTS64 = {"x86_64": 217, "aarch64": 61}.get(platform.machine())
F_OFD_SETLK = 37


def _check(r, what):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), what)
    return r


def getxattr_n(path, name, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    return _check(_libc.getxattr(os.fsencode(path), name.encode(), buf, size), "getxattr")


def listxattr_n(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    return _check(_libc.listxattr(os.fsencode(path), buf, size), "listxattr")


def fallocate(fd, mode, off, length):
    return _check(_libc.fallocate(fd, mode, off, length), "fallocate")


def getdents64(fd):
    if _SYS_GETDENTS64 is None:
        pytest.skip(f"getdents64 syscall number unknown on {platform.machine()}")
    buf = ctypes.create_string_buffer(4096)
    return _check(_libc.syscall(ctypes.c_long(_SYS_GETDENTS64), ctypes.c_int(fd), buf,
                                ctypes.c_uint(4096)), "getdents64")


def utimensat_raw(path, nsec):
    ts = (ctypes.c_long * 4)(0, nsec, 0, 0)
    return _check(_libc.utimensat(-100, os.fsencode(path), ts, 0), "utimensat")


def lock_struct(l_type, start=0, length=0, whence=os.SEEK_SET):
    return struct.pack("hhqqi4x", l_type, whence, start, length, 0)


def setlk(fd, l_type, start=0, length=0, cmd=fcntl.F_SETLK, whence=os.SEEK_SET):
    fcntl.fcntl(fd, cmd, lock_struct(l_type, start, length, whence))


# -- the cases -----------------------------------------------------------------------------------
# A case is fn(p, probe): p(name) is the path of name on the filesystem under test, probe(call,
# *args) runs the one call whose errno is compared (setup and cleanup around it are not).

@contextlib.contextmanager
def fds(*specs):
    """Open (path, flags) pairs; close them all afterwards."""
    opened = []
    try:
        for path, flags in specs:
            opened.append(os.open(path, flags, 0o644))
        yield opened
    finally:
        for fd in opened:
            os.close(fd)


def on_fd(name, flags, call, *args):
    """Case: open name with flags, probe call(fd, *args)."""
    def case(p, probe):
        with fds((p(name), flags)) as (fd,):
            probe(call, fd, *args)
    return case


def plain(call, *args, paths=(0,)):
    """Case: probe call(*args), the args at the indexes `paths` being names in the tree."""
    def case(p, probe):
        probe(call, *[p(a) if i in paths else a for i, a in enumerate(args)])
    return case


def undone(call, args, undo, paths=(0,)):
    """Case: probe call(*args) as plain() does, then undo(p) when it succeeded, so that etcd
    returns to the tree's state (the attribute record a chmod wrote goes with the chmod back
    to the defaults, a new entry with its unlink)."""
    def case(p, probe):
        got = plain(call, *args, paths=paths)
        got(p, probe)
        try:
            undo(p)
        except OSError:
            pass
    return case


def _open_close(path, flags):
    os.close(os.open(path, flags, 0o644))


def flock_held_elsewhere(p, probe):
    with fds((p("f"), os.O_RDONLY), (p("f"), os.O_RDONLY)) as (a, b):
        fcntl.flock(a, fcntl.LOCK_EX)
        probe(fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)


def flock_shared_then_exclusive(p, probe):
    with fds((p("f"), os.O_RDONLY), (p("f"), os.O_RDONLY)) as (a, b):
        fcntl.flock(a, fcntl.LOCK_SH)
        probe(fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)


def flock_dir_held_elsewhere(p, probe):
    with fds((p("d"), os.O_RDONLY | os.O_DIRECTORY), (p("d"), os.O_RDONLY | os.O_DIRECTORY)) \
            as (a, b):
        fcntl.flock(a, fcntl.LOCK_EX)
        probe(fcntl.flock, b, fcntl.LOCK_EX | fcntl.LOCK_NB)


def getlk(fd, l_type, start=0, length=0):
    fcntl.fcntl(fd, fcntl.F_GETLK, lock_struct(l_type, start, length))


def ofd_held_elsewhere(p, probe):
    with fds((p("f"), os.O_RDWR), (p("f"), os.O_RDWR)) as (a, b):
        setlk(a, fcntl.F_WRLCK, cmd=F_OFD_SETLK)
        probe(setlk, b, fcntl.F_WRLCK, cmd=F_OFD_SETLK)


@contextlib.contextmanager
def locked_by_other_process(path):
    """A child process holding a whole-file POSIX write lock on path."""
    code = ("import fcntl, os, sys\n"
            "fd = os.open(sys.argv[1], os.O_RDWR)\n"
            "fcntl.lockf(fd, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "sys.stdin.read()\n")
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held", "lock holder failed"
        yield
    finally:
        child.stdin.close()
        child.wait(timeout=30)


def fcntl_held_by_other_process(p, probe):
    with locked_by_other_process(p("f")), fds((p("f"), os.O_RDWR)) as (fd,):
        probe(setlk, fd, fcntl.F_WRLCK)


def fcntl_read_lock_held_by_other_process(p, probe):
    with locked_by_other_process(p("f")), fds((p("f"), os.O_RDONLY)) as (fd,):
        probe(setlk, fd, fcntl.F_RDLCK)


def rmdir_root(p, probe):
    probe(os.rmdir, p(""))


def rename_root(p, probe):
    probe(os.rename, p(""), p("d/rootmoved"))


R, W, RW = os.O_RDONLY, os.O_WRONLY, os.O_RDWR
C, X, T, DIR = os.O_CREAT, os.O_EXCL, os.O_TRUNC, os.O_DIRECTORY

CASES = [
    # open/openat(2)
    ("open-through-file", plain(_open_close, "f/x", R)),
    ("open-file-trailing-slash", plain(_open_close, "f/", R)),
    ("open-missing-trailing-slash", plain(_open_close, "nope/", R)),
    ("creat-trailing-slash", plain(_open_close, "new/", W | C)),
    ("creat-through-file", plain(_open_close, "f/x", W | C)),
    ("creat-excl-existing-dir", plain(_open_close, "e", R | C | X)),
    ("creat-dir", plain(_open_close, "d", W | C)),
    ("open-dir-rdonly-creat", plain(_open_close, "d", R | C)),
    ("open-dir-trunc-wronly", plain(_open_close, "d", W | T)),
    ("open-dir-trunc-rdonly", plain(_open_close, "e", R | T)),
    ("open-long-name", plain(_open_close, LONG, R)),
    ("creat-long-name", plain(_open_close, LONG, W | C)),
    ("creat-long-name-in-dir", plain(_open_close, "d/" + LONG, W | C | X)),
    ("open-long-path", plain(_open_close, "d/" + "a/" * 2100 + "x", R)),
    ("open-directory-creat", plain(_open_close, "new", R | C | DIR)),
    ("open-directory-creat-existing-file", plain(_open_close, "f", R | C | DIR)),
    ("open-directory-missing", plain(_open_close, "nope", R | DIR)),
    ("open-dot-write", plain(_open_close, "d/.", W)),
    ("open-dotdot-creat-excl", plain(_open_close, "d/..", R | C | X)),
    ("openat-relative-to-file-fd", lambda p, probe: _openat_file_fd(p, probe)),
    ("stat-255-byte-name", plain(os.stat, "n" * 255)),
    ("stat-1025-byte-name", plain(os.stat, "n" * 1025)),
    ("creat-noncanonical-percent", plain(_open_close, "%abc", W | C | X)),
    ("mkdir-noncanonical-percent", plain(os.mkdir, "d/%2e")),
    ("stat-noncanonical-percent", plain(os.stat, "%abc")),
    ("open-o-direct", plain(_open_close, "f", R | os.O_DIRECT)),
    ("open-o-tmpfile", plain(_open_close, "d", RW | os.O_TMPFILE)),
    ("open-o-tmpfile-on-file", plain(_open_close, "f", RW | os.O_TMPFILE)),
    # stat/lstat/access/statfs(2)
    ("stat-missing", plain(os.stat, "nope")),
    ("stat-through-file", plain(os.stat, "f/x")),
    ("stat-file-trailing-slash", plain(os.stat, "f/")),
    ("stat-long-name", plain(os.stat, LONG)),
    ("stat-missing-in-missing-dir", plain(os.stat, "nodir/x")),
    ("lstat-missing", plain(os.lstat, "d/nope")),
    ("lstat-through-file", plain(os.lstat, "d/x/y")),
    ("lstat-long-name", plain(os.lstat, "d/" + LONG)),
    ("access-through-file", plain(lambda path: _access(path, os.R_OK), "f/x")),
    ("access-long-name", plain(lambda path: _access(path, os.F_OK), LONG)),
    ("access-bad-mode", plain(lambda path: _access(path, 0o10), "f")),
    ("access-exec-file", plain(lambda path: _access(path, os.X_OK), "f")),
    ("access-missing-raise", plain(lambda path: _access(path, os.F_OK), "nope")),
    ("statfs-missing", plain(os.statvfs, "nope")),
    ("statfs-through-file", plain(os.statvfs, "f/x")),
    # mkdir/rmdir(2)
    ("mkdir-through-file", plain(os.mkdir, "f/x")),
    ("mkdir-long-name", plain(os.mkdir, LONG)),
    ("mkdir-dot", plain(os.mkdir, "d/.")),
    ("mkdir-dotdot", plain(os.mkdir, "d/..")),
    ("mkdir-existing-trailing-slash", plain(os.mkdir, "e/")),
    ("mkdir-file-trailing-slash", plain(os.mkdir, "f/")),
    ("mkdir-root", plain(os.mkdir, "")),
    ("rmdir-dot", plain(os.rmdir, "e/.")),
    ("rmdir-dotdot", plain(os.rmdir, "d/sub/..")),
    ("rmdir-through-file", plain(os.rmdir, "f/x")),
    ("rmdir-file-trailing-slash", plain(os.rmdir, "f/")),
    ("rmdir-long-name", plain(os.rmdir, LONG)),
    ("rmdir-missing-in-missing-dir", plain(os.rmdir, "nodir/x")),
    ("rmdir-mount-root", rmdir_root),
    ("rmdir-non-empty-trailing-slash", plain(os.rmdir, "d2/")),
    # unlink(2)
    ("unlink-through-file", plain(os.unlink, "f/x")),
    ("unlink-file-trailing-slash", plain(os.unlink, "f/")),
    ("unlink-long-name", plain(os.unlink, LONG)),
    ("unlink-dot", plain(os.unlink, "d/.")),
    ("unlink-dotdot", plain(os.unlink, "d/..")),
    ("unlink-nested-dir", plain(os.unlink, "d/sub")),
    ("unlink-missing-in-dir", plain(os.unlink, "d/nope")),
    # rename/renameat2(2)
    ("rename-dir-into-own-child", plain(os.rename, "d", "d/inner", paths=(0, 1))),
    ("rename-dir-into-own-child-existing", plain(os.rename, "d", "d/sub", paths=(0, 1))),
    ("rename-dot", plain(os.rename, "d/.", "h", paths=(0, 1))),
    ("rename-dotdot", plain(os.rename, "d/..", "h", paths=(0, 1))),
    ("rename-onto-dot", plain(os.rename, "f", "e/.", paths=(0, 1))),
    ("rename-onto-dotdot", plain(os.rename, "e", "d/..", paths=(0, 1))),
    ("rename-through-file-src", plain(os.rename, "f/x", "h", paths=(0, 1))),
    ("rename-through-file-dst", plain(os.rename, "g", "f/x", paths=(0, 1))),
    ("rename-file-trailing-slash", plain(os.rename, "f/", "h", paths=(0, 1))),
    ("rename-file-to-trailing-slash", plain(os.rename, "f", "h/", paths=(0, 1))),
    ("rename-file-onto-dir-slash", plain(os.rename, "f", "e/", paths=(0, 1))),
    ("rename-long-dst", plain(os.rename, "f", LONG, paths=(0, 1))),
    ("rename-long-src", plain(os.rename, LONG, "h", paths=(0, 1))),
    ("rename-dir-onto-nonempty-nested", plain(os.rename, "e2", "d/sub", paths=(0, 1))),
    ("rename-mount-root", rename_root),
    ("rename-onto-mount-root", plain(os.rename, "e", "", paths=(0, 1))),
    ("noreplace-dir-onto-file", plain(renameat2, "e", "f", RENAME_NOREPLACE, paths=(0, 1))),
    ("noreplace-missing-src", plain(renameat2, "nope", "h", RENAME_NOREPLACE, paths=(0, 1))),
    ("noreplace-onto-nonempty-dir", plain(renameat2, "e", "d2", RENAME_NOREPLACE, paths=(0, 1))),
    ("exchange-missing-src", plain(renameat2, "nope", "f", RENAME_EXCHANGE, paths=(0, 1))),
    ("exchange-both-missing", plain(renameat2, "nope", "nope2", RENAME_EXCHANGE, paths=(0, 1))),
    ("exchange-dir-with-own-child", plain(renameat2, "d", "d/x", RENAME_EXCHANGE, paths=(0, 1))),
    ("exchange-child-with-own-parent", plain(renameat2, "d/x", "d", RENAME_EXCHANGE,
                                             paths=(0, 1))),
    ("exchange-through-file", plain(renameat2, "f/x", "g", RENAME_EXCHANGE, paths=(0, 1))),
    ("whiteout", plain(renameat2, "f", "h", RENAME_WHITEOUT, paths=(0, 1))),
    ("noreplace-onto-itself", plain(renameat2, "f", "f", RENAME_NOREPLACE, paths=(0, 1))),
    ("rename-dir-onto-own-parent", plain(os.rename, "d/sub", "d", paths=(0, 1))),
    ("renameat2-unknown-flag", plain(renameat2, "f", "h", 8, paths=(0, 1))),
    ("whiteout-and-exchange", plain(renameat2, "f", "g", RENAME_WHITEOUT | RENAME_EXCHANGE,
                                    paths=(0, 1))),
    # truncate/ftruncate(2)
    ("truncate-negative", plain(os.truncate, "f", -1)),
    ("truncate-through-file", plain(os.truncate, "f/x", 0)),
    ("truncate-file-trailing-slash", plain(os.truncate, "f/", 0)),
    ("truncate-long-name", plain(os.truncate, LONG, 0)),
    ("truncate-over-max-file-size", plain(os.truncate, "f", MAX_FILE_SIZE + 1)),
    ("ftruncate-rdonly", on_fd("f", R, os.ftruncate, 0)),
    ("ftruncate-negative", on_fd("f", RW, os.ftruncate, -1)),
    ("ftruncate-dir", on_fd("d", R | DIR, os.ftruncate, 0)),
    # read/write/pread/pwrite(2)
    ("write-rdonly-fd", on_fd("f", R, os.write, b"x")),
    ("read-wronly-fd", on_fd("f", W, os.read, 1)),
    ("read-dir-fd", on_fd("d", R | DIR, os.read, 10)),
    ("pread-negative-offset", on_fd("f", R, os.pread, 1, -1)),
    ("pwrite-negative-offset", on_fd("f", RW, os.pwrite, b"x", -1)),
    ("write-dir-fd", on_fd("e", R | DIR, os.write, b"x")),
    # lseek(2)
    ("lseek-negative", on_fd("f", R, os.lseek, -1, os.SEEK_SET)),
    ("lseek-cur-negative", on_fd("f", R, os.lseek, -100, os.SEEK_CUR)),
    ("lseek-end-negative", on_fd("f", R, os.lseek, -100, os.SEEK_END)),
    ("lseek-bad-whence", on_fd("f", R, os.lseek, 0, 99)),
    ("lseek-data-at-eof", on_fd("f", R, os.lseek, len(TREE["f"]), os.SEEK_DATA)),
    ("lseek-data-beyond-eof", on_fd("f", R, os.lseek, 1000, os.SEEK_DATA)),
    ("lseek-hole-beyond-eof", on_fd("f", R, os.lseek, 1000, os.SEEK_HOLE)),
    ("lseek-data-negative", on_fd("f", R, os.lseek, -1, os.SEEK_DATA)),
    # getdents64(2), opendir(3)
    ("getdents-on-file", on_fd("f", R, getdents64)),
    ("opendir-file", plain(os.listdir, "f")),
    ("opendir-through-file", plain(os.listdir, "f/x")),
    ("opendir-missing", plain(os.listdir, "nope")),
    # xattrs: getxattr/setxattr/listxattr/removexattr(2)
    ("getxattr-missing-user", plain(os.getxattr, "f", "user.nope")),
    ("getxattr-missing-trusted", plain(os.getxattr, "f", "trusted.nope")),
    ("getxattr-missing-security", plain(os.getxattr, "f", "security.nope")),
    ("getxattr-user-etcd-cas", plain(os.getxattr, "f", "user.etcd.cas")),
    ("getxattr-unknown-namespace", plain(os.getxattr, "f", "foo.bar")),
    ("getxattr-erange", plain(getxattr_n, "f", "user.etcd.ttl", 1)),
    ("getxattr-long-name", plain(os.getxattr, "f", "user." + "a" * 300)),
    ("getxattr-missing-file", plain(os.getxattr, "nope", "user.etcd.revision")),
    ("getxattr-through-file", plain(os.getxattr, "f/x", "user.etcd.revision")),
    ("listxattr-erange", plain(listxattr_n, "f", 1)),
    ("listxattr-missing-file", plain(os.listxattr, "nope")),
    ("setxattr-create-existing", plain(os.setxattr, "f", "user.etcd.ttl", b"5",
                                       os.XATTR_CREATE)),
    ("setxattr-replace-missing", plain(os.setxattr, "f", "user.nope", b"v", os.XATTR_REPLACE)),
    ("setxattr-bad-flags", plain(os.setxattr, "f", "user.etcd.ttl", b"5", 4)),
    ("setxattr-unknown-namespace", plain(os.setxattr, "f", "foo.bar", b"v")),
    ("setxattr-empty-name", plain(os.setxattr, "f", "", b"v")),
    ("setxattr-value-too-big", plain(os.setxattr, "f", "user.etcd.ttl", b"1" * 65537)),
    ("setxattr-missing-file", plain(os.setxattr, "nope", "user.etcd.ttl", b"5")),
    ("setxattr-user-other", plain(os.setxattr, "f", "user.other", b"v")),
    ("setxattr-trusted", plain(os.setxattr, "f", "trusted.other", b"v")),
    ("setxattr-security", plain(os.setxattr, "f", "security.other", b"v")),
    ("setxattr-user-etcd-revision", plain(os.setxattr, "f", "user.etcd.revision", b"5")),
    ("removexattr-missing-user", plain(os.removexattr, "f", "user.nope")),
    ("removexattr-missing-trusted", plain(os.removexattr, "f", "trusted.nope")),
    ("removexattr-unknown-namespace", plain(os.removexattr, "f", "foo.bar")),
    ("removexattr-missing-file", plain(os.removexattr, "nope", "user.nope")),
    # flock(2), fcntl(2) locks
    ("flock-held-by-other-ofd", flock_held_elsewhere),
    ("flock-shared-held-exclusive-wanted", flock_shared_then_exclusive),
    ("flock-bad-op", on_fd("f", R, fcntl.flock, 0)),
    ("flock-bad-op-both", on_fd("f", R, fcntl.flock, fcntl.LOCK_SH | fcntl.LOCK_EX)),
    ("fcntl-held-by-other-process", fcntl_held_by_other_process),
    ("fcntl-read-held-by-other-process", fcntl_read_lock_held_by_other_process),
    ("fcntl-wrlck-on-rdonly-fd", on_fd("f", R, setlk, fcntl.F_WRLCK)),
    ("fcntl-rdlck-on-wronly-fd", on_fd("f", W, setlk, fcntl.F_RDLCK)),
    ("fcntl-bad-type", on_fd("f", RW, setlk, 99)),
    ("fcntl-negative-start", on_fd("f", RW, setlk, fcntl.F_WRLCK, -5)),
    ("fcntl-bad-whence", on_fd("f", RW, setlk, fcntl.F_WRLCK, 0, 0, fcntl.F_SETLK, 99)),
    ("fcntl-byte-range", on_fd("f", RW, setlk, fcntl.F_WRLCK, 0, 4)),
    ("ofd-held-by-other-ofd", ofd_held_elsewhere),
    ("ofd-byte-range", on_fd("f", RW, setlk, fcntl.F_WRLCK, 2, 4, F_OFD_SETLK)),
    ("flock-dir-held-by-other-ofd", flock_dir_held_elsewhere),
    ("fcntl-getlk-byte-range", on_fd("f", RW, getlk, fcntl.F_WRLCK, 0, 4)),
    ("fcntl-setlease-rdonly", on_fd("f", R, fcntl.fcntl, fcntl.F_SETLEASE, fcntl.F_RDLCK)),
    # ioctl(2), mmap(2)
    ("ioctl-tcgets-on-file", on_fd("f", R, fcntl.ioctl, termios.TCGETS, b"\0" * 64)),
    ("ioctl-getflags", on_fd("f", R, fcntl.ioctl, 0x80086601, b"\0" * 8)),
    ("mmap-write-on-rdonly-fd", on_fd("f", R, lambda fd: mmap.mmap(fd, 4, mmap.MAP_SHARED,
                                                                mmap.PROT_WRITE))),
    ("mmap-on-wronly-fd", on_fd("f", W, lambda fd: mmap.mmap(fd, 4, mmap.MAP_SHARED,
                                                            mmap.PROT_READ))),
    ("mmap-dir-fd", on_fd("d", R | DIR, lambda fd: mmap.mmap(fd, 4, mmap.MAP_SHARED,
                                                            mmap.PROT_READ))),
    # fallocate(2)
    ("fallocate-rdonly-fd", on_fd("f", R, fallocate, 0, 0, 10)),
    ("fallocate-zero-length", on_fd("f", RW, fallocate, 0, 0, 0)),
    ("fallocate-negative-offset", on_fd("f", RW, fallocate, 0, -1, 10)),
    ("fallocate-bad-mode", on_fd("f", RW, fallocate, 0x1000, 0, 10)),
    ("fallocate-punch-without-keep-size", on_fd("f", RW, fallocate, 0x02, 0, 4)),
    ("fallocate-extend", on_fd("f", RW, fallocate, 0, 0, 100)),
    ("fallocate-keep-size", on_fd("f", RW, fallocate, 0x01, 0, 100)),
    ("copy-file-range-to-rdonly", lambda p, probe: _copy_range(p, probe, R)),
    ("copy-file-range-to-append", lambda p, probe: _copy_range(p, probe, W | os.O_APPEND)),
    ("fallocate-dir-fd", on_fd("d", R | DIR, fallocate, 0, 0, 10)),
    # utimensat(2)
    ("utime-missing", plain(os.utime, "nope")),
    ("utime-through-file", plain(os.utime, "f/x")),
    ("utimensat-bad-nsec", plain(utimensat_raw, "f", 1_000_000_000)),
    ("utimensat-negative-nsec", plain(utimensat_raw, "f", -2)),
    # chmod/chown(2)
    ("chmod-missing", plain(os.chmod, "nope", 0o644)),
    ("chmod-through-file", plain(os.chmod, "f/x", 0o644)),
    ("chmod-other-mode", undone(os.chmod, ("f", 0o600), lambda p: os.chmod(p("f"), 0o644))),
    ("chown-missing", plain(os.chown, "nope", 0, 0)),
    ("chown-other-owner", undone(os.chown, ("f", 1, 1),
                                 lambda p: os.chown(p("f"), os.getuid(), os.getgid()))),
    # link/symlink/mknod/mkfifo/readlink(2)
    ("link-new", plain(os.link, "f", "hard", paths=(0, 1))),
    ("link-missing-src", plain(os.link, "nope", "hard", paths=(0, 1))),
    ("link-onto-existing", plain(os.link, "f", "g", paths=(0, 1))),
    ("link-dir", plain(os.link, "d", "hard", paths=(0, 1))),
    ("link-into-missing-dir", plain(os.link, "f", "nodir/hard", paths=(0, 1))),
    ("symlink-new", undone(os.symlink, ("f", "soft"), lambda p: os.unlink(p("soft")),
                           paths=(1,))),
    ("symlink-onto-existing", plain(os.symlink, "whatever", "g", paths=(1,))),
    ("symlink-into-missing-dir", plain(os.symlink, "whatever", "nodir/soft", paths=(1,))),
    ("symlink-long-name", plain(os.symlink, "whatever", LONG, paths=(1,))),
    ("mknod-chr", plain(os.mknod, "chr", stat.S_IFCHR | 0o644, os.makedev(1, 3))),
    ("mknod-existing", plain(os.mknod, "f", stat.S_IFREG | 0o644)),
    ("mknod-bad-type", plain(os.mknod, "bad", 0o170000 | 0o644)),
    ("mkfifo-new", undone(os.mkfifo, ("fifo",), lambda p: os.unlink(p("fifo")))),
    ("mkfifo-existing", plain(os.mkfifo, "g")),
    ("readlink-file", plain(os.readlink, "f")),
    ("readlink-dir", plain(os.readlink, "d")),
    ("readlink-missing", plain(os.readlink, "nope")),
]


def _openat_file_fd(p, probe):
    with fds((p("f"), os.O_RDONLY)) as (fd,):
        probe(os.open, "x", os.O_RDONLY, dir_fd=fd)


def _copy_range(p, probe, dst_flags):
    with fds((p("f"), os.O_RDONLY), (p("g"), dst_flags)) as (src, dst):
        probe(os.copy_file_range, src, dst, 4)


def _access(path, mode):
    """access(2) itself: os.access() hides the errno."""
    r = _libc.access(os.fsencode(path), ctypes.c_int(mode))
    _check(r, "access")


def _mutating_on_ro():
    """Calls that must fail with EROFS on a read-only mount (and the few that fail first with
    another errno, which the reference decides)."""
    return [
        ("ro-open-wronly", plain(_open_close, "f", W)),
        ("ro-open-rdwr", plain(_open_close, "f", RW)),
        ("ro-open-trunc", plain(_open_close, "f", R | T)),
        ("ro-creat-new", plain(_open_close, "new", W | C)),
        ("ro-creat-excl-existing", plain(_open_close, "f", W | C | X)),
        ("ro-open-dir-write", plain(_open_close, "d", W)),
        ("ro-mkdir-new", plain(os.mkdir, "new")),
        ("ro-mkdir-existing", plain(os.mkdir, "d")),
        ("ro-rmdir-empty", plain(os.rmdir, "e")),
        ("ro-rmdir-missing", plain(os.rmdir, "nope")),
        ("ro-unlink", plain(os.unlink, "f")),
        ("ro-unlink-missing", plain(os.unlink, "nope")),
        ("ro-rename", plain(os.rename, "f", "h", paths=(0, 1))),
        ("ro-rename-missing", plain(os.rename, "nope", "h", paths=(0, 1))),
        ("ro-rename-noreplace", plain(renameat2, "f", "h", RENAME_NOREPLACE, paths=(0, 1))),
        ("ro-rename-exchange", plain(renameat2, "f", "g", RENAME_EXCHANGE, paths=(0, 1))),
        ("ro-truncate", plain(os.truncate, "f", 0)),
        ("ro-truncate-dir", plain(os.truncate, "d", 0)),
        ("ro-ftruncate-rdonly", on_fd("f", R, os.ftruncate, 0)),
        ("ro-utime", plain(os.utime, "f")),
        ("ro-chmod", plain(os.chmod, "f", 0o444)),
        ("ro-chown", plain(os.chown, "f", 1, 1)),
        ("ro-setxattr", plain(os.setxattr, "f", "user.etcd.ttl", b"5")),
        ("ro-removexattr", plain(os.removexattr, "f", "user.etcd.ttl")),
        ("ro-link", plain(os.link, "f", "hard", paths=(0, 1))),
        ("ro-symlink", plain(os.symlink, "f", "soft", paths=(1,))),
        ("ro-mknod", plain(os.mknod, "reg", stat.S_IFREG | 0o644)),
        ("ro-mkfifo", plain(os.mkfifo, "fifo")),
        ("ro-access-w-file", plain(_access, "f", os.W_OK)),
        ("ro-access-w-dir", plain(_access, "d", os.W_OK)),
        ("ro-access-w-missing", plain(_access, "nope", os.W_OK)),
        ("ro-write-lock-rdonly-fd", on_fd("f", R, setlk, fcntl.F_WRLCK)),
    ]


RO_CASES = _mutating_on_ro()

# -- the reference filesystem --------------------------------------------------------------------


def build_tree(root):
    for name, content in TREE.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path.rstrip("/")) or root, exist_ok=True)
        if content is None:
            os.makedirs(path, exist_ok=True)
            continue
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o644)
        for k, v in REF_XATTRS.items():
            os.setxattr(path, k, v)
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            os.chmod(os.path.join(dirpath, d), 0o755)


def clear_tree(root):
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)


@contextlib.contextmanager
def tmpfs(path, ro=False):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a reference tmpfs: {r.stderr.strip()}")
    try:
        try:
            build_tree(str(path))
        except OSError as exc:
            if exc.errno != errno.EOPNOTSUPP:
                raise
            pytest.skip("the reference tmpfs has no user.* xattrs (Linux before 6.6)")
        if ro:
            subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


# -- running the cases ---------------------------------------------------------------------------

class Probe:
    """Runs the probed call; errno None when it succeeded. With kv, checks that a failing call
    wrote nothing to etcd."""

    def __init__(self, kv=None, writes=False):
        self.kv = kv
        self.writes = writes  # the call may write to etcd: compare the keys only
        self.errno = None
        self.called = False
        self.etcd_changed = None

    def __call__(self, call, *args, **kw):
        assert not self.called, "a case probes one call"
        self.called = True
        before = (dump(self.kv), revision(self.kv)) if self.kv is not None else None
        try:
            call(*args, **kw)
        except OSError as exc:
            self.errno = exc.errno
        if self.kv is not None and self.errno is not None:
            after = dump(self.kv)
            if after != before[0]:
                self.etcd_changed = f"keys differ: {sorted(set(after) ^ set(before[0]))}"
            elif revision(self.kv) != before[1] and not self.writes:
                self.etcd_changed = "store revision moved"


def run_case(fn, root, kv=None, writes=False):
    def p(name):
        return os.path.join(str(root), name) if name else str(root)
    probe = Probe(kv, writes)
    fn(p, probe)
    assert probe.called, "the case never reached its probed call"
    return probe


def wait_for_etcd(kv, baseline, timeout=3.0):
    """Lock releases reach etcd just after close returns: wait until etcd is back to the
    tree's state before the next case takes its snapshot."""
    deadline = time.monotonic() + timeout
    while dump(kv) != baseline:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def differential(cases, ref_root, fs_root, kv, rebuild_ref, reset_etcd):
    """Run every case on both; return (rows, problems)."""
    baseline = dump(kv)
    rows, problems = [], []
    for cid, fn in cases:
        ref = run_case(fn, ref_root)
        if ref.errno is None and rebuild_ref is not None:
            clear_tree(str(ref_root))
            rebuild_ref()
        got = run_case(fn, fs_root, kv, writes=cid in LOCK_TRIES)
        documented = DOCUMENTED.get(cid)
        want = documented[0] if documented else ref.errno
        rows.append((cid, ename(ref.errno) if ref.errno else "ok",
                     ename(got.errno) if got.errno else "ok"))
        if got.errno != want:
            problems.append(f"{cid}: etcdfs {ename(got.errno) if got.errno else 'succeeded'}, "
                            f"reference {ename(ref.errno) if ref.errno else 'succeeded'}"
                            + (f" (documented: {ename(want)})" if documented else ""))
        elif documented and ref.errno == got.errno:
            problems.append(f"{cid}: listed in DOCUMENTED but the reference agrees now")
        if got.etcd_changed:
            problems.append(f"{cid}: failed with {ename(got.errno)} but changed etcd: "
                            f"{got.etcd_changed}")
        if not wait_for_etcd(kv, baseline):
            now = dump(kv)
            problems.append(f"{cid}: etcd did not return to the tree's state: "
                            f"{sorted(set(now.items()) ^ set(baseline.items()))}")
            reset_etcd()
            baseline = dump(kv)
    return rows, problems


def report(rows, problems, title):
    print(f"\n{title}: {len(rows)} cases, "
          f"{sum(1 for r in rows if r[0] in DOCUMENTED)} documented differences")
    for cid, ref, got in rows:
        mark = "  (documented)" if cid in DOCUMENTED else ("  <-- differs" if ref != got else "")
        print(f"  {cid:45} reference {ref:12} etcdfs {got}{mark}")
    assert not problems, f"{title}:\n  " + "\n  ".join(problems)


# -- tests ---------------------------------------------------------------------------------------

def put_tree(kv):
    for name, content in TREE.items():
        kv.put("/" + name, content if content is not None else b"")


def test_errno_matches_reference(mode, etcd, kv, mount, tmp_path):
    """Every case errs (or succeeds) on etcdfs exactly as on tmpfs, documented cases aside."""
    put_tree(kv)
    m = mount(etcd, options=(f"max_file_size={MAX_FILE_SIZE}",), extra_args=mode_args(mode))
    os.listdir(m.path)

    def reset_etcd():
        kv.delete_prefix("/")
        put_tree(kv)

    with tmpfs(tmp_path / "ref") as ref:
        rows, problems = differential(CASES, ref, m.path, kv,
                                      lambda: build_tree(str(ref)), reset_etcd)
    report(rows, problems, f"errno vs tmpfs, --consistency={mode}")


def test_errno_on_read_only_mount_matches_reference(mode, etcd, kv, mount, tmp_path):
    """-o ro: every mutating call is EROFS (or what a read-only tmpfs answers first)."""
    put_tree(kv)
    m = mount(etcd, options=("ro",), extra_args=mode_args(mode))
    os.listdir(m.path)
    with tmpfs(tmp_path / "ref-ro", ro=True) as ref:
        rows, problems = differential(RO_CASES, ref, m.path, kv, None, lambda: None)
    report(rows, problems, f"errno vs read-only tmpfs, --consistency={mode}")


def test_ofd_lock_ends_with_its_open_file_description(etcd, kv, mount):
    """An F_OFD_SETLK lock ends when the last descriptor of its open file description closes.
    The kernel sends FUSE no unlock for it (it keeps no local record of locks the filesystem
    handles); the daemon ends it at the description's release."""
    kv.put("/f", b"F")
    m = mount(etcd)
    fd = os.open(m.path / "f", os.O_RDWR)
    setlk(fd, fcntl.F_WRLCK, cmd=F_OFD_SETLK)
    dup = os.dup(fd)
    os.close(fd)
    # one descriptor of the description is still open, and closes of other descriptors of
    # the file by this process (a POSIX lock would end) leave the OFD lock held
    os.close(os.open(m.path / "f", os.O_RDONLY))
    with fds((m.path / "f", os.O_RDWR)) as (other,):
        with pytest.raises(OSError) as exc:
            setlk(other, fcntl.F_WRLCK, cmd=F_OFD_SETLK)
        assert exc.value.errno == errno.EAGAIN
    assert any(k.startswith(b"etcdfs-locks/") for k in dump(kv))
    os.close(dup)
    deadline = time.monotonic() + 5
    while any(k.startswith(b"etcdfs-locks/") for k in dump(kv)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(k.startswith(b"etcdfs-locks/") for k in dump(kv)), "the OFD lock outlived " \
        "its open file description"


QUIET_CASES = [(cid, fn) for cid, fn in CASES
               if cid in ("chmod-other-mode", "chown-other-owner", "chmod-missing",
                          "chown-missing", "chmod-through-file")]


def test_errno_with_quiet_matches_reference(etcd, kv, mount, tmp_path, monkeypatch):
    """-o quiet without attribute records (--attrs=none): chmod/chown to other values succeed
    as on tmpfs (without effect); their error paths stay the reference's."""
    put_tree(kv)
    m = mount(etcd, options=("quiet",), extra_args=["--attrs=none"])
    os.listdir(m.path)
    monkeypatch.setattr(sys.modules[__name__], "DOCUMENTED", {})
    with tmpfs(tmp_path / "ref") as ref:
        rows, problems = differential(QUIET_CASES, ref, m.path, kv,
                                      lambda: build_tree(str(ref)), lambda: None)
    report(rows, problems, "errno vs tmpfs, -o quiet")
    assert len(rows) == 5
