"""One clear line for every TLS and auth failure, the same at mount and in --check (issue 19):
what failed, where, the reason in full, and what to try; no gRPC internals on stderr; a warning
for --insecure-skip-tls-verify; a client key readable by others refused; the password taken
from the environment not left there. Every row uses a throw-away CA made with openssl."""

import copy
import os
import shutil
import subprocess

import pytest

from etcd_fixtures import TlsCerts, wait_for
from test_fs_options import assert_one_line_failure, binary, mnt, run  # noqa: F401 (fixtures)

pytestmark = pytest.mark.needs_etcdfs

GRPC_NOISE = ("ssl_transport_security", "Corruption detected", "grpc.", "chttp2",
              "secure_endpoint", "Handshaker factory")


def check(binary, *args, env=None):
    return run(binary, "--check", *args, env=env)


def one_check_failure(r, *needles):
    """--check printed exactly one FAIL line holding every needle, and nothing from gRPC."""
    assert r.returncode != 0, r.stdout
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL:")]
    assert len(fails) == 1, r.stdout
    for n in needles:
        assert n.lower() in fails[0].lower(), (n, fails[0])
    no_grpc_noise(r)
    return fails[0]


def no_grpc_noise(r):
    for noise in GRPC_NOISE:
        assert noise not in r.stderr, r.stderr


def mount_failure(binary, mnt, args, *needles):
    r = run(binary, *args, "--dial-timeout=2s", mnt)
    assert_one_line_failure(r, mnt, *needles)
    no_grpc_noise(r)
    return r.stderr.strip()


@pytest.fixture
def tls_etcd(make_etcd, tls_certs):
    """An etcd that serves TLS and requires a client certificate (--client-cert-auth)."""
    return make_etcd(name="etcd-tls", tls=tls_certs)


def both(binary, mnt, args, *needles):
    """The same diagnosis at mount and in --check."""
    line = mount_failure(binary, mnt, args, *needles)
    one_check_failure(check(binary, *args, "--dial-timeout=2s"), *needles)
    return line


def test_server_speaks_tls_and_no_cacert_was_given(binary, mnt, tls_etcd):
    both(binary, mnt, [f"--endpoints={tls_etcd.endpoint}"], "closed the connection",
         "may speak TLS", "--cacert", tls_etcd.endpoint)


def test_wrong_ca_says_so_with_the_whole_reason(binary, mnt, tls_etcd, tls_certs):
    t = tls_certs
    line = both(binary, mnt, [f"--endpoints={tls_etcd.endpoint}", f"--cacert={t.wrong_ca}",
                              f"--cert={t.cert}", f"--key={t.key}"],
                "TLS handshake with", "not signed by the CA in --cacert",
                "certificate verify failed", "check --cacert")
    assert len(line) < 1000


def test_no_client_certificate_for_a_server_that_requires_one(binary, mnt, tls_etcd, tls_certs):
    line = both(binary, mnt, [f"--endpoints={tls_etcd.endpoint}", f"--cacert={tls_certs.ca}"],
                "TLS handshake with", "refused to connect without a client certificate",
                "--cert and --key")
    # OpenSSL's reason follows, in parentheses (TLS 1.2: bad certificate; 1.3: certificate
    # required)
    reason = line.split("client certificate (", 1)[1]
    assert reason.startswith(("sslv3 alert bad certificate", "tlsv13 alert certificate required")), line


def test_client_certificate_of_an_unknown_ca(binary, mnt, tls_etcd, tls_certs):
    t = tls_certs
    both(binary, mnt, [f"--endpoints={tls_etcd.endpoint}", f"--cacert={t.ca}",
                       f"--cert={t.wrong_cert}", f"--key={t.wrong_key}"],
         "refused the client certificate in --cert", "--cert and --key")


def test_certificate_and_key_of_different_pairs_name_both_files(binary, mnt, tls_etcd,
                                                                tls_certs):
    t = tls_certs
    both(binary, mnt, [f"--endpoints={tls_etcd.endpoint}", f"--cacert={t.ca}",
                       f"--cert={t.cert}", f"--key={t.wrong_key}"],
         "does not belong to client certificate", t.wrong_key, t.cert)


def test_a_file_that_is_not_what_its_option_says(binary, mnt, tls_etcd, tls_certs, tmp_path):
    t = tls_certs
    ep = f"--endpoints={tls_etcd.endpoint}"
    both(binary, mnt, [ep, f"--cacert={t.ca}", f"--cert={t.key}", f"--key={t.key}"],
         "is not a PEM certificate", t.key)
    both(binary, mnt, [ep, f"--cacert={t.key}", f"--cert={t.cert}", f"--key={t.key}"],
         "holds no PEM certificate", t.key)
    only_cert = [ep, f"--cacert={t.ca}", f"--cert={t.cert}"]
    mount_failure(binary, mnt, only_cert, "--cert and --key must be given together")


