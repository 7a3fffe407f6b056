#!/usr/bin/env bash
# The main job: install, build, make sure an etcd is there, and mount it.
#
#   bash scripts/run.sh [MOUNTPOINT] [extra etcdfs args...]      (as root; or with sudo)
#
# 1. installs the Debian packages (scripts/install-deps.sh), builds build/ (scripts/build.sh)
#    and installs what `cmake --install` installs under /usr/local (etcdfs, mount.fuse.etcdfs,
#    the man page, libetcdc and its header and pkg-config file), so that `etcdfs MOUNTPOINT`,
#    `man etcdfs` and `mount -t fuse.etcdfs` work from any directory afterwards
# 2. uses the etcd at $ETCDCTL_ENDPOINTS (default 127.0.0.1:2379) if it answers
#    `etcdctl endpoint health`; otherwise, for a loopback endpoint, starts a single-member etcd
#    in the background, data and log under <repo>/.etcd-data/ (stop it: scripts/stop-etcd.sh)
# 3. mounts it: build/src/fs/etcdfs --endpoints=... MOUNTPOINT (default /mnt/etcd), unless
#    etcdfs already serves that mountpoint
#
# Environment: ETCDCTL_ENDPOINTS, ETCDFS_PREFIX (key prefix to mount, default /),
#              ETCDFS_BIN (default: the installed /usr/local/bin/etcdfs), ETCDFS_SKIP_INSTALL=1
#              (no packages), ETCDFS_SKIP_BUILD=1, ETCDFS_INSTALL_PREFIX (default /usr/local;
#              "none": nothing installed, the build's own binary mounts).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MNT=${1:-/mnt/etcd}
[[ $# -gt 0 ]] && shift
EXTRA_ARGS=("$@")
ENDPOINTS=${ETCDCTL_ENDPOINTS:-127.0.0.1:2379}
DATA=$ROOT/.etcd-data
PREFIX=${ETCDFS_INSTALL_PREFIX:-/usr/local}
if [[ $PREFIX == none ]]; then
  BIN=${ETCDFS_BIN:-$ROOT/build/src/fs/etcdfs}
else
  BIN=${ETCDFS_BIN:-$PREFIX/bin/etcdfs}
fi

say() { printf '\033[1mrun:\033[0m %s\n' "$*" >&2; }
die() { printf 'run: ERROR: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "run as root (or with sudo): installing packages and mounting need it"

if [[ ${ETCDFS_SKIP_INSTALL:-0} != 1 ]]; then
  say "installing dependencies"
  bash "$ROOT/scripts/install-deps.sh"
fi
if [[ ${ETCDFS_SKIP_BUILD:-0} != 1 ]]; then
  say "building build/"
  bash "$ROOT/scripts/build.sh" build >/dev/null || die "build failed (run: bash scripts/build.sh)"
fi
if [[ $PREFIX != none ]]; then
  say "installing under $PREFIX (etcdfs, mount.fuse.etcdfs, man etcdfs, libetcdc)"
  cmake --install "$ROOT/build" --prefix "$PREFIX" >/dev/null ||
    die "cmake --install build --prefix $PREFIX failed"
  ldconfig 2>/dev/null || true # libetcdc.so under $PREFIX/lib for other programs
fi

export ETCDCTL_API=3
etcd_healthy() {
  env -u ETCDCTL_ENDPOINTS etcdctl --endpoints="$1" --dial-timeout=2s --command-timeout=3s \
    endpoint health >/dev/null 2>&1
}

# --- etcd ---------------------------------------------------------------------------------
if etcd_healthy "$ENDPOINTS"; then
  say "etcd answers at $ENDPOINTS: using it"
else
  if [[ $ENDPOINTS == *,* ]]; then
    die "no healthy etcd at $ENDPOINTS (several endpoints given: not starting one myself)"
  fi
  hostport=${ENDPOINTS#*://}
  host=${hostport%:*}
  port=${hostport##*:}
  case $host in
    127.0.0.1 | localhost) ;;
    *) die "no etcd answers at $ENDPOINTS, and it is not a loopback address I could start one on" ;;
  esac
  [[ $port =~ ^[0-9]+$ ]] || die "cannot parse a port from ETCDCTL_ENDPOINTS=$ENDPOINTS"
  if [[ $port -eq 2379 ]]; then peer=2380; else peer=$((port + 1)); fi
  mkdir -p "$DATA"
  if [[ -f $DATA/etcd.pid ]] && kill -0 "$(cat "$DATA/etcd.pid")" 2>/dev/null; then
    die "the local etcd (pid $(cat "$DATA/etcd.pid")) runs but is not healthy; see $DATA/etcd.log or run scripts/stop-etcd.sh"
  fi
  say "no etcd at $ENDPOINTS: starting a local one (data $DATA/member, log $DATA/etcd.log)"
  setsid etcd --name etcdfs-local --data-dir "$DATA/member" \
    --listen-client-urls "http://127.0.0.1:$port" --advertise-client-urls "http://127.0.0.1:$port" \
    --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
    --initial-cluster "etcdfs-local=http://127.0.0.1:$peer" \
    --logger zap --log-outputs stderr \
    </dev/null >>"$DATA/etcd.log" 2>&1 &
  echo $! >"$DATA/etcd.pid"
  ENDPOINTS=127.0.0.1:$port
  for _ in $(seq 1 100); do
    etcd_healthy "$ENDPOINTS" && break
    kill -0 "$(cat "$DATA/etcd.pid")" 2>/dev/null || break
    sleep 0.2
  done
  if ! etcd_healthy "$ENDPOINTS"; then
    tail -n 20 "$DATA/etcd.log" >&2 || true
    die "the local etcd did not become healthy (log: $DATA/etcd.log)"
  fi
  say "local etcd is up at $ENDPOINTS (pid $(cat "$DATA/etcd.pid"))"
fi

# --- mount --------------------------------------------------------------------------------
[[ $MNT = /* ]] || MNT=$PWD/$MNT
MNT=${MNT%/}
fstype=$(findmnt -n -o FSTYPE --mountpoint "$MNT" 2>/dev/null || true)
if [[ -n $fstype ]]; then
  source=$(findmnt -n -o SOURCE --mountpoint "$MNT" 2>/dev/null || true)
  if [[ $fstype == *etcdfs* || $source == *etcdfs* ]]; then
    # statfs always reaches the daemon (a plain stat may be answered from the kernel's cache)
    if timeout -s KILL 10 stat -f "$MNT" >/dev/null 2>&1; then
      say "$MNT is already mounted by etcdfs: not mounting it again"
      already=1
    else
      say "$MNT is a dead etcdfs mount (its daemon is gone): cleaning it up"
      fusermount3 -uz "$MNT" 2>/dev/null || umount -l "$MNT"
    fi
  else
    die "$MNT is already a mountpoint ($fstype from $source); choose another: scripts/run.sh /path/to/mnt"
  fi
fi

if [[ ${already:-0} != 1 ]]; then
  mkdir -p "$MNT"
  [[ -x $BIN ]] || die "$BIN is not built (etcdfs is still being written?); the library builds with scripts/build.sh"
  say "mounting: $BIN --endpoints=$ENDPOINTS --prefix=${ETCDFS_PREFIX:-/} ${EXTRA_ARGS[*]} $MNT"
  "$BIN" --endpoints="$ENDPOINTS" --prefix="${ETCDFS_PREFIX:-/}" "${EXTRA_ARGS[@]}" "$MNT" ||
    die "etcdfs failed to mount $MNT (exit $?)"
  for _ in $(seq 1 50); do mountpoint -q "$MNT" && break; sleep 0.1; done
  mountpoint -q "$MNT" || die "etcdfs exited 0 but $MNT is not a mountpoint"
fi

cat <<EOF

etcd at $ENDPOINTS is mounted on $MNT (key prefix ${ETCDFS_PREFIX:-/}). Try:

  echo hello > $MNT/greeting                 # put /greeting = "hello"
  ETCDCTL_API=3 etcdctl --endpoints=$ENDPOINTS get /greeting
  ETCDCTL_API=3 etcdctl --endpoints=$ENDPOINTS put /app/config/port 8080
  ls -l $MNT/app/config && cat $MNT/app/config/port
  mv $MNT/app/config/port $MNT/app/config/listen   # one atomic etcd transaction
  flock $MNT/app/lock -c 'echo holding a cluster-wide lock'

Unmount:              fusermount3 -u $MNT
Stop the local etcd:  bash $ROOT/scripts/stop-etcd.sh   (only if run.sh started it; data stays in .etcd-data/)
EOF
