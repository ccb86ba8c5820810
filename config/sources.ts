/**
 * Where each effective configuration value comes from, for `gpuctl config`: the file and line that set it,
 * NVIDIA's config.toml key it was carried over from, or the default.
 * @module
 */
import { exists } from "../ffi/libc.ts";
import { nvidiaConfigPath } from "./nvidia.ts";
import { readConfigText } from "./read.ts";
import { parseJsoncObject, properties } from "./jsonc.ts";

export interface ConfigSources {
  /** gpuctl's file in use, or null. */
  file: string | null;
  /** NVIDIA's config.toml (read only when gpuctl has no file). */
  nvidiaFile: string;
  /** Per key: `file:line`, or `config.toml (its key)`. Keys absent: defaults. */
  from: Record<string, string>;
  /** NVIDIA's keys that did not carry over, in words. */
  unmapped: string[];
}

/** The sources of the configuration `--config` (`configPath`) names. */
export async function configSources(configPath: string | undefined): Promise<ConfigSources> {
  const nvidiaFile = nvidiaConfigPath((k) => Deno.env.get(k));
  const r = readConfigText(configPath, exists);
  const from: Record<string, string> = {};
  let unmapped: string[] = [];
  if (r !== null) {
    const doc = parseJsoncObject(r.text, r.file);
    if (doc.root !== null) {
      for (const [k] of properties(doc.root)) from[k.value as string] = doc.where(k).replace(/:\d+$/, "");
    }
  } else if (exists(nvidiaFile)) {
    const { fromNvidia } = await import("./nvidia.ts");
    const n = fromNvidia(Deno.readTextFileSync(nvidiaFile), nvidiaFile);
    for (const [k, nk] of Object.entries(n.from)) from[k] = `${nvidiaFile} (${nk})`;
    unmapped = n.unmapped.map((u) => `${u.key} = ${JSON.stringify(u.value)}: not used: ${u.why}`);
  }
  return { file: r?.file ?? null, nvidiaFile, from, unmapped };
}
