/**
 * Command-level timing for `deno task bench`: runs each command repeatedly, reports medians, and ratios
 * against a baseline measured in the same run (never absolute targets: this is not a test).
 * @module
 */
export interface Timing {
  name: string;
  medianMs: number;
  minMs: number;
  runs: number;
}

/** Times `cmd` `runs` times after `warmup` runs; fails loudly if the command fails. */
export async function time(
  name: string,
  cmd: string[],
  opts: { env?: Record<string, string>; runs?: number; warmup?: number; stdin?: string } = {},
): Promise<Timing> {
  const runs = opts.runs ?? 15, warmup = opts.warmup ?? 2;
  const samples: number[] = [];
  for (let i = 0; i < warmup + runs; i++) {
    const c = new Deno.Command(cmd[0]!, {
      args: cmd.slice(1),
      env: { NO_COLOR: "1", ...opts.env },
      stdout: "null",
      stderr: "piped",
      stdin: opts.stdin === undefined ? "null" : "piped",
    });
    const t0 = performance.now();
    const child = c.spawn();
    if (opts.stdin !== undefined) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode(opts.stdin));
      await w.close();
    }
    const out = await child.output();
    const dt = performance.now() - t0;
    if (!out.success) {
      throw new Error(`${name}: ${cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    if (i >= warmup) samples.push(dt);
  }
  samples.sort((a, b) => a - b);
  return { name, medianMs: samples[Math.floor(samples.length / 2)]!, minMs: samples[0]!, runs };
}

/** Prints timings as a table with each one's ratio to `baseline`. */
export function report(title: string, baseline: Timing, rows: Timing[]): void {
  console.log(`\n${title}`);
  console.log(`${"".padEnd(44)} ${"median".padStart(9)} ${"min".padStart(9)}  ratio`);
  for (const r of [baseline, ...rows]) {
    const ratio = (r.medianMs / baseline.medianMs).toFixed(2);
    console.log(
      `${r.name.padEnd(44)} ${r.medianMs.toFixed(1).padStart(7)}ms ${
        r.minMs.toFixed(1).padStart(7)
      }ms  ${ratio}x${r === baseline ? " (baseline)" : ""}`,
    );
  }
}
