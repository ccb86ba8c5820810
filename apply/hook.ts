/**
 * The hooks' work, from the state on stdin to a container with GPUs:
 *
 * - `prestart` (Docker's `--gpus`, the shim's hook mode): request → devices → plan → edits → applied in the
 *   container. The planner and the in-container work are imported only once the container has asked for GPUs.
 * - `container-edits` (the `createContainer` hook of a CDI spec, and of the shim's `run`): the edits given on its
 *   command line that no spec field can express — library links, the linker cache, the /proc/driver/nvidia view —
 *   made inside the container. No NVML, no plan.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { GpuctlError } from "../errors/mod.ts";
import { parseSpec, parseState, readLimited } from "../oci/spec.ts";
import { readRequest } from "../request/request.ts";
import { type Logger, phases } from "../log/log.ts";
import type { ContainerEdits, ProcGpu } from "../edits/edits.ts";

/** Runs the prestart hook for the container described by `stateText`. */
export async function runHook(
  config: Config,
  stateText: string,
  log: Logger,
  configPath: string | undefined,
): Promise<void> {
  const state = parseState(stateText);
  const specFile = `${state.bundle}/config.json`;
  const spec = parseSpec(readLimited(specFile), specFile);
  const req = readRequest(spec, config);
  if (req === null) {
    log.debug("not a GPU container", { id: state.id });
    return;
  }
  const t0 = performance.now();
  const [{ editsForRequest }, { applyEdits, ALL_PARTS }, { snapshotFacts }] = await Promise.all([
    import("../plan/prepare.ts"),
    import("./container.ts"),
    import("../snapshot/facts.ts"),
  ]);
  const t1 = performance.now();
  const { edits, gpus, cdi } = await editsForRequest(config, req, {
    bundle: state.bundle,
    rootPath: spec.rootPath,
    warn: (m) => log.warn(m),
    facts: snapshotFacts(config, { configPath, log }),
  });
  const t2 = performance.now();
  if (cdi && edits.env.length > 0) {
    log.warn("a prestart hook cannot set the container's environment; the CDI devices' env is not applied", {
      env: edits.env,
    });
  }
  if (config.noCgroups) log.info("noCgroups: the device cgroup is left as it is", { bundle: state.bundle });
  applyEdits(edits, {
    pid: state.pid,
    bundle: state.bundle,
    rootPath: spec.rootPath,
    procRoot: config.procRoot,
    stage: "prestart",
    parts: { ...ALL_PARTS, cgroups: !config.noCgroups, cudaCompat: config.cudaCompat },
    log,
  });
  const t3 = performance.now();
  log.info("GPUs injected", {
    id: state.id,
    gpus,
    ms: phases({ start: t0, load: t1 - t0, plan: t2 - t1, apply: t3 - t2 }),
  });
}

/** What a `container-edits` hook is asked to do (its command line, see {@link editArgs}). */
export interface EditArgs {
  symlinks: ContainerEdits["symlinks"];
  ldcache: ContainerEdits["ldcache"];
  /** Every GPU the spec knows; the container gets those whose /dev/nvidia<minor> it has. */
  gpus: { minor: number; name: string }[];
  driverVersion: string;
  compat: boolean;
  proc: boolean;
}

/** The command line of a `container-edits` hook for these edits (parsed back by {@link parseEditArgs}). */
export function editArgs(a: EditArgs): string[] {
  return [
    "--driver-version",
    a.driverVersion,
    ...(a.compat ? ["--cuda-compat"] : []),
    ...(a.proc ? ["--proc"] : []),
    ...a.symlinks.flatMap((s) => ["--link", `${s.path}::${s.target}`]),
    ...a.ldcache.flatMap((e) => ["--lib", `${e.soname}::${e.path}${e.bits === 32 ? "::32" : ""}`]),
    ...a.gpus.flatMap((g) => ["--gpu", `${g.minor}::${g.name}`]),
  ];
}

