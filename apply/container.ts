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
import { type ContainerEdits, deviceRules, LIB64, type LibraryDirs, MULTIARCH } from "../edits/edits.ts";
import { allowV1, findDeviceCgroup } from "./cgroup.ts";
import { InRoot } from "./inroot.ts";
import { allowV2 } from "./bpf.ts";
import { attach, attrsFor, cloneSource } from "./mounts.ts";
import { updateLdCache } from "./ldcache.ts";
import { cudaCompat } from "./compat.ts";
import { closeProcSources, gatherProcSources, mountProcView, type ProcSources } from "./procview.ts";
import type { Logger } from "../log/log.ts";

/** Which edits a caller makes; the rest are the engine's (runc's, from config.json or a CDI spec). */
export interface Parts {
  cgroups: boolean;
  nodes: boolean;
  mounts: boolean;
  links: boolean;
  ldcache: boolean;
  proc: boolean;
  /** Let an image's newer CUDA compat libraries take precedence (with `ldcache`). */
  cudaCompat: boolean;
}

export const ALL_PARTS: Parts = {
  cgroups: true,
  nodes: true,
  mounts: true,
  links: true,
  ldcache: true,
  proc: true,
  cudaCompat: true,
};

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
  parts: Parts;
  log: Logger;
  /** Use the component walk instead of openat2 (tests). */
  forceWalk?: boolean;
}

/** The image's library directories: Debian-style multiarch when it has /etc/debian_version, else lib64. */
export function libraryDirs(root: InRoot): LibraryDirs {
  return root.exists("/etc/debian_version") ? MULTIARCH : LIB64;
}

/** The mount namespace of `/proc/<pid>` (or `self`). */
function mntNs(pid: number | "self"): bigint {
  try {
    return statx(-100, `/proc/${pid}/ns/mnt`, 0).ino;
  } catch {
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

/** Applies `edits` to the container whose process is `opts.pid`. */
export function applyEdits(edits: ContainerEdits, opts: ApplyOptions): void {
  const { pid, log, parts } = opts;
  // A createContainer hook runs in the container's namespaces (its pid is the container's init as the container
  // numbers it, 1 under runc): it is already where the work is. The other stages enter through the pid.
  const inside = opts.stage === "createContainer";
  if (!inside) mntNs(pid);

  // Everything from the host, opened now: the root, mount sources as detached clones, the /proc view's sources.
  const procFd = check("open /proc", () => libc().open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
  const clones: { fd: number; edit: ContainerEdits["mounts"][number] }[] = [];
  const nodeClones = new Map<string, number>();
  let proc: ProcSources | null = null;
  let nsFd = -1, hostNs = -1;
  let root: InRoot | null = null;
  try {
    if (opts.stage === "created") {
      root = InRoot.open(`/proc/${pid}/root`, { procFd, ...(opts.forceWalk ? { forceWalk: true } : {}) });
    } else if (opts.stage === "prestart" || opts.stage === "createContainerServed") {
      // The rootfs as this (host) namespace sees it, to check the process against; reopened once inside.
      const host = InRoot.openRootfs(opts.bundle, opts.rootPath, { procFd });
      try {
        checkContainerProcess(pid, host);
      } finally {
        host.close();
      }
    }

    // 1. Device cgroup (host side).
    const rules = deviceRules(edits);
    if (parts.cgroups && rules.length > 0) {
      const cg = findDeviceCgroup(pid);
      if (cg.version === 1) allowV1(cg.dir, rules);
      else allowV2(cg.dir, rules);
      log.debug("device cgroup", { version: cg.version, dir: cg.dir, rules: rules.length });
    }
    if (parts.mounts) {
      for (const m of edits.mounts) {
        clones.push({ fd: cloneSource(m.hostPath, attrsFor(m.options)), edit: m });
      }
    }
    if (parts.nodes) {
      for (const n of edits.deviceNodes) {
        // For user-namespaced containers, where mknod is refused, the host node is bind-mounted instead.
        if (n.hostPath === null) continue;
        try {
          nodeClones.set(n.path, cloneSource(n.hostPath, attrsFor(["nosuid", "noexec"])));
        } catch (e) {
          log.debug("cannot clone device node", { node: n.hostPath, error: String(e) });
        }
      }
    }
    if (parts.proc) proc = gatherProcSources(opts.procRoot, edits.procView);

    // 2. Into the container's mount namespace (this thread only; sync calls from here on).
    if (!inside) {
      nsFd = check(
        `open /proc/${pid}/ns/mnt`,
        () => libc().open(`/proc/${pid}/ns/mnt`, O_RDONLY | O_CLOEXEC, 0),
      );
      hostNs = check(
        "open own mount ns",
        () => libc().open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC, 0),
      );
      check("unshare CLONE_FS", () => libc().unshare(CLONE_FS));
      check(`setns /proc/${pid}/ns/mnt`, () => libc().setns(nsFd, CLONE_NEWNS));
    }
    root ??= InRoot.openRootfs(opts.bundle, opts.rootPath, {
      procFd,
      ...(opts.forceWalk ? { forceWalk: true } : {}),
    });

    for (const { fd, edit } of clones) {
      const target = root.mountTarget(edit.containerPath, edit.dir ? "dir" : "file", (msg) => log.debug(msg));
      attach(fd, target);
      root.release(target);
    }
    if (parts.nodes) {
      for (const n of edits.deviceNodes) {
        try {
          root.mknod(n.path, n.major, n.minor, n.fileMode, n.uid, n.gid, makedev);
        } catch (e) {
          const clone = nodeClones.get(n.path);
          if (!(e instanceof SyscallError && e.errno === 1 /* EPERM */) || clone === undefined) throw e;
          const target = root.mountTarget(n.path, "file");
          attach(clone, target);
          root.release(target);
        }
      }
    }
    if (parts.links) applyLinks(root, edits);
    if (parts.ldcache) applyLdCache(root, edits, parts.cudaCompat, log);
    if (proc !== null) mountProcView(root, proc, log);
  } finally {
    root?.close();
    for (const c of clones) libc().close(c.fd);
    for (const fd of nodeClones.values()) libc().close(fd);
    if (proc !== null) closeProcSources(proc);
    if (nsFd >= 0) libc().close(nsFd);
    // Back to this process's own namespace: what runs after (a child process, a log write) is on the host.
    if (hostNs >= 0) {
      libc().setns(hostNs, CLONE_NEWNS);
      libc().close(hostNs);
    }
    libc().close(procFd);
  }
}

/** The library links, made inside `root`. */
export function applyLinks(root: InRoot, edits: Pick<ContainerEdits, "symlinks">): void {
  for (const s of edits.symlinks) {
    const at = s.path.lastIndexOf("/");
    root.symlink(s.path.slice(0, at) || "/", s.path.slice(at + 1), s.target);
  }
}

/** The container's linker cache, with the image's CUDA compat libraries first when they are the newer driver. */
export function applyLdCache(
  root: InRoot,
  edits: Pick<ContainerEdits, "ldcache" | "driverVersion">,
  compat: boolean,
  log: Logger,
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
  updateLdCache(root, entries, log);
}
