/**
 * `gpuctl cdi generate|list`: Container Device Interface specs for Podman, containerd, CRI-O and Docker 25+,
 * which apply them themselves.
 * @module
 */
import { UsageError } from "../errors/mod.ts";
import { nvidiaFlags, parse } from "./args.ts";
import type { Context } from "./context.ts";
import { CDI_OUTPUT } from "../cdi/spec.ts";

export const HELP =
  `Usage: gpuctl cdi generate [--output FILE|-] [--format json|yaml] [--vendor VENDOR] [--class CLASS]
                           [--device-name-strategy index|uuid|type-index]... [--capabilities CAPS]
                           [--hook-path PATH | --no-hook] [--no-cuda-compat]
                           [--driver-root DIR] [--dev-root DIR] [--library-search-path DIR]...
       gpuctl cdi list [--json] [--spec-dir DIR]...
       gpuctl cdi transform-root --from DIR --to DIR [--input FILE|-] [--output FILE|-]

generate writes a CDI spec for this host's GPUs: a device per GPU and per MIG device, named by index
(0, 1:0) and by UUID (GPU-..., MIG-...) unless --device-name-strategy says otherwise, and "all". Each device
brings its own nodes; every device brings the control nodes and the driver's files for CAPS (default
utility,compute, as NVIDIA_DRIVER_CAPABILITIES; "all" for every capability) mounted read-only, and one
createContainer hook, gpuctl itself with an explicit environment, that makes the library links, the
container's linker cache and its /proc/driver/nvidia view (only its own GPUs'). The spec is checked and
written atomically; cdiVersion is the lowest that expresses it.

  --output FILE      where to write it (default: standard output; "-" too)
  --format FORMAT    json (default, or from the file's name) or yaml
  --vendor VENDOR    default nvidia.com           --class CLASS   default gpu
  --hook-path PATH   the hook's executable (default: hookPath; else the nvidia-container-runtime-hook that
                     gpuctl install wrote beside this command, which hands its work to gpuctl serve; else
                     this gpuctl, or nvidia-container-runtime-hook on PATH)
  --capabilities CAPS  the driver's files for these (default utility,compute; all; gated ones by name: gds,
                     mofed, gdrcopy, nvswitch)
  --no-cuda-compat   no CUDA forward compatibility in the hook
  --no-hook          a spec with no hook, so no process per container: each library link becomes a mount of
                     its file, every 64-bit library is mounted in /usr/lib64 too (found by SONAME where a
                     Debian, Ubuntu or lib64 image's loader looks by default); not made: the linker cache
                     (ldconfig -p does not list them), the /proc/driver/nvidia view (every GPU listed there, as
                     in NVIDIA's specs), CUDA forward compatibility, 32-bit libraries outside Debian layouts
  --driver-root DIR, --dev-root DIR, --library-search-path DIR   this run's driverRoot, devRoot, libraryDirs
NVIDIA's names work too: --nvidia-cdi-hook-path (--nvidia-ctk-path) for --hook-path, and --mode auto|nvml
(the default) or gds|mofed|gdrcopy|nvswitch (that capability added).

list prints the fully qualified device names the specs in cdiSpecDirs define (default /etc/cdi and
/var/run/cdi; --spec-dir, repeated, for others). Use a name as: podman run --device nvidia.com/gpu=0 ...; docker run --device ... (Docker
25+ with CDI on); or NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0 through gpuctl-runtime.

transform-root rewrites a spec's host paths from one root to another (a spec made for a containerized
driver at /run/nvidia/driver, used from the host's view, say), as nvidia-ctk cdi transform root does.
`;

/**
 * Where `--output` writes: relative to the working directory, a file whose name a CDI engine reads (`.json`,
 * `.yaml`, `.yml`), not a directory.
 */
function outputFile(given: string): string {
  const path = given.startsWith("/") ? given : `${Deno.cwd()}/${given}`;
  let dir = false;
  try {
    dir = Deno.statSync(path).isDirectory;
  } catch { /* a new file */ }
  if (dir || path.endsWith("/")) {
    throw new UsageError(
      `cdi generate --output ${given}`,
      "is a directory: name the file (e.g. /var/run/cdi/nvidia.json)",
    );
  }
  if (!/\.(json|ya?ml)$/.test(path)) {
    throw new UsageError(
      `cdi generate --output ${given}`,
      "must end in .json, .yaml or .yml: CDI engines read no other file from a spec directory",
    );
  }
  return path;
}

