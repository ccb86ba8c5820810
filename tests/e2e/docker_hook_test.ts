/**
 * Docker's own `--gpus` with gpuctl as `nvidia-container-runtime-hook` on dockerd's PATH: a real dockerd picks
 * the hook up and adds it as a prestart hook, exactly as it does for NVIDIA's.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { gpuctlEnv, hookLauncher, writeDebugConfig } from "./bundle.ts";
import { Dockerd } from "./docker.ts";

const IMAGE = "gpuctl-test/busybox-glibc";

Deno.test("docker run --gpus: all, a count, a device, and a bad request", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-docker-" });
  const d = await fakeDriver(standardSpec(3, { mig: false }));
  const config = writeDebugConfig(`${dir}/gpuctl.jsonc`, d, `${dir}/gpuctl.log`);
  hookLauncher(dir);
  const docker = await Dockerd.start(dir, {
    env: gpuctlEnv(config),
    pathDirs: [`${dir}/bin`],
  });
  try {
    await docker.importImage(IMAGE);
    const gpus = async (spec: string) => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--gpus",
        spec,
        IMAGE,
        "/bin/sh",
        "-c",
        "nvml-probe -L; ls /dev | grep nvidia; echo CAPS=$NVIDIA_DRIVER_CAPABILITIES",
      ], { check: false });
      return r;
    };
    await t.step("--gpus all sees every GPU", async () => {
      const r = await gpus("all");
      assertEquals(r.code, 0, r.stderr);
      for (const i of [0, 1, 2]) assertStringIncludes(r.stdout, `GPU ${i}: NVIDIA H100 80GB HBM3`);
      assertStringIncludes(r.stdout, "nvidiactl");
    });
    await t.step("--gpus 2 sees GPUs 0 and 1 only", async () => {
      const r = await gpus("2");
      assertEquals(r.code, 0, r.stderr);
      const uuids = r.stdout.split("\n").filter((l) => l.startsWith("GPU ")).map((l) =>
        /UUID: (\S+)\)/.exec(l)![1]
      );
      assertEquals(uuids, [d.spec.gpus[0]!.uuid, d.spec.gpus[1]!.uuid]);
      assertEquals(r.stdout.includes("nvidia2"), false);
    });
    await t.step('--gpus "device=1" sees GPU 1 only', async () => {
      const r = await gpus('"device=1"');
      assertEquals(r.code, 0, r.stderr);
      const uuids = r.stdout.split("\n").filter((l) => l.startsWith("GPU ")).map((l) =>
        /UUID: (\S+)\)/.exec(l)![1]
      );
      assertEquals(uuids, [d.spec.gpus[1]!.uuid]);
      assert(r.stdout.includes("nvidia1") && !r.stdout.includes("nvidia0\n"), r.stdout);
    });
    await t.step("a device the host lacks stops the container with gpuctl's message", async () => {
      const r = await gpus('"device=7"');
      assert(r.code !== 0);
      assertStringIncludes(
        r.stderr.replaceAll('\\"', '"'),
        'gpuctl: NVIDIA_VISIBLE_DEVICES: unknown device "7"',
      );
    });
    await t.step("without --gpus nothing is injected", async () => {
      const r = await docker.docker(["run", "--rm", IMAGE, "/bin/sh", "-c", "ls /dev"]);
      assertEquals(r.stdout.includes("nvidia"), false);
    });
  } finally {
    await docker.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
