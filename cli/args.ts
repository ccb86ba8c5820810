/**
 * Command-line parsing for commands off the hot path, over `node:util` `parseArgs`, with gpuctl's
 * usage errors (exit 2, one line).
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { UsageError } from "../errors/mod.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** Parses `args` strictly; an unknown option or a missing value is a {@link UsageError} naming it. */
export function parse<O extends Options>(command: string, args: string[], options: O, positionals = false) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: positionals });
  } catch (e) {
    const msg = (e as Error).message.replace(/\. To specify a positional argument.*$/s, "").replace(/'/g, "");
    throw new UsageError(command, `${msg} (see 'gpuctl ${command} --help')`);
  }
}
