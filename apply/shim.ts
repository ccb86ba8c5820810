/**
 * The shim's `create`: read the bundle, decide, edit config.json (or leave it alone).
 * @module
 */
import type { Config } from "../config/config.ts";
import { GpuctlError } from "../errors/mod.ts";
import type { Logger } from "../log/log.ts";
import { writeAtomic } from "../oci/edit.ts";
import { parseSpec, readLimited, rootfsPath } from "../oci/spec.ts";
import { planForRequest } from "../plan/prepare.ts";
import { isGpuRequest, readRequest } from "../request/request.ts";
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

/** Edits `<bundle>/config.json` for a GPU request; leaves it untouched otherwise. */
export function prepareBundle(
  config: Config,
  bundle: string,
  log: Logger,
  configPath: string | undefined,
): void {
  const file = `${bundle.replace(/\/+$/, "")}/config.json`;
  const text = readLimited(file);
  const spec = parseSpec(text, file);
  const req = readRequest(spec, config);
  if (!isGpuRequest(req)) {
    log.debug("not a GPU container: config.json untouched", { bundle });
    return;
  }
  if (config.mode === "hook") {
    writeAtomic(file, addHook(text, spec, hookEntry(config, configPath)), { durable: false });
    log.info("prestart hook added", { bundle });
    return;
  }
  const { plan } = planForRequest(config, req, (m) => log.warn(m));
  const edited = applyToSpec(text, spec, plan, rootfsPath(spec, bundle), log);
  writeAtomic(file, edited ?? addHook(text, spec, hookEntry(config, configPath)), { durable: false });
  log.info("GPU container prepared", {
    bundle,
    mode: edited === null ? "hook (fallback)" : "spec",
    gpus: plan.gpus.map((g) => g.uuid),
  });
}
