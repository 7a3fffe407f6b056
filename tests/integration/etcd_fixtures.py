"""Process helpers for the etcdfs integration tests.

Everything here starts real processes: etcd members (single, 3-member cluster, TLS with client
certificates, RBAC auth) and etcdfs mounts. The pytest fixtures in conftest.py are thin wrappers
around these classes; tests may also import the helpers directly:

    from etcd_fixtures import free_port, wait_for, skip_if_no_etcdfs

Rules kept by this module:
- every process it starts is registered and killed at fixture teardown, by the session
  finalizer and, as a last resort, by an atexit hook; children also get PR_SET_PDEATHSIG so
  that they die with the test runner even when it is SIGKILLed;
- etcd data directories live under /dev/shm and are removed at teardown; logs live in the
  test's tmp_path so that they survive for post-mortem reading;
- nothing here asserts on wall-clock durations: timeouts only bound waits for liveness.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, TypeVar

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
# ETCDFS_ETCD: another etcd binary to test against (scripts/fetch-etcd.sh fetches etcd 3.5).
ETCD_BIN = os.environ.get("ETCDFS_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
ETCDCTL_BIN = shutil.which("etcdctl") or "/usr/bin/etcdctl"
FUSERMOUNT = shutil.which("fusermount3") or "/usr/bin/fusermount3"

# Lines that make a daemon's log a failure whatever its exit status.
SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------

_port_lock = threading.Lock()
_ports_handed_out: set[int] = set()
_sysrandom = random.SystemRandom()
# Below Linux's ephemeral range (32768-60999), so that outgoing connections never take a port
# between free_port() returning it and the server binding it.
_PORT_RANGE = (20000, 32000)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that is free now and was not handed out before in this process.

    Ports are drawn at random from 20000-31999 (outside the kernel's ephemeral range). Another
    process may still take the port before it is used; the etcd helpers retry with new ports
    when a member fails with "address already in use".
    """
    with _port_lock:
        for _ in range(2000):
            port = _sysrandom.randrange(*_PORT_RANGE)
            if port in _ports_handed_out:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
            _ports_handed_out.add(port)
            return port
    raise RuntimeError("free_port: no free port found in %d-%d" % _PORT_RANGE)


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "condition",
    interval: float = 0.01,
    ignore: tuple = (),
) -> T:
    """Poll `predicate` until it returns a truthy value and return that value.

    Raises TimeoutError naming `what` after `timeout` seconds. Exceptions whose type is in
    `ignore` (e.g. `(OSError,)`) count as "not yet"; any other exception propagates at once.
    The poll interval starts at `interval` and backs off to 0.2 s.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    last_exc: Optional[BaseException] = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ignore as exc:  # type: ignore[misc]
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = f"timed out after {timeout:g}s waiting for {what}"
            if last_exc is not None:
                msg += f" (last error: {last_exc!r})"
            raise TimeoutError(msg)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


def tail(path: Path | str, lines: int = 40) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    return "\n".join(text.splitlines()[-lines:])


def build_dir_path() -> Path:
    """The cmake build dir the tests use: $ETCDFS_BUILD_DIR, else <repo>/build."""
    env = os.environ.get("ETCDFS_BUILD_DIR")
    if env:
        p = Path(env)
        return (p if p.is_absolute() else Path.cwd() / p).resolve()
    return REPO_ROOT / "build"


def etcdfs_binary(build_dir: Path | str | None = None) -> Path:
    return Path(build_dir or build_dir_path()) / "src" / "fs" / "etcdfs"


def have_etcdfs(build_dir: Path | str | None = None) -> bool:
    b = etcdfs_binary(build_dir)
    return b.is_file() and os.access(b, os.X_OK)


# Decorator / pytestmark: skip when <build_dir>/src/fs/etcdfs has not been built yet.
skip_if_no_etcdfs = pytest.mark.skipif(
    not have_etcdfs(), reason=f"etcdfs not built yet ({etcdfs_binary()} missing)"
)


# --------------------------------------------------------------------------------------------
# process registry: nothing survives the session
# --------------------------------------------------------------------------------------------

_registry_lock = threading.Lock()
_live_procs: dict[int, subprocess.Popen] = {}
_live_dirs: set[str] = set()
_live_mounts: set[str] = set()

# Children die with the test runner, even when it is SIGKILLed (atexit does not run then):
# `setpriv --pdeathsig KILL` sets PR_SET_PDEATHSIG and execs the command. Not preexec_fn: that
# makes Python fork() instead of vfork(), which runs pthread_atfork handlers, and gRPC's
# (python-etcd3 loads grpcio) can deadlock there joining its executor thread (seen: a test
# hung for good in __run_prefork_handlers after using etcd.client()).
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
_PDEATHSIG = [SETPRIV, "--pdeathsig", "KILL", "--"] if os.path.exists(SETPRIV) else []

# The same hazard for any fork() a test makes after gRPC started threads: turn gRPC's fork
# support (whose prefork handler joins threads) off in this process, before grpc is imported,
# and keep the variable away from the children (etcdfs links gRPC too).
_GRPC_FORK_ENV = os.environ.get("GRPC_ENABLE_FORK_SUPPORT")
if _GRPC_FORK_ENV is None:
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"


def child_env(env: Optional[dict] = None) -> dict:
    """os.environ (or `env`) as children should see it."""
    out = dict(os.environ if env is None else env)
    if _GRPC_FORK_ENV is None:
        out.pop("GRPC_ENABLE_FORK_SUPPORT", None)
    return out


def spawn(cmd: Sequence[str], log_path: Path | str, env: Optional[dict] = None,
          cwd: Optional[str] = None) -> subprocess.Popen:
    """Start `cmd` in its own session with stdout+stderr appended to `log_path`, registered
    for cleanup, killed if the test runner dies. Use this for any long-running helper process
    a test starts. proc.pid is the command's own pid (setpriv execs it)."""
    log = open(log_path, "ab", buffering=0)
    try:
        proc = subprocess.Popen(
            [*_PDEATHSIG, *[str(c) for c in cmd]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        log.close()
    with _registry_lock:
        _live_procs[proc.pid] = proc
    return proc


def reap(proc: Optional[subprocess.Popen], sig: int = signal.SIGTERM,
         timeout: float = 10.0) -> Optional[int]:
    """Send `sig`, wait up to `timeout`, then SIGKILL; return the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with _registry_lock:
        _live_procs.pop(proc.pid, None)
    return proc.returncode


def _register_dir(path: str) -> None:
    with _registry_lock:
        _live_dirs.add(path)


def _remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
    with _registry_lock:
        _live_dirs.discard(path)


def make_data_root(prefix: str = "etcdfs-test-") -> Path:
    """A fresh directory on tmpfs (/dev/shm when usable), removed by cleanup_all()."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    # The pid in the name lets sweep_stale() recognise leftovers of a runner that was killed.
    d = tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=base)
    _register_dir(d)
    return Path(d)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale() -> None:
    """Remove what an earlier test run that was SIGKILLed left behind: /dev/shm data dirs of
    dead runners (their etcd children died with them: PDEATHSIG) and dead etcdfs mounts
    (ENOTCONN) under pytest's temp root. Live resources of concurrent runs are not touched."""
    for d in Path("/dev/shm").glob("etcdfs-*-*-*"):
        m = re.match(r"etcdfs-[a-z]+-(\d+)-", d.name)
        if m and int(m.group(1)) != os.getpid() and not _pid_alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)
    root = os.path.join(tempfile.gettempdir(), "pytest-of-")
    try:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        fields = line.split(" ")
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        fstype = fields[fields.index("-") + 1] if "-" in fields else ""
        if not (mp.startswith(root) and fstype.startswith("fuse")):
            continue
        try:
            os.stat(mp)
        except OSError as exc:
            if exc.errno == errno.ENOTCONN:
                _force_unmount(mp)


