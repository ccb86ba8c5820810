/**
 * The bench's main table: what gpuctl adds to a container, as ratios over plain runc timed in the same run.
 *
 * gpuctl is installed as a host installs it (`gpuctl install --prefix DIR`, run from dist/gpuctl, the artifact): the
 * sh fronts `gpuctl-runtime` and `nvidia-container-runtime-hook`, which exec the packed gpuctl as their serve client. A lifecycle is what an engine asks of a
 * runtime for one container — `create`, `start`, `delete --force` — run by one sh script, the same for every
 * case, with config.json restored first (engines write a fresh one per container).
 *
 * | case | measured | over |
 * |---|---|---|
 * | pass-through | front `state` | `runc state` |
 * | no GPU request | lifecycle through the front | lifecycle through runc |
 * | GPU, shim (spec mode), gpuctl serve | lifecycle through the front, 1 GPU, server running | lifecycle through runc |
 * | GPU, prestart hook, gpuctl serve | runc lifecycle with the hook front in config.json, 1 GPU, server running | lifecycle through runc |
 * | the same two without the server | a gpuctl process per container | lifecycle through runc |
 * | runc on gpuctl's config.json (reference) | runc lifecycle on config.json as the shim wrote it, no gpuctl | lifecycle through runc |
 * @module
 */
import { type Case, timeTogether, type Timing } from "./lib.ts";
import { fakeDriver, fixtureConfig, standardSpec } from "../tests/fixtures/driver.ts";
import { gpuctlEnv, gpuctlEnvList, makeBundle, startServe } from "../tests/e2e/bundle.ts";

/**
 * The targets of issue 24 (speed round 3), as overhead ÷ baseline: half of NVIDIA's overhead with `gpuctl serve`
 * (NVIDIA's, measured beside ours: runtime 0.65×, hook 0.51×), at most one lifecycle more per process, and the
 * pass-through and no-GPU rows where round 2 left them.
 */
export const TARGETS = {
  passThrough: 0.20,
  noGpu: 0.05,
  shim: 0.33,
  hook: 0.26,
  shimProcess: 1.0,
  hookProcess: 1.0,
} as const;

export interface OverheadRow {
  name: string;
  baseline: Timing;
  measured: Timing;
  overheadMs: number;
  ratio: number;
  target: number;
  phases?: string;
}

const LIFECYCLE = `#!/bin/sh
# lifecycle RUNTIME STATE-ROOT BUNDLE: one container as an engine drives a runtime.
set -e
rt=$1 root=$2 b=$3 id=c$$
cp "$b/config.orig.json" "$b/config.json"
"$rt" --root "$root" create --bundle "$b" --pid-file "$b/pid" "$id"
"$rt" --root "$root" start "$id"
"$rt" --root "$root" delete --force "$id"
`;

/** Median of each key of the `ms` objects in the log lines whose msg is `msg`. */
export function phases(log: string, msg: string): string | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(log);
  } catch {
    return undefined;
  }
  const ms = text.split("\n").filter((l) => l.includes(`"${msg}"`)).map((l) =>
    JSON.parse(l).ms as Record<string, number> | undefined
  ).filter((m): m is Record<string, number> => m !== undefined);
  if (ms.length === 0) return undefined;
  const median = (k: string) => ms.map((m) => m[k] ?? 0).sort((a, b) => a - b)[Math.floor(ms.length / 2)]!;
  return Object.keys(ms[0]!).map((k) => `${k} ${median(k).toFixed(1)}`).join(", ");
}

/** gpuctl installed from the bundle into a directory of its own, with the fake driver (1 GPU) and a log. */
export interface Rig {
  dir: string;
  config: string;
  log: string;
  env: Record<string, string>;
  front: string;
  hook: string;
  /** A bundle whose config.json is restored from config.orig.json by {@link Rig.lifecycle}. */
  bundle(name: string, o: Parameters<typeof makeBundle>[1]): Promise<string>;
  /** The command that runs one container's lifecycle through `runtime`. */
  lifecycle(runtime: string, bundle: string): string[];
  /**
   * Puts the image's own linker cache back into the bundle's rootfs, as a fresh container from the image has it
   * (a file of an image layer, which the container's replacement does not free). Untimed: replacing the previous
   * container's merged cache frees it, which an engine does when it removes that container, not while it starts
   * the next one.
   */
  freshRootfs(bundle: string): void;
}

