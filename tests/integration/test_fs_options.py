"""The etcdfs command line (issue 3): a contract for docs, fstab and mount(8).

Every bad input ends with ONE clear line on stderr and a non-zero exit before anything is
mounted, in the foreground and when daemonizing. Success in daemon mode prints nothing."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from etcd_fixtures import etcdfs_binary, have_etcdfs, wait_for

pytestmark = pytest.mark.needs_etcdfs


@pytest.fixture
def binary(build_dir):
    b = etcdfs_binary(build_dir)
    if not have_etcdfs(build_dir):
        pytest.skip("etcdfs not built")
    return str(b)


@pytest.fixture
def mnt(tmp_path):
    d = tmp_path / "mnt"
    d.mkdir()
    yield d
    if os.path.ismount(d):
        subprocess.run(["fusermount3", "-u", str(d)])
        wait_for(lambda: not os.path.ismount(d), 10, "unmount")


def run(binary, *args, env=None, timeout=60):
    e = dict(os.environ)
    e.pop("ETCDCTL_ENDPOINTS", None)
    e.pop("ETCDCTL_PASSWORD", None)
    e.update(env or {})
    return subprocess.run([binary, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=e, stdin=subprocess.DEVNULL)


def assert_one_line_failure(r, mnt, *needles):
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("etcdfs: ")
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    assert not os.path.ismount(mnt)
    assert r.stdout == ""


@pytest.mark.parametrize("foreground", [False, True], ids=["daemon", "foreground"])
def test_unreachable_endpoint(binary, mnt, foreground):
    args = ["--endpoints=127.0.0.1:1", "--dial-timeout=500ms"] + (["-f"] if foreground else [])
    r = run(binary, *args, mnt)
    assert_one_line_failure(r, mnt, "127.0.0.1:1")


@pytest.mark.parametrize("args,needle", [
    (["--bogus"], "--bogus"),
    (["-o", "bogus=1"], "bogus"),
    (["--dial-timeout=5"], "duration"),
    (["--command-timeout=soon"], "duration"),
    (["-o", "umask=999"], "umask"),
    (["-o", "max_file_size=lots"], "size"),
    (["--consistency=eventually"], "consistency"),
    (["--password=secret"], "password-file"),
    (["--user=root:secret"], "password-file"),
    (["--cert=/etc/hostname"], "--key"),
], ids=lambda v: v if isinstance(v, str) else " ".join(v))
def test_bad_options(binary, mnt, args, needle):
    r = run(binary, "--endpoints=127.0.0.1:1", *args, mnt)
    assert_one_line_failure(r, mnt, needle)
    assert "secret" not in r.stderr


def test_missing_mountpoint_and_password_file(binary, tmp_path, mnt):
    r = run(binary, "--endpoints=127.0.0.1:1")
    assert_one_line_failure(r, mnt, "mount point")
    r = run(binary, "--endpoints=127.0.0.1:1", tmp_path / "nope")
    assert_one_line_failure(r, mnt, "nope")
    r = run(binary, "--user=root", f"--password-file={tmp_path / 'missing'}", mnt)
    assert_one_line_failure(r, mnt, "password file", "missing")
    r = run(binary, "--user=root", mnt)
    assert_one_line_failure(r, mnt, "password")


def test_help_and_version(binary):
    r = run(binary, "--help")
    assert r.returncode == 0
    for opt in ("--endpoints", "--prefix", "--cacert", "--cert", "--key", "--user",
                "--password-file", "--dial-timeout", "--command-timeout", "--key-file",
                "--lock-prefix", "--consistency", "allow-other", "uid", "gid", "umask",
                "max-file-size"):
        assert opt in r.stdout, opt
    r = run(binary, "--version")
    assert r.returncode == 0 and r.stdout.startswith("etcdfs ")


def test_wrong_password(binary, etcd_auth, mnt, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("definitely-wrong\n")
    r = run(binary, f"--endpoints={etcd_auth.endpoint}", "--user=root", f"--password-file={pw}",
            mnt)
    assert_one_line_failure(r, mnt, "auth")
    assert "definitely-wrong" not in r.stderr
    # ETCDCTL_PASSWORD works too
    r = run(binary, f"--endpoints={etcd_auth.endpoint}", "--user=root", mnt,
            env={"ETCDCTL_PASSWORD": "also-wrong"})
    assert_one_line_failure(r, mnt, "auth")


def test_right_password_mounts(binary, etcd_auth, mnt):
    r = run(binary, f"--endpoints={etcd_auth.endpoint}", "--user=root",
            f"--password-file={etcd_auth.password_file}", mnt)
    assert r.returncode == 0 and r.stderr == "" and r.stdout == ""
    assert os.path.ismount(mnt)
    (mnt / "authed").write_text("yes")
    assert etcd_auth.ctl("get", "--print-value-only", "/authed").strip() == "yes"


def test_permission_denied_prefix(binary, etcd_auth, mnt, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(etcd_auth.users["alice"])
    r = run(binary, f"--endpoints={etcd_auth.endpoint}", "--user=alice",
            f"--password-file={pw}", "--prefix=/", mnt)
    assert_one_line_failure(r, mnt, "permission denied")
    r = run(binary, f"--endpoints={etcd_auth.endpoint}", "--user=alice",
            f"--password-file={pw}", "--prefix=/alice", mnt)
    assert r.returncode == 0, r.stderr


def test_bad_certificate(binary, etcd_tls, mnt, tls_certs):
    r = run(binary, f"--endpoints={etcd_tls.endpoint}", f"--cacert={tls_certs.wrong_ca}",
            f"--cert={tls_certs.cert}", f"--key={tls_certs.key}", "--dial-timeout=2s", mnt)
    assert_one_line_failure(r, mnt)
    r = run(binary, f"--endpoints={etcd_tls.endpoint}", "--cacert=/etc/hostname",
            f"--cert={tls_certs.cert}", f"--key={tls_certs.key}", mnt)
    assert_one_line_failure(r, mnt, "/etc/hostname")


def test_tls_mounts(binary, etcd_tls, mnt, tls_certs):
    r = run(binary, f"--endpoints={etcd_tls.endpoint}", f"--cacert={tls_certs.ca}",
            f"--cert={tls_certs.cert}", f"--key={tls_certs.key}", mnt)
    assert r.returncode == 0, r.stderr
    (mnt / "tls").write_text("ok")
    assert etcd_tls.ctl("get", "--print-value-only", "/tls").strip() == "ok"


def test_endpoints_from_environment(binary, etcd, mnt):
    etcd.ctl("put", "/from-env", "1")
    r = run(binary, mnt, env={"ETCDCTL_ENDPOINTS": etcd.endpoint})
    assert r.returncode == 0, r.stderr
    assert (mnt / "from-env").read_text() == "1"


def daemon_pid(mnt):
    out = subprocess.run(["pgrep", "-f", f"etcdfs.* {mnt}( |$)"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, out.stdout
    return pids[0]


def test_daemon_unmounts_on_sigterm_after_flushing(binary, etcd, mnt):
    r = run(binary, f"--endpoints={etcd.endpoint}", mnt)
    assert r.returncode == 0 and r.stderr == ""
    pid = daemon_pid(mnt)
    f = open(mnt / "buffered", "w")
    f.write("kept")
    f.flush()
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20, "the daemon to exit")
    assert not os.path.ismount(mnt)
    try:
        f.close()
    except OSError:
        pass
    assert etcd.ctl("get", "--print-value-only", "/buffered").strip() == "kept"


def test_fusermount_unmount_ends_daemon(binary, etcd, mnt):
    r = run(binary, f"--endpoints={etcd.endpoint}", mnt)
    assert r.returncode == 0
    pid = daemon_pid(mnt)
    (mnt / "x").write_text("1")
    subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20, "the daemon to exit")


def test_mount_helper_and_fstab_style(binary, etcd, mnt, tmp_path):
    """`mount -t fuse.etcdfs SOURCE DIR -o endpoints=...` through mount.fuse3."""
    if not shutil.which("mount.fuse3") and not os.path.exists("/sbin/mount.fuse3"):
        pytest.skip("mount.fuse3 missing")
    # mount(8) is setuid and runs helpers with a standard PATH: put etcdfs where an install
    # would (only when nothing is there already).
    link = "/usr/local/bin/etcdfs"
    if os.path.lexists(link) and os.path.realpath(link) != os.path.realpath(binary):
        pytest.skip(f"{link} is another etcdfs")
    made = not os.path.lexists(link)
    if made:
        os.symlink(binary, link)
    try:
        check_mount_helper(etcd, mnt)
    finally:
        if made:
            os.unlink(link)


def check_mount_helper(etcd, mnt):
    etcd.ctl("put", "/via-mount", "1")
    env = dict(os.environ)
    r = subprocess.run(["mount", "-t", "fuse.etcdfs", "etcd", str(mnt), "-o",
                        f"endpoints={etcd.endpoint},prefix=/,dial_timeout=2s,_netdev,noatime"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert os.path.ismount(mnt)
    assert (mnt / "via-mount").read_text() == "1"
    with open("/proc/self/mounts") as f:
        line = [l for l in f if f" {mnt} " in l][0]
    assert line.startswith("etcd ") and " fuse.etcdfs " in line
    pid = daemon_pid(mnt)
    subprocess.run(["umount", str(mnt)], check=True)
    wait_for(lambda: not os.path.exists(f"/proc/{pid}"), 20, "the daemon to exit")
    # a bad -o through mount(8) also fails cleanly
    r = subprocess.run(["mount", "-t", "fuse.etcdfs", "etcd", str(mnt), "-o",
                        f"endpoints={etcd.endpoint},bogus"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0 and "bogus" in r.stderr and not os.path.ismount(mnt)


def test_options_take_effect(etcd, mount):
    etcd.ctl("put", "/p/q", "1")
    m = mount(etcd, prefix="/p", options=("uid=4242", "max_file_size=10"))
    assert os.stat(m.path / "q").st_uid == 4242
    with pytest.raises(OSError):
        (m.path / "big").write_bytes(b"x" * 11)
