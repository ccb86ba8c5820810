/**
 * The container's linker cache, rewritten by gpuctl itself: the image's `/etc/ld.so.cache` (read inside the
 * rootfs, never through a link out of it) with the injected libraries merged in at their places in ldconfig's
 * order, written atomically. No program from the image runs, and the image's `/etc/ld.so.conf*` are not read.
 *
 * The image's cache is hostile and may be large, so it is never loaded whole: its entry table is streamed in
 * chunks (each entry's string offsets shifted by one constant), its string area is copied as bytes, and only the
 * few entries around each injected name are looked at, by binary search as ld.so itself searches. The result is
 * then checked the way ld.so reads it: every injected library must be the one ld.so finds under its name, or
 * gpuctl falls back to a cache built from parsed entries (or, for a cache too large to parse, the injected
 * libraries alone, with a warning). Time and memory stay bounded by the cache's size, not its entry count.
 * @module
 */
import {
  ENTRY_SIZE,
  HEADER_SIZE,
  HWCAP_EXTENSION,
  type LdCacheEntry,
  LdCacheError,
  ldconfigOrder,
  libcmp,
  nativeFlags,
  NEW_MAGIC,
  OLD_MAGIC,
  parseLdCache,
  serializeLdCache,
} from "../driver/ldcache.ts";
import type { LdEntry } from "../edits/edits.ts";
import { check, libc, preadFull, writeAll } from "../ffi/libc.ts";
import type { Logger } from "../log/log.ts";
import type { InRoot } from "./inroot.ts";

/** The largest image cache gpuctl reads. */
export const MAX_CACHE = 64 << 20;
/** The largest cache parsed whole when the streamed merge cannot be used (an unsorted cache). */
const MAX_PARSED_ENTRIES = 100_000;
/** The most entries of one name looked at around an injected one (real caches have a handful). */
const MAX_RUN = 4096;
const CHUNK_ENTRIES = 1 << 14;

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

/** Positional reads of the image's cache file. */
class CacheFile {
  constructor(readonly fd: number, readonly size: number) {}
  read(offset: number, length: number): Uint8Array {
    const b = new Uint8Array(Math.max(0, Math.min(length, this.size - offset)));
    const n = preadFull(this.fd, b, offset, "/etc/ld.so.cache in the container");
    return b.subarray(0, n);
  }
  u32(offset: number): number {
    const b = this.read(offset, 4);
    if (b.length < 4) throw new LdCacheError("cache", "truncated");
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }
}

/** The layout of a cache's new-format part: where its header, table and string area are. */
interface Layout {
  base: number;
  n: number;
  /** The string area's start, relative to `base`: every valid string offset is at least this. */
  data: number;
}

function layout(f: CacheFile): Layout {
  const ascii = (b: Uint8Array) => String.fromCharCode(...b);
  let base = 0;
  if (ascii(f.read(0, NEW_MAGIC.length)) !== NEW_MAGIC) {
    if (ascii(f.read(0, OLD_MAGIC.length)) !== OLD_MAGIC) throw new LdCacheError("cache", "bad magic");
    base = (16 + f.u32(11) * 12 + 7) & ~7;
    if (ascii(f.read(base, NEW_MAGIC.length)) !== NEW_MAGIC) {
      throw new LdCacheError("cache", "an old-format cache without a glibc-ld.so.cache1.1 section");
    }
  }
  if (base + HEADER_SIZE > f.size) throw new LdCacheError("cache", "truncated header");
  if ((f.read(base + 28, 1)[0]! & 3) === 3) throw new LdCacheError("cache", "big-endian (unsupported)");
  const n = f.u32(base + 20);
  const data = HEADER_SIZE + n * ENTRY_SIZE;
  if (base + data > f.size) throw new LdCacheError("cache", `truncated: ${n} entries do not fit`);
  return { base, n, data };
}

/** A string of the image's cache at `off` (relative to the header), bounded. */
function str(f: CacheFile, l: Layout, off: number): string {
  if (off < l.data || l.base + off >= f.size) {
    throw new LdCacheError("cache", "a string offset is out of range");
  }
  const b = f.read(l.base + off, 4096);
  const end = b.indexOf(0);
  if (end < 0) throw new LdCacheError("cache", "a string is not terminated");
  return new TextDecoder().decode(b.subarray(0, end));
}

function entryAt(f: CacheFile, l: Layout, i: number): { soname: string; flags: number } {
  const b = f.read(l.base + HEADER_SIZE + i * ENTRY_SIZE, ENTRY_SIZE);
  const v = new DataView(b.buffer, b.byteOffset, ENTRY_SIZE);
  return { flags: v.getInt32(0, true), soname: str(f, l, v.getUint32(4, true)) };
}

