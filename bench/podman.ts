/**
 * CDI under a real Podman: `podman run --rm` of a container given one GPU by the spec `gpuctl cdi generate` wrote
 * — its hook a gpuctl process, its hook served by `gpuctl serve`, and the spec with no hook (`--no-hook`) —
 * against the same container without it, in the same run; and how many gpuctl processes one GPU container costs (counted from the log, where each hook
 * writes one line with its pid: the server's own lines are not processes).
 * @module
 */
import { type Case, timeTogether, type Timing } from "./lib.ts";
import { Podman } from "../tests/e2e/podman.ts";
import type { startServe } from "../tests/e2e/bundle.ts";
import { phases, rig, serveFrom } from "./overhead.ts";

export interface PodmanResult {
  plain: Timing;
  gpu: Timing;
  served: Timing;
  /** The spec `cdi generate --no-hook` writes: no hook, so no process. */
  noHook: Timing;
  processesPerContainer: number;
  processesPerServedContainer: number;
  /** The per-process hook's own log of its phases (medians, ms). */
  phases?: string;
}

/**
 * `gpuctl` is what is installed: dist/gpuctl, the artifact a host runs (or dist/gpuctl.js).
 *
 * Each spec is the only one in the CDI directories of a Podman of its own (its own storage, the same image), as on
 * a host, which has one spec for its GPUs: Podman reads and decodes every spec file there for every container
 * given a CDI device (about 0.15 ms per KiB of spec on this machine), so specs side by side would each pay for
 * the others.
 */
export async function podmanBench(tmp: string, gpuctl: string, runs: number): Promise<PodmanResult> {
  const r = await rig(tmp, gpuctl, "podman");
  const sr = await rig(tmp, gpuctl, "podman-served");
  const run = gpuctl.endsWith(".js") ? [Deno.execPath(), "run", "-A", "--quiet", gpuctl] : [gpuctl];
  const vendor = `gpuctl-bench-${Deno.pid}.test`, servedVendor = `gpuctl-bench-served-${Deno.pid}.test`;
  const noHookVendor = `gpuctl-bench-nohook-${Deno.pid}.test`;
  // Podman refuses a run root longer than 50 characters.
  const podman = () => new Podman(Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-podman-" }));
  const pp = podman(), ps = podman(), pn = podman();
  const generate = async (rg: typeof r, p: Podman, v: string, noHook = false) => {
    const g = await new Deno.Command(run[0]!, {
      args: [
        ...run.slice(1),
        "cdi",
        "generate",
        "--vendor",
        v,
        "--output",
        `${p.cdiDir}/${v}.json`,
        ...(noHook ? ["--no-hook"] : ["--hook-path", rg.hook]),
      ],
      env: rg.env,
    }).output();
    if (!g.success) throw new Error(`gpuctl cdi generate: ${new TextDecoder().decode(g.stderr)}`);
  };
  let server: Awaited<ReturnType<typeof startServe>> | null = null;
  try {
    await generate(r, pp, vendor);
    await generate(sr, ps, servedVendor);
    await generate(r, pn, noHookVendor, true);
    server = await serveFrom(gpuctl, sr.env, `${sr.dir}/cache/serve`);
    for (const p of [pp, ps, pn]) await p.importImage("bench/busybox");
    const podmanCase = (name: string, p: Podman, ...a: string[]): Case => ({
      name,
      cmd: p.argv([...Podman.RUN, ...a, "bench/busybox", "true"]),
      env: p.env,
    });
    const cases: Case[] = [
      podmanCase("podman run --rm", pp),
      podmanCase("podman run --rm --device <gpu 0>", pp, "--device", `${vendor}/gpu=0`),
      podmanCase("podman run --rm --device <gpu 0>, gpuctl serve", ps, "--device", `${servedVendor}/gpu=0`),
      podmanCase(
        "podman run --rm --device <gpu 0>, spec with no hook",
        pn,
        "--device",
        `${noHookVendor}/gpu=0`,
      ),
    ];
    await timeTogether(cases, { runs: 1, warmup: 0 });
    Deno.writeTextFileSync(r.log, "");
    Deno.writeTextFileSync(sr.log, "");
    const [plain, gpu, served, noHook] = await timeTogether(cases, { runs, warmup: 0 });
    // Each gpuctl process logs one line for its container; the server's lines carry its pid.
    const count = (log: string, not?: number) =>
      Deno.readTextFileSync(log).split("\n").filter((l) => l.includes('"msg":"container edits made"'))
        .filter((l) => not === undefined || !l.includes(`"pid":${not},`)).length / runs;
    const ph = phases(r.log, "container edits made");
    return {
      ...(ph === undefined ? {} : { phases: ph }),
      plain: plain!,
      gpu: gpu!,
      served: served!,
      noHook: noHook!,
      processesPerContainer: count(r.log),
      processesPerServedContainer: count(sr.log, server.pid),
    };
  } finally {
    await server?.stop();
    for (const p of [pp, ps, pn]) await p.cleanup(); // removes its directory, its spec with it
  }
}

/** Issue 24's targets for CDI under Podman, as overhead ÷ `podman run --rm` (NVIDIA's hook: 0.23×). */
export const PODMAN_TARGETS = { perProcess: 0.23, served: 0.12 } as const;

/** Prints the rows; returns whether both targets were met. */
export function printPodman(p: PodmanResult, runs: number): boolean {
  let met = true;
  const row = (name: string, t: Timing, target: number) => {
    const over = t.medianMs - p.plain.medianMs;
    const ratio = over / p.plain.medianMs;
    met &&= ratio <= target;
    console.log(
      `  ${name.padEnd(46)} ${t.medianMs.toFixed(1).padStart(7)}ms  +${over.toFixed(1)}ms, ${
        ratio.toFixed(2)
      }× over plain  ≤${target.toFixed(2)}× ${ratio <= target ? "met" : "MISSED"}`,
    );
  };
  console.log(`\nCDI under Podman 4.3 (${runs} rounds, medians)`);
  console.log(`  ${"podman run --rm".padEnd(46)} ${p.plain.medianMs.toFixed(1).padStart(7)}ms`);
  row("podman run --rm --device <gpu>", p.gpu, PODMAN_TARGETS.perProcess);
  if (p.phases) console.log(`${"".padEnd(50)} gpuctl's log (ms): ${p.phases}`);
  row("podman run --rm --device <gpu>, gpuctl serve", p.served, PODMAN_TARGETS.served);
  // For reference: what the engine's own mounts cost, with nothing of gpuctl's running (--no-hook).
  const over = p.noHook.medianMs - p.plain.medianMs;
  console.log(
    `  ${"podman run --rm --device <gpu>, no hook".padEnd(46)} ${
      p.noHook.medianMs.toFixed(1).padStart(7)
    }ms  +${over.toFixed(1)}ms, ${(over / p.plain.medianMs).toFixed(2)}× over plain  (reference)`,
  );
  console.log(
    `  gpuctl processes per GPU container:            ${p.processesPerContainer.toFixed(2)} (at most 1)`,
  );
  console.log(
    `  the same, with gpuctl serve:                   ${p.processesPerServedContainer.toFixed(2)} (0)`,
  );
  return met && p.processesPerContainer <= 1 && p.processesPerServedContainer === 0;
}
