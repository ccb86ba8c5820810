/**
 * Real-host details, as units: NVIDIA's forward-compatibility rule, the kernel's firmware search path, and a
 * merged-/usr host's wrapper script listed once.
 */
import { assertEquals } from "../assert.ts";
import { useCompat } from "../../apply/compat.ts";
import { FIRMWARE_DIRS, firmwareDirs } from "../../driver/locate.ts";
import { copyDriver, fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { runGpuctl, tempDir } from "../helpers.ts";

Deno.test("useCompat(): newer majors without a note; with a note, the host's branch listed and a newer version", () => {
  const cases: [string, string, number[] | null, boolean][] = [
    ["590.10.01", "580.95.05", null, true], // a newer major
    ["580.99.01", "580.95.05", null, false], // the same major: the host's
    ["575.51.03", "580.95.05", null, false], // older
    ["580.99.01", "580.95.05", [575, 580], true], // the note lists 580, newer
    ["580.95.05", "580.95.05", [580], false], // listed, but not newer
    ["590.10.01", "580.95.05", [535, 550], false], // the note does not list 580
    ["590.10.01", "580.95.05", [], false], // an empty list supports nothing
  ];
  for (const [compat, host, branches, want] of cases) {
    assertEquals(
      useCompat(compat, host, branches),
      want,
      `${compat} on ${host} with ${JSON.stringify(branches)}`,
    );
  }
});

Deno.test("firmwareDirs(): the kernel's firmware_class.path first, then the standard directories", () => {
  using t = tempDir();
  assertEquals(firmwareDirs(`${t.path}/none`), FIRMWARE_DIRS);
  Deno.mkdirSync(`${t.path}/module/firmware_class/parameters`, { recursive: true });
  const f = `${t.path}/module/firmware_class/parameters/path`;
  Deno.writeTextFileSync(f, "/opt/fw/\n");
  assertEquals(firmwareDirs(t.path), ["/opt/fw", ...FIRMWARE_DIRS]);
  Deno.writeTextFileSync(f, "\n"); // the kernel's "unset"
  assertEquals(firmwareDirs(t.path), FIRMWARE_DIRS);
  Deno.writeTextFileSync(f, "relative/path\n");
  assertEquals(firmwareDirs(t.path), FIRMWARE_DIRS);
});

Deno.test("gpuctl list finds GSP firmware under the kernel's firmware_class.path, and mounts it at the standard place", async () => {
  using t = tempDir();
  const d = await copyDriver(await fakeDriver(standardSpec(1, { mig: false })), `${t.path}/driver`);
  Deno.mkdirSync(`${d.root}/opt/fw`, { recursive: true });
  Deno.renameSync(`${d.root}/lib/firmware/nvidia`, `${d.root}/opt/fw/nvidia`);
  Deno.mkdirSync(`${t.path}/sys/module/firmware_class/parameters`, { recursive: true });
  Deno.writeTextFileSync(`${t.path}/sys/module/firmware_class/parameters/path`, "/opt/fw\n");
  Deno.writeTextFileSync(`${t.path}/c.jsonc`, fixtureConfig(d, { sysRoot: `${t.path}/sys`, cacheDir: null }));
  const r = await runGpuctl(["list", "--capabilities", "compute,utility", "--json"], {
    env: { ...d.env, GPUCTL_CONFIG: `${t.path}/c.jsonc` },
  });
  assertEquals(r.code, 0, r.stderr);
  const firmware = (JSON.parse(r.stdout).mounts as { containerPath: string; hostPath: string }[])
    .filter((m) => m.containerPath.includes("firmware"));
  assertEquals(firmware.length > 0, true, r.stdout);
  // Found where the kernel looks; in the container at the standard place.
  for (const m of firmware) {
    assertEquals(m.hostPath.startsWith(`${d.root}/opt/fw/nvidia/580.95.05/`), true, m.hostPath);
    assertEquals(m.containerPath.startsWith("/lib/firmware/nvidia/580.95.05/"), true, m.containerPath);
  }
});

Deno.test("a merged-/usr host: a wrapper nvidia-smi seen through /bin and /usr/bin is passed over once", async () => {
  using t = tempDir();
  const d = await copyDriver(await fakeDriver(standardSpec(1, { mig: false })), `${t.path}/driver`);
  // /bin is /usr/bin; the real program lives in /usr/local/nvidia/bin, /usr/bin has a wrapper script.
  Deno.mkdirSync(`${d.root}/usr/local/nvidia/bin`, { recursive: true });
  Deno.renameSync(`${d.root}/usr/bin/nvidia-smi`, `${d.root}/usr/local/nvidia/bin/nvidia-smi`);
  Deno.writeTextFileSync(
    `${d.root}/usr/bin/nvidia-smi`,
    '#!/bin/sh\nexec /usr/local/nvidia/bin/nvidia-smi "$@"\n',
    {
      mode: 0o755,
    },
  );
  try {
    Deno.removeSync(`${d.root}/bin`, { recursive: true });
  } catch { /* none */ }
  Deno.symlinkSync("usr/bin", `${d.root}/bin`);
  Deno.writeTextFileSync(`${t.path}/c.jsonc`, fixtureConfig(d, { cacheDir: null }));
  const r = await runGpuctl(["list", "--capabilities", "utility", "--json"], {
    env: { ...d.env, GPUCTL_CONFIG: `${t.path}/c.jsonc` },
  });
  assertEquals(r.code, 0, r.stderr);
  const plan = JSON.parse(r.stdout);
  const rejected = (plan.rejected as { path: string; capability: string }[]).filter((x) =>
    x.path.endsWith("/nvidia-smi")
  );
  assertEquals(rejected.length, 1, JSON.stringify(rejected));
  const smi = (plan.mounts as { containerPath: string; hostPath: string }[]).find((m) =>
    m.containerPath === "/usr/bin/nvidia-smi"
  );
  assertEquals(smi?.hostPath, `${d.root}/usr/local/nvidia/bin/nvidia-smi`);
});

Deno.test("runcFixed(): runc 1.1.14 and later, 1.2 and later, close CVE-2024-45310", async () => {
  const { runcFixed } = await import("../../doctor/checks.ts");
  for (
    const [v, want] of [
      ["1.1.5", false],
      ["1.1.13", false],
      ["1.1.14", true],
      ["1.1.15+ds1", true],
      ["1.2.0-rc.1", true],
      ["1.0.3", false],
      ["2.0.0", true],
    ] as const
  ) {
    assertEquals(runcFixed(v), want, v);
  }
});
