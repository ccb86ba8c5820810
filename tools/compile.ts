/**
 * `deno task compile`: builds `dist/gpuctl.js` (a `deno bundle`, works offline) and then the single binary
 * `dist/gpuctl` with `deno compile`.
 *
 * `deno compile` needs Deno's `denort` base binary: `DENORT_BIN` names a local copy; without it `deno compile`
 * downloads it from Deno's servers. Only when neither works does this task stop, after building the bundle, with
 * one message giving the offline route, and exit 1.
 * @module
 */
const root = new URL("../", import.meta.url).pathname;
const deno = Deno.execPath();
const enc = new TextEncoder();
const say = (s: string) => Deno.stderr.writeSync(enc.encode(s + "\n"));

async function run(args: string[], env: Record<string, string> = {}): Promise<{ ok: boolean; out: string }> {
  const o = await new Deno.Command(deno, { args, cwd: root, env, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: o.success, out: dec.decode(o.stdout) + dec.decode(o.stderr) };
}

Deno.mkdirSync(`${root}dist`, { recursive: true });
// The bundle's flags live in one place: deno.json's "bundle" task.
const bundle = await run(["task", "--quiet", "bundle"]);
if (!bundle.ok) {
  say(`compile: deno bundle failed:\n${bundle.out}`);
  Deno.exit(1);
}
say("compile: built dist/gpuctl.js (run it with: deno run -A dist/gpuctl.js)");

const denort = Deno.env.get("DENORT_BIN");
if (denort) {
  try {
    if (!Deno.statSync(denort).isFile) throw new Error("not a file");
  } catch (e) {
    say(`compile: DENORT_BIN=${denort}: ${(e as Error).message}; it must name the denort binary`);
    Deno.exit(1);
  }
}
const compiled = await run(
  ["compile", "--quiet", "-A", "--no-check", "--output", "dist/gpuctl", "cli/main.ts"],
  denort ? { DENORT_BIN: denort } : {},
);
if (!compiled.ok) {
  if (!denort) {
    const why = compiled.out.split("\n").find((l) => /error sending request|dns error|Connect/i.test(l))
      ?.trim();
    say(
      `compile: cannot build dist/gpuctl: deno compile could not download Deno's denort base binary${
        why ? ` (${why.replace(/^\d+: /, "")})` : ""
      }.\n` +
        "         Offline: set DENORT_BIN to a denort for this Deno version (" + Deno.version.deno +
        "), e.g. unpacked from\n" +
        "         denort-x86_64-unknown-linux-gnu.zip of the same release, then run 'deno task compile' again.",
    );
  } else say(`compile: deno compile failed:\n${compiled.out}`);
  Deno.exit(1);
}
// A full deno given as DENORT_BIN yields a binary that behaves as the deno CLI: catch that here.
const check = await new Deno.Command(`${root}dist/gpuctl`, {
  args: ["--version"],
  stdout: "piped",
  stderr: "piped",
}).output();
const version = new TextDecoder().decode(check.stdout).trim();
if (!version.startsWith("gpuctl ")) {
  say(
    `compile: dist/gpuctl does not run as gpuctl (got "${
      version.split("\n")[0]
    }"): is DENORT_BIN really denort?`,
  );
  Deno.exit(1);
}
say(`compile: built dist/gpuctl (${version})`);
