/**
 * What a container gets, as concrete edits: the one representation that the three ways of applying a plan
 * consume — config.json edits by the runtime shim (`apply/spec.ts`), in-container work by the hooks
 * (`apply/container.ts`), and a Container Device Interface spec (`flows/cdi_generate.ts`) — so that they cannot
 * disagree. Two halves: `spec`, what any engine can apply, and `inside`, what only code in the container's mount
 * namespace can make (said to a CDI hook by `hook_args.ts`).
 *
 * Library destinations become concrete here. The caller gives the library directories: the image's own layout
 * for the shim and the hook, which can look inside the image, a fixed one for CDI, which cannot.
 * @module
 */
import type { Plan } from "../plan/plan.ts";
import { normalizeBusId } from "../devices/types.ts";

/** Where an image's libraries go: its 64-bit and 32-bit library directories. */
export interface LibraryDirs {
  lib: string;
  lib32: string;
}

/** Debian-style multiarch directories (also CDI's fixed layout). */
export const MULTIARCH: LibraryDirs = { lib: "/usr/lib/x86_64-linux-gnu", lib32: "/usr/lib/i386-linux-gnu" };
/** The RHEL-style layout. */
export const LIB64: LibraryDirs = { lib: "/usr/lib64", lib32: "/usr/lib" };

/** A character device node the container gets, with the host node's facts. */
export interface NodeEdit {
  path: string;
  /** The host node (a user-namespaced container binds it, where mknod is refused); `null` if the host has none. */
  hostPath: string | null;
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
}

/** A bind mount of a host file or directory at a concrete container path. */
export interface MountEdit {
  hostPath: string;
  containerPath: string;
  /** Of `ro`, `nosuid`, `nodev`, `noexec`. */
  options: readonly string[];
  dir: boolean;
}

/** A symlink at a concrete container path. */
export interface LinkEdit {
  path: string;
  target: string;
}

/** A linker-cache entry for an injected library. */
export interface LdEntry {
  soname: string;
  path: string;
  bits: 32 | 64;
}

/** A GPU's `/proc/driver/nvidia/gpus/<bus>` directory, shown in the container. */
export interface ProcGpu {
  /** The directory's name, as the host's kernel module spells it (`0000:10:00.0`). */
  name: string;
  hostPath: string;
  /** The GPU's minor: the CDI hook shows the directories of the `/dev/nvidia<minor>` nodes the container has. */
  minor: number;
}

/** The container's `/proc/driver/nvidia`: a read-only copy of the host's with only its own GPUs. */
export interface ProcView {
  gpus: ProcGpu[];
  /** The host's `capabilities` directory, for a container that manages MIG; else `null`. */
  capabilities: string | null;
}

/** What any engine can apply: CDI's shape (config.json lists, a CDI spec's container edits). */
export interface SpecEdits {
  deviceNodes: NodeEdit[];
  mounts: MountEdit[];
  env: string[];
}

/** What only code in the container's mount namespace can make: library links, the linker cache, the /proc view. */
export interface InsideEdits {
  symlinks: LinkEdit[];
  ldcache: LdEntry[];
  /** The container's /proc/driver/nvidia view; `null`: left as the engine made it. */
  procView: ProcView | null;
  /** The host driver's version: CUDA forward compatibility is decided against it (`apply/compat.ts`). */
  driverVersion: string;
}

/**
 * What a container gets. The plan says it for any image (symbolic library directories, each node's role, what was
 * passed over and why); the edits say it for one layout, as the appliers and renderers take it.
 */
export interface ContainerEdits {
  spec: SpecEdits;
  inside: InsideEdits;
}

/** The plan's mount options as a mount's attributes (`bind` is how, not what). */
function attrs(options: readonly string[]): string[] {
  return options.filter((o) => o === "ro" || o === "nosuid" || o === "nodev" || o === "noexec");
}

