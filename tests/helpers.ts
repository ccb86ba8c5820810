/**
 * Test helpers: run gpuctl as a user would (a real process), temporary directories, fixture configs.
 * @module
 */
export const PROJECT = new URL("../", import.meta.url).pathname.replace(/\/$/, "");
export const DENO = Deno.execPath();

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `deno run -A cli/main.ts ...args` (or another entry) and captures everything. */
export async function runGpuctl(
  args: string[],
  opts: { env?: Record<string, string>; entry?: string; argv0?: string; stdin?: string; cwd?: string } = {},
): Promise<RunResult> {
  const cmd = new Deno.Command(opts.argv0 ?? DENO, {
    args: ["run", "-A", "--quiet", opts.entry ?? `${PROJECT}/cli/main.ts`, ...args],
    env: { NO_COLOR: "1", ...opts.env },
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
