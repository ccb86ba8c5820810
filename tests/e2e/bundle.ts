/**
 * OCI bundles for end-to-end tests with real runc: a busybox rootfs plus the host's glibc, an NVML probe (the
 * fake nvidia-smi, which dlopens libnvidia-ml.so.1 through the dynamic loader) and a static ldconfig for
 * `ldconfig -p`, with a config.json from `runc spec`.
 * @module
 */
import { artifact, artifactTarget, PROJECT } from "../helpers.ts";
import { type FakeDriver, fixtureConfig } from "../fixtures/driver.ts";

/**
 * Where tests that mount things on the host do so: the Docker tests' dockerd data roots and the cgroup2 test's
 * hierarchy. Other tests, running in parallel, leave these out when they compare the host's mount table.
 */
export const TEST_MOUNT_PREFIXES = ["/tmp/gpuctl-docker", "/tmp/gpuctl-cgroup2-", "/tmp/gpuctl-podman"];

export interface BundleOptions {
  /** Mark the image Debian-style (/etc/debian_version): libraries go to the multiarch dirs, else /usr/lib64. */
  debian?: boolean;
  env?: string[];
  args: string[];
  /** A prestart hook: gpuctl through a launcher named like Docker's hook, with this environment. */
  hook?: { env: string[]; path?: string };
  /** Extra changes to the rootfs before the run (hostile images). */
  prepare?: (rootfs: string) => void;
  /** Extra changes to config.json. */
  edit?: (config: Record<string, unknown>) => void;
}

let probe: string | null = null;

/**
 * The NVML probe, compiled once per state of its source into the tests' cache (tests/.cache, as the artifact is),
 * and shared by the test processes: one per process in a temporary directory was left behind by every one.
 */
