/**
 * The `gpuctl-runtime` front: a POSIX `sh` script that `gpuctl install` writes, so that what needs no GPU never
 * starts Deno. It finds runc's command after its global options exactly as {@link scanRuncArgs} does, execs the
 * low-level runtime for every command but `create` and `run`, and for those looks into `<bundle>/config.json`
 * with one `grep -F`: only a file that mentions a request (`NVIDIA_VISIBLE_DEVICES`, a volume under
 * /var/run/nvidia-container-devices, a CDI annotation prefix, Swarm's variables, a legacy `CUDA_VERSION`) — or
 * one that holds a JSON escape, or that cannot be read — goes to gpuctl, which decides exactly. A request the
 * front misses would be a container without its GPUs, so it errs the other way: a mention is enough.
 *
 * The runtime is found as the shim finds it (the configured `runtimes`, by path, or on PATH then the sbin
 * directories), and runs with `GPUCTL_RUNTIME_EXEC` set to its path, so a runtime that leads back here is caught.
 *
 * When `gpuctl serve` runs (`serve/server.ts`), a `create` that may ask for a GPU is handed to it instead of
 * starting gpuctl: it edits config.json and writes the rootfs's files, the front runs `runtime create` itself, then
 * the server makes the /proc view. `nvidia-container-runtime-hook` is a front too ({@link hookFrontScript}), handing
 * the prestart hook to the server. Without a server both run gpuctl, as before.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { SBIN_DIRS } from "./runc_args.ts";
import { PROTOCOL } from "../serve/server.ts";

/** Where the fronts reach `gpuctl serve`, and the tools they use for it (absolute paths, found at install). */
export interface ServeClient {
  dir: string;
  timeout: number;
  mkfifo: string;
  sleep: string;
  head: string;
}

/**
 * `ask VERB ARGS...`: hands the call to a running `gpuctl serve`, leaving its answer line in `a`. Status 1, having
 * done nothing (stdin untouched), when none runs; 2, having said why, when it does not answer in time: it may
 * still act on the container, so gpuctl must not run behind it. For `hook`, stdin (the container's state, at most
 * 1 MiB read) goes with the request and stays readable on fd 5 for a `direct` answer.
 *
 * The wait is bounded without a timer process on its path: a `sleep` started in the background holds the reply
 * FIFO open for writing, so the read ends with the server's line or, once the sleep is over, empty. It uses fd 4
 * (and 5): the runtime front calls it in a subshell, so that the descriptors an engine hands runc
 * (`--preserve-fds`) stay as they are. `answered` splits the line into `code`, `word` and `msg`.
 */
function askFunction(c: ServeClient | null): string {
  if (c === null) return "ask() { return 1; }\nanswered() { :; }\n";
  const q = shQuote;
  return `S=${q(c.dir)} T=${c.timeout}
ask() {
  [ -p "$S/requests" ] && read -r sp 2>/dev/null <"$S/pid" && kill -0 "$sp" 2>/dev/null || return 1
  v=$1
  shift
  f=$S/$$
  [ -p "$f.reply" ] || ${q(c.mkfifo)} -m 600 "$f.reply" 2>/dev/null || return 1
  printf '%s\\0' ${q(PROTOCOL)} "\${GPUCTL_CONFIG-}" "$PWD" "$@" 2>/dev/null >"$f.$v.argv" || return 1
  if [ "$v" = hook ]; then
    ${q(c.head)} -c 1048577 >"$f.$v.stdin"
    exec 5<"$f.$v.stdin"
  fi
  ${q(c.sleep)} "$T" 3>"$f.reply" >/dev/null 2>&1 &
  w=$!
  exec 4<"$f.reply"
  printf '%s\\n' "$f.$v" 1<>"$S/requests"
  a=
  read -r a <&4
  kill "$w" 2>/dev/null
  exec 4<&-
  if [ -z "$a" ]; then
    printf 'gpuctl: gpuctl serve (pid %s, in %s) did not answer in %ss and may still act, so this stops here: restart it, or stop it to run gpuctl per container\\n' "$sp" "$S" "$T" >&2
    return 2
  fi
}
answered() {
  a=$1
  code=\${a%% *} a=\${a#* } word=\${a%% *} msg=
  case $a in *" "*) msg=\${a#* } ;; esac
}
`;
}

/** Marks a file `gpuctl install` wrote (and may replace or remove). */
export const INSTALL_MARK = "# gpuctl install launcher";

/** A word for sh: single-quoted. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command line a front (either kind) runs gpuctl with, read back from its text: the words of its
 * `gpuctl() { exec … "$@"; }` line. Null for a file that is not a front.
 */
export function frontCommand(text: string): string[] | null {
  if (!text.includes(INSTALL_MARK)) return null;
  const line = /^gpuctl\(\) \{ exec (.*) "\$@"; \}$/m.exec(text)?.[1];
  if (line === undefined) return null;
  const words: string[] = [];
  const word = /'((?:[^']|'\\'')*)'(?: |$)/gy;
  for (let m; (m = word.exec(line)) !== null;) words.push(m[1]!.replaceAll(`'\\''`, "'"));
  return word.lastIndex === 0 && words.length === 0 ? null : words;
}

