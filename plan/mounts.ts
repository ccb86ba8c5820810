/**
 * The plan's files: bind mounts of the driver's programs, libraries, IPC endpoints, firmware and files for the
 * requested capabilities, the selected GPUs' /proc entries, and the library links. Library destinations are
 * symbolic (`libraryDir`); the apply step picks the image's layout.
 * @module
 */
import type { DriverFiles, FoundLibrary } from "../driver/locate.ts";
import type { HostDevices } from "../devices/nodes.ts";
import type { Registry } from "../plugins/registry.ts";

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

const RO = ["ro", "nosuid", "nodev", "bind"];
const IPC = ["nosuid", "nodev", "noexec", "bind"];
const PROC = ["ro", "nosuid", "nodev", "noexec", "bind"];

/** The directory a library goes to. */
export function libraryDirOf(l: Pick<FoundLibrary, "bits">): "lib" | "lib32" {
  return l.bits === 64 ? "lib" : "lib32";
}

/** What the mount step reads. */
export interface MountInput {
  /** The effective capabilities, in order. */
  effective: readonly string[];
  compat32: boolean;
  files: DriverFiles;
  host: HostDevices;
  /** Bus ids of the selected GPUs and of the selected MIG devices' parents. */
  busIds: readonly string[];
  /** Whether a privileged container manages MIG (it sees /proc/driver/nvidia/capabilities). */
  migManaged: boolean;
}

/** Mounts without a duplicate destination; the first one wins. */
class MountList {
  readonly mounts: PlannedMount[] = [];
  readonly #seen = new Set<string>();
  add(m: PlannedMount): void {
    const key = `${m.libraryDir ?? ""}:${m.containerPath}`;
    if (this.#seen.has(key)) return;
    this.#seen.add(key);
    this.mounts.push(m);
  }
}

/**
 * The mounts, kind by kind in this order: programs, libraries (32-bit ones only with compat32), IPC endpoints,
 * firmware, files, /proc entries. Returns the libraries taken as well, for their links.
 */
export function planMounts(input: MountInput): { mounts: PlannedMount[]; libraries: FoundLibrary[] } {
  const { effective, files } = input;
  const out = new MountList();
  const libraries: FoundLibrary[] = [];
  for (const capability of effective) {
    for (const b of files.binaries[capability] ?? []) {
      out.add({
        kind: "binary",
        hostPath: b.hostPath,
        containerPath: b.containerPath,
        options: RO,
        capability,
      });
    }
  }
  for (const capability of effective) {
    for (const l of files.libraries[capability] ?? []) {
      if (l.bits === 32 && !input.compat32) continue;
      libraries.push(l);
      const libraryDir = libraryDirOf(l);
      out.add({
        kind: "library",
        hostPath: l.hostPath,
        containerPath: l.name,
        libraryDir,
        options: RO,
        capability,
      });
    }
  }
  for (const capability of effective) {
    for (const i of files.ipcs[capability] ?? []) {
      const dir = i.kind === "dir" ? { dir: true } : {};
      out.add({
        kind: "ipc",
        hostPath: i.hostPath,
        containerPath: i.containerPath,
        options: IPC,
        capability,
        ...dir,
      });
    }
  }
  for (const f of files.firmware) {
    out.add({
      kind: "firmware",
      hostPath: f.hostPath,
      containerPath: f.containerPath,
      options: RO,
      capability: "driver",
    });
  }
  for (const capability of effective) {
    for (const f of files.files[capability] ?? []) {
      const dir = f.dir ? { dir: true } : {};
      out.add({
        kind: "file",
        hostPath: f.hostPath,
        containerPath: f.containerPath,
        options: RO,
        capability,
        ...dir,
      });
    }
  }
  for (const m of procMounts(input)) out.add(m);
  return { mounts: out.mounts, libraries };
}

/**
 * Each selected GPU's /proc/driver/nvidia/gpus/<bus id> directory, as the host's kernel module shows it, and the
 * capabilities directory for MIG management.
 */
function procMounts(input: MountInput): PlannedMount[] {
  const proc = (hostPath: string, containerPath: string): PlannedMount => ({
    kind: "proc",
    hostPath,
    containerPath,
    options: PROC,
    capability: "driver",
    dir: true,
  });
  const out: PlannedMount[] = [];
  for (const busId of input.busIds) {
    const dir = input.host.gpuProcDirs[busId];
    if (dir !== undefined) out.push(proc(dir.hostPath, `/proc/driver/nvidia/gpus/${dir.name}`));
  }
  if (input.migManaged && input.host.capabilitiesDir !== null) {
    out.push(proc(input.host.capabilitiesDir, "/proc/driver/nvidia/capabilities"));
  }
  return out;
}

/** Each library's SONAME link, then the capabilities' extra links whose target is present. */
export function planSymlinks(
  libraries: readonly FoundLibrary[],
  effective: readonly string[],
  registry: Registry,
): PlannedSymlink[] {
  const symlinks: PlannedSymlink[] = [];
  const have = new Set<string>();
  const link = (libraryDir: "lib" | "lib32", link: string, target: string) => {
    have.add(`${libraryDir}:${link}`);
    symlinks.push({ libraryDir, link, target });
  };
  for (const l of libraries) {
    const dir = libraryDirOf(l);
    have.add(`${dir}:${l.name}`);
    if (l.soname !== l.name && !have.has(`${dir}:${l.soname}`)) link(dir, l.soname, l.name);
  }
  for (const name of effective) {
    for (const s of registry.get(name)?.symlinks ?? []) {
      for (const dir of ["lib", "lib32"] as const) {
        if (have.has(`${dir}:${s.target}`) && !have.has(`${dir}:${s.link}`)) link(dir, s.link, s.target);
      }
    }
  }
  return symlinks;
}
