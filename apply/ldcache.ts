/**
 * The container's linker cache, rewritten by gpuctl itself: the image's `/etc/ld.so.cache` (read inside the
 * rootfs, never through a link out of it) plus the injected libraries, in ldconfig's order, written atomically.
 * No program from the image runs, and the image's `/etc/ld.so.conf*` are not consulted.
 * @module
 */
import {
  type LdCacheEntry,
  LdCacheError,
  nativeFlags,
  parseLdCache,
  serializeLdCache,
} from "../driver/ldcache.ts";
import type { Plan } from "../plan/plan.ts";
import type { Logger } from "../log/log.ts";
import type { InRoot } from "./inroot.ts";

const MAX_CACHE = 64 << 20;

/** The cache entries the plan adds: each library under its SONAME, and each SONAME link. */
export function injectedEntries(plan: Plan, dirs: { lib: string; lib32: string }): LdCacheEntry[] {
  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  const entry = (name: string, libraryDir: "lib" | "lib32" | undefined): LdCacheEntry => {
    const bits = libraryDir === "lib32" ? 32 : 64;
    const dir = bits === 32 ? dirs.lib32 : dirs.lib;
    return {
      soname: name,
      path: `${dir}/${name}`,
      flags: nativeFlags(bits, arch),
      is64: bits === 64,
      hwcap: 0n,
    };
  };
  const out = plan.symlinks.map((s) => entry(s.link, s.libraryDir));
  for (const m of plan.mounts) {
    if (m.kind !== "library") continue;
    // Libraries whose SONAME is their file name (libnvidia-glcore.so.<version>) have no link.
    if (!plan.symlinks.some((s) => s.target === m.containerPath && s.libraryDir === m.libraryDir)) {
      out.push(entry(m.containerPath, m.libraryDir));
    }
  }
  return out;
}

/** Rewrites the container's /etc/ld.so.cache with the injected libraries first (they win over the image's). */
export function updateLdCache(
  root: InRoot,
  plan: Plan,
  dirs: { lib: string; lib32: string },
  log: Logger,
): void {
  const added = injectedEntries(plan, dirs);
  if (added.length === 0) return;
  let existing: LdCacheEntry[] = [];
  const bytes = root.readFile("/etc/ld.so.cache", MAX_CACHE);
  if (bytes !== null) {
    try {
      existing = parseLdCache(bytes, "/etc/ld.so.cache in the container");
    } catch (e) {
      if (!(e instanceof LdCacheError)) throw e;
      log.warn(`${e.message}; writing a cache with the injected libraries only`);
    }
  }
  const names = new Set(added.map((e) => `${e.soname}\0${e.flags}`));
  // The image's own entries for the same SONAMEs (an image shipping libnvidia-ml.so.1) are dropped.
  const kept = existing.filter((e) => !names.has(`${e.soname}\0${e.flags}`));
  if (kept.length !== existing.length) {
    log.info("image's own entries for injected libraries replaced", { count: existing.length - kept.length });
  }
  root.writeFileAtomic("/etc/ld.so.cache", serializeLdCache([...added, ...kept]));
  log.debug("ld.so.cache updated", { injected: added.length, image: kept.length });
}
