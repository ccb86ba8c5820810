/**
 * The fronts `gpuctl install` writes: POSIX sh programs kept as real files (`serve/fronts/*.sh`, checked by
 * shellcheck in the tests), each written out after a preamble of quoted assignments that this module generates
 * from the configuration and the tools found at install time.
 *
 * - `gpuctl-runtime` (`runtime.sh`): runc's commands, and a create or run whose config.json mentions no GPU
 *   request, go straight to the low-level runtime; only what may ask for a GPU starts gpuctl, or reaches
 *   `gpuctl serve`. It finds runc's command exactly as `scanRuncArgs` does (a differential test holds it to that).
 * - `nvidia-container-runtime-hook` (`hook.sh`): the prestart hook, handed to `gpuctl serve`.
 *
 * Both speak the serve protocol through `ask.sh` (serve/server.ts is the other side) — or exec a packed gpuctl as
 * their client (`client.c`, in its launcher). Installed from a packed gpuctl, a front is binary instead
 * ({@link binaryFront}): the launcher's program with this same text after it, run with no shell (`front.c`); the
 * text is still where its settings live, and what doctor and install read ({@link readFront}).
 * @module
 */
import type { Config } from "../config/schema.ts";
import { SBIN_DIRS } from "../oci/runc_args.ts";
import { DEFAULT_CONFIG_PATH } from "../config/schema.ts";
import { PROTOCOL } from "./protocol.ts";
import { GpuctlError } from "../errors/mod.ts";
import { AT_FDCWD, setMtimeNs, statx } from "../ffi/libc.ts";
import ASK from "./fronts/ask.sh" with { type: "text" };
import RUNTIME from "./fronts/runtime.sh" with { type: "text" };
import HOOK from "./fronts/hook.sh" with { type: "text" };

/** Marks a file `gpuctl install` wrote (and may replace or remove). */
export const INSTALL_MARK = "# gpuctl install launcher";

/** Where the fronts reach `gpuctl serve`, and the tools they use for it (absolute paths, found at install). */
export interface ServeClient {
  dir: string;
  timeout: number;
  mkfifo: string;
  sleep: string;
  head: string;
  rm: string;
}

/** What both fronts are written with. */
export interface FrontOptions {
  /** The command line that runs gpuctl, before its subcommand (the installed executable, or Deno on a module). */
  gpuctl: readonly string[];
  version: string;
  serve: ServeClient | null;
  /**
   * A packed gpuctl (its launcher holds serve/fronts/client.c), by absolute path: the fronts exec it as their serve
   * client and config.json reader instead of mkfifo, sleep, head and grep. Null: the fronts do it in sh.
   */
  client?: string | null;
}

/** What the runtime front is written with besides. */
export interface RuntimeFrontOptions extends FrontOptions {
  config: Pick<Config, "runtimes" | "swarmResource" | "cdiAnnotationPrefixes">;
  /** The configuration file it is written from, and whether that file existed then. */
  configFile: string;
  hadConfig: boolean;
  /** `configFile` is NVIDIA's config.toml, read because gpuctl has no configuration of its own. */
  fromNvidia?: boolean;
  /** Where the front itself is (its modification time is the configuration's). */
  self: string;
  /** grep, by absolute path; without it every create and run goes to gpuctl. */
  grep: string | null;
}

/** A binary front's trailer (serve/fronts/front.h, tools/pack/launcher.c): 256 bytes ending the file. */
const FRONT_TRAILER = 256;
const FRONT_MAGIC = "GPUCTL-FRONT-1", FRONT_END = "GPUCTLFR";
/** A front's text is a few KiB; a binary front's program under a MiB. */
const MAX_FRONT_TEXT = 1 << 20, MAX_FRONT = 16 << 20;

/**
 * A binary front: `launcher` (a packed gpuctl's program, tools/pack/launcher.c, which runs a front's text with no
 * shell: serve/fronts/front.c), then the sh front's `text`, then the trailer that locates it.
 */
