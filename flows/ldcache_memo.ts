/**
 * The linker caches gpuctl has merged, kept in `cacheDir` (`apply/ldcache.ts` `LdCacheMemo`): the merge is a
 * function of the image's /etc/ld.so.cache and the injected entries alone, so a container of an image seen before
 * gets the bytes the first one got (and had checked as ld.so reads them) instead of a new merge.
 *
 * An entry holds the image's cache and the injected entries it was made for, both compared in full before use: a
 * slot shared, an entry of another image or a file cut short is only a miss, never another image's cache. Entries
 * are private files (`ldcache-<slot>.bin`, one of {@link SLOTS} slots by a hash, a later image taking an earlier
 * one's slot), read and written relative to the directory opened here on the host, before a hook enters the
 * container's mount namespace: no path is looked up from inside it.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { type LdCacheMemo, MEMO_MAX_IMAGE, memoSame } from "../apply/ldcache.ts";
import { libc } from "../ffi/libc.ts";
import { openCacheDir, readPrivateAt, writePrivateAt } from "../snapshot/snapshot.ts";

/** Bumped when an entry's layout changes. */
const FORMAT = 1;
/** Entries kept at once: a host runs a few images; an image's author cannot fill the disk. */
export const SLOTS = 16;
/** A kept merge's file name in `cacheDir` (uninstall removes them). */
export const LDCACHE_FILE = /^ldcache-[0-9a-f]{2}\.bin$/;
/** An entry's largest size: its header, the image's cache and the merge (the image's plus the injected entries). */
const MAX_ENTRY = 2 * MEMO_MAX_IMAGE + (1 << 20);

interface Header {
  format: number;
  ours: string;
  image: number;
  merged: number;
}

/** Every how many bytes of an image's cache go into its slot: enough to tell images apart, few to hash. */
const SLOT_STRIDE = 16;

/**
 * The slot of an image's cache and the injected entries: FNV-1a of the entries, the cache's length and every
 * {@link SLOT_STRIDE}th byte (a slot only places an entry: its contents are compared in full).
 */
export function memoSlot(image: Uint8Array, ours: string): string {
  let h = Math.imul(0x811c9dc5 ^ image.length, 0x01000193);
  for (let i = 0; i < ours.length; i++) h = Math.imul(h ^ ours.charCodeAt(i), 0x01000193);
  for (let i = 0; i < image.length; i += SLOT_STRIDE) h = Math.imul(h ^ image[i]!, 0x01000193);
  // The high bits: FNV-1a's low bits depend on its input's low bits only.
  return `ldcache-${Math.floor((h >>> 0) / (2 ** 32 / SLOTS)).toString(16).padStart(2, "0")}.bin`;
}

/**
 * Runs `f` with the memo over `config`'s cacheDir, opened now on the host and closed after; with none when `config`
 * is null (a process already in the container's namespaces must not look a path up) or cacheDir is not private.
 */
export function withLdCacheMemo<T>(config: Config | null, f: (memo: LdCacheMemo | null) => T): T {
  const memo = config === null ? null : openLdCacheMemo(config);
  try {
    return f(memo);
  } finally {
    memo?.close();
  }
}

/** A memo over `cacheDir`, opened now (null without a private cacheDir); closed by the caller once applied. */
export function openLdCacheMemo(config: Config): (LdCacheMemo & { close(): void }) | null {
  const dir = openCacheDir(config);
  if (typeof dir === "string") return null;
  return {
    get(image, ours) {
      const r = readPrivateAt(dir, memoSlot(image, ours), MAX_ENTRY);
      if ("why" in r) return null;
      const b = r.bytes, nl = b.indexOf(0x0a);
      if (nl < 0) return null;
      let h: Header;
      try {
        h = JSON.parse(new TextDecoder().decode(b.subarray(0, nl))) as Header;
      } catch { // not an entry this gpuctl wrote whole: a miss, and replaced
        return null;
      }
      if (
        h?.format !== FORMAT || h.ours !== ours || h.image !== image.length ||
        !Number.isSafeInteger(h.merged) ||
        nl + 1 + h.image + h.merged !== b.length
      ) return null;
      if (!memoSame(b.subarray(nl + 1, nl + 1 + h.image), image)) return null;
      return b.slice(nl + 1 + h.image);
    },
    put(image, ours, merged) {
      const header = new TextEncoder().encode(
        `${
          JSON.stringify({
            format: FORMAT,
            ours,
            image: image.length,
            merged: merged.length,
          })
        }\n`,
      );
      const entry = new Uint8Array(header.length + image.length + merged.length);
      entry.set(header);
      entry.set(image, header.length);
      entry.set(merged, header.length + image.length);
      if (entry.length <= MAX_ENTRY) writePrivateAt(dir, memoSlot(image, ours), entry);
    },
    close() {
      libc().close(dir);
    },
  };
}
