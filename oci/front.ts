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
 * @module
 */
import type { Config } from "../config/schema.ts";
import { SBIN_DIRS } from "./runc_args.ts";

/** Marks a file `gpuctl install` wrote (and may replace or remove). */
export const INSTALL_MARK = "# gpuctl install launcher";

/** A word for sh: single-quoted. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
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

cmd= bundle= want= phase=global
for a do
  if [ -n "$want" ]; then
    [ "$want" = bundle ] && bundle=$a
    want=
    continue
  fi
  case $phase in
  global)
    case $a in
    --) phase=next ;;
    -) cmd=$a phase=args ;;
    -*)
      n=\${a#-} n=\${n#-}
      case $n in
      ?*=*) ;;
      root | log | log-format | criu | rootless) want=skip ;;
      esac ;;
    *) cmd=$a phase=args ;;
    esac ;;
  next) cmd=$a phase=args ;;
  args)
    case $a in
    --) break ;;
    -) ;;
    -*)
      n=\${a#-} n=\${n#-}
      case $n in
      bundle=* | b=*) bundle=\${n#*=} ;;
      ?*=*) ;;
      bundle | b) want=bundle ;;
      console-socket | pid-file | preserve-fds | pidfd-socket) want=skip ;;
      esac ;;
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

case $cmd in
create | run)
  grep -qF ${markers} -- "\${bundle:-.}/config.json" 2>/dev/null
  [ $? = 1 ] || gpuctl "$@" ;;
esac
runtime || gpuctl "$@"
GPUCTL_RUNTIME_EXEC=$r exec "$r" "$@"
`;
}
