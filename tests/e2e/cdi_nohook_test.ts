/**
 * `gpuctl cdi generate --no-hook` under a real Podman: a spec with no hook (so no process of gpuctl's, or anyone's,
 * per container) whose mounts alone give a Debian-layout image its GPU's nodes and the driver's libraries, found by
 * SONAME with no linker cache entry — NVML loads, and `ldconfig -p` lists nothing of NVIDIA's. The 64-bit libraries
 * are mounted in /usr/lib64 too, for a lib64 image's loader; Debian's loader (the only one here) does not search
 * there, so that half is checked as files: the same library under the same names.
 */
import { assert, assertEquals } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl } from "../helpers.ts";
import { gpuctlEnv, hostMounts } from "./bundle.ts";
import { Podman } from "./podman.ts";
import { Ajv } from "ajv";

const SCHEMA_DIR =
  "/usr/share/gocode/src/github.com/container-orchestrated-devices/container-device-interface/schema";
const IMAGE = "gpuctl-test/busybox-glibc";
const VIEW = "ls /dev | grep nvidia | sort; echo ==; nvml-probe -L; echo ==; ldconfig -p | grep -c nvidia; " +
  "echo ==; for l in libnvidia-ml.so.1 libcuda.so.1 libcuda.so; do " +
  "cmp /usr/lib/x86_64-linux-gnu/$l /usr/lib64/$l && echo $l; done";

Deno.test("CDI --no-hook: Podman gives a container its GPU and the driver's libraries with no hook at all", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-podman-" });
  const d = await fakeDriver(standardSpec(2, { mig: false }));
  const podman = new Podman(`${dir}/p`);
  const config = `${dir}/gpuctl.jsonc`;
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, { cacheDir: `${dir}/cache`, cdiSpecDirs: [podman.cdiDir] }),
  );
  const vendor = `gpuctl-nohook-${Deno.pid}.test`, kind = `${vendor}/gpu`;
  const specFile = `${podman.cdiDir}/nohook.json`;
  try {
    await t.step(
      "the spec: no hook; every library link a mount of its file; 64-bit ones in /usr/lib64 too",
      async () => {
        const g = await runGpuctl(
          ["cdi", "generate", "--no-hook", "--vendor", vendor, "--output", specFile],
          {
            env: gpuctlEnv(config),
          },
        );
        assertEquals(g.code, 0, g.stderr);
        const spec = JSON.parse(Deno.readTextFileSync(specFile));
        assertEquals(spec.containerEdits.hooks, undefined, "no hook");
        const at = new Map<string, string>(
          spec.containerEdits.mounts.map((m: { containerPath: string; hostPath: string }) => [
            m.containerPath,
            m.hostPath,
          ]),
        );
        const real = at.get("/usr/lib/x86_64-linux-gnu/libcuda.so.580.95.05");
        assert(real !== undefined);
        for (
          const p of [
            "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            "/usr/lib/x86_64-linux-gnu/libcuda.so",
            "/usr/lib64/libcuda.so.580.95.05",
            "/usr/lib64/libcuda.so.1",
            "/usr/lib64/libcuda.so",
          ]
        ) assertEquals(at.get(p), real, p);
        assert(![...at.keys()].some((p) => p.startsWith("/usr/lib64/") && p.includes("i386")));
        const ajv = new Ajv({ strict: false });
        ajv.addSchema(JSON.parse(Deno.readTextFileSync(`${SCHEMA_DIR}/defs.json`)), "defs.json");
        const validate = ajv.compile(JSON.parse(Deno.readTextFileSync(`${SCHEMA_DIR}/schema.json`)));
        assert(validate(spec), JSON.stringify(validate.errors));
        const both = await runGpuctl(["cdi", "generate", "--no-hook", "--hook-path", "/bin/true"], {
          env: gpuctlEnv(config),
        });
        assertEquals([both.code, both.stderr], [
          2,
          "gpuctl: cdi generate --no-hook: names no hook; leave out --hook-path\n",
        ]);
      },
    );

    await podman.importImage(IMAGE);
    const mounts = hostMounts();
    await t.step(
      "podman --device <kind>=1: its nodes, NVML by SONAME with no cache entry, no process",
      async () => {
        const r = await podman.run(["--device", `${kind}=1`, IMAGE, "sh", "-c", VIEW]);
        const [nodes, probe, cache, lib64] = r.stdout.split("==\n");
        assertEquals(nodes, "nvidia-uvm\nnvidia-uvm-tools\nnvidia1\nnvidiactl\n");
        const gpus = probe!.split("\n").filter((l) => l.startsWith("GPU "));
        assert(gpus.some((l) => l.includes(d.spec.gpus[1]!.uuid)), probe);
        assertEquals(cache!.trim(), "0", "the image's linker cache untouched");
        assertEquals(lib64, "libnvidia-ml.so.1\nlibcuda.so.1\nlibcuda.so\n");
      },
    );
    await t.step("the host's mount table is unchanged", () => {
      assertEquals(hostMounts(), mounts);
    });
  } finally {
    await podman.cleanup();
    Deno.removeSync(dir, { recursive: true });
  }
});
