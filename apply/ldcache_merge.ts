/**
 * The streamed merge of an image's linker cache with the injected libraries. The image's entry table is streamed
 * in chunks (each entry's string offsets shifted by one constant), its string area copied as bytes, and only the
 * few entries around each injected name are looked at, by binary search as ld.so itself searches; the injected
 * entries are inserted there in ldconfig's order. Entries for the glibc-hwcaps extension are left out (this writer
 * emits no extension).
 * @module
 */
import {
  ENTRY_SIZE,
  HEADER_SIZE,
  HWCAP_EXTENSION,
  type LdCacheEntry,
  ldconfigOrder,
  libcmp,
  NEW_MAGIC,
} from "../driver/ldcache.ts";
import { check, libc } from "../ffi/libc.ts";
import {
  BufferedOut,
  CacheFile,
  entryAt,
  EXTENSION_BIT,
  type Layout,
  layout,
  words,
} from "./ldcache_file.ts";

/** The most entries of one name looked at around an injected one (real caches have a handful). */
const MAX_RUN = 4096;
const CHUNK_ENTRIES = 1 << 14;

/** How a streamed merge ended. */
export type MergeResult =
  /** The merged cache is written: `size` bytes. */
  | { kind: "written"; size: number }
  /** A string offset out of range, or entries out of ldconfig's order: build the cache another way. */
  | { kind: "unsound" }
  /** A one-pass merge met a glibc-hwcaps extension entry: merge again with `exact` counting. */
  | { kind: "extension" };

/** What the copy kernels return instead of a count: an entry's string outside the string area, or an extension. */
const OUT_OF_RANGE = -1, EXTENSION_MET = -2;

/** Thrown inside a merge to end it with a result. */
class Stop {
  constructor(readonly result: MergeResult) {}
}

/** The run of image entries with an injected name: [start, end), and those replaced (same flags). */
interface Run {
  start: number;
  end: number;
  drop: Set<number>;
}

