/**
 * NVIDIA's install guide, typed verbatim against gpuctl: the shipped executable installed with NVIDIA's names
 * (`gpuctl install --nvidia-names`), then the guide's own commands, unchanged, with a real dockerd and a real
 * Podman. The paths the guide names (`/etc/docker/daemon.json`, `/etc/cdi/nvidia.yaml`) are this test's
 * directories in mount namespaces of its own; the commands are exactly the guide's.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { artifact } from "../helpers.ts";
import { Dockerd } from "./docker.ts";
import { Podman } from "./podman.ts";
import { privateMounts } from "./privatens.ts";

const IMAGE = "gpuctl-test/busybox-glibc";

Deno.test("NVIDIA's install guide, verbatim: nvidia-ctk runtime configure, cdi generate, cdi list, docker and podman", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-docker-guide-" });
  const d = await fakeDriver(standardSpec(2, { mig: false }));
  const config = `${dir}/gpuctl.jsonc`;
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, {
      cacheDir: null,
      // The guide's CDI directories (the namespaces below make them this test's).
      cdiSpecDirs: ["/etc/cdi", "/var/run/cdi"],
    }),
  );
  const bin = `${dir}/bin`, env = { GPUCTL_CONFIG: config };
  const PATH = `${bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`;
  // Podman's run root must be short (50 characters at most).
  const podmanDir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-podman-" });
  const podman = new Podman(`${podmanDir}/podman`);
  let docker: Dockerd | null = null;
  /** A shell command line as the guide types it, in a namespace where `binds` are this test's directories. */
  const typed = async (line: string, binds: Record<string, string>) => {
    const ns = privateMounts(binds, `${dir}/ns-${Object.keys(binds).length}-${line.length}`);
    const o = await new Deno.Command(ns[0]!, {
      args: [...ns.slice(1), "sh", "-c", line],
      env: { ...env, PATH },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
  };
  try {
    await t.step(
      "gpuctl install --nvidia-names: nvidia-ctk and nvidia-container-runtime beside the fronts",
      async () => {
        const o = await new Deno.Command(artifact().exe, {
          args: ["install", "--prefix", bin, "--lib-dir", `${dir}/lib`, "--nvidia-names"],
          env,
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert(o.success, new TextDecoder().decode(o.stderr));
        for (
          const n of [
            "gpuctl",
            "gpuctl-runtime",
            "nvidia-container-runtime-hook",
            "nvidia-ctk",
            "nvidia-container-runtime",
          ]
        ) {
          assert(Deno.statSync(`${bin}/${n}`).isFile, n);
        }
      },
    );

    const etcDocker = `${dir}/host/etc-docker`;
    await t.step("nvidia-ctk runtime configure --runtime=docker --set-as-default", async () => {
      const r = await typed("nvidia-ctk runtime configure --runtime=docker --set-as-default", {
        "/etc/docker": etcDocker,
      });
      assertEquals(r.code, 0, r.stderr);
      const daemon = JSON.parse(Deno.readTextFileSync(`${etcDocker}/daemon.json`));
      assertEquals(daemon["default-runtime"], "nvidia");
      assertEquals(daemon.runtimes.nvidia.path, `${bin}/gpuctl-runtime`, "the front beside nvidia-ctk");
    });

    await t.step("docker run --runtime=nvidia --gpus all ... nvidia-smi, after the restart", async () => {
      // dockerd reads the daemon.json just written (Dockerd's /etc/docker is the same directory).
      docker = await Dockerd.start(dir, { env, pathDirs: [bin] });
      await docker.importImage(IMAGE);
      const r = await docker.docker([
        "run",
        "--rm",
        "--runtime=nvidia",
        "--gpus",
        "all",
        IMAGE,
        "nvml-probe",
        "-L",
      ]);
      assertEquals(r.stdout.split("\n").filter((l) => l.startsWith("GPU ")).length, 2, r.stdout);
      // And the default runtime: a container that asks for nothing gets nothing, one that asks gets its GPU.
      const plain = await docker.docker([
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "ls /dev | grep -c nvidia || true",
      ]);
      assertEquals(plain.stdout.trim(), "0");
      const one = await docker.docker([
        "run",
        "--rm",
        "-e",
        "NVIDIA_VISIBLE_DEVICES=1",
        IMAGE,
        "nvml-probe",
        "-L",
      ]);
      assertEquals(one.stdout.split("\n").filter((l) => l.startsWith("GPU ")), [
        `GPU 0: ${d.spec.gpus[1]!.name} (UUID: ${d.spec.gpus[1]!.uuid})`,
      ]);
    });

    const cdi = { "/etc/cdi": `${podman.dir}/cdi/etc`, "/var/run/cdi": podman.cdiDir };
    await t.step("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml; nvidia-ctk cdi list", async () => {
      const g = await typed("nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml", cdi);
      assertEquals(g.code, 0, g.stderr);
      assertStringIncludes(
        Deno.readTextFileSync(`${podman.dir}/cdi/etc/nvidia.yaml`),
        "kind: nvidia.com/gpu\n",
      );
      const l = await typed("nvidia-ctk cdi list", cdi);
      assertEquals(l.code, 0, l.stderr);
      assertEquals(
        l.stdout,
        ["0", d.spec.gpus[0]!.uuid, "1", d.spec.gpus[1]!.uuid, "all"].map((n) => `nvidia.com/gpu=${n}\n`)
          .join(""),
      );
    });

    await t.step(
      "podman run --rm --device nvidia.com/gpu=all --security-opt=label=disable ... nvidia-smi -L",
      async () => {
        await podman.importImage(IMAGE);
        const r = await podman.podman([
          "run",
          "--rm",
          "--device",
          "nvidia.com/gpu=all",
          "--security-opt=label=disable",
          ...Podman.RUN.slice(2),
          IMAGE,
          "nvml-probe",
          "-L",
        ]);
        assertEquals(r.stdout.split("\n").filter((l) => l.startsWith("GPU ")).length, 2, r.stdout);
      },
    );

    await t.step(
      "nvidia-ctk --version, and nvidia-container-runtime --version as NVIDIA's prints it",
      async () => {
        const v = await typed("nvidia-ctk --version && nvidia-container-runtime --version", {});
        assertEquals(v.code, 0, v.stderr);
        assertStringIncludes(v.stdout, "gpuctl-runtime version ");
        assertStringIncludes(v.stdout, "runc version ");
      },
    );
  } finally {
    if (docker !== null) await (docker as Dockerd).stop();
    await podman.cleanup();
    Deno.removeSync(podmanDir, { recursive: true });
    Deno.removeSync(dir, { recursive: true });
  }
});
