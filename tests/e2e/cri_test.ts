/**
 * Kubernetes as the kubelet drives it: containerd 1.6 (Debian's, with its own root, state and socket) configured
 * by `gpuctl configure containerd`, spoken to through the CRI over gRPC (tests/e2e/cri/), pods run under the
 * RuntimeClass handler `nvidia`, and each of the NVIDIA device plugin's strategies giving a container its GPU:
 * the environment, volume mounts, and CDI annotations. The images (a busybox with the NVML probe, and a pause
 * image) are built here and imported with `ctr -n k8s.io images import`; nothing is pulled, and pods use the
 * node's network, so no CNI plugin is needed.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl } from "../helpers.ts";
import { gpuctlEnv, hookLauncher, makeBundle, runtimeLauncher } from "./bundle.ts";
import { Containerd } from "./containerd.ts";
import { type ContainerConfig, Cri, CriError, type PodConfig } from "./cri/client.ts";
import { ociArchive } from "./cri/image.ts";
import { RUNC } from "./privatens.ts";

const IMAGE = "docker.io/gpuctl-test/busybox-glibc:1";
const PAUSE = "docker.io/gpuctl-test/pause:1";
/** What a container sees of the GPUs: its nodes, NVML's GPUs, /proc/driver/nvidia's. */
const VIEW =
  "ls /dev | grep nvidia | sort; echo ==; nvml-probe -L 2>&1; echo ==; ls /proc/driver/nvidia/gpus 2>/dev/null";

function mainConfig(dir: string): string {
  return `version = 2
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE}"
  # This machine's root has no CAP_SYS_RESOURCE: the sandbox's oom_score_adj no lower than the test's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "${RUNC}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${dir}/cni/bin"
    conf_dir = "${dir}/cni/conf"
`;
}

/** The lines a container printed, from its CRI log (`<time> <stream> <tag> <text>`). */
function logText(path: string): string {
  return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").map((l) => {
    const parts = l.split(" ");
    return parts.slice(3).join(" ") + (parts[2] === "F" ? "\n" : "");
  }).join("");
}

