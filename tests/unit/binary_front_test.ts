/**
 * Binary fronts as files (serve/fronts.ts): the text a binary front carries reads back whole; install tells a
 * binary front from a sh one with the same text (so an upgrade from sh fronts rewrites them), and a file cut short
 * or of someone else's is no front of gpuctl's.
 */
import { assertEquals } from "../assert.ts";
import {
  binaryFront,
  HOOK_UNSAFE_VARS,
  hookFront,
  INSTALL_MARK,
  readFront,
  readFrontFile,
} from "../../serve/fronts.ts";
import { frontState } from "../../system/install_files.ts";
import { launcherProgram, tempDir } from "../helpers.ts";

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

Deno.test("binary hook front: the variables it drops are its text's UNSAFE, the same list the sh front drops; without it, no front", async () => {
  using t = tempDir();
  const text = hookFront({
    gpuctl: ["/bin/sh", "-c", 'env > "$0"', `${t.path}/env`],
    version: "test",
    serve: null,
  });
  assertEquals(text.includes(`UNSAFE='${HOOK_UNSAFE_VARS.join(" ")}'`), true);
  const program = await launcherProgram();
  const run = async (front: string) => {
    const path = `${t.path}/hook`;
    Deno.writeFileSync(path, binaryFront(program, front), { mode: 0o755 });
    const env = Object.fromEntries(HOOK_UNSAFE_VARS.map((v) => [v, "x"]));
    return await new Deno.Command(path, { args: ["poststop"], env, stdin: "null", stderr: "piped" }).output();
  };
  // A stage it does not serve: it runs "gpuctl" (here, a shell that writes its environment) with none of them.
  const ran = await run(text);
  assertEquals(ran.code, 0, new TextDecoder().decode(ran.stderr));
  const seen = Deno.readTextFileSync(`${t.path}/env`).split("\n").map((l) => l.slice(0, l.indexOf("=")));
  assertEquals(HOOK_UNSAFE_VARS.filter((v) => seen.includes(v)), []);
  // A text without the list is not one install wrote whole: refused, nothing run.
  Deno.removeSync(`${t.path}/env`);
  const bare = await run(text.replace(/^UNSAFE=.*\n/m, ""));
  assertEquals(bare.code, 1);
  assertEquals(
    new TextDecoder().decode(bare.stderr).includes("not a front gpuctl install wrote whole"),
    true,
  );
  assertEquals([...Deno.readDirSync(t.path)].some((e) => e.name === "env"), false);
});
