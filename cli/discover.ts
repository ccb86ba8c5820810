/**
 * `gpuctl __discover SOURCE` (internal): the inventory as JSON, for a parent gpuctl that runs NVML at arm's
 * length (`devices/isolated.ts`). Each NVML call is announced on stderr before it is made.
 * @module
 */
import { discover, type SourceChoice } from "../devices/discover.ts";
import type { Context } from "./context.ts";

export function run(ctx: Context, args: string[]): number {
  const source = (args[0] ?? "auto") as SourceChoice;
  const warnings: string[] = [];
  const enc = new TextEncoder();
  const inventory = discover(ctx.config, source, (m) => warnings.push(m), (fn) => {
    Deno.stderr.writeSync(enc.encode(`call ${fn}\n`));
  });
  ctx.out(JSON.stringify({ inventory, warnings }));
  return 0;
}
