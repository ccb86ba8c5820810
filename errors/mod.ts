/**
 * The one error type the CLI prints as `gpuctl: <what>: <why>`.
 *
 * Lower layers throw a {@link GpuctlError} when they know what failed and what to do about it;
 * any other error is reported by the CLI with its message, and with its stack only when debugging.
 * @module
 */

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

/**
 * The one line the CLI prints for an error, without the `gpuctl: ` prefix: its first line, control characters
 * escaped (they would reach a terminal, docker's output and the log), at most {@link MAX_LINE} characters.
 */
export function describe(e: unknown): string {
  const text = e instanceof Error ? (e.message.split("\n")[0] ?? e.name) : String(e).split("\n")[0]!;
  const line = text.replace(UNPRINTABLE, escape);
  return line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}...` : line;
}
