#!/bin/bash
# netvol Dockerfile lab: guest side (npm run test:dockerfile; host side: run-lab.mjs --mode
# dockerfile). guest-init.sh has brought up the NFS server and dockerd (20.10, the bookworm
# image) and execs this script. Two boots, told apart by LAB_MODE:
#
#   df1  the repository's Dockerfile built as a user builds it. dockerd's data root is the disk
#        /dev/vdb, on which the host's dockerd (the same docker.io) has `docker import`ed the
#        Dockerfile's FROM image, node:20-bookworm-slim, from scripts/lab/node-base.sh's tar: a
#        debootstrapped bookworm with node and npm, the Debian mirror and the npm registry
#        stood in for by a local apt repository and npm's cache (scripts/lab/docker-root.sh:
#        under emulation the import took 180-220 s). Then `docker build` (DOCKER_BUILDKIT=0:
#        the classic builder, 20.10's default) of a copy of the repository; the image
#        checked; dockerd stopped, so that the host can open the disk.
#   df2  a container of that image, exported by the host's dockerd from the disk, is the rootfs
#        of a managed plugin: the host put plugin-config.json beside it and created the plugin
#        (scripts/lab/plugin-store.sh; a `docker plugin create` here gzips the rootfs, which
#        takes over 10 minutes under TCG); its store is /dev/vdb. Enable it, make a volume,
#        write through it to the server.
set -u
. "$(dirname "$(readlink -f "$0")")/lab-steps.sh"
lab_begin df1

IMAGE=netvol:dockerfile
PLUGIN=netvol-dockerfile:lab
EXPORT_DIR=/srv/nfs/df

base_image() {
  dk image inspect node:20-bookworm-slim > /dev/null || { fail "no node:20-bookworm-slim in dockerd's data root (the host's docker-root.sh import failed?)"; return 1; }
  note "FROM image: $(dk image ls --format '{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' node:20-bookworm-slim), made by docker import on the host into this dockerd's data root"
}

build() {
  local ctx=/var/tmp/netvol-src t0 rc
  rm -rf "$ctx"; mkdir -p "$ctx"
  # What `git clone` gives a user, without the parts .dockerignore leaves out anyway.
  tar -C "$REPO" --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./test -cf - . | tar -C "$ctx" -xf -
  t0=$(now)
  # Each line stamped with the guest's uptime: the steps' durations go into the report.
  DOCKER_BUILDKIT=0 timeout -k 5 1500 docker build -t "$IMAGE" "$ctx" 2>&1 \
    | while IFS= read -r l; do echo "$(cut -d' ' -f1 /proc/uptime) $l"; done > "$LOGS/docker-build.txt"
  rc=${PIPESTATUS[0]}
  tail -25 "$LOGS/docker-build.txt"
  [ $rc -eq 0 ] || { fail "docker build failed (exit $rc): $(grep -m1 -iE 'error|returned a non-zero' "$LOGS/docker-build.txt" | cut -c1-200)"; return 1; }
  note "DOCKER_BUILDKIT=0 docker build -t $IMAGE . : $(since "$t0") s; image $(dk image ls --format '{{.Size}}' "$IMAGE")"
  note "seconds per step: $(awk '$2 == "Step" { if (n) printf "%s %.0f; ", n, $1 - t; n = $3; t = $1 } END { printf "%s %.0f", n, $1 - t }' "$LOGS/docker-build.txt")"
  note "installed offline from the stand-ins: npm ci $(grep -m1 -oE 'added [0-9]+ packages in [0-9a-z.]+' "$LOGS/docker-build.txt"); apt: $(grep -m1 -oE '[0-9]+ newly installed' "$LOGS/docker-build.txt")"
  local out
  # (dash's command -v takes one name at a time.)
  out=$(dk run --rm --entrypoint sh "$IMAGE" -c 'node /opt/netvol/dist/cli.js version && for t in mount.nfs mount.nfs4 mount.cifs umount netvol-plugin netvol-csi-plugin; do command -v $t || exit 1; done && sha256sum /opt/netvol/dist/cli.js') \
    || { fail "the image does not run netvol, or lacks a tool: $(echo "$out" | tr '\n' ' ')"; return 1; }
  note "in the image: $(echo "$out" | tr '\n' ' ')"
  echo "$out" | grep -oE '^[0-9a-f]{64}' > "$RES/image-cli.sha256"
}

