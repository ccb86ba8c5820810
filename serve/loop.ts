/**
 * The server's life around its requests: listening in its directory (the lock, the FIFO, leftovers removed) and
 * reading request lines in order, its garbage collected between them.
 * @module
 */
import { EWOULDBLOCK } from "../errors/errno.ts";
import { GpuctlError } from "../errors/mod.ts";
import { check, libc, O_CLOEXEC, O_CREAT, O_NOFOLLOW, O_RDWR, S_IFIFO, SyscallError } from "../ffi/libc.ts";
import { LOCK_EX, LOCK_NB, privateDir, SUFFIXES } from "./protocol.ts";
import { Server } from "./server.ts";

/** What {@link listen} holds: the FIFO, open for {@link serveLines}, and the server to hand it to. */
export interface Listening {
  fifo: Deno.FsFile;
  server(configPath: string | undefined): Server;
  /** Removes the FIFO and the pid file, closes the FIFO and gives the lock up. */
  close(): void;
}

/**
 * A server listening in `dir`: the lock taken, leftovers removed, the FIFO made and held open (read-write) from
 * here on. A front sends once the pid file names the server, and a line written into a FIFO that no one else holds
 * open is dropped when the writer closes it: held from its creation, no request sent after the pid file appears
 * (while the server still warms up, or before it reads) is lost.
 */
export function listen(dir: string): Listening {
  const dirFd = privateDir(dir);
  let lock = -1;
  let fifo: Deno.FsFile | null = null;
  try {
    lock = check(
      `open ${dir}/lock`,
      () => libc().openat(dirFd, "lock", O_CREAT | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0o600),
    );
    try {
      check("flock", () => libc().flock(lock, LOCK_EX | LOCK_NB));
    } catch (e) {
      if (e instanceof SyscallError && e.errno === EWOULDBLOCK) {
        let pid = "";
        try {
          pid = ` (pid ${Deno.readTextFileSync(`${dir}/pid`).split(" ")[0]!.trim()})`;
        } catch { /* not written yet */ }
        throw new GpuctlError("gpuctl serve", `another one is running${pid}, in ${dir}`, 1, { cause: e });
      }
      throw e;
    }
    for (const e of Deno.readDirSync(dir)) {
      if (e.name === "requests" || e.name === "pid" || SUFFIXES.some((s) => e.name.endsWith(s))) {
        libc().unlinkat(dirFd, e.name, 0);
      }
    }
    check("mkfifo requests", () => libc().mknodat(dirFd, "requests", S_IFIFO | 0o600, 0n));
    // Read-write: the server is then always a writer too, and never sees end-of-file between callers.
    fifo = Deno.openSync(`${dir}/requests`, { read: true, write: true });
  } catch (e) {
    fifo?.close();
    if (lock >= 0) libc().close(lock);
    libc().close(dirFd);
    throw e;
  }
  const held = fifo;
  return {
    fifo: held,
    server: (configPath) => new Server(dir, dirFd, configPath),
    close() {
      libc().unlinkat(dirFd, "pid", 0);
      libc().unlinkat(dirFd, "requests", 0);
      held.close();
      // Requests still queued: their callers time out and stop their containers.
      for (const e of Deno.readDirSync(dir)) {
        if (SUFFIXES.some((s) => e.name.endsWith(s))) libc().unlinkat(dirFd, e.name, 0);
      }
      libc().close(lock);
      libc().close(dirFd);
    },
  };
}

/** The heap size past which the server collects its garbage between requests. */
const TIDY_HEAP = 16 << 20;

/**
 * A full garbage collection, or `null` where V8 will not give one. V8 keeps a heap it has grown (for a 9,999-deep
 * config.json, say) for good, and a server lives long: collected between requests, its memory stays that of a
 * fresh process plus what one request needs. (`node:` modules are imported here, not at the top: a bundle hoists
 * static ones into every gpuctl start.)
 */
async function collector(): Promise<(() => void) | null> {
  try {
    const v8 = await import("node:v8");
    v8.setFlagsFromString("--expose-gc");
    const gc = (await import("node:vm")).runInNewContext("gc") as unknown;
    return typeof gc === "function" ? () => gc() : null;
  } catch { // no way to collect on this runtime: none
    return null;
  }
}

/** Reads request lines from the FIFO {@link listen} holds and serves them in order, until the process is stopped. */
export async function serveLines(fifo: Deno.FsFile, server: Server): Promise<never> {
  const gc = await collector();
  const buf = new Uint8Array(64 << 10);
  const dec = new TextDecoder();
  let rest = "";
  for (;;) {
    const n = await fifo.read(buf);
    if (n === null) continue;
    rest += dec.decode(buf.subarray(0, n), { stream: true });
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      const line = rest.slice(0, nl);
      rest = rest.slice(nl + 1);
      await server.handle(line);
    }
    if (rest.length > 4096) rest = ""; // no front writes such a line
    // Between requests (none buffered): a request arriving now waits for the collection, a few ms.
    if (rest === "" && gc !== null && Deno.memoryUsage().heapTotal > TIDY_HEAP) gc();
  }
}
