/**
 * `gpuctl install`: gpuctl on a host, self-contained. The executable is copied to a place of its own,
 * `LIBDIR/<version>-<digest>/gpuctl`, and everything installed names only that copy: the `gpuctl` link and the sh
 * fronts (`serve/fronts.ts`) `gpuctl-runtime` and `nvidia-container-runtime-hook` in DIR, and with `--cdi` the CDI
 * spec's hook. The file it was run from can then go.
 *
 * An upgrade is the new gpuctl's install: every file is replaced by a rename, so a container starting meanwhile
 * runs the old gpuctl or the new one, never neither; the previous copy stays for what already started with it; a
 * running `gpuctl serve` is told to restart. `--uninstall` removes all of it, but never while an engine's
 * configuration or a CDI spec still names it (engines/references.ts), unless forced.
 *
 * From source or the bundle there is no single executable: the fronts then run Deno on this checkout
 * (development and tests), and install says so.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import {
  frontCommand,
  hookFront,
  INSTALL_MARK,
  runtimeFront,
  type ServeClient,
  stampFront,
} from "../serve/fronts.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { nvidiaConfigPath } from "../config/nvidia.ts";
import { answerTimeout, serveDir } from "../serve/server.ts";
import { packTrailer, selfCommand, selfExecutable, VERSION } from "../version.ts";
import { parse } from "./args.ts";
import type { Context } from "./context.ts";
import type { Config } from "../config/schema.ts";
import { CDI_OUTPUT } from "../cdi/spec.ts";

export const HELP =
  `Usage: gpuctl install [--prefix DIR] [--lib-dir LIBDIR] [--link] [--nvidia-names] [--cdi [--cdi-output FILE]]
       gpuctl install --uninstall [--force] [--prefix DIR] [--lib-dir LIBDIR]

Installs this gpuctl on the host:
  LIBDIR/<version>-<digest>/gpuctl   a copy of this executable, the only file the names below run
                                     (LIBDIR default: /usr/local/lib/gpuctl, beside DIR)
  DIR/gpuctl                         a link to that copy (DIR default: /usr/local/bin)
  DIR/gpuctl-runtime                 a small sh front: runc's commands, and containers whose config.json
                                     asks for no GPU, go straight to the runtime without starting gpuctl
  DIR/nvidia-container-runtime-hook  a small sh front too, the name Docker's --gpus looks for
Both fronts hand a GPU container's work to 'gpuctl serve' when it runs, and run gpuctl otherwise.
With --nvidia-names, also NVIDIA's other names, as links (never over a file that is there): nvidia-ctk
(gpuctl, answering to NVIDIA's command line), nvidia-container-runtime and nvidia-container-toolkit.
With --link, the copy is a hard link where it can be (for a package manager's file, which it replaces
by a rename, never in place). With --cdi, also writes the CDI spec (gpuctl cdi generate) to FILE (default /var/run/cdi/nvidia.json),
its hook being DIR/nvidia-container-runtime-hook.

Upgrade: run the new gpuctl's install. Each file is replaced by an atomic rename, so a container
starting meanwhile gets the old gpuctl or the new one; the previous copy is kept for containers
already started with it; a running 'gpuctl serve' is told to restart (SIGHUP). Running install
again changes nothing; a file of those names that gpuctl did not create is never replaced. The
fronts hold the configuration's runtimes, swarmResource, cdiAnnotationPrefixes, cacheDir and
nvmlTimeout: run install again after changing them.

--uninstall removes all of it, and nothing else, unless a Docker, containerd or CRI-O configuration
or a CDI spec still names it: then it removes nothing and names each, with the command that removes
the reference. --force removes it anyway, and names what now points nowhere.
  --docker-config FILE      Docker's daemon.json (default /etc/docker/daemon.json)
  --containerd-config FILE  containerd's config.toml (default /etc/containerd/config.toml)
  --crio-config FILE        gpuctl's CRI-O drop-in (default /etc/crio/crio.conf.d/99-gpuctl.conf)
The CDI specs looked at are those in cdiSpecDirs.

From source or the bundle (deno run) there is no single executable to copy: the fronts then run
Deno on this checkout, for development; build dist/gpuctl (deno task dist) for a host.
`;

export const NAMES = ["gpuctl-runtime", "nvidia-container-runtime-hook"] as const;

/**
 * NVIDIA's other names, linked with --nvidia-names (never over a file that is there: NVIDIA's toolkit, still
 * installed, keeps its own): what each links to.
 */
