#!/bin/bash
# Build (or reuse) a Debian guest image for the netvol labs.
#
# Usage: build-image.sh [SUITE]      SUITE: bookworm (default) or forky; or NETVOL_LAB_SUITE
#   bookworm  docker.io 20.10: the single-guest lab and the classic driver's cluster lab
#   forky     docker.io 28.5 (cluster volumes need 28.2+): the CSI cluster lab
#
# Output (printed as KEY=VALUE lines on stdout, last lines):
#   LAB_IMAGE=<raw ext4 root image>   LAB_KERNEL=<vmlinuz>   LAB_INITRD=<initrd>   LAB_SUITE=<suite>
#
# The image is cached outside the repository in ${NETVOL_LAB_CACHE:-/var/cache/netvol-lab},
# keyed by a hash of the suite's recipe: the package list, the functions below that fill the
# root (common_root and the suite's debootstrap_<suite>) and the host's node binary, which is
# copied into the image. Only these functions are hashed, not the whole file, so a change to
# one suite's recipe does not rebuild the other suite's image. An unchanged recipe reuses the
# cached image; a new one builds it and drops that suite's older images.
#
# Needs root, debootstrap, mkfs.ext4 (e2fsprogs) and network access to deb.debian.org.
set -euo pipefail

CACHE="${NETVOL_LAB_CACHE:-/var/cache/netvol-lab}"
MIRROR="${NETVOL_LAB_MIRROR:-http://deb.debian.org/debian}"
SUITE="${1:-${NETVOL_LAB_SUITE:-bookworm}}"
IMAGE_SIZE=6G
NODE_BIN="${NETVOL_LAB_NODE:-$(command -v node)}"

PACKAGES=(
  linux-image-amd64 kmod iproute2 procps util-linux mount
  nfs-common nfs-kernel-server rpcbind
  cifs-utils samba smbclient
  docker.io containerd runc iptables
  busybox-static ca-certificates libstdc++6 psmisc
  # systemd as an init the systemd lab boots (init=/lib/systemd/systemd); every other lab
  # still boots init=/sbin/lab-init, for which the units enabled in the image do nothing.
  # dbus: dockerd on cgroup v2 under systemd uses the systemd cgroup driver, which runc
  # drives over the system bus.
  systemd systemd-sysv dbus
)

log() { echo "[build-image] $*" >&2; }
die() { echo "[build-image] error: $*" >&2; exit 1; }

debootstrap_bookworm() {
  local root=$1 inc
  inc=$(IFS=,; echo "${PACKAGES[*]}")
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$inc" \
    bookworm "$root" "$MIRROR" >&2
}

# Debian testing. bookworm's debootstrap has no forky script; its sid script serves any
# suite of the current layout. forky's docker.io ships only dockerd: the CLI is docker-cli.
# docker-registry: the registry the CSI lab's manager runs, so the nodes install and upgrade
# the plugins with docker plugin install/upgrade as a Swarm user does.
# debootstrap does not check the Release file's Valid-Until, but apt in the root does, and
# this machine's clock is past the snapshot's: the root's apt is told not to, so a later
# `apt-get` in the image (by hand, while debugging) works.
debootstrap_forky() {
  local root=$1 inc
  inc=$(IFS=,; echo "${PACKAGES[*]},docker-cli,docker-registry")
  debootstrap --variant=minbase --cache-dir="$CACHE/debs" --include="$inc" \
    forky "$root" "$MIRROR" /usr/share/debootstrap/scripts/sid >&2
  echo 'Acquire::Check-Valid-Until "false";' > "$root/etc/apt/apt.conf.d/99netvol-lab-valid-until"
  [[ -x "$root/usr/bin/docker" ]] || die "forky root has no docker CLI (docker-cli)"
  [[ -x "$root/usr/bin/docker-registry" ]] || die "forky root has no docker-registry"
}

