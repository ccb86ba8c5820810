/**
 * `ld.so.cache`: glibc's cache of shared libraries, as `ldconfig` writes it and `ld.so` reads it.
 *
 * Layout (`glibc-ld.so.cache1.1`, little-endian): a 48-byte header — magic `glibc-ld.so.cache` (17 bytes),
 * version `1.1` (3), u32 entry count, u32 string-table length, u8 flags, 3 bytes padding, u32 extension offset,
 * 3 × u32 unused — then 24-byte entries {i32 flags, u32 key, u32 value, u32 osversion, u64 hwcap}, then the
 * strings. `key` (the SONAME) and `value` (the path) are offsets from the start of that header. Caches written by
 * old glibc begin with the `ld.so-1.7.0` format (11-byte magic, u32 count, 12-byte entries), which is skipped.
 *
 * Every offset is bounds-checked: a truncated or corrupted cache gives an {@link LdCacheError}, never a read
 * outside the file.
 * @module
 */

export const OLD_MAGIC = "ld.so-1.7.0";
export const NEW_MAGIC = "glibc-ld.so.cache1.1";
export const HEADER_SIZE = 48;
export const ENTRY_SIZE = 24;

/** Entry type (flags & 0xff). */
export const FLAG_ELF = 0x01, FLAG_ELF_LIBC5 = 0x02, FLAG_ELF_LIBC6 = 0x03;
/** Entry architecture (flags & 0xff00). */
export const ARCH = {
  i386: 0x0000,
  sparc64: 0x0100,
  ia64: 0x0200,
  x8664: 0x0300,
  s390x: 0x0400,
  ppc64: 0x0500,
  mips64: 0x0600,
  x32: 0x0800,
  armhf: 0x0900,
  aarch64: 0x0a00,
  armsf: 0x0b00,
  riscv64d: 0x0f00,
} as const;

const WORD64 = new Set<number>([
  ARCH.sparc64,
  ARCH.ia64,
  ARCH.x8664,
  ARCH.s390x,
  ARCH.ppc64,
  ARCH.mips64,
  ARCH.aarch64,
  ARCH.riscv64d,
]);

/** One cache entry. */
export interface LdCacheEntry {
  /** The SONAME (`libcuda.so.1`). */
  soname: string;
  /** The path ld.so opens (`/usr/lib/x86_64-linux-gnu/libcuda.so.1`), relative to the cache's root. */
  path: string;
  flags: number;
  /** Whether this is a 64-bit library. */
  is64: boolean;
  hwcap: bigint;
}

/** A cache that cannot be parsed. */
export class LdCacheError extends Error {
  constructor(readonly file: string, readonly why: string) {
    super(`${file}: ${why}`);
    this.name = "LdCacheError";
  }
}

function ascii(b: Uint8Array, at: number, len: number): string {
  return at + len <= b.length ? String.fromCharCode(...b.subarray(at, at + len)) : "";
}

/** Where the new-format header starts, or throws. */
function newHeaderOffset(b: Uint8Array, file: string): number {
  if (ascii(b, 0, NEW_MAGIC.length) === NEW_MAGIC) return 0;
  if (ascii(b, 0, OLD_MAGIC.length) !== OLD_MAGIC) {
    throw new LdCacheError(file, "not an ld.so.cache (bad magic)");
  }
  if (b.length < 16) throw new LdCacheError(file, "truncated old-format header");
  const n = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(11, true);
  const end = 16 + n * 12;
  const at = (end + 7) & ~7; // the new header is aligned to 8 bytes after the old table
  if (at + NEW_MAGIC.length > b.length || ascii(b, at, NEW_MAGIC.length) !== NEW_MAGIC) {
    throw new LdCacheError(file, "old-format cache without a glibc-ld.so.cache1.1 section (unsupported)");
  }
  return at;
}

/** Parses cache bytes. `file` names it in errors. */
export function parseLdCache(bytes: Uint8Array, file = "ld.so.cache"): LdCacheEntry[] {
  const base = newHeaderOffset(bytes, file);
  if (base + HEADER_SIZE > bytes.length) throw new LdCacheError(file, "truncated header");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const flags = v.getUint8(base + 28);
  if ((flags & 3) === 3) throw new LdCacheError(file, "big-endian cache (unsupported)");
  const n = v.getUint32(base + 20, true);
  const tableEnd = base + HEADER_SIZE + n * ENTRY_SIZE;
  if (n > 1_000_000 || tableEnd > bytes.length) {
    throw new LdCacheError(
      file,
      `truncated: ${n} entries need ${tableEnd} bytes, the file has ${bytes.length}`,
    );
  }
  const dec = new TextDecoder("utf-8", { fatal: false });
  const str = (off: number, what: string, i: number): string => {
    const at = base + off;
    if (off === 0 || at >= bytes.length) {
      throw new LdCacheError(file, `entry ${i}: ${what} offset ${off} is outside the file`);
    }
    const end = bytes.indexOf(0, at);
    if (end < 0) throw new LdCacheError(file, `entry ${i}: ${what} string is not terminated`);
    return dec.decode(bytes.subarray(at, end));
  };
  const out: LdCacheEntry[] = [];
  for (let i = 0; i < n; i++) {
    const e = base + HEADER_SIZE + i * ENTRY_SIZE;
    const f = v.getInt32(e, true);
    out.push({
      soname: str(v.getUint32(e + 4, true), "key", i),
      path: str(v.getUint32(e + 8, true), "value", i),
      flags: f,
      is64: WORD64.has(f & 0xff00),
      hwcap: v.getBigUint64(e + 16, true),
    });
  }
  return out;
}

