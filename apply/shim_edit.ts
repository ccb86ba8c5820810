/**
 * The shim's `create` for a GPU container: config.json gets the plan (mode "spec") or the prestart hook (mode
 * "hook"). Loaded only for GPU containers; `shim.ts` decides.
 * @module
 */
import type { Config } from "../config/config.ts";
import { GpuctlError } from "../errors/mod.ts";
import { type Logger, phases } from "../log/log.ts";
import { writeAtomic } from "../oci/edit.ts";
import { type OciSpec, rootfsPath } from "../oci/spec.ts";
import { planForRequest } from "../plan/prepare.ts";
import type { GpuRequest } from "../request/request.ts";
import { addHook, applyToSpec, type HookEntry } from "./spec.ts";

const STD_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The prestart hook the shim adds: an explicit, minimal environment (never the container's). */
export function hookEntry(config: Config, configPath: string | undefined): HookEntry {
  let path = config.hookPath;
  if (path === null) {
    if (Deno.build.standalone) path = Deno.execPath();
    else {
      const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d.startsWith("/"));
      path = dirs.map((d) => `${d}/nvidia-container-runtime-hook`).find((p) => {
        try {
          return Deno.statSync(p).isFile;
        } catch {
          return false;
        }
      }) ?? null;
    }
  }
  if (path === null) {
    throw new GpuctlError(
      "hook mode",
      'no hook executable: set "hookPath", or put nvidia-container-runtime-hook on PATH',
    );
  }
  const env = [STD_PATH];
  if (configPath !== undefined) env.push(`GPUCTL_CONFIG=${configPath}`);
  return { path, args: ["nvidia-container-runtime-hook", "prestart"], env };
}

/** Writes the GPU request's edits into `file` (the bundle's config.json, already read as `text`/`spec`). */
export async function editForGpu(
  config: Config,
  bundle: string,
  file: string,
  text: string,
  spec: OciSpec,
  req: GpuRequest,
  log: Logger,
  configPath: string | undefined,
): Promise<void> {
  if (config.mode === "hook") {
    writeAtomic(file, addHook(text, spec, hookEntry(config, configPath)));
    log.info("prestart hook added", { bundle });
    return;
  }
  const t0 = performance.now();
  const { plan } = await planForRequest(config, req, (m) => log.warn(m));
  const t1 = performance.now();
  const edited = applyToSpec(text, spec, plan, rootfsPath(spec, bundle), log);
  writeAtomic(file, edited ?? addHook(text, spec, hookEntry(config, configPath)));
  log.info("GPU container prepared", {
    bundle,
    mode: edited === null ? "hook (fallback)" : "spec",
    gpus: plan.gpus.map((g) => g.uuid),
    ms: phases({ start: t0, plan: t1 - t0, edit: performance.now() - t1 }),
  });
}
