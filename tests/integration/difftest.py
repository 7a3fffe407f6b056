"""Differential tester: random operation traces run in lockstep on tmpfs and on etcdfs.

A seeded generator produces file-system operations over a tiny name space (names 'a', 'b',
'c', at most 3 levels deep, so that names collide all the time): open with O_CREAT, O_EXCL,
O_TRUNC, O_APPEND and every access mode into a table of descriptor slots (several open at
once), write, pwrite, appends (`echo >>`), read, pread, lseek, truncate, ftruncate, fsync,
fstat, close, unlink, mkdir, rmdir, rename with flags 0, RENAME_NOREPLACE and RENAME_EXCHANGE
(files and directories), stat and readdir; and attributes and file types
(docs/design-attributes.md): chmod (setuid, setgid and sticky bits included), chown, utimensat
(the mtime read back at once), symlink (relative targets inside the run, loops included),
readlink, lstat and mkfifo (FIFOs are named 'p', a name no open ever reaches: it would block). Every operation runs on a reference directory on
tmpfs and on an etcdfs mount, each in a fresh sub-directory of its own (so a fresh etcd
prefix). Why tmpfs: etcdfs claims local-filesystem semantics for one mount
(docs/semantics.md), and tmpfs is the simplest local filesystem there is. Compared:

- every return value and errno (data read, bytes written, offsets, types, sizes, modes and
  owners, symbolic link targets);
- every CHECK_EVERY operations, and at the end, the whole tree: names, types, modes, owners,
  file sizes (stat), contents (read) and link targets, through the mount;
- whenever no descriptor is open (an ("etcd",) operation) and at the end, what an independent
  etcd client (python-etcd3) reads under the run's prefix (docs/key-mapping.md): the file
  `a/b` is the key `<prefix>a/b` holding its content (opened with the key file under
  --key-file, docs/encryption.md; a symbolic link's key holds its target, a FIFO's nothing;
  attribute records are left to the mount's view), every empty directory has its empty marker key
  `<prefix>dir/` (markers of non-empty directories may stay, docs/semantics.md), and no key
  exists outside the runs' prefixes. A file only created or truncated is stored at release,
  just after close returns (docs/semantics.md): etcd gets a bounded wait to agree.

Only what etcdfs promises is compared. Left out on purpose, as documented differences:

- st_nlink, st_ino, times (but right after utimensat) and directory sizes are synthesized
  (docs/semantics.md "Attributes"): stat compares the type, mode, owner and the size of files
  and symbolic links;
- lseek on a directory descriptor: FUSE's kernel side seeks directories by their synthesized
  size (SEEK_END -4 gives 4092; tmpfs answers EINVAL), another face of "directory sizes
  differ" (docs/semantics.md "Attributes"): the generator seeks file descriptors only;
- hard links, device nodes, O_TMPFILE, fallocate and byte-range locks are not supported
  (docs/semantics.md "Not (yet) supported"): the generator never makes them;
- names starting with '%' are escapes and '%value' is reserved (docs/key-mapping.md): the
  alphabet has no '%';
- EFBIG above max_file_size and EXDEV for renames of more than about 60 keys
  (docs/semantics.md "rename", "Size limit"): values, offsets and trees stay far below.

A run is a trace: a list of tuples such as ("open", 0, "a/b", "CREAT|RDWR") or
("rename", "a", "b/c", "EXCHANGE"). Operations on a descriptor slot that is not open are
skipped on both sides, so any sub-list of a trace is a valid trace: the shrinker (delta
debugging, each attempt on a fresh sub-directory) reduces a failing trace to a minimal one
with the same divergence, printed as Python that replay() and the command line run:

    /usr/bin/python3 tests/integration/difftest.py --seed 7 --ops 2000 --mode watch
    /usr/bin/python3 tests/integration/difftest.py --seeds 50 --ops 2000 --mode all --key-file both
    /usr/bin/python3 tests/integration/difftest.py --replay trace.py --mode strict

(ETCDFS_BUILD_DIR selects the build, as for the pytest suite.) test_fs_differential.py runs
it under pytest; docs/testing.md tells how to run it long.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import errno
import math
import os
import random
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import pytest

from fs_tool_helpers import MODES, RENAME_EXCHANGE, RENAME_NOREPLACE, renameat2

NAMES = ("a", "b", "c")
MAX_DEPTH = 3
SLOTS = 4            # descriptor slots 0..SLOTS-1
MAX_DATA = 64        # bytes per write
MAX_OFF = 80         # offsets, lengths of reads and truncates
CHECK_EVERY = 20     # a ("tree",) comparison every this many generated operations
PRINTABLE = bytes(range(0x20, 0x7f))

OPEN_FLAGS = {"RDONLY": os.O_RDONLY, "WRONLY": os.O_WRONLY, "RDWR": os.O_RDWR,
              "CREAT": os.O_CREAT, "EXCL": os.O_EXCL, "TRUNC": os.O_TRUNC,
              "APPEND": os.O_APPEND}
RENAME_FLAGS = {"0": 0, "NOREPLACE": RENAME_NOREPLACE, "EXCHANGE": RENAME_EXCHANGE}
WHENCE = {"SET": os.SEEK_SET, "CUR": os.SEEK_CUR, "END": os.SEEK_END}

# operation -> weight in the generator
WEIGHTS = {
    "open": 12, "close": 6, "write": 8, "pwrite": 5, "read": 6, "pread": 4, "seek": 2,
    "ftruncate": 3, "fsync": 2, "fstat": 2, "truncate": 3, "append": 4, "unlink": 6,
    "mkdir": 5, "rmdir": 5, "rename": 10, "stat": 4, "readdir": 3, "etcd": 2,
    # attributes and file types (docs/design-attributes.md)
    "chmod": 3, "chown": 1, "utime": 2, "symlink": 3, "readlink": 2, "mkfifo": 1, "lstat": 3,
}
MODES_CHMOD = (0o600, 0o644, 0o640, 0o755, 0o700, 0o750, 0o4755, 0o2755, 0o1777)
OWNERS = ((0, 0), (1000, 1000), (1, 2), (0, 1000))
FIFO = "p"  # FIFOs have a name of their own: no open or append ever reaches one (it would block)
FD_OPS = {"close", "write", "pwrite", "read", "pread", "seek", "ftruncate", "fsync", "fstat"}

Trace = list  # of op tuples


# -- one side: a directory and its descriptor table ------------------------------------------

def kind_of(st) -> str:
    if stat.S_ISDIR(st.st_mode):
        return "dir"
    if stat.S_ISREG(st.st_mode):
        return "file"
    if stat.S_ISLNK(st.st_mode):
        return "symlink"
    if stat.S_ISFIFO(st.st_mode):
        return "fifo"
    return "other"


def describe(st) -> tuple:
    """What is compared of a stat: the type, the size of a file or symbolic link, the mode bits
    and the owner (kept in attribute records, docs/design-attributes.md); not the times, which
    utime compares right after setting them."""
    kind = kind_of(st)
    size = (st.st_size,) if kind in ("file", "symlink") else ()
    return (kind, *size, oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid)


def open_flags(spec: str) -> int:
    flags = 0
    for name in spec.split("|"):
        flags |= OPEN_FLAGS[name]
    return flags


class Side:
    """Applies operations below `root` and keeps the descriptor slots. apply() returns
    ("ok", value...), ("err", "ENOENT") or ("skip",) for an operation on a closed slot."""

    def __init__(self, root: str):
        self.root = str(root)
        self.fds: dict[int, int] = {}
        self.opened: dict[int, str] = {}  # slot -> the name it was opened by

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def apply(self, op: tuple) -> tuple:
        name, args = op[0], op[1:]
        if name in FD_OPS and args[0] not in self.fds:
            return ("skip",)
        try:
            return ("ok", *getattr(self, "op_" + name)(*args))
        except OSError as exc:
            return ("err", errno.errorcode.get(exc.errno, str(exc.errno)))

    def close_all(self) -> None:
        for slot in list(self.fds):
            with contextlib.suppress(OSError):
                os.close(self.fds.pop(slot))

    # descriptor operations
    def op_open(self, slot, rel, flags):
        if slot in self.fds:  # a shrunk trace may reopen a slot it never closed
            os.close(self.fds.pop(slot))
        self.fds[slot] = os.open(self.path(rel), open_flags(flags), 0o644)
        self.opened[slot] = rel
        return ()

    def op_close(self, slot):
        os.close(self.fds.pop(slot))
        return ()

    def op_write(self, slot, data):
        return (os.write(self.fds[slot], data),)

    def op_pwrite(self, slot, data, off):
        return (os.pwrite(self.fds[slot], data, off),)

    def op_read(self, slot, n):
        return (os.read(self.fds[slot], n),)

    def op_pread(self, slot, n, off):
        return (os.pread(self.fds[slot], n, off),)

    def op_seek(self, slot, off, whence):
        return (os.lseek(self.fds[slot], off, WHENCE[whence]),)

    def op_ftruncate(self, slot, length):
        os.ftruncate(self.fds[slot], length)
        return ()

    def op_fsync(self, slot):
        os.fsync(self.fds[slot])
        return ()

    def op_fstat(self, slot):
        return describe(os.fstat(self.fds[slot]))

    # path operations
    def op_truncate(self, rel, length):
        os.truncate(self.path(rel), length)
        return ()

    def op_append(self, rel, data):
        """`echo data >> rel`: open(O_WRONLY|O_APPEND|O_CREAT), write, close."""
        fd = os.open(self.path(rel), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            n = os.write(fd, data)
        finally:
            os.close(fd)
        return (n,)

    def op_unlink(self, rel):
        os.unlink(self.path(rel))
        return ()

    def op_mkdir(self, rel):
        os.mkdir(self.path(rel), 0o755)
        return ()

    def op_rmdir(self, rel):
        os.rmdir(self.path(rel))
        return ()

    def op_rename(self, src, dst, flags):
        renameat2(self.path(src), self.path(dst), RENAME_FLAGS[flags])
        return ()

    def op_stat(self, rel):
        return describe(os.stat(self.path(rel)))

    def op_lstat(self, rel):
        return describe(os.lstat(self.path(rel)))

    def op_chmod(self, rel, mode):
        os.chmod(self.path(rel), mode)
        return ()

    def op_chown(self, rel, uid, gid):
        os.chown(self.path(rel), uid, gid, follow_symlinks=False)
        return ()

    def op_utime(self, rel, sec):
        os.utime(self.path(rel), ns=(sec * 10**9 + 7, sec * 10**9 + 7))
        return (os.stat(self.path(rel)).st_mtime_ns,)

    def op_symlink(self, target, rel):
        os.symlink(target, self.path(rel))
        return ()

    def op_readlink(self, rel):
        return (os.readlink(self.path(rel)),)

    def op_mkfifo(self, rel):
        os.mkfifo(self.path(rel), 0o640)
        return ()

    def op_readdir(self, rel):
        with os.scandir(self.path(rel)) as it:
            return (tuple(sorted((e.name, entry_kind(e)) for e in it)),)

    def op_tree(self):
        return (tuple(sorted(snapshot(self.root).items())),)


def entry_kind(entry) -> str:
    return kind_of(entry.stat(follow_symlinks=False))


def snapshot(root: str) -> dict:
    """{relative path: ("dir", mode, uid, gid) | ("file", stat size, content, mode, uid, gid)
    | ("symlink", target, uid, gid) | ("fifo", mode, uid, gid) | ("err", errno)} below
    root."""
    out: dict = {}
    stack = [""]
    for _ in range(10_000):  # bounded: the name space has 39 paths
        if not stack:
            break
        rel = stack.pop()
        with os.scandir(os.path.join(root, rel) if rel else root) as it:
            entries = list(it)
        for e in entries:
            sub = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            kind, owner = kind_of(st), (st.st_uid, st.st_gid)
            mode = oct(stat.S_IMODE(st.st_mode))
            if kind == "dir":
                out[sub] = ("dir", mode, *owner)
                stack.append(sub)
            elif kind == "file":
                out[sub] = (*file_state(e.path), mode, *owner)
            elif kind == "symlink":
                out[sub] = ("symlink", os.readlink(e.path), *owner)
            else:
                out[sub] = (kind, mode, *owner)
    return out


def file_state(path: str) -> tuple:
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as f:
            content = f.read()
    except OSError as exc:
        return ("err", errno.errorcode.get(exc.errno, str(exc.errno)))
    return ("file", size, content)


def tree_paths(root: str) -> tuple[list[str], list[str]]:
    """(files, directories) below root, as relative paths (the generator's view)."""
    files, dirs = [], []
    for rel, state in snapshot_names(root):
        (dirs if state == "dir" else files).append(rel)
    return files, dirs


def snapshot_names(root: str):
    """The generator's names: directories (not symbolic links to them), and files and
    symbolic links (FIFOs are never named: opening one would block)."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        rel = "" if rel == "." else rel
        for d in sorted(dirnames):
            islink = os.path.islink(os.path.join(dirpath, d))
            yield (f"{rel}/{d}" if rel else d), "file" if islink else "dir"
        for f in sorted(filenames):
            if f != FIFO:
                yield (f"{rel}/{f}" if rel else f), "file"


# -- the generator ----------------------------------------------------------------------------

@dataclass
class View:
    """What the generator sees of the reference side before each operation."""
    files: list
    dirs: list
    open_slots: list
    file_slots: list    # open slots that hold a regular file (not a directory)
    open_files: list    # existing names that were opened into a slot still open
    open_parents: list  # their directories


class Generator:
    """Seeded random operations. It looks at the reference side (its open slots and existing
    names) to aim at names that exist and at open slots, so a seed always gives the same
    trace: tmpfs is deterministic."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.ops = list(WEIGHTS)
        self.weights = [WEIGHTS[o] for o in self.ops]

    def view(self, ref: Side) -> View:
        files, dirs = tree_paths(ref.root)
        slots = sorted(ref.fds)
        file_slots = [s for s in slots if kind_of(os.fstat(ref.fds[s])) == "file"]
        open_files = sorted({ref.opened[s] for s in file_slots} & set(files))
        parents = sorted({p.rsplit("/", 1)[0] for p in open_files if "/" in p})
        return View(files, dirs, slots, file_slots, open_files, parents)

    def next_op(self, ref: Side) -> tuple:
        v = self.view(ref)
        kind = self.rng.choices(self.ops, self.weights)[0]
        if kind in FD_OPS and not v.open_slots:
            kind = "open"
        if kind == "open" and len(v.open_slots) == SLOTS:
            kind = "close"
        if kind == "seek" and not v.file_slots:  # no lseek on directories (module doc)
            kind = "fstat"
        if kind == "etcd" and v.open_slots:  # etcd is compared with nothing open
            kind = "close"
        return getattr(self, "gen_" + kind)(v)

    # pieces
    def data(self) -> bytes:
        return bytes(self.rng.choice(PRINTABLE) for _ in range(self.rng.randint(0, MAX_DATA)))

    def off(self) -> int:
        return self.rng.randint(0, MAX_OFF)

    def random_path(self) -> str:
        depth = self.rng.choice((1, 1, 2, 2, 3))
        return "/".join(self.rng.choice(NAMES) for _ in range(depth))

    def child_path(self, dirs: list) -> str:
        """A name in an existing directory (or the root), within MAX_DEPTH."""
        parents = [""] + [d for d in dirs if d.count("/") + 1 < MAX_DEPTH]
        parent = self.rng.choice(parents)
        name = self.rng.choice(NAMES)
        return f"{parent}/{name}" if parent else name

    def some_path(self, existing: list, p_existing: float, dirs: list) -> str:
        """An existing name with probability p_existing, else mostly a new name in an
        existing directory, else any name of the name space."""
        r = self.rng.random()
        if existing and r < p_existing:
            return self.rng.choice(existing)
        if r < 0.85:
            return self.child_path(dirs)
        return self.random_path()

    def near_open(self, v: View, p: float, pool: str = "files") -> Optional[str]:
        """With probability p, a name of an open file (or its directory): operations on the
        names of open files (unlinked, renamed, exchanged while open, created and not yet
        written) are where a cache can go wrong."""
        names = v.open_files if pool == "files" else v.open_parents
        if names and self.rng.random() < p:
            return self.rng.choice(names)
        return None

    def slot(self, v: View) -> int:
        return self.rng.choice(v.open_slots)

    def flags(self) -> str:
        parts = [self.rng.choices(("RDONLY", "WRONLY", "RDWR"), (1, 1, 3))[0]]
        creat = self.rng.random() < 0.6
        for flag, p in (("CREAT", 1.0 if creat else 0.0),
                        ("EXCL", 0.25 if creat else 0.03),
                        ("TRUNC", 0.2), ("APPEND", 0.25)):
            if self.rng.random() < p:
                parts.append(flag)
        return "|".join(parts)

    # one method per operation: gen_<op>(view) -> op tuple
    def gen_open(self, v):
        free = [s for s in range(SLOTS) if s not in v.open_slots]
        if v.dirs and self.rng.random() < 0.08:
            path = self.rng.choice(v.dirs)  # a directory: mostly EISDIR, or a directory fd
        else:
            path = self.some_path(v.files, 0.55, v.dirs)
        return ("open", self.rng.choice(free), path, self.flags())

    def gen_close(self, v):
        return ("close", self.slot(v))

    def gen_write(self, v):
        return ("write", self.slot(v), self.data())

    def gen_pwrite(self, v):
        return ("pwrite", self.slot(v), self.data(), self.off())

    def gen_read(self, v):
        return ("read", self.slot(v), self.off())

    def gen_pread(self, v):
        return ("pread", self.slot(v), self.off(), self.off())

    def gen_seek(self, v):
        whence = self.rng.choice(tuple(WHENCE))
        off = self.rng.randint(0, 40) if whence == "SET" else self.rng.randint(-10, 10)
        return ("seek", self.rng.choice(v.file_slots), off, whence)

    def gen_ftruncate(self, v):
        return ("ftruncate", self.slot(v), self.off())

    def gen_fsync(self, v):
        return ("fsync", self.slot(v))

    def gen_fstat(self, v):
        return ("fstat", self.slot(v))

    def gen_truncate(self, v):
        path = self.near_open(v, 0.2) or self.some_path(v.files, 0.8, v.dirs)
        return ("truncate", path, self.off())

    def gen_append(self, v):
        return ("append", self.some_path(v.files, 0.6, v.dirs), self.data())

    def gen_unlink(self, v):
        return ("unlink", self.near_open(v, 0.3) or self.some_path(v.files, 0.75, v.dirs))

    def gen_mkdir(self, v):
        return ("mkdir", self.some_path(v.dirs[:1], 0.1, v.dirs))

    def gen_rmdir(self, v):
        return ("rmdir", self.near_open(v, 0.3, "parents") or
                self.some_path(v.dirs + v.files[:1], 0.75, v.dirs))

    def gen_rename(self, v):
        flags = self.rng.choices(("0", "NOREPLACE", "EXCHANGE"), (2, 1, 1))[0]
        src = (self.near_open(v, 0.15) or self.near_open(v, 0.1, "parents") or
               self.some_path(v.files + v.dirs, 0.85, v.dirs))
        dst = (self.near_open(v, 0.15) or self.near_open(v, 0.05, "parents") or
               self.some_path(v.files + v.dirs, 0.45 if flags != "EXCHANGE" else 0.8, v.dirs))
        return ("rename", src, dst, flags)

    def gen_stat(self, v):
        return ("stat", self.near_open(v, 0.2) or
                self.some_path(v.files + v.dirs + [""], 0.7, v.dirs))

    def gen_etcd(self, v):
        return ("etcd",)

    def gen_readdir(self, v):
        return ("readdir", self.some_path(v.dirs + [""] + v.files[:1], 0.8, v.dirs))

    def gen_lstat(self, v):
        return ("lstat", self.some_path(v.files + v.dirs + self.fifos(v), 0.8, v.dirs))

    def gen_chmod(self, v):
        return ("chmod", self.near_open(v, 0.2) or self.some_path(v.files + v.dirs, 0.85, v.dirs),
                self.rng.choice(MODES_CHMOD))

    def gen_chown(self, v):
        return ("chown", self.some_path(v.files + v.dirs, 0.85, v.dirs),
                *self.rng.choice(OWNERS))

    def gen_utime(self, v):
        return ("utime", self.near_open(v, 0.2) or self.some_path(v.files + v.dirs, 0.85, v.dirs),
                self.rng.randint(1, 2_000_000_000))

    def gen_symlink(self, v):
        """Relative targets inside the run (never '..': the two roots differ above it)."""
        target = self.rng.choice(v.files + v.dirs + [self.random_path()])
        return ("symlink", target, self.some_path(v.files, 0.2, v.dirs))

    def gen_readlink(self, v):
        return ("readlink", self.some_path(v.files + v.dirs, 0.85, v.dirs))

    def gen_mkfifo(self, v):
        parents = [""] + [d for d in v.dirs if d.count("/") + 1 < MAX_DEPTH]
        parent = self.rng.choice(parents)
        return ("mkfifo", f"{parent}/{FIFO}" if parent else FIFO)

    def fifos(self, v):
        return [f"{d}/{FIFO}" if d else FIFO for d in [""] + v.dirs]


# -- divergences ------------------------------------------------------------------------------

@dataclass
class Divergence:
    index: int      # index of the operation in the trace; len(trace) for the final phase
    op: tuple       # the operation (("close", s), ("tree",) or ("etcd",) in the final phase)
    ref: object     # what tmpfs returned (for "etcd": what etcd should hold)
    got: object     # what etcdfs returned (for "etcd": what etcd holds)

    def signature(self) -> tuple:
        """What a shrunk trace must still show: the same operation diverging the same way
        (success or which errno on each side)."""
        return (self.op[0], status(self.ref), status(self.got))

    def __str__(self) -> str:
        return (f"operation #{self.index} {self.op!r}\n"
                f"  tmpfs:  {short(self.ref)}\n  etcdfs: {short(self.got)}")


def status(result) -> str:
    """"ok", "skip" or the errno name of a result; "value" for the tree and etcd checks."""
    if isinstance(result, tuple) and result and result[0] in ("ok", "skip"):
        return result[0]
    if isinstance(result, tuple) and len(result) == 2 and result[0] == "err":
        return result[1]
    return "value"


def short(value, limit: int = 1500) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...(cut)"


def tree_difference(ref: dict, got: dict) -> dict:
    """Only the entries that differ: {path: (tmpfs, etcdfs)}."""
    return {p: (ref.get(p), got.get(p)) for p in sorted(set(ref) | set(got))
            if ref.get(p) != got.get(p)}


def compare(op: tuple, r: tuple, g: tuple) -> Optional[tuple]:
    """None when the results agree, else (tmpfs, etcdfs) as shown in a report."""
    if r == g:
        return None
    if op[0] == "tree" and r[0] == g[0] == "ok":
        return ("tree differs", tree_difference(dict(r[1]), dict(g[1])))
    return (r, g)


# -- what etcd holds ----------------------------------------------------------------------------

MAGIC = b"\xe7\xcd\x01"


def open_sealed(keys: dict[int, bytes], etcd_key: bytes, value: bytes) -> bytes:
    """The plaintext of a value sealed by --key-file (docs/encryption.md "The envelope").
    Empty values (markers, empty files) are stored as they are."""
    if not value:
        return value
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    if value[:3] != MAGIC or value[3] not in keys or len(value) < 32:
        raise ValueError(f"not a sealed value: {value[:8]!r}...")
    return AESGCM(keys[value[3]]).decrypt(value[4:16], value[16:], value[:4] + etcd_key)


def etcd_view(kv, prefix: str, keys: Optional[dict]) -> dict:
    """{relative path: ("file", size, content) | ("marker", value)} of the keys under prefix;
    a path that is a directory marker ends in "/" ("" + "/" is the run root's own marker)."""
    out = {}
    for value, meta in kv.get_prefix(prefix):
        if meta.key.endswith(b"\x00attrs") or meta.key.endswith(b"\x00dirattrs"):
            continue  # attribute records: what stat shows is compared through the mount
        rel = meta.key[len(prefix.encode()):].decode(errors="surrogateescape")
        if rel == "" or rel.endswith("/"):
            # markers are written like any value: sealed under --key-file (docs/encryption.md)
            try:
                out[rel or "/"] = ("marker", open_sealed(keys, meta.key, value)
                                   if keys and value else value)
            except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
                out[rel or "/"] = ("marker", repr(exc).encode())
            continue
        try:
            plain = open_sealed(keys, meta.key, value) if keys else value
        except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
            out[rel] = ("unreadable", repr(exc))
            continue
        out[rel] = ("file", len(plain), plain)
    return out


def expected_etcd(tree: dict) -> tuple[dict, set, set]:
    """From a tree snapshot: (files as etcd_view shows them, markers that must exist (empty
    directories, "/" for the root), markers that may exist (every directory))."""
    files = {p: s[:3] for p, s in tree.items() if s[0] == "file"}
    # a symbolic link is a key holding its target, a FIFO an empty key (design-attributes.md)
    files.update({p: ("file", len(s[1].encode(errors="surrogateescape")),
                      s[1].encode(errors="surrogateescape"))
                  for p, s in tree.items() if s[0] == "symlink"})
    files.update({p: ("file", 0, b"") for p, s in tree.items() if s[0] == "fifo"})
    dirs = {p for p, s in tree.items() if s[0] == "dir"}
    nonempty = {p.rsplit("/", 1)[0] if "/" in p else "" for p in tree}
    required = {(d + "/") if d else "/" for d in dirs | {""} if d not in nonempty}
    allowed = {(d + "/") if d else "/" for d in dirs | {""}}
    return files, required, allowed


def etcd_problems(view: dict, tree: dict) -> dict:
    files, required, allowed = expected_etcd(tree)
    problems = {}
    for p, state in view.items():
        if state[0] == "marker":
            if p not in allowed:
                problems[p] = "marker of a directory that does not exist"
            elif state[1] != b"":
                problems[p] = f"marker holds a value {state[1]!r}"
        elif files.get(p) != state:
            problems[p] = f"key holds {short(state, 200)}, tmpfs file {short(files.get(p), 200)}"
    for p in required - set(view):
        problems[p] = "empty directory without its marker key"
    for p in set(files) - set(view):
        problems[p] = f"no key for the file {short(files[p], 200)}"
    return problems


def wait_etcd_agrees(kv, prefix: str, keys, tree: dict, timeout: float = 5.0,
                     settle: float = 0.5) -> dict:
    """Problems between etcd and tree ({} when none). A file only created, or truncated, is
    stored at release, which the kernel sends just after close returns (semantics.md): wait
    (bounded) until etcd agrees or its content stays unchanged for `settle` seconds."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        view = etcd_view(kv, prefix, keys)
        problems = etcd_problems(view, tree)
        if not problems:
            return {}
        now = time.monotonic()
        if view != last:
            last, since = view, now
        if now >= deadline or now - since >= settle:
            return problems
        time.sleep(0.02)


def stray_keys(kv, run_prefixes) -> list:
    """Keys in etcd outside every run's prefix (an operation wrote where it should not)."""
    out = []
    for _, meta in kv.get_all():
        key = meta.key.decode(errors="replace")
        if not any(key.startswith(p) for p in run_prefixes):
            out.append(key)
    return out


# -- runs -------------------------------------------------------------------------------------

class Env:
    """Where runs happen: one etcd (kv), one etcdfs mount (restarted when its daemon died),
    one reference directory on tmpfs; each run gets a fresh sub-directory on both, so a fresh
    etcd prefix. `new_mount()` returns a fresh Mount (etcd_fixtures.Mount). One Env per etcd:
    keys outside its runs' prefixes count as stray."""

    def __init__(self, kv, new_mount: Callable, ref_base: str, keys: Optional[dict] = None,
                 label: str = ""):
        self.kv = kv
        self.new_mount = new_mount
        self.ref_base = str(ref_base)
        self.keys = keys
        self.label = label
        self.mount = None
        self.runs = 0
        self.token = os.urandom(2).hex()  # run roots of different Envs never meet
        self.prefixes: list[str] = []
        self.ops_run = 0

    def _mount_alive(self) -> bool:
        if self.mount is None or self.mount.proc.poll() is not None:
            return False
        try:
            os.stat(self.mount.path)
        except OSError:
            return False
        return True

    def remount(self, attempts: int = 5) -> None:
        """A new mount instead of the current one. A failed start is retried a few times:
        the binary may be being rebuilt at that moment."""
        if self.mount is not None:
            with contextlib.suppress(Exception):
                self.mount.unmount()
            self.mount = None
        for attempt in range(attempts):
            try:
                self.mount = self.new_mount()
                return
            except (Exception, pytest.skip.Exception):  # MountError; a missing binary's skip
                if attempt + 1 == attempts:
                    raise
                time.sleep(1)

    def fresh(self, tag: str) -> tuple[Side, Side, str]:
        """(tmpfs side, etcdfs side, etcd prefix) of a new, empty run root."""
        if not self._mount_alive():
            self.remount()
        self.runs += 1
        name = f"{tag}-{self.token}{self.runs}"
        os.mkdir(os.path.join(self.ref_base, name))
        try:
            os.mkdir(self.mount.path / name)
        except OSError:
            if self._mount_alive():
                raise
            self.remount()
            os.mkdir(self.mount.path / name)
        prefix = f"/{name}/"
        self.prefixes.append(prefix)
        return Side(os.path.join(self.ref_base, name)), Side(str(self.mount.path / name)), prefix


class Run:
    """One trace on a fresh run root: the two sides, the etcd prefix, and the checks."""

    def __init__(self, env: Env, tag: str):
        self.env = env
        self.ref, self.fs, self.prefix = env.fresh(tag)

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc) -> None:
        self.ref.close_all()
        self.fs.close_all()

    def step(self, op: tuple, index: int) -> Optional[Divergence]:
        """Apply op to both sides; a Divergence when they disagree."""
        if op[0] == "etcd":
            return None if self.ref.fds else self.etcd_check(index)
        r, g = self.ref.apply(op), self.fs.apply(op)
        diff = compare(op, r, g)
        return Divergence(index, op, *diff) if diff else None

    def etcd_check(self, index: int) -> Optional[Divergence]:
        """With every descriptor closed: etcd holds the reference tree, and nothing else."""
        if self.env.kv is None:  # testing the engine on two tmpfs directories
            return None
        problems = wait_etcd_agrees(self.env.kv, self.prefix, self.env.keys,
                                    snapshot(self.ref.root))
        if problems:
            return Divergence(index, ("etcd",), "the tree (last tree check)", problems)
        stray = stray_keys(self.env.kv, self.env.prefixes)
        if stray:
            return Divergence(index, ("etcd",), "no key outside the run prefixes",
                              {"stray keys": stray})
        return None

    def final(self, index: int, check_etcd: bool = True) -> Optional[Divergence]:
        """Close what is still open, compare the trees, then etcd with the tree."""
        for slot in sorted(self.ref.fds):
            d = self.step(("close", slot), index)
            if d:
                return d
        d = self.step(("tree",), index)
        if d or not check_etcd:
            return d
        return self.etcd_check(index)


