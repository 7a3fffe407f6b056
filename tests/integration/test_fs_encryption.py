"""Client-side value encryption through the mount (--key-file; docs/encryption.md).

Every test checks etcd itself: what lands there is ciphertext bound to its key, and values that
do not open give EIO (with one log line naming the key, never the value) instead of bytes."""

import errno
import os
import subprocess
import threading

import pytest

from etcd_fixtures import MountError

pytestmark = pytest.mark.needs_etcdfs

MAGIC = b"\xe7\xcd\x01"  # envelope magic + format version
OVERHEAD = 32


def make_key_file(path, lines):
    path.write_text("".join(f"{i} {os.urandom(32).hex()}\n" for i in lines))
    path.chmod(0o600)
    return path


@pytest.fixture
def key_file(tmp_path):
    return make_key_file(tmp_path / "etcdfs.key", [1])


def test_values_are_sealed_in_etcd_and_plain_in_the_mount(etcd, kv, mount, key_file):
    m = mount(etcd, extra_args=[f"--key-file={key_file}"])
    (m.path / "conf").mkdir()
    (m.path / "conf" / "db").write_bytes(b"password=hunter2\n")
    stored = kv.get("/conf/db")[0]
    assert stored.startswith(MAGIC) and stored[3] == 1  # key id 1
    assert b"hunter2" not in stored
    assert len(stored) == len(b"password=hunter2\n") + OVERHEAD
    assert (m.path / "conf" / "db").read_bytes() == b"password=hunter2\n"
    assert os.stat(m.path / "conf" / "db").st_size == len(b"password=hunter2\n")
    out = subprocess.run(["etcdctl", f"--endpoints={etcd.endpoint}", "get", "/conf/db",
                          "--print-value-only"], capture_output=True, check=True,
                         env={**os.environ, "ETCDCTL_API": "3"}, stdin=subprocess.DEVNULL).stdout
    assert out.startswith(MAGIC) and b"hunter2" not in out  # etcdctl sees only ciphertext


def test_two_mounts_with_the_same_key_read_each_other(etcd, mount, key_file):
    a = mount(etcd, extra_args=[f"--key-file={key_file}"])
    b = mount(etcd, extra_args=[f"--key-file={key_file}"])
    (a.path / "shared").write_bytes(b"from a")
    assert (b.path / "shared").read_bytes() == b"from a"
    (b.path / "shared").write_bytes(b"from b")
    assert (a.path / "shared").read_bytes() == b"from b"


def test_rename_reseals_under_the_new_key(etcd, kv, mount, key_file):
    m = mount(etcd, extra_args=[f"--key-file={key_file}"])
    (m.path / "old").write_bytes(b"moving value")
    os.rename(m.path / "old", m.path / "new")
    assert kv.get("/old")[0] is None
    stored = kv.get("/new")[0]
    assert stored.startswith(MAGIC) and b"moving" not in stored
    assert (m.path / "new").read_bytes() == b"moving value"


def test_tampered_swapped_and_plaintext_values_give_eio(etcd, kv, mount, key_file):
    m = mount(etcd, extra_args=[f"--key-file={key_file}"])
    (m.path / "a").write_bytes(b"value of a")
    sealed = kv.get("/a")[0]
    kv.put("/copied", sealed)  # a ciphertext moved to another key
    tampered = bytearray(sealed)
    tampered[-1] ^= 1
    kv.put("/tampered", bytes(tampered))
    kv.put("/truncated", sealed[:-5])
    kv.put("/plain", b"PLAINTEXT-VALUE-42")
    for name in ("copied", "tampered", "truncated", "plain"):
        with pytest.raises(OSError) as e:
            (m.path / name).read_bytes()
        assert e.value.errno == errno.EIO, name
    # Nothing was changed in etcd by the failed reads, and the good value still reads.
    assert kv.get("/tampered")[0] == bytes(tampered)
    assert (m.path / "a").read_bytes() == b"value of a"
    log = m.log_text()
    assert "/tampered" in log and "/plain" in log
    assert "PLAINTEXT-VALUE-42" not in log and "value of a" not in log


def test_wrong_key_gives_eio(etcd, mount, key_file, tmp_path):
    a = mount(etcd, extra_args=[f"--key-file={key_file}"])
    (a.path / "secret").write_bytes(b"s3cret")
    other = make_key_file(tmp_path / "other.key", [1])
    b = mount(etcd, extra_args=[f"--key-file={other}"])
    with pytest.raises(OSError) as e:
        (b.path / "secret").read_bytes()
    assert e.value.errno == errno.EIO


def test_allow_plaintext_reads_unsealed_values(etcd, kv, mount, key_file):
    kv.put("/legacy", b"written before encryption")
    m = mount(etcd, extra_args=[f"--key-file={key_file}", "--allow-plaintext"])
    assert (m.path / "legacy").read_bytes() == b"written before encryption"
    (m.path / "legacy").write_bytes(b"rewritten")  # a write seals it
    assert kv.get("/legacy")[0].startswith(MAGIC)


