#!/usr/bin/env bash
# Stop the local etcd that scripts/run.sh started (data and log in <repo>/.etcd-data/).
#
#   bash scripts/stop-etcd.sh [--purge]     # --purge also deletes .etcd-data/
#
# It stops only that etcd (the pid recorded in .etcd-data/etcd.pid, checked against its
# data dir), never a system etcd or one started by anything else. Unmount etcdfs first
# (fusermount3 -u MOUNTPOINT): a mount whose etcd is gone returns errors until it is back.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA=$ROOT/.etcd-data
PURGE=0
[[ ${1:-} == --purge ]] && PURGE=1

say() { printf 'stop-etcd: %s\n' "$*" >&2; }

ours() {  # is PID an etcd whose --data-dir is ours?
  local pid=$1 cmdline
  [[ -r /proc/$pid/cmdline ]] || return 1
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  [[ $cmdline == *etcd* && $cmdline == *"--data-dir $DATA/member"* ]]
}

pid=""
if [[ -f $DATA/etcd.pid ]]; then
  pid=$(cat "$DATA/etcd.pid")
  ours "$pid" || pid=""
fi
if [[ -z $pid ]]; then  # pid file missing or stale: look for our data dir among processes
  for d in /proc/[0-9]*; do
    if ours "${d#/proc/}"; then pid=${d#/proc/}; break; fi
  done
fi

if [[ -z $pid ]]; then
  say "no local etcd from scripts/run.sh is running"
else
  mounts=$(findmnt -n -o TARGET -t fuse.etcdfs 2>/dev/null | tr '\n' ' ' || true)
  if [[ -n ${mounts// /} ]]; then
    say "note: etcdfs mounts exist (some may use this etcd): $mounts"
  fi
  say "stopping etcd pid $pid"
  kill -TERM "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    say "still running after 10 s: SIGKILL"
    kill -KILL "$pid" || true
  fi
  say "stopped"
fi
rm -f "$DATA/etcd.pid"
if [[ $PURGE -eq 1 ]]; then
  rm -rf "$DATA"
  say "removed $DATA"
fi
