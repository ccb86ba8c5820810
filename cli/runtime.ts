/**
 * `gpuctl runtime` (also `gpuctl-runtime`, `nvidia-container-runtime`): an OCI runtime in front of runc or crun.
 * Only `create` and `run` look at the bundle; every other command is exec'd straight away, so signals, exit codes
 * and stdio are the low-level runtime's own.
 * @module
 */
import { GpuctlError, quote } from "../errors/mod.ts";
import { findRuntime, logToRuntime, scanRuncArgs, selfPath } from "../oci/runc_args.ts";
import { envConfigPath, plainConfig } from "../config/read.ts";
import type { Config } from "../config/schema.ts";
import { execve, exists } from "../ffi/libc.ts";
import type { Context } from "./context.ts";
import { mayEndAtOnce } from "./finish.ts";

export const HELP = `Usage: gpuctl-runtime [runc global options] <command> [options] <container-id>
       gpuctl runtime ...  (the same)

An OCI runtime for Docker, containerd and Kubernetes (RuntimeClass), in front of runc or crun. On
'create' and 'run' it reads <bundle>/config.json; if the container asks for GPUs (NVIDIA_VISIBLE_DEVICES,
CDI names or annotations, device volumes), it checks the request (NVIDIA_REQUIRE_*) and, in mode "spec" (default), adds
the device nodes with their device-cgroup rules, read-only bind mounts of the driver's files and the
environment to config.json (atomically), prepares the library links and /etc/ld.so.cache in the rootfs,
and makes the container's /proc/driver/nvidia view; in mode "hook" it adds the prestart hook instead. A
container without a GPU request is left byte-identical. Every other command is exec'd directly.

'gpuctl install' writes gpuctl-runtime as a small front that execs runc itself for every command but
create/run and for containers whose config.json asks for no GPU, so only GPU containers start gpuctl;
with 'gpuctl serve' running, not even those.
Register: dockerd --add-runtime nvidia=/usr/local/bin/gpuctl-runtime, or 'gpuctl configure docker'.
Configuration: GPUCTL_CONFIG (default /etc/gpuctl/config.jsonc): mode, runtimes, hookPath, and the keys
shown by 'gpuctl --help'. Errors go to stderr and to runc's --log file in its format.
`;

/**
 * Set, to the runtime's path, in the environment of the runtime the shim runs: a shim that finds it set was started
 * by that runtime, which is then not runc but something leading back to gpuctl-runtime (a wrapper script), and
 * would otherwise exec itself forever.
 */
export const RUNTIME_GUARD = "GPUCTL_RUNTIME_EXEC";

/**
 * The environment runc gets: the shim's own, minus what Deno adds when it starts without a PATH (its Node shim
 * directory as PATH, and a marker), so that runc sees exactly what its caller gave; plus {@link RUNTIME_GUARD}.
 */
export function passThroughEnv(env: Record<string, string>, runtime?: string): string[] {
  const out = { ...env };
  if (out.DENO_NODE_SHIM_ACTIVE !== undefined) {
    delete out.DENO_NODE_SHIM_ACTIVE;
    if (out.PATH?.endsWith("/node_compat_bin") && !out.PATH.includes(":")) delete out.PATH;
  }
  if (runtime !== undefined) out[RUNTIME_GUARD] = runtime;
  return Object.entries(out).map(([k, v]) => `${k}=${v}`);
}

/** Refuses to go on when the runtime this shim ran has started it again (see {@link RUNTIME_GUARD}). */
function checkLoop(): void {
  const looped = Deno.env.get(RUNTIME_GUARD);
  if (looped) {
    throw new GpuctlError(
      "low-level runtime",
      `${
        quote(looped)
      } started gpuctl-runtime again (a wrapper around it?): set "runtimes" to runc or crun themselves`,
    );
  }
}

