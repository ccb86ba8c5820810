/**
 * What `gpuctl doctor` looks at, gathered from the host: the configuration (or NVIDIA's in its place), the
 * engines installed, where the fronts are, and the probes that run gpuctl's own flows (NVML in a child, the plan
 * for every GPU, the plugins, the runtime).
 * @module
 */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/log.ts";
import { DOCKER_CONFIG } from "../engines/docker.ts";
import { CONTAINERD_CONFIG } from "../engines/containerd.ts";
import { CRIO_DROPIN } from "../engines/crio.ts";
import { findRuntime, selfPath } from "../oci/runc_args.ts";
import { type DoctorInputs, type Engine, ENGINES, exists } from "./check.ts";
import { runtimeCheck } from "./host.ts";
import { PODMAN_CDI_DIRS } from "./engines.ts";

export interface DoctorOptions {
  /** The configuration, or why it could not be read. */
  config: Config;
  configError: string | null;
  /** `--config`, as given. */
  configPath: string | undefined;
  log: Logger;
  /** `--engine`: the engines to check; undefined: those found on this host. */
  engines?: readonly Engine[];
  prefix?: string;
  dockerConfig?: string;
  containerdConfig?: string;
  crioDropIn?: string;
  podmanCdiDirs?: readonly string[];
}

/** Whether a program is installed: found as the shim finds a runtime (PATH, then the sbin directories). */
const onPath = (name: string) => findRuntime([name], Deno.env.get("PATH"), () => null) !== null;

/** The inputs of {@link runChecks} for this host. */
export async function doctorInputs(o: DoctorOptions): Promise<DoctorInputs> {
  const { config } = o;
  const dockerConfig = o.dockerConfig ?? DOCKER_CONFIG;
  const containerdConfig = o.containerdConfig ?? CONTAINERD_CONFIG;
  const crioDropIn = o.crioDropIn ?? CRIO_DROPIN;
  const found: Record<Engine, () => boolean> = {
    docker: () => onPath("dockerd") || exists(dockerConfig),
    containerd: () => onPath("containerd") || exists(containerdConfig),
    crio: () => onPath("crio") || exists(crioDropIn),
    podman: () => onPath("podman"),
  };
  const engines = new Set(o.engines ?? ENGINES.filter((e) => found[e]()));
  // Where the fronts are: `gpuctl install`'s default, or the package's.
  const installed = ["/usr/local/bin", "/usr/bin"].find((d) => {
    try {
      return Deno.statSync(`${d}/gpuctl-runtime`).isFile;
    } catch { // not installed there
      return false;
    }
  });
  const prefix = (o.prefix ?? installed ?? "/usr/local/bin").replace(/\/+$/, "");
  return {
    config,
    ...await configFiles(o),
    configError: o.configError,
    prefix,
    engines,
    dockerConfig,
    containerdConfig,
    crioDropIn,
    podmanCdiDirs: o.podmanCdiDirs ?? PODMAN_CDI_DIRS,
    nvml: () => nvmlProbe(config, o.configPath),
    plan: () => planProbe(config, o),
    runtime: () => runtimeCheck(config, () => findRuntime(config.runtimes, Deno.env.get("PATH"), selfPath)),
    plugins: () => pluginErrors(config.pluginsDir),
  };
}

/** The config file in use, and NVIDIA's config.toml when it is read in gpuctl's place. */
async function configFiles(
  o: DoctorOptions,
): Promise<Pick<DoctorInputs, "configFile" | "nvidiaConfig">> {
  const { nvidiaFile, readConfigText } = await import("../config/read.ts");
  let configFile: string | null = null;
  let nvidiaConfig: DoctorInputs["nvidiaConfig"] = null;
  try {
    configFile = readConfigText(o.configPath)?.file ?? null;
    const nv = configFile === null && o.configError === null ? nvidiaFile() : null;
    if (nv !== null) {
      const { fromNvidia } = await import("../config/nvidia.ts");
      nvidiaConfig = { file: nv, unmapped: fromNvidia(Deno.readTextFileSync(nv), nv).unmapped };
    }
  } catch { /* the same failure is the configError the config check reports */ }
  return { configFile, nvidiaConfig };
}

async function nvmlProbe(config: Config, configPath: string | undefined): ReturnType<DoctorInputs["nvml"]> {
  try {
    const { discoverIsolated } = await import("../devices/isolated.ts");
    const d = await discoverIsolated(config, "nvml", configPath);
    return { gpus: d.inventory.devices.length, version: d.inventory.driver.nvmlVersion ?? "?" };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function planProbe(config: Config, o: DoctorOptions): ReturnType<DoctorInputs["plan"]> {
  try {
    const { preparePlan } = await import("../flows/prepare.ts");
    const { snapshotFacts } = await import("../snapshot/facts.ts");
    const { plan } = await preparePlan(config, { devices: { kind: "all" }, capabilities: undefined }, {
      facts: snapshotFacts(config, { configPath: o.configPath, log: o.log }),
    });
    return {
      gpus: plan.gpus.length,
      migs: plan.migs.length,
      nodes: plan.deviceNodes.length,
      files: plan.mounts.length,
    };
  } catch (err) {
    return { error: (err as Error).message };
  }
}

async function pluginErrors(dir: string): Promise<string[]> {
  const { pluginFiles } = await import("../plugins/registry.ts");
  const { parsePlugin } = await import("../plugins/declarative.ts");
  const errors: string[] = [];
  for (const n of pluginFiles(dir)) {
    try {
      parsePlugin(Deno.readTextFileSync(`${dir}/${n}`), `${dir}/${n}`);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  return errors;
}
