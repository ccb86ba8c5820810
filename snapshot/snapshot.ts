/**
 * The driver snapshot: facts that do not change between containers — the inventory NVML gives, and the driver's
 * files located for every capability — kept in `cacheDir` (default `/run/gpuctl`, root only) so that a GPU
 * container's hook or shim reads them in a few ms instead of loading NVML and searching the driver root.
 *
 * The key a snapshot is valid for is read fresh every time, and cheaply: gpuctl's version, the configuration, the
 * plugin files' identities, the kernel driver's version, each GPU's `/proc/driver/nvidia/gpus/<bus>/information`
 * (model, UUID, bus, minor), the MIG instances under `/proc/driver/nvidia/capabilities`, the identity (device,
 * inode, size, mtime) of the driver root's `ld.so.cache` (an installer runs ldconfig), and the kernel's firmware
 * path. A driver upgrade, a GPU removed or swapped, MIG reconfigured or a configuration changed gives another key,
 * and the snapshot is rebuilt once. Every driver file the snapshot lists is checked too, before it is used, by its
 * identity (device, inode, size, mtime): a program replaced by a wrapper script, or a library removed, while the
 * linker cache stayed as it was, is noticed. Each configuration has a snapshot file of its own (named by a hash of
 * the configuration), so that two configurations used in turn neither share one nor rebuild each other's. A request that names a MIG device by UUID is always checked against NVML
 * itself: MIG instances destroyed and made again in the same slots get new UUIDs without a trace in /proc.
 *
 * A snapshot file that is not a regular file owned by this user and private to it, that does not parse, or whose
 * directory others can write, is never read: it is rebuilt (the log says why).
 * @module
 */
import { ENOENT } from "../errors/errno.ts";
import type { Config } from "../config/schema.ts";
import type { Inventory } from "../devices/types.ts";
import type { DriverFiles } from "../driver/locate.ts";
import type { DeviceRequest } from "../devices/select.ts";
import {
  AT_EMPTY_PATH,
  check,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_WRONLY,
  readAll,
  S_IFMT,
  S_IFREG,
  statx,
  SyscallError,
  writeAll,
} from "../ffi/libc.ts";
import { VERSION } from "../version.ts";

/** Bumped when the snapshot's shape changes. */
export const FORMAT = 2;
const MAX_SNAPSHOT = 16 << 20;

export interface Snapshot {
  format: number;
  key: string;
  inventory: Inventory;
  /** The driver's files for `capabilities`. */
  files: DriverFiles;
  capabilities: string[];
  warnings: string[];
  /** `<path> <identity>` of every driver file in `files` (see {@link fileIdentities}). */
  fileIds: string[];
}

/** What a plan is built from: the inventory, and the located files when they are known. */
export interface Facts {
  inventory: Inventory;
  files: DriverFiles | null;
  capabilities: string[];
  warnings: string[];
  /** The snapshot the facts are, whole, when they are one (a plan made from them may be kept under its key). */
  snapshot?: { key: string; fileIds: string[] };
}

function readText(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch { // absent: a fact of the key too
    return "(absent)";
  }
}

function identity(path: string): string {
  try {
    const s = Deno.statSync(path);
    return `${s.dev}:${s.ino}:${s.size}:${s.mtime?.getTime()}`;
  } catch { // absent: a fact of the key too
    return "(absent)";
  }
}

/** `<path> <identity>` of each file (not directory, socket or link target other than the file) `files` lists. */
export function fileIdentities(files: DriverFiles): string[] {
  const paths = new Set<string>();
  const add = (list: Record<string, { hostPath: string; dir?: boolean }[]>) => {
    for (const found of Object.values(list)) for (const f of found) if (!f.dir) paths.add(f.hostPath);
  };
  add(files.libraries);
  add(files.binaries);
  add(files.files);
  for (const f of files.firmware) paths.add(f.hostPath);
  return [...paths].sort().map((p) => `${p} ${identity(p)}`);
}

/** The first driver file whose identity is not the one recorded, or null when all are. */
export function changedFile(recorded: readonly string[]): string | null {
  for (const line of recorded) {
    const at = line.lastIndexOf(" ");
    const path = line.slice(0, at);
    if (identity(path) !== line.slice(at + 1)) return path;
  }
  return null;
}

function listing(dir: string, depth: number): string[] {
  let names: Deno.DirEntry[];
  try {
    names = [...Deno.readDirSync(dir)];
  } catch { // absent: empty
    return [];
  }
  return names.sort((a, b) => (a.name < b.name ? -1 : 1)).flatMap((e) =>
    e.isDirectory && depth > 0
      ? [e.name, ...listing(`${dir}/${e.name}`, depth - 1).map((n) => `${e.name}/${n}`)]
      : [e.name]
  );
}