close_root() {
  local pid
  pid=$(cat /var/run/docker.pid 2> /dev/null)
  kill "$pid" 2> /dev/null
  local end=$((SECONDS + 90))
  while kill -0 "$pid" 2> /dev/null && [ $SECONDS -lt $end ]; do sleep 0.5; done
  kill -0 "$pid" 2> /dev/null && { fail "dockerd did not stop in 90 s"; return 1; }
  sync
  umount /var/lib/docker || { fail "cannot unmount dockerd's data root: $(grep /var/lib/docker /proc/self/mountinfo | head -3)"; return 1; }
  note "dockerd stopped and its data root unmounted for the host"
}

enable_plugin() {
  dk plugin inspect "$PLUGIN" > /dev/null || { fail "plugin $PLUGIN not in dockerd's store (the host's plugin-store.sh failed?): $(docker plugin ls 2>&1)"; return 1; }
  local id sha want tries=1 t0
  id=$(dk plugin inspect -f '{{.Id}}' "$PLUGIN")
  sha=$(sha256sum "/var/lib/docker/plugins/$id/rootfs/opt/netvol/dist/cli.js" | cut -d' ' -f1)
  want=$(cat "$RES/image-cli.sha256" 2>/dev/null)
  note "the plugin's rootfs is the image's export: dist/cli.js $sha (image: $want)"
  [ -n "$want" ] && [ "$sha" = "$want" ] || { fail "the plugin's dist/cli.js is not the image's"; return 1; }
  mkdir -p /var/lib/netvol
  dk plugin set "$PLUGIN" VERBOSE=true MOUNT_TIMEOUT=15 || { fail "docker plugin set failed"; return 1; }
  t0=$(now)
  # dockerd gives a plugin about 12 s to make its socket; the first start of node in this
  # emulated guest can take longer (s13 in scenarios.sh tries the same way).
  until dk plugin enable "$PLUGIN"; do
    [ $tries -ge 4 ] && { fail "docker plugin enable failed $tries times"; return 1; }
    tries=$((tries + 1))
  done
  note "docker plugin enable $PLUGIN: $(since "$t0") s, $tries attempt(s); $(dk plugin ls --format '{{.Name}} enabled={{.Enabled}}')"
}

volume_write() {
  mkdir -p "$EXPORT_DIR"
  dk volume create -d "$PLUGIN" --name dfvol -o "share=127.0.0.1:$EXPORT_DIR" || { fail "docker volume create failed"; return 1; }
  dk run --rm -v dfvol:/data busybox sh -c 'echo written-through-the-dockerfile-image > /data/f.txt' || { fail "docker run -v dfvol failed"; return 1; }
  [ "$(cat "$EXPORT_DIR/f.txt" 2>/dev/null)" = written-through-the-dockerfile-image ] || { fail "f.txt not on the server: $(ls -la "$EXPORT_DIR")"; return 1; }
  note "a container wrote $EXPORT_DIR/f.txt on the server through the plugin: $(ls -l "$EXPORT_DIR/f.txt")"
  note "netvol's log in the plugin: $(grep -m1 -o '"msg":"Volume mount"[^}]*' /var/log/dockerd.log 2>/dev/null || grep -m1 'Volume mount' /var/log/dockerd.log | cut -c1-200)"
  dk volume rm dfvol || { fail "docker volume rm failed"; return 1; }
  dk plugin disable "$PLUGIN" > /dev/null || { fail "docker plugin disable failed"; return 1; }
}

say "Dockerfile lab $LAB_MODE"
case $LAB_MODE in
  df1) step base_image base_image && step docker_build build && step close_root close_root ;;
  df2) step plugin_enable enable_plugin && step plugin_volume volume_write ;;
  *) say "unknown LAB_MODE $LAB_MODE" ;;
esac
write_report
sync
say "powering off"
poweroff -f
