/**
 * The shim's `create` for a GPU container: config.json gets the edits (mode "spec"), the CDI devices it names, or
 * the prestart hook (mode "hook"); and, after `runc create`, the container gets its /proc/driver/nvidia view —
 * the one edit no spec field can express — from this same process, so a GPU container costs one gpuctl process.
 * Loaded only for GPU containers; `shim.ts` decides.
 * @module
 */
import type { Config } from "../config/config.ts";
import { GpuctlError } from "../errors/mod.ts";
import { selfExecutable } from "../version.ts";
import { type Logger, phases } from "../log/log.ts";
import { addToLists, type ListAddition, writeAtomic } from "../oci/edit.ts";
import { member, parseJson } from "../oci/json.ts";
import type { CdiEdits } from "../cdi/spec.ts";
import type { OciSpec } from "../oci/spec.ts";
import { cdiNames } from "./request_edits.ts";
import type { GpuRequest } from "../request/request.ts";
import { type ContainerEdits, containerEdits, type ProcView } from "../edits/edits.ts";
import {
  addHook,
  applyToSpec,
  hasNvidiaHook,
  hookAddition,
  type HookEntry,
  prepareFiles,
  prepareRootfs,
  prepareTargets,
  specAdditions,
} from "../apply/spec.ts";
import { editArgs } from "../edits/hook_args.ts";
import { InRoot } from "../apply/inroot.ts";
import { libraryDirs } from "../apply/container.ts";
import { withLdCacheMemo } from "./ldcache_memo.ts";

/**
 * How config.json is replaced: atomically (runc never reads half a file), but not synced to disk — a bundle does
 * not outlive a host crash, and waiting for the disk would be most of the edit's time.
 */
const BUNDLE = { durable: false } as const;

const STD_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The hook executable: `hookPath`, this binary when compiled, else nvidia-container-runtime-hook on PATH. */
export function hookExecutable(config: Config): { path: string; argv0: string } {
  if (config.hookPath !== null) return { path: config.hookPath, argv0: "nvidia-container-runtime-hook" };
  const self = selfExecutable();
  if (self !== null) return { path: self, argv0: "nvidia-container-runtime-hook" };
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((d) => d.startsWith("/"));
  const path = dirs.map((d) => `${d}/nvidia-container-runtime-hook`).find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch { // not there
      return false;
    }
  });
  if (path === undefined) {
    throw new GpuctlError(
      "hook",
      'no hook executable: set "hookPath", or put nvidia-container-runtime-hook on PATH',
    );
  }
  return { path, argv0: "nvidia-container-runtime-hook" };
}

/** A hook's explicit, minimal environment (never the container's). */
export function hookEnv(configPath: string | undefined): string[] {
  return configPath === undefined ? [STD_PATH] : [STD_PATH, `GPUCTL_CONFIG=${configPath}`];
}

/** The prestart hook the shim adds in hook mode. */
export function hookEntry(config: Config, configPath: string | undefined): HookEntry {
  const h = hookExecutable(config);
  return { path: h.path, args: [h.argv0, "prestart"], env: hookEnv(configPath) };
}

/** The createContainer hook that makes the /proc view inside a container started with `run`. */
function procHook(config: Config, configPath: string | undefined, edits: ContainerEdits): HookEntry {
  const h = hookExecutable(config);
  return {
    path: h.path,
    args: [
      h.argv0,
      "container-edits",
      ...editArgs({
        symlinks: [],
        ldcache: [],
        gpus: (edits.inside.procView?.gpus ?? []).map((g) => ({ minor: g.minor, name: g.name })),
        driverVersion: edits.inside.driverVersion,
        compat: false,
        proc: true,
      }),
    ],
    env: hookEnv(configPath),
  };
}

export interface Bundle {
  bundle: string;
  file: string;
  text: string;
  spec: OciSpec;
  command: "create" | "run";
}

/**
 * What `create` leaves to do around `runc create`: the rootfs files while it runs, the /proc view once the container
 * exists, and the "GPU container prepared" log line, which then carries runc's and the view's time too.
 */
export interface ViewToMake {
  /** The links and the linker cache, made in the rootfs while runc creates the container (then closes it). */
  files: () => void;
  view: ProcView;
  driverVersion: string;
  prepared: { bundle: string; gpus: string[]; ms: Record<string, number> };
}

