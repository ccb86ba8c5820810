/**
 * Everything the plan needs, read from the host: plugins, the inventory, the driver's files and device nodes.
 * Used by `gpuctl list` and (later) the hook and the runtime shim; the plan itself stays pure.
 * @module
 */
import type { Config } from "../config/config.ts";
import { discover, type SourceChoice } from "../devices/discover.ts";
import { readHostDevices } from "../devices/nodes.ts";
import { parseVisibleDevices, selectDevices } from "../devices/select.ts";
import type { Inventory } from "../devices/types.ts";
import { type DriverFiles, locateDriverFiles } from "../driver/locate.ts";
import { BUILTIN, pluginFiles, Registry } from "../plugins/registry.ts";
import { buildPlan, type Plan } from "./plan.ts";
import type { GpuRequest } from "../request/request.ts";
import { checkRequirements, type HostFacts } from "../request/requirements.ts";

/** A request in NVIDIA's terms; each field is the raw variable value (`undefined`: unset). */
export interface PlanRequest {
  visibleDevices: string | undefined;
  capabilities: string | undefined;
  /** How the inputs are named in errors (`NVIDIA_VISIBLE_DEVICES` or `--device`). */
  devicesSource?: string;
  capabilitiesSource?: string;
}

export interface Prepared {
  inventory: Inventory;
  registry: Registry;
  files: DriverFiles;
  plan: Plan;
}

/**
 * Loads the registry: built-in capabilities plus the declarative plugins in `config.pluginsDir`. Their JSONC
 * parser is loaded only when there are plugin files to read.
 */
export async function loadRegistry(config: Config): Promise<Registry> {
  const names = pluginFiles(config.pluginsDir);
  if (names.length === 0) return new Registry(BUILTIN);
  const { loadPlugins } = await import("../plugins/declarative.ts");
  return new Registry([...BUILTIN, ...loadPlugins(config.pluginsDir, config.devRoot, names)]);
}

/** Reads the host and builds the plan for `req`. Bad requests fail before NVML is touched. */
export async function preparePlan(
  config: Config,
  req: PlanRequest,
  opts: { source?: SourceChoice; warn?: (m: string) => void } = {},
): Promise<Prepared> {
  const warn = opts.warn ?? (() => {});
  const registry = await loadRegistry(config);
  const capabilities = registry.resolve(req.capabilities, req.capabilitiesSource);
  const devices = parseVisibleDevices(req.visibleDevices);
  const inventory = discover(config, opts.source ?? "auto", warn);
  const selection = selectDevices(devices, inventory, req.devicesSource);
  const files = locateDriverFiles(config, registry, inventory.driver.version, warn, capabilities.effective);
  const extraNodes = registry.names.flatMap((n) =>
    (registry.get(n)?.deviceNodes ?? []).filter((d) => d.startsWith("/"))
  );
  const host = readHostDevices(config, extraNodes);
  const plan = buildPlan({ capabilities, selection, registry, files, host });
  return { inventory, registry, files, plan };
}

/**
 * A container's request turned into a plan, with its `NVIDIA_REQUIRE_*` checked against every selected GPU (or,
 * with none selected, once against the driver alone). Shared by the hook and the runtime shim.
 */
export async function planForRequest(
  config: Config,
  req: GpuRequest,
  warn: (m: string) => void,
): Promise<Prepared> {
  const prepared = await preparePlan(config, {
    visibleDevices: req.devices,
    capabilities: req.capabilities,
    devicesSource: req.devicesSource,
    capabilitiesSource: "NVIDIA_DRIVER_CAPABILITIES",
  }, { warn });
  const { plan, inventory } = prepared;
  const base: HostFacts = {
    cuda: inventory.driver.cudaVersion,
    driver: inventory.driver.version,
    arch: null,
    brand: null,
  };
  const selected = [
    ...plan.gpus.map((g) => inventory.devices[g.index]!),
    ...plan.migs.map((m) => inventory.devices[m.gpu]!),
  ];
  checkRequirements(
    req.requirements,
    selected.length === 0 ? [base] : selected.map((g) => ({ ...base, arch: g.architecture, brand: g.brand })),
  );
  return prepared;
}
