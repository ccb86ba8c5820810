/**
 * gpuctl as a library: configuration, discovery of the driver and GPUs, and their reports.
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
