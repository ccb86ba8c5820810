/**
 * The inventory from `/proc/driver/nvidia`, for when NVML is not needed or cannot be loaded.
 *
 * The kernel module tells the driver version and, per GPU, its model, UUID, bus location and minor;
 * it does not tell brand, compute capability, memory, the CUDA version, MIG mode or MIG devices (`null`/empty).
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { type Gpu, type Inventory, normalizeBusId } from "./types.ts";

/** Parses `/proc/driver/nvidia/version` text; returns the NVRM version. */
export function parseVersionFile(text: string): string | null {
  const line = text.split("\n").find((l) => l.startsWith("NVRM version:"));
  return line ? (/\s(\d+\.\d+(?:\.\d+)?)(?:\s|$)/.exec(line)?.[1] ?? null) : null;
}

/** Parses a `gpus/<busid>/information` file into its `Key: value` pairs. */
export function parseInformation(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return out;
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new GpuctlError(path, `cannot be read: ${(e as Error).message}`, 1, { cause: e });
  }
}

/** Whether the kernel driver is loaded under `procRoot`. */
export function kernelDriverLoaded(procRoot: string): boolean {
  return readText(`${procRoot}/driver/nvidia/version`) !== null;
}

/** Reads the inventory from `<procRoot>/driver/nvidia`. GPUs are indexed in PCI bus order, as NVML does. */
export function inventoryFromProc(procRoot: string): Inventory {
  const base = `${procRoot}/driver/nvidia`;
  const text = readText(`${base}/version`);
  if (text === null) {
    throw new GpuctlError(
      "NVIDIA driver not found",
      `${base}/version does not exist (is the nvidia kernel module loaded?)`,
    );
  }
  const version = parseVersionFile(text);
  if (version === null) throw new GpuctlError(`${base}/version`, "has no NVRM version line");
  const entries: { busId: string; info: Map<string, string>; dir: string }[] = [];
  let names: string[] = [];
  try {
    names = [...Deno.readDirSync(`${base}/gpus`)].map((e) => e.name);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  for (const name of names) {
    const busId = normalizeBusId(name);
    const info = readText(`${base}/gpus/${name}/information`);
    if (busId === null || info === null) continue;
    entries.push({ busId, info: parseInformation(info), dir: name });
  }
  entries.sort((a, b) => (a.busId < b.busId ? -1 : a.busId > b.busId ? 1 : 0));
  const devices: Gpu[] = entries.map(({ busId, info, dir }, index) => {
    const minor = Number(info.get("Device Minor"));
    const uuid = info.get("GPU UUID");
    if (!Number.isInteger(minor) || !uuid) {
      throw new GpuctlError(`${base}/gpus/${dir}/information`, "lacks Device Minor or GPU UUID");
    }
    return {
      index,
      minor,
      name: info.get("Model") ?? "Unknown",
      brand: null,
      uuid,
      busId,
      architecture: null,
      memoryMiB: null,
      mig: { enabled: null, devices: [] },
    };
  });
  return { driver: { version, cudaVersion: null, nvmlVersion: null }, source: "proc", devices };
}