function nvidiaNames(prefix: string, gpuctl: string | null): Record<string, string> {
  return {
    ...(gpuctl !== null ? { "nvidia-ctk": gpuctl } : {}),
    "nvidia-container-runtime": `${prefix}/gpuctl-runtime`,
    "nvidia-container-toolkit": `${prefix}/nvidia-container-runtime-hook`,
  };
}

/** The file in a version directory that says install made it (so uninstall may remove it). */
const VERSION_MARK = ".installed-by-gpuctl";

/**
 * How the fronts reach `gpuctl serve`: its directory, the answer timeout, and the coreutils they use for it, by
 * absolute path (a hook runs with the environment its config.json entry gives, often none). `null` (the fronts then
 * always run gpuctl) without a cacheDir or without those tools.
 */
export function serveClient(config: Config): ServeClient | null {
  const dir = serveDir(config.cacheDir);
  const mkfifo = tool("mkfifo"), sleep = tool("sleep"), head = tool("head"), rm = tool("rm");
  if (dir === null || mkfifo === null || sleep === null || head === null || rm === null) return null;
  return { dir, timeout: answerTimeout(config), mkfifo, sleep, head, rm };
}

/** A tool the fronts run, by absolute path: an engine may run them with any PATH, or none. */
function tool(name: string): string | null {
  return ["/usr/bin", "/bin", "/usr/local/bin"].map((d) => `${d}/${name}`).find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  }) ?? null;
}

/**
 * The configuration file gpuctl runs with (`--config`, `$GPUCTL_CONFIG`, or the default; or NVIDIA's config.toml
 * when gpuctl has none of its own and the host has that), and its mtime.
 */
function configStamp(ctx: Context): { file: string; mtime: Date | null; fromNvidia: boolean } {
  const stat = (f: string) => {
    try {
      return Deno.statSync(f).mtime;
    } catch {
      return null;
    }
  };
  const file = ctx.globals.configPath ?? DEFAULT_CONFIG_PATH;
  const mtime = stat(file);
  if (mtime === null && ctx.globals.configPath === undefined) {
    const nv = nvidiaConfigPath((k) => Deno.env.get(k));
    const nvTime = stat(nv);
    if (nvTime !== null) return { file: nv, mtime: nvTime, fromNvidia: true };
  }
  return { file, mtime, fromNvidia: false };
}

function frontText(ctx: Context, name: (typeof NAMES)[number], gpuctl: string[], self: string): string {
  const serve = serveClient(ctx.config);
  if (name === "nvidia-container-runtime-hook") return hookFront({ gpuctl, version: VERSION, serve });
  const c = configStamp(ctx);
  return runtimeFront({
    gpuctl,
    version: VERSION,
    serve,
    config: ctx.config,
    configFile: c.file,
    hadConfig: c.mtime !== null,
    fromNvidia: c.fromNvidia,
    self,
    grep: tool("grep"),
  });
}

function lstat(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch {
    return null;
  }
}

function readSmall(path: string): string | null {
  const info = lstat(path);
  if (info === null || !info.isFile || info.size >= 64 << 10) return null;
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/** A front's state: what install would write (`same`), an earlier front (`ours`), someone else's, or absent. */
function frontState(path: string, want: string): "same" | "ours" | "foreign" | "absent" {
  if (lstat(path) === null) return "absent";
  const text = readSmall(path);
  if (text !== null && text.includes(INSTALL_MARK)) return text === want ? "same" : "ours";
  return "foreign";
}

/** Replaces (or creates) `path` by a rename from a file written beside it. */
function writeAtomically(path: string, write: (tmp: string) => void): void {
  const tmp = `${path.slice(0, path.lastIndexOf("/"))}/.${
    path.slice(path.lastIndexOf("/") + 1)
  }.gpuctl-${Deno.pid}`;
  try {
    Deno.removeSync(tmp);
  } catch { /* none left over */ }
  try {
    write(tmp);
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* not made */ }
    throw new GpuctlError(path, `cannot write it (${(e as Error).message})`, 1, { cause: e });
  }
}

/**
 * The executable's digest, for its version directory's name: two builds of one version do not collide. (`node:`
 * modules are imported where used: a bundle hoists a static one into every gpuctl start.)
 */
