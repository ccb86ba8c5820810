/**
 * Another vendor's CDI spec on the host, named from an unprivileged image's own environment: gpuctl's runtime
 * refuses it (only its own kinds come from the environment), so nothing of that spec — the host's / mounted
 * read-write, /dev/mem, a hook run on the host, LD_PRELOAD — reaches a container, while gpuctl's own kind works.
 */
import { assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { tempDir } from "../helpers.ts";
import { gpuctlEnv, makeBundle, runcLifecycle, runtimeLauncher } from "./bundle.ts";

Deno.test({
  name:
    "hostile CDI: an image's environment naming another vendor's device is refused; nothing of its spec is applied",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    using t = tempDir();
    const d = await fakeDriver(standardSpec(2, { mig: false }));
    const cdi = `${t.path}/cdi`;
    Deno.mkdirSync(cdi);
    Deno.writeTextFileSync(
      `${cdi}/disk.json`,
      JSON.stringify({
        cdiVersion: "0.5.0",
        kind: "example.com/disk",
        devices: [{
          name: "x",
          containerEdits: {
            env: ["LD_PRELOAD=/host/evil.so"],
            deviceNodes: [{ path: "/dev/mem" }],
            mounts: [{ hostPath: "/", containerPath: "/host", options: ["rbind", "rw"] }],
            hooks: [{
              hookName: "createRuntime",
              path: "/bin/sh",
              args: ["sh", "-c", `touch ${t.path}/hook-ran`],
            }],
          },
        }],
      }),
    );
    const config = `${t.path}/gpuctl.jsonc`;
    Deno.writeTextFileSync(config, fixtureConfig(d, { cacheDir: `${t.path}/cache`, cdiSpecDirs: [cdi] }));
    const shim = runtimeLauncher(t.path, gpuctlEnv(config));
    const b = await makeBundle(`${t.path}/b`, {
      args: ["/bin/sh", "-c", "ls /host /dev/mem 2>&1; echo LD_PRELOAD=$LD_PRELOAD"],
      env: ["NVIDIA_VISIBLE_DEVICES=example.com/disk=x"],
    });
    const before = Deno.readTextFileSync(`${b}/config.json`);
    const r = await runcLifecycle(b, shim);
    assertEquals(r.code, 1);
    assertStringIncludes(
      r.stderr,
      'names the CDI kind "example.com/disk": the environment and volume mounts may name only',
    );
    assertEquals(Deno.readTextFileSync(`${b}/config.json`), before, "config.json untouched");
    let ran = true;
    try {
      Deno.statSync(`${t.path}/hook-ran`);
    } catch {
      ran = false;
    }
    assertEquals(ran, false, "the spec's hook never ran");
  },
});
