/**
 * The shim's `create`/`run`: read the bundle and decide. A container without a GPU request is left untouched and
 * loads nothing more; a GPU container's edits are in `shim_edit.ts`, imported only then.
 * @module
 */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/log.ts";
import { parseSpec, readLimited } from "../oci/spec.ts";
import { readRequest, readsAnnotation } from "../request/request.ts";
import type { ViewToMake } from "./shim_edit.ts";

/**
 * Edits `<bundle>/config.json` for a GPU request; leaves it untouched otherwise. Returns the /proc/driver/nvidia
 * view the caller makes after `runc create`, when there is one to make.
 */
export async function prepareBundle(
  config: Config,
  bundle: string,
  command: "create" | "run",
  log: Logger,
  configPath: string | undefined,
): Promise<ViewToMake | null> {
  const file = `${bundle.replace(/\/+$/, "")}/config.json`;
  const text = readLimited(file);
  const spec = parseSpec(text, file, readsAnnotation(config));
  const req = readRequest(spec, config);
  if (req === null) {
    log.debug("not a GPU container: config.json untouched", { bundle });
    return null;
  }
  const { editForGpu } = await import("./shim_edit.ts");
  return await editForGpu(config, { bundle, file, text, spec, command }, req, log, configPath);
}
