/**
 * `gpuctl serve`'s directory as `serve/loop.ts` `listen` leaves it: a request line a front writes at once (the pid
 * file may already name the server, which still warms up) waits in the FIFO for the server to read it. A FIFO
 * that no process holds open drops what was written into it when its writer closes it: a front that sent in that
 * window waited out its whole timeout, and its container was stopped.
 */
import { assert, assertEquals, assertThrows } from "../assert.ts";
import { libc, O_CLOEXEC, O_NONBLOCK, O_WRONLY } from "../../ffi/libc.ts";
import { listen } from "../../serve/loop.ts";
import { tempDir } from "../helpers.ts";

/** As a front sends: its own open of the FIFO, one write, closed. Without a reader the open fails (ENXIO). */
function send(fifo: string, line: string): void {
  const fd = libc().open(fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC, 0);
  assert(fd >= 0, `nothing holds ${fifo} open for reading`);
  const b = new TextEncoder().encode(line);
  try {
    assertEquals(Number(libc().write(fd, b, b.length)), b.length);
  } finally {
    libc().close(fd);
  }
}

Deno.test("serve: a request sent as soon as the server listens is kept until it reads, and none once it stopped", () => {
  using t = tempDir();
  const dir = `${t.path}/serve`;
  const l = listen(dir);
  let closed = false;
  try {
    send(`${dir}/requests`, `${dir}/1.hook 99\n`);
    send(`${dir}/requests`, `${dir}/2.runtime 99\n`);
    const buf = new Uint8Array(4096);
    const n = l.fifo.readSync(buf) ?? 0;
    assertEquals(new TextDecoder().decode(buf.subarray(0, n)), `${dir}/1.hook 99\n${dir}/2.runtime 99\n`);
    l.close();
    closed = true;
    // Stopped: no FIFO, so a front finds none to send into (and runs gpuctl itself).
    assertThrows(() => Deno.lstatSync(`${dir}/requests`), Deno.errors.NotFound);
    assertThrows(() => Deno.lstatSync(`${dir}/pid`), Deno.errors.NotFound);
  } finally {
    if (!closed) l.close();
  }
});
