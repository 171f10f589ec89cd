#!/bin/bash
# Build netvol as a Docker managed plugin without any image registry.
#
# Usage: scripts/build-plugin.sh [--csi] [--out DIR] [--create NAME [--force-replace]]
#
# Two plugins from one rootfs recipe:
#   (default)  the classic VolumeDriver plugin: plugin-config.json, entry point
#              packaging/plugin/netvol-plugin (`netvol nfs|cifs|efs ...`)
#   --csi      the CSI plugin for Swarm cluster volumes: packaging/csi-plugin/config.json
#              (docker.csicontroller/1.0 + docker.csinode/1.0, propagated mount /data/published),
#              entry point packaging/csi-plugin/netvol-csi-plugin (`netvol csi ...`);
#              use it as a driver with its tag: docker volume create -d netvol-csi:latest ...
#
# Produces the directory `docker plugin create` takes:
#   DIR/config.json   = plugin-config.json (--csi: packaging/csi-plugin/config.json)
#   DIR/rootfs/       = Debian bookworm minbase with nfs-common, cifs-utils and util-linux
#                       (mount.nfs, mount.cifs, mount/umount), the host's node binary at
#                       /usr/local/bin/node, netvol (dist/, package.json, production
#                       node_modules) in /opt/netvol and the entry point
#                       /usr/local/bin/netvol-plugin (--csi: /usr/local/bin/netvol-csi-plugin).
# DIR defaults to $NETVOL_PLUGIN_CACHE/plugin (--csi: $NETVOL_PLUGIN_CACHE/csi-plugin). With --create NAME it then runs
# `docker plugin create NAME DIR` (the docker CLI honours DOCKER_HOST); an existing plugin
# NAME is an error unless --force-replace, which removes it first (`docker plugin rm -f`).
#
# Run `npm run build` first (or `npm run build:plugin`, which does both): dist/ is copied.
#
# Caching (outside the repository, in ${NETVOL_PLUGIN_CACHE:-/var/cache/netvol-plugin}):
#   base-<key>/   the debootstrapped rootfs; <key> hashes the recipe (suite, packages and the
#                 build_base function below), so it is rebuilt only when the recipe changes
#                 (1-3 minutes), never for a netvol change;
#   debs/         downloaded .deb files, reused by the next debootstrap;
#   npm-<key>/    production node_modules; <key> hashes package-lock.json.
#
# Environment:
#   NETVOL_PLUGIN_CACHE   cache directory (default /var/cache/netvol-plugin)
#   NETVOL_PLUGIN_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   NODE_BIN              node binary copied into the plugin (default: `command -v node`);
#                         it must run on bookworm's glibc, which the build checks
#   DOCKER                docker CLI for --create (default: docker)
#
# Needs root (debootstrap, chroot), debootstrap, npm and network access to the Debian mirror
# and the npm registry (the latter only when package-lock.json changed).
#
# Enabling needs the plugin's state directory on the host (a bind mount source dockerd does not
# create):  mkdir -p /var/lib/netvol && docker plugin enable NAME
# or point it elsewhere before enabling:  docker plugin set NAME state.source=/some/dir
# The CSI plugin's is /var/lib/netvol-csi:  mkdir -p /var/lib/netvol-csi && docker plugin enable NAME
set -euo pipefail

REPO="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
CACHE="${NETVOL_PLUGIN_CACHE:-/var/cache/netvol-plugin}"
MIRROR="${NETVOL_PLUGIN_MIRROR:-http://deb.debian.org/debian}"
DOCKER="${DOCKER:-docker}"
SUITE=bookworm
PACKAGES=(nfs-common cifs-utils util-linux libstdc++6 ca-certificates)

OUT=""
CREATE=""
FORCE_REPLACE=false
CSI=false

log() { echo "[build-plugin] $*" >&2; }
die() { echo "[build-plugin] error: $*" >&2; exit 1; }
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) [[ $# -ge 2 ]] || die "--out needs a directory"; OUT="$2"; shift 2 ;;
    --out=*) OUT="${1#--out=}"; shift ;;
    --create) [[ $# -ge 2 ]] || die "--create needs a plugin name"; CREATE="$2"; shift 2 ;;
    --create=*) CREATE="${1#--create=}"; shift ;;
    --force-replace) FORCE_REPLACE=true; shift ;;
    --csi) CSI=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done
