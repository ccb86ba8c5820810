/**
 * `deno task bench`: gpuctl's start-up and discovery costs, as ratios against baselines timed in the same run.
 *
 * - start-up: `gpuctl --version` (bundle and source) against `deno run` of an empty script;
 * - FFI load: `Deno.dlopen` of libc + one call, against koffi doing the same (both under Deno);
 * - discovery: `gpuctl info --json` on the fake NVML (8 GPUs), against the bare start-up;
 * - planning: `gpuctl list` for `all` capabilities and 8 GPUs, against `info`;
 * - parsing an ld.so.cache of 5,000 entries (made by ldconfig), against parsing this machine's cache;
 * - the prestart hook: `runc run` of a GPU container (compute,utility) with 1 and with 8 fake GPUs, against the
 *   same container without GPUs (the hook's cost is the difference);
 * - the runtime shim: pass-through (`gpuctl runtime state <id>` against `runc state <id>` and an empty script,
 *   with its target), and `docker run --rm` through runc, through the shim without and with a GPU, and with
 *   Docker's own `--gpus` (plain runc, gpuctl as the hook).
 *
 * The cases of one table run interleaved, round by round, so that a busy machine's slow spells fall on all of
 * them alike.
 *
 * Runs from the project root; builds dist/gpuctl.js and the fake driver first.
 * @module
 */
import { type Case, report, timeTogether } from "./lib.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../tests/fixtures/driver.ts";

