/**
 * `deno task man`: gpuctl(1), the manual page, made from the same texts `gpuctl --help` and each command's
 * `--help` print (so the two cannot disagree), as roff: `dist/gpuctl.1`. `deno task dist` ships it (the tarball's
 * `man/gpuctl.1`, the package's `/usr/share/man/man1/gpuctl.1.gz`). Read it with `man -l dist/gpuctl.1`.
 * @module
 */
import { COMMANDS } from "../cli/commands.ts";
import { usage } from "../cli/dispatch.ts";
import { VERSION } from "../version.ts";

/**
 * Text as roff shows it verbatim: backslashes and leading dots or quotes escaped, and every character beyond
 * ASCII (—, →, …) as roff's Unicode escape.
 */
function literal(text: string): string {
  return text.replaceAll("\\", "\\e").replace(
    /[\u{80}-\u{10FFFF}]/gu,
    (c) => `\\[u${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0")}]`,
  ).split("\n").map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join("\n");
}

/** The page: NAME, SYNOPSIS, DESCRIPTION (the global help), then a section per command with its help. */
export async function manPage(date: string): Promise<string> {
  const out = [
    `.TH GPUCTL 1 "${date}" "gpuctl ${VERSION}" "User Commands"`,
    ".SH NAME",
    "gpuctl \\- NVIDIA GPUs in Docker, Podman and Kubernetes containers, from one executable",
    ".SH SYNOPSIS",
    ".B gpuctl",
    "[global options] <command> [options]",
    ".SH DESCRIPTION",
    ".nf",
    literal(usage().trimEnd()),
    ".fi",
  ];
  const names = Object.entries(COMMANDS).filter(([, c]) => !c.hidden).map(([n]) => n).sort();
  for (const n of names) {
    const help = (await COMMANDS[n]!.load()).HELP;
    if (help === undefined) continue;
    out.push(`.SH "gpuctl ${n.toUpperCase()}"`, ".nf", literal(help.trimEnd()), ".fi");
  }
  out.push(
    ".SH FILES",
    ".TP",
    ".I /etc/gpuctl/config.jsonc",
    "the configuration (JSONC); gpuctl config --default prints a commented one",
    ".TP",
    ".I /etc/nvidia-container-runtime/config.toml",
    "NVIDIA's configuration, read when gpuctl has none of its own",
    ".SH EXIT STATUS",
    "0 done; 1 failed (one line on stderr names the input and the fix); 2 a bad command line; 3 doctor's warnings",
    "only; 141 the reader of standard output went away.",
    ".SH SEE ALSO",
    "runc(8), docker(1), podman(1), containerd(8)",
    "",
  );
  return out.join("\n");
}

if (import.meta.main) {
  const root = new URL("../", import.meta.url).pathname;
  const epoch = Number(Deno.env.get("SOURCE_DATE_EPOCH") ?? Math.floor(Date.now() / 1000));
  const date = new Date(epoch * 1000).toISOString().slice(0, 10);
  const file = Deno.args[0] ?? `${root}dist/gpuctl.1`;
  Deno.mkdirSync(file.slice(0, file.lastIndexOf("/")), { recursive: true });
  Deno.writeTextFileSync(file, await manPage(date));
  console.log(file);
}
