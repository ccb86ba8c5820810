/**
 * `gpuctl configure docker|containerd|crio`: registers gpuctl-runtime with a container engine (see `engines/`).
 * Every file is parsed back before it is written, written atomically, the user's own file backed up once; a second
 * run changes nothing; `--remove` undoes it (the user's file byte for byte when nothing else changed since).
 * @module
 */
import { UsageError } from "../errors/mod.ts";
import { nvidiaFlags, parse } from "./args.ts";
import type { Context } from "./context.ts";
import { applyChanges } from "../engines/files.ts";
import { DOCKER_CONFIG } from "../engines/docker.ts";
import { CONTAINERD_CONFIG, CONTAINERD_DROPIN } from "../engines/containerd.ts";
import { CRIO_DROPIN } from "../engines/crio.ts";
import {
  applyHint,
  CONFIGURABLE,
  type Configurable,
  configureChanges,
  type ConfigureRequest,
  unifiedDiff,
} from "../engines/configure.ts";
import { frontBeside } from "../serve/fronts.ts";

export const HELP =
  `Usage: gpuctl configure docker     [--config FILE] [--name NAME] [--runtime-path PATH] [--set-default] [--remove] [--dry-run]
       gpuctl configure containerd [--config FILE] [--drop-in FILE] [--config-version N] [--name NAME]
                                   [--runtime-path PATH] [--set-default] [--remove] [--dry-run]
       gpuctl configure crio       [--config FILE] [--name NAME] [--runtime-path PATH] [--set-default] [--remove] [--dry-run]

Registers gpuctl-runtime as a runtime named NAME (default "nvidia", as NVIDIA's toolkit names it):
  docker      sets runtimes.NAME.path in daemon.json (default ${DOCKER_CONFIG}), which must be strict
              JSON as dockerd reads it; the rest of the file, and of that runtime's entry, is kept as it is
  containerd  writes the drop-in FILE (default ${CONTAINERD_DROPIN}) with the CRI plugin's table and
              the runtime (runc's runtime_type and options copied, SystemdCgroup included), and adds it to the
              imports of config.toml (default ${CONTAINERD_CONFIG}), the one edit made there;
              config versions 1, 2 and 3 (containerd 2.x)
  crio        writes a drop-in of gpuctl's own (default ${CRIO_DROPIN})
Every file is parsed back before it is written and written atomically; a file of the user's is first saved
as FILE.gpuctl-backup. Running it again changes nothing. For Kubernetes: a RuntimeClass with handler NAME.

Options:
  --config FILE         the engine's configuration file
  --drop-in FILE        containerd: gpuctl's drop-in
  --config-version N    containerd: the version of a config.toml gpuctl creates (default 2; 3 for containerd 2.x)
  --name NAME           the runtime's name (docker run --runtime NAME; RuntimeClass handler NAME)
  --runtime-path PATH   gpuctl-runtime (default: the one installed beside this command, else in
                        /usr/local/bin or /usr/bin)
  --set-default         make it the default runtime
  --cdi                 also let the engine apply CDI specs itself (docker: features.cdi; containerd:
                        enable_cdi and cdi_spec_dirs from cdiSpecDirs)
  --remove              undo: remove the runtime (and the default, the import, gpuctl's drop-in)
  --dry-run             print what would change, as a unified diff per file; write nothing
  -h, --help            this help
NVIDIA's flag names work too (nvidia-ctk runtime configure's): --runtime=ENGINE, --nvidia-runtime-name,
--nvidia-set-as-default, --cdi.enabled; and so does 'gpuctl runtime configure ...'.
`;

/**
 * The installed front: the one beside the gpuctl (or nvidia-ctk) that was run, when `gpuctl install` wrote one
 * there; else where `gpuctl install` puts it by default, or where the package does.
 */
function defaultRuntimePath(): string {
  const beside = frontBeside("gpuctl-runtime");
  if (beside !== null) return beside;
  for (const p of ["/usr/local/bin/gpuctl-runtime", "/usr/bin/gpuctl-runtime"]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* not installed there */ }
  }
  return "/usr/local/bin/gpuctl-runtime";
}

