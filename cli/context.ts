/**
 * What every command gets: its output streams, the global options, and the configuration. The config file is
 * read when the context opens, but a broken one fails only the command that uses it, so `--help` still works.
 * @module
 */
import { readConfig } from "../config/read.ts";
import { exists } from "../ffi/libc.ts";
import type { Config, LogLevel } from "../config/schema.ts";
import { type LogFormat, type Logger, logger, nullLogger } from "../log/log.ts";

export interface Globals {
  /** `--config FILE` or `$GPUCTL_CONFIG`. */
  configPath: string | undefined;
  /** `--log-level`, overriding the config's. */
  logLevel: LogLevel | undefined;
  /** `--debug` or `GPUCTL_DEBUG=1`: stack traces on errors. */
  debug: boolean;
  /** `--log-format`: how logs go to stderr when there is no logFile. */
  logFormat?: LogFormat;
}

const enc = new TextEncoder();

function writeAll(fd: { writeSync(p: Uint8Array): number }, text: string): void {
  let buf = enc.encode(text);
  while (buf.length > 0) buf = buf.subarray(fd.writeSync(buf));
}

/** The configuration, or why it could not be read. */
type Loaded = { ok: Config } | { error: unknown };

/** A command of the registry (`cli/commands.ts`), its module loaded when it runs. */
export interface Command {
  summary: string;
  /** Internal: not listed in the help. */
  hidden?: boolean;
  load: () => Promise<{ run(ctx: Context, args: string[]): Promise<number> | number; HELP?: string }>;
}

export class Context {
  /**
   * The command registry, given by the dispatcher: for commands that run or list other commands (NVIDIA's
   * command line, completion), without importing the registry that loads them.
   */
  commands: Readonly<Record<string, Command>> = {};
  #config: Loaded;
  #log: Logger | undefined;
  private constructor(readonly globals: Globals, readonly component: string, config: Loaded) {
    this.#config = config;
  }

  /** A context for `component`, its configuration read (see `config/read.ts`: the fast path for a valid file). */
  static async open(globals: Globals, component: string): Promise<Context> {
    let config: Loaded;
    try {
      const { config: c } = await readConfig(globals.configPath, exists);
      if (globals.logLevel !== undefined) c.logLevel = globals.logLevel;
      config = { ok: c };
    } catch (error) {
      config = { error };
    }
    return new Context(globals, component, config);
  }

  /** Writes to stdout. */
  out(text: string): void {
    writeAll(Deno.stdout, text);
  }

  /** Writes one `gpuctl: …` line to stderr (a detail of the error that follows), and to the log. */
  err(msg: string): void {
    writeAll(Deno.stderr, `gpuctl: ${msg}\n`);
    this.logged.error(msg);
  }

  /** Writes one `gpuctl: warning: …` line to stderr, and to the log. */
  warn(msg: string): void {
    writeAll(Deno.stderr, `gpuctl: warning: ${msg}\n`);
    this.logged.warn(msg);
  }

  /** The log for what was just written to stderr: none when the log is stderr itself (said once, not twice). */
  get logged(): Logger {
    const log = this.log;
    return this.config_?.logFile === null ? nullLogger : log;
  }

  /** The configuration, or undefined when it could not be read. */
  private get config_(): Config | undefined {
    return "ok" in this.#config ? this.#config.ok : undefined;
  }

  /** The configuration; throws the config file's error for a command that needs it. */
  get config(): Config {
    if ("error" in this.#config) throw this.#config.error;
    return this.#config.ok;
  }

  /** The logger; a no-op until the config has been loaded without error. */
  get log(): Logger {
    if (this.#log === undefined) {
      try {
        // Without a log file: to stderr for the service, and for a command whose log level was asked for; never
        // for the runtime and the hook, whose stderr the engine shows as the container's one-line error.
        const quiet = this.component === "runtime" || this.component === "hook";
        this.#log = logger(this.config.logFile, this.config.logLevel, this.component, {
          stderr: !quiet && (this.component === "serve" || this.globals.logLevel !== undefined),
          ...(this.globals.logFormat ? { format: this.globals.logFormat } : {}),
        });
      } catch { // a configuration that cannot be read logs nowhere; the command reports it
        return { debug() {}, info() {}, warn() {}, error() {} };
      }
    }
    return this.#log;
  }
}
