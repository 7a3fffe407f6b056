"""Operator experience (issue 10): `etcdfs --check`, install + mount(8)/fstab, the Debian
package, the stats view, logs free of values and secrets.

Everything runs against real etcd processes, real mounts and the real tools (mount(8) through
mount.fuse3, cmake --install, cpack, dpkg-deb)."""

import errno
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from etcd_fixtures import etcdfs_binary, have_etcdfs, wait_for

pytestmark = pytest.mark.needs_etcdfs


@pytest.fixture
def binary(build_dir):
    b = etcdfs_binary(build_dir)
    if not have_etcdfs(build_dir):
        pytest.skip("etcdfs not built")
    return str(b)


def run(cmd, env=None, timeout=60, **kw):
    e = dict(os.environ)
    e.pop("ETCDCTL_ENDPOINTS", None)
    e.pop("ETCDCTL_PASSWORD", None)
    e.update(env or {})
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       timeout=timeout, env=e, stdin=subprocess.DEVNULL, **kw)
    # under a sanitizer build, a report fails the test whatever the exit status says
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in r.stderr, r.stderr
    return r


def check(binary, *args, **kw):
    return run([binary, "--check", *args], **kw)


def fail_lines(r):
    return [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]


def assert_one_diagnosis(r, *needles):
    """--check failed with exactly one FAIL line naming the problem and the fix."""
    print(r.stdout)
    assert r.returncode == 1, r.stdout + r.stderr
    fails = fail_lines(r)
    assert len(fails) == 1, r.stdout
    line = fails[0].lower()
    for n in needles:
        assert n.lower() in line, (n, fails[0])
    assert " - " in fails[0], "a failure says what to fix"
    assert "1 problem found" in r.stdout


# --------------------------------------------------------------------------------------------
# --check
# --------------------------------------------------------------------------------------------

def test_check_healthy_cluster(binary, etcd_cluster, kv_cluster_prefix="/app/"):
    c = etcd_cluster
    c.members[0].ctl("put", "/app/a", "secret-value-1")
    r = check(binary, f"--endpoints={c.endpoints}", f"--prefix={kv_cluster_prefix}",
              "--lock-prefix=/locks/")
    assert r.returncode == 0, r.stdout + r.stderr
    assert not fail_lines(r)
    out = r.stdout
    assert "all checks passed" in out
    assert re.search(r"ok: +cluster [0-9a-f]+: 3 members", out), out
    for m in c.members:
        assert f"member {m.name}" in out, out
        assert m.client_url in out, out
    assert out.count("  leader") == 1, out          # exactly one member is marked leader
    assert re.search(r"ok: +etcd 3\.\d+\.\d+, leader \S+", out), out
    assert re.search(r"ok: +database [\d.]+ \w*B \([\d.]+ \w*B in use\)", out), out
    assert re.search(r"ok: +prefix '/app/' readable \(1 key,", out), out
    assert "ok:   lock prefix '/locks/' writable (a probe key under '/locks//app/'" in out
    assert "secret-value-1" not in out
    # the probe key was deleted again
    assert c.members[0].ctl("get", "--prefix", "/locks/", "--keys-only").strip() == ""


def test_check_cluster_with_a_member_down(binary, etcd_cluster):
    """One member of three stopped: the cluster still works (exit 0), and the member is
    named in a warn: line; the others report their version and database size."""
    c = etcd_cluster
    down = c.members[2]
    down.stop()
    up = ",".join(m.endpoint for m in c.members[:2])
    r = check(binary, f"--endpoints={up}", "--dial-timeout=2s")
    assert r.returncode == 0, r.stdout
    warns = [ln for ln in r.stdout.splitlines() if ln.startswith("warn:")]
    assert len(warns) == 1 and f"member {down.name} does not answer" in warns[0], r.stdout
    assert "connection refused - start it" in warns[0], warns[0]
    for m in c.members[:2]:
        assert re.search(rf"member {m.name} .*etcd 3\.\d+\.\d+, db [\d.]+ \w*B", r.stdout), \
            r.stdout


