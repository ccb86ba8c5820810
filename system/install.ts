/**
 * Installing gpuctl on a host (`gpuctl install`), self-contained. The executable is copied to a place of its own,
 * `LIBDIR/<version>-<digest>/gpuctl`, and everything installed names only that copy: the `gpuctl` link and the sh
 * fronts (`serve/fronts.ts`) `gpuctl-runtime` and `nvidia-container-runtime-hook` in DIR, and with `--cdi` the CDI
 * spec's hook. The file it was run from can then go.
 *
 * An upgrade is the new gpuctl's install: every file is replaced by a rename, so a container starting meanwhile
 * runs the old gpuctl or the new one, never neither; the previous copy stays for what already started with it; a
 * running `gpuctl serve` is told to restart. `--uninstall` removes all of it, but never while an engine's
 * configuration or a CDI spec still names it (engines/references.ts), nor while `gpuctl serve` runs, unless forced;
 * what gpuctl kept at run time in `cacheDir` (the snapshot, kept plans and linker caches) goes with it.
 *
 * From source or the bundle there is no single executable: the fronts then run Deno on this checkout
 * (development and tests), and install says so.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import {
  binaryFront,
  hookFront,
  launcherOf,
  runtimeFront,
  type ServeClient,
  stampFront,
} from "../serve/fronts.ts";
import { type Config, DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { nvidiaConfigPath } from "../config/nvidia.ts";
import { answerTimeout, runningServer, serveDir } from "../serve/protocol.ts";
import { packTrailer, selfCommand, selfExecutable, VERSION } from "../version.ts";
import {
  frontState,
  isOurGpuctl,
  isOurs,
  isOwnDir,
  linkTo,
  lstat,
  NAMES,
  placeExecutable,
  removeRunState,
  removeVersion,
  restartServer,
  RUNTIME_BASE,
  versionDirs,
  writeAtomically,
} from "./install_files.ts";

/** What install reports to and reads: the configuration, and where its lines go. */
export interface InstallIo {
  config: Config;
  /** `--config` as given. */
  configPath: string | undefined;
  out(text: string): void;
  warn(line: string): void;
  err(line: string): void;
}

export { NAMES } from "./install_files.ts";

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
    } catch { // not there
      return false;
    }
  }) ?? null;
}

/**
 * The configuration file gpuctl runs with (`--config`, `$GPUCTL_CONFIG`, or the default; or NVIDIA's config.toml
 * when gpuctl has none of its own and the host has that), and its mtime.
 */
function configStamp(io: InstallIo): { file: string; mtime: Date | null; fromNvidia: boolean } {
  const stat = (f: string) => {
    try {
      return Deno.statSync(f).mtime;
    } catch { // absent
      return null;
    }
  };
  const file = io.configPath ?? DEFAULT_CONFIG_PATH;
  const mtime = stat(file);
  if (mtime === null && io.configPath === undefined) {
    const nv = nvidiaConfigPath((k) => Deno.env.get(k));
    const nvTime = stat(nv);
    if (nvTime !== null) return { file: nv, mtime: nvTime, fromNvidia: true };
  }
  return { file, mtime, fromNvidia: false };
}

/** A front's text; `client`: the packed gpuctl that is its serve client (serve/fronts/client.c), if there is one. */
function frontText(
  io: InstallIo,
  name: (typeof NAMES)[number],
  gpuctl: string[],
  self: string,
  client: string | null,
): string {
  const serve = serveClient(io.config);
  if (name === "nvidia-container-runtime-hook") return hookFront({ gpuctl, version: VERSION, serve, client });
  const c = configStamp(io);
  return runtimeFront({
    gpuctl,
    version: VERSION,
    serve,
    client,
    config: io.config,
    configFile: c.file,
    hadConfig: c.mtime !== null,
    fromNvidia: c.fromNvidia,
    self,
    grep: tool("grep"),
  });
}

export interface InstallOptions {
  /** Where the fronts and the `gpuctl` link go. */
  prefix: string;
  /** Where the version directories go. */
  libDir: string;
  /** A hard link instead of a copy where the file system allows. */
  link: boolean;
  /** NVIDIA's other names, as links. */
  nvidiaNames: boolean;
}

