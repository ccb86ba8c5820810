/**
 * `gpuctl install`: the names gpuctl answers to, next to it: `gpuctl-runtime`, a POSIX sh front that runs gpuctl
 * only for a container that may ask for a GPU (`oci/front.ts`), and `nvidia-container-runtime-hook`, a link to the
 * running binary (or, when gpuctl runs from source or from the bundle, a small launcher); with `--cdi`, the CDI
 * spec too. Idempotent; never replaces a file it did not create.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { frontScript, INSTALL_MARK, shQuote } from "../oci/front.ts";
import { VERSION } from "./version.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";

export const HELP = `Usage: gpuctl install [--prefix DIR] [--cdi] [--cdi-output FILE] [--uninstall]

Creates, in DIR (default: the directory of this gpuctl; /usr/local/bin from source or the bundle):
  gpuctl-runtime                  a small sh front: runc's commands, and containers whose config.json
                                  asks for no GPU, go straight to the runtime without starting gpuctl
  nvidia-container-runtime-hook   a link to this binary (from source or dist/gpuctl.js: a launcher that
                                  runs it with Deno), the name Docker's --gpus looks for
With --cdi, also writes the CDI spec (gpuctl cdi generate) to FILE (default /var/run/cdi/nvidia.json),
its hook being DIR/nvidia-container-runtime-hook.

Running it again changes nothing; a file of those names that gpuctl did not create is never replaced.
--uninstall removes what install created, and nothing else. The front holds the configuration's
runtimes, swarmResource and cdiAnnotationPrefixes: run install again after changing them.
`;

export const NAMES = ["gpuctl-runtime", "nvidia-container-runtime-hook"] as const;

interface Target {
  kind: "link" | "script";
  /** For a link: the binary; for a script: its text. */
  value: string;
}

/** How gpuctl itself is run: the compiled binary, or Deno with the entry module (source or bundle). */
function gpuctlCommand(): string[] {
  if (Deno.build.standalone) return [Deno.execPath()];
  return [Deno.execPath(), "run", "-A", "--quiet", new URL(Deno.mainModule).pathname];
}

function target(ctx: Context, name: (typeof NAMES)[number]): Target {
  if (name === "gpuctl-runtime") {
    return { kind: "script", value: frontScript([...gpuctlCommand(), "runtime"], ctx.config, VERSION) };
  }
  if (Deno.build.standalone) return { kind: "link", value: Deno.execPath() };
  return {
    kind: "script",
    value: `#!/bin/sh\n${INSTALL_MARK}\nexec ${[...gpuctlCommand(), "hook"].map(shQuote).join(" ")} "$@"\n`,
  };
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
      if (t.kind === "link" && real === Deno.realPathSync(t.value)) return "same";
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
    const t = values.uninstall ? { kind: "script" as const, value: "" } : target(ctx, name);
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
    if (t.kind === "link") Deno.symlinkSync(t.value, tmp);
    else Deno.writeTextFileSync(tmp, t.value, { mode: 0o755, createNew: true });
    if (t.kind === "script") Deno.chmodSync(tmp, 0o755);
    Deno.renameSync(tmp, path); // atomic
    ctx.out(`${path} → ${t.kind === "link" ? t.value : name === "gpuctl-runtime" ? "front" : "launcher"}\n`);
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
