/**
 * `gpuctl serve`: see `serve/server.ts`. Runs in the foreground until SIGTERM or SIGINT (systemd: the unit in
 * `deploy/systemd/gpuctl-serve.service`).
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { listen, serveLines } from "../serve/loop.ts";
import { announce, answerTimeout, serveDir } from "../serve/protocol.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import type { Config } from "../config/schema.ts";
import { nullLogger } from "../log/log.ts";

export const HELP = `Usage: gpuctl serve [--no-warm-up]

Keeps gpuctl running, so that a GPU container's start runs no gpuctl process: the fronts that
'gpuctl install' writes (gpuctl-runtime, nvidia-container-runtime-hook) hand the shim's create (mode
"spec") and the prestart hook to it, and run gpuctl themselves when it is not running. A container
gets exactly what a gpuctl process would give it: the same code, the configuration read again for
every request, the driver snapshot checked against the host every time.

Listens in <cacheDir>/serve (root only); one server per host. A front waits at most 2 × nvmlTimeout
+ 10 s for an answer, then stops the container with an error naming the server. Before it listens it
plans a GPU container once in a scratch directory (skip with --no-warm-up), so the first container
is as fast as the rest. Stop it with SIGTERM; the fronts then start gpuctl per container again.
SIGHUP (what 'gpuctl install' sends when it upgrades gpuctl) stops it the same way with exit status
75, which its systemd unit (deploy/systemd/gpuctl-serve.service) restarts with the new gpuctl.
`;

/** The exit status of a server stopped by SIGHUP to be restarted (EX_TEMPFAIL). */
export const RESTART_EXIT = 75;

/** Plans and prepares one GPU container in a scratch bundle, a few times: the code the requests run, compiled. */
async function warmUp(config: Config, configPath: string | undefined): Promise<void> {
  const { prepareBundle } = await import("../flows/shim.ts");
  const tmp = Deno.makeTempDirSync({ prefix: "gpuctl-serve-warm-up-" });
  try {
    Deno.mkdirSync(`${tmp}/rootfs/etc`, { recursive: true });
    const spec = JSON.stringify({
      ociVersion: "1.0.2",
      process: { args: ["/bin/true"], env: ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=all"] },
      root: { path: "rootfs" },
      mounts: [],
      linux: { resources: { devices: [{ allow: false, access: "rwm" }] } },
    });
    for (let i = 0; i < 8; i++) {
      Deno.writeTextFileSync(`${tmp}/config.json`, spec);
      const todo = await prepareBundle(config, tmp, "create", nullLogger, configPath);
      todo?.files();
    }
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = parse("serve", args, {
    "no-warm-up": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const config = ctx.config;
  const dir = serveDir(config.cacheDir);
  if (dir === null) {
    throw new GpuctlError("cacheDir", "is null: gpuctl serve listens in <cacheDir>/serve; set cacheDir");
  }
  const l = listen(dir);
  let server: ReturnType<typeof l.server> | null = null;
  // SIGHUP (sent by `gpuctl install` when it upgrades gpuctl): stop the same way, with RESTART_EXIT, which the
  // systemd unit restarts, so that the server runs the gpuctl now installed.
  const stop = (code: number) => {
    const exit = () => {
      l.close();
      ctx.log.info(code === 0 ? "gpuctl serve stopped" : "gpuctl serve stopped to restart", { dir });
      Deno.exit(code);
    };
    // A request being served is finished first: its container is not left half-prepared.
    if (server === null) exit();
    else server.whenIdle(exit);
  };
  Deno.addSignalListener("SIGTERM", () => stop(0));
  Deno.addSignalListener("SIGINT", () => stop(0));
  Deno.addSignalListener("SIGHUP", () => stop(RESTART_EXIT));
  if (!values["no-warm-up"]) {
    const t0 = performance.now();
    try {
      await warmUp(config, ctx.globals.configPath);
      ctx.log.info("gpuctl serve warmed up", { ms: Math.round(performance.now() - t0) });
    } catch (e) {
      ctx.warn(`warm-up failed (containers will say why): ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  server = l.server(ctx.globals.configPath);
  if (ctx.globals.logFormat) server.logFormat = { format: ctx.globals.logFormat };
  server.log = ctx.log;
  announce(dir);
  ctx.log.info("gpuctl serve listening", { dir, timeout: answerTimeout(config) });
  return await serveLines(l.fifo, server);
}
