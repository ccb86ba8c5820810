/**
 * CDI end to end: `gpuctl cdi generate` on the fake driver, checked against the CDI JSON schema (Debian's copy of
 * the CDI project's, the version Podman 4.3 reads), applied by a real Podman; and the same spec applied by
 * gpuctl's own runtime under dockerd for NVIDIA_VISIBLE_DEVICES=<kind>=1, which must give the container the same
 * view Podman gave it.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl } from "../helpers.ts";
import { gpuctlEnv, hookLauncher, hostMounts, runtimeLauncher } from "./bundle.ts";
import { Podman } from "./podman.ts";
import { Dockerd } from "./docker.ts";
import { Ajv } from "ajv";

const SCHEMA_DIR =
  "/usr/share/gocode/src/github.com/container-orchestrated-devices/container-device-interface/schema";
const IMAGE = "gpuctl-test/busybox-glibc";
/** What a container sees of the GPUs: nodes, NVML through its linker cache, /proc, the cache's entries. */
const VIEW = "ls /dev | grep nvidia | sort; echo ==; nvml-probe -L; echo ==; ls /proc/driver/nvidia/gpus; " +
  "grep ModifyDeviceFiles /proc/driver/nvidia/params; echo ==; ldconfig -p | grep -E 'nvidia|cuda' | sort";

