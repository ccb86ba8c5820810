/**
 * `deno task bench`: what gpuctl costs, as ratios against baselines timed in the same run.
 *
 * - **overhead** (the main table): per case, gpuctl's overhead over plain runc with its target — the pass-through
 *   (`state`), a container without a GPU request through the installed `gpuctl-runtime`, a GPU container through
 *   it (spec mode, warm driver snapshot) and through the prestart hook, with `gpuctl serve` running and with a
 *   gpuctl process each — with the phases from gpuctl's log; for reference an empty `deno run`, and the first GPU
 *   container with no snapshot. gpuctl is installed from `dist/gpuctl`, the artifact a host runs;
 * - **hostile**: time and peak memory on a 24 MB image linker cache and a 9,999-deep config.json;
 * - **podman**: a GPU container through CDI under Podman against a plain one, per process and served, with their
 *   targets, and gpuctl processes per container;
 * - **startup**: `gpuctl --version`, FFI load, `gpuctl info` and `list` on the fake NVML, `cdi generate` (the
 *   bundle and the artifact, whose row the target reads) against an empty `deno run`, ld.so.cache parsing;
 * - **docker**: `docker run --rm` through runc, the shim with and without a GPU, and Docker's `--gpus`;
 * - **artifact**: `dist/gpuctl` against `deno run dist/gpuctl.js`: `--version`, and a GPU container with a gpuctl
 *   process and with `gpuctl serve`, each installed from one of them.
 *
 * `BENCH_ONLY=overhead,podman` runs some sections; `BENCH_RUNS` sets the rounds. The cases of one table run
 * interleaved, round by round, so that a busy machine's slow spells fall on all of them alike.
 *
 * Runs from the project root; builds dist/gpuctl.js, dist/gpuctl (into its own directory) and the fake driver first.
 * @module
 */
import { type Case, report, timeTogether } from "./lib.ts";
import { artifactTable, firstContainer, overheadTable, printOverhead } from "./overhead.ts";
import { hostileTable, printHostile } from "./hostile.ts";
import { podmanBench, printPodman } from "./podman.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../tests/fixtures/driver.ts";

