/**
 * The prestart hook end to end: real runc, a busybox+glibc bundle, the fake driver, gpuctl as
 * `nvidia-container-runtime-hook prestart`.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "../assert.ts";
import { fakeDriver, standardSpec } from "../fixtures/driver.ts";
import { logLines, tempDir } from "../helpers.ts";
import { gpuctlEnvList, hostMounts, makeBundle, runcRun, writeDebugConfig } from "./bundle.ts";

async function setup(tmp: string, extra: Record<string, unknown> = {}) {
  const d = await fakeDriver(standardSpec(2));
  const config = writeDebugConfig(`${tmp}/gpuctl.jsonc`, d, `${tmp}/gpuctl.log`, extra);
  const hookEnv = gpuctlEnvList(config, "PATH=/usr/bin:/bin");
  return { d, config, hookEnv };
}

const CHECK = [
  "echo ==smi; nvidia-smi -L",
  "echo ==probe; nvml-probe -L",
  "echo ==dev; ls /dev | grep nvidia",
  "echo ==caps; ls /dev/nvidia-caps 2>&1",
  "echo ==ldconfig; ldconfig -p | grep -E 'nvidia|cuda'",
  "echo ==proc; cat /proc/driver/nvidia/version; grep ModifyDeviceFiles /proc/driver/nvidia/params; ls /proc/driver/nvidia/gpus",
  "echo ==fw; ls /lib/firmware/nvidia/*/",
  "echo ==open; cat /dev/nvidia0 2>&1; cat /dev/nvidiactl 2>&1",
  "echo ==ro; touch /usr/bin/nvidia-smi 2>&1 || echo read-only",
  "echo ==mps; test -d /tmp/nvidia-mps && echo mps-is-a-directory",
  "echo ==end",
].join("; ");

Deno.test("hook: runc + prestart hook gives a Debian-style image the fake GPUs, libraries, nodes and /proc files", async () => {
  using tmp = tempDir();
  const { hookEnv } = await setup(tmp.path);
  const before = hostMounts();
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: ["/bin/sh", "-c", CHECK],
    env: ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
    hook: { env: hookEnv },
  });
  const r = await runcRun(b);
  assertEquals(r.code, 0, r.stderr);
  const out = r.stdout;
  assertStringIncludes(out, "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-00000000-1111-2222-3333-444455556600)");
  assertStringIncludes(out, "GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-01000000-1111-2222-3333-444455556601)");
  assertStringIncludes(out, "  MIG Device 0: (UUID: MIG-01000000-aaaa-bbbb-cccc-dddd00000000)");
  const probe = out.split("==probe\n")[1]!.split("==dev")[0]!;
  assertEquals(probe.split("\n").filter((l) => l.startsWith("GPU ")).length, 2, probe);
  const dev = out.split("==dev\n")[1]!.split("==caps")[0]!.trim().split("\n").sort();
  assertEquals(dev, ["nvidia-caps", "nvidia-uvm", "nvidia-uvm-tools", "nvidia0", "nvidia1", "nvidiactl"]);
  assertStringIncludes(
    out,
    "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
  );
  assertStringIncludes(out, "libcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1");
  assertStringIncludes(out, "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05");
  assertStringIncludes(out, "ModifyDeviceFiles: 0");
  assertStringIncludes(out, "0000:10:00.0\n0000:11:00.0");
  assertStringIncludes(out, "gsp_ga10x.bin");
  // The device cgroup lets the container open the node: the kernel answers "no such device" (there is no real
  // GPU behind the fake node), not "operation not permitted".
  assertMatch(out, /==open\ncat: can't open '\/dev\/nvidia0': No such device or address/);
  assertStringIncludes(out, "read-only");
  // The MPS pipe directory (an IPC endpoint that is a directory) is mounted as one.
  assertStringIncludes(out, "mps-is-a-directory");
  assertStringIncludes(out, "==end");
  assertEquals(hostMounts(), before, "the host's mount table is unchanged");
  // The log says what was injected and where the time went.
  const done = logLines(`${tmp.path}/gpuctl.log`).find((l) => l.msg === "GPUs injected");
  assert(done !== undefined, "a 'GPUs injected' log line");
  assertEquals(Object.keys(done.ms as object), ["start", "load", "plan", "apply"]);
  assert(Object.values(done.ms as Record<string, number>).every((v) => v >= 0 && v < 60_000));
});

