#!/bin/sh
# Installs the netvol@.service and netvol@.socket templates and starts netvol for each protocol
# given (default nfs):
#
#   sudo packaging/systemd/install.sh [nfs|cifs|efs ...]
#
# DESTDIR=/other/root installs the files into another root (an image, a test);
# SYSTEMCTL=/path/to/systemctl replaces systemctl (SYSTEMCTL=: skips it).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=${DESTDIR:-}
systemctl=${SYSTEMCTL:-systemctl}
unit_dir=/etc/systemd/system

[ $# -gt 0 ] || set -- nfs
for protocol in "$@"; do
  case $protocol in
    nfs | cifs | efs) ;;
    *) echo "install.sh: unknown protocol '$protocol' (nfs, cifs or efs)" >&2; exit 2 ;;
  esac
done

# The unit runs /usr/local/bin/netvol; enabling it without one only makes a failing service.
if [ ! -x "$root/usr/local/bin/netvol" ]; then
  echo "install.sh: /usr/local/bin/netvol is missing: install netvol first (npm install -g --prefix /usr/local ./netvol-*.tgz, or from a built checkout: ln -s \"\$PWD/dist/cli.js\" /usr/local/bin/netvol)" >&2
  exit 1
fi

mkdir -p "$root$unit_dir" "$root/etc/default"
cp "$here/netvol@.service" "$root$unit_dir/netvol@.service"
cp "$here/netvol@.socket" "$root$unit_dir/netvol@.socket"
chmod 0644 "$root$unit_dir/netvol@.service" "$root$unit_dir/netvol@.socket"

for protocol in "$@"; do
  env_file=$root/etc/default/netvol-$protocol
  # An existing file holds the admin's flags, maybe a password: it is never replaced.
  [ -e "$env_file" ] && continue
  # 0600: the file is where NETSHARE_CIFS_PASSWORD belongs, out of ps and the unit.
  (
    umask 077
    {
      echo "# Flags for 'netvol $protocol' started by netvol@$protocol.service (netvol $protocol --help lists them)."
      case $protocol in
        nfs) echo '# e.g. NETVOL_ARGS=-v 3   (NFSv3, for servers or guests without NFSv4)' ;;
        cifs) echo '# e.g. NETVOL_ARGS=--netrc /root   and/or NETSHARE_CIFS_USERNAME=... NETSHARE_CIFS_PASSWORD=...' ;;
        efs) echo '# e.g. NETVOL_ARGS=--region eu-west-1' ;;
      esac
      echo 'NETVOL_ARGS='
    } >"$env_file"
  )
done

"$systemctl" daemon-reload
failed=0
for protocol in "$@"; do
  # The socket first: it then outlives every restart of the daemon. Type=notify: the second
  # call returns once netvol has loaded its state and serves the socket.
  if "$systemctl" enable --now "netvol@$protocol.socket" && "$systemctl" enable --now "netvol@$protocol.service"; then
    echo "netvol@$protocol: started; flags in /etc/default/netvol-$protocol"
  else
    echo "netvol@$protocol: did not start; see: journalctl -u netvol@$protocol" >&2
    failed=1
  fi
done
exit "$failed"