def test_check_dead_endpoint(binary):
    r = check(binary, "--endpoints=127.0.0.1:1", "--dial-timeout=1s")
    assert_one_diagnosis(r, "cannot connect to 127.0.0.1:1", "connection refused",
                         "is etcd running", "--endpoints")


def test_check_wrong_ca(binary, etcd_tls, tls_certs):
    r = check(binary, f"--endpoints={etcd_tls.endpoint}", f"--cacert={tls_certs.wrong_ca}",
              f"--cert={tls_certs.cert}", f"--key={tls_certs.key}", "--dial-timeout=2s")
    assert_one_diagnosis(r, "tls handshake", "certificate verify failed", "--cacert")
    # the right CA passes
    r = check(binary, f"--endpoints={etcd_tls.endpoint}", *etcd_tls.etcdfs_args())
    assert r.returncode == 0, r.stdout
    assert "(TLS" in r.stdout
    # an unreadable CA file is named before any connection is tried
    r = check(binary, f"--endpoints={etcd_tls.endpoint}", "--cacert=/nonexistent/ca.pem",
              f"--cert={tls_certs.cert}", f"--key={tls_certs.key}")
    assert_one_diagnosis(r, "/nonexistent/ca.pem", "--cacert")


def test_check_wrong_password(binary, etcd_auth, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("Wr0ng-Passw0rd-xyzzy\n")
    r = check(binary, f"--endpoints={etcd_auth.endpoint}", "--user=root",
              f"--password-file={pw}")
    assert_one_diagnosis(r, "authentication failed", "--user", "password file")
    assert "xyzzy" not in r.stdout + r.stderr
    r = check(binary, f"--endpoints={etcd_auth.endpoint}", "--user=root",
              f"--password-file={etcd_auth.password_file}")
    assert r.returncode == 0, r.stdout
    assert etcd_auth.password not in r.stdout + r.stderr


def test_check_permissions_and_key_file(binary, etcd_auth, tmp_path):
    """alice may use /alice/ only: the prefix and lock prefix checks say what to grant; a key
    file with a bad mode is refused with its fix; a good one is reported without its bytes."""
    pw = tmp_path / "pw"
    pw.write_text(etcd_auth.users["alice"])
    base = [f"--endpoints={etcd_auth.endpoint}", "--user=alice", f"--password-file={pw}"]
    r = check(binary, *base, "--prefix=/alice/", "--lock-prefix=/alice/locks/")
    # alice has no cluster-wide permission for member list? (etcd allows it to any user)
    assert "ok:   prefix '/alice/' readable" in r.stdout, r.stdout
    assert "ok:   lock prefix '/alice/locks/' writable" in r.stdout, r.stdout
    r = check(binary, *base, "--prefix=/alice/", "--lock-prefix=/locks/")
    assert_one_diagnosis(r, "lock prefix '/locks/' not writable", "permission denied",
                         "grant")
    r = check(binary, *base, "--prefix=/other/", "--lock-prefix=/alice/locks/")
    assert_one_diagnosis(r, "prefix '/other/' not readable", "permission denied", "grant")
    # without --lock-prefix the default (etcdfs-locks) is probed: alice may not write there
    r = check(binary, *base, "--prefix=/alice/")
    assert_one_diagnosis(r, "lock prefix 'etcdfs-locks' not writable", "--lock-prefix")

    key = tmp_path / "key"
    key_bytes = os.urandom(32)
    key.write_bytes(key_bytes)
    os.chmod(key, 0o644)
    base += ["--lock-prefix=/alice/locks/"]
    r = check(binary, *base, "--prefix=/alice/", f"--key-file={key}")
    assert r.returncode == 1
    assert any(str(key) in ln and "600" in ln for ln in fail_lines(r)), r.stdout
    os.chmod(key, 0o600)
    r = check(binary, *base, "--prefix=/alice/", f"--key-file={key}")
    assert r.returncode == 0, r.stdout
    assert f"ok:   key file '{key}' loads" in r.stdout
    assert key_bytes.hex() not in r.stdout


def test_check_with_mountpoint_and_options_like_a_mount(binary, etcd, tmp_path):
    """--check accepts the same command line as the mount (SOURCE MOUNTPOINT -o ...)."""
    mnt = tmp_path / "m"
    mnt.mkdir()
    r = check(binary, "etcdfs", mnt, "-o", f"endpoints={etcd.endpoint},prefix=/x,_netdev")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"ok:   mount point '{mnt}' exists" in r.stdout
    assert not os.path.ismount(mnt)


# --------------------------------------------------------------------------------------------
# install, mount(8), fstab, systemd unit, Debian package
# --------------------------------------------------------------------------------------------

def daemons_of(mnt: Path) -> list[int]:
    """Pids of etcdfs processes serving mnt (found by their command line)."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"etcdfs") and str(mnt).encode() in argv:
            pids.append(int(d.name))
    return pids


def umount_and_wait(mnt: Path) -> None:
    r = run(["umount", mnt])
    assert r.returncode == 0, r.stderr
    wait_for(lambda: not daemons_of(mnt), 20, "the etcdfs daemon exits after umount")


@pytest.fixture
def installed(build_dir, tmp_path):
    """`cmake --install` into a temporary prefix. mount(8) runs helpers with the standard PATH
    only, so the installed binary is also linked as /usr/local/bin/etcdfs for the test (an
    etcdfs installed there by scripts/run.sh is moved aside meanwhile, and put back)."""
    if os.geteuid() != 0:
        pytest.skip("mount(8) of a FUSE type and /usr/local/bin need root")
    prefix = tmp_path / "prefix"
    r = run(["cmake", "--install", build_dir, "--prefix", prefix], timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    link = Path("/usr/local/bin/etcdfs")
    saved = link.with_name("etcdfs.saved-by-test_operator")
    if link.exists() or link.is_symlink():  # installed by scripts/run.sh: put back afterwards
        if saved.exists() or saved.is_symlink():
            pytest.skip(f"{saved} exists (an earlier run was interrupted): restore it by hand")
        link.rename(saved)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(prefix / "bin" / "etcdfs")
    mounts: list[Path] = []
    try:
        yield prefix, mounts
    finally:
        for m in mounts:
            if os.path.ismount(m):
                subprocess.run(["umount", "-l", str(m)])
            for pid in daemons_of(m):
                os.kill(pid, 15)
        link.unlink()
        if saved.exists() or saved.is_symlink():
            saved.rename(link)


def test_install_layout(installed):
    prefix, _ = installed
    for rel in ("bin/etcdfs", "share/man/man8/etcdfs.8", "include/etcdc.h",
                "lib/pkgconfig/etcdc.pc", "share/doc/etcdfs/srv-etcd.mount",
                "share/doc/etcdfs/operations.md"):
        assert (prefix / rel).is_file(), rel
    assert any(p.name.startswith("libetcdc.so.") for p in (prefix / "lib").iterdir())
    helper = prefix / "sbin" / "mount.fuse.etcdfs"
    assert helper.is_symlink() and os.readlink(helper).endswith("mount.fuse3")
    # the installed man page renders, and documents every option that --help lists
    if shutil.which("man"):
        r = run(["man", "-l", prefix / "share/man/man8/etcdfs.8"],
                env={"MANWIDTH": "200", "MAN_KEEP_FORMATTING": ""})
        assert r.returncode == 0, r.stderr
        text = re.sub(r".\x08", "", r.stdout).replace("\u2010", "-").replace("\u2212", "-")
        helptext = run([prefix / "bin" / "etcdfs", "--help"]).stdout
        options = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]+)", helptext))
        assert "--check" in options and "--endpoints" in options
        # mount options may be documented in their -o form (allow_other)
        missing = sorted(o for o in options
                         if o not in text and o[2:].replace("-", "_") not in text)
        assert not missing, f"options in --help but not in etcdfs(8): {missing}"


def test_mount8_and_fstab(installed, etcd, kv, tmp_path):
    prefix, mounts = installed
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounts.append(mnt)
    # mount -t fuse.etcdfs: mount(8) -> mount.fuse3 -> `etcdfs etcdfs MNT -o ...` (daemonized)
    r = run(["mount", "-t", "fuse.etcdfs", "etcdfs", mnt, "-o",
             f"endpoints={etcd.endpoint},prefix=/m8,_netdev,nofail,defaults"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert os.path.ismount(mnt)
    r = run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", mnt])
    assert r.stdout.split() == ["fuse.etcdfs", "etcdfs"], r.stdout
    (mnt / "hello").write_text("from mount(8)")
    assert kv.get("/m8/hello")[0] == b"from mount(8)"
    umount_and_wait(mnt)

    # an /etc/fstab-style line (alternative fstab file: /etc/fstab is left alone), with two
    # endpoints (the first one dead) separated by the -o comma
    fstab = tmp_path / "fstab"
    fstab.write_text(f"# test fstab\netcdfs {mnt} fuse.etcdfs "
                     f"endpoints=127.0.0.1:1,{etcd.endpoint},prefix=/fstab,_netdev,nofail,"
                     f"x-systemd.automount,noatime 0 0\n")
    kv.put("/fstab/cfg/db", "db-url")
    r = run(["mount", "-T", fstab, mnt])
    assert r.returncode == 0, r.stdout + r.stderr
    assert (mnt / "cfg" / "db").read_text() == "db-url"
    assert (mnt / ".etcdfs" / "stats").read_text().startswith("rt_")
    umount_and_wait(mnt)

    # a wrong option in fstab: mount(8) fails with etcdfs's one-line reason, nothing mounted
    fstab.write_text(f"etcdfs {mnt} fuse.etcdfs endpoints={etcd.endpoint},bogus=1 0 0\n")
    r = run(["mount", "-T", fstab, mnt])
    assert r.returncode != 0
    assert "unknown option '-o bogus=1'" in r.stderr, r.stderr
    assert not os.path.ismount(mnt)


def test_systemd_unit_example(tmp_path):
    """The example mount unit passes systemd's own verification (systemd is not running here,
    so the unit is verified, not started)."""
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    repo = Path(__file__).resolve().parents[2]
    unit = (repo / "packaging" / "systemd" / "srv-etcd.mount").read_text()
    (tmp_path / "srv-etcd.mount").write_text(unit)
    r = run(["systemd-analyze", "verify", "--man=no", tmp_path / "srv-etcd.mount"])
    assert r.returncode == 0, r.stdout + r.stderr
    opts = re.search(r"^Options=(.*)$", unit, re.M).group(1)
    assert "_netdev" in opts and "password-file=" in opts and "password=" not in \
        opts.replace("password-file=", "")
    # the verification is real: a unit whose name does not match Where= is refused
    (tmp_path / "srv-other.mount").write_text(unit)
    r = run(["systemd-analyze", "verify", "--man=no", tmp_path / "srv-other.mount"])
    assert r.returncode != 0


def test_debian_package(build_dir, tmp_path):
    """cpack -G DEB: the package holds the binary, helper, library, man page and example unit,
    and depends on Debian's library packages (computed by dpkg-shlibdeps) and fuse3."""
    if not shutil.which("dpkg-shlibdeps"):
        pytest.skip("dpkg-shlibdeps (dpkg-dev) not installed")
    out = tmp_path / "deb"
    r = run(["cpack", "-G", "DEB", "-B", out], cwd=build_dir, timeout=170)
    assert r.returncode == 0, r.stdout + r.stderr
    debs = list(out.glob("etcdfs_*.deb"))
    assert len(debs) == 1, list(out.iterdir())
    info = run(["dpkg-deb", "-f", debs[0], "Package", "Depends"]).stdout
    deps = re.search(r"^Depends: (.*)$", info, re.M).group(1)
    names = {d.strip().split()[0] for d in deps.split(",")}
    assert {"fuse3", "libfuse3-3", "libgrpc29", "libprotobuf-c1", "libssl3", "libc6"} <= names, \
        deps
    files = run(["dpkg-deb", "-c", debs[0]]).stdout
    for f in ("./usr/bin/etcdfs", "./usr/sbin/mount.fuse.etcdfs", "./usr/share/man/man8/etcdfs.8",
              "./usr/include/etcdc.h", "./usr/share/doc/etcdfs/srv-etcd.mount"):
        assert f in files, f
    assert "libetcdc.so.0" in files


