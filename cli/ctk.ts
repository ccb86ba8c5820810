/**
 * NVIDIA's `nvidia-ctk` command line, run by gpuctl (also as a link named `nvidia-ctk`, which `gpuctl install
 * --nvidia-names` makes): an operator's scripts, install guides and the GPU Operator keep working. Each form runs
 * the gpuctl command that does the same, and gpuctl's commands take NVIDIA's flag names themselves:
 *
 * | nvidia-ctk                                   | gpuctl                                   |
 * |----------------------------------------------|------------------------------------------|
 * | runtime configure --runtime=R …              | configure R … (and `gpuctl runtime configure`) |
 * | cdi generate / list / transform root …        | cdi generate / list / transform-root …    |
 * | system create-device-nodes / create-dev-char-symlinks … | system …                     |
 * | config [default] [--set K=V] [--in-place]    | config …                                 |
 * | info, --version                              | info, --version                          |
 *
 * `hook NAME` (the hooks of a spec nvidia-ctk wrote) is not run: gpuctl's specs carry gpuctl's hook, and a spec of
 * NVIDIA's wants NVIDIA's; the error says to write the spec again with `gpuctl cdi generate`.
 * @module
 */
import { UsageError } from "../errors/mod.ts";
import type { Context } from "./context.ts";

export const HELP =
  `Usage: nvidia-ctk [--debug] [--quiet] COMMAND ...   (gpuctl, answering to NVIDIA's command line)

  runtime configure --runtime=docker|containerd|crio [--config FILE] [--nvidia-runtime-name NAME]
                    [--nvidia-set-as-default] [--cdi.enabled] [--dry-run]
  cdi generate [--output FILE] [--format json|yaml] [--driver-root DIR] [--dev-root DIR]
               [--library-search-path DIR] [--nvidia-cdi-hook-path PATH] [--device-name-strategy S]
               [--vendor V] [--class C] [--mode auto|nvml]
  cdi list [--spec-dir DIR]...
  cdi transform root --from DIR --to DIR [--input FILE] [--output FILE]
  system create-device-nodes [--control-devices] [--load-kernel-modules] [--dev-root DIR] [--dry-run]
  system create-dev-char-symlinks [--dev-root DIR] [--dry-run]
  config [default] [--set KEY=VALUE]... [--in-place] [--output FILE]
  info
  --version

Each runs the gpuctl command that does the same (gpuctl COMMAND --help tells more).
`;

export async function run(ctx: Context, args: string[]): Promise<number> {
  const rest = args.filter((a) => a !== "--quiet" && a !== "-q" && a !== "--debug" && a !== "-d");
  const [group, sub, ...more] = rest;
  const to = async (name: string, a: string[]) => await (await ctx.commands[name]!.load()).run(ctx, a);
  switch (group) {
    case undefined:
    case "--help":
    case "-h":
    case "help":
      ctx.out(HELP);
      return group === undefined ? 2 : 0;
    case "--version":
    case "-v":
    case "version": {
      const { versionText } = await import("../version.ts");
      ctx.out(versionText());
      return 0;
    }
    case "runtime":
      if (sub === "configure") return await to("configure", more);
      throw new UsageError(`nvidia-ctk runtime ${sub ?? ""}`.trim(), "unknown command (runtime configure)");
    case "cdi":
      if (sub === "transform") {
        if (more[0] !== "root") {
          throw new UsageError(
            `nvidia-ctk cdi transform ${more[0] ?? ""}`.trim(),
            "unknown transform (root)",
          );
        }
        return await to("cdi", ["transform-root", ...more.slice(1)]);
      }
      return await to("cdi", rest.slice(1));
    case "system":
    case "config":
    case "info":
      return await to(group, rest.slice(1));
    case "hook":
      throw new UsageError(
        `nvidia-ctk hook ${sub ?? ""}`.trim(),
        "is a hook of a CDI spec that NVIDIA's nvidia-ctk wrote, which gpuctl does not run: write the spec again with gpuctl cdi generate --output FILE",
      );
    default:
      throw new UsageError(
        `nvidia-ctk ${group}`,
        "unknown command (runtime, cdi, system, config, info, --version)",
      );
  }
}
