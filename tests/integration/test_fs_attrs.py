"""Attribute records (issue 16, docs/design-attributes.md): the mode, owner and times of a file
or directory kept in etcd as one key next to it, "<key>\\0attrs" or "<dir>\\0dirattrs".

The records here are written with Python's etcd3 client, as another client (or a later
etcdfs) would: the mount must show them where they apply, hide their keys, ignore a record that
names an earlier incarnation of its file, follow changes through its watch, and cost no extra
round trip."""

import ctypes
import errno
import subprocess
import os
import socket
import stat
import time

import pytest

from etcd_fixtures import wait_for

pytestmark = pytest.mark.needs_etcdfs


def record(mode, uid=1234, gid=5678, mtime="1000000000.500000000",
           ctime="1000000001.000000000", anchor=0, content=0):
    return (f"etcdfs-attrs 1 mode={mode:o} uid={uid} gid={gid} mtime={mtime} ctime={ctime} "
            f"anchor={anchor} content={content}").encode()


def meta(kv, key):
    """(create_revision, mod_revision) of key, as etcd reports them."""
    value, m = kv.get(key)
    assert value is not None, key
    return m.create_revision, m.mod_revision


def put_with_record(kv, key, value, rec_key, rec):
    """The key and its record in one Txn (anchor=0, content=0 then apply)."""
    ok, _ = kv.transaction(compare=[], success=[kv.transactions.put(key, value),
                                                kv.transactions.put(rec_key, rec)],
                           failure=[])
    assert ok


def test_records_give_mode_owner_and_times_and_stay_hidden(etcd, kv, mount):
    kv.put("/t/script.sh", b"#!/bin/sh\necho hi\n")
    created, modified = meta(kv, "/t/script.sh")
    kv.put(b"/t/script.sh\x00attrs",
           record(stat.S_IFREG | 0o4755, anchor=created, content=modified))
    put_with_record(kv, "/t/bin/", b"", b"/t/bin\x00dirattrs", record(stat.S_IFDIR | 0o700))
    kv.put("/t/bin/tool", b"x")
    kv.put("/t/plain", b"no record")
    m = mount(etcd)
    # a lookup from etcd (nothing listed yet), then from the listing (readdirplus: ls -l)
    for listed in (False, True):
        if listed:
            assert sorted(os.listdir(m.path / "t")) == ["bin", "plain", "script.sh"]
        st = os.stat(m.path / "t" / "script.sh")
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o4755
        assert (st.st_uid, st.st_gid) == (1234, 5678)
        assert st.st_mtime_ns == 1000000000_500000000
        assert st.st_ctime_ns == 1000000001_000000000
        d = os.stat(m.path / "t" / "bin")
        assert stat.S_ISDIR(d.st_mode) and stat.S_IMODE(d.st_mode) == 0o700
        assert (d.st_uid, d.st_gid) == (1234, 5678)
        p = os.stat(m.path / "t" / "plain")  # no record: the mount's defaults
        assert stat.S_IMODE(p.st_mode) == 0o644 and p.st_uid == os.getuid()
    assert (m.path / "t" / "script.sh").read_bytes() == b"#!/bin/sh\necho hi\n"
    # a record's key has no name: its escaped spelling names nothing, and cannot be created
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / "t" / "%script.sh%00attrs")
    with pytest.raises(OSError) as e:
        (m.path / "t" / "%x%00attrs").write_bytes(b"v")
    assert e.value.errno == errno.EINVAL
    assert kv.get(b"/t/x\x00attrs")[0] is None