/** Writes the GPU request's edits into the bundle; returns the /proc view to make after `runc create`, if any. */
export async function editForGpu(
  config: Config,
  b: Bundle,
  req: GpuRequest,
  log: Logger,
  configPath: string | undefined,
): Promise<ViewToMake | null> {
  if (hasNvidiaHook(b.spec)) {
    log.info("the container already has an NVIDIA prestart hook; it does the work", { bundle: b.bundle });
    return null;
  }
  const names = cdiNames(req);
  if (names !== null) {
    const { prepareYaml, resolveCdi } = await import("../cdi/resolve.ts");
    await prepareYaml(config.cdiSpecDirs);
    writeAtomic(b.file, await applyCdi(b, resolveCdi(config.cdiSpecDirs, names).edits), BUNDLE);
    log.info("CDI devices applied", { bundle: b.bundle, devices: names });
    return null;
  }
  if (config.mode === "hook") {
    writeAtomic(b.file, addHook(b.text, b.spec, hookEntry(config, configPath)), BUNDLE);
    log.info("prestart hook added", { bundle: b.bundle });
    return null;
  }
  const t0 = performance.now();
  const { planThroughCache } = await import("./plan_cache.ts");
  const plan = await planThroughCache(config, req, log, configPath);
  for (const w of plan.warnings) log.warn(w);
  const t1 = performance.now();
  const root = InRoot.openRootfs(b.bundle, b.spec.rootPath);
  let edits: ContainerEdits;
  try {
    edits = containerEdits(plan, libraryDirs(root));
    if (b.command === "run") {
      withLdCacheMemo(config, (m) => prepareRootfs(root, edits, config.cudaCompat, log, m));
    } else prepareTargets(root, edits.spec, log);
  } catch (e) {
    root.close();
    throw e;
  }
  if (b.command === "run") root.close();
  let text = applyToSpec(b.text, b.spec, edits.spec, { cgroups: !config.noCgroups });
  if (config.noCgroups) log.info("noCgroups: no device-cgroup rules added", { bundle: b.bundle });
  if (b.command === "run") {
    // `run` starts the container at once: the view is made by a createContainer hook inside it.
    text = addToLists(text, parseJson(text, b.file), [
      hookAddition("createContainer", [procHook(config, configPath, edits)]) as ListAddition,
    ]);
  }
  writeAtomic(b.file, text, BUNDLE);
  const prepared = {
    bundle: b.bundle,
    gpus: [...plan.gpus.map((g) => g.uuid), ...plan.migs.map((m) => m.uuid)],
    ms: { start: t0, plan: t1 - t0, edit: performance.now() - t1 },
  };
  if (b.command === "create") {
    const files = () => {
      try {
        withLdCacheMemo(config, (m) => prepareFiles(root, edits.inside, config.cudaCompat, log, m));
      } finally {
        root.close();
      }
    };
    const view = edits.inside.procView ?? { gpus: [], capabilities: null };
    return { view, driverVersion: edits.inside.driverVersion, files, prepared };
  }
  log.info("GPU container prepared", { ...prepared, ms: phases(prepared.ms) });
  return null;
}

/** config.json with resolved CDI edits: nodes (with their cgroup rules), mounts, environment, hooks. */
async function applyCdi(b: Bundle, edits: readonly CdiEdits[]): Promise<string> {
  const { cdiNodeEdit } = await import("../edits/from_cdi.ts");
  // CDI's mounts keep their own type and options; the nodes and env are added as gpuctl's own are.
  const [nodes, rules, , env] = specAdditions({
    deviceNodes: edits.flatMap((e) => (e.deviceNodes ?? []).map(cdiNodeEdit)),
    mounts: [],
    env: edits.flatMap((e) => e.env ?? []),
  });
  const mounts: ListAddition = {
    path: ["mounts"],
    items: edits.flatMap((e) => e.mounts ?? []).map((m) => ({
      destination: m.containerPath,
      type: m.type || "bind",
      source: m.hostPath,
      options: m.options ?? [],
    })),
    key: (i) => (i as { destination: string }).destination,
    existing: (n) => {
      const d = member(n, "destination");
      return d?.t === "str" ? d.value : undefined;
    },
  };
  const hooks = new Map<string, HookEntry[]>();
  for (const h of edits.flatMap((e) => e.hooks ?? [])) {
    hooks.set(h.hookName, [...(hooks.get(h.hookName) ?? []), {
      path: h.path,
      args: h.args ?? [],
      env: h.env ?? [],
      ...(h.timeout !== undefined ? { timeout: h.timeout } : {}),
    }]);
  }
  return addToLists(b.text, b.spec.tree, [
    nodes!,
    rules!,
    mounts,
    env!,
    ...[...hooks].map(([name, list]) => hookAddition(name, list) as ListAddition),
  ]);
}
