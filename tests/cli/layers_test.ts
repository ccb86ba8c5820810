/**
 * The layers (ARCHITECTURE.md), held on the module graph Deno itself reports for gpuctl's entry points (the CLI,
 * the library, the build tools), every import counted — static, dynamic and type-only: a folder imports only
 * folders below it, and no module imports itself back through others. No exceptions are listed: a new import
 * that runs up, or a new folder not placed in the layers, fails here.
 * @module
 */
import { assert, assertEquals } from "../assert.ts";
import { DENO, PROJECT } from "../helpers.ts";

/** Bottom to top: a module may import its own folder's, and those of folders earlier in this list. */
export const LAYERS = [
  "version.ts", // leaves
  "errors",
  "ffi", // system access: libc, NVML, the in-root door's syscalls
  "config", // configuration and logging
  "log",
  "oci", // formats: OCI config.json and state, runc's command line; CDI specs and names
  "cdi",
  "plugins", // capabilities
  "driver", // host facts: the driver's files, the devices, the snapshot of both
  "devices",
  "snapshot",
  "request", // NVIDIA's request contract, read from a container
  "plan", // what a request gets on this host, pure
  "edits", // {spec, inside}: the one representation every path renders or applies
  "apply", // effects: in the rootfs, the mount namespace, cgroups, config.json
  "flows", // each sequence of I/O: shim create, hooks, prepare, CDI generation
  "serve", // the server and the sh fronts that reach it
  "engines", // Docker, containerd, CRI-O configuration; host repairs; reports
  "system",
  "report",
  "doctor",
  "cli", // argument parsing, calling flows
  "mod.ts", // the library's surface
  "tools", // the build
];

interface Info {
  modules: {
    specifier: string;
    dependencies?: { code?: { specifier: string }; type?: { specifier: string } }[];
  }[];
}

async function graph(entries: string[]): Promise<Map<string, Set<string>>> {
  const edges = new Map<string, Set<string>>();
  const root = `file://${PROJECT}/`;
  for (const e of entries) {
    const o = await new Deno.Command(DENO, { args: ["info", "--json", `${PROJECT}/${e}`], cwd: PROJECT })
      .output();
    assert(o.success, new TextDecoder().decode(o.stderr));
    const info = JSON.parse(new TextDecoder().decode(o.stdout)) as Info;
    for (const m of info.modules) {
      if (!m.specifier.startsWith(root) || m.specifier.includes("/node_modules/")) continue;
      const from = m.specifier.slice(root.length);
      const to = edges.get(from) ?? new Set<string>();
      edges.set(from, to);
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          if (s?.startsWith(root) && !s.includes("/node_modules/")) to.add(s.slice(root.length));
        }
      }
    }
  }
  return edges;
}

const folder = (path: string) => path.includes("/") ? path.slice(0, path.indexOf("/")) : path;

const edges = await graph(["cli/main.ts", "mod.ts", "tools/dist.ts", "tools/man.ts"]);

Deno.test("layers: every module is in a layer, and every import goes down (or stays in its folder)", () => {
  assert(edges.size > 80, `the graph is gpuctl's: ${edges.size} modules`);
  const rank = new Map(LAYERS.map((l, i) => [l, i]));
  const unplaced = [...new Set([...edges.keys()].map(folder))].filter((f) => !rank.has(f));
  assertEquals(unplaced, [], "folders not placed in LAYERS");
  const up: string[] = [];
  for (const [from, tos] of edges) {
    for (const to of tos) {
      const a = folder(from), b = folder(to);
      if (a !== b && rank.get(b)! > rank.get(a)!) up.push(`${from} -> ${to}`);
    }
  }
  assertEquals(up, [], "imports that run up");
});

Deno.test("layers: no import cycle between modules", () => {
  // Tarjan's strongly connected components; any with two or more modules is a cycle.
  const index = new Map<string, number>(), low = new Map<string, number>(), stack: string[] = [];
  const on = new Set<string>(), cycles: string[][] = [];
  let n = 0;
  const visit = (v: string) => {
    index.set(v, n);
    low.set(v, n++);
    stack.push(v);
    on.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const c: string[] = [];
      for (let w = stack.pop()!;; w = stack.pop()!) {
        on.delete(w);
        c.push(w);
        if (w === v) break;
      }
      if (c.length > 1) cycles.push(c.sort());
    }
  };
  for (const v of edges.keys()) if (!index.has(v)) visit(v);
  assertEquals(cycles, []);
});

Deno.test("layers: the test sees an upward import when there is one", () => {
  // The check above, on a graph with one planted: so it cannot pass by reading nothing.
  const rank = new Map(LAYERS.map((l, i) => [l, i]));
  const planted = [["plan/plan.ts", "flows/prepare.ts"], ["apply/container.ts", "edits/edits.ts"]];
  const up = planted.filter(([a, b]) => rank.get(folder(b!))! > rank.get(folder(a!))!);
  assertEquals(up, [["plan/plan.ts", "flows/prepare.ts"]]);
  assert(edges.get("cli/main.ts")?.has("cli/runtime.ts"), "the real graph has the shim's pass-through");
});
