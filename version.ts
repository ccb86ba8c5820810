/**
 * What this gpuctl is: its version (tests/cli checks it against package.json), how it was built, and how to run
 * it again (discovery in a child process, the hook it adds to a spec, the fronts install writes).
 *
 * A build is one of:
 * - `source`: `deno run cli/main.ts`;
 * - `bundle`: `deno run dist/gpuctl.js`, the bundle `deno task dist` (or `bundle`) writes;
 * - `packed`: `dist/gpuctl` built without Deno's `denort`: tools/pack/launcher.c, which unpacks the pinned Deno
 *   and the bundle once and execs Deno on it, telling gpuctl its own file in `GPUCTL_SELF`;
 * - `compiled`: `dist/gpuctl` built by `deno compile`.
 * @module
 */
export const VERSION = "0.1.0";

/**
 * tools/dist.ts replaces this string, in the bundle's text, with the build's JSON ({commit, date}); from source it
 * stays as it is.
 */
const STAMP = "@@GPUCTL_BUILD_STAMP@@";

export type BuildKind = "source" | "bundle" | "packed" | "compiled";

export interface Build {
  kind: BuildKind;
  /** The commit it was built from (with `+dirty` for uncommitted changes), when built by `deno task dist`. */
  commit: string | null;
  /** When it was built (UTC, ISO 8601), when built by `deno task dist`. */
  date: string | null;
  deno: string;
}

/** The file the packed launcher says it is, taken out of the environment by {@link adoptLauncher}. */
let launcher: string | null = null;
/** The Deno directory the packed launcher gave this run (its code cache's), taken out by {@link adoptLauncher}. */
let launcherDenoDir: string | null = null;

/**
 * Takes the packed launcher's variables out of this process's environment (nothing gpuctl starts inherits them),
 * keeping the file it names. Called first thing by the entry point.
 */
export function adoptLauncher(
  env: Pick<Deno.Env, "get" | "delete"> = Deno.env,
): void {
  const self = env.get("GPUCTL_SELF");
  if (self === undefined) return;
  env.delete("GPUCTL_SELF");
  launcherDenoDir = env.get("DENO_DIR") ?? null;
  env.delete("DENO_DIR");
  env.delete("DENO_NO_UPDATE_CHECK");
  launcher = self;
}

/** How this gpuctl was built. */
export function build(): Build {
  let stamp: { commit?: string; date?: string } = {};
  if (!STAMP.startsWith("@@")) {
    try {
      stamp = JSON.parse(STAMP);
    } catch { /* a stamp that does not parse says nothing */ }
  }
  const kind: BuildKind = Deno.build.standalone
    ? "compiled"
    : packedSelf() !== null
    ? "packed"
    : new URL(Deno.mainModule).pathname.endsWith(".ts")
    ? "source"
    : "bundle";
  return { kind, commit: stamp.commit ?? null, date: stamp.date ?? null, deno: Deno.version.deno };
}

/**
 * Left in the packed launcher's Deno directory by a run about to end on its own: such a run waits for Deno to write
 * the bundle's V8 code cache there (Deno writes it in the background; a run that exits early may cut that off).
 */
const CODE_CACHE_MARK = "gpuctl-code-cache-kept";

/** The mark's path: only for a packed gpuctl, whose Deno directory is its own. */
function codeCacheMark(): string | null {
  return launcher !== null && launcherDenoDir !== null && launcherDenoDir.startsWith("/")
    ? `${launcherDenoDir}/${CODE_CACHE_MARK}`
    : null;
}

/**
 * Whether a run of this packed gpuctl has ended on its own before, so that Deno holds the bundle's code cache and
 * this run may end without Deno's orderly shutdown. `exists` is access(2), passed in: this module loads no FFI.
 */
export function codeCacheKept(exists: (path: string) => boolean): boolean {
  const mark = codeCacheMark();
  return mark !== null && exists(mark);
}

/**
 * Leaves the mark, in a run about to end on its own that found none ({@link codeCacheKept}); where the directory is
 * not writable, there is no cache either.
 */
export function markCodeCacheKept(): void {
  const mark = codeCacheMark();
  if (mark === null) return;
  try {
    Deno.writeFileSync(mark, new Uint8Array(), { createNew: true, mode: 0o644 });
  } catch { /* read-only, or another run made it */ }
}

/** `gpuctl --version`: the version, then how it was built. */
export function versionText(): string {
  const b = build();
  const from = [b.commit ? `commit ${b.commit}` : null, b.date ? `built ${b.date}` : null].filter((x) => x);
  return `gpuctl ${VERSION}\n${b.kind}${from.length ? `, ${from.join(", ")}` : ""}, Deno ${b.deno}\n`;
}

const TRAILER = 256;

/**
 * The packed executable this process was started from, or null. The launcher's word is taken only when it holds:
 * Deno runs from `<dir>/deno` where `<dir>` is named by the first 16 hex digits of that file's payload SHA-256.
 */
let packed: string | null | undefined;
export function packedSelf(): string | null {
  if (packed !== undefined) return packed;
  packed = null;
  if (launcher === null) return null;
  try {
    const exe = Deno.execPath();
    const dir = exe.slice(0, exe.lastIndexOf("/"));
    const id = dir.slice(dir.lastIndexOf("/") + 1);
    const sha = packTrailer(launcher)?.sha256;
    if (exe.endsWith("/deno") && /^[0-9a-f]{16}$/.test(id) && sha?.startsWith(id)) packed = launcher;
  } catch { /* not a packed gpuctl: run as what it is */ }
  return packed;
}

/** A packed gpuctl's trailer (tools/pack/launcher.c), or null for any other file. */
export function packTrailer(path: string): { sha256: string; version: string; launcherSize: number } | null {
  const f = Deno.openSync(path, { read: true });
  try {
    const size = f.statSync().size;
    if (size < TRAILER) return null;
    const t = new Uint8Array(TRAILER);
    f.seekSync(size - TRAILER, Deno.SeekMode.Start);
    let got = 0;
    while (got < TRAILER) {
      const n = f.readSync(t.subarray(got));
      if (n === null) return null;
      got += n;
    }
    const text = (a: number, b: number) => {
      const s = new TextDecoder().decode(t.subarray(a, b));
      const nul = s.indexOf("\0");
      return nul < 0 ? s : s.slice(0, nul);
    };
    if (text(0, 16) !== "GPUCTL-PACK-1" || text(TRAILER - 8, TRAILER) !== "GPUCTLPK") return null;
    // deno_off: where the payload begins, after the launcher's program.
    const launcherSize = Number(new DataView(t.buffer).getBigUint64(16, true));
    return { sha256: text(48, 113), version: text(113, 177), launcherSize };
  } finally {
    f.close();
  }
}

/** The one executable file a host runs (packed or compiled), or null when gpuctl runs from source or a bundle. */
export function selfExecutable(): string | null {
  if (Deno.build.standalone) return Deno.execPath();
  return packedSelf();
}

/** How to run this gpuctl again: its executable, or Deno with the same entry module (source or bundle). */
export function selfCommand(): string[] {
  const exe = selfExecutable();
  if (exe !== null) return [exe];
  return [Deno.execPath(), "run", "-A", "--quiet", new URL(Deno.mainModule).pathname];
}