Deno.test("CDI: gpuctl cdi generate validates against the CDI schema; Podman applies it; gpuctl-runtime gives the same view", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-podman-" });
  const d = await fakeDriver(standardSpec(2));
  const config = `${dir}/gpuctl.jsonc`;
  const hook = hookLauncher(dir);
  const podman = new Podman(`${dir}/podman`);
  const vendor = `gpuctl-${Deno.pid}.test`, kind = `${vendor}/gpu`;
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, {
      cacheDir: `${dir}/cache`,
      logFile: `${dir}/gpuctl.log`,
      hookPath: hook,
      cdiSpecDirs: [podman.cdiDir],
      // The test's own vendor, named from the environment below as gpuctl's own kind would be.
      cdiKinds: [kind],
    }),
  );
  const specFile = `${podman.cdiDir}/gpuctl-test.json`;
  let docker: Dockerd | null = null;
  try {
    await t.step(
      "generate: a device per GPU, per MIG device (index and UUID) and all; one hook",
      async () => {
        const g = await runGpuctl(["cdi", "generate", "--vendor", vendor, "--output", specFile], {
          env: gpuctlEnv(config),
        });
        assertEquals(g.code, 0, g.stderr);
        const spec = JSON.parse(Deno.readTextFileSync(specFile));
        assertEquals(spec.cdiVersion, "0.5.0", "the lowest version with digit-first names and hostPath");
        assertEquals(spec.devices.map((x: { name: string }) => x.name), [
          "0",
          d.spec.gpus[0]!.uuid,
          "1",
          d.spec.gpus[1]!.uuid,
          "1:0",
          d.spec.gpus[1]!.mig!.devices[0]!.uuid,
          "1:1",
          d.spec.gpus[1]!.mig!.devices[1]!.uuid,
          "all",
        ]);
        assertEquals(spec.containerEdits.hooks.length, 1, "one hook process per container");
        const h = spec.containerEdits.hooks[0];
        assertEquals([h.hookName, h.path, h.args.slice(0, 2)], ["createContainer", hook, [
          "nvidia-container-runtime-hook",
          "container-edits",
        ]]);
        assertEquals(h.env, [
          "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
          `GPUCTL_CONFIG=${config}`,
        ]);
        const smi = spec.containerEdits.mounts.find((m: { containerPath: string }) =>
          m.containerPath === "/usr/bin/nvidia-smi"
        );
        assertEquals(smi.options, ["ro", "nosuid", "nodev", "rbind", "rprivate"]);
        // JSON Schema (draft-07) validation against CDI's own schema files.
        const ajv = new Ajv({ strict: false });
        ajv.addSchema(JSON.parse(Deno.readTextFileSync(`${SCHEMA_DIR}/defs.json`)), "defs.json");
        const validate = ajv.compile(JSON.parse(Deno.readTextFileSync(`${SCHEMA_DIR}/schema.json`)));
        assert(validate(spec), JSON.stringify(validate.errors));
        // YAML, through the yaml package, describes the same spec.
        const y = await runGpuctl(["cdi", "generate", "--vendor", vendor, "--format", "yaml"], {
          env: gpuctlEnv(config),
        });
        assertEquals(y.code, 0, y.stderr);
        const { parse } = await import("../../cdi/yaml.ts");
        assertEquals(parse(y.stdout), spec);
        const list = await runGpuctl(["cdi", "list"], { env: gpuctlEnv(config) });
        assertStringIncludes(list.stdout, `${kind}=0\n${kind}=${d.spec.gpus[0]!.uuid}\n`);
      },
    );

    await podman.importImage(IMAGE);
    const mounts = hostMounts();
    let podmanView = "";
    await t.step(
      "podman --device <kind>=1: exactly that GPU, the control nodes, NVML by the linker cache",
      async () => {
        const r = await podman.run(["--device", `${kind}=1`, IMAGE, "sh", "-c", VIEW]);
        podmanView = r.stdout;
        const [nodes, probe, proc, cache] = r.stdout.split("==\n");
        assertEquals(nodes, "nvidia-uvm\nnvidia-uvm-tools\nnvidia1\nnvidiactl\n");
        assertEquals(probe!.split("\n").filter((l) => l.startsWith("GPU ")), [
          `GPU 0: NVIDIA A100-SXM4-40GB (UUID: ${d.spec.gpus[1]!.uuid})`,
        ]);
        assertEquals(proc, "0000:11:00.0\nModifyDeviceFiles: 0\n");
        assertStringIncludes(
          cache!,
          "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
        );
        assertStringIncludes(cache!, "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1");
      },
    );
    await t.step("podman --device <kind>=all: every GPU", async () => {
      const r = await podman.run(["--device", `${kind}=all`, IMAGE, "sh", "-c", VIEW]);
      const [nodes, probe, proc] = r.stdout.split("==\n");
      assertStringIncludes(nodes!, "nvidia0\nnvidia1\n");
      assertEquals(probe!.split("\n").filter((l) => l.startsWith("GPU ")).length, 2);
      assertEquals(proc, "0000:10:00.0\n0000:11:00.0\nModifyDeviceFiles: 0\n");
    });
    await t.step("podman without --device: untouched", async () => {
      const r = await podman.run([
        IMAGE,
        "sh",
        "-c",
        "ls /dev; ls /usr/lib/x86_64-linux-gnu 2>&1; test -e /etc/ld.so.cache || echo NO-CACHE",
      ]);
      assertEquals(r.stdout.includes("nvidia"), false, r.stdout);
      assertStringIncludes(r.stdout, "NO-CACHE");
    });
    await t.step("podman with an unknown device name: Podman's own error", async () => {
      const r = await podman.run(["--device", `${kind}=7`, IMAGE, "true"], false);
      assert(r.code !== 0);
      assertStringIncludes(r.stderr, `${kind}=7`);
    });
    await t.step("the host's mount table is unchanged", () => {
      assertEquals(hostMounts(), mounts);
    });

    await t.step(
      "the same spec through gpuctl-runtime (NVIDIA_VISIBLE_DEVICES=<kind>=1) gives the view Podman gave",
      async () => {
        const shim = runtimeLauncher(`${dir}/shim`, gpuctlEnv(config));
        const dk = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-docker-cdi-" });
        docker = await Dockerd.start(dk, { args: ["--add-runtime", `gpu=${shim}`] });
        await docker.importImage(IMAGE);
        const r = await docker.docker([
          "run",
          "--rm",
          "--runtime",
          "gpu",
          "-e",
          `NVIDIA_VISIBLE_DEVICES=${kind}=1`,
          IMAGE,
          "sh",
          "-c",
          VIEW,
        ]);
        assertEquals(r.stdout, podmanView);
      },
    );

    await t.step(
      "a second spec in the directory defining the same names: Podman, gpuctl-runtime, cdi list and doctor all refuse",
      async () => {
        const copy = `${podman.cdiDir}/gpuctl-test2.json`; // read after gpuctl-test.json
        Deno.copyFileSync(specFile, copy);
        try {
          const p = await podman.run(["--device", `${kind}=1`, IMAGE, "true"], false);
          assert(p.code !== 0, "Podman refuses the clash");
          assertStringIncludes(p.stderr, "unresolvable CDI devices");
          const r = await docker!.docker(
            ["run", "--rm", "--runtime", "gpu", "-e", `NVIDIA_VISIBLE_DEVICES=${kind}=1`, IMAGE, "true"],
            { check: false },
          );
          assert(r.code !== 0, "gpuctl-runtime refuses it too");
          assertStringIncludes(r.stderr, `defined by 2 CDI specs in one directory (${specFile}, ${copy})`);
          const list = await runGpuctl(["cdi", "list"], { env: gpuctlEnv(config) });
          assertEquals(list.code, 1, "cdi list: a clash is an error");
          assertStringIncludes(list.stderr, `${kind}=1: defined by 2 CDI specs in one directory`);
          assertEquals(list.stdout, "", "no name of the clashing specs resolves");
          const doctor = await runGpuctl(["doctor", "--json"], { env: gpuctlEnv(config) });
          const check = JSON.parse(doctor.stdout).checks.find((c: { id: string }) => c.id === "cdi.specs");
          assertEquals(check.status, "fail", doctor.stdout);
          assertStringIncludes(check.saw, "CDI names are defined twice");
          assertEquals(check.fix, `rm ${copy}`);
        } finally {
          Deno.removeSync(copy);
        }
      },
    );
  } finally {
    if (docker !== null) {
      await (docker as Dockerd).stop();
      Deno.removeSync((docker as Dockerd).dir, { recursive: true });
    }
    await podman.cleanup();
    Deno.removeSync(dir, { recursive: true });
  }
});
