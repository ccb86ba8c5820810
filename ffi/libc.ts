/**
 * libc through FFI: the system calls gpuctl makes that Deno has no API for.
 *
 * Each function returns its C result; on failure ({@link check}) a {@link SyscallError} carries errno,
 * read immediately after the failing call, before any other C call can overwrite it. Every C function gpuctl calls
 * is declared here once, with its constants and its thin wrapper: a long file of declarations, kept whole so that
 * the surface gpuctl uses of the kernel can be read in one place.
 * @module
 */
import { EAGAIN, EINTR } from "../errors/errno.ts";
import { backend, openLibrary } from "./mod.ts";
import type { Backend, Decls, Library } from "./types.ts";

/** Linux system call numbers (x86-64 first, aarch64 second), for calls glibc has no wrapper for. */
const SYS: Record<string, [number, number]> = {
  openat2: [437, 437],
  fsopen: [430, 430],
  getdents64: [217, 61],
  fsconfig: [431, 431],
  fsmount: [432, 432],
  bpf: [321, 280],
  open_tree: [428, 428],
  move_mount: [429, 429],
  mount_setattr: [442, 442],
  renameat2: [316, 276],
};

/** The libc functions gpuctl uses, each declared once. */
export const LIBC = {
  __errno_location: { params: [], result: "pointer" },
  strerror: { params: ["i32"], result: "cstring" },
  getpid: { params: [], result: "i32" },
  _exit: { params: ["i32"], result: "void" },
  geteuid: { params: [], result: "u32" },
  open: { params: ["cstring", "i32", "u32"], result: "i32" },
  openat: { params: ["i32", "cstring", "i32", "u32"], result: "i32" },
  close: { params: ["i32"], result: "i32" },
  unshare: { params: ["i32"], result: "i32" },
  setns: { params: ["i32", "i32"], result: "i32" },
  mknodat: { params: ["i32", "cstring", "u32", "u64"], result: "i32" },
  mkdirat: { params: ["i32", "cstring", "u32"], result: "i32" },
  symlinkat: { params: ["cstring", "i32", "cstring"], result: "i32" },
  fchownat: { params: ["i32", "cstring", "u32", "u32", "i32"], result: "i32" },
  fchmodat: { params: ["i32", "cstring", "u32", "i32"], result: "i32" },
  execve: { params: ["cstring", "buffer", "buffer"], result: "i32" },
  posix_spawn: { params: ["buffer", "cstring", "pointer", "buffer", "buffer", "buffer"], result: "i32" },
  posix_spawnattr_init: { params: ["buffer"], result: "i32" },
  posix_spawnattr_destroy: { params: ["buffer"], result: "i32" },
  // The flags are a C short: passed in a full register, as any integer argument is on x86-64 and aarch64.
  posix_spawnattr_setflags: { params: ["buffer", "i32"], result: "i32" },
  posix_spawnattr_setsigmask: { params: ["buffer", "buffer"], result: "i32" },
  posix_spawnattr_setsigdefault: { params: ["buffer", "buffer"], result: "i32" },
  waitpid: { params: ["i32", "buffer", "i32"], result: "i32" },
  signal: { params: ["i32", "pointer"], result: "pointer" },
  access: { params: ["cstring", "i32"], result: "i32" },
  read: { params: ["i32", "buffer", "u64"], result: "i64" },
  write: { params: ["i32", "buffer", "u64"], result: "i64" },
  pread: { params: ["i32", "buffer", "u64", "i64"], result: "i64" },
  pwrite: { params: ["i32", "buffer", "u64", "i64"], result: "i64" },
  renameat: { params: ["i32", "cstring", "i32", "cstring"], result: "i32" },
  unlinkat: { params: ["i32", "cstring", "i32"], result: "i32" },
  fstatfs: { params: ["i32", "buffer"], result: "i32" },
  flock: { params: ["i32", "i32"], result: "i32" },
  readlinkat: { params: ["i32", "cstring", "buffer", "u64"], result: "i64" },
  statx: { params: ["i32", "cstring", "i32", "u32", "buffer"], result: "i32" },
  utimensat: { params: ["i32", "cstring", "buffer", "i32"], result: "i32" },
  setrlimit: { params: ["i32", "buffer"], result: "i32" },
  // syscall(2) is variadic; integer and pointer varargs pass like fixed ones on x86-64 and aarch64.
  sys_openat2: { symbol: "syscall", params: ["i64", "i32", "cstring", "buffer", "u64"], result: "i64" },
  sys_bpf: { symbol: "syscall", params: ["i64", "i32", "buffer", "u32"], result: "i64" },
  sys_open_tree: { symbol: "syscall", params: ["i64", "i32", "cstring", "u32"], result: "i64" },
  sys_mount_setattr: {
    symbol: "syscall",
    params: ["i64", "i32", "cstring", "u32", "buffer", "u64"],
    result: "i64",
  },
  sys_renameat2: {
    symbol: "syscall",
    params: ["i64", "i32", "cstring", "i32", "cstring", "u32"],
    result: "i64",
  },
  sys_getdents64: { symbol: "syscall", params: ["i64", "i32", "buffer", "u64"], result: "i64" },
  sys_fsopen: { symbol: "syscall", params: ["i64", "cstring", "u32"], result: "i64" },
  sys_fsconfig: {
    symbol: "syscall",
    params: ["i64", "i32", "u32", "cstring", "cstring", "i32"],
    result: "i64",
  },
  sys_fsmount: { symbol: "syscall", params: ["i64", "i32", "u32", "u32"], result: "i64" },
  sys_move_mount: {
    symbol: "syscall",
    params: ["i64", "i32", "cstring", "i32", "cstring", "u32"],
    result: "i64",
  },
} as const satisfies Decls;

