/**
 * Reading the configuration on the hot path. Every start of the shim and the hook reads the config file, and a
 * full JSONC parser is loaded and run with positions there (the bench's startup rows weigh it). A valid file does
 * not need one: comments and trailing commas are blanked out and `JSON.parse` does the rest. Only a file that fails that
 * path goes to the full parser in `config.ts`, whose job is then to say where the problem is.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import {
  checkValue,
  type Config,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  type KeySpec,
  SCHEMA,
} from "./schema.ts";

/**
 * JSONC text as JSON: comments and trailing commas replaced by spaces, strings untouched. What is not JSONC
 * stays invalid, for `JSON.parse` to refuse.
 */
export function jsoncToJson(text: string): string {
  const blank: [number, number][] = []; // ranges to replace by spaces, in any order
  let comma = -1; // index of a comma that may yet prove to be trailing
  let prev = 0; // the last significant character: a comma after `{`, `[` or `,` is never trailing
  for (let i = 0; i < text.length;) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      comma = -1;
      prev = c;
      for (i++; i < text.length; i++) {
        const s = text.charCodeAt(i);
        if (s === 0x5c /* \ */) i++;
        else if (s === 0x22) break;
      }
      i++;
    } else if (c === 0x2f /* / */ && text.charCodeAt(i + 1) === 0x2f) {
      const end = text.indexOf("\n", i);
      const stop = end < 0 ? text.length : end;
      blank.push([i, stop]);
      i = stop;
    } else if (c === 0x2f && text.charCodeAt(i + 1) === 0x2a /* * */) {
      const end = text.indexOf("*/", i + 2);
      if (end < 0) return text; // an unterminated comment: left for JSON.parse to refuse
      blank.push([i, end + 2]);
      i = end + 2;
    } else if (c === 0x2c /* , */) {
      comma = prev === 0x7b /* { */ || prev === 0x5b /* [ */ || prev === 0x2c ? -1 : i;
      prev = c;
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      if (comma >= 0) blank.push([comma, comma + 1]);
      comma = -1;
      prev = c;
      i++;
    } else {
      if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
        comma = -1;
        prev = c;
      }
      i++;
    }
  }
  if (blank.length === 0) return text;
  blank.sort((a, b) => a[0] - b[0]);
  let out = "", from = 0;
  for (const [start, end] of blank) {
    out += text.slice(from, start) + " ".repeat(end - start);
    from = end;
  }
  return out + text.slice(from);
}

/**
 * JSONC text's value by the fast path, or `null` when it must go to the full parser: text that is not JSONC, or
 * that holds an escape. Escapes are left to the full parser because this Deno's JSON.parse (V8 15.0) can give an
 * escaped key the name of another one it parsed before (`{"x":0,"\\":1}` then `{"x":0,"\"":1}` gives `\`),
 * and a configuration needs none. `json` is `jsoncToJson(text)`, where the caller has it already.
 */
export function quickJsonc(text: string, json?: string): unknown {
  if (text.includes("\\")) return null;
  try {
    return JSON.parse(json ?? jsoncToJson(text));
  } catch { // not JSON once comments are blanked: the full parser says where
    return null;
  }
}

/**
 * The configuration in `text` when it is valid; `null` when it is not (malformed, not an object, an unknown
 * key, a wrong type): the caller then asks the full parser to explain it.
 */
export function quickConfig(text: string): Config | null {
  const json = jsoncToJson(text);
  if (json.trim() === "") return defaultConfig();
  const doc = quickJsonc(text, json);
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) return null;
  const config = defaultConfig() as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(doc)) {
    if (!Object.hasOwn(SCHEMA, key)) return null;
    // A key given twice is the full parser's to judge (JSON.parse keeps the last; every one must be valid).
    if ((json.match(new RegExp(`"${key}"\\s*:`, "g")) ?? []).length > 1) return null;
    if (!checkValue((SCHEMA as Record<string, KeySpec>)[key]!, value)) return null;
    config[key] = value;
  }
  return config as unknown as Config;
}

/**
 * The config file's text, or `null` when the default file is absent (defaults apply). `explicit` is a path
 * from `--config` or `$GPUCTL_CONFIG`: it must exist.
 */
export function readConfigText(
  explicit: string | undefined,
  exists?: (path: string) => boolean,
): { text: string; file: string } | null {
  const file = explicit ?? DEFAULT_CONFIG_PATH;
  // The default file is usually absent; `exists` (access(2) for the command line) says so without building the
  // error a failed read throws, the first of which is dear in a short process.
  if (explicit === undefined && exists !== undefined && !existsOrUnknown(exists, file)) return null;
  try {
    return { text: Deno.readTextFileSync(file), file };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && explicit === undefined) return null;
    const why = e instanceof Deno.errors.NotFound
      ? "no such file (give an existing --config FILE)"
      : (e as Error).message;
    throw new GpuctlError(`config ${file}`, why, 1, { cause: e });
  }
}

/** `exists(file)`, where a failing check (no libc to ask, say) counts as "present": the read then decides. */
function existsOrUnknown(exists: (path: string) => boolean, file: string): boolean {
  try {
    return exists(file);
  } catch { // unknown: the read that follows says what is wrong
    return true;
  }
}

/** The config file the environment names: `$GPUCTL_CONFIG`, unless unset or empty (then the default applies). */
export function envConfigPath(env: (k: string) => string | undefined): string | undefined {
  return env("GPUCTL_CONFIG") || undefined;
}

/**
 * The configuration when it needs no full parser: the default file absent, or a plainly valid file. `null` for
 * everything else (an invalid file, an unreadable one, a failing `exists`), which `readConfig()` explains.
 */
export function plainConfig(explicit: string | undefined, exists?: (path: string) => boolean): Config | null {
  try {
    const r = readConfigText(explicit, exists);
    if (r !== null) return quickConfig(r.text);
    // NVIDIA's file instead: read by readConfig(), which loads a TOML parser.
    return nvidiaFile(exists) === null ? defaultConfig() : null;
  } catch { // no such file (or unreadable): no configuration of NVIDIA's
    return null;
  }
}

/** NVIDIA's config.toml, when it exists (read only when gpuctl has no configuration of its own). */
export function nvidiaFile(exists?: (path: string) => boolean): string | null {
  const env = (k: string) => Deno.env.get(k);
  const given = env("NVIDIA_CTK_CONFIG_FILE_PATH");
  const file = given || `${env("XDG_CONFIG_HOME") || "/etc"}/nvidia-container-runtime/config.toml`;
  try {
    return (exists ? exists(file) : Deno.statSync(file).isFile) ? file : null;
  } catch { // no such file: NVIDIA's configuration is absent
    return null;
  }
}

/**
 * `loadConfig()` for the command line: the same result and the same errors, but the full JSONC parser is
 * loaded only when the file is invalid.
 */
export async function readConfig(
  explicit: string | undefined,
  exists?: (path: string) => boolean,
): Promise<{ config: Config; file: string | null }> {
  const r = readConfigText(explicit, exists);
  if (r === null) {
    // No configuration of gpuctl's own: NVIDIA's, where the host has one (an operator switching over).
    const nv = nvidiaFile(exists);
    if (nv === null) return { config: defaultConfig(), file: null };
    const { fromNvidia } = await import("./nvidia.ts");
    return { config: fromNvidia(Deno.readTextFileSync(nv), nv).config, file: nv };
  }
  const quick = quickConfig(r.text);
  if (quick !== null) return { config: quick, file: r.file };
  const { parseConfig } = await import("./parse.ts");
  return { config: parseConfig(r.text, r.file), file: r.file };
}