def test_a_record_of_an_earlier_file_of_the_name_does_not_apply(etcd, kv, mount):
    kv.put("/o/f", b"one")
    created, _ = meta(kv, "/o/f")
    kv.put(b"/o/f\x00attrs", record(stat.S_IFREG | 0o600, anchor=created, content=-1))
    kv.delete("/o/f")
    kv.put("/o/f", b"again")  # a new create_revision: the record is an orphan now
    kv.put(b"/o/g\x00attrs", record(stat.S_IFREG | 0o600))  # no file g at all
    kv.put("/o/h", b"h")
    kv.put(b"/o/h\x00attrs", b"etcdfs-attrs 1 mode=100600 uid=1 gid=1 mtime=garbage")
    m = mount(etcd)
    for name in ("f", "h"):
        st = os.stat(m.path / "o" / name)
        assert stat.S_IMODE(st.st_mode) == 0o644 and st.st_uid == os.getuid(), name
    assert sorted(os.listdir(m.path / "o")) == ["f", "h"]
    with pytest.raises(FileNotFoundError):
        os.stat(m.path / "o" / "g")


def test_another_clients_rewrite_keeps_the_mode_but_not_the_mtime(etcd, kv, mount):
    put_with_record(kv, "/w/run", b"v1", b"/w/run\x00attrs", record(stat.S_IFREG | 0o755))
    m = mount(etcd)
    st = os.stat(m.path / "w" / "run")
    assert stat.S_IMODE(st.st_mode) == 0o755 and st.st_mtime_ns == 1000000000_500000000
    kv.put("/w/run", b"v2")  # etcdctl put: same create_revision, new mod_revision
    with open(m.path / "w" / "run", "rb") as f:  # close-to-open: the open sees v2
        assert f.read() == b"v2"
    st = os.stat(m.path / "w" / "run")
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert st.st_mtime_ns != 1000000000_500000000  # never the old time for new content


def test_symlink_record_makes_a_symbolic_link(etcd, kv, mount):
    kv.put("/s/v1/app.conf", b"version one\n")
    put_with_record(kv, "/s/current", b"v1", b"/s/current\x00attrs",
                    record(stat.S_IFLNK | 0o777))
    m = mount(etcd)
    link = m.path / "s" / "current"
    assert os.readlink(link) == "v1"
    assert stat.S_ISLNK(os.lstat(link).st_mode)
    assert os.lstat(link).st_size == 2
    assert (link / "app.conf").read_bytes() == b"version one\n"
    with pytest.raises(OSError) as e:
        os.readlink(m.path / "s" / "v1" / "app.conf")
    assert e.value.errno == errno.EINVAL


def test_record_changes_reach_the_mount_through_the_watch(etcd, kv, mount):
    put_with_record(kv, "/c/f", b"x", b"/c/f\x00attrs", record(stat.S_IFREG | 0o640))
    m = mount(etcd, extra_args=["--consistency=watch"])
    assert stat.S_IMODE(os.stat(m.path / "c" / "f").st_mode) == 0o640
    created, modified = meta(kv, "/c/f")
    kv.put(b"/c/f\x00attrs", record(stat.S_IFREG | 0o751, anchor=created, content=modified))
    wait_for(lambda: stat.S_IMODE(os.stat(m.path / "c" / "f").st_mode) == 0o751, timeout=10)
    kv.delete(b"/c/f\x00attrs")
    wait_for(lambda: stat.S_IMODE(os.stat(m.path / "c" / "f").st_mode) == 0o644, timeout=10)
    assert os.listdir(m.path / "c") == ["f"]


def test_attrs_none_shows_the_defaults(etcd, kv, mount):
    put_with_record(kv, "/n/f", b"x", b"/n/f\x00attrs", record(stat.S_IFLNK | 0o777))
    m = mount(etcd, extra_args=["--attrs=none"])
    st = os.lstat(m.path / "n" / "f")
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
    assert os.listdir(m.path / "n") == ["f"]  # still hidden
    assert (m.path / "n" / "f").read_bytes() == b"x"


