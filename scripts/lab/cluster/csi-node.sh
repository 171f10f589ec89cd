# netvol CSI cluster lab: the nodes' roles, sourced by cluster-init.sh (which has set up the
# filesystems, the clock, the wire, the command runner and start_docker/wait_docker) when
# cluster.env says LAB_KIND=csi. Both nodes run the managed plugin $PLUGIN (netvol-csi:latest),
# installed as a Swarm user installs it: `docker plugin install --alias $PLUGIN $PLUGIN_REMOTE`
# from the registry A runs on the wire ($REGISTRY, insecure, named in every daemon.json):
#   a  the registry (Debian's docker-registry) and the build host: run-cluster.mjs attaches a
#      dockerd plugin store as /dev/vdb holding the plugins under their registry names, which A
#      pushes; NFS server (knfsd, $VOLUMES_PATH exported with no_root_squash), Samba ($SMB_PATH
#      as [csi] for the user carol), the Swarm manager (so the plugin's controller runs here)
#      and a node that runs tasks; drives csi-scenario.mjs
#   b  Swarm worker
# shellcheck shell=bash

CSI_STATE=/var/lib/netvol-csi

csi_base() {
  # The plugin's state bind mount: dockerd does not create its source.
  mkdir -p "$CSI_STATE"
  if [ -b /dev/vdb ] && ! mountpoint -q /var/lib/docker/plugins; then
    mkdir -p /var/lib/docker/plugins && mount /dev/vdb /var/lib/docker/plugins
  fi
  # The plugin's stdout reaches only dockerd's log, at level info; the image's daemon.json says
  # warn, and dockerd refuses a flag that repeats a daemon.json key.
  cat > /etc/docker/daemon.json <<EOF
{ "log-level": "info", "storage-driver": "overlay2", "iptables": true, "ip6tables": false,
  "insecure-registries": ["$REGISTRY"] }
EOF
  # The plugin mounts in its own mount namespace but the host's network: an NFSv3 lock needs
  # this host's rpcbind and rpc.statd, and the modules load here (the plugin cannot modprobe).
  mkdir -p /run/rpcbind /var/lib/nfs/sm /var/lib/nfs/sm.bak
  ( ulimit -n 4096; rpcbind -w; rpc.statd --no-notify )
  modprobe -a nfs nfsv3 nfsv4 cifs 2>/dev/null
}

# The plugin's mounts as the plugin sees them: its node process lives in the guest's PID
# namespace too, so /proc/<pid>/mountinfo is there to read.
plugin_pid() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' < "$p/cmdline" 2>/dev/null | grep -q 'dist/cli.js csi ' && { basename "$p"; return 0; }
  done
  return 1
}

# Enable the plugin and record how long that took, for the scenario. On the first boot it is
# disabled (as created); on a later boot dockerd has restored it before its API answers, or
# given up: it waits ~12 s for the plugin's socket and then disables it for good, which a
# plugin starting under emulation can miss. The record says which ("was").
enable_plugin() {
  local t0 tries=1 state
  state=$(docker plugin inspect -f '{{.Enabled}}' "$PLUGIN" 2>/dev/null)
  if [ -z "$state" ]; then
    say "plugin $PLUGIN not in dockerd's store: $(docker plugin ls 2>&1 | tr '\n' ' ')"
    return 1
  fi
  [ "$state" != true ] && [ -s "$OUT/plugin-enable.jsonl" ] && say "dockerd did not restore $PLUGIN at start: $(grep -a 'plugin=\|error while enabling\|failed to enable plugin' /var/log/dockerd.log | tail -3 | cut -c1-300 | tr '\n' ' ')"
  t0=$(date +%s.%N)
  if [ "$state" != true ]; then
    # Installed from the registry, the settings came on the install command line.
    [ -n "$REGISTRY" ] || docker plugin set "$PLUGIN" VERBOSE=true EARLY_SOCKET=true > /dev/null
    # dockerd gives a plugin about 10 s to create its socket, then stops it; the first start
    # under emulation (node compiling grpc-js and the proto from a cold disk) can take longer.
    until docker plugin enable --timeout 60 "$PLUGIN" > /tmp/enable.out 2>&1; do
      say "enable attempt $tries failed: $(tr '\n' ' ' < /tmp/enable.out)"
      [ $tries -ge 4 ] && return 1
      tries=$((tries + 1))
    done
  fi
  local t1; t1=$(date +%s.%N)
  printf '{"boot":"%s","started":%s,"enabled":%s,"attempts":%s,"was":"%s"}\n' "$BOOT_ID" "$t0" "$t1" "$tries" "$state" >> "$OUT/plugin-enable.jsonl"
  say "plugin $PLUGIN enabled (was enabled: $state; $tries attempt(s), $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}') s); pid $(plugin_pid)"
}

