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

const BLOCK = 64 << 10;
/** Blocks kept by a {@link CacheFile}: its memory stays bounded whatever the file's size. */
const MAX_BLOCKS = 32;
const utf8 = new TextDecoder();
/** In an entry's last word (the high half of hwcap): the entry is for the glibc-hwcaps extension. */
const EXTENSION_BIT = 0x40000000;

/** Bytes of a cache's entry table as 32-bit words (copied when not aligned for it). */
function words(b: Uint8Array): Uint32Array {
  const a = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Uint32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

/**
 * Positional reads of a cache file through a few cached blocks: the merge and ld.so's lookup read many small
 * pieces (entries, strings) near each other, which would otherwise be a system call each. A read larger than a
 * few blocks goes to the file directly.
 */
class CacheFile {
  readonly #blocks = new Map<number, Uint8Array>();
  constructor(
    readonly fd: number,
    readonly size: number,
    readonly what = "/etc/ld.so.cache in the container",
  ) {}
  #pread(offset: number, length: number): Uint8Array {
    const b = new Uint8Array(length);
    return b.subarray(0, preadFull(this.fd, b, offset, this.what));
  }
  #block(i: number): Uint8Array {
    let b = this.#blocks.get(i);
    if (b !== undefined) {
      this.#blocks.delete(i); // most recently used goes last
    } else {
      b = this.#pread(i * BLOCK, Math.min(BLOCK, this.size - i * BLOCK));
      if (this.#blocks.size >= MAX_BLOCKS) this.#blocks.delete(this.#blocks.keys().next().value!);
    }
    this.#blocks.set(i, b);
    return b;
  }
  /** Up to `length` bytes at `offset` (fewer at the end of the file). Callers copy what they change. */
  read(offset: number, length: number): Uint8Array {
    const end = Math.min(offset + length, this.size);
    if (end <= offset) return new Uint8Array(0);
    const first = Math.floor(offset / BLOCK), last = Math.floor((end - 1) / BLOCK);
    if (first === last) {
      const b = this.#block(first);
      return b.subarray(offset - first * BLOCK, Math.min(b.length, end - first * BLOCK));
    }
    if (last - first >= 4) return this.#pread(offset, end - offset);
    const out = new Uint8Array(end - offset);
    let n = 0;
    for (let i = first; i <= last && n < out.length; i++) {
      const b = this.#block(i);
      const from = i === first ? offset - first * BLOCK : 0;
      const piece = b.subarray(from, Math.min(b.length, from + out.length - n));
      out.set(piece, n);
      n += piece.length;
      if (b.length < BLOCK) break;
    }
    return out.subarray(0, n);
  }
  /** `length` bytes at `offset` into `scratch` (reused by the caller: large reads allocate nothing). */
  readInto(scratch: Uint8Array, offset: number, length: number): Uint8Array {
    const n = Math.max(0, Math.min(length, this.size - offset, scratch.length));
    return scratch.subarray(0, preadFull(this.fd, scratch.subarray(0, n), offset, this.what));
  }
  u32(offset: number): number {
    const b = this.read(offset, 4);
    if (b.length < 4) throw new LdCacheError("cache", "truncated");
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true);
  }
}

