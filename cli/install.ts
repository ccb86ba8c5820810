/**
 * `gpuctl install`: the names gpuctl answers to, next to it, as POSIX sh fronts (`oci/front.ts`): `gpuctl-runtime`,
 * which runs gpuctl only for a container that may ask for a GPU, and `nvidia-container-runtime-hook`; both hand
 * their work to `gpuctl serve` when it runs. With `--cdi`, the CDI spec too. Idempotent; never replaces a file it
 * did not create (a link to this binary, which earlier versions made, counts as its own).
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { frontScript, hookFrontScript, INSTALL_MARK, type ServeClient } from "../oci/front.ts";
import { answerTimeout, serveDir } from "../serve/server.ts";
import { VERSION } from "./version.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import type { Config } from "../config/schema.ts";

export const HELP = `Usage: gpuctl install [--prefix DIR] [--cdi] [--cdi-output FILE] [--uninstall]

Creates, in DIR (default: the directory of this gpuctl; /usr/local/bin from source or the bundle):
  gpuctl-runtime                  a small sh front: runc's commands, and containers whose config.json
                                  asks for no GPU, go straight to the runtime without starting gpuctl
  nvidia-container-runtime-hook   a small sh front too, the name Docker's --gpus looks for
Both hand a GPU container's work to 'gpuctl serve' when it runs, and run gpuctl otherwise.
With --cdi, also writes the CDI spec (gpuctl cdi generate) to FILE (default /var/run/cdi/nvidia.json),
its hook being DIR/nvidia-container-runtime-hook.

Running it again changes nothing; a file of those names that gpuctl did not create is never replaced.
--uninstall removes what install created, and nothing else. The fronts hold the configuration's
runtimes, swarmResource, cdiAnnotationPrefixes, cacheDir and nvmlTimeout: run install again after
changing them, and after upgrading gpuctl.
`;

export const NAMES = ["gpuctl-runtime", "nvidia-container-runtime-hook"] as const;

interface Target {
  /** The script's text. */
  value: string;
}

/** How gpuctl itself is run: the compiled binary, or Deno with the entry module (source or bundle). */
function gpuctlCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  return [Deno.execPath(), "run", "-A", "--quiet", new URL(Deno.mainModule).pathname];
}

/**
 * How the fronts reach `gpuctl serve`: its directory, the answer timeout, and the coreutils they use for it, by
 * absolute path (a hook runs with the environment its config.json entry gives, often none). `null` (the fronts then
 * always run gpuctl) without a cacheDir or without those tools.
 */
export function serveClient(config: Config): ServeClient | null {
  const dir = serveDir(config.cacheDir);
  const find = (name: string) =>
    ["/usr/bin", "/bin", "/usr/local/bin"].map((d) => `${d}/${name}`).find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });
  const [mkfifo, sleep, head] = ["mkfifo", "sleep", "head"].map(find);
  if (dir === null || mkfifo === undefined || sleep === undefined || head === undefined) return null;
  return { dir, timeout: answerTimeout(config), mkfifo, sleep, head };
}

function target(ctx: Context, name: (typeof NAMES)[number]): Target {
  const serve = serveClient(ctx.config);
  if (name === "gpuctl-runtime") {
    return { value: frontScript([...gpuctlCommand(), "runtime"], ctx.config, VERSION, serve) };
  }
  return { value: hookFrontScript([...gpuctlCommand(), "hook"], VERSION, serve) };
}

/** Whether `path` is what install makes (`same`), something it made before (`ours`), someone else's, or absent. */
function state(path: string, t: Target): "same" | "ours" | "foreign" | "absent" {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch {
    return "absent";
  }
  if (info.isSymlink) {
    const to = Deno.readLinkSync(path);
    const resolved = to.startsWith("/") ? to : `${path.slice(0, path.lastIndexOf("/"))}/${to}`;
    try {
      const real = Deno.realPathSync(resolved);
      if (real === Deno.realPathSync(Deno.execPath())) return "ours";
    } catch { /* dangling */ }
    return "foreign";
  }
  if (info.isFile && info.size < 64 << 10) {
    const text = Deno.readTextFileSync(path);
    if (text.includes(INSTALL_MARK)) return text === t.value ? "same" : "ours";
  }
  return "foreign";
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = await parse("install", args, {
    prefix: { type: "string" },
    uninstall: { type: "boolean" },
    cdi: { type: "boolean" },
    "cdi-output": { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const exe = Deno.execPath();
  const dir =
    (values.prefix ?? (Deno.build.standalone ? exe.slice(0, exe.lastIndexOf("/")) : "/usr/local/bin"))
      .replace(/\/+$/, "");
  if (!dir.startsWith("/")) throw new GpuctlError("install --prefix", "must be an absolute path");
  for (const name of NAMES) {
    const path = `${dir}/${name}`;
    const t = values.uninstall ? { value: "" } : target(ctx, name);
    const s = state(path, t);
    if (values.uninstall) {
      if (s === "same" || s === "ours") {
        Deno.removeSync(path);
        ctx.out(`removed ${path}\n`);
      } else if (s === "foreign") {
        ctx.warn(`${path} was not created by gpuctl install; left in place`);
      }
      continue;
    }
    if (s === "same") {
      ctx.out(`${path}: already installed\n`);
      continue;
    }
    if (s === "foreign") {
      throw new GpuctlError(
        path,
        "exists and was not created by gpuctl install; remove it first, or use --prefix",
      );
    }
    Deno.mkdirSync(dir, { recursive: true });
    const tmp = `${dir}/.${name}.gpuctl-${Deno.pid}`;
    Deno.writeTextFileSync(tmp, t.value, { mode: 0o755, createNew: true });
    Deno.chmodSync(tmp, 0o755);
    Deno.renameSync(tmp, path); // atomic
    ctx.out(`${path} → front\n`);
  }
  if (!values.uninstall && !Deno.build.standalone) {
    // Deno keeps a module's V8 code cache only when a run of it ends on its own, which a pass-through never does
    // (it becomes runc): one plain run now spares the first containers a slower start.
    const [exe, ...pre] = gpuctlCommand();
    await new Deno.Command(exe!, { args: [...pre, "--version"], stdout: "null", stderr: "null" }).output()
      .catch(() => {});
  }
  if (values.cdi && !values.uninstall) {
    const file = values["cdi-output"] ?? "/var/run/cdi/nvidia.json";
    const { run: cdi } = await import("./cdi.ts");
    return await cdi(ctx, [
      "generate",
      "--output",
      file,
      "--hook-path",
      `${dir}/nvidia-container-runtime-hook`,
    ]);
  }
  return 0;
}
