#!/bin/bash
# Build (or reuse) the Debian bookworm guest image for the netvol real-mount lab.
#
# Output (printed as KEY=VALUE lines on stdout, last lines):
#   LAB_IMAGE=<raw ext4 root image>   LAB_KERNEL=<vmlinuz>   LAB_INITRD=<initrd>
#
# The image is cached outside the repository in ${NETVOL_LAB_CACHE:-/var/cache/netvol-lab},
# keyed by a hash of this script (which holds the package list and the in-image files)
# plus the host's node binary, which is copied into the image. A changed recipe gives a
# new key and a fresh build; an unchanged one reuses the cached image.
#
# Needs root, debootstrap, mkfs.ext4 (e2fsprogs) and network access to deb.debian.org.
set -euo pipefail

CACHE="${NETVOL_LAB_CACHE:-/var/cache/netvol-lab}"
MIRROR="${NETVOL_LAB_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
IMAGE_SIZE=6G
NODE_BIN="${NETVOL_LAB_NODE:-$(command -v node)}"

PACKAGES=(
  linux-image-amd64 kmod iproute2 procps util-linux mount
  nfs-common nfs-kernel-server rpcbind
  cifs-utils samba smbclient
  docker.io containerd runc iptables
  busybox-static ca-certificates libstdc++6 psmisc
)

SELF="$(readlink -f "${BASH_SOURCE[0]}")"
KEY="$( { cat "$SELF"; echo "${PACKAGES[*]}"; sha256sum "$NODE_BIN" | cut -d' ' -f1; } | sha256sum | cut -c1-16)"
OUT="$CACHE/$KEY"

log() { echo "[build-image] $*" >&2; }

if [[ -f "$OUT/done" ]]; then
  log "reusing cached image $OUT (recipe key $KEY)"
else
  mkdir -p "$CACHE/debs"
  WORK="$CACHE/build-$KEY"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  ROOT="$WORK/root"
  T0=$(date +%s)
  log "debootstrap $SUITE into $ROOT (recipe key $KEY)"
  inc=$(IFS=,; echo "${PACKAGES[*]}")
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$inc" \
    "$SUITE" "$ROOT" "$MIRROR" >&2
  log "debootstrap done in $(( $(date +%s) - T0 )) s"

  # --- node (host binary; same glibc as bookworm) ---
  install -m 0755 "$NODE_BIN" "$ROOT/usr/local/bin/node"

  # --- busybox image tarball for `docker import` ---
  BB="$WORK/bb"
  mkdir -p "$BB/bin" "$BB/tmp" "$BB/data" "$BB/etc" "$BB/proc" "$BB/sys" "$BB/dev"
  cp "$ROOT/bin/busybox" "$BB/bin/busybox"
  for app in $("$ROOT/bin/busybox" --list); do
    [[ "$app" == busybox ]] || ln -sf busybox "$BB/bin/$app"
  done
  echo 'root:x:0:0:root:/:/bin/sh' > "$BB/etc/passwd"
  echo 'root:x:0:' > "$BB/etc/group"
  mkdir -p "$ROOT/opt"
  tar -C "$BB" -cf "$ROOT/opt/busybox.tar" .

  # --- servers' content and configuration ---
  mkdir -p "$ROOT/srv/nfs/a" "$ROOT/srv/nfs/b" "$ROOT/srv/nfs/c" "$ROOT/srv/nfs/d" \
           "$ROOT/srv/nfs/e" "$ROOT/srv/nfs/f" "$ROOT/srv/nfs/g" "$ROOT/srv/nfs/h" \
           "$ROOT/srv/efs/sub/dir" "$ROOT/srv/smb/private" "$ROOT/srv/smb/public"
  chmod 0777 "$ROOT/srv/smb/public"
  # NFS: clients are told apart by the address they connect to (a local connection's
  # source address is the destination address): 10.99.0.1 is the plain NFS server (v3 and
  # v4 see the same paths, /srv/nfs/...); 10.99.0.2 is "EFS", whose NFSv4 root is /srv/efs.
  cat > "$ROOT/etc/exports" <<'EOF'
