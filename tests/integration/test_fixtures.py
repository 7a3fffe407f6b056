"""The fixtures themselves work: etcd single member, cluster, TLS, auth, mount."""

import json
import os

import pytest

from etcd_fixtures import EtcdctlError, free_port, parse_stats, wait_for


def test_free_port_distinct():
    ports = {free_port() for _ in range(50)}
    assert len(ports) == 50


def test_wait_for_returns_value_and_times_out():
    state = {"n": 0}

    def pred():
        state["n"] += 1
        return state["n"] if state["n"] >= 3 else None

    assert wait_for(pred, timeout=5, what="three polls") == 3
    with pytest.raises(TimeoutError, match="never"):
        wait_for(lambda: False, timeout=0.05, what="never")


def test_parse_stats():
    text = "lookups 12\nrange_rpcs: 3\n# comment\nbogus line here\nwatch_events=7\nname str\n"
    assert parse_stats(text) == {"lookups": 12, "range_rpcs": 3, "watch_events": 7}


def test_single_member_put_get(etcd):
    assert etcd.endpoint == etcd.endpoints
    assert etcd.endpoint.startswith("127.0.0.1:")
    etcd.ctl("put", "/fixture/a", "hello")
    assert etcd.ctl("get", "--print-value-only", "/fixture/a").strip() == "hello"
    c = etcd.client()
    try:
        value, meta = c.get("/fixture/a")
        assert value == b"hello"
        c.put("/fixture/b", b"from-python")
    finally:
        c.close()
    assert etcd.ctl("get", "--print-value-only", "/fixture/b").strip() == "from-python"
    # etcdctl put with a value on stdin
    etcd.ctl("put", "/fixture/stdin", input="piped\n")
    assert etcd.ctl("get", "--print-value-only", "/fixture/stdin").strip() == "piped"


def test_ctl_check_raises(etcd):
    with pytest.raises(EtcdctlError):
        etcd.ctl("no-such-command")
    etcd.ctl("no-such-command", check=False)


def test_single_member_restart_keeps_data(etcd):
    etcd.ctl("put", "k", "v1")
    old = etcd.pid
    etcd.stop()
    assert not etcd.running
    with pytest.raises(EtcdctlError):
        etcd.ctl("get", "k", "--command-timeout=1s", "--dial-timeout=1s")
    etcd.start()
    assert etcd.pid != old
    assert etcd.ctl("get", "--print-value-only", "k").strip() == "v1"
    etcd.kill()
    etcd.start()
    assert etcd.ctl("get", "--print-value-only", "k").strip() == "v1"


def test_two_members_are_independent(make_etcd):
    a, b = make_etcd(), make_etcd()
    assert a.endpoint != b.endpoint
    a.ctl("put", "only-a", "1")
    assert b.ctl("get", "only-a") == ""


def test_cluster_survives_one_member_killed(etcd_cluster):
    assert len(etcd_cluster.members) == 3
    assert etcd_cluster.endpoints.count(",") == 2
    assert len({m.name for m in etcd_cluster.members}) == 3
    etcd_cluster.ctl("put", "before", "1")
    leader = etcd_cluster.leader()
    assert leader in etcd_cluster.members
    # kill the leader: the remaining two elect a new one and keep serving
    leader.kill()
    assert not leader.running
    new_leader = etcd_cluster.leader()
    assert new_leader is not leader
    etcd_cluster.ctl("put", "after", "2")
    for m in etcd_cluster.running_members():
        assert m.ctl("get", "--print-value-only", "before").strip() == "1"
    c = etcd_cluster.client()
    try:
        assert c.get("after")[0] == b"2"
    finally:
        c.close()
    leader.start()
    assert leader.ctl("get", "--print-value-only", "after").strip() == "2"
    members = json.loads(etcd_cluster.ctl("member", "list", "-w", "json"))["members"]
    assert len(members) == 3


