import { assertEquals, assertThrows } from "../assert.ts";
import { formatCudaVersion, normalizeBusId } from "../../devices/types.ts";
import { inventoryFromProc, parseInformation, parseVersionFile } from "../../devices/proc.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { tempDir } from "../helpers.ts";

Deno.test("formatCudaVersion() follows NVML's encoding", () => {
  assertEquals(formatCudaVersion(12040), "12.4");
  assertEquals(formatCudaVersion(13000), "13.0");
  assertEquals(formatCudaVersion(11080), "11.8");
  assertEquals(formatCudaVersion(12090), "12.9");
});

Deno.test("normalizeBusId() gives %08x:%02x:%02x.f lower case", () => {
  assertEquals(normalizeBusId("0000:1B:00.0"), "00000000:1b:00.0");
  assertEquals(normalizeBusId("00000000:00:06.0"), "00000000:00:06.0");
  assertEquals(normalizeBusId("1b:00.0"), "00000000:1b:00.0");
  assertEquals(normalizeBusId("1b:00"), "00000000:1b:00.0");
  assertEquals(normalizeBusId("GPU-1234"), null);
  assertEquals(normalizeBusId("0000:1g:00.0"), null);
});

Deno.test("parseVersionFile() reads proprietary and open kernel module lines", () => {
  assertEquals(
    parseVersionFile(
      "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023\n",
    ),
    "535.104.05",
  );
  assertEquals(
    parseVersionFile(
      "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.82.07  Release Build  (dvs-builder@U16-I3-B13-4-2)\nGCC version: gcc 12\n",
    ),
    "580.82.07",
  );
  assertEquals(parseVersionFile("GCC version: only\n"), null);
});

Deno.test("parseInformation() splits Key: value lines", () => {
  const m = parseInformation("Model: \t\t NVIDIA H100\nGPU UUID: \t GPU-1:2\nDevice Minor: \t 3\n");
  assertEquals(m.get("Model"), "NVIDIA H100");
  assertEquals(m.get("GPU UUID"), "GPU-1:2");
  assertEquals(m.get("Device Minor"), "3");
});

Deno.test("inventoryFromProc() reads the fixture's GPUs in bus order", async () => {
  const d = await fakeDriver(standardSpec(3));
  const inv = inventoryFromProc(d.proc);
  assertEquals(inv.source, "proc");
  assertEquals(inv.driver, { version: "580.95.05", cudaVersion: null, nvmlVersion: null });
  assertEquals(
    inv.devices.map((g) => [g.index, g.minor, g.uuid, g.busId, g.name]),
    d.spec.gpus.map((g, i) => [i, g.minor, g.uuid, g.busId, g.name]),
  );
  assertEquals(
    inv.devices.every((g) => g.brand === null && g.architecture === null && g.memoryMiB === null),
    true,
  );
});

Deno.test("inventoryFromProc() fails clearly without the kernel driver or with a broken file", () => {
  using d = tempDir();
  const e = assertThrows(() => inventoryFromProc(d.path), GpuctlError);
  assertEquals(
    e.message,
    `NVIDIA driver not found: ${d.path}/driver/nvidia/version does not exist (is the nvidia kernel module loaded?)`,
  );
  Deno.mkdirSync(`${d.path}/driver/nvidia/gpus/0000:01:00.0`, { recursive: true });
  Deno.writeTextFileSync(`${d.path}/driver/nvidia/version`, "garbage\n");
  assertThrows(() => inventoryFromProc(d.path), GpuctlError, "has no NVRM version line");
  Deno.writeTextFileSync(
    `${d.path}/driver/nvidia/version`,
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  1.2.3  x\n",
  );
  Deno.writeTextFileSync(`${d.path}/driver/nvidia/gpus/0000:01:00.0/information`, "Model: X\n");
  assertThrows(() => inventoryFromProc(d.path), GpuctlError, "lacks Device Minor or GPU UUID");
});