const isHelp = (args: string[]) => args.length === 1 && (args[0] === "--help" || args[0] === "-h");
/**
 * What NVIDIA's runtime answers itself rather than passing to runc: `--version` (its version, then runc's) and
 * `configure` (as `nvidia-ctk runtime configure`, which its install guide types as `… runtime configure`).
 */
const isOwn = (args: string[]) =>
  (args.length === 1 && (args[0] === "--version" || args[0] === "-v")) || args[0] === "configure";
const readsBundle = (command: string | undefined) => command === "create" || command === "run";

/** The low-level runtime the configuration names, found. */
function lowLevelRuntime(config: Config): string {
  const runtime = findRuntime(config.runtimes, Deno.env.get("PATH"), selfPath);
  if (runtime !== null) return runtime;
  throw new GpuctlError(
    "low-level runtime",
    `none of ${
      config.runtimes.join(", ")
    } found on PATH or in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin (install runc, or set "runtimes" in the configuration)`,
  );
}

/** Becomes `runtime` with the shim's own arguments: runc's signals, exit code and stdio from here on. */
function execRuntime(runtime: string, args: string[]): never {
  return execve(runtime, [runtime, ...args], passThroughEnv(Deno.env.toObject(), runtime));
}

/**
 * The pass-through on its own, run by `cli/main.ts` before the rest of gpuctl is loaded: every runc command but
 * `create` and `run` is exec'd as it is, without loading what {@link run} needs (the bench's pass-through row).
 *
 * Returns, having changed nothing, whenever the call is not that plain: `create`, `run` or `--help`, the koffi
 * backend asked for, a config file only the full parser can explain, no runtime found, a failed exec. The
 * command line then starts over with {@link run}, which does the same or says why not.
 */
export function passThrough(args: string[]): void {
  if (isHelp(args) || isOwn(args) || Deno.env.get("GPUCTL_FFI") === "koffi" || Deno.env.get(RUNTIME_GUARD)) {
    return;
  }
  try {
    if (readsBundle(scanRuncArgs(args, Deno.cwd()).command)) return;
    const config = plainConfig(envConfigPath((k) => Deno.env.get(k)), exists);
    const runtime = config && findRuntime(config.runtimes, Deno.env.get("PATH"), selfPath);
    if (runtime) execRuntime(runtime, args);
  } catch { /* run() meets the same failure, and reports it */ }
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  if (isHelp(args)) {
    ctx.out(HELP);
    return 0;
  }
  if (args[0] === "configure") return await (await import("./configure.ts")).run(ctx, args.slice(1));
  if (isOwn(args)) {
    // As NVIDIA's runtime (and as the front): its own version, then the low-level runtime's, whose "version"
    // line comes last, the one dockerd's `docker info` reads.
    const { VERSION } = await import("../version.ts");
    ctx.out(`gpuctl-runtime version ${VERSION} (gpuctl)\n\n`);
    const runtime = findRuntime(ctx.config.runtimes, Deno.env.get("PATH"), selfPath);
    if (runtime === null) return 0;
    const o = await new Deno.Command(runtime, { args, stdout: "piped", stderr: "null" })
      .output();
    ctx.out(new TextDecoder().decode(o.stdout));
    return 0;
  }
  const r = scanRuncArgs(args, Deno.cwd());
  try {
    checkLoop();
    const config = ctx.config;
    const runtime = lowLevelRuntime(config);
    if (readsBundle(r.command)) {
      const { prepareBundle } = await import("../flows/shim.ts");
      const view = await prepareBundle(
        config,
        r.bundle,
        r.command as "create" | "run",
        ctx.log,
        ctx.globals.configPath,
      );
      if (view !== null) {
        const { createThenView } = await import("../flows/created.ts");
        const code = await createThenView(
          runtime,
          args,
          r,
          view,
          config,
          passThroughEnv(Deno.env.toObject(), runtime),
          ctx.log,
        );
        mayEndAtOnce();
        return code;
      }
    }
    return execRuntime(runtime, args);
  } catch (e) {
    logToRuntime(r, e);
    throw e;
  }
}
