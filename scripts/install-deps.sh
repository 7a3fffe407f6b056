#!/usr/bin/env bash
# Install (idempotently) every Debian package etcdfs needs to build, run and test.
#
#   bash scripts/install-deps.sh      (as root; or with sudo)
#
# - Does nothing but a dpkg query when everything is already installed.
# - Runs `apt-get update` only when something is missing (or has no install candidate yet).
# - Noninteractive; works without a terminal or stdin (CI=true).
# - etcd-server's Debian package ships a system service that would listen on 127.0.0.1:2379.
#   Our tests never use it (they start private members on free ports), and scripts/run.sh
#   starts its own etcd only when nothing answers on 2379, so a running system etcd is simply
#   used. What we do avoid is the package starting and enabling that service as a side effect
#   of *this* script: while we install, services are kept from starting (policy-rc.d), and if
#   this script is what installed etcd-server, its unit is disabled again so that it does not
#   come up at the next boot. Set ETCDFS_KEEP_SYSTEM_ETCD=1 to leave the service as Debian
#   sets it up.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libfuse3-dev fuse3
  libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libssl-dev openssl
  etcd-server etcd-client
  python3 python3-pytest python3-pytest-timeout python3-etcd3
  python3-prometheus-client  # an independent parser of .etcdfs/metrics (test_operator.py)
  attr inotify-tools iproute2 util-linux psmisc procps clang clang-format
  libclang-rt-dev valgrind  # libFuzzer + sanitizer runtimes (only recommended by clang); valgrind
  dpkg-dev man-db systemd   # tests/integration/test_operator.py: cpack DEB deps, man -l, unit verify
  rsync tar                 # tests/integration/test_fs_attrs.py: rsync -a and tar x round trips
)

log() { printf 'install-deps: %s\n' "$*" >&2; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo -n)
  else
    log "must run as root (or with sudo available)"
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold
          -o DPkg::Lock::Timeout=600 --no-install-recommends)

is_installed() {
  [[ $(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true) == installed ]]
}
has_candidate() {
  local c
  c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
  [[ -n $c && $c != "(none)" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

log "missing: ${missing[*]}"
log "apt-get update"
"${SUDO[@]}" apt-get update -q -o DPkg::Lock::Timeout=600 </dev/null

to_install=()
for p in "${missing[@]}"; do
  if has_candidate "$p"; then
    to_install+=("$p")
  else
    log "WARNING: package '$p' does not exist in the configured archives; skipped"
  fi
done
[[ ${#to_install[@]} -eq 0 ]] && exit 0

etcd_was_installed=0
is_installed etcd-server && etcd_was_installed=1

# Keep maintainer scripts from starting services during this install (policy-rc.d is
# honoured by invoke-rc.d and deb-systemd-invoke). Leave an existing policy alone.
policy=/usr/sbin/policy-rc.d
own_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\n# temporary, written by etcdfs scripts/install-deps.sh\nexit 101\n' |
    "${SUDO[@]}" tee "$policy" >/dev/null
  "${SUDO[@]}" chmod 755 "$policy"
  own_policy=1
fi
cleanup() { if [[ $own_policy -eq 1 ]]; then "${SUDO[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT

log "apt-get install ${to_install[*]}"
"${SUDO[@]}" apt-get install "${APT_OPTS[@]}" "${to_install[@]}" </dev/null

if [[ $etcd_was_installed -eq 0 && ${ETCDFS_KEEP_SYSTEM_ETCD:-0} != 1 ]] &&
   is_installed etcd-server && [[ -d /run/systemd/system ]]; then
  log "disabling the etcd.service unit that etcd-server just installed (see the header)"
  "${SUDO[@]}" systemctl disable etcd.service >/dev/null 2>&1 || true
  "${SUDO[@]}" systemctl stop etcd.service >/dev/null 2>&1 || true
fi

still=()
for p in "${to_install[@]}"; do is_installed "$p" || still+=("$p"); done
if [[ ${#still[@]} -gt 0 ]]; then
  log "ERROR: still not installed: ${still[*]}"
  exit 1
fi
log "done"
