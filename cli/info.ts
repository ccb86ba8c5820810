/**
 * `gpuctl info`: what the driver and GPUs are.
 * @module
 */
import { discover, type SourceChoice } from "../devices/discover.ts";
import { discoverIsolated } from "../devices/isolated.ts";
import { UsageError } from "../errors/mod.ts";
import { inventoryCsv, inventoryJson, inventoryText } from "../report/inventory.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";

export const HELP = `Usage: gpuctl info [--json | --csv] [--source auto|nvml|proc]

Shows the NVIDIA driver (version, CUDA version, NVML version) and every GPU: index, minor number,
model, brand, UUID, PCI bus id, architecture (compute capability), memory, and MIG devices.

Options:
  --json            JSON: {"driver":{...},"source":"nvml"|"proc","devices":[...]}
  --csv             one CSV table, a row per GPU and MIG device, each with the driver's facts
  --source SOURCE   nvml: only NVML; proc: only /proc/driver/nvidia (no brand, architecture,
                    memory or MIG); auto (default): NVML, or /proc with a warning when NVML
                    cannot be loaded but the kernel driver is loaded
  -h, --help        this help

Configuration used: nvmlLibrary, driverRoot, procRoot.
`;

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("info", args, {
    json: { type: "boolean" },
    csv: { type: "boolean" },
    source: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  if (values.json && values.csv) throw new UsageError("info", "--json and --csv exclude each other");
  const source = (values.source ?? "auto") as SourceChoice;
  if (!["auto", "nvml", "proc"].includes(source)) {
    throw new UsageError("info --source", `unknown source "${source}" (use auto, nvml or proc)`);
  }
  // NVML runs in a child process: a driver that hangs or crashes gives a line, not a hung or dead gpuctl.
  let inv;
  if (source === "proc") inv = discover(ctx.config, source, (m) => ctx.warn(m));
  else {
    const d = await discoverIsolated(ctx.config, source, ctx.globals.configPath);
    for (const w of d.warnings) ctx.warn(w);
    inv = d.inventory;
  }
  ctx.log.debug("inventory", { source: inv.source, devices: inv.devices.length });
  ctx.out(values.json ? inventoryJson(inv) : values.csv ? inventoryCsv(inv) : inventoryText(inv));
  return 0;
}
