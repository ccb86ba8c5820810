/**
 * Logging: JSON lines appended to `logFile`, filtered by `logLevel`; without a `logFile`, the long-running
 * `gpuctl serve` (and any command given `--log-level`) logs to stderr instead — JSON lines where stderr is not a
 * terminal (systemd's journal, a container's log), readable lines on a terminal, `--log-format` to choose.
 * Writing a log never fails a command: an unwritable log is dropped silently after the first try.
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "../config/schema.ts";

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything. */
export const nullLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** One line for a record, as JSON or as words for a terminal. */
function formatLine(
  format: LogFormat,
  component: string,
  lvl: LogLevel,
  msg: string,
  fields?: Record<string, unknown>,
): string {
  if (format === "json") {
    return JSON.stringify({
      time: new Date().toISOString(),
      level: lvl,
      component,
      pid: Deno.pid,
      msg,
      ...fields,
    });
  }
  const rest = Object.entries(fields ?? {}).map(([k, v]) =>
    ` ${k}=${typeof v === "string" ? v : JSON.stringify(v)}`
  );
  return `gpuctl ${component}: ${lvl}: ${msg}${rest.join("")}`;
}

/**
 * A logger writing each line with one `write` call to `sink` (`null`: nowhere); a sink that fails once is dropped:
 * writing a log never fails a command.
 */
function sinkLogger(
  sink: { writeSync(b: Uint8Array): number } | null,
  level: LogLevel,
  component: string,
  format: LogFormat,
): Logger {
  const min = LOG_LEVELS.indexOf(level);
  const enc = new TextEncoder();
  let out = sink;
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (out === null || LOG_LEVELS.indexOf(lvl) < min) return;
    try {
      out.writeSync(enc.encode(formatLine(format, component, lvl, msg, fields) + "\n"));
    } catch { // a log that cannot be written is dropped, never failing a command
      out = null;
    }
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
  };
}

/**
 * A logger writing JSON lines to `file` (`null`: to nothing), for `component` (e.g. `hook`). The file is opened
 * here, once, and stays open for the process: the hook goes on logging from inside a container's mount
 * namespace, where the path could name another file or none, and one open beats one per line. O_APPEND and one
 * write(2) per line, so concurrent gpuctl processes do not interleave lines.
 */
export function fileLogger(file: string | null, level: LogLevel, component: string): Logger {
  if (file === null) return nullLogger;
  let out: Deno.FsFile | null = null;
  try {
    out = Deno.openSync(file, { append: true, create: true, mode: 0o600 });
  } catch { /* an unwritable log never fails a command */ }
  return out === null ? nullLogger : sinkLogger(out, level, component, "json");
}

export type LogFormat = "text" | "json";

/** A logger writing to stderr, in `format` (default: JSON lines unless stderr is a terminal). */
export function stderrLogger(level: LogLevel, component: string, format?: LogFormat): Logger {
  return sinkLogger(Deno.stderr, level, component, format ?? (Deno.stderr.isTerminal() ? "text" : "json"));
}

/** The logger for `component`: the log file when there is one; else stderr when `stderr` says so; else none. */
export function logger(
  file: string | null,
  level: LogLevel,
  component: string,
  o: { stderr?: boolean; format?: LogFormat } = {},
): Logger {
  if (file !== null) return fileLogger(file, level, component);
  if (o.stderr) return stderrLogger(level, component, o.format);
  return nullLogger;
}

/** When the current request began, for `start` (see {@link phases}); `gpuctl serve` moves it per request. */
let origin = 0;

/** Makes `start` in later {@link phases} count from `at`. */
export function startRequest(at: number): void {
  origin = at;
}

/**
 * Phase durations for a log line, in ms to a tenth. By convention `start` is `performance.now()` when the work
 * began: the time since the process started, Deno's own start-up included (in `gpuctl serve`: since the request
 * arrived).
 */
export function phases(ms: Record<string, number>, from = origin): Record<string, number> {
  return Object.fromEntries(
    Object.entries(ms).map(([k, v]) => [k, Math.round((k === "start" ? v - from : v) * 10) / 10]),
  );
}
