/**
 * `gpuctl config`: the effective configuration, each value with where it came from (the file and line that set it,
 * or the default); `--default` prints a commented default file, every key with its meaning and default.
 * @module
 */
import { nvidiaFlags, parse } from "./args.ts";
import { GpuctlError, UsageError } from "../errors/mod.ts";
import { nvidiaConfigPath } from "../config/nvidia.ts";
import type { Context } from "./context.ts";
import { DEFAULT_CONFIG_PATH, SCHEMA } from "../config/schema.ts";

export const HELP = `Usage: gpuctl config [--json]
       gpuctl config --default [--json]   (also: gpuctl config default; --json: the defaults as data)
       gpuctl config --set KEY=VALUE... [--in-place | --output FILE]
       gpuctl config --from-nvidia [--output FILE]

Prints the effective configuration: every key, its value, and where the value came from (FILE:LINE, or
"default"). The file is --config FILE, $GPUCTL_CONFIG, or ${DEFAULT_CONFIG_PATH} when it exists; without
one, NVIDIA's /etc/nvidia-container-runtime/config.toml when the host has it (its keys that gpuctl has an
equivalent for; the others are listed, with what gpuctl does instead).
--default prints a default configuration file, every key commented out with its meaning and default:
  gpuctl config --default > ${DEFAULT_CONFIG_PATH}
--set KEY=VALUE (repeatable; VALUE as JSON, or a bare string) sets keys in the configuration file, its
comments kept, checked before it is written: printed, or written in place (--in-place, atomically), or to
--output FILE. NVIDIA's key names work for the keys gpuctl has (nvidia-container-cli.root, ...).
--from-nvidia prints (or writes to --output FILE) the gpuctl file equivalent to NVIDIA's config.toml.
`;

