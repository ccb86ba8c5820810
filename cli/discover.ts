/**
 * `gpuctl __discover SOURCE` (internal): the inventory as JSON, for a parent gpuctl that runs NVML at arm's
 * length (`devices/isolated.ts`). Each NVML call is announced on stderr before it is made.
 * @module
 */
import { discover, type SourceChoice } from "../devices/discover.ts";
import type { Context } from "./context.ts";
import type { Config } from "../config/schema.ts";

export function run(ctx: Context, args: string[]): number {
  const source = (args[0] ?? "auto") as SourceChoice;
  const warnings: string[] = [];
  const enc = new TextEncoder();
  // The parent's configuration, as it has it (see devices/isolated.ts); else this process's own.
  let config = args.includes("--config-on-stdin") ? null : ctx.config;
  if (config === null) {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 << 10);
    for (let n; (n = Deno.stdin.readSync(buf)) !== null && n > 0;) chunks.push(buf.slice(0, n));
    config = JSON.parse(new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])))) as Config;
  }
  const inventory = discover(config, source, (m) => warnings.push(m), (fn) => {
    Deno.stderr.writeSync(enc.encode(`call ${fn}\n`));
  });
  ctx.out(JSON.stringify({ inventory, warnings }));
  return 0;
}
