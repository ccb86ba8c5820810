/**
 * gpuctl's configuration: a JSONC file (default `/etc/gpuctl/config.jsonc`, or `--config`, or
 * `$GPUCTL_CONFIG`). A missing default file means defaults; an unknown key or a wrong type is an
 * error that names the key, the file and the line.
 * @module
 */
import { parseJsoncObject, properties } from "./jsonc.ts";
import { GpuctlError } from "../errors/mod.ts";

/** Log levels, most verbose first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The whole configuration, defaults filled in. */
export interface Config {
  /** Where the driver's files are: `/`, or e.g. `/run/nvidia/driver` for a containerized driver. */
  driverRoot: string;
  /** Where the device nodes are. */
  devRoot: string;
  /** Where procfs is. */
  procRoot: string;
  /** NVML: a soname (looked up under `driverRoot`) or an absolute path. */
  nvmlLibrary: string;
  /** A file to append JSON-line logs to; `null` for none. */
  logFile: string | null;
  logLevel: LogLevel;
  /** Declarative capability plugins (`*.jsonc`). */
  pluginsDir: string;
  /** Extra library directories under the driver root, searched before the standard ones when a library
   *  is not in the driver root's ld.so.cache. */
  libraryDirs: string[];
  /** Directories under the driver root searched for the driver's programs, in order. */
  binaryDirs: string[];
  /** Honour NVIDIA_VISIBLE_DEVICES from unprivileged containers (NVIDIA's default: true). */
  acceptEnvWhenUnprivileged: boolean;
  /** Honour device requests as volume mounts under /var/run/nvidia-container-devices. */
  acceptVolumeMounts: boolean;
  /** Ignore every NVIDIA_REQUIRE_* variable. */
  disableRequire: boolean;
  /** The runtime shim's mode: `spec` (edit config.json) or `hook` (add the prestart hook only). */
  mode: "spec" | "hook";
  /** Low-level runtimes the shim execs, first found wins: names (searched on PATH and sbin dirs) or paths. */
  runtimes: string[];
  /** The hook the shim adds in `hook` mode; default: this executable, or nvidia-container-runtime-hook on PATH. */
  hookPath: string | null;
}

/** The default config file. */
export const DEFAULT_CONFIG_PATH = "/etc/gpuctl/config.jsonc";

type KeySpec =
  | { type: "path"; default: string }
  | { type: "string"; default: string }
  | { type: "path?"; default: null }
  | { type: "paths"; default: string[] }
  | { type: "boolean"; default: boolean }
  | { type: "names"; default: string[] }
  | { type: "enum"; values: readonly string[]; default: string };

/** Every key, its type and default: the single source for validation, defaults and `--help`. */
export const SCHEMA: Readonly<Record<keyof Config, KeySpec & { doc: string }>> = {
  driverRoot: { type: "path", default: "/", doc: "root of the driver's files" },
  devRoot: { type: "path", default: "/dev", doc: "where the device nodes are" },
  procRoot: { type: "path", default: "/proc", doc: "where procfs is" },
  nvmlLibrary: { type: "string", default: "libnvidia-ml.so.1", doc: "NVML soname or absolute path" },
  logFile: { type: "path?", default: null, doc: "JSON-lines log file (null: none)" },
  logLevel: { type: "enum", values: LOG_LEVELS, default: "info", doc: "debug, info, warn or error" },
  pluginsDir: {
    type: "path",
    default: "/etc/gpuctl/plugins.d",
    doc: "declarative capability plugins (*.jsonc)",
  },
  libraryDirs: { type: "paths", default: [], doc: "extra library dirs under driverRoot (no ld.so.cache)" },
  binaryDirs: {
    type: "paths",
    default: [
      "/usr/bin",
      "/usr/sbin",
      "/bin",
      "/sbin",
      "/usr/local/bin",
      "/usr/local/sbin",
      "/usr/local/nvidia/bin",
    ],
    doc: "where the driver's programs are, under driverRoot",
  },
  acceptEnvWhenUnprivileged: {
    type: "boolean",
    default: true,
    doc: "honour NVIDIA_VISIBLE_DEVICES from unprivileged containers",
  },
  acceptVolumeMounts: { type: "boolean", default: false, doc: "honour device requests as volume mounts" },
  disableRequire: { type: "boolean", default: false, doc: "ignore NVIDIA_REQUIRE_* constraints" },
  mode: {
    type: "enum",
    values: ["spec", "hook"],
    default: "spec",
    doc: "runtime shim: edit the spec, or add the hook",
  },
  runtimes: { type: "names", default: ["runc", "crun"], doc: "low-level runtimes to exec (names or paths)" },
  hookPath: { type: "path?", default: null, doc: "hook executable the shim adds in hook mode" },
};

/** The defaults. */
export function defaultConfig(): Config {
  const c: Record<string, unknown> = {};
  for (const [k, s] of Object.entries(SCHEMA)) c[k] = Array.isArray(s.default) ? [...s.default] : s.default;
  return c as unknown as Config;
}

function describeType(s: KeySpec): string {
  switch (s.type) {
    case "path":
      return "an absolute path";
    case "path?":
      return "an absolute path or null";
    case "paths":
      return "a list of absolute paths";
    case "boolean":
      return "true or false";
    case "names":
      return "a non-empty list of names or absolute paths";
    case "string":
      return "a string";
    case "enum":
      return `one of ${s.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
}

function checkValue(s: KeySpec, v: unknown): boolean {
  switch (s.type) {
    case "path":
      return typeof v === "string" && v.startsWith("/");
    case "path?":
      return v === null || (typeof v === "string" && v.startsWith("/"));
    case "paths":
      return Array.isArray(v) && v.every((p) => typeof p === "string" && p.startsWith("/"));
    case "boolean":
      return typeof v === "boolean";
    case "names":
      return Array.isArray(v) && v.length > 0 &&
        v.every((p) => typeof p === "string" && p !== "" && (p.startsWith("/") || !p.includes("/")));
    case "string":
      return typeof v === "string" && v.length > 0;
    case "enum":
      return typeof v === "string" && s.values.includes(v);
  }
}

/** Parses and validates config text; `file` names it in errors. */
export function parseConfig(text: string, file: string): Config {
  const doc = parseJsoncObject(text, file);
  const config = defaultConfig() as unknown as Record<string, unknown>;
  if (doc.root === null) return config as unknown as Config;
  for (const [keyNode, valueNode] of properties(doc.root)) {
    const key = keyNode.value as string;
    const spec = (SCHEMA as Record<string, KeySpec>)[key];
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
  const file = explicit ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound && explicit === undefined) {
      return { config: defaultConfig(), file: null };
    }
    const why = e instanceof Deno.errors.NotFound
      ? "no such file (give an existing --config FILE)"
      : (e as Error).message;
    throw new GpuctlError(`config ${file}`, why);
  }
  return { config: parseConfig(text, file), file };
}