# --------------------------------------------------------------------------------------------
# the stats view
# --------------------------------------------------------------------------------------------

def stats_text(m) -> str:
    return (m.path / ".etcdfs" / "stats").read_text()


def latency_table(text: str) -> dict[str, list[int]]:
    """Rows of the per-operation table: op -> [calls, errors, rtrips, mean, p50, p90, p99,
    max]."""
    rows = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) == 9 and not line.startswith("#") and all(x.isdigit() for x in f[1:]):
            rows[f[0]] = [int(x) for x in f[1:]]
    return rows


def test_stats_view_changes_as_work_is_done(etcd, kv, mount):
    m = mount(etcd, prefix="/s", extra_args=["--max-file-size=4k"])
    assert ".etcdfs" not in os.listdir(m.path)          # hidden from the listing
    text0 = stats_text(m)
    s0, lat0 = m.stats(), latency_table(text0)
    for name in ("rt_total", "op_lookup", "cache_files", "cache_bytes", "watch_active",
                 "watch_events", "watch_revision", "watch_lag_revisions", "watch_lag_ms",
                 "watch_idle_ms", "locks_held", "locks_waiting"):
        assert name in s0, (name, text0)
    assert s0["watch_active"] == 1
    assert "# per operation" in text0
    # aligned columns: every counter line has its value in the same column
    cols = {len(ln) - len(ln.split()[-1]) for ln in text0.splitlines()
            if ln and not ln.startswith(("#", " ")) and len(ln.split()) == 2}
    assert len(cols) == 1, cols

    # local work: writes, reads, a listing, errors the kernel sees (EFBIG, ENOTEMPTY)
    payload = "x" * 1000
    for i in range(20):
        (m.path / f"f{i}").write_text(payload)
    for i in range(20):
        assert (m.path / f"f{i}").read_text() == payload
    assert len(os.listdir(m.path)) == 20
    with pytest.raises(OSError) as e:
        (m.path / "big").write_text("y" * 8192)
    assert e.value.errno == errno.EFBIG
    (m.path / "d").mkdir()
    (m.path / "d" / "x").write_text("1")
    with pytest.raises(OSError):
        os.rmdir(m.path / "d")
    # remote work: the watch applies it
    rev = kv.put("/s/remote", "r").header.revision
    wait_for(lambda: m.stats().get("watch_revision", 0) >= rev, 20, "the watch applied the put")

    text1 = stats_text(m)
    s1, lat1 = m.stats(), latency_table(text1)
    assert s1["rt_total"] > s0["rt_total"]
    assert s1["op_write"] >= s0["op_write"] + 20
    assert s1["write_back"] >= s0["write_back"] + 20
    assert s1["watch_events"] > s0["watch_events"]
    assert s1["watch_lag_revisions"] >= 0 and s1["watch_lag_ms"] >= 0
    assert s1["watch_idle_ms"] >= 0
    assert s1["cache_files"] >= 20 and s1["cache_bytes"] >= 20 * len(payload), text1
    assert s1.get("errno_EFBIG", 0) >= 1, text1
    assert s1.get("errno_ENOTEMPTY", 0) >= 1, text1
    for op in ("lookup", "create", "write", "flush", "release", "open", "read"):
        assert op in lat1, (op, text1)
        calls, errors, rtrips, mean, p50, p90, p99, mx = lat1[op]
        assert calls > lat0.get(op, [0])[0], op
        assert p50 <= p90 <= p99, (op, lat1[op])
        assert mx >= mean and p99 <= 2 * max(mx, 1), (op, lat1[op])
    assert lat1["rmdir"][1] >= 1                      # the error is counted for its operation
    # round trips are attributed to the operation that made them: a warm read makes none, each
    # write-back is one (at flush or release), each open of a cached file one revalidation
    assert lat1["read"][2] == lat0.get("read", [0, 0, 0])[2]
    wb = (lat1["flush"][2] + lat1["release"][2]) - (lat0.get("flush", [0, 0, 0])[2] +
                                                    lat0.get("release", [0, 0, 0])[2])
    assert wb >= 20, (wb, text1)
    assert s1["locks_held"] == 0 and s1["locks_waiting"] == 0