export function binaryFront(launcher: Uint8Array, text: string): Uint8Array {
  const t = new TextEncoder().encode(text);
  const out = new Uint8Array(launcher.length + t.length + FRONT_TRAILER);
  out.set(launcher, 0);
  out.set(t, launcher.length);
  const trailer = out.subarray(launcher.length + t.length);
  trailer.set(new TextEncoder().encode(FRONT_MAGIC), 0);
  const dv = new DataView(out.buffer, out.byteOffset + launcher.length + t.length, FRONT_TRAILER);
  dv.setBigUint64(16, BigInt(launcher.length), true);
  dv.setBigUint64(24, BigInt(t.length), true);
  trailer.set(new TextEncoder().encode(FRONT_END), FRONT_TRAILER - 8);
  return out;
}

/** A packed gpuctl's program, without its payload: what a binary front starts with. */
export function launcherOf(packed: string, launcherSize: number): Uint8Array {
  const f = Deno.openSync(packed, { read: true });
  try {
    const b = new Uint8Array(launcherSize);
    for (let got = 0; got < b.length;) {
      const n = f.readSync(b.subarray(got));
      if (n === null) throw new GpuctlError(packed, "is cut short; download it again");
      got += n;
    }
    return b;
  } finally {
    f.close();
  }
}

/** A front's text: a sh front's file, or the text a binary front carries; null for a file that is neither. */
export function readFront(path: string): string | null {
  return readFrontFile(path)?.text ?? null;
}

/**
 * A front's text and kind (binary: a program with the text after it), or null for a file that is neither a sh
 * front nor a binary one (absent, not a regular file, larger than a front is).
 */
export function readFrontFile(path: string): { text: string; binary: boolean } | null {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch { // absent or unreadable: no front
    return null;
  }
  try {
    const st = f.statSync();
    if (!st.isFile || st.size > MAX_FRONT) return null;
    const all = new Uint8Array(st.size);
    for (let got = 0; got < all.length;) {
      const n = f.readSync(all.subarray(got));
      if (n === null) return null;
      got += n;
    }
    const dec = new TextDecoder();
    if (all.length >= FRONT_TRAILER) {
      const t = all.subarray(all.length - FRONT_TRAILER);
      if (
        dec.decode(t.subarray(0, FRONT_MAGIC.length)) === FRONT_MAGIC &&
        dec.decode(t.subarray(FRONT_TRAILER - 8)) === FRONT_END
      ) {
        const dv = new DataView(t.buffer, t.byteOffset, FRONT_TRAILER);
        const off = Number(dv.getBigUint64(16, true)), len = Number(dv.getBigUint64(24, true));
        if (len > MAX_FRONT_TEXT || off + len > all.length - FRONT_TRAILER) return null;
        return { text: dec.decode(all.subarray(off, off + len)), binary: true };
      }
    }
    return st.size < 64 << 10 ? { text: dec.decode(all), binary: false } : null;
  } catch { // unreadable: no front
    return null;
  } finally {
    f.close();
  }
}

/** A word for sh: single-quoted. */
export function shQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** What in a config.json makes it possibly a GPU request, as fixed strings. */
export function requestMarkers(config: Pick<Config, "swarmResource" | "cdiAnnotationPrefixes">): string[] {
  return [
    "NVIDIA_VISIBLE_DEVICES",
    "nvidia-container-devices",
    "CUDA_VERSION",
    ...config.cdiAnnotationPrefixes,
    ...config.swarmResource,
    // A JSON escape could spell any of them: let gpuctl read such a file.
    "\\u",
    "\\/",
  ];
}

/** A list the front splits on newlines: none of its items may hold one. */
function lines(what: string, items: readonly string[]): string {
  for (const i of items) {
    if (i.includes("\n") || i === "") {
      throw new GpuctlError(what, `${JSON.stringify(i)}: empty, or holds a newline`);
    }
  }
  return items.join("\n");
}

