/**
 * `gpuctl serve`: gpuctl kept running, so that starting a GPU container starts no gpuctl process. The fronts that
 * `gpuctl install` writes (`serve/fronts.ts`: `gpuctl-runtime` and `nvidia-container-runtime-hook`, both POSIX sh)
 * hand a GPU container's work to it when it runs, and run gpuctl themselves when it does not. What it does for a
 * container is exactly what that gpuctl process would do, by the same code: the shim's `create` in spec mode, and
 * the prestart hook. Everything else (CDI hooks, `run`, hook mode with the hook found on the caller's PATH) it
 * sends back to be run directly.
 *
 * The protocol, on one host and for root only, in `<cacheDir>/serve` (mode 0700):
 * - `lock`: held (flock) by the running server; `pid`: its pid, written once it listens, removed when it stops.
 * - `requests`: a FIFO. A request is one line (one atomic write), `<dir>/<caller pid>.<verb> <deadline>`: the
 *   prefix of the caller's files, and when the caller stops waiting (seconds since boot, /proc/uptime's clock).
 *   A request past its deadline, or whose caller no longer holds its reply FIFO open, is dropped unserved, so
 *   that requests a stalled server left behind cost it nothing and delay no one. The caller's files:
 *   - `.argv`: NUL-terminated fields: {@link PROTOCOL}, `$GPUCTL_CONFIG` (empty for none), the caller's working
 *     directory, then the command's own arguments (verbs: `runtime` — runc's arguments; `view` — the runtime's
 *     path, then runc's arguments; `hook` — the hook's arguments);
 *   - `.stdin` (`hook`): the container state runc gave the hook;
 * - `<caller pid>.reply`: the caller's FIFO, which it holds open for reading before it sends a request (so the
 *   server's non-blocking open finds a reader, or the caller is gone); the answer is one line,
 *   `<exit code> <word> <message>`: `ok` (done), `pass` (run the runtime with the arguments as they are), `view`
 *   (run `runtime create`, then ask `view` on the same FIFO), `direct` (run gpuctl itself), `fail` (print the
 *   message and exit with the code).
 *
 * Requests are served one at a time, in order. A request is answered only if its caller's protocol and
 * configuration file are the server's own (else `direct`), so a served container gets what a gpuctl process
 * would have given it. The configuration is read again for every request, and the driver snapshot is checked
 * against the host as for every container (`snapshot/`). The server removes a request's files once it has
 * answered (the reply FIFO too, unless the answer is `view`); a caller gives up after a timeout and then fails closed, never running gpuctl behind a server that
 * may still act (see the fronts).
 * @module
 */
import { readConfig } from "../config/read.ts";
import type { Config } from "../config/schema.ts";
import { describe, GpuctlError } from "../errors/mod.ts";
import {
  AT_EMPTY_PATH,
  check,
  exists,
  libc,
  O_CLOEXEC,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_RDONLY,
  O_WRONLY,
  readAll,
  S_IFIFO,
  S_IFMT,
  S_IFREG,
  statx,
  writeAll,
} from "../ffi/libc.ts";
import { type LogFormat, type Logger, logger, nullLogger, phases, startRequest } from "../log/log.ts";
import { scanRuncArgs } from "../oci/runc_args.ts";
import { MAX_SPEC_BYTES } from "../oci/spec.ts";
import type { ViewToMake } from "../flows/shim_edit.ts";
import { type Answer, answerLine, DIRECT, PROTOCOL, REQUEST, uptime, waiting } from "./protocol.ts";

const MAX_ARGV = 1 << 20;
/** The hook's state holds the container's annotations, as config.json does: the same bound. */
const MAX_STDIN = MAX_SPEC_BYTES;
/** A prepared container whose `view` is not asked for within this long is forgotten (its create failed). */
const PENDING_MS = 10 * 60_000;
/** The calling thread's mount namespace, as `/proc/thread-self/ns/mnt` names it (`null` if that cannot be read). */
function ownMountNamespace(): string | null {
  try {
    return Deno.readLinkSync("/proc/thread-self/ns/mnt");
  } catch { // unknown: compared as such
    return null;
  }
}

