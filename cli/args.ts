/**
 * Command-line parsing for gpuctl's commands, with its usage errors (exit 2, one line).
 *
 * The parser is `node:util` `parseArgs`'s strict mode, for the part of its configuration gpuctl uses (string and
 * boolean options, `multiple`, one-letter `short`, positionals allowed or not), written here rather than imported:
 * loading `node:util` brings up Deno's Node compatibility layer, which cost every command that parses its arguments
 * (`cdi generate`, `info`, `list`, …) about a third of its own time. What it accepts, what it returns and the error
 * it gives are parseArgs's, held by a differential test against `node:util` over random command lines
 * (tests/unit/args_test.ts).
 * @module
 */
import type { ParseArgsConfig } from "node:util";
import { UsageError } from "../errors/mod.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;

/** What {@link parseArgv} returns for `options`: each option's value (a list for `multiple`), and the positionals. */
export type Parsed<O extends Options> = {
  values: {
    [K in keyof O]?: O[K]["type"] extends "string" ? (O[K]["multiple"] extends true ? string[] : string)
      : (O[K]["multiple"] extends true ? boolean[] : boolean);
  };
  positionals: string[];
};

/** A command-line error, with parseArgs's wording. */
export class ArgvError extends TypeError {
  override name = "TypeError";
}

interface Token {
  name: string;
  rawName: string;
  value: string | undefined;
  inline: boolean;
}

/**
 * Parses `args` as `parseArgs({ args, options, strict: true, allowPositionals })` does: `--name value`,
 * `--name=value`, `-n value`, `-nvalue`, grouped one-letter booleans (`-ih`), `--` ending the options. An unknown
 * option, a string option without its value or with one that looks like an option, a boolean given a value, or a
 * positional where none are allowed is an {@link ArgvError} with parseArgs's message.
 */
export function parseArgv<O extends Options>(
  args: readonly string[],
  options: O,
  allowPositionals: boolean,
): Parsed<O> {
  const own = (name: string) => Object.hasOwn(options, name) ? options[name] : undefined;
  const typeOf = (name: string) => own(name)?.type;
  const longFor = (short: string) => Object.entries(options).find(([, o]) => o.short === short)?.[0] ?? short;
  const values: Record<string, unknown> = Object.create(null);
  const positionals: string[] = [];
  const option = (t: Token) => {
    const o = own(t.name);
    if (o === undefined) {
      const hint = allowPositionals
        ? `. To specify a positional argument starting with a '-', place it at the end of the command after '--', as in '-- ${
          JSON.stringify(t.rawName)
        }`
        : "";
      throw new ArgvError(`Unknown option '${t.rawName}'${hint}`);
    }
    const both = `${o.short ? `-${o.short}, ` : ""}--${t.name}`;
    if (o.type === "string" && t.value === undefined) {
      throw new ArgvError(`Option '${both} <value>' argument missing`);
    }
    if (o.type === "boolean" && t.value !== undefined) {
      throw new ArgvError(`Option '${both}' does not take an argument`);
    }
    if (!t.inline && t.value !== undefined && t.value.length > 1 && t.value[0] === "-") {
      const example = t.rawName.startsWith("--")
        ? `'${t.rawName}=-XYZ'`
        : `'--${t.name}=-XYZ' or '${t.rawName}-XYZ'`;
      throw new ArgvError(
        `Option '${t.rawName}' argument is ambiguous.\nDid you forget to specify the option argument for '${t.rawName}'?\nTo specify an option argument starting with a dash use ${example}.`,
      );
    }
    const v = t.value ?? true;
    if (o.multiple) ((values[t.name] ??= []) as unknown[]).push(v);
    else values[t.name] = v;
  };
  const positional = (v: string) => {
    if (!allowPositionals) {
      throw new ArgvError(`Unexpected argument '${v}'. This command does not take positional arguments`);
    }
    positionals.push(v);
  };
  const rest = [...args];
  while (rest.length > 0) {
    const arg = rest.shift()!;
    if (arg === "--") {
      rest.splice(0).forEach(positional);
      break;
    }
    const dash1 = arg.length >= 2 && arg[0] === "-" && arg[1] !== "-";
    if (dash1 && arg.length === 2) {
      // -n, and its value from the next argument, whatever it is
      const name = longFor(arg[1]!);
      const value = typeOf(name) === "string" && rest.length > 0 ? rest.shift() : undefined;
      option({ name, rawName: arg, value, inline: false });
    } else if (dash1 && typeOf(longFor(arg[1]!)) !== "string") {
      // -abc: each letter its own option, until one that takes the rest as its value
      const expanded: string[] = [];
      for (let i = 1; i < arg.length; i++) {
        if (typeOf(longFor(arg[i]!)) !== "string" || i === arg.length - 1) expanded.push(`-${arg[i]}`);
        else {
          expanded.push(`-${arg[i]}${arg.slice(i + 1)}`);
          break;
        }
      }
      rest.unshift(...expanded);
    } else if (dash1) {
      option({ name: longFor(arg[1]!), rawName: `-${arg[1]}`, value: arg.slice(2), inline: true });
    } else if (arg.length > 2 && arg.startsWith("--")) {
      const eq = arg.indexOf("=", 3);
      if (eq < 0) {
        const name = arg.slice(2);
        const value = typeOf(name) === "string" && rest.length > 0 ? rest.shift() : undefined;
        option({ name, rawName: arg, value, inline: false });
      } else {
        const name = arg.slice(2, eq);
        option({ name, rawName: `--${name}`, value: arg.slice(eq + 1), inline: true });
      }
    } else positional(arg);
  }
  return { values: values as Parsed<O>["values"], positionals };
}

/** Parses `args` strictly; an unknown option or a missing value is a {@link UsageError} naming it. */
export function parse<O extends Options>(
  command: string,
  args: string[],
  options: O,
  positionals = false,
): Parsed<O> {
  try {
    return parseArgv(args, options, positionals);
  } catch (e) {
    if (!(e instanceof ArgvError)) throw e;
    const msg = e.message.replace(/\. To specify a positional argument.*$/s, "").replace(/'/g, "");
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
