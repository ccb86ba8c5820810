/**
 * The hook's whole job, from the state on stdin to a container with GPUs: request → devices → plan → apply.
 * @module
 */
import type { Config } from "../config/config.ts";
import { parseSpec, parseState, readLimited, rootfsPath } from "../oci/spec.ts";
import { planForRequest } from "../plan/prepare.ts";
import { isGpuRequest, readRequest } from "../request/request.ts";
import type { Logger } from "../log/log.ts";
import { applyToContainer } from "./container.ts";

/** Runs the prestart hook for the container described by `stateText`. */
export function runHook(config: Config, stateText: string, log: Logger): void {
  const state = parseState(stateText);
  const specFile = `${state.bundle}/config.json`;
  const spec = parseSpec(readLimited(specFile), specFile);
  const req = readRequest(spec, config);
  if (!isGpuRequest(req)) {
    log.debug("not a GPU container", { id: state.id });
    return;
  }
  const { plan } = planForRequest(config, req, (m) => log.warn(m));

  for (const w of plan.warnings) log.warn(w);
  applyToContainer(plan, { config, pid: state.pid, rootfs: rootfsPath(spec, state.bundle), log });
  log.info("GPUs injected", {
    id: state.id,
    gpus: plan.gpus.map((g) => g.uuid),
    migs: plan.migs.map((m) => m.uuid),
    capabilities: plan.capabilities,
  });
}