/** A failed C call: the function, errno, and the system's text for it. */
export class SyscallError extends Error {
  constructor(readonly call: string, readonly errno: number, readonly detail: string) {
    super(`${call}${detail ? ` ${detail}` : ""}: ${strerror(errno)} (errno ${errno})`);
    this.name = "SyscallError";
  }
}

type LibcSymbols = Library<typeof LIBC>["symbols"];
let lib: Library<typeof LIBC> | null = null;
let libBackend: Backend | null = null;

/** libc's declared functions, loaded on first use (and again if the backend changes). */
export function libc(): LibcSymbols {
  if (lib === null || libBackend !== backend()) {
    libBackend = backend();
    lib = openLibrary("libc.so.6", LIBC);
  }
  return lib.symbols;
}

/** Whether `path` exists, by access(2): an answer without the thrown error a failed Deno stat or read costs. */
export function exists(path: string): boolean {
  return libc().access(path, F_OK) === 0;
}

/** The calling thread's errno. */
export function errno(): number {
  const addr = libc().__errno_location();
  const b = backend().read(addr, 4);
  return new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true);
}

/** The system's message for an errno value. */
export function strerror(n: number): string {
  return libc().strerror(n) ?? `errno ${n}`;
}

/**
 * Runs a C call and throws {@link SyscallError} when it returns -1; errno is read straight after the call.
 *
 * ```ts
 * const fd = check("open /etc/hostname", () => libc().open("/etc/hostname", O_RDONLY, 0));
 * ```
 */
export function check(what: string, call: () => number): number {
  let r = call(), e = 0;
  // errno is read by a second call, after the first has returned through the FFI layer, which may itself have
  // failed a libc call meanwhile (seen: EAGAIN after a statx that found no file). A failure read as EINTR or
  // EAGAIN is tried again: a real one (flock with LOCK_NB, a signal) comes back the same.
  for (let tries = 0; r === -1 && ((e = errno()) === EINTR || e === EAGAIN) && tries < 3; tries++) r = call();
  if (r === -1) {
    const sp = what.indexOf(" ");
    throw new SyscallError(sp < 0 ? what : what.slice(0, sp), e, sp < 0 ? "" : what.slice(sp + 1));
  }
  return r;
}

