/**
 * The full parser and validator of gpuctl's configuration (JSONC, every key checked against the schema, errors
 * naming the file, line and key). `config/read.ts` loads it only when the fast path cannot read a file.
 * @module
 */
import { parseJsoncObject, properties } from "./jsonc.ts";
import { checkValue, type Config, defaultConfig, describeType, type KeySpec, SCHEMA } from "./schema.ts";

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
