/**
 * Hostile inputs shared by the hostile tests and the bench: a huge image linker cache, a deeply nested config.json.
 * @module
 */
import { ENTRY_SIZE, HEADER_SIZE, NEW_MAGIC } from "../../driver/ldcache.ts";

/** Adds to the config.json `file` an extra member nested `levels` lists deep. */
export function nestConfig(file: string, levels: number): void {
  const text = Deno.readTextFileSync(file).trimEnd();
  Deno.writeTextFileSync(
    file,
    `${text.slice(0, -1)},"org.example.deep":${"[".repeat(levels)}${"]".repeat(levels)}}`,
  );
}

/** An ld.so.cache of `n` entries sharing one name and path (what an image may ship: 24 MB for a million). */
export function hugeCache(n: number): Uint8Array {
  const enc = new TextEncoder();
  const strings = enc.encode("libimage.so.1\0/lib/x86_64-linux-gnu/libimage.so.1\0");
  const table = HEADER_SIZE + n * ENTRY_SIZE;
  const out = new Uint8Array(table + strings.length);
  out.set(enc.encode(NEW_MAGIC), 0);
  const v = new DataView(out.buffer);
  v.setUint32(20, n, true);
  v.setUint32(24, strings.length, true);
  v.setUint8(28, 2);
  for (let i = 0; i < n; i++) {
    const at = HEADER_SIZE + i * ENTRY_SIZE;
    v.setInt32(at, 0x0303, true);
    v.setUint32(at + 4, table, true);
    v.setUint32(at + 8, table + 14, true);
  }
  out.set(strings, table);
  return out;
}
