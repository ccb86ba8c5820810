/**
 * The shim's `create`: read the bundle and decide. A container without a GPU request is left untouched and
 * loads nothing more; a GPU container's edits are in `shim_edit.ts`, imported only then.
 * @module
 */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/log.ts";
import { parseSpec, readLimited } from "../oci/spec.ts";
import { isGpuRequest, readRequest } from "../request/request.ts";

/** Edits `<bundle>/config.json` for a GPU request; leaves it untouched otherwise. */
export async function prepareBundle(
  config: Config,
  bundle: string,
  log: Logger,
  configPath: string | undefined,
): Promise<void> {
  const file = `${bundle.replace(/\/+$/, "")}/config.json`;
  const text = readLimited(file);
  const spec = parseSpec(text, file);
  const req = readRequest(spec, config);
  if (!isGpuRequest(req)) {
    log.debug("not a GPU container: config.json untouched", { bundle });
    return;
  }
  const { editForGpu } = await import("./shim_edit.ts");
  await editForGpu(config, bundle, file, text, spec, req, log, configPath);
}