/srv/nfs   10.99.0.1(rw,sync,no_root_squash,no_subtree_check,crossmnt) 127.0.0.1(rw,sync,no_root_squash,no_subtree_check,crossmnt)
/srv/efs   10.99.0.2(rw,sync,no_root_squash,no_subtree_check,fsid=0,crossmnt)
EOF
  cat > "$ROOT/etc/samba/smb.conf" <<'EOF'
[global]
  workgroup = WORKGROUP
  server role = standalone server
  map to guest = Bad User
  guest account = nobody
  disable netbios = yes
  smb ports = 445
  server min protocol = SMB2
  load printers = no
  printing = bsd
  printcap name = /dev/null
  disable spoolss = yes
  log file = /var/log/samba/log.%m
  log level = 1
  interfaces = lo dummy0
  bind interfaces only = no

[private]
  path = /srv/smb/private
  valid users = alice
  read only = no
  create mask = 0664
  directory mask = 0775

[public]
  path = /srv/smb/public
  guest ok = yes
  guest only = yes
  read only = no
  force user = nobody
  create mask = 0666
  directory mask = 0777
EOF
  chroot "$ROOT" useradd -M -s /usr/sbin/nologin -u 1500 alice
  chroot "$ROOT" chown alice /srv/smb/private
  printf 'S3cret-pa55\nS3cret-pa55\n' | chroot "$ROOT" smbpasswd -s -a alice >&2
  # an unprivileged user for "readable by non-root" checks
  chroot "$ROOT" useradd -M -s /bin/sh -u 1600 mallory

  cat > "$ROOT/etc/hosts" <<'EOF'
127.0.0.1 localhost
10.99.0.1 lab nfs-server smb-server
10.99.0.2 fs-12345678.efs.us-east-1.amazonaws.com
EOF
  echo lab > "$ROOT/etc/hostname"
  mkdir -p "$ROOT/etc/docker"
  cat > "$ROOT/etc/docker/daemon.json" <<'EOF'
{ "log-level": "warn", "storage-driver": "overlay2", "iptables": true, "ip6tables": false }
EOF
  printf '/dev/vda / ext4 rw 0 1\n' > "$ROOT/etc/fstab"
  mkdir -p "$ROOT/mnt/host" "$ROOT/mnt/results"

  # --- PID 1 stub: mount the shares, then hand over to the repo's guest-init.sh ---
  cat > "$ROOT/sbin/lab-init" <<'EOF'
#!/bin/sh
# netvol lab PID 1 stub. The real work lives in the repo (scripts/lab/guest-init.sh).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev 2>/dev/null
mount -o remount,rw /
modprobe 9pnet_virtio; modprobe 9p
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose host0 /mnt/host
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results /mnt/results
if [ -x /mnt/host/scripts/lab/guest-init.sh ]; then
  /mnt/host/scripts/lab/guest-init.sh
else
  echo "lab-init: /mnt/host/scripts/lab/guest-init.sh missing"
fi
echo "lab-init: powering off"
sync
echo o > /proc/sysrq-trigger
sleep 30
EOF
  chmod 0755 "$ROOT/sbin/lab-init"

  # keep the image lean
  rm -rf "$ROOT/var/cache/apt/archives/"*.deb "$ROOT/usr/share/doc" "$ROOT/usr/share/man" "$ROOT/usr/share/locale"

  mkdir -p "$OUT"
  cp "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" "$OUT/vmlinuz"
  cp "$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)" "$OUT/initrd.img"
  log "mkfs.ext4 -d (size $IMAGE_SIZE)"
  rm -f "$OUT/rootfs.img"
  mkfs.ext4 -q -F -L labroot -d "$ROOT" "$OUT/rootfs.img" "$IMAGE_SIZE" >&2
  rm -rf "$WORK"
  touch "$OUT/done"
  log "built $OUT in $(( $(date +%s) - T0 )) s"
  # drop older recipes' images (keep the package cache)
  for d in "$CACHE"/*/; do
    d="${d%/}"
    [[ "$d" == "$OUT" || "$d" == "$CACHE/debs" ]] && continue
    [[ -f "$d/done" ]] && rm -rf "$d"
  done
fi

echo "LAB_IMAGE=$OUT/rootfs.img"
echo "LAB_KERNEL=$OUT/vmlinuz"
echo "LAB_INITRD=$OUT/initrd.img"
