/**
 * One request, three ways of applying it — the prestart hook (Docker's --gpus), the shim's spec mode, and the CDI
 * spec gpuctl generates, applied by gpuctl's runtime — and one container view: the same nodes, mounts, library
 * links, linker cache and /proc/driver/nvidia, inside a real container under runc.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl, tempDir } from "../helpers.ts";
import {
  gpuctlEnv,
  gpuctlEnvList,
  hookLauncher,
  makeBundle,
  runcLifecycle,
  runcRun,
  runtimeLauncher,
} from "./bundle.ts";

const VIEW = [
  "ls /dev | grep nvidia | sort",
  "nvml-probe -L",
  "ls -R /proc/driver",
  "grep ModifyDeviceFiles /proc/driver/nvidia/params",
  "ldconfig -p | grep -E 'nvidia|cuda' | sort",
  "awk '{print $5}' /proc/self/mountinfo | grep -E 'nvidia|cuda|firmware|mps|persistenced|/proc/driver' | sort",
  "ls -l /usr/lib/x86_64-linux-gnu | grep -- '->' | awk '{print $9, $10, $11}' | sort",
].join("; echo ==; ");

Deno.test("renderings: the hook, the shim and the CDI spec give a container the same view", async () => {
  using tmp = tempDir();
  const d = await fakeDriver(standardSpec(2));
  const config = `${tmp.path}/gpuctl.jsonc`;
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, {
      cacheDir: `${tmp.path}/cache`,
      cdiSpecDirs: [`${tmp.path}/cdi`],
      // The test's own vendor, named from the environment below as gpuctl's own kind would be.
      cdiKinds: ["example.test/gpu"],
      hookPath: hookLauncher(tmp.path),
    }),
  );
  const g = await runGpuctl([
    "cdi",
    "generate",
    "--vendor",
    "example.test",
    "--capabilities",
    "compute,utility",
    "--output",
    `${tmp.path}/cdi/gpuctl.json`,
  ], { env: gpuctlEnv(config) });
  assertEquals(g.code, 0, g.stderr);
  const shim = runtimeLauncher(tmp.path, gpuctlEnv(config));
  const env = ["NVIDIA_DRIVER_CAPABILITIES=compute,utility"];
  const views: Record<string, string> = {};
  const hook = await makeBundle(`${tmp.path}/hook`, {
    debian: true,
    args: ["/bin/sh", "-c", VIEW],
    env: [...env, "NVIDIA_VISIBLE_DEVICES=0"],
    hook: { env: gpuctlEnvList(config) },
  });
  const spec = await makeBundle(`${tmp.path}/spec`, {
    debian: true,
    args: ["/bin/sh", "-c", VIEW],
    env: [...env, "NVIDIA_VISIBLE_DEVICES=0"],
  });
  const cdi = await makeBundle(`${tmp.path}/cdi-bundle`, {
    debian: true,
    args: ["/bin/sh", "-c", VIEW],
    env: [...env, "NVIDIA_VISIBLE_DEVICES=example.test/gpu=0"],
  });
  for (
    const [name, run] of [["hook", () => runcRun(hook)], ["spec", () => runcLifecycle(spec, shim)], [
      "cdi",
      () => runcLifecycle(cdi, shim),
    ]] as const
  ) {
    const r = await run();
    assertEquals(r.code, 0, `${name}: ${r.stderr}`);
    views[name] = r.stdout;
  }
  assertStringIncludes(views.hook!, "GPU 0: NVIDIA H100 80GB HBM3");
  assertStringIncludes(views.hook!, "libcuda.so.1 -> libcuda.so.580.95.05");
  assertEquals(views.spec, views.hook, "the shim's spec mode and the hook");
  assertEquals(views.cdi, views.hook, "the CDI spec through gpuctl-runtime and the hook");
});
