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
  migs: { gpu: number; index: number; uuid: string; gpuInstance: number; computeInstance: number }[];
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
}

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

  // Capability nodes (uvm for compute, modeset for display, plugins' own).
  for (const name of capabilities.effective) {
    for (const n of registry.get(name)?.deviceNodes ?? []) {
      const path = n.startsWith("/") ? n : `/dev/${n}`;
      const h = host.nodes[path];
      if (h) addHostNode(h, name);
      else {warnings.push(
          `${path} is missing on the host: the ${name} capability may not work (is its kernel module loaded?)`,
        );}
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

  // MIG devices: the parent's node and the GPU- and compute-instance capability nodes.
  const capsMajor = host.majors["nvidia-caps"];
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
      const path = `/dev/nvidia-caps/nvidia-cap${minor}`;
      const h = host.nodes[path];
      if (h) addHostNode(h, reason);
      else if (capsMajor !== undefined) {
        nodes.set(path, {
          path,
          hostPath: null,
          type: "c",
          major: capsMajor,
          minor,
          fileMode: 0o444,
          uid: 0,
          gid: 0,
          reason,
        });
      } else {
        throw new GpuctlError(
          `MIG device ${gpu.index}:${mig.index}`,
          `${path} is missing and /proc/devices has no nvidia-caps major`,
        );
      }
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
    rejected: files.rejected.filter((r) => capabilities.effective.includes(r.capability)),
    missing: files.missing.filter((m) => capabilities.effective.includes(m.capability)),
  };
}
