"""Extended attributes (issue 7, docs/xattrs.md): user.etcd.* exposes etcd's metadata and its
concurrency primitives (lease/TTL, compare-and-swap), and --conflict-check guards write-back.

Every value is compared with what etcd itself reports (etcdctl -w json, Python etcd3), and
every refused change is checked to have changed nothing in etcd."""

import ctypes
import errno
import json
import os
import subprocess
import threading

import pytest

from etcd_fixtures import wait_for

pytestmark = pytest.mark.needs_etcdfs

FILE_ATTRS = ["user.etcd.revision", "user.etcd.create_revision", "user.etcd.version",
              "user.etcd.lock",  # holders and waiters of its flock (docs/locks.md)
              "user.etcd.lease", "user.etcd.ttl"]


def ctl_kv(etcd, key):
    """etcdctl's view of one key: the kvs[0] object of `get -w json` (None when absent)."""
    out = json.loads(etcd.ctl("get", key, "-w", "json"))
    kvs = out.get("kvs") or []
    return kvs[0] if kvs else None


def xattr(path, name):
    return os.getxattr(path, name).decode()


def getfattr(path, name):
    """The value getfattr(1) prints for name."""
    r = subprocess.run(["getfattr", "--only-values", "-n", name, str(path)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


def setfattr(path, name, value):
    return subprocess.run(["setfattr", "-n", name, "-v", value, str(path)],
                          capture_output=True, text=True)


def set_error(path, name, value):
    with pytest.raises(OSError) as e:
        os.setxattr(path, name, value)
    return e.value.errno


def revision(etcd):
    return int(etcd.status()["header"]["revision"])


# -- reading -----------------------------------------------------------------------------------

def test_file_attributes_equal_etcdctl(etcd, kv, mount):
    kv.put("/a/f", b"one")
    kv.put("/a/f", b"two")  # version 2, create_revision < mod_revision
    lease = kv.lease(300)
    kv.put("/a/g", b"leased", lease=lease)
    m = mount(etcd)
    for name, key in (("f", "/a/f"), ("g", "/a/g")):
        p = m.path / "a" / name
        names = os.listxattr(p)
        assert sorted(names) == sorted(FILE_ATTRS)
        want = ctl_kv(etcd, key)
        assert xattr(p, "user.etcd.revision") == str(want["mod_revision"])
        assert xattr(p, "user.etcd.create_revision") == str(want["create_revision"])
        assert xattr(p, "user.etcd.version") == str(want["version"])
        assert xattr(p, "user.etcd.lease") == str(want.get("lease", 0))
        # getfattr(1) prints the same text
        assert getfattr(p, "user.etcd.revision") == str(want["mod_revision"])
    assert xattr(m.path / "a" / "f", "user.etcd.version") == "2"
    assert xattr(m.path / "a" / "g", "user.etcd.lease") == str(lease.id)
    ttl = int(xattr(m.path / "a" / "g", "user.etcd.ttl"))
    remaining = lease.remaining_ttl  # Python etcd3's LeaseTimeToLive
    assert 0 < ttl <= 300 and abs(ttl - remaining) <= 2
    # a key without a lease never expires: its ttl reads -1 (documented)
    assert xattr(m.path / "a" / "f", "user.etcd.ttl") == "-1"
    # getfattr -d shows every attribute
    out = subprocess.run(["getfattr", "-d", "-m", "^user\\.etcd\\.", str(m.path / "a" / "f")],
                         capture_output=True, text=True, check=True).stdout
    for name in FILE_ATTRS:
        assert name + "=" in out


def test_values_follow_changes_made_elsewhere(etcd, kv, mount):
    kv.put("/k", b"1")
    m = mount(etcd)
    p = m.path / "k"
    assert xattr(p, "user.etcd.version") == "1"
    kv.put("/k", b"2")
    # read from etcd at each call, not from a cache
    assert xattr(p, "user.etcd.version") == "2"
    assert xattr(p, "user.etcd.revision") == str(ctl_kv(etcd, "/k")["mod_revision"])


def test_directory_attributes(etcd, kv, mount):
    for k in ("/d/x", "/d/y", "/d/sub/z", "/d/sub/w", "/other"):
        kv.put(k, b"v")
    kv.put("/d/y", b"newest")
    m = mount(etcd)
    d = m.path / "d"
    assert sorted(os.listxattr(d)) == ["user.etcd.keys", "user.etcd.revision"]
    count = json.loads(etcd.ctl("get", "/d/", "--prefix", "--keys-only", "-w", "json"))["count"]
    assert xattr(d, "user.etcd.keys") == str(count) == "4"
    assert xattr(d / "sub", "user.etcd.keys") == "2"
    assert xattr(d, "user.etcd.revision") == str(ctl_kv(etcd, "/d/y")["mod_revision"])
    assert xattr(d / "sub", "user.etcd.revision") == str(ctl_kv(etcd, "/d/sub/w")["mod_revision"])
    assert xattr(m.path, "user.etcd.keys") == "5"
    assert xattr(m.path, "user.etcd.revision") == str(revision(etcd))
    # read-only
    assert set_error(d, "user.etcd.keys", b"1") == errno.EPERM
    os.mkdir(m.path / "empty")
    assert xattr(m.path / "empty", "user.etcd.keys") == "1"  # its marker key
    assert xattr(m.path / "empty", "user.etcd.revision") == str(
        ctl_kv(etcd, "/empty/")["mod_revision"])


@pytest.mark.parametrize("prefix,want", [("", 4), ("/app", 2)])
def test_root_attributes_follow_the_mount_prefix(etcd, kv, mount, prefix, want):
    for k in ("/app/a", "/app/b/c", "/other", "top"):
        kv.put(k, b"v")
    m = mount(etcd, prefix=prefix)
    assert xattr(m.path, "user.etcd.keys") == str(want)
    newest = ctl_kv(etcd, "/app/b/c" if prefix else "top")["mod_revision"]
    assert xattr(m.path, "user.etcd.revision") == str(newest)


def test_size_protocol_and_erange(etcd, kv, mount):
    for i in range(12):  # a revision of two digits at least
        kv.put("/f", b"x%d" % i)
    m = mount(etcd)
    libc = ctypes.CDLL(None, use_errno=True)
    path = str(m.path / "f").encode()
    name = b"user.etcd.revision"
    want = str(ctl_kv(etcd, "/f")["mod_revision"]).encode()
    # size 0 asks for the size
    assert libc.getxattr(path, name, None, ctypes.c_size_t(0)) == len(want)
    small = ctypes.create_string_buffer(len(want) - 1)
    assert libc.getxattr(path, name, small, ctypes.c_size_t(len(want) - 1)) == -1
    assert ctypes.get_errno() == errno.ERANGE
    buf = ctypes.create_string_buffer(64)
    n = libc.getxattr(path, name, buf, ctypes.c_size_t(64))
    assert buf.raw[:n] == want
    total = libc.listxattr(path, None, ctypes.c_size_t(0))
    assert total == sum(len(a) + 1 for a in FILE_ATTRS)
    assert libc.listxattr(path, small, ctypes.c_size_t(5)) == -1
    assert ctypes.get_errno() == errno.ERANGE


def test_other_attributes_are_refused_and_change_nothing(etcd, kv, mount):
    kv.put("/f", b"content")
    m = mount(etcd)
    p = m.path / "f"
    rev0 = revision(etcd)
    assert set_error(p, "user.comment", b"hello") == errno.ENOTSUP
    assert set_error(p, "user.etcd.unknown", b"1") == errno.ENOTSUP
    assert set_error(p, "security.selinux", b"x") == errno.ENOTSUP
    for name in ("user.etcd.revision", "user.etcd.version", "user.etcd.create_revision"):
        assert set_error(p, name, b"1") == errno.EPERM
    r = setfattr(p, "user.comment", "hello")
    assert r.returncode != 0 and "not supported" in r.stderr
    for name in ("user.comment", "security.capability", "system.posix_acl_access",
                 "user.etcd.cas"):
        with pytest.raises(OSError) as e:
            os.getxattr(p, name)
        assert e.value.errno == errno.ENODATA, name
    with pytest.raises(OSError) as e:
        os.removexattr(p, "user.etcd.revision")
    assert e.value.errno == errno.EPERM
    assert revision(etcd) == rev0
    assert kv.get("/f")[0] == b"content"
    # the statistics file has no etcd attributes
    assert os.listxattr(m.path / ".etcdfs" / "stats") == []


def test_attribute_reads_cost_one_round_trip_and_foreign_names_none(etcd, kv, mount):
    kv.put("/f", b"x")
    m = mount(etcd, options=("cache_timeout=60",))
    p = m.path / "f"
    os.stat(p)
    s0 = m.stats()
    for name in ("security.capability", "system.posix_acl_access", "trusted.x"):
        with pytest.raises(OSError):
            os.getxattr(p, name)
    os.listxattr(p)
    s1 = m.stats()
    assert s1["rt_total"] - s0["rt_total"] == 0
    xattr(p, "user.etcd.revision")
    s2 = m.stats()
    assert s2["rt_total"] - s1["rt_total"] == 1
    assert s2["rt_range"] - s1["rt_range"] == 1


# -- leases and TTL ----------------------------------------------------------------------------

@pytest.mark.slow
def test_ttl_makes_the_key_vanish_from_etcd_and_both_mounts(etcd, kv, mount):
    kv.put("/hb/host1", b"alive")
    a = mount(etcd)
    b = mount(etcd)
    assert (b.path / "hb" / "host1").read_bytes() == b"alive"
    r = setfattr(a.path / "hb" / "host1", "user.etcd.ttl", "2")
    assert r.returncode == 0, r.stderr
    want = ctl_kv(etcd, "/hb/host1")
    assert want["lease"] != 0 and kv.get("/hb/host1")[0] == b"alive"  # value kept
    assert xattr(a.path / "hb" / "host1", "user.etcd.lease") == str(want["lease"])
    assert xattr(b.path / "hb" / "host1", "user.etcd.lease") == str(want["lease"])
    assert 0 <= int(xattr(b.path / "hb" / "host1", "user.etcd.ttl")) <= 2
    wait_for(lambda: kv.get("/hb/host1")[0] is None, 30, "the lease to expire the key")
    for m in (a, b):
        wait_for(lambda m=m: not (m.path / "hb" / "host1").exists(), 30,
                 f"the expired key to vanish from {m.path}")
        with pytest.raises(FileNotFoundError):
            (m.path / "hb" / "host1").read_bytes()


def test_ttl_zero_detaches_and_lease_attaches(etcd, kv, mount):
    kv.put("/k", b"v")
    m = mount(etcd)
    p = m.path / "k"
    os.setxattr(p, "user.etcd.ttl", b"600")
    lease_id = int(ctl_kv(etcd, "/k")["lease"])
    assert lease_id != 0 and 590 <= int(xattr(p, "user.etcd.ttl")) <= 600
    os.setxattr(p, "user.etcd.ttl", b"0")
    assert ctl_kv(etcd, "/k").get("lease", 0) == 0
    assert xattr(p, "user.etcd.ttl") == "-1"
    # attach an existing lease, by decimal id or 0x-hex
    lease = kv.lease(120)
    os.setxattr(p, "user.etcd.lease", str(lease.id).encode())
    assert ctl_kv(etcd, "/k")["lease"] == lease.id
    assert xattr(p, "user.etcd.lease") == str(lease.id)
    os.removexattr(p, "user.etcd.lease")  # removing = detaching
    assert ctl_kv(etcd, "/k").get("lease", 0) == 0
    os.setxattr(p, "user.etcd.lease", hex(lease.id).encode())
    assert ctl_kv(etcd, "/k")["lease"] == lease.id
    assert kv.get("/k")[0] == b"v"  # the value never changed
    # bad values change nothing
    rev0 = revision(etcd)
    assert set_error(p, "user.etcd.lease", b"123456789") == errno.EINVAL  # no such lease
    for bad in (b"", b"-1", b"abc", b"1.5", b"10 ", b"99999999999999999999999"):
        assert set_error(p, "user.etcd.ttl", bad) == errno.EINVAL, bad
    assert revision(etcd) == rev0
    assert ctl_kv(etcd, "/k")["lease"] == lease.id


# -- compare-and-swap --------------------------------------------------------------------------

def test_cas_replaces_only_at_the_expected_revision(etcd, kv, mount):
    kv.put("/cfg", b"v1")
    m = mount(etcd)
    p = m.path / "cfg"
    assert p.read_bytes() == b"v1"  # the kernel holds pages of v1
    rev = xattr(p, "user.etcd.revision")
    r = setfattr(p, "user.etcd.cas", f"{rev}:v2 longer")
    assert r.returncode == 0, r.stderr
    assert kv.get("/cfg")[0] == b"v2 longer"
    new_rev = ctl_kv(etcd, "/cfg")["mod_revision"]
    assert new_rev > int(rev)
    assert p.read_bytes() == b"v2 longer"  # the cache and the kernel's pages follow
    assert os.stat(p).st_size == len(b"v2 longer")
    assert xattr(p, "user.etcd.revision") == str(new_rev)
    # the old revision again: ESTALE, nothing changes
    rev0 = revision(etcd)
    r = setfattr(p, "user.etcd.cas", f"{rev}:v3")
    assert r.returncode != 0 and "Stale file handle" in r.stderr
    assert set_error(p, "user.etcd.cas", f"{rev}:v3".encode()) == errno.ESTALE
    # 0 means "only if the key does not exist"
    assert set_error(p, "user.etcd.cas", b"0:v3") == errno.ESTALE
    for bad in (b"v3", b":v3", b"x:v3", b"-1:v3"):
        assert set_error(p, "user.etcd.cas", bad) == errno.EINVAL, bad
    assert revision(etcd) == rev0
    assert kv.get("/cfg")[0] == b"v2 longer"
    assert p.read_bytes() == b"v2 longer"
    # binary content and an empty content are content like any other
    os.setxattr(p, "user.etcd.cas", f"{new_rev}:".encode() + b"\x00\xff:x")
    assert kv.get("/cfg")[0] == b"\x00\xff:x"
    rev = xattr(p, "user.etcd.revision")
    os.setxattr(p, "user.etcd.cas", f"{rev}:".encode())
    assert kv.get("/cfg")[0] == b""


def test_cas_zero_creates_a_key_that_does_not_exist(etcd, kv, mount):
    kv.put("/once", b"first")
    m = mount(etcd)
    p = m.path / "once"
    fd = os.open(p, os.O_RDONLY)
    try:
        kv.delete("/once")  # gone from etcd; the open file still names it
        os.setxattr(fd, "user.etcd.cas", b"0:second")
        assert kv.get("/once")[0] == b"second"
        assert ctl_kv(etcd, "/once")["version"] == 1
        rev0 = revision(etcd)
        with pytest.raises(OSError) as e:
            os.setxattr(fd, "user.etcd.cas", b"0:third")
        assert e.value.errno == errno.ESTALE
        assert revision(etcd) == rev0 and kv.get("/once")[0] == b"second"
    finally:
        os.close(fd)


def test_cas_race_between_two_mounts_has_one_winner(etcd, kv, mount):
    kv.put("/race", b"start")
    a = mount(etcd)
    b = mount(etcd)
    for round_ in range(10):
        rev = xattr(a.path / "race", "user.etcd.revision")
        assert xattr(b.path / "race", "user.etcd.revision") == rev
        procs = [subprocess.Popen(["setfattr", "-n", "user.etcd.cas", "-v",
                                   f"{rev}:{m.path.name}-{round_}", str(m.path / "race")],
                                  stderr=subprocess.PIPE, text=True) for m in (a, b)]
        results = [(p.wait(), p.stderr.read()) for p in procs]
        for p in procs:
            p.stderr.close()
        winners = [i for i, (code, _) in enumerate(results) if code == 0]
        assert len(winners) == 1, results
        loser = results[1 - winners[0]]
        assert "Stale file handle" in loser[1], loser
        winner = (a, b)[winners[0]]
        assert kv.get("/race")[0] == f"{winner.path.name}-{round_}".encode()
        assert ctl_kv(etcd, "/race")["mod_revision"] > int(rev)
        for m in (a, b):  # both mounts show the winner's content
            assert (m.path / "race").read_bytes() == f"{winner.path.name}-{round_}".encode()


def test_cas_increments_from_two_mounts_lose_no_update(etcd, kv, mount):
    """The documented read-modify-write loop (docs/xattrs.md), run by two mounts at once."""
    kv.put("/counter", b"0")
    mounts = [mount(etcd), mount(etcd)]
    per_mount, conflicts, failures = 15, [], []

    def worker(m):
        p = m.path / "counter"
        try:
            for _ in range(per_mount):
                while True:
                    rev = xattr(p, "user.etcd.revision")
                    n = int(p.read_bytes())
                    try:
                        os.setxattr(p, "user.etcd.cas", f"{rev}:{n + 1}".encode())
                        break
                    except OSError as e:
                        if e.errno != errno.ESTALE:
                            raise
                        conflicts.append(1)
        except Exception as e:  # reported by the main thread
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(m,)) for m in mounts]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert kv.get("/counter")[0] == str(2 * per_mount).encode()
    assert ctl_kv(etcd, "/counter")["version"] == 1 + 2 * per_mount  # one write per increment


