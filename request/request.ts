/**
 * The container's request, in NVIDIA's terms, from its config.json, read in NVIDIA's order: first whether it is
 * a GPU container at all (CDI annotations, volume mounts, Swarm's resource variables or `NVIDIA_VISIBLE_DEVICES`,
 * a legacy CUDA image), and only then, for a GPU container, its capabilities, requirements, MIG, IMEX and gated
 * requests. A container that asks for no GPU is never refused for its other variables: on a host whose default
 * runtime is gpuctl, that is every image.
 * @module
 */
import { GpuctlError, quote } from "../errors/mod.ts";
import { envMap, type SpecFields } from "../oci/spec.ts";
import { parseRequirement, type Requirement } from "./requirements.ts";
import { type DeviceRequest, parseVisibleDevices } from "../devices/select.ts";
import { isCdiName } from "../cdi/names.ts";

/** Policy knobs from the configuration. */
export interface RequestPolicy {
  /** Honour `NVIDIA_VISIBLE_DEVICES` from an unprivileged container (NVIDIA's default: yes). */
  acceptEnvWhenUnprivileged: boolean;
  /** Honour device requests as volume mounts under /var/run/nvidia-container-devices. */
  acceptVolumeMounts: boolean;
  /** Ignore every `NVIDIA_REQUIRE_*`. */
  disableRequire: boolean;
  /** Variables that, when set, select devices instead of `NVIDIA_VISIBLE_DEVICES` (Docker Swarm's resources). */
  swarmResource: readonly string[];
  /** Annotation prefixes whose values are CDI device names (Kubernetes device plugins). */
  cdiAnnotationPrefixes: readonly string[];
  /** CDI kinds any request may name (the environment, volume mounts, annotations). */
  cdiKinds: readonly string[];
  /** Further CDI kinds only annotations may name ("*": any). */
  cdiAnnotationKinds: readonly string[];
}

/**
 * A CDI name's kind must be one the request's source may name. The image chooses its environment (and a volume
 * list), so from there only gpuctl's own kinds: another vendor's spec may mount anything, run a hook on the host,
 * set any variable, and engines trust specs because only the orchestrator chooses devices. Other kinds come only
 * from annotations, which the orchestrator sets, and only those the operator lists.
 */
function checkCdiKinds(
  ids: readonly string[],
  source: string,
  policy: RequestPolicy,
  annotated: boolean,
): void {
  for (const id of ids) {
    if (!isCdiName(id)) continue;
    const kind = id.slice(0, id.indexOf("="));
    if (policy.cdiKinds.includes(kind)) continue;
    if (annotated && (policy.cdiAnnotationKinds.includes("*") || policy.cdiAnnotationKinds.includes(kind))) {
      continue;
    }
    throw new GpuctlError(
      source,
      annotated
        ? `names the CDI kind ${
          quote(kind)
        }, which is not in cdiKinds or cdiAnnotationKinds (add it to cdiAnnotationKinds to allow it from annotations)`
        : `names the CDI kind ${
          quote(kind)
        }: the environment and volume mounts may name only the kinds in cdiKinds (${
          policy.cdiKinds.join(", ") || "none"
        }); other kinds come from an orchestrator's annotations`,
    );
  }
}

export interface GpuRequest {
  /** Which GPUs: never `void` (that is no request at all). */
  devices: Exclude<DeviceRequest, { kind: "void" }>;
  /** Where `devices` came from, for error messages. */
  devicesSource: string;
  /** `NVIDIA_DRIVER_CAPABILITIES` as given (`undefined`: the default; `all` for a legacy image). */
  capabilities: string | undefined;
  requirements: Requirement[];
  privileged: boolean;
  migConfig: boolean;
  migMonitor: boolean;
  /** IMEX channel numbers. */
  imexChannels: number[];
  /** Gated features switched on (`NVIDIA_GDS=enabled` → `gds`, …). */
  gated: string[];
}

export const VOLUME_ROOT = "/var/run/nvidia-container-devices";

