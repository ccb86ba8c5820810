/**
 * gpuctl's entry point: `deno run -A cli/main.ts <args>`, or the compiled `gpuctl`.
 *
 * Dispatch is on the name it was invoked as (`gpuctl-runtime` → `runtime`, `nvidia-container-runtime-hook`
 * → `hook`), read from `/proc/self/cmdline`, then on the first argument.
 *
 * This module is the shim's hot path: containerd runs `gpuctl-runtime state|start|kill|delete …` several times
 * for every container, and each of those is only exec'd on to runc. So it loads only what that pass-through
 * needs (`cli/runtime.ts`), runs it, and imports the rest of the command line (`cli/dispatch.ts`) only for every
 * other call: a pass-through never evaluates modules it would not use.
 * @module
 */
import { ARGV0_COMMANDS } from "./commands.ts";
import { adoptLauncher } from "../version.ts";
import { passThrough } from "./runtime.ts";
import { finish } from "./finish.ts";

/** The basename gpuctl was invoked as: the first NUL-terminated field of `/proc/self/cmdline`. */
export function invokedAs(): string {
  try {
    // Read as text: Deno decodes it natively, where a first TextDecoder is set up in every start.
    const raw = Deno.readTextFileSync("/proc/self/cmdline");
    const end = raw.indexOf("\0");
    const argv0 = end < 0 ? raw : raw.slice(0, end);
    return argv0.slice(argv0.lastIndexOf("/") + 1);
  } catch { // no /proc: the name gpuctl answers to by default
    return "gpuctl";
  }
}

/** Runs gpuctl with `args` as invoked by `argv0`; returns the exit code (or never, having exec'd runc). */
export async function main(args: string[], argv0: string): Promise<number> {
  // Leave the module's top-level frame first. An error thrown while that frame is on the stack (a missing
  // config file is one, read on every start) makes V8 re-parse the whole bundle for the frame's source
  // position, on every shim call. After this hop, the stack holds only gpuctl's own functions.
  await null;
  adoptLauncher();
  const direct = ARGV0_COMMANDS[argv0];
  // `gpuctl-runtime <runc args>` or `gpuctl runtime <runc args>` (global options go the long way).
  if (direct === "runtime") passThrough(args);
  else if (direct === undefined && args[0] === "runtime") passThrough(args.slice(1));
  // Not a pass-through, or one the full command line must explain: it starts over from the arguments.
  return await (await import("./dispatch.ts")).dispatch(args, argv0);
}

if (import.meta.main) {
  // A natural exit, not Deno.exit(), and no top-level await: Deno writes this module's V8 code cache in the
  // background once it has run, and only a program that ends on its own waits for that write, which every later
  // start (the shim's exec'd pass-through included) then loads from. Every command is synchronous at heart and
  // leaves nothing pending; a GPU container's ends at once where a run has already left the cache (finish.ts).
  main(Deno.args, invokedAs()).then((code) => finish(code));
}