def test_cluster_member_stop_start(etcd_cluster):
    m = etcd_cluster.members[1]
    m.stop()
    etcd_cluster.ctl("put", "x", "y")
    m.start()
    wait_for(lambda: m.ctl("get", "--print-value-only", "--consistency=s", "x").strip() == "y",
             timeout=10, what="restarted member to catch up")


def test_tls_member(etcd_tls):
    for p in (etcd_tls.ca, etcd_tls.cert, etcd_tls.key, etcd_tls.wrong_ca):
        assert os.path.isfile(p)
    etcd_tls.ctl("put", "tls-key", "secret")
    assert etcd_tls.ctl("get", "--print-value-only", "tls-key").strip() == "secret"
    c = etcd_tls.client()
    try:
        assert c.get("tls-key")[0] == b"secret"
    finally:
        c.close()
    ep = f"--endpoints={etcd_tls.endpoint}"
    short = ["--dial-timeout=1s", "--command-timeout=1s"]
    # no client certificate: refused (client-cert-auth)
    r = etcd_tls.ctl_run("get", "tls-key", flags=[ep, *short, f"--cacert={etcd_tls.ca}"])
    assert r.returncode != 0
    # client certificate from an unrelated CA: refused
    r = etcd_tls.ctl_run("get", "tls-key", flags=[ep, *short, f"--cacert={etcd_tls.ca}",
                                                  f"--cert={etcd_tls.tls.wrong_cert}",
                                                  f"--key={etcd_tls.tls.wrong_key}"])
    assert r.returncode != 0
    # server verified against the wrong CA: refused
    r = etcd_tls.ctl_run("get", "tls-key", flags=[ep, *short, f"--cacert={etcd_tls.wrong_ca}",
                                                  f"--cert={etcd_tls.cert}",
                                                  f"--key={etcd_tls.key}"])
    assert r.returncode != 0
    # plaintext: refused
    r = etcd_tls.ctl_run("get", "tls-key", flags=[ep, *short])
    assert r.returncode != 0


def test_auth_member(etcd_auth):
    assert etcd_auth.user == "root"
    assert etcd_auth.password
    with open(etcd_auth.password_file) as f:
        assert f.read().strip() == etcd_auth.password
    etcd_auth.ctl("put", "/alice/x", "1")
    assert etcd_auth.ctl("get", "--print-value-only", "/alice/x").strip() == "1"
    # wrong password
    r = etcd_auth.ctl_run("get", "/alice/x", user="root", password="wrong-password")
    assert r.returncode != 0
    assert "authentication failed" in r.stderr
    # no credentials at all
    r = etcd_auth.ctl_run("get", "/alice/x", flags=[f"--endpoints={etcd_auth.endpoint}"])
    assert r.returncode != 0
    # alice may use /alice/ only
    alice = etcd_auth.users["alice"]
    assert etcd_auth.ctl_as("alice", alice, "get", "--print-value-only", "/alice/x").strip() == "1"
    with pytest.raises(EtcdctlError, match="permission denied"):
        etcd_auth.ctl_as("alice", alice, "put", "/other", "1")
    c = etcd_auth.client()
    try:
        assert c.get("/alice/x")[0] == b"1"
    finally:
        c.close()


def test_mount_skips_or_mounts(etcd, mount, build_dir):
    m = mount(etcd)  # skips cleanly while src/fs/etcdfs is not built
    assert os.path.ismount(m.path)
    assert m.proc.poll() is None
    assert isinstance(m.stats(), dict)
    etcd.ctl("put", "/hello", "world")
    wait_for(lambda: (m.path / "hello").read_bytes() == b"world", timeout=10,
             what="key visible through the mount", ignore=(OSError,))
    assert m.unmount() == 0
    assert not os.path.ismount(m.path)


def test_no_child_process_left_behind():
    # Runs after the tests above (file order): every etcd they started has been reaped.
    children = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == os.getpid():
            children.append(stat.split(")")[0])
    assert children == []