def metric_families(m) -> dict:
    """.etcdfs/metrics through prometheus_client's own parser (independent of ours): family
    name -> family. The parser refuses malformed exposition text."""
    from prometheus_client.parser import text_string_to_metric_families
    text = (m.path / ".etcdfs" / "metrics").read_text()
    return {f.name: f for f in text_string_to_metric_families(text)}, text


def sample_value(families, family, name=None, **labels) -> float:
    for s in families[family].samples:
        if s.name == (name or family) and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name or family}{labels}")


def test_metrics_in_prometheus_format(etcd, kv, mount):
    """<mnt>/.etcdfs/metrics: the stats view's counters, gauges and latency histograms in the
    Prometheus text format, parsed by prometheus_client; names etcdfs_*, units in the names,
    histograms cumulative and consistent with their counts, figures moving with the work."""
    m = mount(etcd, prefix="/p", extra_args=["--max-file-size=4k"])
    assert sorted(os.listdir(m.path / ".etcdfs")) == ["at", "metrics", "stats"]
    f0, _ = metric_families(m)
    for i in range(10):
        (m.path / f"f{i}").write_text("x" * 100)
        assert (m.path / f"f{i}").read_text() == "x" * 100
    with pytest.raises(OSError):
        (m.path / "big").write_text("y" * 8192)
    families, text = metric_families(m)
    assert all(name.startswith("etcdfs_") for name in families), sorted(families)
    # prometheus_client names a counter family without its _total suffix
    for name in ("etcdfs_etcd_requests", "etcdfs_fuse_requests", "etcdfs_errors",
                 "etcdfs_cache_evictions", "etcdfs_watch_events", "etcdfs_write_back"):
        assert families[name].type == "counter", name
    for name in ("etcdfs_cache_value_bytes", "etcdfs_cache_meta_bytes", "etcdfs_cache_limit_bytes",
                 "etcdfs_resident_memory_bytes", "etcdfs_watch_active", "etcdfs_locks_held",
                 "etcdfs_watch_lag_seconds"):
        assert families[name].type == "gauge", name
    assert sample_value(families, "etcdfs_cache_limit_bytes") == 256 << 20
    assert sample_value(families, "etcdfs_resident_memory_bytes") > 1 << 20
    assert sample_value(families, "etcdfs_watch_active") == 1
    writes = sample_value(families, "etcdfs_fuse_requests", "etcdfs_fuse_requests_total",
                          op="write")
    assert writes >= 10 + sample_value(f0, "etcdfs_fuse_requests", "etcdfs_fuse_requests_total",
                                       op="write")
    assert sample_value(families, "etcdfs_errors", "etcdfs_errors_total", errno="EFBIG") >= 1
    txns = sample_value(families, "etcdfs_etcd_requests", "etcdfs_etcd_requests_total", kind="txn")
    assert txns >= 10 + sample_value(f0, "etcdfs_etcd_requests", "etcdfs_etcd_requests_total",
                                     kind="txn")
    hist = families["etcdfs_operation_duration_seconds"]
    assert hist.type == "histogram"
    by_op: dict[str, list] = {}
    for s in hist.samples:
        by_op.setdefault(s.labels["op"], []).append(s)
    assert {"lookup", "write", "flush", "read", "open"} <= set(by_op), sorted(by_op)
    for op, samples in by_op.items():
        buckets = [(float(s.labels["le"]), s.value) for s in samples if s.name.endswith("_bucket")]
        count = next(s.value for s in samples if s.name.endswith("_count"))
        total = next(s.value for s in samples if s.name.endswith("_sum"))
        les = [le for le, _ in buckets]
        assert les == sorted(les) and les[-1] == float("inf"), (op, les)
        values = [v for _, v in buckets]
        assert values == sorted(values), (op, values)  # cumulative
        assert values[-1] == count > 0 and total > 0, (op, count, total)
    # every sample follows its own family's TYPE line, the families one after the other
    current, kinds = None, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, current, kinds[current] = line.split()
        elif not line.startswith("#"):
            name = line.split("{")[0].split()[0]
            base = name
            if kinds.get(current) == "histogram":
                for suffix in ("_bucket", "_sum", "_count"):
                    if name.endswith(suffix):
                        base = name[:-len(suffix)]
            assert base == current, (line, current)
    print(f"\n{len(families)} families, {len(text.splitlines())} lines")