# The registry on A: plain HTTP on the emulated wire (every node's daemon.json names it
# insecure), its blobs on A's root disk.
start_registry() {
  mkdir -p /var/lib/docker-registry /etc/docker/registry
  cat > /etc/docker/registry/lab.yml <<'EOF'
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: /var/lib/docker-registry
http:
  addr: :5000
EOF
  (setsid docker-registry serve /etc/docker/registry/lab.yml > /var/log/registry.log 2>&1 < /dev/null &)
  local i
  for i in $(seq 1 120); do
    (exec 3<> "/dev/tcp/$MY_IP/5000") 2> /dev/null && { say "registry listening on $MY_IP:5000"; return 0; }
    sleep 0.5
  done
  say "the registry does not listen: $(tail -5 /var/log/registry.log | tr '\n' ' ')"
  return 1
}

# Push the plugins of the store disk (created under their registry names) to the registry; the
# workers wait for registry/pushed. The record holds the push's start and end. The :next build
# and the classic plugin only for --upgrade.
push_plugins() {
  local t0 t1 p ok=1 all=("$PLUGIN_REMOTE")
  [ "$UPGRADE" = 1 ] && all+=("$PLUGIN_NEXT" "$CLASSIC_REMOTE")
  t0=$(date +%s.%N)
  for p in "${all[@]}"; do
    if docker plugin push "$p" > /tmp/push.out 2>&1; then say "pushed $p: $(tail -1 /tmp/push.out)"
    else ok=0; say "docker plugin push $p failed: $(tr '\n' ' ' < /tmp/push.out)"; fi
  done
  t1=$(date +%s.%N)
  [ $ok = 1 ] || return 1
  mkdir -p "$RES/registry"
  printf '{"started":%s,"done":%s}\n' "$t0" "$t1" > "$RES/registry/.pushed.tmp" && mv "$RES/registry/.pushed.tmp" "$RES/registry/pushed"
}

# docker plugin install from the registry, as on every node of a real Swarm: under the short
# name volumes are made with (--alias), settings on the command line, disabled so that
# enable_plugin's patient enable starts it. Skipped when an earlier boot installed it.
# MOUNT_TIMEOUT=20: under emulation Samba on the manager can take longer than the default 10 s
# to answer a mount or a directory operation; swarmkit repeats a call that outlives its 15 s,
# and CreateVolume and NodePublishVolume are idempotent.
install_plugin() {
  docker plugin inspect "$PLUGIN" > /dev/null 2>&1 && return 0
  wait_file 900 "$RES/registry/pushed" || { say "nothing pushed to the registry"; return 1; }
  local t0 t1 rc
  t0=$(date +%s.%N)
  docker plugin install --disable --grant-all-permissions --alias "$PLUGIN" "$PLUGIN_REMOTE" \
    VERBOSE=true EARLY_SOCKET=true MOUNT_TIMEOUT=20 > "$OUT/plugin-install.out" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf '{"boot":"%s","started":%s,"done":%s,"rc":%s}\n' "$BOOT_ID" "$t0" "$t1" "$rc" >> "$OUT/plugin-install.jsonl"
  say "docker plugin install $PLUGIN_REMOTE as $PLUGIN: exit $rc in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b - a}') s: $(tr '\n' ' ' < "$OUT/plugin-install.out" | cut -c1-200)"
  return $rc
}

# The classic plugin from the same registry, under the name netshare users type (-d nfs), with
# settings on the command line; disabled: the scenario's registry-classic step enables and uses
# it. Run in the background on the worker while it joins the swarm, in the lab's --upgrade mode.
# The record says how it went.
install_classic() {
  docker plugin inspect nfs > /dev/null 2>&1 && return 0
  mkdir -p /var/lib/netvol
  local t0 t1 rc
  t0=$(date +%s.%N)
  docker plugin install --disable --grant-all-permissions --alias nfs "$CLASSIC_REMOTE" \
    NFS_VERSION=4 VERBOSE=true EARLY_SOCKET=true > "$OUT/classic-install.out" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  printf '{"started":%s,"done":%s,"rc":%s}\n' "$t0" "$t1" "$rc" > "$OUT/.classic-install.tmp" && mv "$OUT/.classic-install.tmp" "$OUT/classic-install.json"
  say "docker plugin install $CLASSIC_REMOTE as nfs: exit $rc"
}

import_image() {
  # The service image: busybox-static, made with docker import (no registry). On the
  # persistent disk it survives a kill, like the swarm membership.
  if ! docker image inspect netvol-lab/portainer:latest > /dev/null 2>&1; then
    docker import /opt/busybox.tar netvol-lab/portainer:latest > /dev/null && say "service image imported"
  fi
}