def test_attrs_none_keeps_set_times_in_memory_to_the_nanosecond(etcd, kv, mount):
    """Without records a time set by touch lives in the node (64-bit nanoseconds): exact
    before 1970 and after 2038, and clamped to what that holds beyond (docs/semantics.md)."""
    kv.put("/t/f", "x")
    m = mount(etcd, extra_args=["--attrs=none"])
    f = m.path / "t" / "f"
    for ns in (-2_000_000_000_123_456_789, 1, 4_102_444_800_000_000_007):  # 1906, 1970, 2100
        os.utime(f, ns=(ns, ns))
        assert os.stat(f).st_mtime_ns == ns
    os.utime(f, ns=(-10**19, -10**19))  # the year 1653: the first second 1678 holds whole
    assert os.stat(f).st_mtime_ns == -9_223_372_035 * 10**9
    os.utime(f, ns=(10**19, 10**19))  # 2286: the last whole second of 2262
    assert os.stat(f).st_mtime_ns == 9_223_372_035 * 10**9
    assert kv.get("/t/f")[0] == b"x"  # the content never changed


def test_a_lookup_with_records_is_still_one_round_trip(etcd, kv, mount):
    put_with_record(kv, "/r/f", b"x", b"/r/f\x00attrs", record(stat.S_IFREG | 0o700))
    m = mount(etcd)
    s0 = m.stats()
    assert stat.S_IMODE(os.stat(m.path / "r" / "f").st_mode) == 0o700
    s1 = m.stats()
    # two lookups (r, r/f), one Txn each, no more
    assert s1["rt_total"] - s0["rt_total"] == 2


# -- written by the mount ------------------------------------------------------------------------


def records(kv, prefix):
    """{record key: text} of every attribute record under prefix, read from etcd."""
    return {m.key: v.decode() for v, m in kv.get_prefix(prefix)
            if m.key.endswith(b"\x00attrs") or m.key.endswith(b"\x00dirattrs")}


def test_chmod_chown_and_utimes_are_kept_in_etcd_and_seen_by_another_mount(etcd, kv, mount):
    a = mount(etcd)
    f = a.path / "deploy.sh"
    f.write_bytes(b"#!/bin/sh\necho deployed\n")
    os.chmod(f, 0o755)
    os.chown(f, 1000, 2000)
    os.utime(f, ns=(1500000000_000000001, 1500000000_000000001))
    (a.path / "etc").mkdir()
    (a.path / "etc" / "x").write_bytes(b"x")
    os.chmod(a.path / "etc", 0o2750)
    # etcd holds the value unchanged and one record per entry
    assert kv.get("/deploy.sh")[0] == b"#!/bin/sh\necho deployed\n"
    recs = records(kv, "/")
    assert set(recs) == {b"/deploy.sh\x00attrs", b"/etc\x00dirattrs"}, recs
    assert "mode=100755 uid=1000 gid=2000 mtime=1500000000.000000001" in recs[b"/deploy.sh\x00attrs"]
    assert "mode=42750" in recs[b"/etc\x00dirattrs"]
    b = mount(etcd)
    for m in (a, b):
        st = os.stat(m.path / "deploy.sh")
        assert stat.S_IMODE(st.st_mode) == 0o755 and (st.st_uid, st.st_gid) == (1000, 2000)
        assert st.st_mtime_ns == 1500000000_000000001
        assert stat.S_IMODE(os.stat(m.path / "etc").st_mode) == 0o2750
    r = subprocess.run([str(b.path / "deploy.sh")], capture_output=True)
    assert r.returncode == 0 and r.stdout == b"deployed\n"


def test_a_rewrite_keeps_the_mode_and_carries_the_new_mtime(etcd, kv, mount):
    a = mount(etcd)
    f = a.path / "run"
    f.write_bytes(b"v1")
    os.chmod(f, 0o700)
    created = meta(kv, "/run")[0]
    f.write_bytes(b"version two")  # one Txn: the value and its record
    st = os.stat(f)
    assert stat.S_IMODE(st.st_mode) == 0o700
    assert meta(kv, "/run")[0] == created
    b = mount(etcd)
    sb = os.stat(b.path / "run")
    assert stat.S_IMODE(sb.st_mode) == 0o700 and sb.st_mtime_ns == st.st_mtime_ns
    assert (b.path / "run").read_bytes() == b"version two"


