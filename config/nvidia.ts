/**
 * NVIDIA's `config.toml` (`/etc/nvidia-container-runtime/config.toml`, or `$NVIDIA_CTK_CONFIG_FILE_PATH`, or under
 * `$XDG_CONFIG_HOME`), read on a host that has it and no configuration of gpuctl's own: its keys that gpuctl has an
 * equivalent for are honoured, and those it has none for are named (by `gpuctl config` and `gpuctl doctor`), so an
 * operator switching from NVIDIA's toolkit sees what carries over and what does not. `gpuctl config --from-nvidia`
 * writes the equivalent gpuctl file.
 * @module
 */
import { parse, TomlError } from "smol-toml";
import { GpuctlError } from "../errors/mod.ts";
import { type Config, defaultConfig } from "./schema.ts";

/** Where NVIDIA's toolkit reads its configuration, as it finds it. */
export function nvidiaConfigPath(env: (k: string) => string | undefined): string {
  const given = env("NVIDIA_CTK_CONFIG_FILE_PATH");
  if (given) return given;
  const xdg = env("XDG_CONFIG_HOME");
  return `${xdg || "/etc"}/nvidia-container-runtime/config.toml`;
}

/** A key of NVIDIA's file without a gpuctl equivalent, with its value and why. */
export interface Unmapped {
  key: string;
  value: unknown;
  why: string;
}

export interface FromNvidia {
  config: Config;
  /** gpuctl key → the NVIDIA key it came from. */
  from: Partial<Record<keyof Config, string>>;
  unmapped: Unmapped[];
}

type Table = Record<string, unknown>;
const isTable = (v: unknown): v is Table => v !== null && typeof v === "object" && !Array.isArray(v);

/** What gpuctl does instead, for the keys it has no equivalent of. */
const NO_EQUIVALENT: Record<string, string> = {
  "nvidia-container-cli.ldconfig":
    "gpuctl writes the container's linker cache itself, running nothing from the image",
  "nvidia-container-cli.load-kmods":
    "gpuctl loads no kernel module at a container's start (gpuctl system create-device-nodes --load-kernel-modules does, once)",
  "nvidia-container-cli.path": "there is no nvidia-container-cli: gpuctl does its work",
  "nvidia-container-cli.environment": "there is no nvidia-container-cli to give an environment",
  "nvidia-container-cli.user": "gpuctl's NVML runs in a child process of its own",
  "nvidia-container-cli.no-pivot": "gpuctl does not pivot_root into the container",
  "nvidia-container-cli.ldcache": "gpuctl reads the linker cache under driverRoot",
  "supported-driver-capabilities": "capabilities are gpuctl's plugins (pluginsDir)",
  "nvidia-container-runtime.modes.csv.mount-spec-path": "Tegra's CSV mode is not supported",
  "nvidia-container-runtime-hook.skip-mode-detection": "gpuctl's hook runs in any mode",
};

/** What a key's reader has at hand: the typed value getters, and where its result goes. */
interface Reader {
  take<K extends keyof Config>(key: K, value: Config[K]): void;
  str(): string;
  bool(): boolean;
  strs(): string[];
  /** Not carried over, and why. */
  skip(why: string): void;
  bad(want: string): never;
}

