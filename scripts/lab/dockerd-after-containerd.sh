#!/bin/sh
# Usage: dockerd-after-containerd.sh LOG (after containerd was started; returns once dockerd is
# started, in the background, or 240 s went by without containerd's socket)
#
# Starts a lab guest's dockerd once containerd's socket exists, and tells it where that is. A
# dockerd started before the socket is there starts a containerd of its own, and under load
# gives up on it: "failed to start containerd: timeout waiting for containerd to start" (a
# cluster worker beside another guest), and the guest never has a docker.
end=$(( $(date +%s) + 240 ))
until [ -S /run/containerd/containerd.sock ] || [ "$(date +%s)" -ge "$end" ]; do sleep 0.5; done
dockerd --host unix:///run/docker.sock --containerd=/run/containerd/containerd.sock > "$1" 2>&1 &
