#!/usr/bin/env bash
# The whole test suite, from a fresh clone: bootstrap, then `deno task test` twice — on this machine as it is,
# with gpuctl run from source, and again in a private mount namespace where it looks like a GPU host with
# NVIDIA's toolkit installed (tools/gpu_host.ts), with gpuctl run as the artifact a host gets (dist/gpuctl,
# GPUCTL_TEST_TARGET=artifact) wherever a test does not name a target itself — and a check that neither run
# created, changed or removed anything where a GPU host keeps its driver, engines or gpuctl (tools/watched.sh).
# Ends with one line "N passed, N failed", both runs added up (deno's own summary is "ok | N passed | N failed").
#
#   GPUCTL_TEST_HOSTS   which runs: "bare gpu" (default), "bare" or "gpu"
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh || exit 1
export PATH="$PWD/node_modules/.bin:$PATH" NO_COLOR=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

total_passed=0 total_failed=0 rc=0
# suite NAME CMD…: runs CMD (the suite), prints its summary as one line, and adds it up.
runs=0
suite() {
  local name=$1 t0=$SECONDS log
  shift
  runs=$((runs + 1))
  log="$work/run-$runs.log"
  "$@" 2>&1 | tee "$log"
  local r=${PIPESTATUS[0]}
  local summary passed failed
  summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
  passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
  failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
  [[ $passed =~ ^[0-9]+$ ]] || passed=0
  # No summary: the run did not finish as deno test does. That is a failure, whatever its exit status.
  [[ $failed =~ ^[0-9]+$ ]] || failed=1
  echo "test: ${name}: ${passed} passed, ${failed} failed ($((SECONDS - t0)) s)"
  total_passed=$((total_passed + passed))
  total_failed=$((total_failed + failed))
  ((r == 0)) || rc=$r
  ((failed == 0 || rc != 0)) || rc=1
}

bash tools/watched.sh >"$work/before"
for host in ${GPUCTL_TEST_HOSTS:-bare gpu}; do
  case $host in
  bare) suite "this machine, gpuctl from source" deno task --quiet test "$@" ;;
  gpu)
    GPUCTL_TEST_TARGET=artifact suite "a GPU host with NVIDIA's toolkit, gpuctl as dist/gpuctl" \
      deno run -A --quiet tools/gpu_host.ts deno task --quiet test "$@"
    ;;
  *)
    echo "test: GPUCTL_TEST_HOSTS: unknown host '$host' (bare, gpu)" >&2
    exit 2
    ;;
  esac
done
bash tools/watched.sh >"$work/after"
if ! diff -u "$work/before" "$work/after" >"$work/changed"; then
  echo "test: the tests changed this machine where a GPU host keeps its driver, engines or gpuctl (- before, + after):"
  grep '^[-+][^-+]' "$work/changed" | head -40
  total_failed=$((total_failed + 1))
  ((rc != 0)) || rc=1
fi
echo "${total_passed} passed, ${total_failed} failed"
exit "$rc"
