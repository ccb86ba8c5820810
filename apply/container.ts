/**
 * Making a plan so inside a running container (the prestart hook): device cgroup rules, then, inside the
 * container's mount namespace, bind mounts, device nodes, symlinks, `/proc/driver/nvidia`, and the linker cache.
 *
 * Namespaces: `setns(CLONE_NEWNS)` needs a thread that does not share its filesystem context, so the main thread
 * first `unshare(CLONE_FS)`s. From then on only synchronous calls are made: Deno's asynchronous operations run on
 * other threads that are still in the host's namespace.
 *
 * Everything the host provides is opened before entering the container (detached mount clones, file contents);
 * everything in the container is reached by descriptor (see {@link InRoot}). Nothing is ever created on the host.
 * @module
 */
import type { Config } from "../config/config.ts";
import { GpuctlError } from "../errors/mod.ts";
import {
  AT_EMPTY_PATH,
  check,
  CLONE_FS,
  CLONE_NEWNS,
  libc,
  makedev,
  MOUNT_ATTR_RDONLY,
  mountSetattr,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  O_CLOEXEC,
  O_DIRECTORY,
  O_PATH,
  O_RDONLY,
  statx,
  SyscallError,
} from "../ffi/libc.ts";
import type { Plan, PlannedMount } from "../plan/plan.ts";
import { allowV1, type DeviceRule, findDeviceCgroup } from "./cgroup.ts";
import { fileType, InRoot } from "./inroot.ts";
import { allowV2 } from "./bpf.ts";
import { attach, attrsFor, cloneSource, mountTmpfs } from "./mounts.ts";
import { updateLdCache } from "./ldcache.ts";
import type { Logger } from "../log/log.ts";

export interface ApplyOptions {
  config: Config;
  pid: number;
  rootfs: string;
  log: Logger;
  /** Use the component walk instead of openat2 (tests). */
  forceWalk?: boolean;
  /** Allow device access through the cgroup (off when runc already has the rules, e.g. from the spec). */
  cgroups?: boolean;
}

/** The image's library directories: Debian-style multiarch when it has /etc/debian_version, else lib64. */
export function libraryDirs(root: InRoot): { lib: string; lib32: string } {
  if (root.exists("/etc/debian_version")) {
    return { lib: "/usr/lib/x86_64-linux-gnu", lib32: "/usr/lib/i386-linux-gnu" };
  }
  return { lib: "/usr/lib64", lib32: "/usr/lib" };
}

/** The container path of a planned mount, given the image's library directories. */
export function destination(m: PlannedMount, dirs: { lib: string; lib32: string }): string {
  if (m.kind !== "library") return m.containerPath;
  return `${m.libraryDir === "lib32" ? dirs.lib32 : dirs.lib}/${m.containerPath}`;
}

function readHost(path: string): Uint8Array | null {
  try {
    return Deno.readFileSync(path);
  } catch {
    return null;
  }
}

