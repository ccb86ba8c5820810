/**
 * The plan: exactly what a container gets, as a pure function of the request (capabilities and selected devices),
 * the driver's files, the host's device nodes and the plugins. No I/O happens here; `apply/` makes it so.
 *
 * Library destinations are symbolic (`libraryDir: "lib" | "lib32"`): the apply step picks the image's layout
 * (Debian multiarch or `lib64`), because only it can look inside the image.
 * @module
 */
import type { DriverFiles, FoundLibrary, Rejected } from "../driver/locate.ts";
import type { HostDevices, HostNode } from "../devices/nodes.ts";
import type { Selection } from "../devices/select.ts";
import type { Registry, ResolvedCapabilities } from "../plugins/registry.ts";
import { GpuctlError } from "../errors/mod.ts";
import { matchesNode } from "../devices/nodes.ts";

/** A device node to create in the container (`type` is always `c`). */
export interface PlannedNode {
  path: string;
  /** The host node it mirrors; `null` when the host has none and it is made from the major/minor. */
  hostPath: string | null;
  type: "c";
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
  /** Why it is there: `control`, `gpu <index>`, `mig <g>:<m>`, or a capability. */
  reason: string;
}

export type MountKind = "library" | "binary" | "firmware" | "ipc" | "file" | "proc";

/** A bind mount. For libraries, `containerPath` is the file name inside `libraryDir`. */
export interface PlannedMount {
  kind: MountKind;
  hostPath: string;
  containerPath: string;
  libraryDir?: "lib" | "lib32";
  options: string[];
  capability: string;
  /** The source is a directory (an IPC directory such as MPS's, a /proc/driver/nvidia/gpus entry). */
  dir?: boolean;
}

/** A symlink in a library directory: `link` → `target`, both file names. */
export interface PlannedSymlink {
  libraryDir: "lib" | "lib32";
  link: string;
  target: string;
}

export interface Plan {
  driverVersion: string;
  capabilities: string[];
  compat32: boolean;
  gpus: { index: number; minor: number; uuid: string; busId: string }[];
  migs: {
    gpu: number;
    gpuMinor: number;
    gpuBusId: string;
    index: number;
    uuid: string;
    gpuInstance: number;
    computeInstance: number;
  }[];
  deviceNodes: PlannedNode[];
  mounts: PlannedMount[];
  symlinks: PlannedSymlink[];
  /** Library directories whose linker cache entries must be updated. */
  libraryDirs: ("lib" | "lib32")[];
  env: Record<string, string>;
  warnings: string[];
  /** Candidates not taken, and why (wrong version, a wrapper script, …). */
  rejected: Rejected[];
  /** What the requested capabilities name but this driver does not ship (normal: drivers differ). */
  missing: { capability: string; item: string }[];
}

export interface PlanInput {
  capabilities: ResolvedCapabilities;
  selection: Selection;
  registry: Registry;
  files: DriverFiles;
  host: HostDevices;
  /** IMEX channels asked for (`NVIDIA_IMEX_CHANNELS`). */
  imexChannels?: readonly number[];
  /** MIG management asked for by a privileged container (`NVIDIA_MIG_CONFIG_DEVICES`/`…_MONITOR_DEVICES=all`). */
  mig?: { config: boolean; monitor: boolean };
}

/** Where IMEX channel nodes are. */
export const IMEX_DIR = "/dev/nvidia-caps-imex-channels";

const RO = ["ro", "nosuid", "nodev", "bind"];
const IPC = ["nosuid", "nodev", "noexec", "bind"];
const PROC = ["ro", "nosuid", "nodev", "noexec", "bind"];