async function digest(file: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const h = createHash("sha256");
  const f = Deno.openSync(file, { read: true });
  try {
    const buf = new Uint8Array(1 << 20);
    for (let n; (n = f.readSync(buf)) !== null;) h.update(buf.subarray(0, n));
  } finally {
    f.close();
  }
  return h.digest("hex").slice(0, 12);
}

/**
 * Copies `exe` to `LIBDIR/<version>-<digest>/gpuctl` (unless it is that file already); returns that path. With
 * `link`, a hard link instead of a copy where the file system allows: for a package manager's file, which it
 * replaces by a rename and never rewrites in place.
 */
async function placeExecutable(ctx: Context, exe: string, libDir: string, link: boolean): Promise<string> {
  const dir = `${libDir}/${VERSION}-${await digest(exe)}`;
  const target = `${dir}/gpuctl`;
  let real = exe;
  try {
    real = Deno.realPathSync(exe);
  } catch { /* use it as named */ }
  if (real === target) return target;
  if (lstat(target)?.isFile && readSmall(`${dir}/${VERSION_MARK}`) !== null) {
    ctx.out(`${target}: already installed\n`);
    return target;
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o755 });
  Deno.writeTextFileSync(`${dir}/${VERSION_MARK}`, `${INSTALL_MARK}: gpuctl install copied gpuctl here\n`);
  writeAtomically(target, (tmp) => {
    if (link) {
      try {
        Deno.linkSync(exe, tmp);
        return;
      } catch { /* another file system: copied */ }
    }
    Deno.copyFileSync(exe, tmp);
    Deno.chmodSync(tmp, 0o755);
    const f = Deno.openSync(tmp, { read: true, write: true });
    f.syncSync();
    f.close();
  });
  ctx.out(`${target} ← ${exe}\n`);
  return target;
}

/** Whether `path` (a link or a file) is a gpuctl that install may replace with its link. */
function isOurGpuctl(path: string, libDir: string): boolean {
  const info = lstat(path);
  if (info === null) return true;
  if (info.isSymlink) return Deno.readLinkSync(path).startsWith(`${libDir}/`);
  if (!info.isFile) return false;
  try {
    return packTrailer(path) !== null; // a packed gpuctl copied there by hand
  } catch {
    return false;
  }
}

/** Whether the link at `path` is one --nvidia-names made: to a front in `prefix`, or into `libDir`. */
function isOurs(path: string, prefix: string, libDir: string): boolean {
  const to = Deno.readLinkSync(path);
  return to.startsWith(`${libDir}/`) || NAMES.some((n) => to === `${prefix}/${n}`);
}

/** Points `link` at `target`, atomically. */
function linkTo(link: string, target: string): void {
  writeAtomically(link, (tmp) => Deno.symlinkSync(target, tmp));
}

/** The version directories install made in `libDir`. */
function versionDirs(libDir: string): string[] {
  try {
    return [...Deno.readDirSync(libDir)].filter((e) => e.isDirectory)
      .map((e) => `${libDir}/${e.name}`).filter((d) => lstat(`${d}/${VERSION_MARK}`) !== null).sort();
  } catch {
    return [];
  }
}

/** Where a packed gpuctl run from anywhere but its install directory unpacks (tools/pack/launcher.c), as root. */
const RUNTIME_BASE = "/var/lib/gpuctl/runtime";

/**
 * Removes a version directory, and the Deno that the same file unpacked in RUNTIME_BASE when it was run from
 * where it was downloaded (the same payload, so the same digest).
 */
function removeVersion(ctx: Context, dir: string, why = ""): void {
  let id: string | null = null;
  try {
    id = packTrailer(`${dir}/gpuctl`)?.sha256.slice(0, 16) ?? null;
  } catch { /* not a packed gpuctl */ }
  Deno.removeSync(dir, { recursive: true });
  ctx.out(`removed ${dir}${why}\n`);
  if (id === null) return;
  try {
    Deno.removeSync(`${RUNTIME_BASE}/${id}`, { recursive: true });
    ctx.out(`removed ${RUNTIME_BASE}/${id}\n`);
  } catch { /* never unpacked there */ }
}

/** Tells a running `gpuctl serve` to restart (SIGHUP: it finishes the request in hand first). */
function restartServer(ctx: Context, config: Config): void {
  const dir = serveDir(config.cacheDir);
  if (dir === null) return;
  const pid = Number(readSmall(`${dir}/pid`)?.trim() ?? "");
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    Deno.kill(pid, "SIGHUP");
    ctx.out(`gpuctl serve (pid ${pid}) told to restart\n`);
  } catch { /* not running */ }
}