/** Installs this gpuctl (see the module's description). */
export async function install(io: InstallIo, o: InstallOptions): Promise<void> {
  const exe = selfExecutable();
  let gpuctl: string[];
  let previous: string | null = null;
  if (exe !== null) {
    const placed = await placeGpuctl(io, exe, o);
    previous = placed.previous;
    gpuctl = [placed.target];
  } else {
    gpuctl = selfCommand();
    io.warn(
      `installing from ${
        gpuctl.at(-1)
      } (not a single executable): the fronts run Deno on it, and stop working if it goes; build dist/gpuctl (deno task dist) and install that for a host`,
    );
  }
  writeFronts(io, o.prefix, gpuctl);
  if (o.nvidiaNames) linkNvidiaNames(io, o, exe !== null ? gpuctl[0]! : null);
  if (exe !== null) {
    // Older copies go, but the one the link named until now: containers already started may still run it.
    const current = gpuctl[0]!.slice(0, gpuctl[0]!.lastIndexOf("/"));
    for (const d of versionDirs(o.libDir)) {
      if (d !== current && d !== previous) removeVersion((t) => io.out(t), d, " (an older gpuctl)");
    }
    if (previous !== null) restartServer((t) => io.out(t), io.config);
  } else {
    // Deno keeps a module's V8 code cache only when a run of it ends on its own, which a pass-through never does
    // (it becomes runc): one plain run now spares the first containers a slower start.
    const [cmd, ...pre] = gpuctl;
    await new Deno.Command(cmd!, { args: [...pre, "--version"], stdout: "null", stderr: "null" }).output()
      .catch(() => {});
  }
}

/**
 * The executable copied into its version directory, run once, and `prefix/gpuctl` linked to it. Returns the copy
 * and the version directory the link named before, if another.
 */
async function placeGpuctl(
  io: InstallIo,
  exe: string,
  o: InstallOptions,
): Promise<{ target: string; previous: string | null }> {
  const target = await placeExecutable((t) => io.out(t), exe, o.libDir, o.link);
  // Its first run unpacks it (a packed build) and warms Deno's code cache, so that no container pays for that.
  const run = await new Deno.Command(target, { args: ["--version"], stdout: "null", stderr: "piped" })
    .output();
  if (!run.success) {
    throw new GpuctlError(target, `does not run: ${new TextDecoder().decode(run.stderr).trim()}`);
  }
  const link = `${o.prefix}/gpuctl`;
  if (!isOurGpuctl(link, o.libDir)) {
    throw new GpuctlError(link, "exists and is not a gpuctl install made; remove it first, or use --prefix");
  }
  const old = lstat(link)?.isSymlink ? Deno.readLinkSync(link) : null;
  if (old === target) return { target, previous: null };
  Deno.mkdirSync(o.prefix, { recursive: true });
  linkTo(link, target);
  io.out(`${link} → ${target}\n`);
  return { target, previous: old !== null ? old.slice(0, old.lastIndexOf("/")) : null };
}

/**
 * The two fronts, each replaced only when it is an earlier front of gpuctl's and differs. From a packed gpuctl they
 * are binary (its launcher's program with the front's text after it: no shell per container, serve/fronts/front.c);
 * otherwise sh.
 */
function writeFronts(io: InstallIo, prefix: string, gpuctl: string[]): void {
  const packed = gpuctl.length === 1 ? packTrailer(gpuctl[0]!) : null;
  const launcher = packed !== null ? launcherOf(gpuctl[0]!, packed.launcherSize) : null;
  for (const name of NAMES) {
    const path = `${prefix}/${name}`;
    const want = frontText(io, name, gpuctl, path, launcher !== null ? gpuctl[0]! : null);
    const s = frontState(path, want, launcher !== null);
    // The runtime front's modification time is its configuration's: it notices a change to that file itself.
    const stamp = (file: string) => {
      if (name === "gpuctl-runtime") stampFront(file, configStamp(io).file);
    };
    if (s === "same") {
      stamp(path);
      io.out(`${path}: already installed\n`);
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
      const bytes = launcher !== null ? binaryFront(launcher, want) : new TextEncoder().encode(want);
      Deno.writeFileSync(tmp, bytes, { mode: 0o755, createNew: true });
      Deno.chmodSync(tmp, 0o755);
      stamp(tmp);
    });
    io.out(`${path} → front\n`);
  }
}