const root = new URL("../", import.meta.url).pathname;
const deno = Deno.execPath();
const runs = Number(Deno.env.get("BENCH_RUNS") ?? 15);
const only = Deno.env.get("BENCH_ONLY")?.split(",");
const want = (section: string) => only === undefined || only.includes(section);
const tmp = Deno.makeTempDirSync({ prefix: "gpuctl-bench-" });
try {
  const b = await new Deno.Command(deno, { args: ["task", "--quiet", "bundle"], cwd: root }).output();
  if (!b.success) throw new Error("deno task bundle failed");
  const bundleJs = `${root}dist/gpuctl.js`;
  // The artifact a host runs, as `deno task dist` builds it: what the overhead and Podman tables install.
  const out = `${tmp}/dist`;
  const exe = `${out}/gpuctl`;
  if (want("overhead") || want("podman") || want("artifact") || want("startup")) {
    const b = await new Deno.Command(deno, {
      args: ["run", "-A", "--quiet", `${root}tools/dist.ts`, "--only", "gpuctl", "--out", out],
    }).output();
    if (!b.success) throw new Error("deno task dist failed");
    Deno.writeTextFileSync(`${out}/.installed-by-gpuctl`, "the bench's: unpack beside it\n");
    await new Deno.Command(exe, { args: ["--version"], stdout: "null" }).output();
  }
  const results: string[] = [];
  if (want("overhead")) {
    const met = printOverhead(await overheadTable(tmp, exe, runs), runs);
    console.log(`  ${await firstContainer(tmp, bundleJs)}`);
    results.push(`overhead targets: ${met ? "all met" : "some MISSED"}`);
  }
  if (want("hostile")) {
    const r = Math.max(3, Math.floor(runs / 3));
    results.push(
      `hostile inputs: ${printHostile(await hostileTable(tmp, bundleJs, r), r) ? "bounded" : "NOT bounded"}`,
    );
  }
  if (want("artifact")) await artifactTable(tmp, bundleJs, exe, runs);
  if (want("podman")) {
    const r = Math.min(runs, 21);
    const met = printPodman(await podmanBench(tmp, exe, r), r);
    results.push(`CDI under Podman targets: ${met ? "all met" : "some MISSED"}`);
  }
  Deno.writeTextFileSync(`${tmp}/empty.ts`, "");
  Deno.writeTextFileSync(
    `${tmp}/dlopen.ts`,
    `const l = Deno.dlopen("libc.so.6", { getpid: { parameters: [], result: "i32" } }); l.symbols.getpid();\n`,
  );
  Deno.writeTextFileSync(
    `${tmp}/koffi.ts`,
    `import koffi from "koffi"; koffi.load("libc.so.6").func("getpid", "int", [])();\n`,
  );
  const d = await fakeDriver(standardSpec(8));
  Deno.writeTextFileSync(`${tmp}/config.jsonc`, fixtureConfig(d));
  const env = { GPUCTL_CONFIG: `${tmp}/config.jsonc` };
  const run = (file: string, ...a: string[]) => [deno, "run", "-A", "--quiet", file, ...a];
  const opts = { runs };

  const gpuctl = (...a: string[]) => run(`${root}dist/gpuctl.js`, ...a);
  const group = async (title: string, cases: Case[], o: { runs?: number } = opts) => {
    const [base, ...rest] = await timeTogether(cases, o);
    report(title, base!, rest);
    return [base!, ...rest];
  };

  if (want("startup")) {
    await group("start-up", [
      { name: "deno run empty.ts", cmd: run(`${tmp}/empty.ts`) },
      { name: "gpuctl --version (dist/gpuctl.js)", cmd: gpuctl("--version") },
      { name: "gpuctl --version (cli/main.ts)", cmd: run(`${root}cli/main.ts`, "--version") },
    ]);

    // koffi.ts must resolve "koffi" through the project's deno.json: run it with the project's config.
    const cfg = ["--config", `${root}deno.json`];
    await group("FFI load cost", [
      { name: "deno run empty.ts", cmd: run(`${tmp}/empty.ts`) },
      { name: "Deno.dlopen libc + getpid", cmd: [deno, "run", "-A", "--quiet", ...cfg, `${tmp}/dlopen.ts`] },
      {
        name: "koffi load libc + getpid (under Deno)",
        cmd: [deno, "run", "-A", "--quiet", ...cfg, `${tmp}/koffi.ts`],
      },
    ]);

    await group("gpuctl info on the fake NVML, 8 GPUs (dist/gpuctl.js)", [
      { name: "gpuctl --version", cmd: gpuctl("--version"), env },
      { name: "gpuctl info --json", cmd: gpuctl("info", "--json"), env },
      { name: "gpuctl info --json --source proc", cmd: gpuctl("info", "--json", "--source", "proc"), env },
      {
        name: "gpuctl info --json (koffi backend)",
        cmd: gpuctl("info", "--json"),
        env: { ...env, GPUCTL_FFI: "koffi" },
      },
    ]);

    await group("gpuctl list on the fake driver, 8 GPUs (dist/gpuctl.js)", [
      { name: "gpuctl info --json", cmd: gpuctl("info", "--json"), env },
      { name: "gpuctl list --capabilities all", cmd: gpuctl("list", "--capabilities", "all"), env },
      {
        name: "gpuctl list --capabilities all --json",
        cmd: gpuctl("list", "--capabilities", "all", "--json"),
        env,
      },
    ]);

    // cdi generate as an operator runs it, the driver snapshot warm (built in the warm-up rounds), against the
    // floor of any Deno process: through the bundle, and as a host runs it, the artifact (the target's row).
    Deno.writeTextFileSync(`${tmp}/hook`, "#!/bin/sh\n", { mode: 0o755 });
    Deno.writeTextFileSync(`${tmp}/cdi.jsonc`, fixtureConfig(d, { cacheDir: `${tmp}/cdi-cache` }));
    const generateArgs = ["cdi", "generate", "--hook-path", `${tmp}/hook`];
    const cdiEnv = { GPUCTL_CONFIG: `${tmp}/cdi.jsonc` };
    const [floor, , generate] = await group("gpuctl cdi generate on the fake driver, 8 GPUs", [
      { name: "deno run empty.ts", cmd: run(`${tmp}/empty.ts`) },
      { name: "gpuctl cdi generate (dist/gpuctl.js)", cmd: gpuctl(...generateArgs), env: cdiEnv },
      { name: "gpuctl cdi generate (dist/gpuctl)", cmd: [exe, ...generateArgs], env: cdiEnv },
    ]);
    const ratio = generate!.medianMs / floor!.medianMs;
    results.push(
      `cdi generate (dist/gpuctl): ${ratio.toFixed(2)}× an empty deno run (target ≤ 2.2×: ${
        ratio <= 2.2 ? "met" : "MISSED"
      })`,
    );

    const big = await bigCache(tmp, 5000);
    const { readLdCache } = await import("../driver/ldcache.ts");
    const parse = (file: string, n: number) => {
      const samples: number[] = [];
      let entries = 0;
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        entries = readLdCache(file).length;
        samples.push(performance.now() - t0);
      }
      samples.sort((a, b) => a - b);
      return { medianMs: samples[Math.floor(n / 2)]!, minMs: samples[0]!, entries };
    };
    const sys = parse("/etc/ld.so.cache", 50), gen = parse(big, 50);
    console.log("\nld.so.cache parsing (in process, 50 runs)");
    console.log(`  /etc/ld.so.cache (${sys.entries} entries): median ${sys.medianMs.toFixed(2)}ms`);
    console.log(
      `  generated (${gen.entries} entries): median ${gen.medianMs.toFixed(2)}ms, ${
        (gen.medianMs / sys.medianMs).toFixed(1)
      }x, ` +
        `${(gen.medianMs * 1000 / gen.entries).toFixed(2)}µs per entry`,
    );
  }
  if (want("docker")) {
    // Docker: runc; the shim (gpuctl-runtime) without and with a GPU; and Docker's own --gpus, which runs plain runc
    // with gpuctl as nvidia-container-runtime-hook (found on dockerd's PATH) for GPU containers only.
    const { Dockerd } = await import("../tests/e2e/docker.ts");
    const { gpuctlEnv } = await import("../tests/e2e/bundle.ts");
    const dk = `${tmp}/dockerd`;
    Deno.mkdirSync(dk);
    const d3 = await fakeDriver(standardSpec(1, { mig: false }));
    Deno.writeTextFileSync(`${dk}/gpuctl.jsonc`, fixtureConfig(d3));
    const dockerEnv = gpuctlEnv(`${dk}/gpuctl.jsonc`);
    // gpuctl as a host installs it: the sh front and the hook launcher, from the bundle.
    const inst = await new Deno.Command(deno, {
      args: ["run", "-A", "--quiet", bundleJs, "install", "--prefix", `${dk}/bin`],
      env: dockerEnv,
    }).output();
    if (!inst.success) throw new Error("gpuctl install failed");
    const docker = await Dockerd.start(dk, {
      args: ["--add-runtime", `gpu=${dk}/bin/gpuctl-runtime`],
      env: dockerEnv,
      pathDirs: [`${dk}/bin`],
    });
    try {
      await docker.importImage("bench/busybox");
      const dr = (...a: string[]) => ["docker", "-H", `unix://${docker.sock}`, "run", "--rm", ...a];
      const gpuEnv = ["-e", "NVIDIA_VISIBLE_DEVICES=all", "-e", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"];
      const runtimeGpu = dr("--runtime", "gpu", ...gpuEnv, "bench/busybox", "true");
      const gpusAll = dr(
        "--gpus",
        "all",
        "-e",
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        "bench/busybox",
        "true",
      );
      await group("docker run --rm: runc, the shim, the shim with a GPU, --gpus (fake driver)", [
        { name: "docker run --rm (runc)", cmd: dr("bench/busybox", "true") },
        {
          name: "docker run --rm --runtime gpu (no GPU)",
          cmd: dr("--runtime", "gpu", "bench/busybox", "true"),
        },
        {
          name: "docker run --rm --runtime gpu, 1 GPU",
          cmd: runtimeGpu,
        },
        {
          name: "docker run --rm --gpus all (runc + hook)",
          cmd: gpusAll,
        },
      ], { runs: Math.min(runs, 9) });
      const { startServe } = await import("../tests/e2e/bundle.ts");
      const server = await startServe(bundleJs, dockerEnv, `${d3.dir}/snapshots/serve`, {
        stderr: "inherit",
        prefix: docker.enter,
      });
      try {
        await group("docker run --rm with gpuctl serve running: the same GPU containers", [
          { name: "docker run --rm (runc)", cmd: dr("bench/busybox", "true") },
          {
            name: "docker run --rm --runtime gpu, 1 GPU, gpuctl serve",
            cmd: runtimeGpu,
          },
          {
            name: "docker run --rm --gpus all, gpuctl serve",
            cmd: gpusAll,
          },
        ], { runs: Math.min(runs, 9) });
      } finally {
        await server.stop();
      }
    } finally {
      await docker.stop();
    }
  }
  console.log(`\n${results.join("\n")}`);
} finally {
  Deno.removeSync(tmp, { recursive: true });
}