csi_collect_logs() {
  collect_logs
  ls -laR "$CSI_STATE" > "$OUT/logs-$BOOT_ID/state-dir.txt" 2>&1
  local pid; pid=$(plugin_pid) && cat "/proc/$pid/mountinfo" > "$OUT/logs-$BOOT_ID/plugin-mountinfo-at-end.txt"
}

csi_manager() {
  csi_base
  start_docker
  # The NFS server: the export cluster volumes are made in. No crossmnt, no fsid=0: as in the
  # classic lab (cluster-init.sh's manager).
  mkdir -p "$VOLUMES_PATH" "$SMB_PATH"
  cat > /etc/exports <<EOF
$VOLUMES_PATH 192.168.42.0/24(rw,sync,no_root_squash,no_subtree_check)
EOF
  modprobe nfsd
  mkdir -p /var/lib/nfs/v4recovery /run/rpc_pipefs
  mount -t rpc_pipefs sunrpc /run/rpc_pipefs 2>/dev/null
  mount -t nfsd nfsd /proc/fs/nfsd
  # A short grace period: otherwise NFSv4 opens stall for 90 s after the server starts.
  echo 10 > /proc/fs/nfsd/nfsv4gracetime 2>/dev/null
  echo 10 > /proc/fs/nfsd/nfsv4leasetime 2>/dev/null
  ( ulimit -n 4096; exportfs -ra; rpc.mountd; rpc.nfsd 8 )
  say "nfs server up: $(exportfs -v | tr -s ' \t\n' ' ')"
  # Samba: a share for a user whose password exists only in this boot (the scenario looks for
  # it everywhere it must not be); it reaches the plugin only as a Swarm secret.
  id carol > /dev/null 2>&1 || useradd -M -s /usr/sbin/nologin -u 1700 carol
  chown carol "$SMB_PATH"
  head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 20 > /run/lab/cifs-password
  printf '%s\n%s\n' "$(cat /run/lab/cifs-password)" "$(cat /run/lab/cifs-password)" | smbpasswd -s -a carol > /dev/null
  cat >> /etc/samba/smb.conf <<EOF

[csi]
  path = $SMB_PATH
  valid users = carol
  read only = no
  create mask = 0664
  directory mask = 0775
EOF
  sed -i 's/^  interfaces = .*/  interfaces = lo br0/' /etc/samba/smb.conf
  mkdir -p /run/samba /var/log/samba /var/lib/samba/private
  smbd -D && say "smbd up"
  if ! wait_docker; then say "dockerd did not come up"; tail -20 /var/log/dockerd.log; fi
  say "dockerd up: $(docker version --format '{{.Server.Version}}' 2>&1)"
  # First, while little else runs: the plugin has ~12 s to create its socket.
  start_registry && push_plugins && install_plugin && enable_plugin
  # Docker turns on br_netfilter and a DROP policy for FORWARD (see cluster-init.sh's manager).
  iptables -I DOCKER-USER -i br0 -o br0 -j ACCEPT 2>/dev/null || say "could not add the br0 forwarding rule"
  if [ "$(swarm_state)" != active ]; then
    docker swarm init --advertise-addr "$MY_IP" > /dev/null || say "docker swarm init failed"
  fi
  docker swarm join-token -q worker > "$RES/swarm/.worker-token.tmp" && mv "$RES/swarm/.worker-token.tmp" "$RES/swarm/worker-token"
  say "swarm manager up; worker token in the share"
  import_image
  say "running the scenario"
  node "$HERE/csi-scenario.mjs"
  say "scenario done (exit $?)"
  touch "$RES/stop"
  local n
  for n in $WORKERS; do
    wait_file 150 "$RES/nodes/$n/stopped" || say "worker $n did not report stopped"
  done
  csi_collect_logs
  kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null
  for n in $(seq 1 40); do [ -e /var/run/docker.pid ] || break; sleep 0.5; done
  umount -a -t nfs,nfs4,cifs -l 2>/dev/null
  sync
}

csi_worker() {
  csi_base
  start_docker
  if ! wait_docker; then say "dockerd did not come up"; tail -20 /var/log/dockerd.log; fi
  say "dockerd up: $(docker version --format '{{.Server.Version}}' 2>&1) (swarm: $(swarm_state))"
  install_plugin && enable_plugin
  [ "$UPGRADE" = 1 ] && { install_classic & }
  LAB_KIND=csi setsid node "$HERE/reporter.mjs" > /var/log/reporter.log 2>&1 < /dev/null &
  echo $! > /run/lab/reporter.pid
  import_image
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
  while [ ! -e "$RES/stop" ]; do sleep 2; done
  say "stop requested"
  kill "$(cat /run/lab/reporter.pid)" 2>/dev/null
  csi_collect_logs
  kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null
  for i in $(seq 1 40); do [ -e /var/run/docker.pid ] || break; sleep 0.5; done
  umount -a -t nfs,nfs4,cifs -l 2>/dev/null
  sync
  touch "$OUT/stopped"
}
