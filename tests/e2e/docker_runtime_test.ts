/**
 * The runtime shim behind a real dockerd: registered with --add-runtime, and through a daemon.json written by
 * `gpuctl configure docker`, in spec mode and in hook mode.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl } from "../helpers.ts";
import { gpuctlEnv, hookLauncher, runtimeLauncher, writeDebugConfig } from "./bundle.ts";
import { Dockerd } from "./docker.ts";

const IMAGE = "gpuctl-test/busybox-glibc";
const GPU_ENV = ["-e", "NVIDIA_VISIBLE_DEVICES=all", "-e", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"];
const gpusSeen = (out: string) => out.split("\n").filter((l) => /^GPU \d+: /.test(l)).length;

Deno.test("docker with gpuctl-runtime: GPU containers, untouched ones, refusals, lifecycle, 20 at once, hook mode", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-docker-rt-" });
  const d = await fakeDriver(standardSpec(3, { mig: false }));
  const specConfig = writeDebugConfig(`${dir}/spec.jsonc`, d, `${dir}/gpuctl.log`);
  const hook = hookLauncher(`${dir}/hook`);
  Deno.writeTextFileSync(`${dir}/hook.jsonc`, fixtureConfig(d, { mode: "hook", hookPath: hook }));
  const specShim = runtimeLauncher(`${dir}/spec`, gpuctlEnv(specConfig));
  const hookShim = runtimeLauncher(`${dir}/hookmode`, gpuctlEnv(`${dir}/hook.jsonc`));
  // daemon.json through gpuctl configure docker (two runtimes), --add-runtime for a third name.
  for (const [name, path] of [["gpu-configured", specShim], ["gpuhook", hookShim]]) {
    const c = await runGpuctl([
      "configure",
      "docker",
      "--config",
      `${dir}/daemon.json`,
      "--name",
      name!,
      "--runtime-path",
      path!,
    ]);
    assertEquals(c.code, 0, c.stderr);
  }
  const docker = await Dockerd.start(dir, {
    args: ["--config-file", `${dir}/daemon.json`, "--add-runtime", `gpu=${specShim}`],
  });
  try {
    await docker.importImage(IMAGE);
    const info = await docker.docker(["info", "--format", "{{json .Runtimes}}"]);
    for (const n of ["gpu", "gpu-configured", "gpuhook"]) assertStringIncludes(info.stdout, `"${n}"`);

    await t.step("--runtime gpu (--add-runtime): the fake GPUs are there", async () => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime",
        "gpu",
        ...GPU_ENV,
        IMAGE,
        "sh",
        "-c",
        "nvml-probe -L; nvidia-smi -L; ls /dev",
      ]);
      assertEquals(gpusSeen(r.stdout), 6, r.stdout);
      assertStringIncludes(r.stdout, "nvidia2");
    });
    await t.step("--runtime gpu-configured (daemon.json by gpuctl configure docker)", async () => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime",
        "gpu-configured",
        "-e",
        "NVIDIA_VISIBLE_DEVICES=1",
        IMAGE,
        "nvml-probe",
        "-L",
      ]);
      assertEquals(r.stdout.trim(), `GPU 0: NVIDIA H100 80GB HBM3 (UUID: ${d.spec.gpus[1]!.uuid})`);
    });
    await t.step("without NVIDIA_* env the container is untouched", async () => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime",
        "gpu",
        IMAGE,
        "sh",
        "-c",
        "ls /dev; ls /usr/bin /usr/lib 2>&1; true",
      ]);
      assertEquals(r.stdout.includes("nvidia"), false, r.stdout);
    });
    await t.step("a bad request fails, and docker shows gpuctl's message", async () => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime",
        "gpu",
        "-e",
        "NVIDIA_VISIBLE_DEVICES=9",
        IMAGE,
        "echo",
        "STARTED",
      ], { check: false });
      assert(r.code !== 0);
      assertEquals(r.stdout.includes("STARTED"), false);
      assertStringIncludes(
        r.stderr.replaceAll('\\"', '"'),
        'gpuctl: NVIDIA_VISIBLE_DEVICES: unknown device "9" (this host has GPUs 0, 1, 2)',
      );
    });
    await t.step("exec, kill, stop, start and rm go through the shim to runc", async () => {
      const id = (await docker.docker([
        "run",
        "-d",
        "--runtime",
        "gpu",
        "-e",
        "NVIDIA_VISIBLE_DEVICES=0",
        IMAGE,
        "sleep",
        "300",
      ])).stdout.trim();
      const ex = await docker.docker(["exec", id, "nvml-probe", "-L"]);
      assertEquals(gpusSeen(ex.stdout), 1);
      await docker.docker(["kill", id]);
      assertEquals((await docker.docker(["inspect", "-f", "{{.State.Running}}", id])).stdout.trim(), "false");
      await docker.docker(["start", id]);
      assertEquals((await docker.docker(["inspect", "-f", "{{.State.Running}}", id])).stdout.trim(), "true");
      await docker.docker(["stop", "-t", "1", id]);
      await docker.docker(["rm", id]);
      const gone = await docker.docker(["inspect", id], { check: false });
      assert(gone.code !== 0);
    });
    await t.step("20 GPU containers at once all start and see their GPUs", async () => {
      const runs = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          docker.docker([
            "run",
            "--rm",
            "--runtime",
            "gpu",
            "-e",
            `NVIDIA_VISIBLE_DEVICES=${i % 3}`,
            IMAGE,
            "nvml-probe",
            "-L",
          ], {
            check: false,
            timeoutMs: 240_000,
          })),
      );
      runs.forEach((r, i) => {
        assertEquals(r.code, 0, `container ${i}: ${r.stderr}`);
        assertEquals(r.stdout.trim(), `GPU 0: NVIDIA H100 80GB HBM3 (UUID: ${d.spec.gpus[i % 3]!.uuid})`);
      });
    });
    await t.step("--runtime gpuhook (hook mode): the prestart hook does the work", async () => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime",
        "gpuhook",
        ...GPU_ENV,
        IMAGE,
        "nvml-probe",
        "-L",
      ]);
      assertEquals(gpusSeen(r.stdout), 3, r.stdout);
    });
  } finally {
    await docker.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
