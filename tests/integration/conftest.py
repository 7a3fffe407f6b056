"""pytest fixtures for etcdfs integration tests (real etcd processes, real FUSE mounts).

Fixtures (see etcd_fixtures.py for the classes):
  build_dir        session   Path: $ETCDFS_BUILD_DIR, else <repo>/build
  etcdfs_bin       session   Path of <build_dir>/src/fs/etcdfs; skips the test if not built
  mode             function  each consistency mode in turn (MODES of fs_tool_helpers), skipped
                             when the binary does not accept it; a test's own parametrize wins
  tls_certs        session   TlsCerts (CA, server, client CN=root, unrelated wrong CA)
  etcd             function  fresh single-member etcd (EtcdMember)
  etcd_cluster     function  fresh 3-member cluster (EtcdCluster)
  etcd_tls         function  single member, TLS + client-certificate auth (EtcdMember)
  etcd_auth        function  single member, RBAC auth enabled, users root and alice
  make_etcd        function  factory: make_etcd(name=None, tls=None, extra_args=(), **kw)
  make_etcd_cluster function factory: make_etcd_cluster(size=3, extra_args=(), **kw)
  mount            function  factory: mount(etcd_or_endpoints, prefix="/", options=(),
                             extra_args=(), env=None, timeout=10.0, name=None) -> Mount
  netns            function  NetnsLab from netns_hosts.py: simulated hosts (skips without
                             netns support); mount(..., host=h) runs etcdfs on host h

Environment:
  ETCDFS_BUILD_DIR          which cmake build the fixtures use
  ETCDFS_BUILD_TESTS_ONLY=1 skip tests that use nothing from the build (they need not run
                            again against a sanitizer build); a test uses the build when it
                            requests build_dir, etcdfs_bin or mount, directly or indirectly
  ETCDFS_SECOND_PASS=1      the second pass of scripts/test.sh (sanitizers, etcd 3.5): also
                            skip the long fault-injection modules in SECOND_PASS_SKIPS, which
                            the first pass runs (keeps CI under 25 minutes; docs/testing.md)
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from etcd_fixtures import (  # noqa: F401  (re-exported for tests)
    ETCD_BIN,
    EtcdCluster,
    EtcdctlError,
    EtcdError,
    EtcdMember,
    Mount,
    MountError,
    TlsCerts,
    build_dir_path,
    cleanup_all,
    etcdfs_binary,
    free_port,
    have_etcdfs,
    skip_if_no_etcdfs,
    start_etcd,
    start_etcd_cluster,
    start_mount,
    sweep_stale,
    wait_for,
)

from fs_tool_helpers import MODES, require_mode

MARKERS = (
    "slow: takes more than a few seconds (failover, lease expiry, large data)",
    "netns: needs network namespaces (ip netns); several simulated hosts",
    "needs_etcdfs: needs the etcdfs binary (skipped when it is not built)",
)


def pytest_configure(config):
    for m in MARKERS:
        config.addinivalue_line("markers", m)
    # A SIGTERMed test run still tears its fixtures down (processes, mounts, /dev/shm dirs).
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        def _term(signum, frame):
            raise KeyboardInterrupt("SIGTERM")
        signal.signal(signal.SIGTERM, _term)


def pytest_report_header(config):
    """Which etcd the fixtures start (ETCDFS_ETCD picks another one: docs/testing.md)."""
    import subprocess
    try:
        out = subprocess.run([ETCD_BIN, "--version"], capture_output=True, text=True,
                             timeout=10).stdout.splitlines()
        version = out[0] if out else "no version printed"
    except OSError as e:
        version = f"cannot run: {e}"
    return f"etcd: {ETCD_BIN} ({version})"


# Minutes of partitions, pauses, kills and 100k-entry directories: they test etcdfs's
# behaviour under faults (the same code under ASan as without), not new code paths.
SECOND_PASS_SKIPS = {
    "test_fs_history", "test_reliability_outages", "test_reliability_partition",
    "test_reliability_input", "test_operator",
}


def pytest_collection_modifyitems(config, items):
    build_only = os.environ.get("ETCDFS_BUILD_TESTS_ONLY", "") not in ("", "0")
    second_pass = os.environ.get("ETCDFS_SECOND_PASS", "") not in ("", "0")
    first_pass_only = pytest.mark.skip(
        reason="long fault-injection module: first pass only (ETCDFS_SECOND_PASS is set)")
    no_etcdfs = pytest.mark.skip(reason=f"etcdfs not built yet ({etcdfs_binary()} missing)")
    not_build = pytest.mark.skip(
        reason="uses nothing from the build; ETCDFS_BUILD_TESTS_ONLY is set")
    for item in items:
        if item.get_closest_marker("needs_etcdfs") and not have_etcdfs():
            item.add_marker(no_etcdfs)
        if build_only and "build_dir" not in getattr(item, "fixturenames", ()):
            item.add_marker(not_build)
        if second_pass and item.module.__name__.split(".")[-1] in SECOND_PASS_SKIPS:
            item.add_marker(first_pass_only)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    # Attach the tails of the daemons' logs to a failure report.
    reg = getattr(item, "funcargs", {}).get("_etcdfs_mounts")
    for m in (reg or []):
        rep.sections.append((f"etcdfs log {m.log_path}", "\n".join(
            m.log_text().splitlines()[-60:])))


@pytest.fixture(scope="session", autouse=True)
def _etcdfs_session_cleanup():
    sweep_stale()
    yield
    cleanup_all()


@pytest.fixture(scope="session")
def build_dir() -> Path:
    return build_dir_path()


@pytest.fixture(scope="session")
def etcdfs_bin(build_dir) -> Path:
    b = etcdfs_binary(build_dir)
    if not have_etcdfs(build_dir):
        pytest.skip(f"etcdfs not built yet ({b} missing)")
    return b


@pytest.fixture(params=MODES)
def mode(request, etcdfs_bin) -> str:
    require_mode(etcdfs_bin, request.param)
    return request.param


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory) -> TlsCerts:
    return TlsCerts(tmp_path_factory.mktemp("tls"))


class _MountRegistry(list):
    """Mounts of one test. Etcd fixtures unmount these before stopping etcd, so that the
    daemons see a clean shutdown; the registry's own teardown reports any daemon failure."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []

    def unmount_all(self) -> None:
        for m in self:
            if m.returncode is None and not getattr(m, "_finished", False):
                m.unmount()
                self.problems += [f"{m.path}: {p}" for p in m.problems()]
                m._reported = True


