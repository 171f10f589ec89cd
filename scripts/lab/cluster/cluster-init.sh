#!/bin/bash
# netvol cluster lab: guest side, one script for all three nodes. Run as PID 1's work by the
# stub that scripts/lab/cluster/run-cluster.mjs puts where the image's /sbin/lab-init looks
# (lab-init has mounted /proc, /sys, /dev and the shares; it powers off when we return):
#   /mnt/host     the repository (dist/cli.js and these scripts)
#   /mnt/results  the cluster's shared directory on the host (see run-cluster.mjs)
# The node comes from LABNODE=a|b|c on the kernel command line:
#   a  NFS server (the seed's export) and Swarm manager; drives cluster-scenario.mjs
#   b, c  Swarm workers: netvol started before dockerd, as a systemd unit would order it
# With LAB_KIND=csi in cluster.env (the CSI lab) the roles come from csi-node.sh instead; the
# base set-up below (filesystems, clock, wire, the command runner) is the same.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
HERE=/mnt/host/scripts/lab/cluster
RES=/mnt/results
CLI=/mnt/host/dist/cli.js
NODE=${LABNODE:-$(sed -n 's/.*LABNODE=\([a-z]\).*/\1/p' /proc/cmdline)}
export LABNODE=$NODE
OUT=$RES/nodes/$NODE
BOOT_ID=$(cat /proc/sys/kernel/random/boot_id)
say() { echo "[cluster-$NODE $(cut -d' ' -f1 /proc/uptime)] $*"; }
say "cluster-init starting (boot id $BOOT_ID)"
. "$RES/cluster.env"
mkdir -p "$OUT"
echo "$(date -u +%FT%TZ) boot $BOOT_ID" >> "$OUT/boots.log"

# --- base filesystems (as scripts/lab/guest-init.sh sets them up) ---
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
mkdir -p /run/lab /var/log/netvol /run/docker/plugins /run/sendsigs.omit.d
ulimit -n 1048576 2>/dev/null

# --- clock: from the host (see run-cluster.mjs), so log.txt lines from different nodes and
# the host's kill times compare; the RTC alone gives whole seconds at best ---
date -s "@$(cat "$RES/clock")" > /dev/null && say "clock set from the host: $(date -u +%T.%N)"

