"""etcdfs through real Unix tools (issue 3, "Tests"): cat, echo, ls -l, cp -r, mv, rm -r,
mkdir -p, rmdir, find, grep -r, tar, editors (write-temp-fsync-rename, sed -i, vim), touch,
truncate, dd, O_APPEND from two processes, mmap, stat, chmod/chown, size and name limits,
links. Every result is checked against what etcd itself holds (python etcd3 client).

The core behaviours are parametrised over the consistency modes (--consistency=); a mode that
etcdfs does not accept yet is skipped without starting anything."""

from __future__ import annotations

import errno
import mmap
import os
import stat
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from etcd_fixtures import wait_for
from fs_tool_helpers import assert_errno, dump, get, keys, mode_args, revision, sh, tree_files

pytestmark = pytest.mark.needs_etcdfs


@pytest.fixture
def fs(mode, etcd, mount):
    """One mount of `etcd` in the parametrised consistency mode."""
    return mount(etcd, extra_args=mode_args(mode))


@pytest.fixture
def fs0(etcd, mount):
    """One mount with default options."""
    return mount(etcd)


def stored_at_release(kv, key, want):
    """A file opened (or created, or truncated) and closed once without any write is stored at
    release, which the kernel sends just after close returns (docs/consistency.md, "Writers"):
    the one place where a bounded wait is the documented contract. Returns what etcd holds."""
    try:
        wait_for(lambda: get(kv, key) == want, 5, f"{key} to reach etcd at release")
    except TimeoutError:
        pass
    return get(kv, key)


def only_markers(ks) -> bool:
    return all(k.endswith(b"/") for k in ks)


def make_tree(root: Path) -> dict[str, bytes]:
    """A small local tree: text, empty, binary (all 256 byte values, NUL), nested dirs, an
    empty directory, names with spaces and UTF-8. Modes are the usual 0644/0755."""
    files = {
        "a.txt": b"hello\n",
        "empty": b"",
        "bin.dat": bytes(range(256)) * 300 + os.urandom(123_457),
        "sub/y.txt": b"line 1\nline 2 needle\n",
        "sub/deep/x.bin": b"\0\0\xff" + os.urandom(5000) + b"\0",
        "sub/deep/needle.txt": b"a needle here\n",
        "name with spaces.txt": b"spaces\n",
        "\u00fcn\u00efc\u00f6d\u00e9.txt": "ünïcödé\n".encode(),
    }
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o644)
    (root / "emptydir").mkdir()
    for d in (root, root / "sub", root / "sub" / "deep", root / "emptydir"):
        os.chmod(d, 0o755)
    return files


def assert_tree_in_etcd(kv, key_prefix: str, files: dict[str, bytes], empty_dirs=()):
    """etcd holds exactly `files` below key_prefix (values byte for byte), marker keys only for
    directories of the tree, and the marker of every empty directory."""
    held = {k: v for k, v in dump(kv).items() if k.startswith(key_prefix.encode())}
    want = {(key_prefix + rel).encode(): data for rel, data in files.items()}
    file_keys = {k: v for k, v in held.items() if not k.endswith(b"/")}
    assert sorted(file_keys) == sorted(want)
    for k, v in want.items():
        assert file_keys[k] == v, f"{k!r}: {len(file_keys[k])} bytes in etcd, {len(v)} expected"
    dirs = {key_prefix.encode()} | {
        (key_prefix + rel).encode()[:i + 1]
        for rel in files for i, c in enumerate((key_prefix + rel).encode())
        if c == ord("/") and i >= len(key_prefix)}
    dirs |= {(key_prefix + d + "/").encode() for d in empty_dirs}
    markers = {k for k in held if k.endswith(b"/")}
    assert markers <= dirs, f"unexpected marker keys {sorted(markers - dirs)}"
    for d in empty_dirs:
        assert (key_prefix + d + "/").encode() in markers, f"no marker for empty dir {d}"


# -- cat / echo / ls ---------------------------------------------------------------------------