# --------------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------------

def test_debug_log_has_keys_never_values_or_secrets(etcd_auth, mount, tmp_path):
    """-d -f logs every operation to stderr: the keys appear, never a value, the password or
    encryption key bytes; a failure is one line with the key and the errno."""
    key = tmp_path / "key"
    key_bytes = os.urandom(32)
    key.write_bytes(key_bytes)
    os.chmod(key, 0o600)
    m = mount(etcd_auth, prefix="/logs",
              extra_args=["-d", f"--key-file={key}", *etcd_auth.etcdfs_args()])
    value = "VALUE-" + os.urandom(8).hex()
    (m.path / "cfg").mkdir()
    (m.path / "cfg" / "visible-key-name").write_text(value)
    assert (m.path / "cfg" / "visible-key-name").read_text() == value
    os.rename(m.path / "cfg" / "visible-key-name", m.path / "cfg" / "renamed-key")
    # an error path: a value that does not open (written around etcdfs, unsealed)
    etcd_auth.ctl("put", "/logs/cfg/plain-one", "PLAINVALUE-" + value)
    with pytest.raises(OSError) as e:
        (m.path / "cfg" / "plain-one").read_text()
    assert e.value.errno == errno.EIO
    m.unmount()
    log = m.log_text()
    assert "visible-key-name" in log and "renamed-key" in log, log[-3000:]
    assert value not in log
    assert etcd_auth.password not in log
    assert key_bytes.hex() not in log and key_bytes.hex().upper() not in log
    # the failed read is one line naming the key and the errno
    lines = [ln for ln in log.splitlines() if "plain-one" in ln and "debug" not in ln.lower()]
    assert any("/logs/cfg/plain-one" in ln and "EIO" in ln and "Input/output error" in ln
               for ln in lines), "\n".join(lines)