/** An ld.so.cache with `n` entries: copies of one stub library whose SONAME is patched per copy, then ldconfig. */
async function bigCache(dir: string, n: number): Promise<string> {
  const r = `${dir}/bigroot`;
  Deno.mkdirSync(`${r}/lib`, { recursive: true });
  Deno.mkdirSync(`${r}/etc`);
  Deno.writeTextFileSync(`${dir}/s.c`, "int f(void){return 1;}\n");
  const template = "libgpuctlbench00000.so.1";
  const ok = await new Deno.Command("gcc", {
    args: [
      "-shared",
      "-nostdlib",
      "-s",
      "-fPIC",
      `-Wl,-soname,${template}`,
      "-o",
      `${dir}/t.so`,
      `${dir}/s.c`,
    ],
  }).output();
  if (!ok.success) throw new Error("gcc failed");
  const bytes = Deno.readFileSync(`${dir}/t.so`);
  const at = new TextDecoder("latin1").decode(bytes).indexOf(template);
  for (let i = 0; i < n; i++) {
    const name = `libgpuctlbench${String(i).padStart(5, "0")}.so.1`;
    const b = bytes.slice();
    b.set(new TextEncoder().encode(name), at);
    Deno.writeFileSync(`${r}/lib/${name}`, b);
  }
  Deno.writeTextFileSync(`${r}/etc/ld.so.conf`, "");
  const o = await new Deno.Command("ldconfig", { args: ["-r", r] }).output();
  if (!o.success) throw new Error("ldconfig failed");
  return `${r}/etc/ld.so.cache`;
}