def test_rotation_new_key_seals_old_key_still_opens(etcd, kv, mount, tmp_path):
    k1 = tmp_path / "k1.key"
    line1 = f"1 {os.urandom(32).hex()}\n"
    k1.write_text(line1)
    k1.chmod(0o600)
    a = mount(etcd, extra_args=[f"--key-file={k1}"])
    (a.path / "old").write_bytes(b"sealed by key 1")
    a.unmount()
    k12 = tmp_path / "k12.key"
    k12.write_text(line1 + f"2 {os.urandom(32).hex()}\n")
    k12.chmod(0o600)
    b = mount(etcd, extra_args=[f"--key-file={k12}"])
    assert (b.path / "old").read_bytes() == b"sealed by key 1"
    (b.path / "new").write_bytes(b"sealed by key 2")
    assert kv.get("/new")[0][3] == 2 and kv.get("/old")[0][3] == 1


def test_size_limit_accounts_for_the_envelope(etcd, kv, mount, key_file):
    limit = 4096
    m = mount(etcd, extra_args=[f"--key-file={key_file}", f"--max-file-size={limit}"])
    fits = limit - OVERHEAD
    (m.path / "fits").write_bytes(b"x" * fits)
    assert len(kv.get("/fits")[0]) == limit
    with pytest.raises(OSError) as e:
        (m.path / "too_big").write_bytes(b"x" * (fits + 1))
    assert e.value.errno == errno.EFBIG
    stored = kv.get("/too_big")[0]
    assert stored is None or len(stored) <= OVERHEAD  # never a cut-off value


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_key_file_readable_by_others_is_refused(etcd, mount, tmp_path, build_dir, mode):
    key = make_key_file(tmp_path / "k.key", [1])
    key.chmod(mode)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run([str(build_dir / "src" / "fs" / "etcdfs"), f"--endpoints={etcd.endpoint}",
                        f"--key-file={key}", str(mnt)], capture_output=True, text=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    assert r.returncode != 0
    assert "chmod 600" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not os.path.ismount(mnt)
    assert key.read_text().split()[1] not in r.stderr  # the key never shows


def test_key_file_missing_or_malformed_is_refused(etcd, mount, tmp_path):
    bad = tmp_path / "bad.key"
    bad.write_text("1 not-hex\n")
    bad.chmod(0o600)
    for arg in (f"--key-file={tmp_path / 'missing.key'}", f"--key-file={bad}"):
        with pytest.raises(MountError):
            mount(etcd, extra_args=[arg], timeout=5)


def test_rekey_while_writers_are_busy_loses_nothing(etcd, kv, mount, tmp_path, build_dir):
    """Values sealed by key 1; key 2 is added; `etcdfs rekey` runs while a writer keeps
    rewriting some of the files through a mount that already has key 2. Afterwards every value
    is the last one written, every value is under key 2, and a second rekey finds nothing."""
    line1 = f"1 {os.urandom(32).hex()}\n"
    k1 = tmp_path / "k1.key"
    k1.write_text(line1)
    k1.chmod(0o600)
    old = mount(etcd, extra_args=[f"--key-file={k1}"])
    (old.path / "r").mkdir()
    for i in range(300):
        (old.path / "r" / f"f{i:03d}").write_bytes(f"original {i}".encode())
    old.unmount()
    k12 = tmp_path / "k12.key"
    k12.write_text(line1 + f"2 {os.urandom(32).hex()}\n")
    k12.chmod(0o600)
    m = mount(etcd, extra_args=[f"--key-file={k12}"])
    expected = {i: f"original {i}".encode() for i in range(300)}
    stop = threading.Event()

    def writer():
        n = 0
        while not stop.is_set():
            i = (n * 7) % 300
            data = f"rewritten {i} #{n}".encode()
            (m.path / "r" / f"f{i:03d}").write_bytes(data)
            expected[i] = data
            n += 1

    t = threading.Thread(target=writer)
    t.start()
    try:
        r = subprocess.run([str(build_dir / "src" / "fs" / "etcdfs"), "rekey",
                            f"--endpoints={etcd.endpoint}", f"--key-file={k12}"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    finally:
        stop.set()
        t.join()
    assert r.returncode == 0, r.stderr
    assert " 0 could not be opened" in r.stdout, r.stdout
    for i, data in expected.items():
        assert (m.path / "r" / f"f{i:03d}").read_bytes() == data
        stored = kv.get(f"/r/f{i:03d}")[0]
        assert stored[:3] == MAGIC and stored[3] == 2, i
    again = subprocess.run([str(build_dir / "src" / "fs" / "etcdfs"), "rekey",
                            f"--endpoints={etcd.endpoint}", f"--key-file={k12}"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert again.returncode == 0 and " 0 resealed" in again.stdout, again.stdout
