/**
 * The plan: exactly what a container gets, as a pure function of the request (capabilities and selected devices),
 * the driver's files, the host's device nodes and the plugins. No I/O happens here; `apply/` makes it so.
 *
 * Library destinations are symbolic (`libraryDir: "lib" | "lib32"`): the apply step picks the image's layout
 * (Debian multiarch or `lib64`), because only it can look inside the image.
 * @module
 */
import type { DriverFiles, Rejected } from "../driver/locate.ts";
import { type NodeInput, type PlannedNode, planNodes, roleText } from "./nodes.ts";
import { libraryDirOf, planMounts, type PlannedMount, type PlannedSymlink, planSymlinks } from "./mounts.ts";

export { IMEX_DIR, type NodeRole, type PlannedNode, roleText } from "./nodes.ts";
export type { MountKind, PlannedMount, PlannedSymlink } from "./mounts.ts";

export interface Plan {
  driverVersion: string;
  capabilities: string[];
  compat32: boolean;
  gpus: { index: number; minor: number; uuid: string; busId: string }[];
  migs: {
    gpu: number;
    gpuMinor: number;
    gpuBusId: string;
    index: number;
    uuid: string;
    gpuInstance: number;
    computeInstance: number;
  }[];
  deviceNodes: PlannedNode[];
  mounts: PlannedMount[];
  symlinks: PlannedSymlink[];
  /** Library directories whose linker cache entries must be updated. */
  libraryDirs: ("lib" | "lib32")[];
  env: Record<string, string>;
  warnings: string[];
  /** Candidates not taken, and why (wrong version, a wrapper script, …). */
  rejected: Rejected[];
  /** What the requested capabilities name but this driver does not ship (normal: drivers differ). */
  missing: { capability: string; item: string }[];
}

/** What the plan is made from: the request's capabilities and devices, the host's nodes and driver files. */
export interface PlanInput extends NodeInput {
  files: DriverFiles;
}

/** Builds the plan. Throws a {@link GpuctlError} when a selected GPU cannot be given (no device node facts). */
export function buildPlan(input: PlanInput): Plan {
  const { capabilities, selection, registry, files, host } = input;
  const effective = capabilities.effective;
  const warnings: string[] = [];
  const selectedGpus = [...selection.gpus, ...selection.migs.map((m) => m.gpu)];
  // MIG management (privileged containers only, checked by the request) covers the selected MIG-enabled GPUs.
  const migManaged = input.mig !== undefined && (input.mig.config || input.mig.monitor)
    ? [...new Set(selectedGpus)].filter((g) => g.mig.enabled === true)
    : [];
  const deviceNodes = planNodes(input, migManaged, warnings);
  const { mounts, libraries } = planMounts({
    effective,
    compat32: capabilities.compat32,
    files,
    host,
    busIds: selectedGpus.map((g) => g.busId),
    migManaged: migManaged.length > 0,
  });
  const env: Record<string, string> = {};
  for (const name of effective) Object.assign(env, registry.get(name)?.env ?? {});
  return {
    driverVersion: files.version,
    capabilities: capabilities.requested,
    compat32: capabilities.compat32,
    gpus: selection.gpus.map((g) => ({ index: g.index, minor: g.minor, uuid: g.uuid, busId: g.busId })),
    migs: selection.migs.map(({ gpu, mig }) => ({
      gpu: gpu.index,
      gpuMinor: gpu.minor,
      gpuBusId: gpu.busId,
      index: mig.index,
      uuid: mig.uuid,
      gpuInstance: mig.gpuInstance,
      computeInstance: mig.computeInstance,
    })),
    deviceNodes,
    mounts,
    symlinks: planSymlinks(libraries, effective, registry),
    libraryDirs: [...new Set(libraries.map(libraryDirOf))],
    env,
    warnings,
    // The requested capabilities' rejects, and the driver's libraries that no capability names ("-").
    rejected: files.rejected.filter((r) => r.capability === "-" || effective.includes(r.capability)),
    missing: files.missing.filter((m) => effective.includes(m.capability)),
  };
}

/** The plan as `list --json` shows it: each node's role in words, as `reason`. */
export function planJson(plan: Plan): unknown {
  return {
    ...plan,
    deviceNodes: plan.deviceNodes.map(({ role, ...n }) => ({ ...n, reason: roleText(role) })),
  };
}