const root = new URL("../", import.meta.url).pathname;
const deno = Deno.execPath();
const runs = Number(Deno.env.get("BENCH_RUNS") ?? 15);
const tmp = Deno.makeTempDirSync({ prefix: "gpuctl-bench-" });
try {
  const b = await new Deno.Command(deno, { args: ["task", "--quiet", "bundle"], cwd: root }).output();
  if (!b.success) throw new Error("deno task bundle failed");
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

  // The hook under real runc, through dist/gpuctl.js as nvidia-container-runtime-hook.
  const { gpuctlEnv, gpuctlEnvList, makeBundle } = await import("../tests/e2e/bundle.ts");
  let nth = 0;
  const hookLogs: { name: string; log: string }[] = [];
  const runc = async (name: string, gpus: number | null): Promise<Case> => {
    const dir = `${tmp}/runc-hook-${nth++}`;
    const d1 = await fakeDriver(standardSpec(gpus ?? 1, { mig: false }));
    Deno.mkdirSync(dir);
    Deno.writeTextFileSync(`${dir}/gpuctl.jsonc`, fixtureConfig(d1, { logFile: `${dir}/gpuctl.log` }));
    Deno.mkdirSync(`${dir}/bin`);
    const hook = `${dir}/bin/nvidia-container-runtime-hook`;
    Deno.writeTextFileSync(hook, `#!/bin/sh\nexec ${deno} run -A --quiet ${root}dist/gpuctl.js hook "$@"\n`, {
      mode: 0o755,
    });
    await makeBundle(`${dir}/b`, {
      debian: true,
      args: ["/bin/true"],
      env: gpus === null ? [] : ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"],
      hook: {
        path: hook,
        env: gpuctlEnvList(`${dir}/gpuctl.jsonc`),
      },
    });
    if (gpus !== null) hookLogs.push({ name, log: `${dir}/gpuctl.log` });
    return { name, cmd: ["sh", "-c", `runc --root ${dir}/state run --bundle ${dir}/b c$$`] };
  };
  const plainDir = `${tmp}/runc-plain`;
  Deno.mkdirSync(plainDir);
  await makeBundle(`${plainDir}/b`, { debian: true, args: ["/bin/true"] });
  await group("prestart hook under runc (container runs /bin/true)", [
    {
      name: "runc run, no hook",
      cmd: ["sh", "-c", `runc --root ${plainDir}/state run --bundle ${plainDir}/b p$$`],
    },
    await runc("runc run + hook, no GPU request", null),
    await runc("runc run + hook, 1 GPU", 1),
    await runc("runc run + hook, 8 GPUs", 8),
  ], { runs: Math.min(runs, 11) });
  // Where the hook's time goes, from its own log line (ms.start: the process's age when the work began).
  for (const { name, log } of hookLogs) {
    const lines = Deno.readTextFileSync(log).split("\n").filter((l) => l.includes('"GPUs injected"'));
    if (lines.length === 0) continue;
    const ms = lines.map((l) => JSON.parse(l).ms as Record<string, number>);
    const median = (k: string) => ms.map((m) => m[k]!).sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
    console.log(
      `  ${name}, in the hook: ${Object.keys(ms[0]!).map((k) => `${k} ${median(k)}ms`).join(", ")}`,
    );
  }

  // The shim: pass-through.
  const benchId = `gpuctl-bench-${Deno.pid}`;
  const st = `${tmp}/state-bench`;
  Deno.mkdirSync(st);
  await makeBundle(`${st}/b`, { args: ["/bin/sleep", "60"] });
  // Null stdio: the created container's init would otherwise hold our pipes open.
  const created = await new Deno.Command("runc", {
    args: ["--root", `${st}/root`, "create", "--bundle", `${st}/b`, benchId],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!created.success) throw new Error("runc create failed");
  try {
    const [empty, runcState, shimState] = await group(
      "runtime shim pass-through: state of a created container",
      [
        { name: "deno run empty.ts", cmd: run(`${tmp}/empty.ts`) },
        { name: "runc state", cmd: ["runc", "--root", `${st}/root`, "state", benchId] },
        {
          name: "gpuctl runtime state (dist/gpuctl.js)",
          cmd: gpuctl("runtime", "--root", `${st}/root`, "state", benchId),
        },
      ],
    );
    const over = shimState!.medianMs - runcState!.medianMs, target = empty!.medianMs + 2;
    console.log(
      `  its cost over runc: ${over.toFixed(1)}ms; target, an empty deno run + 2 ms: ${
        target.toFixed(1)
      }ms (${over <= target ? "met" : `${(over - target).toFixed(1)}ms over`})`,
    );
  } finally {
    await new Deno.Command("runc", { args: ["--root", `${st}/root`, "delete", "--force", benchId] })
      .output();
  }

  // Docker: runc; the shim (gpuctl-runtime) without and with a GPU; and Docker's own --gpus, which runs plain runc
  // with gpuctl as nvidia-container-runtime-hook (found on dockerd's PATH) for GPU containers only.
  const { Dockerd } = await import("../tests/e2e/docker.ts");
  const { hookLauncher, runtimeLauncher } = await import("../tests/e2e/bundle.ts");
  const dk = `${tmp}/dockerd`;
  Deno.mkdirSync(dk);
  const d3 = await fakeDriver(standardSpec(1, { mig: false }));
  Deno.writeTextFileSync(`${dk}/gpuctl.jsonc`, fixtureConfig(d3));
  const dockerEnv = gpuctlEnv(`${dk}/gpuctl.jsonc`);
  runtimeLauncher(dk, dockerEnv, `${root}dist/gpuctl.js`);
  hookLauncher(dk, `${root}dist/gpuctl.js`);
  const docker = await Dockerd.start(dk, {
    args: ["--add-runtime", `gpu=${dk}/bin/gpuctl-runtime`],
    env: dockerEnv,
    pathDirs: [`${dk}/bin`],
  });
  try {
    await docker.importImage("bench/busybox");
    const dr = (...a: string[]) => ["docker", "-H", `unix://${docker.sock}`, "run", "--rm", ...a];
    const gpuEnv = ["-e", "NVIDIA_VISIBLE_DEVICES=all", "-e", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"];
    await group("docker run --rm: runc, the shim, the shim with a GPU, --gpus (fake driver)", [
      { name: "docker run --rm (runc)", cmd: dr("bench/busybox", "true") },
      {
        name: "docker run --rm --runtime gpu (no GPU)",
        cmd: dr("--runtime", "gpu", "bench/busybox", "true"),
      },
      {
        name: "docker run --rm --runtime gpu, 1 GPU",
        cmd: dr("--runtime", "gpu", ...gpuEnv, "bench/busybox", "true"),
      },
      {
        name: "docker run --rm --gpus all (runc + hook)",
        cmd: dr("--gpus", "all", "-e", "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "bench/busybox", "true"),
      },
    ], { runs: Math.min(runs, 9) });
  } finally {
    await docker.stop();
  }
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
