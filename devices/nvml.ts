/**
 * The inventory through NVML.
 * @module
 */
import { type DeviceHandle, Nvml, NvmlError } from "../ffi/nvml.ts";
import { LibraryLoadError } from "../ffi/types.ts";
import { GpuctlError } from "../errors/mod.ts";
import { brandName, formatCudaVersion, type Gpu, type Inventory, type MigDevice } from "./types.ts";

/** Hints for NVML failures a user can act on, by nvmlReturn_t. */
const HINTS: Record<number, string> = {
  9: "is the nvidia kernel module loaded?",
  12: "is the driver's user-space part installed?",
  15: "the GPU fell off the bus; check dmesg, then reset the GPU or reboot",
  18: "the user-space driver and the kernel module differ in version; reboot or reload the module",
};

/** NVML_ERROR_DRIVER_NOT_LOADED: NVML could not reach the kernel driver (no usable /dev/nvidiactl). */
export const DRIVER_NOT_LOADED = 9;

function nvmlFailure(what: string, e: unknown): never {
  if (e instanceof NvmlError) {
    const hint = HINTS[e.code];
    throw new GpuctlError(what, `${e.call} failed: ${e.nvmlMessage}${hint ? ` (${hint})` : ""}`, 1, {
      cause: e,
    });
  }
  throw e;
}

/** Whether `e` is NVML's own "driver not loaded" from its initialisation. */
export function driverNotLoaded(e: unknown): boolean {
  return e instanceof GpuctlError && e.cause instanceof NvmlError && e.cause.code === DRIVER_NOT_LOADED;
}

/** Opens NVML, or fails with the one message every command uses for a missing driver. */
export function openNvml(library: string, onCall?: (fn: string) => void): Nvml {
  try {
    return Nvml.open(library, onCall);
  } catch (e) {
    if (e instanceof LibraryLoadError) {
      throw new GpuctlError(
        "NVIDIA driver not found",
        `${libraryName(library)} could not be loaded (${e.reason})`,
        1,
        { cause: e },
      );
    }
    return nvmlFailure("NVML initialization failed", e);
  }
}

function libraryName(path: string): string {
  return path.includes("/") ? path.slice(path.lastIndexOf("/") + 1) : path;
}

function readMig(nvml: Nvml, gpu: DeviceHandle, gpuIndex: number): Gpu["mig"] {
  if (!nvml.migEnabled(gpu)) return { enabled: false, devices: [] };
  const devices: MigDevice[] = nvml.migDevices(gpu).map(({ index, handle }) => {
    try {
      return {
        index,
        uuid: nvml.uuid(handle),
        gpuInstance: nvml.gpuInstanceId(handle),
        computeInstance: nvml.computeInstanceId(handle),
        memoryMiB: nvml.memoryMiB(handle),
      };
    } catch (e) {
      return nvmlFailure(`GPU ${gpuIndex} MIG device ${index}`, e);
    }
  });
  return { enabled: true, devices };
}

/** Reads the driver and every GPU (MIG devices included) from an opened NVML. */
export function inventoryFromNvml(nvml: Nvml): Inventory {
  let driver: Inventory["driver"];
  let count: number;
  try {
    driver = {
      version: nvml.driverVersion(),
      cudaVersion: formatCudaVersion(nvml.cudaDriverVersion()),
      nvmlVersion: nvml.nvmlVersion(),
    };
    count = nvml.deviceCount();
  } catch (e) {
    return nvmlFailure("NVML", e);
  }
  const devices: Gpu[] = [];
  for (let index = 0; index < count; index++) {
    try {
      const h = nvml.deviceByIndex(index);
      devices.push({
        index,
        minor: nvml.minor(h),
        name: nvml.name(h),
        brand: brandName(nvml.brand(h)),
        uuid: nvml.uuid(h),
        busId: nvml.busId(h),
        architecture: nvml.computeCapability(h),
        memoryMiB: nvml.memoryMiB(h),
        mig: readMig(nvml, h, index),
      });
    } catch (e) {
      if (e instanceof GpuctlError) throw e;
      nvmlFailure(`GPU ${index}`, e);
    }
  }
  return { driver, source: "nvml", devices };
}
