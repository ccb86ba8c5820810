/**
 * Editing config.json: additions to its lists, made as text edits (jsonc-parser) so every other byte — unknown
 * fields, key order, numbers beyond 2^53 — is kept; written atomically (temporary file, fsync, rename).
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

/** Applies list additions to config.json text; returns the new text (unchanged text if nothing is added). */
export function addToLists(text: string, doc: unknown, additions: readonly ListAddition[]): string {
  let out = text;
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
    const edits = modify(out, a.path, [...list, ...fresh], {
      formattingOptions: { insertSpaces: true, tabSize: 1 },
    });
    out = applyEdits(out, edits);
  }
  return out;
}

/** Replaces `file` atomically with `text`, keeping its mode. */
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
