/**
 * gpuctl's configuration: a JSONC file (default `/etc/gpuctl/config.jsonc`, or `--config`, or
 * `$GPUCTL_CONFIG`). A missing default file means defaults; an unknown key or a wrong type is an
 * error that names the key, the file and the line.
 * @module
 */
import { parseJsoncObject, properties } from "./jsonc.ts";
import { checkValue, type Config, defaultConfig, describeType, type KeySpec, SCHEMA } from "./schema.ts";
import { quickConfig, readConfigText } from "./read.ts";

export * from "./schema.ts";

/** Parses and validates config text; `file` names it in errors. */
export function parseConfig(text: string, file: string): Config {
  const doc = parseJsoncObject(text, file);
  const config = defaultConfig() as unknown as Record<string, unknown>;
  if (doc.root === null) return config as unknown as Config;
  for (const [keyNode, valueNode] of properties(doc.root)) {
    const key = keyNode.value as string;
    const spec = Object.hasOwn(SCHEMA, key) ? (SCHEMA as Record<string, KeySpec>)[key] : undefined;
    if (spec === undefined) {
      return doc.fail(keyNode, `unknown key "${key}" (known keys: ${Object.keys(SCHEMA).join(", ")})`);
    }
    const value = doc.value(valueNode);
    if (!checkValue(spec, value)) {
      return doc.fail(keyNode, `"${key}" must be ${describeType(spec)}, not ${doc.excerpt(valueNode)}`);
    }
    config[key] = value;
  }
  return config as unknown as Config;
}

/**
 * Loads the configuration. `explicit` is a path from `--config` or `$GPUCTL_CONFIG`: it must exist.
 * Without one, the default file is read when present.
 */
export function loadConfig(explicit: string | undefined): { config: Config; file: string | null } {
  const r = readConfigText(explicit);
  if (r === null) return { config: defaultConfig(), file: null };
  return { config: quickConfig(r.text) ?? parseConfig(r.text, r.file), file: r.file };
}
