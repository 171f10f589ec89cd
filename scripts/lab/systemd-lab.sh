#!/bin/bash
# netvol systemd lab: guest side (npm run test:systemd; host side: run-lab.mjs --mode systemd).
#
# The guest boots the lab image with systemd as PID 1. The kernel command line
# (systemd.run=, see run-lab.mjs) mounts the repository's 9p share and starts this script as
# the transient unit netvol-lab.service; docker, containerd and knfsd are the image's own units.
# Two boots of one persistent disk, told apart by LAB_MODE in /mnt/results/lab.env:
#
#   systemd1  install netvol with packaging/systemd/install.sh as a user would; a --restart
#             always container writing to an NFS volume; SIGKILL of netvol while docker calls
#             run (socket activation); systemctl stop/start with the container running; the
#             journal; then `systemctl reboot` (qemu runs with -no-reboot: it exits)
#   systemd2  the same disk booted again: netvol ready before dockerd restores the container,
#             which finds the lines from before the reboot and writes new ones; then poweroff
#
# Results: /mnt/results/report.json ({mode, scenarios: [{name, status, seconds, detail, notes}]}),
# report.txt, logs/. Console lines start with "[guest ...]" (the host prints them).
set -u
. "$(dirname "$(readlink -f "$0")")/lab-steps.sh"
lab_begin systemd1
mkdir -p /var/lib/netvol-lab
SOCK=/run/docker/plugins/nfs.sock
VOL=sdvol
CTR=writer
EXPORT_DIR=/srv/nfs/sd
LINES=$EXPORT_DIR/lines.txt
svc() { systemctl show -p "$2" --value "$1"; }
count_lines() { wc -l < "$LINES" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- both boots
boot_info() {
  # The lab's own units are not part of the boot transaction: the boot finishes without them.
  timeout 180 systemctl is-system-running --wait > /dev/null 2>&1
  note "system state: $(systemctl is-system-running 2>&1)"
  note "$(systemd-analyze time 2>&1 | head -1)"
  note "slowest units: $(systemd-analyze blame 2>/dev/null | head -6 | awk '{printf "%s %s; ", $2, $1}')"
  local failed
  failed=$(systemctl list-units --state=failed --no-legend --plain 2>/dev/null | awk '{print $1}' | tr '\n' ' ')
  [ -n "$failed" ] && note "failed units: $failed"
  journalctl -b --no-pager | grep -i 'ordering cycle' | head -3 | while IFS= read -r l; do note "$l"; done
  systemctl is-active docker.service containerd.service nfs-server.service
  [ "$(systemctl is-active docker.service)" = active ] || { fail "docker.service is $(systemctl is-active docker.service)"; return 1; }
  [ "$(systemctl is-active nfs-server.service)" = active ] || { fail "nfs-server.service is $(systemctl is-active nfs-server.service)"; return 1; }
}

# ---------------------------------------------------------------- boot 1
prepare() {
  # The image's /etc/exports uses crossmnt, at whose first filehandle upcall rpc.mountd 2.6.2
  # segfaults under TCG (see guest-init.sh); the same exports as the VM lab's, for 127.0.0.1.
  echo '/ 127.0.0.1(rw,sync,no_root_squash,no_subtree_check,fsid=0)' > /etc/exports
  # A 10 s NFSv4 grace period instead of 90 s: opens stall for that long after knfsd starts.
  # knfsd is ordered before docker.service: the lab's NFS server stands for a server that is
  # up, and a client mount must go before the server at shutdown (Before=remote-fs-pre.target)
  # or the loopback mount hangs the shutdown.
  mkdir -p /etc/systemd/system/nfs-server.service.d
  cat > /etc/systemd/system/nfs-server.service.d/netvol-lab.conf <<'EOF'
[Unit]
Before=docker.service remote-fs-pre.target
[Service]
ExecStartPre=/bin/sh -c 'echo 10 > /proc/fs/nfsd/nfsv4gracetime; echo 10 > /proc/fs/nfsd/nfsv4leasetime'
EOF
  # The second boot needs the repository (netvol is a symlink into it) before any service:
  # 9p mounts in fstab are local file systems, mounted before sysinit.target.
  grep -q ' /mnt/host ' /etc/fstab || cat >> /etc/fstab <<'EOF'
host0   /mnt/host    9p trans=virtio,version=9p2000.L,msize=524288,cache=loose 0 0
results /mnt/results 9p trans=virtio,version=9p2000.L,msize=524288 0 0
EOF
  systemctl daemon-reload
  systemctl restart nfs-server.service || { fail "nfs-server restart failed"; return 1; }
  exportfs -v
  mkdir -p "$EXPORT_DIR"
  if ! dk image inspect busybox:latest > /dev/null 2>&1; then
    dk import /opt/busybox.tar busybox:latest > /dev/null || { fail "docker import busybox failed"; return 1; }
  fi
  note "docker $(dk version -f '{{.Server.Version}}') cgroup driver $(dk info -f '{{.CgroupDriver}}')"
}

install_netvol() {
  # As README's install section: a built checkout, netvol linked into /usr/local/bin.
  ln -sf "$REPO/dist/cli.js" /usr/local/bin/netvol
  # install.sh and the first socket request from one node process, so that the gap between
  # install.sh returning (systemctl enable --now ... returned) and the answer is not node's
  # start-up.
  node - "$REPO/packaging/systemd/install.sh" "$SOCK" > /run/lab/install.json <<'EOF'
const { spawnSync } = require('child_process'); const http = require('http');
const [script, sock] = process.argv.slice(2);
const t0 = process.hrtime.bigint(); const ms = (a, b) => Number(b - a) / 1e6;
const r = spawnSync(script, ['nfs'], { encoding: 'utf8' });
const t1 = process.hrtime.bigint();
const state = spawnSync('systemctl', ['show', '-p', 'ActiveState,SubState', '--value', 'netvol@nfs.service'], { encoding: 'utf8' }).stdout.trim().split('\n').join('/');
const t2 = process.hrtime.bigint();
const req = http.request({ socketPath: sock, path: '/VolumeDriver.Capabilities', method: 'POST' }, (res) => {
  let body = ''; res.on('data', (d) => (body += d));
  res.on('end', () => console.log(JSON.stringify({ rc: r.status, out: r.stdout + r.stderr, installMs: ms(t0, t1), stateAfter: state, answerMs: ms(t2, process.hrtime.bigint()), gapMs: ms(t1, process.hrtime.bigint()), status: res.statusCode, body })));
});
req.on('error', (e) => console.log(JSON.stringify({ rc: r.status, out: r.stdout + r.stderr, installMs: ms(t0, t1), stateAfter: state, error: e.code })));
req.setTimeout(30000, () => { console.log(JSON.stringify({ rc: r.status, out: r.stdout + r.stderr, stateAfter: state, error: 'timeout' })); process.exit(0); });
req.end('{}');
EOF
  cat /run/lab/install.json
  j() { node -e 'const o = JSON.parse(require("fs").readFileSync("/run/lab/install.json", "utf8")); const v = o[process.argv[1]]; console.log(typeof v === "number" ? v.toFixed(0) : String(v ?? "").trim())' "$1"; }
  note "install.sh nfs: exit $(j rc) in $(j installMs) ms: $(j out | tr '\n' ' ')"
  note "state right after it returned: $(j stateAfter); Capabilities: HTTP $(j status) $(j body) $(j gapMs) ms after install.sh returned (request itself $(j answerMs) ms)"
  [ "$(j rc)" = 0 ] || { fail "install.sh exited $(j rc)"; return 1; }
  [ "$(j stateAfter)" = active/running ] || { fail "netvol@nfs.service was $(j stateAfter) when install.sh returned"; return 1; }
  [ "$(j status)" = 200 ] || { fail "no answer on $SOCK right after install.sh: $(j error)"; return 1; }
  note "enabled: service $(systemctl is-enabled netvol@nfs.service), socket $(systemctl is-enabled netvol@nfs.socket); started in $(awk -v a="$(svc netvol@nfs.service ExecMainStartTimestampMonotonic)" -v b="$(svc netvol@nfs.service ActiveEnterTimestampMonotonic)" 'BEGIN { printf "%.0f", (b - a) / 1000 }') ms (ExecMainStart to READY=1)"
  [ "$(systemctl is-enabled netvol@nfs.service)" = enabled ] || { fail "netvol@nfs.service not enabled"; return 1; }
  [ "$(systemctl is-enabled netvol@nfs.socket)" = enabled ] || { fail "netvol@nfs.socket not enabled"; return 1; }
  timeout 30 netvol status || { fail "netvol status failed"; return 1; }
  # A restart (an upgrade) must also return only once the new daemon answers.
  local t0 out
  t0=$(now); systemctl restart netvol@nfs.service; out=$(ask_socket)
  note "systemctl restart netvol@nfs: $(since "$t0") s until answered ($out); MainPID $(svc netvol@nfs.service MainPID)"
  case $out in 200*) ;; *) fail "no answer right after systemctl restart: $out"; return 1 ;; esac
}