function header(
  name: string,
  version: string,
  gpuctl: readonly string[],
  vars: Record<string, string>,
): string {
  return `#!/bin/sh
${INSTALL_MARK}
# ${name} front, written by gpuctl ${version} install; 'gpuctl install' rewrites it, '--uninstall' removes it.
${Object.entries(vars).map(([k, v]) => `${k}=${shQuote(v)}`).join("\n")}
gpuctl() { exec ${gpuctl.map(shQuote).join(" ")} "$@"; }
`;
}

function serveVars(c: ServeClient | null): Record<string, string> {
  return c === null
    ? { S: "", T: "0", PROTOCOL: "", MKFIFO: "", SLEEP: "", HEAD: "", RM: "" }
    : { S: c.dir, T: String(c.timeout), PROTOCOL, MKFIFO: c.mkfifo, SLEEP: c.sleep, HEAD: c.head, RM: c.rm };
}

/**
 * The variables that change how programs load and run, which the hook front drops before it runs anything (its sh
 * text, hook.sh, and a binary front, front.c, both read them from the front's `UNSAFE` setting).
 */
export const HOOK_UNSAFE_VARS = [
  "LD_PRELOAD",
  "LD_LIBRARY_PATH",
  "LD_AUDIT",
  "LD_DEBUG",
  "LD_DEBUG_OUTPUT",
  "LD_PROFILE",
  "LD_PROFILE_OUTPUT",
  "LD_ORIGIN_PATH",
  "LD_DYNAMIC_WEAK",
  "LD_HWCAP_MASK",
  "LD_USE_LOAD_BIAS",
  "LD_SHOW_AUXV",
  "LD_BIND_NOT",
  "GCONV_PATH",
  "GETCONF_DIR",
  "GLIBC_TUNABLES",
  "HOSTALIASES",
  "LOCALDOMAIN",
  "LOCPATH",
  "MALLOC_CHECK_",
  "MALLOC_PERTURB_",
  "MALLOC_TRACE",
  "NIS_PATH",
  "NLSPATH",
  "RESOLV_HOST_CONF",
  "RES_OPTIONS",
  "NODE_OPTIONS",
  "NODE_PATH",
  "DENO_DIR",
  "DENO_V8_FLAGS",
] as const;

/** The `gpuctl-runtime` front's text. */
export function runtimeFront(o: RuntimeFrontOptions): string {
  return header("gpuctl-runtime", o.version, [...o.gpuctl, "runtime"], {
    VERSION: o.version,
    SELF: o.self,
    CONFIG: o.configFile,
    HAD_CONFIG: o.hadConfig ? "1" : "0",
    FROM_NVIDIA: o.fromNvidia ? "1" : "0",
    DEFAULT_CONFIG: DEFAULT_CONFIG_PATH,
    GREP: o.grep ?? "",
    MARKERS: lines("a request marker", requestMarkers(o.config)),
    RUNTIMES: lines("runtimes", o.config.runtimes),
    SBIN: SBIN_DIRS.join(":"),
    ...serveVars(o.serve),
    CLIENT: o.client ?? "",
  }) + ASK + RUNTIME;
}

/** The `nvidia-container-runtime-hook` front's text. */
export function hookFront(o: FrontOptions): string {
  return header("nvidia-container-runtime-hook", o.version, [...o.gpuctl, "hook"], {
    ...serveVars(o.serve),
    CLIENT: o.client ?? "",
    UNSAFE: HOOK_UNSAFE_VARS.join(" "),
  }) + ASK + HOOK;
}

/**
 * The command line a front (either kind) runs gpuctl with, read back from its text: the words of its
 * `gpuctl() { exec … "$@"; }` line. Null for a file that is not a front.
 */
export function frontCommand(text: string): string[] | null {
  if (!text.includes(INSTALL_MARK)) return null;
  const line = /^gpuctl\(\) \{ exec (.*) "\$@"; \}$/m.exec(text)?.[1];
  if (line === undefined) return null;
  const words: string[] = [];
  const word = /'((?:[^']|'\\'')*)'(?: |$)/gy;
  for (let m; (m = word.exec(line)) !== null;) words.push(m[1]!.replaceAll(`'\\''`, "'"));
  return words.length === 0 ? null : words;
}

