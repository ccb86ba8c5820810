# The client side of gpuctl serve's protocol (serve/server.ts), shared by both fronts. From the preamble:
# S (the serve directory, empty for none), T (seconds to wait for an answer), PROTOCOL, and the tools MKFIFO,
# SLEEP, HEAD and RM by absolute path.

# alive PID START: that process lives and is the one that started at START (field 22 of /proc/PID/stat), so a
# pid the kernel has since given to another process is not taken for the server.
alive() {
  pid=$1 start=$2
  case $pid in '' | *[!0-9]*) return 1 ;; esac
  read -r st 2>/dev/null <"/proc/$pid/stat" || return 1
  # shellcheck disable=SC2086 # the fields after the command name, split on purpose
  set -- ${st##*) }
  shift 19
  [ "${1-}" = "$start" ]
}

# ask VERB ARGS...: hands the call to a running gpuctl serve, leaving its answer line in a. Status 1, having done
# nothing (stdin untouched), when none runs or its directory is not root's own; 2, having said why, when it does
# not answer in time: it may still act on the container, so gpuctl must not run behind it. For hook, stdin (the
# container's state, at most 16 MiB read, config.json's bound) goes with the request and stays readable on fd 5
# for a direct answer.
#
# Every wait is bounded: the request line is written in the background (a stopped server's full FIFO blocks only
# that writer, which is killed), and the answer is read from the reply FIFO, which a background sleep holds open
# for writing, so the read ends with the server's line or, once the sleep is over, empty. Files are written with
# noclobber: a name that exists, a planted link among them, is never written through. The request carries its
# deadline (seconds since boot), past which the server drops it. It uses fds 4 and 5: the runtime front calls it
# in a subshell, so that the descriptors an engine hands runc (--preserve-fds) stay as they are.
ask() {
  [ -n "$S" ] || return 1
  [ -d "$S" ] && [ ! -L "$S" ] && [ -O "$S" ] && [ ! -L "${S%/*}" ] && [ -O "${S%/*}" ] || return 1
  [ -p "$S/requests" ] || return 1
  read -r sp sst 2>/dev/null <"$S/pid" && alive "$sp" "$sst" || return 1
  v=$1
  shift
  f=$S/$$
  [ -p "$f.reply" ] || "$MKFIFO" -m 600 "$f.reply" 2>/dev/null || return 1
  set -C
  printf '%s\0' "$PROTOCOL" "${GPUCTL_CONFIG-}" "$PWD" "$@" 2>/dev/null >"$f.$v.argv" || return 1
  if [ "$v" = hook ]; then
    "$HEAD" -c 16777217 2>/dev/null >"$f.$v.stdin" || return 1
    exec 5<"$f.$v.stdin"
  fi
  set +C
  read -r up _ </proc/uptime
  "$SLEEP" "$T" 3>"$f.reply" >/dev/null 2>&1 &
  w=$!
  exec 4<"$f.reply"
  (printf '%s %s\n' "$f.$v" "$((${up%.*} + T))" 1<>"$S/requests") 2>/dev/null &
  wp=$!
  a=
  read -r a <&4
  kill "$w" "$wp" 2>/dev/null
  exec 4<&-
  if [ -z "$a" ]; then
    # Given up: its files go (a server that comes back drops the request, being past its deadline).
    "$RM" -f "$f.$v.argv" "$f.$v.stdin" "$f.reply" 2>/dev/null
    printf 'gpuctl: gpuctl serve (pid %s, in %s) did not answer in %ss and may still act, so this stops here: restart it, or stop it to run gpuctl per container\n' "$sp" "$S" "$T" >&2
    return 2
  fi
}

# answered LINE: splits an answer line into code, word and msg.
answered() {
  a=$1
  code=${a%% *} a=${a#* } word=${a%% *} msg=
  case $a in *" "*) msg=${a#* } ;; esac
}