/** What in a config.json makes it possibly a GPU request, as fixed strings. */
export function requestMarkers(config: Pick<Config, "swarmResource" | "cdiAnnotationPrefixes">): string[] {
  return [
    "NVIDIA_VISIBLE_DEVICES",
    "nvidia-container-devices",
    "CUDA_VERSION",
    ...config.cdiAnnotationPrefixes,
    ...config.swarmResource,
    // A JSON escape could spell any of them: let gpuctl read such a file.
    "\\u",
    "\\/",
  ];
}

/**
 * The front's text. `gpuctl` is the command line that runs gpuctl's runtime (`/usr/local/bin/gpuctl runtime`, or
 * Deno with the bundle); `version` goes in its header.
 */
export function frontScript(
  gpuctl: readonly string[],
  config: Pick<Config, "runtimes" | "swarmResource" | "cdiAnnotationPrefixes">,
  version: string,
  serve: ServeClient | null = null,
): string {
  const run = gpuctl.map(shQuote).join(" ");
  const markers = requestMarkers(config).map((m) => `-e ${shQuote(m)}`).join(" ");
  const runtimes = config.runtimes.map(shQuote).join(" ");
  return `#!/bin/sh
${INSTALL_MARK}
# gpuctl-runtime front, written by gpuctl ${version} install; 'gpuctl install' rewrites it, '--uninstall' removes it.
# runc's commands, and containers whose config.json asks for no GPU, go straight to the runtime (no Deno);
# a create or run that may ask for one goes to gpuctl.
set -f
gpuctl() { exec ${run} "$@"; }
[ -n "\${GPUCTL_RUNTIME_EXEC-}" ] && gpuctl "$@"

# cmd: runc's command; gn: how many arguments precede it (its global options); id: the container.
cmd= bundle= want= phase=global i=0 gn=0 id=
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
      n=\${a#-} n=\${n#-}
      case $n in
      ?*=*) ;;
      root | log | log-format | criu | rootless) want=skip ;;
      esac ;;
    *) cmd=$a phase=args gn=$((i - 1)) ;;
    esac ;;
  next) cmd=$a phase=args gn=$((i - 1)) ;;
  args)
    case $a in
    --)
      # runc reads no option after it; the id may follow.
      [ -n "$id" ] && break
      want=id ;;
    -) [ -n "$id" ] || id=$a ;;
    -*)
      n=\${a#-} n=\${n#-}
      case $n in
      bundle=* | b=*) bundle=\${n#*=} ;;
      ?*=*) ;;
      bundle | b) want=bundle ;;
      console-socket | pid-file | preserve-fds | pidfd-socket) want=skip ;;
      esac ;;
    *) [ -n "$id" ] || id=$a ;;
    esac ;;
  esac
done

runtime() {
  for n in ${runtimes}; do
    case $n in
    /*) if [ -x "$n" ] && [ ! -d "$n" ]; then r=$n; return 0; fi ;;
    *)
      old=$IFS IFS=:
      for d in \${PATH-}:${SBIN_DIRS.join(":")}; do
        case $d in /*) ;; *) continue ;; esac
        if [ -x "$d/$n" ] && [ ! -d "$d/$n" ]; then IFS=$old r=$d/$n; return 0; fi
      done
      IFS=$old ;;
    esac
  done
  return 1
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

${askFunction(serve)}
case $cmd in
create | run)
  grep -qF ${markers} -- "\${bundle:-.}/config.json" 2>/dev/null
  if [ $? != 1 ]; then
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
        [ $s = 1 ] && printf 'gpuctl: gpuctl serve stopped before container %s had its /proc/driver/nvidia view; it was deleted\\n' "$id" >&2
        exit 1
      fi
      printf 'gpuctl: %s\\n' "$msg" >&2
      exit "$code" ;;
    *)
      printf 'gpuctl: %s\\n' "$msg" >&2
      exit "$code" ;;
    esac
  fi ;;
esac
runtime || gpuctl "$@"
GPUCTL_RUNTIME_EXEC=$r exec "$r" "$@"
`;
}

/**
 * The `nvidia-container-runtime-hook` front: the prestart hook handed to a running `gpuctl serve`, and gpuctl
 * run for everything else (other stages, CDI's `container-edits`, no server).
 */
export function hookFrontScript(
  gpuctl: readonly string[],
  version: string,
  serve: ServeClient | null,
): string {
  return `#!/bin/sh
${INSTALL_MARK}
# nvidia-container-runtime-hook front, written by gpuctl ${version} install; 'gpuctl install' rewrites it,
# '--uninstall' removes it. The prestart hook goes to a running 'gpuctl serve'; everything else runs gpuctl.
set -f
gpuctl() { exec ${gpuctl.map(shQuote).join(" ")} "$@"; }
${askFunction(serve)}
case \${1-} in
prestart | createRuntime)
  ask hook "$@"
  s=$?
  [ $s = 1 ] && gpuctl "$@"
  [ $s = 2 ] && exit 1
  answered "$a"
  case $word in
  ok) exit 0 ;;
  direct) gpuctl "$@" <&5 ;;
  esac
  printf 'gpuctl: %s\\n' "$msg" >&2
  exit "$code" ;;
esac
gpuctl "$@"
`;
}
