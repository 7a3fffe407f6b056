"""poll(2), select(2) and epoll on an open file of the mount wake (POLLIN|POLLPRI) when its key
is changed or deleted by anyone: etcdctl, another mount, this mount. Reading from offset 0
re-arms the wake-up (docs/consistency.md)."""

import os
import select
import threading

import pytest

pytestmark = pytest.mark.needs_etcdfs

READY = select.POLLIN | select.POLLPRI
WAIT_MS = 10000  # a generous bound: the wake-up normally takes milliseconds


def poller(fd):
    p = select.poll()
    p.register(fd, READY)
    return p


def test_etcdctl_put_and_delete_wake_poll_and_read_rearms(etcd, kv, mount):
    kv.put("/cfg/flag", b"off")
    m = mount(etcd)
    fd = os.open(m / "cfg" / "flag", os.O_RDONLY)
    try:
        assert os.pread(fd, 100, 0) == b"off"
        p = poller(fd)
        assert p.poll(0) == []  # nothing changed since the read
        etcd.ctl("put", "/cfg/flag", "on")
        assert p.poll(WAIT_MS) != []
        assert p.poll(0) != []  # stays ready until read again from offset 0
        assert os.pread(fd, 100, 0) == b"on"
        assert p.poll(0) == []  # re-armed
        etcd.ctl("del", "/cfg/flag")
        assert p.poll(WAIT_MS) != []
    finally:
        os.close(fd)


def test_change_on_another_mount_wakes_select_and_epoll(etcd, kv, mount):
    kv.put("/f", b"1")
    a, b = mount(etcd, name="a"), mount(etcd, name="b")
    fd = os.open(b / "f", os.O_RDONLY)
    ep = select.epoll()
    try:
        assert os.pread(fd, 10, 0) == b"1"
        ep.register(fd, select.EPOLLIN | select.EPOLLPRI)
        assert ep.poll(0) == []
        (a / "f").write_bytes(b"2")
        assert ep.poll(WAIT_MS / 1000) != []
        assert os.pread(fd, 10, 0) == b"2"
        assert ep.poll(0) == []
        # a blocked select() in another thread is woken by the next change
        woke = []
        t = threading.Thread(target=lambda: woke.append(select.select([], [], [fd], 30)))
        t.start()
        (a / "f").write_bytes(b"3")
        t.join(timeout=60)
        assert woke and woke[0][2] == [fd]
    finally:
        ep.close()
        os.close(fd)


def test_unchanged_rewrite_elsewhere_of_other_keys_does_not_wake(etcd, kv, mount):
    kv.put("/watched", b"x")
    m = mount(etcd)
    fd = os.open(m / "watched", os.O_RDONLY)
    try:
        os.pread(fd, 10, 0)
        p = poller(fd)
        for i in range(20):
            kv.put(f"/other{i}", b"y")  # other keys, same directory
        (m / "sentinel").write_bytes(b"z")  # a write through the mount, seen by the watch
        assert p.poll(200) == []
        kv.put("/watched", b"x2")
        assert p.poll(WAIT_MS) != []
    finally:
        os.close(fd)
