/**
 * What the host has: the driver and its GPUs, as gpuctl reports and plans with them.
 * @module
 */

/** The NVIDIA driver on the host. `null` where the source cannot tell. */
export interface DriverInfo {
  /** The kernel/user driver version, e.g. `580.95.05`. */
  version: string;
  /** The CUDA driver API version, e.g. `13.0`. */
  cudaVersion: string | null;
  /** NVML's own version, e.g. `13.580.95.05`. */
  nvmlVersion: string | null;
}

/** A MIG device of a GPU. */
export interface MigDevice {
  /** Its slot among the GPU's MIG devices. */
  index: number;
  uuid: string;
  gpuInstance: number;
  computeInstance: number;
  memoryMiB: number | null;
}

/** A GPU. */
export interface Gpu {
  index: number;
  /** The minor number of `/dev/nvidia<minor>`. */
  minor: number;
  name: string;
  brand: string | null;
  uuid: string;
  /** PCI bus id, `%08x:%02x:%02x.0`. */
  busId: string;
  /** CUDA compute capability, `major.minor`. */
  architecture: string | null;
  memoryMiB: number | null;
  /** MIG mode (`null` where the source cannot tell: the kernel's /proc does not) and the MIG devices. */
  mig: { enabled: boolean | null; devices: MigDevice[] };
}

/** Where the facts came from. */
export type Source = "nvml" | "proc";

/** The host's driver and GPUs. */
export interface Inventory {
  driver: DriverInfo;
  source: Source;
  devices: Gpu[];
}

/**
 * NVML's brands by `nvmlBrandType_t` value: the name `info` shows, and the short name `NVIDIA_REQUIRE_*` brand
 * terms use (the nvidia/cuda images say `brand=nvidiartx`, `brand=vws`, …; compared in any case).
 */
export const BRANDS: readonly { name: string; short: string }[] = [
  { name: "Unknown", short: "unknown" },
  { name: "Quadro", short: "quadro" },
  { name: "Tesla", short: "tesla" },
  { name: "NVS", short: "nvs" },
  { name: "GRID", short: "grid" },
  { name: "GeForce", short: "geforce" },
  { name: "TITAN", short: "titan" },
  { name: "NVIDIA Virtual Applications", short: "vapps" },
  { name: "NVIDIA Virtual PC", short: "vpc" },
  { name: "NVIDIA Virtual Compute Server", short: "vcs" },
  { name: "NVIDIA RTX Virtual Workstation", short: "vws" },
  { name: "NVIDIA Cloud Gaming", short: "cloudgaming" },
  { name: "Quadro RTX", short: "quadrortx" },
  { name: "NVIDIA RTX", short: "nvidiartx" },
  { name: "NVIDIA", short: "nvidia" },
  { name: "GeForce RTX", short: "geforcertx" },
  { name: "TITAN RTX", short: "titanrtx" },
];

/** The display name of an `nvmlBrandType_t` value (a value newer than this table is "Unknown"). */
export function brandName(code: number): string {
  return BRANDS[code]?.name ?? "Unknown";
}

/** NVML's CUDA version integer (e.g. 12040) as `major.minor` (`12.4`). */
export function formatCudaVersion(v: number): string {
  return `${Math.floor(v / 1000)}.${Math.floor((v % 100) / 10)}`;
}

/** Normalises a PCI bus id to `%08x:%02x:%02x.%x` lower case (`0000:1B:00.0` → `00000000:1b:00.0`). */
export function normalizeBusId(id: string): string | null {
  const m = /^(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.([0-7]))?$/i.exec(id.trim());
  if (!m) return null;
  const [, dom = "0", bus = "0", dev = "0", fn = "0"] = m;
  return `${dom.toLowerCase().padStart(8, "0")}:${bus.toLowerCase().padStart(2, "0")}:${
    dev.toLowerCase().padStart(2, "0")
  }.${fn}`;
}
