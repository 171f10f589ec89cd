#!/bin/bash
# netvol fault lab: guest side, for both guests (run-faults.mjs explains the layout).
#   faults-guest.sh init          PID 1's work (from the stub): bring the guest up, then serve
#                                 the host's commands until the host writes <role>/stop
#   faults-guest.sh ACTION ...    one fault or check, run by the host through the command
#                                 queue (nfsd-stop, nfsd-start, nfsd-restart, recreate-export,
#                                 partition, heal, smb-start, smb-restart, status, nfs-mounts,
#                                 holders, netvol-restart, netvol-kill, netvol-start, cifs-start,
#                                 other-server-up)
# The role comes from LABROLE=server|client on the kernel command line.
#   /mnt/host     the repository        /mnt/results  the lab's shared directory on the host
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 LC_ALL=C
HERE=/mnt/host/scripts/lab/faults
RES=/mnt/results
CLI=/mnt/host/dist/cli.js
ROLE=${LABROLE:-$(sed -n 's/.*LABROLE=\([a-z]*\).*/\1/p' /proc/cmdline)}
OUT=$RES/$ROLE
. "$RES/faults.env"
say() { echo "[faults-$ROLE $(cut -d' ' -f1 /proc/uptime)] $*"; }

# ------------------------------------------------------------------ server actions
EXPORT=/srv/export
MARK=/var/lib/faultlab/export-dev
write_exports() {
  echo "$EXPORT $NET(rw,sync,no_root_squash,no_subtree_check)" > /etc/exports
}
nfsd_start() {
  # The grace period can only be set while knfsd is down; 10 s instead of 90 keeps a
  # restart's reclaim window short (the single-guest lab does the same).
  echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null
  echo 10 > /proc/fs/nfsd/nfsv4leasetime 2>/dev/null
  # rpc.mountd 2.6 segfaults under a huge open-file limit (see scripts/lab/guest-init.sh)
  ( ulimit -n 4096; exportfs -r && rpc.nfsd 8 )
}
# What nfs-server.service's ExecStop does: no threads, no exports, empty kernel export cache.
nfsd_stop() { rpc.nfsd 0; exportfs -au; exportfs -f; }
nfsd_threads() { cat /proc/fs/nfsd/threads 2>/dev/null; }

# A new ext4 on the spare disk, mounted over the old export: knfsd's file handles carry the
# file system's UUID, so every handle a client holds becomes stale. The old file system stays
# mounted underneath (its data is what the old writer wrote) and is also mounted at
# /mnt/old-export so the check can read it.
recreate_export() {
  local old new
  old=$(cat "$MARK")
  new=$( [ "$old" = /dev/vdb ] && echo /dev/vdc || echo /dev/vdb )
  exportfs -au
  mkfs.ext4 -q -F -L "export-$(date +%s)" "$new" || return 1
  mkdir -p /mnt/old-export
  mountpoint -q /mnt/old-export || mount "$old" /mnt/old-export
  mount "$new" "$EXPORT" || return 1
  chmod 0777 "$EXPORT"
  echo "$new" > "$MARK"; sync
  exportfs -f
  exportfs -r
  echo "export re-created: $old (uuid $(blkid -s UUID -o value "$old")) -> $new (uuid $(blkid -s UUID -o value "$new"))"
}

partition() {
  # Both directions, on the server: the client sees silence, as with a cut cable.
  if iptables -I INPUT -s "$IP_client" -j DROP && iptables -I OUTPUT -d "$IP_client" -j DROP; then
    echo "iptables DROP to and from $IP_client"
  else
    echo "iptables failed; taking the link down instead"; ip link set dev "$(cat /run/faultlab/dev)" down
  fi
}
heal() {
  iptables -D INPUT -s "$IP_client" -j DROP 2>/dev/null
  iptables -D OUTPUT -d "$IP_client" -j DROP 2>/dev/null
  ip link set dev "$(cat /run/faultlab/dev)" up
  iptables -S | grep -c DROP | sed 's/^/DROP rules left: /'
}

