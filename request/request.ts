/**
 * The container's request, in NVIDIA's terms, from its config.json: which devices (environment or volume
 * mounts), which capabilities, which requirements, and whether it is privileged.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { envMap, type OciSpec } from "../oci/spec.ts";
import { parseRequirement, type Requirement } from "./requirements.ts";
import { parseVisibleDevices } from "../devices/select.ts";

/** Policy knobs from the configuration. */
export interface RequestPolicy {
  /** Honour `NVIDIA_VISIBLE_DEVICES` from an unprivileged container (NVIDIA's default: yes). */
  acceptEnvWhenUnprivileged: boolean;
  /** Honour device requests as volume mounts under /var/run/nvidia-container-devices. */
  acceptVolumeMounts: boolean;
  /** Ignore every `NVIDIA_REQUIRE_*`. */
  disableRequire: boolean;
}

export interface GpuRequest {
  /** `NVIDIA_VISIBLE_DEVICES`-grammar value; `undefined` means not a GPU container. */
  devices: string | undefined;
  /** Where `devices` came from, for error messages. */
  devicesSource: string;
  capabilities: string | undefined;
  requirements: Requirement[];
  privileged: boolean;
  migConfig: boolean;
  migMonitor: boolean;
}

export const VOLUME_ROOT = "/var/run/nvidia-container-devices";

/** Whether a request asks for GPUs at all (unset, empty and `void` do not). */
export function isGpuRequest(req: GpuRequest): boolean {
  return req.devices !== undefined && parseVisibleDevices(req.devices).kind !== "void";
}

/** Whether the container has CAP_SYS_ADMIN in its bounding set. */
export function isPrivileged(spec: OciSpec): boolean {
  return spec.process?.capabilities?.bounding?.includes("CAP_SYS_ADMIN") ?? false;
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|t|true|yes|on)$/i.test(v.trim());

/** Builds the request. Errors name the variable and the fix. */
export function readRequest(spec: OciSpec, policy: RequestPolicy): GpuRequest {
  const env = envMap(spec);
  const privileged = isPrivileged(spec);
  let devices: string | undefined, devicesSource = "NVIDIA_VISIBLE_DEVICES";
  const legacy = env.has("CUDA_VERSION") && !env.has("NVIDIA_REQUIRE_CUDA");

  const volumeIds = (spec.mounts ?? [])
    .filter((m) =>
      m.destination.startsWith(`${VOLUME_ROOT}/`) && (m.source === undefined || m.source === "/dev/null")
    )
    .map((m) => m.destination.slice(VOLUME_ROOT.length + 1))
    .filter((id) => id !== "" && !id.includes("/"));
  if (policy.acceptVolumeMounts && volumeIds.length > 0) {
    devices = volumeIds.join(",");
    devicesSource = `volume mounts under ${VOLUME_ROOT}`;
  } else if (env.has("NVIDIA_VISIBLE_DEVICES")) {
    if (privileged || policy.acceptEnvWhenUnprivileged) devices = env.get("NVIDIA_VISIBLE_DEVICES");
    else devices = undefined; // ignored: only volume mounts count for unprivileged containers under this policy
  } else if (legacy) {
    devices = "all";
  }

  let capabilities = env.get("NVIDIA_DRIVER_CAPABILITIES");
  if (capabilities === undefined && legacy) capabilities = "all";

  const requirements: Requirement[] = [];
  if (!policy.disableRequire && !truthy(env.get("NVIDIA_DISABLE_REQUIRE"))) {
    for (const [k, v] of env) {
      if (k.startsWith("NVIDIA_REQUIRE_") && k !== "NVIDIA_REQUIRE_JETPACK") {
        requirements.push(parseRequirement(k, v));
      }
    }
    if (legacy) {
      const m = /^(\d+)\.(\d+)/.exec(env.get("CUDA_VERSION")!);
      if (m) requirements.push(parseRequirement("CUDA_VERSION", `cuda>=${m[1]}.${m[2]}`));
    }
  }

  const mig = (name: string): boolean => {
    const v = env.get(name);
    if (v === undefined || v === "" || v === "void" || v === "none") return false;
    if (!privileged) {
      throw new GpuctlError(name, "is only honoured for privileged containers (with CAP_SYS_ADMIN)");
    }
    if (v.toLowerCase() !== "all") throw new GpuctlError(name, `only "all" is supported, not "${v}"`);
    return true;
  };
  return {
    devices,
    devicesSource,
    capabilities,
    requirements,
    privileged,
    migConfig: mig("NVIDIA_MIG_CONFIG_DEVICES"),
    migMonitor: mig("NVIDIA_MIG_MONITOR_DEVICES"),
  };
}