Deno.test("hook: a lib64 image finds the injected libraries only through the ld.so.cache gpuctl writes", async () => {
  using tmp = tempDir();
  const { hookEnv } = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: false,
    args: ["/bin/sh", "-c", "nvml-probe -L; ldconfig -p | grep libnvidia-ml; ls -l /usr/lib64 | grep -c so"],
    env: ["NVIDIA_VISIBLE_DEVICES=0"],
    hook: { env: hookEnv },
  });
  const r = await runcRun(b);
  assertEquals(r.code, 0, r.stderr + r.stdout);
  // /usr/lib64 is not in this glibc's default search path: the probe finds NVML through the cache alone.
  assertStringIncludes(r.stdout, "GPU 0: NVIDIA H100 80GB HBM3");
  assertEquals(r.stdout.includes("GPU 1:"), false, "only the requested GPU");
  assertStringIncludes(r.stdout, "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib64/libnvidia-ml.so.1");
});

Deno.test("hook: the next container of an image gets the linker cache merged for the first, and finds its libraries", async () => {
  using tmp = tempDir();
  // A cacheDir of this test's own: the kept merges are per host, not per fixture.
  const { hookEnv } = await setup(tmp.path, { cacheDir: `${tmp.path}/cache` });
  const caches: Uint8Array[] = [];
  for (const n of [1, 2]) {
    const b = await makeBundle(`${tmp.path}/b${n}`, {
      debian: true,
      // An image with a linker cache of its own (this machine's) for gpuctl to merge into.
      prepare: (rootfs) => Deno.copyFileSync("/etc/ld.so.cache", `${rootfs}/etc/ld.so.cache`),
      args: ["/bin/sh", "-c", "nvml-probe -L; ldconfig -p | grep libnvidia-ml"],
      env: ["NVIDIA_VISIBLE_DEVICES=0"],
      hook: { env: hookEnv },
    });
    const r = await runcRun(b);
    assertEquals(r.code, 0, r.stderr + r.stdout);
    assertStringIncludes(r.stdout, "GPU 0: NVIDIA H100 80GB HBM3");
    assertStringIncludes(
      r.stdout,
      "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    );
    caches.push(Deno.readFileSync(`${b}/rootfs/etc/ld.so.cache`));
  }
  assertEquals(caches[1], caches[0], "the same cache, byte for byte");
  const msgs = logLines(`${tmp.path}/gpuctl.log`).map((l) => l.msg);
  assertEquals(msgs.filter((m) => m === "ld.so.cache updated").length, 1, "merged once");
  assertEquals(msgs.filter((m) => m === "ld.so.cache updated from a kept merge").length, 1, "then kept");
  assert([...Deno.readDirSync(`${tmp.path}/cache`)].some((e) => /^ldcache-[0-9a-f]{2}\.bin$/.test(e.name)));
});

Deno.test("hook: a container without NVIDIA_* is left alone", async () => {
  using tmp = tempDir();
  const { hookEnv } = await setup(tmp.path);
  const b = await makeBundle(`${tmp.path}/b`, {
    debian: true,
    args: [
      "/bin/sh",
      "-c",
      "ls /dev; ls /usr/lib/x86_64-linux-gnu 2>&1; test -e /etc/ld.so.cache && echo HAS-CACHE || echo NO-CACHE",
    ],
    hook: { env: hookEnv },
  });
  const r = await runcRun(b);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.includes("nvidia"), false, r.stdout);
  assertStringIncludes(r.stdout, "NO-CACHE");
});

Deno.test("hook: an unknown GPU and an unmet requirement stop the container with one clear line", async () => {
  using tmp = tempDir();
  const { hookEnv } = await setup(tmp.path);
  let n = 0;
  for (
    const [env, msg] of [
      [
        ["NVIDIA_VISIBLE_DEVICES=17"],
        'gpuctl: NVIDIA_VISIBLE_DEVICES: unknown device "17" (this host has GPUs 0, 1 and MIG devices 1:0, 1:1)',
      ],
      [
        ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_REQUIRE_CUDA=cuda>=99.0"],
        'gpuctl: NVIDIA_REQUIRE_CUDA: unsatisfied requirement "cuda>=99.0": this host has cuda 13.0, driver 580.95.05, arch 9.0, brand nvidia',
      ],
      [
        ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,opengl"],
        'gpuctl: NVIDIA_DRIVER_CAPABILITIES: unknown capability "opengl"',
      ],
    ] as const
  ) {
    const b = await makeBundle(`${tmp.path}/b${n++}`, {
      args: ["/bin/sh", "-c", "echo STARTED"],
      env: [...env],
      hook: { env: hookEnv },
    });
    const r = await runcRun(b);
    assert(r.code !== 0, `container must not start: ${r.stdout}`);
    assertEquals(r.stdout.includes("STARTED"), false);
    // runc quotes the hook's stderr in its own message, escaping quotes.
    assertStringIncludes(r.stderr.replaceAll('\\"', '"'), msg);
  }
});
