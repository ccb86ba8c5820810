#!/usr/bin/env bash
# The host paths no test may create, change or remove, listed one entry per line (type, mode, owner, size,
# modification time, link target, and the content's hash for files), so that two listings taken before and
# after the suite compare. Where gpuctl, NVIDIA's toolkit and the engines keep what a GPU host has.
set -uo pipefail
PATHS=(
  /etc/ld.so.cache /etc/cdi /var/run/cdi /run/gpuctl /etc/gpuctl
  /etc/docker /etc/containerd /etc/crio /etc/nvidia-container-runtime /etc/nvidia-container-toolkit
  /etc/systemd/system /usr/local/bin /usr/local/lib/gpuctl /opt/containerd
)
list() {
  local p=$1
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then
    echo "absent $p"
    return
  fi
  # -P: a link is listed as a link, never followed.
  find -P "$p" -printf '%y %m %U:%G %s %T@ %p -> %l\n' 2>&1 | sort
  find -P "$p" -type f -size -64M -print0 2>/dev/null | sort -z | xargs -0 -r sha256sum
}
for p in "${PATHS[@]}"; do list "$p"; done
for p in /dev/nvidia* /dev/char /dev/dri; do list "$p"; done
