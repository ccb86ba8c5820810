/**
 * The `Deno.dlopen` backend: the default on every hot path (the bench's FFI row times it against koffi).
 * @module
 */
import {
  type Backend,
  cString,
  type Decls,
  type FfiResult,
  type FfiType,
  type Library,
  LibraryLoadError,
  loaderReason,
  normalizeInteger,
  paramIndexes,
  type Symbols,
} from "./types.ts";

// Addresses are passed as pointer-sized integers: the same registers as a pointer on x86-64 and aarch64,
// and one representation (bigint) shared with the koffi backend.
const PARAM: Record<FfiType, Deno.NativeType> = {
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  pointer: "usize",
  buffer: "buffer",
  cstring: "buffer",
};
const RESULT: Record<FfiResult, Deno.NativeResultType> = {
  i32: "i32",
  u32: "u32",
  i64: "i64",
  u64: "u64",
  pointer: "usize",
  cstring: "pointer",
  void: "void",
};

function toCString(v: unknown): Uint8Array | null {
  return v === null || v === undefined ? null : cString(String(v));
}

function wrap(decl: Decls[string], fn: (...a: unknown[]) => unknown): (...a: unknown[]) => unknown {
  const strArgs = paramIndexes(decl, "cstring");
  const ptrArgs = paramIndexes(decl, "pointer");
  return (...args: unknown[]) => {
    for (const i of strArgs) args[i] = toCString(args[i]);
    for (const i of ptrArgs) args[i] = BigInt(args[i] as bigint);
    const r = fn(...args);
    if (decl.result === "cstring") {
      return r === null ? null : Deno.UnsafePointerView.getCString(r as Deno.PointerObject);
    }
    return normalizeInteger(decl.result, r);
  };
}

export const denoBackend: Backend = {
  name: "deno",
  open<D extends Decls>(path: string, decls: D): Library<D> {
    // The symbols are looked up as addresses (statics), and each function becomes an UnsafeFnPointer on first
    // use. Declaring them as dlopen functions instead compiles a fast-call trampoline for every one at load
    // time, which costs more than the few hundred calls gpuctl makes per container through the generic path.
    const statics: Record<string, Deno.ForeignStatic> = {};
    for (const [key, d] of Object.entries(decls)) {
      const name = d.symbol ?? key;
      statics[name] = { name, type: "pointer", ...(d.optional ? { optional: true } : {}) };
    }
    let lib: Deno.DynamicLibrary<Record<string, Deno.ForeignStatic>>;
    try {
      lib = Deno.dlopen(path, statics);
    } catch (e) {
      throw new LibraryLoadError(path, loaderReason(e instanceof Error ? e.message : String(e)));
    }
    const symbols: Record<string, unknown> = {};
    for (const [key, d] of Object.entries(decls)) {
      const address = lib.symbols[d.symbol ?? key] as Deno.PointerValue;
      if (address === null) {
        symbols[key] = null;
        continue;
      }
      Object.defineProperty(symbols, key, {
        enumerable: true,
        configurable: true,
        get() {
          const def: Deno.ForeignFunction = {
            parameters: d.params.map((p) => PARAM[p]),
            result: RESULT[d.result],
          };
          const fn = new Deno.UnsafeFnPointer(address as Deno.PointerObject<typeof def>, def);
          const f = wrap(d, (...a: unknown[]) => (fn.call as (...x: unknown[]) => unknown)(...a));
          Object.defineProperty(symbols, key, { value: f, enumerable: true });
          return f;
        },
      });
    }
    return { path, symbols: symbols as Symbols<D>, close: () => lib.close() };
  },
  addressOf(buf: Uint8Array): bigint {
    return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf as Uint8Array<ArrayBuffer>)));
  },
  read(addr: bigint, len: number): Uint8Array {
    const p = Deno.UnsafePointer.create(addr);
    if (p === null) throw new TypeError("Cannot read from a NULL pointer");
    return new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, len).slice(0));
  },
  readCString(addr: bigint): string {
    const p = Deno.UnsafePointer.create(addr);
    if (p === null) throw new TypeError("Cannot read from a NULL pointer");
    return Deno.UnsafePointerView.getCString(p);
  },
};
