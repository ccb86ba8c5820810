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

/** A library candidate: its SONAME (or file name), where it is (root-relative, as found), its class. */
interface Candidate {
  soname: string;
  path: string;
  bits: 32 | 64;
}

/**
 * The driver's own library directories, which the linker cache may not list: where its `libcuda.so.1` and
 * `libnvidia-ml.so.1` really are (Debian keeps them in `…/nvidia/current`, reached only through `/etc/alternatives`
 * links), and the `vdpau/` directory beside each directory they are found in or reached from (VDPAU's drivers are
 * looked up there, not through the linker). NVIDIA's CDI generator searches the same places.
 */
function driverDirectories(entries: readonly Candidate[], view: RootView): string[] {
  const dirs = new Set<string>();
  const dir = (p: string) => p.slice(0, p.lastIndexOf("/")) || "/";
  for (const e of entries) {
    if (e.soname !== "libcuda.so.1" && e.soname !== "libnvidia-ml.so.1") continue;
    dirs.add(`${dir(e.path)}/vdpau`);
    const real = view.resolve(e.path);
    if (real !== null) dirs.add(dir(real)).add(`${dir(real)}/vdpau`);
  }
  return [...dirs];
}

/**
 * Library candidates from the cache or the directories, then from the driver's own directories: in a shared one
 * (the multiarch directory), only files a capability may want (a name with one of `prefixes`) or at the driver's
 * `version`; in one of the driver's alone (`dedicated`, Debian's `…/nvidia/current`), every library. Only sonames
 * the cache does not already give are added (the loader's answer wins).
 */
function libraryCandidates(
  config: Config,
  view: RootView,
  prefixes: readonly string[],
  version: string,
  warn: (m: string) => void,
): { index: string; entries: Candidate[]; dedicated: Set<string>; twins: Candidate[] } {
  const root = config.driverRoot;
  const cachePath = hostPath(root, "/etc/ld.so.cache");
  let cache: LdCacheEntry[] | null = null;
  try {
    cache = readLdCache(cachePath);
  } catch (e) {
    if (e instanceof LdCacheError) warn(`${e.message}; searching library directories instead`);
    else if (!(e instanceof Deno.errors.NotFound)) warn(`${cachePath}: ${(e as Error).message}`);
  }
  const entries: Candidate[] = [];
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
  const known = new Set(entries.map((e) => `${e.bits}:${e.soname}`));
  const scanned = new Set(dirs.map(([d]) => d));
  const shared = new Set([...LIBRARY_DIRS_64, ...LIBRARY_DIRS_32, ...config.libraryDirs]);
  const dedicated = new Set<string>();
  const twins: Candidate[] = [];
  for (const dir of driverDirectories(entries, view)) {
    if (scanned.has(dir)) continue;
    scanned.add(dir);
    const all = !shared.has(dir) && !dir.endsWith("/vdpau");
    let names: string[];
    if (all) dedicated.add(dir);
    try {
      names = [...Deno.readDirSync(hostPath(root, dir))].filter((e) =>
        !e.isDirectory && /\.so(\.|$)/.test(e.name) &&
        (all || prefixes.some((p) => e.name.startsWith(p)) || e.name.endsWith(`.so.${version}`))
      ).map((e) => e.name).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const elf = elfFactsOf(hostPath(root, `${dir}/${n}`));
      if (elf === null) continue;
      const soname = elf.soname ?? n;
      if (known.has(`${elf.bits}:${soname}`)) {
        // In a directory of the driver's own, a file that is not the cache's for its SONAME is said so.
        if (all) twins.push({ soname, path: `${dir}/${n}`, bits: elf.bits });
        continue;
      }
      known.add(`${elf.bits}:${soname}`);
      entries.push({ soname, path: `${dir}/${n}`, bits: elf.bits });
    }
  }
  return { index: cache !== null ? "/etc/ld.so.cache" : "directories", entries, dedicated, twins };
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
  const view = new RootView(root);
  const prefixes = registry.names.flatMap((n) => {
    const c = registry.get(n)!;
    return [...(c.libraries ?? []), ...(c.ownVersionLibraries ?? [])];
  });
  const { index, entries, dedicated, twins } = libraryCandidates(config, view, prefixes, version, warn);
  out.libraryIndex = index;
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
  // Every library of the driver (at its version, or in a directory of its own) is taken or rejected with a
  // reason: one that no capability of the registry names is said so.
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
