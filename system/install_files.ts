/**
 * The files `gpuctl install` owns: the executable's version directories (marked, so that uninstall removes only
 * them), the links to it, and replacement by rename, so that a container starting meanwhile sees the old file or
 * the new one, never neither.
 * @module
 */
import { GpuctlError } from "../errors/mod.ts";
import type { Config } from "../config/schema.ts";
import { INSTALL_MARK, readFrontFile } from "../serve/fronts.ts";
import { SERVE_FILES, serveDir } from "../serve/protocol.ts";
import { libc } from "../ffi/libc.ts";
import { isPrivateTemp, ownDir, SNAPSHOT_FILE } from "../snapshot/snapshot.ts";
import { PLAN_FILE } from "../flows/plan_cache.ts";
import { LDCACHE_FILE } from "../flows/ldcache_memo.ts";
import { packTrailer, VERSION } from "../version.ts";

/** The fronts install writes. */
export const NAMES = ["gpuctl-runtime", "nvidia-container-runtime-hook"] as const;

/** The file in a version directory that says install made it (so uninstall may remove it). */
export const VERSION_MARK = ".installed-by-gpuctl";

export function lstat(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch { // absent
    return null;
  }
}

export function readSmall(path: string): string | null {
  const info = lstat(path);
  if (info === null || !info.isFile || info.size >= 64 << 10) return null;
  try {
    return Deno.readTextFileSync(path);
  } catch { // unreadable: not a file of install's
    return null;
  }
}

/**
 * A front's state: what install would write (`same`: its text, and binary or sh as wanted), an earlier front
 * (`ours`), someone else's, or absent.
 */
export function frontState(
  path: string,
  want: string,
  binary = false,
): "same" | "ours" | "foreign" | "absent" {
  const st = lstat(path);
  if (st === null) return "absent";
  const front = st.isFile ? readFrontFile(path) : null;
  if (front !== null && front.text.includes(INSTALL_MARK)) {
    return front.text === want && front.binary === binary ? "same" : "ours";
  }
  return "foreign";
}

