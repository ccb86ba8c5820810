/**
 * noCgroups (nvidia-container-cli's --no-cgroups), for rootless engines that cannot program a device cgroup: the
 * shim's config.json gets the GPU's nodes and mounts but no device-cgroup rule, the hook leaves the cgroup alone,
 * and both say so in the log. The container still starts with its GPU; opening the node is then up to whatever
 * device policy the engine has (here runc's default, which denies it).
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { logLines, tempDir } from "../helpers.ts";
import {
  gpuctlEnv,
  gpuctlEnvList,
  makeBundle,
  runcLifecycle,
  runcRun,
  runtimeLauncher,
  writeDebugConfig,
} from "./bundle.ts";

const CHECK = "nvml-probe -L; cat /dev/nvidia0 2>&1; echo STARTED";

Deno.test("noCgroups: a GPU container starts through the shim and the hook with no device-cgroup edits", async () => {
  using tmp = tempDir();
  const d = await fakeDriver(standardSpec(1, { mig: false }));
  const log = `${tmp.path}/gpuctl.log`;
  const config = writeDebugConfig(`${tmp.path}/gpuctl.jsonc`, d, log, { noCgroups: true });
  const shim = runtimeLauncher(tmp.path, gpuctlEnv(config));
  const env = ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"];

  const b = await makeBundle(`${tmp.path}/shim`, { debian: true, args: ["/bin/sh", "-c", CHECK], env });
  const r = await runcLifecycle(b, shim);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "GPU 0:");
  assertStringIncludes(r.stdout, "STARTED");
  const spec = JSON.parse(Deno.readTextFileSync(`${b}/config.json`));
  assert(spec.linux.devices.some((n: { path: string }) => n.path === "/dev/nvidia0"), "the node is listed");
  assertEquals(
    spec.linux.resources.devices.filter((x: { major?: number }) => x.major === 195),
    [],
    "no device-cgroup rule",
  );
  assertStringIncludes(r.stdout, "Operation not permitted", "runc's default device policy, untouched");

  const h = await makeBundle(`${tmp.path}/hook`, {
    debian: true,
    args: ["/bin/sh", "-c", CHECK],
    env,
    hook: { env: gpuctlEnvList(config) },
  });
  const r2 = await runcRun(h);
  assertEquals(r2.code, 0, r2.stderr);
  assertStringIncludes(r2.stdout, "GPU 0:");
  assertStringIncludes(r2.stdout, "Operation not permitted");
  const msgs = logLines(log).map((l) => l.msg);
  assert(msgs.includes("noCgroups: no device-cgroup rules added"), msgs.join("\n"));
  assert(msgs.includes("noCgroups: the device cgroup is left as it is"), msgs.join("\n"));
});