def run_generated(env: Env, seed: int, n_ops: int,
                  generator: Callable = None) -> tuple[Trace, Optional[Divergence]]:
    """Generate and run n_ops operations (plus a tree check every CHECK_EVERY) for `seed`:
    (the trace, its first divergence or None)."""
    gen = (generator or Generator)(seed)
    trace: Trace = []
    with Run(env, f"s{seed}") as run:
        for i in range(n_ops):
            ops = [gen.next_op(run.ref)]
            if (i + 1) % CHECK_EVERY == 0:
                ops.append(("tree",))
            env.ops_run += 1
            for op in ops:
                trace.append(op)
                d = run.step(op, len(trace) - 1)
                if d:
                    return trace, d
        return trace, run.final(len(trace))


def replay(env: Env, trace: Trace, check_etcd: bool = True) -> Optional[Divergence]:
    """Run a trace on a fresh run root: its first divergence, or None."""
    with Run(env, "replay") as run:
        for i, op in enumerate(trace):
            d = run.step(tuple(op), i)
            if d:
                return d
        return run.final(len(trace), check_etcd)


# -- shrinking --------------------------------------------------------------------------------

def simpler_variants(op: tuple) -> list[tuple]:
    """Smaller versions of one operation: shorter data, smaller numbers, fewer flags."""
    out = []
    for i, arg in enumerate(op):
        if i == 0:
            continue
        if isinstance(arg, bytes) and arg:
            for v in (arg[:len(arg) // 2], b"x" * len(arg)):
                if v != arg:
                    out.append(op[:i] + (v,) + op[i + 1:])
        elif isinstance(arg, int) and not isinstance(arg, bool) and i >= 2 and arg > 0:
            for v in sorted({0, arg // 2}):
                out.append(op[:i] + (v,) + op[i + 1:])
        elif isinstance(arg, str) and op[0] == "open" and i == 3 and "|" in arg:
            parts = arg.split("|")
            for j in range(1, len(parts)):
                out.append(op[:i] + ("|".join(parts[:j] + parts[j + 1:]),) + op[i + 1:])
    if op[0] == "rename" and op[3] != "0":
        out.append(op[:3] + ("0",))
    return out


PROBE_REPLAYS = 6   # replays that measure how often a failing trace diverges
MAX_TRIES = 12      # replays per shrinking candidate, for divergences that depend on timing


class Shrinker:
    """Delta debugging: drop chunks of operations (halving the chunk size), move paths up
    out of directories, then simplify single operations, keeping a change only when the trace
    still diverges with the same signature. Every attempt runs on a fresh run root; the attempts together replay at most
    `budget` operations."""

    def __init__(self, env: Env, budget: int = 200_000, log: Callable = print):
        self.env = env
        self.budget = budget
        self.spent = 0
        self.attempts = 0
        self.tries = 1
        self.log = log

    def exhausted(self) -> bool:
        return self.spent >= self.budget

    def once(self, trace: Trace, sig: tuple) -> Optional[Divergence]:
        if self.exhausted():
            return None
        self.attempts += 1
        self.spent += len(trace) + 1
        d = replay(self.env, trace, check_etcd=sig[0] == "etcd")
        return d if d is not None and d.signature() == sig else None

    def fails(self, trace: Trace, sig: tuple) -> Optional[Divergence]:
        """The divergence, if the trace shows it in one of self.tries replays."""
        for _ in range(self.tries):
            d = self.once(trace, sig)
            if d:
                return d
        return None

    def shrink(self, trace: Trace, div: Divergence) -> tuple[Trace, Divergence]:
        sig = div.signature()
        trace = list(trace[:div.index + 1])
        hits = [d for d in (self.once(trace, sig) for _ in range(PROBE_REPLAYS)) if d]
        if not hits:  # does not reproduce on a fresh run root: keep the trace as it is
            return trace, div
        # A divergence that depends on timing gets several tries per candidate: enough to
        # see it with 95% probability at the rate measured on the whole trace.
        rate = len(hits) / PROBE_REPLAYS
        self.tries = 1 if rate == 1 else min(MAX_TRIES, math.ceil(3 / rate))
        trace, best = self._drop_chunks(trace, sig, hits[0])
        trace, best = self._collapse_dirs(trace, sig, best)
        trace, best = self._simplify(trace, sig, best)
        return trace, best

    def _drop_chunks(self, trace, sig, best):
        chunk = max(1, len(trace) // 2)
        while chunk >= 1 and not self.exhausted():
            i, changed = 0, False
            while i < len(trace) and not self.exhausted():
                cand = trace[:i] + trace[i + chunk:]
                d = self.fails(cand, sig) if cand else None
                if d:
                    trace, best, changed = cand[:d.index + 1], d, True
                else:
                    i += chunk
            if chunk == 1 and not changed:
                break
            chunk = max(1, chunk // 2) if chunk > 1 else 1
        return trace, best

    def _simplify(self, trace, sig, best):
        i = 0
        while i < len(trace) and not self.exhausted():
            for variant in simpler_variants(trace[i]):
                cand = trace[:i] + [variant] + trace[i + 1:]
                d = self.fails(cand, sig)
                if d:
                    trace, best = cand[:d.index + 1], d
                    break  # simplify the same operation further
            else:
                i += 1
        return trace, best

    def _collapse_dirs(self, trace, sig, best):
        """Try each directory of the trace's paths as the root instead ("a/b/c" -> "c" for
        "a/b"), then drop what became useless."""
        changed = True
        while changed and not self.exhausted():
            changed = False
            for d in sorted(trace_dirs(trace), key=len, reverse=True):
                cand = [collapse(op, d) for op in trace]
                if cand == trace:
                    continue
                found = self.fails(cand, sig)
                if found:
                    trace, best, changed = cand[:found.index + 1], found, True
                    trace, best = self._drop_chunks(trace, sig, best)
                    break
        return trace, best


# positions of path arguments, per operation
PATH_ARGS = {"open": (2,), "truncate": (1,), "append": (1,), "unlink": (1,), "mkdir": (1,),
             "rmdir": (1,), "rename": (1, 2), "stat": (1,), "readdir": (1,), "lstat": (1,),
             "chmod": (1,), "chown": (1,), "utime": (1,), "symlink": (2,), "readlink": (1,),
             "mkfifo": (1,)}


def trace_dirs(trace: Trace) -> set:
    """Every proper directory prefix of a path in the trace ("a", "a/b" for "a/b/c")."""
    out = set()
    for op in trace:
        for i in PATH_ARGS.get(op[0], ()):
            parts = op[i].split("/")
            out.update("/".join(parts[:n]) for n in range(1, len(parts)))
    return out


def collapse(op: tuple, d: str) -> tuple:
    """op with the paths below d moved to the root (d/x -> x); other paths unchanged."""
    args = list(op)
    for i in PATH_ARGS.get(op[0], ()):
        if args[i].startswith(d + "/"):
            args[i] = args[i][len(d) + 1:]
    return tuple(args)


# -- reporting --------------------------------------------------------------------------------

def format_trace(trace: Trace, header: str = "") -> str:
    lines = [f"# {header}"] if header else []
    lines.append("TRACE = [")
    lines += [f"    {tuple(op)!r}," for op in trace]
    lines.append("]")
    return "\n".join(lines)


def parse_trace(text: str) -> Trace:
    """The list of a `TRACE = [...]` text (or a bare list literal)."""
    body = text.split("=", 1)[1] if "TRACE" in text else text
    return [tuple(op) for op in ast.literal_eval(body.strip())]


@dataclass
class Finding:
    seed: int
    label: str
    original: Divergence
    trace: Trace
    minimal: Divergence
    reproduced: str

    def report(self) -> str:
        return (f"divergence, {self.label}, seed {self.seed}: {self.original}\n"
                f"minimal trace ({len(self.trace)} operations, reproduced {self.reproduced} "
                f"on fresh run roots); tmpfs vs etcdfs at its end:\n{self.minimal}\n"
                + format_trace(self.trace, f"seed={self.seed} {self.label}"))


def investigate(env: Env, seed: int, trace: Trace, div: Divergence,
                budget: int = 200_000, log: Callable = print) -> Finding:
    """Shrink a failing trace (replaying at most `budget` operations) and replay the minimal
    one 10 more times."""
    shrinker = Shrinker(env, budget, log)
    minimal, mdiv = shrinker.shrink(trace, div)
    sig = div.signature()
    hits = sum(1 for _ in range(10)
               if (d := replay(env, minimal, check_etcd=sig[0] == "etcd")) and
               d.signature() == sig)
    log(f"shrunk seed {seed} to {len(minimal)} operations in {shrinker.attempts} attempts "
        f"({shrinker.spent} operations replayed)")
    return Finding(seed, env.label, div, minimal, mdiv, f"{hits}/10")


# -- environment setup shared by pytest and the command line -----------------------------------

def make_key_file(path: Path) -> tuple[Path, dict]:
    """A --key-file with one key (id 1), and {1: key bytes} to open values with."""
    key = os.urandom(32)
    path.write_text(f"1 {key.hex()}\n")
    path.chmod(0o600)
    return path, {1: key}


@contextlib.contextmanager
def reference_dir(path: Path):
    """A private tmpfs at path (else a directory under /dev/shm, also tmpfs)."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=755", "tmpfs", str(path)],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode == 0:
        try:
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    d = tempfile.mkdtemp(prefix="etcdfs-difftest-", dir="/dev/shm")
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def mount_args(mode: str, key_file: Optional[Path]) -> list[str]:
    """The mount's options for a configuration, and ETCDFS_DIFF_MOUNT_ARGS (e.g.
    "--cache-size=64K", to run the traces while the cache keeper trims all the time)."""
    args = [f"--consistency={mode}"]
    if key_file is not None:
        args.append(f"--key-file={key_file}")
    return args + shlex.split(os.environ.get("ETCDFS_DIFF_MOUNT_ARGS", ""))


def config_label(mode: str, key_file) -> str:
    return f"mode={mode}" + (" key-file" if key_file else "")


# -- command line -------------------------------------------------------------------------------

def _cli_config(args, mode: str, with_key: bool, work: Path, trace: Optional[Trace],
                generator: Callable = None) -> list:
    from etcd_fixtures import etcdfs_binary, start_etcd, start_mount
    label = config_label(mode, with_key) + "".join(f" {a}" for a in args.mount_arg)
    tag = f"{mode}{'-key' if with_key else ''}"
    key_file, keys = make_key_file(work / f"key-{tag}") if with_key else (None, None)
    etcd = start_etcd(work, name=f"etcd-{tag}")
    kv = etcd.client()
    mounts = []

    def new_mount():
        n = len(mounts)
        m = start_mount(etcd, work / f"mnt-{tag}-{n}", work / f"etcdfs-{tag}-{n}.log",
                        binary=etcdfs_binary(),
                        extra_args=mount_args(mode, key_file) + list(args.mount_arg))
        mounts.append(m)
        return m

    findings, ops = [], 0
    try:
        with reference_dir(work / f"ref-{tag}") as ref_base:
            env = Env(kv, new_mount, str(ref_base), keys, label)
            if trace is not None:
                d = replay(env, trace)
                print(f"[{label}] replay: " + (f"DIVERGES\n{d}" if d else "no divergence"))
                return [d] if d else []
            seen = set()
            for seed in range(args.seed, args.seed + args.seeds):
                t, d = run_generated(env, seed, args.ops, generator)
                if d is None:
                    continue
                print(f"[{label}] seed {seed}: {d}", flush=True)
                if args.no_shrink:
                    findings.append(d)
                    continue
                f = investigate(env, seed, t, d, args.shrink_budget)
                key = (f.minimal.signature(), tuple(f.trace))
                if key not in seen:
                    seen.add(key)
                    findings.append(f)
                    print(f.report(), flush=True)
            ops = env.ops_run
            print(f"[{label}] {ops} generated operations over {args.seeds} seeds, "
                  f"{len(findings)} findings", flush=True)
    finally:
        for m in mounts:
            with contextlib.suppress(Exception):
                m.unmount()
        kv.close()
        etcd.destroy()
    return findings


def main(argv=None, generator: Callable = None) -> int:
    """The command line; `generator` replaces the Generator class (a subclass may steer
    around a divergence already reported, to look for the next one)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seed", type=int, default=int(time.time()) % 1_000_000)
    p.add_argument("--seeds", type=int, default=1, help="how many seeds from --seed on")
    p.add_argument("--ops", type=int, default=500, help="generated operations per seed")
    p.add_argument("--mode", default="close-to-open", help=f"one of {MODES} or 'all'")
    p.add_argument("--key-file", choices=("no", "yes", "both"), default="no")
    p.add_argument("--replay", help="a file holding TRACE = [...] to run instead")
    p.add_argument("--mount-arg", action="append", default=[],
                   help="one more etcdfs argument, e.g. --mount-arg=--cache-timeout=0")
    p.add_argument("--no-shrink", action="store_true")
    p.add_argument("--shrink-budget", type=int, default=200_000,
                   help="operations the shrinker may replay per divergence")
    args = p.parse_args(argv)
    modes = MODES if args.mode == "all" else tuple(args.mode.split(","))
    keys = {"no": (False,), "yes": (True,), "both": (False, True)}[args.key_file]
    trace = parse_trace(Path(args.replay).read_text()) if args.replay else None
    work = Path(tempfile.mkdtemp(prefix="etcdfs-difftest-"))
    print(f"difftest: seed {args.seed}, {args.seeds} seeds x {args.ops} operations, "
          f"logs in {work}", flush=True)
    total = 0
    for mode in modes:
        for with_key in keys:
            total += len(_cli_config(args, mode, with_key, work, trace, generator))
    print(f"difftest: {total} findings")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