/**
 * Where each injected name goes among the image's entries: the run of image entries with that name (those with
 * the same flags are replaced), found by binary search.
 */
function runs(f: CacheFile, l: Layout, ours: readonly LdCacheEntry[]) {
  const out = new Map<string, { start: number; end: number; drop: Set<number> }>();
  for (const e of ours) {
    let r = out.get(e.soname);
    if (r === undefined) {
      let lo = 0, hi = l.n;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        // Descending names: an image entry whose name sorts after ours comes before it.
        if (libcmp(entryAt(f, l, mid).soname, e.soname) > 0) lo = mid + 1;
        else hi = mid;
      }
      let end = lo;
      while (end < l.n && end - lo < MAX_RUN && libcmp(entryAt(f, l, end).soname, e.soname) === 0) end++;
      r = { start: lo, end, drop: new Set() };
      out.set(e.soname, r);
    }
    for (let i = r.start; i < r.end; i++) if (entryAt(f, l, i).flags === e.flags) r.drop.add(i);
  }
  return out;
}

/** ld.so's own lookup of `name` with `flags` in cache bytes: the path it would load, or `null`. */
export function ldsoLookup(
  read: (off: number, len: number) => Uint8Array,
  name: string,
  flags: number,
): string | null {
  const head = read(0, HEADER_SIZE);
  const n = new DataView(head.buffer, head.byteOffset, HEADER_SIZE).getUint32(20, true);
  const entry = (i: number) => {
    const b = read(HEADER_SIZE + i * ENTRY_SIZE, ENTRY_SIZE);
    const v = new DataView(b.buffer, b.byteOffset, ENTRY_SIZE);
    const s = (off: number) => {
      const x = read(off, 4096);
      return new TextDecoder().decode(x.subarray(0, Math.max(0, x.indexOf(0))));
    };
    return {
      flags: v.getInt32(0, true),
      key: () => s(v.getUint32(4, true)),
      value: () => s(v.getUint32(8, true)),
    };
  };
  let left = 0, right = n - 1;
  while (left <= right) {
    let mid = (left + right) >> 1;
    const c = libcmp(name, entry(mid).key());
    if (c === 0) {
      while (mid > 0 && libcmp(name, entry(mid - 1).key()) === 0) mid--;
      for (; mid < n; mid++) {
        const e = entry(mid);
        if (libcmp(name, e.key()) !== 0) return null;
        if (e.flags === flags) return e.value();
      }
      return null;
    }
    if (c < 0) left = mid + 1;
    else right = mid - 1;
  }
  return null;
}

/**
 * Streams the image's cache merged with `ours` into `fd`; `false` when the merge does not hold (the caller then
 * builds the cache another way).
 */