/** Applies `plan` to the container whose init process is `opts.pid`. */
export function applyToContainer(plan: Plan, opts: ApplyOptions): void {
  const { config, pid, log } = opts;
  try {
    Deno.statSync(`/proc/${pid}/ns/mnt`);
  } catch {
    throw new GpuctlError(
      `container process ${pid}`,
      "is gone (did the container exit before its prestart hook?)",
    );
  }
  const rules: DeviceRule[] = plan.deviceNodes.map((n) => ({ major: n.major, minor: n.minor }));

  // 1. Device cgroup (host side).
  if (opts.cgroups !== false && rules.length > 0) {
    const cg = findDeviceCgroup(pid);
    if (cg.version === 1) allowV1(cg.dir, rules);
    else allowV2(cg.dir, rules);
    log.debug("device cgroup", { version: cg.version, dir: cg.dir, rules: rules.length });
  }

  // 2. Everything from the host, opened now: mount sources as detached clones, and /proc/driver/nvidia texts.
  const clones = new Map<PlannedMount, number>();
  const nodeClones = new Map<string, number>();
  const procNv = `${config.procRoot}/driver/nvidia`;
  const procFiles = new Map<string, Uint8Array>();
  let nsFd = -1;
  try {
    for (const m of plan.mounts) clones.set(m, cloneSource(m.hostPath, attrsFor(m.options)));
    for (const n of plan.deviceNodes) {
      // For user-namespaced containers, where mknod is refused, the host node is bind-mounted instead.
      if (n.hostPath !== null) {
        try {
          nodeClones.set(n.path, cloneSource(n.hostPath, attrsFor(["nosuid", "noexec"])));
        } catch (e) {
          log.debug("cannot clone device node", { node: n.hostPath, error: String(e) });
        }
      }
    }
    for (const f of ["params", "version", "registry"]) {
      let data = readHost(`${procNv}/${f}`);
      if (data === null) continue;
      if (f === "params") {
        // The container must not (re)create device nodes behind the cgroup's back.
        data = new TextEncoder().encode(
          new TextDecoder().decode(data).replace(/^ModifyDeviceFiles: 1$/m, "ModifyDeviceFiles: 0"),
        );
      }
      procFiles.set(f, data);
    }
    nsFd = check(
      `open /proc/${pid}/ns/mnt`,
      () => libc().open(`/proc/${pid}/ns/mnt`, O_RDONLY | O_CLOEXEC, 0),
    );

    // 3. Into the container's mount namespace (this thread only; sync calls from here on).
    check("unshare CLONE_FS", () => libc().unshare(CLONE_FS));
    check(`setns /proc/${pid}/ns/mnt`, () => libc().setns(nsFd, CLONE_NEWNS));
    const root = InRoot.open(opts.rootfs, { forceWalk: opts.forceWalk ?? false });
    try {
      const dirs = libraryDirs(root);
      const replaced = (msg: string) => log.info(msg);

      for (const [m, fd] of clones) {
        const dest = destination(m, dirs);
        if (m.kind === "proc") continue; // under the /proc/driver/nvidia tmpfs, below
        // An IPC endpoint may be a directory (MPS's pipes). The clone itself says so: no path is looked up, which
        // here, inside the container's mount namespace, would resolve in the container's view of the host path.
        const kind = m.kind === "ipc" && fileType(statx(fd, "", AT_EMPTY_PATH).mode) === "dir"
          ? "dir"
          : "file";
        const target = root.mountTarget(dest, kind, replaced);
        attach(fd, target);
        root.release(target);
      }

      for (const n of plan.deviceNodes) {
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

      for (const s of plan.symlinks) {
        root.symlink(s.libraryDir === "lib32" ? dirs.lib32 : dirs.lib, s.link, s.target);
      }

      procDriverNvidia(root, clones, procFiles, log);

      updateLdCache(root, plan, dirs, log);
    } finally {
      root.close();
    }
  } finally {
    for (const fd of [...clones.values(), ...nodeClones.values()]) libc().close(fd);
    if (nsFd >= 0) libc().close(nsFd);
  }
}

/**
 * A read-only tmpfs over the container's `/proc/driver/nvidia` with the host's `params` (ModifyDeviceFiles: 0),
 * `version` and `registry`, and each selected GPU's `gpus/<bus id>` directory bind-mounted in.
 */
function procDriverNvidia(
  root: InRoot,
  clones: Map<PlannedMount, number>,
  files: Map<string, Uint8Array>,
  log: Logger,
): void {
  if (files.size === 0) return;
  let target = root.resolve("/proc/driver/nvidia", O_PATH | O_DIRECTORY);
  let base = "/proc/driver/nvidia";
  if (target === null) {
    // Only with a fake driver: the container's procfs has no nvidia directory; cover /proc/driver instead.
    target = root.resolve("/proc/driver", O_PATH | O_DIRECTORY);
    base = "/proc/driver";
    if (target === null) {
      log.warn("the container has no /proc/driver; /proc/driver/nvidia is not provided");
      return;
    }
  }
  root.assertInside(target, base);
  mountTmpfs(target, MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=1m");
  root.release(target);
  for (const [name, data] of files) root.writeFileAtomic(`/proc/driver/nvidia/${name}`, data, 0o444);
  for (const [m, fd] of clones) {
    if (m.kind !== "proc") continue;
    const t = root.mountTarget(m.containerPath, "dir");
    attach(fd, t);
    root.release(t);
  }
  const fd = root.resolve(base, O_PATH | O_DIRECTORY);
  if (fd !== null) {
    mountSetattr(fd, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY);
    root.release(fd);
  }
}
