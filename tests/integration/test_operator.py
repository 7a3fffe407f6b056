"""Operator experience (issue 10): `etcdfs --check`, install + mount(8)/fstab, the Debian
package, the stats view, logs free of values and secrets.

Everything runs against real etcd processes, real mounts and the real tools (mount(8) through
mount.fuse3, cmake --install, cpack, dpkg-deb)."""

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
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL, **kw)


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
    assert "ok:   lock prefix '/locks/' writable" in out
    assert "secret-value-1" not in out
    # the probe key was deleted again
    assert c.members[0].ctl("get", "--prefix", "/locks/", "--keys-only").strip() == ""


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
    r = check(binary, *base, "--prefix=/other/")
    assert_one_diagnosis(r, "prefix '/other/' not readable", "permission denied", "grant")

    key = tmp_path / "key"
    key_bytes = os.urandom(32)
    key.write_bytes(key_bytes)
    os.chmod(key, 0o644)
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
