"""libetcdc cross-checked with independent etcd clients.

What the library writes, etcdctl and Python etcd3 read back byte for byte, and the other way
round, binary keys and values (NUL bytes, 0x80-0xff) included. The library side is
tests/c/etcdc_cli (a thin command-line front end over libetcdc, built with the C tests); its
--hex mode carries binary data through argv/stdout.

Run: /usr/bin/python3 -m pytest tests/integration/test_library_interop.py
(ETCDFS_BUILD_DIR selects the cmake build that holds tests/c/etcdc_cli).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess

import pytest

ALL_BYTES = bytes(range(256))
BIN_KEY = b"interop/bin/\x00\x01key\x80\xff\x00end"


@pytest.fixture
def cli(build_dir, etcd):
    """Runs etcdc_cli against the test's etcd; returns (returncode, stdout bytes, stderr)."""
    path = build_dir / "tests" / "c" / "etcdc_cli"
    if not path.exists():
        pytest.skip(f"{path} is not built")

    def run(*args: str, check: bool = True):
        env = dict(os.environ, ETCD_ENDPOINTS=etcd.endpoint)
        r = subprocess.run([str(path), *args], env=env, capture_output=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"etcdc_cli {args}: exit {r.returncode}: {r.stderr.decode()}")
        return r.returncode, r.stdout, r.stderr.decode()

    return run


def ctl_json_value(etcd, key: bytes) -> bytes | None:
    """The exact bytes of key's value as etcdctl sees them (JSON output is base64)."""
    out = etcd.ctl("get", key.decode("latin-1"), "-w", "json")
    kvs = json.loads(out).get("kvs") or []
    return base64.b64decode(kvs[0]["value"]) if kvs else None


def test_library_writes_etcdctl_and_etcd3_read(cli, etcd):
    rc, out, _ = cli("put", "interop/a", "hello from C")
    assert rc == 0 and int(out) > 0
    assert etcd.ctl("get", "interop/a", "--print-value-only").strip() == "hello from C"
    value, meta = etcd.client().get("interop/a")
    assert value == b"hello from C"
    assert meta.mod_revision == int(out)  # the revision the library reported


def test_etcdctl_and_etcd3_write_library_reads(cli, etcd):
    etcd.ctl("put", "interop/ctl", "from etcdctl")
    etcd.client().put("interop/py", b"from etcd3")
    assert cli("get", "interop/ctl")[1] == b"from etcdctl"
    assert cli("get", "interop/py")[1] == b"from etcd3"
    rc, _, err = cli("get", "interop/missing", check=False)
    assert rc == 3 and "not found" in err


def test_binary_value_library_to_others(cli, etcd):
    cli("--hex", "put", b"interop/binval".hex(), ALL_BYTES.hex())
    value, _ = etcd.client().get("interop/binval")
    assert value == ALL_BYTES
    assert ctl_json_value(etcd, b"interop/binval") == ALL_BYTES


def test_binary_value_others_to_library(cli, etcd):
    etcd.client().put("interop/binval2", ALL_BYTES[::-1])
    assert bytes.fromhex(cli("--hex", "get", b"interop/binval2".hex())[1].decode()) == \
        ALL_BYTES[::-1]
    # raw mode writes the value bytes unchanged to stdout
    assert cli("get", "interop/binval2")[1] == ALL_BYTES[::-1]


def test_binary_key_with_nul_both_ways(cli, etcd):
    client = etcd.client()
    cli("--hex", "put", BIN_KEY.hex(), b"c-side\x00value".hex())
    value, meta = client.get(BIN_KEY)
    assert value == b"c-side\x00value"
    assert meta.key == BIN_KEY
    # the key cut at its first NUL is another (absent) key
    assert client.get(BIN_KEY.split(b"\x00")[0])[0] is None

    client.put(BIN_KEY + b"2", b"py-side")
    rc, out, _ = cli("--hex", "get-prefix", b"interop/bin/".hex())
    rows = [line.split("\t") for line in out.decode().splitlines()]
    got = {bytes.fromhex(k): bytes.fromhex(v) for k, v in rows}
    assert got == {BIN_KEY: b"c-side\x00value", BIN_KEY + b"2": b"py-side"}


def test_prefix_listing_matches_etcd3(cli, etcd):
    client = etcd.client()
    for i in range(50):
        client.put(f"interop/list/{i:03d}", f"v{i}")
    client.put("interop/listx", "outside")  # shares the textual prefix without the slash
    rc, out, _ = cli("get-prefix", "interop/list/")
    lines = out.decode().splitlines()
    assert lines == [f"interop/list/{i:03d}\tv{i}" for i in range(50)]
    theirs = sorted(m.key.decode() for _, m in client.get_prefix("interop/list/"))
    assert [line.split("\t")[0] for line in lines] == theirs
    assert cli("del-prefix", "interop/list/")[1].strip() == b"50"
    assert list(client.get_prefix("interop/list/")) == []
    assert client.get("interop/listx")[0] == b"outside"


def test_guarded_writes_see_other_clients(cli, etcd):
    client = etcd.client()
    client.put("interop/once", "theirs")
    rc, _, err = cli("put-if-absent", "interop/once", "mine", check=False)
    assert rc == 4 and "compare failed" in err
    assert client.get("interop/once")[0] == b"theirs"

    client.put("interop/cas", "1")
    assert cli("cas", "interop/cas", "1", "2")[0] == 0
    assert client.get("interop/cas")[0] == b"2"
    client.put("interop/cas", "3")  # another writer moves on
    rc, _, _ = cli("cas", "interop/cas", "2", "4", check=False)
    assert rc == 4
    assert etcd.ctl("get", "interop/cas", "--print-value-only").strip() == "3"


def test_move_is_one_transaction(cli, etcd):
    client = etcd.client()
    client.put("interop/from", b"moving\x00data")
    rev_before = int(cli("revision")[1])
    rc, out, _ = cli("move", "interop/from", "interop/to")
    rev = int(out)
    assert rev == rev_before + 1  # put + delete in a single revision
    assert client.get("interop/from")[0] is None
    value, meta = client.get("interop/to")
    assert value == b"moving\x00data" and meta.mod_revision == rev
    # etcdctl's view of the history: the old key was deleted at the same revision
    out = etcd.ctl("get", "interop/from", f"--rev={rev - 1}", "-w", "json")
    assert json.loads(out)["kvs"][0]["mod_revision"] < rev


def test_history_written_by_etcd3_read_at_revision(cli, etcd):
    client = etcd.client()
    client.put("interop/hist", "v1")
    r1 = client.get("interop/hist")[1].mod_revision
    client.put("interop/hist", "v2")
    assert cli("get-rev", "interop/hist", str(r1))[1] == b"v1"
    assert cli("get", "interop/hist")[1] == b"v2"
    etcd.ctl("compact", str(r1 + 1))
    rc, _, err = cli("get-rev", "interop/hist", str(r1), check=False)
    assert rc == 1 and "compacted" in err


def test_library_delete_seen_by_etcdctl(cli, etcd):
    etcd.ctl("put", "interop/del", "x")
    assert cli("del", "interop/del")[1].strip() == b"1"
    assert cli("del", "interop/del")[1].strip() == b"0"
    assert etcd.ctl("get", "interop/del") == ""
