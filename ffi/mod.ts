/**
 * Calling C from gpuctl: pick a backend, open a library from a set of declarations.
 *
 * ```ts
 * import { openLibrary } from "./mod.ts";
 * const lib = openLibrary("libc.so.6", { getpid: { params: [], result: "i32" } });
 * lib.symbols.getpid();
 * ```
 *
 * The backend is `Deno.dlopen` under Deno and koffi under Node; `GPUCTL_FFI=koffi` (read by the CLI,
 * which then calls {@link selectBackend}) forces koffi under Deno too.
 * @module
 */
import { denoBackend } from "./deno_backend.ts";
import type { Backend, Decls, Library } from "./types.ts";

export * from "./types.ts";

let koffi: Backend | null = null;
let current: Backend | null = typeof Deno !== "undefined" && typeof Deno.dlopen === "function"
  ? denoBackend
  : null;

/** Loads and selects a backend. koffi is imported only here, so nothing else pays for it. */
export async function selectBackend(name: "deno" | "koffi"): Promise<Backend> {
  if (name === "deno") {
    if (typeof Deno === "undefined") throw new Error("Cannot use the deno FFI backend outside Deno");
    current = denoBackend;
  } else {
    koffi ??= await (await import("./koffi_backend.ts")).createKoffiBackend();
    current = koffi;
  }
  return current;
}

/** The backend in use. */
export function backend(): Backend {
  if (current === null) throw new Error("No FFI backend selected: call selectBackend('koffi') under Node");
  return current;
}

/** Opens a shared library with the current backend. */
export function openLibrary<D extends Decls>(path: string, decls: D): Library<D> {
  return backend().open(path, decls);
}
