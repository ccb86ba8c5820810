/**
 * CDI containers served: a CDI spec whose createContainer hook is the installed nvidia-container-runtime-hook
 * front, under a real Podman. With `gpuctl serve` running the container gets its GPU, its library links, linker
 * cache and /proc view with no gpuctl process started ("gpuctl" here is a program that leaves a mark and fails);
 * with it stopped, the front runs gpuctl (and so, here, the container fails: never a container without its
 * edits).
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { bundleTo, FRONT_KINDS, FRONT_LABEL, logLines, runGpuctl, standInFronts } from "../helpers.ts";
import { readConfig } from "../../config/read.ts";
import { gpuctlEnv, startServe } from "./bundle.ts";
import { Podman } from "./podman.ts";

const IMAGE = "gpuctl-test/busybox-glibc";
const VIEW =
  "nvml-probe -L; echo ==; ls /proc/driver/nvidia/gpus; echo ==; ldconfig -p | grep -c libnvidia-ml";

for (const kind of FRONT_KINDS) {
  Deno.test(`gpuctl serve: a CDI container's hook is served (${FRONT_LABEL[kind]}), starting no gpuctl process; without the server, gpuctl runs`, async (t) => {
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-podman-" });
    const d = await fakeDriver(standardSpec(2, { mig: false }));
    const podman = new Podman(`${dir}/p`);
    const config = `${dir}/gpuctl.jsonc`;
    const log = `${dir}/gpuctl.log`;
    Deno.writeTextFileSync(
      config,
      fixtureConfig(d, { cacheDir: `${dir}/cache`, logFile: log, cdiSpecDirs: [podman.cdiDir] }),
    );
    const { config: cfg } = await readConfig(config);
    const fronts = await standInFronts(kind, dir, config, cfg);
    const hook = await fronts.hook();
    const ran = fronts.gpuctl.ran;
    const js = await bundleTo(`${dir}/gpuctl.js`);
    let server: Awaited<ReturnType<typeof startServe>> | null = null;
    try {
      const g = await runGpuctl([
        "cdi",
        "generate",
        "--hook-path",
        hook,
        "--output",
        `${podman.cdiDir}/nvidia.json`,
      ], {
        env: gpuctlEnv(config),
      });
      assertEquals(g.code, 0, g.stderr);
      await podman.importImage(IMAGE);
      server = await startServe(js, { GPUCTL_CONFIG: config }, `${dir}/cache/serve`);

      await t.step("served: its GPU, its /proc view and linker cache, and no gpuctl process", async () => {
        const r = await podman.run(["--device", "nvidia.com/gpu=1", IMAGE, "sh", "-c", VIEW]);
        const [probe, proc, cache] = r.stdout.split("==\n");
        assertEquals(probe!.split("\n").filter((l) => l.startsWith("GPU ")), [
          `GPU 0: ${d.spec.gpus[1]!.name} (UUID: ${d.spec.gpus[1]!.uuid})`,
        ]);
        assertEquals(proc, `${d.spec.gpus[1]!.busId.replace(/^0000/, "").toLowerCase()}\n`);
        assertEquals(cache!.trim(), "1", "the hook's linker cache");
        assertEquals(ran(), "", "gpuctl never ran");
        const line = logLines(log).findLast((l) => l.msg === "container edits made")!;
        assertEquals(line.pid, server!.pid, "made by the server");
      });

      await t.step(
        "the server stopped: the front runs gpuctl, whose failure fails the container",
        async () => {
          await server!.stop();
          server = null;
          const r = await podman.run(["--device", "nvidia.com/gpu=1", IMAGE, "true"], false);
          assert(r.code !== 0, "never a container without its edits");
          assertStringIncludes(ran(), "container-edits");
        },
      );
    } finally {
      await server?.stop();
      await podman.cleanup();
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