/** NVIDIA's other names, linked where nothing of someone else's is. */
function linkNvidiaNames(io: InstallIo, o: InstallOptions, gpuctl: string | null): void {
  for (const [name, to] of Object.entries(nvidiaNames(o.prefix, gpuctl))) {
    const path = `${o.prefix}/${name}`;
    const info = lstat(path);
    if (info === null) {
      Deno.symlinkSync(to, path);
      io.out(`${path} → ${to}\n`);
    } else if (info.isSymlink && Deno.readLinkSync(path) === to) io.out(`${path}: already installed\n`);
    else if (info.isSymlink && isOurs(path, o.prefix, o.libDir)) {
      linkTo(path, to);
      io.out(`${path} → ${to}\n`);
    } else io.warn(`${path} exists and is not gpuctl's (NVIDIA's own?): left in place`);
  }
}

export interface UninstallOptions {
  prefix: string;
  libDir: string;
  /** Remove even what an engine's configuration or a CDI spec still names. */
  force: boolean;
  /** The engines' files to look for references in (defaults: the engines' own). */
  dockerConfig?: string;
  containerdConfig?: string;
  crioDropIn?: string;
}

/** Removes what install made, unless something still names it (see the module's description). */
export async function uninstall(io: InstallIo, o: UninstallOptions): Promise<number> {
  const { prefix, libDir } = o;
  // What install made: the fronts, the link, the version directories.
  const files: string[] = [];
  for (const name of NAMES) {
    const path = `${prefix}/${name}`;
    const s = frontState(path, "");
    if (s === "ours") files.push(path);
    else if (s === "foreign") io.warn(`${path} was not created by gpuctl install; left in place`);
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
    dockerConfig: o.dockerConfig ?? DOCKER_CONFIG,
    containerdConfig: o.containerdConfig ?? CONTAINERD_CONFIG,
    crioDropIn: o.crioDropIn ?? CRIO_DROPIN,
    cdiSpecDirs: io.config.cdiSpecDirs,
  }, errors)).filter((r) => namesAny(r.path, files, dirs));
  for (const e of errors) io.warn(`not checked for references to gpuctl: ${e}`);
  const lines = refs.map((r) => `${r.file}: ${r.what} → ${r.path}; run: ${r.fix}`);
  if (refs.length > 0 && !o.force) {
    for (const l of lines) io.err(l);
    throw new GpuctlError(
      "install --uninstall",
      `refused, nothing removed: ${
        refs.length === 1
          ? "the configuration above still names"
          : `the ${refs.length} configurations above name`
      } what it would remove, and the engine would then fail every container it starts; run the command shown, then install --uninstall again (or add --force)`,
    );
  }

  // A running server is a process of what this removes: it would run on from deleted files, and its unit (or
  // whoever started it) would start it again from nothing.
  const sdir = serveDir(io.config.cacheDir);
  const server = sdir === null || !isOwnDir(sdir) ? null : runningServer(sdir);
  if (server !== null && !o.force) {
    throw new GpuctlError(
      "install --uninstall",
      `refused, nothing removed: gpuctl serve (pid ${server}) is running in ${sdir}; stop it (systemctl disable --now gpuctl-serve, or kill ${server}), then install --uninstall again (or add --force, which leaves it and its directory)`,
    );
  }

  for (const path of files) {
    Deno.removeSync(path);
    io.out(`removed ${path}\n`);
  }
  for (const d of dirs) removeVersion((t) => io.out(t), d);
  for (const d of [libDir, RUNTIME_BASE, "/var/lib/gpuctl"]) {
    try {
      Deno.removeSync(d); // only when empty
      io.out(`removed ${d}\n`);
    } catch { /* not there, or not empty */ }
  }
  // What gpuctl kept at run time: its driver snapshot, kept plans and linker caches, the server's directory.
  removeRunState(io.config.cacheDir, (t) => io.out(t), server !== null);
  if (server !== null) {
    io.warn(`gpuctl serve (pid ${server}) still runs in ${sdir}, from removed files; stop it`);
  }
  for (const l of lines) io.warn(`now pointing at nothing: ${l}`);
  return 0;
}
