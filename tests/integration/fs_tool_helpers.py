"""Helpers shared by test_fs_tools.py, test_fs_multihost.py and test_fs_errors.py.

- consistency modes: MODES, mode_accepted(binary, mode) (probed once per binary, without
  mounting: an unsupported mode is refused while the options are parsed);
- etcd views: dump(kv) (whole keyspace as {bytes: bytes}), revision(kv), get(kv, key);
- renameat2() through the raw syscall, errno assertions, running shell tools.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import re
import subprocess
from pathlib import Path

import pytest

MODES = ("close-to-open", "watch", "strict")


@functools.lru_cache(maxsize=None)
def mode_accepted(binary: str, mode: str) -> tuple[bool, str]:
    """(accepted, message): whether `etcdfs --consistency=MODE` passes option parsing.
    The probe points at a mountpoint that does not exist, so nothing is ever mounted; option
    errors are reported before the mountpoint is looked at."""
    missing = f"/nonexistent-etcdfs-probe-{os.getpid()}"
    r = subprocess.run([binary, f"--consistency={mode}", "--endpoints=127.0.0.1:1",
                        "--dial-timeout=100ms", "-f", missing],
                       capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    msg = (r.stderr or r.stdout).strip()
    return ("consistency" not in msg.lower(), msg)


def require_mode(binary, mode: str) -> None:
    ok, msg = mode_accepted(str(binary), mode)
    if not ok:
        pytest.skip(f"--consistency={mode} not accepted by etcdfs: {msg}")


def mode_args(mode: str) -> tuple[str, ...]:
    return (f"--consistency={mode}",)


# -- etcd views ----------------------------------------------------------------------------------

def get(kv, key):
    return kv.get(key)[0]


def dump(kv) -> dict[bytes, bytes]:
    """Every key of the cluster with its value."""
    return {m.key: v for v, m in kv.get_all()}


def keys(kv, prefix="/") -> list[bytes]:
    return sorted(m.key for _, m in kv.get_prefix(prefix))


def revision(kv) -> int:
    """The store revision (every etcd write adds one)."""
    return int(kv.get_response(b"\0").header.revision)


# -- syscalls ------------------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2
_SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}.get(platform.machine())


def renameat2(src, dst, flags: int) -> None:
    if _SYS_RENAMEAT2 is None:
        pytest.skip(f"renameat2 syscall number unknown on {platform.machine()}")
    r = _libc.syscall(ctypes.c_long(_SYS_RENAMEAT2), ctypes.c_int(AT_FDCWD),
                      ctypes.c_char_p(os.fsencode(src)), ctypes.c_int(AT_FDCWD),
                      ctypes.c_char_p(os.fsencode(dst)), ctypes.c_uint(flags))
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), str(src))


def errno_of(fn, *args, **kw) -> int:
    """Run fn; return the errno of the OSError it raised (fail if it succeeded)."""
    try:
        fn(*args, **kw)
    except OSError as exc:
        return exc.errno
    pytest.fail(f"{getattr(fn, '__name__', fn)}{args} succeeded; an error was expected")


def try_errno(fn, *args, **kw):
    """Run fn; None if it succeeded, else the errno of the OSError it raised."""
    try:
        fn(*args, **kw)
    except OSError as exc:
        return exc.errno
    return None


def read_or_errno(path):
    """The content of path, or the errno number its open/read failed with."""
    try:
        return path.read_bytes()
    except OSError as exc:
        return exc.errno


def listing_or_errno(path):
    """The sorted names in directory path, or the errno number listing it failed with."""
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        return exc.errno


def ename(e) -> str:
    if isinstance(e, (set, frozenset, tuple, list)):
        return "/".join(sorted(ename(x) for x in e))
    return errno.errorcode.get(e, str(e))


def assert_errno(fn, expected, *args, **kw) -> None:
    got = errno_of(fn, *args, **kw)
    want = expected if isinstance(expected, (set, frozenset, tuple)) else {expected}
    assert got in want, f"errno {ename(got)}, expected {ename(set(want))}"


def sh(cmd: str, cwd=None, check=True, input=None) -> subprocess.CompletedProcess:
    """Run a shell command line; output captured as text (bytes when input is bytes)."""
    text = not isinstance(input, bytes)
    r = subprocess.run(["sh", "-c", cmd], cwd=cwd, capture_output=True, text=text,
                       input=input, stdin=None if input is not None else subprocess.DEVNULL,
                       timeout=120)
    if check and r.returncode != 0:
        raise AssertionError(f"`{cmd}` exited {r.returncode}\nstdout: {r.stdout!r}\n"
                             f"stderr: {r.stderr!r}")
    return r


def tree_files(root: Path) -> dict[str, bytes]:
    """{relative path: content} of every regular file below root, plus {dir/: None} for every
    directory (so that empty directories count)."""
    out: dict[str, bytes] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirnames:
            out[os.path.normpath(os.path.join(rel, d)) + "/"] = None
        for f in filenames:
            p = os.path.join(dirpath, f)
            with open(p, "rb") as fh:
                out[os.path.normpath(os.path.join(rel, f))] = fh.read()
    return out


def sanitized(build_dir) -> bool:
    """Whether the build at build_dir has ASan/UBSan (RSS and timing figures mean little there)."""
    try:
        cache = (build_dir / "CMakeCache.txt").read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"^ETCDFS_SANITIZE:BOOL=(ON|1|TRUE|YES)$", cache, re.M | re.I) is not None
