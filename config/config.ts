/**
 * gpuctl's configuration: a JSONC file (default `/etc/gpuctl/config.jsonc`, or `--config`, or
 * `$GPUCTL_CONFIG`). A missing default file means defaults; an unknown key or a wrong type is an
 * error that names the key, the file and the line.
 * @module
 */
import { type Config, defaultConfig } from "./schema.ts";
import { quickConfig, readConfigText } from "./read.ts";
import { parseConfig } from "./parse.ts";

export * from "./schema.ts";
export { parseConfig };

/**
 * Loads the configuration. `explicit` is a path from `--config` or `$GPUCTL_CONFIG`: it must exist.
 * Without one, the default file is read when present.
 */
export function loadConfig(explicit: string | undefined): { config: Config; file: string | null } {
  const r = readConfigText(explicit);
  if (r === null) return { config: defaultConfig(), file: null };
  return { config: quickConfig(r.text) ?? parseConfig(r.text, r.file), file: r.file };
}
