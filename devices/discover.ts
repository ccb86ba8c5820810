/**
 * The host's inventory from the configured source: NVML, `/proc/driver/nvidia`, or NVML with a
 * fall-back to `/proc` when NVML cannot be loaded but the kernel driver is there.
 * @module
 */
import type { Config } from "../config/config.ts";
import { GpuctlError } from "../errors/mod.ts";
import { inventoryFromNvml, openNvml } from "./nvml.ts";
import { inventoryFromProc, kernelDriverLoaded } from "./proc.ts";
import type { Inventory } from "./types.ts";

/** Where `info` takes its facts from. */
export type SourceChoice = "auto" | "nvml" | "proc";

/** Library directories searched under a non-`/` driver root when `nvmlLibrary` is a bare name. */
export const LIBRARY_DIRS = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/lib64",
  "/usr/lib",
  "/lib",
  "/usr/local/nvidia/lib64",
  "/usr/local/nvidia/lib",
];

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
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
  const found = LIBRARY_DIRS.map((d) => `${root}${d}/${lib}`).find(exists);
  if (found === undefined) {
    throw new GpuctlError(
      "NVIDIA driver not found",
      `${lib} could not be loaded (not found under driver root ${config.driverRoot} in ${
        LIBRARY_DIRS.join(", ")
      })`,
    );
  }
  return found;
}

/** Reads the inventory. With `auto`, a missing NVML falls back to `/proc` and says so through `warn`. */
export function discover(
  config: Config,
  source: SourceChoice,
  warn: (msg: string) => void = () => {},
): Inventory {
  if (source === "proc") return inventoryFromProc(config.procRoot);
  let nvml;
  try {
    nvml = openNvml(resolveNvmlLibrary(config));
  } catch (e) {
    const missing = e instanceof GpuctlError && e.what === "NVIDIA driver not found";
    if (source === "auto" && missing && kernelDriverLoaded(config.procRoot)) {
      warn(`${e.message}; reading ${config.procRoot}/driver/nvidia instead`);
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