def test_records_go_with_unlink_rmdir_and_rename(etcd, kv, mount):
    a = mount(etcd)
    d = a.path / "d"
    d.mkdir()
    (d / "f").write_bytes(b"f")
    os.chmod(d / "f", 0o600)
    # the last file of a directory goes with its record, and the directory stays (marker)
    os.unlink(d / "f")
    assert d.is_dir() and os.listdir(d) == []
    assert records(kv, "/d") == {}
    assert kv.get("/d/")[0] == b""
    # rename of a file carries its record; over a file with one, the moved one wins
    (d / "s").write_bytes(b"s")
    os.chmod(d / "s", 0o751)
    (d / "t").write_bytes(b"t")
    os.chmod(d / "t", 0o600)
    os.rename(d / "s", d / "t")
    assert stat.S_IMODE(os.stat(d / "t").st_mode) == 0o751
    (d / "u").write_bytes(b"u")  # no record: over t, t's record must go
    os.rename(d / "u", d / "t")
    assert stat.S_IMODE(os.stat(d / "t").st_mode) == 0o644
    assert set(records(kv, "/d")) == set(), records(kv, "/d")
    # a directory rename carries the records below it and its own
    sub = d / "sub"
    sub.mkdir()
    os.chmod(sub, 0o710)
    (sub / "x").write_bytes(b"x")
    os.chmod(sub / "x", 0o640)
    (sub / "inner").mkdir()
    os.chmod(sub / "inner", 0o700)
    os.rename(sub, a.path / "moved")
    assert set(records(kv, "/")) == {b"/moved\x00dirattrs", b"/moved/x\x00attrs",
                                     b"/moved/inner\x00dirattrs"}, records(kv, "/")
    b = mount(etcd)
    for m in (a, b):
        assert stat.S_IMODE(os.stat(m.path / "moved").st_mode) == 0o710
        assert stat.S_IMODE(os.stat(m.path / "moved" / "x").st_mode) == 0o640
        assert stat.S_IMODE(os.stat(m.path / "moved" / "inner").st_mode) == 0o700
    # rmdir drops the directory's record
    os.rmdir(a.path / "moved" / "inner")
    assert b"/moved/inner\x00dirattrs" not in records(kv, "/")


def test_exchange_swaps_records_with_contents(etcd, kv, mount):
    libc = ctypes.CDLL(None, use_errno=True)
    a = mount(etcd)
    (a.path / "p").mkdir()
    (a.path / "p" / "k").write_bytes(b"pk")
    os.chmod(a.path / "p", 0o700)
    (a.path / "q").mkdir()
    (a.path / "q" / "k").write_bytes(b"qk")
    os.chmod(a.path / "q", 0o755)
    os.chmod(a.path / "q" / "k", 0o600)
    RENAME_EXCHANGE = 2
    rc = libc.renameat2(-100, str(a.path / "p").encode(), -100, str(a.path / "q").encode(),
                        RENAME_EXCHANGE)
    assert rc == 0, os.strerror(ctypes.get_errno())
    b = mount(etcd)
    for m in (a, b):
        assert (m.path / "q" / "k").read_bytes() == b"pk"
        assert stat.S_IMODE(os.stat(m.path / "q").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(m.path / "p").st_mode) == 0o755
        assert stat.S_IMODE(os.stat(m.path / "p" / "k").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(m.path / "q" / "k").st_mode) == 0o644