# Samba on the server's root disk, for a CIFS writer: one share for one user, whose password
# comes from faults.env (a lab secret). Started only by the fault that needs it.
SMB_DIR=/srv/smb
smb_start() {
  if [ ! -e /run/faultlab/smb.conf.done ]; then
    mkdir -p "$SMB_DIR" /run/samba /var/log/samba /var/lib/samba/private
    id faulty > /dev/null 2>&1 || useradd -M -s /usr/sbin/nologin -u 1800 faulty
    chown faulty "$SMB_DIR"
    cat > /etc/samba/smb.conf <<SMBCONF
[global]
  server role = standalone server
  disable netbios = yes
  smb ports = 445
  server min protocol = SMB2
  load printers = no
  printcap name = /dev/null
  disable spoolss = yes
  log file = /var/log/samba/log.%m
  # a client's fsync reaches the disk before Samba answers it
  strict sync = yes
[lab]
  path = $SMB_DIR
  valid users = faulty
  read only = no
SMBCONF
    printf '%s\n%s\n' "$SMB_PASSWORD" "$SMB_PASSWORD" | smbpasswd -s -a faulty > /dev/null || return 1
    touch /run/faultlab/smb.conf.done
  fi
  smbd -D || return 1
  local i
  for i in $(seq 1 60); do ss -ltn | grep -q ':445 ' && break; sleep 0.5; done
  echo "smbd listening: $(ss -ltn | grep -c ':445 ') socket(s), pid $(pgrep -o smbd)"
}
# What `systemctl restart smbd` does: stop every smbd (the parent and each client's child),
# then start it again; the client's TCP connection is reset and it must reconnect.
smb_restart() {
  local i
  pkill smbd
  for i in $(seq 1 40); do pgrep smbd > /dev/null || break; sleep 0.25; done
  pgrep smbd > /dev/null && pkill -9 smbd
  smb_start
}

# ------------------------------------------------------------------ client actions
# GET /netvol/status on the plugin socket (the CLI's own request, without loading the CLI).
netvol_status() {
  node -e '
    const h = require("http");
    const r = h.request({ socketPath: "/run/docker/plugins/nfs.sock", path: "/netvol/status", timeout: 10000 }, (res) => {
      let b = ""; res.on("data", (c) => { b += c; }); res.on("end", () => { console.log(b); process.exit(0); });
    });
    r.on("error", (e) => { console.log(JSON.stringify({ error: e.message })); process.exit(1); });
    r.on("timeout", () => { console.log(JSON.stringify({ error: "no answer in 10 s" })); process.exit(1); });
    r.end();'
}
# NFS mounts in the client's mount table: "mountpoint fstype source"
nfs_mounts() { awk '{ for (i = 7; $i != "-"; i++); if ($(i+1) ~ /^nfs/) print $5, $(i+1), $(i+2) }' /proc/self/mountinfo; }

netvol_start() {
  echo "=== start $(date -u +%FT%TZ) uptime $(cut -d' ' -f1 /proc/uptime): netvol $*" >> /var/log/netvol/nfs.log
  setsid node "$CLI" "$@" >> /var/log/netvol/nfs.log 2>&1 < /dev/null &
  echo $! > /run/faultlab/netvol.pid
  local i
  for i in $(seq 1 120); do netvol_status > /dev/null 2>&1 && break; sleep 0.5; done
  if netvol_status > /dev/null 2>&1; then say "netvol up (pid $(cat /run/faultlab/netvol.pid)): $*"; else say "netvol does not answer"; tail -20 /var/log/netvol/nfs.log; return 1; fi
}
# A second NFS server, on the client itself (loopback): the "other server" whose volume must
# keep working while the lab's server is cut off.
other_server_up() {
  mountpoint -q /proc/fs/nfsd && { echo "already up"; return 0; }
  modprobe nfsd
  mkdir -p /srv/other /var/lib/nfs/v4recovery /run/rpc_pipefs
  chmod 0777 /srv/other
  mount -t rpc_pipefs sunrpc /run/rpc_pipefs 2>/dev/null
  mount -t nfsd nfsd /proc/fs/nfsd
  echo "/srv/other 127.0.0.1(rw,sync,no_root_squash,no_subtree_check)" > /etc/exports
  echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null
  echo 10 > /proc/fs/nfsd/nfsv4leasetime 2>/dev/null
  ( ulimit -n 4096; exportfs -ra && rpc.mountd && rpc.nfsd 4 )
  echo "second nfs server up on 127.0.0.1: $(exportfs -v | tr -s ' \t\n' ' ')"
}
# The classic CIFS driver beside the NFS one, as a second systemd unit would run it.
cifs_start() {
  [ -S /run/docker/plugins/cifs.sock ] && { echo "already up"; return 0; }
  modprobe cifs 2>/dev/null
  echo "=== start $(date -u +%FT%TZ): netvol cifs $*" >> /var/log/netvol/cifs.log
  setsid node "$CLI" cifs "$@" >> /var/log/netvol/cifs.log 2>&1 < /dev/null &
  echo $! > /run/faultlab/cifs.pid
  setsid tail -n +1 -F /var/log/netvol/cifs.log >> "$OUT/netvol-cifs-$(cat /proc/sys/kernel/random/boot_id).log" 2>/dev/null < /dev/null &
  local i
  for i in $(seq 1 120); do [ -S /run/docker/plugins/cifs.sock ] && break; sleep 0.5; done
  if [ -S /run/docker/plugins/cifs.sock ]; then echo "netvol cifs up (pid $(cat /run/faultlab/cifs.pid))"; else tail -20 /var/log/netvol/cifs.log; return 1; fi
}
# A crash: SIGKILL, no cleanup; the socket file stays behind as it would.
netvol_kill() {
  local pid; pid=$(cat /run/faultlab/netvol.pid)
  kill -9 "$pid" && echo "netvol pid $pid killed (SIGKILL)"
  for i in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
}
netvol_restart() {
  local pid i
  pid=$(cat /run/faultlab/netvol.pid)
  kill "$pid"
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && { echo "netvol pid $pid did not stop"; return 1; }
  netvol_start "$@"
}

