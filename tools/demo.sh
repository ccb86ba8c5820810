#!/usr/bin/env bash
# gpuctl's main job on this machine: `gpuctl info`. On a host with an NVIDIA driver it reports the real GPUs;
# without one it builds the fake driver from tests/fixtures and says plainly that the result is simulated.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh
export PATH="$PWD/node_modules/.bin:$PATH"
if [ -e /proc/driver/nvidia/version ] || ldconfig -p 2>/dev/null | grep -q 'libnvidia-ml.so.1 '; then
  exec deno run -A --quiet cli/main.ts info "$@"
fi
config=$(deno run -A --quiet tests/fixtures/driver.ts --write-config 2)
echo "SIMULATED: this machine has no NVIDIA driver; showing 'gpuctl info' against the fake driver"
echo "           (2 fake GPUs, one with MIG) built from tests/fixtures, config $config"
echo
exec deno run -A --quiet cli/main.ts --config "$config" info "$@"
