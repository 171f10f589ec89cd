#!/bin/bash
# A docker data root on an ext4 disk image, for the Dockerfile lab: a private dockerd on the
# host (the same docker.io 20.10 as the bookworm guest's) works on it before and after the
# guest, whose dockerd uses it as /var/lib/docker. Under emulation `docker import` of the base
# image took 180-220 s and `docker export` of the result 70 s; here they take seconds.
#
#   docker-root.sh import DISK TAR NAME    make DISK (ext4, 6 GiB sparse), `docker import` TAR as NAME
#   docker-root.sh export DISK IMAGE DIR   unpack a container of IMAGE (built on DISK by the guest) into DIR
set -euo pipefail
cmd=${1:-} DISK=${2:-}
case $cmd in import | export) [ $# -eq 4 ] || { echo "usage: docker-root.sh import DISK TAR NAME | export DISK IMAGE DIR" >&2; exit 2; } ;;
  *) echo "usage: docker-root.sh import DISK TAR NAME | export DISK IMAGE DIR" >&2; exit 2 ;; esac

MNT=$(mktemp -d /tmp/nvdr.XXXXXX)
# Short paths: dockerd and containerd put Unix sockets under these.
RUN=$(mktemp -d /tmp/nvdx.XXXXXX)
SOCK=$RUN/d.sock
NS=netvol-docker-root-$$
PID=
stop() {
  if [ -n "$PID" ]; then kill "$PID" 2> /dev/null || true; wait "$PID" 2> /dev/null || true; fi
  umount "$MNT" 2> /dev/null || true
  rmdir "$MNT" 2> /dev/null || true
  rm -rf "$RUN"
}
trap stop EXIT

if [ "$cmd" = import ]; then
  rm -f "$DISK"
  truncate -s 6G "$DISK"
  mkfs.ext4 -q -F -L docker "$DISK"
fi
mount -o loop "$DISK" "$MNT"
dockerd --data-root="$MNT" --exec-root="$RUN/x" --pidfile="$RUN/pid" --host="unix://$SOCK" \
  --containerd-namespace="$NS" --containerd-plugins-namespace="$NS-p" \
  --bridge=none --iptables=false --ip6tables=false --ip-masq=false --log-level=warn \
  > "$RUN/dockerd.log" 2>&1 &
PID=$!
d() { DOCKER_HOST="unix://$SOCK" docker "$@"; }
for _ in $(seq 1 150); do d version > /dev/null 2>&1 && break; sleep 0.2; done
d version > /dev/null || { cat "$RUN/dockerd.log" >&2; exit 1; }

case $cmd in
  import)
    d import - "$4" < "$3" > /dev/null
    d image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' "$4"
    ;;
  export)
    d image inspect "$3" > /dev/null || { echo "docker-root.sh: no image $3 on $DISK: $(d image ls 2>&1)" >&2; exit 1; }
    cid=$(d create "$3")
    mkdir -p "$4"
    d export "$cid" | tar -x -C "$4"
    d rm "$cid" > /dev/null
    echo "exported $3 ($(d image inspect -f '{{.Id}}' "$3")) to $4: $(du -sh "$4" | cut -f1)"
    ;;
esac