# ------------------------------------------------------------------ bring-up
base_fs() {
  # as scripts/lab/guest-init.sh sets them up (lab-init has mounted proc, sys, dev, 9p)
  if mountpoint -q /run; then mount -o remount,exec,suid /run; else mount -t tmpfs -o mode=0755,nodev tmpfs /run; fi
  mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
  mkdir -p /dev/pts /dev/shm /dev/mqueue
  mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm
  mount -t mqueue mqueue /dev/mqueue 2>/dev/null
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  # dockerd and the plugin's mounts must propagate like on a systemd host
  mount --make-rshared /
  ln -sf /proc/self/fd /dev/fd 2>/dev/null; ln -sf /proc/self/fd/0 /dev/stdin 2>/dev/null
  ln -sf /proc/self/fd/1 /dev/stdout 2>/dev/null; ln -sf /proc/self/fd/2 /dev/stderr 2>/dev/null
  mkdir -p /run/faultlab/cmd /var/log/netvol /run/docker/plugins /var/lib/faultlab
  ulimit -n 1048576 2>/dev/null
}

network() {
  local d dev= ip_var="IP_$ROLE" mac_var="MAC_$ROLE"
  for d in /sys/class/net/*; do [ "$(cat "$d/address" 2>/dev/null)" = "${!mac_var}" ] && dev=$(basename "$d"); done
  ip link set lo up
  [ -n "$dev" ] || { say "no NIC with MAC ${!mac_var}"; return 1; }
  echo "$dev" > /run/faultlab/dev
  ip addr add "${!ip_var}/24" dev "$dev"
  ip link set "$dev" up
  hostname "fault-$ROLE"
  printf '127.0.0.1 localhost\n%s fault-server\n%s fault-client\n' "$IP_server" "$IP_client" > /etc/hosts
}

server_up() {
  modprobe nfsd
  mkdir -p "$EXPORT" /run/rpcbind /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/v4recovery /run/rpc_pipefs
  if [ ! -s "$MARK" ]; then
    mkfs.ext4 -q -F -L export-first /dev/vdb && echo /dev/vdb > "$MARK" && sync
  fi
  # After a power cut this replays the journal: what fsync made durable must be there.
  mount "$(cat "$MARK")" "$EXPORT" || say "cannot mount the export disk $(cat "$MARK")"
  chmod 0777 "$EXPORT"
  mount -t rpc_pipefs sunrpc /run/rpc_pipefs 2>/dev/null
  mount -t nfsd nfsd /proc/fs/nfsd
  write_exports
  ( ulimit -n 4096; rpcbind -w; rpc.statd --no-notify; rpc.mountd )
  nfsd_start
  say "nfs server up: $(exportfs -v | tr -s ' \t\n' ' ') on $(cat "$MARK")"
}

client_up() {
  mkdir -p /run/rpcbind /var/lib/nfs/sm /var/lib/nfs/sm.bak
  ( ulimit -n 4096; rpcbind -w; rpc.statd --no-notify )
  # As on a node that has mounted NFS before: under TCG a first modprobe costs 10-20 s.
  modprobe -a nfs nfsv4 2>/dev/null
  # containerd knows nothing of volumes: it may start with netvol, which saves a TCG minute.
  (containerd > /var/log/containerd.log 2>&1 &)
  # netvol before dockerd, as a systemd unit ordered Before=docker.service would start it.
  # shellcheck disable=SC2086
  netvol_start $NETVOL_ARGS
  # A live copy on the host: the guest's own disk loses its page cache in a power cut.
  tail -n +1 -F /var/log/netvol/nfs.log >> "$OUT/netvol-$BOOT_ID.log" 2>/dev/null &
  sh "$HERE/../dockerd-after-containerd.sh" /var/log/dockerd.log
  for i in $(seq 1 300); do timeout -k 2 10 docker info > /dev/null 2>&1 && break; sleep 0.5; done
  say "dockerd up: $(docker version -f '{{.Server.Version}}' 2>&1)"
  if ! docker image inspect busybox:latest > /dev/null 2>&1; then
    timeout -k 2 120 docker import /opt/busybox.tar busybox:latest > /dev/null && say "busybox image imported"
  fi
}

# The host's commands: OUT/cmd/<id>.sh (first line "# timeout N"), answered by <id>.out and
# then <id>.rc. Each runs in the background under its own timeout, so a command stuck on a
# dead server never blocks the next one (the host asks for status while a fault is on).
serve() {
  local f id t
  while [ ! -e "$OUT/stop" ]; do
    for f in "$OUT"/cmd/*.sh; do
      [ -e "$f" ] || continue
      id=$(basename "$f" .sh)
      mv "$f" "/run/faultlab/cmd/$id.sh" 2>/dev/null || continue
      t=$(sed -n '1s/^# timeout //p' "/run/faultlab/cmd/$id.sh")
      (
        timeout -k 5 "${t:-60}" bash "/run/faultlab/cmd/$id.sh" > "$OUT/cmd/$id.out" 2>&1
        echo $? > "$OUT/cmd/.$id.rc"
        mv "$OUT/cmd/.$id.rc" "$OUT/cmd/$id.rc"
      ) &
    done
    sleep 0.3
  done
}

collect_logs() {
  local d="$OUT/logs-$BOOT_ID"
  mkdir -p "$d"
  cp /var/log/netvol/*.log /var/log/dockerd.log /var/log/containerd.log "$d/" 2>/dev/null
  cat /proc/self/mountinfo > "$d/mountinfo-at-end.txt"
  cat /proc/fs/nfsfs/volumes > "$d/nfsfs-volumes.txt" 2>/dev/null
  dmesg > "$d/dmesg.txt" 2>/dev/null
  [ "$ROLE" = server ] && exportfs -v > "$d/exportfs.txt" 2>&1
  true
}

init() {
  BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)
  say "starting (boot id $BOOT_ID)"
  base_fs
  date -s "@$(cat "$RES/clock")" > /dev/null && say "clock set from the host: $(date -u +%T.%N)"
  mkdir -p "$OUT/cmd"
  echo "$(date -u +%FT%TZ) boot $BOOT_ID" >> "$OUT/boots.log"
  network
  # The kernel's NFS messages ("server not responding", "OK"), kept on the host as they come.
  dmesg -w >> "$OUT/dmesg-$BOOT_ID.log" 2>&1 &
  case "$ROLE" in
    server) server_up ;;
    client) client_up ;;
  esac
  echo "$BOOT_ID" > "$OUT/.ready"; mv "$OUT/.ready" "$OUT/ready"
  say "ready"
  serve
  say "stop requested"
  collect_logs
  if [ "$ROLE" = client ]; then
    kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null
    for i in $(seq 1 40); do [ -e /var/run/docker.pid ] || break; sleep 0.5; done
    kill "$(cat /run/faultlab/netvol.pid)" 2>/dev/null
    umount -a -t nfs,nfs4 -l 2>/dev/null
  fi
  sync
  touch "$OUT/stopped"
}

# ------------------------------------------------------------------ dispatch
case "${1:-}" in
  init) init ;;
  nfsd-stop) nfsd_stop; echo "threads: $(nfsd_threads)" ;;
  nfsd-start) nfsd_start; echo "threads: $(nfsd_threads)" ;;
  nfsd-restart) nfsd_stop; nfsd_start; echo "threads: $(nfsd_threads)" ;;
  recreate-export) recreate_export ;;
  partition) partition ;;
  heal) heal ;;
  smb-start) smb_start ;;
  smb-restart) smb_restart ;;
  other-server-up) other_server_up ;;
  cifs-start) shift; cifs_start "$@" ;;
  netvol-kill) netvol_kill ;;
  netvol-start) shift; netvol_start "$@" ;;
  # Who still holds the volume's mount after its last container is gone (an EBUSY umount).
  holders)
    # by the superblock's device number: inside a container the mountpoint reads /data
    dev=$(awk -v p="$2" '$5 == p { print $3 }' /proc/self/mountinfo | tail -1)
    echo "fuser: $(fuser -vm "$2" 2>&1 | tr -s ' \n' ' ')"
    echo "processes whose mount namespace has $dev: $(grep -l " $dev " /proc/[0-9]*/mountinfo 2>/dev/null | cut -d/ -f3 | while read -r p; do echo "$p $(readlink /proc/$p/ns/mnt) $({ tr '\0' ' ' < /proc/$p/cmdline; } 2>/dev/null | cut -c1-60)"; done | sort -k2,2 -u | tr '\n' ';')" ;;
  status) netvol_status ;;
  nfs-mounts) nfs_mounts ;;
  netvol-restart) shift; netvol_restart "$@" ;;
  *) echo "unknown action '${1:-}'" >&2; exit 2 ;;
esac
