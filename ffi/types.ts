/**
 * One vocabulary for C function declarations, mapped by each backend (`Deno.dlopen`, koffi).
 *
 * Every C function gpuctl calls is declared once, as a {@link FnDecl}. The value types are the
 * ones a backend can pass identically on x86-64 and aarch64 Linux:
 *
 * | type      | C                          | JS in                   | JS out          |
 * |-----------|----------------------------|-------------------------|-----------------|
 * | `i32`     | int                        | number                  | number          |
 * | `u32`     | unsigned int               | number                  | number          |
 * | `i64`     | long long, long, ssize_t   | number \| bigint        | number          |
 * | `u64`     | unsigned long long, size_t | number \| bigint        | bigint          |
 * | `pointer` | an address (handle, char*) | bigint (0n is NULL)     | bigint          |
 * | `buffer`  | a pointer into JS memory   | Uint8Array \| null      | –               |
 * | `cstring` | const char *               | string \| null          | string \| null  |
 *
 * @module
 */

/** A value type in a declaration. */
export type FfiType = "i32" | "u32" | "i64" | "u64" | "pointer" | "buffer" | "cstring";
/** A result type in a declaration. */
export type FfiResult = Exclude<FfiType, "buffer"> | "void";

/** One C function. `symbol` lets several declarations share one C symbol (e.g. `syscall`). */
export interface FnDecl {
  readonly params: readonly FfiType[];
  readonly result: FfiResult;
  /** The C symbol; defaults to the declaration's key. */
  readonly symbol?: string;
  /** A missing symbol becomes `null` instead of failing the load (NVML `_v2` variants). */
  readonly optional?: boolean;
}

/** A set of declarations, keyed by the name JS code calls them by. */
export type Decls = Readonly<Record<string, FnDecl>>;

/** The JS type of a parameter. */
export type ParamJs<T extends FfiType> = T extends "i32" | "u32" ? number
  : T extends "i64" | "u64" ? number | bigint
  : T extends "pointer" ? bigint
  : T extends "buffer" ? Uint8Array | null
  : T extends "cstring" ? string | null
  : never;

/** The JS type of a result. */
export type ResultJs<T extends FfiResult> = T extends "void" ? void
  : T extends "i32" | "u32" | "i64" ? number
  : T extends "u64" | "pointer" ? bigint
  : T extends "cstring" ? string | null
  : never;

type ParamsJs<P extends readonly FfiType[]> = {
  [K in keyof P]: P[K] extends FfiType ? ParamJs<P[K]> : never;
};

/** The callable for one declaration. */
export type FnJs<D extends FnDecl> = (...args: ParamsJs<D["params"]>) => ResultJs<D["result"]>;

/** The callables for a set of declarations; optional ones may be `null`. */
export type Symbols<D extends Decls> = {
  readonly [K in keyof D]: D[K]["optional"] extends true ? FnJs<D[K]> | null : FnJs<D[K]>;
};

/** An opened shared library. */
export interface Library<D extends Decls> {
  readonly path: string;
  readonly symbols: Symbols<D>;
  close(): void;
}

/** A way of calling C. */
export interface Backend {
  readonly name: "deno" | "koffi";
  /** Opens a library; throws {@link LibraryLoadError} with the loader's message. */
  open<D extends Decls>(path: string, decls: D): Library<D>;
  /** The address of a JS buffer, for building pointer arrays (argv, envp, iovecs). */
  addressOf(buf: Uint8Array): bigint;
  /** Copies `len` bytes from native memory. */
  read(addr: bigint, len: number): Uint8Array;
  /** Reads a NUL-terminated string from native memory. */
  readCString(addr: bigint): string;
}

/** A shared library could not be loaded; `reason` is the dynamic loader's own message. */
export class LibraryLoadError extends Error {
  constructor(readonly library: string, readonly reason: string) {
    super(`${library} could not be loaded (${reason})`);
    this.name = "LibraryLoadError";
  }
}

/** Encodes a JS string as a NUL-terminated C string; refuses embedded NULs (they would truncate a path). */
export function cString(s: string): Uint8Array {
  if (s.includes("\0")) {
    throw new TypeError(`Cannot pass a string with a NUL byte to C: ${JSON.stringify(s)}`);
  }
  return new TextEncoder().encode(s + "\0");
}

/** The positions of parameters of one type in a declaration. */
export function paramIndexes(decl: FnDecl, type: FfiType): number[] {
  return decl.params.map((p, i) => (p === type ? i : -1)).filter((i) => i >= 0);
}

/** A backend's raw integer result in the shared JS representation (see the table above). */
export function normalizeInteger(result: FfiResult, r: unknown): unknown {
  switch (result) {
    case "i64":
      return Number(r);
    case "u64":
    case "pointer":
      return BigInt(r as number | bigint);
    default:
      return r;
  }
}

/** Decodes a C string held in a buffer, up to its first NUL. */
export function fromCBuffer(buf: Uint8Array): string {
  const end = buf.indexOf(0);
  return new TextDecoder().decode(end < 0 ? buf : buf.subarray(0, end));
}

/** Shortens a loader message like "Could not open library: /x.so: cannot open ..." to the dlerror text. */
export function loaderReason(message: string): string {
  return message.replace(/^(?:Could not open library:\s*)+/i, "").trim();
}
