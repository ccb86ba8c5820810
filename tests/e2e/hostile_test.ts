/**
 * Hostile images and environments against the hook under real runc. After each, a canary directory on the host
 * is unchanged and the host's mount table is identical: a write lands inside the rootfs, or the container is
 * refused with one line.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { PROJECT, snapshot, tempDir } from "../helpers.ts";
import { gpuctlEnvList, hookLauncher, hostMounts, makeBundle, runcRun } from "./bundle.ts";

interface Case {
  name: string;
  prepare: (rootfs: string, canary: string) => void;
  env?: string[];
  args?: string;
  /** `ok` and what stdout must show, or the refusal stderr must contain. */
  expect: { ok: string[] } | { refused: string };
}

const CASES: Case[] = [
  {
    name: "library dir is an absolute symlink to /",
    prepare: (r) => {
      Deno.mkdirSync(`${r}/usr/lib`, { recursive: true });
      Deno.symlinkSync("/", `${r}/usr/lib/x86_64-linux-gnu`);
    },
    args: "nvidia-smi -L; ls /libcuda.so.1 /libnvidia-ml.so.580.95.05",
    expect: { ok: ["GPU 0: NVIDIA H100", "/libcuda.so.1", "/libnvidia-ml.so.580.95.05"] },
  },
  {
    name: "/usr/bin is a ../ chain to a host directory",
    prepare: (r, canary) => {
      Deno.mkdirSync(`${r}/usr`, { recursive: true });
      Deno.symlinkSync(`../../../../../../../../../../..${canary}`, `${r}/usr/bin`);
    },
    args: `ls ${"$"}(readlink -f /usr/bin)/nvidia-smi && /usr/bin/nvidia-smi -L`,
    expect: { ok: ["nvidia-smi", "GPU 1: NVIDIA A100"] },
  },
  {
    name: "firmware dir routed through the /proc/self/root magic link",
    prepare: (r, canary) => {
      Deno.mkdirSync(`${r}/lib`, { recursive: true });
      Deno.symlinkSync(`/proc/self/root${canary}`, `${r}/lib/firmware`);
    },
    expect: {
      refused: "gpuctl: /proc/self in the container: is a symlink that cannot be followed inside the rootfs",
    },
  },
  {
    name: "ld.so.cache routed through the /proc/1/cwd magic link",
    prepare: (r, canary) => {
      Deno.symlinkSync(`/proc/1/cwd${canary}/secret`, `${r}/etc/ld.so.cache`);
    },
    expect: { refused: "crosses a symlink loop or a magic link; refusing" },
  },
  {
    name: "ld.so.cache is an absolute symlink to a host file",
    prepare: (r, canary) => {
      Deno.symlinkSync(`${canary}/secret`, `${r}/etc/ld.so.cache`);
    },
    args: "nvml-probe -L; test -L /etc/ld.so.cache && echo STILL-LINK || echo REPLACED",
    expect: { ok: ["GPU 0:", "REPLACED"] },
  },
  {
    name: "nvidia-smi target is a FIFO",
    prepare: (r) => {
      Deno.mkdirSync(`${r}/usr/bin`, { recursive: true });
      assert(new Deno.Command("mkfifo", { args: [`${r}/usr/bin/nvidia-smi`] }).outputSync().success);
    },
    expect: {
      refused:
        "/usr/bin/nvidia-smi in the container: is a fifo in the image, not a file; refusing to mount over it",
    },
  },
  {
    name: "image ships its own nvidia-smi and libnvidia-ml.so.1",
    prepare: (r) => {
      Deno.mkdirSync(`${r}/usr/bin`, { recursive: true });
      Deno.mkdirSync(`${r}/usr/lib/x86_64-linux-gnu`, { recursive: true });
      Deno.writeTextFileSync(`${r}/usr/bin/nvidia-smi`, "#!/bin/sh\necho IMAGE-SMI\n", { mode: 0o755 });
      Deno.writeTextFileSync(`${r}/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.470.1`, "not a library");
      Deno.symlinkSync("libnvidia-ml.so.470.1", `${r}/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1`);
    },
    args: "nvidia-smi -L; nvml-probe -L",
    expect: { ok: ["GPU 0: NVIDIA H100", "GPU 1: NVIDIA A100"] },
  },
  {
    name: "hostile container environment",
    prepare: () => {},
    env: [
      "LD_PRELOAD=/proc/self/cwd/poc.so",
      "LD_LIBRARY_PATH=/tmp",
      "NODE_OPTIONS=--require=/proc/self/cwd/x.js",
      `HUGE=${"x".repeat(120_000)}`,
      "BIN=\u0001\u0002\u00ff",
    ],
    args: "nvml-probe -L",
    expect: { ok: ["GPU 0:", "GPU 1:"] },
  },
];