function sysno(name: keyof typeof SYS): number {
  const [x64, a64] = SYS[name]!;
  const g = globalThis as { Deno?: { build: { arch: string } }; process?: { arch: string } };
  const arch = g.Deno?.build.arch ?? (g.process?.arch === "arm64" ? "aarch64" : "x86_64");
  return arch === "aarch64" ? a64 : x64;
}

/** Flags and constants used with these calls. */
export const O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_NOFOLLOW = 0o400000;
export const O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000, O_PATH = 0o10000000;
export const F_OK = 0, X_OK = 1;
export const AT_FDCWD = -100, AT_SYMLINK_NOFOLLOW = 0x100, AT_EMPTY_PATH = 0x1000;
export const CLONE_FS = 0x200, CLONE_NEWNS = 0x20000;
export const MS_RDONLY = 1, MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_REMOUNT = 32, MS_BIND = 4096;
export const MS_REC = 0x4000, MS_PRIVATE = 1 << 18, MNT_DETACH = 2;
export const RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08, RESOLVE_IN_ROOT = 0x10;
export const OPEN_TREE_CLONE = 1, OPEN_TREE_CLOEXEC = O_CLOEXEC, MOVE_MOUNT_F_EMPTY_PATH = 4;
export const MOVE_MOUNT_T_EMPTY_PATH = 0x40, AT_REMOVEDIR = 0x200, AT_RECURSIVE = 0x8000, O_NONBLOCK = 0o4000;
export const MOUNT_ATTR_RDONLY = 1, MOUNT_ATTR_NOSUID = 2, MOUNT_ATTR_NODEV = 4, MOUNT_ATTR_NOEXEC = 8;
export const S_IFMT = 0o170000,
  S_IFLNK = 0o120000,
  S_IFIFO = 0o010000,
  S_IFSOCK = 0o140000,
  S_IFBLK = 0o060000;
export const S_IFCHR = 0o020000, S_IFDIR = 0o040000, S_IFREG = 0o100000;

/** `openat2(2)`: opens `path` relative to `dirfd` with resolve flags (see `RESOLVE_*`). */
export function openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number {
  const how = new Uint8Array(24);
  const v = new DataView(how.buffer);
  v.setBigUint64(0, BigInt(flags), true);
  v.setBigUint64(8, BigInt(mode), true);
  v.setBigUint64(16, BigInt(resolve), true);
  return check(`openat2 ${path}`, () => libc().sys_openat2(sysno("openat2"), dirfd, path, how, 24));
}

export const RENAME_EXCHANGE = 2;

/** `renameat2(2)` (glibc before 2.28 has no wrapper); the raw result, errno left for the caller. */
export function renameat2(
  olddirfd: number,
  oldpath: string,
  newdirfd: number,
  newpath: string,
  flags: number,
): number {
  return Number(libc().sys_renameat2(sysno("renameat2"), olddirfd, oldpath, newdirfd, newpath, flags));
}

/** The filesystem type (`f_type` of `fstatfs(2)`) of the file `fd` is open on. */
export function fsType(fd: number): number {
  const buf = new Uint8Array(128); // struct statfs is 120 bytes on x86-64 and aarch64; f_type comes first
  check("fstatfs", () => libc().fstatfs(fd, buf));
  return Number(new DataView(buf.buffer).getBigInt64(0, true));
}

/** `bpf(2)`: one command with its attribute union. */
export function bpf(cmd: number, attr: Uint8Array): number {
  return check(`bpf cmd=${cmd}`, () => libc().sys_bpf(sysno("bpf"), cmd, attr, attr.byteLength));
}

/** `open_tree(2)`: a detached copy of a mount tree, for moving across mount namespaces. */
export function openTree(dirfd: number, path: string, flags: number): number {
  return check(`open_tree ${path}`, () => libc().sys_open_tree(sysno("open_tree"), dirfd, path, flags));
}

