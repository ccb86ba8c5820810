/**
 * `gpuctl cdi generate|list`: Container Device Interface specs for Podman, containerd, CRI-O and Docker 25+,
 * which apply them themselves.
 * @module
 */
import { GpuctlError, UsageError } from "../errors/mod.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";

export const HELP =
  `Usage: gpuctl cdi generate [--output FILE|-] [--format json|yaml] [--vendor VENDOR] [--class CLASS]
                           [--device-name-strategy index|uuid|type-index]... [--capabilities CAPS]
                           [--hook-path PATH] [--no-cuda-compat]
       gpuctl cdi list [--json]

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
  --hook-path PATH   the hook's executable (default: this gpuctl, or nvidia-container-runtime-hook on PATH)

list prints the fully qualified device names the specs in cdiSpecDirs define (default /etc/cdi and
/var/run/cdi). Use a name as: podman run --device nvidia.com/gpu=0 ...; docker run --device ... (Docker
25+ with CDI on); or NVIDIA_VISIBLE_DEVICES=nvidia.com/gpu=0 through gpuctl-runtime.
`;

const STRATEGIES = ["index", "uuid", "type-index"] as const;

export async function run(ctx: Context, args: string[]): Promise<number> {
  const sub = args[0];
  if (sub === undefined || sub === "--help" || sub === "-h") {
    ctx.out(HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub === "list") return await list(ctx, args.slice(1));
  if (sub !== "generate") {
    throw new UsageError("cdi", `unknown subcommand ${JSON.stringify(sub)} (generate, list)`);
  }
  const { values } = await parse("cdi", args.slice(1), {
    output: { type: "string" },
    format: { type: "string" },
    vendor: { type: "string" },
    class: { type: "string" },
    "device-name-strategy": { type: "string", multiple: true },
    capabilities: { type: "string" },
    "hook-path": { type: "string" },
    "no-cuda-compat": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const output = values.output === "-" ? undefined : values.output;
  const format = values.format ?? (output !== undefined && /\.ya?ml$/.test(output) ? "yaml" : "json");
  if (format !== "json" && format !== "yaml") {
    throw new UsageError("cdi generate --format", "must be json or yaml");
  }
  const strategies = values["device-name-strategy"] ?? ["index", "uuid"];
  for (const s of strategies) {
    if (!(STRATEGIES as readonly string[]).includes(s)) {
      throw new UsageError(
        "cdi generate --device-name-strategy",
        `${JSON.stringify(s)} is not index, uuid or type-index`,
      );
    }
  }
  if (output !== undefined && !output.startsWith("/")) {
    throw new UsageError("cdi generate --output", "must be an absolute path (or -)");
  }
  const config = ctx.config;
  const { hookExecutable, hookEnv } = await import("../apply/shim_edit.ts");
  const hook = values["hook-path"] !== undefined
    ? { path: values["hook-path"], argv0: "nvidia-container-runtime-hook" }
    : hookExecutable(config);
  if (!hook.path.startsWith("/")) {
    throw new UsageError("cdi generate --hook-path", "must be an absolute path");
  }
  try {
    if (!Deno.statSync(hook.path).isFile) throw new Error("not a file");
  } catch {
    throw new GpuctlError(
      `cdi generate: hook ${hook.path}`,
      "does not exist (give --hook-path, or run gpuctl install)",
    );
  }
  const { generateSpec } = await import("../cdi/generate.ts");
  const spec = await generateSpec(config, {
    vendor: values.vendor ?? "nvidia.com",
    class: values.class ?? "gpu",
    strategies: strategies as (typeof STRATEGIES)[number][],
    capabilities: values.capabilities,
    hook: { path: hook.path, argv: [hook.argv0, "container-edits"], env: hookEnv(ctx.globals.configPath) },
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
  const { values } = await parse("cdi", args, {
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const dirs = ctx.config.cdiSpecDirs;
  const { deviceNames, loadSpecs, prepareYaml } = await import("../cdi/resolve.ts");
  await prepareYaml(dirs);
  const errors: string[] = [];
  const specs = loadSpecs(dirs, errors);
  for (const e of errors) ctx.warn(e);
  if (values.json) {
    ctx.out(
      JSON.stringify(
        specs.map((s) => ({
          file: s.file,
          kind: s.spec.kind,
          cdiVersion: s.spec.cdiVersion,
          devices: s.spec.devices.map((d) => d.name),
        })),
        null,
        2,
      ) + "\n",
    );
    return 0;
  }
  const names = deviceNames(specs);
  if (names.length === 0) {
    ctx.warn(`no CDI devices in ${dirs.join(", ")} (gpuctl cdi generate --output /var/run/cdi/nvidia.json)`);
  }
  ctx.out(names.map((n) => `${n}\n`).join(""));
  return 0;
}
