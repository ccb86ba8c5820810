/**
 * runc's command line, as a shim sees it: `runc [global options] <command> [command options] <id>`.
 * The shim needs only the command, the bundle (`--bundle`/`-b`, default the working directory), and the
 * `--log`/`--log-format` runc will use, so that its own errors reach the same file.
 * @module
 */
import { F_OK, libc, X_OK } from "../ffi/libc.ts";
import { selfExecutable } from "../version.ts";

/**
 * runc's global options that take a value, by name. runc parses its flags with Go's flag package, where `-root`
 * and `--root`, `-b x`, `-b=x` and `--bundle=x` are all the same thing.
 */
const GLOBAL_WITH_VALUE = new Set(["root", "log", "log-format", "criu", "rootless"]);
/** Command options (of create/run) that take a value. */
const CMD_WITH_VALUE = new Set(["bundle", "b", "console-socket", "pid-file", "preserve-fds", "pidfd-socket"]);

export interface RuncArgs {
  command: string | undefined;
  bundle: string;
  log: string | undefined;
  logFormat: "text" | "json";
  /** The global options, as given (for further calls of the same runtime: `state`, `delete`). */
  globals: string[];
  /** The container id: the command's first argument that is not an option. */
  id: string | undefined;
  /** `--pid-file` of `create`/`run`. */
  pidFile: string | undefined;
}

/** A flag's name without its dashes, and its `=value` if it has one. */
function flagOf(a: string): [string, string | undefined] {
  const name = a.slice(a.startsWith("--") ? 2 : 1);
  const eq = name.indexOf("=");
  return eq > 0 ? [name.slice(0, eq), name.slice(eq + 1)] : [name, undefined];
}

/** Scans runc arguments; `cwd` is the bundle when none is given. */
export function scanRuncArgs(args: readonly string[], cwd: string): RuncArgs {
  let i = 0, log: string | undefined, logFormat: "text" | "json" = "text";
  for (; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith("-") || a === "-") break;
    if (a === "--") {
      i++;
      break;
    }
    const [name, inline] = flagOf(a);
    if (GLOBAL_WITH_VALUE.has(name)) {
      const v = inline ?? args[++i];
      if (name === "log") log = v;
      if (name === "log-format") logFormat = v === "json" ? "json" : "text";
    }
  }
  const globals = args.slice(0, i);
  const command = args[i];
  let bundle: string | undefined, id: string | undefined, pidFile: string | undefined;
  const abs = (p: string) => (p.startsWith("/") ? p : `${cwd.replace(/\/+$/, "")}/${p}`);
  for (let j = i + 1; j < args.length; j++) {
    const a = args[j]!;
    if (a === "--") {
      id ??= args[j + 1];
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      id ??= a; // runc's CLI also takes flags after the id
      continue;
    }
    const [name, inline] = flagOf(a);
    if (CMD_WITH_VALUE.has(name)) {
      const v = inline ?? args[j + 1];
      if (inline === undefined) j++;
      if ((name === "bundle" || name === "b") && v !== undefined) bundle = v;
      if (name === "pid-file" && v !== undefined) pidFile = abs(v);
    }
  }
  return { command, bundle: abs(bundle ?? cwd), log, logFormat, globals, id, pidFile };
}

/** The standard directories searched for a low-level runtime, after PATH. */
export const SBIN_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

/** This program's real path, for the self check (a shim installed as `runc` must not exec itself). */
export function selfPath(): string | null {
  try {
    return Deno.realPathSync(selfExecutable() ?? Deno.execPath());
  } catch { // no /proc/self/exe: unknown
    return null;
  }
}

/**
 * The first of `names` found as an executable that is not a directory: a path as is, a name on PATH then in the
 * sbin directories. `self()` (this program's real path, asked for only once something is found) is never
 * chosen, so a shim installed as `runc` cannot exec itself.
 *
 * Only access(2) and realpath are used: they answer with a return value, where a failed stat throws, and
 * Deno's first stat is dear in a pass-through that runs on every container operation (the bench's pass-through row).
 */
export function findRuntime(
  names: readonly string[],
  path: string | undefined,
  self: () => string | null,
): string | null {
  const dirs = [...(path ?? "").split(":").filter((d) => d.startsWith("/")), ...SBIN_DIRS];
  const access = libc().access;
  let me: string | null | undefined;
  for (const n of names) {
    const candidates = n.includes("/") ? [n] : dirs.map((d) => `${d.replace(/\/+$/, "")}/${n}`);
    for (const c of candidates) {
      // Executable, and not a directory (only a directory can be looked into: "c/.").
      if (access(c, X_OK) !== 0 || access(`${c}/.`, F_OK) === 0) continue;
      if (me === undefined) me = self();
      if (me !== null) {
        try {
          if (Deno.realPathSync(c) === me) continue;
        } catch { /* a dangling link: access() said otherwise a moment ago; take it as found */ }
      }
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

/** An error, as a line in runc's `--log` file in its format (engines show that file's last error). */
export function logToRuntime(r: RuncArgs, e: unknown): void {
  if (r.log === undefined) return;
  try {
    const msg = `gpuctl: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
    Deno.writeTextFileSync(r.log, runcLogLine(r.logFormat, "error", msg), { append: true, create: true });
  } catch { /* the log is a courtesy; the error still goes to stderr */ }
}