# --------------------------------------------------------------------------------------------
# progress of long work: a progress line on a terminal, quiet otherwise
# --------------------------------------------------------------------------------------------

def drain_pty(master) -> bytes:
    """Everything written to a pty whose writers are all gone (the read ends with EIO)."""
    out = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            return out
        if not chunk:
            return out
        out += chunk


def test_rekey_progress_only_on_a_terminal(binary, etcd, kv, tmp_path):
    import pty
    key = tmp_path / "key"
    key.write_text("1 " + os.urandom(32).hex() + "\n")
    os.chmod(key, 0o600)
    for i in range(50):
        kv.put(f"/rk/k{i}", "v")
    args = [binary, "rekey", f"--endpoints={etcd.endpoint}", "--prefix=/rk",
            f"--key-file={key}", "--allow-plaintext"]
    # not a terminal: the summary line only
    r = run(args)
    assert r.returncode == 0, r.stderr
    assert "\r" not in r.stderr and "keys scanned" not in r.stderr
    assert "50 keys scanned, 50 resealed" in r.stdout
    # a terminal on stderr: a progress line, rewritten in place (\r), cleared at the end
    key.write_text(key.read_text() + "2 " + os.urandom(32).hex() + "\n")
    master, slave = pty.openpty()
    try:
        p = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=slave,
                           stdin=subprocess.DEVNULL, text=True, timeout=60)
        os.close(slave)
        slave = -1
        out = drain_pty(master)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0
    assert "50 keys scanned, 50 resealed" in p.stdout
    tty = out.decode(errors="replace")
    assert "\rrekey: " in tty and "keys scanned" in tty, repr(tty)
    assert tty.endswith("\r\x1b[K") or "\x1b[K" in tty


