/**
 * The container's linker cache, rewritten by gpuctl itself: the image's `/etc/ld.so.cache` (read inside the
 * rootfs, never through a link out of it) with the injected libraries merged in at their places in ldconfig's
 * order, written atomically. No program from the image runs, and the image's `/etc/ld.so.conf*` are not read.
 *
 * The image's cache is hostile and may be large, so it is never loaded whole: it is merged as a stream
 * (`ldcache_merge.ts`, reading through `ldcache_file.ts`). The result is then checked the way ld.so reads it:
 * every injected library must be the one ld.so finds under its name, or gpuctl falls back to a cache built from parsed entries (or, for a cache too large to parse, the injected
 * libraries alone, with a warning). Time and memory stay bounded by the cache's size, not its entry count.
 * @module
 */
import {
  type LdCacheEntry,
  LdCacheError,
  ldconfigOrder,
  nativeFlags,
  parseLdCache,
  serializeLdCache,
} from "../driver/ldcache.ts";
import type { LdEntry } from "../edits/edits.ts";
import { writeAll } from "../ffi/libc.ts";
import type { Logger } from "../log/log.ts";
import type { InRoot } from "./inroot.ts";
import { CacheFile, layout, ldsoLookup } from "./ldcache_file.ts";
import { streamMerge } from "./ldcache_merge.ts";

export { ldsoLookup } from "./ldcache_file.ts";

/**
 * Merged caches kept from earlier containers (`flows/ldcache_memo.ts`): the merge is a function of the image's
 * cache and the injected entries only, so a container of an image seen before gets the bytes its first one got,
 * checked then. `get` compares both in full; it lives on the host (never read from inside a container's namespace
 * by path).
 */
export interface LdCacheMemo {
  /** The cache the merge wrote for `image` and the injected entries `ours` ({@link memoSignature}), when kept. */
  get(image: Uint8Array, ours: string): Uint8Array | null;
  /** Keeps `merged`, the verified merge of `image` and `ours`; a failure costs only the next container its speed. */
  put(image: Uint8Array, ours: string, merged: Uint8Array): void;
}

/** Image caches up to this size have their merge kept (Debian's, Ubuntu's and RHEL's are 10-60 KiB). */
export const MEMO_MAX_IMAGE = 256 << 10;

/** The injected entries as the merge uses them, as one string (compared in full by a memo). */
export function memoSignature(ours: readonly LdCacheEntry[]): string {
  return JSON.stringify(ours.map((e) => [e.soname, e.path, e.flags, e.is64, String(e.hwcap)]));
}

/** The largest image cache gpuctl reads. */
export const MAX_CACHE = 64 << 20;
/** The largest cache parsed whole when the streamed merge cannot be used (an unsorted cache). */
const MAX_PARSED_ENTRIES = 100_000;

/** The injected libraries as cache entries; the first of a name (per bitness) wins. */
export function cacheEntries(entries: readonly LdEntry[]): LdCacheEntry[] {
  const arch = Deno.build.arch === "aarch64" ? "aarch64" : "x86_64";
  const seen = new Set<string>();
  const out: LdCacheEntry[] = [];
  for (const e of entries) {
    const k = `${e.soname}\0${e.bits}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push({
      soname: e.soname,
      path: e.path,
      flags: nativeFlags(e.bits, arch),
      is64: e.bits === 64,
      hwcap: 0n,
    });
  }
  return out.sort(ldconfigOrder);
}

/**
 * Rewrites the container's /etc/ld.so.cache with `entries` (the injected libraries; a CUDA compat library listed
 * first wins over the driver's of the same name), which replace the image's own entries of the same names.
 */
export function updateLdCache(
  root: InRoot,
  entries: readonly LdEntry[],
  log: Logger,
  memo: LdCacheMemo | null = null,
): void {
  const ours = cacheEntries(entries);
  if (ours.length === 0) return;
  const image = root.openFile("/etc/ld.so.cache", MAX_CACHE);
  const write = (fill: (fd: number) => boolean) => root.writeFileAtomicWith("/etc/ld.so.cache", 0o644, fill);
  if (image === null) {
    write((fd) => (writeAll(fd, serializeLdCache(ours), "ld.so.cache"), true));
    return;
  }
  const f = new CacheFile(image.fd, image.size);
  try {
    // A merge kept for this image's cache and these entries: written as it was the first time.
    const sig = memo !== null && image.size <= MEMO_MAX_IMAGE ? memoSignature(ours) : null;
    const bytes = sig === null ? null : f.read(0, image.size).slice();
    const done = bytes === null || bytes.length !== image.size ? null : memo!.get(bytes, sig!);
    if (done !== null) {
      write((fd) => (writeAll(fd, done, "ld.so.cache"), true));
      log.debug("ld.so.cache updated from a kept merge", { injected: ours.length });
      return;
    }
    let why = "";
    try {
      let extension = false;
      const out: { bytes: Uint8Array | null } = { bytes: null };
      const merged = (exact: boolean) => (fd: number) => {
        const r = streamMerge(f, ours, fd, exact);
        if (r.kind === "extension") extension = true;
        if (r.kind !== "written") return false;
        const written = new CacheFile(fd, r.size, "ld.so.cache");
        if (!verified(written, ours)) return false;
        if (bytes !== null) out.bytes = written.read(0, r.size).slice();
        return true;
      };
      if (write(merged(false)) || (extension && write(merged(true)))) {
        // Kept only while the image's cache reads as it did before the merge, which read parts of it again.
        if (out.bytes !== null && bytes !== null) {
          const now = f.readInto(new Uint8Array(image.size), 0, image.size);
          if (memoSame(now, bytes)) memo!.put(bytes, sig!, out.bytes);
        }
        log.debug("ld.so.cache updated", { injected: ours.length });
        return;
      }
      why = "its entries are not in ldconfig's order";
    } catch (e) {
      if (!(e instanceof LdCacheError)) throw e;
      why = e.why;
    }
    // The streamed merge did not hold: parse the cache whole when that stays bounded, else keep only ours.
    let existing: LdCacheEntry[] = [];
    try {
      const count = layout(f).n;
      if (count > MAX_PARSED_ENTRIES) throw new LdCacheError("cache", `${count} entries, too many to sort`);
      existing = parseLdCache(f.read(0, f.size), "/etc/ld.so.cache in the container");
    } catch (e) {
      if (!(e instanceof LdCacheError)) throw e;
      log.warn(
        `/etc/ld.so.cache in the container: ${why}; ${e.why}: writing a cache with the injected libraries only`,
      );
    }
    const names = new Set(ours.map((e) => `${e.soname}\0${e.flags}`));
    const kept = existing.filter((e) => !names.has(`${e.soname}\0${e.flags}`));
    write((fd) => (writeAll(fd, serializeLdCache([...ours, ...kept]), "ld.so.cache"), true));
  } finally {
    root.release(image.fd);
  }
}

/**
 * Byte-for-byte equality, compared as strings by the engine: windows-1252 (the encoding TextDecoder names latin1)
 * gives each of the 256 bytes a character of its own, where a loop over the bytes would run interpreted in a
 * process that runs it once. For kept merges (`flows/ldcache_memo.ts`).
 */
const BYTES = new TextDecoder("latin1");
export function memoSame(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && BYTES.decode(a) === BYTES.decode(b);
}

/** Whether ld.so, reading the written cache, finds each injected library under its name. */
function verified(f: CacheFile, ours: readonly LdCacheEntry[]): boolean {
  const read = (off: number, len: number) => f.read(off, len);
  return ours.every((e) => ldsoLookup(read, e.soname, e.flags) === e.path);
}
