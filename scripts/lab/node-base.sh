#!/bin/bash
# Build (or reuse) the stand-in for the Dockerfile's base image, node:20-bookworm-slim, as a tar
# for `docker import` (no image registry is reachable from the labs).
#
# Usage: node-base.sh        prints NODE_BASE_TAR=<path> on stdout (last line)
#
# What it holds, and where it differs from the real image:
#   - a debootstrapped Debian bookworm (minbase), like the real image's debian:bookworm-slim;
#   - this machine's node binary at /usr/local/bin/node and its npm at
#     /usr/local/lib/node_modules/npm (/usr/local/bin/npm, npx), where the real image has them;
#   - instead of the Debian mirror: a local apt repository in /var/local/debian holding the
#     .debs of the packages the Dockerfile installs (nfs-common, cifs-utils and what they
#     need), with sources.list naming only it. `apt-get update && apt-get install` in the
#     Dockerfile run for real and install from it;
#   - instead of the npm registry: npm's cache filled with every package of package-lock.json,
#     and /usr/local/etc/npmrc (npm's global config under that prefix) set offline. `npm ci`
#     in the Dockerfile runs for real and installs from it.
#
# Cached in ${NETVOL_LAB_CACHE:-/var/cache/netvol-lab}/node-base-<key>/, keyed by this file,
# the node binary and package-lock.json. Needs root, debootstrap and the Debian mirror and npm
# registry (only to build it).
set -euo pipefail

REPO="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
CACHE="${NETVOL_LAB_CACHE:-/var/cache/netvol-lab}"
MIRROR="${NETVOL_LAB_MIRROR:-http://deb.debian.org/debian}"
NODE_BIN="$(readlink -f "${NETVOL_LAB_NODE:-$(command -v node)}")"
NPM_DIR="$(cd "$(dirname "$(readlink -f "$(command -v npm)")")/.." && pwd)"
# What the Dockerfile's second stage installs with apt-get.
APT_PACKAGES=(nfs-common cifs-utils util-linux)

log() { echo "[node-base] $*" >&2; }
die() { echo "[node-base] error: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap and chroot)"
[[ -f "$NPM_DIR/bin/npm-cli.js" ]] || die "npm not found next to $(command -v npm)"

KEY="$( { cat "${BASH_SOURCE[0]}"; sha256sum "$NODE_BIN" | cut -c1-64; "$NODE_BIN" "$NPM_DIR/bin/npm-cli.js" --version; sha256sum "$REPO/package-lock.json" | cut -c1-64; } | sha256sum | cut -c1-16)"
OUT="$CACHE/node-base-$KEY"
TAR="$OUT/node-base.tar"
if [[ -f "$OUT/.done" ]]; then
  log "reusing $TAR"
  echo "NODE_BASE_TAR=$TAR"
  exit 0
fi

T0=$(date +%s)
WORK="$OUT.tmp"
rm -rf "$WORK"
mkdir -p "$WORK" "$CACHE/node-base-debs"
ROOT="$WORK/rootfs"
log "debootstrap bookworm (minbase) into $ROOT"
debootstrap --variant=minbase --cache-dir="$CACHE/node-base-debs" bookworm "$ROOT" "$MIRROR" >&2

# Slim, as the real image is: no docs, man pages or translations, and not the .debs
# debootstrap leaves behind.
rm -rf "$ROOT"/var/cache/apt/archives/*.deb "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* \
  "$ROOT"/usr/share/info/* "$ROOT"/usr/share/locale/* "$ROOT"/var/log/*

# The Debian mirror the Dockerfile's apt-get would use, reduced to what it installs.
log "fetching ${APT_PACKAGES[*]} and what they need into the image's local apt repository"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
echo "deb $MIRROR bookworm main" > "$ROOT/etc/apt/sources.list"
chroot "$ROOT" apt-get update -q >&2
chroot "$ROOT" apt-get install -q -y --no-install-recommends --download-only "${APT_PACKAGES[@]}" >&2
REPO_DIR="$ROOT/var/local/debian"
mkdir -p "$REPO_DIR"
mv "$ROOT"/var/cache/apt/archives/*.deb "$REPO_DIR/"
# A flat repository's index: each package's control fields and where its file is.
for deb in "$REPO_DIR"/*.deb; do
  dpkg-deb -f "$deb"
  echo "Filename: ./$(basename "$deb")"
  echo "Size: $(stat -c %s "$deb")"
  echo "SHA256: $(sha256sum "$deb" | cut -d' ' -f1)"
  echo
done > "$REPO_DIR/Packages"
echo "deb [trusted=yes] file:/var/local/debian ./" > "$ROOT/etc/apt/sources.list"
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT/etc/resolv.conf"
mkdir -p "$ROOT/var/lib/apt/lists/partial"
log "local apt repository: $(ls "$REPO_DIR"/*.deb | wc -l) packages"

log "node $("$NODE_BIN" --version) and npm $("$NODE_BIN" "$NPM_DIR/bin/npm-cli.js" --version) into /usr/local"
install -m 0755 "$NODE_BIN" "$ROOT/usr/local/bin/node"
mkdir -p "$ROOT/usr/local/lib/node_modules" "$ROOT/usr/local/etc"
cp -a "$NPM_DIR" "$ROOT/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ROOT/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ROOT/usr/local/bin/npx"
chroot "$ROOT" /usr/local/bin/node --version > /dev/null || die "$NODE_BIN does not run on bookworm's libraries"

# The npm registry, reduced to package-lock.json: its packages in npm's cache.
log "filling npm's cache with package-lock.json's packages"
mkdir -p "$WORK/npm-fill"
cp "$REPO/package.json" "$REPO/package-lock.json" "$WORK/npm-fill/"
(cd "$WORK/npm-fill" && npm ci --cache "$ROOT/root/.npm" --ignore-scripts --no-audit --no-fund --prefer-offline > /dev/null)
rm -rf "$WORK/npm-fill"
cat > "$ROOT/usr/local/etc/npmrc" <<'NPMRC'
cache=/root/.npm
offline=true
audit=false
fund=false
update-notifier=false
NPMRC
chroot "$ROOT" /usr/local/bin/npm --version > /dev/null || die "npm does not run in the image"

tar -C "$ROOT" --numeric-owner -cf "$WORK/node-base.tar" .
rm -rf "$ROOT"
touch "$WORK/.done"
rm -rf "$OUT"
mv "$WORK" "$OUT"
for stale in "$CACHE"/node-base-*; do
  if [[ "$stale" != "$OUT" && -f "$stale/.done" ]]; then rm -rf "$stale"; fi
done
log "built $TAR ($(du -sh "$TAR" | cut -f1)) in $(( $(date +%s) - T0 )) s"
echo "NODE_BASE_TAR=$TAR"
