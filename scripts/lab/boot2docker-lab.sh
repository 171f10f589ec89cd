#!/bin/bash
# netvol boot2docker lab: guest side (npm run test:boot2docker; host side: run-lab.mjs
# --mode boot2docker). guest-init.sh has set up the base (filesystems, the NFS server at
# 10.99.0.1 that stands for the user's file server) and execs this script, which then boots
# the rest the way boot2docker's /opt/bootscript.sh does:
#
#   the root file system is thrown away at every power-off (qemu snapshot=on: boot2docker's
#   root is a RAM disk); only the second disk persists: mounted at /mnt/sda1, with
#   /var/lib/boot2docker and /var/lib/docker bound from it (boot2docker's automount). A third
#   disk is the file server's: exported at 10.99.0.1:/srv/b2d-server, mounted over NFSv3
#   (boot2docker has no NFSv4 client);
#   `. /var/lib/boot2docker/profile`; `/bin/sh /var/lib/boot2docker/bootsync.sh` (waited for);
#   dockerd started in the background, not waited for (/usr/local/etc/init.d/docker start);
#   `/bin/sh /var/lib/boot2docker/bootlocal.sh > /var/log/bootlocal.log 2>&1 &` right after.
#
# Boots of one persistent disk, told apart by LAB_MODE:
#   b2d1  packaging/boot2docker/install-netvol.sh run as a user runs it (docker-machine is a
#         stand-in that reaches this guest: scp copies, ssh runs the command here, since the
#         guest is the node); a --restart always container writing to an NFS volume; power off
#   b2d2  the installed hooks boot netvol: netvol answers before dockerd restores the container,
#         which runs again with the lines from before; then the start line is moved to
#         bootlocal.sh, where netshare-era guides put it, to measure that race too
#   b2d3  the start line in bootlocal.sh: the container is restored or not, as measured; the
#         row says which (it does not fail the lab: it is the measurement behind the hook)
set -u
. "$(dirname "$(readlink -f "$0")")/lab-steps.sh"
lab_begin b2d1

P=/var/lib/boot2docker
SOCK=/run/docker/plugins/nfs.sock
VOL=b2dvol
CTR=writer
EXPORT_DIR=/srv/b2d-server
LINES=$EXPORT_DIR/lines.txt
MARKS=/run/lab/marks
count_lines() { wc -l < "$LINES" 2>/dev/null || echo 0; }
mark() { echo "$1 $(cut -d' ' -f1 /proc/uptime)" >> "$MARKS"; }
markof() { awk -v k="$1" '$1 == k { print $2; exit }' "$MARKS"; }
# dockerd stopped as boot2docker's init script stops it (SIGTERM), waited for at most 60 s.
stop_dockerd() {
  kill "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null
  local end=$((SECONDS + 60))
  while [ -e /var/run/docker.pid ] && [ $SECONDS -lt $end ]; do sleep 0.5; done
}

# ---------------------------------------------------------------- boot2docker's bootscript
bootscript() {
  : > "$MARKS"
  # automount: the persistent disk, and what boot2docker binds from it.
  mkdir -p /mnt/sda1
  mount /dev/vdb /mnt/sda1 || { say "cannot mount the persistent disk /dev/vdb"; return 1; }
  mkdir -p /mnt/sda1/var/lib/boot2docker /mnt/sda1/var/lib/docker "$P" /var/lib/docker
  mount --bind /mnt/sda1/var/lib/boot2docker "$P"
  mount --bind /mnt/sda1/var/lib/docker /var/lib/docker
  mkdir -p "$P/log" /home/docker /run/docker/plugins
  # shellcheck disable=SC1091
  [ -f "$P/profile" ] && . "$P/profile"
  # The file server's disk and export, there whatever the node does.
  mkdir -p "$EXPORT_DIR"
  mount /dev/vdc "$EXPORT_DIR" || { say "cannot mount the server's disk /dev/vdc"; return 1; }
  exportfs -o rw,sync,no_root_squash,no_subtree_check,fsid=77 "10.99.0.1:$EXPORT_DIR"
  # The lab's own watcher, not boot2docker's: when netvol's socket appears.
  (
    end=$((SECONDS + 150))
    until [ -S "$SOCK" ] || [ $SECONDS -ge $end ]; do sleep 0.1; done
    [ -S "$SOCK" ] && mark socket_up
  ) &
  if [ -e "$P/bootsync.sh" ]; then
    mark bootsync_start
    /bin/sh "$P/bootsync.sh"
    mark bootsync_done
  fi
  mark dockerd_start
  (containerd > /var/log/containerd.log 2>&1 &)
  (ulimit -n 1048576; dockerd --host unix:///run/docker.sock > "$P/docker.log" 2>&1 &)
  if [ -e "$P/bootlocal.sh" ]; then
    mark bootlocal_start
    /bin/sh "$P/bootlocal.sh" > /var/log/bootlocal.log 2>&1 &
  fi
  local end=$((SECONDS + 120))
  until dk info > /dev/null 2>&1 || [ $SECONDS -ge $end ]; do sleep 0.5; done
  mark dockerd_answered
}

# ---------------------------------------------------------------- boot 1
install() {
  # A user's checkout builds the tarball (make-tarball.sh, done on the host by run-lab.mjs) and
  # runs the installer from their workstation against the machine names docker-machine knows.
  [ -r "$RES/netvol-install.tgz" ] || { fail "no tarball from the host"; return 1; }
  mkdir -p /run/lab/bin
  cat > /run/lab/bin/docker-machine <<'EOF'
#!/bin/sh
# Stand-in for docker-machine with one machine, this guest: scp copies into the docker user's
# home, ssh runs the command there (boot2docker's ssh lands in /home/docker).
case $1 in
  ls) echo b2d ;;
  scp) cp "$2" "/home/docker/${3#*:}" ;;
  ssh) shift 2; cd /home/docker && exec sh -c "$*" ;;
  *) echo "docker-machine stand-in: $1 not supported" >&2; exit 2 ;;
