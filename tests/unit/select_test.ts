import { assertEquals, assertThrows } from "../assert.ts";
import { parseVisibleDevices, selectDevices, type Selection } from "../../devices/select.ts";
import type { Gpu, Inventory } from "../../devices/types.ts";
import { GpuctlError } from "../../errors/mod.ts";

const gpu = (index: number, mig = false): Gpu => ({
  index,
  minor: index + 4,
  name: "G",
  brand: null,
  uuid: `GPU-ABCDEF0${index}-0000-0000-0000-000000000000`,
  busId: `00000000:${(0x1a + index).toString(16)}:00.0`,
  architecture: "9.0",
  memoryMiB: 1,
  mig: mig
    ? {
      enabled: true,
      devices: [
        {
          index: 0,
          uuid: `MIG-AAAA000${index}-0000-0000-0000-000000000000`,
          gpuInstance: 1,
          computeInstance: 0,
          memoryMiB: 1,
        },
        {
          index: 2,
          uuid: `MIG-BBBB000${index}-0000-0000-0000-000000000000`,
          gpuInstance: 5,
          computeInstance: 1,
          memoryMiB: 1,
        },
      ],
    }
    : { enabled: false, devices: [] },
});

const inv: Inventory = {
  driver: { version: "580.95.05", cudaVersion: "13.0", nvmlVersion: null },
  source: "nvml",
  devices: [gpu(0), gpu(1, true), gpu(2)],
};

/** A selection as compact strings: GPU indices, then `g:m` MIG pairs. */
function ids(s: Selection): string[] {
  return [...s.gpus.map((g) => String(g.index)), ...s.migs.map((m) => `${m.gpu.index}:${m.mig.index}`)];
}
const sel = (v: string | undefined) => ids(selectDevices(parseVisibleDevices(v), inv));

Deno.test("parseVisibleDevices() tells void, none, all and lists apart", () => {
  assertEquals(parseVisibleDevices(undefined), { kind: "void" });
  assertEquals(parseVisibleDevices(""), { kind: "void" });
  assertEquals(parseVisibleDevices(" , "), { kind: "void" });
  assertEquals(parseVisibleDevices("void"), { kind: "void" });
  assertEquals(parseVisibleDevices("none"), { kind: "none" });
  assertEquals(parseVisibleDevices("ALL"), { kind: "all" });
  assertEquals(parseVisibleDevices("0,all"), { kind: "all" });
  assertEquals(parseVisibleDevices(" 0 , 2 "), { kind: "list", ids: ["0", "2"] });
  // As NVIDIA reads them: a void anywhere is no GPU container; otherwise the first all or none decides.
  assertEquals(parseVisibleDevices("none,0"), { kind: "none" });
  assertEquals(parseVisibleDevices("0,void"), { kind: "void" });
});

Deno.test("selectDevices() resolves every form of the grammar", () => {
  assertEquals(sel(undefined), []);
  assertEquals(sel("none"), []);
  assertEquals(sel("all"), ["0", "1", "2", "1:0", "1:2"]);
  assertEquals(sel("2,0"), ["0", "2"]); // host order, de-duplicated
  assertEquals(sel("0,0,0"), ["0"]);
  assertEquals(sel("gpu-abcdef02-0000-0000-0000-000000000000"), ["2"]); // UUIDs in any case
  assertEquals(sel("GPU-ABCDEF01-0000-0000-0000-000000000000"), ["1"]);
  assertEquals(sel("00000000:1b:00.0"), ["1"]);
  assertEquals(sel("0000:1C:00.0"), ["2"]);
  assertEquals(sel("1a:00.0"), ["0"]);
  assertEquals(sel("MIG-bbbb0001-0000-0000-0000-000000000000"), ["1:2"]);
  assertEquals(sel("MIG-GPU-ABCDEF01-0000-0000-0000-000000000000/1/0"), ["1:0"]); // the pre-470 form
  assertEquals(sel("1:2,1:0"), ["1:0", "1:2"]);
  assertEquals(sel("0,1:0,GPU-ABCDEF02-0000-0000-0000-000000000000"), ["0", "2", "1:0"]);
});

Deno.test("selectDevices() names an unknown device and what the host has", () => {
  const err = (v: string) => assertThrows(() => selectDevices(parseVisibleDevices(v), inv), GpuctlError);
  const host = "this host has GPUs 0, 1, 2 and MIG devices 1:0, 1:2";
  assertEquals(err("7").message, `NVIDIA_VISIBLE_DEVICES: unknown device "7" (${host})`);
  assertEquals(err("0,17").message, `NVIDIA_VISIBLE_DEVICES: unknown device "17" (${host})`);
  assertEquals(err("GPU-nope").why, `unknown device "GPU-nope" (${host})`);
  assertEquals(err("MIG-nope").why, `unknown device "MIG-nope" (${host})`);
  assertEquals(err("1:1").why, `unknown device "1:1" (${host})`);
  assertEquals(err("0:0").why, `unknown device "0:0" (GPU 0 does not have MIG enabled; ${host})`);
  assertEquals(err("5:0").why, `unknown device "5:0" (${host})`);
  assertEquals(err("0000:99:00.0").why, `unknown device "0000:99:00.0" (${host})`);
  assertEquals(
    err("MIG-GPU-ABCDEF01-0000-0000-0000-000000000000/9/9").why,
    `unknown device "MIG-GPU-ABCDEF01-0000-0000-0000-000000000000/9/9" (${host})`,
  );
  assertEquals(
    err("gpu0").why,
    `unknown device "gpu0" (not an index, GPU-/MIG- UUID, PCI bus id or <gpu>:<mig> pair; ${host})`,
  );
  assertEquals(
    err("-1").why,
    `unknown device "-1" (not an index, GPU-/MIG- UUID, PCI bus id or <gpu>:<mig> pair; ${host})`,
  );
  const e = assertThrows(() => selectDevices(parseVisibleDevices("3"), inv, "--device"), GpuctlError);
  assertEquals(e.what, "--device");
  const none = assertThrows(
    () => selectDevices(parseVisibleDevices("0"), { ...inv, devices: [] }),
    GpuctlError,
  );
  assertEquals(none.why, `unknown device "0" (this host has no GPUs)`);
});