/** Builds the plan. Throws a {@link GpuctlError} when a selected GPU cannot be given (no device node facts). */
export function buildPlan(input: PlanInput): Plan {
  const { capabilities, selection, registry, files, host } = input;
  const warnings: string[] = [];
  const nodes = new Map<string, PlannedNode>();
  const addHostNode = (n: HostNode, reason: string) => {
    if (nodes.has(n.path)) return;
    nodes.set(n.path, {
      path: n.path,
      hostPath: n.hostPath,
      type: "c",
      major: n.major,
      minor: n.minor,
      fileMode: n.mode,
      uid: n.uid,
      gid: n.gid,
      reason,
    });
  };
  const nvidiaMajor = host.majors["nvidia"] ?? host.majors["nvidia-frontend"];

  // Control node: every GPU container needs it.
  const ctl = host.nodes["/dev/nvidiactl"];
  if (ctl === undefined) {
    throw new GpuctlError(
      "/dev/nvidiactl",
      "the host has no such character device (is the nvidia kernel module loaded?)",
    );
  }
  addHostNode(ctl, "control");

  // Capability nodes (uvm for compute, modeset for display, plugins' own), checked only now that the capability
  // is asked for. A missing one is a warning, or an error for a capability that declares nothing but nodes.
  for (const name of capabilities.effective) {
    const cap = registry.get(name);
    const patterns = (cap?.deviceNodes ?? []).map((n) => (n.startsWith("/") ? n : `/dev/${n}`));
    const missing: string[] = [];
    for (const pattern of patterns) {
      const hits = Object.keys(host.nodes).filter((p) => matchesNode(pattern, p)).sort();
      if (hits.length === 0) missing.push(pattern);
      for (const p of hits) addHostNode(host.nodes[p]!, name);
    }
    if (missing.length === 0) continue;
    const onlyNodes = !cap?.libraries?.length && !cap?.binaries?.length && !cap?.files?.length &&
      !cap?.ipcs?.length;
    if (onlyNodes && missing.length === patterns.length) {
      throw new GpuctlError(
        `capability ${name}`,
        `this host has none of its device nodes (${missing.join(", ")}); is its kernel module loaded?`,
      );
    }
    for (const m of missing) {
      warnings.push(
        `${m} is missing on the host: the ${name} capability may not work (is its kernel module loaded?)`,
      );
    }
  }

  // GPUs: their nodes, from the host node when there is one, else from /proc/devices and the GPU's minor.
  const gpuNode = (g: { index: number; minor: number }, reason: string) => {
    const path = `/dev/nvidia${g.minor}`;
    const h = host.nodes[path];
    if (h) return addHostNode(h, reason);
    if (nvidiaMajor === undefined) {
      throw new GpuctlError(
        `GPU ${g.index}`,
        `${path} is missing and /proc/devices has no nvidia major to create it from`,
      );
    }
    warnings.push(
      `${path} is missing on the host; it will be created from major ${nvidiaMajor}, minor ${g.minor}`,
    );
    nodes.set(path, {
      path,
      hostPath: null,
      type: "c",
      major: nvidiaMajor,
      minor: g.minor,
      fileMode: 0o666,
      uid: 0,
      gid: 0,
      reason,
    });
  };
  for (const g of selection.gpus) gpuNode(g, `gpu ${g.index}`);

  /**
   * The host's node at `path`; else one made from its driver's `major` (from /proc/devices) for runc or the hook to
   * create; an error (`subject`, `why`) when there is neither. As for host nodes, the first reason wins.
   */
  const hostOrMajor = (
    path: string,
    major: number | undefined,
    minor: number,
    fileMode: number,
    reason: string,
    subject: string,
    why: string,
  ) => {
    const h = host.nodes[path];
    if (h) return addHostNode(h, reason);
    if (major === undefined) throw new GpuctlError(subject, why);
    if (!nodes.has(path)) {
      nodes.set(path, { path, hostPath: null, type: "c", major, minor, fileMode, uid: 0, gid: 0, reason });
    }
  };
  const capsMajor = host.majors["nvidia-caps"];
  /** A MIG capability node (read-only, as the driver makes them). */
  const capNode = (minor: number, reason: string, subject: string) => {
    const path = `/dev/nvidia-caps/nvidia-cap${minor}`;
    hostOrMajor(
      path,
      capsMajor,
      minor,
      0o444,
      reason,
      subject,
      `${path} is missing and /proc/devices has no nvidia-caps major`,
    );
  };

  // MIG devices: the parent's node and the GPU- and compute-instance capability nodes.
  for (const { gpu, mig } of selection.migs) {
    const reason = `mig ${gpu.index}:${mig.index}`;
    if (!nodes.has(`/dev/nvidia${gpu.minor}`)) gpuNode(gpu, reason);
    for (
      const key of [
        `gpu${gpu.minor}/gi${mig.gpuInstance}/access`,
        `gpu${gpu.minor}/gi${mig.gpuInstance}/ci${mig.computeInstance}/access`,
      ]
    ) {
      const minor = host.migMinors[key];
      if (minor === undefined) {
        throw new GpuctlError(
          `MIG device ${gpu.index}:${mig.index}`,
          `no capability minor for ${key} in /proc/driver/nvidia-caps/mig-minors`,
        );
      }
      capNode(minor, reason, `MIG device ${gpu.index}:${mig.index}`);
    }
  }

  // IMEX channels: the host's node, or one made from the channel driver's major.
  const imexMajor = host.majors["nvidia-caps-imex-channels"];
  for (const ch of input.imexChannels ?? []) {
    hostOrMajor(
      `${IMEX_DIR}/channel${ch}`,
      imexMajor,
      ch,
      0o666,
      `imex ${ch}`,
      "NVIDIA_IMEX_CHANNELS",
      `channel ${ch} was asked for, but this host has no IMEX channels (no nvidia-caps-imex-channels in /proc/devices; is the IMEX driver set up?)`,
    );
  }

  // MIG management (privileged containers only, checked by the request): the config or monitor capability node and
  // every MIG capability node of each selected MIG-enabled GPU; the view of /proc/driver/nvidia/capabilities.
  const migManaged = input.mig !== undefined && (input.mig.config || input.mig.monitor)
    ? [...new Set([...selection.gpus, ...selection.migs.map((m) => m.gpu)])].filter((g) =>
      g.mig.enabled === true
    )
    : [];
  for (const kind of ["config", "monitor"] as const) {
    if (!input.mig?.[kind] || migManaged.length === 0) continue;
    const minor = host.migMinors[kind];
    if (minor === undefined) {
      throw new GpuctlError(`NVIDIA_MIG_${kind.toUpperCase()}_DEVICES`, `mig-minors has no "${kind}" entry`);
    }
    capNode(minor, `mig ${kind}`, "MIG management");
  }
  for (const g of migManaged) {
    for (const [key, minor] of Object.entries(host.migMinors)) {
      if (key.startsWith(`gpu${g.minor}/`)) capNode(minor, `mig management ${g.index}`, "MIG management");
    }
  }

  // Files, by capability.
  const mounts: PlannedMount[] = [];
  const seen = new Set<string>();
  const mount = (m: PlannedMount) => {
    const key = `${m.libraryDir ?? ""}:${m.containerPath}`;
    if (!seen.has(key)) {
      seen.add(key);
      mounts.push(m);
    }
  };
  const libs: FoundLibrary[] = [];
  for (const name of capabilities.effective) {
    for (const b of files.binaries[name] ?? []) {
      mount({
        kind: "binary",
        hostPath: b.hostPath,
        containerPath: b.containerPath,
        options: RO,
        capability: name,
      });
    }
  }
  for (const name of capabilities.effective) {
    for (const l of files.libraries[name] ?? []) {
      if (l.bits === 32 && !capabilities.compat32) continue;
      libs.push(l);
      mount({
        kind: "library",
        hostPath: l.hostPath,
        containerPath: l.name,
        libraryDir: l.bits === 64 ? "lib" : "lib32",
        options: RO,
        capability: name,
      });
    }
  }
  for (const name of capabilities.effective) {
    for (const i of files.ipcs[name] ?? []) {
      mount({
        kind: "ipc",
        hostPath: i.hostPath,
        containerPath: i.containerPath,
        options: IPC,
        capability: name,
        ...(i.kind === "dir" ? { dir: true } : {}),
      });
    }
  }
  for (const f of files.firmware) {
    mount({
      kind: "firmware",
      hostPath: f.hostPath,
      containerPath: f.containerPath,
      options: RO,
      capability: "driver",
    });
  }
  for (const name of capabilities.effective) {
    for (const f of files.files[name] ?? []) {
      mount({
        kind: "file",
        hostPath: f.hostPath,
        containerPath: f.containerPath,
        options: RO,
        capability: name,
        ...(f.dir ? { dir: true } : {}),
      });
    }
  }
  // Each selected GPU's /proc/driver/nvidia/gpus/<bus id> directory, as the host's kernel module shows it.
  for (const g of [...selection.gpus, ...selection.migs.map((m) => m.gpu)]) {
    const dir = host.gpuProcDirs[g.busId];
    if (dir === undefined) continue;
    mount({
      kind: "proc",
      hostPath: dir.hostPath,
      containerPath: `/proc/driver/nvidia/gpus/${dir.name}`,
      options: PROC,
      capability: "driver",
      dir: true,
    });
  }

  if (migManaged.length > 0 && host.capabilitiesDir !== null) {
    mount({
      kind: "proc",
      hostPath: host.capabilitiesDir,
      containerPath: "/proc/driver/nvidia/capabilities",
      options: PROC,
      capability: "driver",
      dir: true,
    });
  }

  // Symlinks: each library's SONAME link, then the capabilities' extra links whose target is present.
  const symlinks: PlannedSymlink[] = [];
  const have = new Set<string>();
  for (const l of libs) {
    const dir = l.bits === 64 ? "lib" : "lib32";
    have.add(`${dir}:${l.name}`);
    if (l.soname !== l.name && !have.has(`${dir}:${l.soname}`)) {
      have.add(`${dir}:${l.soname}`);
      symlinks.push({ libraryDir: dir, link: l.soname, target: l.name });
    }
  }
  for (const name of capabilities.effective) {
    for (const s of registry.get(name)?.symlinks ?? []) {
      for (const dir of ["lib", "lib32"] as const) {
        if (have.has(`${dir}:${s.target}`) && !have.has(`${dir}:${s.link}`)) {
          have.add(`${dir}:${s.link}`);
          symlinks.push({ libraryDir: dir, link: s.link, target: s.target });
        }
      }
    }
  }

  const env: Record<string, string> = {};
  for (const name of capabilities.effective) Object.assign(env, registry.get(name)?.env ?? {});

  return {
    driverVersion: files.version,
    capabilities: capabilities.requested,
    compat32: capabilities.compat32,
    gpus: selection.gpus.map((g) => ({ index: g.index, minor: g.minor, uuid: g.uuid, busId: g.busId })),
    migs: selection.migs.map(({ gpu, mig }) => ({
      gpu: gpu.index,
      gpuMinor: gpu.minor,
      gpuBusId: gpu.busId,
      index: mig.index,
      uuid: mig.uuid,
      gpuInstance: mig.gpuInstance,
      computeInstance: mig.computeInstance,
    })),
    // Insertion order: control, capability nodes, GPUs, MIG capabilities.
    deviceNodes: [...nodes.values()],
    mounts,
    symlinks,
    libraryDirs: [...new Set(libs.map((l) => (l.bits === 64 ? "lib" : "lib32") as "lib" | "lib32"))],
    env,
    warnings,
    // The requested capabilities' rejects, and the driver's libraries that no capability names ("-").
    rejected: files.rejected.filter((r) =>
      r.capability === "-" || capabilities.effective.includes(r.capability)
    ),
    missing: files.missing.filter((m) => capabilities.effective.includes(m.capability)),
  };
}
