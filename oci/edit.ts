/**
 * Editing config.json: additions to its lists, made as insertions into the text so every other byte — unknown
 * fields, key order, numbers beyond 2^53 — is kept; written atomically (temporary file, fsync, rename). Where
 * to insert comes from the document as runc reads it (`json.ts`): into the member runc will use when a key is
 * given twice or in another case.
 * @module
 */
import { GpuctlError, osWords } from "../errors/mod.ts";
import { at, type JNode } from "./json.ts";

/** One addition: items appended to the list at `path` (created, with missing parents, if absent). */
export interface ListAddition<T = unknown> {
  /** Field names from the top of the document. */
  path: readonly string[];
  items: readonly T[];
  /** The identity of a new item: one already in the list (or added before it) is not added again. */
  key(item: T): string;
  /** The identity of an item the list already has, read as runc reads it; `undefined` matches nothing. */
  existing(node: JNode): string | undefined;
}

/**
 * Applies list additions to config.json text (`tree` is its parse); returns the new text, the same text when
 * nothing is added.
 *
 * Items go in as compact JSON just before the closing bracket of a list that exists, so the list's existing
 * items and every byte around them stay as they were. A list that is missing goes in, with any missing parent
 * objects, just before the closing brace of its deepest existing parent.
 */
export function addToLists(text: string, tree: JNode, additions: readonly ListAddition[]): string {
  const edits: { offset: number; content: string }[] = [];
  // Missing lists, grouped by their deepest existing parent object: the members to add to it.
  const creates = new Map<JNode, Record<string, unknown>>();
  for (const a of additions) {
    const have = at(tree, a.path);
    if (have !== undefined && have.t !== "arr") {
      throw new GpuctlError("config.json", `"${a.path.join(".")}" is not a list`);
    }
    const seen = new Set<string>();
    for (const e of have?.items ?? []) {
      const k = a.existing(e);
      if (k !== undefined) seen.add(k);
    }
    const fresh = a.items.filter((i) => {
      const k = a.key(i);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    if (fresh.length === 0) continue;
    if (have !== undefined) {
      const items = fresh.map((i) => JSON.stringify(i)).join(",");
      edits.push({ offset: have.end - 1, content: have.items.length === 0 ? items : `,${items}` });
      continue;
    }
    let k = a.path.length - 1;
    while (k > 0 && at(tree, a.path.slice(0, k)) === undefined) k--;
    const parent = k === 0 ? tree : at(tree, a.path.slice(0, k))!;
    if (parent.t !== "obj") {
      throw new GpuctlError("config.json", `"${a.path.slice(0, k).join(".") || "(top)"}" is not an object`);
    }
    const group = creates.get(parent) ?? {};
    creates.set(parent, group);
    let m = group;
    for (const key of a.path.slice(k, -1)) m = (m[key] ??= {}) as Record<string, unknown>;
    m[a.path[a.path.length - 1]!] = fresh;
  }
  for (const [parent, members] of creates) {
    const text = Object.entries(members).map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(
      ",",
    );
    const empty = parent.t === "obj" && parent.members.length === 0;
    edits.push({ offset: parent.end - 1, content: empty ? text : `,${text}` });
  }
  if (edits.length === 0) return text;
  let out = text;
  for (const e of edits.sort((x, y) => y.offset - x.offset)) {
    out = out.slice(0, e.offset) + e.content + out.slice(e.offset);
  }
  return out;
}

/**
 * Replaces `file` atomically with `text`, keeping its mode: a temporary file in the same directory, written,
 * fsynced and renamed over it, so a crash leaves the old file or the new one, never an empty one. `durable: false`
 * skips the fsync, for a file that does not outlive a crash anyway (a bundle's config.json): readers still see the
 * old file or the new one, whole.
 */
export function writeAtomic(
  file: string,
  text: string,
  opts: { durable?: boolean; like?: { mode: number; uid: number; gid: number } } = {},
): void {
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  const base = file.slice(file.lastIndexOf("/") + 1);
  let mode = opts.like?.mode ?? 0o644;
  if (opts.like === undefined) {
    try {
      mode = (Deno.statSync(file).mode ?? 0o644) & 0o7777;
    } catch { /* new file */ }
  }
  const tmp = `${dir}/.${base}.gpuctl-${Deno.pid}-${Math.random().toString(36).slice(2, 10)}`;
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(tmp, { write: true, createNew: true, mode });
  } catch (e) {
    // Named as the file asked for (the temporary name beside it means nothing to the reader).
    throw new GpuctlError(file, `cannot be written: ${osWords(e)}`, 1, { cause: e });
  }
  try {
    const data = new TextEncoder().encode(text);
    let n = 0;
    while (n < data.length) n += f.writeSync(data.subarray(n));
    if (opts.durable !== false) f.syncSync();
  } catch (e) {
    f.close();
    Deno.removeSync(tmp);
    throw e;
  }
  f.close();
  try {
    if (opts.like !== undefined) Deno.chownSync(tmp, opts.like.uid, opts.like.gid);
    Deno.chmodSync(tmp, mode);
    Deno.renameSync(tmp, file);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* gone */ }
    throw e;
  }
}