/** A plan as concrete container edits, libraries placed in `dirs`. Pure. */
export function containerEdits(plan: Plan, dirs: LibraryDirs): ContainerEdits {
  const libDir = (d: "lib" | "lib32" | undefined) => (d === "lib32" ? dirs.lib32 : dirs.lib);
  const mounts: MountEdit[] = [];
  const procGpus: ProcGpu[] = [];
  let capabilities: string | null = null;
  const minorOf = new Map(
    [...plan.gpus, ...plan.migs.map((m) => ({ busId: m.gpuBusId, minor: m.gpuMinor }))].map((g) => [
      normalizeBusId(g.busId),
      g.minor,
    ]),
  );
  for (const m of plan.mounts) {
    if (m.kind === "proc" && m.containerPath === "/proc/driver/nvidia/capabilities") {
      capabilities = m.hostPath;
      continue;
    }
    if (m.kind === "proc") {
      const name = m.containerPath.slice(m.containerPath.lastIndexOf("/") + 1);
      const minor = minorOf.get(normalizeBusId(name) ?? "");
      if (minor !== undefined && !procGpus.some((g) => g.name === name)) {
        procGpus.push({ name, hostPath: m.hostPath, minor });
      }
      continue;
    }
    mounts.push({
      hostPath: m.hostPath,
      containerPath: m.kind === "library" ? `${libDir(m.libraryDir)}/${m.containerPath}` : m.containerPath,
      options: attrs(m.options),
      dir: m.dir === true,
    });
  }
  const deviceNodes = plan.deviceNodes.map((n) => ({
    path: n.path,
    hostPath: n.hostPath,
    major: n.major,
    minor: n.minor,
    fileMode: n.fileMode,
    uid: n.uid,
    gid: n.gid,
  }));
  return {
    spec: { deviceNodes, mounts, env: Object.entries(plan.env).map(([k, v]) => `${k}=${v}`) },
    inside: {
      symlinks: plan.symlinks.map((s) => ({ path: `${libDir(s.libraryDir)}/${s.link}`, target: s.target })),
      ldcache: ldEntries(plan, dirs),
      procView: { gpus: procGpus, capabilities },
      driverVersion: plan.driverVersion,
    },
  };
}

/**
 * The linker-cache entries the plan adds: each SONAME link, and each library whose SONAME is its own file name
 * (`libnvidia-glcore.so.<version>`, which has no link).
 */
export function ldEntries(plan: Plan, dirs: LibraryDirs): LdEntry[] {
  const entry = (name: string, d: "lib" | "lib32" | undefined): LdEntry => {
    const bits = d === "lib32" ? 32 : 64;
    return { soname: name, path: `${bits === 32 ? dirs.lib32 : dirs.lib}/${name}`, bits };
  };
  const out = plan.symlinks.map((s) => entry(s.link, s.libraryDir));
  for (const m of plan.mounts) {
    if (m.kind !== "library") continue;
    if (!plan.symlinks.some((s) => s.target === m.containerPath && s.libraryDir === m.libraryDir)) {
      out.push(entry(m.containerPath, m.libraryDir));
    }
  }
  return out;
}

/** A node as config.json and CDI list it: its path and the character device's facts. */
export function charDevice(n: NodeEdit) {
  return {
    path: n.path,
    type: "c" as const,
    major: n.major,
    minor: n.minor,
    fileMode: n.fileMode,
    uid: n.uid,
    gid: n.gid,
  };
}

/** The device-cgroup rules the nodes need (`c MAJ:MIN rwm`), each once. */
export function deviceRules(edits: Pick<SpecEdits, "deviceNodes">): { major: number; minor: number }[] {
  const seen = new Set<string>();
  return edits.deviceNodes.filter((n) => {
    const k = `${n.major}:${n.minor}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  }).map((n) => ({ major: n.major, minor: n.minor }));
}

/** The GPUs whose `/proc` directories a container with these device nodes sees (the CDI hook's rule). */
export function procGpusFor(all: readonly ProcGpu[], devicePaths: readonly string[]): ProcGpu[] {
  const have = new Set(devicePaths);
  return all.filter((g) => have.has(`/dev/nvidia${g.minor}`));
}
