/**
 * `gpuctl cdi generate`: the plan for every GPU rendered as a CDI spec, from the same container edits the shim
 * and the hook apply (see `edits/`). Common edits (control nodes, the requested capabilities' files, the
 * environment) apply to any device; each GPU and MIG device adds its own nodes. What no spec field can express —
 * library links, the linker cache, the /proc/driver/nvidia view, CUDA compat — is one `createContainer` hook:
 * gpuctl itself, with an explicit environment, one process per container.
 *
 * Libraries go to the Debian multiarch directories (a spec cannot look inside the image); the hook's linker cache
 * makes them found in any image layout. `--no-hook` makes a spec with no hook, and so no process at all, that says
 * as mounts what a mount can (see {@link noHookMounts}).
 * @module
 */
import type { Config } from "../config/config.ts";
import {
  charDevice,
  type ContainerEdits,
  containerEdits,
  LIB64,
  MULTIARCH,
  type NodeEdit,
} from "../edits/edits.ts";
import type { NodeRole, Plan } from "../plan/plan.ts";
import { type FactsProvider, preparePlan } from "./prepare.ts";
import { keptOrMade } from "./plan_cache.ts";
import { editArgs } from "../edits/hook_args.ts";
import { GpuctlError, UsageError } from "../errors/mod.ts";
import { hookEnv, hookExecutable } from "./shim_edit.ts";
import {
  type CdiDevice,
  type CdiDeviceNode,
  type CdiEdits,
  type CdiHook,
  type CdiSpec,
  minimumVersion,
  validateSpec,
} from "../cdi/spec.ts";

export type NameStrategy = "index" | "uuid" | "type-index";

export interface GenerateOptions {
  vendor: string;
  class: string;
  strategies: readonly NameStrategy[];
  /** `NVIDIA_DRIVER_CAPABILITIES` grammar; `undefined`: utility,compute. */
  capabilities: string | undefined;
  /**
   * The hook's executable and its `argv` before the hook's own arguments; `null`: a spec with no hook, what the
   * hook would make said as mounts where a mount can say it ({@link noHookMounts}).
   */
  hook: { path: string; argv: string[]; env: string[] } | null;
  cudaCompat: boolean;
  facts?: FactsProvider;
}

/** A node as a CDI device node: the host's facts, its host path when that differs. */
export function cdiNode(n: NodeEdit): CdiDeviceNode {
  const { path, ...facts } = charDevice(n);
  return {
    path,
    ...(n.hostPath !== null && n.hostPath !== n.path ? { hostPath: n.hostPath } : {}),
    ...facts,
  };
}

/** The hook that makes, inside the container, what the spec cannot express. */
export function cdiHook(
  edits: ContainerEdits,
  o: { hook: NonNullable<GenerateOptions["hook"]>; cudaCompat: boolean },
): CdiHook {
  return {
    hookName: "createContainer",
    path: o.hook.path,
    args: [
      ...o.hook.argv,
      ...editArgs({
        symlinks: edits.inside.symlinks,
        ldcache: edits.inside.ldcache,
        gpus: (edits.inside.procView?.gpus ?? []).map((g) => ({ minor: g.minor, name: g.name })),
        driverVersion: edits.inside.driverVersion,
        compat: o.cudaCompat,
        proc: true,
      }),
    ],
    env: o.hook.env,
  };
}

/**
 * A spec with no hook says as mounts what the hook would make: each library link becomes a bind mount of the file
 * it names, at the link's path (the loader finds a library by its SONAME in the directories it searches by default,
 * with no linker cache entry), and every 64-bit library, file and link, is mounted in `/usr/lib64` too, where a
 * lib64 image's loader looks (the Debian multiarch directory is where a Debian or Ubuntu image's looks). What no
 * mount can say is left undone: the container's linker cache (programs that read it, `ldconfig -p`, do not see the
 * libraries), the /proc/driver/nvidia view (every GPU's directory stays visible there, as with NVIDIA's own specs)
 * and CUDA forward compatibility; 32-bit libraries are found on Debian-layout images only.
 */
export function noHookMounts(edits: ContainerEdits): ContainerEdits["spec"]["mounts"] {
  const byPath = new Map(edits.spec.mounts.map((m) => [m.containerPath, m]));
  const links = new Map(edits.inside.symlinks.map((l) => [l.path, l.target]));
  const resolve = (path: string, target: string) =>
    target.startsWith("/") ? target : `${path.slice(0, path.lastIndexOf("/"))}/${target}`;
  const out = [...edits.spec.mounts];
  for (const l of edits.inside.symlinks) {
    // A chain of links (libcuda.so → libcuda.so.1 → the file), followed a bounded number of times.
    let p = resolve(l.path, l.target);
    for (let hops = 0; hops < 8 && !byPath.has(p) && links.has(p); hops++) p = resolve(p, links.get(p)!);
    const m = byPath.get(p);
    if (m !== undefined && !m.dir && !byPath.has(l.path)) {
      const linked = { ...m, containerPath: l.path };
      out.push(linked);
      byPath.set(l.path, linked);
    }
  }
  const lib = `${MULTIARCH.lib}/`;
  for (const m of [...out]) {
    const path = `${LIB64.lib}/${m.containerPath.slice(lib.length)}`;
    if (m.containerPath.startsWith(lib) && !byPath.has(path)) {
      out.push({ ...m, containerPath: path });
      byPath.set(path, m);
    }
  }
  return out;
}

