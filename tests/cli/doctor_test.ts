/**
 * `gpuctl doctor` on a healthy fake host and on copies broken one way each: it names exactly that problem, with the
 * fix, and nothing else fails (golden text in golden/doctor/<case>.out, JSON for some). `gpuctl system
 * create-device-nodes` and `create-dev-char-symlinks` repair a fake dev root, and change nothing the second time.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { copyDriver, fakeDriver, fixtureConfig, MAJORS, standardSpec } from "../fixtures/driver.ts";
import { editFront, PROJECT, runGpuctl, tempDir } from "../helpers.ts";
import { devMajor, devMinor } from "../../devices/nodes.ts";

const UPDATE = Deno.env.get("GPUCTL_UPDATE_GOLDEN") === "1";
const LIB = "root/usr/lib/x86_64-linux-gnu";

interface Host {
  dir: string;
  env: Record<string, string>;
  args: string[];
  gpuctl(args: string[]): ReturnType<typeof runGpuctl>;
}

/** A healthy fake host in `dir`: driver, gpuctl installed, docker and containerd configured, a CDI spec, /dev/char. */
async function healthyHost(dir: string): Promise<Host> {
  const d = await copyDriver(await fakeDriver(standardSpec(2, { mig: false })), `${dir}/driver`);
  Deno.mkdirSync(`${dir}/sys/fs/cgroup`, { recursive: true });
  Deno.writeTextFileSync(`${dir}/sys/fs/cgroup/cgroup.controllers`, "cpu memory pids\n");
  Deno.mkdirSync(`${dir}/cdi`);
  // The low-level runtime: a stand-in that says what runc says (the host's own runc may be any version).
  Deno.writeTextFileSync(`${dir}/runc`, '#!/bin/sh\necho "runc version 1.2.5"\necho "spec: 1.2.0"\n', {
    mode: 0o755,
  });
  const config = `${dir}/gpuctl.jsonc`;
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, {
      sysRoot: `${dir}/sys`,
      cdiSpecDirs: [`${dir}/cdi`],
      cacheDir: `${dir}/cache`,
      pluginsDir: `${dir}/plugins.d`,
      runtimes: [`${dir}/runc`],
    }),
  );
  const env = { ...d.env, GPUCTL_CONFIG: config };
  const gpuctl = (args: string[]) => runGpuctl(args, { env });
  const must = async (args: string[]) => {
    const r = await gpuctl(args);
    assertEquals(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  await must(["install", "--prefix", `${dir}/bin`]);
  await must([
    "configure",
    "docker",
    "--config",
    `${dir}/daemon.json`,
    "--runtime-path",
    `${dir}/bin/gpuctl-runtime`,
  ]);
  Deno.writeTextFileSync(
    `${dir}/config.toml`,
    'version = 2\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n',
  );
  await must([
    "configure",
    "containerd",
    "--config",
    `${dir}/config.toml`,
    "--drop-in",
    `${dir}/conf.d/99-gpuctl.toml`,
    "--runtime-path",
    `${dir}/bin/gpuctl-runtime`,
  ]);
  await must([
    "cdi",
    "generate",
    "--output",
    `${dir}/cdi/nvidia.json`,
    "--hook-path",
    `${dir}/bin/nvidia-container-runtime-hook`,
  ]);
  await must(["system", "create-dev-char-symlinks"]);
  const args = [
    "doctor",
    "--engine",
    "docker,containerd,podman",
    "--prefix",
    `${dir}/bin`,
    "--docker-config",
    `${dir}/daemon.json`,
    "--containerd-config",
    `${dir}/config.toml`,
    "--podman-cdi-dirs",
    `${dir}/cdi`,
  ];
  return { dir, env, args, gpuctl };
}

/** Changes the host's gpuctl configuration, then installs again (the fronts are written from it). */
async function editConfig(h: Host, change: (c: Record<string, unknown>) => void): Promise<void> {
  const file = h.env.GPUCTL_CONFIG!;
  const c = JSON.parse(Deno.readTextFileSync(file));
  change(c);
  Deno.writeTextFileSync(file, JSON.stringify(c, null, 2));
  const r = await h.gpuctl(["install", "--prefix", `${h.dir}/bin`]);
  assertEquals(r.code, 0, r.stderr);
}

interface Case {
  name: string;
  /** Breaks the healthy host one way. */
  breakIt?: (h: Host) => void | Promise<void>;
  /** The checks that must not be ok, with their status; every other check is ok (or skipped, when listed). */
  expect: Record<string, "warn" | "fail" | "skip">;
  code: number;
  json?: boolean;
}

const mknod = async (path: string, major: number, minor: number) => {
  const o = await new Deno.Command("mknod", { args: ["-m", "666", path, "c", String(major), String(minor)] })
    .output();
  assert(o.success, "mknod");
};

const CASES: Case[] = [
  { name: "healthy", expect: {}, code: 0, json: true },
  {
    name: "no-kernel-driver",
    breakIt: (h) => Deno.removeSync(`${h.dir}/driver/proc/driver/nvidia/version`),
    expect: { "driver.kernel": "fail", "devices.nodes": "skip", "cdi.specs": "skip" },
    code: 1,
    json: true,
  },
  {
    name: "kernel-575-libraries-580",
    breakIt: (h) => {
      const f = `${h.dir}/driver/proc/driver/nvidia/version`;
      Deno.writeTextFileSync(f, Deno.readTextFileSync(f).replace("580.95.05", "575.51.03"));
    },
    expect: { "driver.libraries": "fail", nvml: "skip", plan: "skip", "cdi.specs": "skip" },
    code: 1,
  },
  {
    name: "nvml-missing",
    breakIt: (h) => {
      for (const e of Deno.readDirSync(`${h.dir}/driver/${LIB}`)) {
        if (e.name.startsWith("libnvidia-ml.so")) Deno.removeSync(`${h.dir}/driver/${LIB}/${e.name}`);
      }
    },
    expect: { "driver.libraries": "skip", nvml: "fail", plan: "skip", "cdi.specs": "skip" },
    code: 1,
  },
  {
    name: "uvm-node-missing",
    breakIt: (h) => Deno.removeSync(`${h.dir}/driver/dev/nvidia-uvm`),
    expect: { "devices.nodes": "fail", "cdi.specs": "skip" },
    code: 1,
  },
  {
    name: "node-with-wrong-major",
    breakIt: async (h) => {
      Deno.removeSync(`${h.dir}/driver/dev/nvidia0`);
      await mknod(`${h.dir}/driver/dev/nvidia0`, 10, 0);
    },
    expect: { "devices.nodes": "fail", "cdi.specs": "skip" },
    code: 1,
  },
  {
    name: "char-links-missing",
    breakIt: (h) => Deno.removeSync(`${h.dir}/driver/dev/char`, { recursive: true }),
    expect: { "devices.char-links": "warn" },
    code: 3,
  },
  {
    name: "docker-runtime-path-missing",
    breakIt: (h) => {
      const f = `${h.dir}/daemon.json`;
      Deno.writeTextFileSync(
        f,
        Deno.readTextFileSync(f).replace(`${h.dir}/bin/gpuctl-runtime`, "/opt/gone/gpuctl-runtime"),
      );
    },
    expect: { "engine.docker": "fail" },
    code: 1,
    json: true,
  },
  {
    name: "containerd-without-systemdcgroup",
    breakIt: (h) => {
      const f = `${h.dir}/conf.d/99-gpuctl.toml`;
      const t = Deno.readTextFileSync(f);
      const at = t.indexOf("runtimes.nvidia.options]");
      Deno.writeTextFileSync(f, t.slice(0, at) + t.slice(at).replace("SystemdCgroup = true\n", ""));
    },
    expect: { "engine.containerd": "fail" },
    code: 1,
  },
  {
    name: "runc-1.1.5",
    breakIt: (h) => Deno.writeTextFileSync(`${h.dir}/runc`, '#!/bin/sh\necho "runc version 1.1.5+ds1"\n'),
    expect: { runtime: "warn" },
    code: 3,
  },
  {
    // The race CVE-2024-45310 needs is in spec mode; in hook mode the old runc is no reason to warn.
    name: "runc-1.1.5-hook-mode",
    breakIt: async (h) => {
      Deno.writeTextFileSync(`${h.dir}/runc`, '#!/bin/sh\necho "runc version 1.1.5+ds1"\n');
      await editConfig(h, (c) => (c.mode = "hook"));
    },
    expect: {},
    code: 0,
  },
  {
    // gpuctl reads the spec where it is; Podman 4 reads only its own directories.
    name: "podman-spec-where-podman-does-not-look",
    breakIt: async (h) => {
      Deno.mkdirSync(`${h.dir}/other`);
      Deno.renameSync(`${h.dir}/cdi/nvidia.json`, `${h.dir}/other/nvidia.json`);
      await editConfig(h, (c) => (c.cdiSpecDirs = [`${h.dir}/other`]));
    },
    expect: { "engine.podman": "warn" },
    code: 3,
  },
  {
    // NVML answers, with no GPU: the plan is still tried.
    name: "nvml-sees-no-gpu",
    breakIt: (h) => {
      const f = h.env.GPUCTL_FAKE_NVML_CONFIG!;
      Deno.writeTextFileSync(f, JSON.stringify({ ...JSON.parse(Deno.readTextFileSync(f)), gpus: [] }));
    },
    expect: { nvml: "warn" },
    code: 3,
  },
  {
    name: "hook-link-missing",
    breakIt: (h) => Deno.removeSync(`${h.dir}/bin/nvidia-container-runtime-hook`),
    // The CDI spec names that hook too.
    expect: { "gpuctl.links": "warn", "cdi.specs": "fail" },
    code: 1,
  },
  {
    // The fronts were written by a gpuctl whose file is gone (a checkout deleted, a copy removed by hand).
    name: "front-target-gone",
    breakIt: (h) => {
      for (const n of ["gpuctl-runtime", "nvidia-container-runtime-hook"]) {
        editFront(`${h.dir}/bin/${n}`, (text) => {
          const gpuctl = /^gpuctl\(\) \{ exec '([^']+)'/m.exec(text)![1]!;
          return text.replaceAll(`'${gpuctl}'`, `'${h.dir}/deleted/gpuctl'`);
        });
      }
    },
    expect: { "gpuctl.links": "fail" },
    code: 1,
  },
  {
    name: "cdi-hook-gone",
    breakIt: (h) => {
      const f = `${h.dir}/cdi/nvidia.json`;
      Deno.writeTextFileSync(f, Deno.readTextFileSync(f).replaceAll(`${h.dir}/bin/`, `${h.dir}/old-bin/`));
    },
    expect: { "cdi.specs": "fail" },
    code: 1,
  },
  {
    name: "plugin-with-an-error",
    breakIt: (h) => {
      Deno.mkdirSync(`${h.dir}/plugins.d`, { recursive: true });
      Deno.writeTextFileSync(
        `${h.dir}/plugins.d/ib.jsonc`,
        '{\n  "capability": "infiniband",\n  "libraries": 3\n}\n',
      );
    },
    expect: { "gpuctl.plugins": "fail", plan: "fail" },
    code: 1,
  },
  {
    name: "cdi-spec-older-than-driver",
    breakIt: (h) => {
      const f = `${h.dir}/cdi/nvidia.json`;
      Deno.writeTextFileSync(f, Deno.readTextFileSync(f).replaceAll("580.95.05", "575.51.03"));
    },
    expect: { "cdi.specs": "fail" },
    code: 1,
  },
];

