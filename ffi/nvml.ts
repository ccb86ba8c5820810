/**
 * NVML (`libnvidia-ml.so.1`) through FFI: the calls gpuctl uses, declared once, and a typed face over them.
 *
 * Every failing call becomes an {@link NvmlError} carrying NVML's own error string.
 * @module
 */
import { openLibrary } from "./mod.ts";
import { type Decls, fromCBuffer, type Library } from "./types.ts";

/** The NVML functions gpuctl calls. Device handles are opaque addresses (`pointer`). */
export const NVML = {
  nvmlInit_v2: { params: [], result: "i32" },
  nvmlShutdown: { params: [], result: "i32" },
  nvmlErrorString: { params: ["i32"], result: "cstring" },
  nvmlSystemGetDriverVersion: { params: ["buffer", "u32"], result: "i32" },
  nvmlSystemGetNVMLVersion: { params: ["buffer", "u32"], result: "i32" },
  nvmlSystemGetCudaDriverVersion: { params: ["buffer"], result: "i32" },
  nvmlDeviceGetCount_v2: { params: ["buffer"], result: "i32" },
  nvmlDeviceGetHandleByIndex_v2: { params: ["u32", "buffer"], result: "i32" },
  nvmlDeviceGetMinorNumber: { params: ["pointer", "buffer"], result: "i32" },
  nvmlDeviceGetName: { params: ["pointer", "buffer", "u32"], result: "i32" },
  nvmlDeviceGetBrand: { params: ["pointer", "buffer"], result: "i32" },
  nvmlDeviceGetUUID: { params: ["pointer", "buffer", "u32"], result: "i32" },
  nvmlDeviceGetPciInfo_v3: { params: ["pointer", "buffer"], result: "i32" },
  nvmlDeviceGetCudaComputeCapability: { params: ["pointer", "buffer", "buffer"], result: "i32" },
  nvmlDeviceGetMemoryInfo: { params: ["pointer", "buffer"], result: "i32" },
  nvmlDeviceGetMigMode: { params: ["pointer", "buffer", "buffer"], result: "i32", optional: true },
  nvmlDeviceGetMaxMigDeviceCount: { params: ["pointer", "buffer"], result: "i32", optional: true },
  nvmlDeviceGetMigDeviceHandleByIndex: {
    params: ["pointer", "u32", "buffer"],
    result: "i32",
    optional: true,
  },
  nvmlDeviceGetGpuInstanceId: { params: ["pointer", "buffer"], result: "i32", optional: true },
  nvmlDeviceGetComputeInstanceId: { params: ["pointer", "buffer"], result: "i32", optional: true },
} as const satisfies Decls;

/** NVML return codes gpuctl tells apart. */
export const NVML_SUCCESS = 0, NVML_ERROR_NOT_SUPPORTED = 3, NVML_ERROR_NOT_FOUND = 6;
export const NVML_ERROR_INVALID_ARGUMENT = 2;

/** An NVML call failed: `code` is the nvmlReturn_t, `message` NVML's own string for it. */
export class NvmlError extends Error {
  constructor(readonly call: string, readonly code: number, readonly nvmlMessage: string) {
    super(`${call} failed: ${nvmlMessage}`);
    this.name = "NvmlError";
  }
}

/** A device handle: a GPU or a MIG device. */
export type DeviceHandle = bigint & { readonly __nvmlDevice: unique symbol };

const u32 = () => new Uint8Array(4);
const readU32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getUint32(0, true);
const readI32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset).getInt32(0, true);

/** An initialised NVML. Call {@link Nvml.shutdown} when done. */
export class Nvml {
  private constructor(private readonly s: Library<typeof NVML>["symbols"]) {}

  /**
   * Loads NVML from `path` (a soname or an absolute path) and initialises it. `onCall`, when given, is told the
   * name of every NVML function just before it is called: a process watching this one can then say which call
   * hung or crashed.
   */
  static open(path: string, onCall?: (fn: string) => void): Nvml {
    const lib = openLibrary(path, NVML);
    let symbols = lib.symbols;
    if (onCall !== undefined) {
      const traced: Record<string, unknown> = {};
      for (const [name, fn] of Object.entries(lib.symbols)) {
        traced[name] = typeof fn === "function"
          ? (...a: unknown[]) => {
            onCall(name);
            return (fn as (...x: unknown[]) => unknown)(...a);
          }
          : fn;
      }
      symbols = traced as typeof symbols;
    }
    const nvml = new Nvml(symbols);
    // The library stays loaded: unloading NVML while its helper threads may still run is not safe.
    nvml.call("nvmlInit_v2", symbols.nvmlInit_v2());
    return nvml;
  }

  /** NVML's string for a return code. */
  errorString(code: number): string {
    return this.s.nvmlErrorString(code) ?? `NVML error ${code}`;
  }

  private call(name: string, code: number): void {
    if (code !== NVML_SUCCESS) throw new NvmlError(name, code, this.errorString(code));
  }

  private str(name: "nvmlSystemGetDriverVersion" | "nvmlSystemGetNVMLVersion"): string {
    const b = new Uint8Array(96);
    this.call(name, this.s[name](b, b.length));
    return fromCBuffer(b);
  }

  driverVersion(): string {
    return this.str("nvmlSystemGetDriverVersion");
  }

  nvmlVersion(): string {
    return this.str("nvmlSystemGetNVMLVersion");
  }

