#!/bin/bash
# Creates the managed plugin with a private dockerd on the host and leaves that dockerd's
# plugin store as a disk image (DATA/plugins.img) that the guest mounts on /var/lib/docker/plugins.
# Why not `docker plugin create` inside the guest: dockerd gzips the whole rootfs (~210 MB,
# mostly the node binary), which takes over 10 minutes under TCG emulation; here it takes
# seconds, with the same docker.io. The guest's dockerd loads the plugin at start, disabled.
#   plugin-store.sh PLUGIN_DIR NAME DATA [PLUGIN_DIR NAME]...
# Further pairs create more plugins in the same store (the CSI lab's manager pushes several to
# its registry).
set -euo pipefail
PLUGIN_DIR=$1 NAME=$2 DATA=$3
shift 3
PAIRS=("$PLUGIN_DIR" "$NAME" "$@")
(( ${#PAIRS[@]} % 2 == 0 )) || { echo "plugin-store.sh: a PLUGIN_DIR without a NAME" >&2; exit 2; }
rm -rf "$DATA"
mkdir -p "$DATA/root"
# Short paths: dockerd and containerd put Unix sockets under these.
RUN=$(mktemp -d /tmp/nvps.XXXXXX)
SOCK="$RUN/d.sock"
NS="netvol-plugin-store-$$"
dockerd --data-root="$DATA/root" --exec-root="$RUN/x" --pidfile="$RUN/pid" --host="unix://$SOCK" \
  --containerd-namespace="$NS" --containerd-plugins-namespace="$NS-p" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --log-level=warn \
  > "$DATA/dockerd.log" 2>&1 &
PID=$!
stop() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; rm -rf "$RUN"; }
trap stop EXIT
for _ in $(seq 1 150); do DOCKER_HOST="unix://$SOCK" docker version > /dev/null 2>&1 && break; sleep 0.2; done
for ((i = 0; i < ${#PAIRS[@]}; i += 2)); do
  DOCKER_HOST="unix://$SOCK" docker plugin create "${PAIRS[i+1]}" "${PAIRS[i]}"
done
DOCKER_HOST="unix://$SOCK" docker plugin ls
stop
trap - EXIT
# Only the plugin store goes to the guest (plugins/<id>/{config.json,rootfs} and the blobs), as
# an ext4 disk image: a virtio disk reads far faster than 9p under emulation, and needs no copy.
# 1 GiB spare: a node installs and upgrades plugins on this disk too (the CSI lab's manager).
size_mb=$(( $(du -sm "$DATA/root/plugins" | cut -f1) * 3 / 2 + 1024 ))
mkfs.ext4 -q -F -d "$DATA/root/plugins" "$DATA/plugins.img" "${size_mb}M"
rm -rf "$DATA/root"
ls -la "$DATA/plugins.img"
