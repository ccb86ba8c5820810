/**
 * Bind mounts across mount namespaces: a source is cloned with `open_tree(OPEN_TREE_CLONE)` in the host's
 * namespace (a detached mount the container cannot see or influence), given its flags with `mount_setattr`
 * while detached, and attached in the container's namespace with `move_mount` onto a target descriptor that was
 * resolved inside the rootfs. No path string is ever handed to mount(2) for a container target.
 * @module
 */
import {
  AT_EMPTY_PATH,
  AT_FDCWD,
  libc,
  MOUNT_ATTR_NODEV,
  MOUNT_ATTR_NOEXEC,
  MOUNT_ATTR_NOSUID,
  MOUNT_ATTR_RDONLY,
  mountSetattr,
  MOVE_MOUNT_F_EMPTY_PATH,
  MOVE_MOUNT_T_EMPTY_PATH,
  moveMount,
  MS_PRIVATE,
  OPEN_TREE_CLOEXEC,
  OPEN_TREE_CLONE,
  openTree,
} from "../ffi/libc.ts";

/** `MOUNT_ATTR_*` bits for a plan's mount options. */
export function attrsFor(options: readonly string[]): number {
  let a = 0;
  if (options.includes("ro")) a |= MOUNT_ATTR_RDONLY;
  if (options.includes("nosuid")) a |= MOUNT_ATTR_NOSUID;
  if (options.includes("nodev")) a |= MOUNT_ATTR_NODEV;
  if (options.includes("noexec")) a |= MOUNT_ATTR_NOEXEC;
  return a;
}

/** Clones `hostPath` as a detached, private mount with `attrs` set. Call in the host's mount namespace. */
export function cloneSource(hostPath: string, attrs: number): number {
  const fd = openTree(AT_FDCWD, hostPath, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  try {
    mountSetattr(fd, "", AT_EMPTY_PATH, attrs, MS_PRIVATE);
  } catch (e) {
    libc().close(fd);
    throw e;
  }
  return fd;
}

/** Attaches a detached mount onto a target descriptor (in the current mount namespace). */
export function attach(sourceFd: number, targetFd: number): void {
  moveMount(sourceFd, "", targetFd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}