/** Writes to `fd` gathered into large pieces: the merged cache is emitted an entry at a time. */
class BufferedOut {
  readonly #buf = new Uint8Array(BLOCK);
  #n = 0;
  constructor(readonly fd: number) {}
  write(data: Uint8Array): void {
    if (this.#n + data.length > this.#buf.length) this.flush();
    if (data.length >= this.#buf.length) writeAll(this.fd, data, "ld.so.cache");
    else {
      this.#buf.set(data, this.#n);
      this.#n += data.length;
    }
  }
  flush(): void {
    if (this.#n > 0) writeAll(this.fd, this.#buf.subarray(0, this.#n), "ld.so.cache");
    this.#n = 0;
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
  return utf8.decode(b.subarray(0, end));
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
      return utf8.decode(x.subarray(0, Math.max(0, x.indexOf(0))));
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
 * Pass 1 of the merge over one chunk of `count` entries (as words): how many are kept — all but those at the sorted
 * chunk indices `drop` and the extension's — or -1 when a kept entry's string lies outside [lo, hi). Its own
 * function, with nothing captured, so that V8 optimizes the loop a million-entry cache runs through.
 */
function countKept(w: Uint32Array, count: number, drop: readonly number[], lo: number, hi: number): number {
  let kept = 0, d = 0;
  for (let k = 0; k < count; k++) {
    if (d < drop.length && drop[d] === k) {
      d++;
      continue;
    }
    const o = k * 6;
    if ((w[o + 5]! & EXTENSION_BIT) !== 0) continue;
    const key = w[o + 1]!, value = w[o + 2]!;
    if (key < lo || value < lo || key >= hi || value >= hi) return -1;
    kept++;
  }
  return kept;
}

/**
 * Pass 2 of the merge: entries [from, to) of chunk `w` appended to `keep` at entry `kn`, their string offsets moved
 * by `shift`, the extension's left out. Returns the new `kn`; -1 when an entry's string lies outside [lo, hi);
 * -2 on an extension entry when `noExtension` (the count was made assuming none). (Its own function for the same
 * reason.)
 */
function copyShifted(
  w: Uint32Array,
  from: number,
  to: number,
  keep: Uint32Array,
  kn: number,
  shift: number,
  lo: number,
  hi: number,
  noExtension: boolean,
): number {
  for (let k = from; k < to; k++) {
    const o = k * 6;
    if ((w[o + 5]! & EXTENSION_BIT) !== 0) {
      if (noExtension) return -2;
      continue;
    }
    const key = w[o + 1]!, value = w[o + 2]!;
    if (key < lo || value < lo || key >= hi || value >= hi) return -1;
    const d = kn * 6;
    keep[d] = w[o]!;
    keep[d + 1] = w[o + 1]! + shift;
    keep[d + 2] = w[o + 2]! + shift;
    keep[d + 3] = w[o + 3]!;
    keep[d + 4] = w[o + 4]!;
    keep[d + 5] = w[o + 5]!;
    kn++;
  }
  return kn;
}

/**
 * Streams the image's cache merged with `ours` into `fd` and returns the size written; `null` when the merge does
 * not hold (the caller then builds the cache another way).
 */
function streamMerge(
  f: CacheFile,
  ours: readonly LdCacheEntry[],
  fd: number,
  exact: boolean,
): number | null | "extension" {
  const l = layout(f);
  const out = new BufferedOut(fd);
  const byName = runs(f, l, ours);
  const dropped = new Set<number>();
  for (const r of byName.values()) for (const i of r.drop) dropped.add(i);

  // How many entries are kept: all but those replaced and those for the glibc-hwcaps extension (this writer emits
  // no extension). Caches without extension entries — nearly all — are written in one pass, assuming none (a pass
  // that meets one stops, and the caller asks for the exact count); `exact` counts in a first pass.
  const tail = f.size - l.base - l.data; // the string area (and anything after it), copied as bytes
  let kept = l.n - dropped.size;
  const drops = [...dropped].sort((a, b) => a - b);
  const lo = l.data, hi = l.data + tail;
  const scratch = new Uint8Array(CHUNK_ENTRIES * ENTRY_SIZE);
  if (exact) kept = 0;
  for (let i0 = 0; exact && i0 < l.n; i0 += CHUNK_ENTRIES) {
    const count = Math.min(CHUNK_ENTRIES, l.n - i0);
    const w = words(f.readInto(scratch, l.base + HEADER_SIZE + i0 * ENTRY_SIZE, count * ENTRY_SIZE));
    const drop = drops.filter((i) => i >= i0 && i < i0 + count).map((i) => i - i0);
    const k = countKept(w, count, drop, lo, hi);
    if (k < 0) return null;
    kept += k;
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
  out.write(header); // completed below, once the string length is known
  let written = 0, extension = false, bad = false;
  const emitRun = (name: string, r: { start: number; end: number; drop: Set<number> }) => {
    const mine = ours.filter((e) => e.soname === name);
    const theirs: (LdCacheEntry & { raw: Uint8Array })[] = [];
    for (let i = r.start; i < r.end; i++) {
      if (r.drop.has(i)) continue;
      const raw = f.read(l.base + HEADER_SIZE + i * ENTRY_SIZE, ENTRY_SIZE).slice();
      const v = new DataView(raw.buffer);
      if ((v.getBigUint64(16, true) & HWCAP_EXTENSION) !== 0n) {
        if (!exact) extension = true;
        continue;
      }
      const key = v.getUint32(4, true), value = v.getUint32(8, true);
      if (key < lo || value < lo || key >= hi || value >= hi) bad = true;
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
    for (const e of all) out.write(e.raw);
    written += all.length;
  };
  // The runs in index order (several names may start at one index: the order of `byName`, ldconfig's, holds).
  const runList = [...byName].map(([name, r]) => ({ name, r })).sort((a, b) => a.r.start - b.r.start);
  let w: Uint32Array = new Uint32Array(0), from = 0, chunkEnd = 0;
  const keep = new Uint32Array(CHUNK_ENTRIES * 6);
  const keepBytes = new Uint8Array(keep.buffer);
  let kn = 0, next = 0, skipUntil = 0;
  const flush = () => {
    if (kn > 0) out.write(keepBytes.subarray(0, kn * ENTRY_SIZE));
    written += kn;
    kn = 0;
  };
  for (let i = 0;;) {
    while (next < runList.length && runList[next]!.r.start === i) {
      const { name, r } = runList[next++]!;
      flush();
      emitRun(name, r);
      skipUntil = Math.max(skipUntil, r.end);
    }
    if (bad) return null;
    if (extension) return "extension";
    if (i >= l.n) break;
    if (i >= chunkEnd) {
      flush();
      from = i;
      const count = Math.min(CHUNK_ENTRIES, l.n - i);
      w = words(f.readInto(scratch, l.base + HEADER_SIZE + i * ENTRY_SIZE, count * ENTRY_SIZE));
      chunkEnd = i + count;
    }
    // Up to the next event: the chunk's end or a run's start; entries in a run are written by emitRun.
    const end = Math.min(chunkEnd, next < runList.length ? runList[next]!.r.start : l.n);
    if (i < skipUntil) {
      i = Math.min(skipUntil, end);
      continue;
    }
    kn = copyShifted(w, i - from, end - from, keep, kn, shift, lo, hi, !exact);
    if (kn === -1) return null;
    if (kn === -2) return "extension";
    i = end;
  }
  flush();
  if (written !== total) return null;
  for (let off = 0; off < tail; off += scratch.length) {
    out.write(f.readInto(scratch, l.base + l.data + off, Math.min(scratch.length, tail - off)));
  }
  for (const s of strings) out.write(s);
  out.flush();
  const v = new DataView(header.buffer);
  v.setUint32(20, total, true);
  v.setUint32(24, tail + strLen, true);
  v.setUint8(28, 2); // little-endian
  check("pwrite ld.so.cache", () => libc().pwrite(fd, header, HEADER_SIZE, 0));
  return HEADER_SIZE + total * ENTRY_SIZE + tail + strLen;
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
      let extension = false;
      const merged = (exact: boolean) => (fd: number) => {
        const size = streamMerge(f, ours, fd, exact);
        if (size === "extension") extension = true;
        return typeof size === "number" && verified(new CacheFile(fd, size, "ld.so.cache"), ours);
      };
      if (write(merged(false)) || (extension && write(merged(true)))) {
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
function verified(f: CacheFile, ours: readonly LdCacheEntry[]): boolean {
  const read = (off: number, len: number) => f.read(off, len);
  return ours.every((e) => ldsoLookup(read, e.soname, e.flags) === e.path);
}