/** Reads and parses a cache file. */
export function readLdCache(path: string): LdCacheEntry[] {
  return parseLdCache(Deno.readFileSync(path), path);
}

/** Whether an entry is an ELF library (plain or libc6), as opposed to an a.out-era libc5 one. */
export function isElfLibrary(e: LdCacheEntry): boolean {
  const type = e.flags & 0xff;
  return type === FLAG_ELF || type === FLAG_ELF_LIBC6;
}

/** `ldconfig -p`'s description of an entry's flags, e.g. `libc6,x86-64`. */
export function describeFlags(flags: number): string {
  const type = ["", "ELF", "libc5", "libc6"][flags & 0xff] ?? "unknown";
  const arch: Record<number, string> = {
    [ARCH.i386]: "",
    [ARCH.x8664]: ",x86-64",
    [ARCH.aarch64]: ",AArch64",
    [ARCH.ppc64]: ",64bit",
    [ARCH.x32]: ",x32",
    [ARCH.armhf]: ",hard-float",
  };
  return type + (arch[flags & 0xff00] ?? ",unknown");
}

/**
 * glibc's `_dl_cache_libcmp`: compares library names with runs of digits compared as numbers, and a digit
 * ordered after any other character. ld.so binary-searches the cache with it, so a cache must be ordered by it.
 */
export function libcmp(a: string, b: string): number {
  let i = 0, j = 0;
  const digit = (c: number) => c >= 48 && c <= 57;
  while (i < a.length) {
    const c1 = a.charCodeAt(i), c2 = j < b.length ? b.charCodeAt(j) : 0;
    if (digit(c1)) {
      if (!digit(c2)) return 1;
      let v1 = 0, v2 = 0;
      while (i < a.length && digit(a.charCodeAt(i))) v1 = v1 * 10 + a.charCodeAt(i++) - 48;
      while (j < b.length && digit(b.charCodeAt(j))) v2 = v2 * 10 + b.charCodeAt(j++) - 48;
      if (v1 !== v2) return v1 - v2;
    } else if (digit(c2)) {
      return -1;
    } else if (c1 !== c2) {
      return c1 - c2;
    } else {
      i++;
      j++;
    }
  }
  return -(j < b.length ? b.charCodeAt(j) : 0);
}

/** ldconfig's entry order: names descending by {@link libcmp}, then higher flags first, then higher hwcap first. */
export function ldconfigOrder(a: LdCacheEntry, b: LdCacheEntry): number {
  const r = libcmp(b.soname, a.soname);
  if (r !== 0) return r;
  if (a.flags !== b.flags) return b.flags - a.flags;
  return a.hwcap === b.hwcap ? 0 : a.hwcap > b.hwcap ? -1 : 1;
}

/** The hwcap bit that marks an entry indexing the glibc-hwcaps extension (which this writer does not emit). */
export const HWCAP_EXTENSION = 1n << 62n;

/**
 * Writes a `glibc-ld.so.cache1.1` cache holding `entries`, ordered as ldconfig orders them (so ld.so's binary
 * search finds every one). Entries indexing the glibc-hwcaps extension are dropped: this writer emits no
 * extension section. Duplicate (soname, flags, hwcap) keys keep the first occurrence.
 */
export function serializeLdCache(entries: readonly LdCacheEntry[]): Uint8Array {
  const seen = new Set<string>();
  const list = entries.filter((e) => {
    if ((e.hwcap & HWCAP_EXTENSION) !== 0n) return false;
    const k = `${e.soname}\0${e.flags}\0${e.hwcap}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  }).sort(ldconfigOrder);
  const enc = new TextEncoder();
  const strings: Uint8Array[] = [];
  const offsets = new Map<string, number>();
  let strLen = 0;
  const tableEnd = HEADER_SIZE + list.length * ENTRY_SIZE;
  const intern = (s: string): number => {
    let off = offsets.get(s);
    if (off === undefined) {
      const b = enc.encode(s + "\0");
      off = tableEnd + strLen;
      offsets.set(s, off);
      strings.push(b);
      strLen += b.length;
    }
    return off;
  };
  const keys = list.map((e) => [intern(e.soname), intern(e.path)] as const);
  const out = new Uint8Array(tableEnd + strLen);
  const v = new DataView(out.buffer);
  out.set(enc.encode(NEW_MAGIC), 0);
  v.setUint32(20, list.length, true);
  v.setUint32(24, strLen, true);
  v.setUint8(28, 2); // little-endian
  list.forEach((e, i) => {
    const at = HEADER_SIZE + i * ENTRY_SIZE;
    v.setInt32(at, e.flags, true);
    v.setUint32(at + 4, keys[i]![0], true);
    v.setUint32(at + 8, keys[i]![1], true);
    v.setUint32(at + 12, 0, true);
    v.setBigUint64(at + 16, e.hwcap, true);
  });
  let at = tableEnd;
  for (const s of strings) {
    out.set(s, at);
    at += s.length;
  }
  return out;
}

/** The flags ld.so accepts for a native 64-bit library on this architecture, or for a 32-bit one. */
export function nativeFlags(bits: 32 | 64, arch: "x86_64" | "aarch64" = "x86_64"): number {
  if (bits === 64) return FLAG_ELF_LIBC6 | (arch === "aarch64" ? ARCH.aarch64 : ARCH.x8664);
  return FLAG_ELF_LIBC6 | ARCH.i386;
}
