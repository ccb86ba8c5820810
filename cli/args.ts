/**
 * Command-line parsing for commands off the hot path, over `node:util` `parseArgs`, with gpuctl's
 * usage errors (exit 2, one line). `node:util` is imported on first use: a static import would be hoisted
 * to the top of the bundle and cost every gpuctl start (the runtime shim's pass-through included) ~15 ms.
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import { UsageError } from "../errors/mod.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` strictly; an unknown option or a missing value is a {@link UsageError} naming it. */
export async function parse<O extends Options>(
  command: string,
  args: string[],
  options: O,
  positionals = false,
) {
  const { parseArgs } = await import("node:util");
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: positionals });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "").replace(/'/g, "");
    throw new UsageError(command, `${msg} (see 'gpuctl ${command} --help')`);
  }
}
