# The guest side of the single-guest labs that boot more than once on one persistent disk
# (systemd-lab.sh, boot2docker-lab.sh, dockerfile-lab.sh): each sources this file and calls
# `lab_begin FIRST_MODE` before anything else.
#   lab_begin MODE       PATH, REPO, RES and LOGS; all output to the console and logs/guest.log;
#                        LAB_MODE from $RES/lab.env (the host writes it before each boot), else MODE
#   step NAME FUNCTION   runs FUNCTION with its output in $LOGS/NAME.log and appends a row
#                        {name, status, seconds, detail, notes} to $RES/report.json
#   note TEXT            a line for the current step's row (and the console)
#   fail TEXT            the current step's detail when it fails
# shellcheck shell=bash

lab_begin() {
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export HOME=/root LANG=C.UTF-8
  REPO=/mnt/host
  RES=/mnt/results
  LOGS=$RES/logs
  # Under systemd the lab starts from a unit, before anything mounted the results share.
  mountpoint -q "$RES" || mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 results "$RES"
  mkdir -p "$LOGS"
  # The console is where the host reads progress; a copy of everything goes to the results.
  exec > >(tee -a "$LOGS/guest.log" > /dev/console) 2>&1
  LAB_MODE=$1
  if [ -f "$RES/lab.env" ]; then . "$RES/lab.env"; fi
}

ROWS=/run/lab/rows.jsonl
NOTES=/run/lab/notes
DETAIL=
mkdir -p /run/lab
: > "$ROWS"

say() { echo "[guest $(cut -d' ' -f1 /proc/uptime)] $*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
note() { echo "NOTE: $*"; echo "$*" >> "$NOTES"; }
fail() { DETAIL="$*"; echo "FAIL: $*"; }
# Bounded docker calls: a dockerd that never answers costs a failed step, not the boot.
dk() { timeout -k 2 60 docker "$@"; }
# NFS mounts in this mount namespace: "<mount point> <fstype> <source>" a line.
nfs_mounts() { awk '{ for (i = 7; i <= NF; i++) if ($i == "-") { if ($(i + 1) ~ /^nfs4?$/) print $5, $(i + 1), $(i + 2); break } }' /proc/self/mountinfo; }

# One POST to the plugin socket $SOCK: "<HTTP status> <ms>" or "ERR <code> <ms>".
ask_socket() {
  node -e 'const http = require("http"); const t0 = process.hrtime.bigint(); const ms = () => (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(0);
    const r = http.request({ socketPath: process.argv[1], path: "/VolumeDriver.Capabilities", method: "POST" }, (res) => { res.resume(); res.on("end", () => console.log(res.statusCode, ms())); });
    r.on("error", (e) => { console.log("ERR", e.code, ms()); process.exitCode = 1; }); r.setTimeout(30000, () => { console.log("ERR timeout", ms()); process.exit(1); }); r.end("{}");' "$SOCK"
}

write_report() {
  node - "$ROWS" "$RES" "$LAB_MODE" <<'EOF'
const fs = require('fs'); const path = require('path');
const [rowsFile, res, mode] = process.argv.slice(2);
const scenarios = fs.readFileSync(rowsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
fs.writeFileSync(path.join(res, 'report.json'), JSON.stringify({ mode, generatedAt: new Date().toISOString(), scenarios }, null, 2));
fs.writeFileSync(path.join(res, 'report.txt'), scenarios.map((s) => `${s.name} ${s.status} ${s.seconds}s ${s.detail || ''}\n${(s.notes || []).map((n) => '  ' + n).join('\n')}`).join('\n') + '\n');
EOF
}

step() {
  local name=$1 fn=$2 t0 rc status
  t0=$(now); DETAIL=; : > "$NOTES"
  say "$name: start"
  { "$fn"; } > "$LOGS/$name.log" 2>&1
  rc=$?
  status=pass; [ $rc -eq 0 ] || status=fail
  [ $rc -ne 0 ] && [ -z "$DETAIL" ] && DETAIL="exit $rc; see logs/$name.log"
  node -e 'const [n, s, sec, d, notesFile] = process.argv.slice(1); const fs = require("fs");
    const notes = fs.readFileSync(notesFile, "utf8").split("\n").filter(Boolean);
    console.log(JSON.stringify({ name: n, status: s, seconds: Number(sec), detail: d, notes }));' \
    "$name" "$status" "$(since "$t0")" "$DETAIL" "$NOTES" >> "$ROWS"
  write_report
  while IFS= read -r n; do say "$name: $n"; done < "$NOTES"
  say "$name: $status${DETAIL:+ ($DETAIL)} in $(since "$t0") s"
  return $rc
}

# The labs' writer: a --restart always container $CTR on the netvol NFS volume $VOL made on
# SHARE, one line a second (the boot it runs in, a counter, the time) into lines.txt, which the
# server holds as $LINES; returns once 3 lines are there. Uses the lab's count_lines.
start_writer() {
  dk volume create -d nfs --name "$VOL" -o "share=$1" || { fail "docker volume create failed"; return 1; }
  dk run -d --name "$CTR" --restart always -v "$VOL:/data" busybox sh -c \
    'trap "exit 0" TERM; b=$(cat /proc/sys/kernel/random/boot_id); i=0; while true; do i=$((i+1)); echo "$b $i $(date +%s)" >> /data/lines.txt; sleep 1; done' \
    || { fail "docker run --restart always failed"; return 1; }
  local end=$((SECONDS + 60))
  until [ "$(count_lines)" -ge 3 ] || [ $SECONDS -ge $end ]; do sleep 1; done
  [ "$(count_lines)" -ge 3 ] || { fail "no lines in $LINES on the server after 60 s"; dk logs "$CTR"; return 1; }
}
