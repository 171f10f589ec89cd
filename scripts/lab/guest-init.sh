#!/bin/bash
# netvol lab: guest side. Started by the image's PID 1 stub (/sbin/lab-init) after it has
# mounted /proc, /sys, /dev and the two 9p shares:
#   /mnt/host     the repository (read it, and dist/cli.js, from here)
#   /mnt/results  the run's results directory on the host (config in, reports and logs out)
# It brings up the servers (knfsd, Samba), containerd and dockerd, runs the scenarios named
# in /mnt/results/lab.env and writes report.json / report.txt there. The stub powers off.
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
LAB=/mnt/host/scripts/lab
RES=/mnt/results
T_BOOT=$(cut -d' ' -f1 /proc/uptime)
say() { echo "[guest $(cut -d' ' -f1 /proc/uptime)] $*"; }
say "guest-init starting (kernel up for ${T_BOOT}s)"

LAB_MODE=smoke
LAB_ONLY=
[ -f "$RES/lab.env" ] && . "$RES/lab.env"
export LAB_MODE LAB_ONLY

# --- base filesystems ---
# the initramfs leaves /run mounted noexec; the mount-tool wrappers below live there
if mountpoint -q /run; then mount -o remount,exec,suid /run; else mount -t tmpfs -o mode=0755,nodev tmpfs /run; fi
mountpoint -q /tmp || mount -t tmpfs -o mode=1777 tmpfs /tmp
mkdir -p /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o gid=5,mode=0620,ptmxmode=0666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
# dockerd and the plugin's mounts must propagate like on a systemd host
mount --make-rshared /
ln -sf /proc/self/fd /dev/fd 2>/dev/null; ln -sf /proc/self/fd/0 /dev/stdin 2>/dev/null
ln -sf /proc/self/fd/1 /dev/stdout 2>/dev/null; ln -sf /proc/self/fd/2 /dev/stderr 2>/dev/null
hostname lab
mkdir -p /run/lab /var/log/netvol /run/docker/plugins /run/sendsigs.omit.d
chmod 0700 /run/lab
ulimit -n 1048576 2>/dev/null

# --- network: only loopback and a dummy interface; nothing leaves the guest ---
ip link set lo up
modprobe dummy numdummies=0 2>/dev/null
ip link add dummy0 type dummy
ip addr add 10.99.0.1/24 dev dummy0
ip addr add 10.99.0.2/24 dev dummy0
# .3: a server that a scenario makes die (its packets dropped) while a volume is mounted.
ip addr add 10.99.0.3/24 dev dummy0
ip link set dummy0 up
# A local connection to .2 would leave from .1 (the interface's first address), and the
# server tells its two roles apart by the client's address.
ip route replace local 10.99.0.2 dev dummy0 table local proto kernel scope host src 10.99.0.2
ip route replace local 10.99.0.3 dev dummy0 table local proto kernel scope host src 10.99.0.3
modprobe nfsd

# --- exec log for mount helpers (root-only): records argv of every mount/umount/mount.cifs ---
for tool in /usr/bin/mount /usr/bin/umount /usr/sbin/mount.cifs; do
  base=$(basename "$tool")
  cp "$tool" "/run/lab/real-$base"
  cat > "/run/lab/wrap-$base" <<EOF
#!/bin/bash
{ printf '%s pid=%s ppid=%s %s' "\$(cut -d' ' -f1 /proc/uptime)" "\$\$" "\$PPID" "$base"; for a in "\$@"; do printf ' [%s]' "\$a"; done; [ -n "\${PASSWD:-}" ] && printf ' (PASSWD env set)'; echo; } >> /run/lab/exec.log
exec -a "$tool" /run/lab/real-$base "\$@"
EOF
  chmod 0755 "/run/lab/wrap-$base"
  mount --bind "/run/lab/wrap-$base" "$tool"
done
touch /run/lab/exec.log; chmod 0600 /run/lab/exec.log

start_docker() {
  # The managed plugin, created on the host (scripts/lab/plugin-store.sh) and attached as a
  # second disk (a throwaway snapshot): dockerd loads its plugin store at start.
  # The Dockerfile lab's first boot has dockerd's whole data root there instead, with the
  # Dockerfile's base image in it (scripts/lab/docker-root.sh).
  if [ "$LAB_MODE" = df1 ]; then
    mkdir -p /var/lib/docker && mount /dev/vdb /var/lib/docker
  elif [ -b /dev/vdb ] && ! mountpoint -q /var/lib/docker/plugins; then
    mkdir -p /var/lib/docker/plugins && mount /dev/vdb /var/lib/docker/plugins
  fi
  (containerd > /var/log/containerd.log 2>&1 &)
  # In the background: the boot goes on while containerd starts.
  sh "$LAB/dockerd-after-containerd.sh" /var/log/dockerd.log &
}
# dockerd is slow to start under TCG: start it now, in parallel with the servers, unless this
# boot checks what dockerd does with existing volumes at start (then the plugins come first)
case $LAB_MODE in reboot2 | debug | b2d*) ;; *) start_docker ;; esac

