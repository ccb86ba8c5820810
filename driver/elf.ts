/**
 * The few facts gpuctl reads from ELF shared objects: the class (32 or 64-bit), the `DT_SONAME` from the dynamic
 * section (a library's real name, never guessed from its file name), and a named note (the CUDA forward
 * compatibility note of a `libcuda.so` shipped in an image).
 *
 * Reads go through a positional reader, so a file is never loaded whole, and every count and size is bounded:
 * the image's files are hostile, and a malformed one gives `null`, not an exception or a long read.
 * @module
 */

/** Reads up to `length` bytes at `offset` (fewer at the end of the file). */
export type ReadAt = (offset: number, length: number) => Uint8Array;

export interface ElfFacts {
  bits: 32 | 64;
  soname: string | null;
}

const MAX_HEADERS = 4096, MAX_DYNAMIC = 4096, MAX_STRING = 4096, MAX_NOTE = 64 << 10;

interface Header {
  bits: 32 | 64;
  v: (b: Uint8Array) => DataView;
  phoff: number;
  phentsize: number;
  phnum: number;
  shoff: number;
  shentsize: number;
  shnum: number;
  shstrndx: number;
}

function header(read: ReadAt): Header | null {
  const h = read(0, 64);
  if (h.length < 52 || h[0] !== 0x7f || h[1] !== 0x45 || h[2] !== 0x4c || h[3] !== 0x46) return null;
  if (h[5] !== 1) return null; // little-endian only: the architectures gpuctl runs on
  const bits = h[4] === 1 ? 32 : h[4] === 2 ? 64 : null;
  if (bits === null || (bits === 64 && h.length < 64)) return null;
  const v = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);
  const d = v(h);
  const n = (off64: number, off32: number, size: 2 | 4 | 8) => {
    const off = bits === 64 ? off64 : off32;
    return size === 2
      ? d.getUint16(off, true)
      : size === 4 || bits === 32
      ? d.getUint32(off, true)
      : Number(d.getBigUint64(off, true));
  };
  return {
    bits,
    v,
    phoff: n(32, 28, 8),
    shoff: n(40, 32, 8),
    phentsize: n(54, 42, 2),
    phnum: n(56, 44, 2),
    shentsize: n(58, 46, 2),
    shnum: n(60, 48, 2),
    shstrndx: n(62, 50, 2),
  };
}

function cstring(read: ReadAt, offset: number): string | null {
  const b = read(offset, MAX_STRING);
  const end = b.indexOf(0);
  if (end < 0) return null;
  return new TextDecoder("utf-8", { fatal: false }).decode(b.subarray(0, end));
}

/** The class and `DT_SONAME` of an ELF file; `null` when it is not a (little-endian) ELF file. */
export function elfFacts(read: ReadAt): ElfFacts | null {
  const h = header(read);
  if (h === null) return null;
  return { bits: h.bits, soname: soname(read, h) };
}

