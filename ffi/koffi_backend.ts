/**
 * The koffi backend: what gpuctl uses under Node, and a second implementation the tests hold the
 * `Deno.dlopen` one against. Loading koffi brings Node's module loader, so it is never the default under Deno, and it is
 * imported dynamically (also in the bundle) only when this backend is selected.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
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

const PARAM: Record<FfiType, string> = {
  i32: "int32_t",
  u32: "uint32_t",
  i64: "int64_t",
  u64: "uint64_t",
  pointer: "uint64_t",
  buffer: "void *",
  cstring: "const char *",
};
const RESULT: Record<FfiResult, string> = {
  i32: "int32_t",
  u32: "uint32_t",
  i64: "int64_t",
  u64: "uint64_t",
  pointer: "uint64_t",
  cstring: "const char *",
  void: "void",
};

type Koffi = typeof import("koffi").default;

function wrap(decl: Decls[string], fn: (...a: unknown[]) => unknown): (...a: unknown[]) => unknown {
  const strArgs = paramIndexes(decl, "cstring");
  return (...args: unknown[]) => {
    // koffi converts JS strings itself; refuse the NUL bytes it would silently truncate at.
    for (const i of strArgs) if (typeof args[i] === "string") cString(args[i] as string);
    return normalizeInteger(decl.result, fn(...args));
  };
}

/** Loads koffi and returns the backend over it. */
export async function createKoffiBackend(): Promise<Backend> {
  // A computed specifier: bundlers leave it alone, so no bundle of gpuctl ever contains koffi (or the Node
  // built-ins it imports, which would load Deno's Node compatibility on every start). Deno resolves it at run time
  // through deno.json's import map.
  // The artifact a host runs has no npm packages beside it, so no koffi: Deno.dlopen is its only backend.
  const specifier = ["ko", "ffi"].join("");
  let koffi: Koffi;
  try {
    koffi = (await import(specifier)).default;
  } catch (e) {
    throw new GpuctlError(
      "GPUCTL_FFI=koffi",
      "this gpuctl has no koffi backend (only gpuctl run from source with its npm packages has it); unset GPUCTL_FFI",
      1,
      { cause: e },
    );
  }
  return backendOver(koffi);
}

function backendOver(koffi: Koffi): Backend {
  return {
    name: "koffi",
    open<D extends Decls>(path: string, decls: D): Library<D> {
      let lib: ReturnType<typeof koffi.load>;
      try {
        lib = koffi.load(path);
      } catch (e) {
        // koffi says "Failed to load shared library: <dlerror without the path>"; restore dlerror's form.
        const msg = loaderReason(e instanceof Error ? e.message : String(e));
        const m = /^Failed to load shared library:\s*(.*)$/s.exec(msg);
        throw new LibraryLoadError(path, m ? (m[1]!.startsWith(path) ? m[1]! : `${path}: ${m[1]}`) : msg);
      }
      const symbols: Record<string, unknown> = {};
      for (const [key, d] of Object.entries(decls)) {
        try {
          const fn = lib.func(d.symbol ?? key, RESULT[d.result], d.params.map((p) => PARAM[p]));
          symbols[key] = wrap(d, fn as (...a: unknown[]) => unknown);
        } catch (e) {
          if (!d.optional) {
            lib.unload();
            throw new LibraryLoadError(path, e instanceof Error ? e.message : String(e));
          }
          symbols[key] = null;
        }
      }
      return { path, symbols: symbols as Symbols<D>, close: () => lib.unload() };
    },
    addressOf(buf: Uint8Array): bigint {
      return BigInt(koffi.address(buf));
    },
    read(addr: bigint, len: number): Uint8Array {
      if (addr === 0n) throw new TypeError("Cannot read from a NULL pointer");
      return new Uint8Array(koffi.view(addr, len)).slice();
    },
    readCString(addr: bigint): string {
      if (addr === 0n) throw new TypeError("Cannot read from a NULL pointer");
      return koffi.decode(addr, "char", -1) as string;
    },
  };
}
