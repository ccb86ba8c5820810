/**
 * Command-line parsing for commands off the hot path, over `node:util` `parseArgs`, with gpuctl's
 * usage errors (exit 2, one line). `node:util` is imported on first use: a static import would be hoisted
 * to the top of the bundle and load Node's compatibility layer in every gpuctl start (the runtime shim's
 * pass-through included).
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

/**
 * NVIDIA's flag names (nvidia-ctk's) rewritten as gpuctl's: `--from` and `--from=VALUE` become `--to`, `--to=VALUE`;
 * a boolean given as `--flag=true` or `--flag=false` (as NVIDIA's parser allows) becomes `--flag`, or nothing.
 * Arguments after `--` are left as they are.
 */
export function nvidiaFlags(
  args: readonly string[],
  names: Readonly<Record<string, string>>,
  booleans: readonly string[] = [],
): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--") {
      out.push(...args.slice(i));
      break;
    }
    const m = /^--([^=]+)(?:=(.*))?$/s.exec(a);
    if (m === null) {
      out.push(a);
      continue;
    }
    const name = names[m[1]!] ?? m[1]!;
    if (booleans.includes(name) && m[2] !== undefined) {
      if (/^(1|t|true|yes)$/i.test(m[2])) out.push(`--${name}`);
      else if (!/^(0|f|false|no)$/i.test(m[2])) {
        throw new UsageError(`--${m[1]}`, `is true or false, not "${m[2]}"`);
      }
      continue;
    }
    out.push(m[2] === undefined ? `--${name}` : `--${name}=${m[2]}`);
  }
  return out;
}
