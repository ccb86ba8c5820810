/**
 * Test helpers: run gpuctl as a user would (a real process), temporary directories, fixture configs.
 * @module
 */
import { launcherArgs } from "../tools/pack/build.ts";
import { createHash } from "node:crypto";
import {
  binaryFront,
  hookFront,
  readFrontFile,
  runtimeFront,
  type ServeClient,
  stampFront,
} from "../serve/fronts.ts";
import { serveClient } from "../system/install.ts";
import type { Config } from "../config/schema.ts";
/** A small seeded PRNG (mulberry32), so that a generated test's failure repeats. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    /** An integer in [0, n). */
    int: (n: number) => Math.floor(next() * n),
    pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]!,
  };
}

export const PROJECT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
export const DENO = Deno.execPath();

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs `deno run -A cli/main.ts ...args` (or another entry), or with `exe` that executable (the artifact), and
 * captures everything. `argv0`: a link to Deno (or to `exe`) under the name gpuctl is to be invoked as.
 */
export async function runGpuctl(
  args: string[],
  opts: {
    env?: Record<string, string>;
    entry?: string;
    exe?: string;
    argv0?: string;
    stdin?: string;
    cwd?: string;
    /** A command that runs gpuctl's command line given as its last arguments (a namespace of its own). */
    wrap?: string[];
  } = {},
): Promise<RunResult> {
  if (opts.entry === undefined && opts.exe === undefined && opts.argv0 === undefined && artifactTarget()) {
    opts = { ...opts, exe: artifact().exe };
  }
  const program = opts.argv0 ?? opts.exe ?? DENO;
  const gpuctlArgs = opts.exe !== undefined
    ? args
    : ["run", "-A", "--quiet", opts.entry ?? `${PROJECT}/cli/main.ts`, ...args];
  const cmd = new Deno.Command(opts.wrap?.[0] ?? program, {
    args: opts.wrap === undefined ? gpuctlArgs : [...opts.wrap.slice(1), program, ...gpuctlArgs],
    // A host's NVIDIA configuration is not the test's (gpuctl reads it when it has none of its own).
    env: {
      NO_COLOR: "1",
      NVIDIA_CTK_CONFIG_FILE_PATH: "/nonexistent/nvidia-container-runtime/config.toml",
      ...opts.env,
    },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    ...(opts.cwd ? { cwd: opts.cwd } : {}),
  });
  const child = cmd.spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A temporary directory removed by the returned disposer. */
export function tempDir(prefix = "gpuctl-test-"): { path: string; [Symbol.dispose](): void } {
  const path = Deno.makeTempDirSync({ prefix });
  return {
    path,
    [Symbol.dispose]() {
      Deno.removeSync(path, { recursive: true });
    },
  };
}

/** Writes `text` to a new file in `dir` and returns its path. */
export function writeFile(dir: string, name: string, text: string): string {
  const p = `${dir}/${name}`;
  Deno.writeTextFileSync(p, text);
  return p;
}

/** A directory tree as text (paths, file contents, link targets), to show that nothing in it changed. */
export function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of [...Deno.readDirSync(d)].sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = `${d}/${e.name}`;
      out.push(
        `${p} ${e.isFile ? Deno.readTextFileSync(p) : e.isSymlink ? `-> ${Deno.readLinkSync(p)}` : "dir"}`,
      );
      if (e.isDirectory) walk(p);
    }
  };
  walk(dir);
  return out.join("\n");
}

