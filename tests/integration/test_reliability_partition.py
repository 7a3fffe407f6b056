"""Network partitions under real mounts (the reliability scenarios), with network namespaces:
every etcd member and every mount's daemon runs on a simulated host of its own, and a
partition drops packets silently (`Host.cut_from`: nothing is refused, TCP connections hang),
which is what keep-alives and deadlines are for.

1. a mount given every endpoint is cut from one member (the rest of the cluster intact), then
   the leader is cut from everyone: it fails over to the reachable majority; a writer and a
   reader running meanwhile see no error with a generous --command-timeout, and every write
   whose close() returned 0 is in etcd;
2. a mount that knows only one member, which ends up alone in a minority: reads that go to etcd
   and writes fail (EIO or ETIMEDOUT) within the command timeout, never answer with a value
   the majority has replaced (close-to-open revalidates every open; in --consistency=watch
   the mount stops trusting its cache once etcd ends the watch of a member without a leader),
   and after the heal the mount recovers by itself: new values, the watch resumed;
3. the host of a flock holder cut from the whole cluster for longer than --lock-ttl: the other
   host gets the lock, the daemon logs the lost session, the late write is fenced (EIO at
   fsync and at close, nothing lands), and after the heal the same mount takes the lock again.

test_reliability_outages.py covers members that are killed or stopped (connections refused);
test_fs_locks.py the lock hand-off after a host's link goes down. Figures (stalls, time to an
error, recovery) are printed, never asserted: run with -s. Hangs are caught by generous
timeouts (HANG), not by thresholds."""

import errno
import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest

from etcd_fixtures import wait_for
from fs_tool_helpers import listing_or_errno, read_or_errno
from reliability_helpers import Writer

pytestmark = [pytest.mark.needs_etcdfs, pytest.mark.netns, pytest.mark.slow]

HANG = 60  # seconds: longer than any honest answer, so only a hang reaches it


def start_cluster(netns, tmp_path):
    from netns_hosts import start_netns_cluster
    logs = tmp_path / "cluster-logs"
    logs.mkdir(exist_ok=True)
    return start_netns_cluster(netns, logs)


def majority_client(members):
    """An etcd3 client of one of `members` that answers linearizable reads (the partition may
    have just started an election)."""
    import etcd3.exceptions

    def ready():
        for m in members:
            c = m.client(timeout=3)
            try:
                c.get("/")
                return c
            except (etcd3.exceptions.Etcd3Exception, Exception):
                c.close()
        return None
    return wait_for(ready, HANG, "a client of the majority", ignore=(Exception,))


# --------------------------------------------------------------------------------------------
# 1. failover from a member the mount cannot reach any more
# --------------------------------------------------------------------------------------------

class Reader(threading.Thread):
    """Reads a file another client wrote and the newest file the writer had acknowledged
    before the open, in a loop: both must read exactly what was stored. (Files the writer has
    closed only: a file open for writing on the same mount is another matter.)"""

    def __init__(self, mount, writer):
        super().__init__(daemon=True)
        self.mount, self.writer = mount, writer
        self.stop = threading.Event()
        self.reads = 0
        self.errors: list[str] = []
        self.latencies: list[tuple[float, float]] = []

    def run(self):
        while not self.stop.is_set():
            i = self.writer.last_index
            t0 = time.monotonic()
            try:
                fixed = (self.mount / "r" / "f").read_bytes()
                acked = ((self.mount / "w" / self.writer.name_of(i)).read_bytes() if i >= 0
                         else None)
            except OSError as exc:
                self.errors.append(repr(exc))
                continue
            self.latencies.append((t0, time.monotonic() - t0))
            self.reads += 1
            if fixed != b"read me":
                self.errors.append(f"r/f read {fixed!r}")
            if acked is not None and acked != self.writer.content_of(i):
                self.errors.append(f"w/{self.writer.name_of(i)} read {acked!r} after its close "
                                   "returned 0")