def _put_many(kv, prefix, n):
    for start in range(0, n, 100):
        kv.transaction(compare=[], failure=[], success=[
            kv.transactions.put(f"{prefix}k{i:05d}", "v") for i in range(start, min(n, start + 100))])


def test_first_listing_of_a_huge_directory_shows_progress_on_a_terminal(binary, etcd, kv,
                                                                        mount, tmp_path):
    import pty
    _put_many(kv, "/huge/", 3000)  # > 8 pages of 256: long enough to report
    mnt = tmp_path / "tty-mnt"
    mnt.mkdir()
    master, slave = pty.openpty()
    p = subprocess.Popen([str(binary), f"--endpoints={etcd.endpoint}", "-f", str(mnt)],
                         stdout=subprocess.DEVNULL, stderr=slave, stdin=subprocess.DEVNULL)
    os.close(slave)
    out = b""
    try:
        wait_for(lambda: os.path.ismount(mnt), 20, "the mount")
        assert len(os.listdir(mnt / "huge")) == 3000
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False)
        p.wait(timeout=30)
        out = drain_pty(master)
        os.close(master)
    tty = out.decode(errors="replace")
    assert "\retcdfs: listing /huge/: " in tty and "3000 entries, done" in tty, repr(tty[-500:])
    # not a terminal (the fixture logs to a file): no progress lines
    m = mount(etcd)
    assert len(os.listdir(m.path / "huge")) == 3000
    m.unmount()
    assert "entries so far" not in m.log_text()