Deno.test("CRI: pods under the nvidia RuntimeClass on containerd get exactly the GPUs the device plugin gave them", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-cri-" });
  const d = await fakeDriver(standardSpec(2, { mig: false }));
  const uuid = (i: number) => d.spec.gpus[i]!.uuid;
  const bus = (i: number) => d.spec.gpus[i]!.busId.replace(/^0000/, "").toLowerCase();
  const config = `${dir}/gpuctl.jsonc`;
  const writeConfig = (extra: Record<string, unknown>) =>
    Deno.writeTextFileSync(
      config,
      fixtureConfig(d, {
        cacheDir: `${dir}/cache`,
        logFile: `${dir}/gpuctl.log`,
        cdiSpecDirs: [`${dir}/cdi`],
        hookPath: hookLauncher(dir),
        ...extra,
      }),
    );
  writeConfig({ acceptVolumeMounts: true });
  const shim = runtimeLauncher(dir, gpuctlEnv(config));
  const main = `${dir}/etc/config.toml`, dropIn = `${dir}/etc/conf.d/99-gpuctl.toml`;
  Deno.mkdirSync(`${dir}/etc`, { recursive: true });
  for (const c of ["cni/bin", "cni/conf", "logs"]) Deno.mkdirSync(`${dir}/${c}`, { recursive: true });
  Deno.writeTextFileSync(main, mainConfig(dir));
  let containerd: Containerd | null = null;
  let cri: Cri | null = null;
  let seq = 0;

  /** One pod with one container, as the kubelet runs it; what the container printed, or the CRI error. */
  const pod = async (
    handler: string,
    c: Partial<ContainerConfig>,
  ): Promise<{ out: string; status: string; sandbox: string } | CriError> => {
    const n = ++seq;
    const logs = `${dir}/logs/pod-${n}`;
    Deno.mkdirSync(logs, { recursive: true });
    const sandbox: PodConfig = {
      metadata: { name: `gpu-pod-${n}`, uid: `uid-${Deno.pid}-${n}`, namespace: "default", attempt: 0 },
      log_directory: logs,
      linux: { security_context: { namespace_options: { network: "NODE" } } },
    };
    const id = await cri!.runPodSandbox(sandbox, handler);
    try {
      const container: ContainerConfig = {
        metadata: { name: "main" },
        image: { image: IMAGE },
        command: ["sh", "-c", VIEW],
        log_path: "main.log",
        ...c,
      };
      let cid: string;
      try {
        cid = await cri!.createContainer(id, container, sandbox);
        await cri!.startContainer(cid);
      } catch (e) {
        if (e instanceof CriError) return e;
        throw e;
      }
      let s = await cri!.containerStatus(cid);
      for (let i = 0; i < 300 && s.state !== "CONTAINER_EXITED"; i++) {
        await new Promise((ok) => setTimeout(ok, 100));
        s = await cri!.containerStatus(cid);
      }
      assertEquals(s.state, "CONTAINER_EXITED", JSON.stringify(s));
      const out = logText(`${logs}/main.log`);
      await cri!.removeContainer(cid);
      // The sandbox's own OCI spec, as containerd gave it to the runtime.
      const info = await containerd!.ctr(["-n", "k8s.io", "containers", "info", id]);
      return { out, status: `exit ${s.exit_code}`, sandbox: info.stdout };
    } finally {
      await cri!.stopPodSandbox(id);
      await cri!.removePodSandbox(id);
    }
  };
  const gpus = (out: string) => out.split("==\n")[1]!.split("\n").filter((l) => l.startsWith("GPU "));
  const expectGpu = (r: Awaited<ReturnType<typeof pod>>, i: number) => {
    assert(!(r instanceof CriError), String(r));
    assertEquals(r.status, "exit 0", r.out);
    const [nodes, , proc] = r.out.split("==\n");
    assertEquals(gpus(r.out), [`GPU 0: ${d.spec.gpus[i]!.name} (UUID: ${uuid(i)})`], r.out);
    assertEquals(nodes!.split("\n").filter((l) => /^nvidia\d+$/.test(l)), [`nvidia${i}`]);
    assertEquals(proc, `${bus(i)}\n`);
  };

  try {
    await t.step("gpuctl configure containerd; containerd starts with it and answers the CRI", async () => {
      const c = await runGpuctl([
        "configure",
        "containerd",
        "--config",
        main,
        "--drop-in",
        dropIn,
        "--runtime-path",
        shim,
      ]);
      assertEquals(c.code, 0, c.stderr);
      containerd = await Containerd.start(`${dir}/run`, main);
      cri = new Cri(containerd.sock);
      const v = await cri.version();
      assertEquals([v.runtime_name, v.runtime_api_version], ["containerd", "v1"]);
      const b = await makeBundle(`${dir}/image`, { debian: true, args: ["/bin/sh"] });
      for (const [name, cmd] of [[IMAGE, ["/bin/sh"]], [PAUSE, ["/bin/sleep", "100000"]]] as const) {
        const tar = await ociArchive(`${b}/rootfs`, name, [...cmd], `${dir}/${name.split("/").pop()}.tar`);
        await containerd.ctr(["-n", "k8s.io", "images", "import", tar]);
      }
    });

    await t.step(
      "envvar strategy: NVIDIA_VISIBLE_DEVICES=1 gives GPU 1 alone; the sandbox is untouched",
      async () => {
        const r = await pod("nvidia", { envs: [{ key: "NVIDIA_VISIBLE_DEVICES", value: "1" }] });
        expectGpu(r, 1);
        const sandbox = (r as { sandbox: string }).sandbox;
        assertEquals(sandbox.includes("/dev/nvidia"), false, "the pause container got nothing");
        assertStringIncludes(sandbox, '"io.kubernetes.cri.container-type": "sandbox"');
      },
    );

    await t.step(
      "volume-mounts strategy: /dev/null at /var/run/nvidia-container-devices/<uuid>",
      async () => {
        const r = await pod("nvidia", {
          envs: [{ key: "NVIDIA_VISIBLE_DEVICES", value: "/var/run/nvidia-container-devices" }],
          mounts: [{
            host_path: "/dev/null",
            container_path: `/var/run/nvidia-container-devices/${uuid(0)}`,
          }],
        });
        expectGpu(r, 0);
      },
    );

    await t.step(
      "CDI annotations, as the device plugin sets them: resolved against the node's spec",
      async () => {
        const g = await runGpuctl(["cdi", "generate", "--output", `${dir}/cdi/nvidia.json`], {
          env: gpuctlEnv(config),
        });
        assertEquals(g.code, 0, g.stderr);
        const r = await pod("nvidia", {
          annotations: { [`cdi.k8s.io/nvidia-device-plugin_${uuid(1)}`]: `nvidia.com/gpu=${uuid(1)}` },
        });
        expectGpu(r, 1);
      },
    );

    await t.step("a pod that asks for nothing, under the nvidia RuntimeClass: untouched", async () => {
      const r = await pod("nvidia", {});
      assert(!(r instanceof CriError), String(r));
      const [nodes, probe, proc] = r.out.split("==\n");
      assertEquals([nodes, proc], ["", ""], r.out);
      assertStringIncludes(probe!, "libnvidia-ml.so.1", "no NVML in the container");
    });

    await t.step("the same request under the default runtime (runc): no GPU", async () => {
      const r = await pod("", { envs: [{ key: "NVIDIA_VISIBLE_DEVICES", value: "all" }] });
      assert(!(r instanceof CriError), String(r));
      assertEquals(gpus(r.out), []);
    });

    await t.step("a bad request fails the container with the line the kubelet shows", async () => {
      for (
        const [env, why] of [
          [{ key: "NVIDIA_VISIBLE_DEVICES", value: "7" }, 'NVIDIA_VISIBLE_DEVICES: unknown device "7"'],
          [{ key: "NVIDIA_REQUIRE_CUDA", value: "cuda>=99.0" }, 'unsatisfied requirement "cuda>=99.0"'],
        ] as const
      ) {
        const r = await pod("nvidia", { envs: [{ key: "NVIDIA_VISIBLE_DEVICES", value: "0" }, env] });
        assert(r instanceof CriError, `${env.key}=${env.value} started: ${JSON.stringify(r)}`);
        assertStringIncludes(r.details, why);
      }
    });

    await t.step(
      "volume mounts refused (acceptVolumeMounts false): the request fails, naming the setting",
      async () => {
        writeConfig({ acceptVolumeMounts: false });
        const r = await pod("nvidia", {
          envs: [{ key: "NVIDIA_VISIBLE_DEVICES", value: "/var/run/nvidia-container-devices" }],
          mounts: [{
            host_path: "/dev/null",
            container_path: `/var/run/nvidia-container-devices/${uuid(0)}`,
          }],
        });
        assert(r instanceof CriError, JSON.stringify(r));
        assertStringIncludes(r.details, "acceptVolumeMounts");
        writeConfig({ acceptVolumeMounts: true });
      },
    );

    await t.step(
      "an entry containerd does not use is caught: without gpuctl's import, the handler is unknown",
      async () => {
        await cri!.close();
        await containerd!.stop();
        Deno.writeTextFileSync(main, mainConfig(dir)); // the import gone, the drop-in left
        containerd = await Containerd.start(`${dir}/run`, main);
        cri = new Cri(containerd.sock);
        const r = await pod("nvidia", { envs: [{ key: "NVIDIA_VISIBLE_DEVICES", value: "1" }] }).catch((e) =>
          e
        );
        assert(r instanceof CriError, JSON.stringify(r));
        assertStringIncludes(r.details, 'no runtime for "nvidia" is configured');
      },
    );
  } finally {
    (cri as Cri | null)?.close();
    if (containerd !== null) await (containerd as Containerd).stop();
    const left = Deno.readTextFileSync("/proc/self/mountinfo").split("\n").map((l) => l.split(" ")[4] ?? "")
      .filter((p) => p.startsWith(dir)).sort().reverse();
    for (const p of left) await new Deno.Command("umount", { args: ["-l", p], stderr: "null" }).output();
    Deno.removeSync(dir, { recursive: true });
  }
});
