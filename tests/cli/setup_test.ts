/**
 * `gpuctl configure` and `gpuctl install` against files in a temporary directory.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { runGpuctl, tempDir } from "../helpers.ts";

const DAEMON = `{
  // Managed by ops: keep this comment
  "log-driver": "journald",
  "runtimes": {
    "other": { "path": "/usr/bin/other-runtime" }
  },
  "storage-driver": "overlay2",
}
`;

Deno.test("configure docker: adds the runtime, keeps comments and keys, backs up, is idempotent", async () => {
  using t = tempDir();
  const f = `${t.path}/daemon.json`;
  Deno.writeTextFileSync(f, DAEMON);
  const r = await runGpuctl([
    "configure",
    "docker",
    "--config",
    f,
    "--runtime-path",
    "/opt/gpuctl/gpuctl-runtime",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(
    r.stdout,
    "Equivalent without daemon.json: dockerd --add-runtime gpu=/opt/gpuctl/gpuctl-runtime",
  );
  const after = Deno.readTextFileSync(f);
  assertStringIncludes(after, "// Managed by ops: keep this comment");
  assertStringIncludes(after, '"log-driver": "journald"');
  assertStringIncludes(after, '"other": { "path": "/usr/bin/other-runtime" }');
  assertStringIncludes(after, '"gpu": {\n      "path": "/opt/gpuctl/gpuctl-runtime"\n    }');
  assertEquals(after.includes("default-runtime"), false);
  assertEquals(Deno.readTextFileSync(`${f}.gpuctl-backup`), DAEMON);
  const again = await runGpuctl([
    "configure",
    "docker",
    "--config",
    f,
    "--runtime-path",
    "/opt/gpuctl/gpuctl-runtime",
  ]);
  assertStringIncludes(again.stdout, 'runtime "gpu" is already configured');
  assertEquals(Deno.readTextFileSync(f), after);
  const def = await runGpuctl([
    "configure",
    "docker",
    "--config",
    f,
    "--runtime-path",
    "/opt/gpuctl/gpuctl-runtime",
    "--set-default",
    "--dry-run",
  ]);
  assertStringIncludes(def.stdout, '"default-runtime": "gpu"');
  assertEquals(Deno.readTextFileSync(f), after, "--dry-run writes nothing");
});

Deno.test("configure docker: a missing file is created, a broken one is refused with its line", async () => {
  using t = tempDir();
  const f = `${t.path}/etc/docker/daemon.json`;
  const r = await runGpuctl([
    "configure",
    "docker",
    "--config",
    f,
    "--name",
    "nvidia",
    "--runtime-path",
    "/x/gpuctl-runtime",
    "--set-default",
  ]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(JSON.parse(Deno.readTextFileSync(f)), {
    runtimes: { nvidia: { path: "/x/gpuctl-runtime" } },
    "default-runtime": "nvidia",
  });
  Deno.writeTextFileSync(f, '{\n  "runtimes": {\n    "x": \n}');
  const bad = await runGpuctl(["configure", "docker", "--config", f]);
  assertEquals(bad.code, 1);
  assertEquals(bad.stderr, `gpuctl: ${f}:4:1: invalid JSON: ValueExpected\n`);
  const usage = await runGpuctl(["configure", "podman"]);
  assertEquals([usage.code, usage.stderr], [
    2,
    "gpuctl: configure: name one engine: docker, containerd or crio (see 'gpuctl configure --help')\n",
  ]);
});

Deno.test("configure containerd: version 2 and 3 configs, idempotent, default runtime", async () => {
  using t = tempDir();
  const f2 = `${t.path}/config.toml`;
  Deno.writeTextFileSync(
    f2,
    'version = 2\n# keep me\n[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "overlayfs"\n',
  );
  const args = [
    "configure",
    "containerd",
    "--config",
    f2,
    "--runtime-path",
    "/g/gpuctl-runtime",
    "--set-default",
  ];
  const r = await runGpuctl(args);
  assertEquals(r.code, 0, r.stderr);
  const text = Deno.readTextFileSync(f2);
  assertStringIncludes(text, "# keep me");
  assertStringIncludes(
    text,
    '[plugins."io.containerd.grpc.v1.cri".containerd]\n  default_runtime_name = "gpu"\n  snapshotter = "overlayfs"',
  );
  assertStringIncludes(
    text,
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gpu]\n  runtime_type = "io.containerd.runc.v2"',
  );
  assertStringIncludes(
    text,
    '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.gpu.options]\n  BinaryName = "/g/gpuctl-runtime"',
  );
  const again = await runGpuctl(args); // the same command again
  assertStringIncludes(again.stdout, "already configured");
  const moved = await runGpuctl([
    "configure",
    "containerd",
    "--config",
    f2,
    "--runtime-path",
    "/h/gpuctl-runtime",
  ]);
  assertEquals(moved.code, 0);
  const t2 = Deno.readTextFileSync(f2);
  assertStringIncludes(t2, 'BinaryName = "/h/gpuctl-runtime"');
  assertEquals(t2.split("runtimes.gpu.options]").length, 2, "updated in place, not added twice");
  const f3 = `${t.path}/v3.toml`;
  Deno.writeTextFileSync(f3, "version = 3\n");
  await runGpuctl(["configure", "containerd", "--config", f3, "--runtime-path", "/g/gpuctl-runtime"]);
  assertStringIncludes(
    Deno.readTextFileSync(f3),
    '[plugins."io.containerd.cri.v1.runtime".containerd.runtimes.gpu.options]',
  );
});

Deno.test("install: creates the two names, is idempotent, never replaces a foreign file, uninstalls only its own", async () => {
  using t = tempDir();
  const r = await runGpuctl(["install", "--prefix", t.path]);
  assertEquals(r.code, 0, r.stderr);
  for (const n of ["gpuctl-runtime", "nvidia-container-runtime-hook"]) {
    const text = Deno.readTextFileSync(`${t.path}/${n}`);
    assertStringIncludes(text, "# gpuctl install launcher");
    assert((Deno.statSync(`${t.path}/${n}`).mode! & 0o111) !== 0);
  }
  // The launcher really is gpuctl in that role.
  const help = await new Deno.Command(`${t.path}/nvidia-container-runtime-hook`, {
    args: ["--help"],
    stdout: "piped",
  }).output();
  assertStringIncludes(new TextDecoder().decode(help.stdout), "Usage: gpuctl hook prestart");
  const again = await runGpuctl(["install", "--prefix", t.path]);
  assertStringIncludes(again.stdout, `${t.path}/gpuctl-runtime: already installed`);
  Deno.removeSync(`${t.path}/nvidia-container-runtime-hook`);
  Deno.writeTextFileSync(`${t.path}/nvidia-container-runtime-hook`, "#!/bin/sh\necho NVIDIA's own\n");
  const refused = await runGpuctl(["install", "--prefix", t.path]);
  assertEquals(refused.code, 1);
  assertEquals(
    refused.stderr,
    `gpuctl: ${t.path}/nvidia-container-runtime-hook: exists and was not created by gpuctl install; remove it first, or use --prefix\n`,
  );
  const un = await runGpuctl(["install", "--prefix", t.path, "--uninstall"]);
  assertEquals(un.code, 0);
  assertStringIncludes(un.stdout, `removed ${t.path}/gpuctl-runtime`);
  assertStringIncludes(un.stderr, "was not created by gpuctl install; left in place");
  assertEquals(
    Deno.readTextFileSync(`${t.path}/nvidia-container-runtime-hook`),
    "#!/bin/sh\necho NVIDIA's own\n",
  );
});
