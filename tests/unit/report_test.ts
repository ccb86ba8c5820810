import { assertEquals } from "../assert.ts";
import type { Inventory } from "../../devices/types.ts";
import { inventoryCsv, inventoryJson, inventoryText } from "../../report/inventory.ts";

const inv: Inventory = {
  driver: { version: "580.95.05", cudaVersion: "13.0", nvmlVersion: null },
  source: "nvml",
  devices: [{
    index: 0,
    minor: 3,
    name: 'Odd, "quoted" GPU',
    brand: null,
    uuid: "GPU-x",
    busId: "00000000:01:00.0",
    architecture: "9.0",
    memoryMiB: 1024,
    mig: {
      enabled: true,
      devices: [{ index: 2, uuid: "MIG-y", gpuInstance: 3, computeInstance: 1, memoryMiB: null }],
    },
  }],
};

Deno.test("inventoryJson() has exactly the shared shape, keys in order", () => {
  const doc = JSON.parse(inventoryJson(inv));
  assertEquals(Object.keys(doc), ["driver", "source", "devices"]);
  assertEquals(Object.keys(doc.driver), ["version", "cudaVersion", "nvmlVersion"]);
  assertEquals(Object.keys(doc.devices[0]), [
    "index",
    "minor",
    "name",
    "brand",
    "uuid",
    "busId",
    "architecture",
    "memoryMiB",
    "mig",
  ]);
  assertEquals(Object.keys(doc.devices[0].mig), ["enabled", "devices"]);
  assertEquals(Object.keys(doc.devices[0].mig.devices[0]), [
    "index",
    "uuid",
    "gpuInstance",
    "computeInstance",
    "memoryMiB",
  ]);
  assertEquals(doc.devices[0].brand, null);
});

/** RFC 4180 records: fields split at commas outside quotes, doubled quotes read as one. */
function csvRecords(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [], field = "", quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (field += '"', i++);
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") (row.push(field), field = "");
    else if (c === "\n") (row.push(field), rows.push(row), row = [], field = "");
    else field += c;
  }
  return rows;
}

Deno.test("inventoryCsv() is one table: a row per GPU and MIG device, quoted, each with the driver's facts", () => {
  const text = inventoryCsv(inv);
  assertEquals(
    text,
    `Kind,Device Index,MIG Index,Device Minor,Model,Brand,UUID,Bus Location,Architecture,Memory MiB,MIG Enabled,GPU Instance,Compute Instance,NVRM version,CUDA version,NVML version,Source
gpu,0,,3,"Odd, ""quoted"" GPU",,GPU-x,00000000:01:00.0,9.0,1024,true,,,580.95.05,13.0,,nvml
mig,0,2,3,"Odd, ""quoted"" GPU",,MIG-y,00000000:01:00.0,9.0,,,3,1,580.95.05,13.0,,nvml
`,
  );
  const [header, ...rows] = csvRecords(text);
  assertEquals(rows.length, 2);
  for (const r of rows) assertEquals(r.length, header!.length);
  const at = (r: string[], col: string) => r[header!.indexOf(col)];
  assertEquals(at(rows[0]!, "Model"), 'Odd, "quoted" GPU');
  assertEquals(rows.map((r) => at(r, "UUID")), ["GPU-x", "MIG-y"]);
  assertEquals(rows.map((r) => at(r, "NVRM version")), ["580.95.05", "580.95.05"]);
});

Deno.test("inventoryText() aligns values and says 'unknown' and 'none'", () => {
  const t = inventoryText({ ...inv, devices: [] });
  assertEquals(
    t,
    "NVRM version: 580.95.05\nCUDA version: 13.0\nNVML version: unknown\nSource:       NVML\n\nDevices:      none\n",
  );
  const full = inventoryText(inv);
  assertEquals(full.includes("Brand:        unknown\n"), true);
  assertEquals(
    full.includes("  MIG 0:2:    MIG-y (GPU instance 3, compute instance 1, unknown MiB)\n"),
    true,
  );
});
