/**
 * Logging: JSON lines appended to `logFile`, filtered by `logLevel`. Writing a log never fails a command:
 * an unwritable log file is dropped silently after the first try.
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

/**
 * A logger writing JSON lines to `file` (`null`: to nothing), for `component` (e.g. `hook`). The file is opened
 * here, once, and stays open for the process: the hook goes on logging from inside a container's mount
 * namespace, where the path could name another file or none, and one open beats one per line.
 */
export function fileLogger(file: string | null, level: LogLevel, component: string): Logger {
  if (file === null) return nullLogger;
  const min = LOG_LEVELS.indexOf(level);
  let out: Deno.FsFile | null = null;
  try {
    out = Deno.openSync(file, { append: true, create: true, mode: 0o600 });
  } catch { /* an unwritable log never fails a command */ }
  const enc = new TextEncoder();
  const write = (lvl: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (out === null || LOG_LEVELS.indexOf(lvl) < min) return;
    const line = JSON.stringify({
      time: new Date().toISOString(),
      level: lvl,
      component,
      pid: Deno.pid,
      msg,
      ...fields,
    });
    try {
      // O_APPEND and one write(2) per line, so concurrent gpuctl processes do not interleave lines.
      out.writeSync(enc.encode(line + "\n"));
    } catch {
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
