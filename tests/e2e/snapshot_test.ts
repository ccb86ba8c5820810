/**
 * The driver snapshot: read when current, rebuilt once (and the log says why) after every change that could make
 * it wrong, never read when it is not gpuctl's own; and NVML behind a timeout and out of the way of its crashes.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { copyDriver, fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { logLines, runGpuctl, tempDir } from "../helpers.ts";

async function setup(tmp: string) {
  const d = await copyDriver(await fakeDriver(standardSpec(2)), `${tmp}/driver`);
  const config = `${tmp}/gpuctl.jsonc`;
  const write = (extra: Record<string, unknown> = {}) =>
    Deno.writeTextFileSync(config, fixtureConfig(d, { logFile: `${tmp}/gpuctl.log`, ...extra }));
  write();
  const list = async (device = "all") => {
    const r = await runGpuctl(["list", "--device", device, "--json"], {
      env: { GPUCTL_CONFIG: config, ...d.env },
    });
    const rebuilt = logLines(`${tmp}/gpuctl.log`).filter((l) => l.msg === "driver snapshot rebuilt");
    Deno.writeTextFileSync(`${tmp}/gpuctl.log`, "");
    return {
      ...r,
      rebuilt: rebuilt.map((l) => l.why as string),
      plan: r.code === 0 ? JSON.parse(r.stdout) : null,
    };
  };
  const gpus = () => JSON.parse(Deno.readTextFileSync(d.gpuJson));
  const setGpus = (g: unknown) => Deno.writeTextFileSync(d.gpuJson, JSON.stringify(g));
  return { d, list, write, gpus, setGpus, cache: `${d.dir}/snapshots` };
}

const uuids = (plan: { gpus: { uuid: string }[] }) => plan.gpus.map((g) => g.uuid);

Deno.test("snapshot: built once, then used; rebuilt after a driver upgrade, a GPU removed, MIG or config changes", async () => {
  using tmp = tempDir();
  const { d, list, write, gpus, setGpus, cache } = await setup(tmp.path);
  const first = await list();
  assertEquals(first.code, 0, first.stderr);
  assertEquals(first.rebuilt, ["no snapshot yet"]);
  const files = [...Deno.readDirSync(cache)].map((e) => e.name);
  assertEquals(files.length, 1);
  assertEquals((Deno.statSync(cache).mode ?? 0) & 0o777, 0o700);
  assertEquals((Deno.statSync(`${cache}/${files[0]}`).mode ?? 0) & 0o777, 0o600);

  // Used: NVML is not asked (a broken NVML config would show), and the plan is the same.
  const json = gpus();
  setGpus({ ...json, failInit: 18 }); // an NVML that fails, with no fall-back to /proc
  const second = await list();
  assertEquals([second.code, second.rebuilt], [0, []], second.stderr);
  assertEquals(second.plan, first.plan);
  setGpus(json);

  // A driver upgrade: the kernel module's version and the libraries' (ldconfig rewrites the cache).
  const v = `${d.proc}/driver/nvidia/version`;
  Deno.writeTextFileSync(v, Deno.readTextFileSync(v).replaceAll("580.95.05", "580.95.06"));
  setGpus({ ...json, driverVersion: "580.95.06" });
  const upgraded = await list();
  assertEquals(upgraded.rebuilt, ["the driver changed"]);
  assertEquals(upgraded.plan.driverVersion, "580.95.06");
  assertEquals(
    upgraded.plan.mounts.filter((m: { kind: string }) => m.kind === "library").length,
    0,
    "no library of the new version",
  );
  Deno.writeTextFileSync(v, Deno.readTextFileSync(v).replaceAll("580.95.06", "580.95.05"));
  setGpus(json);
  assertEquals((await list()).rebuilt, ["the driver changed"]);

  // A GPU removed: the kernel's GPU directories and NVML both lose it.
  Deno.removeSync(`${d.proc}/driver/nvidia/gpus/0000:11:00.0`, { recursive: true });
  setGpus({ ...json, gpus: [json.gpus[0]] });
  const removed = await list();
  assertEquals(removed.rebuilt, ["the GPUs changed"]);
  assertEquals(uuids(removed.plan), [json.gpus[0].uuid]);
  const gone = await list(json.gpus[1].uuid);
  assert(gone.code !== 0, "the removed GPU is refused");

  // MIG instances made on a GPU.
  Deno.mkdirSync(`${d.proc}/driver/nvidia/capabilities/gpu0/mig/gi1/ci0`, { recursive: true });
  assertEquals((await list()).rebuilt, ["MIG was reconfigured"]);

  // The driver's libraries changed without a version change (ldconfig ran again).
  const cacheFile = `${d.root}/etc/ld.so.cache`;
  Deno.writeFileSync(cacheFile, Deno.readFileSync(cacheFile));
  assertEquals((await list()).rebuilt, ["the driver's libraries changed"]);

  // A configuration change.
  write({ binaryDirs: ["/usr/bin"] });
  assertEquals((await list()).rebuilt, ["no snapshot for this configuration yet"]);
  assertEquals((await list()).rebuilt, []);
});

Deno.test("snapshot: a MIG device named by UUID is checked against NVML, never a snapshot", async () => {
  using tmp = tempDir();
  const { list, gpus, setGpus } = await setup(tmp.path);
  const json = gpus();
  const old = json.gpus[1].mig.devices[0].uuid;
  assertEquals((await list(old)).code, 0);
  // The instance destroyed and made again in the same slot: a new UUID, and nothing in /proc says so.
  json.gpus[1].mig.devices[0].uuid = "MIG-99999999-aaaa-bbbb-cccc-dddd00000000";
  setGpus(json);
  const stale = await list(old);
  assert(stale.code !== 0, "the old UUID must not be given");
  assertStringIncludes(stale.stderr, `unknown device "${old}"`);
  const fresh = await list("MIG-99999999-aaaa-bbbb-cccc-dddd00000000");
  assertEquals(fresh.code, 0, fresh.stderr);
  assertEquals(fresh.plan.migs[0].uuid, "MIG-99999999-aaaa-bbbb-cccc-dddd00000000");
});

Deno.test("snapshot: a corrupt, foreign-owned or group-writable one is never read, and is rebuilt", async () => {
  using tmp = tempDir();
  const { list, cache } = await setup(tmp.path);
  assertEquals((await list()).rebuilt, ["no snapshot yet"]);
  const file = `${cache}/${[...Deno.readDirSync(cache)][0]!.name}`;
  Deno.writeTextFileSync(file, "{ not json");
  assertEquals((await list()).rebuilt, ["the snapshot file is corrupt"]);
  // Rewritten with another inventory by someone else: not this user's own, so not read.
  const forged = JSON.parse(Deno.readTextFileSync(file));
  forged.inventory.devices = [];
  Deno.writeTextFileSync(file, JSON.stringify(forged));
  Deno.chownSync(file, 65534, 65534);
  const foreign = await list();
  assertEquals(foreign.rebuilt, ["the snapshot file is not a private regular file of this user's; ignored"]);
  assertEquals(foreign.plan.gpus.length, 2);
  Deno.chmodSync(cache, 0o777);
  assertEquals((await list()).rebuilt, [`${cache} is not this user's own, or others can write it`]);
  Deno.chmodSync(cache, 0o700);
});

Deno.test("NVML behind a timeout and in a child process: a hang or a crash is one line, fast", async () => {
  using tmp = tempDir();
  for (
    const [fault, line] of [
      [
        { call: "nvmlDeviceGetCount_v2", kind: "hang" },
        "gpuctl: NVML: did not answer within 1 s (stuck in nvmlDeviceGetCount_v2): a GPU may have fallen off the bus",
      ],
      [{ call: "nvmlInit_v2", kind: "crash" }, "gpuctl: NVML: crashed (SIGSEGV) in nvmlInit_v2: check dmesg"],
    ] as const
  ) {
    const d = await fakeDriver({ ...standardSpec(1), fault });
    const config = `${tmp.path}/${fault.kind}.jsonc`;
    Deno.writeTextFileSync(
      config,
      fixtureConfig(d, { nvmlTimeout: 1, cacheDir: `${tmp.path}/cache-${fault.kind}` }),
    );
    for (const args of [["info"], ["list"]]) {
      const t0 = performance.now();
      const r = await runGpuctl(args, { env: { GPUCTL_CONFIG: config } });
      assertEquals(r.code, 1, `${args}: ${r.stderr}`);
      assertStringIncludes(r.stderr, line);
      assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert(performance.now() - t0 < 8000, `${args} took ${performance.now() - t0} ms`);
    }
  }
});

const programs = (plan: { mounts: { kind: string; containerPath: string }[] }) =>
  plan.mounts.filter((m) => m.kind === "binary").map((m) => m.containerPath);

Deno.test("snapshot: a driver program replaced by a script, or a library removed, with ld.so.cache unchanged, is noticed", async () => {
  using tmp = tempDir();
  const { d, list } = await setup(tmp.path);
  const first = await list();
  assertEquals(first.rebuilt, ["no snapshot yet"]);
  assert(programs(first.plan).includes("/usr/bin/nvidia-smi"));
  const cache = `${d.root}/etc/ld.so.cache`, before = Deno.statSync(cache);
  // An administrator's wrapper script in place of the program (a partial upgrade leaves such things too).
  const smi = `${d.root}/usr/bin/nvidia-smi`;
  Deno.removeSync(smi);
  Deno.writeTextFileSync(smi, '#!/bin/sh\nexec /opt/real/nvidia-smi "$@"\n', { mode: 0o755 });
  const wrapped = await list();
  assertEquals(wrapped.code, 0, wrapped.stderr);
  assertEquals(wrapped.rebuilt, [`a driver file changed (${smi})`]);
  assertEquals(programs(wrapped.plan).includes("/usr/bin/nvidia-smi"), false, "a script is never mounted");
  // A library removed.
  const cfg = [...Deno.readDirSync(`${d.root}/usr/lib/x86_64-linux-gnu`)].find((e) =>
    e.name.startsWith("libnvidia-cfg.so.5")
  )!;
  Deno.removeSync(`${d.root}/usr/lib/x86_64-linux-gnu/${cfg.name}`);
  const removed = await list();
  assertEquals(removed.code, 0, removed.stderr);
  assertEquals(removed.rebuilt, [`a driver file changed (${d.root}/usr/lib/x86_64-linux-gnu/${cfg.name})`]);
  assertEquals(JSON.stringify(removed.plan).includes(cfg.name), false);
  assertEquals(Deno.statSync(cache).mtime, before.mtime, "the linker cache itself never changed");
  assertEquals((await list()).rebuilt, [], "then used again");
});

Deno.test("snapshot: two configurations used in turn each have their own, and neither rebuilds the other's", async () => {
  using tmp = tempDir();
  const { d, list, write, cache } = await setup(tmp.path);
  const a = () => write();
  // B finds no programs: its binaryDirs hold none.
  const b = () => write({ binaryDirs: ["/nonexistent"] });
  const seen: [string[], boolean][] = [];
  for (const [use, name] of [[a, "A"], [b, "B"], [a, "A"], [b, "B"], [a, "A"]] as const) {
    use();
    const r = await list();
    assertEquals(r.code, 0, `${name}: ${r.stderr}`);
    seen.push([r.rebuilt, programs(r.plan).includes("/usr/bin/nvidia-smi")]);
  }
  assertEquals(seen, [
    [["no snapshot yet"], true],
    [["no snapshot for this configuration yet"], false],
    [[], true],
    [[], false],
    [[], true],
  ]);
  assertEquals([...Deno.readDirSync(cache)].filter((e) => e.name.startsWith("snapshot-")).length, 2);
  void d;
});