  /** The CUDA driver API version as NVML encodes it (e.g. 12040 for 12.4). */
  cudaDriverVersion(): number {
    const b = u32();
    this.call("nvmlSystemGetCudaDriverVersion", this.s.nvmlSystemGetCudaDriverVersion(b));
    return readI32(b);
  }

  deviceCount(): number {
    const b = u32();
    this.call("nvmlDeviceGetCount_v2", this.s.nvmlDeviceGetCount_v2(b));
    return readU32(b);
  }

  deviceByIndex(index: number): DeviceHandle {
    const b = new Uint8Array(8);
    this.call("nvmlDeviceGetHandleByIndex_v2", this.s.nvmlDeviceGetHandleByIndex_v2(index, b));
    return new DataView(b.buffer).getBigUint64(0, true) as DeviceHandle;
  }

  minor(d: DeviceHandle): number {
    const b = u32();
    this.call("nvmlDeviceGetMinorNumber", this.s.nvmlDeviceGetMinorNumber(d, b));
    return readU32(b);
  }

  name(d: DeviceHandle): string {
    const b = new Uint8Array(96);
    this.call("nvmlDeviceGetName", this.s.nvmlDeviceGetName(d, b, b.length));
    return fromCBuffer(b);
  }

  uuid(d: DeviceHandle): string {
    const b = new Uint8Array(96);
    this.call("nvmlDeviceGetUUID", this.s.nvmlDeviceGetUUID(d, b, b.length));
    return fromCBuffer(b);
  }

  /** The `nvmlBrandType_t` value. */
  brand(d: DeviceHandle): number {
    const b = u32();
    this.call("nvmlDeviceGetBrand", this.s.nvmlDeviceGetBrand(d, b));
    return readU32(b);
  }

  /** The PCI bus id as `%08x:%02x:%02x.0` (domain, bus, device), lower case. */
  busId(d: DeviceHandle): string {
    const b = new Uint8Array(68); // nvmlPciInfo_t: busIdLegacy[16], 5 x u32, busId[32]
    this.call("nvmlDeviceGetPciInfo_v3", this.s.nvmlDeviceGetPciInfo_v3(d, b));
    const v = new DataView(b.buffer);
    const hex = (n: number, w: number) => n.toString(16).padStart(w, "0");
    return `${hex(v.getUint32(16, true), 8)}:${hex(v.getUint32(20, true), 2)}:${
      hex(v.getUint32(24, true), 2)
    }.0`;
  }

  /** The CUDA compute capability as `major.minor`. */
  computeCapability(d: DeviceHandle): string {
    const ma = u32(), mi = u32();
    this.call("nvmlDeviceGetCudaComputeCapability", this.s.nvmlDeviceGetCudaComputeCapability(d, ma, mi));
    return `${readI32(ma)}.${readI32(mi)}`;
  }

  /** Total memory in MiB. */
  memoryMiB(d: DeviceHandle): number {
    const b = new Uint8Array(24);
    this.call("nvmlDeviceGetMemoryInfo", this.s.nvmlDeviceGetMemoryInfo(d, b));
    return Number(new DataView(b.buffer).getBigUint64(0, true) >> 20n);
  }

  /** Whether MIG is enabled (current and pending both on); false where MIG is not supported. */
  migEnabled(d: DeviceHandle): boolean {
    const fn = this.s.nvmlDeviceGetMigMode;
    if (fn === null) return false;
    const cur = u32(), pend = u32();
    const r = fn(d, cur, pend);
    if (r === NVML_ERROR_NOT_SUPPORTED) return false;
    this.call("nvmlDeviceGetMigMode", r);
    return readU32(cur) === 1 && readU32(pend) === 1;
  }

  /** The MIG devices of a MIG-enabled GPU, with their slot index. */
  migDevices(d: DeviceHandle): { index: number; handle: DeviceHandle }[] {
    const count = this.s.nvmlDeviceGetMaxMigDeviceCount, byIndex = this.s.nvmlDeviceGetMigDeviceHandleByIndex;
    if (count === null || byIndex === null) return [];
    const n = u32();
    this.call("nvmlDeviceGetMaxMigDeviceCount", count(d, n));
    const out: { index: number; handle: DeviceHandle }[] = [];
    for (let i = 0; i < readU32(n); i++) {
      const h = new Uint8Array(8);
      const r = byIndex(d, i, h);
      if (r === NVML_ERROR_NOT_FOUND) continue;
      this.call("nvmlDeviceGetMigDeviceHandleByIndex", r);
      out.push({ index: i, handle: new DataView(h.buffer).getBigUint64(0, true) as DeviceHandle });
    }
    return out;
  }

  gpuInstanceId(d: DeviceHandle): number {
    const fn = this.s.nvmlDeviceGetGpuInstanceId, b = u32();
    if (fn === null) throw new NvmlError("nvmlDeviceGetGpuInstanceId", 13, "Function Not Found");
    this.call("nvmlDeviceGetGpuInstanceId", fn(d, b));
    return readU32(b);
  }

  computeInstanceId(d: DeviceHandle): number {
    const fn = this.s.nvmlDeviceGetComputeInstanceId, b = u32();
    if (fn === null) throw new NvmlError("nvmlDeviceGetComputeInstanceId", 13, "Function Not Found");
    this.call("nvmlDeviceGetComputeInstanceId", fn(d, b));
    return readU32(b);
  }

  /** Shuts NVML down (the library itself stays mapped). */
  shutdown(): void {
    this.s.nvmlShutdown();
  }
}
