/**
 * `gpuctl install` against files in a temporary directory (configure: configure_test.ts).
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { runGpuctl, tempDir } from "../helpers.ts";

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