def test_cas_with_encryption_is_sealed(etcd, kv, mount, tmp_path):
    key_file = tmp_path / "k"
    key_file.write_text(f"1 {os.urandom(32).hex()}\n")
    key_file.chmod(0o600)
    m = mount(etcd, extra_args=[f"--key-file={key_file}"])
    (m.path / "s").write_bytes(b"old secret")
    rev = xattr(m.path / "s", "user.etcd.revision")
    os.setxattr(m.path / "s", "user.etcd.cas", f"{rev}:new secret".encode())
    stored = kv.get("/s")[0]
    assert stored.startswith(b"\xe7\xcd\x01") and b"new secret" not in stored
    assert (m.path / "s").read_bytes() == b"new secret"


def test_setxattr_stores_buffered_changes_first(etcd, kv, mount):
    m = mount(etcd)
    p = m.path / "f"
    with open(p, "w") as f:
        f.write("buffered")
        f.flush()  # Python's buffer: the write reaches the mount, not yet etcd
        os.setxattr(p, "user.etcd.ttl", b"600")
        # stored like fsync, then the lease attached to it
        assert kv.get("/f")[0] == b"buffered"
        assert ctl_kv(etcd, "/f")["lease"] != 0
    assert kv.get("/f")[0] == b"buffered"


def test_read_only_mount_refuses_writes(etcd, kv, mount):
    kv.put("/f", b"x")
    m = mount(etcd, options=("ro",))
    rev = xattr(m.path / "f", "user.etcd.revision")
    assert set_error(m.path / "f", "user.etcd.cas", f"{rev}:y".encode()) == errno.EROFS
    assert set_error(m.path / "f", "user.etcd.ttl", b"5") == errno.EROFS
    assert kv.get("/f")[0] == b"x"