/** Each injected name's run among the image's entries, found by binary search. */
function runs(f: CacheFile, l: Layout, ours: readonly LdCacheEntry[]): Map<string, Run> {
  const out = new Map<string, Run>();
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

/**
 * Pass 1 over one chunk of `count` entries (as words): how many are kept — all but those at the sorted chunk
 * indices `drop` and the extension's — or OUT_OF_RANGE when a kept entry's string lies outside [lo, hi). Its own
 * function, with nothing captured, so that the engine optimizes the loop a million-entry cache runs through.
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
    if (key < lo || value < lo || key >= hi || value >= hi) return OUT_OF_RANGE;
    kept++;
  }
  return kept;
}

/**
 * Pass 2: entries [from, to) of chunk `w` appended to `keep` at entry `kn`, their string offsets moved by `shift`,
 * the extension's left out. Returns the new `kn`; OUT_OF_RANGE when an entry's string lies outside [lo, hi);
 * EXTENSION_MET on an extension entry when `noExtension` (the count was made assuming none). Its own function for
 * the same reason.
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
      if (noExtension) return EXTENSION_MET;
      continue;
    }
    const key = w[o + 1]!, value = w[o + 2]!;
    if (key < lo || value < lo || key >= hi || value >= hi) return OUT_OF_RANGE;
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

/** The injected entries' strings, placed after the image's string area. */
class StringArea {
  readonly strings: Uint8Array[] = [];
  length = 0;
  readonly #offsets = new Map<string, number>();
  readonly #enc = new TextEncoder();
  constructor(readonly start: number) {}
  intern(s: string): number {
    let off = this.#offsets.get(s);
    if (off === undefined) {
      const bytes = this.#enc.encode(s + "\0");
      off = this.start + this.length;
      this.#offsets.set(s, off);
      this.strings.push(bytes);
      this.length += bytes.length;
    }
    return off;
  }
  /** An injected library's entry, its strings interned. */
  entry(e: LdCacheEntry): Uint8Array {
    const b = new Uint8Array(ENTRY_SIZE);
    const v = new DataView(b.buffer);
    v.setInt32(0, e.flags, true);
    v.setUint32(4, this.intern(e.soname), true);
    v.setUint32(8, this.intern(e.path), true);
    v.setBigUint64(16, e.hwcap, true);
    return b;
  }
}

/**
 * Streams the image's cache merged with `ours` into `fd`. Without `exact`, the kept entries are counted assuming
 * the image has no extension entry (nearly all caches), in one pass; with it, they are counted first.
 */
export function streamMerge(
  f: CacheFile,
  ours: readonly LdCacheEntry[],
  fd: number,
  exact: boolean,
): MergeResult {
  try {
    return { kind: "written", size: new Merge(f, ours, fd, exact).run() };
  } catch (e) {
    if (e instanceof Stop) return e.result;
    throw e;
  }
}

/** One streamed merge's state: the layout, the bounds of valid string offsets, the output. */
class Merge {
  readonly l: Layout;
  readonly out: BufferedOut;
  /** The string area (and anything after it), copied as bytes. */
  readonly tail: number;
  readonly lo: number;
  readonly hi: number;
  readonly scratch = new Uint8Array(CHUNK_ENTRIES * ENTRY_SIZE);
  shift = 0;
  written = 0;

  constructor(
    readonly f: CacheFile,
    readonly ours: readonly LdCacheEntry[],
    fd: number,
    readonly exact: boolean,
  ) {
    this.l = layout(f);
    this.out = new BufferedOut(fd);
    this.tail = f.size - this.l.base - this.l.data;
    this.lo = this.l.data;
    this.hi = this.l.data + this.tail;
  }

  /** The merge; returns the size written. */
  run(): number {
    const { l, out } = this;
    const byName = runs(this.f, l, this.ours);
    const drops = [...new Set([...byName.values()].flatMap((r) => [...r.drop]))].sort((a, b) => a - b);
    const total = (this.exact ? this.countKept(drops) : l.n - drops.length) + this.ours.length;
    const tableEnd = HEADER_SIZE + total * ENTRY_SIZE;
    this.shift = tableEnd - l.data;
    const strings = new StringArea(tableEnd + this.tail);
    const header = new Uint8Array(HEADER_SIZE);
    header.set(new TextEncoder().encode(NEW_MAGIC), 0);
    out.write(header); // completed below, once the string length is known
    this.table(byName, strings);
    if (this.written !== total) throw new Stop({ kind: "unsound" });
    for (let off = 0; off < this.tail; off += this.scratch.length) {
      const length = Math.min(this.scratch.length, this.tail - off);
      out.write(this.f.readInto(this.scratch, l.base + l.data + off, length));
    }
    for (const s of strings.strings) out.write(s);
    out.flush();
    const v = new DataView(header.buffer);
    v.setUint32(20, total, true);
    v.setUint32(24, this.tail + strings.length, true);
    v.setUint8(28, 2); // little-endian
    check("pwrite ld.so.cache", () => libc().pwrite(this.out.fd, header, HEADER_SIZE, 0));
    return tableEnd + this.tail + strings.length;
  }

  #chunk(i: number, count: number): Uint32Array {
    return words(
      this.f.readInto(this.scratch, this.l.base + HEADER_SIZE + i * ENTRY_SIZE, count * ENTRY_SIZE),
    );
  }

  /** Pass 1: how many of the image's entries are kept (all but `drops` and the extension's). */
  countKept(drops: readonly number[]): number {
    let kept = 0;
    for (let i0 = 0; i0 < this.l.n; i0 += CHUNK_ENTRIES) {
      const count = Math.min(CHUNK_ENTRIES, this.l.n - i0);
      const drop = drops.filter((i) => i >= i0 && i < i0 + count).map((i) => i - i0);
      const k = countKept(this.#chunk(i0, count), count, drop, this.lo, this.hi);
      if (k === OUT_OF_RANGE) throw new Stop({ kind: "unsound" });
      kept += k;
    }
    return kept;
  }

  /** Pass 2: the table, the image's entries shifted, each injected name's run written where it starts. */
  table(byName: Map<string, Run>, strings: StringArea): void {
    const { l } = this;
    // The runs in index order (several names may start at one index: the order of `byName`, ldconfig's, holds).
    const runList = [...byName].map(([name, r]) => ({ name, r })).sort((a, b) => a.r.start - b.r.start);
    const keep = new Uint32Array(CHUNK_ENTRIES * 6);
    const keepBytes = new Uint8Array(keep.buffer);
    let w: Uint32Array = new Uint32Array(0), from = 0, chunkEnd = 0, kn = 0, next = 0, skipUntil = 0;
    const flush = () => {
      if (kn > 0) this.out.write(keepBytes.subarray(0, kn * ENTRY_SIZE));
      this.written += kn;
      kn = 0;
    };
    for (let i = 0;;) {
      while (next < runList.length && runList[next]!.r.start === i) {
        const { name, r } = runList[next++]!;
        flush();
        this.run1(name, r, strings);
        skipUntil = Math.max(skipUntil, r.end);
      }
      if (i >= l.n) break;
      if (i >= chunkEnd) {
        flush();
        from = i;
        const count = Math.min(CHUNK_ENTRIES, l.n - i);
        w = this.#chunk(i, count);
        chunkEnd = i + count;
      }
      // Up to the next event: the chunk's end or a run's start; entries in a run are written by run1.
      const end = Math.min(chunkEnd, next < runList.length ? runList[next]!.r.start : l.n);
      if (i < skipUntil) {
        i = Math.min(skipUntil, end);
        continue;
      }
      kn = copyShifted(w, i - from, end - from, keep, kn, this.shift, this.lo, this.hi, !this.exact);
      if (kn === OUT_OF_RANGE) throw new Stop({ kind: "unsound" });
      if (kn === EXTENSION_MET) throw new Stop({ kind: "extension" });
      i = end;
    }
    flush();
  }

  /** One injected name's run: the image's entries of that name (less those replaced) and ours, in ldconfig's order. */
  run1(name: string, r: Run, strings: StringArea): void {
    const { f, l } = this;
    const theirs: (LdCacheEntry & { raw: Uint8Array })[] = [];
    for (let i = r.start; i < r.end; i++) {
      if (r.drop.has(i)) continue;
      const raw = f.read(l.base + HEADER_SIZE + i * ENTRY_SIZE, ENTRY_SIZE).slice();
      const v = new DataView(raw.buffer);
      const hwcap = v.getBigUint64(16, true);
      if ((hwcap & HWCAP_EXTENSION) !== 0n) {
        if (!this.exact) throw new Stop({ kind: "extension" });
        continue;
      }
      const key = v.getUint32(4, true), value = v.getUint32(8, true);
      if (key < this.lo || value < this.lo || key >= this.hi || value >= this.hi) {
        throw new Stop({ kind: "unsound" });
      }
      v.setUint32(4, key + this.shift, true);
      v.setUint32(8, value + this.shift, true);
      theirs.push({ soname: name, path: "", flags: v.getInt32(0, true), is64: false, hwcap, raw });
    }
    const mine = this.ours.filter((e) => e.soname === name).map((e) => ({ ...e, raw: strings.entry(e) }));
    const all = [...mine, ...theirs].sort(ldconfigOrder);
    for (const e of all) this.out.write(e.raw);
    this.written += all.length;
  }
}
