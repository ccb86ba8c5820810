# The nvidia-container-runtime-hook front (serve/fronts.ts writes it, after a preamble of quoted assignments from
# gpuctl install: the serve client's S, T, PROTOCOL, MKFIFO, SLEEP, HEAD, RM, CLIENT, the variables to drop,
# UNSAFE, and the function gpuctl).
#
# The prestart hook and CDI's container-edits hook go to a running gpuctl serve; everything else (other stages,
# no server) runs gpuctl. As a gpuctl hook process does, it first drops the variables that change how programs load
# and run (re-executing itself once without them), so that nothing it runs sees them.
set -f
IFS=' 	
'
again=
# shellcheck disable=SC2086 # UNSAFE is a list of names, split on the spaces between them (globbing is off).
for v in $UNSAFE; do
  eval "[ -z \"\${$v+x}\" ]" || {
    unset "$v"
    again=1
  }
done
[ -z "$again" ] || exec /bin/sh "$0" "$@"

case ${1-} in
prestart | createRuntime | container-edits)
  # container-edits runs in the container's mount namespace, before its pivot_root: the server enters it through
  # this shell's pid as the host numbers it (read through the host's /proc, which this namespace still has).
  me=
  if [ "$1" = container-edits ]; then
    read -r me _ 2>/dev/null </proc/self/stat || me=
    case $me in '' | *[!0-9]*) me= ;; esac
  fi
  # A packed gpuctl is its own serve client (serve/fronts/client.c): no other process on the way.
  [ -n "$S" ] && [ -n "$CLIENT" ] && exec "$CLIENT" --serve-client hook "$S" "$T" "$PROTOCOL" "$me" -- "$@"
  ask hook ${me:+"--caller=$me"} "$@"
  s=$?
  [ $s = 1 ] && gpuctl "$@"
  [ $s = 2 ] && exit 1
  answered "$a"
  case $word in
  ok) exit 0 ;;
  direct) gpuctl "$@" <&5 ;;
  esac
  printf 'gpuctl: %s\n' "$msg" >&2
  exit "$code"
  ;;
esac
gpuctl "$@"