for (const c of CASES) {
  Deno.test(`hostile: ${c.name}`, async () => {
    using tmp = tempDir();
    const d = await fakeDriver(standardSpec(2));
    const canary = `${tmp.path}/canary`;
    Deno.mkdirSync(canary);
    Deno.writeTextFileSync(`${canary}/secret`, "host secret\n");
    const config = `${tmp.path}/gpuctl.jsonc`;
    Deno.writeTextFileSync(config, fixtureConfig(d));
    const before = snapshot(canary), mounts = hostMounts();
    const b = await makeBundle(`${tmp.path}/b`, {
      debian: true,
      args: ["/bin/sh", "-c", (c.args ?? "echo STARTED") + "; echo ==end"],
      env: ["NVIDIA_VISIBLE_DEVICES=all", ...(c.env ?? [])],
      hook: { env: gpuctlEnvList(config) },
      prepare: (r) => c.prepare(r, canary),
    });
    const r = await runcRun(b);
    if ("ok" in c.expect) {
      assertEquals(r.code, 0, r.stderr);
      for (const s of c.expect.ok) assertStringIncludes(r.stdout, s);
    } else {
      assert(r.code !== 0, `must be refused: ${r.stdout}`);
      assertEquals(r.stdout.includes("==end"), false);
      assertStringIncludes(r.stderr, c.expect.refused);
    }
    assertEquals(snapshot(canary), before, "host canary unchanged");
    assertEquals(hostMounts(), mounts, "host mount table unchanged");
  });
}

Deno.test("hostile: LD_PRELOAD in the hook's own environment does not reach the hook that does the work", async () => {
  using tmp = tempDir();
  const d = await fakeDriver(standardSpec(1));
  const config = `${tmp.path}/gpuctl.jsonc`;
  Deno.writeTextFileSync(config, fixtureConfig(d));
  // A preload library that records every process it is loaded into, and whether that process was re-executed.
  Deno.writeTextFileSync(
    `${tmp.path}/spy.c`,
    `#include <stdio.h>\n#include <stdlib.h>\n#include <unistd.h>\n__attribute__((constructor)) static void spy(void) {\n` +
      `  FILE *f = fopen("${tmp.path}/spy.log", "a"); if (!f) return;\n` +
      `  const char *s = getenv("GPUCTL_SANITIZED"); fprintf(f, "pid=%d sanitized=%s\\n", getpid(), s ? s : "no"); fclose(f); }\n`,
  );
  const cc = await new Deno.Command("gcc", {
    args: ["-shared", "-fPIC", "-o", `${tmp.path}/spy.so`, `${tmp.path}/spy.c`],
  }).output();
  assert(cc.success);
  // The launcher execs deno directly, so the preload is in the hook process from its first instruction.
  const launcher = hookLauncher(tmp.path, `${PROJECT}/cli/main.ts`);
  const b = await makeBundle(`${tmp.path}/b`, {
    args: ["/bin/sh", "-c", "nvml-probe -L"],
    env: ["NVIDIA_VISIBLE_DEVICES=0"],
    hook: {
      path: launcher,
      env: gpuctlEnvList(
        config,
        `LD_PRELOAD=${tmp.path}/spy.so`,
        "LD_LIBRARY_PATH=/nonexistent",
        "NODE_OPTIONS=--x",
        "DENO_NO_UPDATE_CHECK=1",
      ),
    },
  });
  const r = await runcRun(b);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "GPU 0:");
  const log = Deno.readTextFileSync(`${tmp.path}/spy.log`).trim().split("\n");
  // Loaded into the shell launcher and the first deno process; never into the re-executed, sanitized hook.
  assert(log.length >= 1, log.join("\n"));
  assertEquals(log.filter((l) => l.endsWith("sanitized=1")), [], log.join("\n"));
});
