# The gpuctl-runtime front (serve/fronts.ts writes it, after a preamble of quoted assignments from gpuctl install:
# VERSION, SELF, CONFIG, HAD_CONFIG, FROM_NVIDIA, DEFAULT_CONFIG, GREP, MARKERS, RUNTIMES, SBIN, the serve client's S, T, PROTOCOL,
# MKFIFO, SLEEP, HEAD, RM, CLIENT, and the function gpuctl).
#
# runc's commands go straight to the low-level runtime, and so does a create or run whose config.json mentions no
# GPU request; only one that may ask for a GPU goes to gpuctl serve, or to gpuctl. A request the front misses would
# be a container without its GPUs, so it errs the other way: a mention is enough, and so is a configuration that
# changed since the front was written (its request markers may have), until gpuctl install writes it again.
set -f
IFS=' 	
'
[ -n "${GPUCTL_RUNTIME_EXEC-}" ] && gpuctl "$@"
# `configure` is nvidia-ctk's, which NVIDIA's runtime answers itself.
[ "${1-}" = configure ] && gpuctl "$@"

# cmd: runc's command; gn: how many arguments precede it (its global options); id: the container.
cmd='' bundle='' want='' phase=global i=0 gn=0 id=
for a do
  i=$((i + 1))
  if [ -n "$want" ]; then
    case $want in
    bundle) bundle=$a ;;
    id) id=$a && break ;;
    esac
    want=
    continue
  fi
  case $phase in
  global)
    case $a in
    --) phase=next ;;
    -) cmd=$a phase=args gn=$((i - 1)) ;;
    -*)
      n=${a#-} n=${n#-}
      case $n in
      ?*=*) ;;
      root | log | log-format | criu | rootless) want=skip ;;
      esac
      ;;
    *) cmd=$a phase=args gn=$((i - 1)) ;;
    esac
    ;;
  next) cmd=$a phase=args gn=$((i - 1)) ;;
  args)
    case $a in
    --)
      # runc reads no option after it; the id may follow.
      [ -n "$id" ] && break
      want=id
      ;;
    -) [ -n "$id" ] || id=$a ;;
    -*)
      n=${a#-} n=${n#-}
      case $n in
      bundle=* | b=*) bundle=${n#*=} ;;
      ?*=*) ;;
      bundle | b) want=bundle ;;
      console-socket | pid-file | preserve-fds | pidfd-socket) want=skip ;;
      esac
      ;;
    *) [ -n "$id" ] || id=$a ;;
    esac
    ;;
  esac
done

# runtime: the low-level runtime in r: the configured names, by path, or on PATH then the sbin directories.
runtime() {
  old=$IFS IFS='
'
  for n in $RUNTIMES; do
    case $n in
    /*) if [ -x "$n" ] && [ ! -d "$n" ]; then IFS=$old r=$n; return 0; fi ;;
    *)
      IFS=:
      for d in ${PATH-}:$SBIN; do
        case $d in /*) ;; *) continue ;; esac
        if [ -x "$d/$n" ] && [ ! -d "$d/$n" ]; then IFS=$old r=$d/$n; return 0; fi
      done
      IFS='
'
      ;;
    esac
  done
  IFS=$old
  return 1
}

# fresh: the configuration is the one this front was written from, unchanged (its modification time is the
# front's own, set by gpuctl install): gpuctl's own file, or NVIDIA's config.toml while gpuctl has none.
fresh() {
  if [ "$FROM_NVIDIA" = 1 ]; then
    [ -z "${GPUCTL_CONFIG-}" ] && ! [ -e "$DEFAULT_CONFIG" ] || return 1
  else
    [ "${GPUCTL_CONFIG:-$DEFAULT_CONFIG}" = "$CONFIG" ] || return 1
  fi
  if [ "$HAD_CONFIG" = 1 ]; then
    # shellcheck disable=SC3013 # -nt and -ot: not in POSIX, but in every /bin/sh (dash, bash, busybox)
    [ -e "$CONFIG" ] && ! [ "$CONFIG" -nt "$SELF" ] && ! [ "$CONFIG" -ot "$SELF" ]
  else
    ! [ -e "$CONFIG" ]
  fi
}

# mentions: config.json mentions a request, holds a JSON escape, or cannot be read (status other than 1).
mentions() {
  [ -n "$GREP" ] || return 0
  "$GREP" -qF -e "$MARKERS" -- "${bundle:-.}/config.json" 2>/dev/null
  [ $? != 1 ]
}

# undo ARGS...: deletes the container just created (runc's global options, then delete --force ID).
undo() {
  n=0
  for a do
    [ $n -lt $gn ] && set -- "$@" "$a"
    n=$((n + 1))
  done
  shift $n
  GPUCTL_RUNTIME_EXEC=$r "$r" "$@" delete --force "$id" >/dev/null 2>&1
}

# --version: this front's version, then the runtime's (the last "version" line is the one dockerd reads). Answered
# here, not by gpuctl: dockerd asks its default runtime on every `docker info`.
if [ $# = 1 ]; then
  case $1 in --version | -v)
    printf 'gpuctl-runtime version %s (gpuctl)\n\n' "$VERSION"
    runtime && GPUCTL_RUNTIME_EXEC=$r exec "$r" "$@"
    exit 0
    ;;
  esac
fi

case $cmd in
create | run)
  # A packed gpuctl is its own serve client (serve/fronts/client.c): it reads config.json for the markers itself
  # and does the rest of this branch with no other process on the way.
  if [ -n "$CLIENT" ] && runtime; then
    f=0
    fresh && f=1
    exec "$CLIENT" --serve-client runtime "$S" "$T" "$PROTOCOL" "$r" "$f" "$gn" "$id" "$bundle" "$cmd" "$MARKERS" \
      -- "$@"
  fi
  if ! fresh || mentions; then
    s=1
    if [ "$cmd" = create ] && runtime; then
      a=$(ask runtime "$@" && printf '%s' "$a")
      s=$?
    fi
    [ $s = 2 ] && exit 1
    [ $s = 1 ] && gpuctl "$@"
    answered "$a"
    case $word in
    pass) ;;
    direct) gpuctl "$@" ;;
    view)
      # gpuctl serve has edited config.json and written the rootfs's files; the view comes once runc has
      # created the container.
      GPUCTL_RUNTIME_EXEC=$r "$r" "$@" || exit
      a=$(ask view "$r" "$@" && printf '%s' "$a")
      s=$?
      [ $s = 0 ] && answered "$a"
      [ $s = 0 ] && [ "$word" = ok ] && exit 0
      if [ $s != 0 ]; then
        undo "$@"
        [ $s = 1 ] && printf 'gpuctl: gpuctl serve stopped before container %s had its /proc/driver/nvidia view; it was deleted\n' "$id" >&2
        exit 1
      fi
      printf 'gpuctl: %s\n' "$msg" >&2
      exit "$code"
      ;;
    *)
      printf 'gpuctl: %s\n' "$msg" >&2
      exit "$code"
      ;;
    esac
  fi
  ;;
esac
runtime || gpuctl "$@"
GPUCTL_RUNTIME_EXEC=$r exec "$r" "$@"