/** The key a snapshot for `config` must have to be used (see the module's description). */
export function snapshotKey(config: Config): string {
  const { logFile: _f, logLevel: _l, ...facts } = config;
  const nv = `${config.procRoot}/driver/nvidia`;
  const gpus = listing(`${nv}/gpus`, 0);
  return [
    `gpuctl ${VERSION} snapshot ${FORMAT}`,
    `config ${JSON.stringify(facts)}`,
    ...listing(config.pluginsDir, 0).map((n) => `plugin ${n} ${identity(`${config.pluginsDir}/${n}`)}`),
    `driver ${readText(`${nv}/version`).split("\n")[0]!}`,
    ...gpus.map((g) => `gpu ${g} ${readText(`${nv}/gpus/${g}/information`).replaceAll("\n", " ")}`),
    `mig ${listing(`${nv}/capabilities`, 4).join(" ")}`,
    `ldcache ${identity(`${config.driverRoot.replace(/\/+$/, "")}/etc/ld.so.cache`)}`,
    `firmware ${readText(`${config.sysRoot}/module/firmware_class/parameters/path`).trim()}`,
  ].join("\n");
}

/**
 * A private directory of this user's, opened (`O_PATH`, not through a link): owned by it, writable by nobody else;
 * else why not. gpuctl keeps run-time files only in such a directory (and uninstall removes them only there).
 */
export function ownDir(path: string, euid = libc().geteuid()): number | string {
  let fd: number;
  try {
    fd = check(`open ${path}`, () => libc().open(path, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0));
  } catch (e) {
    return e instanceof SyscallError && e.errno === ENOENT
      ? "no snapshot yet"
      : `${path} cannot be opened as a directory`;
  }
  const st = statx(fd, "", AT_EMPTY_PATH);
  if (st.uid !== euid || (st.mode & 0o022) !== 0) {
    libc().close(fd);
    return `${path} is not this user's own, or others can write it`;
  }
  return fd;
}

/**
 * The snapshot's file in `cacheDir` for a configuration: named by a hash of it (the key, which holds the whole
 * configuration, is still compared in full). FNV-1a, twice: no cryptography on every container's start.
 */
export function fileFor(config: Config): string {
  const { logFile: _f, logLevel: _l, ...facts } = config;
  return `snapshot-${nameHash(JSON.stringify(facts))}.json`;
}

/** A snapshot's file name in `cacheDir`, as {@link fileFor} makes them (uninstall removes them). */
export const SNAPSHOT_FILE = /^snapshot-[0-9a-f]{16}\.json$/;

/** The temporary name {@link writePrivateAt} writes `name` under before renaming it into place. */
function privateTemp(name: string): string {
  return `.${name}.${Deno.pid}`;
}

/** Whether `name` is a temporary file of {@link writePrivateAt}'s for a file that `final` names. */
export function isPrivateTemp(name: string, final: RegExp): boolean {
  const m = /^\.(.+)\.[0-9]{1,10}$/.exec(name);
  return m !== null && final.test(m[1]!);
}

/** 16 hex digits naming a cache file by its contents' key (FNV-1a, twice; the key itself is compared in full). */
export function nameHash(text: string): string {
  let a = 0x811c9dc5, b = 0x050c5d1f;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193) >>> 0;
    b = Math.imul(b ^ c, 0x01000193) >>> 0;
  }
  return `${a.toString(16).padStart(8, "0")}${b.toString(16).padStart(8, "0")}`;
}

/** Why {@link readPrivate} read no file, besides the directory's own reasons. */
export const ABSENT = "absent",
  NOT_PRIVATE = "not a private regular file of this user's; ignored",
  UNREADABLE = "unreadable";

/**
 * A file of `cacheDir`'s as only gpuctl writes them: a private regular file of this user's, in a directory of its
 * own that nobody else can write, at most `max` bytes. Its text, or why it is not to be read.
 */
export function readPrivate(config: Config, name: string, max: number): { text: string } | { why: string } {
  const dir = openCacheDir(config);
  if (typeof dir === "string") return { why: dir };
  try {
    const r = readPrivateAt(dir, name, max);
    return "why" in r ? r : { text: new TextDecoder().decode(r.bytes) };
  } finally {
    libc().close(dir);
  }
}

/**
 * `cacheDir` opened (`O_PATH`), when it is a directory of this user's own that nobody else can write; else why
 * not. Files are then read and written relative to it ({@link readPrivateAt}, {@link writePrivateAt}), which
 * holds even from another mount namespace (a hook's, once it has entered the container's).
 */
export function openCacheDir(config: Config): number | string {
  if (config.cacheDir === null) return "no cacheDir";
  return ownDir(config.cacheDir);
}

/** {@link readPrivate}'s checks and read, in the directory `dir` ({@link openCacheDir}); the file's bytes. */
export function readPrivateAt(
  dir: number,
  name: string,
  max: number,
): { bytes: Uint8Array } | { why: string } {
  let fd: number;
  try {
    fd = check(
      `open ${name}`,
      () => libc().openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | 0o4000, 0),
    );
  } catch { // absent (or not openable): none
    return { why: ABSENT };
  }
  try {
    const st = statx(fd, "", AT_EMPTY_PATH);
    if (
      (st.mode & S_IFMT) !== S_IFREG || st.uid !== libc().geteuid() || (st.mode & 0o077) !== 0 ||
      st.size > max
    ) {
      return { why: NOT_PRIVATE };
    }
    return { bytes: readAll(fd, max, name, st.size) };
  } catch { // unreadable: as if corrupt
    return { why: UNREADABLE };
  } finally {
    libc().close(fd);
  }
}