function soname(read: ReadAt, h: Header): string | null {
  const w = h.bits === 64 ? 8 : 4;
  if (h.phnum > MAX_HEADERS || h.phentsize < (h.bits === 64 ? 56 : 32)) return null;
  const ph = read(h.phoff, h.phnum * h.phentsize);
  if (ph.length < h.phnum * h.phentsize) return null;
  const pv = h.v(ph);
  const loads: { vaddr: number; offset: number; size: number }[] = [];
  let dyn: { offset: number; size: number } | null = null;
  for (let i = 0; i < h.phnum; i++) {
    const at = i * h.phentsize;
    const type = pv.getUint32(at, true);
    const offset = h.bits === 64 ? Number(pv.getBigUint64(at + 8, true)) : pv.getUint32(at + 4, true);
    const vaddr = h.bits === 64 ? Number(pv.getBigUint64(at + 16, true)) : pv.getUint32(at + 8, true);
    const size = h.bits === 64 ? Number(pv.getBigUint64(at + 32, true)) : pv.getUint32(at + 16, true);
    if (type === 1 /* PT_LOAD */) loads.push({ vaddr, offset, size });
    if (type === 2 /* PT_DYNAMIC */) dyn = { offset, size };
  }
  if (dyn === null) return null;
  const count = Math.min(Math.floor(dyn.size / (2 * w)), MAX_DYNAMIC);
  const db = read(dyn.offset, count * 2 * w);
  const dv = h.v(db);
  let strtab = -1, sonameAt = -1;
  for (let i = 0; (i + 1) * 2 * w <= db.length; i++) {
    const tag = w === 8 ? Number(dv.getBigInt64(i * 16, true)) : dv.getInt32(i * 8, true);
    const val = w === 8 ? Number(dv.getBigUint64(i * 16 + 8, true)) : dv.getUint32(i * 8 + 4, true);
    if (tag === 0 /* DT_NULL */) break;
    if (tag === 5 /* DT_STRTAB */) strtab = val;
    if (tag === 14 /* DT_SONAME */) sonameAt = val;
  }
  if (strtab < 0 || sonameAt < 0) return null;
  // DT_STRTAB is an address: find the file offset through the loadable segment that holds it.
  const seg = loads.find((l) => strtab >= l.vaddr && strtab < l.vaddr + l.size);
  if (seg === undefined) return null;
  return cstring(read, strtab - seg.vaddr + seg.offset + sonameAt);
}

/** The description of the note in section `section` whose owner is `owner`; `null` if there is none. */
export function elfNote(read: ReadAt, section: string, owner: string): Uint8Array | null {
  const h = header(read);
  if (h === null || h.shnum === 0 || h.shnum > MAX_HEADERS || h.shstrndx >= h.shnum) return null;
  if (h.shentsize < (h.bits === 64 ? 64 : 40)) return null;
  const sh = read(h.shoff, h.shnum * h.shentsize);
  if (sh.length < h.shnum * h.shentsize) return null;
  const sv = h.v(sh);
  const sect = (i: number) => {
    const at = i * h.shentsize;
    const w64 = h.bits === 64;
    return {
      name: sv.getUint32(at, true),
      type: sv.getUint32(at + 4, true),
      offset: w64 ? Number(sv.getBigUint64(at + 24, true)) : sv.getUint32(at + 16, true),
      size: w64 ? Number(sv.getBigUint64(at + 32, true)) : sv.getUint32(at + 20, true),
      align: w64 ? Number(sv.getBigUint64(at + 48, true)) : sv.getUint32(at + 32, true),
    };
  };
  const names = sect(h.shstrndx);
  for (let i = 0; i < h.shnum; i++) {
    const s = sect(i);
    if (s.type !== 7 /* SHT_NOTE */ || s.size < 12 || s.size > MAX_NOTE) continue;
    if (cstring(read, names.offset + s.name) !== section) continue;
    const data = read(s.offset, s.size);
    if (data.length < 12) return null;
    const dv = h.v(data);
    const nameSize = dv.getUint32(0, true), descSize = dv.getUint32(4, true);
    const align = s.align > 4 ? 8 : 4;
    const nameEnd = 12 + Math.ceil(nameSize / align) * align;
    const name = new TextDecoder().decode(data.subarray(12, 12 + nameSize)).replace(/\0+$/, "");
    if (name !== owner || nameEnd + descSize > data.length) return null;
    return data.subarray(nameEnd, nameEnd + descSize);
  }
  return null;
}

/** A {@link ReadAt} over a host file (the driver root's libraries). */
export function fileReader(f: Deno.FsFile): ReadAt {
  return (offset, length) => {
    const b = new Uint8Array(Math.max(0, Math.min(length, 1 << 20)));
    f.seekSync(offset, Deno.SeekMode.Start);
    let n = 0;
    while (n < b.length) {
      const r = f.readSync(b.subarray(n));
      if (r === null || r === 0) break;
      n += r;
    }
    return b.subarray(0, n);
  };
}

/** The ELF facts of a host file by path, or `null` (not ELF, unreadable). */
export function elfFactsOf(path: string): ElfFacts | null {
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(path, { read: true });
    return elfFacts(fileReader(f));
  } catch { // unreadable, or not an ELF file: no facts
    return null;
  } finally {
    f?.close();
  }
}