/** gpuctl's JSON-lines log file, parsed. */
export function logLines(file: string): Record<string, unknown>[] {
  return Deno.readTextFileSync(file).split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/**
 * Builds gpuctl's bundle into `out` with exactly the flags of deno.json's "bundle" task (tests run in parallel:
 * each gets its own file rather than rewriting dist/gpuctl.js under another test's feet).
 */
export async function bundleTo(out: string): Promise<string> {
  const task = JSON.parse(Deno.readTextFileSync(`${PROJECT}/deno.json`)).tasks.bundle as string;
  const cmd = task.replace("./node_modules/.bin/deno", DENO).replace("-o dist/gpuctl.js", `-o ${out}`);
  if (!cmd.includes(out)) throw new Error(`deno.json's bundle task has no "-o dist/gpuctl.js": ${task}`);
  const o = await new Deno.Command("sh", { args: ["-c", cmd], cwd: PROJECT, stderr: "piped" }).output();
  if (!o.success) throw new Error(`bundle failed: ${new TextDecoder().decode(o.stderr)}`);
  return out;
}

/**
 * Whether tests run gpuctl as the artifact (`GPUCTL_TEST_TARGET=artifact`, as npm test's GPU-host pass does)
 * wherever they do not name a target themselves; else from source.
 */
export function artifactTarget(): boolean {
  return Deno.env.get("GPUCTL_TEST_TARGET") === "artifact";
}

/** The sources `deno task dist` builds from: what the artifact's cache key covers. */
function distSources(): string[] {
  const out: string[] = [];
  const skip = new Set(["node_modules", "dist", "tests", "bench", ".git", ".gpu"]);
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(`${PROJECT}/${rel}`)) {
      const p = rel === "" ? e.name : `${rel}/${e.name}`;
      if (e.isDirectory && !skip.has(e.name)) walk(p);
      else if (e.isFile && /\.(ts|c|json|jsonc|service|path|ya?ml|sh)$|^Dockerfile$/.test(e.name)) {
        out.push(p);
      }
    }
  };
  walk("");
  return out.sort();
}

/**
 * `dist/gpuctl` as `deno task dist --only gpuctl` builds it from this checkout, built once per state of the
 * sources (cached under tests/.cache/dist, shared by parallel test processes): the executable a host runs, so
 * that what CI tests is what ships. It unpacks beside itself, in that cache.
 */
export function artifact(): { exe: string; js: string; dir: string } {
  const h = createHash("sha256");
  for (const p of distSources()) h.update(`${p}\0${Deno.readTextFileSync(`${PROJECT}/${p}`)}\0`);
  h.update(Deno.version.deno);
  const key = h.digest("hex").slice(0, 20);
  const cache = `${PROJECT}/tests/.cache/dist`;
  const dir = `${cache}/${key}`;
  const done = { exe: `${dir}/gpuctl`, js: `${dir}/gpuctl.js`, dir };
  try {
    Deno.statSync(`${dir}/ready`);
    return done;
  } catch { /* build it */ }
  Deno.mkdirSync(cache, { recursive: true });
  const tmp = Deno.makeTempDirSync({ dir: cache, prefix: `.${key}-` });
  try {
    Deno.chmodSync(tmp, 0o755);
    const o = new Deno.Command(DENO, {
      args: ["run", "-A", "--quiet", `${PROJECT}/tools/dist.ts`, "--only", "gpuctl", "--out", tmp],
      env: { GPUCTL_DIST_KIND: Deno.env.get("GPUCTL_DIST_KIND") ?? "packed" },
      stdout: "piped",
      stderr: "piped",
    }).outputSync();
    if (!o.success) throw new Error(`deno task dist failed: ${new TextDecoder().decode(o.stderr)}`);
    // Marked as install marks its directories, so that it unpacks beside itself (in this cache), as an installed
    // gpuctl does, and not in the host's /var/lib/gpuctl.
    Deno.writeTextFileSync(`${tmp}/.installed-by-gpuctl`, "gpuctl's tests: an artifact built for them\n");
    Deno.writeTextFileSync(`${tmp}/ready`, "");
    Deno.renameSync(tmp, dir);
    // Builds of earlier sources (about 200 MB each, unpacked) go.
    for (const e of Deno.readDirSync(cache)) {
      if (e.isDirectory && e.name !== key && !e.name.startsWith(".")) {
        Deno.removeSync(`${cache}/${e.name}`, { recursive: true });
      }
    }
  } catch (e) {
    Deno.removeSync(tmp, { recursive: true });
    // Another test process may have built it meanwhile.
    try {
      Deno.statSync(`${dir}/ready`);
    } catch {
      throw e;
    }
  }
  return done;
}

