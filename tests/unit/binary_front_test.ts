/**
 * Binary fronts as files (serve/fronts.ts): the text a binary front carries reads back whole; install tells a
 * binary front from a sh one with the same text (so an upgrade from sh fronts rewrites them), and a file cut short
 * or of someone else's is no front of gpuctl's.
 */
import { assertEquals } from "../assert.ts";
import { binaryFront, hookFront, INSTALL_MARK, readFront, readFrontFile } from "../../serve/fronts.ts";
import { frontState } from "../../system/install_files.ts";
import { tempDir } from "../helpers.ts";

Deno.test("binary front: its text reads back; install tells it from a sh front with the same text", () => {
  using t = tempDir();
  const text = hookFront({ gpuctl: ["/opt/gpuctl"], version: "test", serve: null });
  // A stand-in for the launcher's program: bytes that are no text, larger than any sh front.
  const program = new Uint8Array(200_000).map((_, i) => (i * 7919) % 251);
  const bin = `${t.path}/bin`, sh = `${t.path}/sh`;
  Deno.writeFileSync(bin, binaryFront(program, text));
  Deno.writeTextFileSync(sh, text);
  assertEquals(readFrontFile(bin), { text, binary: true });
  assertEquals(readFrontFile(sh), { text, binary: false });
  assertEquals(Deno.readFileSync(bin).subarray(0, program.length), program, "the program first, unchanged");
  assertEquals([frontState(bin, text, true), frontState(bin, text, false)], ["same", "ours"]);
  assertEquals([frontState(sh, text, false), frontState(sh, text, true)], ["same", "ours"]);
  assertEquals(frontState(bin, `${text}# another\n`, true), "ours");
  // Cut short (the trailer's offsets past the end), or a program with no trailer: not a front.
  const whole = Deno.readFileSync(bin);
  Deno.writeFileSync(`${t.path}/cut`, whole.subarray(1000));
  assertEquals(readFront(`${t.path}/cut`), null);
  assertEquals(frontState(`${t.path}/cut`, text, true), "foreign");
  Deno.writeFileSync(`${t.path}/program`, program);
  assertEquals([readFront(`${t.path}/program`), frontState(`${t.path}/program`, text, true)], [
    null,
    "foreign",
  ]);
  Deno.writeTextFileSync(`${t.path}/theirs`, '#!/bin/sh\nexec runc "$@"\n');
  assertEquals(frontState(`${t.path}/theirs`, text, false), "foreign");
  assertEquals(text.includes(INSTALL_MARK), true);
});