def test_symlinks_fifos_and_modes_of_new_entries(etcd, kv, mount):
    a = mount(etcd)
    os.makedirs(a.path / "rel" / "v1")
    (a.path / "rel" / "v1" / "app").write_bytes(b"one")
    os.makedirs(a.path / "rel" / "v2")
    (a.path / "rel" / "v2" / "app").write_bytes(b"two")
    # the classic atomic release switch
    subprocess.run(["ln", "-sfn", "v1", str(a.path / "rel" / "current")], check=True)
    assert (a.path / "rel" / "current" / "app").read_bytes() == b"one"
    subprocess.run(["ln", "-sfn", "v2", str(a.path / "rel" / "current")], check=True)
    assert os.readlink(a.path / "rel" / "current") == "v2"
    assert kv.get("/rel/current")[0] == b"v2"  # the target is the value
    old_umask = os.umask(0)
    try:
        os.mkfifo(a.path / "rel" / "pipe", 0o620)
    finally:
        os.umask(old_umask)
    with open(a.path / "rel" / "new.sh", "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(a.path / "rel" / "new.sh", 0o750)  # before the first write-back (open)
    fd = os.open(a.path / "rel" / "made", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    os.mkdir(a.path / "rel" / "private", 0o700)
    sock = socket.socket(socket.AF_UNIX)  # bind(2) makes the socket's entry with mknod
    sock.bind(str(a.path / "rel" / "sock"))
    sock.close()
    b = mount(etcd)
    for m in (a, b):
        r = m.path / "rel"
        assert (r / "current" / "app").read_bytes() == b"two"
        assert stat.S_ISLNK(os.lstat(r / "current").st_mode)
        assert stat.S_ISFIFO(os.lstat(r / "pipe").st_mode)
        assert stat.S_ISSOCK(os.lstat(r / "sock").st_mode)
        assert stat.S_IMODE(os.lstat(r / "pipe").st_mode) == 0o620
        assert stat.S_IMODE(os.stat(r / "new.sh").st_mode) == 0o750
        assert stat.S_IMODE(os.stat(r / "made").st_mode) == 0o600
        assert stat.S_IMODE(os.stat(r / "private").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(r / "v1").st_mode) == 0o755  # defaults: no record
    assert b"/rel/v1\x00dirattrs" not in records(kv, "/")
    # device nodes stay refused
    with pytest.raises(PermissionError):
        os.mknod(a.path / "rel" / "dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))


def test_cp_a_rsync_a_and_tar_round_trip_modes_times_symlinks_and_fifos(etcd, kv, mount, tmp_path):
    src = tmp_path / "src"
    (src / "bin").mkdir(parents=True)
    (src / "bin" / "run").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "bin" / "run", 0o755)
    (src / "etc").mkdir()
    (src / "etc" / "secret").write_bytes(b"s")
    os.chmod(src / "etc" / "secret", 0o600)
    os.symlink("bin/run", src / "start")
    os.mkfifo(src / "fifo")
    os.utime(src / "etc" / "secret", ns=(1400000000_000000000, 1400000000_000000000))
    os.chmod(src / "etc", 0o750)
    m = mount(etcd)

    def tree(root):
        out = {}
        for dirpath, dirs, files in os.walk(root):
            for name in dirs + files:
                p = os.path.join(dirpath, name)
                st = os.lstat(p)
                rel = os.path.relpath(p, root)
                out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                            os.readlink(p) if stat.S_ISLNK(st.st_mode) else None,
                            st.st_mtime_ns if stat.S_ISREG(st.st_mode) else None)
        return out

    want = tree(src)
    subprocess.run(["cp", "-a", str(src), str(m.path / "cp")], check=True)
    assert tree(m.path / "cp") == want
    # pax keeps nanoseconds (the default GNU format keeps seconds)
    subprocess.run(["tar", "--format=posix", "-C", str(src), "-cf", str(tmp_path / "t.tar"), "."],
                   check=True)
    os.mkdir(m.path / "tar")
    subprocess.run(["tar", "-C", str(m.path / "tar"), "-xpf", str(tmp_path / "t.tar")], check=True)
    assert tree(m.path / "tar") == want
    subprocess.run(["rsync", "-a", str(src) + "/", str(m.path / "rsync")], check=True)
    assert tree(m.path / "rsync") == want
    # and back out, to a local filesystem
    back = tmp_path / "back"
    subprocess.run(["cp", "-a", str(m.path / "cp"), str(back)], check=True)
    assert tree(back) == want
    subprocess.run(["rsync", "-a", str(m.path / "rsync") + "/", str(tmp_path / "rback")],
                   check=True)
    assert tree(tmp_path / "rback") == want


# -- permissions: the kernel checks the stored modes (default_permissions) -----------------------

PERM_SCRIPT = r"""
import errno, os, sys
def attempt(fn):
    try:
        fn()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
root, step = sys.argv[1], sys.argv[2]
p = lambda n: os.path.join(root, n)
def write_new(n):
    fd = os.open(p(n), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, b"x")
    os.close(fd)
steps = {
    "read-private": lambda: open(p("private"), "rb").read(),
    "read-shared": lambda: open(p("shared"), "rb").read(),
    "write-shared": lambda: open(p("shared"), "wb").close(),
    "create-in-ro-dir": lambda: write_new("ro_dir/new"),
    "create-in-sticky": lambda: write_new("tmp/mine"),
    "chmod-own": lambda: os.chmod(p("tmp/mine"), 0o600),
    "unlink-others-in-sticky": lambda: os.unlink(p("tmp/mine")),
    "read-others-0600": lambda: open(p("tmp/mine"), "rb").read(),
    "chmod-not-owner": lambda: os.chmod(p("shared"), 0o777),
    "chown-not-root": lambda: os.chown(p("tmp/mine"), 0, 0),
    "search-closed-dir": lambda: os.stat(p("closed/f")),
    "unlink-own-in-sticky": lambda: os.unlink(p("tmp/mine")),
    "mkdir-in-setgid": lambda: os.mkdir(p("grp/sub")),
    "chmod-setgid-not-member": lambda: os.chmod(p("tmp/sg"), 0o2755),
    "write-setuid-file": lambda: open(p("tmp/su"), "ab").write(b"more"),
}
print(attempt(steps[step]))
"""

# (uid running it, step)
PERM_STEPS = [(1000, "read-private"), (1000, "read-shared"), (1000, "write-shared"),
              (1000, "create-in-ro-dir"), (1000, "create-in-sticky"), (1000, "chmod-own"),
              (1001, "unlink-others-in-sticky"), (1001, "read-others-0600"),
              (1000, "chmod-not-owner"), (1000, "chown-not-root"), (1000, "search-closed-dir"),
              (1000, "unlink-own-in-sticky"), (0, "mkdir-in-setgid"),
              (1000, "chmod-setgid-not-member"), (1001, "write-setuid-file")]


def perm_setup(root):
    (root / "private").write_bytes(b"secret")
    os.chmod(root / "private", 0o600)
    (root / "shared").write_bytes(b"shared")
    (root / "ro_dir").mkdir()
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "closed").mkdir()
    (root / "closed" / "f").write_bytes(b"f")
    os.chmod(root / "closed", 0o700)
    (root / "grp").mkdir()
    os.chown(root / "grp", 0, 1234)
    os.chmod(root / "grp", 0o2775)
    (root / "grp" / "f").write_bytes(b"g")
    (root / "tmp" / "sg").write_bytes(b"sg")  # the owner is not in its group
    os.chown(root / "tmp" / "sg", 1000, 1234)
    (root / "tmp" / "su").write_bytes(b"su")  # setuid, writable by others
    os.chown(root / "tmp" / "su", 1000, 1000)
    os.chmod(root / "tmp" / "su", 0o4757)