# -- --conflict-check --------------------------------------------------------------------------

CONFLICT = ("conflict_check",)


def test_conflict_check_lost_race_is_estale_and_changes_nothing(etcd, kv, mount):
    kv.put("/doc", b"v1")
    a = mount(etcd, options=CONFLICT)
    b = mount(etcd, options=CONFLICT)
    with open(a.path / "doc", "r+b") as fa:
        assert fa.read() == b"v1"
        (b.path / "doc").write_bytes(b"from b")  # another host wins meanwhile
        rev_b = ctl_kv(etcd, "/doc")["mod_revision"]
        fa.seek(0)
        fa.write(b"from a, based on v1")
        with pytest.raises(OSError) as e:
            fa.flush()
            os.fsync(fa.fileno())
        assert e.value.errno == errno.ESTALE
    assert kv.get("/doc")[0] == b"from b"
    assert ctl_kv(etcd, "/doc")["mod_revision"] == rev_b
    # the loser's view is dropped: a new open shows the winner
    assert (a.path / "doc").read_bytes() == b"from b"
    # and a write based on what it now saw goes through
    (a.path / "doc").write_bytes(b"from a, after b")
    assert kv.get("/doc")[0] == b"from a, after b"


def test_conflict_check_close_reports_estale(etcd, kv, mount):
    kv.put("/doc", b"v1")
    a = mount(etcd, options=CONFLICT)
    fd = os.open(a.path / "doc", os.O_RDWR)
    try:
        assert os.read(fd, 10) == b"v1"
        kv.put("/doc", b"elsewhere")
        os.pwrite(fd, b"mine", 0)
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
    assert e.value.errno == errno.ESTALE
    assert kv.get("/doc")[0] == b"elsewhere"