function options(args: string[]) {
  return parse("install", args, {
    prefix: { type: "string" },
    "lib-dir": { type: "string" },
    uninstall: { type: "boolean" },
    force: { type: "boolean" },
    link: { type: "boolean" },
    cdi: { type: "boolean" },
    "cdi-output": { type: "string" },
    "docker-config": { type: "string" },
    "containerd-config": { type: "string" },
    "crio-config": { type: "string" },
    "nvidia-names": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
}
type Values = Awaited<ReturnType<typeof options>>["values"];

function absolute(flag: string, path: string): string {
  if (!path.startsWith("/")) throw new GpuctlError(`install ${flag}`, "must be an absolute path");
  return path.replace(/\/+$/, "") || "/";
}

export async function run(ctx: Context, args: string[]): Promise<number> {
  const { values } = await options(args);
  if (values.help) {
    ctx.out(HELP);
    return 0;
  }
  const prefix = absolute("--prefix", values.prefix ?? "/usr/local/bin");
  const libDir = absolute(
    "--lib-dir",
    values["lib-dir"] ?? `${prefix.slice(0, prefix.lastIndexOf("/")) || ""}/lib/gpuctl`,
  );
  if (values.uninstall) return await uninstall(ctx, values, prefix, libDir);
  if (values.force) throw new GpuctlError("install --force", "goes with --uninstall");

  const exe = selfExecutable();
  let gpuctl: string[];
  let previous: string | null = null;
  if (exe !== null) {
    const target = await placeExecutable(ctx, exe, libDir, values.link === true);
    // Its first run unpacks it (a packed build) and warms Deno's code cache, so that no container pays for that.
    await new Deno.Command(target, { args: ["--version"], stdout: "null", stderr: "piped" }).output()
      .then((o) => {
        if (!o.success) {
          throw new GpuctlError(target, `does not run: ${new TextDecoder().decode(o.stderr).trim()}`);
        }
      });
    const link = `${prefix}/gpuctl`;
    if (!isOurGpuctl(link, libDir)) {
      throw new GpuctlError(
        link,
        "exists and is not a gpuctl install made; remove it first, or use --prefix",
      );
    }
    const old = lstat(link)?.isSymlink ? Deno.readLinkSync(link) : null;
    if (old !== target) {
      Deno.mkdirSync(prefix, { recursive: true });
      linkTo(link, target);
      ctx.out(`${link} → ${target}\n`);
      if (old !== null) previous = old.slice(0, old.lastIndexOf("/"));
    }
    gpuctl = [target];
  } else {
    gpuctl = selfCommand();
    ctx.warn(
      `installing from ${
        gpuctl.at(-1)
      } (not a single executable): the fronts run Deno on it, and stop working if it goes; build dist/gpuctl (deno task dist) and install that for a host`,
    );
  }

  for (const name of NAMES) {
    const path = `${prefix}/${name}`;
    const want = frontText(ctx, name, gpuctl, path);
    const s = frontState(path, want);
    // The runtime front's modification time is its configuration's: it notices a change to that file itself.
    const stampIt = () => {
      if (name === "gpuctl-runtime") stampFront(path, configStamp(ctx).file);
    };
    if (s === "same") {
      stampIt();
      ctx.out(`${path}: already installed\n`);
      continue;
    }
    if (s === "foreign") {
      throw new GpuctlError(
        path,
        "exists and was not created by gpuctl install; remove it first, or use --prefix",
      );
    }
    Deno.mkdirSync(prefix, { recursive: true });
    writeAtomically(path, (tmp) => {
      Deno.writeTextFileSync(tmp, want, { mode: 0o755, createNew: true });
      Deno.chmodSync(tmp, 0o755);
      if (name === "gpuctl-runtime") stampFront(tmp, configStamp(ctx).file);
    });
    ctx.out(`${path} → front\n`);
  }

  if (values["nvidia-names"]) {
    for (const [name, to] of Object.entries(nvidiaNames(prefix, exe !== null ? gpuctl[0]! : null))) {
      const path = `${prefix}/${name}`;
      const info = lstat(path);
      if (info === null) {
        Deno.symlinkSync(to, path);
        ctx.out(`${path} → ${to}\n`);
      } else if (info.isSymlink && Deno.readLinkSync(path) === to) ctx.out(`${path}: already installed\n`);
      else if (info.isSymlink && isOurs(path, prefix, libDir)) {
        linkTo(path, to);
        ctx.out(`${path} → ${to}\n`);
      } else ctx.warn(`${path} exists and is not gpuctl's (NVIDIA's own?): left in place`);
    }
  }
  if (exe !== null) {
    // Older copies go, but the one the link named until now: containers already started may still run it.
    const current = gpuctl[0]!.slice(0, gpuctl[0]!.lastIndexOf("/"));
    for (const d of versionDirs(libDir)) {
      if (d !== current && d !== previous) removeVersion(ctx, d, " (an older gpuctl)");
    }
    if (previous !== null) restartServer(ctx, ctx.config);
  } else {
    // Deno keeps a module's V8 code cache only when a run of it ends on its own, which a pass-through never does
    // (it becomes runc): one plain run now spares the first containers a slower start.
    const [cmd, ...pre] = gpuctl;
    await new Deno.Command(cmd!, { args: [...pre, "--version"], stdout: "null", stderr: "null" }).output()
      .catch(() => {});
  }
  if (values.cdi) {
    const file = values["cdi-output"] ?? CDI_OUTPUT;
    const { run: cdi } = await import("./cdi.ts");
    return await cdi(ctx, [
      "generate",
      "--output",
      file,
      "--hook-path",
      `${prefix}/nvidia-container-runtime-hook`,
    ]);
  }
  return 0;
}

async function uninstall(ctx: Context, values: Values, prefix: string, libDir: string): Promise<number> {
  // What install made: the fronts, the link, the version directories.
  const files: string[] = [];
  for (const name of NAMES) {
    const path = `${prefix}/${name}`;
    const s = frontState(path, "");
    if (s === "ours") files.push(path);
    else if (s === "foreign") ctx.warn(`${path} was not created by gpuctl install; left in place`);
  }
  const link = `${prefix}/gpuctl`;
  if (lstat(link)?.isSymlink && isOurGpuctl(link, libDir)) files.push(link);
  for (const name of Object.keys(nvidiaNames(prefix, ""))) {
    const path = `${prefix}/${name}`;
    if (lstat(path)?.isSymlink && isOurs(path, prefix, libDir)) files.push(path);
  }
  const dirs = versionDirs(libDir);

  const { engineReferences, namesAny } = await import("../engines/references.ts");
  const { DOCKER_CONFIG } = await import("../engines/docker.ts");
  const { CONTAINERD_CONFIG } = await import("../engines/containerd.ts");
  const { CRIO_DROPIN } = await import("../engines/crio.ts");
  const errors: string[] = [];
  const refs = (await engineReferences({
    dockerConfig: values["docker-config"] ?? DOCKER_CONFIG,
    containerdConfig: values["containerd-config"] ?? CONTAINERD_CONFIG,
    crioDropIn: values["crio-config"] ?? CRIO_DROPIN,
    cdiSpecDirs: ctx.config.cdiSpecDirs,
  }, errors)).filter((r) => namesAny(r.path, files, dirs));
  for (const e of errors) ctx.warn(`not checked for references to gpuctl: ${e}`);
  const lines = refs.map((r) => `${r.file}: ${r.what} → ${r.path}; run: ${r.fix}`);
  if (refs.length > 0 && !values.force) {
    for (const l of lines) ctx.err(l);
    throw new GpuctlError(
      "install --uninstall",
      `refused, nothing removed: ${
        refs.length === 1
          ? "the configuration above still names"
          : `the ${refs.length} configurations above name`
      } what it would remove, and the engine would then fail every container it starts; run the command shown, then install --uninstall again (or add --force)`,
    );
  }

  for (const path of files) {
    Deno.removeSync(path);
    ctx.out(`removed ${path}\n`);
  }
  for (const d of dirs) removeVersion(ctx, d);
  for (const d of [libDir, RUNTIME_BASE, "/var/lib/gpuctl"]) {
    try {
      Deno.removeSync(d); // only when empty
      ctx.out(`removed ${d}\n`);
    } catch { /* not there, or not empty */ }
  }
  for (const l of lines) ctx.warn(`now pointing at nothing: ${l}`);
  return 0;
}

/** The gpuctl command line a front at `path` runs, or null (not a front). For doctor. */
export function frontTarget(path: string): string[] | null {
  const text = readSmall(path);
  return text === null ? null : frontCommand(text);
}
