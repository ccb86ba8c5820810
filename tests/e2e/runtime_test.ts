/**
 * The runtime shim in front of real runc: `gpuctl-runtime run` of bundles, in spec mode and hook mode.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { logLines, tempDir } from "../helpers.ts";
import {
  gpuctlEnv,
  hookLauncher,
  hostMounts,
  makeBundle,
  runcLifecycle,
  runcRun,
  runtimeLauncher,
  writeDebugConfig,
} from "./bundle.ts";

async function setup(tmp: string, extra: Record<string, unknown> = {}) {
  const d = await fakeDriver(standardSpec(2));
  // `runc run` starts the container at once, so the shim has its /proc view made by a createContainer hook.
  const config = writeDebugConfig(`${tmp}/gpuctl.jsonc`, d, `${tmp}/gpuctl.log`, {
    hookPath: hookLauncher(tmp),
    ...extra,
  });
  const shim = runtimeLauncher(tmp, gpuctlEnv(config));
  return { d, config, shim };
}

const CHECK = "nvidia-smi -L; nvml-probe -L; ls /dev | grep nvidia; ldconfig -p | grep -c nvidia; " +
  "cat /dev/nvidia1 2>&1; echo ==proc; grep ModifyDeviceFiles /proc/driver/nvidia/params; ls /proc/driver/nvidia/gpus; " +
  "touch /proc/driver/nvidia/x 2>&1 | grep -c Read-only; echo ==end";

Deno.test("shim (spec mode): a GPU container gets its devices, cgroup rules, mounts and linker cache from config.json", async () => {
  using tmp = tempDir();
  const { shim } = await setup(tmp.path);
  const mounts = hostMounts();
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: ["/bin/sh", "-c", CHECK],
    env: ["NVIDIA_VISIBLE_DEVICES=1", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
  });
  // As containerd drives it: create (the shim edits config.json, runs runc create, then makes the /proc view),
  // start, delete.
  const r = await runcLifecycle(b, shim);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(
    r.stdout,
    "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-01000000-1111-2222-3333-444455556601)",
  );
  assertEquals(r.stdout.includes("H100"), false, "only the requested GPU");
  assertStringIncludes(r.stdout, "nvidia1\nnvidiactl");
  // runc applied the cgroup rule from the spec: the node opens (no real GPU behind it), not EPERM.
  assertStringIncludes(r.stdout, "cat: can't open '/dev/nvidia1': No such device or address");
  const spec = JSON.parse(Deno.readTextFileSync(`${b}/config.json`));
  const devs = spec.linux.devices.map((d: { path: string }) => d.path);
  assert(
    devs.includes("/dev/nvidia1") && devs.includes("/dev/nvidiactl") && !devs.includes("/dev/nvidia0"),
    devs.join(","),
  );
  const rules = spec.linux.resources.devices.filter((x: { major?: number }) => x.major === 195);
  assert(rules.some((x: { minor: number; allow: boolean }) => x.minor === 1 && x.allow));
  const smi = spec.mounts.find((m: { destination: string }) => m.destination === "/usr/bin/nvidia-smi");
  assertEquals(smi.options, ["ro", "nosuid", "nodev", "rbind", "rprivate"]);
  assertEquals(spec.hooks, undefined, "spec mode adds no hook: the shim itself makes the /proc view");
  // The /proc/driver/nvidia view: ModifyDeviceFiles off, only the container's own GPU, read-only.
  assertStringIncludes(r.stdout, "==proc\nModifyDeviceFiles: 0\n0000:11:00.0\n1\n==end");
  assertEquals(hostMounts(), mounts, "the host's mount table is unchanged");
  const done = logLines(`${tmp.path}/gpuctl.log`).find((l) => l.msg === "GPU container prepared");
  assert(done !== undefined, "a 'GPU container prepared' log line");
  // files: the links and the linker cache, written while runc creates the container.
  assertEquals(Object.keys(done.ms as object), ["start", "plan", "edit", "files", "runc", "view"]);
});

Deno.test("shim (spec mode): a rootfs file that fails while runc creates the container deletes it; nothing is left", async () => {
  using tmp = tempDir();
  const { shim } = await setup(tmp.path);
  const mounts = hostMounts();
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: ["/bin/sh", "-c", "echo STARTED"],
    env: ["NVIDIA_VISIBLE_DEVICES=0"],
    // Where gpuctl puts the libcuda.so link, the image has a directory.
    prepare: (r) => Deno.mkdirSync(`${r}/usr/lib/x86_64-linux-gnu/libcuda.so`, { recursive: true }),
  });
  const r = await runcLifecycle(b, shim);
  assert(r.code !== 0, "the container must not start");
  assertEquals(r.stdout.includes("STARTED"), false);
  assertEquals(r.stderr.trim().split("\n").length, 1, r.stderr);
  assertStringIncludes(r.stderr, "/usr/lib/x86_64-linux-gnu/libcuda.so in the container: is a directory");
  const list = await new Deno.Command("runc", { args: ["--root", `${b}/runc-state`, "list", "-q"] }).output();
  assertEquals(new TextDecoder().decode(list.stdout), "", "runc has no container left");
  assertEquals(hostMounts(), mounts, "the host's mount table is unchanged");
});

Deno.test("shim (spec mode, runc run): the /proc view comes from one createContainer hook, with an explicit env", async () => {
  using tmp = tempDir();
  const { shim } = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: ["/bin/sh", "-c", CHECK],
    env: ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "LD_PRELOAD=/x.so"],
  });
  const r = await runcRun(b, 60_000, shim);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "==proc\nModifyDeviceFiles: 0\n0000:10:00.0\n1\n==end");
  const spec = JSON.parse(Deno.readTextFileSync(`${b}/config.json`));
  assertEquals(spec.hooks.createContainer.length, 1);
  assertEquals(spec.hooks.createContainer[0].args.slice(0, 2), [
    "nvidia-container-runtime-hook",
    "container-edits",
  ]);
  assertEquals(spec.hooks.createContainer[0].env, [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `GPUCTL_CONFIG=${tmp.path}/gpuctl.jsonc`,
  ]);
});

Deno.test("shim: a container without a GPU request keeps a byte-identical config.json", async () => {
  using tmp = tempDir();
  const { shim } = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, { args: ["/bin/sh", "-c", "ls /dev"] });
  const before = Deno.readFileSync(`${b}/config.json`);
  const r = await runcRun(b, 60_000, shim);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.includes("nvidia"), false);
  assertEquals(Deno.readFileSync(`${b}/config.json`), before);
});

Deno.test("shim (hook mode): only the prestart hook is added, with an explicit environment", async () => {
  using tmp = tempDir();
  const hook = hookLauncher(tmp.path);
  const { shim } = await setup(tmp.path, { mode: "hook", hookPath: hook });
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: ["/bin/sh", "-c", "nvml-probe -L"],
    env: ["NVIDIA_VISIBLE_DEVICES=all", "LD_PRELOAD=/x.so"],
  });
  const r = await runcRun(b, 60_000, shim);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "GPU 0:");
  assertStringIncludes(r.stdout, "GPU 1:");
  const spec = JSON.parse(Deno.readTextFileSync(`${b}/config.json`));
  assertEquals(spec.hooks.prestart.length, 1);
  assertEquals(spec.hooks.prestart[0].args, ["nvidia-container-runtime-hook", "prestart"]);
  assertEquals(spec.hooks.prestart[0].env, [
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    `GPUCTL_CONFIG=${tmp.path}/gpuctl.jsonc`,
  ]);
  assertEquals(spec.linux.devices ?? [], [], "hook mode leaves the devices to the hook");
});

Deno.test("shim: a bad request is refused before runc, and the message reaches runc's --log file", async () => {
  using tmp = tempDir();
  const { shim } = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, {
    args: ["/bin/sh", "-c", "echo STARTED"],
    env: ["NVIDIA_VISIBLE_DEVICES=GPU-nope"],
  });
  const before = Deno.readFileSync(`${b}/config.json`);
  const r = await runcRun(b, 60_000, shim, ["--log", `${tmp.path}/runc.log`, "--log-format", "json"]);
  assert(r.code !== 0);
  assertEquals(r.stdout.includes("STARTED"), false);
  const msg =
    'gpuctl: NVIDIA_VISIBLE_DEVICES: unknown device "GPU-nope" (this host has GPUs 0, 1 and MIG devices 1:0, 1:1)';
  assertStringIncludes(r.stderr, msg);
  const log = Deno.readTextFileSync(`${tmp.path}/runc.log`).trim().split("\n").map((l) => JSON.parse(l));
  assertEquals([log.at(-1).level, log.at(-1).msg], ["error", msg]);
  assertEquals(
    Deno.readFileSync(`${b}/config.json`),
    before,
    "a refused request leaves config.json as it was",
  );
});

Deno.test("shim: malformed config.json is refused with a clear error; unknown fields are kept when editing", async () => {
  using tmp = tempDir();
  const { shim } = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: ["/bin/true"],
    env: ["NVIDIA_VISIBLE_DEVICES=0"],
    edit: (c) => {
      c["org.example.unknown"] = { big: 1 };
    },
  });
  // A number beyond 2^53 must survive the edit byte for byte.
  const text = Deno.readTextFileSync(`${b}/config.json`).replace('"big": 1', '"big": 18446744073709551615');
  Deno.writeTextFileSync(`${b}/config.json`, text);
  const r = await runcRun(b, 60_000, shim);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(Deno.readTextFileSync(`${b}/config.json`), '"big": 18446744073709551615');

  Deno.writeTextFileSync(
    `${b}/config.json`,
    '{"process": {"env": ["NVIDIA_VISIBLE_DEVICES=0"]}, "mounts": 3}',
  );
  const bad = await runcRun(b, 60_000, shim);
  assert(bad.code !== 0);
  assertStringIncludes(bad.stderr, `gpuctl: ${b}/config.json: "mounts" is not a list`);
});