def test_cat_echo_redirect_and_append(mode, fs, kv):
    kv.put("/etc/conf", b"from etcd\n")
    assert sh("cat etc/conf", fs.path).stdout == "from etcd\n"
    sh("echo hello > greeting", fs.path)
    assert get(kv, "/greeting") == b"hello\n"
    sh("echo world >> greeting", fs.path)
    assert get(kv, "/greeting") == b"hello\nworld\n"
    assert sh("cat greeting", fs.path).stdout == "hello\nworld\n"
    sh("echo replaced > greeting", fs.path)  # O_TRUNC of a longer file
    assert get(kv, "/greeting") == b"replaced\n"
    assert sh("cat greeting", fs.path).stdout == "replaced\n"
    sh("echo new > etc/conf2", fs.path)  # a new file in a directory implied by a key
    assert get(kv, "/etc/conf2") == b"new\n"
    assert sorted(os.listdir(fs.path / "etc")) == ["conf", "conf2"]
    assert keys(kv) == [b"/etc/conf", b"/etc/conf2", b"/greeting"]


def test_ls_l_sizes_exact(fs0, kv):
    sizes = {"zero": 0, "one": 1, "page": 4096, "odd": 12345, "big": 1_000_000}
    for name, n in sizes.items():
        kv.put(f"/d/{name}", os.urandom(n))
    kv.put("/d/sub/x", b"x")
    kv.put("/d/emptysub/", b"")
    out = sh("ls -ln --time-style=+%s d", fs0.path).stdout.splitlines()
    assert out[0].startswith("total")
    rows = {}
    for line in out[1:]:
        perms, nlink, uid, gid, size, _t, name = line.split(None, 6)
        rows[name] = (perms, int(nlink), int(uid), int(gid), int(size))
    assert sorted(rows) == sorted([*sizes, "sub", "emptysub"])
    for name, n in sizes.items():
        perms, nlink, uid, gid, size = rows[name]
        assert perms.startswith("-rw-r--r--") and size == n and nlink >= 1, (name, rows[name])
        assert (uid, gid) == (os.getuid(), os.getgid())
    for name in ("sub", "emptysub"):
        assert rows[name][0].startswith("drwxr-xr-x") and rows[name][1] >= 1
    # the same sizes through stat(1) and after a change made through the mount
    sh("printf 12345678 > d/one", fs0.path)
    assert sh("stat -c %s d/one d/page", fs0.path).stdout.split() == ["8", "4096"]


# -- cp -r / tar -------------------------------------------------------------------------------

