/**
 * The configuration's keys: their types, defaults and documentation, and how a value is checked. The single
 * source for validation, defaults and `--help`; no JSONC parser here, so every start can load it cheaply.
 * @module
 */

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
  /** Where sysfs is (the kernel's firmware search path). */
  sysRoot: string;
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
  /** Variables that select devices instead of NVIDIA_VISIBLE_DEVICES when set (NVIDIA's swarm-resource). */
  swarmResource: string[];
  /** Annotation prefixes whose values are CDI device names (Kubernetes device plugins). */
  cdiAnnotationPrefixes: string[];
  /** CDI kinds a request may name anywhere: the environment, volume mounts, annotations. */
  cdiKinds: string[];
  /** Further CDI kinds only annotations may name ("*": any), as an orchestrator's device plugin sets them. */
  cdiAnnotationKinds: string[];
  /** Where CDI specs are read from (a later directory wins over an earlier one). */
  cdiSpecDirs: string[];
  /** Let an image's newer CUDA forward-compatibility libraries take precedence over the driver's. */
  cudaCompat: boolean;
  /** Make no device-cgroup edits (rootless engines, which cannot; nvidia-container-cli's --no-cgroups). */
  noCgroups: boolean;
  /** Seconds NVML may take before a command gives up (a GPU off the bus can hang it forever). */
  nvmlTimeout: number;
  /** Where the driver snapshot, kept plans and kept linker caches are (root only); `null` for none. */
  cacheDir: string | null;
  /** The runtime shim's mode: `spec` (edit config.json) or `hook` (add the prestart hook only). */
  mode: "spec" | "hook";
  /** Low-level runtimes the shim execs, first found wins: names (searched on PATH and sbin dirs) or paths. */
  runtimes: string[];
  /** The hook the shim adds in `hook` mode; default: this executable, or nvidia-container-runtime-hook on PATH. */
  hookPath: string | null;
}

/** The default config file. */
export const DEFAULT_CONFIG_PATH = "/etc/gpuctl/config.jsonc";

export type KeySpec =
  | { type: "path"; default: string }
  | { type: "string"; default: string }
  | { type: "path?"; default: string | null }
  | { type: "paths"; default: string[] }
  | { type: "boolean"; default: boolean }
  | { type: "names"; default: string[] }
  | { type: "strings"; default: string[] }
  | { type: "seconds"; default: number }
  | { type: "enum"; values: readonly string[]; default: string };

/** Every key, its type and default: the single source for validation, defaults and `--help`. */
export const SCHEMA: Readonly<Record<keyof Config, KeySpec & { doc: string }>> = {
  driverRoot: { type: "path", default: "/", doc: "root of the driver's files" },
  devRoot: { type: "path", default: "/dev", doc: "where the device nodes are" },
  procRoot: { type: "path", default: "/proc", doc: "where procfs is" },
  sysRoot: { type: "path", default: "/sys", doc: "where sysfs is (the kernel's firmware path)" },
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
  swarmResource: {
    type: "strings",
    default: [],
    doc: "variables that select devices before NVIDIA_VISIBLE_DEVICES (e.g. DOCKER_RESOURCE_GPU)",
  },
  cdiAnnotationPrefixes: {
    type: "strings",
    default: ["cdi.k8s.io/"],
    doc: "annotation prefixes whose values are CDI device names",
  },
  cdiKinds: {
    type: "strings",
    default: ["nvidia.com/gpu"],
    doc: "CDI kinds a request may name from the environment, volume mounts or annotations",
  },
  cdiAnnotationKinds: {
    type: "strings",
    default: [],
    doc: 'further CDI kinds only annotations may name ("*": any)',
  },
  cdiSpecDirs: {
    type: "paths",
    default: ["/etc/cdi", "/var/run/cdi"],
    doc: "where CDI specs are read (a later directory wins)",
  },
  cudaCompat: {
    type: "boolean",
    default: true,
    doc: "an image's newer CUDA compat libraries (/usr/local/cuda/compat) take precedence",
  },
  noCgroups: { type: "boolean", default: false, doc: "make no device-cgroup edits (rootless engines)" },
  nvmlTimeout: { type: "seconds", default: 10, doc: "seconds NVML may take before gpuctl gives up" },
  cacheDir: {
    type: "path?",
    default: "/run/gpuctl",
    doc: "where the driver snapshot, kept plans and linker caches are, root only (null: none)",
  },
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

export function describeType(s: KeySpec): string {
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
    case "strings":
      return "a list of non-empty strings";
    case "seconds":
      return "a number of seconds (more than 0, at most 600)";
    case "string":
      return "a string";
    case "enum":
      return `one of ${s.values.map((v) => JSON.stringify(v)).join(", ")}`;
  }
}

export function checkValue(s: KeySpec, v: unknown): boolean {
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
    case "strings":
      return Array.isArray(v) && v.every((p) => typeof p === "string" && p !== "");
    case "seconds":
      return typeof v === "number" && v > 0 && v <= 600;
    case "string":
      return typeof v === "string" && v.length > 0;
    case "enum":
      return typeof v === "string" && s.values.includes(v);
  }
}