if $CSI; then
  KIND=csi
  CONFIG="$REPO/packaging/csi-plugin/config.json"
  ENTRY=netvol-csi-plugin
  ENTRY_SRC="$REPO/packaging/csi-plugin/netvol-csi-plugin"
  STATE_DIR=/var/lib/netvol-csi
  # The entry point's --basedir (the shares' mounts) and swarmkit's published targets.
  RUNTIME_DIRS=(run/docker/plugins var/lib/netvol-csi data/published data/netvol)
else
  KIND=classic
  CONFIG="$REPO/plugin-config.json"
  ENTRY=netvol-plugin
  ENTRY_SRC="$REPO/packaging/plugin/netvol-plugin"
  STATE_DIR=/var/lib/netvol
  RUNTIME_DIRS=(run/docker/plugins var/lib/netvol var/lib/docker-volumes/netshare)
fi
OUT="${OUT:-$CACHE/$([[ $KIND == csi ]] && echo csi-plugin || echo plugin)}"

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot)"
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
command -v npm >/dev/null || die "npm not found"
NODE_BIN="${NODE_BIN:-$(command -v node || true)}"
[[ -n "$NODE_BIN" && -x "$NODE_BIN" ]] || die "no node binary (set NODE_BIN)"
NODE_BIN="$(readlink -f "$NODE_BIN")"
[[ -f "$REPO/dist/cli.js" ]] || die "$REPO/dist/cli.js is missing: run \`npm run build\` first"
[[ -f "$REPO/package-lock.json" ]] || die "$REPO/package-lock.json is missing"
# OUT is deleted and rebuilt: only ever an empty directory or an earlier plugin directory.
OUT="$(readlink -m "$OUT")"
if [[ -e "$OUT" && -n "$(ls -A "$OUT")" && ! ( -f "$OUT/config.json" && -d "$OUT/rootfs" ) ]]; then
  die "refusing to replace $OUT: it is neither empty nor a plugin directory (config.json + rootfs/)"
fi

# Fail before building, not after: replacing a plugin is an explicit choice.
if [[ -n "$CREATE" ]]; then
  command -v "$DOCKER" >/dev/null || die "docker CLI not found (set DOCKER)"
  if "$DOCKER" plugin inspect "$CREATE" >/dev/null 2>&1 && ! $FORCE_REPLACE; then
    die "plugin $CREATE exists; pass --force-replace to remove it first (its volumes' state stays in its state dir on the host)"
  fi
fi

T_START=$(date +%s)

# --- base rootfs: everything that does not depend on netvol's code --------------------------
# The cache key hashes this function's text, so editing it rebuilds the base.
build_base() {
  local root=$1
  local include
  include=$(IFS=,; echo "${PACKAGES[*]}")
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$include" \
    "$SUITE" "$root" "$MIRROR" >&2
  # Trim what a daemon never reads: apt caches and lists, docs, man pages, translations.
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
    "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old "$root"/var/log/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/bash-completion
  mkdir -p "$root"/var/cache/apt/archives/partial "$root"/var/lib/apt/lists/partial
  # nfs-common depends on python3 only for its nfsiostat/mountstats reports, which a plugin
  # never runs: purging it saves a quarter of the base (~35 MB).
  chroot "$root" dpkg --purge --force-depends python3 python3.11 libpython3-stdlib \
    libpython3.11-stdlib python3-minimal python3.11-minimal libpython3.11-minimal >&2
  # Checks: the mount helpers netvol runs are there.
  local tool
  for tool in sbin/mount.nfs sbin/mount.nfs4 sbin/mount.cifs usr/bin/mount usr/bin/umount; do
    [[ -x "$root/$tool" ]] || die "base rootfs lacks /$tool"
  done
}

BASE_KEY="$( { echo "$SUITE"; echo "${PACKAGES[*]}"; declare -f build_base; } | sha256sum | cut -c1-16)"
BASE="$CACHE/base-$BASE_KEY"
if [[ -f "$BASE/.done" ]]; then
  log "reusing base rootfs $BASE"
else
  mkdir -p "$CACHE/debs"
  WORK="$CACHE/base-$BASE_KEY.tmp"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  T0=$(date +%s)
  log "debootstrap $SUITE (${PACKAGES[*]}) from $MIRROR into $WORK (recipe $BASE_KEY); takes 1-3 minutes"
  build_base "$WORK/rootfs"
  touch "$WORK/.done"
  rm -rf "$BASE"
  mv "$WORK" "$BASE"
  log "base rootfs built in $(( $(date +%s) - T0 )) s: $(du -sh "$BASE/rootfs" | cut -f1)"
  # Bases of older recipes are never used again.
  for stale in "$CACHE"/base-*; do
    if [[ "$stale" != "$BASE" && -f "$stale/.done" ]]; then
      log "removing base rootfs of an older recipe: $stale"
      rm -rf "$stale"
    fi
  done
