/**
 * What every engine's configuration change shares: the files it plans to write or remove, each checked by its own
 * parser before it is written, written atomically with a backup of the old content, and a marker for files gpuctl
 * owns whole.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { writeAtomic } from "../oci/edit.ts";

/** The first line of every file gpuctl owns whole (a drop-in); a file without it is never replaced. */
export const OWNED_MARK = "# Written by gpuctl configure";

/** One file's new content (`null`: remove it), with the parser that must accept it before it is written. */
export interface FileChange {
  file: string;
  before: string | null;
  after: string | null;
  /** Throws when `after` is not something its engine can read. */
  check?: (text: string) => void;
  /** `after` is the user's file restored from FILE.gpuctl-backup, which then goes. */
  restored?: boolean;
  /** An undo: the old content is not backed up (it is gpuctl's configuration). */
  undo?: boolean;
  /** A new file gets this file's mode and owner (a drop-in carrying the main file's settings, secrets included). */
  like?: string;
}

/**
 * Beside a file gpuctl created that cannot say so itself (daemon.json is strict JSON: no comment), the file
 * saying that it did: `--remove` then removes the file once nothing else is in it.
 */
export const createdMark = (file: string) => `${file}.gpuctl-created`;
const DIR_MADE = ", and its directory";

/**
 * The file's text, exactly (a byte-order mark kept, so that the text written back is the same bytes), or `null` when
 * it does not exist. A file that is not UTF-8 is refused, naming the first bad byte: an engine reads such bytes as
 * something else, and an edit could not keep them.
 */
export function readIfExists(file: string): string | null {
  let bytes: Uint8Array;
  try {
    bytes = Deno.readFileSync(file);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new GpuctlError(file, `cannot be read: ${(e as Error).message}`, 1, { cause: e });
  }
  const bad = invalidUtf8(bytes);
  if (bad !== null) {
    throw new GpuctlError(
      file,
      `is not UTF-8 text (byte ${bad} is not): the engine reads such bytes as something else, and gpuctl could not keep them; fix the file (nothing was changed)`,
    );
  }
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
}

/** The offset of the first byte that is not well-formed UTF-8, or null. */
export function invalidUtf8(b: Uint8Array): number | null {
  for (let i = 0; i < b.length;) {
    const c = b[i]!;
    const n = c < 0x80
      ? 0
      : c >= 0xc2 && c <= 0xdf
      ? 1
      : c >= 0xe0 && c <= 0xef
      ? 2
      : c >= 0xf0 && c <= 0xf4
      ? 3
      : -1;
    if (n < 0) return i;
    for (let k = 1; k <= n; k++) if (((b[i + k] ?? 0) & 0xc0) !== 0x80) return i;
    // Overlong forms, surrogates, and beyond U+10FFFF.
    const d = b[i + 1] ?? 0;
    if (
      (c === 0xe0 && d < 0xa0) || (c === 0xed && d > 0x9f) || (c === 0xf0 && d < 0x90) ||
      (c === 0xf4 && d > 0x8f)
    ) {
      return i;
    }
    i += n + 1;
  }
  return null;
}

/**
 * Where a write to `file` goes: the file a symbolic link names (configuration management often links the engine's
 * file to its own), so that the link stays a link.
 */
function target(file: string): string {
  try {
    if (Deno.lstatSync(file).isSymlink) return Deno.realPathSync(file);
  } catch { /* absent: written as named */ }
  return file;
}

/** Mode and owner of `file`, if it exists. */
function modeOf(file: string): { mode: number; uid: number; gid: number } | undefined {
  try {
    const s = Deno.statSync(file);
    return { mode: (s.mode ?? 0o644) & 0o7777, uid: s.uid ?? 0, gid: s.gid ?? 0 };
  } catch { // absent: no mode to copy
    return undefined;
  }
}

/** Whether `text` is a file gpuctl owns. */
export function owned(text: string | null): boolean {
  return text !== null && text.startsWith(OWNED_MARK);
}

/**
 * Applies the changes: each new text parsed back first (nothing is written unless all pass), the previous content of
 * an edited file kept as FILE.gpuctl-backup (once: the first backup is the user's own file), written atomically.
 * Returns one line per file changed.
 */
export function applyChanges(changes: readonly FileChange[]): string[] {
  for (const c of changes) if (c.after !== null) c.check?.(c.after);
  const out: string[] = [];
  for (const c of changes) {
    if (c.after === c.before) continue;
    if (c.after === null) {
      Deno.removeSync(c.file);
      const mark = readIfExists(createdMark(c.file));
      if (mark !== null) Deno.removeSync(createdMark(c.file));
      out.push(`${c.file}: removed`);
      if (mark?.includes(DIR_MADE)) {
        try {
          Deno.removeSync(c.file.slice(0, c.file.lastIndexOf("/"))); // only when empty
        } catch { /* something else is there now */ }
      }
      continue;
    }
    const file = target(c.file);
    // What gpuctl writes is as private as what it came from: the file itself, or (a new drop-in) the file it
    // carries settings of; a backup as private as the file it keeps.
    const like = modeOf(file) ?? (c.like !== undefined ? modeOf(target(c.like)) : undefined);
    if (c.before !== null && !owned(c.before) && !c.undo) {
      try {
        Deno.lstatSync(`${c.file}.gpuctl-backup`);
      } catch { // no backup yet: this is the first, kept once
        writeAtomic(`${c.file}.gpuctl-backup`, c.before, like ? { like } : {});
      }
    }
    const dir = file.slice(0, file.lastIndexOf("/")) || "/";
    let dirMade = false;
    try {
      Deno.statSync(dir);
    } catch { // absent: made below, and said so in the mark
      dirMade = true;
    }
    Deno.mkdirSync(dir, { recursive: true });
    writeAtomic(file, c.after, like ? { like } : {});
    if (c.before === null && !owned(c.after)) {
      writeAtomic(
        createdMark(c.file),
        `${OWNED_MARK}: ${c.file} did not exist before gpuctl configure wrote it${dirMade ? DIR_MADE : ""}\n`,
      );
    }
    if (c.restored) {
      Deno.removeSync(`${c.file}.gpuctl-backup`);
      out.push(`${c.file}: restored from ${c.file}.gpuctl-backup`);
    } else out.push(`${c.file}: ${c.before === null ? "written" : "updated"}`);
  }
  return out;
}

/**
 * Undo by backup: the user's file from FILE.gpuctl-backup when configuring it again (`redo`, each way it may have
 * been configured) gives what is there now — nothing else changed since — so undoing is restoring it, byte for
 * byte. `null` otherwise (the caller then removes gpuctl's part by an edit).
 */
export function undoByBackup(
  file: string,
  current: string,
  redo: (backup: string) => (string | null)[],
  same: (a: string, b: string) => boolean,
): string | null {
  const backup = readIfExists(`${file}.gpuctl-backup`);
  if (backup === null) return null;
  try {
    return redo(backup).some((r) => r !== null && same(r, current)) ? backup : null;
  } catch {
    return null; // the backup no longer configures cleanly: not this file's history
  }
}

/** Deep equality of parsed configuration values (objects, arrays, strings, numbers, bigints, booleans, dates). */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (a instanceof Date || b instanceof Date) {
    return a instanceof Date && b instanceof Date && a.toISOString() === b.toISOString();
  }
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a as object), kb = Object.keys(b as object);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    Object.hasOwn(b as object, k) &&
    sameValue((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])
  );
}