/** A rig with gpuctl installed from `gpuctl`: the bundle (run by Deno), or the executable `deno task dist` built. */
/**
 * The image's own linker cache, as Debian's and Ubuntu's images have one (this machine's, when it has one): gpuctl
 * merges the injected libraries into it, as into a real image's.
 */
function imageLdCache(rootfs: string): void {
  try {
    Deno.copyFileSync("/etc/ld.so.cache", `${rootfs}/etc/ld.so.cache`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

export async function rig(tmp: string, gpuctl: string, name = "rig"): Promise<Rig> {
  const bundleJs = gpuctl;
  const dir = `${tmp}/${name}`;
  Deno.mkdirSync(`${dir}/bin`, { recursive: true });
  const d = await fakeDriver(standardSpec(1, { mig: false }));
  const config = `${dir}/gpuctl.jsonc`;
  const log = `${dir}/gpuctl.log`;
  Deno.writeTextFileSync(config, fixtureConfig(d, { logFile: log, cacheDir: `${dir}/cache` }));
  const env = gpuctlEnv(config);
  const [cmd, ...pre] = bundleJs.endsWith(".js")
    ? [Deno.execPath(), "run", "-A", "--quiet", bundleJs]
    : [bundleJs];
  const inst = await new Deno.Command(cmd!, { args: [...pre, "install", "--prefix", `${dir}/bin`], env })
    .output();
  if (!inst.success) throw new Error(`gpuctl install failed: ${new TextDecoder().decode(inst.stderr)}`);
  Deno.writeTextFileSync(`${dir}/lifecycle`, LIFECYCLE, { mode: 0o755 });
  return {
    dir,
    config,
    log,
    env,
    front: `${dir}/bin/gpuctl-runtime`,
    hook: `${dir}/bin/nvidia-container-runtime-hook`,
    async bundle(name, o) {
      const b = await makeBundle(`${dir}/${name}`, { debian: true, prepare: imageLdCache, ...o });
      Deno.copyFileSync(`${b}/config.json`, `${b}/config.orig.json`);
      try {
        Deno.linkSync(`${b}/rootfs/etc/ld.so.cache`, `${b}/image.ld.so.cache`);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      return b;
    },
    lifecycle: (rt, b) => [`${dir}/lifecycle`, rt, `${dir}/state`, b],
    freshRootfs(b) {
      const image = `${b}/image.ld.so.cache`, tmp = `${b}/rootfs/etc/.ld.so.cache.image`;
      try {
        Deno.linkSync(image, tmp);
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        throw e;
      }
      Deno.renameSync(tmp, `${b}/rootfs/etc/ld.so.cache`);
      // rename(2) between two links of one file does nothing.
      try {
        Deno.removeSync(tmp);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
    },
  };
}

export const GPU_ENV = ["NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"];

/** `gpuctl serve` from `gpuctl` (dist/gpuctl.js, run by Deno, or an executable), as {@link rig} installs it. */
export function serveFrom(gpuctl: string, env: Record<string, string>, dir: string) {
  return startServe(gpuctl, env, dir, {
    stderr: "inherit",
    ...(gpuctl.endsWith(".js") ? {} : { exe: gpuctl }),
  });
}

/**
 * Runs the table's cases interleaved and returns its rows; `gpuctl` is what is installed: dist/gpuctl, the
 * artifact a host runs (or dist/gpuctl.js).
 */
export async function overheadTable(tmp: string, gpuctl: string, runs: number): Promise<OverheadRow[]> {
  const r = await rig(tmp, gpuctl, "overhead");
  const { dir, env, front, log, lifecycle } = r;
  Deno.writeTextFileSync(`${tmp}/empty.ts`, "");
  const plain = await r.bundle("plain", { args: ["/bin/true"] });
  const withGpu = await r.bundle("gpu", { args: ["/bin/true"], env: GPU_ENV });
  const withHook = await r.bundle("hook", {
    args: ["/bin/true"],
    env: GPU_ENV,
    hook: { path: r.hook, env: gpuctlEnvList(r.config) },
  });

  // The same, with `gpuctl serve` running: its own rig (configuration, snapshot, log), so that the fronts of the
  // first find no server and run gpuctl per container.
  const sr = await rig(tmp, gpuctl, "served");
  const servedGpu = await sr.bundle("gpu", { args: ["/bin/true"], env: GPU_ENV });
  const servedHook = await sr.bundle("hook", {
    args: ["/bin/true"],
    env: GPU_ENV,
    hook: { path: sr.hook, env: gpuctlEnvList(sr.config) },
  });
  const server = await serveFrom(gpuctl, sr.env, `${sr.dir}/cache/serve`);
  // The floor under the shim's rows: runc alone on config.json as gpuctl wrote it (its nodes, rules and mounts),
  // the rootfs as gpuctl left it. Prepared once, through the front, then replayed with no gpuctl.
  const edited = await sr.bundle("edited", { args: ["/bin/true"], env: GPU_ENV });
  // The created container holds its stdio until it starts: nothing to wait on, so its stderr goes to a file (by
  // the shell), read if the create fails.
  const onceErr = `${sr.dir}/edited.stderr`;
  const once = await new Deno.Command("sh", {
    args: [
      "-c",
      'exec "$@" 2>"$0"',
      onceErr,
      sr.front,
      "--root",
      `${sr.dir}/state`,
      "create",
      "--bundle",
      edited,
      `edited-${Deno.pid}`,
    ],
    env: sr.env,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!once.success) {
    const log = Deno.readTextFileSync(sr.log).trim().split("\n").slice(-3).join("\n");
    throw new Error(
      `gpuctl-runtime create of ${edited} failed (exit ${once.code}): ${
        Deno.readTextFileSync(onceErr)
      }\n${log}`,
    );
  }
  await new Deno.Command("runc", {
    args: ["--root", `${sr.dir}/state`, "delete", "--force", `edited-${Deno.pid}`],
  })
    .output();
  Deno.copyFileSync(`${edited}/config.json`, `${edited}/config.orig.json`);

  // A created container for state to look at.
  const id = `gpuctl-bench-${Deno.pid}`;
  const created = await new Deno.Command("runc", {
    args: ["--root", `${dir}/state`, "create", "--bundle", plain, id],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  if (!created.success) throw new Error("runc create failed");
  try {
    const cases: Case[] = [
      { name: "runc state", cmd: ["runc", "--root", `${dir}/state`, "state", id] },
      { name: "gpuctl-runtime state", cmd: [front, "--root", `${dir}/state`, "state", id], env },
      { name: "runc lifecycle", cmd: lifecycle("runc", plain), before: () => r.freshRootfs(plain) },
      {
        name: "gpuctl-runtime lifecycle, no GPU",
        cmd: lifecycle(front, plain),
        env,
        before: () => r.freshRootfs(plain),
      },
      {
        name: "gpuctl-runtime lifecycle, 1 GPU",
        cmd: lifecycle(front, withGpu),
        env,
        before: () => r.freshRootfs(withGpu),
      },
      {
        name: "runc lifecycle + hook, 1 GPU",
        cmd: lifecycle("runc", withHook),
        env,
        before: () => r.freshRootfs(withHook),
      },
      { name: "deno run empty.ts", cmd: [Deno.execPath(), "run", "-A", "--quiet", `${tmp}/empty.ts`] },
      {
        name: "gpuctl-runtime lifecycle, 1 GPU, gpuctl serve",
        cmd: sr.lifecycle(sr.front, servedGpu),
        env: sr.env,
        before: () => sr.freshRootfs(servedGpu),
      },
      {
        name: "runc lifecycle + hook, 1 GPU, gpuctl serve",
        cmd: sr.lifecycle("runc", servedHook),
        env: sr.env,
        before: () => sr.freshRootfs(servedHook),
      },
      { name: "runc lifecycle, config.json as gpuctl wrote it", cmd: sr.lifecycle("runc", edited) },
    ];
    // The warm-up rounds build the driver snapshot; the log then holds only warm containers' lines.
    await timeTogether(cases, { runs: 1, warmup: 0 });
    Deno.writeTextFileSync(log, "");
    Deno.writeTextFileSync(sr.log, "");
    const [
      state,
      frontState,
      life,
      lifeFront,
      lifeGpu,
      lifeHook,
      empty,
      servedLife,
      servedHookLife,
      editedLife,
    ] = await timeTogether(cases, { runs });
    const row = (name: string, baseline: Timing, measured: Timing, target: number, p?: string) => {
      const overheadMs = measured.medianMs - baseline.medianMs;
      const r: OverheadRow = {
        name,
        baseline,
        measured,
        overheadMs,
        ratio: overheadMs / baseline.medianMs,
        target,
      };
      if (p !== undefined) r.phases = p;
      return r;
    };
    return [
      row("pass-through (state)", state!, frontState!, TARGETS.passThrough),
      row("container without a GPU request, shim", life!, lifeFront!, TARGETS.noGpu),
      row(
        "GPU container, shim (spec mode), gpuctl serve",
        life!,
        servedLife!,
        TARGETS.shim,
        phases(sr.log, "GPU container prepared"),
      ),
      row(
        "GPU container, prestart hook, gpuctl serve",
        life!,
        servedHookLife!,
        TARGETS.hook,
        phases(sr.log, "GPUs injected"),
      ),
      // Without the server: a gpuctl process per GPU container (the last row is the floor under it).
      row(
        "GPU container, shim, a gpuctl process each",
        life!,
        lifeGpu!,
        TARGETS.shimProcess,
        phases(log, "GPU container prepared"),
      ),
      row(
        "GPU container, prestart hook, a gpuctl process each",
        life!,
        lifeHook!,
        TARGETS.hookProcess,
        phases(log, "GPUs injected"),
      ),
      // Not gpuctl's: runc's own work on what gpuctl adds to config.json, the floor under the shim's rows.
      row("runc alone on config.json as gpuctl wrote it", life!, editedLife!, NaN),
      // Not gpuctl's: what any Deno process costs here, the floor under the two rows above.
      {
        ...row("an empty deno run (the floor of a Deno process)", life!, empty!, NaN),
        overheadMs: empty!.medianMs,
      },
    ].map((x) => (Number.isNaN(x.target) ? { ...x, ratio: x.overheadMs / x.baseline.medianMs } : x));
  } finally {
    await new Deno.Command("runc", { args: ["--root", `${dir}/state`, "delete", "--force", id] }).output();
    await server.stop();
  }
}

/**
 * The first GPU container with no current snapshot (after a reboot or a driver change): its lifecycle's time, and
 * the log's "driver snapshot rebuilt" line.
 */
export async function firstContainer(tmp: string, bundleJs: string): Promise<string> {
  const r = await rig(tmp, bundleJs, "first");
  const b = await r.bundle("gpu", { args: ["/bin/true"], env: GPU_ENV });
  const [cold] = await timeTogether([{ name: "cold", cmd: r.lifecycle(r.front, b), env: r.env }], {
    runs: 1,
    warmup: 0,
  });
  const rebuilt = Deno.readTextFileSync(r.log).split("\n").find((l) =>
    l.includes('"driver snapshot rebuilt"')
  );
  const why = rebuilt ? JSON.parse(rebuilt) as { why: string; ms: number } : null;
  return `first GPU container with no snapshot: ${cold!.medianMs.toFixed(1)}ms; log: ${
    why ? `driver snapshot rebuilt (${why.why}), ${why.ms}ms` : "NO snapshot line"
  }`;
}

/** Prints the rows as one table; returns whether every target was met. */
export function printOverhead(rows: OverheadRow[], runs: number): boolean {
  console.log(`\nOverhead over plain runc, same run, interleaved (${runs} rounds, medians)`);
  const w = 52;
  console.log(
    `${"case".padEnd(w)} ${"runc".padStart(8)} ${"gpuctl".padStart(8)} ${"over".padStart(8)}  ratio  target`,
  );
  let all = true;
  for (const r of rows) {
    const floor = Number.isNaN(r.target);
    const met = floor || r.ratio <= r.target;
    all &&= met;
    console.log(
      `${r.name.padEnd(w)} ${r.baseline.medianMs.toFixed(1).padStart(6)}ms ${
        r.measured.medianMs.toFixed(1).padStart(6)
      }ms ${r.overheadMs.toFixed(1).padStart(6)}ms  ${r.ratio.toFixed(2)}×  ${
        floor ? "(reference)" : `≤${r.target.toFixed(2)}× ${met ? "met" : "MISSED"}`
      }`,
    );
    if (r.phases) console.log(`${"".padEnd(w)}   gpuctl's log (ms): ${r.phases}`);
  }
  return all;
}

/**
 * The artifact against the bundle it carries: `--version`, and a GPU container through the front with a gpuctl
 * process and with `gpuctl serve`, gpuctl installed from `dist/gpuctl` and from `deno run dist/gpuctl.js`, each
 * against plain runc in the same run. `exe` has run once (unpacked) before.
 */
export async function artifactTable(tmp: string, bundleJs: string, exe: string, runs: number): Promise<void> {
  const js = await rig(tmp, bundleJs, "artifact-js"), bin = await rig(tmp, exe, "artifact-exe");
  const plain = await js.bundle("plain", { args: ["/bin/true"] });
  const gpuJs = await js.bundle("gpu", { args: ["/bin/true"], env: GPU_ENV });
  const gpuBin = await bin.bundle("gpu", { args: ["/bin/true"], env: GPU_ENV });
  const cases = (served: string): Case[] => [
    { name: "runc lifecycle", cmd: js.lifecycle("runc", plain), before: () => js.freshRootfs(plain) },
    {
      name: `gpuctl-runtime lifecycle, 1 GPU${served}, deno run dist/gpuctl.js`,
      cmd: js.lifecycle(js.front, gpuJs),
      env: js.env,
      before: () => js.freshRootfs(gpuJs),
    },
    {
      name: `gpuctl-runtime lifecycle, 1 GPU${served}, dist/gpuctl`,
      cmd: bin.lifecycle(bin.front, gpuBin),
      env: bin.env,
      before: () => bin.freshRootfs(gpuBin),
    },
  ];
  const show = (title: string, t: Timing[]) => {
    const [base, viaJs, viaExe] = t as [Timing, Timing, Timing];
    console.log(`\n${title} (${runs} rounds, medians)`);
    console.log(`  ${base.name}: ${base.medianMs.toFixed(1)} ms`);
    for (const x of [viaJs, viaExe]) {
      const over = x.medianMs - base.medianMs;
      console.log(`  ${x.name}: +${over.toFixed(1)} ms, ${(over / base.medianMs).toFixed(2)}x`);
    }
    console.log(`  dist/gpuctl / deno run dist/gpuctl.js: ${(viaExe.medianMs / viaJs.medianMs).toFixed(2)}x`);
  };
  const version: Case[] = [
    {
      name: "deno run -A dist/gpuctl.js --version",
      cmd: [Deno.execPath(), "run", "-A", "--quiet", bundleJs, "--version"],
    },
    { name: "dist/gpuctl --version", cmd: [exe, "--version"] },
  ];
  await timeTogether(version, { runs: 1, warmup: 0 });
  const [vJs, vExe] = await timeTogether(version, { runs });
  console.log(`\nthe artifact against the bundle (${runs} rounds, medians)`);
  console.log(`  ${vJs!.name}: ${vJs!.medianMs.toFixed(1)} ms`);
  console.log(
    `  ${vExe!.name}: ${vExe!.medianMs.toFixed(1)} ms, ${(vExe!.medianMs / vJs!.medianMs).toFixed(2)}x`,
  );
  await timeTogether(cases(""), { runs: 1, warmup: 0 });
  show(
    "GPU container, a gpuctl process each: installed from the bundle and from the artifact",
    await timeTogether(cases(""), { runs }),
  );
  const servers = [
    await startServe(bundleJs, js.env, `${js.dir}/cache/serve`, { stderr: "inherit" }),
    await startServe(bundleJs, bin.env, `${bin.dir}/cache/serve`, { stderr: "inherit", exe }),
  ];
  try {
    await timeTogether(cases(", gpuctl serve"), { runs: 1, warmup: 0 });
    show(
      "GPU container, gpuctl serve running: each server as installed",
      await timeTogether(cases(", gpuctl serve"), { runs }),
    );
  } finally {
    for (const s of servers) await s.stop();
  }
}
