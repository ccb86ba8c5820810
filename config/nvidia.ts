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
    );
  }
  const config = defaultConfig() as Config;
  const from: FromNvidia["from"] = {};
  const unmapped: Unmapped[] = [];
  const take = <K extends keyof Config>(key: K, value: Config[K], nvidia: string) => {
    (config as Record<keyof Config, unknown>)[key] = value;
    from[key] = nvidia;
  };
  const bad = (key: string, want: string): never => {
    throw new GpuctlError(`${file}: ${key}`, `must be ${want} (NVIDIA's configuration)`);
  };
  // Every leaf key, dotted, as NVIDIA's documentation names them.
  const leaves: [string, unknown][] = [];
  const walk = (t: Table, prefix: string) => {
    for (const [k, v] of Object.entries(t)) {
      if (isTable(v)) walk(v, `${prefix}${k}.`);
      else leaves.push([`${prefix}${k}`, v]);
    }
  };
  walk(doc, "");
  const str = (k: string, v: unknown) => (typeof v === "string" ? v : bad(k, "a string"));
  const bool = (k: string, v: unknown) => (typeof v === "boolean" ? v : bad(k, "true or false"));
  const strs = (k: string, v: unknown) =>
    Array.isArray(v) && v.every((x) => typeof x === "string") ? v as string[] : bad(k, "a list of strings");
  for (const [k, v] of leaves) {
    switch (k) {
      case "nvidia-container-cli.root":
        if (str(k, v) !== "") take("driverRoot", str(k, v), k);
        break;
      case "nvidia-container-cli.no-cgroups":
        take("noCgroups", bool(k, v), k);
        break;
      case "accept-nvidia-visible-devices-envvar-when-unprivileged":
        take("acceptEnvWhenUnprivileged", bool(k, v), k);
        break;
      case "accept-nvidia-visible-devices-as-volume-mounts":
        take("acceptVolumeMounts", bool(k, v), k);
        break;
      case "disable-require":
        take("disableRequire", bool(k, v), k);
        break;
      case "swarm-resource":
        if (str(k, v) !== "") take("swarmResource", str(k, v).split(",").map((s) => s.trim()), k);
        break;
      case "nvidia-container-runtime.runtimes":
        take("runtimes", strs(k, v), k);
        break;
      case "nvidia-container-runtime.modes.cdi.spec-dirs":
        take("cdiSpecDirs", strs(k, v), k);
        break;
      case "nvidia-container-runtime.modes.cdi.annotation-prefixes":
        take("cdiAnnotationPrefixes", strs(k, v), k);
        break;
      case "nvidia-container-runtime.modes.cdi.default-kind":
        take("cdiKinds", [str(k, v)], k);
        break;
      case "nvidia-container-runtime-hook.path": {
        const p = str(k, v);
        // NVIDIA's default names the hook by name, found on PATH: gpuctl's default finds it the same way.
        if (p.startsWith("/")) take("hookPath", p, k);
        break;
      }
      case "nvidia-container-runtime.mode": {
        // legacy: the prestart hook (gpuctl's hook mode); auto, cdi, jit-cdi: the spec edited (gpuctl's spec
        // mode, which also resolves CDI names itself).
        const m = str(k, v);
        if (m === "legacy") take("mode", "hook", k);
        else if (["auto", "cdi", "jit-cdi"].includes(m)) take("mode", "spec", k);
        else unmapped.push({ key: k, value: v, why: `mode "${m}" (Tegra's CSV) is not supported` });
        break;
      }
      case "nvidia-container-runtime.log-level": {
        const l = str(k, v).toLowerCase();
        const level = l === "trace"
          ? "debug"
          : l === "warning"
          ? "warn"
          : ["fatal", "panic"].includes(l)
          ? "error"
          : l;
        if (["debug", "info", "warn", "error"].includes(level)) {
          take("logLevel", level as Config["logLevel"], k);
        } else bad(k, "a log level");
        break;
      }
      case "nvidia-container-runtime.debug":
      case "nvidia-container-cli.debug": {
        const p = str(k, v);
        if (p !== "" && p !== "/dev/null" && p.startsWith("/")) take("logFile", p, k);
        break;
      }
      case "nvidia-container-runtime.modes.legacy.cuda-compat-mode":
        if (str(k, v) === "disabled") take("cudaCompat", false, k);
        break;
      default:
        unmapped.push({ key: k, value: v, why: NO_EQUIVALENT[k] ?? "gpuctl has no such setting" });
    }
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
