/**
 * `default-runtime` set to gpuctl-runtime, as NVIDIA's guides set it: every container on the host goes through
 * it, and one without a GPU request must not start gpuctl at all. Installed from the bundle
 * (`deno run -A dist/gpuctl.js install --prefix DIR`), as a host without the compiled binary would.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { bundleTo, DENO, logLines, standInGpuctl, writeRuntimeFront } from "../helpers.ts";

import { defaultConfig } from "../../config/schema.ts";
import { Dockerd } from "./docker.ts";
import { startServe } from "./bundle.ts";

const IMAGE = "gpuctl-test/busybox-glibc";

Deno.test("docker, default-runtime gpuctl-runtime: plain containers never start gpuctl; GPU containers get their GPUs", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-docker-front-" });
  const d = await fakeDriver(standardSpec(2, { mig: false }));
  const config = `${dir}/gpuctl.jsonc`;
  const log = `${dir}/gpuctl.log`;
  Deno.writeTextFileSync(config, fixtureConfig(d, { cacheDir: `${dir}/cache`, logFile: log }));
  // The real install, from the bundle.
  const bundle = await bundleTo(`${dir}/gpuctl.js`);
  const inst = await new Deno.Command(DENO, {
    args: ["run", "-A", "--quiet", bundle, "install", "--prefix", `${dir}/bin`],
    env: { GPUCTL_CONFIG: config },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(inst.success, new TextDecoder().decode(inst.stderr));
  const front = Deno.readTextFileSync(`${dir}/bin/gpuctl-runtime`);
  assertStringIncludes(front, `${bundle}' 'runtime'`);
  assertStringIncludes(
    Deno.readTextFileSync(`${dir}/bin/nvidia-container-runtime-hook`),
    `${bundle}' 'hook'`,
  );
  // The default runtime: the same front, but "gpuctl" is a program that leaves a mark and fails, and the runtime
  // a spy that records each create before it runs runc.
  const { path: fail, ran } = standInGpuctl(dir);
  Deno.writeTextFileSync(
    `${dir}/spy`,
    `#!/bin/sh\nfor a do [ "$a" = create ] && echo create >> ${dir}/creates; done\nexec runc "$@"\n`,
    { mode: 0o755 },
  );
  writeRuntimeFront(`${dir}/bin/gpuctl-default`, {
    gpuctl: [fail],
    config: { ...defaultConfig(), runtimes: [`${dir}/spy`] },
    configFile: config,
  });
  const docker = await Dockerd.start(dir, {
    env: { GPUCTL_CONFIG: config },
    args: [
      "--add-runtime",
      `gpu=${dir}/bin/gpuctl-runtime`,
      "--add-runtime",
      `dflt=${dir}/bin/gpuctl-default`,
      "--default-runtime",
      "dflt",
    ],
  });
  try {
    await docker.importImage(IMAGE);
    await t.step("a plain container's whole lifecycle never starts gpuctl", async () => {
      const r = await docker.docker(["run", "--rm", IMAGE, "sh", "-c", "ls /dev; echo ok"]);
      assertStringIncludes(r.stdout, "ok");
      assertEquals(r.stdout.includes("nvidia"), false);
      const id = (await docker.docker(["run", "-d", IMAGE, "sleep", "300"])).stdout.trim();
      await docker.docker(["exec", id, "true"]);
      await docker.docker(["stop", "-t", "1", id]);
      await docker.docker(["start", id]);
      await docker.docker(["rm", "-f", id]);
      assertEquals(ran(), "", "gpuctl never ran");
      assert(Deno.readTextFileSync(`${dir}/creates`).split("\n").filter((l) => l === "create").length >= 3);
    });
    await t.step("a container asking for a GPU does reach gpuctl through the front", async () => {
      const r = await docker.docker(["run", "--rm", "-e", "NVIDIA_VISIBLE_DEVICES=0", IMAGE, "true"], {
        check: false,
      });
      assert(r.code !== 0);
      assertStringIncludes(ran(), "create");
    });
    await t.step("through the real front, a GPU container gets exactly its GPU", async () => {
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime",
        "gpu",
        "-e",
        "NVIDIA_VISIBLE_DEVICES=1",
        IMAGE,
        "nvml-probe",
        "-L",
      ]);
      assertEquals(r.stdout.trim(), `GPU 0: NVIDIA H100 80GB HBM3 (UUID: ${d.spec.gpus[1]!.uuid})`);
      const plain = await docker.docker(["run", "--rm", "--runtime", "gpu", IMAGE, "sh", "-c", "ls /dev"]);
      assertEquals(plain.stdout.includes("nvidia"), false);
    });
    await t.step("with gpuctl serve running, the same container is served: no gpuctl process", async () => {
      const server = await startServe(bundle, { GPUCTL_CONFIG: config }, `${dir}/cache/serve`, {
        prefix: docker.enter,
      });
      try {
        const r = await docker.docker([
          "run",
          "--rm",
          "--runtime",
          "gpu",
          "-e",
          "NVIDIA_VISIBLE_DEVICES=1",
          IMAGE,
          "sh",
          "-c",
          "nvml-probe -L; ls /proc/driver/nvidia/gpus",
        ]);
        const [probe, gpus] = r.stdout.trim().split("\n");
        assertEquals(probe, `GPU 0: NVIDIA H100 80GB HBM3 (UUID: ${d.spec.gpus[1]!.uuid})`);
        assertEquals(gpus, d.spec.gpus[1]!.busId.replace(/^0000/, "").toLowerCase());
        const line = logLines(log).findLast((l) => l.msg === "GPU container prepared")!;
        assertEquals([line.pid, line.served], [server.pid, true]);
      } finally {
        await server.stop();
      }
    });
  } finally {
    await docker.stop();
    Deno.removeSync(dir, { recursive: true });
  }
});
