/**
 * Working inside a container's rootfs by file descriptor. The image is hostile: any component of a path may be a
 * symlink (absolute, `../` chains, `/proc/self/root`-style magic links), dangling, or a FIFO. Every path is
 * resolved relative to a descriptor of the rootfs with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so a
 * symlink can only ever lead somewhere inside the rootfs; where `openat2` is missing, a component-by-component
 * walk with `O_NOFOLLOW` does the same. Files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, and every
 * descriptor used as a target is checked through `/proc/self/fd` to lie inside the rootfs.
 * No path is ever built as `rootfs + path` and handed to the kernel.
 *
 * One class in one file, longer than the rest of gpuctl's by design: every way gpuctl touches a rootfs is a method
 * here, so that no path reaches the kernel without these checks, and a reviewer reads the whole door at once.
 * @module
 */
import { EAGAIN, EEXIST, ELOOP, ENOENT, ENOSYS, ENOTDIR, EPERM, EXDEV } from "../errors/errno.ts";
import {
  AT_EMPTY_PATH,
  AT_SYMLINK_NOFOLLOW,
  check,
  fsType,
  libc,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECTORY,
  O_EXCL,
  O_NOFOLLOW,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  openat2,
  readAll,
  readlinkat,
  RENAME_EXCHANGE,
  renameat2,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  S_IFCHR,
  S_IFDIR,
  S_IFLNK,
  S_IFMT,
  S_IFREG,
  statx,
  SyscallError,
  writeAll,
} from "../ffi/libc.ts";
import { GpuctlError } from "../errors/mod.ts";
import { AT_FDCWD } from "../ffi/libc.ts";

const MAX_LINKS = 40;

/** A file type from a `statx` mode. */
export function fileType(mode: number): "file" | "dir" | "symlink" | "char" | "block" | "fifo" | "socket" {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    case S_IFCHR:
      return "char";
    case 0o060000:
      return "block";
    case 0o010000:
      return "fifo";
    default:
      return "socket";
  }
}

function components(path: string): string[] {
  return path.split("/").filter((c) => c !== "" && c !== ".");
}

function splitParent(path: string): [string, string] {
  const c = components(path);
  const name = c.pop();
  if (name === undefined || name === "..") {
    throw new GpuctlError(path, "is not a file path inside the container");
  }
  return ["/" + c.join("/"), name];
}