/** nvidia-ctk runtime configure's flags, as gpuctl's. */
const NVIDIA = {
  runtime: "engine",
  "nvidia-runtime-name": "name",
  "runtime-name": "name",
  "nvidia-set-as-default": "set-default",
  "set-as-default": "set-default",
  "cdi.enabled": "cdi",
  "enable-cdi": "cdi",
};

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values, positionals } = parse(
    "configure",
    nvidiaFlags(args, NVIDIA, ["set-default", "cdi", "dry-run"]),
    {
      engine: { type: "string" },
      cdi: { type: "boolean" },
      config: { type: "string" },
      "drop-in": { type: "string" },
      "config-version": { type: "string" },
      name: { type: "string" },
      "runtime-path": { type: "string" },
      "set-default": { type: "boolean" },
      remove: { type: "boolean" },
      "dry-run": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    true,
  );
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const engine = (values.engine ?? positionals[0]) as Configurable | undefined;
  if (
    engine === undefined || !CONFIGURABLE.includes(engine) || positionals.length > (values.engine ? 0 : 1)
  ) {
    throw new UsageError(
      "configure",
      `name one engine: docker, containerd or crio (see 'gpuctl configure --help')`,
    );
  }
  // NVIDIA's name, which every guide, Compose file and Helm chart uses: `docker run --runtime nvidia`.
  const name = values.name ?? "nvidia";
  // A name any engine takes, and a TOML key or a JSON member without surprises.
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(name)) {
    throw new UsageError(
      "configure --name",
      `"${name}" is not a valid runtime name (letters, digits, _ . -)`,
    );
  }
  const path = values["runtime-path"] ?? defaultRuntimePath();
  if (!path.startsWith("/")) throw new UsageError("configure --runtime-path", "must be an absolute path");
  const common = { name, path, setDefault: values["set-default"] ?? false, remove: values.remove ?? false };
  if (common.remove && values.cdi) throw new UsageError("configure", "--remove and --cdi do not go together");
  if (common.remove && common.setDefault) {
    throw new UsageError("configure", "--remove and --set-default do not go together");
  }
  const request: ConfigureRequest = {
    engine,
    ...common,
    cdi: values.cdi ?? false,
    ...(values.config !== undefined ? { file: values.config } : {}),
    ...(values["drop-in"] !== undefined ? { dropIn: values["drop-in"] } : {}),
    newVersion: Number(values["config-version"] ?? "2"),
    annotationPrefixes: ctx.config.cdiAnnotationPrefixes,
    cdiSpecDirs: ctx.config.cdiSpecDirs,
  };
  if (engine === "containerd" && !["1", "2", "3"].includes(values["config-version"] ?? "2")) {
    throw new UsageError("configure --config-version", "must be 1, 2 or 3");
  }
  const changes = configureChanges(request);
  if (values["dry-run"]) {
    ctx.out(await unifiedDiff(changes));
    warnMissing(ctx, request);
    return 0;
  }
  const done = applyChanges(changes);
  if (done.length === 0) {
    ctx.out(
      common.remove
        ? `runtime "${name}": nothing of gpuctl's to remove\n`
        : `runtime "${name}" is already configured (${path}); nothing changed\n`,
    );
  } else for (const l of done) ctx.out(`${l}\n`);
  warnMissing(ctx, request);
  ctx.out(applyHint(request));
  return 0;
}

/** Said once the files are written (or shown): a runtime path that is not there fails every container. */
function warnMissing(ctx: Context, r: Pick<ConfigureRequest, "path" | "name" | "remove">): void {
  if (r.remove) return;
  try {
    if (Deno.statSync(r.path).isFile) return;
  } catch { /* not there: said below */ }
  ctx.warn(
    `${r.path} does not exist: every container on the runtime "${r.name}" fails until it does (gpuctl install writes it; or give --runtime-path)`,
  );
}
