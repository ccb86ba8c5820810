/**
 * CDI under a real Podman: `podman run --rm` of a container given one GPU by the spec `gpuctl cdi generate` wrote,
 * against the same container without it, in the same run; and how many gpuctl processes one GPU container costs
 * (counted from the log, where each hook process writes one line).
 * @module
 */
import { type Case, timeTogether, type Timing } from "./lib.ts";
import { Podman } from "../tests/e2e/podman.ts";
import { rig } from "./overhead.ts";

export interface PodmanResult {
  plain: Timing;
  gpu: Timing;
  processesPerContainer: number;
}

export async function podmanBench(tmp: string, bundleJs: string, runs: number): Promise<PodmanResult> {
  const r = await rig(tmp, bundleJs, "podman");
  const vendor = `gpuctl-bench-${Deno.pid}.test`;
  // Podman refuses a run root longer than 50 characters.
  const pdir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "gpuctl-podman-" });
  const podman = new Podman(pdir);
  const spec = `${podman.cdiDir}/gpuctl-bench.json`;
  try {
    const g = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--quiet",
        bundleJs,
        "cdi",
        "generate",
        "--vendor",
        vendor,
        "--output",
        spec,
        "--hook-path",
        r.hook,
      ],
      env: r.env,
    }).output();
    if (!g.success) throw new Error(`gpuctl cdi generate: ${new TextDecoder().decode(g.stderr)}`);
    await podman.importImage("bench/busybox");
    const podmanCmd = (...a: string[]) => podman.argv([...Podman.RUN, ...a]);
    const env = podman.env;
    const cases: Case[] = [
      { name: "podman run --rm", cmd: podmanCmd("bench/busybox", "true"), env },
      {
        name: "podman run --rm --device <gpu 0>",
        cmd: podmanCmd("--device", `${vendor}/gpu=0`, "bench/busybox", "true"),
        env,
      },
    ];
    await timeTogether(cases, { runs: 1, warmup: 0 });
    Deno.writeTextFileSync(r.log, "");
    const [plain, gpu] = await timeTogether(cases, { runs, warmup: 0 });
    // Each gpuctl process logs one line (a hook's pid is the container's namespace's, so lines are counted).
    const lines = Deno.readTextFileSync(r.log).split("\n").filter((l) => l.includes('"component":"hook"'));
    return { plain: plain!, gpu: gpu!, processesPerContainer: lines.length / runs };
  } finally {
    await podman.cleanup(); // removes its directory, the spec with it
  }
}

export function printPodman(p: PodmanResult, runs: number): void {
  const over = p.gpu.medianMs - p.plain.medianMs;
  console.log(`\nCDI under Podman 4.3 (${runs} rounds, medians)`);
  console.log(`  podman run --rm                       ${p.plain.medianMs.toFixed(1).padStart(7)}ms`);
  console.log(
    `  podman run --rm --device <gpu>        ${p.gpu.medianMs.toFixed(1).padStart(7)}ms  +${
      over.toFixed(1)
    }ms, ${(over / p.plain.medianMs).toFixed(2)}× over plain`,
  );
  console.log(
    `  gpuctl processes per GPU container:   ${p.processesPerContainer.toFixed(2)} (target: at most 1)`,
  );
}