# forky builds its initrd with dracut, which runs systemd inside it: under TCG that alone took
# ~70 s to reach /sbin/lab-init, and its module loading failed ("Invalid ELF header magic"),
# leaving the guest without its NIC (nothing loads modules after it: lab-init is PID 1).
# This initrd is busybox and the few modules the lab's virtual hardware needs (root disk,
# ext4, NIC), decompressed and loaded in dependency order; it replaces the dracut one.
initrd_forky() {
  local root=$1 kver mods dir m d out
  kver=$(ls "$root/usr/lib/modules" | sort -V | tail -1)
  mods="$root/usr/lib/modules/$kver"
  dir=$(mktemp -d)
  mkdir -p "$dir/bin" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/newroot" "$dir/lib/modules"
  cp "$root/usr/bin/busybox" "$dir/bin/busybox"
  local order=()
  add_module() {
    local rel=$1 dep
    for dep in $(sed -n "s|^$rel: *||p" "$mods/modules.dep"); do add_module "$dep"; done
    [[ " ${order[*]} " == *" $rel "* ]] || order+=("$rel")
  }
  for m in drivers/block/virtio_blk fs/ext4/ext4 drivers/net/virtio_net drivers/char/hw_random/virtio-rng; do
    add_module "kernel/$m.ko.xz"
  done
  for m in "${order[@]}"; do
    d=$(basename "$m" .xz)
    "$dir/bin/busybox" unxz -c "$mods/$m" > "$dir/lib/modules/$d"
    echo "$d" >> "$dir/modules.order"
  done
  cat > "$dir/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod "/lib/modules/$m" || echo "initrd: insmod $m failed"; done
root=/dev/vda init=/sbin/init
for a in $(cat /proc/cmdline); do
  case "$a" in root=*) root=${a#root=} ;; init=*) init=${a#init=} ;; esac
done
n=0; while [ ! -b "$root" ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
mount -t ext4 -o rw "$root" /newroot || { echo "initrd: cannot mount $root"; exec sh; }
mount --move /dev /newroot/dev
umount /proc /sys
exec switch_root /newroot "$init"
EOF
  chmod 0755 "$dir/init"
  out=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
  (cd "$dir" && find . | "$dir/bin/busybox" cpio -o -H newc 2> /dev/null) | gzip -1 > "$out"
  rm -rf "$dir"
  log "tiny initrd for $kver: ${order[*]##*/} ($(du -k "$out" | cut -f1) KiB)"
}

# Everything after debootstrap, the same for every suite: node, the busybox image for
# `docker import`, the servers' content and configuration, the PID 1 stub.
common_root() {
  local ROOT=$1 WORK=$2
  # --- node: the host binary (it needs only glibc and libstdc++, both suites have them) ---
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
}

declare -F "debootstrap_$SUITE" > /dev/null || die "unknown suite '$SUITE' (bookworm or forky)"
# A suite may replace the distribution's initrd (initrd_<suite>); bookworm keeps its own.
suite_initrd() { declare -F "initrd_$SUITE" > /dev/null && "initrd_$SUITE" "$1"; true; }
KEY="$( { echo "$SUITE"; echo "${PACKAGES[*]}"; declare -f "debootstrap_$SUITE" common_root; declare -F "initrd_$SUITE" > /dev/null && declare -f "initrd_$SUITE"; sha256sum "$NODE_BIN" | cut -d' ' -f1; } | sha256sum | cut -c1-16)"
OUT="$CACHE/$KEY"

mkdir -p "$CACHE"
# Two labs started at once (or a lab and a build by hand) must not both build one key.
exec 9> "$CACHE/.lock-$SUITE"
flock 9

if [[ -f "$OUT/done" ]]; then
  log "reusing cached $SUITE image $OUT (recipe key $KEY)"
else
  mkdir -p "$CACHE/debs"
  WORK="$CACHE/build-$KEY"
  rm -rf "$WORK"
  mkdir -p "$WORK"
  ROOT="$WORK/root"
  T0=$(date +%s)
  log "debootstrap $SUITE into $ROOT (recipe key $KEY)"
  "debootstrap_$SUITE" "$ROOT"
  log "debootstrap done in $(( $(date +%s) - T0 )) s"
  common_root "$ROOT" "$WORK"
  suite_initrd "$ROOT"
  chroot "$ROOT" /usr/local/bin/node --version > /dev/null || die "$NODE_BIN does not run in the $SUITE root"

  mkdir -p "$OUT"
  cp "$(ls "$ROOT"/boot/vmlinuz-* | sort -V | tail -1)" "$OUT/vmlinuz"
  cp "$(ls "$ROOT"/boot/initrd.img-* | sort -V | tail -1)" "$OUT/initrd.img"
  log "mkfs.ext4 -d (size $IMAGE_SIZE)"
  rm -f "$OUT/rootfs.img"
  mkfs.ext4 -q -F -L labroot -d "$ROOT" "$OUT/rootfs.img" "$IMAGE_SIZE" >&2
  rm -rf "$WORK"
  echo "$SUITE" > "$OUT/suite"
  touch "$OUT/done"
  log "built $OUT in $(( $(date +%s) - T0 )) s"
  # Drop this suite's images of older recipes (keep the package cache and other suites).
  # Images from before suites were recorded are bookworm's.
  for d in "$CACHE"/*/; do
    d="${d%/}"
    [[ "$d" == "$OUT" || "$d" == "$CACHE/debs" ]] && continue
    [[ -f "$d/done" ]] || continue
    [[ "$(cat "$d/suite" 2>/dev/null || echo bookworm)" == "$SUITE" ]] && rm -rf "$d"
  done
fi

echo "LAB_IMAGE=$OUT/rootfs.img"
echo "LAB_KERNEL=$OUT/vmlinuz"
echo "LAB_INITRD=$OUT/initrd.img"
echo "LAB_SUITE=$SUITE"
