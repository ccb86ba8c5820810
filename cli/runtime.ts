/**
 * `gpuctl runtime` (also `gpuctl-runtime`, `nvidia-container-runtime`): an OCI runtime in front of runc or crun.
 * Only `create` and `run` look at the bundle; every other command is exec'd straight away, so signals, exit codes
 * and stdio are the low-level runtime's own.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { findRuntime, runcLogLine, scanRuncArgs, selfPath } from "../oci/runc_args.ts";
import type { Context } from "./context.ts";

export const HELP = `Usage: gpuctl-runtime [runc global options] <command> [options] <container-id>
       gpuctl runtime ...  (the same)

An OCI runtime for Docker, containerd and Kubernetes (RuntimeClass), in front of runc or crun. On
'create' and 'run' it reads <bundle>/config.json; if the container asks for GPUs (NVIDIA_VISIBLE_DEVICES,
NVIDIA_DRIVER_CAPABILITIES, NVIDIA_REQUIRE_*), it checks the request and, in mode "spec" (default), adds
the device nodes with their device-cgroup rules, read-only bind mounts of the driver's files and the
environment to config.json (atomically), and prepares the library links and /etc/ld.so.cache in the
rootfs; in mode "hook" it adds the prestart hook instead. A container without a GPU request is left
byte-identical. Every other command is exec'd directly.

Register: dockerd --add-runtime gpu=/usr/local/bin/gpuctl-runtime, or 'gpuctl configure docker'.
Configuration: GPUCTL_CONFIG (default /etc/gpuctl/config.jsonc): mode, runtimes, hookPath, and the keys
shown by 'gpuctl --help'. Errors go to stderr and to runc's --log file in its format.
`;

/**
 * The environment runc gets: the shim's own, minus what Deno adds when it starts without a PATH (its Node shim
 * directory as PATH, and a marker), so that runc sees exactly what its caller gave.
 */
export function passThroughEnv(env: Record<string, string>): string[] {
  const out = { ...env };
  if (out.DENO_NODE_SHIM_ACTIVE !== undefined) {
    delete out.DENO_NODE_SHIM_ACTIVE;
    if (out.PATH?.endsWith("/node_compat_bin") && !out.PATH.includes(":")) delete out.PATH;
  }
  return Object.entries(out).map(([k, v]) => `${k}=${v}`);
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  if (args.length === 1 && (args[0] === "--help" || args[0] === "-h")) {
    ctx.out(HELP);
    return 0;
  }
  const r = scanRuncArgs(args, Deno.cwd());
  try {
    const config = ctx.config;
    const runtime = findRuntime(config.runtimes, Deno.env.get("PATH"), selfPath);
    if (runtime === null) {
      throw new GpuctlError(
        "low-level runtime",
        `none of ${
          config.runtimes.join(", ")
        } found on PATH or in /usr/local/sbin, /usr/local/bin, /usr/sbin, /usr/bin, /sbin, /bin (install runc, or set "runtimes" in the configuration)`,
      );
    }
    if (r.command === "create" || r.command === "run") {
      const { prepareBundle } = await import("../apply/shim.ts");
      await prepareBundle(config, r.bundle, ctx.log, ctx.globals.configPath);
    }
    const { execve } = await import("../ffi/libc.ts");
    return execve(runtime, [runtime, ...args], passThroughEnv(Deno.env.toObject()));
  } catch (e) {
    if (r.log !== undefined) {
      try {
        const msg = `gpuctl: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
        Deno.writeTextFileSync(r.log, runcLogLine(r.logFormat, "error", msg), { append: true, create: true });
      } catch { /* the log is a courtesy; the error still goes to stderr */ }
    }
    throw e;
  }
}
