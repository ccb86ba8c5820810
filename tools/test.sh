#!/usr/bin/env bash
# The whole test suite, from a fresh clone: bootstrap, then `deno task test`.
# Ends with one line "N passed, N failed" (deno's own summary is "ok | N passed | N failed").
set -uo pipefail
cd "$(dirname "$0")/.."
bash tools/bootstrap.sh || exit 1
export PATH="$PWD/node_modules/.bin:$PATH" NO_COLOR=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
deno task --quiet test "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
summary=$(grep -E '^(ok|FAILED) \| [0-9]+ passed' "$log" | tail -n 1)
passed=$(sed -E 's/.*\| ([0-9]+) passed.*/\1/' <<<"$summary")
failed=$(sed -E 's/.*\| ([0-9]+) failed.*/\1/' <<<"$summary")
[[ $passed =~ ^[0-9]+$ ]] || passed=0
[[ $failed =~ ^[0-9]+$ ]] || failed=$((rc == 0 ? 0 : 1))
echo "${passed} passed, ${failed} failed"
exit "$rc"
