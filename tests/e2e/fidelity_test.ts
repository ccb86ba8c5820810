/**
 * Real-host fidelity, in real containers, through both paths (the shim's spec mode and runc with the prestart hook):
 * CUDA forward compatibility (an image's newer compat libcuda wins, an older one does not, the note decides when
 * there is one); a driver root without a linker cache (NixOS) whose containers still load libcuda.so.1 and NVML;
 * IMEX channels and each gated device; and containers that ask for no GPU but carry other NVIDIA variables, which
 * must start untouched.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { copyDriver, type FakeDriver, fakeDriver, fixtureConfig, standardSpec } from "../fixtures/driver.ts";
import { compatLibcuda, cudaProbe } from "../fixtures/compat.ts";
import { logLines, PROJECT, tempDir } from "../helpers.ts";
import {
  gpuctlEnv,
  gpuctlEnvList,
  hookLauncher,
  makeBundle,
  runcLifecycle,
  runcRun,
  runtimeLauncher,
} from "./bundle.ts";

type Path = "shim" | "hook";
const PATHS: Path[] = ["shim", "hook"];

/** gpuctl for driver `d` in `tmp`; `run` takes a bundle through a path. */
function setup(tmp: string, d: FakeDriver, extra: Record<string, unknown> = {}) {
  const config = `${tmp}/gpuctl.jsonc`;
  const log = `${tmp}/gpuctl.log`;
  const hook = hookLauncher(tmp, `${PROJECT}/cli/main.ts`);
  Deno.writeTextFileSync(
    config,
    fixtureConfig(d, { hookPath: hook, cacheDir: `${tmp}/cache`, logFile: log, logLevel: "debug", ...extra }),
  );
  const shim = runtimeLauncher(tmp, gpuctlEnv(config));
  let n = 0;
  return {
    log,
    async run(path: Path, o: Parameters<typeof makeBundle>[1]) {
      const b = await makeBundle(`${tmp}/b${n++}-${path}`, {
        debian: true,
        ...o,
        ...(path === "hook" ? { hook: { env: gpuctlEnvList(config) } } : {}),
      });
      const before = Deno.readTextFileSync(`${b}/config.json`);
      const r = path === "shim" ? await runcLifecycle(b, shim) : await runcRun(b);
      return {
        ...r,
        bundle: b,
        configBefore: before,
        configAfter: Deno.readTextFileSync(`${b}/config.json`),
      };
    },
  };
}

const COMPAT = [
  { name: "a newer compat libcuda (590, no note)", version: "590.10.01", note: null, wins: true },
  { name: "an older compat libcuda (575, no note)", version: "575.51.03", note: null, wins: false },
  {
    name: "a compat libcuda whose note lists the host's branch (580)",
    version: "580.99.01",
    note: [575, 580],
    wins: true,
  },
  {
    name: "a newer compat libcuda whose note does not list the host's branch",
    version: "590.10.01",
    note: [535, 550],
    wins: false,
  },
];

Deno.test("CUDA forward compatibility: the image's compat libcuda wins only when NVIDIA's rule says so (shim and hook)", async (t) => {
  using tmp = tempDir();
  const d = await fakeDriver(standardSpec(1, { mig: false }));
  const e = setup(tmp.path, d);
  const probe = await cudaProbe(`${tmp.path}/cuda-probe`);
  for (const c of COMPAT) {
    const lib = await compatLibcuda(
      `${tmp.path}/compat-${c.version}-${c.note?.join("-") ?? "none"}`,
      c.version,
      c.note,
    );
    for (const path of PATHS) {
      await t.step(`${c.name}, ${path}`, async () => {
        const r = await e.run(path, {
          args: ["/bin/sh", "-c", "cuda-probe; nvml-probe -L"],
          env: ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
          prepare: (root) => {
            Deno.mkdirSync(`${root}/usr/local/cuda/compat`, { recursive: true });
            Deno.copyFileSync(lib, `${root}/usr/local/cuda/compat/libcuda.so.${c.version}`);
            Deno.symlinkSync(`libcuda.so.${c.version}`, `${root}/usr/local/cuda/compat/libcuda.so.1`);
            Deno.copyFileSync(probe, `${root}/usr/local/bin/cuda-probe`);
          },
        });
        assertEquals(r.code, 0, r.stderr);
        assertStringIncludes(
          r.stdout,
          c.wins
            ? `libcuda.so.1 -> /usr/local/cuda/compat/libcuda.so.${c.version}\n`
            : "libcuda.so.1 -> /usr/lib/x86_64-linux-gnu/libcuda.so.1\n",
        );
        assertStringIncludes(r.stdout, "GPU 0:", "NVML is the host driver's either way");
      });
    }
  }
  const decisions = logLines(e.log).filter((l) => l.msg === "CUDA forward compatibility").map((l) =>
    l.decision
  );
  assertEquals(decisions.filter((x) => x === "compat libraries first").length, 4, "logged, both paths");
  assertEquals(decisions.filter((x) => x === "host driver libraries").length, 4);
});