def test_expired_client_certificate(binary, mnt, tls_etcd, tls_certs, tmp_path):
    t = tls_certs
    crt, key, csr = tmp_path / "old.pem", tmp_path / "old-key.pem", tmp_path / "old.csr"
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(csr), "-subj", "/CN=root"], check=True, capture_output=True)
    # -days -1: its validity ended a day before it was issued
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", t.ca, "-CAkey", t.ca_key,
                    "-set_serial", "7", "-days", "-1", "-out", str(crt)], check=True,
                   capture_output=True)
    both(binary, mnt, [f"--endpoints={tls_etcd.endpoint}", f"--cacert={t.ca}",
                       f"--cert={crt}", f"--key={key}"], "expired on", str(crt))


@pytest.fixture
def san_etcd(make_etcd, tls_certs, tmp_path):
    """A TLS etcd whose certificate names only etcd.test, reached at 127.0.0.1."""
    t = copy.copy(tls_certs)
    d = tmp_path / "san"
    d.mkdir()
    t.server_cert, t.server_key = TlsCerts._leaf(
        d, "server-san", "etcd.test", t.ca, t.ca_key,
        ["subjectAltName=DNS:etcd.test", "extendedKeyUsage=serverAuth,clientAuth",
         "keyUsage=critical,digitalSignature,keyEncipherment"])
    t.check_hostname = False  # the fixture's own health probe
    return make_etcd(name="etcd-san", tls=t)


def test_certificate_that_does_not_name_the_endpoint_and_tls_server_name(binary, mnt, san_etcd,
                                                                         tls_certs):
    t = tls_certs
    args = [f"--endpoints={san_etcd.endpoint}", f"--cacert={t.ca}", f"--cert={t.cert}",
            f"--key={t.key}"]
    both(binary, mnt, args, "TLS handshake with", "does not name the endpoint",
         "127.0.0.1", "--tls-server-name")
    r = run(binary, *args, "--tls-server-name=etcd.test", mnt)
    assert r.returncode == 0, r.stderr
    (mnt / "named").write_text("ok")
    assert (mnt / "named").read_text() == "ok"
    r = check(binary, *args, "--tls-server-name=etcd.test")
    assert r.returncode == 0, r.stdout


def test_insecure_skip_tls_verify_is_a_warning_every_time(binary, tls_etcd, tls_certs, mount):
    t = tls_certs
    args = ["--insecure-skip-tls-verify", f"--cacert={t.wrong_ca}", f"--cert={t.cert}",
            f"--key={t.key}"]
    m = mount(tls_etcd, extra_args=args)
    (m.path / "f").write_text("x")
    log = m.log_text()
    assert "warning: --insecure-skip-tls-verify: the server's certificate is not verified" in log
    r = check(binary, f"--endpoints={tls_etcd.endpoint}", *args)
    assert r.returncode == 0, r.stdout
    warns = [ln for ln in r.stdout.splitlines() if ln.startswith("warn:")]
    assert any("--insecure-skip-tls-verify" in w and "--cacert" in w for w in warns), r.stdout


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o606])
def test_client_key_readable_by_others_is_refused(binary, mnt, tls_etcd, tls_certs, tmp_path,
                                                  mode):
    t = tls_certs
    key = tmp_path / "client-key.pem"
    shutil.copy(t.key, key)
    key.chmod(mode)
    args = [f"--endpoints={tls_etcd.endpoint}", f"--cacert={t.ca}", f"--cert={t.cert}",
            f"--key={key}"]
    both(binary, mnt, args, str(key), "accessible by group or others", f"{mode:03o}",
         "chmod 600")
    key.chmod(0o600)
    r = run(binary, *args, mnt)
    assert r.returncode == 0, r.stderr


def test_password_from_the_environment_leaves_the_daemons_environment(binary, mnt, make_etcd):
    e = make_etcd(name="etcd-auth")
    e.setup_auth()
    r = run(binary, f"--endpoints={e.endpoint}", "--user=root", mnt,
            env={"ETCDCTL_PASSWORD": e.password})
    assert r.returncode == 0, r.stderr
    out = subprocess.run(["pgrep", "-f", f"etcdfs.* {mnt}$"], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    assert len(pids) == 1, out.stdout
    with open(f"/proc/{pids[0]}/environ", "rb") as f:
        environ = f.read()
    assert e.password.encode() not in environ
    assert b"ETCDCTL_PASSWORD=" + e.password.encode() not in environ
    wait_for(lambda: os.path.ismount(mnt), 10, "mount")
    (mnt / "authed").write_text("1")
    assert e.ctl("get", "--print-value-only", "/authed").strip() == "1"


def test_debug_log_carries_grpcs_lines(binary, tls_etcd, tls_certs, tmp_path):
    """With -d the daemon's log has gRPC's own lines (they never reach stderr otherwise)."""
    t = tls_certs
    d = tmp_path / "mnt-debug"
    d.mkdir()
    r = run(binary, f"--endpoints={tls_etcd.endpoint}", f"--cacert={t.wrong_ca}",
            f"--cert={t.cert}", f"--key={t.key}", "--dial-timeout=1s", "-d", d, timeout=30)
    assert r.returncode != 0
    assert "grpc error" in r.stderr and "certificate verify failed" in r.stderr, r.stderr