/** Parses a `container-edits` hook's command line; errors name the argument. */
export function parseEditArgs(args: readonly string[]): EditArgs {
  const out: EditArgs = {
    symlinks: [],
    ldcache: [],
    gpus: [],
    driverVersion: "",
    compat: false,
    proc: false,
  };
  const bad = (a: string, why: string): never => {
    throw new GpuctlError(`hook container-edits ${a}`, why);
  };
  const abs = (p: string) => p.startsWith("/") && !p.split("/").includes("..");
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const value = () => args[++i] ?? bad(a, "needs a value");
    switch (a) {
      case "--driver-version": {
        const v = value();
        if (!/^\d+(\.\d+)*$/.test(v)) bad(a, "is not a driver version");
        out.driverVersion = v;
        break;
      }
      case "--cuda-compat":
        out.compat = true;
        break;
      case "--proc":
        out.proc = true;
        break;
      case "--link": {
        const [path, target, ...rest] = value().split("::");
        if (!path || !abs(path) || !target || target.includes("/") || rest.length > 0) {
          bad(a, "must be /path/in/container::target-file-name");
        }
        out.symlinks.push({ path: path!, target: target! });
        break;
      }
      case "--lib": {
        const [soname, path, bits, ...rest] = value().split("::");
        if (
          !soname || soname.includes("/") || !path || !abs(path) || (bits !== undefined && bits !== "32") ||
          rest.length
        ) {
          bad(a, "must be soname::/path/in/container[::32]");
        }
        out.ldcache.push({ soname: soname!, path: path!, bits: bits === "32" ? 32 : 64 });
        break;
      }
      case "--gpu": {
        const [minor, name, ...rest] = value().split("::");
        if (!/^\d+$/.test(minor ?? "") || !/^[0-9a-fA-F:.]+$/.test(name ?? "") || rest.length > 0) {
          bad(a, "must be <minor>::<bus id>");
        }
        out.gpus.push({ minor: Number(minor), name: name! });
        break;
      }
      default:
        bad(a, "is not an option of this hook");
    }
  }
  if (out.driverVersion === "") bad("--driver-version", "is required");
  return out;
}

/**
 * Runs a `container-edits` hook for the container described by `stateText`: as the hook process itself (in the
 * container's mount namespace), or for it (`callerPid`: gpuctl serve, in the host's, entering the hook process's).
 */
export async function runEditsHook(
  config: Config,
  stateText: string,
  args: readonly string[],
  log: Logger,
  callerPid?: number,
) {
  const t0 = performance.now();
  const a = parseEditArgs(args);
  const state = parseState(stateText);
  const specFile = `${state.bundle}/config.json`;
  const spec = parseSpec(readLimited(specFile), specFile);
  const { procGpusFor } = await import("../edits/edits.ts");
  const { applyEdits } = await import("./container.ts");
  const all: ProcGpu[] = a.gpus.map((g) => ({
    ...g,
    hostPath: `${config.procRoot}/driver/nvidia/gpus/${g.name}`,
  }));
  const edits: ContainerEdits = {
    deviceNodes: [],
    mounts: [],
    symlinks: a.symlinks,
    ldcache: a.ldcache,
    env: [],
    procView: { gpus: procGpusFor(all, spec.devices), capabilities: null },
    driverVersion: a.driverVersion,
  };
  applyEdits(edits, {
    pid: callerPid ?? state.pid,
    bundle: state.bundle,
    rootPath: spec.rootPath,
    procRoot: config.procRoot,
    stage: callerPid === undefined ? "createContainer" : "createContainerServed",
    parts: {
      cgroups: false,
      nodes: false,
      mounts: false,
      links: true,
      ldcache: true,
      proc: a.proc,
      cudaCompat: a.compat,
    },
    log,
  });
  log.info("container edits made", {
    id: state.id,
    gpus: edits.procView.gpus.map((g) => g.name),
    ms: phases({ start: t0, edit: performance.now() - t0 }),
  });
}
