/**
 * `gpuctl hook prestart` (also `nvidia-container-runtime-hook prestart`, as Docker's `--gpus` calls it): makes
 * the requested GPUs appear in a container that runc has set up but not started.
 * @module
 */
import { GpuctlError, quote, UsageError } from "../errors/mod.ts";
import type { Context } from "./context.ts";
import { MAX_SPEC_BYTES } from "../oci/spec.ts";
import { mayEndAtOnce } from "./finish.ts";

export const HELP = `Usage: gpuctl hook prestart|poststart|poststop
       gpuctl hook container-edits --driver-version V [--link PATH::TARGET]... [--lib SONAME::PATH[::32]]...
                                   [--gpu MINOR::BUS]... [--proc] [--cuda-compat]
       nvidia-container-runtime-hook prestart

The OCI hook that makes GPUs appear in a container. Reads the container's state (id, pid, bundle) from
stdin and <bundle>/config.json; if the container asks for GPUs (NVIDIA_VISIBLE_DEVICES, volume mounts
under /var/run/nvidia-container-devices, NVIDIA_DRIVER_CAPABILITIES, NVIDIA_REQUIRE_*), it checks the
requirements, allows the device nodes in the container's device cgroup and, inside the container's mount
namespace, bind-mounts the driver's libraries, programs, firmware and IPC sockets read-only, creates the
device nodes and library links, covers /proc/driver/nvidia, and updates /etc/ld.so.cache.
poststart and poststop do nothing. Any failure stops the container with one line on stderr.

container-edits is the createContainer hook of a CDI spec written by 'gpuctl cdi generate' (and of the
runtime shim's 'run'): inside the container it makes the library links, the linker cache, and the
/proc/driver/nvidia view of the GPUs whose /dev/nvidia<MINOR> the container has; no NVML.

Register it as a prestart hook, or put it on dockerd's PATH as nvidia-container-runtime-hook so that
'docker run --gpus' uses it ('gpuctl install' writes that name as a small front, which hands prestart to
'gpuctl serve' when it runs). Configuration: GPUCTL_CONFIG (default /etc/gpuctl/config.jsonc).
`;

/**
 * Variables that change how a program or its libraries load: never honoured by the hook. (Deno sets
 * `DENO_NODE_SHIM_ACTIVE` itself when it starts without a PATH, as runc starts hooks that have no env: a marker,
 * not an input, so it is let through rather than costing a re-exec on every container start.)
 */
export const UNSAFE_ENV =
  /^(LD_|GCONV_PATH$|MALLOC_|GLIBC_TUNABLES$|NODE_OPTIONS$|NODE_PATH$|DENO_(?!NODE_SHIM_ACTIVE$)|BUN_)/;

/**
 * If this process was started with loader-influencing variables, re-executes itself without them (once).
 * Returns only when the environment is clean.
 */
export async function sanitizeEnvironment(): Promise<void> {
  const env = Deno.env.toObject();
  const bad = Object.keys(env).filter((k) => UNSAFE_ENV.test(k));
  if (bad.length === 0) return;
  if (env.GPUCTL_SANITIZED === "1") {
    throw new GpuctlError("hook environment", `${bad.join(", ")} still set after re-executing; refusing`);
  }
  const raw = Deno.readFileSync("/proc/self/cmdline");
  const argv = new TextDecoder().decode(raw).split("\0");
  if (argv.at(-1) === "") argv.pop();
  const clean = Object.entries(env).filter(([k]) => !UNSAFE_ENV.test(k)).map(([k, v]) => `${k}=${v}`);
  clean.push("GPUCTL_SANITIZED=1");
  const { execve } = await import("../ffi/libc.ts");
  execve("/proc/self/exe", argv, clean);
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const stage = args.find((a) => !a.startsWith("-"));
  if (args.includes("--help") || args.includes("-h")) {
    ctx.out(HELP);
    return 0;
  }
  if (stage === "poststart" || stage === "poststop") return 0;
  if (stage !== "prestart" && stage !== "createRuntime" && stage !== "container-edits") {
    throw new UsageError(
      "hook",
      `unknown stage ${stage === undefined ? "(none)" : quote(stage)} (use prestart, or container-edits)`,
    );
  }
  await sanitizeEnvironment();
  const { runHook, runEditsHook } = await import("../flows/hook.ts");
  // The state holds the container's annotations, as config.json does: the same bound.
  const stdin = readStdin(MAX_SPEC_BYTES);
  if (stage === "container-edits") {
    await runEditsHook(ctx.config, stdin, args.slice(args.indexOf(stage) + 1), ctx.log);
  } else await runHook(ctx.config, stdin, ctx.log, ctx.globals.configPath);
  mayEndAtOnce();
  return 0;
}

/**
 * Reads all of stdin synchronously (web streams would cost a lazy module load on every container start), into a
 * buffer that grows as needed (a state is a few hundred bytes; `max` is for hostile ones).
 */
function readStdin(max: number): string {
  let buf = new Uint8Array(64 << 10);
  let n = 0;
  for (;;) {
    if (n === buf.length) {
      const grown = new Uint8Array(Math.min(buf.length * 2, max + 1));
      grown.set(buf);
      buf = grown;
    }
    const r = Deno.stdin.readSync(buf.subarray(n));
    if (r === null || r === 0) break;
    n += r;
    if (n > max) throw new GpuctlError("container state on stdin", `is larger than ${max} bytes`);
  }
  return new TextDecoder().decode(buf.subarray(0, n));
}