fi

# --- production node_modules, cached by the lock file ----------------------------------------
NPM_KEY="$(sha256sum "$REPO/package-lock.json" | cut -c1-16)"
NPM_DIR="$CACHE/npm-$NPM_KEY"
if [[ -f "$NPM_DIR/.done" ]]; then
  log "reusing production node_modules $NPM_DIR"
else
  T0=$(date +%s)
  rm -rf "$NPM_DIR.tmp"
  mkdir -p "$NPM_DIR.tmp"
  cp "$REPO/package.json" "$REPO/package-lock.json" "$NPM_DIR.tmp/"
  log "npm ci --omit=dev in $NPM_DIR.tmp"
  (cd "$NPM_DIR.tmp" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline >&2)
  touch "$NPM_DIR.tmp/.done"
  rm -rf "$NPM_DIR"
  mv "$NPM_DIR.tmp" "$NPM_DIR"
  log "node_modules installed in $(( $(date +%s) - T0 )) s: $(du -sh "$NPM_DIR/node_modules" | cut -f1)"
  for stale in "$CACHE"/npm-*; do
    if [[ "$stale" != "$NPM_DIR" && -f "$stale/.done" ]]; then rm -rf "$stale"; fi
  done
fi

# --- assemble the plugin directory ------------------------------------------------------------
ROOTFS="$OUT/rootfs"
log "assembling the $KIND plugin in $OUT"
rm -rf "$OUT"
mkdir -p "$OUT"
cp -a --reflink=auto "$BASE/rootfs" "$ROOTFS"
cp "$CONFIG" "$OUT/config.json"

install -m 0755 "$NODE_BIN" "$ROOTFS/usr/local/bin/node"
if ! node_version=$(chroot "$ROOTFS" /usr/local/bin/node --version 2>&1); then
  die "$NODE_BIN does not run in the plugin's rootfs (bookworm): $node_version
  (a missing shared library or a newer glibc than 2.36? set NODE_BIN to a node built for it, e.g. from nodejs.org)"
fi

APP="$ROOTFS/opt/netvol"
mkdir -p "$APP"
cp -a "$REPO/dist" "$APP/dist"
cp "$REPO/package.json" "$APP/package.json"
cp -a "$NPM_DIR/node_modules" "$APP/node_modules"
install -m 0755 "$ENTRY_SRC" "$ROOTFS/usr/local/bin/$ENTRY"
install -m 0644 "$REPO/packaging/csi-plugin/socket-early.mjs" "$APP/socket-early.mjs"
for d in "${RUNTIME_DIRS[@]}"; do mkdir -p "$ROOTFS/$d"; done

if ! app_version=$(chroot "$ROOTFS" /usr/local/bin/node /opt/netvol/dist/cli.js version 2>&1); then
  die "netvol does not start in the plugin's rootfs: $app_version"
fi
if [[ $KIND == csi ]] && ! help=$(chroot "$ROOTFS" /usr/local/bin/node /opt/netvol/dist/cli.js csi --help 2>&1); then
  die "this netvol has no working \`csi\` command (build src/ first): $help"
fi
log "runs in the rootfs: node $node_version, $app_version"

SIZE="$(du -sh "$OUT" | cut -f1)"
log "plugin directory $OUT ($SIZE) built in $(( $(date +%s) - T_START )) s"

# --- optionally hand it to dockerd ----------------------------------------------------------
if [[ -n "$CREATE" ]]; then
  if "$DOCKER" plugin inspect "$CREATE" >/dev/null 2>&1; then
    $FORCE_REPLACE || die "plugin $CREATE exists; pass --force-replace to remove it first (its volumes' state stays in its state dir on the host)"
    log "removing existing plugin $CREATE (docker plugin rm -f)"
    "$DOCKER" plugin rm -f "$CREATE" >&2
  fi
  log "docker plugin create $CREATE $OUT"
  "$DOCKER" plugin create "$CREATE" "$OUT" >&2
  log "created $CREATE ($SIZE unpacked). Next:"
  log "  mkdir -p $STATE_DIR        # the state bind mount's source must exist"
  if [[ $KIND == classic ]]; then
    log "  docker plugin set $CREATE PROTOCOL=nfs NFS_VERSION=4   # optional settings"
  fi
  log "  docker plugin enable $CREATE"
else
  log "next: docker plugin create NAME $OUT && mkdir -p $STATE_DIR && docker plugin enable NAME"
fi
echo "$OUT"
