/**
 * `gpuctl install`: the names gpuctl answers to, next to it: `gpuctl-runtime` and
 * `nvidia-container-runtime-hook`, as links to the running binary (or, when gpuctl runs from source or from the
 * bundle, as small launchers). Idempotent; never replaces a file it did not create.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";

export const HELP = `Usage: gpuctl install [--prefix DIR] [--uninstall]

Creates gpuctl-runtime and nvidia-container-runtime-hook in DIR (default: the directory of this gpuctl),
as links to this binary; from source or from dist/gpuctl.js, as launchers that run it with Deno. Running it
again changes nothing; a file of those names that gpuctl did not create is never replaced. --uninstall
removes what install created, and nothing else.
`;

export const NAMES: Record<string, string> = {
  "gpuctl-runtime": "runtime",
  "nvidia-container-runtime-hook": "hook",
};
const MARK = "# gpuctl install launcher";

interface Target {
  kind: "link" | "launcher";
  /** For a link: the binary; for a launcher: the script text. */
  value: string;
}

function target(command: string): Target {
  if (Deno.build.standalone) return { kind: "link", value: Deno.execPath() };
  const entry = new URL(Deno.mainModule).pathname;
  return {
    kind: "launcher",
    value: `#!/bin/sh\n${MARK}\nexec '${Deno.execPath()}' run -A --quiet '${entry}' ${command} "$@"\n`,
  };
}

/** Whether `path` is something install created: a link to `t`, or a launcher with our mark. */
function ours(path: string, t: Target): "same" | "ours" | "foreign" | "absent" {
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
      if (t.kind === "link" && Deno.realPathSync(resolved) === Deno.realPathSync(t.value)) return "same";
    } catch { /* dangling */ }
    return "foreign";
  }
  if (info.isFile && info.size < 4096) {
    const text = Deno.readTextFileSync(path);
    if (text.includes(MARK)) return text === t.value ? "same" : "ours";
  }
  return "foreign";
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = await parse("install", args, {
    prefix: { type: "string" },
    uninstall: { type: "boolean" },
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
  for (const [name, command] of Object.entries(NAMES)) {
    const path = `${dir}/${name}`;
    const t = target(command);
    const state = ours(path, t);
    if (values.uninstall) {
      if (state === "same" || state === "ours") {
        Deno.removeSync(path);
        ctx.out(`removed ${path}\n`);
      } else if (state === "foreign") {
        ctx.warn(`${path} was not created by gpuctl install; left in place`);
      }
      continue;
    }
    if (state === "same") {
      ctx.out(`${path}: already installed\n`);
      continue;
    }
    if (state === "foreign") {
      throw new GpuctlError(
        path,
        "exists and was not created by gpuctl install; remove it first, or use --prefix",
      );
    }
    Deno.mkdirSync(dir, { recursive: true });
    const tmp = `${dir}/.${name}.gpuctl-${Deno.pid}`;
    if (t.kind === "link") Deno.symlinkSync(t.value, tmp);
    else Deno.writeTextFileSync(tmp, t.value, { mode: 0o755, createNew: true });
    Deno.renameSync(tmp, path); // atomic
    ctx.out(`${path} → ${t.kind === "link" ? t.value : "launcher"}\n`);
  }
  return 0;
}
