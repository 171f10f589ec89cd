#!/bin/sh
# Runs as root on one boot2docker node, copied there by install-netvol.sh:
#
#   sh netvol-node-setup.sh TARBALL NAME PROTOCOL [NETVOL FLAGS...]
#
# Unpacks netvol under /var/lib/boot2docker (the only place that survives a reboot), makes
# bootsync.sh start it at boot, (re)starts it now and waits until its socket answers.
#
# Why bootsync.sh: boot2docker's bootscript runs bootsync.sh and waits for it, then starts
# dockerd without waiting, then bootlocal.sh in the background. From bootlocal.sh netvol races
# dockerd's restore of --restart always containers; from bootsync.sh its socket is there before
# dockerd starts (the boot2docker lab, npm run test:boot2docker, measures both).
# The last line it prints is "ok (socket answered)" or "FAILED: <reason>".
# NETVOL_NODE_ROOT prefixes every node path (tests run it outside a VM).
set -eu

fail() {
  echo "FAILED: $*"
  exit 1
}
[ $# -ge 3 ] || fail "usage: netvol-node-setup.sh TARBALL NAME PROTOCOL [NETVOL FLAGS...]"
tarball=$1
name=$2
protocol=$3
shift 3
# Both copies sit in the docker user's home, which boot2docker keeps in RAM.
trap 'rm -f "$tarball" "$0"' EXIT
case $protocol in nfs | cifs | efs) ;; *) fail "unknown protocol '$protocol' (nfs, cifs or efs)" ;; esac
case $name in '' | *[!A-Za-z0-9_.-]*) fail "invalid name '$name' (letters, digits, '.', '_' and '-')" ;; esac

root=${NETVOL_NODE_ROOT:-}
persist=/var/lib/boot2docker
app=$persist/netvol
bootsync=$persist/bootsync.sh
bootlocal=$persist/bootlocal.sh
socket=/run/docker/plugins/$name.sock
pidfile=$root/var/run/netvol-$name.pid
log=/var/log/netvol.log

[ -d "$root$persist" ] || fail "$persist is missing: not a boot2docker node with a persistent disk"

q() {
  printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

alive() {
  # A zombie is not alive; its /proc entry stays until its parent reaps it.
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

for f in profile bootsync.sh bootlocal.sh; do
  if grep -qs docker-volume-netshare "$root$persist/$f"; then
    echo "warning: $persist/$f still starts docker-volume-netshare: remove that line, or it and netvol will claim the same socket at boot"
  fi
done

# Unpack beside the old copy and swap, so a broken tarball leaves the installed one intact.
rm -rf "$root$app.new" "$root$app.old"
mkdir -p "$root$app.new"
tar -xzf "$tarball" -C "$root$app.new" || fail "cannot unpack $tarball"
for f in netvol node netvol-start; do
  [ -x "$root$app.new/bin/$f" ] || fail "the tarball has no bin/$f: build it with packaging/boot2docker/make-tarball.sh"
done

# Stop the daemon a previous install started; mounts stay in place for running containers.
if [ -s "$pidfile" ]; then
  old=$(cat "$pidfile")
  if alive "$old" && grep -qs netvol "/proc/$old/cmdline"; then
    kill "$old"
    waited=0
    while alive "$old"; do
      [ "$waited" -lt 30 ] || fail "the running netvol (pid $old) did not stop within 15 s"
      sleep 0.5 2>/dev/null || sleep 1
      waited=$((waited + 1))
    done
  fi
fi

[ ! -d "$root$app" ] || mv "$root$app" "$root$app.old"
mv "$root$app.new" "$root$app"
rm -rf "$root$app.old"

# One start line per daemon name, found by its marker: a second install replaces it, and an
# install before bootsync.sh was the hook leaves one in bootlocal.sh, removed here.
line="$app/bin/netvol-start $(q "$name") $(q "$protocol")"
for arg in "$@"; do line="$line $(q "$arg")"; done
line="$line # netvol:$name"
# FILE without this daemon's start line, rewritten in place (cat keeps its mode and owner).
drop_line() {
  awk -v marker=" # netvol:$name" 'substr($0, length($0) - length(marker) + 1) != marker' "$1" >"$1.tmp"
  cat "$1.tmp" >"$1"
  rm -f "$1.tmp"
}
[ -f "$root$bootsync" ] || printf '#!/bin/sh\n' >"$root$bootsync"
drop_line "$root$bootsync"
printf '%s\n' "$line" >>"$root$bootsync"
chmod +x "$root$bootsync"
if grep -qs " # netvol:$name\$" "$root$bootlocal"; then drop_line "$root$bootlocal"; fi

pid=$(NETVOL_NODE_ROOT=$root "$root$app/bin/netvol-start" "$name" "$protocol" "$@") || fail "netvol-start failed"

# Ready means the socket answers: it exists only once the state is loaded.
deadline=$(($(date +%s) + 30))
until "$root$app/bin/netvol" status --socket "$root$socket" >/dev/null 2>&1; do
  alive "$pid" || fail "netvol exited at start: $(tail -n 1 "$root$log")"
  [ "$(date +%s)" -lt "$deadline" ] || fail "no answer on $socket after 30 s; see $log"
  sleep 0.5 2>/dev/null || sleep 1
done
echo "ok (socket answered)"
