/**
 * The shim's `create` of a GPU container in spec mode: `runc create` runs as a child (same arguments, same stdio,
 * the caller's environment), and once the container is created — pivoted into its rootfs, not yet started — the
 * shim mounts its /proc/driver/nvidia view from outside (see `procview.ts`). If that fails the container is
 * deleted and the error stops it, as any refusal does. runc's exit code is the shim's.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { GpuctlError } from "../errors/mod.ts";
import type { ProcView } from "../edits/edits.ts";
import type { Logger } from "../log/log.ts";
import type { RuncArgs } from "../oci/runc_args.ts";
import { applyEdits } from "./container.ts";

function envObject(env: readonly string[]): Record<string, string> {
  return Object.fromEntries(env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
}

/** The created container's init pid: from runc's `--pid-file`, or `runc state`. */
async function initPid(runtime: string, r: RuncArgs, env: Record<string, string>): Promise<number> {
  let text: string;
  if (r.pidFile !== undefined) text = Deno.readTextFileSync(r.pidFile);
  else {
    const out = await new Deno.Command(runtime, {
      args: [...r.globals, "state", r.id ?? ""],
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).output();
    text = String((JSON.parse(new TextDecoder().decode(out.stdout)) as { pid?: unknown }).pid ?? "");
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new GpuctlError(`container ${r.id}`, "has no init process after create");
  }
  return pid;
}

/** Runs `runtime create` with `args`, then makes `view` in the container; returns the exit code. */
export async function createThenView(
  runtime: string,
  args: readonly string[],
  r: RuncArgs,
  view: ProcView,
  driverVersion: string,
  config: Config,
  env: readonly string[],
  log: Logger,
): Promise<number> {
  const e = envObject(env);
  const status = await new Deno.Command(runtime, {
    args: [...args],
    env: e,
    clearEnv: true,
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn().status;
  if (!status.success) return status.code; // 128 + the signal's number when runc was killed
  const t0 = performance.now();
  try {
    const pid = await initPid(runtime, r, e);
    applyEdits({
      deviceNodes: [],
      mounts: [],
      symlinks: [],
      ldcache: [],
      env: [],
      procView: view,
      driverVersion,
    }, {
      pid,
      bundle: r.bundle,
      rootPath: undefined,
      procRoot: config.procRoot,
      stage: "created",
      parts: {
        cgroups: false,
        nodes: false,
        mounts: false,
        links: false,
        ldcache: false,
        proc: true,
        cudaCompat: false,
      },
      log,
    });
  } catch (err) {
    await new Deno.Command(runtime, {
      args: [...r.globals, "delete", "--force", r.id ?? ""],
      env: e,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output().catch(() => {});
    throw err;
  }
  log.debug("/proc/driver/nvidia view made after create", {
    ms: Math.round((performance.now() - t0) * 10) / 10,
  });
  return 0;
}