const scrub = (text: string, dir: string) =>
  text.replaceAll(dir, "{{TMP}}").replace(/, \d+ ms/g, ", N ms").replace(/"\d+ ms"/g, '"N ms"');

function golden(name: string, got: string): void {
  const file = `${PROJECT}/tests/cli/golden/doctor/${name}`;
  if (UPDATE) {
    Deno.mkdirSync(`${PROJECT}/tests/cli/golden/doctor`, { recursive: true });
    Deno.writeTextFileSync(file, got);
  } else assertEquals(got, Deno.readTextFileSync(file));
}

for (const c of CASES) {
  Deno.test(`doctor: ${c.name}`, async () => {
    using t = tempDir();
    const h = await healthyHost(t.path);
    await c.breakIt?.(h);
    const r = await h.gpuctl(h.args);
    assertEquals(r.code, c.code, r.stdout + r.stderr);
    const j = await h.gpuctl([...h.args, "--json"]);
    assertEquals(j.code, c.code);
    const report = JSON.parse(j.stdout) as {
      status: string;
      checks: { id: string; status: string; fix?: string }[];
    };
    const notOk = Object.fromEntries(
      report.checks.filter((x) => x.status !== "ok").map((x) => [x.id, x.status]),
    );
    assertEquals(notOk, c.expect, r.stdout);
    for (const x of report.checks) {
      assertEquals(x.fix !== undefined, x.status === "warn" || x.status === "fail");
    }
    golden(`${c.name}.out`, scrub(r.stdout, t.path));
    if (c.json) golden(`${c.name}.json`, scrub(j.stdout, t.path));
  });
}

