/**
 * The serve protocol's ground (see `server.ts` for the whole protocol): where the server listens and the checks
 * on that directory, the request and answer lines, and how a caller knows the server is alive. Small, for the
 * fronts' writer (`fronts.ts`), doctor and install, which need no server.
 * @module
 */
import type { Config } from "../config/schema.ts";
import { GpuctlError } from "../errors/mod.ts";
import {
  AT_EMPTY_PATH,
  check,
  libc,
  O_CLOEXEC,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_WRONLY,
  S_IFMT,
  statx,
} from "../ffi/libc.ts";
import { VERSION } from "../version.ts";

/**
 * Spoken by the fronts and the server, with gpuctl's version: a front written by another gpuctl (an upgrade not yet
 * followed by `gpuctl install` and a restart of the server) is sent back to run gpuctl itself.
 */
export const PROTOCOL = `gpuctl-serve-2 ${VERSION}`;
export const LOCK_EX = 2, LOCK_NB = 4;
/** What a caller asks for: one name for the request line, its files and {@link SERVE_FILES}. */
const KINDS = "runtime|view|hook";
export const REQUEST = new RegExp(`^([0-9]{1,10})\\.(${KINDS}) ([0-9]{1,12})$`);
export const SUFFIXES = [".argv", ".stdin", ".reply"] as const;

/**
 * Every name in the serve directory: the server's `lock`, `pid` (and the temporary it is renamed from) and
 * `requests`, and a caller's files (uninstall removes them).
 */
export const SERVE_FILES = new RegExp(
  `^(?:lock|pid|requests|\\.pid\\.[0-9]{1,10}|[0-9]{1,10}\\.(?:${KINDS})\\.(?:argv|stdin)|[0-9]{1,10}\\.reply)$`,
);

/** Where the server listens: `<cacheDir>/serve`, or nowhere without a cacheDir. */
export function serveDir(cacheDir: string | null): string | null {
  return cacheDir === null ? null : `${cacheDir.replace(/\/+$/, "")}/serve`;
}

/** How long a front waits for an answer: longer than the slowest work a request may do (NVML, twice). */
export function answerTimeout(config: Pick<Config, "nvmlTimeout">): number {
  return Math.ceil(2 * config.nvmlTimeout + 10);
}

export type Word = "ok" | "pass" | "view" | "direct" | "fail";
export interface Answer {
  code: number;
  word: Word;
  message?: string;
}
export const DIRECT: Answer = { code: 0, word: "direct" };

/** The answer line: `<code> <word> <message>`, the message one printable line. */
export function answerLine(a: Answer): string {
  return `${a.code} ${a.word} ${a.message ?? ""}`.trimEnd() + "\n";
}

/**
 * The directory the serve directory is in (cacheDir) must be owned by root or this user, and writable by no one
 * else unless sticky: else another user could swap the serve directory for one of theirs, and read and answer
 * root's requests.
 */
function safeParent(path: string): void {
  const parent = path.slice(0, path.lastIndexOf("/")) || "/";
  let st: ReturnType<typeof statx>;
  try {
    st = statx(-100, /* AT_FDCWD */ parent, 0x100 /* AT_SYMLINK_NOFOLLOW */);
  } catch {
    return; // made below, by this user
  }
  const me = libc().geteuid();
  if ((st.mode & S_IFMT) !== 0o040000) {
    throw new GpuctlError(parent, "is not a directory (cacheDir must be one)");
  }
  if (st.uid !== 0 && st.uid !== me) {
    throw new GpuctlError(
      parent,
      `is owned by uid ${st.uid}: gpuctl serve listens only in a directory of root's (cacheDir)`,
    );
  }
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new GpuctlError(
      parent,
      "is writable by others: gpuctl serve listens only in a directory they cannot change (chmod go-w, or another cacheDir)",
    );
  }
}

/** A private directory of root's (the caller's), made if absent; its descriptor. */
export function privateDir(path: string): number {
  safeParent(path);
  Deno.mkdirSync(path, { recursive: true, mode: 0o700 });
  const fd = check(`open ${path}`, () => libc().open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0));
  const st = statx(fd, "", AT_EMPTY_PATH);
  if (st.uid !== libc().geteuid() || (st.mode & 0o077) !== 0) {
    libc().close(fd);
    throw new GpuctlError(path, "is not private to this user (it must be owned by it, mode 0700)");
  }
  return fd;
}

/** Seconds since boot, as the fronts read them from /proc/uptime (whole seconds). */
export function uptime(): number {
  try {
    return Math.floor(Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]));
  } catch { // no /proc/uptime: every deadline counts as future
    return 0;
  }
}

/** Whether a caller holds its reply FIFO open (a non-blocking open for writing finds a reader). */
export function waiting(dirFd: number, reply: string): boolean {
  let fd: number;
  try {
    fd = check(
      "open reply",
      () => libc().openat(dirFd, reply, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0),
    );
  } catch {
    return false; // ENXIO: no reader; or no such FIFO
  }
  libc().close(fd);
  return true;
}

/**
 * A process's start time (field 22 of `/proc/PID/stat`, in clock ticks since boot), or null: with its pid, what
 * tells one process from another given the same pid later.
 */
export function procStart(pid: number | "self"): string | null {
  try {
    const st = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return st.slice(st.lastIndexOf(") ") + 2).split(" ")[19] ?? null;
  } catch { // gone
    return null;
  }
}

/**
 * Announces the server: `PID START` in `dir/pid`, written atomically. The fronts (serve/fronts/ask.sh), doctor and
 * install take a server for alive only when that process lives and started then.
 */
export function announce(dir: string): void {
  const tmp = `${dir}/.pid.${Deno.pid}`;
  Deno.writeTextFileSync(tmp, `${Deno.pid} ${procStart("self")}\n`, { mode: 0o600 });
  Deno.renameSync(tmp, `${dir}/pid`);
}

/** The server listening in `dir`, if one is: the pid its pid file names, proven by that process's start time. */
export function runningServer(dir: string): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${dir}/pid`);
  } catch { // no pid file: none running
    return null;
  }
  const [pid, start] = text.trim().split(" ");
  if (!/^[0-9]{1,10}$/.test(pid ?? "") || start === undefined) return null;
  return procStart(Number(pid)) === start ? Number(pid) : null;
}
