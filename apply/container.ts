/**
 * Container edits made so inside a container (see `edits/`): device cgroup rules, then, inside the container's
 * mount namespace, bind mounts, device nodes, symlinks, the linker cache and `/proc/driver/nvidia`. Three callers
 * do some or all of it:
 *
 * - the prestart hook (Docker's `--gpus`, the shim's hook mode): everything, from the runtime's namespace;
 * - the CDI `createContainer` hook (`gpuctl hook container-edits`): links, linker cache and the /proc view, from
 *   inside the container's mount namespace, where the engine has already made the nodes and mounts;
 * - the runtime shim after `runc create`: the /proc view, the one edit config.json cannot express.
 *
 * Namespaces: `setns(CLONE_NEWNS)` needs a thread that does not share its filesystem context, so the main thread
 * first `unshare(CLONE_FS)`s. From then on only synchronous calls are made: Deno's asynchronous operations run on
 * other threads that are still in the host's namespace.
 *
 * Everything the host provides is opened before entering the container (detached mount clones, file contents);
 * everything in the container is reached by descriptor (see {@link InRoot}). Nothing is ever created on the host.
 * @module
 */
import { EPERM } from "../errors/errno.ts";
import { GpuctlError } from "../errors/mod.ts";
import {
  AT_EMPTY_PATH,
  check,
  CLONE_FS,
  CLONE_NEWNS,
  libc,
  makedev,
  O_CLOEXEC,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  openat2,
  readAll,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  statx,
  SyscallError,
} from "../ffi/libc.ts";
import {
  deviceRules,
  type InsideEdits,
  LIB64,
  type LibraryDirs,
  type MountEdit,
  MULTIARCH,
  type SpecEdits,
} from "../edits/edits.ts";
import { allowV1, findDeviceCgroup } from "./cgroup.ts";
import { InRoot } from "./inroot.ts";
import { allowV2 } from "./bpf.ts";
import { attach, attrsFor, cloneSource } from "./mounts.ts";
import { type LdCacheMemo, updateLdCache } from "./ldcache.ts";
import { cudaCompat } from "./compat.ts";
import { closeProcSources, gatherProcSources, mountProcView, type ProcSources } from "./procview.ts";
import type { Logger } from "../log/log.ts";

/** Where the caller stands relative to the container. */
export type Stage =
  /** A prestart hook: the runtime's namespace, the container set up but not yet pivoted into its rootfs. */
  | "prestart"
  /** A createContainer hook: inside the container's mount namespace, before its pivot_root. */
  | "createContainer"
  /**
   * A createContainer hook's work done for it by `gpuctl serve`, in the host's namespace: the container set up but
   * not yet pivoted, entered through the hook process's pid (checked as a prestart hook's container is).
   */
  | "createContainerServed"
  /** The shim after `runc create`: the host's namespace, the container pivoted and waiting to start. */
  | "created";

export interface ApplyOptions {
  pid: number;
  /** The bundle and config.json's `root.path`, for the stages before pivot_root. */
  bundle: string;
  rootPath: string | undefined;
  procRoot: string;
  stage: Stage;
  /** Grant the spec half's nodes in the device cgroup (`noCgroups` off). */
  cgroups: boolean;
  /** Let an image's newer CUDA compat libraries take precedence in the linker cache. */
  cudaCompat: boolean;
  log: Logger;
  /** Use the component walk instead of openat2 (tests). */
  forceWalk?: boolean;
  /**
   * Linker caches merged for earlier containers, opened on the host (see `LdCacheMemo`); never used at the
   * createContainer stage, whose process runs in the container's namespaces from its start.
   */
  ldMemo?: LdCacheMemo | null;
}

/** The image's library directories: Debian-style multiarch when it has /etc/debian_version, else lib64. */
export function libraryDirs(root: InRoot): LibraryDirs {
  return root.exists("/etc/debian_version") ? MULTIARCH : LIB64;
}

/** The mount namespace of `/proc/<pid>` (or `self`). */
function mntNs(pid: number | "self"): bigint {
  try {
    return statx(-100, `/proc/${pid}/ns/mnt`, 0).ino;
  } catch { // statx's failure is the process being gone
    throw new GpuctlError(`container process ${pid}`, "is gone (did the container exit before its hook?)");
  }
}

/**
 * Checks that `pid` is the container's process: in a mount namespace of its own (never this process's, which for a
 * prestart hook is the host's), where the bundle's rootfs is the same directory as here, and where the runtime has
 * already set up the container's mounts below it (/proc, /dev, …): a copy of the host's namespace (unshare -m)
 * has none there.
 */