container() {
  start_writer "127.0.0.1:$EXPORT_DIR" || return 1
  local m
  m=$(nfs_mounts)
  note "on the server: $(count_lines) lines in $LINES; netvol's mount: $m"
  [ -n "$m" ] || { fail "no NFS mount in the guest"; return 1; }
}

socket_activation() {
  local loop=/run/lab/loop.txt pid0 pid1 t_kill t_ready lines0 lines1 end
  : > "$loop"
  pid0=$(svc netvol@nfs.service MainPID)
  # The loop: docker volume inspect and docker run -v, one after the other, from 5 s before the
  # kill until 4 calls after netvol is back (at most 240 s).
  rm -f /run/lab/loop.stop
  (
    end=$(( $(date +%s) + 240 )); n=0
    while [ "$(date +%s)" -lt "$end" ] && [ ! -e /run/lab/loop.stop ]; do
      for kind in inspect run; do
        n=$((n + 1)); t=$(date +%s%N); err=/run/lab/loop.err.$BASHPID.$n
        if [ $kind = inspect ]; then dk volume inspect "$VOL" > /dev/null 2> "$err"; rc=$?
        else timeout -k 2 120 docker run --rm -v "$VOL:/data" busybox true > /dev/null 2> "$err"; rc=$?; fi
        echo "$kind $rc $(( ($(date +%s%N) - t) / 1000000 )) $t $err" >> "$loop"
      done
    done
  ) &
  local loop_pid=$!
  sleep 5
  lines0=$(count_lines)
  t_kill=$(now)
  kill -9 "$pid0"
  echo "killed MainPID $pid0 at $t_kill"
  end=$((SECONDS + 60))
  while [ $SECONDS -lt $end ]; do
    pid1=$(svc netvol@nfs.service MainPID)
    [ "$(svc netvol@nfs.service ActiveState)" = active ] && [ "$pid1" != 0 ] && [ "$pid1" != "$pid0" ] && break
    sleep 0.2
  done
  t_ready=$(now)
  local n_ready
  n_ready=$(wc -l < "$loop")
  end=$((SECONDS + 90))
  until [ "$(wc -l < "$loop")" -ge $((n_ready + 4)) ] || [ $SECONDS -ge $end ]; do sleep 0.5; done
  touch /run/lab/loop.stop
  wait "$loop_pid"
  lines1=$(count_lines)
  cat "$loop"
  local calls errors longest kind rc ms t err in_flight=0 others=0 msgs=
  calls=$(wc -l < "$loop"); errors=$(awk '$2 != 0' "$loop" | wc -l)
  # dockerd repeats a call whose connection broke with an empty body (moby/moby#39331): a
  # call it had sent before the kill that netvol had not yet read (still in the socket, or
  # read and not yet kept) cannot be answered by anyone, and fails with netvol's error that
  # says so. Such a call was in flight at the kill, not made while netvol restarted; every
  # other failure fails the step. A repeat of a call netvol had read is answered from what
  # it kept (the sigkill_in_mount step proves that one on purpose). A Get's failure under
  # docker run reaches the user as "Unable to find image" (the CLI then tries a pull); it is
  # told apart by netvol's log line for each empty Get it could not answer.
  local empty_gets hidden=0
  empty_gets=$(journalctl -u netvol@nfs.service --no-pager -o cat | grep -c 'dockerd sent VolumeDriver.Get with an empty body')
  while read -r kind rc ms t err; do
    [ "$rc" = 0 ] && continue
    msgs="$msgs $(tr '\n' ' ' < "$err" | cut -c1-300)"
    local before_kill=false
    awk -v t="$t" -v k="$t_kill" 'BEGIN { exit !(t / 1e9 < k) }' && before_kill=true
    if $before_kill && grep -q 'moby/moby#39331' "$err"; then
      in_flight=$((in_flight + 1))
    elif $before_kill && [ "$kind" = run ] && grep -q 'Unable to find image' "$err" && [ "$hidden" -lt "$empty_gets" ]; then
      hidden=$((hidden + 1)); in_flight=$((in_flight + 1))
    else
      others=$((others + 1))
    fi
  done < "$loop"
  longest=$(sort -k3 -n "$loop" | tail -1 | awk '{print $1, $3 " ms"}')
  note "netvol MainPID $pid0 SIGKILLed; active again as $pid1 after $(awk -v a="$t_kill" -v b="$t_ready" 'BEGIN { printf "%.1f", b - a }') s (RestartSec=5s), NRestarts=$(svc netvol@nfs.service NRestarts)"
  note "loop: $calls calls ($(grep -c ^inspect "$loop") volume inspect, $(grep -c ^run "$loop") run --rm -v), $errors errors, longest call: $longest"
  [ "$in_flight" -gt 0 ] && note "$in_flight call(s) sent before the kill and not yet read by netvol failed with dockerd's empty repeat (moby/moby#39331):$msgs"
  note "calls started while netvol was down: $(awk -v a="$t_kill" -v b="$t_ready" '{ s = $4 / 1e9; if (s >= a && s < b) n++ } END { print n + 0 }' "$loop")"
  note "the writer container: $lines0 -> $lines1 lines across the kill, $(dk inspect -f '{{.State.Status}}' "$CTR")"
  # A call the killed process had received and not answered comes again from dockerd with an
  # empty body (moby/moby#39331); netvol answers it from the body it kept (unanswered-calls.ts).
  note "calls dockerd repeated with an empty body after the kill, answered from what the killed process kept: $(journalctl -u netvol@nfs.service --no-pager -o cat | grep -c 'dockerd repeated') ($(journalctl -u netvol@nfs.service --no-pager -o cat | grep -o 'dockerd repeated VolumeDriver[.][A-Za-z]*' | sort | uniq -c | tr -s ' ' | tr '\n' ';'))"
  journalctl -u netvol@nfs.socket -u netvol@nfs.service --no-pager -o short-precise | tail -20
  [ "$pid1" != "$pid0" ] && [ "$(svc netvol@nfs.service ActiveState)" = active ] || { fail "netvol@nfs did not come back after SIGKILL"; return 1; }
  [ "$others" = 0 ] || { fail "$others of $calls docker calls failed while netvol restarted:$msgs"; return 1; }
  [ "$lines1" -gt "$lines0" ] || { fail "the container stopped writing"; return 1; }
}

