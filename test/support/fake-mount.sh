#!/bin/sh
# Stands in for mount(8) on kernels without NFS/CIFS: called with netvol's argv
# (-t TYPE [-o OPTS] -- SOURCE TARGET), it mounts a small tmpfs at TARGET so the mount
# table shows a real mount. A SOURCE containing "refused" or "hang" fails or hangs like an
# unreachable server (a hang sleeps for the digits in SOURCE, so a test can find its own
# sleeper among other processes); every argv is appended to $FAKE_MOUNT_LOG when set.
for arg; do source_arg=$target_arg; target_arg=$arg; done
[ -n "$FAKE_MOUNT_LOG" ] && echo "$*" >> "$FAKE_MOUNT_LOG"
case "$source_arg" in
  *refused*) echo "mount.nfs: Connection refused for $source_arg on $target_arg" >&2; exit 32 ;;
  *hang*) seconds=$(printf '%s' "${source_arg%%:*}" | tr -cd 0-9); sleep "${seconds:-600}" ;;
esac
# The source becomes the tmpfs device name, so the mount table shows which share it stands for.
exec mount -t tmpfs -o size=1m -- "$source_arg" "$target_arg"