def test_conflict_check_new_file_created_twice(etcd, kv, mount):
    a = mount(etcd, options=CONFLICT)
    b = mount(etcd, options=CONFLICT)
    fa = open(a.path / "new", "wb")
    try:
        fa.write(b"a's version")
        (b.path / "new").write_bytes(b"b's version")
        with pytest.raises(OSError) as e:
            fa.close()
        assert e.value.errno == errno.ESTALE
    finally:
        if not fa.closed:
            try:
                fa.close()
            except OSError:
                pass
    assert kv.get("/new")[0] == b"b's version"
    wait_for(lambda: (a.path / "new").read_bytes() == b"b's version", 10,
             "the loser's mount to show the winner")


def test_conflict_check_deleted_elsewhere_is_not_recreated(etcd, kv, mount):
    kv.put("/gone", b"v1")
    a = mount(etcd, options=CONFLICT)
    with open(a.path / "gone", "r+b") as f:
        f.read()
        kv.delete("/gone")
        f.seek(0)
        f.write(b"resurrected?")
        with pytest.raises(OSError) as e:
            f.flush()
            os.fsync(f.fileno())
        assert e.value.errno == errno.ESTALE
    assert kv.get("/gone")[0] is None


def test_conflict_check_own_writes_are_not_conflicts(etcd, kv, mount):
    m = mount(etcd, options=CONFLICT)
    p = m.path / "log"
    p.write_bytes(b"1\n")
    with open(p, "ab") as f1, open(p, "ab") as f2:
        f1.write(b"2\n")
        f1.flush()
        os.fsync(f1.fileno())
        f2.write(b"3\n")  # the other handle saw the base of f1's write: ours, not a conflict
        f2.flush()
        os.fsync(f2.fileno())
    assert kv.get("/log")[0] == b"1\n2\n3\n"
    for i in range(3):
        subprocess.run(["sh", "-c", f"echo {i} > '{p}'"], check=True)
        assert kv.get("/log")[0] == f"{i}\n".encode()