/** The variables that switch on gated features, and the capability each brings. */
export const GATED: Readonly<Record<string, string>> = {
  NVIDIA_GDS: "gds",
  NVIDIA_MOFED: "mofed",
  NVIDIA_GDRCOPY: "gdrcopy",
  NVIDIA_NVSWITCH: "nvswitch",
};

/** IMEX channel numbers go up to 2^20 - 1. */
export const MAX_IMEX_CHANNEL = (1 << 20) - 1;

/** Whether the container has CAP_SYS_ADMIN in its bounding set. */
export function isPrivileged(spec: Pick<SpecFields, "bounding">): boolean {
  return spec.bounding?.includes("CAP_SYS_ADMIN") ?? false;
}

/** Go's strconv.ParseBool true values, which NVIDIA_DISABLE_REQUIRE takes. */
const TRUE = new Set(["1", "t", "T", "TRUE", "true", "True"]);

/** A path as Go's filepath.Clean would give it (the parts volume-mount requests are compared by). */
function clean(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (out.length > 0 && out.at(-1) !== "..") out.pop();
      else if (!abs) out.push(c);
      continue;
    }
    out.push(c);
  }
  const s = out.join("/");
  return abs ? `/${s}` : s || ".";
}

/** Device ids requested as volume mounts of /dev/null under {@link VOLUME_ROOT} (each destination once). */
export function volumeRequests(spec: Pick<SpecFields, "mounts">): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const m of spec.mounts) {
    if (m.source === undefined || clean(m.source) !== "/dev/null") continue;
    const dest = clean(m.destination);
    if (seen.has(dest)) continue;
    seen.add(dest);
    if (!dest.startsWith(VOLUME_ROOT)) continue;
    const id = dest.slice(VOLUME_ROOT.length).replace(/^\/+|\/+$/g, "");
    if (id !== "") out.push(id);
  }
  return out;
}

/** A `cdi/<vendor>/<class>/<device>` or `cdi/<vendor>/<class>=<device>` volume request as a CDI name. */
function cdiFromVolume(id: string): string {
  const rest = id.slice("cdi/".length);
  if (isCdiName(rest)) return rest;
  const parts = rest.split("/");
  if (parts.length >= 3) {
    const name = `${parts[0]}/${parts[1]}=${parts.slice(2).join("/")}`;
    if (isCdiName(name)) return name;
  }
  throw new GpuctlError(`volume mount ${VOLUME_ROOT}/${id}`, "is not a valid CDI device request");
}

/**
 * `CUDA_VERSION` as NVIDIA reads it: Go's semver (an optional `v`; `MAJOR`, `MAJOR.MINOR` or `MAJOR.MINOR.PATCH`,
 * no leading zeros; a pre-release and build only after a patch; pre-release numbers without leading zeros).
 */
const NUM = "(0|[1-9][0-9]*)";
const PRE = "(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)";
const BUILD = "[0-9A-Za-z-]+";
const SEMVER = new RegExp(
  `^v?${NUM}(?:\\.${NUM}(?:\\.${NUM}(?:-${PRE}(?:\\.${PRE})*)?(?:\\+${BUILD}(?:\\.${BUILD})*)?)?)?$`,
);
const UINT32_MAX = 4294967295;

/**
 * The legacy image's `cuda>=MAJOR.MINOR`, from `CUDA_VERSION` read as NVIDIA reads it, with its bound: a major or
 * minor number above 2^32-1 is refused (`9.4294967296` must not read as a requirement every host meets).
 */
export function legacyCudaRequirement(cudaVersion: string): string {
  const bad = (why: string): never => {
    throw new GpuctlError(
      "CUDA_VERSION",
      `${quote(cudaVersion)} ${why} (a legacy CUDA image; set NVIDIA_REQUIRE_CUDA or fix CUDA_VERSION)`,
    );
  };
  const m = SEMVER.exec(cudaVersion) ?? bad("is not a version");
  const major = m[1]!, minor = m[2] ?? "0";
  if (Number(major) > UINT32_MAX) bad(`has a major version larger than ${UINT32_MAX}`);
  if (Number(minor) > UINT32_MAX) bad(`has a minor version larger than ${UINT32_MAX}`);
  return `cuda>=${major}.${minor}`;
}