function checkContainerProcess(pid: number, rootfs: InRoot): void {
  const not = (why: string): never => {
    throw new GpuctlError(`container process ${pid}`, `${why}: it is not this container's process; refusing`);
  };
  if (mntNs(pid) === mntNs("self")) not("shares this hook's mount namespace");
  const here = statx(rootfs.rootFd, "", AT_EMPTY_PATH);
  let there: ReturnType<typeof statx> | null = null;
  let r = -1;
  try {
    r = check(
      `open /proc/${pid}/root`,
      () => libc().open(`/proc/${pid}/root`, O_PATH | O_DIRECTORY | O_CLOEXEC, 0),
    );
    const fd = openat2(r, rootfs.rootPath, O_PATH | O_DIRECTORY, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
    there = statx(fd, "", AT_EMPTY_PATH);
    libc().close(fd);
  } catch (e) {
    if (!(e instanceof SyscallError)) throw e;
  } finally {
    if (r >= 0) libc().close(r);
  }
  if (there?.ino !== here.ino || there.devMajor !== here.devMajor || there.devMinor !== here.devMinor) {
    not(`does not see the bundle's rootfs ${rootfs.rootPath}`);
  }
  let mountinfo = "";
  try {
    const fd = check("open mountinfo", () => libc().open(`/proc/${pid}/mountinfo`, O_RDONLY | O_CLOEXEC, 0));
    try {
      mountinfo = new TextDecoder().decode(readAll(fd, 8 << 20, "mountinfo"));
    } finally {
      libc().close(fd);
    }
  } catch { /* gone, or a namespace too large to be a container's: refused below */ }
  const below = `${rootfs.rootPath.replace(/\/+$/, "")}/`;
  const unescape = (p: string) => p.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  if (!mountinfo.split("\n").some((l) => unescape(l.split(" ")[4] ?? "").startsWith(below))) {
    not(`has no mounts set up in the bundle's rootfs ${rootfs.rootPath}`);
  }
}

/** The host's side of the spec half, opened before entering the container: mount sources as detached clones. */
interface SpecSources {
  mounts: { fd: number; edit: MountEdit }[];
  /** Device nodes' host nodes, bound where mknod is refused (a user-namespaced container). */
  nodes: Map<string, number>;
}

function openSpecSources(spec: SpecEdits, log: Logger, into: SpecSources): void {
  for (const m of spec.mounts) {
    into.mounts.push({ fd: cloneSource(m.hostPath, attrsFor(m.options)), edit: m });
  }
  for (const n of spec.deviceNodes) {
    if (n.hostPath === null) continue;
    try {
      into.nodes.set(n.path, cloneSource(n.hostPath, attrsFor(["nosuid", "noexec"])));
    } catch (e) {
      log.debug("cannot clone device node", { node: n.hostPath, error: String(e) });
    }
  }
}

/** The spec half inside the container: the mounts attached, the nodes made (or their host nodes bound). */
function makeSpecEdits(root: InRoot, spec: SpecEdits, sources: SpecSources, log: Logger): void {
  for (const { fd, edit } of sources.mounts) {
    const target = root.mountTarget(edit.containerPath, edit.dir ? "dir" : "file", (msg) => log.debug(msg));
    attach(fd, target);
    root.release(target);
  }
  for (const n of spec.deviceNodes) {
    try {
      root.mknod(n.path, n.major, n.minor, n.fileMode, n.uid, n.gid, makedev);
    } catch (e) {
      const clone = sources.nodes.get(n.path);
      if (!(e instanceof SyscallError && e.errno === EPERM) || clone === undefined) throw e;
      const target = root.mountTarget(n.path, "file");
      attach(clone, target);
      root.release(target);
    }
  }
}

/** The container's root, checked to be `pid`'s where the stage needs it; `null` when it is opened once inside. */
function openRootBefore(opts: ApplyOptions, procFd: number): InRoot | null {
  const walk = opts.forceWalk ? { forceWalk: true } : {};
  if (opts.stage === "created") return InRoot.open(`/proc/${opts.pid}/root`, { procFd, ...walk });
  if (opts.stage === "prestart" || opts.stage === "createContainerServed") {
    // The rootfs as this (host) namespace sees it, to check the process against; reopened once inside.
    const host = InRoot.openRootfs(opts.bundle, opts.rootPath, { procFd });
    try {
      checkContainerProcess(opts.pid, host);
    } finally {
      host.close();
    }
  }
  return null;
}

/** Enters `pid`'s mount namespace (this thread only); returns the descriptor of the namespace to return to. */
function enterMountNs(pid: number): number {
  const nsFd = check(
    `open /proc/${pid}/ns/mnt`,
    () => libc().open(`/proc/${pid}/ns/mnt`, O_RDONLY | O_CLOEXEC, 0),
  );
  let hostNs = -1;
  try {
    hostNs = check(
      "open own mount ns",
      () => libc().open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC, 0),
    );
    check("unshare CLONE_FS", () => libc().unshare(CLONE_FS));
    check(`setns /proc/${pid}/ns/mnt`, () => libc().setns(nsFd, CLONE_NEWNS));
    return hostNs;
  } catch (e) {
    if (hostNs >= 0) libc().close(hostNs); // still in this namespace: nothing to return to
    throw e;
  } finally {
    libc().close(nsFd);
  }
}