/** The commented default configuration file. */
export function defaultFile(): string {
  const lines = [
    `// gpuctl configuration (${DEFAULT_CONFIG_PATH}, or --config FILE, or $GPUCTL_CONFIG): JSONC.`,
    "// Every key is optional; each is shown commented out, with its default. Uncomment to change one.",
    "{",
  ];
  for (const [key, spec] of Object.entries(SCHEMA)) {
    lines.push(`  // ${spec.doc}`, `  // ${JSON.stringify(key)}: ${JSON.stringify(spec.default)},`, "");
  }
  if (lines.at(-1) === "") lines.pop();
  lines.push("}", "");
  return lines.join("\n");
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values, positionals } = parse(
    "config",
    nvidiaFlags(args, { "config-file": "file" }, ["in-place"]),
    {
      json: { type: "boolean" },
      default: { type: "boolean" },
      set: { type: "string", multiple: true },
      "in-place": { type: "boolean", short: "i" },
      output: { type: "string", short: "o" },
      file: { type: "string", short: "c" },
      "from-nvidia": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  if (positionals.length > 1 || (positionals[0] !== undefined && positionals[0] !== "default")) {
    throw new UsageError(
      "config",
      `unknown argument ${JSON.stringify(positionals.at(-1))} (see 'gpuctl config --help')`,
    );
  }
  if (values.default || positionals[0] === "default") {
    if (values.json) {
      // The defaults as data: every key with its default value.
      const { defaultConfig } = await import("../config/schema.ts");
      await emit(ctx, JSON.stringify(defaultConfig(), null, 2) + "\n", values.output);
    } else await emit(ctx, defaultFile(), values.output);
    return 0;
  }
  if (values["from-nvidia"]) {
    const nvidiaPath = nvidiaConfigPath((k) => Deno.env.get(k));
    const { fromNvidia, nvidiaAsGpuctl } = await import("../config/nvidia.ts");
    let text: string;
    try {
      text = Deno.readTextFileSync(nvidiaPath);
    } catch { // absent or unreadable: said below
      throw new GpuctlError(
        `config --from-nvidia: ${nvidiaPath}`,
        "does not exist (NVIDIA_CTK_CONFIG_FILE_PATH names another)",
      );
    }
    await emit(ctx, nvidiaAsGpuctl(fromNvidia(text, nvidiaPath), nvidiaPath), values.output);
    return 0;
  }
  if (values.set !== undefined) {
    return await setKeys(ctx, values.set, values.file, values["in-place"], values.output);
  }
  return await show(ctx, values.json === true);
}

/** Every effective value with where it came from: as a table, or as JSON. */
async function show(ctx: Context, json: boolean): Promise<number> {
  const config = ctx.config as unknown as Record<string, unknown>; // a broken file fails here, with its line
  const { configSources } = await import("../config/sources.ts");
  const src = await configSources(ctx.globals.configPath);
  const rows = Object.keys(SCHEMA).map((k) => ({ key: k, value: config[k], from: src.from[k] ?? "default" }));
  if (json) {
    const doc = {
      file: src.file,
      config: Object.fromEntries(rows.map((x) => [x.key, { value: x.value, from: x.from }])),
    };
    ctx.out(JSON.stringify(doc, null, 2) + "\n");
    return 0;
  }
  const what = src.file !== null
    ? src.file
    : Object.keys(src.from).length > 0 || src.unmapped.length > 0
    ? `${src.nvidiaFile} (NVIDIA's; ${DEFAULT_CONFIG_PATH} is absent)`
    : `no configuration file (${DEFAULT_CONFIG_PATH} is absent): defaults`;
  ctx.out(`# ${what}\n`);
  for (const u of src.unmapped) ctx.out(`# ${u}\n`);
  const w = Math.max(...rows.map((x) => x.key.length));
  for (const x of rows) ctx.out(`${x.key.padEnd(w)}  ${JSON.stringify(x.value)}  # ${x.from}\n`);
  return 0;
}

/** Prints `text`, or writes it to `output` atomically. */
async function emit(ctx: Context, text: string, output: string | undefined): Promise<void> {
  if (output === undefined || output === "-") {
    ctx.out(text);
    return;
  }
  (await import("../oci/edit.ts")).writeAtomic(
    output.startsWith("/") ? output : `${Deno.cwd()}/${output}`,
    text,
  );
  ctx.out(`${output}: written\n`);
}

/** NVIDIA's key names for the keys gpuctl has (gpuctl config --set takes either). */
const NVIDIA_KEYS: Record<string, string> = {
  "nvidia-container-cli.root": "driverRoot",
  "nvidia-container-cli.no-cgroups": "noCgroups",
  "accept-nvidia-visible-devices-envvar-when-unprivileged": "acceptEnvWhenUnprivileged",
  "accept-nvidia-visible-devices-as-volume-mounts": "acceptVolumeMounts",
  "disable-require": "disableRequire",
  "nvidia-container-runtime.runtimes": "runtimes",
  "nvidia-container-runtime.log-level": "logLevel",
  "nvidia-container-runtime.modes.cdi.spec-dirs": "cdiSpecDirs",
  "nvidia-container-runtime.modes.cdi.annotation-prefixes": "cdiAnnotationPrefixes",
  "nvidia-container-runtime-hook.path": "hookPath",
};

/** `--set KEY=VALUE...`: the configuration file with those keys set, its comments kept, checked by the parser. */
async function setKeys(
  ctx: Context,
  sets: string[],
  file: string | undefined,
  inPlace: boolean | undefined,
  output: string | undefined,
): Promise<number> {
  const path = file ?? ctx.globals.configPath ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      throw new GpuctlError(`config ${path}`, (e as Error).message, 1, { cause: e });
    }
    text = "{\n}\n";
  }
  const { applyEdits, modify } = await import("jsonc-parser");
  const { parseConfig } = await import("../config/config.ts");
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) throw new UsageError(`config --set ${s}`, "is not KEY=VALUE");
    const given = s.slice(0, eq), raw = s.slice(eq + 1);
    const key = NVIDIA_KEYS[given] ?? given;
    if (!Object.hasOwn(SCHEMA, key)) {
      throw new UsageError(
        `config --set ${given}`,
        `is not a key of gpuctl's (gpuctl config --default lists them)`,
      );
    }
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      value = raw; // a bare string
    }
    if (given === "nvidia-container-runtime.runtimes" && typeof value === "string") value = value.split(",");
    text = applyEdits(
      text,
      modify(text, [key], value, { formattingOptions: { insertSpaces: true, tabSize: 2 } }),
    );
    // Refused before anything is written, naming the --set (the edited text is not on disk to point into).
    try {
      parseConfig(text, path);
    } catch (e) {
      if (e instanceof GpuctlError) throw new UsageError(`config --set ${s}`, e.why);
      throw e;
    }
  }
  if (inPlace) {
    (await import("../oci/edit.ts")).writeAtomic(path, text);
    ctx.out(`${path}: updated\n`);
  } else await emit(ctx, text, output);
  return 0;
}
