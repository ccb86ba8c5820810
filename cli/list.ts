/**
 * `gpuctl list`: what would be injected into a container, as host paths or as the whole plan.
 * @module
 */
import { preparePlan } from "../flows/prepare.ts";
import { parseVisibleDevices } from "../devices/select.ts";
import { type Plan, planJson } from "../plan/plan.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";

export const HELP = `Usage: gpuctl list [--device IDS] [--capabilities CAPS] [--compat32] [filters] [--json]

Prints every host path gpuctl would inject into a container, one per line: device nodes, binaries,
libraries (64-bit, then 32-bit), IPC endpoints, firmware, configuration files.

Options:
  --device IDS         GPUs as NVIDIA_VISIBLE_DEVICES takes them: all (default), none, indices,
                       GPU-/MIG- UUIDs, PCI bus ids, <gpu>:<mig> pairs, comma-separated
  --capabilities CAPS  as NVIDIA_DRIVER_CAPABILITIES: utility,compute (default), all, or a list of
                       utility, compute, video, graphics, display, ngx, compat32 and plugin capabilities
  --compat32           add the 32-bit libraries (same as adding compat32 to --capabilities)
  --libraries, --binaries, --ipcs, --firmware, --files, --device-nodes
                       print only these kinds (several may be given)
  --json               print the whole plan (nodes with major/minor/mode, mounts with destinations and
                       options, symlinks, environment, warnings, rejected candidates with reasons)
  -h, --help           this help

Configuration used: driverRoot, devRoot, procRoot, nvmlLibrary, pluginsDir, libraryDirs, binaryDirs.
`;

const FILTERS = ["libraries", "binaries", "ipcs", "firmware", "files", "device-nodes"] as const;

/** The host paths of a plan, in list order, narrowed to `kinds` (all when empty). */
export function planPaths(plan: Plan, kinds: ReadonlySet<string>): string[] {
  const want = (k: string) => kinds.size === 0 || kinds.has(k);
  const out: string[] = [];
  if (want("device-nodes")) {
    for (const n of plan.deviceNodes) if (n.hostPath !== null) out.push(n.hostPath);
  }
  const mounts = (kind: string, filter: string, pred = (_: Plan["mounts"][number]) => true) => {
    if (want(filter)) { for (const m of plan.mounts) if (m.kind === kind && pred(m)) out.push(m.hostPath); }
  };
  mounts("binary", "binaries");
  mounts("library", "libraries", (m) => m.libraryDir === "lib");
  mounts("library", "libraries", (m) => m.libraryDir === "lib32");
  mounts("ipc", "ipcs");
  mounts("firmware", "firmware");
  mounts("file", "files");
  return out;
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("list", args, {
    device: { type: "string" },
    capabilities: { type: "string" },
    compat32: { type: "boolean" },
    json: { type: "boolean" },
    libraries: { type: "boolean" },
    binaries: { type: "boolean" },
    ipcs: { type: "boolean" },
    firmware: { type: "boolean" },
    files: { type: "boolean" },
    "device-nodes": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  let caps = values.capabilities;
  if (values.compat32) caps = `${caps ?? "utility,compute"},compat32`;
  const { plan } = await preparePlan(ctx.config, {
    devices: parseVisibleDevices(values.device ?? "all"),
    capabilities: caps,
    devicesSource: "--device",
    capabilitiesSource: "--capabilities",
  }, {
    warn: (m) => ctx.warn(m),
    facts: (await import("../snapshot/facts.ts")).snapshotFacts(ctx.config, {
      configPath: ctx.globals.configPath,
      log: ctx.log,
    }),
  });
  for (const r of plan.rejected) ctx.log.debug("rejected", { ...r });
  if (values.json) {
    ctx.out(JSON.stringify(planJson(plan), null, 2) + "\n");
    return 0;
  }
  for (const w of plan.warnings) ctx.warn(w);
  const kinds = new Set<string>(FILTERS.filter((f) => values[f]));
  const paths = planPaths(plan, kinds);
  ctx.out(paths.length > 0 ? paths.join("\n") + "\n" : "");
  return 0;
}