esac
EOF
  # boot2docker's docker user has password-less sudo; the lab runs as root.
  printf '#!/bin/sh\nexec "$@"\n' > /run/lab/bin/sudo
  chmod 755 /run/lab/bin/docker-machine /run/lab/bin/sudo
  local t0 out rc
  t0=$(now)
  out=$(PATH=/run/lab/bin:$PATH sh "$REPO/packaging/boot2docker/install-netvol.sh" --protocol nfs --args "-v 3" --tarball "$RES/netvol-install.tgz" 2>&1)
  rc=$?
  echo "$out"
  note "install-netvol.sh --protocol nfs --args \"-v 3\" --tarball netvol-install.tgz: exit $rc in $(since "$t0") s: $(echo "$out" | tail -1)"
  [ $rc = 0 ] || { fail "install-netvol.sh exited $rc: $(echo "$out" | tail -1)"; return 1; }
  ask_socket || { fail "no answer on $SOCK after the installer"; return 1; }
  note "hooks: $(for f in profile bootsync.sh bootlocal.sh; do [ -e "$P/$f" ] && printf '%s: %s; ' "$f" "$(grep netvol "$P/$f" | tr '\n' ' ')"; done)"
  note "persistent: $(du -sh "$P/netvol" | cut -f1) in $P/netvol"
}

container() {
  if ! dk image inspect busybox:latest > /dev/null 2>&1; then
    dk import /opt/busybox.tar busybox:latest > /dev/null || { fail "docker import busybox failed"; return 1; }
  fi
  start_writer "10.99.0.1:$EXPORT_DIR" || return 1
  note "on the server: $(count_lines) lines; netvol's mount: $(nfs_mounts)"
}

# What the next boot checks, on the persistent disk; then the node goes down the way
# `sudo poweroff` takes boot2docker down: dockerd stopped (the container with it), unmounted.
before_poweroff() {
  mkdir -p "$P/lab"
  stop_dockerd
  sync
  local n; n=$(count_lines)
  head -n "$n" "$LINES" | md5sum | cut -d' ' -f1 > "$P/lab/before.md5"
  echo "$n" > "$P/lab/before.count"
  cat /proc/sys/kernel/random/boot_id > "$P/lab/before.boot_id"
  note "$n lines before the power-off; dockerd stopped: $([ -e /var/run/docker.pid ] && echo no || echo yes); still mounted: $(nfs_mounts | wc -l)"
  [ "$n" -gt 0 ] && [ ! -e /var/run/docker.pid ]
}

# ---------------------------------------------------------------- boots 2 and 3
# The order of this boot's events, in seconds since the kernel started, and the container's.
restore() {
  local end=$((SECONDS + 150)) state started
  until [ "$(dk inspect -f '{{.State.Running}}' "$CTR" 2>/dev/null)" = true ] || [ $SECONDS -ge $end ]; do sleep 1; done
  state=$(dk inspect -f '{{.State.Status}} restarts={{.RestartCount}} error={{.State.Error}}' "$CTR" 2>&1)
  started=$(dk inspect -f '{{.State.StartedAt}}' "$CTR" 2>/dev/null)
  # StartedAt on the uptime clock: wall time minus the wall time of the boot.
  local at
  at=$(node -e 'const up = Number(require("fs").readFileSync("/proc/uptime", "utf8").split(" ")[0]); const t = Date.parse(process.argv[1]); console.log(Number.isNaN(t) || t < 0 ? "-" : ((t - (Date.now() - up * 1000)) / 1000).toFixed(2))' "$started")
  note "seconds since boot: bootsync.sh $(markof bootsync_start)-$(markof bootsync_done), dockerd started $(markof dockerd_start), bootlocal.sh started $(markof bootlocal_start), netvol's socket $(markof socket_up), dockerd answered $(markof dockerd_answered), container StartedAt $at"
  note "container: $state; hook: $(grep -l 'netvol:nfs' "$P/bootsync.sh" "$P/bootlocal.sh" 2>/dev/null | xargs -r -n1 basename | tr '\n' ' ')"
  grep -E 'netvol|nfs\.sock|plugin|b2dvol|Failed to start|restart' "$P/docker.log" | grep -v 'level=debug' | tail -8 | cut -c1-240 | while IFS= read -r l; do note "  dockerd: $l"; done
  echo "$state" > /run/lab/restore.state
  echo "$at" > /run/lab/restore.at
  [ "${state#running}" != "$state" ] || { fail "the container did not run again after the reboot: $state"; return 1; }
}

