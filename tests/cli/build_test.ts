/**
 * The build outputs: the bundle runs exactly like the source, and `compile` explains a missing denort.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { DENO, PROJECT, runGpuctl, tempDir } from "../helpers.ts";

Deno.test("deno task compile builds dist/gpuctl.js, which runs like the source; without DENORT_BIN it tries the download, and offline says why", async () => {
  const env: Record<string, string> = { NO_COLOR: "1" };
  const o = await new Deno.Command(DENO, {
    args: ["task", "--quiet", "compile"],
    cwd: PROJECT,
    env,
    stdout: "piped",
    stderr: "piped",
    clearEnv: false,
  }).output();
  const err = new TextDecoder().decode(o.stderr);
  if (Deno.env.get("DENORT_BIN")) {
    assertEquals(o.code, 0, err);
  } else {
    assertStringIncludes(err, "compile: built dist/gpuctl.js");
    if (o.code === 0) assertStringIncludes(err, "compile: built dist/gpuctl (gpuctl "); // online: downloaded
    else {
      assertEquals(o.code, 1, err);
      assertStringIncludes(err, "cannot build dist/gpuctl: deno compile could not download Deno's denort");
      assertStringIncludes(err, "Offline: set DENORT_BIN");
    }
  }
  assert(Deno.statSync(`${PROJECT}/dist/gpuctl.js`).size > 10_000);

  const d = await fakeDriver(standardSpec(2));
  using tmp = tempDir();
  Deno.writeTextFileSync(`${tmp.path}/c.jsonc`, fixtureConfig(d));
  const envs = { GPUCTL_CONFIG: `${tmp.path}/c.jsonc` };
  const fromSource = await runGpuctl(["info", "--json"], { env: envs });
  const fromBundle = await runGpuctl(["info", "--json"], { env: envs, entry: `${PROJECT}/dist/gpuctl.js` });
  assertEquals(fromBundle, fromSource);
  assertEquals(fromBundle.code, 0);
});

Deno.test("deno task compile refuses a DENORT_BIN that does not exist", async () => {
  const o = await new Deno.Command(DENO, {
    args: ["task", "--quiet", "compile"],
    cwd: PROJECT,
    env: { DENORT_BIN: "/nonexistent/denort" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(o.code, 1);
  assertStringIncludes(
    new TextDecoder().decode(o.stderr),
    "DENORT_BIN=/nonexistent/denort: No such file or directory",
  );
});