/** One of a front's preamble assignments, read back from its text. */
function assigned(text: string, name: string): string | undefined {
  return new RegExp(`^${name}='((?:[^']|'\\\\'')*)'$`, "m").exec(text)?.[1]?.replaceAll(`'\\''`, "'");
}

/** Where a front reaches `gpuctl serve`, and in which protocol, read back from its text (for doctor). */
export function frontServe(text: string): { dir: string; protocol: string } | null {
  const dir = assigned(text, "S"), protocol = assigned(text, "PROTOCOL");
  return dir === undefined || protocol === undefined || dir === "" ? null : { dir, protocol };
}

/** The configuration a runtime front was written from, read back from its text (for doctor). */
export function frontConfig(text: string): { file: string; had: boolean } | null {
  const file = assigned(text, "CONFIG"), had = assigned(text, "HAD_CONFIG");
  return file === undefined || had === undefined ? null : { file, had: had === "1" };
}

/**
 * Whether the runtime front at `path` was written from the configuration gpuctl now runs with, unchanged since:
 * the front's own test (serve/fronts/runtime.sh's `fresh`), made here for doctor.
 */
export function frontFresh(path: string, configFile: string): boolean {
  const text = readFront(path);
  if (text === null) return true; // no front: nothing stale
  const c = frontConfig(text);
  if (c === null || c.file !== configFile) return false;
  if (assigned(text, "FROM_NVIDIA") === "1" && mtimeNs(DEFAULT_CONFIG_PATH) !== null) return false;
  const config = mtimeNs(configFile);
  return c.had ? config !== null && config === mtimeNs(path) : config === null;
}

/** A file's modification time to the nanosecond (as the front's `test -nt` sees it), or null if it is absent. */
function mtimeNs(path: string): bigint | null {
  try {
    return statx(AT_FDCWD, path, 0).mtimeNs;
  } catch { // absent
    return null;
  }
}

/**
 * Gives the runtime front at `front` the modification time of `configFile` (when it exists), to the nanosecond:
 * what it compares against that file to notice a change.
 */
export function stampFront(front: string, configFile: string): void {
  const t = mtimeNs(configFile);
  if (t !== null) setMtimeNs(AT_FDCWD, front, t);
}

/**
 * Where this command was run from, as the shell found it: argv[0] when it names a path, else the first
 * directory of PATH that has it (the link `gpuctl install` made: `nvidia-ctk`, `gpuctl`).
 */
export function invokedFrom(): string | null {
  let argv0: string;
  try {
    const raw = Deno.readTextFileSync("/proc/self/cmdline");
    argv0 = raw.slice(0, raw.indexOf("\0") < 0 ? raw.length : raw.indexOf("\0"));
  } catch { // no /proc: not known
    return null;
  }
  if (argv0.includes("/")) return argv0.startsWith("/") ? argv0 : `${Deno.cwd()}/${argv0}`;
  for (const d of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!d.startsWith("/")) continue;
    try {
      if (Deno.statSync(`${d}/${argv0}`).isFile) return `${d}/${argv0}`;
    } catch { /* not here */ }
  }
  return null;
}

/**
 * The front `name` (`gpuctl-runtime`, `nvidia-container-runtime-hook`) that `gpuctl install` wrote beside the
 * command that was run (`/usr/local/bin/gpuctl`, `nvidia-ctk`), or null: what a configuration or a CDI spec
 * written by that command should name.
 */
export function frontBeside(name: string): string | null {
  const from = invokedFrom();
  if (from === null) return null;
  const p = `${from.slice(0, from.lastIndexOf("/"))}/${name}`;
  try {
    return Deno.statSync(p).isFile && frontCommand(readFront(p) ?? "") !== null ? p : null;
  } catch { // not there: none beside it
    return null;
  }
}
