/**
 * `gpuctl completion bash`: the script, run in a real bash as its completion machinery runs it (COMP_WORDS,
 * COMP_CWORD, then the function), offers gpuctl's commands, subcommands and options; and the options it offers
 * are those each command's help lists.
 */
import { assert, assertEquals } from "../assert.ts";
import { runGpuctl, tempDir } from "../helpers.ts";
import { optionsIn } from "../../cli/completion.ts";

Deno.test("completion bash: in a real bash, commands, subcommands and options complete", async () => {
  using t = tempDir();
  const g = await runGpuctl(["completion", "bash"]);
  assertEquals(g.code, 0, g.stderr);
  Deno.writeTextFileSync(`${t.path}/gpuctl.bash`, g.stdout);
  const complete = async (...words: string[]) => {
    const o = await new Deno.Command("bash", {
      args: [
        "--norc",
        "-c",
        `source ${t.path}/gpuctl.bash; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _gpuctl; printf '%s\\n' "\${COMPREPLY[@]}"`,
        "bash",
        ...words,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert(o.success, new TextDecoder().decode(o.stderr));
    return new TextDecoder().decode(o.stdout).split("\n").filter((l) => l !== "").sort();
  };
  assertEquals(await complete("gpuctl", "c"), ["cdi", "completion", "config", "configure"]);
  assertEquals(await complete("gpuctl", "cdi", "ge"), ["generate"]);
  assertEquals(
    await complete("gpuctl", "--config", "/x.jsonc", "li"),
    ["list"],
    "a global option's value skipped",
  );
  assertEquals(await complete("gpuctl", "doctor", "--ex"), ["--explain"]);
  assertEquals(await complete("gpuctl", "configure", "d"), ["docker"]);
  assertEquals(await complete("gpuctl", "configure", "docker", "--set"), ["--set-default"]);
  assertEquals(await complete("gpuctl", "help", "doc"), ["doctor"]);
  assertEquals(await complete("gpuctl", "--log-"), ["--log-format", "--log-level"]);
});

Deno.test("completion: options come from the help's usage and option lines, never from its prose", () => {
  const help = `Usage: gpuctl x [--alpha] [--beta N]

Does things, unlike Docker's --gpus.
  --gamma FILE   the gamma (see --delta)
  -h, --help     this help
`;
  assertEquals(optionsIn(help), ["--alpha", "--beta", "--gamma", "--help"]);
});

Deno.test("completion zsh: a script zsh would load (compdef, one case per command)", async () => {
  const g = await runGpuctl(["completion", "zsh"]);
  assertEquals(g.code, 0, g.stderr);
  assert(g.stdout.startsWith("#compdef gpuctl\n"));
  for (const c of ["cdi", "doctor", "list"]) assert(g.stdout.includes(`    ${c}) subs=(`), c);
  const bad = await runGpuctl(["completion", "fish"]);
  assertEquals([bad.code, bad.stderr], [2, "gpuctl: completion: name the shell: bash or zsh\n"]);
});