/** NVIDIA's keys gpuctl has an equivalent of, each with its reader. */
const KEYS: Record<string, (r: Reader) => void> = {
  "nvidia-container-cli.root": (r) => r.str() !== "" && r.take("driverRoot", r.str()),
  "nvidia-container-cli.no-cgroups": (r) => r.take("noCgroups", r.bool()),
  "accept-nvidia-visible-devices-envvar-when-unprivileged": (r) =>
    r.take("acceptEnvWhenUnprivileged", r.bool()),
  "accept-nvidia-visible-devices-as-volume-mounts": (r) => r.take("acceptVolumeMounts", r.bool()),
  "disable-require": (r) => r.take("disableRequire", r.bool()),
  "swarm-resource": (r) => r.str() !== "" && r.take("swarmResource", r.str().split(",").map((s) => s.trim())),
  "nvidia-container-runtime.runtimes": (r) => r.take("runtimes", r.strs()),
  "nvidia-container-runtime.modes.cdi.spec-dirs": (r) => r.take("cdiSpecDirs", r.strs()),
  "nvidia-container-runtime.modes.cdi.annotation-prefixes": (r) => r.take("cdiAnnotationPrefixes", r.strs()),
  "nvidia-container-runtime.modes.cdi.default-kind": (r) => r.take("cdiKinds", [r.str()]),
  // NVIDIA's default names the hook by name, found on PATH: gpuctl's default finds it the same way.
  "nvidia-container-runtime-hook.path": (r) => r.str().startsWith("/") && r.take("hookPath", r.str()),
  // legacy: the prestart hook (gpuctl's hook mode); auto, cdi, jit-cdi: the spec edited (gpuctl's spec mode, which
  // also resolves CDI names itself).
  "nvidia-container-runtime.mode": (r) => {
    const m = r.str();
    if (m === "legacy") r.take("mode", "hook");
    else if (["auto", "cdi", "jit-cdi"].includes(m)) r.take("mode", "spec");
    else r.skip(`mode "${m}" (Tegra's CSV) is not supported`);
  },
  "nvidia-container-runtime.log-level": (r) => {
    const l = r.str().toLowerCase();
    const level = l === "trace"
      ? "debug"
      : l === "warning"
      ? "warn"
      : ["fatal", "panic"].includes(l)
      ? "error"
      : l;
    if (["debug", "info", "warn", "error"].includes(level)) r.take("logLevel", level as Config["logLevel"]);
    else r.bad("a log level");
  },
  "nvidia-container-runtime.debug": logFile,
  "nvidia-container-cli.debug": logFile,
  "nvidia-container-runtime.modes.legacy.cuda-compat-mode": (r) =>
    r.str() === "disabled" && r.take("cudaCompat", false),
};

function logFile(r: Reader): void {
  const p = r.str();
  if (p !== "" && p !== "/dev/null" && p.startsWith("/")) r.take("logFile", p);
}

/** Every leaf key of a TOML document, dotted, as NVIDIA's documentation names them. */
function leaves(t: Table, prefix = ""): [string, unknown][] {
  return Object.entries(t).flatMap(([k, v]) =>
    isTable(v) ? leaves(v, `${prefix}${k}.`) : [[`${prefix}${k}`, v]]
  );
}

/** Reads NVIDIA's `config.toml` text into gpuctl's configuration. */
export function fromNvidia(text: string, file: string): FromNvidia {
  let doc: Table;
  try {
    doc = parse(text) as Table;
  } catch (e) {
    const where = e instanceof TomlError ? `${file}:${e.line}:${e.column}` : file;
    throw new GpuctlError(
      where,
      `NVIDIA's configuration is not valid TOML (${
        (e as Error).message.split("\n")[0]!.replace(/^Invalid TOML document: /, "")
      }); fix it, or give gpuctl its own (gpuctl config --default)`,
      1,
      { cause: e },
    );
  }
  const config = defaultConfig() as Config;
  const from: FromNvidia["from"] = {};
  const unmapped: Unmapped[] = [];
  for (const [k, v] of leaves(doc)) {
    const read = Object.hasOwn(KEYS, k) ? KEYS[k] : undefined;
    if (read === undefined) {
      unmapped.push({ key: k, value: v, why: NO_EQUIVALENT[k] ?? "gpuctl has no such setting" });
      continue;
    }
    const bad = (want: string): never => {
      throw new GpuctlError(`${file}: ${k}`, `must be ${want} (NVIDIA's configuration)`);
    };
    read({
      take(key, value) {
        (config as Record<keyof Config, unknown>)[key] = value;
        from[key] = k;
      },
      str: () => (typeof v === "string" ? v : bad("a string")),
      bool: () => (typeof v === "boolean" ? v : bad("true or false")),
      strs: () =>
        Array.isArray(v) && v.every((x) => typeof x === "string") ? v as string[] : bad("a list of strings"),
      skip: (why) => unmapped.push({ key: k, value: v, why }),
      bad,
    });
  }
  return { config, from, unmapped };
}

/** The gpuctl configuration file (JSONC) equivalent to NVIDIA's, with what did not carry over as comments. */
export function nvidiaAsGpuctl(r: FromNvidia, file: string): string {
  const lines = [`// gpuctl's configuration, from NVIDIA's ${file} (gpuctl config --from-nvidia)`];
  for (const u of r.unmapped) {
    lines.push(`// not carried over: ${u.key} = ${JSON.stringify(u.value)}: ${u.why}`);
  }
  lines.push("{");
  const keys = Object.keys(r.from) as (keyof Config)[];
  keys.forEach((k, i) => {
    lines.push(
      `  // from ${r.from[k]}`,
      `  ${JSON.stringify(k)}: ${JSON.stringify(r.config[k])}${i < keys.length - 1 ? "," : ""}`,
    );
  });
  lines.push("}", "");
  return lines.join("\n");
}