def test_cp_r_tree_in_and_out(mode, fs, kv, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    sh(f"cp -r '{src}' '{fs.path}/copy'")
    assert_tree_in_etcd(kv, "/copy/", files, empty_dirs=["emptydir"])
    out = tmp_path / "out"
    sh(f"cp -r '{fs.path}/copy' '{out}'")
    assert tree_files(out) == tree_files(src)
    r = sh(f"diff -r '{src}' '{out}'", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    # cp onto existing files replaces their contents (O_TRUNC), nothing else changes
    (src / "a.txt").write_bytes(b"changed\n")
    sh(f"cp '{src}/a.txt' '{fs.path}/copy/a.txt'")
    assert get(kv, "/copy/a.txt") == b"changed\n"
    assert_tree_in_etcd(kv, "/copy/", {**files, "a.txt": b"changed\n"},
                        empty_dirs=["emptydir"])


def test_tar_x_into_mount_and_c_out(fs0, kv, tmp_path):
    src = tmp_path / "src"
    files = make_tree(src)
    archive = tmp_path / "in.tar"
    sh(f"tar -cf '{archive}' -C '{src}' .")
    os.mkdir(fs0.path / "untar")
    sh(f"tar -xf '{archive}' -C '{fs0.path}/untar'")  # as root: also chown/chmod/utime
    assert_tree_in_etcd(kv, "/untar/", files, empty_dirs=["emptydir"])
    out_archive = tmp_path / "out.tar"
    sh(f"tar -cf '{out_archive}' -C '{fs0.path}/untar' .")
    with tarfile.open(out_archive) as t:
        members = {m.name.rstrip("/"): m for m in t.getmembers()}
        for rel, data in files.items():
            m = members["./" + rel]
            assert m.isfile() and m.size == len(data), rel
            assert t.extractfile(m).read() == data, rel
        assert members["./emptydir"].isdir()
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    sh(f"tar -xf '{out_archive}' -C '{extracted}'")
    assert tree_files(extracted) == tree_files(src)


# -- mv / rm -r / mkdir -p / rmdir --------------------------------------------------------------

def test_mv_files_and_directories(mode, fs, kv, tmp_path):
    kv.put("/f", b"F")
    for i in range(5):
        kv.put(f"/dir/sub/k{i}", f"v{i}".encode())
    kv.put("/dir/top", b"T")
    kv.put("/dir/empty/", b"")
    kv.put("/other/keep", b"K")
    d = fs.path
    sh("mv f g", d)
    assert get(kv, "/f") is None and get(kv, "/g") == b"F"
    sh("mv g other/", d)  # into a directory
    assert get(kv, "/g") is None and get(kv, "/other/g") == b"F"
    sh("mv dir moved", d)  # a directory: the whole subtree moves
    assert keys(kv, "/dir") == []
    assert {k: get(kv, k) for k in keys(kv, "/moved/") if not k.endswith(b"/")} == {
        **{f"/moved/sub/k{i}".encode(): f"v{i}".encode() for i in range(5)},
        b"/moved/top": b"T"}
    assert get(kv, "/moved/empty/") == b""
    assert sorted(os.listdir(d / "moved")) == ["empty", "sub", "top"]
    sh("mv moved other/", d)  # a directory into another directory
    assert keys(kv, "/moved") == []
    assert get(kv, "/other/moved/sub/k3") == b"v3"
    assert (d / "other" / "moved" / "sub" / "k3").read_bytes() == b"v3"
    # across filesystems: mv copies and deletes
    local = tmp_path / "local.txt"
    local.write_bytes(b"from local disk")
    sh(f"mv '{local}' other/fromdisk", d)
    assert get(kv, "/other/fromdisk") == b"from local disk" and not local.exists()
    sh(f"mv other/moved '{tmp_path}/back'", d)
    assert keys(kv, "/other/moved") == []
    assert (tmp_path / "back" / "sub" / "k4").read_bytes() == b"v4"
    assert (tmp_path / "back" / "empty").is_dir()
    assert get(kv, "/other/keep") == b"K"


def test_rm_r_keeps_parent(mode, fs, kv):
    for i in range(10):
        kv.put(f"/top/tree/a/b/f{i}", b"x")
    kv.put("/top/tree/c/", b"")
    kv.put("/top/tree/g", b"g")
    kv.put("/topsibling", b"s")  # shares the key prefix "/top" but is not below /top/
    sh("rm -r top/tree", fs.path)
    assert keys(kv, "/top/tree") == []
    assert os.listdir(fs.path / "top") == []
    assert keys(kv, "/top/") == [b"/top/"]  # the parent stays, as an empty directory
    assert get(kv, "/topsibling") == b"s"
    sh("rm -r top", fs.path)
    assert dump(kv) == {b"/topsibling": b"s"}
    assert os.listdir(fs.path) == ["topsibling"]


def test_mkdir_p_and_rmdir(mode, fs, kv):
    sh("mkdir -p a/b/c", fs.path)
    assert os.path.isdir(fs.path / "a" / "b" / "c")
    assert b"/a/b/c/" in keys(kv, "/a/") and only_markers(keys(kv, "/a/"))
    sh("mkdir -p a/b/c a/b/d", fs.path)  # existing parts are fine
    assert sorted(os.listdir(fs.path / "a" / "b")) == ["c", "d"]
    sh("echo x > a/b/c/file", fs.path)
    rev = revision(kv)
    r = sh("rmdir a/b/c", fs.path, check=False)
    assert r.returncode != 0 and "not empty" in r.stderr, r.stderr
    assert_errno(os.rmdir, errno.ENOTEMPTY, fs.path / "a" / "b" / "c")
    assert revision(kv) == rev and get(kv, "/a/b/c/file") == b"x\n"
    sh("rmdir a/b/d", fs.path)
    assert keys(kv, "/a/b/d") == []
    sh("rm a/b/c/file && rmdir a/b/c", fs.path)
    assert os.listdir(fs.path / "a" / "b") == []
    assert keys(kv, "/a/b/c") == [] and os.path.isdir(fs.path / "a" / "b")
    sh("rmdir -p a/b", fs.path)
    assert keys(kv, "/a") == [] and os.listdir(fs.path) == []


# -- find / grep -------------------------------------------------------------------------------

def test_find_names_and_types(fs0, kv):
    for k in ("/t/a.txt", "/t/b.log", "/t/s/c.txt", "/t/s/deep/d.txt", "/t/s/deep/e.bin"):
        kv.put(k, b"content " + k.encode())
    kv.put("/t/emptydir/", b"")
    out = sh("find t -printf '%y %p\\n'", fs0.path).stdout.split("\n")
    assert sorted(filter(None, out)) == sorted([
        "d t", "f t/a.txt", "f t/b.log", "d t/s", "f t/s/c.txt", "d t/s/deep",
        "f t/s/deep/d.txt", "f t/s/deep/e.bin", "d t/emptydir"])
    assert sorted(sh("find t -type d", fs0.path).stdout.split()) == [
        "t", "t/emptydir", "t/s", "t/s/deep"]
    assert sorted(sh("find t -name '*.txt'", fs0.path).stdout.split()) == [
        "t/a.txt", "t/s/c.txt", "t/s/deep/d.txt"]
    assert sh("find t -type f -size +0 | wc -l", fs0.path).stdout.strip() == "5"
    assert sh("find t -empty", fs0.path).stdout.split() == ["t/emptydir"]


def test_grep_r(mode, fs, kv):
    kv.put("/g/one", b"alpha\nneedle in line two\n")
    kv.put("/g/two", b"nothing here\n")
    kv.put("/g/sub/three", b"x\ny\nneedle\n")
    kv.put("/g/sub/bin", b"\0\x01needle\xff")
    assert sorted(sh("grep -rl needle g", fs.path).stdout.split()) == [
        "g/one", "g/sub/bin", "g/sub/three"]
    assert sorted(sh("grep -rn --binary-files=without-match needle g",
                     fs.path).stdout.splitlines()) == [
        "g/one:2:needle in line two", "g/sub/three:3:needle"]
    assert sh("grep -rc nothing g/two", fs.path).stdout.strip() == "1"


# -- editors -----------------------------------------------------------------------------------

def test_editor_style_save_temp_fsync_rename(mode, fs, kv):
    kv.put("/cfg/app.conf", b"version=1\nname=old\n")
    d = fs.path / "cfg"
    assert (d / "app.conf").read_bytes() == b"version=1\nname=old\n"
    new = b"version=2\nname=new\n" * 100
    tmp = d / ".app.conf.tmp-1234"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, new)
        os.fsync(fd)
    finally:
        os.close(fd)
    assert get(kv, "/cfg/.app.conf.tmp-1234") == new  # fsync put it in etcd
    os.rename(tmp, d / "app.conf")
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    assert get(kv, "/cfg/app.conf") == new
    assert keys(kv, "/cfg/") == [b"/cfg/app.conf"]  # no temp key left
    assert os.listdir(d) == ["app.conf"]
    assert (d / "app.conf").read_bytes() == new


def test_editor_rename_while_open_then_close(fs0, kv):
    """Some save paths rename the temporary file before closing it: the data must follow."""
    kv.put("/cfg/x", b"old")
    d = fs0.path / "cfg"
    with open(d / "x.new", "wb") as f:
        f.write(b"new content")
        f.flush()
        os.fsync(f.fileno())
        os.rename(d / "x.new", d / "x")
        f.write(b" and more after the rename")
    assert get(kv, "/cfg/x") == b"new content and more after the rename"
    assert keys(kv, "/cfg/") == [b"/cfg/x"]


def test_sed_i(mode, fs, kv):
    kv.put("/s/file", b"one\ntwo\nthree\n")
    sh("sed -i 's/two/TWO/' s/file", fs.path)
    assert get(kv, "/s/file") == b"one\nTWO\nthree\n"
    assert keys(kv, "/s/") == [b"/s/file"]  # sed's temporary file is gone
    sh("sed -i -e '1d' s/file", fs.path)
    assert get(kv, "/s/file") == b"TWO\nthree\n"
    assert sh("cat s/file", fs.path).stdout == "TWO\nthree\n"


def test_vim_write(fs0, kv):
    kv.put("/v/file", b"hello old world\n")
    r = subprocess.run(["vim", "-u", "NONE", "-i", "NONE", "-N", "-n", "-es",
                        "-c", "%s/old/new/", "-c", "wq", "v/file"], cwd=fs0.path,
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert get(kv, "/v/file") == b"hello new world\n"
    assert keys(kv, "/v/") == [b"/v/file"]  # no backup (file~) or swap left behind


# -- touch / mknod / truncate / dd -------------------------------------------------------------

def test_touch_creates_empty_key(mode, fs, kv):
    sh("touch newfile", fs.path)
    assert os.stat(fs.path / "newfile").st_size == 0  # at once on this mount
    assert stored_at_release(kv, "/newfile", b"") == b""
    assert os.stat(fs.path / "newfile").st_size == 0
    kv.put("/existing", b"keep me")
    sh("touch existing", fs.path)  # times only: the content stays
    assert get(kv, "/existing") == b"keep me"
    os.mknod(fs.path / "viamknod", stat.S_IFREG | 0o644)
    assert get(kv, "/viamknod") == b""


def test_truncate_grow_and_shrink(mode, fs, kv):
    kv.put("/t", b"abc")
    # truncate(1) opens, ftruncates and closes once without a write: stored at release
    sh("truncate -s 10 t", fs.path)
    assert os.stat(fs.path / "t").st_size == 10
    assert (fs.path / "t").read_bytes() == b"abc" + b"\0" * 7
    assert stored_at_release(kv, "/t", b"abc" + b"\0" * 7) == b"abc" + b"\0" * 7
    sh("truncate -s 2 t", fs.path)
    assert (fs.path / "t").read_bytes() == b"ab"
    assert stored_at_release(kv, "/t", b"ab") == b"ab"
    sh("truncate -s 0 t", fs.path)
    assert stored_at_release(kv, "/t", b"") == b""
    sh("truncate -s 5 newt", fs.path)  # creates the file
    assert stored_at_release(kv, "/newt", b"\0" * 5) == b"\0" * 5
    os.truncate(fs.path / "t", 3)  # truncate(2) by path: no open, stored at once
    assert get(kv, "/t") == b"\0" * 3


def test_dd_seek_past_eof_zero_fills(mode, fs, kv):
    kv.put("/d", b"abc")
    sh("printf XY | dd of=d bs=1 seek=10 conv=notrunc status=none", fs.path)
    assert get(kv, "/d") == b"abc" + b"\0" * 7 + b"XY"
    sh("printf Q | dd of=d bs=1 seek=1 conv=notrunc status=none", fs.path)  # overwrite inside
    assert get(kv, "/d") == b"aQc" + b"\0" * 7 + b"XY"
    sh("printf 1234 | dd of=fresh bs=4 seek=2 status=none", fs.path)  # new file
    assert get(kv, "/fresh") == b"\0" * 8 + b"1234"
    assert (fs.path / "fresh").read_bytes() == b"\0" * 8 + b"1234"
    sh("printf Z | dd of=d bs=1 seek=4 status=none", fs.path)  # without notrunc: cut after
    assert get(kv, "/d") == b"aQc\0Z"


# -- O_APPEND from two processes on one mount ------------------------------------------------------

def test_o_append_two_processes_interleaved(mode, fs, kv):
    """A process holds the file open with O_APPEND while another appends and closes: every
    record lands, in the order written, as on a local filesystem."""
    kv.put("/log", b"start\n")
    p = fs.path / "log"
    fd = os.open(p, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"p1-a\n")
        sh(f"echo p2-a >> '{p}'")
        os.write(fd, b"p1-b\n")
        sh(f"echo p2-b >> '{p}'")
        os.write(fd, b"p1-c\n")
    finally:
        os.close(fd)
    want = b"start\np1-a\np2-a\np1-b\np2-b\np1-c\n"
    assert get(kv, "/log") == want
    assert p.read_bytes() == want


def test_o_append_two_concurrent_writers(mode, fs, kv):
    kv.put("/log2", b"")
    n = 40
    script = ("import os,sys\n"
              "fd=os.open(sys.argv[1],os.O_WRONLY|os.O_APPEND)\n"
              "for i in range(int(sys.argv[3])):\n"
              "    os.write(fd,('%s-%03d\\n'%(sys.argv[2],i)).encode())\n"
              "os.close(fd)\n")
    procs = [subprocess.Popen(["/usr/bin/python3", "-c", script, str(fs.path / "log2"), w,
                               str(n)]) for w in ("A", "B")]
    for pr in procs:
        assert pr.wait(timeout=120) == 0
    lines = get(kv, "/log2").decode().splitlines()
    assert sorted(lines) == sorted([f"{w}-{i:03d}" for w in "AB" for i in range(n)])
    for w in "AB":  # each writer's records in its own order
        assert [x for x in lines if x[0] == w] == [f"{w}-{i:03d}" for i in range(n)]


def test_append_loops_open_close_each_time(fs0, kv):
    """Two shells appending with `>>` concurrently (one open/close per line)."""
    kv.put("/log3", b"")
    n = 25
    procs = [subprocess.Popen(["sh", "-c", f"for i in $(seq {n}); do echo {w}$i >> log3; done"],
                              cwd=fs0.path) for w in ("A", "B")]
    for pr in procs:
        assert pr.wait(timeout=120) == 0
    lines = get(kv, "/log3").decode().splitlines()
    assert sorted(lines) == sorted([f"{w}{i}" for w in "AB" for i in range(1, n + 1)])


# -- mmap --------------------------------------------------------------------------------------

def test_mmap_read_and_shared_write_msync(mode, fs, kv):
    data = b"hello world " + bytes(range(256)) * 40
    kv.put("/m", data)
    with open(fs.path / "m", "r+b") as f:
        mm = mmap.mmap(f.fileno(), 0)
        try:
            assert mm[:] == data
            mm[0:5] = b"HELLO"
            mm[-3:] = b"END"
            mm.flush()  # msync(MS_SYNC): in etcd now, before close
            want = b"HELLO" + data[5:-3] + b"END"
            assert get(kv, "/m") == want
            mm[6:11] = b"WORLD"
            mm.flush()
            want = want[:6] + b"WORLD" + want[11:]
            assert get(kv, "/m") == want
        finally:
            mm.close()
    assert get(kv, "/m") == want
    assert (fs.path / "m").read_bytes() == want


def test_mmap_read_only_sees_file(fs0, kv):
    """A read-only descriptor reads one whole version (direct I/O): a private mapping works (as
    exec and most mmap readers use), a shared one is refused with ENODEV (documented;
    --page-cache-reads allows it)."""
    kv.put("/r", b"0123456789" * 1000)
    with open(fs0.path / "r", "rb") as f:
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as mm:
            assert len(mm) == 10000 and mm[9995:] == b"56789"
            assert mm.find(b"789012") == 7
        with pytest.raises(OSError) as e:
            mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        assert e.value.errno == errno.ENODEV


def test_mmap_shared_read_only_with_page_cache_reads(etcd, kv, mount):
    kv.put("/r", b"0123456789" * 1000)
    m = mount(etcd, extra_args=("--page-cache-reads",))
    with open(m / "r", "rb") as f:
        with mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as mm:
            assert len(mm) == 10000 and mm.find(b"789012") == 7


# -- stat / chmod / chown ----------------------------------------------------------------------

def test_stat_fields_sane_and_stable(fs0, kv):
    kv.put("/s/f", b"12345")
    kv.put("/s/e/", b"")
    f, d = fs0.path / "s" / "f", fs0.path / "s"
    st1, st2 = os.stat(f), os.stat(f)
    assert stat.S_ISREG(st1.st_mode) and st1.st_size == 5 and st1.st_nlink >= 1
    assert stat.S_IMODE(st1.st_mode) == 0o644
    for a in ("st_mtime_ns", "st_ctime_ns", "st_atime_ns", "st_ino", "st_size", "st_mode"):
        assert getattr(st1, a) == getattr(st2, a), a
    now = time.time()
    for a in ("st_mtime", "st_ctime", "st_atime"):
        assert 0 < getattr(st1, a) <= now + 60, (a, getattr(st1, a))
    for p in (d, d / "e", fs0.path):
        s = os.stat(p)
        assert stat.S_ISDIR(s.st_mode) and s.st_nlink >= 1 and stat.S_IMODE(s.st_mode) == 0o755
    assert os.stat(d).st_mtime_ns == os.stat(d).st_mtime_ns
    out = sh("stat -c '%s %h %a %F' s/f s/e", fs0.path).stdout.splitlines()
    assert out[0] == "5 1 644 regular file" or out[0].split()[0] == "5", out
    assert out[1].endswith("755 directory"), out
    # st_size follows writes made through the mount and through etcd
    sh("printf abcdefgh > s/f", fs0.path)
    assert os.stat(f).st_size == 8
    st3 = os.stat(f)
    assert os.stat(f).st_mtime_ns == st3.st_mtime_ns


def test_chmod_chown_fail_with_eperm_without_records(etcd, kv, mount):
    """--attrs=none: a plain mirror keeps no mode or owner (with records: test_fs_attrs.py)."""
    kv.put("/p/f", b"1")
    fs0 = mount(etcd, extra_args=["--attrs=none"])
    rev = revision(kv)
    for cmd in ("chmod 600 p/f", "chmod 700 p", "chown 12345 p/f", "chgrp 12345 p/f"):
        r = sh(cmd, fs0.path, check=False)
        assert r.returncode != 0 and "not permitted" in r.stderr, (cmd, r.stderr)
    assert_errno(os.chmod, errno.EPERM, fs0.path / "p" / "f", 0o600)
    assert_errno(os.chown, errno.EPERM, fs0.path / "p" / "f", 12345, 12345)
    assert stat.S_IMODE(os.stat(fs0.path / "p" / "f").st_mode) == 0o644
    assert revision(kv) == rev and dump(kv) == {b"/p/f": b"1"}


def test_chmod_chown_quiet_succeed_without_effect_without_records(etcd, kv, mount):
    kv.put("/p/f", b"1")
    q = mount(etcd, options=("quiet",), extra_args=["--attrs=none"])
    rev = revision(kv)
    for cmd in ("chmod 600 p/f", "chmod 700 p", "chown 12345:12345 p/f"):
        sh(cmd, q.path)
    st = os.stat(q.path / "p" / "f")
    assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.getuid()
    assert stat.S_IMODE(os.stat(q.path / "p").st_mode) == 0o755
    assert revision(kv) == rev and dump(kv) == {b"/p/f": b"1"}


# -- limits ------------------------------------------------------------------------------------

def test_file_over_size_limit_is_efbig(etcd, kv, mount, tmp_path):
    m = mount(etcd, options=("max_file_size=4096",))
    r = sh("head -c 5000 /dev/zero > big", m.path, check=False)
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    assert get(kv, "/big") is None
    kv.put("/old", b"old value")
    r = sh("head -c 4097 /dev/zero > old", m.path, check=False)
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    assert get(kv, "/old") in (None, b"old value")  # never a value cut to 4096 bytes
    r = sh("dd if=/dev/zero of=dd.out bs=1000 count=5 status=none", m.path, check=False)
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    assert get(kv, "/dd.out") is None
    local = tmp_path / "large.bin"
    local.write_bytes(os.urandom(10_000))
    r = sh(f"cp '{local}' copied", m.path, check=False)
    assert r.returncode != 0 and "File too large" in r.stderr, r.stderr
    # cp creates a missing destination with O_EXCL, which exists in etcd at open (atomic
    # across hosts): an empty file may remain, as on a local disk, but never a cut-off value
    assert get(kv, "/copied") in (None, b"")
    sh("head -c 4096 /dev/zero > exact", m.path)  # the limit itself fits
    assert get(kv, "/exact") == b"\0" * 4096
    assert not [k for k, v in dump(kv).items() if len(v) > 4096]


def test_name_length_255_ok_256_enametoolong(mode, fs, kv):
    ok, bad = "n" * 255, "n" * 256
    sh(f"touch {ok}", fs.path)
    assert stored_at_release(kv, "/" + ok, b"") == b""
    assert ok in os.listdir(fs.path)
    rev = revision(kv)
    r = sh(f"touch {bad}", fs.path, check=False)
    assert r.returncode != 0 and "File name too long" in r.stderr, r.stderr
    assert_errno(os.mkdir, errno.ENAMETOOLONG, fs.path / bad)
    assert_errno(os.rename, errno.ENAMETOOLONG, fs.path / ok, fs.path / bad)
    assert revision(kv) == rev and dump(kv) == {("/" + ok).encode(): b""}
    os.mkdir(fs.path / ("d" * 255))
    assert get(kv, "/" + "d" * 255 + "/") == b""


def test_hard_links_fail_clearly_and_leave_nothing(fs0, kv):
    kv.put("/f", b"F")
    rev = revision(kv)
    bad = {errno.EPERM, errno.ENOSYS, errno.EOPNOTSUPP}
    r = sh("ln f hard", fs0.path, check=False)
    assert r.returncode != 0
    assert_errno(os.link, bad, fs0.path / "f", fs0.path / "hard")
    assert revision(kv) == rev and dump(kv) == {b"/f": b"F"}
    assert os.listdir(fs0.path) == ["f"]


def test_symlinks_fail_clearly_without_records(etcd, kv, mount):
    kv.put("/f", b"F")
    fs0 = mount(etcd, extra_args=["--attrs=none"])
    rev = revision(kv)
    for cmd in ("ln -s f soft", "ln -s /etc/passwd abs"):
        r = sh(cmd, fs0.path, check=False)
        assert r.returncode != 0, cmd
    assert_errno(os.symlink, errno.EPERM, "f", fs0.path / "soft")
    assert revision(kv) == rev and dump(kv) == {b"/f": b"F"}
    assert os.listdir(fs0.path) == ["f"]


def test_symlinks_are_keys_holding_the_target(fs0, kv):
    kv.put("/f", b"F")
    sh("ln -s f soft && ln -s /etc/passwd abs", fs0.path)
    assert os.readlink(fs0.path / "abs") == "/etc/passwd"
    assert (fs0.path / "soft").read_bytes() == b"F"
    got = dump(kv)
    assert got[b"/soft"] == b"f" and got[b"/abs"] == b"/etc/passwd"
    assert b"lnk" not in got[b"/soft\x00attrs"] and b"mode=120777" in got[b"/soft\x00attrs"]