/** A create answered `view`: what its view request finds. */
interface Pending {
  todo: ViewToMake;
  /** When `view` was answered, when its request arrived (for the log's phases), how long the files took. */
  at: number;
  origin: number;
  files: number;
  /** Why the files could not be written, reported by the view request. */
  failed?: unknown;
}

export class Server {
  readonly #pending = new Map<string, Pending>();
  /** Set by a request for work after its answer (see {@link handle}). */
  #later: (() => void) | null = null;
  /** When the request being served arrived. */
  #origin = 0;
  readonly #loggers = new Map<string, Logger>();

  /** How logs go to stderr without a log file (`--log-format`). */
  logFormat: { format?: LogFormat } = {};
  /** The service's own log (gpuctl serve's): start, stop, and each request it refuses. */
  log: Logger = nullLogger;
  constructor(readonly dir: string, readonly dirFd: number, readonly configPath: string | undefined) {}

  /** The mount namespace this server serves from; every request must leave its main thread there. */
  readonly #ns = ownMountNamespace();

  #busy = false;
  #onIdle: (() => void) | null = null;

  /** Calls `f` once no request is being served: at once, or when the current one has its answer. */
  whenIdle(f: () => void): void {
    if (this.#busy) this.#onIdle = f;
    else f();
  }

  /** Serves one request line; never throws (a request's failure is its answer). */
  async handle(line: string): Promise<void> {
    this.#busy = true;
    try {
      await this.#handle(line);
    } finally {
      this.#busy = false;
      // The hook and the view enter a container's mount namespace on this thread and come back; a server left
      // anywhere else must not serve another container.
      if (ownMountNamespace() !== this.#ns) {
        Deno.stderr.writeSync(
          new TextEncoder().encode("gpuctl: gpuctl serve: left outside its mount namespace; stopping\n"),
        );
        Deno.exit(70);
      }
      this.#onIdle?.();
    }
  }

  async #handle(line: string): Promise<void> {
    this.#origin = performance.now();
    startRequest(this.#origin);
    this.#checkDir();
    const m = REQUEST.exec(line.startsWith(`${this.dir}/`) ? line.slice(this.dir.length + 1) : "");
    if (m === null) return; // not a front's: nobody to answer
    const base = `${m[1]}.${m[2]}`, reply = `${m[1]}.reply`;
    let answer: Answer | null;
    if (Number(m[3]) < uptime() || !waiting(this.dirFd, reply)) {
      answer = null; // its caller has given up: its container has failed already
    } else {
      try {
        answer = await this.#answer(m[2] as "runtime" | "view" | "hook", base);
      } catch (e) {
        answer = { code: e instanceof GpuctlError ? e.exitCode : 1, word: "fail", message: describe(e) };
        this.log.warn("a GPU container refused", { request: m[2], message: answer.message });
      }
      this.#reply(reply, answer);
    }
    libc().unlinkat(this.dirFd, `${base}.argv`, 0);
    libc().unlinkat(this.dirFd, `${base}.stdin`, 0);
    if (answer?.word !== "view") libc().unlinkat(this.dirFd, reply, 0);
    // Work the caller need not wait for: it runs while the caller goes on, and before the next request.
    const later = this.#later;
    this.#later = null;
    later?.();
  }

  /**
   * The directory the fronts write to must still be this server's: the same directory (not replaced since it
   * started listening), owned by it and private. A front checks it too; a server whose directory was swapped
   * under it stops, loudly, and the fronts then run gpuctl per container.
   */
  #checkDir(): void {
    let why: string | null = null;
    try {
      const fd = statx(this.dirFd, "", AT_EMPTY_PATH);
      const path = statx(-100, /* AT_FDCWD */ this.dir, 0x100 /* AT_SYMLINK_NOFOLLOW */);
      if (path.ino !== fd.ino || path.devMajor !== fd.devMajor || path.devMinor !== fd.devMinor) {
        why = "was replaced by another directory";
      } else if (fd.uid !== libc().geteuid() || (fd.mode & 0o077) !== 0) {
        why = "is no longer private to this user (owned by it, mode 0700)";
      }
    } catch (e) {
      why = `cannot be checked (${describe(e)})`;
    }
    if (why !== null) {
      Deno.stderr.writeSync(new TextEncoder().encode(`gpuctl: gpuctl serve: ${this.dir} ${why}; stopping\n`));
      Deno.exit(70);
    }
  }