# --- NFS server (and the client-side helpers an NFSv3 mount needs) ---
mkdir -p /run/rpcbind /var/lib/nfs/sm /var/lib/nfs/sm.bak /var/lib/nfs/v4recovery /run/rpc_pipefs
mount -t rpc_pipefs sunrpc /run/rpc_pipefs 2>/dev/null
mount -t nfsd nfsd /proc/fs/nfsd
# The RPC daemons get a normal open-file limit: rpc.mountd (nfs-utils 2.6) segfaults at its
# first request under the raised limit above, and knfsd then waits forever on its upcalls.
# A short grace period: otherwise NFSv4 opens stall for 90 s after the server starts.
echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null
echo 10 > /proc/fs/nfsd/nfsv4leasetime 2>/dev/null
# Exports, written here over the image's:
# - no crossmnt: rpc.mountd 2.6.2 segfaults at the first filehandle upcall for a crossmnt
#   export (seen under TCG), and knfsd then waits forever;
# - an explicit NFSv4 root (fsid=0) per client address: once any export has fsid=0, mountd
#   builds no pseudo-root for the others, and NFSv4 finds nothing. "/" for the plain server
#   keeps v3 and v4 paths the same (/srv/nfs/...); /srv/efs is the "EFS" root, which like
#   AWS's accepts clients from unprivileged ports (the EFS options include noresvport).
cat > /etc/exports <<'EXPORTS'
/          10.99.0.1(rw,sync,no_root_squash,no_subtree_check,fsid=0) 127.0.0.1(rw,sync,no_root_squash,no_subtree_check,fsid=0) 10.99.0.3(rw,sync,no_root_squash,no_subtree_check,fsid=0)
/srv/efs   10.99.0.2(rw,sync,no_root_squash,no_subtree_check,fsid=0,insecure)
EXPORTS
(
  ulimit -n 4096
  rpcbind -w
  rpc.statd --no-notify
  exportfs -ra
  rpc.mountd
  rpc.nfsd 8
)
say "nfs server up: $(cat /proc/fs/nfsd/versions)"
# --mode debug: run the results dir's debug.sh with the servers up, then stop.
# boot2docker lab: the rest of the boot is boot2docker's (its hooks, then dockerd).
case $LAB_MODE in b2d*) exec /bin/bash "$LAB/boot2docker-lab.sh" ;; esac
if [ "$LAB_MODE" = debug ]; then
  bash "$RES/debug.sh" > "$RES/debug.out" 2>&1
  say "debug.sh done"; sync; exit 0
fi

# --- Samba ---
mkdir -p /run/samba /var/log/samba /var/lib/samba/private
smbd -D
say "smbd started"

# --- netvol daemons (a systemd unit would order them Before=docker.service) ---
# (Not in the Dockerfile lab: its netvol is the plugin it builds.)
case $LAB_MODE in df*) ;; *) bash "$LAB/scenarios.sh" pre-docker ;; esac
[ "$LAB_MODE" = reboot2 ] && start_docker
# Every docker call here is bounded: a dockerd that accepts the connection but never answers
# must cost this boot a line in the console, not the host's whole timeout.
docker_up() { timeout -k 2 10 docker info > /dev/null 2>&1; }
end=$((SECONDS + 120))
until docker_up || [ $SECONDS -ge $end ]; do sleep 0.5; done
if docker_up; then
  say "dockerd up"
else
  say "dockerd did not come up in 120 s; its log ends:"; tail -20 /var/log/dockerd.log
fi
if ! timeout -k 2 30 docker image inspect busybox:latest > /dev/null 2>&1; then
  if timeout -k 2 120 docker import /opt/busybox.tar busybox:latest > /dev/null; then say "busybox image imported"; else say "docker import of busybox failed"; fi
fi

# The Dockerfile lab (scripts/lab/dockerfile-lab.sh) has its own steps.
case $LAB_MODE in df*) exec /bin/bash "$LAB/dockerfile-lab.sh" ;; esac

# --- scenarios ---
say "running scenarios (mode=$LAB_MODE only=${LAB_ONLY:-all})"
bash "$LAB/scenarios.sh" main
say "scenarios done"

# --- collect logs ---
mkdir -p "$RES/logs"
cp /var/log/dockerd.log /var/log/containerd.log "$RES/logs/" 2>/dev/null
cp /var/log/netvol/*.log "$RES/logs/" 2>/dev/null
cp /run/lab/exec.log "$RES/logs/exec.log" 2>/dev/null
cp -r /run/lab/scenario-logs "$RES/logs/" 2>/dev/null
cat /proc/self/mountinfo > "$RES/logs/mountinfo-at-end.txt"
dmesg > "$RES/logs/dmesg.txt" 2>/dev/null

# --- orderly stop (matters for the persistent-disk boots) ---
if [ -f /run/lab/graceful-stop ]; then
  say "stopping dockerd and daemons"
  pkill_pid() { [ -n "$1" ] && kill "$1" 2>/dev/null; }
  pkill_pid "$(cat /var/run/docker.pid 2>/dev/null)"
  for i in $(seq 1 60); do [ -e /var/run/docker.pid ] || break; sleep 0.5; done
  for f in /run/lab/daemon-*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
  sleep 1
fi
timeout 60 sync
umount -a -t nfs,nfs4,cifs -l 2>/dev/null
timeout 60 sync
say "guest-init done"