def test_log_levels(etcd, kv, mount, binary, tmp_path):
    """--log-level filters by priority; warnings are tagged; debug works without -d."""
    m = mount(etcd, prefix="/lv", extra_args=["--log-level=warning"])
    (m.path / "a").write_text("1")
    m.unmount()
    log = m.log_text()
    assert "mounted" not in log and "unmounting" not in log, log      # info is below warning
    m = mount(etcd, prefix="/lv", extra_args=["--log-level=debug"], name="dbg")
    assert (m.path / "a").read_text() == "1"
    m.unmount()
    log = m.log_text()
    assert "etcdfs: mounted" in log and re.search(r"etcdfs: open \d+ flags", log), log
    # a warning carries its level
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    kv.put("/lv/plain", "p")
    m = mount(etcd, prefix="/lv", extra_args=[f"--key-file={key}"], name="warn")
    with pytest.raises(OSError):
        (m.path / "plain").read_text()
    m.unmount()
    assert re.search(r"^etcdfs: warning: get /lv/plain: .*EIO", m.log_text(), re.M), \
        m.log_text()
    r = run([binary, "--log-level=loud", tmp_path])
    assert r.returncode == 1 and "bad --log-level 'loud'" in r.stderr


def test_stats_view_lock_gauges(etcd, mount):
    """locks_held / locks_waiting follow flock(2) on the mount: one held, one waiting from
    another mount of the same cluster, then none."""
    import fcntl
    a = mount(etcd, prefix="/lk")
    b = mount(etcd, prefix="/lk", name="other")
    (a.path / "f").write_text("x")
    fa = open(a.path / "f")
    fcntl.flock(fa, fcntl.LOCK_EX)
    assert a.stats()["locks_held"] == 1 and a.stats()["locks_waiting"] == 0
    # a blocking flock on the other mount waits for it
    waiter = subprocess.Popen(["flock", "-x", str(b.path / "f"), "true"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: b.stats().get("locks_waiting") == 1, 20, "the other mount waits")
        assert b.stats()["locks_held"] == 0
        fcntl.flock(fa, fcntl.LOCK_UN)
        assert waiter.wait(timeout=30) == 0, waiter.stderr.read()
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
        fa.close()
    wait_for(lambda: b.stats().get("locks_waiting") == 0 and b.stats().get("locks_held") == 0,
             20, "the waiter got the lock and released it")
    assert a.stats()["locks_held"] == 0
    assert "flock" in latency_table(stats_text(b))
