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

Deno.test("inventoryCsv() quotes fields and adds a MIG table", () => {
  assertEquals(
    inventoryCsv(inv),
    `NVRM version,CUDA version,NVML version,Source
580.95.05,13.0,,nvml

Device Index,Device Minor,Model,Brand,GPU UUID,Bus Location,Architecture,Memory MiB,MIG
0,3,"Odd, ""quoted"" GPU",,GPU-x,00000000:01:00.0,9.0,1024,true

Device Index,MIG Index,MIG UUID,GPU Instance,Compute Instance,Memory MiB
0,2,MIG-y,3,1,
`,
  );
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
