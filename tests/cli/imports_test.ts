/**
 * What every start loads. The shim's pass-through (`gpuctl runtime state|start|delete|…`) runs on every
 * container operation and must load neither NVML, koffi, the plugins, the planner nor the full JSONC parser:
 * checked on the module graph Deno itself reports, following static imports only.
 * @module
 */
import { assert, assertEquals } from "../assert.ts";
import { bundleTo, DENO, PROJECT, tempDir } from "../helpers.ts";

interface Dep {
  code?: { specifier: string };
  isDynamic?: boolean;
}
interface Info {
  modules: { specifier: string; dependencies?: Dep[] }[];
}

const info: Info = JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(DENO, { args: ["info", "--json", `${PROJECT}/cli/main.ts`], cwd: PROJECT })
      .output())
      .stdout,
  ),
);
const byName = new Map(info.modules.map((m) => [m.specifier, m]));
const url = (p: string) => `file://${PROJECT}/${p}`;

/** Everything `roots` load before running a line of their own: their static imports, transitively. */
function staticClosure(roots: string[]): Set<string> {
  const seen = new Set<string>();
  const todo = roots.map(url);
  for (let s = todo.pop(); s !== undefined; s = todo.pop()) {
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of byName.get(s)?.dependencies ?? []) {
      if (d.code !== undefined && !d.isDynamic) todo.push(d.code.specifier);
    }
  }
  return seen;
}

const rel = (s: Set<string>) => [...s].map((x) => x.replace(`file://${PROJECT}/`, "")).sort();

Deno.test("the pass-through path loads no NVML, koffi, plugins, planner or full JSONC parser", () => {
  // main.ts runs the pass-through itself (cli/runtime.ts's passThrough), before it imports anything else.
  const loaded = rel(staticClosure(["cli/main.ts"]));
  assert(loaded.includes("cli/runtime.ts") && loaded.includes("config/read.ts"), loaded.join(" "));
  const heavy = loaded.filter((m) =>
    /jsonc-parser|koffi|ffi\/nvml\.ts|^plugins\/|^plan\/|^flows\/prepare|^apply\/|^devices\/|^driver\/|config\/(config|jsonc)\.ts/
      .test(m)
  );
  assertEquals(heavy, []);
  // Nor the rest of the command line: global options, help, the context and its logger.
  assertEquals(loaded.filter((m) => /cli\/(dispatch|context)\.ts|^log\//.test(m)), []);
});

Deno.test("the shim's create of a container without a GPU request loads no more than that", () => {
  const loaded = rel(staticClosure(["cli/main.ts", "cli/dispatch.ts", "flows/shim.ts", "ffi/libc.ts"]));
  assert(loaded.includes("request/request.ts"), loaded.join(" "));
  const heavy = loaded.filter((m) =>
    /jsonc-parser|koffi|ffi\/nvml\.ts|^plugins\/|^plan\/|^flows\/prepare|^devices\/(nvml|discover|nodes)|^driver\/|apply\/(spec|container|inroot)/
      .test(m)
  );
  assertEquals(heavy, []);
});

Deno.test("the hook for a container without a GPU request loads neither the planner nor NVML", () => {
  const loaded = rel(
    staticClosure(["cli/main.ts", "cli/dispatch.ts", "cli/hook.ts", "flows/hook.ts", "ffi/libc.ts"]),
  );
  assert(loaded.includes("request/request.ts"), loaded.join(" "));
  assertEquals(
    loaded.filter((m) =>
      /jsonc-parser|koffi|ffi\/nvml\.ts|^plugins\/|^plan\/|^flows\/prepare|^driver\//.test(m)
    ),
    [],
  );
});

Deno.test("a GPU container's path (shim or hook) loads no JSONC parser: only plugin files would", () => {
  const loaded = rel(
    staticClosure(
      ["cli/main.ts", "cli/dispatch.ts", "flows/shim.ts", "flows/shim_edit.ts", "cli/hook.ts"].concat(
        ["flows/hook.ts", "flows/prepare.ts", "apply/container.ts", "ffi/libc.ts"],
      ),
    ),
  );
  assert(loaded.includes("plugins/registry.ts") && loaded.includes("oci/edit.ts"), loaded.join(" "));
  assertEquals(loaded.filter((m) => /jsonc-parser|koffi|config\/(config|jsonc)\.ts|declarative/.test(m)), []);
});

Deno.test("a GPU container with a kept plan loads no planner: no NVML, plugins, driver discovery or plan code", () => {
  // Every module the shim's create and the prestart hook import on their way when the kept plan fits: the planner
  // (flows/prepare.ts) is imported only when a plan must be made.
  const loaded = rel(
    staticClosure(
      [
        "cli/main.ts",
        "cli/dispatch.ts",
        "cli/runtime.ts",
        "flows/shim.ts",
        "flows/shim_edit.ts",
        "flows/created.ts",
      ]
        .concat(["cli/hook.ts", "flows/hook.ts", "flows/request_edits.ts", "flows/plan_cache.ts"])
        .concat(["apply/container.ts", "flows/ldcache_memo.ts", "ffi/libc.ts"]),
    ),
  );
  assert(loaded.includes("edits/edits.ts") && loaded.includes("apply/inroot.ts"), loaded.join(" "));
  assertEquals(
    loaded.filter((m) =>
      /^flows\/prepare|ffi\/nvml\.ts|^plugins\/|^devices\/(discover|nvml)|^driver\/locate|^snapshot\/facts/
        .test(m)
    ),
    [],
  );
});

Deno.test("the graph this test reads is the real one: a GPU container's path does load NVML and the plugins", () => {
  const loaded = rel(
    staticClosure(["cli/main.ts", "cli/dispatch.ts", "cli/hook.ts", "flows/hook.ts", "flows/prepare.ts"]),
  );
  assert(loaded.some((m) => m === "plugins/registry.ts"), loaded.join(" "));
  assert(loaded.some((m) => m === "ffi/nvml.ts"), loaded.join(" "));
});

Deno.test("the bundle loads no node: module at start: a bundler hoists static ones, wherever they are imported", async () => {
  // A static `node:` import anywhere (even in a module only imported dynamically) becomes a top-level import of the
  // whole bundle, and every gpuctl start (the pass-through, each hook) then loads Deno's Node layer.
  using tmp = tempDir();
  const js = Deno.readTextFileSync(await bundleTo(`${tmp.path}/gpuctl.js`));
  const hoisted = [...js.matchAll(/(?:\bfrom\s*|\bimport\s*|\brequire\()\s*["'](node:[\w/]+)["']/g)].map((
    m,
  ) => m[1]);
  assertEquals(hoisted, []);
  // What the source imports dynamically stays dynamic (and so the test is not reading the wrong text).
  assert(/import\(\s*["']node:v8["']\s*\)/.test(js), "node:v8 is imported on use (by serve)");
  // The commands parse their arguments without node:util (cli/args.ts): none of them loads the Node layer for that.
  assert(!js.includes("node:util"), "the bundle imports node:util");
});