/**
 * A new, detached filesystem of `type` (`fsopen`, `fsconfig`, `fsmount`): a mount descriptor that is in no mount
 * namespace until it is attached with `move_mount`. `options` are string parameters (`mode`, `size`).
 */
export function newMount(type: string, options: Record<string, string>, attrs: number): number {
  const fs = check(`fsopen ${type}`, () => libc().sys_fsopen(sysno("fsopen"), type, 1 /* FSOPEN_CLOEXEC */));
  try {
    for (const [k, v] of Object.entries(options)) {
      check(`fsconfig ${k}`, () => libc().sys_fsconfig(sysno("fsconfig"), fs, 1, /* SET_STRING */ k, v, 0));
    }
    check(
      "fsconfig create",
      () => libc().sys_fsconfig(sysno("fsconfig"), fs, 6, /* CMD_CREATE */ null, null, 0),
    );
    return check(
      `fsmount ${type}`,
      () => libc().sys_fsmount(sysno("fsmount"), fs, 1, /* FSMOUNT_CLOEXEC */ attrs),
    );
  } finally {
    libc().close(fs);
  }
}

/** `move_mount(2)`. */
export function moveMount(
  fromFd: number,
  fromPath: string,
  toFd: number,
  toPath: string,
  flags: number,
): number {
  return check(
    `move_mount ${toPath}`,
    () => libc().sys_move_mount(sysno("move_mount"), fromFd, fromPath, toFd, toPath, flags),
  );
}

