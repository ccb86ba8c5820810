/**
 * gpuctl(1): made from the help texts, a page groff renders without a warning, with a section for every command
 * the CLI lists.
 */
import { assert, assertEquals, assertStringIncludes } from "../assert.ts";
import { manPage } from "../../tools/man.ts";
import { COMMANDS } from "../../cli/commands.ts";
import { HELP as DOCTOR_HELP } from "../../cli/doctor.ts";
import { tempDir } from "../helpers.ts";

Deno.test("man page: every command's help, rendered by groff without a warning", async () => {
  const page = await manPage("2026-12-06");
  assert(page.startsWith('.TH GPUCTL 1 "2026-12-06" '));
  for (const [n, c] of Object.entries(COMMANDS)) {
    if (!c.hidden) assertStringIncludes(page, `.SH "gpuctl ${n.toUpperCase()}"`);
  }
  using t = tempDir();
  Deno.writeTextFileSync(`${t.path}/gpuctl.1`, page);
  const o = await new Deno.Command("groff", {
    args: ["-man", "-Tutf8", "-ww", `${t.path}/gpuctl.1`],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assertEquals(new TextDecoder().decode(o.stderr), "", "groff's warnings");
  assert(o.success);
  // The help text is there as written (groff renders the doctor section's exit-status line unchanged).
  // groff's bold and underline are a character, a backspace, then the character again: keep the last.
  const text = [...new TextDecoder().decode(o.stdout)].reduce(
    (out, c) => (c === "\b" ? out.slice(0, -1) : out + c),
    "",
  );
  assertStringIncludes(text, DOCTOR_HELP.split("\n").find((l) => l.startsWith("Exit status:"))!);
});