def perm_outcomes(root):
    out = []
    for uid, step in PERM_STEPS:
        r = subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                            "/usr/bin/python3", "-c", PERM_SCRIPT, str(root), step],
                           capture_output=True, text=True)
        out.append((uid, step, r.stdout.strip() or r.stderr.strip()[-200:]))
    sub = root / "grp" / "sub"
    st_f, st_d = os.stat(root / "grp" / "f"), os.stat(sub) if sub.exists() else None
    out.append(("setgid group of a new file", st_f.st_gid))
    out.append(("setgid new directory", (st_d.st_gid, oct(stat.S_IMODE(st_d.st_mode)))
                if st_d else None))
    # the kernel clears setgid on a non-member's chmod, setuid on another user's write
    out.append(("chmod by a non-member", oct(stat.S_IMODE(os.stat(root / "tmp" / "sg").st_mode))))
    out.append(("written by another", oct(stat.S_IMODE(os.stat(root / "tmp" / "su").st_mode))))
    return out


def searchable_up_to_tmp(path):
    """Other users must reach the test's directories (pytest makes /tmp/pytest-of-root 0700)."""
    p = path
    while p != p.parent and str(p) != "/tmp":
        os.chmod(p, os.stat(p).st_mode | 0o755)
        p = p.parent


