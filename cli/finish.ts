/**
 * How a gpuctl process ends. A GPU container's gpuctl (the shim's `create`, the hooks) has written everything it
 * writes, synchronously, when its command returns; Deno's orderly shutdown after that (its runtime's threads, V8's
 * heap) is time the container waits for and nothing needs. Such a command says so ({@link mayEndAtOnce}), and the
 * process then ends with `_exit(2)` — but only once a run of this packed gpuctl has ended on its own
 * (`version.ts`'s mark): Deno writes the bundle's V8 code cache in the background after the bundle has run, and
 * only a run that ends on its own waits for that write, which every later start loads from.
 * @module
 */
import { codeCacheKept, markCodeCacheKept } from "../version.ts";
import { exists, libc } from "../ffi/libc.ts";

let atOnce = false;

/** Called by a command that has finished its work and left nothing pending: nothing is lost by ending at once. */
export function mayEndAtOnce(): void {
  atOnce = true;
}

/** What {@link finish} touches: the mark's check, and the end at once. */
export interface FinishIo {
  exists: (path: string) => boolean;
  endAtOnce: (code: number) => void;
}

const HOST: FinishIo = { exists, endAtOnce: (code) => libc()._exit(code) };

/**
 * Ends the process with `code`: at once where {@link mayEndAtOnce} was called and the code cache is kept; otherwise
 * on its own, leaving the mark that says a run has.
 */
export function finish(code: number, io: FinishIo = HOST): void {
  const kept = codeCacheKept(io.exists);
  if (atOnce && kept) io.endAtOnce(code);
  if (!kept) markCodeCacheKept();
  Deno.exitCode = code;
}
