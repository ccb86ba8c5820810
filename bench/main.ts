/**
 * `deno task bench`: gpuctl's start-up and discovery costs, as ratios against baselines timed in the same run.
 *
 * - start-up: `gpuctl --version` (bundle and source) against `deno run` of an empty script;
 * - FFI load: `Deno.dlopen` of libc + one call, against koffi doing the same (both under Deno);
 * - discovery: `gpuctl info --json` on the fake NVML (8 GPUs), against the bare start-up.
 *
 * Runs from the project root; builds dist/gpuctl.js and the fake driver first.
 * @module
 */
import { report, time } from "./lib.ts";
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

  const empty = await time("deno run empty.ts", run(`${tmp}/empty.ts`), opts);
  report("start-up", empty, [
    await time("gpuctl --version (dist/gpuctl.js)", run(`${root}dist/gpuctl.js`, "--version"), opts),
    await time("gpuctl --version (cli/main.ts)", run(`${root}cli/main.ts`, "--version"), opts),
  ]);

  // koffi.ts must resolve "koffi" through the project's deno.json: run it with the project's config.
  const cfg = ["--config", `${root}deno.json`];
  const dl = await time("Deno.dlopen libc + getpid", [
    deno,
    "run",
    "-A",
    "--quiet",
    ...cfg,
    `${tmp}/dlopen.ts`,
  ], opts);
  report("FFI load cost", empty, [
    dl,
    await time("koffi load libc + getpid (under Deno)", [
      deno,
      "run",
      "-A",
      "--quiet",
      ...cfg,
      `${tmp}/koffi.ts`,
    ], opts),
  ]);

  const version = await time("gpuctl --version", run(`${root}dist/gpuctl.js`, "--version"), { ...opts, env });
  report("gpuctl info on the fake NVML, 8 GPUs (dist/gpuctl.js)", version, [
    await time("gpuctl info --json", run(`${root}dist/gpuctl.js`, "info", "--json"), { ...opts, env }),
    await time(
      "gpuctl info --json --source proc",
      run(`${root}dist/gpuctl.js`, "info", "--json", "--source", "proc"),
      {
        ...opts,
        env,
      },
    ),
    await time("gpuctl info --json (koffi backend)", run(`${root}dist/gpuctl.js`, "info", "--json"), {
      ...opts,
      env: { ...env, GPUCTL_FFI: "koffi" },
    }),
  ]);
} finally {
  Deno.removeSync(tmp, { recursive: true });
}
