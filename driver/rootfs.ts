/**
 * Reading a driver root as if it were `/`: symlinks are resolved inside it (an absolute target means the driver
 * root's `/`, `..` never climbs above it), so `/run/nvidia/driver` or `/run/opengl-driver` layouts work and a
 * link can never lead outside. This reads the host's own driver files; container rootfs paths are handled by
 * descriptor in `apply/`, never like this.
 * @module
 */

const MAX_LINKS = 40;

/** Joins a driver root and a root-relative absolute path. */
export function hostPath(root: string, path: string): string {
  const r = root.replace(/\/+$/, "");
  return `${r}${path.startsWith("/") ? path : `/${path}`}`;
}

/**
 * Resolves `path` (absolute, relative to `root`) following symlinks inside `root`. Returns the resolved
 * root-relative path, or `null` when a component does not exist or links loop.
 */
export function resolveInRoot(root: string, path: string): string | null {
  const pending = path.split("/").filter((c) => c !== "" && c !== ".").reverse();
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const c = pending.pop()!;
    if (c === "..") {
      done.pop();
      continue;
    }
    const here = "/" + [...done, c].join("/");
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(hostPath(root, here));
    } catch {
      return null;
    }
    if (info.isSymlink) {
      if (++links > MAX_LINKS) return null;
      const target = Deno.readLinkSync(hostPath(root, here));
      if (target.startsWith("/")) done.length = 0;
      pending.push(...target.split("/").filter((x) => x !== "" && x !== ".").reverse());
      continue;
    }
    done.push(c);
  }
  return "/" + done.join("/");
}

/** The ELF class of a file (32 or 64), or `null` if it is not ELF. */
export function elfClass(file: string): 32 | 64 | null {
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(file, { read: true });
    const b = new Uint8Array(5);
    if (f.readSync(b) !== 5 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) return null;
    return b[4] === 1 ? 32 : b[4] === 2 ? 64 : null;
  } catch {
    return null;
  } finally {
    f?.close();
  }
}

/** lstat inside the root after resolution, or `null`. */
export function statInRoot(root: string, path: string): { path: string; info: Deno.FileInfo } | null {
  const resolved = resolveInRoot(root, path);
  if (resolved === null) return null;
  try {
    return { path: resolved, info: Deno.statSync(hostPath(root, resolved)) };
  } catch {
    return null;
  }
}