Deno.test("a driver root without a linker cache (NixOS): containers load libcuda.so.1 and NVML by their SONAMEs (shim and hook)", async () => {
  using tmp = tempDir();
  const d = await fakeDriver({ ...standardSpec(1, { mig: false }), layout: "nixos" });
  let cache = true;
  try {
    Deno.statSync(`${d.root}/etc/ld.so.cache`);
  } catch {
    cache = false;
  }
  assertEquals(cache, false, "the fixture has no ld.so.cache");
  const e = setup(tmp.path, d);
  const probe = await cudaProbe(`${tmp.path}/cuda-probe`);
  for (const path of PATHS) {
    const r = await e.run(path, {
      args: [
        "/bin/sh",
        "-c",
        "cuda-probe; nvml-probe -L; ldconfig -p | grep -E 'libcuda.so.1|libnvidia-ml.so.1'",
      ],
      env: ["NVIDIA_VISIBLE_DEVICES=0", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
      prepare: (root) => Deno.copyFileSync(probe, `${root}/usr/local/bin/cuda-probe`),
    });
    assertEquals(r.code, 0, r.stderr);
    assertStringIncludes(r.stdout, "libcuda.so.1 -> /usr/lib/x86_64-linux-gnu/libcuda.so.1\n");
    assertStringIncludes(r.stdout, "GPU 0:");
    assertStringIncludes(
      r.stdout,
      "libnvidia-ml.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    );
  }
});

Deno.test("IMEX channels and the gated devices (GDS, MOFED, GDRCOPY, NVSwitch) reach the container only when asked (shim and hook)", async () => {
  using tmp = tempDir();
  const d = await copyDriver(await fakeDriver(standardSpec(1, { mig: false })), `${tmp.path}/driver`);
  const mknod = async (rel: string, major: number, minor: number) => {
    Deno.mkdirSync(`${d.dev}/${rel}`.replace(/\/[^/]+$/, ""), { recursive: true });
    const o = await new Deno.Command("mknod", {
      args: ["-m", "666", `${d.dev}/${rel}`, "c", String(major), String(minor)],
    }).output();
    assert(o.success, `mknod ${rel}`);
  };
  const IMEX = 511;
  Deno.writeTextFileSync(
    `${d.proc}/devices`,
    Deno.readTextFileSync(`${d.proc}/devices`).replace(
      "Block devices:",
      `${IMEX} nvidia-caps-imex-channels\n\nBlock devices:`,
    ),
  );
  for (
    const [rel, ma, mi] of [
      ["nvidia-caps-imex-channels/channel0", IMEX, 0],
      ["nvidia-caps-imex-channels/channel1", IMEX, 1],
      ["nvidia-fs0", 240, 0],
      ["nvidia-fs1", 240, 1],
      ["infiniband/uverbs0", 231, 192],
      ["infiniband/rdma_cm", 10, 122],
      ["gdrdrv", 241, 0],
      ["nvidia-nvswitchctl", 242, 255],
      ["nvidia-nvswitch0", 242, 0],
    ] as const
  ) await mknod(rel, ma, mi);
  Deno.writeTextFileSync(`${d.root}/etc/cufile.json`, '{"logging": {"level": "ERROR"}}\n');
  Deno.mkdirSync(`${d.root}/run/udev/data`, { recursive: true });
  Deno.writeTextFileSync(`${d.root}/run/udev/data/c240:0`, "E:ID_FS=nvidia-fs\n");
  const e = setup(tmp.path, d);
  const LOOK = "ls /dev /dev/infiniband /dev/nvidia-caps-imex-channels 2>&1; cat /etc/cufile.json 2>&1; " +
    "ls /run/udev/data 2>&1; echo STARTED";
  const gated = [
    "NVIDIA_GDS=enabled",
    "NVIDIA_MOFED=enabled",
    "NVIDIA_GDRCOPY=enabled",
    "NVIDIA_NVSWITCH=enabled",
    "NVIDIA_IMEX_CHANNELS=1",
  ];
  for (const path of PATHS) {
    const r = await e.run(path, {
      args: ["/bin/sh", "-c", LOOK],
      env: ["NVIDIA_VISIBLE_DEVICES=0", ...gated],
    });
    assertEquals(r.code, 0, r.stderr);
    for (
      const n of [
        "nvidia-fs0",
        "nvidia-fs1",
        "gdrdrv",
        "nvidia-nvswitchctl",
        "nvidia-nvswitch0",
        "uverbs0",
        "rdma_cm",
      ]
    ) {
      assert(new RegExp(`^${n}$`, "m").test(r.stdout), `${path}: /dev/…/${n} is there:\n${r.stdout}`);
    }
    assert(
      /^channel1$/m.test(r.stdout) && !/^channel0$/m.test(r.stdout),
      `${path}: only IMEX channel 1:\n${r.stdout}`,
    );
    assertStringIncludes(r.stdout, '{"logging": {"level": "ERROR"}}', "GDS's cufile.json");
    assertStringIncludes(r.stdout, "c240:0", "GDS's udev data");
    const plain = await e.run(path, { args: ["/bin/sh", "-c", LOOK], env: ["NVIDIA_VISIBLE_DEVICES=0"] });
    assertEquals(plain.code, 0, plain.stderr);
    for (const n of ["nvidia-fs0", "gdrdrv", "nvidia-nvswitch0", "channel1", "uverbs0"]) {
      assertEquals(new RegExp(`^${n}$`, "m").test(plain.stdout), false, `${path}: ${n} not asked for`);
    }
  }
});

const NOT_GPU: { name: string; env: string[] }[] = [
  { name: "NVIDIA_REQUIRE_X=garbage without NVIDIA_VISIBLE_DEVICES", env: ["NVIDIA_REQUIRE_X=garbage"] },
  {
    name: "an unprivileged NVIDIA_MIG_CONFIG_DEVICES=all with NVIDIA_VISIBLE_DEVICES=void",
    env: ["NVIDIA_VISIBLE_DEVICES=void", "NVIDIA_MIG_CONFIG_DEVICES=all"],
  },
  {
    name: "NVIDIA_DRIVER_CAPABILITIES=nonsense, NVIDIA_IMEX_CHANNELS=banana without a device request",
    env: [
      "NVIDIA_DRIVER_CAPABILITIES=nonsense",
      "NVIDIA_IMEX_CHANNELS=banana",
      "NVIDIA_DISABLE_REQUIRE=maybe",
    ],
  },
  {
    name: "NVIDIA_VISIBLE_DEVICES=0,void",
    env: ["NVIDIA_VISIBLE_DEVICES=0,void", "NVIDIA_REQUIRE_CUDA=cuda>=99.0"],
  },
];

Deno.test("containers that ask for no GPU start untouched whatever other NVIDIA variables they carry (shim and hook)", async (t) => {
  using tmp = tempDir();
  const d = await fakeDriver(standardSpec(1, { mig: false }));
  const e = setup(tmp.path, d);
  for (const c of NOT_GPU) {
    for (const path of PATHS) {
      await t.step(`${c.name}, ${path}`, async () => {
        const r = await e.run(path, { args: ["/bin/sh", "-c", "ls /dev; echo STARTED"], env: c.env });
        assertEquals(r.code, 0, r.stderr);
        assertStringIncludes(r.stdout, "STARTED");
        assertEquals(/nvidia/.test(r.stdout), false, "no GPU, no driver");
        if (path === "shim") assertEquals(r.configAfter, r.configBefore, "config.json byte-identical");
      });
    }
  }
  const injected = logLines(e.log).filter((l) =>
    l.msg === "GPUs injected" || l.msg === "GPU container prepared"
  );
  assertEquals(injected, []);
});
