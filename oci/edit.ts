/**
 * Editing config.json: additions to its lists, made as insertions into the text so every other byte — unknown
 * fields, key order, numbers beyond 2^53 — is kept; written atomically (temporary file, fsync, rename).
 * config.json is plain JSON written by a runtime, so one scan of it finds every place to insert at: no JSONC
 * parser on the path of every GPU container.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";

/** A path into a JSON document: object keys and array indexes. */
export type JSONPath = (string | number)[];

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
 * Where each of `paths` is in JSON text, for those that are arrays or objects: the offset of the closing bracket
 * or brace, and whether it is empty. One pass over the text.
 */
export function locateContainers(
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
      const id = done === undefined ? "" : JSON.stringify(done.path);
      if (want.has(id)) found.set(id, { close: i, empty: !done!.items });
      continue;
    }
    // A value begins (or, in an object, a key).
    if (top !== undefined) {
      top.items = true;
      if (top.array) key = top.index;
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
 * items and every byte around them stay as they were. A list that is missing goes in, with any missing parent
 * objects, just before the closing brace of its deepest existing parent.
 */
export function addToLists(text: string, doc: unknown, additions: readonly ListAddition[]): string {
  const inserts: { path: JSONPath; items: unknown[] }[] = [];
  // Missing lists, grouped by their deepest existing parent object: the members to add to it.
  const creates = new Map<string, { parent: JSONPath; members: Record<string, unknown> }>();
  for (const a of additions) {
    const have = get(doc, a.path);
    if (have !== undefined && !Array.isArray(have)) {
      throw new GpuctlError("config.json", `"${a.path.join(".")}" is not a list`);
    }
    const list = (have as unknown[] | undefined) ?? [];
    const fresh = a.items.filter((i) =>
      !list.some((e) => (a.same ? a.same(e, i) : JSON.stringify(e) === JSON.stringify(i)))
    );
    if (fresh.length === 0) continue;
    if (have !== undefined) {
      inserts.push({ path: a.path, items: fresh });
      continue;
    }
    let k = a.path.length - 1;
    while (k > 0 && get(doc, a.path.slice(0, k)) === undefined) k--;
    const parent = a.path.slice(0, k);
    const p = get(doc, parent);
    if (p === null || typeof p !== "object" || Array.isArray(p)) {
      throw new GpuctlError("config.json", `"${parent.join(".") || "(top)"}" is not an object`);
    }
    const id = JSON.stringify(parent);
    const group = creates.get(id) ?? { parent, members: {} };
    creates.set(id, group);
    let m = group.members;
    for (const key of a.path.slice(k, -1)) m = (m[String(key)] ??= {}) as Record<string, unknown>;
    m[String(a.path[a.path.length - 1])] = fresh;
  }
  if (inserts.length === 0 && creates.size === 0) return text;
  const at = locateContainers(text, [
    ...inserts.map((x) => x.path),
    ...[...creates.values()].map((c) => c.parent),
  ]);
  const where = (path: JSONPath) => {
    const w = at.get(JSON.stringify(path));
    if (w === undefined) {
      throw new GpuctlError("config.json", `"${path.join(".") || "(top)"}" could not be located in the text`);
    }
    return w;
  };
  const edits = [
    ...inserts.map((x) => {
      const w = where(x.path);
      const items = x.items.map((i) => JSON.stringify(i)).join(",");
      return { offset: w.close, content: w.empty ? items : `,${items}` };
    }),
    ...[...creates.values()].map((c) => {
      const w = where(c.parent);
      const members = Object.entries(c.members).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
        .join(",");
      return { offset: w.close, content: w.empty ? members : `,${members}` };
    }),
  ];
  let out = text;
  for (const e of edits.sort((x, y) => y.offset - x.offset)) {
    out = out.slice(0, e.offset) + e.content + out.slice(e.offset);
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
