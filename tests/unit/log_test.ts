import { assertEquals } from "../assert.ts";
import { fileLogger, phases } from "../../log/log.ts";
import { tempDir } from "../helpers.ts";

// The logger keeps its file open for the life of the process, by design: no resource sanitizer here.
Deno.test({
  name: "fileLogger(): JSON lines at or above the level, to the file opened at creation, even once it moved",
  sanitizeResources: false,
  fn() {
    using d = tempDir();
    const file = `${d.path}/gpuctl.log`;
    const log = fileLogger(file, "info", "hook");
    assertEquals(Deno.statSync(file).mode! & 0o777, 0o600);
    log.debug("dropped");
    log.info("one", { n: 1 });
    // The hook goes on logging from inside the container's mount namespace, where the path may lead elsewhere.
    Deno.renameSync(file, `${d.path}/moved.log`);
    log.warn("two");
    const lines = Deno.readTextFileSync(`${d.path}/moved.log`).trim().split("\n").map((l) => JSON.parse(l));
    assertEquals(lines.map((l) => [l.level, l.component, l.msg, l.n]), [
      ["info", "hook", "one", 1],
      ["warn", "hook", "two", undefined],
    ]);
    assertEquals(lines[0].pid, Deno.pid);
    let missing = false; // nothing was recreated at the old path
    try {
      Deno.statSync(file);
    } catch {
      missing = true;
    }
    assertEquals(missing, true);
    // An unwritable log never fails the command.
    fileLogger(`${d.path}/no/such/dir/x.log`, "debug", "hook").error("lost");
  },
});

Deno.test("phases(): ms rounded to a tenth", () => {
  assertEquals(phases({ start: 12.345, plan: 0.04 }), { start: 12.3, plan: 0 });
});