def run_phase(writer, reader, what, cut, heal, hold=12.0):
    """Cuts, keeps the loops running `hold` seconds and until both made progress after the cut,
    heals; returns (longest write, longest read) around the cut in seconds."""
    w0, r0 = len(writer.acked_files), reader.reads
    t_cut = time.monotonic()
    cut()
    time.sleep(hold)
    wait_for(lambda: len(writer.acked_files) >= w0 + 20 and reader.reads >= r0 + 20, HANG,
             f"writes and reads after {what}")
    heal()
    t_heal = time.monotonic()
    w = max((d for s, d in writer.latencies if t_cut - 1 <= s <= t_heal), default=0)
    r = max((d for s, d in reader.latencies if t_cut - 1 <= s <= t_heal), default=0)
    print(f"{what}: {len(writer.acked_files) - w0} files written, {reader.reads - r0} reads in "
          f"{t_heal - t_cut:.1f} s; longest write {w * 1000:.0f} ms, longest read "
          f"{r * 1000:.0f} ms")
    return w, r


def test_mount_cut_from_its_member_fails_over_without_errors(netns, mount, tmp_path):
    cluster = start_cluster(netns, tmp_path)
    try:
        kv = cluster.client()
        kv.put("/w/.keep", b"")
        kv.put("/r/f", b"read me")
        kv.close()
        hm = netns.add_host()
        m = mount(cluster.endpoints, host=hm, name="m", extra_args=("--command-timeout=10s",))
        assert m.endpoints.count(",") == 2  # every member's endpoint
        writer = Writer(m)
        reader = Reader(m, writer)
        writer.start()
        reader.start()
        wait_for(lambda: len(writer.acked_files) >= 20 and reader.reads >= 20, 30, "the loops")
        print()
        # a) the link between the mount's host and one member only: the cluster stays whole
        follower = cluster.followers()[0]
        run_phase(writer, reader, f"mount cut from follower {follower.name}",
                  lambda: hm.cut_from(follower.host), lambda: hm.heal_from(follower.host))
        # b) the leader cut from everyone: an election, and the mount's connection to the old
        #    leader hangs
        leader = cluster.leader()
        others = [h for h in netns.hosts if h is not leader.host]
        run_phase(writer, reader, f"leader {leader.name} cut from every host",
                  lambda: [leader.host.cut_from(h) for h in others],
                  lambda: [leader.host.heal_from(h) for h in others])
        writer.stop.set()
        reader.stop.set()
        for t in (writer, reader):
            t.join(HANG)
            assert not t.is_alive(), "a loop hangs in the mount"
        assert writer.errors == [], f"errors reached the writer: {writer.errors[:5]}"
        assert reader.errors == [], f"errors or stale values reached the reader: " \
                                    f"{reader.errors[:5]}"
        c = majority_client([mm for mm in cluster.members if mm is not leader])
        try:
            stored = {md.key.decode(): v for v, md in c.get_prefix("/w/")}
            for name, data in writer.acked_files.items():
                assert stored.get(f"/w/{name}") == data, f"acked write /w/{name} lost"
            assert c.get("/last")[0] in {writer.last_acked} | writer.last_unknown
        finally:
            c.close()
        print(f"{len(writer.acked_files)} acknowledged file creations, all in etcd; "
              f"{reader.reads} reads")
    finally:
        m = locals().get("m")
        if m is not None:
            m.unmount()
        cluster.destroy()


# --------------------------------------------------------------------------------------------
# 2. a mount whose only member ends up in a minority
# --------------------------------------------------------------------------------------------

OP_SCRIPT = r"""
import os, sys, time
op, path = sys.argv[1], sys.argv[2]
t0 = time.monotonic()
err, got = 0, b""
try:
    if op == "read":
        with open(path, "rb") as f:
            got = f.read()
    elif op == "stat":
        os.stat(path)
    elif op == "ls":
        got = " ".join(sorted(os.listdir(path))).encode()
    elif op in ("create", "overwrite"):
        with open(path, "wb") as f:
            f.write(b"written in the minority")
except OSError as e:
    err = e.errno
print(err, time.monotonic() - t0, got.hex() or "-")
"""


