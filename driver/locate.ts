/**
 * Finding the driver's files under the driver root, for every capability in the registry: libraries through the
 * root's `ld.so.cache` (library directories as a fall-back), programs in `binaryDirs`, GSP firmware, IPC
 * endpoints and configuration files. Each candidate that is not taken is reported with the reason.
 * @module
 */
import type { Config } from "../config/config.ts";
import type { Registry } from "../plugins/registry.ts";
import type { Capability } from "../plugins/types.ts";
import { elfClass, hostPath, RootView } from "./rootfs.ts";
import { type Candidate, libraryCandidates } from "./candidates.ts";

export { LIBRARY_DIRS_32, LIBRARY_DIRS_64 } from "./candidates.ts";

/** A file found under the driver root. */
export interface Found {
  /** Path on this host (driver root prefixed, symlinks resolved). */
  hostPath: string;
  /** Path as the driver root sees it (root-relative, symlinks resolved). */
  path: string;
}

/** A library: the real file, and the SONAME a link should give it. */
export interface FoundLibrary extends Found {
  soname: string;
  /** The real file's name, e.g. `libcuda.so.580.95.05`. */
  name: string;
  bits: 32 | 64;
}

/** A file (or, for `directories` of a plugin, a directory) with its place in the container. */
export interface FoundFile extends Found {
  containerPath: string;
  dir?: boolean;
}

export interface FoundIpc extends FoundFile {
  kind: "socket" | "dir";
}

/** A candidate that was not taken, and why. */
export interface Rejected {
  capability: string;
  path: string;
  reason: string;
}

/** Everything the driver root offers, per capability. */
export interface DriverFiles {
  version: string;
  /** Where the libraries were looked up: the cache file, or `directories`. */
  libraryIndex: string;
  libraries: Record<string, FoundLibrary[]>;
  binaries: Record<string, FoundFile[]>;
  ipcs: Record<string, FoundIpc[]>;
  files: Record<string, FoundFile[]>;
  /** GSP firmware (every GPU container gets it). */
  firmware: FoundFile[];
  rejected: Rejected[];
  /** Items a capability names that this driver does not have (normal: not every driver ships everything). */
  missing: { capability: string; item: string }[];
}

export const FIRMWARE_DIRS = ["/lib/firmware", "/usr/lib/firmware", "/usr/local/nvidia/firmware"];

/**
 * The firmware directories searched, in order: the kernel's own custom path (`firmware_class.path`, read from
 * `<sysRoot>/module/firmware_class/parameters/path`) first, as the kernel looks there first, then the standard ones.
 */
export function firmwareDirs(sysRoot: string): string[] {
  let custom = "";
  try {
    custom = Deno.readTextFileSync(`${sysRoot}/module/firmware_class/parameters/path`).trim();
  } catch { /* no firmware_class parameters: only the standard directories */ }
  return [...(custom.startsWith("/") ? [custom.replace(/\/+$/, "")] : []), ...FIRMWARE_DIRS];
}

function base(p: string): string {
  return p.slice(p.lastIndexOf("/") + 1);
}

/** Locates the files of every capability (or of those in `only`) under `config.driverRoot` for driver `version`. */
export function locateDriverFiles(
  config: Config,
  registry: Registry,
  version: string,
  warn: (m: string) => void = () => {},
  only?: readonly string[],
): DriverFiles {
  const out: DriverFiles = {
    version,
    libraryIndex: "",
    libraries: {},
    binaries: {},
    ipcs: {},
    files: {},
    firmware: [],
    rejected: [],
    missing: [],
  };
  const view = new RootView(config.driverRoot);
  const prefixes = registry.names.flatMap((n) => {
    const c = registry.get(n)!;
    return [...(c.libraries ?? []), ...(c.ownVersionLibraries ?? [])];
  });
  const candidates = libraryCandidates(config, view, prefixes, version, warn);
  out.libraryIndex = candidates.index;
  for (const name of only ?? registry.names) {
    const cap = registry.get(name)!;
    out.libraries[name] = locateLibraries(cap, candidates.entries, view, version, out);
    out.binaries[name] = locateBinaries(cap, config, view, out);
    out.ipcs[name] = locateIpcs(cap, view);
    out.files[name] = locateFiles(name, cap, view, out);
  }
  rejectUnnamed(out, candidates, prefixes, view, version);
  out.firmware = locateFirmware(config, view, version);
  return out;
}

/** A capability's IPC endpoints that exist: sockets, or directories (MPS's). */
function locateIpcs(cap: Capability, view: RootView): FoundIpc[] {
  return (cap.ipcs ?? []).flatMap((ipc) => {
    const s = view.stat(ipc.path);
    const ok = s !== null && (ipc.kind === "dir" ? s.info.isDirectory : s.info.isSocket === true);
    if (!ok) return [];
    return [{ hostPath: hostPath(view.root, s.path), path: s.path, containerPath: ipc.path, kind: ipc.kind }];
  });
}

/**
 * A capability's files (or directories): the first candidate that exists, each; one that names a library this
 * driver lacks is passed over, said in `out.rejected`; none found is said in `out.missing`.
 */
function locateFiles(name: string, cap: Capability, view: RootView, out: DriverFiles): FoundFile[] {
  return (cap.files ?? []).flatMap((f) => {
    if (f.library !== undefined && !out.libraries[name]!.some((l) => l.soname.startsWith(f.library!))) {
      for (const c of f.candidates) {
        if (view.stat(c) !== null) {
          out.rejected.push({
            capability: name,
            path: c,
            reason: `names ${f.library}, which this driver lacks`,
          });
        }
      }
      return [];
    }
    for (const c of f.candidates) {
      const s = view.stat(c);
      if (s !== null && (f.dir ? s.info.isDirectory : s.info.isFile)) {
        const found: FoundFile = {
          hostPath: hostPath(view.root, s.path),
          path: s.path,
          containerPath: f.containerPath ?? c,
        };
        if (f.dir) found.dir = true;
        return [found];
      }
    }
    out.missing.push({ capability: name, item: f.candidates.join(" or ") });
    return [];
  });
}

