/**
 * Everything the plan needs, read from the host: plugins, the inventory, the driver's files and device nodes. Used
 * by `gpuctl list`, `cdi generate`, and the hooks and the runtime shim when no kept plan fits their request
 * (`request_edits.ts` turns a plan into a container's edits); the plan itself stays pure.
 * @module
 */
import type { Config } from "../config/config.ts";
import { discover, type SourceChoice } from "../devices/discover.ts";
import { type HostDevices, readHostDevices } from "../devices/nodes.ts";
import { type DeviceRequest, selectDevices } from "../devices/select.ts";
import type { Inventory } from "../devices/types.ts";
import type { Facts } from "../snapshot/snapshot.ts";
import { type DriverFiles, locateDriverFiles } from "../driver/locate.ts";
import { BUILTIN, GATED_PLUGINS, pluginFiles, Registry } from "../plugins/registry.ts";
import { buildPlan, IMEX_DIR, type Plan } from "../plan/plan.ts";
import type { GpuRequest } from "../request/request.ts";
import { checkRequirements, type HostFacts, requirementBrand } from "../request/requirements.ts";

/** A request in NVIDIA's terms. */
export interface PlanRequest {
  devices: DeviceRequest;
  /** `NVIDIA_DRIVER_CAPABILITIES` as given (`undefined`: the default). */
  capabilities: string | undefined;
  /** How the inputs are named in errors (`NVIDIA_VISIBLE_DEVICES` or `--device`). */
  devicesSource?: string;
  capabilitiesSource?: string;
  /** Gated capabilities switched on by their variables (`gds` for NVIDIA_GDS=enabled). */
  gated?: readonly string[];
  imexChannels?: readonly number[];
  mig?: { config: boolean; monitor: boolean };
}

export interface Prepared {
  inventory: Inventory;
  registry: Registry;
  files: DriverFiles;
  plan: Plan;
  /** What the plan was made from besides the request, for keeping it (flows/plan_cache.ts). */
  from: {
    /** The snapshot the facts were, when the driver's files came from it too (else the plan is not kept). */
    snapshot: { key: string; fileIds: string[] } | null;
    /** The host's device nodes read for the plan, and which nodes besides the GPUs' were looked for. */
    host: HostDevices;
    extraNodes: string[];
    /** The facts' warnings, said again whenever the plan is used. */
    warnings: string[];
  };
}

/**
 * Loads the registry: built-in capabilities, the declarative plugins in `config.pluginsDir`, and the gated
 * built-ins among `wanted`. The plugin parser is loaded only when there are plugin files to read.
 */
export async function loadRegistry(config: Config, wanted: Iterable<string> = []): Promise<Registry> {
  const names = pluginFiles(config.pluginsDir);
  const gated = [...new Set(wanted)].filter((n) => Registry.isGated(n));
  if (names.length === 0 && gated.length === 0) return new Registry(BUILTIN);
  const { loadPlugins, parsePlugin } = await import("../plugins/declarative.ts");
  return new Registry([
    ...BUILTIN,
    ...gated.map((n) => ({
      ...parsePlugin(GATED_PLUGINS[n]!, `plugins/gated/${n}.jsonc`),
      origin: "builtin",
    })),
    ...loadPlugins(config.pluginsDir, names),
  ]);
}

/** Where the inventory and the driver's files come from (the CLI's: a snapshot, NVML in a child process). */
export type FactsProvider = (devices: DeviceRequest, registry: Registry) => Promise<Facts>;

export interface PrepareOptions {
  source?: SourceChoice;
  warn?: (m: string) => void;
  /** Default: NVML (or /proc) in this process, and a fresh search of the driver root. */
  facts?: FactsProvider;
}

/** Reads the host and builds the plan for `req`. Bad requests fail before NVML is touched. */
export async function preparePlan(
  config: Config,
  req: PlanRequest,
  opts: PrepareOptions = {},
): Promise<Prepared> {
  const warn = opts.warn ?? (() => {});
  const asked = (req.capabilities ?? "").split(",").map((s) => s.trim());
  const registry = await loadRegistry(config, [...asked, ...(req.gated ?? [])]);
  const capabilities = registry.resolve(req.capabilities, req.capabilitiesSource, req.gated);
  const facts: Facts = opts.facts ? await opts.facts(req.devices, registry) : {
    inventory: discover(config, opts.source ?? "auto", warn),
    files: null,
    capabilities: [],
    warnings: [],
  };
  for (const w of facts.warnings) warn(w);
  const inventory = facts.inventory;
  const selection = selectDevices(req.devices, inventory, req.devicesSource);
  const fromFacts = facts.files !== null &&
    capabilities.effective.every((n) => facts.capabilities.includes(n));
  const files = fromFacts
    ? facts.files!
    : locateDriverFiles(config, registry, inventory.driver.version, warn, capabilities.effective);
  const extraNodes = [
    ...registry.names.flatMap((n) => (registry.get(n)?.deviceNodes ?? []).filter((d) => d.startsWith("/"))),
    ...(req.imexChannels ?? []).map((c) => `${IMEX_DIR}/channel${c}`),
  ];
  const host = readHostDevices(config, extraNodes);
  const plan = buildPlan({
    capabilities,
    selection,
    registry,
    files,
    host,
    ...(req.imexChannels ? { imexChannels: req.imexChannels } : {}),
    ...(req.mig ? { mig: req.mig } : {}),
  });
  return {
    inventory,
    registry,
    files,
    plan,
    from: {
      snapshot: fromFacts ? facts.snapshot ?? null : null,
      host,
      extraNodes,
      warnings: facts.warnings,
    },
  };
}

/**
 * A container's request turned into a plan, with its `NVIDIA_REQUIRE_*` checked against every selected GPU (or,
 * with none selected, once against the driver alone). Shared by the hook and the runtime shim.
 */
export async function planForRequest(
  config: Config,
  req: GpuRequest,
  warn: (m: string) => void,
  facts?: FactsProvider,
): Promise<Prepared> {
  const prepared = await preparePlan(config, {
    devices: req.devices,
    capabilities: req.capabilities,
    devicesSource: req.devicesSource,
    capabilitiesSource: "NVIDIA_DRIVER_CAPABILITIES",
    gated: req.gated,
    imexChannels: req.imexChannels,
    mig: { config: req.migConfig, monitor: req.migMonitor },
  }, { warn, ...(facts ? { facts } : {}) });
  const { plan, inventory: inv } = prepared;
  const base: HostFacts = {
    cuda: inv.driver.cudaVersion,
    driver: inv.driver.version,
    arch: null,
    brand: null,
  };
  const selected = [
    ...plan.gpus.map((g) => inv.devices[g.index]!),
    ...plan.migs.map((m) => inv.devices[m.gpu]!),
  ];
  checkRequirements(
    req.requirements,
    selected.length === 0
      ? [base]
      : selected.map((g) => ({ ...base, arch: g.architecture, brand: requirementBrand(g.brand) })),
  );
  return prepared;
}
