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

/** One command to time. */
export interface Case {
  name: string;
  cmd: string[];
  env?: Record<string, string>;
  /** Run before each timed run, outside the timing (what an engine has done before it calls the runtime). */
  before?: () => void;
}

/** Runs `c` once and returns its wall time; fails loudly if the command fails. */
async function once(c: Case): Promise<number> {
  c.before?.();
  const cmd = new Deno.Command(c.cmd[0]!, {
    args: c.cmd.slice(1),
    env: { NO_COLOR: "1", ...c.env },
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  });
  const t0 = performance.now();
  const out = await cmd.output();
  const dt = performance.now() - t0;
  if (!out.success) {
    throw new Error(`${c.name}: ${c.cmd.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return dt;
}

/**
 * Times the cases together: each round runs every case once, in turn, after `warmup` rounds. A shared
 * machine's slow spells then fall on all of them alike, and their ratios stay fair.
 */
export async function timeTogether(
  cases: Case[],
  opts: { runs?: number; warmup?: number } = {},
): Promise<Timing[]> {
  const runs = opts.runs ?? 15, warmup = opts.warmup ?? 2;
  const samples: number[][] = cases.map(() => []);
  for (let i = 0; i < warmup + runs; i++) {
    for (const [k, c] of cases.entries()) {
      const dt = await once(c);
      if (i >= warmup) samples[k]!.push(dt);
    }
  }
  return cases.map((c, k) => {
    const s = samples[k]!.sort((a, b) => a - b);
    return { name: c.name, medianMs: s[Math.floor(s.length / 2)]!, minMs: s[0]!, runs };
  });
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