/** Replaces (or creates) `path` by a rename from a file written beside it. */
export function writeAtomically(path: string, write: (tmp: string) => void): void {
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
export async function digest(file: string): Promise<string> {
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
export async function placeExecutable(
  out: (text: string) => void,
  exe: string,
  libDir: string,
  link: boolean,
): Promise<string> {
  const dir = `${libDir}/${VERSION}-${await digest(exe)}`;
  const target = `${dir}/gpuctl`;
  let real = exe;
  try {
    real = Deno.realPathSync(exe);
  } catch { /* use it as named */ }
  if (real === target) return target;
  if (lstat(target)?.isFile && readSmall(`${dir}/${VERSION_MARK}`) !== null) {
    out(`${target}: already installed\n`);
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
  out(`${target} ← ${exe}\n`);
  return target;
}

/** Whether `path` (a link or a file) is a gpuctl that install may replace with its link. */
export function isOurGpuctl(path: string, libDir: string): boolean {
  const info = lstat(path);
  if (info === null) return true;
  if (info.isSymlink) return Deno.readLinkSync(path).startsWith(`${libDir}/`);
  if (!info.isFile) return false;
  try {
    return packTrailer(path) !== null; // a packed gpuctl copied there by hand
  } catch { // not a packed gpuctl
    return false;
  }
}

/** Whether the link at `path` is one --nvidia-names made: to a front in `prefix`, or into `libDir`. */
export function isOurs(path: string, prefix: string, libDir: string): boolean {
  const to = Deno.readLinkSync(path);
  return to.startsWith(`${libDir}/`) || NAMES.some((n) => to === `${prefix}/${n}`);
}

/** Points `link` at `target`, atomically. */
export function linkTo(link: string, target: string): void {
  writeAtomically(link, (tmp) => Deno.symlinkSync(target, tmp));
}

/** The version directories install made in `libDir`. */
export function versionDirs(libDir: string): string[] {
  try {
    return [...Deno.readDirSync(libDir)].filter((e) => e.isDirectory)
      .map((e) => `${libDir}/${e.name}`).filter((d) => lstat(`${d}/${VERSION_MARK}`) !== null).sort();
  } catch { // no such directory: none
    return [];
  }
}

/** Where a packed gpuctl run from anywhere but its install directory unpacks (tools/pack/launcher.c), as root. */
export const RUNTIME_BASE = "/var/lib/gpuctl/runtime";

/**
 * Removes a version directory, and the Deno that the same file unpacked in RUNTIME_BASE when it was run from
 * where it was downloaded (the same payload, so the same digest).
 */
export function removeVersion(out: (text: string) => void, dir: string, why = ""): void {
  let id: string | null = null;
  try {
    id = packTrailer(`${dir}/gpuctl`)?.sha256.slice(0, 16) ?? null;
  } catch { /* not a packed gpuctl */ }
  Deno.removeSync(dir, { recursive: true });
  out(`removed ${dir}${why}\n`);
  if (id === null) return;
  try {
    Deno.removeSync(`${RUNTIME_BASE}/${id}`, { recursive: true });
    out(`removed ${RUNTIME_BASE}/${id}\n`);
  } catch { /* never unpacked there */ }
}

/** Tells a running `gpuctl serve` to restart (SIGHUP: it finishes the request in hand first). */
export function restartServer(out: (text: string) => void, config: Config): void {
  const dir = serveDir(config.cacheDir);
  if (dir === null) return;
  const pid = Number(readSmall(`${dir}/pid`)?.trim() ?? "");
  if (!Number.isInteger(pid) || pid <= 1) return;
  try {
    Deno.kill(pid, "SIGHUP");
    out(`gpuctl serve (pid ${pid}) told to restart\n`);
  } catch { /* not running */ }
}

/** Whether `path` is a directory gpuctl keeps run-time files in (`snapshot.ts` `ownDir`: its rule, its check). */
export function isOwnDir(path: string): boolean {
  const fd = ownDir(path);
  if (typeof fd === "string") return false;
  libc().close(fd);
  return true;
}

/**
 * What gpuctl keeps at run time in `cacheDir`, removed: the driver snapshot, the kept plans and linker caches (and
 * their temporary files), and, unless `keepServe`, `gpuctl serve`'s directory. Only those names, only files, and
 * only in a directory gpuctl would have written them in (`ownDir`), removed relative to it as they were written:
 * anything else there is left, and the directories with it.
 */
export function removeRunState(
  cacheDir: string | null,
  out: (text: string) => void,
  keepServe: boolean,
): void {
  if (cacheDir === null) return;
  const dir = cacheDir.replace(/\/+$/, "") || "/";
  const kept = [SNAPSHOT_FILE, PLAN_FILE, LDCACHE_FILE];
  let removed = 0;
  // Whether `d` is such a directory; its files that `ours` names removed if so.
  const removeIn = (d: string, ours: (name: string) => boolean): boolean => {
    const fd = ownDir(d);
    if (typeof fd === "string") return false;
    try {
      for (const e of Deno.readDirSync(`/proc/self/fd/${fd}`)) {
        if (!e.isDirectory && ours(e.name) && libc().unlinkat(fd, e.name, 0) === 0) removed++;
      }
    } catch {
      /* unlistable: nothing more removed */
    } finally {
      libc().close(fd);
    }
    return true;
  };
  if (!removeIn(dir, (n) => kept.some((r) => r.test(n) || isPrivateTemp(n, r)))) return;
  const serve = serveDir(dir)!;
  if (!keepServe && removeIn(serve, (n) => SERVE_FILES.test(n))) {
    try {
      Deno.removeSync(serve); // only when empty
    } catch { /* something else is in it */ }
  }
  if (removed > 0) out(`removed ${removed} file${removed === 1 ? "" : "s"} gpuctl kept in ${dir}\n`);
  try {
    Deno.removeSync(dir); // only when empty
    out(`removed ${dir}\n`);
  } catch { /* not there, or not empty */ }
}