# --- identity and the wire ---
hostname "node-$NODE"
echo "node-$NODE" > /etc/hostname
{
  echo "127.0.0.1 localhost"
  for n in $NODES; do ip_var="IP_$n"; echo "${!ip_var} node-$n"; done
} > /etc/hosts
# NIC names depend on udev in the initramfs: find ours by MAC.
dev_of_mac() { local d; for d in /sys/class/net/*; do [ "$(cat "$d/address" 2>/dev/null)" = "$1" ] && basename "$d"; done; }
ip link set lo up
macs_var="MACS_$NODE"; ip_var="IP_$NODE"
MY_IP=${!ip_var}
if [ "$NODE" = a ]; then
  # Two NICs, one per worker (socket netdevs are point-to-point), joined by a bridge so
  # B and C also reach each other (Swarm's gossip runs worker to worker).
  modprobe bridge
  ip link add br0 type bridge stp_state 0 forward_delay 0
  for mac in ${!macs_var}; do
    dev=$(dev_of_mac "$mac")
    [ -n "$dev" ] || { say "no NIC with MAC $mac"; continue; }
    ip link set "$dev" master br0
    ip link set "$dev" up
  done
  ip addr add "$MY_IP/24" dev br0
  ip link set br0 up
else
  dev=$(dev_of_mac "${!macs_var}")
  ip addr add "$MY_IP/24" dev "$dev"
  ip link set "$dev" up
fi
say "network: $(ip -br addr | grep -v '^lo' | tr -s ' ' | tr '\n' ';')"

# Development aid: the guests have no shell to log into, so a file cmd.sh dropped into this
# node's share directory is run once and its output left in cmd.out.
serve_cmds() {
  while :; do
    if [ -f "$OUT/cmd.sh" ]; then
      mv "$OUT/cmd.sh" /tmp/cmd.sh
      bash /tmp/cmd.sh > "$OUT/.cmd.out" 2>&1
      mv "$OUT/.cmd.out" "$OUT/cmd.out"
    fi
    sleep 2
  done
}
serve_cmds &

start_docker() {
  (containerd > /var/log/containerd.log 2>&1 &)
  # In the background: the boot goes on while containerd starts.
  sh "$HERE/../dockerd-after-containerd.sh" /var/log/dockerd.log &
}
wait_docker() {
  # By the clock, each try bounded: a dockerd that accepts the connection and never answers
  # would otherwise hold the boot until the lab's own timeout, with nothing said.
  local end=$((SECONDS + 300))
  while [ $SECONDS -lt $end ]; do timeout 20 docker info > /dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null; }
# Wait (up to $1 s) for a file in the share, by polling: 9p has no inotify.
wait_file() { local n=$(( $1 * 2 )); while [ $n -gt 0 ]; do [ -e "$2" ] && return 0; sleep 0.5; n=$((n - 1)); done; return 1; }

collect_logs() {
  mkdir -p "$OUT/logs-$BOOT_ID"
  cp /var/log/dockerd.log /var/log/containerd.log "$OUT/logs-$BOOT_ID/" 2>/dev/null
  cp /var/log/netvol/*.log "$OUT/logs-$BOOT_ID/" 2>/dev/null
  cat /proc/self/mountinfo > "$OUT/logs-$BOOT_ID/mountinfo-at-end.txt"
  dmesg > "$OUT/logs-$BOOT_ID/dmesg.txt" 2>/dev/null
}

# ---------------------------------------------------------------- manager (A)
manager() {
  # dockerd is slow to start under TCG: start it first, in parallel with the NFS server.
  start_docker
  # The seed's NFS server: 192.168.42.1 exports the Portainer data directory to the LAN with
  # the seed's options. No crossmnt: rpc.mountd 2.6.2 segfaults on crossmnt upcalls (see
  # guest-init.sh); no fsid=0: NFSv4 clients then get mountd's pseudo-root with real paths.
  mkdir -p "$SHARE_PATH" "$PG_PATH"
  cat > /etc/exports <<EOF
$SHARE_PATH 192.168.42.0/24(rw,sync,no_root_squash,no_subtree_check)
$PG_PATH 192.168.42.0/24(rw,sync,no_root_squash,no_subtree_check)
EOF
  modprobe nfsd
  mkdir -p /run/rpcbind /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/v4recovery /run/rpc_pipefs
  mount -t rpc_pipefs sunrpc /run/rpc_pipefs 2>/dev/null
  mount -t nfsd nfsd /proc/fs/nfsd
  # A short grace period: otherwise NFSv4 opens stall for 90 s after the server starts.
  echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null
  echo 10 > /proc/fs/nfsd/nfsv4leasetime 2>/dev/null
  (
    # rpc.mountd 2.6 segfaults under a huge open-file limit (see guest-init.sh)
    ulimit -n 4096
    rpcbind -w
    rpc.statd --no-notify
    exportfs -ra
    rpc.mountd
    rpc.nfsd 8
  )
  say "nfs server up: $(exportfs -v | tr -s ' \t\n' ' ')"
  if ! wait_docker; then say "dockerd did not come up"; tail -20 /var/log/dockerd.log; fi
  say "dockerd up"
  # Docker turns on br_netfilter and a DROP policy for FORWARD; frames that br0 passes
  # between B and C would be dropped by it. DOCKER-USER is the chain meant for such rules.
  iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT 2>/dev/null || say "could not add the br0 forwarding rule"
  if [ "$(swarm_state)" != active ]; then
    docker swarm init --advertise-addr "$MY_IP" > /dev/null || say "docker swarm init failed"
  fi
  docker swarm join-token -q worker > "$RES/swarm/.worker-token.tmp" && mv "$RES/swarm/.worker-token.tmp" "$RES/swarm/worker-token"
  say "swarm manager up; worker token in the share"
  say "running the scenario"
  node "$HERE/cluster-scenario.mjs"
  say "scenario done (exit $?)"
  # The workers unmount and power off first: a hard NFS mount whose server is gone hangs.
  touch "$RES/stop"
  local n
  for n in $WORKERS; do
    wait_file 150 "$RES/nodes/$n/stopped" || say "worker $n did not report stopped"
  done
  collect_logs
  kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null
  for n in $(seq 1 40); do [ -e /var/run/docker.pid ] || break; sleep 0.5; done
  sync
}

# ---------------------------------------------------------------- worker (B, C)
start_netvol() {
  # Started as a user would (the seed starts netshare by hand; here before dockerd, as a
  # systemd unit ordered Before=docker.service would). --verbose logs every Docker call, so
  # the scenario can time "Mount call -> Mounted".
  local args="nfs -v $NFS_VERSION --verbose"
  echo "=== start $(date -u +%FT%TZ) boot $BOOT_ID: netvol $args" >> /var/log/netvol/nfs.log
  # shellcheck disable=SC2086
  setsid node "$CLI" $args >> /var/log/netvol/nfs.log 2>&1 < /dev/null &
  echo $! > /run/lab/netvol.pid
  local i
  for i in $(seq 1 120); do [ -S /run/docker/plugins/nfs.sock ] && break; sleep 0.5; done
  if [ -S /run/docker/plugins/nfs.sock ]; then say "netvol up (pid $(cat /run/lab/netvol.pid))"; else say "netvol socket missing"; tail -20 /var/log/netvol/nfs.log; fi
}
worker() {
  # An NFSv3 client mount needs rpcbind and rpc.statd on the client too (locking).
  mkdir -p /run/rpcbind /var/lib/nfs/sm /var/lib/nfs/sm.bak
  ( ulimit -n 4096; rpcbind -w; rpc.statd --no-notify )
  # Load the NFS client modules now, as on a node that has mounted NFS before: under TCG the
  # first mount otherwise spends ~10-20 s in modprobe, which would swamp the failover figures.
  modprobe -a nfs nfsv3 nfsv4 2>/dev/null
  start_netvol
  # Report mountinfo, `netvol status --json`, docker's view and the boot id every ~2 s.
  setsid node "$HERE/reporter.mjs" > /var/log/reporter.log 2>&1 < /dev/null &
  echo $! > /run/lab/reporter.pid
  start_docker
  if ! wait_docker; then say "dockerd did not come up"; tail -20 /var/log/dockerd.log; fi
  say "dockerd up (swarm: $(swarm_state))"
  # The service image: busybox-static, made with docker import as the single-guest lab does.
  # On the persistent disk it survives a kill, like the swarm membership.
  if ! docker image inspect netvol-lab/portainer:latest > /dev/null 2>&1; then
    docker import /opt/busybox.tar netvol-lab/portainer:latest > /dev/null && say "service image imported"
  fi
  if [ "$(swarm_state)" != active ]; then
    wait_file 900 "$RES/swarm/worker-token" || say "no worker token from the manager"
    local i
    for i in $(seq 1 60); do
      docker swarm join --token "$(cat "$RES/swarm/worker-token")" --advertise-addr "$MY_IP" "$IP_a:2377" > /tmp/join.out 2>&1 && break
      sleep 5
    done
    say "swarm join: $(tr '\n' ' ' < /tmp/join.out)"
  else
    say "already in the swarm (persistent disk): rejoining by itself"
  fi
  # Work until the manager says stop (services are gone by then, so nothing is mounted).
  while [ ! -e "$RES/stop" ]; do sleep 2; done
  say "stop requested"
  kill "$(cat /run/lab/reporter.pid)" 2>/dev/null
  kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null
  for i in $(seq 1 40); do [ -e /var/run/docker.pid ] || break; sleep 0.5; done
  kill "$(cat /run/lab/netvol.pid)" 2>/dev/null
  sleep 1
  collect_logs
  umount -a -t nfs,nfs4 -l 2>/dev/null
  sync
  touch "$OUT/stopped"
}

if [ "${LAB_KIND:-classic}" = csi ]; then
  . "$HERE/csi-node.sh"
  case "$NODE" in
    a) csi_manager ;;
    [b-z]) csi_worker ;;
    *) say "unknown node '$NODE' (LABNODE on the kernel command line)" ;;
  esac
else
  case "$NODE" in
    a) manager ;;
    b|c) worker ;;
    *) say "unknown node '$NODE' (LABNODE on the kernel command line)" ;;
  esac
fi
say "cluster-init done"
