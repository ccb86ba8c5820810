/**
 * A GPU request's container edits, as the hooks and the shim need them: from a plan they are given (a kept one,
 * `plan_cache.ts`), or from the CDI specs for CDI device names. The planner (`prepare.ts`: NVML, the driver's
 * files, the plugins) is imported only when a plan must be made here: a kept plan never loads it.
 * @module
 */
import type { Config } from "../config/config.ts";
import { isCdiName } from "../cdi/names.ts";
import { type ContainerEdits, containerEdits } from "../edits/edits.ts";
import { GpuctlError } from "../errors/mod.ts";
import type { Plan } from "../plan/plan.ts";
import type { GpuRequest } from "../request/request.ts";

/** The CDI names in a request, when it names devices that way (all or none of them: mixing is an error). */
export function cdiNames(req: GpuRequest): string[] | null {
  if (req.devices.kind !== "list") return null;
  const cdi = req.devices.ids.filter(isCdiName);
  if (cdi.length === 0) return null;
  if (cdi.length !== req.devices.ids.length) {
    throw new GpuctlError(
      req.devicesSource,
      "mixes CDI device names (vendor/class=name) with other device ids; use one kind",
    );
  }
  return cdi;
}

/**
 * A GPU request's container edits, libraries placed as the image in the bundle's rootfs lays them out: from a plan,
 * or, for CDI device names, from the CDI specs on this host (no NVML then).
 */
export async function editsForRequest(
  config: Config,
  req: GpuRequest,
  opts: {
    bundle: string;
    rootPath: string | undefined;
    warn: (m: string) => void;
    /** The plan for a request that names no CDI devices (default: planned here, without a snapshot). */
    plan?: () => Promise<Plan>;
  },
): Promise<{ edits: ContainerEdits; gpus: string[]; cdi: boolean }> {
  const names = cdiNames(req);
  if (names !== null) {
    const [{ prepareYaml, resolveCdi }, { cdiToContainerEdits }] = await Promise.all([
      import("../cdi/resolve.ts"),
      import("../edits/from_cdi.ts"),
    ]);
    await prepareYaml(config.cdiSpecDirs);
    const r = resolveCdi(config.cdiSpecDirs, names);
    return { edits: cdiToContainerEdits(r, config.procRoot), gpus: names, cdi: true };
  }
  const plan = opts.plan
    ? await opts.plan()
    : (await (await import("./prepare.ts")).planForRequest(config, req, opts.warn)).plan;
  const { InRoot } = await import("../apply/inroot.ts");
  const { libraryDirs } = await import("../apply/container.ts");
  const root = InRoot.openRootfs(opts.bundle, opts.rootPath);
  let dirs;
  try {
    dirs = libraryDirs(root);
  } finally {
    root.close();
  }
  for (const w of plan.warnings) opts.warn(w);
  return {
    edits: containerEdits(plan, dirs),
    gpus: [...plan.gpus.map((g) => g.uuid), ...plan.migs.map((m) => m.uuid)],
    cdi: false,
  };
}
