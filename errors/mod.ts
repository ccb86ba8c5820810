/**
 * The one error type the CLI prints as `gpuctl: <what>: <why>`.
 *
 * Lower layers throw a {@link GpuctlError} when they know what failed and what to do about it;
 * any other error is reported by the CLI with its message, and with its stack only when debugging.
 * @module
 */
import { EACCES, EEXIST, EISDIR, ENOENT, ENOSPC, ENOTDIR, ENOTEMPTY, EPERM, EROFS } from "./errno.ts";

/** An error with a subject (`what`) and a reason (`why`) that already says what to do. */
export class GpuctlError extends Error {
  constructor(
    readonly what: string,
    readonly why: string,
    readonly exitCode = 1,
    options: { cause?: unknown } = {},
  ) {
    super(`${what}: ${why}`, options);
    this.name = "GpuctlError";
  }
}

/** A bad command line: exit code 2, like other Unix tools. */
export class UsageError extends GpuctlError {
  constructor(what: string, why: string) {
    super(what, why, 2);
    this.name = "UsageError";
  }
}

/** Characters never printed raw: C0/C1 controls, DEL, and the invisible or direction-changing ones. */
// deno-lint-ignore no-control-regex
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/g;
const escape = (c: string) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`;

/**
 * An untrusted value (an id from the container's environment, a path from its image) for a one-line message:
 * quoted, with control and invisible characters escaped, and cut at `max` characters.
 */
export function quote(v: string, max = 80): string {
  const cut = v.length > max ? `${v.slice(0, max)}...` : v;
  return `"${cut.replace(/["\\]/g, (c) => `\\${c}`).replace(UNPRINTABLE, escape)}"`;
}

/** The most characters of an error line the CLI prints (an attacker's value is never dumped at length). */
export const MAX_LINE = 1000;

/** What to do about an OS error, by errno. */
const OS_HINTS: Record<number, string> = {
  [EPERM]: "run as root, or choose a path you may write",
  [EACCES]: "run as root, or choose a path you may write",
  [EROFS]: "a read-only file system: choose another path",
  [ENOENT]: "a directory on the way does not exist",
  [ENOTDIR]: "a part of the path is not a directory",
  [EISDIR]: "it is a directory: name a file",
  [ENOSPC]: "the file system is full",
  [EEXIST]: "it exists already",
  [ENOTEMPTY]: "the directory is not empty",
};

/** Deno's form of an OS error: `Permission denied (os error 13): open '/path'`. */
const OS_ERROR = /^(.+?) \(os error (\d+)\)(?:: (\w+) '([^']*)'(?: -> '([^']*)')?)?$/;

/** An OS error in words, lower case, with what to do: `permission denied (run as root, …)`. */
export function osWords(e: unknown): string {
  const m = e instanceof Error ? OS_ERROR.exec(e.message.split("\n")[0] ?? "") : null;
  if (m === null) return e instanceof Error ? e.message.split("\n")[0]! : String(e);
  const hint = OS_HINTS[Number(m[2])];
  return `${m[1]!.charAt(0).toLowerCase()}${m[1]!.slice(1)}${hint ? ` (${hint})` : ""}`;
}

/**
 * The one line the CLI prints for an error, without the `gpuctl: ` prefix: its first line, control characters
 * escaped (they would reach a terminal, docker's output and the log), at most {@link MAX_LINE} characters. An
 * OS error is said in words, naming the path first: `/etc/x: cannot open: permission denied (run as root, …)`.
 */
export function describe(e: unknown): string {
  const os = e instanceof Error && !(e instanceof GpuctlError)
    ? OS_ERROR.exec(e.message.split("\n")[0] ?? "")
    : null;
  const text = os !== null && os[4] !== undefined
    ? `${os[4]}: cannot ${os[3] === "readfile" ? "read" : os[3] === "writefile" ? "write" : os[3]}: ${
      osWords(e)
    }`
    : e instanceof Error
    ? (e.message.split("\n")[0] ?? e.name)
    : String(e).split("\n")[0]!;
  const line = text.replace(UNPRINTABLE, escape);
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}...` : line;
}
