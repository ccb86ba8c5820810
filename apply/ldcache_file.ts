/**
 * Reading a linker cache file as ld.so does, without loading it whole: positional reads through a few cached
 * blocks, the layout of its new-format part, its entries and strings bounded, and ld.so's own lookup of a name.
 * Writes gathered into large pieces for the merged cache.
 * @module
 */
import { ENTRY_SIZE, HEADER_SIZE, LdCacheError, libcmp, NEW_MAGIC, OLD_MAGIC } from "../driver/ldcache.ts";
import { preadFull, writeAll } from "../ffi/libc.ts";

const BLOCK = 64 << 10;
/** Blocks kept by a {@link CacheFile}: its memory stays bounded whatever the file's size. */
const MAX_BLOCKS = 32;
const utf8 = new TextDecoder();
/** In an entry's last word (the high half of hwcap): the entry is for the glibc-hwcaps extension. */
export const EXTENSION_BIT = 0x40000000;

/** Bytes of a cache's entry table as 32-bit words (copied when not aligned for it). */
export function words(b: Uint8Array): Uint32Array {
  const a = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Uint32Array(a.buffer, a.byteOffset, a.byteLength >>> 2);
}

/**
 * Positional reads of a cache file through a few cached blocks: the merge and ld.so's lookup read many small
 * pieces (entries, strings) near each other, which would otherwise be a system call each. A read larger than a
 * few blocks goes to the file directly.
 */
export class CacheFile {
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
export class BufferedOut {
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
export interface Layout {
  base: number;
  n: number;
  /** The string area's start, relative to `base`: every valid string offset is at least this. */
  data: number;
}

export function layout(f: CacheFile): Layout {
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

export function entryAt(f: CacheFile, l: Layout, i: number): { soname: string; flags: number } {
  const b = f.read(l.base + HEADER_SIZE + i * ENTRY_SIZE, ENTRY_SIZE);
  const v = new DataView(b.buffer, b.byteOffset, ENTRY_SIZE);
  return { flags: v.getInt32(0, true), soname: str(f, l, v.getUint32(4, true)) };
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