/** Lexically cleaned components of a path (`.` dropped, `..` applied), as runc cleans a rootfs path. */
function cleanComponents(path: string): string[] {
  const out: string[] = [];
  for (const c of path.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return out;
}

/**
 * Opens the directory `path` relative to `dirfd` (`AT_FDCWD` and an absolute path: from `/`) one component at a
 * time, following no symlink: a component that is a symlink (or a magic link such as `/proc/self/root`) fails.
 */
export function openNoFollow(dirfd: number, path: string, what: string): number {
  let fd = path.startsWith("/")
    ? check(`open /`, () => libc().open("/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0))
    : check(`dup`, () => libc().openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
  try {
    for (const c of cleanComponents(path)) {
      let next: number;
      try {
        next = check(
          `openat ${c}`,
          () => libc().openat(fd, c, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC, 0),
        );
      } catch (e) {
        if (e instanceof SyscallError && (e.errno === ENOTDIR || e.errno === ELOOP)) {
          throw new GpuctlError(
            what,
            `is a symlink or passes through one (${c}); refusing it, as runc does`,
            1,
            { cause: e },
          );
        }
        throw e;
      }
      libc().close(fd);
      fd = next;
    }
    return fd;
  } catch (e) {
    libc().close(fd);
    throw e;
  }
}

const OVERLAYFS_SUPER_MAGIC = 0x794c7630;

/** A container rootfs opened by descriptor. Close it with {@link InRoot.close}. */
export class InRoot {
  #fds: number[] = [];
  private constructor(
    readonly rootPath: string,
    readonly rootFd: number,
    readonly openat2Available: boolean,
    /** A procfs where `self` is this process (the host's, opened before entering any namespace). */
    readonly procFd: number,
    readonly ownsProc: boolean,
  ) {}

  /**
   * Opens the rootfs at `path`, a path the caller trusts (following symlinks), in the current mount namespace.
   * `forceWalk` uses the fall-back walk even where `openat2` exists (tests run both); `procFd` is a procfs to
   * use for `self` (default: `/proc`, opened now).
   */
  static open(path: string, opts: { forceWalk?: boolean; procFd?: number } = {}): InRoot {
    const fd = check(`open ${path}`, () => libc().open(path, O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
    return InRoot.#fromFd(fd, opts);
  }

  /**
   * Opens a bundle's rootfs as runc will use it: `rootPath` (config.json's `root.path`: absolute, or relative to
   * the bundle directory the engine gave) may not be or pass through a symlink, so a rootfs that is a link to a
   * host directory, or `/proc/self/root/...`, is refused before anything is written.
   */
  static openRootfs(
    bundle: string,
    rootPath: string | undefined,
    opts: { forceWalk?: boolean; procFd?: number } = {},
  ): InRoot {
    const rel = rootPath ?? "rootfs";
    const what = `the rootfs ${rel.startsWith("/") ? rel : `${bundle.replace(/\/+$/, "")}/${rel}`}`;
    let fd: number;
    if (rel.startsWith("/")) fd = openNoFollow(AT_FDCWD, rel, what);
    else {
      const b = check(`open ${bundle}`, () => libc().open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
      try {
        fd = openNoFollow(b, rel, what);
      } finally {
        libc().close(b);
      }
    }
    return InRoot.#fromFd(fd, opts);
  }

  static #fromFd(fd: number, opts: { forceWalk?: boolean; procFd?: number }): InRoot {
    let procFd = opts.procFd ?? -1;
    try {
      if (procFd < 0) {
        procFd = check("open /proc", () => libc().open("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC, 0));
      }
      let has = !opts.forceWalk;
      if (has) {
        try {
          const probe = openat2(fd, "/", O_PATH | O_CLOEXEC, 0, RESOLVE_IN_ROOT);
          libc().close(probe);
        } catch (e) {
          if (e instanceof SyscallError && (e.errno === ENOSYS || e.errno === EPERM /* seccomp */)) {
            has = false;
          } else throw e;
        }
      }
      const real = readlinkat(procFd, `self/fd/${fd}`);
      return new InRoot(real, fd, has, procFd, opts.procFd === undefined);
    } catch (e) {
      libc().close(fd);
      if (opts.procFd === undefined && procFd >= 0) libc().close(procFd);
      throw e;
    }
  }

  /** Closes every descriptor this object opened. */
  close(): void {
    for (const fd of this.#fds.splice(0)) libc().close(fd);
    libc().close(this.rootFd);
    if (this.ownsProc) libc().close(this.procFd);
  }

  /**
   * Directories made or found by {@link parentDir}, by path: the edits put many files in a few directories.
   * Sound because gpuctl never removes or replaces a directory, and the image's processes are not running yet.
   */
  readonly #dirs = new Map<string, number>();

  /** The directory `path` inside the rootfs, made if absent (see {@link mkdirAll}); owned by this InRoot. */
  parentDir(path: string): number {
    let fd = this.#dirs.get(path);
    if (fd === undefined) {
      fd = this.mkdirAll(path);
      this.#dirs.set(path, fd);
    }
    return fd;
  }

  #keep(fd: number): number {
    this.#fds.push(fd);
    return fd;
  }

  /** Releases one descriptor early. */
  release(fd: number): void {
    const i = this.#fds.indexOf(fd);
    if (i >= 0) this.#fds.splice(i, 1);
    libc().close(fd);
  }

  /** Checks, through /proc/self/fd, that a descriptor lies inside the rootfs. */
  assertInside(fd: number, what: string): void {
    const p = readlinkat(this.procFd, `self/fd/${fd}`);
    if (p !== this.rootPath && !p.startsWith(this.rootPath === "/" ? "/" : `${this.rootPath}/`)) {
      throw new GpuctlError(what, `resolved outside the container's rootfs (to ${p}); refusing`);
    }
  }

  /**
   * Opens `path` inside the rootfs (symlinks resolved inside it). With `O_NOFOLLOW` in `flags` a symlink leaf is
   * not followed (with `O_PATH`, the descriptor is the link itself). Returns `null` when a component is missing.
   */
  resolve(path: string, flags: number): number | null {
    try {
      if (this.openat2Available) {
        for (let attempt = 0;; attempt++) {
          try {
            return this.#keep(
              openat2(this.rootFd, path, flags | O_CLOEXEC, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS),
            );
          } catch (e) {
            // EAGAIN: a rename raced the lookup; EXDEV/ELOOP mean a magic link or a loop: refuse.
            if (e instanceof SyscallError && e.errno === EAGAIN && attempt < 16) continue;
            throw e;
          }
        }
      }
      return this.#walk(path, flags);
    } catch (e) {
      if (e instanceof SyscallError && e.errno === ENOENT) return null;
      if (e instanceof SyscallError && (e.errno === ELOOP || e.errno === EXDEV)) {
        throw new GpuctlError(
          `${path} in the container`,
          `crosses a symlink loop or a magic link; refusing`,
          1,
          { cause: e },
        );
      }
      throw e;
    }
  }

  /** The fall-back resolver: one component at a time, never letting the kernel follow a link. */
  #walk(path: string, flags: number): number {
    const stack: number[] = []; // descriptors of the directories walked into, rootFd implied at the bottom
    const cur = () => stack.at(-1) ?? this.rootFd;
    const pending = components(path).reverse();
    let links = 0;
    try {
      while (pending.length > 0) {
        const c = pending.pop()!;
        if (c === "..") {
          const top = stack.pop();
          if (top !== undefined) libc().close(top);
          continue;
        }
        const last = pending.length === 0;
        const fd = check(`openat ${c}`, () => libc().openat(cur(), c, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0));
        const st = statx(fd, "", AT_EMPTY_PATH);
        if (fileType(st.mode) === "symlink" && !(last && flags & O_NOFOLLOW)) {
          libc().close(fd);
          if (++links > MAX_LINKS) throw new SyscallError("openat", ELOOP, path);
          const target = readlinkat(cur(), c);
          if (target.startsWith("/")) {
            for (const d of stack.splice(0)) libc().close(d);
          }
          pending.push(...components(target).reverse());
          continue;
        }
        if (last) {
          if ((flags & O_PATH) !== 0) {
            stack.push(fd);
            break;
          }
          // Reopen the final object with the real flags, through its O_PATH descriptor.
          libc().close(fd);
          const real = check(
            `openat ${c}`,
            () => libc().openat(cur(), c, (flags | O_NOFOLLOW | O_CLOEXEC) & ~O_CREAT, 0),
          );
          stack.push(real);
          break;
        }
        if (fileType(st.mode) !== "dir") {
          libc().close(fd);
          throw new SyscallError("openat", 20, /* ENOTDIR */ path);
        }
        stack.push(fd);
      }
      const out = stack.pop();
      for (const d of stack) libc().close(d);
      if (out === undefined) {
        return this.#keep(
          check("openat /", () => libc().openat(this.rootFd, ".", (flags & ~O_NOFOLLOW) | O_CLOEXEC, 0)),
        );
      }
      const fd = this.#keep(out);
      this.assertInside(fd, path);
      return fd;
    } catch (e) {
      for (const d of stack) libc().close(d);
      throw e;
    }
  }

  /**
   * A directory inside the rootfs, created (mode 0755) with every missing parent. A dangling symlink on the way
   * (`/var/run` → `/run` in an image without `/run`) is followed by creating its target, inside the rootfs.
   * Returns an O_PATH descriptor.
   */
  mkdirAll(path: string, depth = 0): number {
    if (depth > MAX_LINKS) {
      throw new GpuctlError(`${path} in the container`, "too many levels of symlinks; refusing");
    }
    const have = this.resolve(path, O_PATH | O_DIRECTORY);
    if (have !== null) return have;
    const parts = components(path);
    let dir = this.rootFd;
    let done = "";
    for (const c of parts) {
      const parent = done === "" ? "/" : done;
      done += `/${c}`;
      let fd = this.resolve(done, O_PATH | O_DIRECTORY);
      if (fd === null) {
        if (c === "..") throw new GpuctlError(path, "cannot be created in the container (it climbs with ..)");
        try {
          check(`mkdirat ${done}`, () => libc().mkdirat(dir, c, 0o755));
        } catch (e) {
          if (!(e instanceof SyscallError && e.errno === EEXIST)) throw e;
          const st = this.lstatAt(dir, c);
          if (st !== null && fileType(st.mode) === "symlink") {
            // A dangling link: create what it points at (resolved inside the rootfs), then go on through it.
            try {
              const target = readlinkat(dir, c);
              const next = target.startsWith("/") ? target : `${parent}/${target}`;
              this.release(this.mkdirAll(next, depth + 1));
            } catch (x) {
              if (x instanceof GpuctlError) throw x;
              throw new GpuctlError(
                `${done} in the container`,
                `is a symlink that cannot be followed inside the rootfs (${(x as Error).message}); refusing`,
                1,
                { cause: x },
              );
            }
          }
        }
        fd = this.resolve(done, O_PATH | O_DIRECTORY);
        if (fd === null) {
          throw new GpuctlError(`${done} in the container`, "exists but is not a directory; refusing");
        }
      }
      if (dir !== this.rootFd) this.release(dir);
      dir = fd;
    }
    return dir;
  }

  /** Type of the entry `name` in directory `dirfd`, without following it; `null` if absent. */
  lstatAt(dirfd: number, name: string): ReturnType<typeof statx> | null {
    try {
      return statx(dirfd, name, AT_SYMLINK_NOFOLLOW);
    } catch (e) {
      if (e instanceof SyscallError && e.errno === ENOENT) return null;
      throw e;
    }
  }

  /** Removes a non-directory entry `name` from `dirfd` (a symlink or a file), if present. */
  unlinkAt(dirfd: number, name: string): void {
    if (libc().unlinkat(dirfd, name, 0) === -1) {
      try {
        check(`unlinkat ${name}`, () => -1);
      } catch (e) {
        if (!(e instanceof SyscallError && e.errno === ENOENT)) throw e;
      }
    }
  }

  /**
   * A mount target: an O_PATH descriptor of a regular file (`kind: "file"`) or a directory (`"dir"`) at `path`,
   * created if absent. A symlink in its place is removed and replaced (`onReplace` is told); a FIFO, socket,
   * device or a target of the other kind is refused.
   */
  mountTarget(path: string, kind: "file" | "dir", onReplace: (msg: string) => void = () => {}): number {
    const [parent, name] = splitParent(path);
    const dir = this.parentDir(parent);
    const st = this.lstatAt(dir, name);
    let absent = st === null;
    if (st !== null) {
      const t = fileType(st.mode);
      if (t === "symlink") {
        onReplace(`${path} in the image is a symlink; replaced by the injected ${kind}`);
        this.unlinkAt(dir, name);
        absent = true;
      } else if (t !== kind) {
        throw new GpuctlError(
          `${path} in the container`,
          `is a ${t} in the image, not a ${kind}; refusing to mount over it`,
        );
      }
      // Else the image's own file (or the target left by an earlier start of this container) is mounted over,
      // unchanged underneath.
    }
    if (absent) {
      if (kind === "dir") {
        check(`mkdirat ${path}`, () => libc().mkdirat(dir, name, 0o755));
      } else {
        const fd = check(
          `create ${path}`,
          () => libc().openat(dir, name, O_CREAT | O_EXCL | O_NOFOLLOW | O_WRONLY | O_CLOEXEC, 0o644),
        );
        libc().close(fd);
      }
    }
    const fd = this.#keep(
      check(`openat ${path}`, () => libc().openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC, 0)),
    );
    const t = fileType(statx(fd, "", AT_EMPTY_PATH).mode);
    if (t !== kind) {
      throw new GpuctlError(`${path} in the container`, `changed under us (now a ${t}); refusing`);
    }
    this.assertInside(fd, path);
    return fd;
  }

  /**
   * Creates (or replaces) the symlink `dir/name` → `target` inside the rootfs. A directory there is refused. Made
   * first and looked at only when something is in the way: in a fresh rootfs nothing is, and a failed look-up is an
   * error thrown and caught.
   */
  symlink(dirPath: string, name: string, target: string): void {
    const dir = this.parentDir(dirPath);
    if (libc().symlinkat(target, dir, name) === 0) return;
    const st = this.lstatAt(dir, name);
    if (st !== null) {
      const t = fileType(st.mode);
      if (t === "dir") {
        throw new GpuctlError(
          `${dirPath}/${name} in the container`,
          "is a directory; refusing to replace it by a symlink",
        );
      }
      this.unlinkAt(dir, name);
    }
    check(`symlinkat ${dirPath}/${name}`, () => libc().symlinkat(target, dir, name));
  }

  /** Creates the character device `path` (replacing a non-directory entry that is not already the same device). */
  mknod(
    path: string,
    major: number,
    minor: number,
    mode: number,
    uid: number,
    gid: number,
    makedev: (a: number, b: number) => bigint,
  ): void {
    const [parent, name] = splitParent(path);
    const dir = this.parentDir(parent);
    const st = this.lstatAt(dir, name);
    if (st !== null) {
      const t = fileType(st.mode);
      if (t === "char" && st.rdevMajor === major && st.rdevMinor === minor) return;
      if (t === "dir") throw new GpuctlError(`${path} in the container`, "is a directory; refusing");
      this.unlinkAt(dir, name);
    }
    check(
      `mknodat ${path}`,
      () => libc().mknodat(dir, name, S_IFCHR | (mode & 0o777), makedev(major, minor)),
    );
    check(`fchownat ${path}`, () => libc().fchownat(dir, name, uid, gid, AT_SYMLINK_NOFOLLOW));
  }

  /**
   * Opens a regular file inside the rootfs for reading, or returns `null` if it is absent. The file is found with
   * `O_PATH` and its type checked before it is opened for reading: opening a FIFO would block, and opening some
   * devices has effects (a watchdog node reboots the host). A symlink leaf is followed inside the rootfs.
   */
  openFile(path: string, max: number): { fd: number; size: number } | null {
    const p = this.resolve(path, O_PATH);
    if (p === null) return null;
    try {
      const st = statx(p, "", AT_EMPTY_PATH);
      if (fileType(st.mode) !== "file") {
        throw new GpuctlError(
          `${path} in the container`,
          `is a ${fileType(st.mode)}, not a file; refusing to read it`,
        );
      }
      if (st.size > max) {
        throw new GpuctlError(`${path} in the container`, `is larger than ${max} bytes; refusing to read it`);
      }
      const fd = this.#keep(
        check(`open ${path}`, () => libc().openat(this.procFd, `self/fd/${p}`, O_RDONLY | O_CLOEXEC, 0)),
      );
      return { fd, size: st.size };
    } finally {
      this.release(p);
    }
  }

  /** Reads a regular file inside the rootfs (at most `max` bytes; see {@link openFile}); `null` if absent. */
  readFile(path: string, max: number): Uint8Array | null {
    const f = this.openFile(path, max);
    if (f === null) return null;
    try {
      return readAll(f.fd, max, path, f.size);
    } finally {
      this.release(f.fd);
    }
  }

  /** Whether `path` exists inside the rootfs. */
  exists(path: string): boolean {
    const fd = this.resolve(path, O_PATH);
    if (fd === null) return false;
    this.release(fd);
    return true;
  }

  /**
   * Replaces `path` atomically: a new file is written next to it (O_EXCL, O_NOFOLLOW) and renamed over it.
   * Whatever was there — a file, or a symlink pointing anywhere — is replaced, never written through, and no reader
   * ever sees half a file.
   *
   * Not fsynced: what gpuctl writes into a container (its linker cache, the driver's /proc files) is written again
   * on every start, before the container's process runs, so surviving a host crash would buy nothing, and an fsync
   * waits on the host's disk in every GPU container's start.
   */
  writeFileAtomic(path: string, data: Uint8Array, mode = 0o644): void {
    this.writeFileAtomicWith(path, mode, (fd) => {
      writeAll(fd, data, path);
      return true;
    });
  }

  /**
   * Whether a file in `dir` is replaced by exchanging it with the new one rather than renaming over it; as
   * atomic, and it spares the start a disk write: ext4 (`auto_da_alloc`) starts writing back a file renamed over
   * another, and the next file-system operation waits for it, which for a large linker cache is most of the
   * write's cost. A rootfs need not outlive a host crash, so nothing is lost. Not on overlayfs, where an exchange
   * first copies the image's file up from its layer.
   */
  #exchangeable(dir: number): boolean {
    let ok = this.#exchange.get(dir);
    if (ok === undefined) {
      ok = fsType(dir) !== OVERLAYFS_SUPER_MAGIC;
      this.#exchange.set(dir, ok);
    }
    return ok;
  }
  readonly #exchange = new Map<number, boolean>();

  /**
   * {@link writeFileAtomic} with the content written by `fill` into the new file's descriptor. When `fill`
   * returns `false` the new file is removed and the old one stays; the result says which happened.
   */
  writeFileAtomicWith(path: string, mode: number, fill: (fd: number) => boolean): boolean {
    const [parent, name] = splitParent(path);
    const dir = this.parentDir(parent);
    const tmp = `.${name}.gpuctl-${Deno.pid}-${Math.random().toString(36).slice(2, 10)}`;
    let created = false;
    try {
      const fd = check(
        `create ${parent}/${tmp}`,
        () => libc().openat(dir, tmp, O_CREAT | O_EXCL | O_NOFOLLOW | O_RDWR | O_CLOEXEC, mode),
      );
      created = true;
      let ok: boolean;
      try {
        ok = fill(fd);
      } finally {
        libc().close(fd);
      }
      if (!ok) return false;
      const old = this.#exchangeable(dir) ? this.lstatAt(dir, name) : null;
      if (
        old !== null && fileType(old.mode) === "file" && renameat2(dir, tmp, dir, name, RENAME_EXCHANGE) === 0
      ) {
        // The new file has the name; the old one has the temporary name.
        created = false;
        check(`unlinkat ${parent}/${tmp}`, () => libc().unlinkat(dir, tmp, 0));
        return true;
      }
      check(`renameat ${path}`, () => libc().renameat(dir, tmp, dir, name));
      created = false;
      return true;
    } finally {
      if (created) libc().unlinkat(dir, tmp, 0);
    }
  }
}
