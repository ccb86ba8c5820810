/**
 * Finding the driver's files under the driver root, for every capability in the registry: libraries through the
 * root's `ld.so.cache` (library directories as a fall-back), programs in `binaryDirs`, GSP firmware, IPC
 * endpoints and configuration files. Each candidate that is not taken is reported with the reason.
 * @module
 */
import type { Config } from "../config/config.ts";
import type { Registry } from "../plugins/registry.ts";
import type { Capability } from "../plugins/types.ts";
import { isElfLibrary, type LdCacheEntry, LdCacheError, readLdCache } from "./ldcache.ts";
import { elfClass, hostPath, RootView } from "./rootfs.ts";
import { elfFactsOf } from "./elf.ts";

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

/** Standard library directories, searched (after `libraryDirs`) when the root has no usable ld.so.cache. */
export const LIBRARY_DIRS_64 = [
  "/usr/lib/x86_64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/usr/lib64",
  "/lib/x86_64-linux-gnu",
  "/lib64",
  "/usr/lib",
  "/usr/local/nvidia/lib64",
  "/run/opengl-driver/lib",
];
export const LIBRARY_DIRS_32 = [
  "/usr/lib/i386-linux-gnu",
  "/usr/lib32",
  "/lib/i386-linux-gnu",
  "/lib32",
  "/usr/lib",
  "/usr/local/nvidia/lib",
  "/run/opengl-driver-32/lib",
];
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

/** Library candidates [soname-ish name, root-relative path, bits] from the cache or the directories. */
function libraryCandidates(
  config: Config,
  warn: (m: string) => void,
): { index: string; entries: { soname: string; path: string; bits: 32 | 64 }[] } {
  const root = config.driverRoot;
  const cachePath = hostPath(root, "/etc/ld.so.cache");
  let cache: LdCacheEntry[] | null = null;
  try {
    cache = readLdCache(cachePath);
  } catch (e) {
    if (e instanceof LdCacheError) warn(`${e.message}; searching library directories instead`);
    else if (!(e instanceof Deno.errors.NotFound)) warn(`${cachePath}: ${(e as Error).message}`);
  }
  const entries: { soname: string; path: string; bits: 32 | 64 }[] = [];
  if (cache !== null) {
    for (const e of cache) {
      if (isElfLibrary(e)) entries.push({ soname: e.soname, path: e.path, bits: e.is64 ? 64 : 32 });
    }
  }
  // Configured directories always count; the standard ones only without a cache.
  const dirs: [string, 32 | 64 | null][] = config.libraryDirs.map((d) => [d, null]);
  if (cache === null) {
    dirs.push(
      ...LIBRARY_DIRS_64.map((d): [string, 64] => [d, 64]),
      ...LIBRARY_DIRS_32.map((d): [string, 32] => [d, 32]),
    );
  }
  for (const [dir, _bits] of dirs) {
    let names: string[];
    try {
      names = [...Deno.readDirSync(hostPath(root, dir))].filter((e) =>
        !e.isDirectory && /\.so(\.|$)/.test(e.name)
      ).map((e) => e.name).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      // The library's own name, from its dynamic section: an installer's development link (libcuda.so) or a
      // versioned file name is never taken for it.
      const elf = elfFactsOf(hostPath(root, `${dir}/${n}`));
      if (elf !== null) entries.push({ soname: elf.soname ?? n, path: `${dir}/${n}`, bits: elf.bits });
    }
  }
  return { index: cache !== null ? "/etc/ld.so.cache" : "directories", entries };
}

/** Locates the files of every capability (or of those in `only`) under `config.driverRoot` for driver `version`. */
export function locateDriverFiles(
  config: Config,
  registry: Registry,
  version: string,
  warn: (m: string) => void = () => {},
  only?: readonly string[],
): DriverFiles {
  const root = config.driverRoot;
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
  const { index, entries } = libraryCandidates(config, warn);
  out.libraryIndex = index;
  const view = new RootView(root);
  for (const name of only ?? registry.names) {
    const cap = registry.get(name)!;
    out.libraries[name] = locateLibraries(cap, entries, view, version, out);
    out.binaries[name] = locateBinaries(cap, config, view, out);
    out.ipcs[name] = (cap.ipcs ?? []).flatMap((ipc) => {
      const s = view.stat(ipc.path);
      const ok = s !== null && (ipc.kind === "dir" ? s.info.isDirectory : s.info.isSocket === true);
      if (!ok) return [];
      return [{ hostPath: hostPath(root, s.path), path: s.path, containerPath: ipc.path, kind: ipc.kind }];
    });
    out.files[name] = (cap.files ?? []).flatMap((f) => {
      for (const c of f.candidates) {
        const s = view.stat(c);
        if (s !== null && (f.dir ? s.info.isDirectory : s.info.isFile)) {
          const found: FoundFile = {
            hostPath: hostPath(root, s.path),
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
  for (const dir of firmwareDirs(config.sysRoot)) {
    const fwDir = `${dir}/nvidia/${version}`;
    const resolved = view.resolve(fwDir);
    if (resolved === null) continue;
    try {
      for (
        const e of [...Deno.readDirSync(hostPath(root, resolved))].sort((a, b) => (a.name < b.name ? -1 : 1))
      ) {
        if (!/^gsp.*\.bin$/.test(e.name)) continue;
        const s = view.stat(`${resolved}/${e.name}`);
        if (s === null || !s.info.isFile) continue;
        const containerPath = `/lib/firmware/nvidia/${version}/${e.name}`;
        if (!out.firmware.some((f) => f.containerPath === containerPath)) {
          out.firmware.push({ hostPath: hostPath(root, s.path), path: s.path, containerPath });
        }
      }
    } catch { /* not a directory */ }
  }
  return out;
}

function locateLibraries(
  cap: Capability,
  entries: { soname: string; path: string; bits: 32 | 64 }[],
  view: RootView,
  version: string,
  out: DriverFiles,
): FoundLibrary[] {
  const found: FoundLibrary[] = [];
  for (const prefix of cap.libraries ?? []) {
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
      if (!cap.anyLibraryVersion && !name.endsWith(`.so.${version}`)) {
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