def test_conflict_check_echo_is_still_one_write(etcd, kv, mount):
    kv.put("/f", b"old")
    m = mount(etcd, options=CONFLICT + ("cache_timeout=60",))
    os.listdir(m.path)
    rev0, s0 = revision(etcd), m.stats()
    subprocess.run(["sh", "-c", "echo x > f"], cwd=m.path, check=True)
    s1 = m.stats()
    assert revision(etcd) - rev0 == 1
    assert s1["rt_total"] - s0["rt_total"] == 1  # the guarded Txn, nothing else
    assert kv.get("/f")[0] == b"x\n"


def test_without_conflict_check_last_writer_wins(etcd, kv, mount):
    kv.put("/doc", b"v1")
    a = mount(etcd)
    with open(a.path / "doc", "r+b") as fa:
        fa.read()
        kv.put("/doc", b"elsewhere")
        fa.seek(0)
        fa.truncate()
        fa.write(b"mine")
    assert kv.get("/doc")[0] == b"mine"  # documented default: no guard


def test_conflict_check_everyday_tools_see_no_false_conflicts(etcd, kv, mount, tmp_path):
    """Single-host use under --conflict-check behaves exactly as without it: only another
    writer's change in between makes a write-back fail."""
    kv.put("/t/file", b"one\ntwo\n")
    kv.put("/t/log", b"start\n")
    m = mount(etcd, options=CONFLICT)
    d = m.path / "t"

    def sh(cmd):
        subprocess.run(["sh", "-c", cmd], cwd=d, check=True, stdin=subprocess.DEVNULL)

    sh("sed -i 's/two/TWO/' file")
    assert kv.get("/t/file")[0] == b"one\nTWO\n"
    r = subprocess.run(["vim", "-u", "NONE", "-i", "NONE", "-N", "-n", "-es", "-c", "%s/one/1/",
                        "-c", "wq", "file"], cwd=d, capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert kv.get("/t/file")[0] == b"1\nTWO\n"
    # one descriptor appending while other processes append and close
    fd = os.open(d / "log", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, b"p1-a\n")
        sh("echo p2-a >> log")
        os.write(fd, b"p1-b\n")
        sh("echo p2-b >> log")
    finally:
        os.close(fd)
    assert kv.get("/t/log")[0] == b"start\np1-a\np2-a\np1-b\np2-b\n"
    sh("for i in 1 2 3; do echo $i >> log; done; touch new; cp file copy; : > empty")
    assert kv.get("/t/log")[0].endswith(b"1\n2\n3\n")
    assert kv.get("/t/copy")[0] == b"1\nTWO\n"
    wait_for(lambda: kv.get("/t/new")[0] == b"", 5, "touch's file to be stored at release")
    assert kv.get("/t/empty")[0] == b""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a").write_bytes(b"A")
    subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(tmp_path / "x.tar"), "src"],
                   check=True)
    sh(f"tar -xf '{tmp_path / 'x.tar'}'")
    assert kv.get("/t/src/a")[0] == b"A"


