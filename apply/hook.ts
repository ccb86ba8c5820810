/**
 * The hook's whole job, from the state on stdin to a container with GPUs: request → devices → plan → apply.
 * The planner and the in-container work are imported only once the container has asked for GPUs.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { parseSpec, parseState, readLimited, rootfsPath } from "../oci/spec.ts";
import { isGpuRequest, readRequest } from "../request/request.ts";
import { type Logger, phases } from "../log/log.ts";

/** Runs the prestart hook for the container described by `stateText`. */
export async function runHook(config: Config, stateText: string, log: Logger): Promise<void> {
  const state = parseState(stateText);
  const specFile = `${state.bundle}/config.json`;
  const spec = parseSpec(readLimited(specFile), specFile);
  const req = readRequest(spec, config);
  if (!isGpuRequest(req)) {
    log.debug("not a GPU container", { id: state.id });
    return;
  }
  const t0 = performance.now();
  const [{ planForRequest }, { applyToContainer }] = await Promise.all([
    import("../plan/prepare.ts"),
    import("./container.ts"),
  ]);
  const t1 = performance.now();
  const { plan } = await planForRequest(config, req, (m) => log.warn(m));
  const t2 = performance.now();

  for (const w of plan.warnings) log.warn(w);
  applyToContainer(plan, { config, pid: state.pid, rootfs: rootfsPath(spec, state.bundle), log });
  const t3 = performance.now();
  log.info("GPUs injected", {
    id: state.id,
    gpus: plan.gpus.map((g) => g.uuid),
    migs: plan.migs.map((m) => m.uuid),
    capabilities: plan.capabilities,
    ms: phases({ start: t0, load: t1 - t0, plan: t2 - t1, apply: t3 - t2 }),
  });
}
