/**
 * What every command gets: its output streams, the global options, and the configuration, loaded on
 * first use so that `--help` works even when the config file is broken.
 * @module
 */
import { type Config, loadConfig, type LogLevel } from "../config/config.ts";
import { fileLogger, type Logger } from "../log/log.ts";

export interface Globals {
  /** `--config FILE` or `$GPUCTL_CONFIG`. */
  configPath: string | undefined;
  /** `--log-level`, overriding the config's. */
  logLevel: LogLevel | undefined;
  /** `--debug` or `GPUCTL_DEBUG=1`: stack traces on errors. */
  debug: boolean;
}

const enc = new TextEncoder();

function writeAll(fd: { writeSync(p: Uint8Array): number }, text: string): void {
  let buf = enc.encode(text);
  while (buf.length > 0) buf = buf.subarray(fd.writeSync(buf));
}

export class Context {
  #config: Config | undefined;
  #log: Logger | undefined;
  constructor(readonly globals: Globals, readonly component: string) {}

  /** Writes to stdout. */
  out(text: string): void {
    writeAll(Deno.stdout, text);
  }

  /** Writes one `gpuctl: warning: …` line to stderr, and to the log. */
  warn(msg: string): void {
    writeAll(Deno.stderr, `gpuctl: warning: ${msg}\n`);
    this.log.warn(msg);
  }

  get config(): Config {
    if (this.#config === undefined) {
      const { config } = loadConfig(this.globals.configPath);
      if (this.globals.logLevel !== undefined) config.logLevel = this.globals.logLevel;
      this.#config = config;
    }
    return this.#config;
  }

  /** The logger; a no-op until the config has been loaded without error. */
  get log(): Logger {
    if (this.#log === undefined) {
      try {
        this.#log = fileLogger(this.config.logFile, this.config.logLevel, this.component);
      } catch {
        return { debug() {}, info() {}, warn() {}, error() {} };
      }
    }
    return this.#log;
  }
}
