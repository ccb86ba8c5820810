/**
 * `deno task hot`: writes `tools/pack/hot_functions.txt`, the functions `deno task dist` has V8 compile up front
 * (tools/pack/eager.ts). It runs the bundle on the fake driver as a host would, each a second time with the
 * snapshot and the kept plan in place, under V8's function log: a GPU container through the prestart hook and
 * through the runtime shim (runc creates it), `cdi generate`, and the createContainer hook of the spec it wrote
 * (`hook container-edits`, run by runc as an engine applying the spec has it run). A function is hot when one of those compiled or
 * ran it; the list holds their kept names. Run it after changing what those paths run; a stale list costs only
 * speed (a test holds that every name in it is still in the bundle).
 *
 * Needs root and runc, as the e2e tests do.
 * @module
 */
import { GPU_ENV, rig } from "../bench/overhead.ts";
import { gpuctlEnvList } from "../tests/e2e/bundle.ts";
import { keptNames } from "./pack/eager.ts";

const root = new URL("../", import.meta.url).pathname;
const deno = Deno.execPath();
const out = `${root}tools/pack/hot_functions.txt`;
const tmp = Deno.makeTempDirSync({ prefix: "gpuctl-hot-" });
try {
  const b = await new Deno.Command(deno, { args: ["task", "--quiet", "bundle"], cwd: root }).output();
  if (!b.success) throw new Error("deno task bundle failed");
  const js = `${tmp}/gpuctl.js`;
  Deno.copyFileSync(`${root}dist/gpuctl.js`, js);
  const logs = `${tmp}/logs`;
  Deno.mkdirSync(logs);
  const flags = `--log-function-events,--logfile=${logs}/v8-%p.log,--no-logfile-per-isolate`;

  const r = await rig(tmp, js, "hot");
  const hook = `${tmp}/hook`;
  // The hook as runc runs it, its Deno with the log's flags (the installed front drops DENO_* variables).
  Deno.writeTextFileSync(
    hook,
    `#!/bin/sh\n[ -n "$HOT" ] && f=--v8-flags=${flags}\nexec ${deno} run -A --quiet $f ${js} hook "$@"\n`,
    {
      mode: 0o755,
    },
  );
  const withHook = await r.bundle("hook", {
    args: ["/bin/true"],
    env: GPU_ENV,
    hook: { path: hook, env: [...gpuctlEnvList(r.config), "HOT="] },
  });
  const withGpu = await r.bundle("gpu", { args: ["/bin/true"], env: GPU_ENV });
  let withCdi: string | undefined;
  const run = async (cmd: string[], env: Record<string, string>) => {
    const o = await new Deno.Command(cmd[0]!, { args: cmd.slice(1), env, stdin: "null" }).output();
    if (!o.success) throw new Error(`${cmd.join(" ")}: ${new TextDecoder().decode(o.stderr)}`);
  };
  // Three rounds: the snapshot and the kept plan made, then Deno's code cache made with the log's flags, then the
  // one read.
  for (const [i, logged] of [false, true, true].entries()) {
    if (i === 2) { for (const e of Deno.readDirSync(logs)) Deno.removeSync(`${logs}/${e.name}`); }
    r.freshRootfs(withHook);
    if (logged) {
      const c = JSON.parse(Deno.readTextFileSync(`${withHook}/config.orig.json`));
      c.hooks.prestart[0].env = c.hooks.prestart[0].env.map((e: string) => e === "HOT=" ? "HOT=1" : e);
      Deno.writeTextFileSync(`${withHook}/config.orig.json`, JSON.stringify(c));
    }
    await run(r.lifecycle("runc", withHook), r.env);
    r.freshRootfs(withGpu);
    await run(r.lifecycle(r.front, withGpu), { ...r.env, ...(logged ? { DENO_V8_FLAGS: flags } : {}) });
    const generate = ["cdi", "generate", "--hook-path", r.hook, "--output", `${tmp}/spec.json`];
    await run(
      [deno, "run", "-A", "--quiet", ...(logged ? [`--v8-flags=${flags}`] : []), js, ...generate],
      r.env,
    );
    // The spec's createContainer hook (container-edits), as an engine applying the spec has runc run it.
    const spec = JSON.parse(Deno.readTextFileSync(`${tmp}/spec.json`));
    const edits = spec.containerEdits.hooks[0] as { args: string[]; env: string[] };
    withCdi ??= await r.bundle("cdi", { args: ["/bin/true"] });
    const c = JSON.parse(Deno.readTextFileSync(`${withCdi}/config.json`));
    c.hooks = {
      createContainer: [{
        path: hook,
        args: ["hook", ...edits.args.slice(1)],
        env: [...edits.env, `HOT=${logged ? 1 : ""}`],
      }],
    };
    Deno.writeTextFileSync(`${withCdi}/config.orig.json`, JSON.stringify(c));
    r.freshRootfs(withCdi);
    await run(r.lifecycle("runc", withCdi), r.env);
  }

  // Each function that ran, by its start, mapped to the top-level function whose header holds it.
  const text = Deno.readTextFileSync(js);
  const { ast, names } = keptNames(text);
  const decls =
    (ast.body as { type: string; start: number; body?: { start: number }; id?: { name: string } }[])
      .filter((s) => s.type === "FunctionDeclaration")
      .map((s) => ({ start: s.start, header: s.body!.start, name: names.get(s.id!.name) }));
  const hot = new Set<string>();
  for (const e of Deno.readDirSync(logs)) {
    const log = Deno.readTextFileSync(`${logs}/${e.name}`).split("\n");
    const id = log.find((l) => l.startsWith("script-details,") && l.includes(js))?.split(",")[1];
    if (id === undefined) continue;
    for (const l of log) {
      const f = l.split(",");
      // What ran: compiled when first called (the code cache lacks it) or run since.
      if (f[0] !== "function" || (f[1] !== "parse-function" && f[1] !== "first-execution") || f[2] !== id) {
        continue;
      }
      const at = Number(f[3]);
      const d = decls.find((d) => d.start <= at && at <= d.header);
      if (d?.name) hot.add(d.name);
    }
  }
  if (hot.size < 50) throw new Error(`only ${hot.size} hot functions found: the logs were not read`);
  Deno.writeTextFileSync(
    out,
    `# The functions a hook, a runtime shim, cdi generate and its spec's hook run (deno task hot; tools/pack/eager.ts).\n${
      [...hot].sort().join("\n")
    }\n`,
  );
  console.log(`${out}: ${hot.size} functions`);
} finally {
  Deno.removeSync(tmp, { recursive: true });
}
