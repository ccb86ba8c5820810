#!/usr/bin/env bash
# Installs everything gpuctl's build and tests need on a fresh Debian machine that has only Node and npm, one
# line per step with its time: the Debian packages the tests use (apt, waiting a bounded time for the dpkg lock
# another apt may hold), the pinned npm packages with Deno among them (npm install from package-lock.json), and
# the fake driver the tests and `npm start` use. A failing step prints its command's own output.
# Idempotent: a step with nothing to do says so.
#
#   GPUCTL_APT_LOCK_WAIT   seconds to wait for the dpkg/apt locks (default 300)
#   bootstrap.sh --apt-only PKG…   only the apt step, for these packages (the lock test uses it)
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc libc6-dev runc busybox-static python3 docker.io containerd podman time shellcheck
  golang-github-container-orchestrated-devices-container-device-interface-dev)
LOCK_WAIT=${GPUCTL_APT_LOCK_WAIT:-300}
apt_only=0
if [ "${1:-}" = --apt-only ]; then
  apt_only=1
  shift
  APT_PACKAGES=("$@")
fi

say() { printf 'bootstrap: %s\n' "$*" >&2; }
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

# run LOG CMD…: CMD's output to LOG; on failure LOG is printed with the command, and the script stops.
run() {
  local log=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    local rc=$?
    cat "$log" >&2
    say "failed (exit $rc): $*"
    exit 1
  fi
}

# apt_locked CMD…: runs an apt command; while another process holds the dpkg or apt lists lock, waits (up to
# LOCK_WAIT seconds in all, saying so once) and tries again. Output in $log.
lock_deadline=
apt_locked() {
  local said=0 rc
  [ -n "$lock_deadline" ] || lock_deadline=$((SECONDS + LOCK_WAIT))
  while :; do
    rc=0
    "$@" >"$log" 2>&1 || rc=$?
    ((rc != 0)) || return 0
    local held
    held=$(grep -oE '(Could not get lock|Unable to lock directory|Unable to acquire the dpkg frontend lock) [^ ]+.*' "$log" |
      head -n 1) || true
    if [ -z "$held" ]; then
      cat "$log" >&2
      say "failed (exit $rc): $*"
      exit 1
    fi
    local lock holder
    lock=$(grep -oE '/var/lib/[a-z/]+lock[a-z-]*' <<<"$held" | head -n 1)
    holder=$(grep -oE 'held by process [0-9]+( \([^)]*\))?' "$log" | head -n 1 | sed 's/held by //') || true
    if ((SECONDS >= lock_deadline)); then
      echo >&2
      say "the lock ${lock:-of dpkg} is still held${holder:+ by $holder} after ${LOCK_WAIT} s: let that apt finish (or set GPUCTL_APT_LOCK_WAIT) and run this again"
      exit 1
    fi
    if ((said == 0)); then
      printf '\nbootstrap: waiting for %s%s (another apt is running; up to %s s) ' \
        "${lock:-the dpkg lock}" "${holder:+, held by $holder}" "$LOCK_WAIT" >&2
      said=1
    fi
    sleep 2
  done
}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# 1. Debian packages
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})) || ((apt_only)); then
  if [ "$(id -u)" != 0 ]; then
    say "need Debian packages ${missing[*]}; run as root or install them: apt-get install ${missing[*]}"
    exit 1
  fi
  t0=$(now)
  printf 'bootstrap: Debian packages %s (apt-get) ... ' "${missing[*]:-${APT_PACKAGES[*]}}" >&2
  if ((${#missing[@]})); then apt_locked apt-get update -q; fi
  DEBIAN_FRONTEND=noninteractive apt_locked apt-get install -y -q --no-install-recommends "${APT_PACKAGES[@]}"
  printf 'done, %s\n' "$(took "$t0")" >&2
else
  say "Debian packages: all ${#APT_PACKAGES[@]} installed"
fi
((apt_only == 0)) || exit 0

# 2. npm packages, Deno among them
if [ ! -x node_modules/.bin/deno ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  t0=$(now)
  printf 'bootstrap: npm packages (npm install, from package-lock.json) ... ' >&2
  # `npm install` from the lock file: npm 11's lock omits the other platforms' optional Deno builds,
  # which makes `npm ci` refuse it.
  run "$log" npm install --no-audit --no-fund --loglevel=error
  printf 'done, %s\n' "$(took "$t0")" >&2
else
  say "npm packages: installed"
fi
run "$log" node_modules/.bin/deno --version
say "$(head -n 1 "$log") (pinned by package.json)"

# 3. The fake driver (C, built with gcc, cached under tests/.cache)
t0=$(now)
printf 'bootstrap: the fake driver (tests/fixtures, cached in tests/.cache) ... ' >&2
run "$log" node_modules/.bin/deno run -A --quiet tests/fixtures/driver.ts 2
printf 'done, %s\n' "$(took "$t0")" >&2
