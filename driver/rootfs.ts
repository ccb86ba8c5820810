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
 * A driver root read as `/`, with every lstat and readlink remembered: the libraries, binaries and files of a
 * capability share their directories, so resolving each path again from `/` would repeat the same system calls
 * (and, for the missing ones, the same thrown errors) dozens of times. One view serves one discovery; a tree
 * that changes under it is read again by the next.
 */
export class RootView {
  readonly #lstat = new Map<string, Deno.FileInfo | null>();
  readonly #links = new Map<string, string>();
  readonly #resolved = new Map<string, string | null>();
  constructor(readonly root: string) {}

  #lstatAt(path: string): Deno.FileInfo | null {
    let info = this.#lstat.get(path);
    if (info === undefined) {
      try {
        info = Deno.lstatSync(hostPath(this.root, path));
      } catch { // absent (remembered as such)
        info = null;
      }
      this.#lstat.set(path, info);
    }
    return info;
  }

  #readLink(path: string): string {
    let t = this.#links.get(path);
    if (t === undefined) {
      t = Deno.readLinkSync(hostPath(this.root, path));
      this.#links.set(path, t);
    }
    return t;
  }

  /**
   * Resolves `path` (absolute, relative to the root) following symlinks inside the root. Returns the resolved
   * root-relative path, or `null` when a component does not exist or links loop.
   */
  resolve(path: string): string | null {
    let r = this.#resolved.get(path);
    if (r === undefined) {
      r = this.#resolve(path);
      this.#resolved.set(path, r);
    }
    return r;
  }

  #resolve(path: string): string | null {
    const pending = path.split("/").filter((c) => c !== "" && c !== ".").reverse();
    const done: string[] = [];
    let links = 0;
    while (pending.length > 0) {
      const c = pending.pop()!;
      if (c === "..") {
        done.pop();
        continue;
      }
      const here = "/" + (done.length === 0 ? c : `${done.join("/")}/${c}`);
      const info = this.#lstatAt(here);
      if (info === null) return null;
      if (info.isSymlink) {
        if (++links > MAX_LINKS) return null;
        let target: string;
        try {
          target = this.#readLink(here);
        } catch { // a link that cannot be read: not resolved
          return null;
        }
        if (target.startsWith("/")) done.length = 0;
        pending.push(...target.split("/").filter((x) => x !== "" && x !== ".").reverse());
        continue;
      }
      done.push(c);
    }
    return "/" + done.join("/");
  }

  /** What `path` resolves to inside the root and its file information (never a symlink), or `null`. */
  stat(path: string): { path: string; info: Deno.FileInfo } | null {
    const resolved = this.resolve(path);
    if (resolved === null) return null;
    const info = this.#lstatAt(resolved);
    return info === null ? null : { path: resolved, info };
  }
}

/** The ELF class of a file (32 or 64), or `null` if it is not ELF. */
export function elfClass(file: string): 32 | 64 | null {
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(file, { read: true });
    const b = new Uint8Array(5);
    if (f.readSync(b) !== 5 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) return null;
    return b[4] === 1 ? 32 : b[4] === 2 ? 64 : null;
  } catch { // unreadable: not an ELF file as far as gpuctl can tell
    return null;
  } finally {
    f?.close();
  }
}

/** stat inside the root after resolution, or `null`. */
export function statInRoot(root: string, path: string): { path: string; info: Deno.FileInfo } | null {
  return new RootView(root).stat(path);
}
