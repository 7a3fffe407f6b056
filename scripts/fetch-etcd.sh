#!/usr/bin/env bash
# Fetches etcd 3.5 for the tests, without installing anything system-wide, and prints the path
# of its etcd binary:
#
#   ETCDFS_ETCD=$(bash scripts/fetch-etcd.sh) bash scripts/test.sh
#
# Debian 12 ships etcd 3.4; Debian 13 ("trixie") ships 3.5 as etcd-server. This script asks the
# Debian mirror this machine already uses (read from its apt sources) for trixie's package list,
# with apt's state and cache kept in a private directory, downloads the etcd-server package
# there (apt-get download) and unpacks it (dpkg-deb -x). The system's package lists, cache and
# installed packages are not touched. Later runs reuse the unpacked binary.
#
# Cache: $ETCDFS_ETCD_CACHE, default .cache/etcd-trixie in the repository (git ignores it).
# Needs apt-get, dpkg-deb and debian-archive-keyring (which signs trixie too).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${ETCDFS_ETCD_CACHE:-$ROOT/.cache/etcd-trixie}
SUITE=trixie
BIN=$CACHE/root/usr/bin/etcd

log() { echo "fetch-etcd: $*" >&2; }

if [[ -x $BIN ]] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi

# The URI of the Debian archive (not debian-security) in the machine's apt sources, in either
# the deb822 format (*.sources) or the one-line format (*.list).
mirror_uri() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { if ($i !~ /security/ && $(i + 1) ~ /^(bookworm|stable)$/) print $i; break } }' "$f"
  done
}

# The first URI, taken without "| head": under pipefail, awk writing into a closed pipe fails.
uris=$(mirror_uri)
uri=${uris%%$'\n'*}
[[ -n $uri ]] || { log "no Debian mirror found in /etc/apt/sources.list{,.d}"; exit 1; }
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $keyring ]] || { log "$keyring is missing (apt-get install debian-archive-keyring)"; exit 1; }

rm -rf "$CACHE"
mkdir -p "$CACHE/sources" "$CACHE/lists/partial" "$CACHE/cache/archives/partial" "$CACHE/deb"
printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: %s\n' \
  "$uri" "$SUITE" "$keyring" >"$CACHE/sources/$SUITE.sources"
APT=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$CACHE/sources"
     -o "Dir::State::Lists=$CACHE/lists" -o "Dir::Cache=$CACHE/cache"
     -o "APT::Sandbox::User=root" -q)

log "reading $SUITE's package list from the machine's Debian mirror"
apt-get "${APT[@]}" update >"$CACHE/apt.log" 2>&1 || { cat "$CACHE/apt.log" >&2; exit 1; }
log "downloading etcd-server from $SUITE"
(cd "$CACHE/deb" && apt-get "${APT[@]}" download etcd-server >>"$CACHE/apt.log" 2>&1) ||
  { cat "$CACHE/apt.log" >&2; exit 1; }
deb=$(ls "$CACHE"/deb/etcd-server_*.deb)
dpkg-deb -x "$deb" "$CACHE/root"
"$BIN" --version >&2 || { log "the unpacked etcd does not run"; exit 1; }
rm -rf "$CACHE/lists" "$CACHE/cache" "$CACHE/deb" # package lists and the .deb: not needed once unpacked
echo "$BIN"