def _test_timeout(item) -> float:
    """The pytest-timeout limit of this test (marker, --timeout or ini), else 300 s."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0] or 0) or 300.0
    for get in (lambda: item.config.getoption("timeout"), lambda: item.config.getini("timeout")):
        try:
            value = float(get() or 0)
        except (ValueError, TypeError):
            continue
        if value > 0:
            return value
    return 300.0


@pytest.fixture
def _etcdfs_mounts(request):
    reg = _MountRegistry()
    # Watchdog: a hung daemon can hold a process of the test in an uninterruptible wait (a
    # FUSE request that the daemon has read ends only with its answer). pytest-timeout's
    # exception then cannot finish the test, nor can the test's own kill() of a child. Shortly
    # after the test's time limit, kill the daemons: every pending request fails, the test
    # goes on to fail, and teardown reports why.
    limit = _test_timeout(request.node)

    def fire():
        for m in list(reg):
            m.abort(f"watchdog: the test was still running {limit + 5:g}s after it started; "
                    f"etcdfs killed to free processes stuck in the mount")
    watchdog = threading.Timer(limit + 5, fire)
    watchdog.daemon = True
    watchdog.start()
    yield reg
    watchdog.cancel()
    reg.unmount_all()
    for m in reg:
        if not getattr(m, "_reported", False):
            reg.problems += [f"{m.path}: {p}" for p in m.problems()]
            m._reported = True
    if reg.problems:
        logs = "\n".join(f"--- {m.log_path} (last lines)\n" +
                         "\n".join(m.log_text().splitlines()[-80:]) for m in reg)
        pytest.fail("etcdfs daemon failure at teardown:\n  " + "\n  ".join(reg.problems) +
                    "\n" + logs, pytrace=False)


@pytest.fixture
def make_etcd(tmp_path, _etcdfs_mounts):
    started: list[EtcdMember] = []

    def factory(name=None, tls=None, extra_args=(), **kw) -> EtcdMember:
        name = name or ("etcd" if not started else f"etcd{len(started)}")
        m = start_etcd(tmp_path, name=name, tls=tls, extra_args=extra_args, **kw)
        started.append(m)
        return m

    yield factory
    _etcdfs_mounts.unmount_all()
    for m in started:
        m.destroy()


@pytest.fixture
def make_etcd_cluster(tmp_path, _etcdfs_mounts):
    started: list[EtcdCluster] = []

    def factory(size=3, **kw) -> EtcdCluster:
        kw.setdefault("name_prefix", "m" if not started else f"c{len(started)}m")
        c = start_etcd_cluster(tmp_path, size=size, **kw)
        started.append(c)
        return c

    yield factory
    _etcdfs_mounts.unmount_all()
    for c in started:
        c.destroy()


@pytest.fixture
def kv(etcd):
    """A python-etcd3 client of the `etcd` fixture's member, closed afterwards."""
    c = etcd.client()
    yield c
    c.close()