Deno.test("system create-device-nodes recreates exactly the removed nodes, with their majors and modes; then changes nothing", async () => {
  using t = tempDir();
  const d = await copyDriver(await fakeDriver(standardSpec(2, { mig: false })), `${t.path}/driver`);
  const config = `${t.path}/gpuctl.jsonc`;
  Deno.writeTextFileSync(config, fixtureConfig(d));
  const env = { ...d.env, GPUCTL_CONFIG: config };
  const stat = (n: string) => {
    const s = Deno.lstatSync(`${d.dev}/${n}`);
    return {
      char: s.isCharDevice,
      major: devMajor(s.rdev ?? 0),
      minor: devMinor(s.rdev ?? 0),
      mode: (s.mode ?? 0) & 0o777,
    };
  };
  const before = { nvidia1: stat("nvidia1"), uvm: stat("nvidia-uvm"), ctl: stat("nvidiactl") };
  for (const n of ["nvidia1", "nvidia-uvm", "nvidiactl"]) Deno.removeSync(`${d.dev}/${n}`);
  const dry = await runGpuctl(["system", "create-device-nodes", "--dry-run"], { env });
  assertEquals(dry.code, 0, dry.stderr);
  assertStringIncludes(dry.stdout, `would create ${d.dev}/nvidia1  195:1`);
  assertEquals(
    [...Deno.readDirSync(d.dev)].some((e) => e.name === "nvidia1"),
    false,
    "--dry-run creates nothing",
  );
  const r = await runGpuctl(["system", "create-device-nodes"], { env });
  assertEquals(r.code, 0, r.stderr);
  const created = r.stdout.split("\n").filter((l) => l.startsWith("created")).map((l) => l.split(/\s+/)[1]);
  assertEquals(created.sort(), [`${d.dev}/nvidia-uvm`, `${d.dev}/nvidia1`, `${d.dev}/nvidiactl`]);
  assertEquals({ nvidia1: stat("nvidia1"), uvm: stat("nvidia-uvm"), ctl: stat("nvidiactl") }, before);
  assertEquals(stat("nvidia-uvm").major, MAJORS.uvm);
  const again = await runGpuctl(["system", "create-device-nodes"], { env });
  assertEquals(again.stdout.includes("created"), false, again.stdout);
  // Something that is not the node is never replaced.
  Deno.removeSync(`${d.dev}/nvidia0`);
  Deno.writeTextFileSync(`${d.dev}/nvidia0`, "");
  const refused = await runGpuctl(["system", "create-device-nodes", "--gpus"], { env });
  assertEquals(refused.code, 1);
  assertStringIncludes(refused.stdout, `refused      ${d.dev}/nvidia0  exists as not a character device`);
  assertEquals(Deno.readTextFileSync(`${d.dev}/nvidia0`), "");
});

Deno.test("system create-dev-char-symlinks links every NVIDIA node, then changes nothing; a foreign link is left", async () => {
  using t = tempDir();
  const d = await copyDriver(await fakeDriver(standardSpec(1, { mig: false })), `${t.path}/driver`);
  const config = `${t.path}/gpuctl.jsonc`;
  Deno.writeTextFileSync(config, fixtureConfig(d));
  const env = { ...d.env, GPUCTL_CONFIG: config };
  Deno.mkdirSync(`${d.dev}/char`, { recursive: true });
  Deno.symlinkSync("../elsewhere", `${d.dev}/char/195:255`);
  const r = await runGpuctl(["system", "create-dev-char-symlinks"], { env });
  assertEquals(r.code, 1, "a foreign link is reported");
  assertEquals(Deno.readLinkSync(`${d.dev}/char/195:0`), "../nvidia0");
  assertEquals(Deno.readLinkSync(`${d.dev}/char/${MAJORS.uvm}:0`), "../nvidia-uvm");
  assertEquals(Deno.readLinkSync(`${d.dev}/char/195:255`), "../elsewhere");
  const again = await runGpuctl(["system", "create-dev-char-symlinks"], { env });
  assertEquals(again.stdout.includes("created"), false);
});
