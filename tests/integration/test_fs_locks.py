"""flock(2) and fcntl locks on the mount are etcd locks: across mounts ("hosts"), with etcdctl,
released by close, process death and (for a dead daemon or host) the session lease.

Two mounts of one etcd stand for two hosts; one test puts each mount's daemon in a network
namespace of its own, talking to a 3-member cluster whose members live in namespaces too."""

import errno
import fcntl
import os
import signal
import struct
import subprocess
import time

import pytest

from etcd_fixtures import wait_for

pytestmark = pytest.mark.needs_etcdfs

LOCKS = ("--lock-prefix=/L",)


def lock_keys(kv, name):
    """The lock's keys in etcd (holders and waiters), in queue order."""
    got = [(m.create_revision, m.key.decode(), v) for v, m in kv.get_prefix(f"/L/{name}/")]
    return [(k, v) for _, k, v in sorted(got)]


class Holder:
    """`flock [flags] path -c 'sleep 600'` in a process group of its own, once it holds the
    lock. flock(1)'s child inherits the locked descriptor, so ending the holder means ending
    the group."""

    def __init__(self, path, *flags):
        self.p = subprocess.Popen(["flock", *flags, str(path), "-c", "echo held; exec sleep 600"],
                                  stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        assert self.p.stdout.readline().strip() == "held"

    def end(self, sig=signal.SIGTERM):
        try:
            os.killpg(self.p.pid, sig)
        except ProcessLookupError:
            pass
        self.p.wait(timeout=30)
        self.p.stdout.close()

    terminate = end

    def kill(self):
        self.end(signal.SIGKILL)

    def wait(self):
        pass


def hold(path, *flags):
    return Holder(path, *flags)


def flock_nb(path, *flags):
    return subprocess.run(["flock", "-n", *flags, str(path), "true"],
                          stdin=subprocess.DEVNULL).returncode


@pytest.fixture
def two(etcd, mount, kv):
    kv.put("/job", b"0")
    return (mount(etcd, name="a", extra_args=LOCKS), mount(etcd, name="b", extra_args=LOCKS))


def test_flock_excludes_across_mounts_and_hands_off(two, kv):
    a, b = two
    holder = hold(a / "job")
    keys = lock_keys(kv, "job")
    assert len(keys) == 1  # etcdctl's layout: /L/job/<lease id hex>
    assert b"host=" in keys[0][1] and f"pid=".encode() in keys[0][1]
    assert flock_nb(b / "job") == 1
    assert flock_nb(a / "job") == 1  # another process on the same host queues in etcd too
    # A blocked locker on b gets the lock right after a releases it.
    waiter = subprocess.Popen(["flock", str(b / "job"), "-c", "echo got"],
                              stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    wait_for(lambda: len(lock_keys(kv, "job")) == 2, what="b's waiter key")
    t0 = time.monotonic()
    holder.terminate()
    holder.wait()
    assert waiter.stdout.readline().strip() == "got"
    handoff = time.monotonic() - t0
    waiter.wait(timeout=30)
    print(f"hand-off a -> b: {handoff * 1000:.1f} ms")
    wait_for(lambda: lock_keys(kv, "job") == [], what="lock keys gone")
    assert flock_nb(b / "job") == 0


def test_counter_four_workers_two_mounts_exactly_200(two, kv):
    a, b = two
    script = ("for i in $(seq 50); do flock {m}/job -c 'n=$(cat {m}/job); "
              "echo $((n+1)) > {m}/job' || exit 1; done")
    workers = [subprocess.Popen(["sh", "-c", script.format(m=m.path)], stdin=subprocess.DEVNULL)
               for m in (a, b, a, b)]
    for w in workers:
        assert w.wait(timeout=170) == 0
    assert kv.get("/job")[0] == b"200\n"
    assert (b / "job").read_text() == "200\n"
    assert lock_keys(kv, "job") == []


def test_reopened_file_keeps_its_lock_when_the_old_release_arrives_late(two, kv):
    """The kernel releases a closed file asynchronously and names a flock by the address of the
    struct file, which the next open often gets again: the old release must not end (or fail
    with a leaked ERESTARTSYS, errno 512) the new description's lock."""
    a, _ = two
    for _ in range(100):
        fd = os.open(a / "job", os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.close(fd)
        fd = os.open(a / "job", os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            time.sleep(0.002)  # room for the late release to (wrongly) take the lock away
            assert len(lock_keys(kv, "job")) == 1
        finally:
            os.close(fd)
    wait_for(lambda: lock_keys(kv, "job") == [], what="last lock released")


def test_kill_9_of_the_holding_process_releases_at_once(two, kv):
    a, b = two
    holder = hold(a / "job")
    holder.kill()
    holder.wait()
    # The kernel closes its descriptor: the daemon releases without waiting for a lease.
    wait_for(lambda: lock_keys(kv, "job") == [], timeout=5, what="released by close")
    assert flock_nb(b / "job") == 0


def test_kill_9_of_the_holders_daemon_releases_after_the_lease(etcd, mount, kv):
    kv.put("/job", b"0")
    a = mount(etcd, name="a", extra_args=LOCKS + ("--lock-ttl=2s",))
    b = mount(etcd, name="b", extra_args=LOCKS)
    holder = hold(a / "job")
    lease_hex = lock_keys(kv, "job")[0][0].rsplit("/", 1)[1]
    a.proc.kill()
    a.proc.wait()
    a.expected_returncodes = {-signal.SIGKILL}
    assert flock_nb(b / "job") == 1  # still held: the lease outlives the daemon for its TTL
    t0 = time.monotonic()
    r = subprocess.run(["flock", "-w", "60", str(b / "job"), "true"], stdin=subprocess.DEVNULL)
    assert r.returncode == 0
    print(f"released {time.monotonic() - t0:.2f} s after the daemon died (lease TTL 2 s)")
    leases = etcd.ctl("lease", "list")
    assert lease_hex not in leases
    holder.kill()
    holder.wait()


def test_interrupted_waiter_leaves_nothing_behind(two, kv):
    a, b = two
    holder = hold(a / "job")
    r = subprocess.run(["timeout", "1", "flock", str(b / "job"), "true"],
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 124
    # Only the holder's key: the waiter's key went with the interrupted wait.
    wait_for(lambda: len(lock_keys(kv, "job")) == 1, timeout=5, what="waiter key removed")
    holder.terminate()
    holder.wait()
    # No stale waiter delays the next locker: once the holder's key is gone (the release
    # follows the close), a try gets the lock at once.
    wait_for(lambda: lock_keys(kv, "job") == [], timeout=10, what="holder key released")
    assert flock_nb(b / "job") == 0


def test_shared_locks_admit_readers_and_exclude_writers(two, kv):
    a, b = two
    r1 = hold(a / "job", "-s")
    r2 = hold(b / "job", "-s")
    keys = lock_keys(kv, "job")
    assert len(keys) == 2 and all(k.endswith(".shared") for k, _ in keys)
    assert flock_nb(b / "job", "-x") == 1
    assert flock_nb(a / "job", "-s") == 0
    for r in (r1, r2):
        r.terminate()
        r.wait()
    # the kernel sends the release right after the last close returns, not within it
    wait_for(lambda: lock_keys(kv, "job") == [], timeout=10, what="shared keys released")
    assert flock_nb(b / "job", "-x") == 0


def test_etcdctl_lock_interop_both_ways(etcd, two, kv):
    a, b = two
    holder = hold(a / "job")
    r = subprocess.run(["timeout", "2", "etcdctl", f"--endpoints={etcd.endpoint}", "lock",
                        "/L/job", "echo", "etcdctl-got-it"], capture_output=True, text=True)
    assert r.returncode == 124 and "etcdctl-got-it" not in r.stdout
    holder.terminate()
    holder.wait()
    etcdctl = subprocess.Popen(["etcdctl", f"--endpoints={etcd.endpoint}", "lock", "/L/job"],
                               stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert etcdctl.stdout.readline().startswith("/L/job/")  # etcdctl holds it now
    try:
        assert flock_nb(b / "job") == 1
    finally:
        etcdctl.send_signal(signal.SIGINT)
        etcdctl.wait(timeout=20)
    wait_for(lambda: flock_nb(b / "job") == 0, timeout=10, what="lock free after etcdctl")


def test_fcntl_whole_file_locks(two, kv):
    a, b = two
    fa = os.open(a / "job", os.O_RDWR)
    fb = os.open(b / "job", os.O_RDWR)
    try:
        fcntl.lockf(fa, fcntl.LOCK_EX)
        with pytest.raises(OSError) as e:
            fcntl.lockf(fb, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert e.value.errno in (errno.EAGAIN, errno.EACCES)
        probe = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        l_type = struct.unpack("hhqqi", fcntl.fcntl(fb, fcntl.F_GETLK, probe))[0]
        assert l_type == fcntl.F_WRLCK
        # Byte ranges cannot be one etcd lock: refused, never silently widened.
        with pytest.raises(OSError) as e:
            fcntl.lockf(fb, fcntl.LOCK_SH | fcntl.LOCK_NB, 10, 5)
        assert e.value.errno == errno.ENOLCK
        # Any close by the owning process ends its fcntl locks (POSIX).
        fa2 = os.open(a / "job", os.O_RDONLY)
        os.close(fa2)
        fcntl.lockf(fb, fcntl.LOCK_EX | fcntl.LOCK_NB)
        l_type = struct.unpack("hhqqi", fcntl.fcntl(fb, fcntl.F_GETLK, probe))[0]
        assert l_type == fcntl.F_UNLCK  # our own lock does not conflict with us
        fcntl.lockf(fb, fcntl.LOCK_UN)
        assert lock_keys(kv, "job") == []
    finally:
        os.close(fa)
        os.close(fb)


def test_grant_fence_shows_earlier_writes_through_open_files(two, kv):
    """b keeps the file open with its old content cached; a writes under the lock; once b is
    granted the lock, a read through b's old descriptor shows a's write."""
    a, b = two
    fb = os.open(b / "job", os.O_RDONLY)
    try:
        assert os.pread(fb, 100, 0) == b"0"
        for i in range(1, 6):
            subprocess.run(["flock", str(a / "job"), "-c", f"printf {i} > {a / 'job'}"],
                           check=True)
            lk = os.open(b / "job", os.O_RDONLY)
            fcntl.flock(lk, fcntl.LOCK_EX)
            assert os.pread(fb, 100, 0) == str(i).encode()
            fcntl.flock(lk, fcntl.LOCK_UN)
            os.close(lk)
    finally:
        os.close(fb)


def test_fencing_write_after_lost_lease_fails_and_changes_nothing(etcd, mount, kv):
    kv.put("/job", b"before")
    a = mount(etcd, name="a", extra_args=LOCKS + ("--lock-fencing",))
    fd = os.open(a / "job", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"under lock", 0)
        os.fsync(fd)
        assert kv.get("/job")[0] == b"under lock"
        lease_hex = lock_keys(kv, "job")[0][0].rsplit("/", 1)[1]
        etcd.ctl("lease", "revoke", lease_hex)  # the session is lost (as after a partition)
        wait_for(lambda: lock_keys(kv, "job") == [], what="lock key gone with the lease")
        kv.put("/job", b"next holder's work")
        os.pwrite(fd, b"late write", 0)
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        assert kv.get("/job")[0] == b"next holder's work"
    finally:
        os.close(fd)


def test_lock_keys_stay_out_of_listings_by_default(etcd, mount, kv):
    kv.put("/job", b"0")
    m = mount(etcd)
    holder = hold(m / "job")
    try:
        held = [k.decode() for _, k in ((v, md.key) for v, md in kv.get_prefix("etcdfs-locks/"))]
        assert len(held) == 1 and held[0].startswith("etcdfs-locks/job/")
        assert sorted(os.listdir(m.path)) == ["job"]
    finally:
        holder.terminate()
        holder.wait()


@pytest.mark.netns
@pytest.mark.slow
def test_hosts_in_network_namespaces_on_a_3_member_cluster(netns, mount, tmp_path):
    """Each mount's daemon in a namespace of its own, the cluster's members in three more:
    exclusion, the counter, and a host cut off the network losing its lock to the other after
    the lease TTL, its late write fenced."""
    from netns_hosts import start_netns_cluster
    (tmp_path / "cluster-logs").mkdir()
    cluster = start_netns_cluster(netns, tmp_path / "cluster-logs")
    try:
        kv = cluster.client()
        kv.put("/job", b"0")
        ha, hb = netns.add_host(), netns.add_host()
        args = LOCKS + ("--lock-ttl=2s", "--lock-fencing", "--command-timeout=2s")
        a = mount(cluster.endpoints, name="a", host=ha, extra_args=args)
        b = mount(cluster.endpoints, name="b", host=hb, extra_args=args)
        holder = hold(a / "job")
        assert flock_nb(b / "job") == 1
        holder.terminate()
        holder.wait()
        script = ("for i in $(seq 25); do flock {m}/job -c 'n=$(cat {m}/job); "
                  "echo $((n+1)) > {m}/job' || exit 1; done")
        workers = [subprocess.Popen(["sh", "-c", script.format(m=m.path)],
                                    stdin=subprocess.DEVNULL) for m in (a, b)]
        for w in workers:
            assert w.wait(timeout=120) == 0
        assert kv.get("/job")[0] == b"50\n"
        # Host a holds the lock, then drops off the network: b gets it after the lease.
        fd = os.open(a / "job", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        ha.cut()
        t0 = time.monotonic()
        r = subprocess.run(["flock", "-w", "60", str(b / "job"), "-c",
                            f"echo b-wins > {b / 'job'}"], stdin=subprocess.DEVNULL)
        assert r.returncode == 0
        print(f"b got the lock {time.monotonic() - t0:.2f} s after a was cut off (TTL 2 s)")
        ha.heal()
        os.pwrite(fd, b"a's late write", 0)
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        os.close(fd)
        assert kv.get("/job")[0] == b"b-wins\n"
        kv.close()
    finally:
        for m in (locals().get("a"), locals().get("b")):
            if m is not None:
                m.unmount()
        cluster.destroy()


def test_holder_and_waiters_readable_as_an_xattr(two, kv):
    a, b = two
    assert os.getxattr(a / "job", "user.etcd.lock") == b""  # nobody holds it
    holder = hold(a / "job")
    waiter = subprocess.Popen(["flock", str(b / "job"), "true"], stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(lock_keys(kv, "job")) == 2, what="b's waiter key")
        lines = os.getxattr(b / "job", "user.etcd.lock").decode().splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("held exclusive ") and "lock=flock" in lines[0]
        assert f"pid={holder.p.pid}" in lines[0] or "pid=" in lines[0]
        assert lines[1].startswith("waiting exclusive ") and f"pid={waiter.pid}" in lines[1]
        # the same information etcdctl users see as the keys' values
        assert lock_keys(kv, "job")[0][1].decode() in lines[0]
    finally:
        holder.terminate()
        waiter.wait(timeout=30)
    assert "user.etcd.lock" in os.listxattr(a / "job")
