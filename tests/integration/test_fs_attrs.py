"""Attribute records (issue 16, docs/design-attributes.md): the mode, owner and times of a file
or directory kept in etcd as one key next to it, "<key>\\0attrs" or "<dir>\\0dirattrs".

The records here are written with Python's etcd3 client, as another client (or a later
etcdfs) would: the mount must show them where they apply, hide their keys, ignore a record that
names an earlier incarnation of its file, follow changes through its watch, and cost no extra
round trip."""

import errno
import os
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


def test_a_lookup_with_records_is_still_one_round_trip(etcd, kv, mount):
    put_with_record(kv, "/r/f", b"x", b"/r/f\x00attrs", record(stat.S_IFREG | 0o700))
    m = mount(etcd)
    s0 = m.stats()
    assert stat.S_IMODE(os.stat(m.path / "r" / "f").st_mode) == 0o700
    s1 = m.stats()
    # two lookups (r, r/f), one Txn each, no more
    assert s1["rt_total"] - s0["rt_total"] == 2
