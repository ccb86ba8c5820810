/**
 * CUDA forward compatibility: an image may ship a newer CUDA user-space driver in `/usr/local/cuda/compat`
 * (`libcuda.so.<version>` and its companions), which lets a new CUDA run on an older data-center driver. When it
 * is newer than the host's driver, its libraries take precedence in the container's linker cache; when it is not,
 * the host's do. The decision follows NVIDIA's hook: the compat library's `.note.cuda.fwd_compatibility` (which
 * names the driver branches it supports) when it has one, else its major version against the host driver's.
 *
 * The directory is the image's, so it is read by descriptor: symlinks are skipped, files are checked before they
 * are opened, and every read is bounded.
 * @module
 */
import type { LdEntry } from "../edits/edits.ts";
import { elfFacts, elfNote, type ReadAt } from "../driver/elf.ts";
import { compareVersions } from "../request/requirements.ts";
import { check, libc, O_CLOEXEC, O_DIRECTORY, O_PATH, O_RDONLY, preadFull, readDirFd } from "../ffi/libc.ts";
import type { InRoot } from "./inroot.ts";

export const COMPAT_DIR = "/usr/local/cuda/compat";
const MAX_FILES = 256, MAX_LIBRARY = 512 << 20;

export interface CompatDecision {
  /** The compat libraries' cache entries, empty when they are not used. */
  entries: LdEntry[];
  /** Why, for the log. */
  why: string;
  /** The compat libcuda's version, when the image has one. */
  version?: string;
}

/** The note's driver branches, if the library has one: `{"CUDA Version": "12.8", "Driver": [535, 550]}`. */
function noteBranches(read: ReadAt): number[] | null {
  const desc = elfNote(read, ".note.cuda.fwd_compatibility", "NVIDIA Corporation");
  if (desc === null) return null;
  try {
    const h = JSON.parse(new TextDecoder().decode(desc).replace(/\0+$/, "")) as { Driver?: unknown };
    return Array.isArray(h.Driver) ? h.Driver.filter((d): d is number => typeof d === "number") : [];
  } catch { // a note that is not JSON: as if it had none
    return null;
  }
}

/** Whether a compat libcuda of `compat` (with its note's branches, if any) is used with host driver `host`. */
export function useCompat(compat: string, host: string, branches: readonly number[] | null): boolean {
  const hostMajor = Number(host.split(".")[0]), compatMajor = Number(compat.split(".")[0]);
  if (branches !== null) return branches.includes(hostMajor) && compareVersions(compat, host) > 0;
  return hostMajor < compatMajor;
}

/** Decides forward compatibility for the image in `root` against host driver `driverVersion`. */
export function cudaCompat(root: InRoot, driverVersion: string): CompatDecision {
  const dirPath = root.resolve(COMPAT_DIR, O_PATH | O_DIRECTORY);
  if (dirPath === null) return { entries: [], why: `the image has no ${COMPAT_DIR}` };
  let names: { name: string; type: number }[];
  const dir = check(
    `open ${COMPAT_DIR}`,
    () => libc().openat(root.procFd, `self/fd/${dirPath}`, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0),
  );
  try {
    names = readDirFd(dir, MAX_FILES);
  } finally {
    libc().close(dir);
    root.release(dirPath);
  }
  // Regular files only (DT_REG): the links a compat package ships are passed over, as NVIDIA's hook does.
  const files = names.filter((n) => n.type === 8 && /^lib[^/]*\.so\.[0-9]/.test(n.name)).map((n) => n.name)
    .sort();
  const cuda = files.filter((n) => /^libcuda\.so\.\d+\.\d+(\.\d+)?$/.test(n));
  if (cuda.length !== 1) {
    return { entries: [], why: `${COMPAT_DIR} has ${cuda.length} libcuda.so.<version> files, not one` };
  }
  const version = cuda[0]!.slice("libcuda.so.".length);
  const withFile = <T>(name: string, f: (read: ReadAt) => T): T | null => {
    const file = root.openFile(`${COMPAT_DIR}/${name}`, MAX_LIBRARY);
    if (file === null) return null;
    try {
      return f((off, len) => {
        const b = new Uint8Array(Math.max(0, Math.min(len, 1 << 20, file.size - off)));
        return b.subarray(0, preadFull(file.fd, b, off, name));
      });
    } finally {
      root.release(file.fd);
    }
  };
  const branches = withFile(cuda[0]!, noteBranches);
  if (!useCompat(version, driverVersion, branches)) {
    return {
      entries: [],
      version,
      why: branches === null
        ? `the image's CUDA compat libraries (${version}) are not newer than the host driver ${driverVersion}`
        : `the image's CUDA compat libraries (${version}) do not support the host driver ${driverVersion} (branches ${
          branches.join(", ")
        })`,
    };
  }
  const entries: LdEntry[] = [];
  for (const name of files) {
    const facts = withFile(name, elfFacts);
    if (facts?.soname) {
      entries.push({ soname: facts.soname, path: `${COMPAT_DIR}/${name}`, bits: facts.bits });
    }
  }
  return {
    entries,
    version,
    why:
      `the image's CUDA compat libraries (${version}) are newer than the host driver ${driverVersion}: they take precedence`,
  };
}
