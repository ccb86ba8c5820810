/**
 * `gpuctl configure` checked by the real engines: containerd 1.6 loads every config.toml + drop-in gpuctl writes
 * (`config dump` shows the runtime with runc's SystemdCgroup kept, and the CRI settings kept) and runs a GPU
 * container through gpuctl-runtime (`ctr run --runc-binary`); dockerd 20.10 starts with every daemon.json gpuctl
 * writes and lists the runtime; `--remove` gives the files back.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl } from "../helpers.ts";
import { gpuctlEnv, makeBundle, runtimeLauncher } from "./bundle.ts";
import { Containerd } from "./containerd.ts";
import { Dockerd } from "./docker.ts";

const LAYOUTS: Record<string, string> = {
  "v1, runc with SystemdCgroup": `# version 1: no version key
[plugins.cri]
  sandbox_image = "registry.example/pause:3.9"
[plugins.cri.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[plugins.cri.containerd.runtimes.runc.options]
  SystemdCgroup = true
`,
  "v2, runc with SystemdCgroup, comments": `version = 2
# Managed by ops
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.example/pause:3.9" # pinned
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = true
`,
  "v2, no runc runtime":
    `version = 2\n[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "registry.example/pause:3.9"\n`,
  "no file": "",
};

async function sh(cmd: string, args: string[], env: Record<string, string> = {}) {
  const o = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "piped", stdin: "null" })
    .output();
  const dec = new TextDecoder();
  return { code: o.code, stdout: dec.decode(o.stdout), stderr: dec.decode(o.stderr) };
}

Deno.test("containerd 1.6 loads every config gpuctl configure writes, and runs a GPU container through gpuctl-runtime", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-ctd-" });
  const d = await fakeDriver(standardSpec(2, { mig: false }));
  const config = `${dir}/gpuctl.jsonc`;
  Deno.writeTextFileSync(config, fixtureConfig(d, { cacheDir: `${dir}/cache` }));
  const shim = runtimeLauncher(dir, gpuctlEnv(config));
  let containerd: Containerd | null = null;
  try {
    for (const [i, [layout, text]] of Object.entries(LAYOUTS).entries()) {
      await t.step(layout, async () => {
        const main = `${dir}/c${i}/config.toml`, dropIn = `${dir}/c${i}/conf.d/99-gpuctl.toml`;
        Deno.mkdirSync(`${dir}/c${i}`);
        if (text !== "") Deno.writeTextFileSync(main, text);
        const args = [
          "configure",
          "containerd",
          "--config",
          main,
          "--drop-in",
          dropIn,
          "--runtime-path",
          shim,
        ];
        const c = await runGpuctl(args);
        assertEquals(c.code, 0, c.stderr);
        const dump = await sh("containerd", ["--config", main, "config", "dump"]);
        assertEquals(dump.code, 0, dump.stderr);
        assertStringIncludes(dump.stdout, `BinaryName = "${shim}"`);
        if (text.includes("SystemdCgroup")) {
          const gpu = dump.stdout.slice(dump.stdout.indexOf("runtimes.nvidia.options]"));
          assertStringIncludes(
            gpu.slice(0, gpu.indexOf("[")),
            "SystemdCgroup = true",
            "runc's options copied",
          );
        }
        if (text.includes("sandbox_image")) {
          assertStringIncludes(
            dump.stdout,
            'sandbox_image = "registry.example/pause:3.9"',
            "CRI settings kept",
          );
        }
        const removed = await runGpuctl([...args, "--remove"]);
        assertEquals(removed.code, 0, removed.stderr);
        if (text !== "") assertEquals(Deno.readTextFileSync(main), text, "--remove restores config.toml");
        else assertEquals([...Deno.readDirSync(`${dir}/c${i}/conf.d`)], []);
      });
    }

    await t.step(
      "a containerd started with the written config runs a GPU container through the shim",
      async () => {
        const main = `${dir}/run/config.toml`;
        Deno.mkdirSync(`${dir}/run`);
        Deno.writeTextFileSync(
          main,
          LAYOUTS["v2, runc with SystemdCgroup, comments"]!.replace("SystemdCgroup = true", ""),
        );
        const c = await runGpuctl([
          "configure",
          "containerd",
          "--config",
          main,
          "--drop-in",
          `${dir}/run/conf.d/99-gpuctl.toml`,
          "--runtime-path",
          shim,
        ]);
        assertEquals(c.code, 0, c.stderr);
        containerd = await Containerd.start(`${dir}/run`, main);
        const b = await makeBundle(`${dir}/image`, { debian: true, args: ["/bin/sh"] });
        const r = await containerd.ctr([
          "run",
          "--rm",
          "--rootfs",
          "--runc-binary",
          shim,
          "--env",
          "NVIDIA_VISIBLE_DEVICES=1",
          "--env",
          "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
          `${b}/rootfs`,
          `gpuctl-${Deno.pid}`,
          "/bin/sh",
          "-c",
          "/usr/local/bin/nvml-probe -L", // ctr gives a --rootfs container no PATH
        ], { check: false });
        assertEquals(r.code, 0, r.stdout + r.stderr);
        assertEquals(r.stdout.split("\n").filter((l) => l.startsWith("GPU ")).length, 1, r.stdout);
        assertStringIncludes(r.stdout, d.spec.gpus[1]!.uuid);
      },
    );
  } finally {
    if (containerd !== null) await (containerd as Containerd).stop();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("dockerd 20.10 starts with every daemon.json gpuctl configure writes; a file with comments is refused untouched", async (t) => {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-docker-cfg-" });
  const inputs: Record<string, string | null> = {
    "no file": null,
    "other runtimes and runtimeArgs": `{
    "runtimes": {
        "other": {"path": "/usr/bin/runc", "runtimeArgs": ["--debug"]},
        "nvidia": {"path": "/old/path", "runtimeArgs": ["--systemd-cgroup"]}
    },
    "debug": false
}
`,
  };
  try {
    for (const [i, [name, text]] of Object.entries(inputs).entries()) {
      await t.step(name, async () => {
        const sub = `${dir}/d${i}`;
        Deno.mkdirSync(sub);
        const file = `${sub}/daemon.json`;
        if (text !== null) Deno.writeTextFileSync(file, text);
        const c = await runGpuctl([
          "configure",
          "docker",
          "--config",
          file,
          "--runtime-path",
          "/usr/sbin/runc",
        ]);
        assertEquals(c.code, 0, c.stderr);
        const docker = await Dockerd.start(sub, { args: ["--config-file", file] });
        try {
          const info = await docker.docker(["info", "--format", "{{json .Runtimes}}"]);
          const runtimes = JSON.parse(info.stdout) as Record<
            string,
            { path: string; runtimeArgs?: string[] }
          >;
          assertEquals(runtimes.nvidia?.path, "/usr/sbin/runc");
          if (text !== null) {
            assertEquals(runtimes.nvidia?.runtimeArgs, ["--systemd-cgroup"], "the runtime's other keys kept");
            assertEquals(runtimes.other?.runtimeArgs, ["--debug"]);
          }
        } finally {
          await docker.stop();
        }
      });
    }
    await t.step("comments: refused with the line, the file byte-identical", async () => {
      const file = `${dir}/commented.json`;
      const text = '{\n  /* ops */\n  "debug": false\n}\n';
      Deno.writeTextFileSync(file, text);
      const c = await runGpuctl(["configure", "docker", "--config", file]);
      assertEquals(c.code, 1);
      assertStringIncludes(c.stderr, `${file}:2:3: not valid JSON`);
      assertEquals(Deno.readTextFileSync(file), text);
    });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
