"""Several "hosts" on one machine: network namespaces joined to a bridge of our own.

Each host is a network namespace with one veth link to a bridge in the root namespace; the
bridge has the address .1 of a /24 made up for this lab, each host .10, .11, ... Only the
network namespace is entered (nsenter --net), never a mount namespace, so a FUSE mount made
by an etcdfs daemon running "on" a host is visible to the test in the root namespace, while
all of that daemon's traffic to etcd crosses its own namespace's link. Cutting a host's link
(`host.cut()`) makes it unreachable, as when a machine drops off the network;
`host.cut_from(other)` drops only the packets between two hosts, silently (a partition).

Traffic stays on addresses of namespaces this module created; everything is removed at
`destroy()` (the fixture calls it at teardown, and an atexit hook as a last resort).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Sequence

from etcd_fixtures import EtcdCluster, EtcdError, EtcdMember, make_data_root

IP = shutil.which("ip") or "/usr/sbin/ip"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
# A locally administered unicast address that no lab host has: frames sent to it go nowhere.
NOWHERE_MAC = "02:00:00:de:ad:01"

_labs_lock = threading.Lock()
_labs: list["NetnsLab"] = []


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([IP, *args], capture_output=True, text=True, check=check,
                          stdin=subprocess.DEVNULL)


def netns_available() -> bool:
    """Whether this process may create network namespaces (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0 or not os.path.exists(IP) or not os.path.exists(NSENTER):
        return False
    name = f"efsprobe{os.getpid()}"
    ok = _ip("netns", "add", name, check=False).returncode == 0
    if ok:
        _ip("netns", "del", name, check=False)
    return ok


class Host:
    """One network namespace with an address on the lab's bridge."""

    def __init__(self, lab: "NetnsLab", index: int):
        self.lab = lab
        self.name = f"{lab.tag}h{index}"
        self.veth = f"{lab.tag}v{index}"
        self.ip = f"{lab.subnet}.{10 + index}"
        _ip("netns", "add", self.name)
        _ip("link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.name)
        _ip("link", "set", self.veth, "master", lab.bridge, "up")
        _ip("-n", self.name, "addr", "add", f"{self.ip}/24", "dev", "eth0")
        _ip("-n", self.name, "link", "set", "eth0", "up")
        _ip("-n", self.name, "link", "set", "lo", "up")

    def prefix(self) -> list[str]:
        """Command prefix that runs a program in this host's network namespace only."""
        return [NSENTER, f"--net=/run/netns/{self.name}", "--"]

    def run(self, cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.prefix() + list(cmd), **kw)

    def wrapper(self, binary: Path | str) -> Path:
        """An executable script that runs `binary` on this host (for APIs that take a path)."""
        path = self.lab.root / f"{self.name}-{Path(binary).name}"
        path.write_text(f"#!/bin/sh\nexec {' '.join(self.prefix())} {binary} \"$@\"\n")
        path.chmod(0o755)
        return path

    def cut(self) -> None:
        """Take the host off the network (its link goes down)."""
        _ip("link", "set", self.veth, "down")

    def heal(self) -> None:
        _ip("link", "set", self.veth, "up")

    def cut_from(self, other: "Host") -> None:
        """Drop every packet between this host and `other` only, silently: each side sends to
        a hardware address no host has (a permanent neighbour entry, which no ARP answer
        overrides), so nothing is refused or reported unreachable and open TCP connections
        hang, as over a broken link. Both keep talking to everyone else."""
        for a, b in ((self, other), (other, self)):
            _ip("-n", a.name, "neigh", "replace", b.ip, "lladdr", NOWHERE_MAC, "dev", "eth0",
                "nud", "permanent")

    def heal_from(self, other: "Host") -> None:
        for a, b in ((self, other), (other, self)):
            _ip("-n", a.name, "neigh", "del", b.ip, "dev", "eth0", check=False)

    def destroy(self) -> None:
        _ip("link", "del", self.veth, check=False)
        _ip("netns", "del", self.name, check=False)

    def __repr__(self) -> str:
        return f"<Host {self.name} {self.ip}>"


class NetnsLab:
    """A bridge plus hosts. `lab.add_host()` -> Host; `lab.destroy()` removes everything."""

    def __init__(self, root: Path):
        # Names must be short (interface names are at most 15 bytes) and unique per process.
        n = os.getpid() % 200 + 20
        self.tag = f"efs{os.getpid() % 100000}"
        self.subnet = f"10.199.{n}"
        self.bridge = f"{self.tag}br"
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.hosts: list[Host] = []
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        with _labs_lock:
            _labs.append(self)

    def add_host(self) -> Host:
        host = Host(self, len(self.hosts))
        self.hosts.append(host)
        return host

    def destroy(self) -> None:
        for h in self.hosts:
            h.destroy()
        self.hosts.clear()
        _ip("link", "del", self.bridge, check=False)
        with _labs_lock:
            if self in _labs:
                _labs.remove(self)


@atexit.register
def _destroy_all() -> None:
    with _labs_lock:
        labs = list(_labs)
    for lab in labs:
        lab.destroy()


class NetnsEtcdMember(EtcdMember):
    """An etcd member that runs on a lab host and listens on the host's address."""

    def __init__(self, name: str, host: Host, **kw):
        self.host = host
        super().__init__(name, **kw)

    def set_ports(self, client_port: int, peer_port: int) -> None:
        super().set_ports(client_port, peer_port)
        ip = self.host.ip
        scheme = "https" if self.tls else "http"
        self.endpoint = self.endpoints = f"{ip}:{client_port}"
        self.client_url = f"{scheme}://{ip}:{client_port}"
        self.peer_url = f"http://{ip}:{peer_port}"

    def command(self) -> list[str]:
        return self.host.prefix() + super().command()

    def client(self, **kw):
        kw.setdefault("host", self.host.ip)  # it listens on its host's address, not loopback
        return super().client(**kw)


def start_netns_cluster(lab: NetnsLab, log_dir: Path, size: int = 3,
                        heartbeat_ms: int = 50, election_ms: int = 500) -> EtcdCluster:
    """A `size`-member cluster, each member on a host of its own."""
    data_root = make_data_root("etcdfs-netns-")
    token = "etcdfs-netns-" + os.urandom(4).hex()
    hosts = [lab.add_host() for _ in range(size)]
    members = [NetnsEtcdMember(f"n{i}", hosts[i], data_dir=data_root / f"n{i}",
                               log_dir=log_dir, client_port=2379, peer_port=2380,
                               heartbeat_ms=heartbeat_ms, election_ms=election_ms,
                               cluster_token=token)
               for i in range(size)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    for m in members:
        m.initial_cluster = initial
    cluster = EtcdCluster(members, data_root)
    try:
        return cluster.start()
    except EtcdError:
        cluster.kill()
        raise
