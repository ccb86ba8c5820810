/**
 * Editing config.json: additions to its lists, made as text edits (jsonc-parser) so every other byte — unknown
 * fields, key order, numbers beyond 2^53 — is kept; written atomically (temporary file, rename).
 * @module
 */
import { applyEdits, type JSONPath, modify } from "jsonc-parser";
import { GpuctlError } from "../errors/mod.ts";

/** One addition: items appended to the list at `path` (created if absent). */
export interface ListAddition {
  path: JSONPath;
  items: unknown[];
  /** Items already in the list for which this returns true are not added again. */
  same?: (existing: unknown, item: unknown) => boolean;
}

function get(doc: unknown, path: JSONPath): unknown {
  let v = doc;
  for (const k of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string | number, unknown>)[k as string];
  }
  return v;
}

/**
 * Where each of `paths` is in JSON text, for those that are arrays: the offset of the closing bracket, and
 * whether the array has items. One pass over the text (config.json is plain JSON, written by a runtime).
 */
export function locateArrays(
  text: string,
  paths: readonly JSONPath[],
): Map<string, { close: number; empty: boolean }> {
  const want = new Set(paths.map((p) => JSON.stringify(p)));
  const found = new Map<string, { close: number; empty: boolean }>();
  // One frame per open container: its path, whether it is an array, the next array index, whether it has items.
  const stack: { path: JSONPath; array: boolean; index: number; items: boolean }[] = [];
  let key: string | number | undefined;
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09 || c === 0x3a /* : */) continue;
    const top = stack[stack.length - 1];
    if (c === 0x2c /* , */) {
      if (top?.array) top.index++;
      else expectKey = true;
      continue;
    }
    if (c === 0x5d /* ] */ || c === 0x7d /* } */) {
      const done = stack.pop();
      const id = done?.array ? JSON.stringify(done.path) : "";
      if (want.has(id)) found.set(id, { close: i, empty: !done!.items });
      continue;
    }
    // A value begins (or, in an object, a key).
    if (top !== undefined && top.array) {
      top.items = true;
      key = top.index;
    }
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (j < text.length && text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c ? 2 : 1;
      if (expectKey) key = JSON.parse(text.slice(i, j + 1)) as string;
      expectKey = false;
      i = j;
      continue;
    }
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      const path = top === undefined ? [] : [...top.path, key!];
      stack.push({ path, array: c === 0x5b, index: 0, items: false });
      expectKey = c === 0x7b;
      continue;
    }
    // A number, true, false or null: skip to its end.
    while (i + 1 < text.length && !/[\s,\]\}]/.test(text[i + 1]!)) i++;
  }
  return found;
}

/**
 * Applies list additions to config.json text; returns the new text (unchanged text if nothing is added).
 *
 * Items go in as compact JSON just before the closing bracket of a list that exists, so the list's existing
 * items and every byte around them stay as they were. A list (or a parent object) that is missing is created
 * with jsonc-parser's `modify`, afterwards.
 */
export function addToLists(text: string, doc: unknown, additions: readonly ListAddition[]): string {
  const inserts: { path: JSONPath; items: unknown[] }[] = [];
  const create: { path: JSONPath; items: unknown[] }[] = [];
  for (const a of additions) {
    const have = get(doc, a.path);
    if (have !== undefined && !Array.isArray(have)) {
      throw new GpuctlError("config.json", `"${a.path.join(".")}" is not a list`);
    }
    const list = (have as unknown[] | undefined) ?? [];
    const fresh = a.items.filter((i) =>
      !list.some((e) => (a.same ? a.same(e, i) : JSON.stringify(e) === JSON.stringify(i)))
    );
    if (fresh.length > 0) (have === undefined ? create : inserts).push({ path: a.path, items: fresh });
  }
  const at = inserts.length > 0 ? locateArrays(text, inserts.map((x) => x.path)) : new Map();
  const edits = inserts.map((x) => {
    const where = at.get(JSON.stringify(x.path));
    if (where === undefined) {
      throw new GpuctlError("config.json", `"${x.path.join(".")}" could not be located in the text`);
    }
    const items = x.items.map((i) => JSON.stringify(i)).join(",");
    return { offset: where.close, content: where.empty ? items : `,${items}` };
  });
  let out = text;
  for (const e of edits.sort((x, y) => y.offset - x.offset)) {
    out = out.slice(0, e.offset) + e.content + out.slice(e.offset);
  }
  for (const c of create) {
    out = applyEdits(
      out,
      modify(out, c.path, c.items, { formattingOptions: { insertSpaces: true, tabSize: 1 } }),
    );
  }
  return out;
}

/**
 * Replaces `file` atomically with `text`, keeping its mode: a temporary file in the same directory, written,
 * fsynced and renamed over it, so a crash leaves the old file or the new one, never an empty one. (A container's
 * config.json is usually on tmpfs, under /run, where the fsync costs nothing.)
 */
export function writeAtomic(file: string, text: string): void {
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const base = file.slice(file.lastIndexOf("/") + 1);
  let mode = 0o644;
  try {
    mode = (Deno.statSync(file).mode ?? 0o644) & 0o7777;
  } catch { /* new file */ }
  const tmp = `${dir}/.${base}.gpuctl-${Deno.pid}-${Math.random().toString(36).slice(2, 10)}`;
  const f = Deno.openSync(tmp, { write: true, createNew: true, mode });
  try {
    const data = new TextEncoder().encode(text);
    let n = 0;
    while (n < data.length) n += f.writeSync(data.subarray(n));
    f.syncSync();
  } catch (e) {
    f.close();
    Deno.removeSync(tmp);
    throw e;
  }
  f.close();
  try {
    Deno.chmodSync(tmp, mode);
    Deno.renameSync(tmp, file);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* gone */ }
    throw e;
  }
}
