/**
 * gpuctl's command line past the entry point: global options, help, the command table, and the one-line
 * errors (`gpuctl: <what>: <why>`, exit non-zero). `cli/main.ts` hands every call here but the shim's
 * pass-through, which it runs before any of this is loaded.
 * @module
 */
import { describe, GpuctlError, UsageError } from "../errors/mod.ts";
import { ARGV0_COMMANDS, COMMANDS } from "./commands.ts";
import { Context, type Globals } from "./context.ts";
import { VERSION, versionText } from "../version.ts";
import { LOG_LEVELS, type LogLevel, SCHEMA } from "../config/schema.ts";
import { envConfigPath } from "../config/read.ts";
import { GLOBAL_OPTIONS } from "./globals.ts";

export function usage(): string {
  const shown = Object.entries(COMMANDS).filter(([, c]) => !c.hidden).sort(([a], [b]) => (a < b ? -1 : 1));
  const width = Math.max(...shown.map(([n]) => n.length)) + 1;
  const cmds = shown.map(([n, c]) => `  ${n.padEnd(width)} ${c.summary}`).join("\n");
  const w = Math.max(...Object.keys(SCHEMA).map((k) => k.length));
  const keys = Object.entries(SCHEMA).map(([k, s]) =>
    `  ${k.padEnd(w)}  ${s.doc} (default ${JSON.stringify(s.default)})`
  )
    .join("\n");
  return `gpuctl ${VERSION}: NVIDIA GPUs in containers, from one executable

Usage: gpuctl [global options] <command> [options]

Commands:
${cmds}

${GLOBAL_OPTIONS}
Configuration keys:
${keys}

'gpuctl config' shows the effective values and where each came from; 'gpuctl config --default' a commented file.
Invoked as gpuctl-runtime or nvidia-container-runtime-hook, gpuctl runs that command directly.
`;
}

interface Parsed {
  globals: Globals;
  command: string | undefined;
  rest: string[];
  help: boolean;
  version: boolean;
}

/** The global options as the environment sets them, before any command-line option. */
function envGlobals(env: (k: string) => string | undefined): Globals {
  return { configPath: envConfigPath(env), logLevel: undefined, debug: env("GPUCTL_DEBUG") === "1" };
}

/** Parses the global options up to the command name; everything after it belongs to the command. */
export function parseGlobals(args: string[], env: (k: string) => string | undefined): Parsed {
  const globals = envGlobals(env);
  let help = false, version = false, i = 0;
  const value = (flag: string, inline: string | undefined): string => {
    if (inline !== undefined) return inline;
    const v = args[++i];
    if (v === undefined) throw new UsageError(flag, "needs a value");
    return v;
  };
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("-")) break;
    const eq = a.indexOf("=");
    const [flag, inline] = a.startsWith("--") && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    switch (flag) {
      case "--config":
        globals.configPath = value(flag, inline);
        break;
      case "--log-level": {
        const v = value(flag, inline);
        if (!(LOG_LEVELS as readonly string[]).includes(v)) {
          throw new UsageError("--log-level", `unknown level "${v}" (use ${LOG_LEVELS.join(", ")})`);
        }
        globals.logLevel = v as LogLevel;
        break;
      }
      case "--log-format": {
        const v = value(flag, inline);
        if (v !== "text" && v !== "json") {
          throw new UsageError("--log-format", `unknown format "${v}" (text or json)`);
        }
        globals.logFormat = v;
        break;
      }
      case "--debug":
        globals.debug = true;
        break;
      case "-h":
      case "--help":
        help = true;
        break;
      case "-v":
      case "--version":
        version = true;
        break;
      case "--":
        i++;
        return { globals, command: args[i], rest: args.slice(i + 1), help, version };
      default:
        throw new UsageError(a, "unknown global option (see 'gpuctl --help')");
    }
  }
  return { globals, command: args[i], rest: args.slice(i + 1), help, version };
}

/** Runs gpuctl with `args` as invoked by `argv0`; returns the exit code. */
export async function dispatch(args: string[], argv0: string): Promise<number> {
  const env = (k: string) => Deno.env.get(k);
  const direct = ARGV0_COMMANDS[argv0];
  let globals = envGlobals(env);
  let ctx: Context | undefined;
  try {
    let command: string | undefined, rest: string[];
    if (direct !== undefined) {
      // Invoked as a link: every argument is the command's own (runc's flags, "prestart").
      command = direct;
      rest = args;
    } else {
      const p = parseGlobals(args, env);
      globals = p.globals;
      if (p.version) {
        Deno.stdout.writeSync(new TextEncoder().encode(versionText()));
        return 0;
      }
      if (p.command === "help" && p.rest[0] !== undefined) {
        // `gpuctl help CMD`: that command's help.
        p.command = p.rest[0];
        p.rest = ["--help"];
      }
      if (p.help || p.command === undefined || p.command === "help") {
        const text = usage();
        (p.command === undefined && !p.help ? Deno.stderr : Deno.stdout).writeSync(
          new TextEncoder().encode(text),
        );
        return p.command === undefined && !p.help ? 2 : 0;
      }
      command = p.command;
      rest = p.rest;
    }
    const cmd = COMMANDS[command];
    if (cmd === undefined) {
      const names = Object.entries(COMMANDS).filter(([, c]) => !c.hidden).map(([n]) => n).sort();
      throw new UsageError(command, `unknown command (commands: ${names.join(", ")})`);
    }
    if (env("GPUCTL_FFI") === "koffi") await (await import("../ffi/mod.ts")).selectBackend("koffi");
    ctx = await Context.open(globals, command);
    ctx.commands = COMMANDS;
    return await (await cmd.load()).run(ctx, rest);
  } catch (e) {
    // A reader that went away (`gpuctl config | head -1`): end quietly, as a tool killed by SIGPIPE does.
    if (e instanceof Deno.errors.BrokenPipe) return 128 + 13;
    const line = describe(e);
    Deno.stderr.writeSync(new TextEncoder().encode(`gpuctl: ${line}\n`));
    if (globals.debug && e instanceof Error && e.stack) {
      Deno.stderr.writeSync(new TextEncoder().encode(e.stack + "\n"));
    }
    ctx?.logged.error(line);
    return e instanceof GpuctlError ? e.exitCode : 1;
  }
}