in_order() {
  local up at
  up=$(markof socket_up); at=$(cat /run/lab/restore.at 2>/dev/null)
  [ -n "$up" ] || { fail "netvol's socket never appeared"; return 1; }
  awk -v a="$up" -v d="$(markof dockerd_start)" 'BEGIN { exit !(a <= d) }' \
    || { fail "netvol's socket appeared at $up s, after dockerd started at $(markof dockerd_start) s"; return 1; }
  grep -q 'Unable to locate plugin' "$P/docker.log" && { fail "dockerd looked for the plugin before it was there: $(grep -c 'Unable to locate plugin' "$P/docker.log") retries"; return 1; }
  note "netvol's socket at $up s, dockerd started at $(markof dockerd_start) s, the container at $at s; dockerd never waited for the plugin"
}

lines_after() {
  local n md5 b1 b2 end old new
  n=$(cat "$P/lab/before.count"); md5=$(cat "$P/lab/before.md5"); b1=$(cat "$P/lab/before.boot_id")
  b2=$(cat /proc/sys/kernel/random/boot_id)
  end=$((SECONDS + 60))
  until [ "$(grep -c "^$b2 " "$LINES")" -ge 3 ] || [ $SECONDS -ge $end ]; do sleep 1; done
  old=$(grep -c "^$b1 " "$LINES"); new=$(grep -c "^$b2 " "$LINES")
  note "$LINES: $old lines of the previous boot ($n checked), $new of this one; the container sees $(dk exec "$CTR" sh -c "grep -c '^$b1 ' /data/lines.txt" 2>&1) of the previous boot's"
  [ "$(head -n "$n" "$LINES" | md5sum | cut -d' ' -f1)" = "$md5" ] || { fail "the first $n lines changed across the reboot"; return 1; }
  [ "$new" -ge 3 ] || { fail "the container wrote $new lines after the reboot"; return 1; }
}

# The start line where netshare-era guides put it, bootlocal.sh, for the next boot to measure.
move_to_bootlocal() {
  local line
  line=$(grep ' # netvol:nfs$' "$P/bootsync.sh") || { fail "no netvol start line in bootsync.sh"; return 1; }
  grep -v ' # netvol:nfs$' "$P/bootsync.sh" > /run/lab/bootsync.tmp && cat /run/lab/bootsync.tmp > "$P/bootsync.sh"
  [ -f "$P/bootlocal.sh" ] || printf '#!/bin/sh\n' > "$P/bootlocal.sh"
  echo "$line" >> "$P/bootlocal.sh"
  note "moved to bootlocal.sh: $line"
}

# The bootlocal.sh boot reports what happened; a container left down is the measured answer.
measure_bootlocal() {
  restore
  local rc=$?
  note "from bootlocal.sh netvol's socket appeared at $(markof socket_up) s, $(awk -v a="$(markof socket_up)" -v d="$(markof dockerd_start)" 'BEGIN { printf "%.1f", a - d }') s after dockerd started; dockerd retried the plugin lookup $(grep -c 'Unable to locate plugin' "$P/docker.log") times"
  note "result with bootlocal.sh: $(cat /run/lab/restore.state)"
  DETAIL=
  [ $rc = 0 ] || note "(the container was not restored: measured, not a lab failure)"
  return 0
}

end_boot() {
  mkdir -p "$LOGS/$LAB_MODE"
  cp "$P/docker.log" /var/log/netvol.log /var/log/bootlocal.log "$MARKS" "$LOGS/$LAB_MODE/" 2>/dev/null
  cp /proc/self/mountinfo "$LOGS/$LAB_MODE/mountinfo.txt"
  stop_dockerd
  umount -a -t nfs,nfs4 -l 2>/dev/null
  sync
  exportfs -u "10.99.0.1:$EXPORT_DIR" 2>/dev/null
  umount /var/lib/docker "$P" /mnt/sda1 "$EXPORT_DIR" 2>/dev/null
  sync
  say "powering off"
  poweroff -f
}

say "boot2docker lab $LAB_MODE: kernel up for $(cut -d' ' -f1 /proc/uptime) s"
bootscript
case $LAB_MODE in
  b2d1)
    step install install \
      && step container_restart_always container \
      && step before_poweroff before_poweroff
    ;;
  b2d2)
    step restore_hook restore
    step hook_order in_order
    step restore_lines lines_after
    step before_poweroff before_poweroff && step move_hook move_to_bootlocal
    ;;
  b2d3)
    step bootlocal_measured measure_bootlocal
    ;;
  *) say "unknown LAB_MODE $LAB_MODE" ;;
esac
end_boot