def test_permissions_are_checked_against_stored_modes_as_on_tmpfs(etcd, kv, mount, tmp_path):
    """Another user, through allow_other: EACCES on search and write permission, the sticky
    directory's EPERM, chmod/chown by a non-owner, setgid inheritance, setgid cleared on a
    non-member's chmod and setuid on another user's write; each outcome as on tmpfs."""
    ref = tmp_path / "ref"
    ref.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=755", "tmpfs", str(ref)]
                      ).returncode != 0:
        pytest.skip("cannot mount a reference tmpfs")
    try:
        m = mount(etcd, options=("allow_other",))
        searchable_up_to_tmp(m.path)
        os.chmod(m.path, 0o755)
        perm_setup(ref)
        perm_setup(m.path)
        want, got = perm_outcomes(ref), perm_outcomes(m.path)
        print("\n".join(f"{w}  |  {g}" for w, g in zip(want, got)))
        assert got == want
        # and a second mount sees the same modes, so the same answers
        n = mount(etcd, options=("allow_other",))
        searchable_up_to_tmp(n.path)
        assert subprocess.run(["setpriv", "--reuid=1000", "--regid=1000", "--clear-groups",
                               "cat", str(n.path / "private")], capture_output=True
                              ).returncode != 0
    finally:
        subprocess.run(["umount", str(ref)])


def test_the_mount_root_has_no_record_outside_its_prefix(etcd, kv, mount):
    kv.put("/app/f", b"x")
    m = mount(etcd, prefix="/app/")
    with pytest.raises(PermissionError):
        os.chmod(m.path, 0o700)
    os.chmod(m.path / "f", 0o700)  # inside: fine
    assert [meta.key for _, meta in kv.get_all()] == [b"/app/f", b"/app/f\x00attrs"]


def test_rmdir_removes_records_left_by_another_clients_delete(etcd, kv, mount):
    m = mount(etcd)
    d = m.path / "d"
    d.mkdir()
    (d / "f").write_bytes(b"f")
    os.chmod(d / "f", 0o600)
    (d / "sub").mkdir()
    os.chmod(d / "sub", 0o700)
    kv.delete("/d/f")  # etcdctl del: the record stays behind, describing nothing
    kv.delete("/d/sub/")
    wait_for(lambda: os.listdir(d) == [], timeout=10)
    os.rmdir(d)  # not ENOTEMPTY: orphans go with the directory
    assert [meta.key for _, meta in kv.get_prefix("/d")] == []
    # a directory with a real entry next to orphans stays refused
    (m.path / "e").mkdir()
    (m.path / "e" / "g").write_bytes(b"g")
    kv.put(b"/e/gone\x00attrs", b"etcdfs-attrs 1 mode=100600 uid=0 gid=0 mtime=1.000000000 "
                                b"ctime=1.000000000 anchor=5 content=-1")
    with pytest.raises(OSError) as e:
        os.rmdir(m.path / "e")
    assert e.value.errno == errno.ENOTEMPTY


def renameat2_exchange(a, b):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.renameat2(-100, str(a).encode(), -100, str(b).encode(), 2) == 0, \
        os.strerror(ctypes.get_errno())