def is_mountpoint(path: Path | str) -> bool:
    """True if something is mounted on `path`, also when it is a dead FUSE mount whose daemon
    is gone (os.path.ismount() says False then: stat fails with ENOTCONN)."""
    target = os.path.abspath(path)
    try:
        with open("/proc/self/mountinfo") as f:
            for line in f:
                mp = line.split(" ", 5)[4]
                mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp)
                if mp == target:
                    return True
    except OSError:
        return os.path.ismount(target)
    return False


def _force_unmount(path: str) -> None:
    for args in (["-u"], ["-uz"]):
        r = subprocess.run([FUSERMOUNT, *args, path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if r.returncode == 0 or not is_mountpoint(path):
            return
    subprocess.run(["umount", "-l", path], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def cleanup_all() -> None:
    """Safety net: unmount every mount, kill every process, remove every data dir we made."""
    with _registry_lock:
        mounts = list(_live_mounts)
        procs = list(_live_procs.values())
        dirs = list(_live_dirs)
    for m in mounts:
        try:
            _force_unmount(m)
        except Exception:
            pass
        with _registry_lock:
            _live_mounts.discard(m)
    for p in procs:
        try:
            reap(p, signal.SIGKILL, timeout=5)
        except Exception:
            pass
    for d in dirs:
        _remove_dir(d)


atexit.register(cleanup_all)


# --------------------------------------------------------------------------------------------
# TLS material
# --------------------------------------------------------------------------------------------

class TlsCerts:
    """CA, server and client certificates made with openssl (EC P-256, valid 10 years).

    Attributes (all str paths): ca, ca_key, server_cert, server_key, cert, key (client,
    CN=root), wrong_ca, wrong_ca_key, wrong_cert, wrong_key (client cert CN=root signed by the
    unrelated wrong CA).
    """

    def __init__(self, directory: Path | str):
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.dir = d
        self.ca, self.ca_key = self._ca(d, "ca", "etcdfs-test-ca")
        self.wrong_ca, self.wrong_ca_key = self._ca(d, "wrong-ca", "etcdfs-unrelated-ca")
        self.server_cert, self.server_key = self._leaf(
            d, "server", "localhost", self.ca, self.ca_key,
            ["subjectAltName=IP:127.0.0.1,DNS:localhost",
             "extendedKeyUsage=serverAuth,clientAuth",
             "keyUsage=critical,digitalSignature,keyEncipherment"])
        self.cert, self.key = self._leaf(
            d, "client", "root", self.ca, self.ca_key,
            ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature,keyEncipherment"])
        self.wrong_cert, self.wrong_key = self._leaf(
            d, "wrong-client", "root", self.wrong_ca, self.wrong_ca_key,
            ["extendedKeyUsage=clientAuth", "keyUsage=critical,digitalSignature,keyEncipherment"])

    @staticmethod
    def _openssl(*args: str) -> None:
        r = subprocess.run(["openssl", *args], stdin=subprocess.DEVNULL,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

    @classmethod
    def _ca(cls, d: Path, name: str, cn: str) -> tuple[str, str]:
        crt, key = d / f"{name}.pem", d / f"{name}-key.pem"
        cls._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "3650",
                     "-subj", f"/CN={cn}",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return str(crt), str(key)

    @classmethod
    def _leaf(cls, d: Path, name: str, cn: str, ca: str, ca_key: str,
              exts: list[str]) -> tuple[str, str]:
        crt, key, csr, ext = (d / f"{name}.pem", d / f"{name}-key.pem", d / f"{name}.csr",
                              d / f"{name}.ext")
        ext.write_text("\n".join(["basicConstraints=CA:FALSE", *exts]) + "\n")
        cls._openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                     "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
        cls._openssl("x509", "-req", "-in", str(csr), "-CA", ca, "-CAkey", ca_key,
                     "-set_serial", str(_sysrandom.randrange(1, 2**62)), "-days", "3650",
                     "-sha256", "-extfile", str(ext), "-out", str(crt))
        csr.unlink()
        ext.unlink()
        return str(crt), str(key)


# --------------------------------------------------------------------------------------------
# etcd
# --------------------------------------------------------------------------------------------

class EtcdError(RuntimeError):
    pass


class EtcdctlError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (f"etcdctl {' '.join(self.cmd[1:])} exited {self.returncode}\n"
                f"stderr: {(self.stderr or '').strip()}\nstdout: {(self.output or '').strip()}")


def _etcdctl_env() -> dict:
    # ETCD_* / ETCDCTL_* from the caller's environment would override or conflict with flags.
    env = {k: v for k, v in child_env().items()
           if not k.startswith("ETCDCTL_") and not k.startswith("ETCD_")}
    env["ETCDCTL_API"] = "3"
    return env


class EtcdMember:
    """One etcd process on loopback.

    Public attributes: name, endpoint ("127.0.0.1:PORT"), endpoints (same), client_url,
    peer_url, client_port, peer_port, data_dir, log_path, tls (TlsCerts or None), proc, pid.
    For a TLS member also: ca, cert, key, wrong_ca (str paths).
    For an auth member (see setup_auth): user, password, password_file, users.
    """

    def __init__(self, name: str, *, data_dir: Path, log_dir: Path,
                 client_port: Optional[int] = None, peer_port: Optional[int] = None,
                 initial_cluster: Optional[str] = None, cluster_token: str = "etcdfs-test",
                 heartbeat_ms: int = 10, election_ms: int = 100,
                 tls: Optional[TlsCerts] = None, extra_args: Sequence[str] = ()):
        self.name = name
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_dir) / f"etcd-{name}.log"
        self.tls = tls
        self.extra_args = list(extra_args)
        self.heartbeat_ms = heartbeat_ms
        self.election_ms = election_ms
        self.cluster_token = cluster_token
        self._initial_cluster = initial_cluster
        self.proc: Optional[subprocess.Popen] = None
        self.user: Optional[str] = None
        self.password: Optional[str] = None
        self.password_file: Optional[str] = None
        self.users: dict[str, str] = {}
        self._member_id: Optional[int] = None
        self.set_ports(client_port or free_port(), peer_port or free_port())
        if tls is not None:
            self.ca, self.cert, self.key, self.wrong_ca = tls.ca, tls.cert, tls.key, tls.wrong_ca

    # -- addressing -----------------------------------------------------------------------
    def set_ports(self, client_port: int, peer_port: int) -> None:
        """Change ports (only before the first start)."""
        self.client_port, self.peer_port = client_port, peer_port
        scheme = "https" if self.tls else "http"
        self.endpoint = f"127.0.0.1:{client_port}"
        self.endpoints = self.endpoint
        self.client_url = f"{scheme}://127.0.0.1:{client_port}"
        self.peer_url = f"http://127.0.0.1:{peer_port}"

    @property
    def initial_cluster(self) -> str:
        return self._initial_cluster or f"{self.name}={self.peer_url}"

    @initial_cluster.setter
    def initial_cluster(self, value: str) -> None:
        self._initial_cluster = value

    def command(self) -> list[str]:
        cmd = [
            ETCD_BIN, "--name", self.name, "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.client_url, "--advertise-client-urls", self.client_url,
            "--listen-peer-urls", self.peer_url, "--initial-advertise-peer-urls", self.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", self.cluster_token, "--initial-cluster-state", "new",
            "--heartbeat-interval", str(self.heartbeat_ms),
            "--election-timeout", str(self.election_ms),
            "--logger", "zap", "--log-outputs", "stderr",
            "--bcrypt-cost", "4",  # cheap password hashing: auth tests stay fast
        ]
        if self.tls is not None:
            cmd += ["--cert-file", self.tls.server_cert, "--key-file", self.tls.server_key,
                    "--trusted-ca-file", self.tls.ca, "--client-cert-auth"]
        return cmd + self.extra_args

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True, timeout: float = 20.0) -> "EtcdMember":
        """Start (or restart, with the same data dir) this member."""
        if self.running:
            raise EtcdError(f"etcd member {self.name} is already running (pid {self.pid})")
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as f:
            f.write(f"\n==== start: {' '.join(self.command())}\n".encode())
        self.proc = spawn(self.command(), self.log_path, env=_etcdctl_env())
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        """Wait until /health says true (the member has a leader and serves requests)."""
        def ready() -> bool:
            if not self.running:
                raise EtcdError(
                    f"etcd member {self.name} exited with status "
                    f"{self.proc.returncode if self.proc else None} during startup; "
                    f"log {self.log_path}:\n{tail(self.log_path)}")
            return self.healthy()
        try:
            wait_for(ready, timeout, f"etcd member {self.name} at {self.endpoint} to be healthy")
        except TimeoutError as exc:
            raise EtcdError(f"{exc}; log {self.log_path}:\n{tail(self.log_path)}") from None

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGTERM and wait (SIGKILL after `timeout`). Returns the exit status."""
        return reap(self.proc, signal.SIGTERM, timeout)

    def kill(self) -> Optional[int]:
        """SIGKILL and wait."""
        return reap(self.proc, signal.SIGKILL, 10)

    def pause(self) -> None:
        """SIGSTOP: the member stays bound to its ports but answers nothing."""
        if self.running:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            os.kill(self.proc.pid, signal.SIGCONT)

    def destroy(self) -> None:
        """Kill and remove the data directory."""
        if self.running:
            self.resume()
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        root = getattr(self, "data_root", None)
        if root is not None:
            _remove_dir(str(root))

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def address_in_use(self) -> bool:
        return "address already in use" in self.log_text()

    # -- health -----------------------------------------------------------------------------
    def _ssl_context(self) -> Optional[ssl.SSLContext]:
        if self.tls is None:
            return None
        ctx = ssl.create_default_context(cafile=self.tls.ca)
        ctx.load_cert_chain(self.tls.cert, self.tls.key)
        # a certificate made not to name 127.0.0.1 (the TLS diagnostics tests)
        ctx.check_hostname = getattr(self.tls, "check_hostname", True)
        return ctx

    def healthy(self, timeout: float = 1.0) -> bool:
        """GET /health; True when it answers {"health":"true"}."""
        try:
            with urllib.request.urlopen(f"{self.client_url}/health", timeout=timeout,
                                        context=self._ssl_context()) as r:
                return b'"true"' in r.read()
        except (OSError, ValueError, ssl.SSLError):
            return False

    # -- etcdctl ----------------------------------------------------------------------------
    def ctl_flags(self, endpoints: Optional[str] = None, user: Optional[str] = None,
                  password: Optional[str] = None) -> list[str]:
        flags = [f"--endpoints={endpoints or self.endpoints}", "--dial-timeout=5s",
                 "--command-timeout=15s"]
        if self.tls is not None:
            flags += [f"--cacert={self.tls.ca}", f"--cert={self.tls.cert}",
                      f"--key={self.tls.key}"]
        user = user if user is not None else self.user
        password = password if password is not None else self.password
        if user is not None:
            flags.append(f"--user={user}:{password or ''}")
        return flags

    def ctl_run(self, *args: str, input: Optional[str] = None, timeout: float = 30.0,
                endpoints: Optional[str] = None, user: Optional[str] = None,
                password: Optional[str] = None, flags: Optional[Sequence[str]] = None
                ) -> subprocess.CompletedProcess:
        """Run etcdctl (API v3) against this member; never raises on a non-zero status.
        `flags` replaces the default connection flags entirely when given."""
        base = list(flags) if flags is not None else self.ctl_flags(endpoints, user, password)
        cmd = [ETCDCTL_BIN, *base, *[str(a) for a in args]]
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, env=_etcdctl_env(),
                              stdin=None if input is not None else subprocess.DEVNULL)

    def ctl(self, *args: str, check: bool = True, input: Optional[str] = None,
            timeout: float = 30.0, **kw) -> str:
        """Run etcdctl and return its stdout; raise EtcdctlError on failure when check."""
        r = self.ctl_run(*args, input=input, timeout=timeout, **kw)
        if check and r.returncode != 0:
            raise EtcdctlError(r.returncode, r.args, r.stdout, r.stderr)
        return r.stdout

    def ctl_as(self, user: str, password: str, *args: str, check: bool = True,
               input: Optional[str] = None) -> str:
        return self.ctl(*args, check=check, input=input, user=user, password=password)

    def status(self) -> dict:
        """`etcdctl endpoint status -w json` for this member: the "Status" object."""
        out = self.ctl("endpoint", "status", "-w", "json")
        return json.loads(out)[0]["Status"]

    @property
    def member_id(self) -> int:
        if self._member_id is None:
            self._member_id = int(self.status()["header"]["member_id"])
        return self._member_id

    def client(self, **kw):
        """A python etcd3 client for this member (TLS and auth settings applied)."""
        import etcd3  # Debian python3-etcd3
        opts = dict(host="127.0.0.1", port=self.client_port, timeout=15)
        if self.tls is not None:
            opts.update(ca_cert=self.tls.ca, cert_cert=self.tls.cert, cert_key=self.tls.key)
        if self.user is not None:
            opts.update(user=self.user, password=self.password)
        opts.update(kw)
        c = etcd3.client(**opts)
        if c.call_credentials is not None and not c.uses_secure_channel:
            # grpcio refuses call credentials on a plaintext channel ("Established channel
            # does not have a sufficient security level"); python-etcd3 also sends the token
            # as plain metadata, which is all etcd needs.
            c.call_credentials = None
            c.watcher._credentials = None
        return c

    # -- auth -------------------------------------------------------------------------------
    def setup_auth(self, password: Optional[str] = None, extra_users: bool = True) -> None:
        """Create user root (role root) and, unless extra_users is False, user "alice" whose
        role grants readwrite on the prefix /alice/ only; then enable auth. Afterwards ctl()
        and client() authenticate as root."""
        password = password or "root-" + os.urandom(6).hex()
        self.ctl("user", "add", "root", f"--new-user-password={password}", "--interactive=false")
        self.ctl("role", "add", "root")
        self.ctl("user", "grant-role", "root", "root")
        users = {"root": password}
        if extra_users:
            alice_pw = "alice-" + os.urandom(6).hex()
            self.ctl("user", "add", "alice", f"--new-user-password={alice_pw}",
                     "--interactive=false")
            self.ctl("role", "add", "alice")
            self.ctl("role", "grant-permission", "alice", "--prefix=true", "readwrite", "/alice/")
            self.ctl("user", "grant-role", "alice", "alice")
            users["alice"] = alice_pw
        self.ctl("auth", "enable")
        self.user, self.password, self.users = "root", password, users
        pw_file = self.log_path.parent / f"etcd-{self.name}.password"
        pw_file.write_text(password + "\n")
        os.chmod(pw_file, 0o600)
        self.password_file = str(pw_file)

    # -- for etcdfs -------------------------------------------------------------------------
    def etcdfs_args(self) -> list[str]:
        """etcdfs command-line flags (besides --endpoints) needed to reach this member."""
        args: list[str] = []
        if self.tls is not None:
            args += [f"--cacert={self.tls.ca}", f"--cert={self.tls.cert}",
                     f"--key={self.tls.key}"]
        if self.user is not None:
            args += [f"--user={self.user}", f"--password-file={self.password_file}"]
        return args

    def __repr__(self) -> str:
        return f"<EtcdMember {self.name} {self.client_url} pid={self.pid}>"


def start_etcd(log_dir: Path, name: str = "etcd", tls: Optional[TlsCerts] = None,
               extra_args: Sequence[str] = (), attempts: int = 3, **kw) -> EtcdMember:
    """Start a fresh single-member etcd on free loopback ports (data under /dev/shm).
    Retries with new ports if another process took one meanwhile."""
    data_root = make_data_root()
    member = EtcdMember(name, data_dir=data_root / name, log_dir=log_dir, tls=tls,
                        extra_args=extra_args, **kw)
    member.data_root = data_root  # type: ignore[attr-defined]
    for attempt in range(attempts):
        try:
            return member.start()
        except EtcdError:
            member.kill()
            if attempt + 1 < attempts and member.address_in_use():
                shutil.rmtree(member.data_dir, ignore_errors=True)
                member.set_ports(free_port(), free_port())
                continue
            raise
    raise AssertionError("unreachable")


class EtcdCluster:
    """Several etcd members on loopback forming one cluster.

    Attributes: members (list of EtcdMember), endpoints ("127.0.0.1:P1,127.0.0.1:P2,...").
    Cluster-level ctl()/ctl_run() talk to all endpoints; client() returns an etcd3 client for
    the leader (python-etcd3 0.12 has no multi-endpoint client).
    """

    def __init__(self, members: list[EtcdMember], data_root: Path):
        self.members = members
        self.data_root = data_root
        self.endpoints = ",".join(m.endpoint for m in members)
        self.endpoint = self.endpoints

    def __getitem__(self, i: int) -> EtcdMember:
        return self.members[i]

    def __len__(self) -> int:
        return len(self.members)

    def running_members(self) -> list[EtcdMember]:
        return [m for m in self.members if m.running]

    def start(self, timeout: float = 30.0) -> "EtcdCluster":
        """Start every member that is not running, then wait for all to be healthy."""
        for m in self.members:
            if not m.running:
                m.start(wait=False)
        for m in self.members:
            m.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for m in self.members:
            m.stop()

    def kill(self) -> None:
        for m in self.members:
            m.kill()

    def destroy(self) -> None:
        for m in self.members:
            m.destroy()
        _remove_dir(str(self.data_root))

    def ctl_run(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.members[0].ctl_run(*args, endpoints=kw.pop("endpoints", self.endpoints), **kw)

    def ctl(self, *args: str, check: bool = True, input: Optional[str] = None,
            timeout: float = 30.0, **kw) -> str:
        kw.setdefault("endpoints", self.endpoints)
        return self.members[0].ctl(*args, check=check, input=input, timeout=timeout, **kw)

    def _leader_once(self) -> Optional[EtcdMember]:
        running = self.running_members()
        if not running:
            return None
        r = self.members[0].ctl_run("endpoint", "status", "-w", "json",
                                    endpoints=",".join(m.endpoint for m in running),
                                    timeout=15)
        try:
            statuses = json.loads(r.stdout or "[]")
        except ValueError:
            return None
        by_endpoint = {m.endpoint: m for m in running}
        leaders = set()
        for st in statuses:
            m = by_endpoint.get(st.get("Endpoint"))
            if m is None:
                continue
            m._member_id = int(st["Status"]["header"]["member_id"])
            # during an election "leader" is 0, which etcd's JSON leaves out
            leaders.add(int(st["Status"].get("leader", 0)))
        if len(statuses) != len(running) or len(leaders) != 1 or 0 in leaders:
            return None
        (leader_id,) = leaders
        for m in running:
            if m._member_id == leader_id:
                return m
        return None

    def leader(self, timeout: float = 20.0) -> EtcdMember:
        """The running member that every running member agrees is the leader (waits for one)."""
        return wait_for(self._leader_once, timeout, "the cluster to agree on a leader")

    def followers(self) -> list[EtcdMember]:
        lead = self.leader()
        return [m for m in self.running_members() if m is not lead]

    def client(self, **kw):
        return self.leader().client(**kw)

    def __repr__(self) -> str:
        return f"<EtcdCluster {self.endpoints}>"


def start_etcd_cluster(log_dir: Path, size: int = 3, name_prefix: str = "m",
                       heartbeat_ms: int = 50, election_ms: int = 500,
                       extra_args: Sequence[str] = (), attempts: int = 3) -> EtcdCluster:
    """Start a fresh `size`-member cluster on loopback (data under /dev/shm)."""
    data_root = make_data_root("etcdfs-cluster-")
    token = "etcdfs-test-" + os.urandom(4).hex()
    members = [EtcdMember(f"{name_prefix}{i}", data_dir=data_root / f"{name_prefix}{i}",
                          log_dir=log_dir, heartbeat_ms=heartbeat_ms, election_ms=election_ms,
                          cluster_token=token, extra_args=extra_args)
               for i in range(size)]
    cluster = EtcdCluster(members, data_root)
    for attempt in range(attempts):
        initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
        for m in members:
            m.initial_cluster = initial
        try:
            return cluster.start()
        except EtcdError:
            in_use = any(m.address_in_use() for m in members)
            cluster.kill()
            if attempt + 1 < attempts and in_use:
                for m in members:
                    shutil.rmtree(m.data_dir, ignore_errors=True)
                    m.set_ports(free_port(), free_port())
                cluster.endpoints = cluster.endpoint = ",".join(m.endpoint for m in members)
                continue
            raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# etcdfs mounts
# --------------------------------------------------------------------------------------------

def _endpoints_of(target) -> str:
    if isinstance(target, str):
        return target
    if isinstance(target, (list, tuple)):
        return ",".join(_endpoints_of(t) for t in target)
    if hasattr(target, "endpoints"):
        return target.endpoints
    raise TypeError(f"cannot take endpoints from {target!r}")


def _sanitizer_env(env: dict) -> dict:
    # Defaults for an ASan/UBSan build; harmless for a normal one. The caller's win.
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    return env


def parse_stats(text: str) -> dict[str, int]:
    """Parse `name value` lines (also `name: value`, `name=value`) into a dict of ints;
    lines whose value is not an integer are ignored."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?)\s*[:=]?\s+(-?\d+)\s*$", line) or \
            re.match(r"^(\S+?)[:=](-?\d+)$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


class MountError(RuntimeError):
    pass


class Mount:
    """A running `etcdfs -f` process and its mountpoint.

    Attributes: path (pathlib.Path), proc (Popen), log_path, cmd, endpoints,
    expected_returncodes (set; default {0}: tests that kill the daemon on purpose may change
    it). Methods: log_text(), unmount(), stats(), problems().
    """

    def __init__(self, path: Path, proc: subprocess.Popen, log_path: Path, cmd: list[str],
                 endpoints: str):
        self.path = path
        self.proc = proc
        self.log_path = log_path
        self.cmd = cmd
        self.endpoints = endpoints
        self.expected_returncodes = {0}
        self.returncode: Optional[int] = None
        self._notes: list[str] = []
        self._finished = False

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, other) -> Path:
        return self.path / other

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def is_mounted(self) -> bool:
        return os.path.ismount(self.path)

    def stats(self) -> dict[str, int]:
        """Counters from <mountpoint>/.etcdfs/stats as a dict of ints ({} if absent)."""
        try:
            text = (self.path / ".etcdfs" / "stats").read_text()
        except FileNotFoundError:
            return {}
        return parse_stats(text)

    def unmount(self, timeout: float = 30.0) -> Optional[int]:
        """Unmount (fusermount3 -u, retried while busy, then -uz), wait for the daemon to
        exit (SIGTERM then SIGKILL past `timeout`) and return its exit status. Idempotent."""
        if self._finished:
            return self.returncode
        try:  # a test that chdir'ed into the mount would keep it busy
            if Path.cwd().is_relative_to(self.path):
                os.chdir(self.path.parent)
        except OSError:
            os.chdir("/")
        lazy = False
        if is_mountpoint(self.path):
            last = None
            # Up to 10 s: the inotify replay of a burst of remote changes holds a descriptor
            # on the mount for a few seconds (docs/operations.md); a file a test left open
            # keeps it busy for good and still ends in the lazy unmount below.
            for _ in range(100):
                last = subprocess.run([FUSERMOUNT, "-u", str(self.path)], capture_output=True,
                                      text=True, stdin=subprocess.DEVNULL)
                if last.returncode == 0 or not is_mountpoint(self.path):
                    break
                time.sleep(0.1)
            if is_mountpoint(self.path):
                self._notes.append(f"fusermount3 -u failed ({(last.stderr or '').strip()}); "
                                   f"lazy unmount used (files left open or cwd inside?)")
                _force_unmount(str(self.path))
                lazy = True
        try:
            # after a lazy unmount the daemon lives on while anything keeps the mount open
            wait = min(timeout, 5) if lazy else timeout
            self.proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            self._notes.append(f"etcdfs did not exit within {wait:g}s of the unmount; "
                               f"sent SIGTERM")
            reap(self.proc, signal.SIGTERM, 10)
        with _registry_lock:
            _live_procs.pop(self.proc.pid, None)
            _live_mounts.discard(str(self.path))
        self.returncode = self.proc.returncode
        self._finished = True
        return self.returncode

    def abort(self, why: str) -> None:
        """SIGKILL the daemon: the kernel then fails every request still waiting on it
        (ENOTCONN), which frees processes stuck in the mount even uninterruptibly (a request
        the daemon has already read can only end with its answer or its death)."""
        if self.proc.poll() is None:
            self._notes.append(why)
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass

    def problems(self) -> list[str]:
        """Why this mount's daemon counts as failed (empty when it is fine). Call after
        unmount()."""
        out = list(self._notes)
        if self.returncode is not None and self.returncode not in self.expected_returncodes:
            how = (f"was killed by signal {-self.returncode}" if self.returncode < 0
                   else f"exited with status {self.returncode}")
            out.append(f"etcdfs {how} (expected {sorted(self.expected_returncodes)})")
        log = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in log:
                out.append(f"etcdfs log contains {marker!r}")
        return out

    def __repr__(self) -> str:
        return f"<Mount {self.path} pid={self.proc.pid}>"


def start_mount(target, mountpoint: Path, log_path: Path, *, binary: Path,
                prefix: str = "/", options: Iterable[str] | str = (),
                extra_args: Sequence[str] = (), env: Optional[dict] = None,
                timeout: float = 10.0, cmd_prefix: Sequence[str] = ()) -> Mount:
    """Run `etcdfs --endpoints=... --prefix=... -f [-o options] [extra_args] MOUNTPOINT` in
    the background and wait until MOUNTPOINT is a mountpoint. `cmd_prefix` (e.g. a netns
    host's nsenter prefix) goes before the binary; it must exec it, not fork."""
    endpoints = _endpoints_of(target)
    mountpoint = Path(mountpoint)
    mountpoint.mkdir(parents=True, exist_ok=True)
    cmd = [*map(str, cmd_prefix), str(binary), f"--endpoints={endpoints}", f"--prefix={prefix}",
           "-f"]
    opts = options if isinstance(options, str) else ",".join(options)
    if opts:
        cmd += ["-o", opts]
    cmd += [str(a) for a in extra_args]
    cmd.append(str(mountpoint))
    full_env = _sanitizer_env(dict(os.environ if env is None else {**os.environ, **env}))
    with open(log_path, "ab") as f:
        f.write(f"==== start: {' '.join(cmd)}\n".encode())
    proc = spawn(cmd, log_path, env=full_env)
    with _registry_lock:
        _live_mounts.add(str(mountpoint))
    m = Mount(mountpoint, proc, log_path, cmd, endpoints)

    def mounted() -> bool:
        if proc.poll() is not None:
            raise MountError(f"etcdfs exited with status {proc.returncode} before mounting "
                             f"{mountpoint}\ncommand: {' '.join(cmd)}\nlog {log_path}:\n"
                             f"{tail(log_path)}")
        return os.path.ismount(mountpoint)
    try:
        wait_for(mounted, timeout, f"etcdfs to mount {mountpoint}")
    except TimeoutError as exc:
        m.unmount(timeout=5)
        raise MountError(f"{exc}\ncommand: {' '.join(cmd)}\nlog {log_path}:\n"
                         f"{tail(log_path)}") from None
    except MountError:
        m.unmount(timeout=5)
        raise
    return m


# --------------------------------------------------------------------------------------------
# network namespaces: see netns_hosts.py (NetnsLab, Host, start_netns_cluster), exposed by the
# `netns` fixture in conftest.py; tests that use it are marked @pytest.mark.netns.
# --------------------------------------------------------------------------------------------
