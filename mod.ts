/**
 * gpuctl as a library: configuration, discovery of the driver and GPUs and their reports, the plan from a
 * request to container edits and CDI specs, engine configuration, and the doctor's checks.
 *
 * ```ts
 * import { defaultConfig, discover, inventoryJson } from "./mod.ts";
 * const inventory = discover(defaultConfig(), "auto");
 * console.log(inventoryJson(inventory));
 * ```
 * @module
 */
export {
  type Config,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
  parseConfig,
  SCHEMA,
} from "./config/config.ts";
export { discover, resolveNvmlLibrary, type SourceChoice } from "./devices/discover.ts";
export { inventoryFromNvml, openNvml } from "./devices/nvml.ts";
export { inventoryFromProc, parseInformation, parseVersionFile } from "./devices/proc.ts";
export * from "./devices/types.ts";
export { GpuctlError, UsageError } from "./errors/mod.ts";
export { inventoryCsv, inventoryJson, inventoryText } from "./report/inventory.ts";
export { Nvml, NvmlError } from "./ffi/nvml.ts";
export { backend, openLibrary, selectBackend } from "./ffi/mod.ts";
// The plan, from a container's request to its edits, and the CDI spec rendered from it.
export { type GpuRequest, readRequest } from "./request/request.ts";
export { planForRequest, preparePlan } from "./flows/prepare.ts";
export { type ContainerEdits, containerEdits } from "./edits/edits.ts";
export { specFromPlan } from "./flows/cdi_generate.ts";
export { validateSpec } from "./cdi/spec.ts";
// Engine configuration, computed as file changes and applied (parsed back, atomic, backed up).
export { applyChanges, type FileChange } from "./engines/files.ts";
export { dockerChange } from "./engines/docker.ts";
export { containerdChanges } from "./engines/containerd.ts";
export { crioChanges } from "./engines/crio.ts";
// The doctor's checks.
export { type Check, runChecks } from "./doctor/checks.ts";