/** IMEX channel ids (`N` or `channelN`) as numbers; `name` says where they came from. */
export function parseImexChannels(ids: readonly string[], name: string): number[] {
  return [
    ...new Set(ids.map((id) => {
      const n = id.startsWith("channel") ? id.slice("channel".length) : id;
      if (!/^\d{1,7}$/.test(n) || Number(n) > MAX_IMEX_CHANNEL) {
        throw new GpuctlError(name, `${quote(id)} is not an IMEX channel (0-${MAX_IMEX_CHANNEL})`);
      }
      return Number(n);
    })),
  ];
}

/** What the request is read from: the environment, the container's privilege and the host's policy. */
interface Inputs {
  spec: SpecFields;
  env: Map<string, string>;
  policy: RequestPolicy;
  privileged: boolean;
  /** A legacy CUDA image (CUDA_VERSION without NVIDIA_REQUIRE_CUDA). */
  legacy: boolean;
  /** The environment may ask for devices (privileged, or the host accepts it from anyone). */
  envAllowed: boolean;
  /** The device plugin's volume-mounts strategy: the ids mounted under VOLUME_ROOT (when accepted). */
  volumes: string[];
}

/**
 * The annotations {@link readRequest} reads (their keys under `cdiAnnotationPrefixes`): a reader of config.json
 * need keep no others (`parseSpec`'s `keep`), however many the image's author wrote.
 */
export function readsAnnotation(
  policy: Pick<RequestPolicy, "cdiAnnotationPrefixes">,
): (key: string) => boolean {
  return (k) => policy.cdiAnnotationPrefixes.some((p) => k.startsWith(p));
}

/**
 * Builds the request; `null` when the container asks for no GPU (then nothing else is read). Errors name the
 * variable and the fix.
 */
export function readRequest(spec: SpecFields, policy: RequestPolicy): GpuRequest | null {
  const env = envMap(spec);
  const privileged = isPrivileged(spec);
  const i: Inputs = {
    spec,
    env,
    policy,
    privileged,
    legacy: (env.get("CUDA_VERSION") ?? "") !== "" && (env.get("NVIDIA_REQUIRE_CUDA") ?? "") === "",
    envAllowed: privileged || policy.acceptEnvWhenUnprivileged,
    volumes: policy.acceptVolumeMounts ? volumeRequests(spec) : [],
  };
  const d = requestedDevices(i);
  if (d === null) return null;
  // Everything else, for a GPU container only (in this order: the first error is the one said).
  const migConfig = migManagement(i, "NVIDIA_MIG_CONFIG_DEVICES");
  const migMonitor = migManagement(i, "NVIDIA_MIG_MONITOR_DEVICES");
  let capabilities = env.get("NVIDIA_DRIVER_CAPABILITIES");
  if (capabilities === undefined && i.legacy) capabilities = "all";
  const requirements = requirementsOf(i);
  const imexChannels = imexRequest(i);
  const gated = Object.entries(GATED).filter(([v]) => env.get(v) === "enabled").map(([, cap]) => cap);
  return {
    devices: d.devices,
    devicesSource: d.source,
    capabilities,
    requirements,
    privileged,
    migConfig,
    migMonitor,
    imexChannels,
    gated,
  };
}

