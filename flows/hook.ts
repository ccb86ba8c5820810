/**
 * The hooks' work, from the state on stdin to a container with GPUs:
 *
 * - `prestart` (Docker's `--gpus`, the shim's hook mode): request → devices → plan → edits → applied in the
 *   container. The planner and the in-container work are imported only once the container has asked for GPUs.
 * - `container-edits` (the `createContainer` hook of a CDI spec, and of the shim's `run`): the edits given on its
 *   command line that no spec field can express — library links, the linker cache, the /proc/driver/nvidia view —
 *   made inside the container. No NVML, no plan.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { parseState, readLimited, readSpecFields } from "../oci/spec.ts";
import { readRequest, readsAnnotation } from "../request/request.ts";
import { type Logger, phases } from "../log/log.ts";
import type { InsideEdits, ProcGpu } from "../edits/edits.ts";
import { parseEditArgs } from "../edits/hook_args.ts";

/** Runs the prestart hook for the container described by `stateText`. */
export async function runHook(
  config: Config,
  stateText: string,
  log: Logger,
  configPath: string | undefined,
): Promise<void> {
  const state = parseState(stateText);
  const specFile = `${state.bundle}/config.json`;
  const spec = readSpecFields(readLimited(specFile), specFile, readsAnnotation(config));
  const req = readRequest(spec, config);
  if (req === null) {
    log.debug("not a GPU container", { id: state.id });
    return;
  }
  const t0 = performance.now();
  const [{ editsForRequest }, { applyEdits }, { planThroughCache }, { withLdCacheMemo }] = await Promise.all([
    import("./request_edits.ts"),
    import("../apply/container.ts"),
    import("./plan_cache.ts"),
    import("./ldcache_memo.ts"),
  ]);
  const t1 = performance.now();
  const { edits, gpus, cdi } = await editsForRequest(config, req, {
    bundle: state.bundle,
    rootPath: spec.rootPath,
    warn: (m) => log.warn(m),
    plan: () => planThroughCache(config, req, log, configPath),
  });
  const t2 = performance.now();
  if (cdi && edits.spec.env.length > 0) {
    log.warn("a prestart hook cannot set the container's environment; the CDI devices' env is not applied", {
      env: edits.spec.env,
    });
  }
  if (config.noCgroups) log.info("noCgroups: the device cgroup is left as it is", { bundle: state.bundle });
  // Opened here, on the host: applyEdits enters the container's mount namespace.
  withLdCacheMemo(config, (ldMemo) =>
    applyEdits(edits, {
      pid: state.pid,
      bundle: state.bundle,
      rootPath: spec.rootPath,
      procRoot: config.procRoot,
      stage: "prestart",
      cgroups: !config.noCgroups,
      cudaCompat: config.cudaCompat,
      log,
      ldMemo,
    }));
  const t3 = performance.now();
  log.info("GPUs injected", {
    id: state.id,
    gpus,
    ms: phases({ start: t0, load: t1 - t0, plan: t2 - t1, apply: t3 - t2 }),
  });
}

/**
 * Runs a `container-edits` hook for the container described by `stateText`: as the hook process itself (in the
 * container's mount namespace), or for it (`callerPid`: gpuctl serve, in the host's, entering the hook process's).
 */
export async function runEditsHook(
  config: Config,
  stateText: string,
  args: readonly string[],
  log: Logger,
  callerPid?: number,
) {
  const t0 = performance.now();
  const a = parseEditArgs(args);
  const state = parseState(stateText);
  const specFile = `${state.bundle}/config.json`;
  // Only the devices are read here: no annotation is kept.
  const spec = readSpecFields(readLimited(specFile), specFile, () => false);
  const { procGpusFor } = await import("../edits/edits.ts");
  const { applyEdits } = await import("../apply/container.ts");
  const { withLdCacheMemo } = await import("./ldcache_memo.ts");
  const all: ProcGpu[] = a.gpus.map((g) => ({
    ...g,
    hostPath: `${config.procRoot}/driver/nvidia/gpus/${g.name}`,
  }));
  const inside: InsideEdits = {
    symlinks: a.symlinks,
    ldcache: a.ldcache,
    procView: a.proc ? { gpus: procGpusFor(all, spec.devices), capabilities: null } : null,
    driverVersion: a.driverVersion,
  };
  // Only gpuctl serve, on the host, has kept merges: the hook process itself starts in the container's namespaces.
  withLdCacheMemo(callerPid === undefined ? null : config, (ldMemo) =>
    applyEdits({ inside }, {
      pid: callerPid ?? state.pid,
      bundle: state.bundle,
      rootPath: spec.rootPath,
      procRoot: config.procRoot,
      stage: callerPid === undefined ? "createContainer" : "createContainerServed",
      cgroups: false,
      cudaCompat: a.compat,
      log,
      ldMemo,
    }));
  log.info("container edits made", {
    id: state.id,
    gpus: (inside.procView?.gpus ?? []).map((g) => g.name),
    ms: phases({ start: t0, edit: performance.now() - t0 }),
  });
}