def timed_op(op, path):
    """One operation in a child process (a hang stays there): (errno, seconds, bytes read)."""
    try:
        r = subprocess.run([sys.executable, "-c", OP_SCRIPT, op, str(path)], capture_output=True,
                           text=True, timeout=HANG, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{op} {path} hangs: no answer within {HANG} s in the minority")
    err, secs, got = r.stdout.split()
    return int(err), float(secs), (b"" if got == "-" else bytes.fromhex(got))


FAILED = (errno.EIO, errno.ETIMEDOUT)  # unavailable / no answer in time (docs/semantics.md)


def isolate(member, cluster):
    for other in cluster.members:
        if other is not member:
            member.host.cut_from(other.host)


def rejoin(member, cluster):
    for other in cluster.members:
        if other is not member:
            member.host.heal_from(other.host)


def check_minority_ops(m, ops, stale):
    """Runs ops (op, path) on the mount in the minority: each must fail with EIO/ETIMEDOUT
    and never return a value in `stale`. Returns a printable summary."""
    out = []
    for op, path in ops:
        err, secs, got = timed_op(op, path)
        assert got not in stale or got == b"", f"{op} {path}: stale value {got!r}"
        assert err in FAILED, f"{op} {path}: " + (os.strerror(err) if err else f"gave {got!r}")
        assert m.is_mounted()
        out.append(f"{op} {errno.errorcode[err]} after {secs:.2f} s")
    return ", ".join(out)


def test_minority_member_fails_fast_never_stale_and_recovers(netns, mount, tmp_path):
    """close-to-open: every open and every lookup of a name not in a fresh listing go to etcd,
    so in the minority they fail; nothing answers with the value the majority replaced."""
    cluster = start_cluster(netns, tmp_path)
    try:
        kv = cluster.client()
        for k, v in [("/c/f", b"v1"), ("/c/g", b"g1"), ("/u/f", b"u1"), ("/d/x", b"")]:
            kv.put(k, v)
        kv.close()
        lone = cluster.followers()[0]
        hm = netns.add_host()
        # A long --cache-timeout keeps the directories' entries in the kernel: the operations
        # below then reach etcd for the file itself, not for a parent's lookup.
        m = mount(lone.endpoint, host=hm, extra_args=("--command-timeout=2s",
                                                      "--cache-timeout=600"))
        assert (m / "c" / "f").read_bytes() == b"v1"
        assert (m / "c" / "g").read_bytes() == b"g1"
        for d in ("u", "d"):
            assert (m / d).is_dir()
        t_cut = time.monotonic()
        isolate(lone, cluster)
        c = majority_client([mm for mm in cluster.members if mm is not lone])
        c.put("/c/f", b"v2 from the majority")
        c.put("/u/f", b"u2 from the majority")
        c.put("/d/y", b"new")
        print(f"\nthe majority took the changes {time.monotonic() - t_cut:.2f} s after the cut")
        summary = check_minority_ops(m, [
            ("read", m / "c" / "f"), ("read", m / "u" / "f"), ("ls", m / "d"),
            ("stat", m / "d" / "y"), ("create", m / "c" / "new"),
            ("overwrite", m / "c" / "g")], stale={b"v1", b"u1", b"x"})
        print(f"minority, close-to-open, --command-timeout=2s: {summary}")

        t_heal = time.monotonic()
        rejoin(lone, cluster)
        wait_for(lambda: read_or_errno(m / "c" / "f") == b"v2 from the majority", HANG,
                 "the new value through the healed mount", interval=0.05)
        t_read = time.monotonic()
        assert read_or_errno(m / "u" / "f") == b"u2 from the majority"
        assert listing_or_errno(m / "d") == ["x", "y"]
        (m / "c" / "after").write_bytes(b"written after the heal")
        assert c.get("/c/after")[0] == b"written after the heal"
        assert c.get("/c/new")[0] is None  # the failed create left nothing
        # The overwrite's close() failed with ETIMEDOUT: no answer, so no knowing whether it
        # was applied (its Put may sit in the minority member's queue to the leader, or the
        # release's second write-back may go through once healed). Whole or nothing, and the
        # mount shows what etcd has. (The release's write-back may still be in flight: it ends
        # within its command timeout, 2 s, after which the two must agree for good.)
        time.sleep(3)
        wait_for(lambda: read_or_errno(m / "c" / "g") == c.get("/c/g")[0], 30,
                 "the mount to agree with etcd")
        g = c.get("/c/g")[0]
        assert g in (b"g1", b"written in the minority")
        print(f"after the heal: new value read {t_read - t_heal:.2f} s later, write ok; the "
              f"timed-out overwrite {'landed' if g != b'g1' else 'did not land'}")
        c.close()
        assert m.unmount() == 0
        c = majority_client(cluster.members)
        assert c.get("/c/g")[0] == g  # nothing more lands at unmount
        c.close()
    finally:
        m = locals().get("m")
        if m is not None:
            m.unmount()
        cluster.destroy()


def test_minority_member_in_watch_mode_stops_trusting_then_resyncs(netns, mount, tmp_path):
    """--consistency=watch answers from the cache while the watch runs. etcd ends the watch
    streams of a member that has had no leader for a few election timeouts; from then on the
    mount must not answer with what it cached (the majority replaced it), and after the heal
    the watch resumes and the cache follows the cluster again (--cache-timeout=600: only the
    watch can refresh it)."""
    cluster = start_cluster(netns, tmp_path)
    try:
        kv = cluster.client()
        for k, v in [("/c/f", b"v1"), ("/c/gone", b"doomed"), ("/d/x", b"")]:
            kv.put(k, v)
        kv.close()
        lone = cluster.followers()[0]
        hm = netns.add_host()
        m = mount(lone.endpoint, host=hm, extra_args=(
            "--consistency=watch", "--command-timeout=2s", "--cache-timeout=600"))
        assert (m / "c" / "f").read_bytes() == b"v1"
        assert (m / "c" / "gone").read_bytes() == b"doomed"
        assert listing_or_errno(m / "d") == ["x"]
        wait_for(lambda: m.stats().get("watch_active") == 1, 30, "the watch")
        t_cut = time.monotonic()
        isolate(lone, cluster)
        c = majority_client([mm for mm in cluster.members if mm is not lone])
        c.put("/c/f", b"v2 from the majority")
        c.delete("/c/gone")
        c.put("/d/y", b"new")
        wait_for(lambda: m.stats().get("watch_active") == 0, HANG,
                 "the mount to notice its watch ended")
        t_off = time.monotonic()
        summary = check_minority_ops(m, [
            ("read", m / "c" / "f"), ("read", m / "c" / "gone"), ("ls", m / "d")],
            stale={b"v1", b"doomed", b"x"})
        print(f"\nminority, watch mode: watch inactive {t_off - t_cut:.2f} s after the cut "
              f"(cache trusted until then); {summary}")

        t_heal = time.monotonic()
        rejoin(lone, cluster)
        # polled closely: the first reads the resumed watch is trusted for are the test
        while m.stats().get("watch_active") != 1:
            assert time.monotonic() - t_heal < HANG, "the watch did not resume"
            time.sleep(0.005)
        t_watch = time.monotonic()
        assert read_or_errno(m / "c" / "f") == b"v2 from the majority"
        assert read_or_errno(m / "c" / "gone") == errno.ENOENT
        assert listing_or_errno(m / "d") == ["x", "y"]
        # the resumed watch, and nothing else (cache timeout 600 s), brings a later change
        c.put("/c/f", b"v3 after the heal")
        wait_for(lambda: read_or_errno(m / "c" / "f") == b"v3 after the heal", 30,
                 "v3 through the resumed watch", interval=0.05)
        print(f"after the heal: watch active again {t_watch - t_heal:.2f} s later; "
              f"v3 seen {time.monotonic() - t_watch:.2f} s after that")
        c.close()
    finally:
        m = locals().get("m")
        if m is not None:
            m.unmount()
        cluster.destroy()


# --------------------------------------------------------------------------------------------
# 3. a flock holder's host cut from the whole cluster for longer than the lock TTL
# --------------------------------------------------------------------------------------------

LOCKS = ("--lock-prefix=/L", "--lock-fencing", "--lock-ttl=2s", "--command-timeout=2s")


def flock_nb(path):
    return subprocess.run(["flock", "-n", str(path), "true"], stdin=subprocess.DEVNULL,
                          timeout=HANG).returncode


def lock_keys(c, name):
    got = [(md.create_revision, md.key.decode()) for _, md in c.get_prefix(f"/L/{name}/")]
    return [k for _, k in sorted(got)]


def test_lock_holder_cut_off_is_fenced_and_its_mount_locks_again_after_heal(netns, mount,
                                                                            tmp_path):
    cluster = start_cluster(netns, tmp_path)
    try:
        kv = cluster.client()
        kv.put("/job", b"0")
        kv.close()
        ha, hb = netns.add_host(), netns.add_host()
        a = mount(cluster.endpoints, name="a", host=ha, extra_args=LOCKS)
        b = mount(cluster.endpoints, name="b", host=hb, extra_args=LOCKS)
        fd = os.open(a / "job", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.pwrite(fd, b"a under the lock", 0)
        os.fsync(fd)
        c = majority_client(cluster.members)
        held = lock_keys(c, "job")
        assert len(held) == 1
        t_cut = time.monotonic()
        for member in cluster.members:  # packets dropped, not refused: a's connections hang
            ha.cut_from(member.host)
        r = subprocess.run(["flock", "-w", str(HANG), str(b / "job"), "-c",
                            f"printf 'b holds it' > {b / 'job'}"], stdin=subprocess.DEVNULL,
                           timeout=HANG + 10)
        assert r.returncode == 0
        t_b = time.monotonic()
        wait_for(lambda: "lock session lost" in a.log_text(), HANG, "the loss in a's log")
        t_log = time.monotonic()
        print(f"\nholder cut off (lock TTL 2 s): b got the lock {t_b - t_cut:.2f} s after the "
              f"cut; a's log reported the session lost by {t_log - t_cut:.2f} s")
        assert held[0] not in lock_keys(c, "job")
        # still cut off: a's fenced write fails without waiting for the network
        os.pwrite(fd, b"a's write while cut off", 0)
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO

        t_heal = time.monotonic()
        for member in cluster.members:
            ha.heal_from(member.host)
        os.pwrite(fd, b"a's late write after the heal", 0)
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EIO
        os.pwrite(fd, b"a's write at close", 0)
        fd, closing = None, fd
        with pytest.raises(OSError) as e:
            os.close(closing)  # the write-back at close is fenced too
        assert e.value.errno == errno.EIO
        assert c.get("/job")[0] == b"b holds it"
        # the same mount, without remount, locks again: exclusion with b works both ways
        holder = subprocess.Popen(["flock", str(b / "job"), "-c", "sleep 600"],
                                  stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            wait_for(lambda: len(lock_keys(c, "job")) == 1, 30, "b's new lock")
            assert flock_nb(a / "job") == 1
        finally:
            os.killpg(holder.pid, 9)
            holder.wait()
        r = subprocess.run(["flock", "-w", str(HANG), str(a / "job"), "-c",
                            f"printf 'a again' > {a / 'job'}"], stdin=subprocess.DEVNULL,
                           timeout=HANG + 10)
        assert r.returncode == 0
        print(f"a locked and wrote again {time.monotonic() - t_heal:.2f} s after the heal")
        assert c.get("/job")[0] == b"a again"
        fd = os.open(a / "job", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert flock_nb(b / "job") == 1
        os.close(fd)
        fd = None
        wait_for(lambda: flock_nb(b / "job") == 0, 30, "the lock free after a's close")
        assert "lock session lost" not in a.log_text().split("lock session lost", 1)[1]
        c.close()
    finally:
        if locals().get("fd") is not None:
            os.close(fd)
        for m in (locals().get("a"), locals().get("b")):
            if m is not None:
                m.unmount()
        cluster.destroy()