/** Container edits as a CDI spec's common edits: everything but the per-device nodes, plus the hook (if any). */
export function cdiCommonEdits(
  edits: ContainerEdits,
  perDevice: ReadonlySet<string>,
  o: GenerateOptions,
): CdiEdits {
  return {
    // A legacy NVIDIA hook that also runs must not inject the GPUs a second time.
    env: [...edits.spec.env, "NVIDIA_VISIBLE_DEVICES=void"],
    deviceNodes: edits.spec.deviceNodes.filter((n) => !perDevice.has(n.path)).map(cdiNode),
    mounts: (o.hook === null ? noHookMounts(edits) : edits.spec.mounts).map((m) => ({
      hostPath: m.hostPath,
      containerPath: m.containerPath,
      type: "bind",
      options: [...m.options, "rbind", "rprivate"],
    })),
    ...(o.hook !== null ? { hooks: [cdiHook(edits, { hook: o.hook, cudaCompat: o.cudaCompat })] } : {}),
  };
}

/** The spec for a plan that selects every GPU. */
export function specFromPlan(plan: Plan, o: GenerateOptions): CdiSpec {
  const edits = containerEdits(plan, MULTIARCH);
  const byPath = new Map(edits.spec.deviceNodes.map((n) => [n.path, n]));
  const nodesFor = (owns: (r: NodeRole) => boolean, extra: string[] = []) =>
    [...extra, ...plan.deviceNodes.filter((n) => owns(n.role)).map((n) => n.path)].map((p) => byPath.get(p)!)
      .filter((n, i, a) => n !== undefined && a.indexOf(n) === i);
  const perDevice = new Set<string>();
  const devices: CdiDevice[] = [];
  const add = (names: string[], nodes: NodeEdit[]) => {
    for (const n of nodes) perDevice.add(n.path);
    for (const name of names) devices.push({ name, containerEdits: { deviceNodes: nodes.map(cdiNode) } });
  };
  const named = (index: string, uuid: string, typed: string) =>
    o.strategies.map((s) => (s === "index" ? index : s === "uuid" ? uuid : typed));
  for (const g of plan.gpus) {
    add(
      named(`${g.index}`, g.uuid, `gpu${g.index}`),
      nodesFor((r) => r.kind === "gpu" && r.index === g.index),
    );
  }
  for (const m of plan.migs) {
    add(
      named(`${m.gpu}:${m.index}`, m.uuid, `mig${m.gpu}:${m.index}`),
      nodesFor((r) => r.kind === "mig" && r.gpu === m.gpu && r.index === m.index, [
        `/dev/nvidia${m.gpuMinor}`,
      ]),
    );
  }
  devices.push({
    name: "all",
    containerEdits: { deviceNodes: edits.spec.deviceNodes.filter((n) => perDevice.has(n.path)).map(cdiNode) },
  });
  const spec: Omit<CdiSpec, "cdiVersion"> = {
    kind: `${o.vendor}/${o.class}`,
    devices,
    containerEdits: cdiCommonEdits(edits, perDevice, o),
  };
  const out: CdiSpec = { cdiVersion: minimumVersion(spec), ...spec };
  validateSpec(out, "the generated CDI spec");
  return out;
}

/** Generates the spec for this host. */
export async function generateSpec(
  config: Config,
  o: GenerateOptions,
  warn: (m: string) => void,
): Promise<CdiSpec> {
  const make = () =>
    preparePlan(config, {
      devices: { kind: "all" },
      capabilities: o.capabilities,
      capabilitiesSource: "--capabilities",
    }, { warn, ...(o.facts ? { facts: o.facts } : {}) });
  // Through the snapshot, the plan is kept like a container's (flows/plan_cache.ts), under this command's shape.
  const shape = {
    text: JSON.stringify(["cdi generate", o.capabilities ?? null]),
    devices: { kind: "all" as const },
  };
  const { plan } = o.facts ? await keptOrMade(config, shape, warn, make) : await make();
  for (const w of plan.warnings) warn(w);
  return specFromPlan(plan, o);
}

/**
 * The spec's hook: `given` (`--hook-path`); else the configured one; else `beside`, the front installed beside this
 * command (which hands the work to gpuctl serve when it runs); else this gpuctl. It must exist: a spec naming a missing hook
 * fails every container given one of its devices.
 */
export function specHook(
  config: Config,
  given: string | undefined,
  configPath: string | undefined,
  beside: string | null,
): GenerateOptions["hook"] {
  const hook = given !== undefined
    ? { path: given, argv0: "nvidia-container-runtime-hook" }
    : config.hookPath === null && beside !== null
    ? { path: beside, argv0: "nvidia-container-runtime-hook" }
    : hookExecutable(config);
  if (!hook.path.startsWith("/")) {
    throw new UsageError("cdi generate --hook-path", "must be an absolute path");
  }
  let file = false;
  try {
    file = Deno.statSync(hook.path).isFile;
  } catch { /* said below */ }
  if (!file) {
    throw new GpuctlError(
      `cdi generate: hook ${hook.path}`,
      "does not exist (give --hook-path, or run gpuctl install)",
    );
  }
  return { path: hook.path, argv: [hook.argv0, "container-edits"], env: hookEnv(configPath) };
}