/**
 * Applies the given halves of the edits to the container whose process is `opts.pid`: the spec half (device
 * cgroup, mounts, nodes) where no engine did, the inside half (links, linker cache, /proc view).
 */
export function applyEdits(edits: { spec?: SpecEdits; inside?: InsideEdits }, opts: ApplyOptions): void {
  const { pid, log } = opts;
  const { spec, inside } = edits;
  // A createContainer hook runs in the container's namespaces (its pid is the container's init as the container
  // numbers it, 1 under runc): it is already where the work is. The other stages enter through the pid.
  const entering = opts.stage !== "createContainer";
  if (entering) mntNs(pid);

  // Everything from the host, opened now: the root, mount sources as detached clones, the /proc view's sources.
  const procFd = check("open /proc", () => libc().open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
  const sources: SpecSources = { mounts: [], nodes: new Map() };
  let proc: ProcSources | null = null;
  let hostNs = -1;
  let root: InRoot | null = null;
  try {
    root = openRootBefore(opts, procFd);
    const rules = spec !== undefined && opts.cgroups ? deviceRules(spec) : [];
    if (rules.length > 0) {
      const cg = findDeviceCgroup(pid);
      if (cg.version === 1) allowV1(cg.dir, rules);
      else allowV2(cg.dir, rules);
      log.debug("device cgroup", { version: cg.version, dir: cg.dir, rules: rules.length });
    }
    if (spec !== undefined) openSpecSources(spec, log, sources);
    if (inside?.procView) proc = gatherProcSources(opts.procRoot, inside.procView);

    // Into the container's mount namespace (this thread only; sync calls from here on).
    if (entering) hostNs = enterMountNs(pid);
    root ??= InRoot.openRootfs(opts.bundle, opts.rootPath, {
      procFd,
      ...(opts.forceWalk ? { forceWalk: true } : {}),
    });
    if (spec !== undefined) makeSpecEdits(root, spec, sources, log);
    if (inside !== undefined) {
      applyLinks(root, inside);
      applyLdCache(root, inside, opts.cudaCompat, log, opts.stage === "createContainer" ? null : opts.ldMemo);
    }
    if (proc !== null) mountProcView(root, proc, log);
  } finally {
    root?.close();
    for (const c of sources.mounts) libc().close(c.fd);
    for (const fd of sources.nodes.values()) libc().close(fd);
    if (proc !== null) closeProcSources(proc);
    // Back to this process's own namespace: what runs after (a child process, a log write) is on the host.
    if (hostNs >= 0) {
      libc().setns(hostNs, CLONE_NEWNS);
      libc().close(hostNs);
    }
    libc().close(procFd);
  }
}

/** The library links, made inside `root`. */
export function applyLinks(root: InRoot, edits: Pick<InsideEdits, "symlinks">): void {
  for (const s of edits.symlinks) {
    const at = s.path.lastIndexOf("/");
    root.symlink(s.path.slice(0, at) || "/", s.path.slice(at + 1), s.target);
  }
}

/** The container's linker cache, with the image's CUDA compat libraries first when they are the newer driver. */
export function applyLdCache(
  root: InRoot,
  edits: Pick<InsideEdits, "ldcache" | "driverVersion">,
  compat: boolean,
  log: Logger,
  memo: LdCacheMemo | null = null,
): void {
  if (edits.ldcache.length === 0) return;
  let entries = edits.ldcache;
  if (compat && edits.driverVersion !== "") {
    const d = cudaCompat(root, edits.driverVersion);
    if (d.entries.length > 0) {
      log.info("CUDA forward compatibility", { decision: "compat libraries first", why: d.why });
      entries = [...d.entries, ...entries];
    } else if (d.version !== undefined) {
      log.info("CUDA forward compatibility", { decision: "host driver libraries", why: d.why });
    } else log.debug("CUDA forward compatibility", { decision: "none", why: d.why });
  }
  updateLdCache(root, entries, log, memo);
}
