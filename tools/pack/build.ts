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

/**
 * The V8 options a packed gpuctl's short-lived processes run with (the launcher passes them to Deno for every
 * command but `serve`).
 * - A young generation of 8 MiB from the start: a container's gpuctl process allocates a few MiB and exits, and
 *   with V8's small default it stopped for two or three scavenges on the way, each of which only moved objects
 *   about to be dropped at exit.
 * - No JIT (`--jitless`): such a process runs each function a handful of times, from the bytecode Deno keeps in
 *   its code cache; compiling machine code for it (and mapping that code executable) is work the process never
 *   earns back. The cost is that WebAssembly is off: gpuctl has none (tests/cli/build_test.ts checks the bundle).
 * - No helper threads (`--single-threaded`): no concurrent marking or compiling beside a process that ends first,
 *   and on a small host they would take a core from the runtime starting the container.
 * `gpuctl serve` lives on, and keeps V8's own sizing and compilers: with the young generation above, its peak
 * memory in the hostile bench went past that bench's bound (103 MiB, against 96–99). A compiled gpuctl
 * (`deno compile`) has one set of options for every command, so it has none.
 */
export const V8_FLAGS = "--min-semi-space-size=8,--jitless,--single-threaded";

/** gcc's command line (after `gcc`) for the static launcher at `out`, from the checkout at `root`. */
export function launcherArgs(root: string, out: string): string[] {
  return [
    "-static",
    "-Os",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wno-format-truncation",
    `-DGPUCTL_V8_FLAGS="--v8-flags=${V8_FLAGS}"`,
    "-o",
    out,
    ...LAUNCHER_SOURCES.map((s) => `${root}/${s}`),
  ];
}