  #logger(config: Config, component: string): Logger {
    const k = `${config.logFile}\0${config.logLevel}\0${component}`;
    let l = this.#loggers.get(k);
    if (l === undefined) {
      // Without a log file, a server's log goes to stderr (its unit's journal), as gpuctl serve's own does.
      l = logger(config.logFile, config.logLevel, component, { stderr: true, ...this.logFormat });
      this.#loggers.set(k, l);
    }
    return l;
  }

  /** A request file: a regular file of this user's, at most `max` bytes, read whole. */
  #read(name: string, max: number): Uint8Array {
    const fd = check(
      `open ${this.dir}/${name}`,
      () => libc().openat(this.dirFd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0),
    );
    try {
      const st = statx(fd, "", AT_EMPTY_PATH);
      if ((st.mode & S_IFMT) !== S_IFREG || st.uid !== libc().geteuid()) {
        throw new GpuctlError(`${this.dir}/${name}`, "is not a request file of this user's");
      }
      if (st.size > max) throw new GpuctlError(`${this.dir}/${name}`, `is larger than ${max} bytes`);
      return readAll(fd, max, name, st.size);
    } finally {
      libc().close(fd);
    }
  }

  async #answer(verb: "runtime" | "view" | "hook", base: string): Promise<Answer> {
    const text = new TextDecoder().decode(this.#read(`${base}.argv`, MAX_ARGV));
    const fields = text.split("\0");
    if (fields.at(-1) === "") fields.pop();
    const [protocol, configPath, cwd, ...args] = fields;
    if (protocol !== PROTOCOL || (configPath || undefined) !== this.configPath) return DIRECT;
    if (cwd === undefined || !cwd.startsWith("/")) {
      throw new GpuctlError("request", "has no working directory");
    }
    const { config } = await readConfig(this.configPath, exists);
    const now = performance.now();
    for (const [k, p] of this.#pending) if (now - p.at > PENDING_MS) this.#pending.delete(k);
    if (verb === "hook") return await this.#hook(config, args, base);
    if (verb === "view") return await this.#view(config, cwd, args);
    return await this.#create(config, cwd, args);
  }

  /** The shim's `create` up to `runtime create`: config.json edited and the rootfs's files written. */
  async #create(config: Config, cwd: string, args: string[]): Promise<Answer> {
    const r = scanRuncArgs(args, cwd);
    // The hook the shim adds in hook mode is found on the caller's PATH, which the server does not have.
    if (r.command !== "create" || (config.mode === "hook" && config.hookPath === null)) return DIRECT;
    const log = this.#logger(config, "runtime");
    const [{ prepareBundle }, { logToRuntime }] = await Promise.all([
      import("../flows/shim.ts"),
      import("../oci/runc_args.ts"),
    ]);
    try {
      const todo = await prepareBundle(config, r.bundle, "create", log, this.configPath);
      if (todo === null) return { code: 0, word: "pass" };
      // config.json is ready: the caller runs `runtime create` while the links and the linker cache go into the
      // rootfs (runc reads neither, as in the shim's own create). The view request, served after this work,
      // deletes the container if it failed.
      const p: Pending = { todo, at: 0, origin: this.#origin, files: 0 };
      this.#pending.set(`${r.bundle}\0${r.id}`, p);
      this.#later = () => {
        const t = performance.now();
        try {
          todo.files();
        } catch (e) {
          p.failed = e; // reported by the view request
        }
        p.files = performance.now() - t;
      };
      p.at = performance.now();
      return { code: 0, word: "view" };
    } catch (e) {
      logToRuntime(r, e);
      throw e;
    }
  }

  /** After the caller's `runtime create`: the /proc view (the container deleted if it fails). */
  async #view(config: Config, cwd: string, args: string[]): Promise<Answer> {
    const [runtime, ...rest] = args;
    const r = scanRuncArgs(rest, cwd);
    const key = `${r.bundle}\0${r.id}`;
    const p = this.#pending.get(key);
    this.#pending.delete(key);
    if (runtime === undefined || !runtime.startsWith("/")) {
      throw new GpuctlError("request", "names no runtime");
    }
    const [{ deleteContainer, makeView }, { logToRuntime }] = await Promise.all([
      import("../flows/created.ts"),
      import("../oci/runc_args.ts"),
    ]);
    const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" };
    const log = this.#logger(config, "runtime");
    try {
      if (p === undefined) {
        // Not prepared here (a server restarted in between): the container must not run without its view.
        await deleteContainer(runtime, r, env);
        throw new GpuctlError(
          `container ${r.id ?? ""}`,
          "was prepared by a gpuctl serve that has since stopped",
        );
      }
      if (p.failed !== undefined) {
        await deleteContainer(runtime, r, env);
        throw p.failed;
      }
      const t = performance.now();
      await makeView(runtime, r, p.todo, config, env, log);
      log.info("GPU container prepared", {
        ...p.todo.prepared,
        served: true,
        ms: phases(
          { ...p.todo.prepared.ms, files: p.files, runc: t - p.at, view: performance.now() - t },
          p.origin,
        ),
      });
      return { code: 0, word: "ok" };
    } catch (e) {
      logToRuntime(r, e);
      throw e;
    }
  }

  /**
   * A hook, with the state the caller read from the runtime: the prestart hook, or a CDI spec's container-edits
   * hook (its edits on its command line, as a gpuctl process would read them).
   */
  async #hook(config: Config, args: string[], base: string): Promise<Answer> {
    // The front's own pid as the host numbers it, for container-edits: that hook runs in the container's mount
    // namespace, which the server enters through it (and checks, as it checks a prestart hook's container).
    const caller = /^--caller=([1-9][0-9]{0,9})$/.exec(args[0] ?? "");
    if (caller !== null) args = args.slice(1);
    const at = args.findIndex((a) => !a.startsWith("-"));
    const stage = args[at];
    if (stage !== "prestart" && stage !== "createRuntime" && stage !== "container-edits") return DIRECT;
    if (stage === "container-edits" && caller === null) return DIRECT;
    const state = new TextDecoder().decode(this.#read(`${base}.stdin`, MAX_STDIN));
    const { runHook, runEditsHook } = await import("../flows/hook.ts");
    if (stage === "container-edits") {
      await runEditsHook(config, state, args.slice(at + 1), this.#logger(config, "hook"), Number(caller![1]));
    } else await runHook(config, state, this.#logger(config, "hook"), this.configPath);
    return { code: 0, word: "ok" };
  }

  /** Writes the answer into the caller's reply FIFO; a caller that is gone (no reader) is not waited for. */
  #reply(name: string, a: Answer): void {
    let fd: number;
    try {
      fd = check(
        "open reply",
        () => libc().openat(this.dirFd, name, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC, 0),
      );
    } catch { // its caller is gone: nobody to answer
      return;
    }
    try {
      if ((statx(fd, "", AT_EMPTY_PATH).mode & S_IFMT) === S_IFIFO) {
        writeAll(fd, new TextEncoder().encode(answerLine(a)), "reply");
      }
    } catch {
      /* the caller went away */
    } finally {
      libc().close(fd);
    }
  }
}