# A SIGKILL while netvol is inside a Mount, on purpose: the volume's server does not answer
# (its NFS port dropped) until the kill, so the Mount is under way, its body kept, when netvol
# dies. dockerd repeats the call with an empty body (moby/moby#39331); the new process must
# answer it from the kept body, and `docker run` succeeds with the file on the server.
kill_in_mount() {
  local addr=10.99.9.9 dir=/srv/nfs/held kept=/var/lib/netvol/nfs/unanswered pid0 pid1 t0 t_kill bg rc end
  mkdir -p "$dir"; rm -f "$dir/held.txt"
  ip addr add "$addr/32" dev lo 2> /dev/null
  exportfs -o rw,sync,no_root_squash,no_subtree_check,fsid=0 "$addr:/" || { fail "exportfs to $addr failed"; return 1; }
  iptables -I INPUT -d "$addr" -p tcp --dport 2049 -j DROP || { fail "iptables failed"; return 1; }
  dk volume create -d nfs --name heldvol -o "share=$addr:$dir" > /dev/null || { fail "docker volume create failed"; return 1; }
  pid0=$(svc netvol@nfs.service MainPID)
  t0=$(now)
  ( timeout -k 2 150 docker run --rm -v heldvol:/data busybox sh -c 'echo held > /data/held.txt' > /run/lab/held.out 2>&1; echo $? > /run/lab/held.rc ) &
  bg=$!
  end=$((SECONDS + 60))
  until grep -qs 'VolumeDriver.Mount' "$kept"/*.json || [ $SECONDS -ge $end ]; do sleep 0.2; done
  grep -qs 'VolumeDriver.Mount' "$kept"/*.json || { iptables -D INPUT -d "$addr" -p tcp --dport 2049 -j DROP; fail "no kept Mount in $kept after 60 s: $(ls "$kept" 2>&1)"; wait "$bg"; return 1; }
  note "Mount under way $(since "$t0") s after docker run: kept $(cat "$kept"/*.json | grep -o 'VolumeDriver.Mount[^,]*,[^}]*' | head -1 | cut -c1-120)"
  t_kill=$(now)
  kill -9 "$pid0"
  iptables -D INPUT -d "$addr" -p tcp --dport 2049 -j DROP
  wait "$bg"
  rc=$(cat /run/lab/held.rc)
  pid1=$(svc netvol@nfs.service MainPID)
  note "netvol $pid0 SIGKILLed in the Mount; the server answers again; docker run exit $rc $(since "$t_kill") s after the kill: $(tr '\n' ' ' < /run/lab/held.out | cut -c1-300); netvol now $pid1"
  note "netvol's log: $(journalctl -u netvol@nfs.service --no-pager -o cat --since "@${t_kill%.*}" | grep -E 'previous process stopped|dockerd repeated' | cut -c1-400 | tr '\n' ' ')"
  [ "$rc" = 0 ] || { fail "docker run -v heldvol failed after the kill in its Mount: $(tr '\n' ' ' < /run/lab/held.out | cut -c1-300)"; return 1; }
  [ "$(cat "$dir/held.txt" 2>/dev/null)" = held ] || { fail "held.txt is not on the server"; return 1; }
  journalctl -u netvol@nfs.service --no-pager -o cat --since "@${t_kill%.*}" | grep -q 'dockerd repeated VolumeDriver.Mount' || { fail "netvol's log has no answered repeat"; return 1; }
  note "on the server: $(ls -l "$dir/held.txt")"
  dk volume rm heldvol > /dev/null || { fail "docker volume rm heldvol failed"; return 1; }
}

stop_start() {
  local t0 lines0 lines1 after out m0 m1
  m0=$(nfs_mounts | wc -l)
  t0=$(now)
  systemctl stop netvol@nfs.service 2> /run/lab/stop.err
  note "systemctl stop netvol@nfs: $(since "$t0") s; then service $(systemctl is-active netvol@nfs.service), socket $(systemctl is-active netvol@nfs.socket)"
  [ -s /run/lab/stop.err ] && note "systemctl said: $(tr '\n' ' ' < /run/lab/stop.err)"
  lines0=$(count_lines); sleep 6; lines1=$(count_lines)
  m1=$(nfs_mounts | wc -l)
  note "with netvol stopped: container $(dk inspect -f '{{.State.Status}}' "$CTR"), lines $lines0 -> $lines1 in 6 s, NFS mounts $m0 -> $m1"
  [ "$lines1" -gt "$lines0" ] || { fail "the container stopped writing while netvol was stopped"; return 1; }
  [ "$m1" -ge 1 ] || { fail "the NFS mount went away with netvol stopped"; return 1; }
  # The next docker call: does the socket unit start netvol again?
  t0=$(now)
  if dk volume inspect "$VOL" > /run/lab/inspect.out 2>&1; then after="answered"; else after="failed: $(tr '\n' ' ' < /run/lab/inspect.out | cut -c1-200)"; fi
  note "docker volume inspect with netvol stopped: $after in $(since "$t0") s; service now $(systemctl is-active netvol@nfs.service)"
  t0=$(now)
  systemctl start netvol@nfs.service; out=$(ask_socket)
  note "systemctl start netvol@nfs: $(since "$t0") s until answered ($out); socket $(systemctl is-active netvol@nfs.socket)"
  case $out in 200*) ;; *) fail "no answer after systemctl start: $out"; return 1 ;; esac
  dk volume inspect "$VOL" > /dev/null || { fail "docker volume inspect failed after start"; return 1; }
}

journal() {
  journalctl -u netvol@nfs.service -u netvol@nfs.socket --no-pager -o short-precise > "$LOGS/journal-netvol.txt"
  local n
  n=$(wc -l < "$LOGS/journal-netvol.txt")
  note "journalctl -u netvol@nfs: $n lines; some of them:"
  grep -E 'netvol starting|Serving the socket|Started netvol|Mounted|Stopping|Main process exited|Scheduled restart' "$LOGS/journal-netvol.txt" | head -12 | cut -c1-260 | while IFS= read -r l; do note "  $l"; done
  grep -q 'Serving the socket systemd passed' "$LOGS/journal-netvol.txt" || { fail "no 'Serving the socket systemd passed' in the journal"; return 1; }
  grep -q 'Mount' "$LOGS/journal-netvol.txt" || { fail "no Mount lines in the journal"; return 1; }
}

before_reboot() {
  sync
  local n
  n=$(count_lines)
  head -n "$n" "$LINES" | md5sum | cut -d' ' -f1 > /var/lib/netvol-lab/before.md5
  echo "$n" > /var/lib/netvol-lab/before.count
  cat /proc/sys/kernel/random/boot_id > /var/lib/netvol-lab/before.boot_id
  sync
  note "$n lines written before the reboot (boot $(cut -c1-8 /var/lib/netvol-lab/before.boot_id))"
  [ "$n" -gt 0 ]
}

# ---------------------------------------------------------------- boot 2
after_reboot() {
  local end state
  end=$((SECONDS + 150))
  until [ "$(dk inspect -f '{{.State.Running}}' "$CTR" 2>/dev/null)" = true ] || [ $SECONDS -ge $end ]; do sleep 1; done
  state=$(dk inspect -f '{{.State.Status}} {{.RestartCount}} {{.State.Error}}' "$CTR" 2>&1)
  note "container after the reboot: $state"
  # Times since boot (ms): systemd's monotonic timestamps, and docker's StartedAt on the same clock.
  node - > /run/lab/order.json <<'EOF'
const { execFileSync } = require('child_process'); const fs = require('fs');
const show = (u, p) => Number(execFileSync('systemctl', ['show', '-p', p, '--value', u], { encoding: 'utf8' }).trim()) / 1000;
const bootWall = Date.now() - Number(fs.readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
const started = execFileSync('docker', ['inspect', '-f', '{{.State.StartedAt}}', 'writer'], { encoding: 'utf8' }).trim();
const o = {
  socketListening: show('netvol@nfs.socket', 'ActiveEnterTimestampMonotonic'),
  netvolExec: show('netvol@nfs.service', 'ExecMainStartTimestampMonotonic'),
  netvolReady: show('netvol@nfs.service', 'ActiveEnterTimestampMonotonic'),
  dockerExec: show('docker.service', 'ExecMainStartTimestampMonotonic'),
  dockerReady: show('docker.service', 'ActiveEnterTimestampMonotonic'),
  containerStarted: Date.parse(started) - bootWall,
  startedAt: started,
  nrestarts: execFileSync('systemctl', ['show', '-p', 'NRestarts', '--value', 'netvol@nfs.service'], { encoding: 'utf8' }).trim(),
};
console.log(JSON.stringify(o));
EOF
  cat /run/lab/order.json
  local o
  o() { node -e 'const o = JSON.parse(require("fs").readFileSync("/run/lab/order.json", "utf8")); const v = o[process.argv[1]]; console.log(typeof v === "number" ? (v / 1000).toFixed(2) : v)' "$1"; }
  note "seconds since boot: netvol@nfs.socket listening $(o socketListening), netvol started $(o netvolExec), netvol ready (READY=1) $(o netvolReady); dockerd started $(o dockerExec), docker.service ready $(o dockerReady); container StartedAt $(o startedAt) = $(o containerStarted); netvol NRestarts $(o nrestarts)"
  journalctl -b -o short-precise --no-pager -u netvol@nfs.service -u docker.service | grep -E 'Start|Mount|volume' | head -20 | cut -c1-220 | while IFS= read -r l; do note "  $l"; done
  [ "$state" != "${state#running}" ] || { fail "the container did not run again after the reboot: $state"; return 1; }
  node -e 'const o = JSON.parse(require("fs").readFileSync("/run/lab/order.json", "utf8")); process.exit(o.netvolReady > 0 && o.netvolReady <= o.dockerExec && o.netvolReady < o.containerStarted ? 0 : 1)' \
    || { fail "netvol was not ready before dockerd started and restored the container"; return 1; }
  [ "$(o nrestarts)" = 0 ] || { fail "netvol@nfs restarted $(o nrestarts) times during the boot"; return 1; }
}

lines_after_reboot() {
  local n md5 b1 b2 end old new
  n=$(cat /var/lib/netvol-lab/before.count); md5=$(cat /var/lib/netvol-lab/before.md5)
  b1=$(cat /var/lib/netvol-lab/before.boot_id); b2=$(cat /proc/sys/kernel/random/boot_id)
  end=$((SECONDS + 60))
  until [ "$(grep -c "^$b2 " "$LINES")" -ge 3 ] || [ $SECONDS -ge $end ]; do sleep 1; done
  old=$(grep -c "^$b1 " "$LINES"); new=$(grep -c "^$b2 " "$LINES")
  note "$LINES: $(count_lines) lines: $old from the first boot ($n when the reboot began, the rest until the container stopped), $new from this boot"
  # What the container sees on the volume, not only the server's file.
  note "seen by the container: $(dk exec "$CTR" sh -c "grep -c '^$b1 ' /data/lines.txt") lines of the first boot, last line $(dk exec "$CTR" tail -1 /data/lines.txt)"
  [ "$(head -n "$n" "$LINES" | md5sum | cut -d' ' -f1)" = "$md5" ] || { fail "the first $n lines changed across the reboot"; return 1; }
  [ "$new" -ge 3 ] || { fail "the container wrote $new lines after the reboot"; return 1; }
}

collect() {
  journalctl -b --no-pager -o short-precise > "$LOGS/journal-boot.txt" 2>&1
  systemd-analyze blame > "$LOGS/blame.txt" 2>&1
  systemd-analyze critical-chain docker.service > "$LOGS/critical-chain-docker.txt" 2>&1
  cp /proc/self/mountinfo "$LOGS/mountinfo.txt"
}

say "systemd lab $LAB_MODE: PID 1 is $(cat /proc/1/comm), kernel up for $(cut -d' ' -f1 /proc/uptime) s"
# As the reboot below: without systemctl poweroff's call to the masked logind.
power_off() { systemctl start --job-mode=replace-irreversibly --no-block poweroff.target; }

case $LAB_MODE in
  systemd1)
    step boot1_systemd boot_info
    step prepare prepare \
      && step install_nfs install_netvol \
      && step container_restart_always container \
      && { step socket_activation_sigkill socket_activation; true; } \
      && { step sigkill_in_mount kill_in_mount; true; } \
      && { step stop_start_service stop_start; true; } \
      && { step journal journal; true; } \
      && step before_reboot before_reboot
    collect
    if [ -f /var/lib/netvol-lab/before.count ]; then
      say "systemctl start reboot.target"
      sync
      # What systemctl reboot does, without its call to logind first: logind is masked in this
      # lab (SYSTEMD_LAB_MASKED in run-lab.mjs), and that call failed ("Unit
      # dbus-org.freedesktop.login1.service failed to load properly: File exists") after
      # D-Bus timeouts that took the boot past its time limit. The reboot is the same: every
      # unit stopped in order, netvol and dockerd included.
      systemctl start --job-mode=replace-irreversibly --no-block reboot.target
    else
      say "not rebooting: the first boot failed; powering off"
      power_off
    fi
    ;;
  systemd2)
    step boot2_systemd boot_info
    step reboot_restore after_reboot
    step reboot_lines lines_after_reboot
    timeout 30 netvol status
    collect
    say "systemctl start poweroff.target"
    sync
    power_off
    ;;
  *)
    say "unknown LAB_MODE $LAB_MODE"
    power_off
    ;;
esac
