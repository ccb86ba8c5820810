#!/usr/bin/env bash
# Installs everything gpuctl's build and tests need on a fresh Debian machine that has only Node and npm:
# the pinned Deno and npm packages (npm install from package-lock.json), and the Debian packages the tests use.
# Idempotent and quiet when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc libc6-dev runc busybox-static python3 docker.io containerd podman time
  golang-github-container-orchestrated-devices-container-device-interface-dev)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "bootstrap: need Debian packages ${missing[*]}; run as root or install them: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/deno ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  # `npm install` from the lock file: npm 11's lock omits the other platforms' optional Deno builds,
  # which makes `npm ci` refuse it.
  echo "bootstrap: npm install" >&2
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
node_modules/.bin/deno --version >/dev/null
