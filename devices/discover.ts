/**
 * The host's inventory from the configured source: NVML, `/proc/driver/nvidia`, or NVML with a
 * fall-back to `/proc` when NVML cannot be loaded but the kernel driver is there.
 * @module
 */
import type { Config } from "../config/config.ts";
import { GpuctlError } from "../errors/mod.ts";
import { readLdCache } from "../driver/ldcache.ts";
import { hostPath, statInRoot } from "../driver/rootfs.ts";
import { LIBRARY_DIRS_64 } from "../driver/locate.ts";
import { driverNotLoaded, inventoryFromNvml, openNvml } from "./nvml.ts";
import { inventoryFromProc, kernelDriverLoaded } from "./proc.ts";
import type { Inventory } from "./types.ts";

/** Where `info` takes its facts from. */
export type SourceChoice = "auto" | "nvml" | "proc";

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch { // absent
    return false;
  }
}

/**
 * The path to dlopen for NVML: an absolute `nvmlLibrary` as is; a bare name as is under driver root `/`
 * (the dynamic loader searches), else the first match in the driver root's library directories.
 */
export function resolveNvmlLibrary(config: Config): string {
  const lib = config.nvmlLibrary;
  if (lib.includes("/") || config.driverRoot === "/") return lib;
  const root = config.driverRoot.replace(/\/+$/, "");
  // The driver root's own linker cache first, as its dynamic loader would; then the usual directories.
  try {
    for (const e of readLdCache(`${root}/etc/ld.so.cache`)) {
      if (e.soname !== lib || !e.is64) continue;
      const s = statInRoot(root, e.path);
      if (s !== null && s.info.isFile) return hostPath(root, s.path);
    }
  } catch { /* no usable cache */ }
  const found = [...config.libraryDirs, ...LIBRARY_DIRS_64].map((d) => `${root}${d}/${lib}`).find(exists);
  if (found === undefined) {
    throw new GpuctlError(
      "NVIDIA driver not found",
      `${lib} could not be loaded (not found under driver root ${config.driverRoot} in ${
        [...config.libraryDirs, ...LIBRARY_DIRS_64].join(", ")
      })`,
    );
  }
  return found;
}

/**
 * Reads the inventory. With `auto`, NVML that is missing, or that cannot reach the kernel driver ("driver not
 * loaded": no usable control node) while `/proc` shows the driver loaded, falls back to `/proc` and says so
 * through `warn`. Any other NVML failure (a version mismatch, a lost GPU) is an error.
 */
export function discover(
  config: Config,
  source: SourceChoice,
  warn: (msg: string) => void = () => {},
  onCall?: (fn: string) => void,
): Inventory {
  if (source === "proc") return inventoryFromProc(config.procRoot);
  let nvml;
  try {
    nvml = openNvml(resolveNvmlLibrary(config), onCall);
  } catch (e) {
    const missing = (e instanceof GpuctlError && e.what === "NVIDIA driver not found") || driverNotLoaded(e);
    if (source === "auto" && missing && kernelDriverLoaded(config.procRoot)) {
      warn(`${(e as Error).message}; reading ${config.procRoot}/driver/nvidia instead`);
      return inventoryFromProc(config.procRoot);
    }
    throw e;
  }
  try {
    return inventoryFromNvml(nvml);
  } finally {
    nvml.shutdown();
  }
}