/** The snapshot for `key`, or why there is none to use. */
export function readSnapshot(config: Config, key: string): { snapshot: Snapshot } | { why: string } {
  const r = readPrivate(config, fileFor(config), MAX_SNAPSHOT);
  if ("why" in r) {
    if (r.why === ABSENT) {
      // Another configuration's snapshot there: this one's is new (the configuration changed, or is another).
      let others = false;
      try {
        others = [...Deno.readDirSync(config.cacheDir!)].some((e) =>
          /^snapshot-[0-9a-f]{16}\.json$/.test(e.name)
        );
      } catch { /* the directory was checked: as if none */ }
      return { why: others ? "no snapshot for this configuration yet" : "no snapshot yet" };
    }
    if (r.why === NOT_PRIVATE) return { why: `the snapshot file is ${NOT_PRIVATE}` };
    if (r.why === UNREADABLE) return { why: "the snapshot file is corrupt" };
    return r; // the directory's own reason, or no cacheDir
  }
  let s: Snapshot;
  try {
    s = JSON.parse(r.text) as Snapshot;
  } catch { // not JSON: a corrupt snapshot, rebuilt
    return { why: "the snapshot file is corrupt" };
  }
  if (s?.format !== FORMAT || typeof s.key !== "string" || typeof s.inventory !== "object") {
    return { why: "the snapshot file is not one this gpuctl wrote" };
  }
  if (s.key !== key) return { why: keyChange(s.key, key) };
  if (!Array.isArray(s.fileIds)) return { why: "the snapshot file is not one this gpuctl wrote" };
  const changed = changedFile(s.fileIds);
  if (changed !== null) return { why: `a driver file changed (${changed})` };
  return { snapshot: s };
}

/** What changed between two keys, for the log: the first kind of fact (in key order) whose lines differ. */
function keyChange(was: string, now: string): string {
  const REASONS: [string, string][] = [
    ["gpuctl", "gpuctl was upgraded"],
    ["config", "the configuration changed"],
    ["plugin", "a plugin changed"],
    ["driver", "the driver changed"],
    ["gpu", "the GPUs changed"],
    ["mig", "MIG was reconfigured"],
    ["ldcache", "the driver's libraries changed"],
    ["firmware", "the firmware path changed"],
  ];
  const group = (key: string, kind: string) =>
    key.split("\n").filter((l) => l.startsWith(`${kind} `)).join("\n");
  return REASONS.find(([kind]) => group(was, kind) !== group(now, kind))?.[1] ?? "the host changed";
}

/** Writes the snapshot (the directory made private if absent); a failure only costs the next start its speed. */
export function writeSnapshot(config: Config, s: Snapshot): string | null {
  return writePrivate(config, fileFor(config), JSON.stringify(s));
}

/**
 * Writes a file of `cacheDir`'s (the directory made private if absent) by a rename from a new private file beside
 * it, after `before` has had the directory's descriptor (to make room). Why not, or null once written.
 */
export function writePrivate(
  config: Config,
  name: string,
  data: string | Uint8Array,
  before?: (dir: number) => void,
): string | null {
  if (config.cacheDir === null) return null;
  try {
    Deno.mkdirSync(config.cacheDir, { recursive: true, mode: 0o700 });
  } catch { /* there already, or not makeable: ownDir says */ }
  const dir = openCacheDir(config);
  if (typeof dir === "string") return dir;
  try {
    return writePrivateAt(dir, name, data, before);
  } finally {
    libc().close(dir);
  }
}

/** {@link writePrivate}'s write, in the directory `dir` ({@link openCacheDir}). */
export function writePrivateAt(
  dir: number,
  name: string,
  data: string | Uint8Array,
  before?: (dir: number) => void,
): string | null {
  const tmp = privateTemp(name);
  try {
    before?.(dir);
    const fd = check(
      `create ${name}`,
      () => libc().openat(dir, tmp, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0o600),
    );
    try {
      writeAll(fd, typeof data === "string" ? new TextEncoder().encode(data) : data, name);
    } finally {
      libc().close(fd);
    }
    check(`rename ${name}`, () => libc().renameat(dir, tmp, dir, name));
    return null;
  } catch (e) {
    libc().unlinkat(dir, tmp, 0);
    return String(e);
  }
}

/** Whether a request names a MIG device by UUID (checked against NVML itself, never a snapshot). */
export function namesMigUuid(d: DeviceRequest): boolean {
  return d.kind === "list" && d.ids.some((id) => id.toLowerCase().startsWith("mig-"));
}