function streamMerge(f: CacheFile, ours: readonly LdCacheEntry[], out: number): boolean {
  const l = layout(f);
  const byName = runs(f, l, ours);
  const starts = new Map<number, string[]>();
  for (const [name, r] of byName) starts.set(r.start, [...(starts.get(r.start) ?? []), name]);
  const dropped = new Set<number>();
  for (const r of byName.values()) for (const i of r.drop) dropped.add(i);

  // Pass 1: count what is kept (entries for the glibc-hwcaps extension go: this writer emits no extension) and
  // check every kept entry's strings lie in the string area.
  const tail = f.size - l.base - l.data; // the string area (and anything after it), copied as bytes
  let kept = 0;
  const extension = (w: Uint32Array, k: number) => (w[k * 6 + 5]! & 0x40000000) !== 0;
  for (let i0 = 0; i0 < l.n; i0 += CHUNK_ENTRIES) {
    const count = Math.min(CHUNK_ENTRIES, l.n - i0);
    const b = f.read(l.base + HEADER_SIZE + i0 * ENTRY_SIZE, count * ENTRY_SIZE);
    const w = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    for (let k = 0; k < count; k++) {
      if (dropped.has(i0 + k) || extension(w, k)) continue;
      const key = w[k * 6 + 1]!, value = w[k * 6 + 2]!;
      if (key < l.data || value < l.data || key >= l.data + tail || value >= l.data + tail) return false;
      kept++;
    }
  }
  const total = kept + ours.length;
  const tableEnd = HEADER_SIZE + total * ENTRY_SIZE;
  const shift = tableEnd - l.data;
  // Our strings go after the image's string area.
  const enc = new TextEncoder();
  const strings: Uint8Array[] = [];
  const offsets = new Map<string, number>();
  let strLen = 0;
  const intern = (s: string) => {
    let off = offsets.get(s);
    if (off === undefined) {
      const bytes = enc.encode(s + "\0");
      off = tableEnd + tail + strLen;
      offsets.set(s, off);
      strings.push(bytes);
      strLen += bytes.length;
    }
    return off;
  };
  const oursEntry = (e: LdCacheEntry) => {
    const b = new Uint8Array(ENTRY_SIZE);
    const v = new DataView(b.buffer);
    v.setInt32(0, e.flags, true);
    v.setUint32(4, intern(e.soname), true);
    v.setUint32(8, intern(e.path), true);
    v.setBigUint64(16, e.hwcap, true);
    return b;
  };

  // Pass 2: the header, then the table with ours inserted at their runs, then the strings.
  const header = new Uint8Array(HEADER_SIZE);
  header.set(enc.encode(NEW_MAGIC), 0);
  writeAll(out, header, "ld.so.cache"); // completed below, once the string length is known
  let written = 0;
  const emitRun = (name: string, r: { start: number; end: number; drop: Set<number> }) => {
    const mine = ours.filter((e) => e.soname === name);
    const theirs: (LdCacheEntry & { raw: Uint8Array })[] = [];
    for (let i = r.start; i < r.end; i++) {
      if (r.drop.has(i)) continue;
      const raw = f.read(l.base + HEADER_SIZE + i * ENTRY_SIZE, ENTRY_SIZE).slice();
      const v = new DataView(raw.buffer);
      if ((v.getBigUint64(16, true) & HWCAP_EXTENSION) !== 0n) continue;
      v.setUint32(4, v.getUint32(4, true) + shift, true);
      v.setUint32(8, v.getUint32(8, true) + shift, true);
      theirs.push({
        soname: name,
        path: "",
        flags: v.getInt32(0, true),
        is64: false,
        hwcap: v.getBigUint64(16, true),
        raw,
      });
    }
    const all = [...mine.map((e) => ({ ...e, raw: oursEntry(e) })), ...theirs].sort(ldconfigOrder);
    for (const e of all) writeAll(out, e.raw, "ld.so.cache");
    written += all.length;
  };
  const inRun = new Set<number>();
  for (const r of byName.values()) for (let i = r.start; i < r.end; i++) inRun.add(i);
  let w = new Uint32Array(0), chunk = new Uint8Array(0), from = 0;
  const keep = new Uint8Array(CHUNK_ENTRIES * ENTRY_SIZE);
  let kn = 0;
  const flush = () => {
    if (kn > 0) writeAll(out, keep.subarray(0, kn * ENTRY_SIZE), "ld.so.cache");
    written += kn;
    kn = 0;
  };
  for (let i = 0; i <= l.n; i++) {
    for (const name of starts.get(i) ?? []) {
      flush();
      emitRun(name, byName.get(name)!);
    }
    if (i === l.n) break;
    if (i >= from + w.length / 6) {
      flush();
      from = i;
      chunk = f.read(l.base + HEADER_SIZE + i * ENTRY_SIZE, Math.min(CHUNK_ENTRIES, l.n - i) * ENTRY_SIZE)
        .slice();
      w = new Uint32Array(chunk.buffer, 0, chunk.byteLength / 4);
    }
    const k = i - from;
    if (inRun.has(i) || extension(w, k)) continue;
    w[k * 6 + 1] = w[k * 6 + 1]! + shift;
    w[k * 6 + 2] = w[k * 6 + 2]! + shift;
    keep.set(chunk.subarray(k * ENTRY_SIZE, (k + 1) * ENTRY_SIZE), kn * ENTRY_SIZE);
    kn++;
  }
  flush();
  if (written !== total) return false;
  for (let off = 0; off < tail; off += 1 << 20) {
    writeAll(out, f.read(l.base + l.data + off, Math.min(1 << 20, tail - off)), "ld.so.cache");
  }
  for (const s of strings) writeAll(out, s, "ld.so.cache");
  const v = new DataView(header.buffer);
  v.setUint32(20, total, true);
  v.setUint32(24, tail + strLen, true);
  v.setUint8(28, 2); // little-endian
  check("pwrite ld.so.cache", () => libc().pwrite(out, header, HEADER_SIZE, 0));
  return true;
}

/**
 * Rewrites the container's /etc/ld.so.cache with `entries` (the injected libraries; a CUDA compat library listed
 * first wins over the driver's of the same name), which replace the image's own entries of the same names.
 */
export function updateLdCache(root: InRoot, entries: readonly LdEntry[], log: Logger): void {
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
    let why = "";
    try {
      if (write((fd) => streamMerge(f, ours, fd) && verified(fd, ours))) {
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

/** Whether ld.so, reading the written cache, finds each injected library under its name. */
function verified(fd: number, ours: readonly LdCacheEntry[]): boolean {
  const read = (off: number, len: number) => {
    const b = new Uint8Array(len);
    return b.subarray(0, preadFull(fd, b, off, "ld.so.cache"));
  };
  return ours.every((e) => ldsoLookup(read, e.soname, e.flags) === e.path);
}