/** nvidia-ctk cdi generate's flags, as gpuctl's. */
const NVIDIA = { "nvidia-cdi-hook-path": "hook-path", "nvidia-ctk-path": "hook-path" };
const GATED = ["gds", "mofed", "gdrcopy", "nvswitch"];

const STRATEGIES = ["index", "uuid", "type-index"] as const;

export async function run(ctx: Context, args: string[]): Promise<number> {
  const sub = args[0];
  if (sub === undefined || sub === "--help" || sub === "-h") {
    ctx.out(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "list") return await list(ctx, args.slice(1));
  if (sub === "transform-root") return await transformRoot(ctx, args.slice(1));
  if (sub !== "generate") {
    throw new UsageError("cdi", `unknown subcommand ${JSON.stringify(sub)} (generate, list, transform-root)`);
  }
  return await generate(ctx, args.slice(1));
}

/** `--device-name-strategy`, checked. */
function nameStrategies(given: readonly string[]): (typeof STRATEGIES)[number][] {
  for (const s of given) {
    if (!(STRATEGIES as readonly string[]).includes(s)) {
      throw new UsageError(
        "cdi generate --device-name-strategy",
        `${JSON.stringify(s)} is not index, uuid or type-index`,
      );
    }
  }
  return given as (typeof STRATEGIES)[number][];
}

/** `--capabilities` with NVIDIA's `--mode`: nvml (gpuctl's only kind of spec), or a gated capability added. */
function withMode(capabilities: string | undefined, mode: string): string | undefined {
  if (GATED.includes(mode)) return `${capabilities ?? "utility,compute"},${mode}`;
  if (mode === "auto" || mode === "nvml") return capabilities;
  throw new UsageError(
    "cdi generate --mode",
    `${JSON.stringify(mode)}: gpuctl's specs are NVIDIA's nvml mode (auto, nvml), or a gated capability (${
      GATED.join(", ")
    }); MIG management goes through the runtime (NVIDIA_MIG_CONFIG_DEVICES), WSL and Tegra (csv) are not supported`,
  );
}

async function generate(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("cdi", nvidiaFlags(args, NVIDIA), {
    "driver-root": { type: "string" },
    "dev-root": { type: "string" },
    "library-search-path": { type: "string", multiple: true },
    mode: { type: "string" },
    output: { type: "string" },
    format: { type: "string" },
    vendor: { type: "string" },
    class: { type: "string" },
    "device-name-strategy": { type: "string", multiple: true },
    capabilities: { type: "string" },
    "hook-path": { type: "string" },
    "no-cuda-compat": { type: "boolean" },
    "no-hook": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  if (values["no-hook"] && values["hook-path"] !== undefined) {
    throw new UsageError("cdi generate --no-hook", "names no hook; leave out --hook-path");
  }
  const output = values.output === "-" || values.output === undefined ? undefined : outputFile(values.output);
  const format = values.format ?? (output !== undefined && /\.ya?ml$/.test(output) ? "yaml" : "json");
  if (format !== "json" && format !== "yaml") {
    throw new UsageError("cdi generate --format", "must be json or yaml");
  }
  const strategies = nameStrategies(values["device-name-strategy"] ?? ["index", "uuid"]);
  const capabilities = withMode(values.capabilities, values.mode ?? "auto");
  const config = {
    ...ctx.config,
    ...(values["driver-root"] !== undefined ? { driverRoot: values["driver-root"] } : {}),
    ...(values["dev-root"] !== undefined ? { devRoot: values["dev-root"] } : {}),
    ...(values["library-search-path"] !== undefined
      ? { libraryDirs: values["library-search-path"].flatMap((p) => p.split(":")).filter((p) => p !== "") }
      : {}),
  };
  const { specHook, generateSpec } = await import("../flows/cdi_generate.ts");
  const { frontBeside } = await import("../serve/fronts.ts");
  const hook = values["no-hook"] ? null : specHook(
    config,
    values["hook-path"],
    ctx.globals.configPath,
    frontBeside("nvidia-container-runtime-hook"),
  );
  const spec = await generateSpec(config, {
    vendor: values.vendor ?? "nvidia.com",
    class: values.class ?? "gpu",
    strategies,
    capabilities,
    hook,
    cudaCompat: config.cudaCompat && !values["no-cuda-compat"],
    facts: (await import("../snapshot/facts.ts")).snapshotFacts(config, {
      configPath: ctx.globals.configPath,
      log: ctx.log,
    }),
  }, (m) => ctx.warn(m));
  const text = format === "json"
    ? JSON.stringify(spec, null, 2) + "\n"
    : (await import("../cdi/yaml.ts")).stringify(spec, { lineWidth: 0 });
  if (output === undefined) {
    ctx.out(text);
    return 0;
  }
  const { writeAtomic } = await import("../oci/edit.ts");
  Deno.mkdirSync(output.slice(0, output.lastIndexOf("/")) || "/", { recursive: true });
  writeAtomic(output, text);
  ctx.out(`${output}: ${spec.devices.length} devices (${spec.kind}, cdiVersion ${spec.cdiVersion})\n`);
  return 0;
}

async function list(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("cdi", args, {
    json: { type: "boolean" },
    "spec-dir": { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const dirs = values["spec-dir"] ?? ctx.config.cdiSpecDirs;
  const { cdiRegistry, conflictText, loadSpecs, prepareYaml } = await import("../cdi/resolve.ts");
  await prepareYaml(dirs);
  const errors: string[] = [];
  const specs = loadSpecs(dirs, errors);
  for (const e of errors) ctx.warn(e);
  const registry = cdiRegistry(specs);
  for (const [name, files] of registry.conflicts) ctx.warn(conflictText(name, files));
  if (values.json) {
    ctx.out(
      JSON.stringify(
        specs.map((s) => ({
          file: s.file,
          kind: s.spec.kind,
          cdiVersion: s.spec.cdiVersion,
          devices: s.spec.devices.map((d) => d.name),
          conflicts: s.spec.devices.map((d) => `${s.spec.kind}=${d.name}`).filter((n) =>
            registry.conflicts.get(n)?.includes(s.file)
          ),
        })),
        null,
        2,
      ) + "\n",
    );
    return registry.conflicts.size > 0 ? 1 : 0;
  }
  const names = [...registry.devices.keys()];
  if (names.length === 0) {
    ctx.warn(`no CDI devices in ${dirs.join(", ")} (gpuctl cdi generate --output ${CDI_OUTPUT})`);
  }
  ctx.out(names.map((n) => `${n}\n`).join(""));
  return registry.conflicts.size > 0 ? 1 : 0;
}

/** `cdi transform-root`: every host path under `--from` moved under `--to`, the rest of the spec as it was. */
async function transformRoot(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("cdi", args, {
    from: { type: "string" },
    to: { type: "string" },
    input: { type: "string" },
    output: { type: "string" },
    format: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const from = (values.from ?? "/").replace(/\/+$/, "") || "/",
    to = (values.to ?? "/").replace(/\/+$/, "") || "/";
  const input = values.input === "-" ? undefined : values.input;
  const output = values.output === "-" ? undefined : values.output;
  const read = input === undefined
    ? new TextDecoder().decode(await new Response(Deno.stdin.readable).arrayBuffer())
    : Deno.readTextFileSync(input);
  const yamlish = (f: string | undefined) => f !== undefined && /\.ya?ml$/.test(f);
  const yaml = await import("../cdi/yaml.ts");
  const { validateSpec } = await import("../cdi/spec.ts");
  const spec = (yamlish(input) ? yaml.parse(read) : JSON.parse(read)) as import("../cdi/spec.ts").CdiSpec;
  validateSpec(spec, input ?? "standard input");
  const move = (p: string | undefined) =>
    p === undefined || !(p === from || p.startsWith(from === "/" ? "/" : `${from}/`))
      ? p
      : `${to === "/" ? "" : to}${from === "/" ? p : p.slice(from.length)}` || "/";
  for (const e of [spec.containerEdits, ...spec.devices.map((d) => d.containerEdits)]) {
    if (e === undefined) continue;
    for (const m of e.mounts ?? []) m.hostPath = move(m.hostPath)!;
    for (const n of e.deviceNodes ?? []) if (n.hostPath !== undefined) n.hostPath = move(n.hostPath)!;
    for (const h of e.hooks ?? []) h.path = move(h.path)!;
  }
  const format = values.format ??
    (yamlish(output) || (output === undefined && yamlish(input)) ? "yaml" : "json");
  const text = format === "yaml"
    ? yaml.stringify(spec, { lineWidth: 0 })
    : JSON.stringify(spec, null, 2) + "\n";
  if (output === undefined) ctx.out(text);
  else (await import("../oci/edit.ts")).writeAtomic(output, text);
  return 0;
}
