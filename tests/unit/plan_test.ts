import { assert, assertEquals, assertThrows } from "../assert.ts";
import { buildPlan, type PlanInput, roleText } from "../../plan/plan.ts";
import { preparePlan } from "../../flows/prepare.ts";
import { parseConfig } from "../../config/config.ts";
import { locateDriverFiles } from "../../driver/locate.ts";
import { readHostDevices } from "../../devices/nodes.ts";
import { parseVisibleDevices, selectDevices } from "../../devices/select.ts";
import { discover } from "../../devices/discover.ts";
import { Registry } from "../../plugins/registry.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";

async function input(caps: string, devices = "all"): Promise<PlanInput> {
  const d = await fakeDriver(standardSpec(2));
  const config = parseConfig(fixtureConfig(d), "test");
  const registry = new Registry();
  const inventory = discover(config, "nvml");
  return {
    capabilities: registry.resolve(caps),
    selection: selectDevices(parseVisibleDevices(devices), inventory),
    registry,
    files: locateDriverFiles(config, registry, inventory.driver.version),
    host: readHostDevices(config),
  };
}

Deno.test("buildPlan() is pure: the same input gives the same plan and is left unchanged", async () => {
  const i = await input("all");
  const before = JSON.stringify(i.files) + JSON.stringify(i.host);
  assertEquals(buildPlan(i), buildPlan(i));
  assertEquals(JSON.stringify(i.files) + JSON.stringify(i.host), before);
});

Deno.test("buildPlan() links each SONAME to its library and adds the capabilities' links whose target is there", async () => {
  const p = buildPlan(await input("compute,graphics,compat32"));
  const links = p.symlinks.map((s) => `${s.libraryDir}/${s.link} -> ${s.target}`);
  for (
    const l of [
      "lib/libcuda.so.1 -> libcuda.so.580.95.05",
      "lib32/libcuda.so.1 -> libcuda.so.580.95.05",
      "lib/libcuda.so -> libcuda.so.1",
      "lib32/libcuda.so -> libcuda.so.1",
      "lib/libGLX_nvidia.so.0 -> libGLX_nvidia.so.580.95.05",
      "lib/libGLX_indirect.so.0 -> libGLX_nvidia.so.0",
    ]
  ) assert(links.includes(l), `${l} in ${links.join(", ")}`);
  // Libraries whose SONAME is the full version need no link.
  assertEquals(links.some((l) => l.startsWith("lib/libnvidia-glcore.so.580.95.05 ->")), false);
  assertEquals(p.libraryDirs, ["lib", "lib32"]);
  // No 32-bit library without compat32.
  const p64 = buildPlan(await input("compute,graphics"));
  assertEquals(p64.mounts.some((m) => m.libraryDir === "lib32"), false);
  assertEquals(p64.libraryDirs, ["lib"]);
});

Deno.test("buildPlan() gives mounts their options and device nodes the host's major, minor and mode", async () => {
  const p = buildPlan(await input("utility,compute", "0"));
  const lib = p.mounts.find((m) => m.kind === "library")!;
  assertEquals(lib.options, ["ro", "nosuid", "nodev", "bind"]);
  assertEquals(p.mounts.find((m) => m.kind === "ipc")!.options, ["nosuid", "nodev", "noexec", "bind"]);
  const proc = p.mounts.filter((m) => m.kind === "proc");
  assertEquals(proc.map((m) => m.containerPath), ["/proc/driver/nvidia/gpus/0000:10:00.0"]);
  assertEquals(
    p.deviceNodes.map((n) => [n.path, n.major, n.minor, n.fileMode, roleText(n.role)]),
    [
      ["/dev/nvidiactl", 195, 255, 0o666, "control"],
      ["/dev/nvidia-uvm", 508, 0, 0o666, "compute"],
      ["/dev/nvidia-uvm-tools", 508, 1, 0o666, "compute"],
      ["/dev/nvidia0", 195, 0, 0o666, "gpu 0"],
    ],
  );
});

Deno.test("buildPlan() fails without /dev/nvidiactl, and makes a missing GPU node from /proc/devices with a warning", async () => {
  const i = await input("utility", "all");
  const noCtl = { ...i, host: { ...i.host, nodes: { ...i.host.nodes } } };
  delete noCtl.host.nodes["/dev/nvidiactl"];
  assertEquals(
    assertThrows(() => buildPlan(noCtl), GpuctlError).message,
    "/dev/nvidiactl: the host has no such character device (is the nvidia kernel module loaded?)",
  );
  const noGpu0 = { ...i, host: { ...i.host, nodes: { ...i.host.nodes } } };
  delete noGpu0.host.nodes["/dev/nvidia0"];
  const p = buildPlan(noGpu0);
  const n = p.deviceNodes.find((x) => x.path === "/dev/nvidia0")!;
  assertEquals([n.hostPath, n.major, n.minor], [null, 195, 0]);
  assertEquals(p.warnings, [
    "/dev/nvidia0 is missing on the host; it will be created from major 195, minor 0",
  ]);
  const noMajor = { ...noGpu0, host: { ...noGpu0.host, majors: {} } };
  assertEquals(
    assertThrows(() => buildPlan(noMajor), GpuctlError).message,
    "GPU 0: /dev/nvidia0 is missing and /proc/devices has no nvidia major to create it from",
  );
});

Deno.test("preparePlan() refuses a bad capability before touching NVML", async () => {
  const d = await fakeDriver({ ...standardSpec(1), failInit: 18 });
  const config = parseConfig(fixtureConfig(d), "test");
  const e = await preparePlan(config, { devices: { kind: "all" }, capabilities: "bogus" }).then(
    () => assert(false, "preparePlan() should have failed"),
    (e: unknown) => e as GpuctlError,
  );
  assert(e instanceof GpuctlError, String(e));
  assertEquals(e.what, "NVIDIA_DRIVER_CAPABILITIES");
});
