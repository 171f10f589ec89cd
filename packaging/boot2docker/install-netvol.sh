#!/bin/sh
# Installs netvol on boot2docker nodes made by docker-machine, keeps it across reboots and
# starts it now, without a reboot:
#
#   install-netvol.sh [--protocol nfs|cifs|efs] [--args "FLAGS"] [--name NAME] [--tarball FILE] [NODE...]
#
#   --protocol  what the daemon serves (default nfs)
#   --args      netvol flags, split on spaces, e.g. "-v 3" (boot2docker has no NFSv4 client)
#   --name      driver and socket name, /run/docker/plugins/NAME.sock (default: the protocol);
#               use this rather than --socket in --args
#   --tarball   from packaging/boot2docker/make-tarball.sh (default: $NETVOL_TARBALL)
#   NODE...     default: every machine of `docker-machine ls -q`
#
# Prints one line per node, "NODE: ok (socket answered)" or "NODE: FAILED: <reason>", and
# exits 1 if any node failed. DOCKER_MACHINE replaces the docker-machine command.
set -u

usage() {
  sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
  exit 0
}
die() {
  echo "install-netvol.sh: $*" >&2
  exit 2
}

here=$(cd "$(dirname "$0")" && pwd)
dm=${DOCKER_MACHINE:-docker-machine}
protocol=nfs
flags=
name=
tarball=${NETVOL_TARBALL:-}
while [ $# -gt 0 ]; do
  case $1 in
    --protocol | --args | --name | --tarball) [ $# -ge 2 ] || die "$1 needs a value" ;;
  esac
  case $1 in
    --protocol) protocol=$2; shift 2 ;;
    --args) flags=$2; shift 2 ;;
    --name) name=$2; shift 2 ;;
    --tarball) tarball=$2; shift 2 ;;
    -h | --help) usage ;;
    --) shift; break ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
  esac
done
case $protocol in nfs | cifs | efs) ;; *) die "unknown protocol '$protocol' (nfs, cifs or efs)" ;; esac
name=${name:-$protocol}
case $name in *[!A-Za-z0-9_.-]*) die "invalid --name '$name' (letters, digits, '.', '_' and '-')" ;; esac
[ -n "$tarball" ] || die "no tarball: pass --tarball FILE or set NETVOL_TARBALL (make one with $here/make-tarball.sh)"
[ -r "$tarball" ] || die "cannot read $tarball"
case $tarball in /*) ;; *) tarball=$PWD/$tarball ;; esac
# docker-machine scp reads "a:b" as machine a, path b.
case $tarball$here in *:*) die "paths with ':' confuse docker-machine scp; move $tarball or this script" ;; esac

if [ $# -eq 0 ]; then
  nodes=$("$dm" ls -q) || die "'$dm ls -q' failed; name the nodes as arguments"
  [ -n "$nodes" ] || die "docker-machine knows no machines; name the nodes as arguments"
  # Machine names have no spaces: one a line, split here without globbing.
  set -f
  # shellcheck disable=SC2086
  set -- $nodes
  set +f
fi

# One word, quoted for the node's shell: docker-machine ssh joins its arguments into a
# command line that the remote shell parses again.
q() {
  printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}
remote="sudo sh netvol-node-setup.sh netvol-install.tgz $(q "$name") $(q "$protocol")"
set -f
for word in $flags; do remote="$remote $(q "$word")"; done
set +f

# The reason to show: the setup's own FAILED line if it got that far, else the last line
# other than docker-machine's "exit status N", else a default.
reason() {
  printf '%s\n' "$1" | sed -n 's/^FAILED: //p' | tail -n 1 | grep . ||
    printf '%s\n' "$1" | grep -v '^exit status [0-9]*$' | grep . | tail -n 1 | grep . ||
    echo "$2"
}

failed=0
for node in "$@"; do
  case $node in
    '' | -* | *[!A-Za-z0-9_.-]*) echo "$node: FAILED: not a docker-machine name"; failed=1; continue ;;
  esac
  echo "$node: copying netvol and installing it as '$name'..." >&2
  # Relative remote paths land in the docker user's home; the setup removes both files.
  if ! out=$("$dm" scp "$tarball" "$node:netvol-install.tgz" 2>&1) ||
    ! out=$("$dm" scp "$here/node-setup.sh" "$node:netvol-node-setup.sh" 2>&1); then
    echo "$node: FAILED: copy failed: $(reason "$out" "docker-machine scp failed")"
    failed=1
    continue
  fi
  out=$("$dm" ssh "$node" "$remote" 2>&1)
  status=$?
  printf '%s\n' "$out" | sed -n "s/^warning: /$node: warning: /p" >&2
  if [ "$status" -eq 0 ] && printf '%s\n' "$out" | grep -qx 'ok (socket answered)'; then
    echo "$node: ok (socket answered)"
  else
    echo "$node: FAILED: $(reason "$out" "no answer from the node")"
    failed=1
  fi
done
exit "$failed"