/** The devices asked for, in NVIDIA's order of precedence, and what asked; `null`: none. */
function requestedDevices(i: Inputs): { devices: GpuRequest["devices"]; source: string } | null {
  const { spec, env, policy } = i;
  let devices: DeviceRequest = { kind: "void" }, source = "NVIDIA_VISIBLE_DEVICES";
  const annotated = [...spec.annotations.keys()].filter(readsAnnotation(policy)).sort();
  const volumeDevices = i.volumes.filter((id) => !id.startsWith("imex/"));
  const annotatedNames = annotated.flatMap((k) => spec.annotations.get(k)!.split(",")).map((s) => s.trim())
    .filter((s) => s !== "");
  if (annotatedNames.length > 0) {
    source = `annotation ${annotated[0]}`;
    devices = { kind: "list", ids: annotatedNames };
  } else if (volumeDevices.length > 0) {
    source = `volume mounts under ${VOLUME_ROOT}`;
    devices = {
      kind: "list",
      ids: volumeDevices.map((id) => (id.startsWith("cdi/") ? cdiFromVolume(id) : id)),
    };
  } else if (i.envAllowed) {
    const swarm = policy.swarmResource.filter((v) => env.has(v));
    const vars = swarm.length > 0 ? swarm : ["NVIDIA_VISIBLE_DEVICES"];
    const set = vars.some((v) => env.has(v));
    source = set || !i.legacy ? vars.join(", ") : "CUDA_VERSION (a legacy CUDA image gets every GPU)";
    const value = vars.filter((v) => env.has(v)).map((v) => env.get(v)!).join(",");
    devices = !set && i.legacy ? { kind: "all" } : parseVisibleDevices(set ? value : undefined);
  }
  if (devices.kind === "void") return null;
  if (devices.kind === "list" && devices.ids.some((id) => clean(id) === VOLUME_ROOT)) {
    // NVIDIA's device plugin, volume-mounts strategy: the variable points at the mounts, which name the GPUs.
    throw new GpuctlError(
      source,
      `${quote(VOLUME_ROOT)} asks for the GPUs mounted under it (a device plugin's volume-mounts strategy), ${
        policy.acceptVolumeMounts
          ? "but none is mounted there"
          : 'which this host does not accept: set "acceptVolumeMounts": true in gpuctl\'s configuration'
      }`,
    );
  }
  if (devices.kind === "list") checkCdiKinds(devices.ids, source, policy, annotatedNames.length > 0);
  return { devices, source };
}

/** NVIDIA_MIG_CONFIG_DEVICES / NVIDIA_MIG_MONITOR_DEVICES: `all`, from a privileged container only. */
function migManagement(i: Inputs, name: string): boolean {
  const v = i.env.get(name);
  if (v === undefined || v === "") return false;
  if (!i.privileged) {
    throw new GpuctlError(name, "is only honoured for privileged containers (with CAP_SYS_ADMIN)");
  }
  if (v.toLowerCase() !== "all") throw new GpuctlError(name, `only "all" is supported, not ${quote(v)}`);
  return true;
}

/** Every NVIDIA_REQUIRE_* (and a legacy image's CUDA_VERSION), unless the host or the image turns them off. */
function requirementsOf(i: Inputs): Requirement[] {
  const { env, policy } = i;
  if (policy.disableRequire || TRUE.has(env.get("NVIDIA_DISABLE_REQUIRE") ?? "")) return [];
  const out: Requirement[] = [];
  for (const [k, v] of env) {
    if (k.startsWith("NVIDIA_REQUIRE_") && !k.startsWith("NVIDIA_REQUIRE_JETPACK")) {
      out.push(parseRequirement(k, v));
    }
  }
  if (i.legacy) out.push(parseRequirement("CUDA_VERSION", legacyCudaRequirement(env.get("CUDA_VERSION")!)));
  return out;
}

/** IMEX channels: from the volume mounts, else from NVIDIA_IMEX_CHANNELS where the environment may ask. */
function imexRequest(i: Inputs): number[] {
  const imexVolumes = i.volumes.filter((id) => id.startsWith("imex/")).map((id) => id.slice("imex/".length));
  if (imexVolumes.length > 0) {
    return parseImexChannels(imexVolumes, `volume mounts under ${VOLUME_ROOT}/imex`);
  }
  if (!i.envAllowed || !i.env.has("NVIDIA_IMEX_CHANNELS")) return [];
  const r = parseVisibleDevices(i.env.get("NVIDIA_IMEX_CHANNELS"));
  // "all" is not honoured from the environment, as with NVIDIA; void and none ask for nothing.
  return r.kind === "list" ? parseImexChannels(r.ids, "NVIDIA_IMEX_CHANNELS") : [];
}
