/**
 * How the packed executable's launcher is compiled: by `deno task dist` (tools/dist.ts), and by the tests that run
 * the same program as a serve client and a binary front. One list, so that what is tested is what ships.
 * @module
 */

/** The launcher's C sources, relative to the project root. */
export const LAUNCHER_SOURCES = [
  "tools/pack/launcher.c",
  "serve/fronts/client.c",
  "serve/fronts/front.c",
] as const;

/** gcc's command line (after `gcc`) for the static launcher at `out`, from the checkout at `root`. */
export function launcherArgs(root: string, out: string): string[] {
  return [
    "-static",
    "-Os",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-format-truncation",
    "-o",
    out,
    ...LAUNCHER_SOURCES.map((s) => `${root}/${s}`),
  ];
}
