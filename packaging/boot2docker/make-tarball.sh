#!/bin/sh
# Builds the tarball install-netvol.sh copies to boot2docker nodes: dist/, package.json,
# production node_modules, a node binary and the bin/ scripts of this directory.
#
#   npm run build && packaging/boot2docker/make-tarball.sh [OUT.tgz]
#
# Default OUT: netvol-<version>-linux-<arch>.tgz in the current directory.
# NODE_BINARY=/path/to/node ships another node (default: the one on PATH). It must run on
# the nodes: same CPU architecture, and a C library the guest has.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
[ -f "$repo/dist/cli.js" ] || { echo "make-tarball.sh: no dist/cli.js: run npm run build first" >&2; exit 1; }
node=${NODE_BINARY:-$(command -v node)}
version=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$repo/package.json" | head -n 1)
out=${1:-$PWD/netvol-$version-linux-$(uname -m).tgz}

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
cp -R "$repo/dist" "$repo/package.json" "$repo/package-lock.json" "$repo/node_modules" "$stage/"
# Offline: drops the dev dependencies from the copy, never touches the checkout.
(cd "$stage" && npm prune --omit=dev --no-audit --no-fund >/dev/null)
mkdir "$stage/bin"
cp -L "$node" "$stage/bin/node"
cp "$here/bin/netvol" "$here/bin/netvol-start" "$stage/bin/"
chmod 755 "$stage/bin/node" "$stage/bin/netvol" "$stage/bin/netvol-start"
tar -czf "$out" -C "$stage" .
echo "$out"