@pytest.fixture
def etcd(make_etcd) -> EtcdMember:
    return make_etcd()


@pytest.fixture
def etcd_cluster(make_etcd_cluster) -> EtcdCluster:
    return make_etcd_cluster(3)


@pytest.fixture
def etcd_tls(make_etcd, tls_certs) -> EtcdMember:
    return make_etcd(name="etcd-tls", tls=tls_certs)


@pytest.fixture
def etcd_auth(make_etcd) -> EtcdMember:
    m = make_etcd(name="etcd-auth")
    m.setup_auth()
    return m


@pytest.fixture
def mount(build_dir, tmp_path, _etcdfs_mounts):
    """Factory: mount(etcd_or_endpoints, prefix="/", options=(), extra_args=(), env=None,
    timeout=10.0, name=None, host=None) -> Mount. Skips the test if etcdfs is not built.
    With host (a netns_hosts.Host) the daemon runs in that host's network namespace; the
    mount itself is visible here as usual."""

    def factory(target, prefix="/", options=(), extra_args=(), env=None, timeout=10.0,
                name=None, host=None) -> Mount:
        binary = etcdfs_binary(build_dir)
        if not have_etcdfs(build_dir):
            pytest.skip(f"etcdfs not built yet ({binary} missing)")
        n = len(_etcdfs_mounts)
        name = name or f"mnt{n}"
        m = start_mount(target, tmp_path / name, tmp_path / f"etcdfs-{name}.log",
                        binary=binary, prefix=prefix, options=options,
                        extra_args=extra_args, env=env, timeout=timeout,
                        cmd_prefix=host.prefix() if host is not None else ())
        _etcdfs_mounts.append(m)
        return m

    return factory


@pytest.fixture
def netns(tmp_path, _etcdfs_mounts):
    """A netns_hosts.NetnsLab (bridge; lab.add_host() -> Host), destroyed at teardown after
    the test's mounts are unmounted. Skips where network namespaces cannot be created."""
    from netns_hosts import NetnsLab, netns_available  # imported lazily: root-only helpers
    if not netns_available():
        pytest.skip("network namespaces unavailable (needs root and iproute2)")
    lab = NetnsLab(tmp_path / "netns")
    yield lab
    _etcdfs_mounts.unmount_all()
    lab.destroy()