def test_conflict_check_rename_while_open_is_not_a_conflict(etcd, kv, mount):
    """An editor saves to a temporary file, renames it over the original while it is still
    open, and writes more: the rename is this host's own change, not another writer's."""
    kv.put("/cfg/x", b"old")
    m = mount(etcd, options=CONFLICT)
    d = m.path / "cfg"
    with open(d / "x.new", "wb") as f:
        f.write(b"new content")
        f.flush()
        os.fsync(f.fileno())
        os.rename(d / "x.new", d / "x")
        f.write(b" and more after the rename")
    assert kv.get("/cfg/x")[0] == b"new content and more after the rename"


def test_conflict_check_ftruncate_after_a_change_elsewhere_is_estale(etcd, kv, mount):
    kv.put("/doc", b"v1 long content")
    a = mount(etcd, options=CONFLICT)
    fd = os.open(a.path / "doc", os.O_RDWR)
    try:
        assert os.read(fd, 100) == b"v1 long content"
        kv.put("/doc", b"elsewhere, also long")
        # another open on this host brings the change into the cache; fd still saw v1
        assert (a.path / "doc").read_bytes() == b"elsewhere, also long"
        os.ftruncate(fd, 2)
    finally:
        with pytest.raises(OSError) as e:
            os.close(fd)
    assert e.value.errno == errno.ESTALE
    assert kv.get("/doc")[0] == b"elsewhere, also long"
