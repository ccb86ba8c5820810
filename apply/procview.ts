/**
 * The container's `/proc/driver/nvidia`: a read-only tmpfs over it holding the host's `version`, `registry` and
 * `params` (with `ModifyDeviceFiles: 0`, so the driver's user-space never creates device nodes behind the device
 * cgroup's back), and only the container's own GPUs' `gpus/<bus>` directories, bound from the host. Other GPUs'
 * entries are not there to see.
 *
 * The tmpfs is made detached (`fsopen`/`fsmount`), filled, then attached onto a target found by descriptor: no
 * path is handed to mount(2), and nothing needs `/proc/self` inside the container, which works the same before
 * and after its pivot_root (the prestart and createContainer hooks, and the shim after `runc create`).
 * @module
 */
import {
  AT_EMPTY_PATH,
  check,
  libc,
  MOUNT_ATTR_NODEV,
  MOUNT_ATTR_NOEXEC,
  MOUNT_ATTR_NOSUID,
  MOUNT_ATTR_RDONLY,
  mountSetattr,
  newMount,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_WRONLY,
  writeAll,
} from "../ffi/libc.ts";
import type { ProcView } from "../edits/edits.ts";
import type { Logger } from "../log/log.ts";
import type { InRoot } from "./inroot.ts";
import { attach, attrsFor, cloneSource } from "./mounts.ts";

/** What the view is made of, gathered on the host before entering the container. */
export interface ProcSources {
  files: Map<string, Uint8Array>;
  /** Each GPU directory's name and a detached clone of it. */
  gpus: { name: string; fd: number }[];
  /** A clone of the host's `capabilities` directory (MIG management), or -1. */
  capabilities: number;
}

const FILES = ["params", "version", "registry"];

/** Reads the host's files and clones the GPUs' directories (in the host's mount namespace). */
export function gatherProcSources(procRoot: string, view: ProcView): ProcSources {
  const files = new Map<string, Uint8Array>();
  for (const f of FILES) {
    let data: Uint8Array;
    try {
      data = Deno.readFileSync(`${procRoot}/driver/nvidia/${f}`);
    } catch { // a file this driver does not have: none in the view either
      continue;
    }
    if (f === "params") {
      data = new TextEncoder().encode(
        new TextDecoder().decode(data).replace(/^ModifyDeviceFiles: 1$/m, "ModifyDeviceFiles: 0"),
      );
    }
    files.set(f, data);
  }
  const out: ProcSources = { files, gpus: [], capabilities: -1 };
  const ro = attrsFor(["ro", "nosuid", "nodev", "noexec"]);
  try {
    for (const g of view.gpus) out.gpus.push({ name: g.name, fd: cloneSource(g.hostPath, ro) });
    if (view.capabilities !== null) out.capabilities = cloneSource(view.capabilities, ro);
  } catch (e) {
    closeProcSources(out);
    throw e;
  }
  return out;
}

export function closeProcSources(s: ProcSources): void {
  for (const g of s.gpus.splice(0)) libc().close(g.fd);
  if (s.capabilities >= 0) libc().close(s.capabilities);
  s.capabilities = -1;
}

/** Mounts the view in the container `root` (whose mount namespace this thread is in). */
export function mountProcView(root: InRoot, src: ProcSources, log: Logger): void {
  if (src.files.size === 0) return;
  // The container's procfs has /proc/driver/nvidia on a host with the NVIDIA module; with a fake driver it does
  // not, and the view covers /proc/driver instead.
  let base = "/proc/driver/nvidia", prefix = "";
  let target = root.resolve(base, O_PATH | O_DIRECTORY);
  if (target === null) {
    base = "/proc/driver";
    prefix = "nvidia/";
    target = root.resolve(base, O_PATH | O_DIRECTORY);
    if (target === null) {
      log.warn("the container has no /proc/driver; /proc/driver/nvidia is not provided");
      return;
    }
  }
  root.assertInside(target, base);
  const mnt = newMount(
    "tmpfs",
    { mode: "0555", size: "1m" },
    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
  );
  try {
    if (prefix !== "") check("mkdirat nvidia", () => libc().mkdirat(mnt, "nvidia", 0o555));
    for (const [name, data] of src.files) {
      const fd = check(
        `create /proc/driver/nvidia/${name}`,
        () =>
          libc().openat(mnt, `${prefix}${name}`, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0o444),
      );
      try {
        writeAll(fd, data, name);
      } finally {
        libc().close(fd);
      }
    }
    if (src.gpus.length > 0) check("mkdirat gpus", () => libc().mkdirat(mnt, `${prefix}gpus`, 0o555));
    const binds = src.gpus.map((g) => ({ dir: `${prefix}gpus/${g.name}`, fd: g.fd }));
    if (src.capabilities >= 0) binds.push({ dir: `${prefix}capabilities`, fd: src.capabilities });
    for (const b of binds) check(`mkdirat ${b.dir}`, () => libc().mkdirat(mnt, b.dir, 0o555));
    attach(mnt, target);
    for (const b of binds) {
      const t = check(
        `open ${b.dir}`,
        () => libc().openat(mnt, b.dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0),
      );
      try {
        attach(b.fd, t);
      } finally {
        libc().close(t);
      }
    }
    mountSetattr(mnt, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY);
  } finally {
    libc().close(mnt);
    root.release(target);
  }
}