/**
 * Every library of the driver (at its version, or in a directory of its own) is taken or rejected with a reason:
 * one that no capability of the registry names is said so, and so is a second file with a SONAME already taken.
 */
function rejectUnnamed(
  out: DriverFiles,
  { entries, dedicated, twins }: ReturnType<typeof libraryCandidates>,
  prefixes: readonly string[],
  view: RootView,
  version: string,
): void {
  const told = new Set(out.rejected.map((r) => r.path));
  for (const e of entries) {
    if (prefixes.some((p) => e.soname.startsWith(p))) continue;
    const s = view.stat(e.path);
    if (s === null || !s.info.isFile || told.has(s.path)) continue;
    if (
      !base(s.path).endsWith(`.so.${version}`) && !dedicated.has(s.path.slice(0, s.path.lastIndexOf("/")))
    ) {
      continue;
    }
    told.add(s.path);
    out.rejected.push({
      capability: "-",
      path: s.path,
      reason: "the driver's, but no capability names it (a declarative plugin can add it)",
    });
  }
  const taken = new Set(Object.values(out.libraries).flat().map((l) => l.path));
  for (const t of twins) {
    const s = view.stat(t.path);
    if (s === null || !s.info.isFile || taken.has(s.path) || told.has(s.path)) continue;
    told.add(s.path);
    out.rejected.push({
      capability: "-",
      path: s.path,
      reason: `another file with the SONAME ${t.soname}, which is taken by that name`,
    });
  }
}

/** The GSP firmware for driver `version` in the kernel's firmware directories, each file once. */
function locateFirmware(config: Config, view: RootView, version: string): FoundFile[] {
  const out: FoundFile[] = [];
  for (const dir of firmwareDirs(config.sysRoot)) {
    const resolved = view.resolve(`${dir}/nvidia/${version}`);
    if (resolved === null) continue;
    let names: string[];
    try {
      names = [...Deno.readDirSync(hostPath(view.root, resolved))].map((e) => e.name).sort((
        a,
        b,
      ) => (a < b ? -1 : 1));
    } catch {
      continue; // not a directory
    }
    for (const name of names) {
      if (!/^gsp.*\.bin$/.test(name)) continue;
      const s = view.stat(`${resolved}/${name}`);
      if (s === null || !s.info.isFile) continue;
      const containerPath = `/lib/firmware/nvidia/${version}/${name}`;
      if (!out.some((f) => f.containerPath === containerPath)) {
        out.push({ hostPath: hostPath(view.root, s.path), path: s.path, containerPath });
      }
    }
  }
  return out;
}

function locateLibraries(
  cap: Capability,
  entries: readonly Candidate[],
  view: RootView,
  version: string,
  out: DriverFiles,
): FoundLibrary[] {
  const found: FoundLibrary[] = [];
  const own = new Set(cap.ownVersionLibraries ?? []);
  for (const prefix of [...(cap.libraries ?? []), ...own]) {
    let any = false;
    for (const e of entries) {
      if (!e.soname.startsWith(prefix)) continue;
      const s = view.stat(e.path);
      if (s === null || !s.info.isFile) {
        out.rejected.push({
          capability: cap.name,
          path: e.path,
          reason: "listed but missing or not a regular file",
        });
        continue;
      }
      const name = base(s.path);
      if (!cap.anyLibraryVersion && !own.has(prefix) && !name.endsWith(`.so.${version}`)) {
        const v = /\.so\.(.+)$/.exec(name)?.[1] ?? "none";
        out.rejected.push({
          capability: cap.name,
          path: s.path,
          reason: `version ${v} does not match the driver ${version}`,
        });
        continue;
      }
      any = true;
      if (found.some((f) => f.path === s.path)) continue;
      // The SONAME: the cache key, unless this entry came from a directory scan (then the file name).
      found.push({
        hostPath: hostPath(view.root, s.path),
        path: s.path,
        soname: e.soname,
        name,
        bits: e.bits,
      });
    }
    if (!any) out.missing.push({ capability: cap.name, item: prefix });
  }
  return found;
}

function locateBinaries(cap: Capability, config: Config, view: RootView, out: DriverFiles): FoundFile[] {
  const root = view.root;
  const found: FoundFile[] = [];
  for (const bin of cap.binaries ?? []) {
    let hit: FoundFile | null = null;
    for (const dir of config.binaryDirs) {
      const s = view.stat(`${dir}/${bin}`);
      if (s === null || !s.info.isFile) continue;
      if ((s.info.mode ?? 0) & 0o111 && elfClass(hostPath(root, s.path)) !== null) {
        hit = { hostPath: hostPath(root, s.path), path: s.path, containerPath: `/usr/bin/${bin}` };
        break;
      }
      // On a merged-/usr host, /bin and /usr/bin are one directory: the same file is passed over once.
      if (!out.rejected.some((r) => r.capability === cap.name && r.path === s.path)) {
        out.rejected.push({
          capability: cap.name,
          path: s.path,
          reason: "not an ELF executable (a wrapper script?); looking further",
        });
      }
    }
    if (hit) found.push(hit);
    else out.missing.push({ capability: cap.name, item: bin });
  }
  return found;
}
