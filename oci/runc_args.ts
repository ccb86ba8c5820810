/**
 * runc's command line, as a shim sees it: `runc [global options] <command> [command options] <id>`.
 * The shim needs only the command, the bundle (`--bundle`/`-b`, default the working directory), and the
 * `--log`/`--log-format` runc will use, so that its own errors reach the same file.
 * @module
 */
import { libc, X_OK } from "../ffi/libc.ts";

/** runc's global options that take a value. */
const GLOBAL_WITH_VALUE = new Set(["--root", "--log", "--log-format", "--criu", "--rootless"]);
/** Command options (of create/run) that take a value. */
const CMD_WITH_VALUE = new Set([
  "--bundle",
  "-b",
  "--console-socket",
  "--pid-file",
  "--preserve-fds",
  "--pidfd-socket",
]);

export interface RuncArgs {
  command: string | undefined;
  bundle: string;
  log: string | undefined;
  logFormat: "text" | "json";
}

/** Scans runc arguments; `cwd` is the bundle when none is given. */
export function scanRuncArgs(args: readonly string[], cwd: string): RuncArgs {
  let i = 0, log: string | undefined, logFormat: "text" | "json" = "text";
  const value = (a: string): [string, string | undefined] => {
    const eq = a.indexOf("=");
    return eq > 0 && a.startsWith("--") ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
  };
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("-")) break;
    const [flag, inline] = value(a);
    if (GLOBAL_WITH_VALUE.has(flag)) {
      const v = inline ?? args[++i];
      if (flag === "--log") log = v;
      if (flag === "--log-format" && v === "json") logFormat = "json";
    }
  }
  const command = args[i];
  let bundle: string | undefined;
  for (let j = i + 1; j < args.length; j++) {
    const a = args[j]!;
    if (a === "--") break;
    const [flag, inline] = value(a);
    if (flag === "--bundle" || flag === "-b") {
      bundle = inline ?? args[j + 1];
      if (inline === undefined) j++;
    } else if (CMD_WITH_VALUE.has(flag) && inline === undefined) {
      j++;
    }
  }
  const b = bundle ?? cwd;
  return { command, bundle: b.startsWith("/") ? b : `${cwd.replace(/\/+$/, "")}/${b}`, log, logFormat };
}

/** The standard directories searched for a low-level runtime, after PATH. */
export const SBIN_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/**
 * Whether `path` is an executable regular file. access(2) answers the common case, a name that is not in this
 * directory, without the thrown error a failed stat costs in Deno (about 0.1 ms each, on every shim call).
 */
function executable(path: string): boolean {
  if (libc().access(path, X_OK) !== 0) return false;
  try {
    const s = Deno.statSync(path);
    return s.isFile && ((s.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}

/**
 * The first of `names` found as an executable: a path as is, a name on PATH then in the sbin directories.
 * `self` (this program's real path) is never chosen, so a shim installed as `runc` cannot exec itself.
 */
export function findRuntime(
  names: readonly string[],
  path: string | undefined,
  self: string | null,
): string | null {
  const dirs = [...(path ?? "").split(":").filter((d) => d.startsWith("/")), ...SBIN_DIRS];
  for (const n of names) {
    const candidates = n.includes("/") ? [n] : dirs.map((d) => `${d.replace(/\/+$/, "")}/${n}`);
    for (const c of candidates) {
      if (!executable(c)) continue;
      try {
        if (self !== null && Deno.realPathSync(c) === self) continue;
      } catch { /* unreadable link */ }
      return c;
    }
  }
  return null;
}

/** A line in runc's log format, so `docker run` shows gpuctl's error as it shows runc's. */
export function runcLogLine(format: "text" | "json", level: string, msg: string, now = new Date()): string {
  const time = now.toISOString();
  if (format === "json") return JSON.stringify({ level, msg, time }) + "\n";
  return `time="${time}" level=${level} msg=${JSON.stringify(msg)}\n`;
}
