/**
 * Plans kept beside the driver snapshot (flows/plan_cache.ts): a request shape planned once is loaded after, the
 * same plan; an entry is never used after a driver change, a driver file replaced, device nodes changed, another
 * configuration or another request shape, nor when it is not gpuctl's own file; a failed request is never kept;
 * a MIG device named by UUID never is; and the entries stay bounded.
 */
import { assert, assertEquals } from "../assert.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { copyDriver, fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl, tempDir } from "../helpers.ts";
import { readConfig } from "../../config/read.ts";
import { parseSpec } from "../../oci/spec.ts";
import { type GpuRequest, readRequest } from "../../request/request.ts";
import { keptPlan, MAX_ENTRIES, planThroughCache, shapeOf } from "../../flows/plan_cache.ts";
import { planForRequest } from "../../flows/prepare.ts";
import { snapshotFacts } from "../../snapshot/facts.ts";
import { nullLogger } from "../../log/log.ts";

Deno.test("plan cache: kept per request shape, used while all it was made from holds, never after a change", async () => {
  using tmp = tempDir();
  const d = await copyDriver(await fakeDriver(standardSpec(2, { mig: false })), `${tmp.path}/driver`);
  const cache = `${tmp.path}/cache`;
  const file = `${tmp.path}/gpuctl.jsonc`;
  Deno.writeTextFileSync(file, fixtureConfig(d, { cacheDir: cache }));
  // The snapshot, built by a gpuctl process with the fake NVML.
  const built = await runGpuctl(["list", "--json"], { env: { GPUCTL_CONFIG: file, ...d.env } });
  assertEquals(built.code, 0, built.stderr);
  const { config } = await readConfig(file);
  const request = (env: string[]): GpuRequest =>
    readRequest(parseSpec(JSON.stringify({ process: { env } }), "config.json"), config)!;
  const all = request(["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]);
  const one = request(["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"]);
  const entries = () => [...Deno.readDirSync(cache)].map((e) => e.name).filter((n) => n.startsWith("plan-"));
  const why = (r: ReturnType<typeof keptPlan>) => ("why" in r ? r.why : "kept");

  assertEquals(why(keptPlan(config, shapeOf(all))), "absent");
  const planned = await planThroughCache(config, all, nullLogger, file);
  const fresh = await planForRequest(
    config,
    all,
    () => {},
    snapshotFacts(config, { configPath: file, log: nullLogger }),
  );
  assertEquals(planned, fresh.plan);
  assertEquals(entries().length, 1);
  assertEquals((Deno.statSync(`${cache}/${entries()[0]}`).mode ?? 0) & 0o777, 0o600);
  const kept = keptPlan(config, shapeOf(all));
  assert("plan" in kept, why(kept));
  assertEquals(kept.plan, fresh.plan, "the kept plan is the plan");
  assertEquals(await planThroughCache(config, all, nullLogger, file), fresh.plan);

  // Another request shape has its own entry; one planted under its name is refused.
  assertEquals(why(keptPlan(config, shapeOf(one))), "absent");
  const onePlan = await planThroughCache(config, one, nullLogger, file);
  assertEquals(onePlan.gpus.map((g) => g.index), [1]);
  assertEquals(entries().length, 2);
  const [a, b] = entries();
  const textA = Deno.readTextFileSync(`${cache}/${a}`);
  Deno.writeTextFileSync(`${cache}/${b}`, textA);
  Deno.writeTextFileSync(`${cache}/${a}`, textA);
  const planted = [keptPlan(config, shapeOf(all)), keptPlan(config, shapeOf(one))].map(why).sort();
  assertEquals(planted, ["another request shape", "kept"]);
  // Each made again, and replaced.
  await planThroughCache(config, one, nullLogger, file);
  await planThroughCache(config, all, nullLogger, file);
  assertEquals([keptPlan(config, shapeOf(all)), keptPlan(config, shapeOf(one))].map(why), ["kept", "kept"]);

  // A driver upgrade (the kernel module's version): the key changes.
  const v = `${d.proc}/driver/nvidia/version`;
  const version = Deno.readTextFileSync(v);
  Deno.writeTextFileSync(v, version.replaceAll("580.95.05", "580.95.06"));
  assertEquals(why(keptPlan(config, shapeOf(all))), "the host or configuration changed");
  Deno.writeTextFileSync(v, version);
  assertEquals(why(keptPlan(config, shapeOf(all))), "kept");

  // A driver file replaced behind an unchanged linker cache.
  const lib = `${d.root}/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05`;
  const before = Deno.statSync(lib).mtime!;
  Deno.utimeSync(lib, new Date(), new Date(before.getTime() + 5000));
  assertEquals(why(keptPlan(config, shapeOf(all))), "a driver file changed");
  Deno.utimeSync(lib, new Date(), before);
  assertEquals(why(keptPlan(config, shapeOf(all))), "kept");

  // A device node gone (or made): the nodes are read again.
  const node = `${d.dev}/nvidia1`;
  Deno.renameSync(node, `${node}.away`);
  assertEquals(why(keptPlan(config, shapeOf(all))), "the device nodes changed");
  Deno.renameSync(`${node}.away`, node);
  assertEquals(why(keptPlan(config, shapeOf(all))), "kept");

  // Another configuration: not this one's entry.
  assertEquals(why(keptPlan({ ...config, cudaCompat: !config.cudaCompat }, shapeOf(all))), "absent");

  // Not gpuctl's own file: corrupt, or readable by others.
  const name = entries().find((n) =>
    (JSON.parse(Deno.readTextFileSync(`${cache}/${n}`)).shape as string).includes('"kind":"all"')
  )!;
  const allText = Deno.readTextFileSync(`${cache}/${name}`);
  Deno.writeTextFileSync(`${cache}/${name}`, "{not json");
  assertEquals(why(keptPlan(config, shapeOf(all))), "corrupt");
  Deno.writeTextFileSync(`${cache}/${name}`, allText);
  Deno.chmodSync(`${cache}/${name}`, 0o644);
  assertEquals(why(keptPlan(config, shapeOf(all))), "not a private regular file of this user's; ignored");
  Deno.chmodSync(`${cache}/${name}`, 0o600);
  assertEquals(why(keptPlan(config, shapeOf(all))), "kept");

  // A failed request is never kept; nor is a MIG device named by UUID (NVML is asked every time).
  const bad = request(["NVIDIA_VISIBLE_DEVICES=7"]);
  const count = entries().length;
  const refused = await planThroughCache(config, bad, nullLogger, file).then(() => null, (e) => e);
  assert(refused instanceof GpuctlError, String(refused));
  assertEquals(entries().length, count);
  assertEquals(
    why(
      keptPlan(config, shapeOf(request(["NVIDIA_VISIBLE_DEVICES=MIG-00000000-1111-2222-3333-444455556666"]))),
    ),
    "a MIG device named by UUID",
  );

  // Bounded: past the limit, the old entries go before a new one is written.
  for (let i = 0; i < MAX_ENTRIES; i++) {
    Deno.writeTextFileSync(`${cache}/plan-${i.toString(16).padStart(16, "0")}.json`, "{}", { mode: 0o600 });
  }
  await planThroughCache(config, request(["NVIDIA_VISIBLE_DEVICES=0"]), nullLogger, file);
  assertEquals(entries().length, 1);
});
