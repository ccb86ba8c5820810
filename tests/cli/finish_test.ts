/**
 * How a gpuctl process ends (cli/finish.ts): at once only where its command allowed it and a packed gpuctl's Deno
 * directory holds the mark a run that ended on its own leaves; otherwise on its own, leaving that mark.
 * The bare-host artifact test (tests/e2e/ship_test.ts) checks the mark with the artifact and Deno's cache itself.
 * @module
 */
import { assertEquals } from "../assert.ts";
import { tempDir } from "../helpers.ts";
import { finish, type FinishIo, mayEndAtOnce } from "../../cli/finish.ts";
import { adoptLauncher } from "../../version.ts";

function io(): FinishIo & { ended: number[]; asked: string[] } {
  const ended: number[] = [], asked: string[] = [];
  return {
    ended,
    asked,
    exists: (p) => {
      asked.push(p);
      try {
        Deno.statSync(p);
        return true;
      } catch { // not there
        return false;
      }
    },
    endAtOnce: (code) => void ended.push(code),
  };
}

Deno.test("a gpuctl process ends at once only when its command allows it and a run has left the code cache", () => {
  using tmp = tempDir();
  const mark = `${tmp.path}/deno-dir/gpuctl-code-cache-kept`;
  Deno.mkdirSync(`${tmp.path}/deno-dir`);
  const saved = Deno.exitCode;
  try {
    // Not packed (no launcher adopted): on its own, and no mark looked for or left anywhere.
    let x = io();
    finish(0, x);
    assertEquals([x.ended, x.asked], [[], []]);

    // Packed: the launcher's variables taken out of the environment it was given.
    const env = new Map([["GPUCTL_SELF", "/usr/local/lib/gpuctl/1/gpuctl"], [
      "DENO_DIR",
      `${tmp.path}/deno-dir`,
    ]]);
    adoptLauncher({ get: (k) => env.get(k), delete: (k) => void env.delete(k) });
    assertEquals([...env.keys()], []);

    // No mark yet: this run ends on its own and leaves it.
    x = io();
    finish(3, x);
    assertEquals(x.ended, []);
    assertEquals(Deno.statSync(mark).isFile, true);
    assertEquals(Deno.exitCode, 3);

    // Marked, but the command did not allow it (every command but a GPU container's): on its own.
    x = io();
    finish(0, x);
    assertEquals(x.ended, []);

    // Marked, and the command allowed it: at once, with its code.
    mayEndAtOnce();
    x = io();
    finish(4, x);
    assertEquals(x.ended, [4]);

    // The mark gone (a new Deno directory): on its own again, though allowed.
    Deno.removeSync(mark);
    x = io();
    finish(0, x);
    assertEquals(x.ended, []);
    assertEquals(Deno.statSync(mark).isFile, true);
  } finally {
    Deno.exitCode = saved;
  }
});