/**
 * Writes a gpuctl-runtime front to `path` as `gpuctl install` does: for the configuration file `configFile` (the
 * one `$GPUCTL_CONFIG` must name when it runs), its modification time that file's, grep found as install finds it.
 */
export function writeRuntimeFront(
  path: string,
  o: {
    gpuctl: string[];
    config: Parameters<typeof runtimeFront>[0]["config"];
    configFile: string;
    serve?: ServeClient | null;
    client?: string | null;
  },
): string {
  let mtime: Date | null = null;
  try {
    mtime = Deno.statSync(o.configFile).mtime;
  } catch { /* absent */ }
  const grep = ["/usr/bin/grep", "/bin/grep"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  }) ?? null;
  Deno.writeTextFileSync(
    path,
    runtimeFront({
      gpuctl: o.gpuctl,
      version: "test",
      serve: o.serve ?? null,
      client: o.client ?? null,
      config: o.config,
      configFile: o.configFile,
      hadConfig: mtime !== null,
      self: path,
      grep,
    }),
    { mode: 0o755 },
  );
  stampFront(path, o.configFile);
  return path;
}

/**
 * The fronts a host may get, which every front and serve test runs against: sh with its serve client in sh
 * (ask.sh); sh that execs a packed gpuctl as its client (client.c); binary, a packed gpuctl's program running the
 * same text (front.c).
 */
export const FRONT_KINDS = ["sh", "C", "binary"] as const;
export type FrontKind = (typeof FRONT_KINDS)[number];
export const FRONT_LABEL: Record<FrontKind, string> = {
  sh: "sh fronts",
  C: "sh fronts, C serve client",
  binary: "binary fronts",
};

/** The `client` a sh front of `kind` names: the C serve client (built in `dir`, running `gpuctl`) for "C". */
export function clientFor(kind: FrontKind, dir: string, gpuctl: string): Promise<string | null> {
  return kind === "C" ? serveClientBinary(`${dir}/client`, gpuctl) : Promise.resolve(null);
}

/** The sh front at `path` as a front of `kind`: made binary in place for "binary" (see {@link toBinaryFront}). */
export async function asKind(kind: FrontKind, path: string, configFile?: string): Promise<string> {
  return kind === "binary" ? await toBinaryFront(path, configFile) : path;
}

/**
 * A stand-in for gpuctl behind the fronts under test: a program at `<dir>/fail` that notes its arguments in
 * `<dir>/gpuctl-ran` and fails, so that a test sees whether a front ran gpuctl (and how) instead of a server.
 */
export function standInGpuctl(dir: string): { path: string; ran: () => string; clear: () => void } {
  const path = `${dir}/fail`, mark = `${dir}/gpuctl-ran`;
  Deno.writeTextFileSync(path, `#!/bin/sh\necho "$*" >> ${mark}\nexit 1\n`, { mode: 0o755 });
  return {
    path,
    ran: () => {
      try {
        return Deno.readTextFileSync(mark);
      } catch {
        return "";
      }
    },
    clear: () => Deno.writeTextFileSync(mark, ""),
  };
}

/**
 * The fronts as `gpuctl install` writes them, of `kind`, in `<dir>/bin`, for the configuration `config` read from
 * `configFile`, over {@link standInGpuctl}: `runtime(name, serveDir)` writes a runtime front (reaching the
 * configuration's server, or the one in `serveDir`), `hook(name)` a hook front; each returns its path.
 */