/** A `dev_t` from major and minor numbers (glibc's makedev). */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major), mi = BigInt(minor);
  return ((ma & 0xfffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

/**
 * `execve(2)`: replaces this process. Returns only on failure, by throwing.
 * The argument and environment strings are kept alive by the closure until the call.
 */
export function execve(path: string, argv: readonly string[], envp: readonly string[]): never {
  const keep: Uint8Array[] = [];
  const a = cTable("execve", argv, keep), e = cTable("execve", envp, keep);
  // Deno ignores SIGPIPE, and an ignored signal stays ignored across exec: the program gets it back at its default,
  // as a child of Deno.Command does.
  const before = libc().signal(SIGPIPE, SIG_DFL);
  try {
    check(`execve ${path}`, () => libc().execve(path, a, e));
  } finally {
    libc().signal(SIGPIPE, before);
  }
  throw new Error(`execve ${path} returned`); // unreachable: check throws on -1 and success never returns
}

const SIGPIPE = 13, SIG_DFL = 0n;
/** A sigset_t: 1024 bits on Linux, signal n at bit n - 1. */
const SIGSET_BYTES = 128;
/** posix_spawnattr_t: 336 bytes in glibc on x86-64 and aarch64, given room to spare. */
const SPAWNATTR_BYTES = 512;
const POSIX_SPAWN_SETSIGDEF = 0x04, POSIX_SPAWN_SETSIGMASK = 0x08;

/**
 * A NULL-terminated array of C strings for argv or envp: the strings' buffers go into `keep`, which the caller holds
 * until the call that reads them has returned.
 */
function cTable(call: string, items: readonly string[], keep: Uint8Array[]): Uint8Array {
  const enc = new TextEncoder();
  const t = new BigUint64Array(items.length + 1);
  items.forEach((s, i) => {
    if (s.includes("\0")) throw new TypeError(`Cannot pass a string with a NUL byte to ${call}: ${s}`);
    const b = enc.encode(s + "\0");
    keep.push(b);
    t[i] = backend().addressOf(b);
  });
  return new Uint8Array(t.buffer);
}

/**
 * `posix_spawn(3)`: starts `path` (no PATH search) with exactly `argv` and `envp`, this process's descriptors that
 * are not close-on-exec (0, 1, 2 and any the caller was given to pass on) and working directory, an empty signal
 * mask and SIGPIPE at its default: what Deno.Command gives a child with inherited stdio, without loading Deno's
 * process and stream modules into a process that starts one child and waits for it. Returns the child's pid.
 */
export function spawn(path: string, argv: readonly string[], envp: readonly string[]): number {
  const keep: Uint8Array[] = [];
  const a = cTable("posix_spawn", argv, keep), e = cTable("posix_spawn", envp, keep);
  const attr = new Uint8Array(SPAWNATTR_BYTES);
  const mask = new Uint8Array(SIGSET_BYTES), dflt = new Uint8Array(SIGSET_BYTES);
  dflt[(SIGPIPE - 1) >> 3]! |= 1 << ((SIGPIPE - 1) & 7);
  const c = libc();
  const err = (what: string, r: number) => {
    if (r !== 0) throw new SyscallError(what, r, path);
  };
  err("posix_spawnattr_init", c.posix_spawnattr_init(attr));
  try {
    err(
      "posix_spawnattr_setflags",
      c.posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK),
    );
    err("posix_spawnattr_setsigmask", c.posix_spawnattr_setsigmask(attr, mask));
    err("posix_spawnattr_setsigdefault", c.posix_spawnattr_setsigdefault(attr, dflt));
    const pid = new Int32Array(1);
    // posix_spawn returns its error rather than setting errno.
    err("posix_spawn", c.posix_spawn(new Uint8Array(pid.buffer), path, 0n, attr, a, e));
    return pid[0]!;
  } finally {
    c.posix_spawnattr_destroy(attr);
  }
}

/**
 * Waits for the child `pid` to end (blocking this thread) and returns its exit code as a shell reports it: the
 * code it exited with, or 128 + the signal that killed it.
 */
export function waitExit(pid: number): number {
  const st = new Int32Array(1);
  check(`waitpid ${pid}`, () => libc().waitpid(pid, new Uint8Array(st.buffer), 0));
  const s = st[0]!;
  return (s & 0x7f) === 0 ? (s >> 8) & 0xff : 128 + (s & 0x7f);
}

/** `mount_setattr(2)`: sets mount attributes (`MOUNT_ATTR_*`) and propagation on a mount or a detached tree. */
export function mountSetattr(fd: number, path: string, flags: number, set: number, propagation = 0): void {
  const attr = new Uint8Array(32);
  const v = new DataView(attr.buffer);
  v.setBigUint64(0, BigInt(set), true);
  v.setBigUint64(16, BigInt(propagation), true);
  check(
    `mount_setattr ${path}`,
    () => libc().sys_mount_setattr(sysno("mount_setattr"), fd, path, flags, attr, 32),
  );
}

/** What `statx(2)` tells about a file. */
export interface Statx {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  ino: bigint;
  /** Modification time, ns since the epoch. */
  mtimeNs: bigint;
  rdevMajor: number;
  rdevMinor: number;
  devMajor: number;
  devMinor: number;
}

/** `statx(2)` of `path` relative to `dirfd` (with `AT_EMPTY_PATH` and `""`: the descriptor itself). */
export function statx(dirfd: number, path: string, flags: number): Statx {
  const b = new Uint8Array(256);
  check(`statx ${path || `fd ${dirfd}`}`, () => libc().statx(dirfd, path, flags, 0x7ff, b));
  const v = new DataView(b.buffer);
  return {
    uid: v.getUint32(20, true),
    gid: v.getUint32(24, true),
    mode: v.getUint16(28, true),
    size: Number(v.getBigUint64(40, true)),
    ino: v.getBigUint64(32, true),
    mtimeNs: v.getBigInt64(112, true) * 1_000_000_000n + BigInt(v.getUint32(120, true)),
    rdevMajor: v.getUint32(128, true),
    rdevMinor: v.getUint32(132, true),
    devMajor: v.getUint32(136, true),
    devMinor: v.getUint32(140, true),
  };
}

/**
 * Sets `path`'s modification time to `mtimeNs` (ns since the epoch) exactly, leaving its access time; relative
 * to `dirfd` (AT_FDCWD for the working directory). Deno's own utime keeps milliseconds only.
 */
export function setMtimeNs(dirfd: number, path: string, mtimeNs: bigint): void {
  const UTIME_OMIT = (1n << 30n) - 2n;
  const b = new Uint8Array(32);
  const v = new DataView(b.buffer);
  v.setBigInt64(0, 0n, true);
  v.setBigInt64(8, UTIME_OMIT, true);
  v.setBigInt64(16, mtimeNs / 1_000_000_000n, true);
  v.setBigInt64(24, mtimeNs % 1_000_000_000n, true);
  check(`utimensat ${path}`, () => libc().utimensat(dirfd, path, b, 0));
}

/** The names in a directory opened for reading (`O_RDONLY | O_DIRECTORY`), at most `max` of them. */
export function readDirFd(fd: number, max: number): { name: string; type: number }[] {
  const out: { name: string; type: number }[] = [];
  const buf = new Uint8Array(32 << 10);
  const dec = new TextDecoder();
  for (;;) {
    const n = check("getdents64", () => libc().sys_getdents64(sysno("getdents64"), fd, buf, buf.length));
    if (n === 0) return out;
    const v = new DataView(buf.buffer);
    for (let at = 0; at < n;) {
      const reclen = v.getUint16(at + 16, true);
      const type = buf[at + 18]!;
      const end = buf.indexOf(0, at + 19);
      const name = dec.decode(buf.subarray(at + 19, end < 0 || end > at + reclen ? at + reclen : end));
      if (name !== "." && name !== "..") {
        if (out.length >= max) throw new Error(`more than ${max} directory entries`);
        out.push({ name, type });
      }
      at += reclen;
    }
  }
}

/** Reads a symlink's target relative to `dirfd`. */
export function readlinkat(dirfd: number, path: string): string {
  const b = new Uint8Array(4096);
  const n = check(`readlinkat ${path}`, () => libc().readlinkat(dirfd, path, b, b.length));
  return new TextDecoder().decode(b.subarray(0, n));
}

/** Writes all of `data` to `fd`. */
export function writeAll(fd: number, data: Uint8Array, what: string): void {
  let off = 0;
  while (off < data.length) {
    const chunk = data.subarray(off);
    off += check(`write ${what}`, () => libc().write(fd, chunk, chunk.length));
  }
}

/**
 * Reads everything from `fd`, at most `max` bytes (more is an error: the caller decides the limit). The buffer
 * starts at `sizeHint` (a file's size, when known) and grows only as data comes, so a large limit costs nothing
 * for a small file.
 */
export function readAll(fd: number, max: number, what: string, sizeHint = 64 << 10): Uint8Array {
  let out = new Uint8Array(Math.min(max, Math.max(sizeHint, 0)) + 1);
  let n = 0;
  for (;;) {
    if (n === out.length) {
      if (n > max) throw new Error(`${what} is larger than ${max} bytes`);
      const grown = new Uint8Array(Math.min(max + 1, out.length * 2));
      grown.set(out);
      out = grown;
    }
    const chunk = out.subarray(n);
    const r = check(`read ${what}`, () => libc().read(fd, chunk, chunk.length));
    if (r === 0) return n === out.length ? out : out.slice(0, n);
    n += r;
    if (n > max) throw new Error(`${what} is larger than ${max} bytes`);
  }
}

/** `pread(2)` into `buf` from `offset`; returns the bytes read (fewer only at the end of the file). */
export function preadFull(fd: number, buf: Uint8Array, offset: number, what: string): number {
  let n = 0;
  while (n < buf.length) {
    const chunk = buf.subarray(n);
    const r = check(`pread ${what}`, () => libc().pread(fd, chunk, chunk.length, offset + n));
    if (r === 0) break;
    n += r;
  }
  return n;
}