@pytest.mark.parametrize("mode", ["close-to-open", "watch", "strict"])
def test_entries_moved_by_an_exchange_keep_their_records_at_once(etcd, kv, mount, mode):
    """Right after exchanges of directories, before the watch brings the mount's own events:
    a symbolic link moved by them still reads, a file keeps its mode, also when renamed onto a
    key they moved. (The differential tester's findings of this kind are replayed as traces in
    test_fs_differential.py.)"""
    m = mount(etcd, extra_args=[f"--consistency={mode}"])
    (m.path / "a").mkdir()
    (m.path / "b").mkdir()
    (m.path / "a" / "t").write_bytes(b"target")
    os.symlink("t", m.path / "a" / "l")
    (m.path / "b" / "x").write_bytes(b"x")
    (m.path / "b" / "y").write_bytes(b"y")
    os.chmod(m.path / "b" / "y", 0o640)
    here, there = m.path / "a", m.path / "b"
    for _ in range(6):
        renameat2_exchange(m.path / "a", m.path / "b")
        here, there = there, here
        assert os.readlink(here / "l") == "t"
        assert (here / "l").read_bytes() == b"target"
        assert stat.S_IMODE(os.stat(there / "y").st_mode) == 0o640
    renameat2_exchange(m.path / "a", m.path / "b")
    here, there = there, here
    os.rename(there / "y", there / "x")  # onto a key the exchange moved, at once
    assert stat.S_IMODE(os.stat(there / "x").st_mode) == 0o640
    n = mount(etcd)
    assert stat.S_IMODE(os.stat(n.path / there.name / "x").st_mode) == 0o640
    assert os.readlink(n.path / here.name / "l") == "t"


def test_a_record_follows_its_keys_lease_and_cas(etcd, kv, mount):
    """user.etcd.ttl / user.etcd.lease attach the record to the key's lease in the same Txn
    (both expire together); user.etcd.cas writes the new mtime with the content."""
    m = mount(etcd)
    f = m.path / "leased"
    f.write_bytes(b"v")
    os.chmod(f, 0o750)
    rev = int(etcd.status()["header"]["revision"])
    os.setxattr(f, "user.etcd.ttl", b"2")
    assert int(etcd.status()["header"]["revision"]) == rev + 1  # one Txn
    v, meta_v = kv.get("/leased")
    r, meta_r = kv.get(b"/leased\x00attrs")
    assert meta_v.lease_id == meta_r.lease_id != 0
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o750  # still applies (names the new version)
    wait_for(lambda: kv.get("/leased")[0] is None and kv.get(b"/leased\x00attrs")[0] is None,
             timeout=15)
    # cas: the record names the new content and its time
    g = m.path / "cas"
    g.write_bytes(b"one")
    os.chmod(g, 0o700)
    os.utime(g, (1, 1))
    cur = kv.get("/cas")[1].mod_revision
    os.setxattr(g, "user.etcd.cas", f"{cur}:two".encode())
    st = os.stat(g)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_mtime > 1
    n = mount(etcd)
    st2 = os.stat(n.path / "cas")
    assert stat.S_IMODE(st2.st_mode) == 0o700 and st2.st_mtime_ns == st.st_mtime_ns


def test_records_survive_etcdfs_rekey(etcd, kv, mount, tmp_path, build_dir):
    """Records are values: rekey re-seals them, and one created with its file (anchor 0) still
    applies once its key was put again."""
    line1 = f"1 {os.urandom(32).hex()}\n"
    k1 = tmp_path / "k1.key"
    k1.write_text(line1)
    k1.chmod(0o600)
    m = mount(etcd, extra_args=[f"--key-file={k1}"])
    fd = os.open(m.path / "made", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)  # anchor 0
    os.close(fd)
    (m.path / "later").write_bytes(b"x")
    os.chmod(m.path / "later", 0o751)  # anchor named
    m.unmount()
    k12 = tmp_path / "k12.key"
    k12.write_text(line1 + f"2 {os.urandom(32).hex()}\n")
    k12.chmod(0o600)
    r = subprocess.run([str(build_dir / "src" / "fs" / "etcdfs"), "rekey",
                        f"--endpoints={etcd.endpoint}", f"--key-file={k12}"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert r.returncode == 0, r.stderr
    assert kv.get(b"/made\x00attrs")[0][3] == 2  # sealed by key 2 now
    k2 = tmp_path / "k2.key"  # key 1 gone: only what rekey re-sealed opens
    k2.write_text(k12.read_text().splitlines()[1] + "\n")
    k2.chmod(0o600)
    n = mount(etcd, extra_args=[f"--key-file={k2}"])
    assert stat.S_IMODE(os.stat(n.path / "made").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(n.path / "later").st_mode) == 0o751