async function probeBinary(): Promise<string> {
  if (probe) return probe;
  const src = `${PROJECT}/tests/fixtures/fake-nvml/nvidia-smi.c`;
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", Deno.readFileSync(src)));
  const key = [...digest.subarray(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const dir = `${PROJECT}/tests/.cache/nvml-probe`;
  const exe = `${dir}/nvml-probe-${key}`;
  try {
    Deno.statSync(exe);
    return (probe = exe);
  } catch { /* not built yet */ }
  Deno.mkdirSync(dir, { recursive: true });
  // Built beside it and renamed over: a parallel test process finds the whole file or none.
  const tmp = `${exe}.${Deno.pid}.tmp`;
  const out = await new Deno.Command("gcc", { args: ["-O1", "-o", tmp, src, "-ldl"] }).output();
  if (!out.success) throw new Error(`gcc nvml-probe failed: ${new TextDecoder().decode(out.stderr)}`);
  Deno.renameSync(tmp, exe);
  return (probe = exe);
}

/** Writes gpuctl's configuration for the fake driver `d` to `file`, logging everything to `log`; returns `file`. */
export function writeDebugConfig(
  file: string,
  d: FakeDriver,
  log: string,
  extra: Record<string, unknown> = {},
): string {
  Deno.writeTextFileSync(file, fixtureConfig(d, { logFile: log, logLevel: "debug", ...extra }));
  return file;
}

/** The environment gpuctl runs with in these tests: its config file, and HOME for Deno's caches. */
export function gpuctlEnv(config: string): Record<string, string> {
  return { GPUCTL_CONFIG: config, HOME: Deno.env.get("HOME") ?? "/root" };
}

/** {@link gpuctlEnv} as a hook's `env` in config.json, followed by `extra`. */
export function gpuctlEnvList(config: string, ...extra: string[]): string[] {
  return [...Object.entries(gpuctlEnv(config)).map(([k, v]) => `${k}=${v}`), ...extra];
}

/**
 * A launcher for the hook as Docker installs it: `nvidia-container-runtime-hook` on a PATH. `denoFlags` go to
 * `deno run` (a V8 heap limit, say).
 */
export function hookLauncher(
  dir: string,
  entry?: string,
  denoFlags: string[] = [],
): string {
  const path = `${dir}/bin/nvidia-container-runtime-hook`;
  Deno.mkdirSync(`${dir}/bin`, { recursive: true });
  Deno.writeTextFileSync(path, `#!/bin/sh\nexec ${gpuctlCommand(entry, denoFlags)} hook "$@"\n`, {
    mode: 0o755,
  });
  return path;
}

/**
 * The command line that runs gpuctl in a launcher: Deno on `entry` (default: the source, or with
 * GPUCTL_TEST_TARGET=artifact the artifact itself, unless Deno flags are wanted).
 */
function gpuctlCommand(entry: string | undefined, denoFlags: string[]): string {
  if (entry === undefined && denoFlags.length === 0 && artifactTarget()) return artifact().exe;
  return `${Deno.execPath()} run -A --quiet ${denoFlags.join(" ")} ${entry ?? `${PROJECT}/cli/main.ts`}`;
}

/** A launcher for the runtime shim: `gpuctl-runtime`, with `env` exported first. */
export function runtimeLauncher(
  dir: string,
  env: Record<string, string> = {},
  entry?: string,
  denoFlags: string[] = [],
): string {
  const path = `${dir}/bin/gpuctl-runtime`;
  Deno.mkdirSync(`${dir}/bin`, { recursive: true });
  const exports = Object.entries(env).map(([k, v]) => `export ${k}='${v}'\n`).join("");
  Deno.writeTextFileSync(
    path,
    `#!/bin/sh\n${exports}exec ${gpuctlCommand(entry, denoFlags)} runtime "$@"\n`,
    {
      mode: 0o755,
    },
  );
  return path;
}

/** Makes a bundle in `dir`; returns its path. */
export async function makeBundle(dir: string, o: BundleOptions): Promise<string> {
  const r = `${dir}/rootfs`;
  for (
    const d of [
      "bin",
      "sbin",
      "etc",
      "tmp",
      "proc",
      "dev",
      "sys",
      "lib/x86_64-linux-gnu",
      "lib64",
      "usr/local/bin",
    ]
  ) {
    Deno.mkdirSync(`${r}/${d}`, { recursive: true });
  }
  Deno.copyFileSync("/bin/busybox", `${r}/bin/busybox`);
  for (
    const c of [
      "sh",
      "ls",
      "cat",
      "echo",
      "grep",
      "readlink",
      "stat",
      "test",
      "wc",
      "head",
      "find",
      "sleep",
      "true",
      "touch",
    ]
  ) {
    Deno.symlinkSync("busybox", `${r}/bin/${c}`);
  }
  for (const l of ["libc.so.6", "libdl.so.2"]) {
    Deno.copyFileSync(`/lib/x86_64-linux-gnu/${l}`, `${r}/lib/x86_64-linux-gnu/${l}`);
  }
  Deno.copyFileSync("/lib64/ld-linux-x86-64.so.2", `${r}/lib64/ld-linux-x86-64.so.2`);
  Deno.copyFileSync("/sbin/ldconfig", `${r}/sbin/ldconfig`);
  Deno.copyFileSync(await probeBinary(), `${r}/usr/local/bin/nvml-probe`);
  Deno.chmodSync(`${r}/usr/local/bin/nvml-probe`, 0o755);
  if (o.debian) Deno.writeTextFileSync(`${r}/etc/debian_version`, "12.0\n");
  Deno.writeTextFileSync(`${r}/etc/passwd`, "root:x:0:0:root:/root:/bin/sh\n");
  o.prepare?.(r);
  const spec = await new Deno.Command("runc", { args: ["spec"], cwd: dir }).output();
  if (!spec.success) throw new Error("runc spec failed");
  const config = JSON.parse(Deno.readTextFileSync(`${dir}/config.json`));
  config.process.terminal = false;
  config.process.args = o.args;
  config.process.env = [...config.process.env, ...(o.env ?? [])];
  config.root.readonly = false;
  if (o.hook) {
    const path = o.hook.path ?? hookLauncher(dir);
    config.hooks = {
      prestart: [{ path, args: ["nvidia-container-runtime-hook", "prestart"], env: o.hook.env }],
    };
  }
  o.edit?.(config);
  Deno.writeTextFileSync(`${dir}/config.json`, JSON.stringify(config, null, 1));
  return dir;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

let seq = 0;

/** `runc run` (or another runtime's) of a bundle with its own state root; the container is deleted afterwards. */
export async function runcRun(
  bundle: string,
  timeoutMs = 60_000,
  runtime = "runc",
  extra: string[] = [],
): Promise<RunResult> {
  const id = `gpuctl-${Deno.pid}-${++seq}-${Math.random().toString(36).slice(2, 7)}`;
  const root = `${bundle}/runc-state`;
  const cmd = new Deno.Command(runtime, {
    args: ["--root", root, ...extra, "run", "--bundle", bundle, id],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  });
  const out = await cmd.output();
  await new Deno.Command("runc", {
    args: ["--root", root, "delete", "--force", id],
    stdout: "null",
    stderr: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/**
 * A container's lifecycle as containerd drives a runtime: `create` (stdio to the container), `start`, wait for the
 * container to exit, `delete`. Returns what the container printed and `create`'s exit code and stderr.
 */
export async function runcLifecycle(
  bundle: string,
  runtime = "runc",
  timeoutMs = 60_000,
): Promise<RunResult> {
  const id = `gpuctl-${Deno.pid}-${++seq}-${Math.random().toString(36).slice(2, 7)}`;
  const root = `${bundle}/runc-state`;
  const rt = (args: string[]) =>
    new Deno.Command(runtime, {
      args: ["--root", root, ...args],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    })
      .output();
  const create = new Deno.Command(runtime, {
    args: ["--root", root, "create", "--bundle", bundle, "--pid-file", `${bundle}/pid`, id],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(timeoutMs),
  }).spawn();
  const dec = new TextDecoder();
  const stdout = new Response(create.stdout).text();
  const stderr = new Response(create.stderr).text();
  const status = await create.status;
  if (!status.success) {
    return { code: status.code, stdout: await stdout, stderr: await stderr };
  }
  const start = await rt(["start", id]);
  if (!start.success) {
    await rt(["delete", "--force", id]);
    return { code: start.code, stdout: await stdout, stderr: (await stderr) + dec.decode(start.stderr) };
  }
  const out = await stdout; // the container holds the pipe until it exits
  await rt(["delete", "--force", id]);
  return { code: 0, stdout: out, stderr: await stderr };
}

/**
 * The host's mount table as a sorted list of "mount point  fstype" lines — less the mounts that other tests,
 * running in parallel, make under {@link TEST_MOUNT_PREFIXES}, which gpuctl never touches.
 */
export function hostMounts(): string {
  return Deno.readTextFileSync("/proc/self/mountinfo").split("\n").filter((l) => l !== "")
    .filter((l) => !TEST_MOUNT_PREFIXES.some((p) => (l.split(" ")[4] ?? "").startsWith(p)))
    .map((l) => {
      const f = l.split(" ");
      const post = l.split(" - ")[1]?.split(" ") ?? [];
      return `${f[4]} ${post[0]}`;
    }).sort().join("\n");
}

/** `gpuctl serve` from the bundle with `env` (its configuration), once it listens in `dir` (its pid there). */
export async function startServe(
  bundleJs: string,
  env: Record<string, string>,
  dir: string,
  opts: { stderr?: "inherit" | "null"; stderrFile?: string; prefix?: string[]; exe?: string } = {},
): Promise<{ pid: number; stop(): Promise<void> }> {
  const stderr = opts.stderrFile !== undefined ? "null" : opts.stderr ?? "null";
  const gpuctl = opts.exe !== undefined ? [opts.exe] : [Deno.execPath(), "run", "-A", "--quiet", bundleJs];
  // With stderrFile, as a supervisor runs a service: its stderr into the journal (here, the file), by exec.
  const argv = [
    ...(opts.prefix ?? []),
    ...(opts.stderrFile !== undefined ? ["sh", "-c", 'exec "$@" 2>>"$0"', opts.stderrFile] : []),
    ...gpuctl,
    "serve",
  ];
  const p = new Deno.Command(argv[0]!, {
    args: argv.slice(1),
    env,
    stdin: "null",
    stdout: "null",
    stderr,
  }).spawn();
  const stop = async () => {
    try {
      p.kill("SIGTERM");
    } catch { /* gone */ }
    await p.status;
  };
  for (let i = 0; i < 400; i++) {
    try {
      if (Deno.readTextFileSync(`${dir}/pid`).split(" ")[0] === String(p.pid)) return { pid: p.pid, stop };
    } catch { /* not yet */ }
    await new Promise((res) => setTimeout(res, 50));
  }
  await stop();
  throw new Error("gpuctl serve did not start");
}
