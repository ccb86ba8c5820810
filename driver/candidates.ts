/**
 * The driver's library candidates under its root: from the root's linker cache (the directories when it has none),
 * then from the driver's own directories the cache may not list.
 * @module
 */
import type { Config } from "../config/config.ts";
import { isElfLibrary, type LdCacheEntry, LdCacheError, readLdCache } from "./ldcache.ts";
import { hostPath, RootView } from "./rootfs.ts";
import { elfFactsOf } from "./elf.ts";

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
/** A library candidate: its SONAME (or file name), where it is (root-relative, as found), its class. */
export interface Candidate {
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
export function libraryCandidates(
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
    } catch { // no such directory under the driver root
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
    } catch { // no such directory under the driver root
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
