/**
 * The shim's `create` of a GPU container in spec mode: `runc create` runs as a child (same arguments, same stdio,
 * the caller's environment) while the shim writes the library links and the linker cache into the rootfs, and
 * once the container is created — pivoted into its rootfs, not yet started — the
 * shim mounts its /proc/driver/nvidia view from outside (see `procview.ts`). If either fails the container is
 * deleted and the error stops it, as any refusal does. runc's exit code is the shim's.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { GpuctlError } from "../errors/mod.ts";
import { type Logger, phases } from "../log/log.ts";
import type { ViewToMake } from "./shim_edit.ts";
import type { RuncArgs } from "../oci/runc_args.ts";
import { applyEdits } from "../apply/container.ts";
import { spawn, waitExit } from "../ffi/libc.ts";

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
  todo: ViewToMake,
  config: Config,
  env: readonly string[],
  log: Logger,
): Promise<number> {
  const t0 = performance.now();
  const pid = spawn(runtime, [runtime, ...args], env);
  // While runc creates the container, the links and the linker cache go into its rootfs: runc reads neither.
  let failed: unknown = null;
  try {
    todo.files();
  } catch (err) {
    failed = err;
  }
  const tf = performance.now();
  // Nothing else is left to do until runc is done: waiting blocks this thread.
  const code = waitExit(pid);
  if (code !== 0) return code; // 128 + the signal's number when runc was killed
  const t1 = performance.now();
  const e = envObject(env);
  if (failed !== null) {
    await deleteContainer(runtime, r, e);
    throw failed;
  }
  await makeView(runtime, r, todo, config, e, log);
  log.info("GPU container prepared", {
    ...todo.prepared,
    ms: phases({ ...todo.prepared.ms, files: tf - t0, runc: t1 - t0, view: performance.now() - t1 }),
  });
  return 0;
}

/** `runtime delete --force` of the container `r` names; its failure is not reported (the error that led here is). */
export async function deleteContainer(
  runtime: string,
  r: RuncArgs,
  env: Record<string, string>,
): Promise<void> {
  await new Deno.Command(runtime, {
    args: [...r.globals, "delete", "--force", r.id ?? ""],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output().catch(() => {});
}

/**
 * Makes `todo`'s /proc view in the container `runtime create` has just made (its init pid from `--pid-file`, or
 * `runtime state`); on failure deletes the container and throws. `gpuctl serve` calls it for a front's create.
 */
export async function makeView(
  runtime: string,
  r: RuncArgs,
  todo: Pick<ViewToMake, "view" | "driverVersion">,
  config: Config,
  env: Record<string, string>,
  log: Logger,
): Promise<void> {
  try {
    const pid = await initPid(runtime, r, env);
    const inside = { symlinks: [], ldcache: [], procView: todo.view, driverVersion: todo.driverVersion };
    applyEdits({ inside }, {
      pid,
      bundle: r.bundle,
      rootPath: undefined,
      procRoot: config.procRoot,
      stage: "created",
      cgroups: false,
      cudaCompat: false,
      log,
    });
  } catch (err) {
    await deleteContainer(runtime, r, env);
    throw err;
  }
}