export async function standInFronts(kind: FrontKind, dir: string, configFile: string, config: Config) {
  const client = serveClient(config);
  if (client === null) throw new Error("no serve client: mkfifo, sleep and head are not on this host");
  Deno.mkdirSync(`${dir}/bin`, { recursive: true });
  const gpuctl = standInGpuctl(dir);
  const cClient = await clientFor(kind, dir, gpuctl.path);
  return {
    gpuctl,
    client,
    cClient,
    runtime: (name = "front", serveDir?: string) =>
      asKind(
        kind,
        writeRuntimeFront(`${dir}/bin/${name}`, {
          gpuctl: [gpuctl.path],
          config,
          configFile,
          serve: serveDir === undefined ? client : { ...client, dir: serveDir },
          client: cClient,
        }),
        configFile,
      ),
    hook: (name = "nvidia-container-runtime-hook") => {
      const path = `${dir}/bin/${name}`;
      Deno.writeTextFileSync(
        path,
        hookFront({ gpuctl: [gpuctl.path], version: "test", serve: client, client: cClient }),
        {
          mode: 0o755,
        },
      );
      return asKind(kind, path);
    },
  };
}

let launcherBuilt: Promise<Uint8Array> | null = null;

/** tools/pack/launcher.c's program as `deno task dist` builds it (its serve client and binary front with it). */
export function launcherProgram(): Promise<Uint8Array> {
  launcherBuilt ??= (async () => {
    const dir = Deno.makeTempDirSync({ prefix: "gpuctl-launcher-" });
    try {
      const o = await new Deno.Command("gcc", {
        args: launcherArgs(PROJECT, `${dir}/launcher`),
        stderr: "piped",
      })
        .output();
      if (!o.success) throw new Error(`gcc: ${new TextDecoder().decode(o.stderr)}`);
      return Deno.readFileSync(`${dir}/launcher`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  })();
  return launcherBuilt;
}

/**
 * The front at `path` (sh, as written by {@link writeRuntimeFront} or `hookFront`) made binary in place, as
 * `gpuctl install` writes it from a packed gpuctl: the launcher's program, then the same text. A runtime front gets
 * its configuration's modification time again (`configFile`).
 */
export async function toBinaryFront(path: string, configFile?: string): Promise<string> {
  const text = Deno.readTextFileSync(path);
  Deno.writeFileSync(path, binaryFront(await launcherProgram(), text), { mode: 0o755 });
  if (configFile !== undefined) stampFront(path, configFile);
  return path;
}

/**
 * Rewrites a front's text with `edit`, keeping its kind: a sh front's file, or the text a binary front carries
 * after its program (the program kept as it is).
 */
export function editFront(path: string, edit: (text: string) => string): void {
  const front = readFrontFile(path);
  if (front === null) throw new Error(`${path}: not a front`);
  if (!front.binary) return Deno.writeTextFileSync(path, edit(front.text));
  // The program is what comes before the text and its trailer.
  const bytes = Deno.readFileSync(path);
  const program = bytes.length - new TextEncoder().encode(front.text).length - 256;
  Deno.writeFileSync(path, binaryFront(bytes.subarray(0, program), edit(front.text)));
}

/**
 * The fronts' C serve client (serve/fronts/client.c, as the packed launcher holds it) built into `path`, with a
 * stand-in launcher that runs `gpuctl` (a program) where the real one would run gpuctl (tests/fixtures/serve-client).
 */
export async function serveClientBinary(path: string, gpuctl: string): Promise<string> {
  const o = await new Deno.Command("gcc", {
    args: [
      "-static",
      "-O1",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-Wno-format-truncation",
      "-o",
      path,
      `${PROJECT}/tests/fixtures/serve-client/main.c`,
      `${PROJECT}/serve/fronts/client.c`,
    ],
    stderr: "piped",
  }).output();
  if (!o.success) throw new Error(`gcc: ${new TextDecoder().decode(o.stderr)}`);
  Deno.symlinkSync(gpuctl, `${path}.gpuctl`);
  return path;
}
