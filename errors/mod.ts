/**
 * The one error type the CLI prints as `gpuctl: <what>: <why>`.
 *
 * Lower layers throw a {@link GpuctlError} when they know what failed and what to do about it;
 * any other error is reported by the CLI with its message, and with its stack only when debugging.
 * @module
 */

/** An error with a subject (`what`) and a reason (`why`) that already says what to do. */
export class GpuctlError extends Error {
  constructor(readonly what: string, readonly why: string, readonly exitCode = 1) {
    super(`${what}: ${why}`);
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

/** The one line the CLI prints for an error, without the `gpuctl: ` prefix. */
export function describe(e: unknown): string {
  if (e instanceof Error) return e.message.split("\n")[0] ?? e.name;
  return String(e);
}
