/**
 * The engines' runtimes as engines/registered.ts reads them for doctor and uninstall.
 * @module
 */
import { assertEquals, assertThrows } from "../assert.ts";
import { containerdRuntimes, crioRuntimes, dockerRuntimes, nameFlag } from "../../engines/registered.ts";
import { GpuctlError } from "../../errors/mod.ts";
import { tempDir } from "../helpers.ts";

Deno.test("containerd: every runtime of every file, or only those containerd 1.x uses (an import's CRI table replaces the whole one before it)", () => {
  using t = tempDir();
  const cri = 'plugins."io.containerd.grpc.v1.cri".containerd.runtimes';
  Deno.writeTextFileSync(
    `${t.path}/config.toml`,
    `version = 2\nimports = ["${t.path}/conf.d/*.toml"]\n[${cri}.runc.options]\nSystemdCgroup = true\n` +
      `[${cri}.nvidia.options]\nBinaryName = "/usr/bin/nvidia-container-runtime"\n`,
  );
  Deno.mkdirSync(`${t.path}/conf.d`);
  Deno.writeTextFileSync(
    `${t.path}/conf.d/99-gpuctl.toml`,
    `version = 2\n[${cri}.gpu.options]\nBinaryName = "/usr/local/bin/gpuctl-runtime"\n`,
  );
  const all = containerdRuntimes(`${t.path}/config.toml`)!;
  assertEquals(all.map((r) => [r.name, r.path, r.systemdCgroup]), [
    ["runc", "", true],
    ["nvidia", "/usr/bin/nvidia-container-runtime", false],
    ["gpu", "/usr/local/bin/gpuctl-runtime", false],
  ]);
  assertEquals(containerdRuntimes(`${t.path}/config.toml`, true)!.map((r) => r.name), ["gpu"]);
  assertEquals(containerdRuntimes(`${t.path}/absent.toml`), null);
});

Deno.test("docker and CRI-O: runtimes, the default, an absent file, and a file the engine would refuse", () => {
  using t = tempDir();
  Deno.writeTextFileSync(
    `${t.path}/daemon.json`,
    '{"default-runtime": "nvidia", "runtimes": {"nvidia": {"path": "/usr/local/bin/gpuctl-runtime"}, "x": {}}}',
  );
  assertEquals(dockerRuntimes(`${t.path}/daemon.json`), {
    runtimes: [{ file: `${t.path}/daemon.json`, name: "nvidia", path: "/usr/local/bin/gpuctl-runtime" }],
    defaultRuntime: "nvidia",
  });
  assertEquals(dockerRuntimes(`${t.path}/absent.json`), null);
  Deno.writeTextFileSync(`${t.path}/bad.json`, '{"runtimes": {},}');
  assertThrows(() => dockerRuntimes(`${t.path}/bad.json`), GpuctlError, "trailing commas");
  Deno.writeTextFileSync(
    `${t.path}/crio.conf`,
    '[crio.runtime.runtimes.gpu]\nruntime_path = "/usr/local/bin/gpuctl-runtime"\n',
  );
  assertEquals(crioRuntimes(`${t.path}/crio.conf`)!.map((r) => [r.name, r.path]), [[
    "gpu",
    "/usr/local/bin/gpuctl-runtime",
  ]]);
  assertEquals([nameFlag("nvidia"), nameFlag("gpu")], ["", " --name gpu"]);
});
