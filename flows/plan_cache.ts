/**
 * Plans kept beside the driver snapshot: the plan a request shape got (its devices, capabilities, requirements,
 * gated features, IMEX channels, MIG flags; or `cdi generate`'s capabilities), in `cacheDir` as `plan-<hash>.json`,
 * so that the next container with the same shape loads one small file instead of reading the snapshot whole,
 * loading the registry and planning.
 *
 * An entry is used only while everything the plan was made from is as it was: the snapshot's key, read fresh
 * (gpuctl, the configuration, the plugins, the driver, the GPUs, MIG, the driver's linker cache, the firmware
 * path); every driver file the snapshot lists, by identity; the host's device nodes, read again; and the same
 * request shape, compared in full. A plan is kept only when it was made wholly from a snapshot (not from a search
 * of the driver root for a capability the snapshot lacks, and never for a MIG device named by UUID, which NVML is
 * always asked about). Files are private to root like the snapshot's, and bounded: past {@link MAX_ENTRIES}, the
 * old ones go before a new one is written. A request that fails (a requirement unmet, a GPU missing) is never kept:
 * it is planned, and fails, every time.
 * @module
 */
import type { Config } from "../config/schema.ts";
import type { DeviceRequest } from "../devices/select.ts";
import { readHostDevices } from "../devices/nodes.ts";
import { libc } from "../ffi/libc.ts";
import type { Logger } from "../log/log.ts";
import type { Plan } from "../plan/plan.ts";
import type { Prepared } from "./prepare.ts";
import type { GpuRequest } from "../request/request.ts";
import {
  changedFile,
  fileFor,
  nameHash,
  namesMigUuid,
  readPrivate,
  snapshotKey,
  writePrivate,
} from "../snapshot/snapshot.ts";

/** Bumped when an entry's shape changes. */
const FORMAT = 1;
const MAX_ENTRY = 4 << 20;
/** Request shapes kept at once: a host's containers ask in a few ways; an image's variables cannot fill a tmpfs. */
export const MAX_ENTRIES = 64;
/** A kept plan's file name in `cacheDir` (uninstall removes them). */
export const PLAN_FILE = /^plan-[0-9a-f]{16}\.json$/;

interface Entry {
  format: number;
  key: string;
  shape: string;
  fileIds: string[];
  extraNodes: string[];
  host: unknown;
  warnings: string[];
  plan: Plan;
}

/** Everything of a request that its plan depends on, as one string (compared in full). */
export function requestShape(req: GpuRequest): string {
  return JSON.stringify([
    req.devices,
    req.devicesSource,
    req.capabilities ?? null,
    req.requirements,
    req.privileged,
    req.migConfig,
    req.migMonitor,
    req.imexChannels,
    req.gated,
  ]);
}

/** The entry's file for a shape under this configuration. */
function entryName(config: Config, shape: string): string {
  return `plan-${nameHash(`${fileFor(config)}\n${shape}`)}.json`;
}

/** What a plan is kept under: everything its request asks, as one string, and the devices it names. */
export interface Shape {
  text: string;
  devices: DeviceRequest;
}

/** A container's request as a {@link Shape}. */
export function shapeOf(req: GpuRequest): Shape {
  return { text: requestShape(req), devices: req.devices };
}

/** The kept plan for `shape`, if one is and all it was made from is unchanged; else why not. */
export function keptPlan(config: Config, s: Shape): { plan: Plan; warnings: string[] } | { why: string } {
  if (config.cacheDir === null) return { why: "no cacheDir" };
  if (namesMigUuid(s.devices)) return { why: "a MIG device named by UUID" };
  const shape = s.text;
  const r = readPrivate(config, entryName(config, shape), MAX_ENTRY);
  if ("why" in r) return r;
  let e: Entry;
  try {
    e = JSON.parse(r.text) as Entry;
  } catch { // not one this gpuctl wrote whole: planned again, and replaced
    return { why: "corrupt" };
  }
  if (e?.format !== FORMAT || typeof e.plan !== "object" || !Array.isArray(e.fileIds)) {
    return { why: "foreign" };
  }
  if (e.shape !== shape) return { why: "another request shape" };
  if (e.key !== snapshotKey(config)) return { why: "the host or configuration changed" };
  if (changedFile(e.fileIds) !== null) return { why: "a driver file changed" };
  if (
    !Array.isArray(e.extraNodes) ||
    JSON.stringify(readHostDevices(config, e.extraNodes)) !== JSON.stringify(e.host)
  ) {
    return { why: "the device nodes changed" };
  }
  return { plan: e.plan, warnings: e.warnings };
}

/** Keeps `plan` for `shape` (see the module's description); a failure costs only the next container its speed. */
export function keepPlan(
  config: Config,
  s: Shape,
  plan: Plan,
  from: Prepared["from"],
): string | null {
  if (config.cacheDir === null || from.snapshot === null || namesMigUuid(s.devices)) return null;
  const shape = s.text;
  const e: Entry = {
    format: FORMAT,
    key: from.snapshot.key,
    shape,
    fileIds: from.snapshot.fileIds,
    extraNodes: from.extraNodes,
    host: from.host,
    warnings: from.warnings,
    plan,
  };
  return writePrivate(config, entryName(config, shape), JSON.stringify(e), (dir) => {
    const names = [...Deno.readDirSync(config.cacheDir!)].map((d) => d.name).filter((n) => PLAN_FILE.test(n));
    if (names.length >= MAX_ENTRIES) { for (const n of names) libc().unlinkat(dir, n, 0); }
  });
}

/**
 * The plan kept for `shape`, or the one `make` makes (through the snapshot), which is then kept. The kept plan's
 * warnings go to `warn`, as making it would give them (`make` gives its own). `made` says, when it was made,
 * whether it is now kept and why none was used.
 */
export async function keptOrMade(
  config: Config,
  shape: Shape,
  warn: (m: string) => void,
  make: () => Promise<Pick<Prepared, "plan" | "from">>,
): Promise<{ plan: Plan; made?: { kept: boolean; why: string } }> {
  const kept = keptPlan(config, shape);
  if ("plan" in kept) {
    for (const w of kept.warnings) warn(w);
    return { plan: kept.plan };
  }
  const { plan, from } = await make();
  const unsaved = keepPlan(config, shape, plan, from);
  return { plan, made: { kept: unsaved === null && from.snapshot !== null, why: kept.why } };
}

/** The plan for a GPU request: kept, or made through the snapshot and then kept ({@link keptOrMade}). */
export async function planThroughCache(
  config: Config,
  req: GpuRequest,
  log: Logger,
  configPath: string | undefined,
): Promise<Plan> {
  const warn = (m: string) => log.warn(m);
  const { plan, made } = await keptOrMade(config, shapeOf(req), warn, async () => {
    const [{ planForRequest }, { snapshotFacts }] = await Promise.all([
      import("./prepare.ts"),
      import("../snapshot/facts.ts"),
    ]);
    return await planForRequest(config, req, warn, snapshotFacts(config, { configPath, log }));
  });
  if (made !== undefined) log.debug("plan made", made);
  return plan;
}
