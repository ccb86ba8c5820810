/**
 * Where a plan's facts come from on the command line: the driver snapshot when it is current, else NVML (in a
 * child process, with a timeout) and a search of the driver root, saved as the next snapshot. The log says when
 * and why a snapshot was rebuilt: the first GPU container after a driver change pays for the discovery, once.
 * @module
 */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/log.ts";
import type { DeviceRequest } from "../devices/select.ts";
import { discoverIsolated } from "../devices/isolated.ts";
import { locateDriverFiles } from "../driver/locate.ts";
import { Registry } from "../plugins/registry.ts";
import {
  type Facts,
  fileIdentities,
  FORMAT,
  namesMigUuid,
  readSnapshot,
  snapshotKey,
  writeSnapshot,
} from "./snapshot.ts";

export type FactsProvider = (devices: DeviceRequest, registry: Registry) => Promise<Facts>;

/** Facts through the snapshot in `config.cacheDir`; `configPath` is this process's `--config`, for the child. */
export function snapshotFacts(
  config: Config,
  o: { configPath: string | undefined; log: Logger },
): FactsProvider {
  return async (devices, registry) => {
    const t0 = performance.now();
    const key = snapshotKey(config);
    const r = readSnapshot(config, key);
    if ("snapshot" in r) {
      const s = r.snapshot;
      if (!namesMigUuid(devices)) {
        return {
          inventory: s.inventory,
          files: s.files,
          capabilities: s.capabilities,
          warnings: s.warnings,
          snapshot: { key, fileIds: s.fileIds },
        };
      }
      const d = await discoverIsolated(config, "auto", o.configPath);
      return { inventory: d.inventory, files: s.files, capabilities: s.capabilities, warnings: d.warnings };
    }
    const d = await discoverIsolated(config, "auto", o.configPath);
    const capabilities = registry.names.filter((n) => !Registry.isGated(n));
    const warnings = [...d.warnings];
    const files = locateDriverFiles(
      config,
      registry,
      d.inventory.driver.version,
      (m) => warnings.push(m),
      capabilities,
    );
    const facts = { inventory: d.inventory, files, capabilities, warnings };
    const fileIds = fileIdentities(files);
    const unsaved = writeSnapshot(config, { format: FORMAT, key, ...facts, fileIds });
    o.log.info("driver snapshot rebuilt", {
      why: r.why,
      ms: Math.round((performance.now() - t0) * 10) / 10,
      ...(unsaved !== null ? { notSaved: unsaved } : {}),
    });
    return unsaved === null && !namesMigUuid(devices) ? { ...facts, snapshot: { key, fileIds } } : facts;
  };
}
