/**
 * The inventory rendered for people (aligned text), spreadsheets (CSV) and tools (JSON, a fixed shape).
 * @module
 */
import type { Inventory } from "../devices/types.ts";

/** The JSON shape shared tools parse: keys in this order, every key present (`null` where unknown). */
export function inventoryJson(inv: Inventory): string {
  const doc = {
    driver: {
      version: inv.driver.version,
      cudaVersion: inv.driver.cudaVersion,
      nvmlVersion: inv.driver.nvmlVersion,
    },
    source: inv.source,
    devices: inv.devices.map((d) => ({
      index: d.index,
      minor: d.minor,
      name: d.name,
      brand: d.brand,
      uuid: d.uuid,
      busId: d.busId,
      architecture: d.architecture,
      memoryMiB: d.memoryMiB,
      mig: {
        enabled: d.mig.enabled,
        devices: d.mig.devices.map((m) => ({
          index: m.index,
          uuid: m.uuid,
          gpuInstance: m.gpuInstance,
          computeInstance: m.computeInstance,
          memoryMiB: m.memoryMiB,
        })),
      },
    })),
  };
  return JSON.stringify(doc, null, 2) + "\n";
}

const show = (v: string | number | null) => (v === null ? "unknown" : String(v));

/** Aligned `Label: value` text, one block per GPU. */
export function inventoryText(inv: Inventory): string {
  const rows: [string, string][] = [
    ["NVRM version", inv.driver.version],
    ["CUDA version", show(inv.driver.cudaVersion)],
    ["NVML version", show(inv.driver.nvmlVersion)],
    ["Source", inv.source === "nvml" ? "NVML" : "/proc/driver/nvidia"],
  ];
  const blocks: [string, string][][] = [rows];
  for (const d of inv.devices) {
    const b: [string, string][] = [
      ["Device Index", String(d.index)],
      ["Device Minor", String(d.minor)],
      ["Model", d.name],
      ["Brand", show(d.brand)],
      ["GPU UUID", d.uuid],
      ["Bus Location", d.busId],
      ["Architecture", show(d.architecture)],
      ["Memory", d.memoryMiB === null ? "unknown" : `${d.memoryMiB} MiB`],
      [
        "MIG",
        d.mig.enabled === null
          ? "unknown"
          : d.mig.enabled
          ? `enabled, ${d.mig.devices.length} device(s)`
          : "disabled",
      ],
    ];
    for (const m of d.mig.devices) {
      b.push([
        `  MIG ${d.index}:${m.index}`,
        `${m.uuid} (GPU instance ${m.gpuInstance}, compute instance ${m.computeInstance}, ${
          show(m.memoryMiB)
        } MiB)`,
      ]);
    }
    blocks.push(b);
  }
  if (inv.devices.length === 0) blocks.push([["Devices", "none"]]);
  const width = Math.max(...blocks.flat().map(([k]) => k.length)) + 2;
  return blocks.map((b) => b.map(([k, v]) => `${(k + ":").padEnd(width)}${v}`).join("\n")).join("\n\n") +
    "\n";
}

function csvField(v: string | number | boolean | null): string {
  const s = v === null ? "" : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
const csvRow = (vals: (string | number | boolean | null)[]) => vals.map(csvField).join(",") + "\n";

/**
 * One CSV table, a row per device: each GPU, then its MIG devices. Every row carries the driver's facts too, so
 * that a row read alone (`grep`, a spreadsheet's filter) says everything about its device.
 */
export function inventoryCsv(inv: Inventory): string {
  let out = csvRow([
    "Kind",
    "Device Index",
    "MIG Index",
    "Device Minor",
    "Model",
    "Brand",
    "UUID",
    "Bus Location",
    "Architecture",
    "Memory MiB",
    "MIG Enabled",
    "GPU Instance",
    "Compute Instance",
    "NVRM version",
    "CUDA version",
    "NVML version",
    "Source",
  ]);
  const driver = [inv.driver.version, inv.driver.cudaVersion, inv.driver.nvmlVersion, inv.source];
  for (const d of inv.devices) {
    const gpu = [d.minor, d.name, d.brand];
    out += csvRow([
      "gpu",
      d.index,
      "",
      ...gpu,
      d.uuid,
      d.busId,
      d.architecture,
      d.memoryMiB,
      d.mig.enabled,
      "",
      "",
      ...driver,
    ]);
    for (const m of d.mig.devices) {
      out += csvRow([
        "mig",
        d.index,
        m.index,
        ...gpu,
        m.uuid,
        d.busId,
        d.architecture,
        m.memoryMiB,
        "",
        m.gpuInstance,
        m.computeInstance,
        ...driver,
      ]);
    }
  }
  return out;
}
